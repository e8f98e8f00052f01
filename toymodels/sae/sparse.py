"""Sparse kernels for SAEs whose codes have few active latents (topk, batchtopk).

A :class:`Pattern` is a fixed set of nnz (row, col) pairs of an (R, C) matrix — row r is a
sample (instances flattened into rows), col c a latent (instances flattened into columns),
rows sorted. Two autograd functions use it so that the decoder forward and every gradient
cost O(nnz · D) instead of O(R · C · D):

- :class:`SparseDecode`: x̂_r = Σ_{n: row_n = r} v_n W[col_n]               (embedding_bag)
    ∂/∂v_n = g_{row_n} · W[col_n]                                        (sampled matmul)
    ∂/∂W_c = Σ_{n: col_n = c} v_n g_{row_n}                              (embedding_bag by column)
- :class:`SparseLinearAt`: v_n = A_{row_n} · B_{col_n} + bias_{col_n}, the encoder
  pre-activations at the pattern (values computed densely once, to choose the pattern):
    ∂/∂A_r = Σ_{n: row_n = r} γ_n B_{col_n},  ∂/∂B_c = Σ_{n: col_n = c} γ_n A_{row_n},
    ∂/∂bias_c = Σ_{n: col_n = c} γ_n.
"""
from __future__ import annotations

import warnings

import torch
import torch.nn.functional as F


class Pattern:
    """nnz (row, col) pairs of an (n_rows, n_cols) matrix, sorted by row."""

    def __init__(self, rows: torch.Tensor, cols: torch.Tensor, n_rows: int, n_cols: int, row_offsets: torch.Tensor | None = None) -> None:
        self.rows, self.cols = rows, cols
        self.n_rows, self.n_cols = n_rows, n_cols
        if row_offsets is None:
            counts = torch.bincount(rows, minlength=n_rows)
            row_offsets = torch.cumsum(counts, 0) - counts
        self.row_offsets = row_offsets  # (R,) start of each row's run
        self._by_col: tuple[torch.Tensor, torch.Tensor, torch.Tensor] | None = None
        self._csr: dict[torch.dtype, torch.Tensor] = {}

    @property
    def nnz(self) -> int:
        return int(self.cols.numel())

    @classmethod
    def from_topk(cls, idx_IBK: torch.Tensor, n_latents: int) -> "Pattern":
        """The pattern of per-row top-k indices (I, B, K) into I·F flattened latents."""
        n_i, bsz, k = idx_IBK.shape
        dev = idx_IBK.device
        offs = (torch.arange(n_i, device=dev) * n_latents)[:, None, None]
        cols = (idx_IBK + offs).reshape(-1)
        rows = torch.arange(n_i * bsz, device=dev).repeat_interleave(k)
        return cls(rows, cols, n_i * bsz, n_i * n_latents, torch.arange(0, n_i * bsz * k, k, device=dev))

    @classmethod
    def from_mask(cls, mask_IBF: torch.Tensor) -> "Pattern":
        """The nonzero entries of a boolean (I, B, F) mask (row-major, so rows come sorted)."""
        n_i, bsz, n_f = mask_IBF.shape
        i, b, f = mask_IBF.nonzero(as_tuple=True)
        return cls(i * bsz + b, i * n_f + f, n_i * bsz, n_i * n_f)

    def by_col(self) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
        """(order, rows in column order, column offsets): the pattern sorted by column."""
        if self._by_col is None:
            # int32 keys: radix sort, far cheaper than the int64 path (and than it multithreaded)
            keys = self.cols.to(torch.int32) if self.n_cols < 2**31 else self.cols
            order = torch.argsort(keys, stable=True)
            counts = torch.bincount(self.cols, minlength=self.n_cols)
            self._by_col = (order, self.rows[order], torch.cumsum(counts, 0) - counts)
        return self._by_col

    def csr(self, dtype: torch.dtype) -> torch.Tensor:
        """A sparse CSR matrix with this pattern (zero values), for ``sampled_addmm``."""
        if dtype not in self._csr:
            dev = self.cols.device
            crow = torch.cat([self.row_offsets, torch.tensor([self.nnz], device=dev)])
            with warnings.catch_warnings():
                warnings.simplefilter("ignore")  # "sparse CSR support is in beta"
                self._csr[dtype] = torch.sparse_csr_tensor(
                    crow, self.cols, torch.zeros(self.nnz, dtype=dtype, device=dev),
                    (self.n_rows, self.n_cols), check_invariants=False,
                )
        return self._csr[dtype]

    # ------------------------------------------------------------------ kernels
    def gather_rows(self, v: torch.Tensor, W: torch.Tensor) -> torch.Tensor:
        """out_r = Σ_{n: row_n = r} v_n W[col_n]: (R, D) from W (C, D)."""
        if self.nnz == 0:
            return W.new_zeros(self.n_rows, W.shape[1])
        # detached inputs take embedding_bag's fast forward-only kernel (no autograd here)
        return F.embedding_bag(self.cols, W.detach().contiguous(), self.row_offsets, mode="sum", per_sample_weights=v.detach())

    def scatter_cols(self, v: torch.Tensor, G: torch.Tensor) -> torch.Tensor:
        """out_c = Σ_{n: col_n = c} v_n G[row_n]: (C, D) from G (R, D)."""
        if self.nnz == 0:
            return G.new_zeros(self.n_cols, G.shape[1])
        order, rows, offsets = self.by_col()
        return F.embedding_bag(rows, G.detach().contiguous(), offsets, mode="sum", per_sample_weights=v.detach()[order])

    def dot(self, G: torch.Tensor, W: torch.Tensor) -> torch.Tensor:
        """out_n = G[row_n] · W[col_n]: (nnz,) from G (R, D) and W (C, D)."""
        if self.nnz == 0:
            return G.new_zeros(0)
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            out = torch.sparse.sampled_addmm(self.csr(G.dtype), G.detach(), W.detach().t(), beta=0.0)
        return out.values()

    def sum_cols(self, v: torch.Tensor) -> torch.Tensor:
        """out_c = Σ_{n: col_n = c} v_n: (C,)."""
        return v.new_zeros(self.n_cols).index_add_(0, self.cols, v)


