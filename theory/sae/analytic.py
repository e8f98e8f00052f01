"""Sparse autoencoders: when a latent for a composition pays, and what the L1 penalty prefers.

Analytic claims (this part):

* A latent ReLU(e·x + b) fires on the composition f1 + f2 of two orthonormal features but on
  neither feature alone exactly when −e·(f1 + f2) < b ≤ −max(e·f1, e·f2); reading off the
  composition with e = (f1 + f2)/2 this is −1 < b ≤ −1/2 (seed 000: the question "which encoder
  biases make a composed latent pay?" on "Do sparse autoencoders find true features?").
  :func:`composed_latent_bias_interval`, :func:`latent_fires`, :func:`fires_only_on_composition`,
  :func:`composed_sae_example` (a 3-latent SAE built with such a bias).
* Clusters at y, z and y + z (y ⊥ z unit vectors): two atoms reconstruct all three with
  non-negative codes when the atoms are y and z — the composition comes "for free" — and a
  third atom along (y + z)/√2 cuts that cluster's L1 from 2 to √2 (seed 003). Under
  ||x − Dc||² + λ||c||₁ with the best codes c ≥ 0, the optimal pair of unit atoms tilts from y
  and z toward y + z as λ grows. :func:`lasso_2atoms` / :func:`nonneg_lasso_2atoms` (exact
  2-atom lasso, batched), :func:`nonneg_lasso_exact` (exact, sympy, any small dictionary),
  :func:`min_l1_exact_code`, :func:`composition_loss`, :func:`optimal_two_latent_angles`,
  :func:`symmetric_tilt_loss` / :func:`symmetric_optimal_tilt` (the 1-D reduction),
  :func:`asymmetric_branch` and :func:`composition_jump_lambda` (where the symmetric pair stops
  being optimal, λ ≈ 0.924).

Empirical claims (simulated with ``toymodels.sae``) follow at the end of the file.
"""
from __future__ import annotations

import itertools
import math
from dataclasses import dataclass
from fractions import Fraction
from functools import lru_cache
from typing import Any, Sequence

import numpy as np
import scipy.optimize
import sympy as sp

from ..registry import Context, Result, claim, holds_if

__all__ = [
    "BiasInterval",
    "composed_latent_bias_interval",
    "latent_fires",
    "fires_only_on_composition",
    "composed_sae_example",
    "Y",
    "Z",
    "COMPOSITION_CLUSTERS",
    "decoder_from_angles",
    "lasso_2atoms",
    "nonneg_lasso_2atoms",
    "nonneg_lasso_exact",
    "min_l1_exact_code",
    "composition_loss",
    "TwoLatentOptimum",
    "optimal_two_latent_angles",
    "symmetric_tilt_loss",
    "symmetric_optimal_tilt",
    "asymmetric_branch",
    "composition_jump_lambda",
    "TILT_SERIES",
    "symmetric_tilt_series",
    "CATALOGUE_ANGLES",
    "ANGLE_TOL_DEG",
]


# =============================================================================================
# ---- analytic claims
# =============================================================================================

# ---------------------------------------------------------------------------------------------
# A latent that fires on a composition only
# ---------------------------------------------------------------------------------------------


def _vec(v: Any, name: str) -> list:
    """v as a non-empty list of scalars (floats, Fractions or sympy numbers are kept as they are)."""
    if isinstance(v, np.ndarray):
        if v.ndim != 1:
            raise ValueError(f"{name} must be a 1-D vector; got shape {v.shape}")
        out = [float(t) for t in v]
    else:
        try:
            out = list(v)
        except TypeError:
            raise ValueError(f"{name} must be a 1-D vector; got {type(v).__name__}") from None
    if not out:
        raise ValueError(f"{name} must have at least one entry")
    for i, t in enumerate(out):
        if isinstance(t, (list, tuple, np.ndarray)):
            raise ValueError(f"{name} must be a 1-D vector; entry {i} is a sequence")
        if isinstance(t, float) and not math.isfinite(t):
            raise ValueError(f"{name} must be finite; {name}[{i}] = {t}")
    return out


def _dot(a: Sequence, b: Sequence):
    """Σ a_i b_i in plain Python: exact on Fractions and sympy numbers, left-to-right on floats."""
    total = 0
    for s, t in zip(a, b):
        total = total + s * t
    return total


def _add(a: Sequence, b: Sequence) -> list:
    return [s + t for s, t in zip(a, b)]


def _same_dim(**vectors: list) -> int:
    dims = {name: len(v) for name, v in vectors.items()}
    if len(set(dims.values())) != 1:
        raise ValueError("vectors must have the same dimension; got " + ", ".join(f"{k}: {d}" for k, d in dims.items()))
    return next(iter(dims.values()))


@dataclass(frozen=True)
class BiasInterval:
    """The biases b with lower < b ≤ upper (open below, closed above); empty when lower ≥ upper."""

    lower: Any
    """−e·(f1 + f2), excluded: at b = lower the latent's pre-activation on f1 + f2 is exactly 0."""
    upper: Any
    """−max(e·f1, e·f2), included: at b = upper the latent sits exactly at 0 on one feature."""

    @property
    def empty(self) -> bool:
        """No bias works: happens iff min(e·f1, e·f2) ≤ 0 (e must see both features)."""
        return not self.lower < self.upper

    @property
    def width(self):
        """upper − lower = min(e·f1, e·f2) for orthonormal features (0 when empty)."""
        return self.upper - self.lower if not self.empty else 0

    def contains(self, b) -> bool:
        return self.lower < b <= self.upper


def composed_latent_bias_interval(e: Any, f1: Any, f2: Any) -> BiasInterval:
    """The biases b for which ReLU(e·x + b) fires on f1 + f2 but on neither f1 nor f2.

    "Fires" means a positive activation, i.e. e·x + b > 0 (ReLU(0) = 0 counts as silent). So

        fires on f1 + f2        ⇔  b > −e·(f1 + f2),
        silent on f1 and on f2  ⇔  b ≤ −e·f1 and b ≤ −e·f2,

    and the latent is a pure "composition" detector iff  −e·(f1 + f2) < b ≤ −max(e·f1, e·f2).
    The derivation is linear algebra only; with f1, f2 orthonormal and e = (f1 + f2)/2 (the
    component along the composition, as in seed 000's comment on "Do sparse autoencoders find
    true features?") it reads −1 < b ≤ −1/2. The interval is non-empty iff min(e·f1, e·f2) > 0.

    Entries may be floats (numpy arrays or lists), :class:`fractions.Fraction` or sympy numbers;
    the bounds are computed in plain Python with the same dot products that
    :func:`fires_only_on_composition` evaluates, so membership and firing agree exactly,
    including at the bounds.
    """
    e, f1, f2 = _vec(e, "e"), _vec(f1, "f1"), _vec(f2, "f2")
    _same_dim(e=e, f1=f1, f2=f2)
    a1, a2 = _dot(e, f1), _dot(e, f2)
    try:
        top = a1 if a1 >= a2 else a2
    except TypeError:  # symbolic entries whose order sympy cannot decide
        top = sp.Max(a1, a2)
    return BiasInterval(lower=-_dot(e, _add(f1, f2)), upper=-top)


