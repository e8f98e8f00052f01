"""Two features, one hidden dimension: the model of "Superposition as a Phase Change"
(Elhage et al. 2022), derived exactly and optimised globally.

n = 2, m = 1, W = (w_1, w_2), x'_i = ReLU(w_i (w_1 x_1 + w_2 x_2) + b_i); feature i is 0 with
probability 1 - p, else Uniform[0, 1]; importance (1, r); loss E Σ_i I_i (x_i - x'_i)² (the
sum over the two features, not ``toymodels``' mean: the antipodal pair at b = 0 costs
(1 + r) p²/6 in these units).

* :func:`two_feature_derivation` — sympy: the three configurations of the paper and their
  boundary p = min(4r/(2+5r), 4/(5+2r));
* :func:`two_feature_loss` — the exact expected loss of any (W, b), a sum of 1-D and 2-D
  integrals of piecewise polynomials, integrated exactly (Gauss–Legendre on the pieces
  between the ReLU kinks);
* :func:`optimal_two_feature` — its global minimum over (w_1, w_2, b_1, b_2), and
  :func:`two_feature_optimum_phase` — what that optimum is.
"""
from __future__ import annotations

import math
from dataclasses import dataclass
from functools import lru_cache
from typing import Any, Sequence

import numpy as np
import scipy.optimize
import sympy as sp
import torch

from toymodels._validate import check_choice, check_float

# n = 2, m = 1, W = (w_1, w_2), feature 2 has importance r. Each output feature's loss only
# depends on its own bias, so the optimal bias is found feature by feature.

_p, _r, _a, _b, _u, _v = sp.symbols("p r a b u v", nonnegative=True)


@dataclass(frozen=True)
class TwoFeatureDerivation:
    """Exact losses (sympy, in the symbols p, r, a, b) of the 2 → 1 → 2 model.

    ``ignore_2``: W = (1, 0), best bias (b_2 = p/2) — feature 2 dropped.
    ``ignore_1``: W = (0, 1), best bias — feature 1 dropped.
    ``antipodal_unit``: W = (1, -1), b = 0 — the configuration of Elhage et al. 2022.
    ``antipodal``: W = (√a, -√a), b = (b, b) with 0 ≤ b ≤ a (the ReLU still clips);
    ``antipodal_linear``: the same for b ≥ a (the output never clips: a linear map).
    ``optimal_bias_ignore``: the minimising b_2 of the ignored feature.
    ``boundary_unit``: the p where antipodal_unit = the better ignore loss, for r ≤ 1 and r ≥ 1.
    """

    ignore_2: sp.Expr
    ignore_1: sp.Expr
    antipodal_unit: sp.Expr
    antipodal: sp.Expr
    antipodal_linear: sp.Expr
    optimal_bias_ignore: sp.Expr
    boundary_unit: tuple[sp.Expr, sp.Expr]


