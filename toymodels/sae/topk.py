"""``topk`` (Gao et al. 2024, "Scaling and evaluating sparse autoencoders"), and the
machinery it shares with ``batchtopk`` (:mod:`.batchtopk`): :class:`SparseCodeSAE`.

TopK keeps the k largest pre-activations of each sample:

    f = ReLU(TopK_k((x − b_dec) W_enc + b_enc)),   x̂ = f W_dec + b_dec,   L = mean_b ||x − x̂||²

with k in [1, dict_size − 1] (k >= dict_size would keep every latent: nothing sparse).

Both add the aux-k loss for dead latents (Gao et al. 2024, appendix A.2): with e = x − x̂
(no gradient), ê = W_decᵀ of the ``aux_k`` largest pre-activations among latents that have
not fired for ``dead_window`` steps, L += α · mean_b ||e − ê||² — for the instances that have
a dead latent (an instance without one adds nothing, whatever the other instances hold).

Speed: the encoder's dense matmul picks the active set; everything after it — the values at
the pattern, the decoder forward, the decoder and encoder gradients — runs on the nnz
active entries only (:mod:`toymodels.sae.sparse`), O(B·k·D) instead of O(B·F·D).
Training (:meth:`SparseCodeSAE.loss_and_grad_core`) derives these gradients by hand, without an
autograd graph; :meth:`loss_terms` gets the same numbers through the sparse autograd
functions (both are checked against a dense autograd reference in the tests).
"""
from __future__ import annotations

import torch

from .base import SAE
from .registry import register
from .sparse import Pattern, sparse_decode, sparse_linear_at