def latent_fires(e: Any, b: Any, x: Any) -> bool:
    """Whether ReLU(e·x + b) > 0 (plain-Python dot product, exact on Fractions)."""
    e, x = _vec(e, "e"), _vec(x, "x")
    _same_dim(e=e, x=x)
    return _dot(e, x) + b > 0


def fires_only_on_composition(e: Any, b: Any, f1: Any, f2: Any) -> bool:
    """Brute force: ReLU(e·x + b) fires at x = f1 + f2 and is silent at x = f1 and at x = f2."""
    f1, f2 = _vec(f1, "f1"), _vec(f2, "f2")
    return latent_fires(e, b, _add(f1, f2)) and not latent_fires(e, b, f1) and not latent_fires(e, b, f2)


def composed_sae_example(b: Any = Fraction(-3, 4)) -> tuple[sp.Matrix, sp.Matrix, sp.Matrix]:
    """A 3-latent ReLU SAE on R² (f1 = (1, 0), f2 = (0, 1)) with a composition latent, exactly.

    Returns (W_enc (3, 2), b_enc (3,), W_dec (2, 3)) as sympy matrices; codes are
    c = ReLU(W_enc x + b_enc), the reconstruction W_dec c. Latent 3 reads e = (f1 + f2)/2 with bias
    b ∈ (−1, −1/2] (:func:`composed_latent_bias_interval`), scaled by k = √2/(1 + b) so that its
    code on f1 + f2 is √2 with the unit decoder (f1 + f2)/√2. Latents 1 and 2 read f1 − f2 and
    f2 − f1 with bias 0, so they are silent on f1 + f2. Codes: f1 → (1, 0, 0), f2 → (0, 1, 0),
    f1 + f2 → (0, 0, √2): zero error with L1 1, 1, √2, against 1, 1, 2 for the SAE with only the
    latents f1 and f2 (the loss reduction asked about in seed 000).
    """
    b = sp.nsimplify(b)
    if not (-1 < b <= sp.Rational(-1, 2)):
        raise ValueError(f"b must be in (−1, −1/2] for latent 3 to fire on f1 + f2 only; got {b}")
    k = sp.sqrt(2) / (1 + b)
    W_enc = sp.Matrix([[1, -1], [-1, 1], [k / 2, k / 2]])
    b_enc = sp.Matrix([0, 0, k * b])
    W_dec = sp.Matrix([[1, 0, 1 / sp.sqrt(2)], [0, 1, 1 / sp.sqrt(2)]])
    return W_enc, b_enc, W_dec


# ---------------------------------------------------------------------------------------------
# Composition preference: the exact 2-atom lasso and the optimal decoder angles
# ---------------------------------------------------------------------------------------------

Y = np.array([1.0, 0.0])
Z = np.array([0.0, 1.0])
COMPOSITION_CLUSTERS = np.stack([Y, Z, Y + Z])
"""The three cluster centres, rows y, z, y + z (y = (1, 0), z = (0, 1) span the plane)."""


def decoder_from_angles(angles_deg: Any) -> np.ndarray:
    """Unit atoms in the y–z plane: angles (..., F) in degrees from y → D (..., 2, F), columns
    (cos θ_j, sin θ_j)."""
    t = np.deg2rad(np.asarray(angles_deg, dtype=np.float64))
    return np.stack([np.cos(t), np.sin(t)], axis=-2)


def _check_lam(lam: Any) -> float:
    try:
        lam = float(lam)
    except (TypeError, ValueError):
        raise ValueError(f"lam must be a real number ≥ 0; got {lam!r}") from None
    if not (math.isfinite(lam) and lam >= 0):
        raise ValueError(f"lam must be finite and ≥ 0; got {lam}")
    return lam


def lasso_2atoms(x: Any, D: Any, lam: float, nonneg: bool = True) -> tuple[np.ndarray, np.ndarray]:
    """Exact minimiser of ||x − D c||² + λ ||c||₁ over c ∈ R² (c ≥ 0 when ``nonneg``), batched.

    x has shape (..., n), D shape (..., n, 2) (two atoms as columns, any norms); the leading
    shapes broadcast. Returns (codes (..., 2), loss (...)).

    Method: support and sign enumeration. For a support S with signs s the stationarity
    condition is G_SS c_S = D_Sᵀ x − (λ/2) s_S (G = DᵀD); every candidate whose solution has the
    assumed signs is feasible, the objective is convex, and some minimiser has linearly
    independent active atoms (Tibshirani 2013, "The lasso problem and uniqueness", Lemma 2), so
    the best feasible candidate among c = 0, the 1-atom and the (non-singular) 2-atom supports is
    a global minimiser. The objective is evaluated from the explicit residual.
    """
    lam = _check_lam(lam)
    x = np.asarray(x, dtype=np.float64)
    D = np.asarray(D, dtype=np.float64)
    if D.ndim < 2 or D.shape[-1] != 2:
        raise ValueError(f"D must have shape (..., n, 2) (two atoms as columns); got {D.shape}")
    if x.ndim < 1 or x.shape[-1] != D.shape[-2]:
        raise ValueError(f"x must have shape (..., n) with n = {D.shape[-2]} (rows of D); got {x.shape}")
    if not (np.isfinite(x).all() and np.isfinite(D).all()):
        raise ValueError("x and D must be finite")
    shape = np.broadcast_shapes(x.shape[:-1], D.shape[:-2])
    x = np.broadcast_to(x, shape + x.shape[-1:])
    D = np.broadcast_to(D, shape + D.shape[-2:])
    d1, d2 = D[..., 0], D[..., 1]
    a1, a2 = (d1 * x).sum(-1), (d2 * x).sum(-1)
    n1, n2, g = (d1 * d1).sum(-1), (d2 * d2).sum(-1), (d1 * d2).sum(-1)
    zero = np.zeros(shape)
    signs = (1.0,) if nonneg else (1.0, -1.0)
    cands = [(zero, zero)]
    with np.errstate(divide="ignore", invalid="ignore", over="ignore"):  # infeasible candidates are masked
        for s in signs:
            c1 = (a1 - lam / 2 * s) / n1
            cands.append((np.where((n1 > 0) & (s * c1 > 0) & np.isfinite(c1), c1, 0.0), zero))
            c2 = (a2 - lam / 2 * s) / n2
            cands.append((zero, np.where((n2 > 0) & (s * c2 > 0) & np.isfinite(c2), c2, 0.0)))
        det = n1 * n2 - g * g
        regular = det > 1e-12 * n1 * n2
        for s1, s2 in itertools.product(signs, signs):
            b1, b2 = a1 - lam / 2 * s1, a2 - lam / 2 * s2
            c1, c2 = (n2 * b1 - g * b2) / det, (n1 * b2 - g * b1) / det
            ok = regular & (s1 * c1 > 0) & (s2 * c2 > 0) & np.isfinite(c1) & np.isfinite(c2)
            cands.append((np.where(ok, c1, 0.0), np.where(ok, c2, 0.0)))
    C = np.stack([np.stack(c, axis=-1) for c in cands])  # (K, ..., 2)
    with np.errstate(over="ignore", invalid="ignore"):
        R = x - np.einsum("...nf,k...f->k...n", D, C)
        L = (R * R).sum(-1) + lam * np.abs(C).sum(-1)  # (K, ...)
    L = np.where(np.isfinite(L), L, np.inf)  # overflowing candidates never win; c = 0 is always finite
    best = np.argmin(L, axis=0)
    codes = np.take_along_axis(C, best[None, ..., None], axis=0)[0]
    loss = np.take_along_axis(L, best[None], axis=0)[0]
    return codes, loss