@lru_cache(maxsize=1)
def two_feature_derivation() -> TwoFeatureDerivation:
    """Derive the two-feature losses from the model (Elhage et al. 2022, "Superposition as a
    Phase Change"), case by case over which features are active (probabilities (1-p)², p(1-p),
    p(1-p), p²) and, within a case, over where the ReLU clips.

    Dropped feature i (W_i = 0): x'_i = ReLU(b_i), loss E(x_i - b_i)², minimised at b_i = E x_i
    = p/2, giving Var x_i = p/3 - p²/4. Kept feature with a dimension of its own: x'_i = x_i.

    Antipodal W = (√a, -√a): x'_1 = ReLU(a(x_1 - x_2) + b) and, with c = b/a ∈ [0, 1],
      neither active: b²;  only x_1 = u: ∫ (u - a u - b)² du;  only x_2 = v: ∫_0^c (b - a v)² dv;
      both: ∫∫ [v < u + c] (u - a(u - v) - b)² + [v ≥ u + c] u² du dv.
    Feature 2 is the mirror image, weighted by r, so the total is (1 + r) times feature 1's.
    """
    p, r, a, b, u, v = _p, _r, _a, _b, _u, _v
    # Dropped feature: optimise its bias.
    dropped = (1 - p) * b**2 + p * sp.integrate((u - b) ** 2, (u, 0, 1))
    b_star = sp.solve(sp.diff(dropped, b), b)[0]
    var = sp.factor(dropped.subs(b, b_star))
    # Antipodal, clipping regime 0 <= b <= a.
    c = b / a
    err = (u - a * (u - v) - b) ** 2
    both = sp.integrate(sp.integrate(err, (v, 0, u + c)) + sp.integrate(u**2, (v, u + c, 1)), (u, 0, 1 - c))
    both += sp.integrate(sp.integrate(err, (v, 0, 1)), (u, 1 - c, 1))
    one = (
        (1 - p) ** 2 * b**2
        + p * (1 - p) * sp.integrate((u - a * u - b) ** 2, (u, 0, 1))
        + p * (1 - p) * sp.integrate((b - a * v) ** 2, (v, 0, c))
        + p**2 * both
    )
    anti = sp.expand((1 + r) * one)
    # Linear regime b >= a: x'_1 = a(x_1 - x_2) + b, never clipped.
    lin_one = (
        (1 - p) ** 2 * b**2
        + p * (1 - p) * sp.integrate((u - a * u - b) ** 2, (u, 0, 1))
        + p * (1 - p) * sp.integrate((b - a * v) ** 2, (v, 0, 1))
        + p**2 * sp.integrate(sp.integrate(err, (v, 0, 1)), (u, 0, 1))
    )
    anti_unit = sp.factor(anti.subs({a: 1, b: 0}))
    # Boundary: antipodal_unit equals the cheaper ignore loss (feature 2 for r <= 1).
    bnd_small = [s for s in sp.solve(sp.Eq(anti_unit, r * var), p) if s != 0]
    bnd_large = [s for s in sp.solve(sp.Eq(anti_unit, var), p) if s != 0]
    return TwoFeatureDerivation(
        ignore_2=sp.factor(r * var),
        ignore_1=var,
        antipodal_unit=anti_unit,
        antipodal=anti,
        antipodal_linear=sp.expand((1 + r) * lin_one),
        optimal_bias_ignore=b_star,
        boundary_unit=(sp.simplify(bnd_small[0]), sp.simplify(bnd_large[0])),
    )


@lru_cache(maxsize=1)
def _antipodal_functions() -> dict[str, Any]:
    """Fast numeric forms of feature 1's antipodal loss (r = 0 picks one feature's share)."""
    d = two_feature_derivation()
    clip = d.antipodal.subs(_r, 0)
    lin = d.antipodal_linear.subs(_r, 0)
    dquartic = sp.Poly(sp.expand(sp.diff(clip.subs(_a, 1), _b)), _b).all_coeffs()  # d/db at a = 1
    grad_lin = [sp.diff(lin, v) for v in (_a, _b)]
    lin_sol = sp.solve(grad_lin, [_a, _b], dict=True)[0]  # the linear regime is a quadratic
    return {
        "clip": sp.lambdify((_p, _a, _b), clip, "numpy"),
        "lin": sp.lambdify((_p, _a, _b), lin, "numpy"),
        "dquartic": sp.lambdify(_p, dquartic, "numpy"),
        "lin_opt": sp.lambdify(_p, [lin_sol[_a], lin_sol[_b]], "numpy"),
    }


_A_GRID = np.linspace(0.02, 3.0, 150)
_C_GRID = np.linspace(0.0, 1.0, 101)


