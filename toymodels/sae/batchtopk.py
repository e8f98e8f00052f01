"""``batchtopk`` (Bussmann et al. 2024, "BatchTopK Sparse Autoencoders").

BatchTopK keeps the B·k largest ReLU pre-activations of the whole batch (so k on average per
sample, more for dense samples, fewer for sparse ones), k in [1, dict_size − 1]. At
inference, where there is no batch, a latent fires when its pre-activation exceeds θ, an
exponential moving average of the smallest activation kept in each training batch:

    θ ← θ + ρ (m − θ),   m = min of the kept activations,   θ = m at the first step

``loss``/``encode`` use θ, training (``loss_and_grad``, ``encode(train=True)``) the batch
top-k. The sparse forward, hand-derived backward and aux-k loss are those of
:class:`toymodels.sae.topk.SparseCodeSAE`.
"""
from __future__ import annotations

from dataclasses import dataclass, field

import torch

from .._validate import check_float
from .registry import register
from .sparse import Pattern
from .topk import SparseCodeSAE


@dataclass(frozen=True)
class BatchTopKOptions:
    """Options of ``batchtopk``."""

    threshold_ema: float = field(default=0.01, metadata={"flag": "--threshold-ema"})
    """ρ in (0, 1], the rate of the exponential moving average of the smallest kept
    activation: the threshold θ used at inference."""

    def __post_init__(self) -> None:
        object.__setattr__(self, "threshold_ema", check_float("threshold_ema", self.threshold_ema, 0.0, 1.0, lo_open=True))


@register
class BatchTopKSAE(SparseCodeSAE):
    """BatchTopK SAE: the B·k largest activations of the batch in training, a calibrated
    threshold θ (``threshold_I``) at inference."""

    arch = "batchtopk"
    Options = BatchTopKOptions
    legacy_options = {"threshold_ema": "threshold_ema"}

    def _init_parameters(self) -> None:
        super()._init_parameters()
        self.register_buffer("threshold_I", torch.zeros(self.n_instances, device=self.device_))

    def _select(self, pre: torch.Tensor, train: bool):
        n_i, bsz, n_f = pre.shape
        act = pre.clamp_min(0)
        if train:
            ks = self._ks()
            n_keep = [min(bsz * k, bsz * n_f) for k in ks]
            flat = act.reshape(n_i, -1)
            vals, pos = flat.topk(max(n_keep), dim=-1, sorted=len(set(n_keep)) > 1)
            keep = vals > 0
            if len(set(n_keep)) > 1:
                rank = torch.arange(vals.shape[1], device=pre.device)
                keep &= rank[None, :] < torch.tensor(n_keep, device=pre.device)[:, None]
            mask = torch.zeros_like(flat, dtype=torch.bool).scatter_(1, pos, keep).view(n_i, bsz, n_f)
            kept_min = torch.where(keep, vals, torch.full_like(vals, float("inf"))).amin(dim=1)
            self._batch_min = torch.where(torch.isfinite(kept_min), kept_min, torch.zeros_like(kept_min))
        else:
            mask = act > self.threshold_I[:, None, None]
        pattern = Pattern.from_mask(mask)
        i = pattern.cols // n_f
        vals0 = pre[i, pattern.rows - i * bsz, pattern.cols - i * n_f]
        return pattern, vals0, None

    @torch.no_grad()
    def update_threshold(self, batch_min: torch.Tensor) -> None:
        """θ ← θ + ρ (m − θ) with m the smallest kept activation of the batch (θ = m at the
        first step)."""
        m = batch_min.to(self.threshold_I.dtype)
        ema = torch.lerp(self.threshold_I, m, self.options.threshold_ema)
        self.threshold_I.copy_(torch.where(self.step_count_I == 0, m, ema))

    def loss_and_grad_core(self, x: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        loss, fired = super().loss_and_grad_core(x)
        self.update_threshold(self._batch_min)
        return loss, fired
