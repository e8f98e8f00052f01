"""The linear toy model x' = WᵀW x + b: its optimum is a projection, no superposition
(Elhage et al. 2022, section 2; seed 002)."""
from __future__ import annotations

from typing import Any

import numpy as np

from toymodels._validate import check_float, check_int


def uniform_feature_variance(p: float) -> float:
    """Var x_i = p/3 - p²/4 for x_i = 0 w.p. 1 - p, else Uniform[0, 1]."""
    p = check_float("p", p, 0.0, 1.0)
    return p / 3 - p * p / 4


def linear_optimum(importance: Any, covariance: Any, m: int) -> tuple[np.ndarray, float]:
    """The best x' = A x + b with rank A ≤ m under the loss E Σ_i I_i (x_i - x'_i)².

    The bias absorbs the mean, leaving tr(D (1 - A) Σ (1 - A)ᵀ) with D = diag(I) and Σ the
    covariance. With M = D^½ Σ D^½ = U Λ Uᵀ (eigenvalues descending) the minimiser is
    A* = D^-½ U_m U_mᵀ D^½ and the loss is Σ_{j > m} λ_j (weighted Eckart–Young). For independent
    features Σ is diagonal, so A* is the coordinate projection onto the m largest I_i Var x_i —
    for equal sparsity, the m most important features — a symmetric projection WᵀW with W the
    rows e_i: no superposition (seed 002; Elhage et al. 2022, section 2).

    ``covariance`` is a vector of variances or a full (n, n) matrix. Returns (A*, loss).
    """
    imp = np.asarray(importance, dtype=np.float64)
    cov = np.asarray(covariance, dtype=np.float64)
    if cov.ndim == 1:
        cov = np.diag(cov)
    n = imp.shape[0]
    if imp.ndim != 1 or cov.shape != (n, n) or (imp <= 0).any():
        raise ValueError("importance must be a positive (n,) vector and covariance (n,) or (n, n)")
    m = check_int("m", m, 0, n)
    s = np.sqrt(imp)
    lam, U = np.linalg.eigh(s[:, None] * cov * s[None, :])
    order = np.argsort(lam)[::-1]
    lam, U = lam[order], U[:, order]
    P = U[:, :m] @ U[:, :m].T
    return P / s[:, None] * s[None, :], float(lam[m:].sum())