@lru_cache(maxsize=8192)
def antipodal_optimum(p: float, scale: bool = True) -> tuple[float, float, float]:
    """The best antipodal configuration for density p: (per-feature loss, a, b).

    With ``scale=False`` W = (1, -1) is fixed and only the bias b is optimised (a = 1); with
    ``scale=True`` (the default) W = (√a, -√a) and b are both optimised. The loss returned is
    feature 1's E (x_1 - x'_1)²; the model's total is (1 + r) times it. The exact piecewise
    polynomials of :func:`two_feature_derivation` are minimised numerically: at a = 1 over the
    real roots of the cubic derivative in b; with the scale, on a grid of (a, b/a) polished by
    L-BFGS-B, and in the never-clipping regime b ≥ a in closed form.
    """
    p = check_float("p", p, 0.0, 1.0)
    f = _antipodal_functions()
    clip = f["clip"]
    if p == 0.0:
        return 0.0, 1.0, 0.0
    if not scale:
        roots = np.roots(np.array(f["dquartic"](p), dtype=np.float64))
        cands = [0.0, 1.0] + [float(z.real) for z in roots if abs(z.imag) < 1e-9 and 0 <= z.real <= 1]
        best = min(cands, key=lambda z: clip(p, 1.0, z))
        return float(clip(p, 1.0, best)), 1.0, best
    best = antipodal_optimum(p, scale=False)  # a = 1 is one candidate, and a start
    A, C = np.meshgrid(_A_GRID, _C_GRID, indexing="ij")
    vals = clip(p, A, A * C)
    i, j = np.unravel_index(np.argmin(vals), vals.shape)
    for start in ([A[i, j], C[i, j]], [1.0, best[2]]):
        res = scipy.optimize.minimize(
            lambda z: clip(p, z[0], z[0] * z[1]), start, method="L-BFGS-B", bounds=[(1e-6, 4.0), (0.0, 1.0)],
            options={"ftol": 1e-15, "gtol": 1e-12},
        )
        if res.fun < best[0]:
            best = (float(res.fun), float(res.x[0]), float(res.x[0] * res.x[1]))
    a_lin, b_lin = (float(x) for x in f["lin_opt"](p))
    if b_lin >= a_lin >= 0 and f["lin"](p, a_lin, b_lin) < best[0]:
        best = (float(f["lin"](p, a_lin, b_lin)), a_lin, b_lin)
    return best


ANTIPODAL_MODES = ("unit", "bias", "optimal")


def two_feature_losses(p: float, r: float, antipodal: str = "unit") -> dict[str, float]:
    """Losses E Σ_i I_i (x_i - x'_i)² (I = (1, r)) of the three configurations of the
    2-feature, 1-dimension model at density p (Elhage et al. 2022, "Superposition as a Phase
    Change"):

      ignore feature 2:  r (p/3 - p²/4)      W = (1, 0), b = (0, p/2)
      ignore feature 1:  p/3 - p²/4          W = (0, 1), b = (p/2, 0)
      antipodal:         (1 + r) p²/6        W = (1, -1), b = 0         (``antipodal="unit"``)

    The first two use the optimal bias. The antipodal formula is for b = 0; the optimal bias
    is positive and lowers it (``antipodal="bias"``, e.g. p = 4/7: 0.0480 instead of 0.0544 per
    feature), and optimising the weight scale too (``"optimal"``) lowers it further. All three
    are derived with sympy in :func:`two_feature_derivation`.
    """
    p = check_float("p", p, 0.0, 1.0)
    r = check_float("r", r, 0.0, math.inf, hi_open=True)
    check_choice("antipodal", antipodal, ANTIPODAL_MODES)
    var = p / 3 - p * p / 4
    if antipodal == "unit":
        anti = (1 + r) * p * p / 6
    else:
        anti = (1 + r) * antipodal_optimum(p, scale=antipodal == "optimal")[0]
    return {"ignore_2": r * var, "ignore_1": var, "antipodal": anti}


def two_feature_boundary(r: float, antipodal: str = "unit") -> float:
    """The density below which the antipodal pair beats the better dedicated configuration.

    ``antipodal="unit"`` (Elhage et al. 2022): superposition wins iff
    p < min(4r/(2 + 5r), 4/(5 + 2r)), which is 4/7 at r = 1. With an optimised bias (``"bias"``)
    or bias and weight scale (``"optimal"``) the boundary is found numerically (brentq); it
    returns 1.0 when the antipodal pair wins for every p ≤ 1 (as it does at r = 1 with
    ``"optimal"``: the clipped antipodal pair never loses to dropping a feature).
    """
    r = check_float("r", r, 0.0, math.inf, lo_open=True, hi_open=True)
    check_choice("antipodal", antipodal, ANTIPODAL_MODES)
    if antipodal == "unit":
        return min(4 * r / (2 + 5 * r), 4 / (5 + 2 * r))

    return _numeric_boundary(min(float(r), 1 / float(r)), antipodal)  # symmetric under r -> 1/r


@lru_cache(maxsize=256)
def _numeric_boundary(r: float, antipodal: str) -> float:
    def gap(p: float) -> float:
        loss = two_feature_losses(p, r, antipodal)
        return loss["antipodal"] - min(loss["ignore_1"], loss["ignore_2"])

    grid = np.linspace(0.01, 1.0, 34)
    vals = [gap(float(q)) for q in grid]
    for i in range(len(grid) - 1):
        if vals[i] < 0 <= vals[i + 1]:
            return float(scipy.optimize.brentq(gap, grid[i], grid[i + 1], xtol=1e-9))
    return 1.0 if vals[-1] < 0 else 0.0