class SparseCodeSAE(SAE):
    """Shared machinery of the k-sparse SAEs: the sparse forward and the aux-k loss."""

    default_decoder_lr_scale = 10.0  # SAELens's angular decoder speed (its rows at norm 0.1); bench_saelens.py
    default_encoder_init_norm = 0.1  # SAELens's initial encoder scale

    uses_k = True

    def _ks(self) -> list[int]:
        return self.config.per_instance("k")

    def _encoder_rows(self) -> torch.Tensor:
        """W_enc as (I·F, D) rows, differentiable (a transposed copy)."""
        return self.W_enc_IDF.transpose(1, 2).contiguous().view(-1, self.d_model)

    def _select(self, pre: torch.Tensor, train: bool) -> tuple[Pattern, torch.Tensor, torch.Tensor | None]:  # pragma: no cover
        """(pattern, pre-activation values at the pattern (nnz,), optional 0/1 weights (nnz,))."""
        raise NotImplementedError

    def _sparse_reconstruct(self, x: torch.Tensor, train: bool) -> dict[str, torch.Tensor]:
        n_i, bsz, d, n_f = self.n_instances, x.shape[1], self.d_model, self.dict_size
        xc = (x - self.b_dec_ID[:, None, :]).expand(n_i, bsz, d)
        with torch.no_grad():  # dense pre-activations, only to choose the active set
            pre = self._scratch("pre", (n_i, bsz, n_f), xc)
            torch.baddbmm(self.b_enc_IF[:, None, :], xc, self.W_enc_IDF, out=pre)
        pattern, vals0, weight = self._select(pre, train)
        A, Bm = xc.reshape(n_i * bsz, d), self._encoder_rows()
        v = torch.relu(sparse_linear_at(vals0, A, Bm, self.b_enc_IF.reshape(-1), pattern))
        if weight is not None:
            v = v * weight
        x_hat = sparse_decode(v, self.W_dec.reshape(n_i * n_f, d), pattern).view(n_i, bsz, d) + self.b_dec_ID[:, None, :]
        with torch.no_grad():
            fired = pattern.sum_cols((v.detach() > 0).to(v.dtype)).view(n_i, n_f) > 0
        return {"x_hat": x_hat, "v": v, "pattern": pattern, "pre": pre, "A": A, "Bm": Bm, "fired": fired}

    def _aux_enabled(self) -> bool:
        return self.config.effective_aux_k > 0 and self.config.aux_coefficient > 0

    @torch.no_grad()
    def _aux_select(self, pre: torch.Tensor, dead: torch.Tensor) -> tuple[Pattern, torch.Tensor, torch.Tensor]:
        """The top ``aux_k`` pre-activations among dead latents of each sample: (pattern,
        values (nnz,), 0/1 validity (nnz,) — 0 where an instance has fewer dead latents)."""
        cols = dead.any(dim=0).nonzero().flatten()  # dead in some instance, (U,)
        sub = pre[:, :, cols].masked_fill(~dead[:, cols][:, None, :], float("-inf"))
        ka = min(self.config.effective_aux_k, int(dead.sum(dim=1).max()))
        vals0, j = sub.topk(ka, dim=-1)
        valid = torch.isfinite(vals0)
        vals0 = torch.where(valid, vals0, torch.zeros_like(vals0))
        return Pattern.from_topk(cols[j], self.dict_size), vals0.reshape(-1), valid.reshape(-1).to(pre.dtype)

    def _aux_loss(self, x: torch.Tensor, out: dict[str, torch.Tensor]) -> torch.Tensor | None:
        """α · mean_b ||e − ê||², ê decoded from the top ``aux_k`` dead latents (None when
        the aux-k loss is off or no latent is dead)."""
        if not self._aux_enabled():
            return None
        dead = self.dead_latents()
        if not bool(dead.any()):
            return None
        n_i, bsz, d, n_f = self.n_instances, x.shape[1], self.d_model, self.dict_size
        pattern, vals0, valid = self._aux_select(out["pre"], dead)
        v = torch.relu(sparse_linear_at(vals0, out["A"], out["Bm"], self.b_enc_IF.reshape(-1), pattern)) * valid
        e_hat = sparse_decode(v, self.W_dec.reshape(n_i * n_f, d), pattern).view(n_i, bsz, d)
        e = (x - out["x_hat"]).detach()
        has_dead = dead.any(dim=1).to(e.dtype)  # (I,): no dead latent, no aux term (not α·mse)
        return self.config.aux_coefficient * has_dead * (e - e_hat).square().sum(dim=(1, 2)) / bsz

    def _forward_terms(self, x: torch.Tensor, train: bool):
        out = self._sparse_reconstruct(x, train)
        bsz = x.shape[1]
        mse = (out["x_hat"] - x).square().sum(dim=(1, 2)) / bsz
        terms = {"mse": mse, "sparsity": torch.zeros_like(mse)}
        if train:
            aux = self._aux_loss(x, out)
            if aux is not None:
                terms["aux"] = aux
        return terms, out["fired"]

    def _decoder_backward(self, grad_W_dec: torch.Tensor) -> None:
        self.W_dec_IFD.grad = grad_W_dec

    def loss_and_grad_core(self, x: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        """Loss (I,) and hand-derived sparse gradients, no autograd graph.

        With v = ReLU(π) at the pattern, r = x̂ − x and g = 2r/B: ∂L/∂v_n = g_{row_n}·W_dec[col_n],
        γ_n = ∂L/∂v_n · 1[v_n > 0]; ∂L/∂W_dec[c] = Σ_{col_n = c} v_n g_{row_n};
        ∂L/∂W_enc[:, c] = Σ_{col_n = c} γ_n (x − b_dec)_{row_n}; ∂L/∂b_enc[c] = Σ_{col_n = c} γ_n;
        ∂L/∂b_dec = Σ_b g − W_enc ∂L/∂b_enc. The aux-k term adds the same sums on its own
        pattern, with g_aux = 2α(ê − e)/B. Equal to autograd through :meth:`loss_terms`.
        """
        n_i, bsz, d, n_f = self.n_instances, x.shape[1], self.d_model, self.dict_size
        with torch.no_grad():
            W_enc, b_enc, b_dec = self.W_enc_IDF, self.b_enc_IF, self.b_dec_ID
            W_dec = self.W_dec.detach()
            Wd = W_dec.reshape(n_i * n_f, d)
            xc = x - b_dec[:, None, :]  # (I, B, D)
            pre = torch.baddbmm(b_enc[:, None, :], xc, W_enc, out=self._scratch("pre", (n_i, bsz, n_f), xc))
            pattern, vals0, weight = self._select(pre, True)
            v = vals0.clamp_min(0)
            if weight is not None:
                v.mul_(weight)
            r = pattern.gather_rows(v, Wd).view(n_i, bsz, d).add_(b_dec[:, None, :]).sub_(x)  # x̂ − x
            loss = r.square().sum(dim=(1, 2)) / bsz
            grads = []  # (pattern, values, ∂L/∂ê) per decoded term
            dead = self.dead_latents() if self._aux_enabled() else None
            if dead is not None and bool(dead.any()):
                p_aux, vals_aux, valid = self._aux_select(pre, dead)
                v_aux = vals_aux.clamp_min(0).mul_(valid)
                diff = p_aux.gather_rows(v_aux, Wd).view(n_i, bsz, d).add_(r)  # ê − e, with e = x − x̂ = −r
                alpha = self.config.aux_coefficient
                has_dead = dead.any(dim=1).to(diff.dtype)[:, None, None]  # no dead latent: no aux term
                diff.mul_(has_dead)
                loss = loss + alpha * diff.square().sum(dim=(1, 2)) / bsz
                grads.append((p_aux, v_aux, diff.mul_(2 * alpha / bsz)))
            grads.insert(0, (pattern, v, r.mul_(2.0 / bsz)))
            xc2 = xc.reshape(n_i * bsz, d)
            g_W_dec = g_W_enc = g_b_enc = None
            for pat, val, g in grads:
                g2 = g.view(n_i * bsz, d)
                gamma = pat.dot(g2, Wd).mul_(val > 0)  # ∂L/∂π at the pattern (ReLU')
                parts = (pat.scatter_cols(val, g2), pat.scatter_cols(gamma, xc2), pat.sum_cols(gamma))
                if g_W_dec is None:
                    g_W_dec, g_W_enc, g_b_enc = parts
                else:
                    g_W_dec.add_(parts[0]), g_W_enc.add_(parts[1]), g_b_enc.add_(parts[2])
            g_b_enc = g_b_enc.view(n_i, n_f)
            W_enc.grad = g_W_enc.view(n_i, n_f, d).transpose(1, 2).contiguous()
            b_enc.grad = g_b_enc
            b_dec.grad = grads[0][2].sum(dim=1) - torch.bmm(W_enc, g_b_enc[..., None])[..., 0]
            self._decoder_backward(g_W_dec.view(n_i, n_f, d))
            fired = pattern.sum_cols((v > 0).to(v.dtype)).view(n_i, n_f) > 0
        return loss, fired

    def _codes(self, x: torch.Tensor, train: bool) -> tuple[Pattern, torch.Tensor, torch.Tensor]:
        """(pattern, its code values v (nnz,), the dense codes f (I, B, F)) of a checked batch."""
        with torch.no_grad():
            pre = self.pre_activations(x)
            pattern, vals0, weight = self._select(pre, train)
        v = vals0.relu() if weight is None else vals0.relu() * weight
        n_i, bsz, n_f = self.n_instances, x.shape[1], self.dict_size
        f = torch.zeros(n_i * bsz * n_f, dtype=pre.dtype, device=pre.device)
        inst = pattern.cols // n_f
        f[pattern.rows * n_f + (pattern.cols - inst * n_f)] = v
        return pattern, v, f.view(n_i, bsz, n_f)

    def encode(self, x: torch.Tensor, *, train: bool = False) -> torch.Tensor:
        return self._codes(self._check_input(x), train)[2]

    def encode_decode(self, x: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        """(codes f, reconstruction x̂) at inference, x̂ decoded from the nnz active latents
        only (O(B·k·D), not the dense (B, F) × (F, D) product of :meth:`decode`)."""
        x = self._check_input(x)
        pattern, v, f = self._codes(x, False)
        n_i, bsz, d, n_f = self.n_instances, x.shape[1], self.d_model, self.dict_size
        with torch.no_grad():
            Wd = self.W_dec.detach().reshape(n_i * n_f, d)
            x_hat = pattern.gather_rows(v.detach(), Wd).view(n_i, bsz, d).add_(self.b_dec_ID[:, None, :])
        return f, x_hat


@register
class TopKSAE(SparseCodeSAE):
    """TopK SAE: exactly k active latents per sample (fewer only if fewer are positive)."""

    arch = "topk"

    def _select(self, pre: torch.Tensor, train: bool):
        ks = self._ks()
        kmax = max(ks)
        vals0, idx = pre.topk(kmax, dim=-1, sorted=len(set(ks)) > 1)
        weight = None
        if len(set(ks)) > 1:  # a k sweep: instance i keeps its first k_i of the sorted kmax
            rank = torch.arange(kmax, device=pre.device)
            keep = rank[None, :] < torch.tensor(ks, device=pre.device)[:, None]  # (I, K)
            weight = keep[:, None, :].expand_as(vals0).reshape(-1).to(pre.dtype)
        return Pattern.from_topk(idx, self.dict_size), vals0.reshape(-1), weight
