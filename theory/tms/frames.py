"""Tight frames and the sticky feature dimensionalities (Elhage et al. 2022, "The Geometry of
Superposition").

A unit-norm tight frame: k unit vectors u_j spanning R^d with Σ_j u_j u_jᵀ = (k/d) I_d. Then
Σ_j (u_i · u_j)² = u_iᵀ (k/d) I u_i = k/d for every i, so D_i = ||W_i||² / Σ_j (Ŵ_i·W_j)² = d/k.
"""
from __future__ import annotations

import math
from typing import Callable

import numpy as np
import torch

from toymodels._validate import check_choice, check_int
from toymodels.measures.analysis import STICKY_DIMENSIONALITIES
from toymodels.measures.linalg import random_orthogonal

STICKY_VALUES: tuple[float, ...] = tuple(v for v, _ in STICKY_DIMENSIONALITIES.values())
"""The values of :data:`toymodels.analysis.STICKY_DIMENSIONALITIES` (the one source): 1, 3/4,
2/3, 1/2, 2/5, 3/8 — dedicated, tetrahedron, triangle, antipodal pair, pentagon, square
antiprism. Unrepresented features have 0."""


def _as_frame(cols: np.ndarray) -> torch.Tensor:
    return torch.as_tensor(np.asarray(cols, dtype=np.float64))


def equally_spaced(k: int) -> torch.Tensor:
    """k unit vectors at angles 2πj/k in the plane, shape (2, k) (float64).

    For k ≥ 3 this is a tight frame of R² and every D_i = 2/k; k = 2 is a digon lying in a line
    (D_i = 1/2), k = 1 a single dedicated direction (D = 1). Elhage et al. 2022, section 3.
    """
    k = check_int("k", k, 1)
    ang = 2 * np.pi * np.arange(k) / k
    return _as_frame(np.stack([np.cos(ang), np.sin(ang)]))


def digon() -> torch.Tensor:
    """The antipodal pair ±e_1 in R¹, shape (1, 2): D_i = 1/2."""
    return _as_frame([[1.0, -1.0]])


def triangle() -> torch.Tensor:
    """Three directions at 120° in R², shape (2, 3): D_i = 2/3."""
    return equally_spaced(3)


def pentagon() -> torch.Tensor:
    """Five directions at 72° in R², shape (2, 5): D_i = 2/5."""
    return equally_spaced(5)


def tetrahedron() -> torch.Tensor:
    """The regular tetrahedron's vertices (±1, ±1, ±1)/√3 with an even number of minus signs,
    shape (3, 4): a tight frame of R³, D_i = 3/4."""
    v = np.array([[1, 1, 1], [1, -1, -1], [-1, 1, -1], [-1, -1, 1]], dtype=np.float64) / math.sqrt(3)
    return _as_frame(v.T)


def square_antiprism() -> torch.Tensor:
    """Two squares at heights ±1/√3, the lower one turned by 45°, on the unit sphere; shape (3, 8).

    Σ_j u_j u_jᵀ = diag(4ρ², 4ρ², 8h²) with ρ² + h² = 1 is (8/3) I exactly when h² = 1/3, so
    this antiprism is a tight frame and D_i = 3/8. (The antiprism with all edges equal has
    h² ≈ 0.261 instead; it is not tight and its D_i ≈ 0.366.)
    """
    h, rho = 1 / math.sqrt(3), math.sqrt(2 / 3)
    top = [(rho * math.cos(a), rho * math.sin(a), h) for a in np.pi / 2 * np.arange(4)]
    bottom = [(rho * math.cos(a), rho * math.sin(a), -h) for a in np.pi / 2 * np.arange(4) + np.pi / 4]
    return _as_frame(np.array(top + bottom).T)


TIGHT_FRAMES: dict[str, Callable[[], torch.Tensor]] = {
    "dedicated": lambda: _as_frame([[1.0]]),
    "tetrahedron": tetrahedron,
    "triangle": triangle,
    "antipodal pair": digon,
    "pentagon": pentagon,
    "square antiprism": square_antiprism,
}
"""The frames behind :data:`toymodels.analysis.STICKY_DIMENSIONALITIES`, under the same names."""


