"""``bound``: a ReLU SAE whose dictionary is bound in two halves (seed 004, Lucius Bushnaq's
"matrix binding" check).

With H = F/2 the decoder is [D, 2D]-style: the first H rows are free parameters and the
second H rows are a learned linear map of them,

    W_dec = [ W_half ; W_half R_map ]          W_half (I, H, D), R_map (I, D, D)

i.e. d_{H+j} = R_mapᵀ d_j for j < H (as row vectors, d_{H+j} = d_j R_map). Latent j and
latent H + j are the same "feature" in two "slots". Encoder, code and loss are those of
``relu``: f = ReLU((x − b_dec) W_enc + b_enc), L = mean_b ||x − x̂||² + λ · mean_b Σ_j f_j ||d_j||
— the ||d_j|| factor matters here, because only the first half is constrained to unit norm
(the second half's norms are set by R_map). R_map starts as a random rotation, so every row
starts at unit norm. The hand-derived backward of ``relu`` applies, with the chain rule

    ∂L/∂W_half = G₁ + G₂ R_mapᵀ,     ∂L/∂R_map = W_halfᵀ G₂     (G = ∂L/∂W_dec = [G₁; G₂]).

Resampling: a dead latent's encoder column and bias are re-initialised; its decoder row is
re-initialised only when it is in the first half and its partner j + H is dead too (the
second half has no decoder rows of its own).
"""
from __future__ import annotations

import torch
from torch import nn

from ..measures.linalg import random_orthogonal
from .registry import register
from .relu import ReLUSAE


@register
class BoundSAE(ReLUSAE):
    """ReLU SAE with W_dec = [W_half; W_half R_map] (dict_size even)."""

    arch = "bound"
    unit_norm_params = ("W_half_IHD",)
    default_decoder_lr_scale = 1.0  # not ReLUSAE's: the SAELens-parity defaults were not measured for the tied decoder
    default_encoder_init_norm = 1.0

    @classmethod
    def check_config(cls, config) -> None:
        if config.dict_size % 2:
            raise ValueError(
                f"dict_size must be even for arch 'bound' (two halves of F/2 latents), got {config.dict_size}"
            )

    def _init_parameters(self) -> None:
        n_i, d, n_f = self.n_instances, self.d_model, self.dict_size
        h = n_f // 2
        W_half = self._random_unit_rows(h, d, "decoder")
        R = torch.stack([random_orthogonal(d, generator=self._generator(i, "binding")) for i in range(n_i)])
        self._init_encoder(torch.cat([W_half, torch.bmm(W_half, R)], dim=1))
        self.W_half_IHD = nn.Parameter(W_half)
        self.R_map_IDD = nn.Parameter(R)
        self.b_dec_ID = nn.Parameter(torch.zeros(n_i, d, device=self.device_))

    @property
    def W_dec(self) -> torch.Tensor:
        """[W_half; W_half R_map], shape (I, F, D)."""
        return torch.cat([self.W_half_IHD, torch.bmm(self.W_half_IHD, self.R_map_IDD)], dim=1)

    def _decoder_backward(self, grad_W_dec: torch.Tensor) -> None:
        h = self.dict_size // 2
        g1, g2 = grad_W_dec[:, :h], grad_W_dec[:, h:]
        self.W_half_IHD.grad = g1 + torch.bmm(g2, self.R_map_IDD.detach().transpose(1, 2))
        self.R_map_IDD.grad = torch.bmm(self.W_half_IHD.detach().transpose(1, 2), g2)

    def _both_dead(self, dead_F: torch.Tensor) -> torch.Tensor:
        h = self.dict_size // 2
        return dead_F[..., :h] & dead_F[..., h:]

    def _reinit_latents(self, i: int, cols: torch.Tensor, v: torch.Tensor, enc_scale: float) -> None:
        h = self.dict_size // 2
        self.W_enc_IDF[i][:, cols] = v.t() * enc_scale
        self.b_enc_IF[i, cols] = 0.0
        dead = torch.zeros(self.dict_size, dtype=torch.bool, device=self.device_)
        dead[cols] = True
        both = self._both_dead(dead)
        first = (cols < h) & both[cols.clamp(max=h - 1)]
        if bool(first.any()):
            self.W_half_IHD[i, cols[first]] = v[first]

    def _reset_optimizer_state(self, dead: torch.Tensor) -> None:
        super()._reset_optimizer_state(dead)
        opt = self._optimizer
        state = opt.state.get(self.W_half_IHD) if opt is not None else None
        if state:
            rows = self._both_dead(dead)[..., None]  # (I, H, 1)
            for key in ("exp_avg", "exp_avg_sq", "max_exp_avg_sq"):
                if key in state:
                    state[key].masked_fill_(rows, 0.0)