def nonneg_lasso_2atoms(x: Any, D: Any, lam: float) -> tuple[np.ndarray, np.ndarray]:
    """min_{c ≥ 0} ||x − D c||² + λ Σ_j c_j for two atoms: :func:`lasso_2atoms` with ``nonneg=True``."""
    return lasso_2atoms(x, D, lam, nonneg=True)


def nonneg_lasso_exact(x: Any, D: Any, lam: Any) -> tuple[sp.Matrix, Any]:
    """Exact (sympy) min_{c ≥ 0} ||x − D c||² + λ Σ_j c_j for a small dictionary (any number of atoms).

    x: n entries, D: an n × F matrix (nested lists or a sympy Matrix) of exact numbers (integers,
    Rationals, square roots), λ ≥ 0 exact. Enumerates the 2^F supports S, solves
    G_SS c_S = D_Sᵀ x − (λ/2)·1 exactly where G_SS is invertible, keeps the solutions with c_S > 0
    and returns the best (codes (F × 1), loss). Exponential in F: meant for F ≤ 6.
    """
    D = sp.Matrix(D)
    x = sp.Matrix(x)
    lam = sp.nsimplify(lam)
    if x.shape != (D.shape[0], 1):
        raise ValueError(f"x must have {D.shape[0]} entries (rows of D); got shape {x.shape}")
    if lam < 0:
        raise ValueError(f"lam must be ≥ 0; got {lam}")
    F = D.shape[1]
    if F > 10:
        raise ValueError(f"nonneg_lasso_exact enumerates 2^F supports; F = {F} is too many")

    def objective(c: sp.Matrix):
        r = x - D * c
        return sp.nsimplify(sp.simplify((r.T * r)[0] + lam * sum(c)))

    best_c, best_l = sp.zeros(F, 1), objective(sp.zeros(F, 1))
    for k in range(1, F + 1):
        for S in itertools.combinations(range(F), k):
            DS = D[:, list(S)]
            G = DS.T * DS
            if sp.simplify(G.det()) == 0:
                continue
            cS = G.LUsolve(DS.T * x - lam / 2 * sp.ones(k, 1)).applyfunc(sp.simplify)
            if not all(v > 0 for v in cS):
                continue
            c = sp.zeros(F, 1)
            for i, j in enumerate(S):
                c[j] = cS[i]
            val = objective(c)
            if sp.simplify(val - best_l) < 0:
                best_c, best_l = c, val
    return best_c, best_l


def min_l1_exact_code(x: Any, D: Any) -> tuple[float, np.ndarray]:
    """min Σ_j c_j subject to D c = x, c ≥ 0 (a linear program, scipy ``linprog``/HiGHS).

    The smallest L1 norm of a zero-error non-negative code; for unit atoms it is ≥ ||x||₂
    (triangle inequality: ||x|| = ||Σ c_j d_j|| ≤ Σ c_j), with equality iff only atoms parallel
    to x are used. Returns (inf, nan codes) when x is outside the cone of the atoms.
    """
    D = np.asarray(D, dtype=np.float64)
    x = np.asarray(x, dtype=np.float64)
    res = scipy.optimize.linprog(np.ones(D.shape[1]), A_eq=D, b_eq=x, bounds=(0, None), method="highs")
    if res.status != 0:
        return math.inf, np.full(D.shape[1], np.nan)
    return float(res.fun), res.x


def composition_loss(
    angles_deg: Any,
    lam: float,
    *,
    weights: Sequence[float] = (1.0, 1.0, 1.0),
    nonneg: bool = True,
    reduction: str = "mean",
) -> np.ndarray:
    """The dictionary-learning loss of unit atoms at ``angles_deg`` (..., F=2) with the best codes.

        L(θ) = Σ_k w_k min_{c} (||x_k − D(θ) c||² + λ||c||₁) / Σ_k w_k     (reduction "mean")

    over the cluster centres x_k = y, z, y + z (weights w, equal by default), codes c ≥ 0 unless
    ``nonneg=False``; ``reduction="sum"`` drops the division (same minimisers). Batched over the
    leading shape of ``angles_deg``. This is the loss of an SAE with unit-norm decoder and an
    ideal encoder, on data concentrated at the three centres (seed 003's composition example).
    """
    w = np.asarray(weights, dtype=np.float64)
    if w.shape != (3,) or not np.isfinite(w).all() or (w < 0).any() or w.sum() <= 0:
        raise ValueError(f"weights must be 3 finite non-negative numbers with a positive sum; got {weights!r}")
    if reduction not in ("mean", "sum"):
        raise ValueError(f"reduction must be 'mean' or 'sum'; got {reduction!r}")
    angles = np.asarray(angles_deg, dtype=np.float64)
    if angles.ndim < 1 or angles.shape[-1] != 2:
        raise ValueError(f"angles_deg must have shape (..., 2); got {angles.shape}")
    D = decoder_from_angles(angles)
    total = sum(wk * lasso_2atoms(xk, D, lam, nonneg)[1] for wk, xk in zip(w, COMPOSITION_CLUSTERS))
    return total / w.sum() if reduction == "mean" else total


@dataclass(frozen=True)
class TwoLatentOptimum:
    """The best pair of unit atoms for :func:`composition_loss` at one λ."""

    lam: float
    angles_deg: np.ndarray
    """(2,) angles from y in degrees, in (−180, 180], sorted; NaN for an atom no cluster uses
    (the loss is flat in its angle). Of two mirror-image optima (y ↔ z) the one with an atom
    closer to y is reported; with free-sign codes an atom is a line, reported in (−90, 90]."""
    loss: float
    codes: np.ndarray
    """(3, 2): the optimal codes of y, z, y + z on the two atoms (in the order of angles_deg)."""
    used: tuple[bool, bool]
    n_basins: int
    """How many distinct grid basins were refined."""


