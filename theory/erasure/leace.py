"""LEACE (Belrose et al. 2023, "LEACE: Perfect linear concept erasure in closed form"):

    r(x) = x − W⁺ P W (x − μ),   W = (Σ_XX^{1/2})⁺,   P = orthogonal projection onto col(W Σ_XZ),

with Z the one-hot class label. Afterwards Cov(r(X), Z) = 0, i.e. every class has the same
mean, and for any convex loss no affine predictor of Z beats the best constant one.
"""
from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import numpy as np

__all__ = ["LeaceEraser", "leace_fit", "leace_erase", "class_means", "label_cross_covariance", "data_scale"]

# ---------------------------------------------------------------------------------------------
# Input validation
# ---------------------------------------------------------------------------------------------


def _as_features(X: Any) -> np.ndarray:
    """X as a finite float64 (n, d) array, or a ValueError saying what is wrong."""
    try:
        arr = np.asarray(X)
    except Exception as e:  # ragged lists and the like
        raise ValueError(f"X must be a numeric (n, d) array; could not convert it ({e})") from e
    if arr.dtype == object or not (np.issubdtype(arr.dtype, np.number) or arr.dtype == bool):
        raise ValueError(f"X must be a numeric (n, d) array; got dtype {arr.dtype}")
    if np.issubdtype(arr.dtype, np.complexfloating):
        raise ValueError("X must be real; got a complex array")
    if arr.ndim != 2:
        raise ValueError(f"X must be 2-D with shape (n, d); got shape {arr.shape}")
    if arr.shape[0] == 0 or arr.shape[1] == 0:
        raise ValueError(f"X must have at least one row and one column; got shape {arr.shape}")
    arr = arr.astype(np.float64)
    bad = ~np.isfinite(arr)
    if bad.any():
        i, j = np.argwhere(bad)[0]
        raise ValueError(f"X must be finite; X[{i}, {j}] = {arr[i, j]} ({int(bad.sum())} non-finite entries)")
    return arr


def _as_labels(z: Any, n: int) -> np.ndarray:
    """z as an int64 (n,) array of class labels, or a ValueError saying what is wrong."""
    try:
        arr = np.asarray(z)
    except Exception as e:
        raise ValueError(f"z must be a 1-D array of integer class labels; could not convert it ({e})") from e
    if arr.ndim != 1:
        raise ValueError(f"z must be 1-D with shape (n,) = ({n},); got shape {arr.shape}")
    if arr.shape[0] != n:
        raise ValueError(f"z must have one label per row of X: expected length {n}, got {arr.shape[0]}")
    if arr.dtype == bool or np.issubdtype(arr.dtype, np.integer):
        return arr.astype(np.int64)
    if np.issubdtype(arr.dtype, np.floating):
        if not np.isfinite(arr).all():
            raise ValueError("z must hold integer class labels; it contains NaN or inf")
        if (arr != np.round(arr)).any():
            i = int(np.argmax(arr != np.round(arr)))
            raise ValueError(f"z must hold integer class labels; z[{i}] = {arr[i]} is not an integer")
        return arr.astype(np.int64)
    raise ValueError(f"z must hold integer class labels; got dtype {arr.dtype}")


def _as_weights(sample_weight: Any, n: int) -> np.ndarray:
    """Non-negative finite weights normalised to sum 1 (uniform when None)."""
    if sample_weight is None:
        return np.full(n, 1.0 / n)
    w = np.asarray(sample_weight, dtype=np.float64)
    if w.shape != (n,):
        raise ValueError(f"sample_weight must have shape ({n},); got {w.shape}")
    if not np.isfinite(w).all() or (w < 0).any():
        raise ValueError("sample_weight must be finite and non-negative")
    if w.sum() <= 0:
        raise ValueError("sample_weight must have a positive sum")
    return w / w.sum()


def _validate(X: Any, z: Any, sample_weight: Any) -> tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray]:
    """(X, z, normalised weights, classes) with at least two classes of positive weight."""
    X = _as_features(X)
    z = _as_labels(z, X.shape[0])
    w = _as_weights(sample_weight, X.shape[0])
    classes = np.unique(z[w > 0])
    if classes.size < 2:
        raise ValueError(
            f"z must contain at least two classes (with positive weight) to erase; got only {classes.tolist()}"
        )
    return X, z, w, classes


# ---------------------------------------------------------------------------------------------
# LEACE
# ---------------------------------------------------------------------------------------------


@dataclass(frozen=True)
class LeaceEraser:
    """The fitted affine map r(x) = x − (x − μ) Rᵀ Lᵀ, where L R = W⁺ P W (shapes (d, q), (q, d))."""

    mean: np.ndarray
    """μ, shape (d,): the (weighted) mean of the fitting data."""
    proj_left: np.ndarray
    """W⁺ Q, shape (d, q): q = rank of the cross-covariance Σ_XZ (at most classes − 1)."""
    proj_right: np.ndarray
    """Qᵀ W, shape (q, d), with Q an orthonormal basis of col(W Σ_XZ), so P = Q Qᵀ."""
    data_rank: int
    """Rank of Σ_XX kept by the pseudo-inverse."""

    @property
    def rank(self) -> int:
        """How many directions are erased."""
        return self.proj_left.shape[1]

    @property
    def matrix(self) -> np.ndarray:
        """W⁺ P W, shape (d, d): an oblique projection (idempotent)."""
        return self.proj_left @ self.proj_right

    def __call__(self, X: Any) -> np.ndarray:
        """Apply the map to rows of X (shape (n, d)); returns float64 (n, d)."""
        X = _as_features(X)
        if X.shape[1] != self.mean.shape[0]:
            raise ValueError(f"X must have {self.mean.shape[0]} columns (as when fitted); got {X.shape[1]}")
        return X - ((X - self.mean) @ self.proj_right.T) @ self.proj_left.T