# ---------------------------------------------------------------------- the exact loss of any (W, b)
_GX, _GW = np.polynomial.legendre.leggauss(3)  # exact for polynomials of degree <= 5
_GXL, _GWL = tuple(float(x) for x in _GX), tuple(float(x) for x in _GW)


def _poly_integral(c0: Any, c1: Any, c2: Any, lo: Any, hi: Any) -> Any:
    """∫_lo^hi c0 + c1 v + c2 v² dv."""
    return hi * (c0 + hi * (c1 / 2 + hi * c2 / 3)) - lo * (c0 + lo * (c1 / 2 + lo * c2 / 3))


def _positive_interval(a: float, b: float) -> tuple[float, float]:
    """The part [lo, hi] of [0, 1] where a x + b > 0 (lo = hi when empty)."""
    if a > 0:
        return min(max(-b / a, 0.0), 1.0), 1.0
    if a < 0:
        return 0.0, min(max(-b / a, 0.0), 1.0)
    return (0.0, 1.0) if b > 0 else (0.0, 0.0)


def _output_loss(p: float, al: float, be: float, b: float, target: int) -> tuple[float, float, float, float]:
    """E (x_t - ReLU(al x_1 + be x_2 + b))² for the target feature t ∈ {0, 1}, exactly, and its
    derivatives in (al, be, b).

    Cases by which features are active: none ((1-p)², error ReLU(b)²), one (p(1-p) each, a 1-D
    integral), both (p², a 2-D integral over the unit square). Each integral is ∫ t² plus
    ∫ over the region where the ReLU is open of L² - 2tL (L = al u + be v + b): for fixed u the
    region is an interval in v and the inner integral a polynomial; as a function of u it is a
    polynomial of degree <= 3 between the kinks u = -b/al and u = -(b + be)/al, so 3-point
    Gauss–Legendre on each piece is exact. The integrand is C¹ in the parameters (it is t² on
    both sides of the kink), so each derivative is ∫ over the open region of 2(L - t) ∂L/∂θ.
    """
    own = (target == 0, target == 1)  # is x_1 (x_2) the target?
    one, g_one = 0.0, [0.0, 0.0, 0.0]  # d/d(al, be, b)
    for slot, (a, is_own) in enumerate(zip((al, be), own)):  # only x_1 = x (or only x_2 = x) active
        lo, hi = _positive_interval(a, b)
        s = 1.0 if is_own else 0.0  # (x - L)² = s x² + (L² - 2 s x L);  L - s x = b + (a - s) x
        one += s / 3 + _poly_integral(b * b, 2 * a * b - 2 * s * b, a * a - 2 * s * a, lo, hi)
        g_one[slot] += 2 * _poly_integral(0.0, b, a - s, lo, hi)
        g_one[2] += 2 * _poly_integral(b, a - s, 0.0, lo, hi)
    kinks = [0.0, 1.0]
    if al != 0:
        kinks += [min(max(-b / al, 0.0), 1.0), min(max(-(b + be) / al, 0.0), 1.0)]
    kinks.sort()
    both, g_al, g_be, g_b = 1 / 3, 0.0, 0.0, 0.0  # 1/3 = ∫∫ t² over the square
    for ulo, uhi in zip(kinks[:-1], kinks[1:]):
        if uhi <= ulo:
            continue
        half, mid = (uhi - ulo) / 2, (uhi + ulo) / 2
        for gx, gw in zip(_GXL, _GWL):
            u = half * gx + mid
            c0 = al * u + b  # L = c0 + be v
            lo, hi = _positive_interval(be, c0)
            if hi <= lo:
                continue
            if target == 0:  # t = u:  L - t = (c0 - u) + be v
                e0, e1 = c0 - u, be
                g = _poly_integral(c0 * c0 - 2 * u * c0, 2 * be * (c0 - u), be * be, lo, hi)
            else:  # t = v:  L - t = c0 + (be - 1) v
                e0, e1 = c0, be - 1
                g = _poly_integral(c0 * c0, 2 * c0 * (be - 1), be * be - 2 * be, lo, hi)
            w = half * gw
            i0 = _poly_integral(e0, e1, 0.0, lo, hi)
            both += w * g
            g_al += w * 2 * u * i0
            g_be += w * 2 * _poly_integral(0.0, e0, e1, lo, hi)
            g_b += w * 2 * i0
    q = 1.0 - p
    loss = q * q * (b * b if b > 0 else 0.0) + p * q * one + p * p * both
    return (loss, p * q * g_one[0] + p * p * g_al, p * q * g_one[1] + p * p * g_be,
            q * q * 2 * max(b, 0.0) + p * q * g_one[2] + p * p * g_b)