def _wrap(a: np.ndarray) -> np.ndarray:
    """Angles to (−180, 180]."""
    return 180.0 - np.mod(180.0 - a, 360.0)


def optimal_two_latent_angles(
    lam: float,
    *,
    weights: Sequence[float] = (1.0, 1.0, 1.0),
    nonneg: bool = True,
    grid_step_deg: float = 2.0,
    n_starts: int = 6,
    tol_deg: float = 1e-7,
) -> TwoLatentOptimum:
    """Global minimiser of :func:`composition_loss` over the two atom angles (degrees).

    A full grid over [−180, 180)² at ``grid_step_deg``, then the ``n_starts`` best grid local
    minima (periodic 8-neighbourhood) are refined by zooming 21 × 21 grids (each round shrinks the
    spacing 5-fold) until the spacing is below ``tol_deg``; the best refined point wins. The inner
    problem is solved exactly by :func:`lasso_2atoms`, so the only approximation is the outer
    search (the loss is piecewise smooth in the angles). The loss is quadratic near a smooth
    minimum, so float64 pins the angles to about 1e-5° (the loss to ~1e-16).
    """
    lam = _check_lam(lam)
    if not (0 < grid_step_deg <= 30):
        raise ValueError(f"grid_step_deg must be in (0, 30]; got {grid_step_deg}")
    g = np.arange(-180.0, 180.0, grid_step_deg)
    T1, T2 = np.meshgrid(g, g, indexing="ij")
    L = composition_loss(np.stack([T1, T2], -1), lam, weights=weights, nonneg=nonneg)
    is_min = np.ones(L.shape, bool)
    for di, dj in itertools.product((-1, 0, 1), repeat=2):
        if di or dj:
            is_min &= L <= np.roll(np.roll(L, di, 0), dj, 1)
    idx = np.flatnonzero(is_min)
    idx = idx[np.argsort(L.ravel()[idx], kind="stable")][: max(1, n_starts)]
    best_p, best_l = None, math.inf
    offs = np.linspace(-1.0, 1.0, 21)
    O1, O2 = np.meshgrid(offs, offs, indexing="ij")
    for i in idx:
        p = np.array([T1.ravel()[i], T2.ravel()[i]])
        step = grid_step_deg
        cur = float(L.ravel()[i])
        while step > tol_deg:
            cand = np.stack([p[0] + step * O1, p[1] + step * O2], -1)
            Lc = composition_loss(cand, lam, weights=weights, nonneg=nonneg)
            k = np.unravel_index(np.argmin(Lc), Lc.shape)
            if Lc[k] <= cur:
                p, cur = cand[k], float(Lc[k])
            step /= 5.0
        if cur < best_l:
            best_p, best_l = p, cur
    # canonical form: codes, unused atoms, order, and the mirror image y ↔ z (θ → 90° − θ)
    reps = []
    for q in (best_p, 90.0 - best_p):
        q = _wrap(q) if nonneg else _wrap(2.0 * q) / 2.0  # free codes: an atom and its negative are one line
        codes = np.stack([lasso_2atoms(x, decoder_from_angles(q), lam, nonneg)[0] for x in COMPOSITION_CLUSTERS])
        w = np.asarray(weights, dtype=np.float64)
        used = (np.abs(codes[w > 0]) > 1e-12).any(axis=0)
        a = np.where(used, q, np.nan)
        order = np.argsort(np.where(used, np.abs(a), np.inf), kind="stable")
        reps.append((a[order], codes[:, order], tuple(bool(u) for u in used[order])))
    rep = min(reps, key=lambda r: tuple(np.nan_to_num(np.abs(r[0]), nan=np.inf)))
    return TwoLatentOptimum(lam, rep[0], best_l, rep[1], rep[2], len(idx))


def symmetric_tilt_loss(delta_deg: Any, lam: float) -> np.ndarray:
    """Closed form of :func:`composition_loss` (mean, c ≥ 0) at atoms (δ, 90° − δ):

        L(δ) = [2(1 − (cos δ − λ/2)²) + 2 − 2(1 − λ/(2s))²] / 3,   s = cos δ + sin δ,

    valid where y uses only the atom at δ (cos δ > λ/2 and the other atom's residual correlation
    sin δ (1 − 2 cos δ (cos δ − λ/2)) ≤ λ/2) and y + z uses both with the equal code
    (s − λ/2)/s² > 0 — i.e. the symmetric branch for λ below about 0.95 and small δ.
    (Each cluster's loss is ||x||² − (Dᵀx − λ/2)ᵀ G⁻¹ (Dᵀx − λ/2) on its support; for y + z,
    Dᵀx = s(1, 1) and G has eigenvalue 1 + sin 2δ = s² along (1, 1).)
    """
    lam = _check_lam(lam)
    d = np.deg2rad(np.asarray(delta_deg, dtype=np.float64))
    s = np.cos(d) + np.sin(d)
    return (2 * (1 - (np.cos(d) - lam / 2) ** 2) + 2 - 2 * (1 - lam / (2 * s)) ** 2) / 3


def symmetric_optimal_tilt(lam: float) -> float:
    """The tilt δ (degrees) minimising :func:`symmetric_tilt_loss`: the root in (0, 45°) of

        dL/dδ ∝ 2(cos δ − λ/2) sin δ − λ(1 − λ/(2s))(cos δ − sin δ)/s² = 0   (brentq).

    For λ → 0 it is δ = λ/2 − 3λ²/4 + 97λ³/48 + O(λ⁴) radians (:data:`TILT_SERIES`). Defined for
    0 ≤ λ < √2 (dL/dδ < 0 at δ = 0 and > 0 at δ = 45° exactly then); it is the global optimum
    of :func:`composition_loss` only for λ below about 0.924 (see :func:`optimal_two_latent_angles`).
    """
    lam = _check_lam(lam)
    if lam == 0:
        return 0.0
    if lam >= math.sqrt(2):
        raise ValueError(f"the symmetric branch has no interior stationary point for λ ≥ √2; got λ = {lam}")

    def dL(d: float) -> float:
        s = math.cos(d) + math.sin(d)
        c, si = math.cos(d), math.sin(d)
        return 2 * (c - lam / 2) * si - lam * (1 - lam / (2 * s)) * (c - si) / s**2

    return math.degrees(scipy.optimize.brentq(dL, 0.0, math.pi / 4, xtol=1e-15, rtol=4 * np.finfo(float).eps))