def tight_frame(name: str) -> torch.Tensor:
    """The (d, k) frame called ``name`` (a key of :data:`TIGHT_FRAMES`)."""
    check_choice("name", name, tuple(TIGHT_FRAMES))
    return TIGHT_FRAMES[name]()


def block_frame(*frames: torch.Tensor) -> torch.Tensor:
    """Frames placed in mutually orthogonal subspaces: a block-diagonal (Σd, Σk) matrix.

    If each block is a tight frame spanning its d_b dimensions, Σ_i D_i = Σ_b d_b = m.
    """
    if not frames:
        raise ValueError("block_frame needs at least one frame")
    return torch.block_diag(*[f.to(torch.float64) for f in frames])


def random_rotation(d: int, rng: np.random.Generator) -> torch.Tensor:
    """A Haar-random orthogonal d x d matrix (float64), drawn with
    :func:`toymodels.linalg.random_orthogonal` from a torch generator seeded by ``rng``."""
    d = check_int("d", d, 1)
    g = torch.Generator().manual_seed(int(rng.integers(0, 2**63 - 1)))
    return random_orthogonal(d, generator=g, dtype=torch.float64)


def is_tight_frame(F: torch.Tensor, atol: float = 1e-9) -> bool:
    """Unit-norm columns and F Fᵀ = (k/d) I_d on the span (d = rank F)."""
    F = F.to(torch.float64)
    if not torch.allclose(F.norm(dim=0), torch.ones(F.shape[1], dtype=F.dtype), atol=atol):
        return False
    s = torch.linalg.svdvals(F)
    d = int((s > 1e-8 * s.max()).sum())
    return bool(torch.allclose(s[:d].square(), torch.full((d,), F.shape[1] / d, dtype=F.dtype), atol=atol))


def frame_dimensionality(F: torch.Tensor) -> float:
    """The dimensionality d/k every feature of a tight frame of k vectors spanning d dims has."""
    s = torch.linalg.svdvals(F.to(torch.float64))
    return int((s > 1e-8 * s.max()).sum()) / F.shape[1]


def circle_interference(k: int) -> float:
    """cos(2π/k): the overlap of neighbouring directions among k equally spaced in the plane
    (≤ 0 for k ≤ 4, so up to four features fit without any positive interference)."""
    k = check_int("k", k, 1)
    return math.cos(2 * math.pi / k)


def nearest_value(D: torch.Tensor, values: tuple[float, ...], tol: float) -> torch.Tensor:
    """Index into ``values`` of the value nearest each entry of D, or -1 when that value is
    farther than ``tol`` (each D counts for at most one value, even where windows overlap)."""
    v = torch.as_tensor(values, dtype=torch.float64)
    dist = (D.to(torch.float64)[..., None] - v).abs()
    d, idx = dist.min(dim=-1)
    return torch.where(d <= tol, idx, torch.full_like(idx, -1))


def sticky_null_fraction(values: tuple[float, ...], tol: float, count: tuple[float, ...] | None = None) -> float:
    """The probability that D ~ Uniform[0, 1] has, among ``values``, a nearest value within ``tol``
    that is one of ``count`` (default: any of them) — the null rate for :func:`nearest_value`.

    Exact: the union over the counted values v of [v - tol, v + tol] ∩ (v's Voronoi cell) ∩ [0, 1].
    """
    vals = sorted(set(float(v) for v in values))
    count = set(vals if count is None else (float(c) for c in count))
    total = 0.0
    for i, v in enumerate(vals):
        if v not in count:
            continue
        lo = max(0.0, v - tol, (vals[i - 1] + v) / 2 if i > 0 else -math.inf)
        hi = min(1.0, v + tol, (vals[i + 1] + v) / 2 if i + 1 < len(vals) else math.inf)
        total += max(0.0, hi - lo)
    return total