def _loss_and_grad(p: float, r: float, z: Sequence[float]) -> tuple[float, np.ndarray]:
    """:func:`two_feature_loss` and its gradient in z = (w1, w2, b1, b2)."""
    w1, w2, b1, b2 = (float(x) for x in z)
    l1, a1, e1, d1 = _output_loss(p, w1 * w1, w1 * w2, b1, 0)  # output 1: al = w1², be = w1 w2
    l2, a2, e2, d2 = _output_loss(p, w2 * w1, w2 * w2, b2, 1)  # output 2: al = w2 w1, be = w2²
    grad = np.array([a1 * 2 * w1 + e1 * w2 + r * a2 * w2, e1 * w1 + r * (a2 * w1 + e2 * 2 * w2), d1, r * d2])
    return l1 + r * l2, grad


def two_feature_loss(p: float, r: float, w1: float, w2: float, b1: float, b2: float) -> float:
    """The exact expected loss E Σ_i I_i (x_i - x'_i)², I = (1, r), of the 2 → 1 → 2 ReLU
    model with W = (w1, w2), b = (b1, b2) at density p (Elhage et al. 2022, "Superposition as a
    Phase Change"): output i is ReLU(w_i w_1 x_1 + w_i w_2 x_2 + b_i), integrated exactly by
    :func:`_output_loss`. W = (1, -1), b = 0 gives (1 + r) p²/6.
    """
    return _loss_and_grad(float(p), float(r), (w1, w2, b1, b2))[0]