def asymmetric_branch(lam: float) -> tuple[float, float]:
    """The best pair with one atom fixed at y: (angle φ of the other atom in degrees, loss).

    Minimises :func:`composition_loss` at angles (0°, φ) over φ ∈ [0°, 90°] (a 0.05° grid, then
    bounded Brent). Past the jump (:func:`composition_jump_lambda`) the global optimum has this
    form (or its mirror image): y keeps its own atom, the other atom serves z and y + z.
    """
    lam = _check_lam(lam)
    phis = np.linspace(0.0, 90.0, 1801)
    L = composition_loss(np.stack([np.zeros_like(phis), phis], -1), lam)
    i = int(np.argmin(L))
    lo, hi = phis[max(i - 1, 0)], phis[min(i + 1, len(phis) - 1)]
    r = scipy.optimize.minimize_scalar(lambda p: float(composition_loss(np.array([0.0, p]), lam)),
                                       bounds=(lo, hi), method="bounded", options={"xatol": 1e-9})
    return (float(r.x), float(r.fun)) if r.fun <= L[i] else (float(phis[i]), float(L[i]))


def composition_jump_lambda() -> float:
    """The λ where the symmetric pair (δ, 90° − δ) stops being optimal: the root of
    L_sym(λ) − L_asym(λ) in [0.5, 1.2] (:func:`symmetric_tilt_loss` at :func:`symmetric_optimal_tilt`
    against :func:`asymmetric_branch`), about 0.9237. The tilt jumps there from about 15.4° to an
    asymmetric pair (0°, about 53.9°): a first-order transition."""

    def gap(lam: float) -> float:
        return float(symmetric_tilt_loss(symmetric_optimal_tilt(lam), lam)) - asymmetric_branch(lam)[1]

    return float(scipy.optimize.brentq(gap, 0.5, 1.2, xtol=1e-10))


TILT_SERIES = (Fraction(1, 2), Fraction(-3, 4), Fraction(97, 48))
"""Coefficients a_k of the small-λ tilt δ = Σ_k a_k λ^k (radians), k = 1, 2, 3."""


@lru_cache(maxsize=None)
def symmetric_tilt_series(order: int = 3) -> tuple[Fraction, ...]:
    """Derive :data:`TILT_SERIES` with sympy: substitute δ = Σ a_k λ^k into dL/dδ of
    :func:`symmetric_tilt_loss`, expand in λ and solve order by order (several seconds)."""
    d, lam = sp.symbols("delta lambda", positive=True)
    a = sp.symbols(f"a1:{order + 1}")
    s = sp.cos(d) + sp.sin(d)
    L = 2 * (1 - (sp.cos(d) - lam / 2) ** 2) + 2 - 2 * (1 - lam / (2 * s)) ** 2
    dL = sp.diff(L, d).subs(d, sum(ak * lam ** (k + 1) for k, ak in enumerate(a)))
    ser = sp.expand(sp.series(dL, lam, 0, order + 1).removeO())
    sol = sp.solve([ser.coeff(lam, k) for k in range(1, order + 1)], a, dict=True)
    if len(sol) != 1:
        raise RuntimeError(f"expected one series solution, got {sol}")
    return tuple(Fraction(int(sp.fraction(sol[0][ak])[0]), int(sp.fraction(sol[0][ak])[1])) for ak in a)


# ---------------------------------------------------------------------------------------------
# Helpers of the checks
# ---------------------------------------------------------------------------------------------


def _rational_orthonormal_pair(d: int, rng: np.random.Generator) -> tuple[list, list]:
    """Two exactly orthonormal rational vectors in Q^d: columns of a Cayley transform
    (I − A)(I + A)⁻¹ of a random rational skew-symmetric A (always orthogonal, I + A invertible)."""
    A = sp.zeros(d, d)
    for i in range(d):
        for j in range(i + 1, d):
            v = sp.Rational(int(rng.integers(-5, 6)), int(rng.integers(1, 4)))
            A[i, j], A[j, i] = v, -v
    Q = (sp.eye(d) - A) * (sp.eye(d) + A).inv()
    i, j = rng.choice(d, size=2, replace=False)
    col = lambda k: [Fraction(int(sp.fraction(q)[0]), int(sp.fraction(q)[1])) for q in Q[:, int(k)]]  # noqa: E731
    return col(i), col(j)


def _lasso_reference(x: np.ndarray, D: np.ndarray, lam: float) -> float:
    """min_{c ≥ 0} ||x − Dc||² + λ Σc by L-BFGS-B with bounds (independent of the enumeration)."""
    f = lambda c: (float(((x - D @ c) ** 2).sum() + lam * c.sum()), -2 * D.T @ (x - D @ c) + lam)  # noqa: E731
    best = math.inf
    for c0 in (np.zeros(D.shape[1]), np.ones(D.shape[1])):
        r = scipy.optimize.minimize(f, c0, jac=True, method="L-BFGS-B", bounds=[(0, None)] * D.shape[1],
                                    options={"ftol": 1e-15, "gtol": 1e-12, "maxiter": 1000})
        best = min(best, float(r.fun))
    return best


# ---------------------------------------------------------------------------------------------
# The claims
# ---------------------------------------------------------------------------------------------


