"""``matryoshka``: the Matryoshka BatchTopK SAE (Bussmann, Nabeshima, Karvonen & Nanda
2025, "Learning Multi-Level Features with Matryoshka Sparse Autoencoders"; Nabeshima 2024,
"Matryoshka SAEs" on the feature-absorption toy).

The codes are those of BatchTopK (:mod:`.batchtopk`: the B·k largest ReLU pre-activations
of the batch while training, a calibrated threshold θ at inference). The dictionary is read
as G nested prefixes m_1 < m_2 < … < m_G = F, and every prefix must reconstruct the input
on its own:

    x̂_g = Σ_{j < m_g} f_j d_j + b_dec,     L = Σ_g mean_b ||x − x̂_g||² + aux-k

so the first latents are pushed to carry general (parent) features — a child latent that
absorbed its parent's direction would leave the small prefixes without it — which is what
reduces feature absorption. Prefix sizes: m_g = ceil(F / 2^(G − g)) (each prefix doubles),
duplicates dropped for small F. Loss terms: ``mse`` is the full dictionary's (g = G), the
inner prefixes' sum is added under ``aux`` together with the aux-k loss (``prefix_mse``
reports it alone). The gradient is autograd's (no hand-derived path).
"""
from __future__ import annotations

import math
from dataclasses import dataclass, field

import torch

from .._validate import check_int
from .base import SAE
from .batchtopk import BatchTopKOptions, BatchTopKSAE
from .registry import register


@dataclass(frozen=True)
class MatryoshkaOptions:
    """Options of ``matryoshka`` (BatchTopK's threshold EMA and the number of prefixes)."""

    threshold_ema: float = field(default=0.01, metadata={"flag": "--threshold-ema"})
    """ρ in (0, 1], the rate of the exponential moving average of the smallest kept
    activation: the threshold θ used at inference (as for batchtopk)."""

    prefixes: int = field(default=4, metadata={"flag": "--matryoshka-prefixes"})
    """G >= 1, nested dictionary prefixes m_g = ceil(F / 2^(G - g)), g = 1..G, each trained
    to reconstruct the input alone (G = 1 is plain BatchTopK)."""

    def __post_init__(self) -> None:
        BatchTopKOptions.__post_init__(self)  # type: ignore[arg-type]
        object.__setattr__(self, "prefixes", check_int("prefixes", self.prefixes, 1, 32))


def prefix_sizes(dict_size: int, prefixes: int) -> list[int]:
    """m_g = ceil(F / 2^(G − g)) for g = 1..G, increasing, duplicates dropped; ends at F."""
    out: list[int] = []
    for g in range(1, prefixes + 1):
        m = math.ceil(dict_size / 2 ** (prefixes - g))
        if not out or m > out[-1]:
            out.append(m)
    return out


@register
class MatryoshkaSAE(BatchTopKSAE):
    """Matryoshka BatchTopK SAE: nested prefixes of the dictionary, each reconstructing."""

    arch = "matryoshka"
    Options = MatryoshkaOptions
    legacy_options: dict[str, str] = {}

    @property
    def prefix_sizes(self) -> list[int]:
        """The nested dictionary sizes m_1 < … < m_G = F."""
        return prefix_sizes(self.dict_size, self.options.prefixes)

    def _dense_codes(self, x: torch.Tensor, train: bool) -> tuple[torch.Tensor, torch.Tensor]:
        """(codes f (I, B, F) with autograd, pre-activations (I, B, F) without)."""
        pre = self.pre_activations(x)
        with torch.no_grad():
            pattern, _, _ = self._select(pre.detach(), train)
            mask = torch.zeros(pre.numel(), dtype=pre.dtype, device=pre.device)
            n_i, bsz, n_f = pre.shape
            inst = pattern.cols // n_f
            mask[pattern.rows * n_f + (pattern.cols - inst * n_f)] = 1.0
            mask = mask.view_as(pre)
        return torch.relu(pre) * mask, pre.detach()

    def prefix_reconstructions(self, f: torch.Tensor) -> list[torch.Tensor]:
        """x̂_g (I, B, D) for every prefix, from codes f (I, B, F) (cumulative partial decodes)."""
        out, acc, start = [], self.b_dec_ID[:, None, :].expand(f.shape[0], f.shape[1], -1), 0
        for m in self.prefix_sizes:
            acc = acc + torch.bmm(f[:, :, start:m], self.W_dec[:, start:m, :])
            out.append(acc)
            start = m
        return out

    def _forward_terms(self, x: torch.Tensor, train: bool):
        f, pre = self._dense_codes(x, train)
        bsz = x.shape[1]
        recon = self.prefix_reconstructions(f)
        errs = [(x - r).square().sum(dim=(1, 2)) / bsz for r in recon]
        mse = errs[-1]
        inner = torch.stack(errs[:-1]).sum(0) if len(errs) > 1 else torch.zeros_like(mse)
        terms = {"mse": mse, "sparsity": torch.zeros_like(mse), "prefix_mse": inner, "aux": inner}
        if train:
            out = {"pre": pre, "x_hat": recon[-1], "A": (x - self.b_dec_ID[:, None, :]).expand(self.n_instances, bsz, -1).reshape(-1, self.d_model),
                   "Bm": self._encoder_rows()}
            aux = self._aux_loss(x, out)
            if aux is not None:
                terms["aux"] = inner + aux
        return terms, (f.detach() > 0).any(dim=1)

    def loss_and_grad_core(self, x: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        """Autograd through :meth:`_forward_terms`, then the BatchTopK threshold update."""
        loss, fired = SAE.loss_and_grad_core(self, x)
        self.update_threshold(self._batch_min)
        return loss, fired