def leace_fit(X: Any, z: Any, sample_weight: Any = None, rtol: float = 1e-12) -> LeaceEraser:
    """Fit LEACE (Belrose et al. 2023) to features X (n, d) and integer labels z (n,), no shrinkage.

    Σ_XX = Σ_i w_i (x_i − μ)(x_i − μ)ᵀ, Σ_XZ likewise with the one-hot labels; W = (Σ_XX^{1/2})⁺
    from the eigendecomposition of Σ_XX, computed as the SVD of the centred weighted data
    √w ⊙ (X − μ) = U S Vᵀ (so Σ_XX = V S² Vᵀ, W = V S⁻¹ Vᵀ, W⁺ = V S Vᵀ) because the SVD resolves
    small eigenvalues to full relative precision. Singular values ≤ ``rtol`` · max are treated as
    zero (rank-deficient covariance). The whitened cross-covariance W Σ_XZ = V Uᵀ (√w ⊙ (Z − Z̄)) has
    entries bounded by 1/2 whatever the scale of X, so its rank uses the absolute tolerance
    max(``rtol``, 16 eps cond) (cond = max S / min kept S: the rounding-noise floor there).
    Dropped directions leave at most that tolerance × max(S) of covariance with Z — about 1e-12 ×
    the data's largest std for well-conditioned data; erasing the output again is then the
    identity (to rounding) because the map is a projection.
    """
    X, z, w, classes = _validate(X, z, sample_weight)
    if not rtol > 0:
        raise ValueError(f"rtol must be positive; got {rtol}")
    mu = w @ X
    sw = np.sqrt(w)[:, None]
    Xt = sw * (X - mu)  # Σ_XX = Xtᵀ Xt
    Z = (z[:, None] == classes[None, :]).astype(np.float64)
    Zt = sw * (Z - w @ Z)  # Σ_XZ = Xtᵀ Zt
    U, s, Vt = np.linalg.svd(Xt, full_matrices=False)
    keep = s > rtol * s[0] if s.size and s[0] > 0 else np.zeros(s.shape, bool)
    V_r, s_r, U_r = Vt[keep].T, s[keep], U[:, keep]
    B = U_r.T @ Zt  # W Σ_XZ in the basis V_r, shape (r, k)
    if B.size:
        # Rounding puts noise of about eps·cond into the whitened cross-covariance; directions below
        # that floor are not erased (they would be noise, and erasing them would remove real signal).
        noise_floor = 16 * np.finfo(np.float64).eps * s_r[0] / s_r[-1]
        Qb, sb, _ = np.linalg.svd(B, full_matrices=False)
        Q = Qb[:, sb > max(rtol, noise_floor)]
    else:
        Q = np.zeros((0, 0))
    proj_left = V_r @ (s_r[:, None] * Q)  # W⁺ Q
    proj_right = (Q.T / s_r[None, :]) @ V_r.T  # Qᵀ W
    return LeaceEraser(mu, proj_left.reshape(X.shape[1], -1), proj_right.reshape(-1, X.shape[1]), int(keep.sum()))


def leace_erase(X: Any, z: Any, sample_weight: Any = None, rtol: float = 1e-12) -> np.ndarray:
    """LEACE-erased X (float64, shape (n, d)): x − W⁺ P W (x − μ), fitted on (X, z) itself.

    Afterwards every class has the same (weighted) mean: Cov(X', one-hot z) = 0 to ~1e-12 × the
    data scale. Raises ValueError for X not 2-D, z not 1-D of length n, non-integer labels,
    NaN/inf or a single class.
    """
    eraser = leace_fit(X, z, sample_weight, rtol)
    return eraser(X)


def class_means(X: Any, z: Any, sample_weight: Any = None) -> dict[int, np.ndarray]:
    """The (weighted) mean of each class with positive weight: {label: mean (d,)}."""
    X, z, w, classes = _validate(X, z, sample_weight)
    return {int(c): (w[z == c] @ X[z == c]) / w[z == c].sum() for c in classes}


def label_cross_covariance(X: Any, z: Any, sample_weight: Any = None) -> np.ndarray:
    """Σ_XZ = Σ_i w_i (x_i − μ)(onehot(z_i) − Z̄)ᵀ, shape (d, k): zero iff all class means are equal."""
    X, z, w, classes = _validate(X, z, sample_weight)
    Z = (z[:, None] == classes[None, :]).astype(np.float64)
    return (w[:, None] * (X - w @ X)).T @ (Z - w @ Z)


def data_scale(X: Any, sample_weight: Any = None) -> float:
    """The largest (weighted) standard deviation of X along any direction: √λ_max(Σ_XX)."""
    X = _as_features(X)
    w = _as_weights(sample_weight, X.shape[0])
    return float(np.linalg.norm(np.sqrt(w)[:, None] * (X - w @ X), 2))