@claim(
    "sae.composed_latent_bias",
    status="proven",
    statement="""For two feature directions f1, f2 and a ReLU latent a(x) = ReLU(e·x + b), the
    latent is positive on f1 + f2 but zero on f1 and on f2 exactly when
    −e·(f1 + f2) < b ≤ −max(e·f1, e·f2) (non-empty iff e has a positive component along both).
    For orthonormal f1, f2 and e = (f1 + f2)/2, the component along the composition, this is
    −1 < b ≤ −1/2; with such a bias a 3-latent SAE reconstructs f1, f2 and f1 + f2 exactly with
    L1 costs 1, 1, √2 instead of 1, 1, 2.""",
    source="seed 000 (comment on 'Do sparse autoencoders find \"true features\"?', 2024-02-23, asking "
    "for the encoder biases of a composed latent); elementary linear algebra",
)
def check_composed_latent_bias(ctx: Context) -> Result:
    rng = ctx.rng("sae.composed_latent_bias")
    # (a) e = (f1 + f2)/2 exactly: symbolically for any rotation angle, and on rational orthonormal pairs.
    th = sp.symbols("theta", real=True)
    f1s, f2s = [sp.cos(th), sp.sin(th)], [-sp.sin(th), sp.cos(th)]
    es = [(a + b) / 2 for a, b in zip(f1s, f2s)]
    sym = composed_latent_bias_interval(es, f1s, f2s)
    sym_bounds = (sp.simplify(sym.lower), sp.simplify(sym.upper))
    sym_ok = sym_bounds == (-1, sp.Rational(-1, 2))
    n_exact = ctx.pick(10, 60, 300)
    exact_ok, exact_mismatch = True, 0
    eps = Fraction(1, 10**9)
    for _ in range(n_exact):
        d = int(rng.integers(2, 6))
        f1, f2 = _rational_orthonormal_pair(d, rng)
        exact_ok &= _dot(f1, f1) == 1 and _dot(f2, f2) == 1 and _dot(f1, f2) == 0
        e_half = [(a + b) / 2 for a, b in zip(f1, f2)]
        iv = composed_latent_bias_interval(e_half, f1, f2)
        exact_ok &= (iv.lower, iv.upper) == (-1, Fraction(-1, 2))
        # a random rational e too: membership and brute force agree exactly, at the bounds and just off them
        e = [Fraction(int(rng.integers(-9, 10)), int(rng.integers(1, 5))) for _ in range(d)]
        for ee in (e_half, e):
            iv = composed_latent_bias_interval(ee, f1, f2)
            mid = (iv.lower + iv.upper) / 2
            for b in (iv.lower - eps, iv.lower, iv.lower + eps, mid, iv.upper - eps, iv.upper, iv.upper + eps):
                exact_mismatch += iv.contains(b) != fires_only_on_composition(ee, b, f1, f2)
            exact_mismatch += iv.empty != (min(_dot(ee, f1), _dot(ee, f2)) <= 0)
    # (b) floats: random e, f1, f2 (orthonormal or arbitrary) in random dimensions, b just inside/outside.
    n_float = ctx.pick(300, 4000, 40000)
    float_mismatch, nonempty, width_dev = 0, 0, 0.0
    for i in range(n_float):
        d = int(rng.integers(2, 13))
        if i % 2 == 0:
            Q, _ = np.linalg.qr(rng.standard_normal((d, 2)))
            f1, f2 = Q[:, 0], Q[:, 1]
        else:
            f1, f2 = rng.standard_normal(d) * rng.uniform(0.1, 3), rng.standard_normal(d) * rng.uniform(0.1, 3)
        e = rng.standard_normal(d) * 10 ** rng.uniform(-2, 2)
        if i % 3 == 0:  # bias the draw toward non-empty intervals
            e = np.abs(rng.standard_normal()) * f1 + np.abs(rng.standard_normal()) * f2 + 0.1 * e / np.linalg.norm(e)
        iv = composed_latent_bias_interval(e, f1, f2)
        a1, a2 = _dot(list(e), list(f1)), _dot(list(e), list(f2))
        tol = 1e-9 * (1 + abs(iv.lower) + abs(iv.upper))
        checks = [(iv.lower - tol, False), (iv.lower, False), (iv.upper + tol, False)]
        if not iv.empty:
            nonempty += 1
            width_dev = max(width_dev, abs(iv.width - min(a1, a2)) / (1 + abs(a1) + abs(a2)))
            if iv.upper - iv.lower > 2 * tol:
                checks += [(iv.lower + tol, True), (iv.upper, True), ((iv.lower + iv.upper) / 2, True)]
        elif min(a1, a2) > tol:  # empty although e sees both features: impossible beyond rounding
            float_mismatch += 1
        for b, want in checks:
            float_mismatch += (fires_only_on_composition(e, b, f1, f2) != want) + (iv.contains(b) != want)
    # (c) the 3-latent SAE of seed 000's question, exactly.
    sae_ok = True
    x_in = [sp.Matrix([1, 0]), sp.Matrix([0, 1]), sp.Matrix([1, 1])]
    for b in (Fraction(-3, 4), Fraction(-1, 2), Fraction(-99, 100)):
        W_enc, b_enc, W_dec = composed_sae_example(b)
        for x, want in zip(x_in, ([1, 0, 0], [0, 1, 0], [0, 0, sp.sqrt(2)])):
            c = (W_enc * x + b_enc).applyfunc(lambda v: sp.Max(v, 0))
            sae_ok &= [sp.simplify(v - w) == 0 for v, w in zip(c, want)] == [True] * 3
            sae_ok &= sp.simplify(W_dec * c - x) == sp.zeros(2, 1)
    ok = sym_ok and exact_ok and exact_mismatch == 0 and float_mismatch == 0 and width_dev <= 1e-12 and sae_ok
    return Result(
        verdict=holds_if(ok),
        predicted={"interval_e_half": "(-1, -1/2]", "membership_vs_brute_force_mismatches": 0,
                   "width": "min(e·f1, e·f2)", "composed_sae_L1": "1, 1, sqrt(2)"},
        observed={"interval_e_half_symbolic": f"({sym_bounds[0]}, {sym_bounds[1]}]",
                  "exact_rational_mismatches": exact_mismatch, "float_mismatches": float_mismatch,
                  "float_nonempty_intervals": nonempty, "max_width_deviation": width_dev,
                  "composed_sae_exact": sae_ok},
        tolerance={"exact": "Fraction / sympy equality", "float_b_offset": "1e-9·(1 + |lower| + |upper|)",
                   "width": 1e-12},
        detail=(f"Symbolic: f1 = (cos θ, sin θ), f2 = (−sin θ, cos θ), e = (f1 + f2)/2 gives ({sym_bounds[0]}, "
                f"{sym_bounds[1]}] for every θ. Exact: {n_exact} rational orthonormal pairs (Cayley transforms, "
                f"d = 2-5) with e = (f1 + f2)/2 and with a random rational e, biases at each bound and 1e-9 off "
                f"it: {exact_mismatch} disagreements between the interval and direct evaluation of the latent. "
                f"Floats: {n_float} draws in d = 2-12 (half orthonormal, half arbitrary f1, f2; e of scale "
                f"1e-2-1e2), {nonempty} non-empty: {float_mismatch} disagreements. The iff needs no "
                "orthonormality (only the values −1, −1/2 do). The SAE with encoders f1 − f2, f2 − f1 and "
                "k(e·x + b), b ∈ {−3/4, −1/2, −99/100}, k = √2/(1 + b), and unit decoders f1, f2, "
                "(f1 + f2)/√2 "
                f"codes f1, f2, f1 + f2 as (1,0,0), (0,1,0), (0,0,√2) with zero error: {sae_ok}."),
    )


CATALOGUE_ANGLES = {0.01: (0.0, 90.0), 0.3: (6.0, 84.0)}
"""The catalogue's optimal 2-latent decoder angles from y (degrees) at two λ ("about")."""
ANGLE_TOL_DEG = 2.0


