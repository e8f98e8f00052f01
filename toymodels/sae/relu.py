"""``relu``: the standard SAE (Bricken et al. 2023, "Towards Monosemanticity").

    f = ReLU((x − b_dec) W_enc + b_enc),   x̂ = f W_dec + b_dec
    L = mean_b ||x − x̂||² + λ · mean_b Σ_j f_j ||d_j||

with unit-norm decoder rows d_j kept by the constrained step (so ||d_j|| = 1 after every
step; the factor keeps the penalty honest if a row's norm drifts within a step).

:meth:`ReLUSAE.loss_and_grad_core` is hand-derived (no autograd graph). With r = x̂ − x,
g = 2r/B, n_j = ||d_j||, s_j = Σ_b f_bj:

    ∂L/∂W_dec = fᵀ g + (λ/B) s_j d_j / n_j        ∂L/∂b_dec = Σ_b g − W_enc Σ_b γ_b
    γ = (g W_decᵀ + λ n / B) ⊙ 1[f > 0]            ∂L/∂W_enc = (x − b_dec)ᵀ γ,  ∂L/∂b_enc = Σ_b γ

— four batched matmuls, one fewer than autograd (which also forms ∂L/∂(x − b_dec), a
(B, D) matmul, only to sum it over the batch).
"""
from __future__ import annotations

import torch

from .base import SAE
from .registry import register


@register
class ReLUSAE(SAE):
    """ReLU SAE with an L1 penalty weighted by decoder norms; hand-derived backward."""

    default_decoder_lr_scale = 10.0  # SAELens's angular decoder speed (its rows at norm 0.1); bench_saelens.py
    default_encoder_init_norm = 0.1  # SAELens's initial encoder scale

    arch = "relu"

    def encode(self, x: torch.Tensor, *, train: bool = False) -> torch.Tensor:
        return torch.relu(self.pre_activations(self._check_input(x)))

    def _forward_terms(self, x: torch.Tensor, train: bool):
        f = torch.relu(self.pre_activations(x))
        W_dec = self.W_dec
        x_hat = torch.baddbmm(self.b_dec_ID[:, None, :], f, W_dec)
        bsz = x.shape[1]
        mse = (x_hat - x).square().sum(dim=(1, 2)) / bsz
        sparsity = (f.sum(dim=1) * W_dec.norm(dim=-1)).sum(-1) / bsz
        return {"mse": mse, "sparsity": sparsity}, f.detach().amax(dim=1) > 0

    # ------------------------------------------------------------------ fast path
    def _decoder_backward(self, grad_W_dec: torch.Tensor) -> None:
        """Assign the gradient of the effective decoder (I, F, D) to the parameters."""
        self.W_dec_IFD.grad = grad_W_dec

    def loss_and_grad_core(self, x: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        """Loss (I,) and hand-derived gradients (see the module docstring)."""
        with torch.no_grad():
            W_enc, b_enc, b_dec = self.W_enc_IDF, self.b_enc_IF, self.b_dec_ID
            W_dec = self.W_dec.detach()
            bsz = x.shape[1]
            lam = self.sparsity_coefficient(train=True)  # (I,)
            xc = x - b_dec[:, None, :]  # (I, B, D)
            n_i, n_f = self.n_instances, self.dict_size
            f = torch.baddbmm(b_enc[:, None, :], xc, W_enc, out=self._scratch("f", (n_i, bsz, n_f), xc)).relu_()
            r = torch.baddbmm(b_dec[:, None, :], f, W_dec).sub_(x)  # x̂ − x, (I, B, D)
            norms = W_dec.norm(dim=-1)  # (I, F)
            f_sum = f.sum(dim=1)  # (I, F)
            mse = r.square().sum(dim=(1, 2)) / bsz
            sparsity = (f_sum * norms).sum(-1) / bsz
            loss = mse + lam * sparsity
            g = r.mul_(2.0 / bsz)  # ∂L/∂x̂
            lam_b = (lam / bsz)[:, None]  # (I, 1)
            grad_W_dec = torch.bmm(f.transpose(1, 2), g)
            grad_W_dec.add_((lam_b * f_sum / norms.clamp_min(1e-12))[..., None] * W_dec)
            gamma = torch.baddbmm((lam_b * norms)[:, None, :], g, W_dec.transpose(1, 2), out=self._scratch("gamma", (n_i, bsz, n_f), g))
            # 1[f > 0] applied in place, one pass and no (I, B, F) mask (f ≥ 0 after the ReLU)
            torch.ops.aten.threshold_backward.grad_input(gamma, f, 0.0, grad_input=gamma)
            grad_b_enc = gamma.sum(dim=1)
            W_enc.grad = torch.bmm(xc.transpose(1, 2), gamma)
            b_enc.grad = grad_b_enc
            b_dec.grad = g.sum(dim=1) - torch.bmm(W_enc, grad_b_enc[..., None])[..., 0]
            self._decoder_backward(grad_W_dec)
            fired = f_sum > 0  # some f_bj > 0, as f ≥ 0
        return loss, fired