def _saved(ctx, g: torch.Tensor) -> tuple:
    """In a backward: (the saved tensors..., the pattern, the incoming gradient made contiguous)."""
    return (*ctx.saved_tensors, ctx.pattern, g.contiguous())


class SparseDecode(torch.autograd.Function):
    """x̂ = S W for the sparse code S (values ``v`` on ``pattern``): (R, D) from W (C, D)."""

    @staticmethod
    def forward(ctx, v: torch.Tensor, W: torch.Tensor, pattern: Pattern) -> torch.Tensor:
        ctx.pattern = pattern
        ctx.save_for_backward(v, W)
        return pattern.gather_rows(v, W)

    @staticmethod
    def backward(ctx, g: torch.Tensor):
        v, W, p, g = _saved(ctx, g)
        need_v, need_W, _ = ctx.needs_input_grad
        return (p.dot(g, W) if need_v else None), (p.scatter_cols(v, g) if need_W else None), None


class SparseLinearAt(torch.autograd.Function):
    """v_n = A[row_n] · B[col_n] + bias[col_n] at ``pattern``, given its precomputed
    ``values`` (the dense pre-activations already chose the pattern); the backward is sparse."""

    @staticmethod
    def forward(ctx, values: torch.Tensor, A: torch.Tensor, B: torch.Tensor, bias: torch.Tensor, pattern: Pattern) -> torch.Tensor:
        ctx.pattern = pattern
        ctx.save_for_backward(A, B)
        return values.clone()

    @staticmethod
    def backward(ctx, gv: torch.Tensor):
        A, B, p, gv = _saved(ctx, gv)
        _, need_A, need_B, need_bias, _ = ctx.needs_input_grad
        gA = p.gather_rows(gv, B) if need_A else None
        gB = p.scatter_cols(gv, A) if need_B else None
        return None, gA, gB, (p.sum_cols(gv) if need_bias else None), None


def sparse_decode(v: torch.Tensor, W: torch.Tensor, pattern: Pattern) -> torch.Tensor:
    """Differentiable Σ_n v_n W[col_n] per row: see :class:`SparseDecode`."""
    return SparseDecode.apply(v, W, pattern)


def sparse_linear_at(values: torch.Tensor, A: torch.Tensor, B: torch.Tensor, bias: torch.Tensor, pattern: Pattern) -> torch.Tensor:
    """Differentiable A[row]·B[col] + bias[col] at the pattern: see :class:`SparseLinearAt`."""
    return SparseLinearAt.apply(values, A, B, bias, pattern)