@claim(
    "sae.composition_preference",
    status="proven",
    statement="""Clusters at y, z and y + z (y ⊥ z unit vectors, equal weights), unit-norm atoms,
    non-negative codes. Of the two-atom dictionaries made of cluster directions only {y, z}
    reconstructs all three clusters exactly (with {y, (y+z)/√2} the z cluster keeps squared error
    1/2), and among all zero-error two-atom dictionaries {y, z} is the unique one of least L1
    (codes 1, 1 and 2 for y + z). A third atom (y + z)/√2 cuts the y + z cluster's L1 from 2 to √2.
    Under the loss mean over the clusters of min_{c ≥ 0} ||x − Dc||² + λ||c||₁ the optimal two
    atoms sit at δ and 90° − δ from y with δ growing from 0 as λ grows (numerically about 0.3° at
    λ = 0.01 and 6.4° at λ = 0.3, the catalogue's "0/90" and "6/84").""",
    source="seed 003 (comment: an SAE that can learn two of the clusters w, x, y, z, y + z prefers y and z "
    "because y + z then comes for free); the λ angles from the catalogue, recomputed here",
)
def check_composition_preference(ctx: Context) -> Result:
    sq2 = sp.sqrt(2)
    yv, zv, sv = [1, 0], [0, 1], [1, 1]
    # ---- exact parts (sympy)
    Dyz = sp.Matrix([[1, 0], [0, 1]])
    yz = [nonneg_lasso_exact(x, Dyz, 0) for x in (yv, zv, sv)]
    yz_ok = all(l == 0 for _, l in yz) and [list(c) for c, _ in yz] == [[1, 0], [0, 1], [1, 1]]
    centroid_err = {}
    for name, D in (("{y, (y+z)/√2}", sp.Matrix([[1, 1 / sq2], [0, 1 / sq2]])),
                    ("{z, (y+z)/√2}", sp.Matrix([[0, 1 / sq2], [1, 1 / sq2]]))):
        centroid_err[name] = str(sum(nonneg_lasso_exact(x, D, 0)[1] for x in (yv, zv, sv)))
    centroid_ok = set(centroid_err.values()) == {"1/2"}
    # another zero-error pair (the literal "only zero-error dictionary" is too strong): atoms tilted outward
    Dt = sp.Matrix([[sp.Rational(12, 13), sp.Rational(-5, 13)], [sp.Rational(-5, 13), sp.Rational(12, 13)]])
    tilted = [Dt.LUsolve(sp.Matrix(x)) for x in (yv, zv, sv)]
    tilted_ok = all(v >= 0 for c in tilted for v in c)
    tilted_l1 = sum(sum(c) for c in tilted)
    # every zero-error unit pair (1° grid): total L1 = 2(L1(y) + L1(z)) ≥ 4, equality only at {0°, 90°}
    g = np.arange(-180.0, 180.0, 1.0)
    T1, T2 = np.meshgrid(g, g, indexing="ij")
    D = decoder_from_angles(np.stack([T1, T2], -1))
    det = np.linalg.det(D)
    inv = np.linalg.inv(np.where(np.abs(det)[..., None, None] > 1e-9, D, np.eye(2)))
    C = np.einsum("...fn,kn->...kf", inv, COMPOSITION_CLUSTERS)  # codes (…, 3, 2)
    zero_err = (np.abs(det) > 1e-9) & (C >= -1e-12).all(axis=(-1, -2))
    l1 = np.where(zero_err, C.sum(axis=(-1, -2)), np.inf)
    at_min = np.argwhere(l1 <= l1.min() + 1e-9)
    pair_min_ok = abs(l1.min() - 4) <= 1e-12 and {tuple(sorted(g[list(ix)] % 360)) for ix in at_min} == {(0.0, 90.0)}
    # three atoms: the composition costs √2 (the L1 lower bound ||y + z||₂) instead of 2
    D3 = sp.Matrix([[1, 0, 1 / sq2], [0, 1, 1 / sq2]])
    c3 = sp.Matrix([0, 0, sq2])
    three_ok = sp.simplify(D3 * c3 - sp.Matrix(sv)) == sp.zeros(2, 1)
    lp2 = min_l1_exact_code(sv, np.eye(2))[0]
    lp3 = min_l1_exact_code(sv, np.array(D3.evalf(), dtype=float))[0]
    lam_small = sp.Rational(1, 10)
    c3_lasso, _ = nonneg_lasso_exact(sv, D3, lam_small)
    three_ok &= list(c3_lasso) == [0, 0, sq2 - lam_small / 2]  # the lasso itself picks the composed atom
    three_ok &= abs(lp2 - 2) <= 1e-12 and abs(lp3 - math.sqrt(2)) <= 1e-12
    exact_ok = yz_ok and centroid_ok and tilted_ok and tilted_l1 > 4 and pair_min_ok and three_ok

    # ---- numeric part: the optimal two unit atoms vs λ
    step = ctx.pick(3.0, 2.0, 1.0)
    opt = {lam: optimal_two_latent_angles(lam, grid_step_deg=step) for lam in CATALOGUE_ANGLES}
    angle_err = max(float(np.max(np.abs(opt[lam].angles_deg - np.array(want))))
                    for lam, want in CATALOGUE_ANGLES.items())
    closed = {lam: symmetric_optimal_tilt(lam) for lam in CATALOGUE_ANGLES}
    closed_err = max(float(np.max(np.abs(opt[lam].angles_deg - np.array([closed[lam], 90 - closed[lam]]))))
                     for lam in CATALOGUE_ANGLES)
    closed_loss_err = max(abs(float(symmetric_tilt_loss(closed[lam], lam)) - opt[lam].loss) for lam in CATALOGUE_ANGLES)
    # the inner solver against bounded L-BFGS-B at the optimum
    inner_err = 0.0
    for lam, o in opt.items():
        Dopt = decoder_from_angles(o.angles_deg)
        for x in COMPOSITION_CLUSTERS:
            exact = float(nonneg_lasso_2atoms(x, Dopt, lam)[1])
            inner_err = max(inner_err, abs(exact - _lasso_reference(x, Dopt, lam)))
    # monotone tilt before the jump to the asymmetric phase; small-λ series
    lams = np.geomspace(1e-3, 0.9, ctx.pick(4, 10, 30))
    tilts = [symmetric_optimal_tilt(lam) for lam in lams]
    sym_global = [abs(optimal_two_latent_angles(lam, grid_step_deg=step).angles_deg[0] - t) <= 1e-3
                  for lam, t in zip(lams[:: ctx.pick(2, 2, 1)], tilts[:: ctx.pick(2, 2, 1)])]
    monotone = bool(np.all(np.diff(tilts) > 0))
    lam_s = 1e-3
    series = math.degrees(sum(float(a) * lam_s ** (k + 1) for k, a in enumerate(TILT_SERIES)))
    series_err = abs(series - symmetric_optimal_tilt(lam_s))
    series_derived = None
    if ctx.budget == "thorough":
        series_derived = symmetric_tilt_series() == TILT_SERIES
    after = optimal_two_latent_angles(1.0, grid_step_deg=step)
    lam_jump = composition_jump_lambda()
    tilt_jump, phi_jump = symmetric_optimal_tilt(lam_jump), asymmetric_branch(lam_jump)[0]
    below = optimal_two_latent_angles(lam_jump - 0.005, grid_step_deg=step).angles_deg
    above = optimal_two_latent_angles(lam_jump + 0.005, grid_step_deg=step).angles_deg
    jump_ok = (abs(below[0] - symmetric_optimal_tilt(lam_jump - 0.005)) <= 1e-3
               and abs(above[0]) <= 1e-3 and abs(above[1] - asymmetric_branch(lam_jump + 0.005)[0]) <= 1e-3)
    # variants of the loss at λ = 0.3 (which of them give the catalogue's angles)
    def quick(lam: float, **kw) -> np.ndarray:
        return optimal_two_latent_angles(lam, grid_step_deg=step, n_starts=2, **kw).angles_deg

    variants = {
        "mean over clusters, c >= 0": opt[0.3].angles_deg,
        "sum over clusters, c >= 0": _argmin_sum_reduction(0.3, step),
        "c unconstrained (atoms as lines)": quick(0.3, nonneg=False),
        "MSE averaged over the 2 coordinates (= lambda 0.6)": quick(0.6),
        "L1 averaged over the 2 latents (= lambda 0.15)": quick(0.15),
    }
    target = np.array(CATALOGUE_ANGLES[0.3])
    reproduces = [k for k, a in variants.items() if np.all(np.abs(a - target) <= ANGLE_TOL_DEG)]
    numeric_ok = (angle_err <= ANGLE_TOL_DEG and closed_err <= 1e-4 and closed_loss_err <= 1e-12 and inner_err <= 1e-9
                  and monotone and all(sym_global) and series_err <= 1e-5 and series_derived is not False and jump_ok)
    fmt = lambda a: "/".join(f"{round(float(v), 2) + 0.0:.2f}" for v in a)  # noqa: E731
    return Result(
        verdict=holds_if(exact_ok and numeric_ok),
        predicted={"angles_deg_lam_0.01": [0.0, 90.0], "angles_deg_lam_0.3": [6.0, 84.0],
                   "zero_error_centroid_pairs": "{y, z} only", "min_L1_zero_error_pair": 4,
                   "L1_of_y+z": {"2 latents": 2, "3 latents": "sqrt(2)"}},
        observed={"angles_deg_lam_0.01": opt[0.01].angles_deg, "angles_deg_lam_0.3": opt[0.3].angles_deg,
                  "closed_form_tilt_deg": closed, "loss_at_optimum": {k: o.loss for k, o in opt.items()},
                  "centroid_pair_sq_errors": centroid_err, "min_L1_zero_error_pair": float(l1.min()),
                  "tilted_zero_error_pair_L1": str(tilted_l1), "L1_of_y+z_lp": {"2 latents": lp2, "3 latents": lp3},
                  "tilt_deg_vs_lambda": dict(zip(np.round(lams, 5).tolist(), tilts)),
                  "angles_deg_lam_1.0": after.angles_deg,
                  "jump": {"lambda": lam_jump, "tilt_before_deg": tilt_jump, "angles_after_deg": [0.0, phi_jump],
                           "global_search_agrees": jump_ok},
                  "variants_lam_0.3": {k: v for k, v in variants.items()}, "variants_reproducing": reproduces},
        tolerance={"angles_deg": ANGLE_TOL_DEG, "grid_vs_closed_form_deg": 1e-4, "inner_lasso_vs_lbfgsb": 1e-9,
                   "exact_parts": "sympy equality"},
        detail=(
            "Loss: (1/3) Σ over x ∈ {y, z, y + z} of min_{c ≥ 0} ||x − Dc||² + λ(c₁ + c₂), D = two unit "
            "atoms at angles θ₁, θ₂ from y in the y–z plane; inner problem exact (support enumeration), "
            f"outer: {step}° grid then zoom refinement. Optimum at λ = 0.01: {fmt(opt[0.01].angles_deg)}°, "
            f"at λ = 0.3: {fmt(opt[0.3].angles_deg)}° (catalogue about 0/90 and 6/84: reproduced within "
            f"{angle_err:.2f}°). The 1-D closed form at (δ, 90° − δ) agrees to {closed_err:.1e}°; "
            "δ = λ/2 − 3λ²/4 + 97λ³/48 + O(λ⁴) rad for small λ. The tilt grows monotonically up to "
            f"λ = {lam_jump:.4f} ({tilt_jump:.2f}°), where the optimum jumps to an asymmetric pair — one atom "
            f"at y, the other at {phi_jump:.2f}° (or the mirror image; at λ = 1: {fmt(after.angles_deg)}°, "
            "the atom (3/5, 4/5)) — then a single atom along y + z, and no code at all for λ ≥ 2√2. "
            "Variants at λ = 0.3: the sum over clusters and unconstrained codes give the same optimum; MSE "
            "averaged over the two coordinates (or ½||r||²) doubles the effective λ "
            f"({fmt(variants['MSE averaged over the 2 coordinates (= lambda 0.6)'])}°), an L1 averaged over "
            f"the latents halves it ({fmt(variants['L1 averaged over the 2 latents (= lambda 0.15)'])}°); "
            "these two do not give 6/84. Exact parts: {y, z} codes (1,0), (0,1), (1,1) with zero error; the "
            "centroid pairs with (y+z)/√2 leave squared error 1/2; the literal 'only zero-error dictionary' "
            "is too strong — atoms (12, −5)/13 and (−5, 12)/13 also reconstruct all three with codes ≥ 0 "
            f"(total L1 {tilted_l1} > 4) — but {{y, z}} is the unique least-L1 one: a zero-error pair is a "
            "basis with y and z in its cone, so the code of y + z is the sum of theirs and the total L1 is "
            "2(L1(y) + L1(z)) ≥ 2(||y|| + ||z||) = 4, with equality iff y and z are atoms (on a 1° grid of "
            f"all zero-error unit pairs the least total L1 is {l1.min():.6g}, only at {{0°, 90°}}). With the "
            f"atom (y+z)/√2 added the composition's least zero-error L1 is {lp3:.6f} (LP; lower bound "
            f"||y + z|| = √2) instead of {lp2:g}, and the lasso at λ = 1/10 codes y + z on that atom alone."
        ),
    )


def _argmin_sum_reduction(lam: float, step: float) -> np.ndarray:
    """Optimal angles under the summed (not averaged) loss, by direct minimisation of the sum."""
    g = np.arange(-180.0, 180.0, step)
    T = np.stack(np.meshgrid(g, g, indexing="ij"), -1)
    L = composition_loss(T, lam, reduction="sum")
    i = np.unravel_index(np.argmin(L), L.shape)
    p = T[i]
    offs = np.linspace(-1.0, 1.0, 21)
    O = np.stack(np.meshgrid(offs, offs, indexing="ij"), -1)
    while step > 1e-7:
        cand = p + step * O
        Lc = composition_loss(cand, lam, reduction="sum")
        p = cand[np.unravel_index(np.argmin(Lc), Lc.shape)]
        step /= 5
    p = np.sort(_wrap(p))
    return p if abs(p[0]) <= abs(90 - p[1]) else np.sort(90 - p)