def _output_loss_grid(p: float, wi: np.ndarray, w1: np.ndarray, w2: np.ndarray, b: np.ndarray,
                      target: int) -> np.ndarray:
    """:func:`_output_loss` vectorised over arrays of parameters (numpy, the same integrals)."""
    wi, w1, w2, b = np.broadcast_arrays(*(np.asarray(z, dtype=np.float64) for z in (wi, w1, w2, b)))
    al, be = wi * w1, wi * w2

    def clip01(x: np.ndarray) -> np.ndarray:
        return np.clip(x, 0.0, 1.0)

    def interval(a: np.ndarray, c: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        with np.errstate(divide="ignore", invalid="ignore"):
            k = clip01(-c / np.where(a != 0, a, 1.0))
        lo = np.where(a > 0, k, 0.0)
        hi = np.where(a < 0, k, 1.0)
        return lo, np.where(a == 0, np.where(c > 0, 1.0, 0.0), hi)

    total_one = np.zeros_like(b)
    for a, is_own in ((al, target == 0), (be, target == 1)):
        lo, hi = interval(a, b)
        if is_own:
            total_one = total_one + 1 / 3 + _poly_integral(b * b, 2 * a * b - 2 * b, a * a - 2 * a, lo, hi)
        else:
            total_one = total_one + _poly_integral(b * b, 2 * a * b, a * a, lo, hi)
    with np.errstate(divide="ignore", invalid="ignore"):
        safe = np.where(al != 0, al, 1.0)
        k1 = np.where(al != 0, clip01(-b / safe), 0.0)
        k2 = np.where(al != 0, clip01(-(b + be) / safe), 0.0)
    brk = np.sort(np.stack([np.zeros_like(b), k1, k2, np.ones_like(b)], -1), -1)
    half = (brk[..., 1:] - brk[..., :-1]) / 2  # (..., 3 pieces)
    u = half[..., None] * _GX + ((brk[..., 1:] + brk[..., :-1]) / 2)[..., None]  # (..., 3, 3 nodes)
    A, B, C = al[..., None, None], be[..., None, None], b[..., None, None]
    c0 = A * u + C
    lo, hi = interval(np.broadcast_to(B, c0.shape), c0)
    hi = np.maximum(hi, lo)
    if target == 0:
        g = _poly_integral(c0 * c0 - 2 * u * c0, 2 * B * (c0 - u), B * B, lo, hi)
    else:
        g = _poly_integral(c0 * c0, 2 * c0 * (B - 1), B * B - 2 * B, lo, hi)
    both = 1 / 3 + (g * half[..., None] * _GW).sum((-1, -2))
    q = 1.0 - p
    return q * q * np.maximum(b, 0.0) ** 2 + p * q * total_one + p * p * both


# ---------------------------------------------------------------------- the global optimum
_W1_GRID = np.linspace(0.0, 1.6, 17)  # w -> -w leaves the loss unchanged: w_1 >= 0 suffices
_W2_GRID = np.linspace(-1.6, 1.6, 33)
_B_GRID = np.linspace(-1.0, 1.0, 21)


@lru_cache(maxsize=512)
def _profile_grid(p: float) -> tuple[np.ndarray, ...]:
    """Each output's loss minimised over its own bias on the (w_1, w_2, b) grid. The loss is a
    sum of one term per output and output i depends on b_i only, so for any r the grid optimum
    is argmin over (w_1, w_2) of m_1 + r m_2."""
    W1, W2, B = np.meshgrid(_W1_GRID, _W2_GRID, _B_GRID, indexing="ij")
    f1 = _output_loss_grid(p, W1, W1, W2, B, 0)
    f2 = _output_loss_grid(p, W2, W1, W2, B, 1)
    return f1.min(-1), _B_GRID[f1.argmin(-1)], f2.min(-1), _B_GRID[f2.argmin(-1)]


@dataclass(frozen=True)
class TwoFeatureOptimum:
    """The global minimum of :func:`two_feature_loss` at (p, r): ``loss``, ``W`` = (w_1, w_2)
    (sign convention w_1 >= 0), ``b`` = (b_1, b_2) and ``phase`` (:func:`two_feature_optimum_phase`)."""

    p: float
    r: float
    loss: float
    W: tuple[float, float]
    b: tuple[float, float]
    phase: str

    def __iter__(self):  # ``loss, W, b = optimal_two_feature(p, r)`` unpacks like a tuple
        return iter((self.loss, self.W, self.b))


TWO_FEATURE_PHASES = ("feature 2 dropped", "feature 1 dropped", "antipodal pair", "asymmetric pair",
                      "same-sign pair", "neither")
"""What the optimum of the 2 → 1 model can be: one feature dropped (W_i = 0, its output a
constant bias p/2) and the other given the dimension; both stored with opposite signs —
symmetric under swapping the features up to their importance (``antipodal pair``) or with one
feature mostly carried by its bias (``asymmetric pair``); both with the same sign; none."""

ZERO_WEIGHT = 1e-3
"""|w_i| below this is a dropped feature (the optimiser stops within ~1e-5 of w_i = 0)."""


def two_feature_optimum_phase(W: Sequence[float], b: Sequence[float], zero: float = ZERO_WEIGHT) -> str:
    """What a 2 → 1 configuration (W, b) is, by its structure (see :data:`TWO_FEATURE_PHASES`).

    |w_i| <= ``zero``: feature i is dropped. Both kept with the same sign: ``same-sign pair``.
    Opposite signs: output i is *silenced* by feature j when w_i w_j + b_i < 0 (feature j at full
    magnitude closes output i's ReLU — how the antipodal pair cancels its interference). Both
    outputs silenced by the other: ``antipodal pair`` (the branch through W = (1, -1), b = 0);
    one not silenced: ``asymmetric pair`` (the weaker feature is read out linearly around its
    bias). On the grid of optimal_two_feature the weaker weight jumps between the two branches
    (e.g. at p = 0.58 from 0.28 to 0.76 as r goes from 0.71 to 0.76), so the rule is not a
    threshold on a continuum.
    """
    w1, w2 = (float(x) for x in W)
    b1, b2 = (float(x) for x in b)
    k1, k2 = abs(w1) > zero, abs(w2) > zero
    if not (k1 or k2):
        return "neither"
    if not k2:
        return "feature 2 dropped"
    if not k1:
        return "feature 1 dropped"
    if w1 * w2 > 0:
        return "same-sign pair"
    silenced = (w1 * w2 + b1 < 0, w1 * w2 + b2 < 0)
    return "antipodal pair" if all(silenced) else "asymmetric pair"


def optimal_two_feature(p: float, r: float, *, starts: Sequence[Sequence[float]] = (),
                        n_starts: int = 6) -> TwoFeatureOptimum:
    """The minimal expected loss of the 2 → 1 ReLU-output model and its (W, b), for feature
    density p and importance r of feature 2, in the units of :func:`two_feature_losses`.

    Global search: :func:`two_feature_loss` (exact) on a grid of (w_1, w_2, b_1, b_2) (each
    bias profiled out per output, see :func:`_profile_grid`), then L-BFGS-B from the best
    ``n_starts`` grid points in distinct (w_1, w_2) basins, from the three configurations of
    the paper, from two asymmetric pairs and from any extra ``starts`` (w_1, w_2, b_1, b_2),
    with the exact gradient (:func:`_loss_and_grad`). The best minimum found is returned:
    global optimality is checked, not proven — ``tms.two_feature_boundary`` verifies that no
    trained model and no configuration of the audit has a lower loss. Returns a
    :class:`TwoFeatureOptimum` (unpacks as ``loss, W, b``).
    """
    p = check_float("p", p, 0.0, 1.0)
    r = check_float("r", r, 0.0, math.inf, hi_open=True)
    return _optimal_two_feature(float(p), float(r), tuple(tuple(float(z) for z in s) for s in starts),
                                int(n_starts))


@lru_cache(maxsize=4096)
def _optimal_two_feature(p: float, r: float, starts: tuple[tuple[float, ...], ...], n_starts: int) -> TwoFeatureOptimum:
    m1, bb1, m2, bb2 = _profile_grid(p)
    total = m1 + r * m2
    cands: list[list[float]] = []
    seen: list[tuple[float, float]] = []
    for flat in np.argsort(total, axis=None):
        i, j = np.unravel_index(flat, total.shape)
        w = (float(_W1_GRID[i]), float(_W2_GRID[j]))
        if any(abs(w[0] - s[0]) + abs(w[1] - s[1]) < 0.3 for s in seen):
            continue
        seen.append(w)
        cands.append([w[0], w[1], float(bb1[i, j]), float(bb2[i, j])])
        if len(cands) >= n_starts:
            break
    # The paper's three configurations, and the two mirror images of an asymmetric pair (at
    # r = 1 the symmetric line w_2 = -w_1, b_1 = b_2 is invariant under descent, so starts on it
    # never leave it).
    cands += [[1.0, 0.0, 0.0, p / 2], [0.0, 1.0, p / 2, 0.0], [1.0, -1.0, 0.0, 0.0],
              [1.0, -0.4, 0.2, 0.5], [0.4, -1.0, 0.5, 0.2]]
    cands += [list(s) for s in starts]

    best_loss, best_z = math.inf, None
    for z0 in cands:
        res = scipy.optimize.minimize(lambda z: _loss_and_grad(p, r, z), z0, jac=True, method="L-BFGS-B",
                                      options={"ftol": 1e-15, "gtol": 1e-11, "maxiter": 3000})
        if res.fun < best_loss:
            best_loss, best_z = float(res.fun), np.asarray(res.x, dtype=np.float64)
    w1, w2, b1, b2 = (float(x) for x in best_z)
    if w1 < 0 or (w1 == 0 and w2 < 0):
        w1, w2 = -w1, -w2
    W, b = (w1, w2), (b1, b2)
    return TwoFeatureOptimum(p, r, best_loss, W, b, two_feature_optimum_phase(W, b))


def two_feature_phase(W: torch.Tensor, b: torch.Tensor | None = None, zero: float = 0.05) -> list[str]:
    """Label trained 2 → 1 models W (I, 1, 2) with b (I, 2) by structure, as
    :func:`two_feature_optimum_phase` does for the optimum (a trained weight below ``zero`` in
    magnitude counts as dropped: training approaches w_i = 0 only slowly)."""
    w = W.detach().reshape(-1, 2).double().cpu().tolist()
    bb = [[0.0, 0.0]] * len(w) if b is None else b.detach().reshape(-1, 2).double().cpu().tolist()
    return [two_feature_optimum_phase(wi, bi, zero) for wi, bi in zip(w, bb)]
