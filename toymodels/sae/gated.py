"""``gated`` (Rajamanoharan et al. 2024, "Improving Dictionary Learning with Gated Sparse
Autoencoders") and ``rescaled``, the same loss without the Heaviside gate (seed 000).

Gated, with h = (x − b_dec) W_enc (``W_enc_IDF`` is the paper's W_gate):

    π_gate = h + b_gate,   π_mag = exp(r_mag) ⊙ h + b_mag
    f = 1[π_gate > 0] ⊙ ReLU(π_mag),   x̂ = f W_dec + b_dec
    L = ||x − x̂||² + λ ||ReLU(π_gate)||₁ + ||x − (sg(W_dec) ReLU(π_gate) + sg(b_dec))||²

(each term a mean over the batch; sg = stop-gradient, so the decoder gets no gradient from
the auxiliary term, while W_enc, b_gate and — through the encoder input — b_dec do).

Rescaled (jacobcd52's question under the Gated SAE post: what does the gate add?):

    f = exp(r_mag) ⊙ ReLU(π_gate)

with the same three-term loss: the magnitude path is a learned per-latent rescale of the
gate path's ReLU code, so it can undo shrinkage, but a latent's code grows continuously
from 0 as π_gate crosses 0 — there is no jump. It has no b_mag.
"""
from __future__ import annotations

import torch
from torch import nn

from .base import SAE
from .registry import register


@register
class GatedSAE(SAE):
    """Gated SAE: a Heaviside gate decides which latents fire, a rescaled path how much."""

    arch = "gated"
    gate = True

    def _init_parameters(self) -> None:
        self._init_standard()  # W_enc_IDF (= W_gate), b_enc_IF (= b_gate), W_dec_IFD, b_dec_ID
        n_i, n_f = self.n_instances, self.dict_size
        self.r_mag_IF = nn.Parameter(torch.zeros(n_i, n_f, device=self.device_))
        if self.gate:
            self.b_mag_IF = nn.Parameter(torch.zeros(n_i, n_f, device=self.device_))

    def _paths(self, x: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        """(f, ReLU(π_gate)), both (I, B, F)."""
        h = torch.bmm((x - self.b_dec_ID[:, None, :]).expand(self.n_instances, -1, -1), self.W_enc_IDF)
        pi_gate = h + self.b_enc_IF[:, None, :]
        gate_act = torch.relu(pi_gate)
        scale = torch.exp(self.r_mag_IF)[:, None, :]
        if self.gate:
            pi_mag = scale * h + self.b_mag_IF[:, None, :]
            f = (pi_gate > 0).to(h.dtype) * torch.relu(pi_mag)
        else:
            f = scale * gate_act
        return f, gate_act

    def encode(self, x: torch.Tensor, *, train: bool = False) -> torch.Tensor:
        return self._paths(self._check_input(x))[0]

    def _forward_terms(self, x: torch.Tensor, train: bool):
        f, gate_act = self._paths(x)
        bsz = x.shape[1]
        x_hat = self.decode(f)
        mse = (x - x_hat).square().sum(dim=(1, 2)) / bsz
        sparsity = gate_act.sum(dim=(1, 2)) / bsz
        x_aux = torch.baddbmm(self.b_dec_ID.detach()[:, None, :], gate_act, self.W_dec.detach())
        aux = (x - x_aux).square().sum(dim=(1, 2)) / bsz
        return {"mse": mse, "sparsity": sparsity, "aux": aux}, (f.detach() > 0).any(dim=1)


@register
class RescaledSAE(GatedSAE):
    """The Gated SAE's loss with the gate removed: f = exp(r_mag) ⊙ ReLU(π_gate)."""

    arch = "rescaled"
    gate = False
