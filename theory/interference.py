"""Interference between random directions: how far apart can m unit vectors in R^d be?

Background: a comment on "Some costs of superposition" (seed 000) points out that the
*typical* inner product of two independent random unit vectors in R^d is d^-1/2, not the
Johnson–Lindenstrauss figure sqrt(8 ln m / d), which bounds the *worst* pair. This module
computes both, exactly where possible:

* samplers of uniform unit directions on the device (:func:`random_unit_vectors`);
* the exact law of t = <u, v> — (1 + t)/2 ~ Beta((d-1)/2, (d-1)/2) — its density, cdf and
  two-sided tail via scipy, and its moments as exact sympy expressions;
* the noise k/d that k active features put on another one;
* the median of the largest |cos| among m random vectors (an extreme-value prediction from the
  exact tail) and its asymptotic form sqrt(4 ln m / d);
* the Welch bound, the smallest worst-case coherence any m unit vectors in R^d can have, with
  the simplex frames that attain it and an optimiser that searches for low-coherence frames.

Tensors follow the shape letters of STYLE: ``(..., m, d)`` stacks of m vectors in R^d.
"""
from __future__ import annotations

import math
from typing import Any

import numpy as np
import scipy.integrate
import scipy.optimize
import scipy.special
import scipy.stats
import sympy as sp
import torch

from toymodels._validate import check_choice
from toymodels._validate import check_int as _check_int
from toymodels.device import derive_seed, make_generator, resolve_device

from .registry import Context, Result, claim, holds_if, within

__all__ = [
    "random_unit_vectors",
    "sample_inner_products",
    "inner_product_pdf",
    "inner_product_cdf",
    "inner_product_tail",
    "inner_product_moment",
    "inner_product_moment_closed_form",
    "k_active_noise_variance",
    "k_active_noise_fourth_moment",
    "sample_k_active_noise",
    "rms_interference",
    "jl_typical_noise",
    "jl_overstatement",
    "jl_capacity",
    "rms_capacity",
    "pairwise_cosines",
    "max_coherence",
    "sample_max_coherence",
    "max_coherence_median",
    "max_coherence_asymptotic",
    "welch_bound",
    "frame_potential",
    "frame_potential_bound",
    "simplex_etf",
    "optimise_coherence",
]

# ----------------------------------------------------------------------------- validation

_int = _check_int  # numpy integers count as integers (bools and NaN do not)


def _dim(d: Any) -> int:
    """A sphere dimension d >= 2 (S^{d-1} with d = 1 is two points: the Beta law degenerates)."""
    return _int("d", d, 2)


def _finite_array(name: str, x: Any) -> np.ndarray:
    try:
        a = np.asarray(x, dtype=np.float64)
    except (TypeError, ValueError):
        raise ValueError(f"{name} must be a real number or an array of them, got {x!r}") from None
    if np.isnan(a).any():
        raise ValueError(f"{name} must not contain NaN")
    return a


def _out(a: np.ndarray, like: Any) -> Any:
    return float(a) if np.ndim(like) == 0 else a


# ----------------------------------------------------------------------------- sampling


def random_unit_vectors(
    m: int,
    d: int,
    *,
    batch: tuple[int, ...] = (),
    generator: torch.Generator | None = None,
    seed: int = 0,
    device: str | torch.device = "cpu",
    dtype: torch.dtype = torch.float32,
) -> torch.Tensor:
    """m independent uniform unit vectors in R^d, shaped ``(*batch, m, d)``, on the device.

    u = g / ||g|| with g ~ N(0, I_d) is uniform on the sphere S^{d-1} because the Gaussian is
    rotation invariant (Muller 1959, "A note on a method for generating points uniformly on
    n-dimensional spheres"). Draws come from ``generator`` if given (its device wins), else from
    a fresh ``torch.Generator`` seeded with ``seed`` on ``device``.
    """
    m = _int("m", m, 1)
    d = _int("d", d, 1)
    batch = tuple(_int("batch entry", b, 1) for b in batch)
    if generator is None:
        dev = resolve_device(device)
        generator = make_generator(_int("seed", seed, 0), dev)
    dev = generator.device
    g = torch.randn(*batch, m, d, generator=generator, device=dev, dtype=dtype)
    return g / g.norm(dim=-1, keepdim=True).clamp_min(torch.finfo(dtype).tiny)


def sample_inner_products(
    n: int,
    d: int,
    *,
    seed: int = 0,
    device: str | torch.device = "cpu",
    chunk: int = 1 << 22,
) -> torch.Tensor:
    """n independent draws of t = <u, v>, u and v independent uniform on S^{d-1}; float64 (n,).

    Both vectors are drawn (no shortcut through rotation invariance), in chunks of about
    ``chunk`` floats so memory stays bounded for large d.
    """
    n = _int("n", n, 1)
    d = _dim(d)
    g = make_generator(derive_seed(seed, "inner-products", d), resolve_device(device))
    per = max(1, chunk // (2 * d))
    out = []
    for start in range(0, n, per):
        uv = random_unit_vectors(2, d, batch=(min(per, n - start),), generator=g)
        out.append((uv[:, 0] * uv[:, 1]).sum(-1).double())
    return torch.cat(out)


# ----------------------------------------------------------------------------- the exact law


def _beta(d: int) -> Any:
    a = (d - 1) / 2
    return scipy.stats.beta(a, a)


def inner_product_pdf(t: Any, d: int) -> Any:
    """Density of t = <u, v> for u, v independent uniform on S^{d-1}:

        f(t) = (1 - t^2)^((d-3)/2) / B(1/2, (d-1)/2),   -1 < t < 1,

    i.e. (1 + t)/2 ~ Beta((d-1)/2, (d-1)/2), so f(t) = beta_pdf((1+t)/2) / 2. (The marginal of
    one coordinate of a uniform point on the sphere; e.g. Cai, Fan & Jiang 2013, "Distributions
    of angles in random packing on spheres", Lemma 12.) d = 2 gives the arcsine law, d = 3 the
    uniform law on [-1, 1].
    """
    d = _dim(d)
    x = _finite_array("t", t)
    return _out(_beta(d).pdf((1 + x) / 2) / 2, t)


def inner_product_cdf(t: Any, d: int) -> Any:
    """P(<u, v> <= t) = I_{(1+t)/2}((d-1)/2, (d-1)/2) (regularised incomplete beta function)."""
    d = _dim(d)
    x = _finite_array("t", t)
    return _out(_beta(d).cdf((1 + x) / 2), t)


def inner_product_tail(x: Any, d: int, *, log: bool = False) -> Any:
    """Two-sided tail P(|<u, v>| > x) = 2 I_{(1-x)/2}((d-1)/2, (d-1)/2) for 0 <= x <= 1.

    By the symmetry of the Beta((d-1)/2, (d-1)/2) law about 1/2, P(t > x) = I_{(1-x)/2}(a, a)
    (regularised incomplete beta, ``scipy.special.betainc``): computed directly, without the
    cancellation of 1 - cdf, so it stays accurate far into the tail, as the coherence predictor
    needs. ``log=True`` returns the natural log (-inf where it underflows).
    """
    d = _dim(d)
    a = _finite_array("x", x)
    if (a < 0).any():
        raise ValueError("x must be >= 0 (the tail of |t|)")
    half = (d - 1) / 2
    tail = np.minimum(1.0, 2 * scipy.special.betainc(half, half, np.clip((1 - a) / 2, 0.0, 0.5)))
    if log:
        with np.errstate(divide="ignore"):
            return _out(np.log(tail), x)
    return _out(tail, x)


_D = sp.Symbol("d", positive=True)


def inner_product_moment(n: int, d: int | None = None) -> sp.Expr:
    """E[t^n] for t = <u, v> on S^{d-1}, as an exact sympy expression in d (or a Rational).

    From the Beta law: with X = (1 + t)/2 ~ Beta(a, a), a = (d-1)/2, E X^j = (a)_j / (2a)_j
    (rising factorials), and t = 2X - 1 gives E t^n = sum_j C(n, j) 2^j (-1)^(n-j) E X^j.
    Results: E t = 0, E t^2 = 1/d, E t^4 = 3/(d(d+2)), odd moments 0. ``d=None`` keeps d symbolic.
    """
    n = _int("n", n, 0)
    dd = _D if d is None else sp.Integer(_dim(d))
    a = (dd - 1) / 2
    ex = sum(
        sp.binomial(n, j) * 2**j * (-1) ** (n - j) * sp.rf(a, j) / sp.rf(2 * a, j) for j in range(n + 1)
    )
    return sp.factor(sp.simplify(ex))


def inner_product_moment_closed_form(n: int, d: int | None = None) -> sp.Expr:
    """The textbook closed form: E t^(2k) = prod_{j<k} (2j + 1)/(d + 2j), odd moments 0.

    (1/d, 3/(d(d+2)), 15/(d(d+2)(d+4)), ...: the moments of one coordinate of a uniform point on
    S^{d-1}, from the Dirichlet law of its squared coordinates.)
    """
    n = _int("n", n, 0)
    dd = _D if d is None else sp.Integer(_dim(d))
    if n % 2:
        return sp.Integer(0)
    return sp.Mul(*[sp.Integer(2 * j + 1) / (dd + 2 * j) for j in range(n // 2)])


def _moment_from_density(n: int, d: int) -> sp.Expr:
    """E t^n by direct sympy integration of the density (1 - t^2)^((d-3)/2) over [-1, 1]."""
    t = sp.Symbol("t", real=True)
    w = (1 - t**2) ** sp.Rational(d - 3, 2)
    return sp.nsimplify(sp.simplify(sp.integrate(t**n * w, (t, -1, 1)) / sp.integrate(w, (t, -1, 1))))


# ----------------------------------------------------------------------------- k active features


def k_active_noise_variance(k: int, d: int) -> float:
    """Var of the interference on feature i from k active unit features at independent random
    directions: Var sum_{j=1}^k <u_i, u_j> = k/d.

    Each term has variance 1/d, and distinct terms are uncorrelated because
    E[<u_i,u_j><u_i,u_l>] = E[u_i^T E(u_j) E(u_l)^T u_i] = 0 (seed 000: noise std sqrt(k/d)).
    """
    return _int("k", k, 0) / _dim(d)


def k_active_noise_fourth_moment(k: int, d: int) -> float:
    """E X^4 for X = <u_0, S>, S = u_1 + ... + u_k: (k^2 + 2k(k-1)/d) * 3/(d(d+2)).

    Given S, X has the law of ||S|| t; E||S||^4 = k^2 + 4 Var(sum_{i<j} <u_i,u_j>) =
    k^2 + 2k(k-1)/d since the pair terms are uncorrelated with variance 1/d. Used for the
    standard error of a Monte Carlo variance.
    """
    k, d = _int("k", k, 0), _dim(d)
    return (k * k + 2 * k * (k - 1) / d) * 3 / (d * (d + 2))


def sample_k_active_noise(
    k: int, d: int, n: int, *, seed: int = 0, device: str | torch.device = "cpu", chunk: int = 1 << 22
) -> torch.Tensor:
    """n draws of X = sum_{j=1}^k <u_0, u_j> (k + 1 independent uniform unit vectors); float64."""
    k, d, n = _int("k", k, 1), _dim(d), _int("n", n, 1)
    g = make_generator(derive_seed(seed, "k-active", k, d), resolve_device(device))
    per = max(1, chunk // ((k + 1) * d))
    out = []
    for start in range(0, n, per):
        u = random_unit_vectors(k + 1, d, batch=(min(per, n - start),), generator=g)
        out.append((u[:, 0] * u[:, 1:].sum(1)).sum(-1).double())
    return torch.cat(out)


# ----------------------------------------------------------------------------- JL vs typical


def _m_at_least_2(m: Any) -> int:
    return _int("m", m, 2)


def rms_interference(d: int) -> float:
    """RMS inner product of two independent uniform unit vectors in R^d: sqrt(E t^2) = d^-1/2."""
    return 1 / math.sqrt(_dim(d))


def jl_typical_noise(m: int, d: int) -> float:
    """The Johnson–Lindenstrauss 'typical noise' eps = sqrt(8 ln m / d) ("Some costs of
    superposition"): the distortion for which m points embed in d dims, d >= 8 ln m / eps^2
    (Dasgupta & Gupta 2003). It bounds the *worst* pair, not the typical one."""
    return math.sqrt(8 * math.log(_m_at_least_2(m)) / _dim(d))


def jl_overstatement(m: int) -> float:
    """jl_typical_noise / rms_interference = sqrt(8 ln m), independent of d (seed 000)."""
    return math.sqrt(8 * math.log(_m_at_least_2(m)))


def jl_capacity(m: int, d: int, threshold: float = 1.0) -> float:
    """Active features l with noise sqrt(l) * eps <= threshold, using the JL eps: l <= threshold^2
    d / (8 ln m) — the post's "at most d/(8 ln m) simultaneously active features"."""
    return threshold**2 * _dim(d) / (8 * math.log(_m_at_least_2(m)))


def rms_capacity(d: int, threshold: float = 1.0) -> float:
    """The corrected capacity: noise std sqrt(l/d) <= threshold gives l <= threshold^2 d — of the
    order of d, larger than :func:`jl_capacity` by the factor 8 ln m."""
    return threshold**2 * _dim(d)


# ----------------------------------------------------------------------------- coherence


def pairwise_cosines(U: torch.Tensor) -> torch.Tensor:
    """Cosine Gram matrix (..., m, m) of the rows of U (..., m, d)."""
    if not isinstance(U, torch.Tensor):
        U = torch.as_tensor(np.asarray(U, dtype=np.float64))
    if U.ndim < 2:
        raise ValueError(f"U must be shaped (..., m, d), got {tuple(U.shape)}")
    if torch.isnan(U).any():
        raise ValueError("U must not contain NaN")
    norms = U.norm(dim=-1, keepdim=True)
    if (norms == 0).any():
        raise ValueError("U has a zero row: cosines are undefined")
    V = U / norms
    return V @ V.transpose(-1, -2)


def max_coherence(U: torch.Tensor) -> torch.Tensor:
    """mu(U) = max_{i != j} |cos(u_i, u_j)| over the m rows of U (..., m, d); shape (...)."""
    C = pairwise_cosines(U).abs()
    if C.shape[-1] < 2:
        raise ValueError(f"max coherence needs m >= 2 vectors, got m = {C.shape[-1]}")
    eye = torch.eye(C.shape[-1], dtype=torch.bool, device=C.device)
    return C.masked_fill(eye, -1.0).amax(dim=(-1, -2))


def sample_max_coherence(
    m: int,
    d: int,
    trials: int,
    *,
    seed: int = 0,
    device: str | torch.device = "cpu",
    max_floats: int = 1 << 24,
) -> torch.Tensor:
    """``trials`` independent draws of mu(U) for m uniform unit vectors in R^d; float64 (trials,).

    Trials are batched (torch ``bmm`` on the device) in chunks holding at most ``max_floats``
    Gram-matrix entries.
    """
    m, d, trials = _int("m", m, 2), _dim(d), _int("trials", trials, 1)
    g = make_generator(derive_seed(seed, "max-coherence", m, d), resolve_device(device))
    per = max(1, max_floats // (m * max(m, d)))
    out = []
    for start in range(0, trials, per):
        U = random_unit_vectors(m, d, batch=(min(per, trials - start),), generator=g)
        out.append(max_coherence(U).double())
    return torch.cat(out)


def max_coherence_median(m: int, d: int, *, rule: str = "poisson") -> float:
    """Predicted median of mu for m uniform unit vectors in R^d, from the exact tail of t.

    Treat the M = m(m-1)/2 pairs as independent (they are pairwise independent):
    ``rule='poisson'`` solves M * P(|t| > x) = ln 2 (P(max <= x) ~ exp(-M P(|t|>x)) = 1/2);
    ``rule='independent'`` solves 1 - (1 - P(|t| > x))^M = 1/2, exact for m = 2. The two agree
    to O(1/M). Root by Brent's method on log M + log P(|t| > x) (scipy).
    """
    m, d = _int("m", m, 2), _dim(d)
    check_choice("rule", rule, ("poisson", "independent"))
    M = m * (m - 1) / 2
    target = math.log(math.log(2) / M) if rule == "poisson" else math.log(-math.expm1(-math.log(2) / M))

    def f(x: float) -> float:
        v = inner_product_tail(x, d, log=True)
        return (v if np.isfinite(v) else -1e300) - target

    if f(0.0) <= 0:  # only when M * 1 <= ln 2, impossible for m >= 2 under 'poisson'
        return 0.0
    return float(scipy.optimize.brentq(f, 0.0, 1.0 - 1e-15, xtol=1e-14, rtol=1e-12))


def max_coherence_asymptotic(m: int, d: int) -> float:
    """Leading-order median of mu: sqrt(4 ln m / d), from P(|t| > x) ~ exp(-d x^2/2) and
    M ~ m^2/2 (so d x^2 / 2 ~ ln M ~ 2 ln m). Cai, Fan & Jiang 2013 (Theorem 1: sqrt(d) mu /
    sqrt(ln m) -> 2 when ln m / d -> 0). Ignores the polynomial prefactor of the tail, so it
    overestimates at finite sizes."""
    m, d = _m_at_least_2(m), _dim(d)
    return math.sqrt(4 * math.log(m) / d)


def welch_bound(m: int, d: int) -> float:
    """Welch (1974) lower bound on the coherence of any m unit vectors in R^d:

        max_{i != j} |<u_i, u_j>| >= sqrt((m - d) / (d (m - 1)))   for m > d   (0 for m <= d).

    Proof: ||G||_F^2 >= (tr G)^2 / rank G >= m^2 / d for the Gram matrix G, and ||G||_F^2 <=
    m + m(m-1) mu^2. Equality exactly for equiangular tight frames (Strohmer & Heath 2003).
    """
    m, d = _int("m", m, 1), _int("d", d, 1)
    if m <= d:
        return 0.0
    return math.sqrt((m - d) / (d * (m - 1)))


def frame_potential(U: torch.Tensor) -> torch.Tensor:
    """||G||_F^2 = sum_{i,j} cos(u_i, u_j)^2 of the rows of U (..., m, d); shape (...)."""
    return pairwise_cosines(U).pow(2).sum(dim=(-1, -2))


def frame_potential_bound(m: int, d: int) -> float:
    """Smallest possible frame potential of m unit vectors in R^d: max(m, m^2/d)
    (Benedetto & Fickus 2003; the first step of the Welch bound)."""
    m, d = _int("m", m, 1), _int("d", d, 1)
    return max(m, m * m / d)


def simplex_etf(m: int, *, dtype: torch.dtype = torch.float64) -> torch.Tensor:
    """The regular simplex: m unit vectors in R^(m-1) with every <u_i, u_j> = -1/(m-1), shaped
    (m, m-1). An equiangular tight frame attaining the Welch bound 1/(m-1); m = 3 gives three
    vectors at 120 degrees in the plane (coherence 1/2)."""
    m = _int("m", m, 2)
    X = torch.eye(m, dtype=torch.float64) - 1.0 / m  # centred one-hot vectors, in the sum-zero plane
    # Coordinates in an orthonormal basis of that (m-1)-dim plane.
    Q, _ = torch.linalg.qr(X[:, : m - 1])
    Y = X @ Q
    return (Y / Y.norm(dim=-1, keepdim=True)).to(dtype)


def optimise_coherence(
    m: int,
    d: int,
    *,
    steps: int = 400,
    restarts: int = 1,
    seed: int = 0,
    lr: float = 0.02,
) -> torch.Tensor:
    """A low-coherence configuration of m unit vectors in R^d (m, d), float64, found by Adam on a
    smooth maximum of |cos|: the p-norm (sum_{i<j} |cos_ij|^p)^(1/p) with p annealed 8 -> 256 and
    a cosine-decayed step size, rows renormalised after each step.
    Returns the best of ``restarts`` runs by true coherence. A search, not a guarantee: used to
    test that even optimised frames never beat :func:`welch_bound`."""
    m, d = _int("m", m, 2), _int("d", d, 1)
    steps, restarts = _int("steps", steps, 1), _int("restarts", restarts, 1)
    g = make_generator(derive_seed(seed, "optimise-coherence", m, d), torch.device("cpu"))
    iu = torch.triu_indices(m, m, 1)
    best, best_mu = None, math.inf
    for _ in range(restarts):
        X = torch.randn(m, d, generator=g, dtype=torch.float64).requires_grad_(True)
        # Adam by hand (torch.optim's first use imports the compiler stack: seconds of start-up).
        m1, m2 = torch.zeros_like(X), torch.zeros_like(X)
        b1, b2 = 0.9, 0.999
        for s in range(steps):
            frac = s / max(1, steps - 1)
            p = 8.0 * 32.0**frac
            C = pairwise_cosines(X)[iu[0], iu[1]].abs()
            cmax = C.max().detach()
            loss = cmax * ((C / cmax) ** p).sum() ** (1 / p)
            (grad,) = torch.autograd.grad(loss, X)
            with torch.no_grad():
                m1.mul_(b1).add_(grad, alpha=1 - b1)
                m2.mul_(b2).addcmul_(grad, grad, value=1 - b2)
                step_lr = lr * 0.5 * (1 + math.cos(math.pi * frac)) + 1e-3 * lr  # cosine decay
                mh, vh = m1 / (1 - b1 ** (s + 1)), m2 / (1 - b2 ** (s + 1))
                X -= step_lr * mh / (vh.sqrt() + 1e-12)
                X /= X.norm(dim=-1, keepdim=True)
        with torch.no_grad():
            U = X / X.norm(dim=-1, keepdim=True)
            mu = float(max_coherence(U))
        if mu < best_mu:
            best, best_mu = U.detach().clone(), mu
    return best


# ============================================================================= claims


def _rng(ctx: Context, key: str) -> np.random.Generator:
    """The check's numpy generator, reproducible across processes (``Context.rng`` hashes its keys
    with Python's salted ``hash``, so its draws change from one interpreter to the next)."""
    return np.random.default_rng(derive_seed(ctx.seed, key))


_SE_TOL = 5.0  # Monte Carlo agreement: within 5 standard errors


@claim(
    "interference.inner_product_distribution",
    status="proven",
    statement="""For u, v independent and uniform on the unit sphere of R^d, t = <u,v> satisfies
    (1+t)/2 ~ Beta((d-1)/2, (d-1)/2); hence E t = 0, Var t = 1/d exactly, E t^4 = 3/(d(d+2)) and the
    RMS inner product is d^(-1/2).""",
    source="Seed 000 (comment on 'Some costs of superposition'); Cai, Fan & Jiang 2013, Lemma 12.",
)
def _check_inner_product_distribution(ctx: Context) -> Result:
    # 1. Exact moments, symbolic in d, from the Beta law; and, independently, by integrating the
    #    density for small integer d.
    claimed = {1: sp.Integer(0), 2: 1 / _D, 4: 3 / (_D * (_D + 2))}
    sym_ok = all(sp.simplify(inner_product_moment(n) - v) == 0 for n, v in claimed.items())
    dens_ok = all(
        sp.simplify(_moment_from_density(n, d) - v.subs(_D, d)) == 0
        for d in ctx.pick((2, 3), (2, 3, 5, 7), (2, 3, 4, 5, 6, 7, 9))  # even d >= 4: sympy slow
        for n, v in claimed.items()
    )
    # 2. The scipy law integrates to 1 and has those moments (numerical quadrature).
    quad_err = 0.0
    for d in (3, 10, 100):
        for n, v in [(0, 1.0)] + [(n, float(v.subs(_D, d))) for n, v in claimed.items()]:
            q, _ = scipy.integrate.quad(lambda t, n=n, d=d: t**n * inner_product_pdf(t, d), -1, 1, limit=200)
            quad_err = max(quad_err, abs(q - v))
    quad_ok = quad_err < 1e-8
    # 3. Monte Carlo on the device: moments within 5 standard errors, KS test against the Beta law.
    n = ctx.pick(20_000, 100_000, 1_000_000)
    dims = ctx.pick((2, 3, 16), (2, 3, 16, 256), (2, 3, 16, 256, 1024))
    worst_z, min_p, obs = 0.0, 1.0, {}
    for d in dims:
        t = sample_inner_products(n, d, seed=derive_seed(ctx.seed, "ipd"), device=ctx.device).cpu()
        m2, m4, m8 = (float(inner_product_moment_closed_form(k, d)) for k in (2, 4, 8))
        se = {1: math.sqrt(m2 / n), 2: math.sqrt((m4 - m2**2) / n), 4: math.sqrt((m8 - m4**2) / n)}
        est = {1: float(t.mean()), 2: float((t**2).mean()), 4: float((t**4).mean())}
        exact = {1: 0.0, 2: m2, 4: m4}
        for k in (1, 2, 4):
            worst_z = max(worst_z, abs(est[k] - exact[k]) / se[k])
        p = scipy.stats.kstest(((1 + t.numpy()) / 2), _beta(d).cdf).pvalue
        min_p = min(min_p, p)
        obs[d] = {"var": est[2], "1/d": m2, "ks_p": p}
    alpha = 1e-3 / len(dims)  # Bonferroni over the dimensions
    mc_ok = worst_z <= _SE_TOL and min_p >= alpha
    ok = sym_ok and dens_ok and quad_ok and mc_ok
    return Result(
        holds_if(ok),
        predicted={"E t": "0", "Var t": "1/d", "E t^4": "3/(d(d+2))", "law": "(1+t)/2 ~ Beta((d-1)/2,(d-1)/2)"},
        observed={"sympy_moments_equal": sym_ok, "density_integrals_equal": dens_ok, "quad_err": quad_err,
                  "mc_worst_z": worst_z, "ks_min_p": min_p, "by_d": obs},
        tolerance={"z": _SE_TOL, "ks_alpha": alpha, "quad": 1e-8},
        detail=f"sympy: Beta-law moments simplify to 0, 1/d, 3/(d(d+2)) ({sym_ok}); density integrals "
        f"for small d agree ({dens_ok}); scipy pdf moments by quadrature err {quad_err:.1e}; "
        f"MC {n} pairs per d in {list(dims)} on {ctx.device}: worst |z| = {worst_z:.2f} over E t, E t^2, "
        f"E t^4; KS min p = {min_p:.3g} (need >= {alpha:.1e}).",
    )


@claim(
    "interference.k_active_noise",
    status="proven",
    statement="""The interference on feature i from k active unit-magnitude features placed at
    independent uniformly random directions, sum_j <u_i, u_j>, has mean 0 and variance exactly k/d
    (standard deviation sqrt(k/d)).""",
    source="Seed 000 (comment on 'Some costs of superposition': noise std sqrt(l/d)).",
)
def _check_k_active_noise(ctx: Context) -> Result:
    floats = ctx.pick(2e6, 2.5e7, 2e8)  # random numbers drawn per (k, d)
    cases = ctx.pick([(1, 16), (10, 64)], [(1, 3), (5, 16), (10, 64), (40, 128)],
                     [(1, 3), (5, 16), (10, 64), (50, 256), (200, 512)])
    worst_z, obs, sizes = 0.0, {}, []
    for k, d in cases:
        n = int(np.clip(floats / ((k + 1) * d), 10_000, 1_000_000))
        sizes.append(n)
        x = sample_k_active_noise(k, d, n, seed=derive_seed(ctx.seed, "k-active"), device=ctx.device).cpu()
        var_pred = k_active_noise_variance(k, d)
        ex2 = float((x**2).mean())  # the mean is known to be 0: estimate Var by E X^2
        se = math.sqrt((k_active_noise_fourth_moment(k, d) - var_pred**2) / n)
        z_var = abs(ex2 - var_pred) / se
        z_mean = abs(float(x.mean())) / math.sqrt(var_pred / n)
        worst_z = max(worst_z, z_var, z_mean)
        obs[f"k={k},d={d}"] = ex2
    ok = worst_z <= _SE_TOL
    return Result(
        holds_if(ok),
        predicted={f"k={k},d={d}": k_active_noise_variance(k, d) for k, d in cases},
        observed=obs,
        tolerance={"z": _SE_TOL},
        detail=f"{sizes} draws for (k, d) = {cases} on {ctx.device}; worst |z| = {worst_z:.2f} over the mean and the "
        "variance (standard error from the exact fourth moment (k^2 + 2k(k-1)/d)·3/(d(d+2))).",
    )


@claim(
    "interference.jl_vs_typical",
    status="proven",
    statement="""The Johnson-Lindenstrauss 'typical noise' sqrt(8 ln m / d) is a worst-case figure: it
    exceeds the RMS inner product 1/sqrt(d) of random unit vectors by the factor sqrt(8 ln m). The
    derived capacity 'at most d/(8 ln m) simultaneously active features' becomes, with noise
    standard deviation sqrt(l/d), a number of active features l of the order of d.""",
    source="Seed 000 (comment on 'Some costs of superposition'); Dasgupta & Gupta 2003 for the JL constant.",
)
def _check_jl_vs_typical(ctx: Context) -> Result:
    m_s, d_s = sp.symbols("m d", positive=True)
    ratio_ok = sp.simplify(sp.sqrt(8 * sp.log(m_s) / d_s) / (1 / sp.sqrt(d_s)) - sp.sqrt(8 * sp.log(m_s))) == 0
    cap_ok = sp.simplify(d_s / (d_s / (8 * sp.log(m_s))) - 8 * sp.log(m_s)) == 0
    # numeric library functions against the formulas
    lib_err = max(
        abs(jl_typical_noise(m, d) / rms_interference(d) - jl_overstatement(m)) / jl_overstatement(m)
        + abs(rms_capacity(d) / jl_capacity(m, d) - 8 * math.log(m)) / (8 * math.log(m))
        for m in (2, 10, 1000) for d in (2, 64, 4096)
    )
    # Monte Carlo: RMS over all pairs of m random vectors vs 1/sqrt(d). Pair terms t^2 are
    # pairwise uncorrelated, so the standard error of the mean of t^2 is exact.
    cases = ctx.pick([(64, 32)], [(64, 32), (256, 128), (1024, 512)], [(64, 32), (256, 128), (1024, 512), (2048, 1024)])
    trials = ctx.pick(8, 16, 64)
    worst_z, obs, pred, jl_exceed = 0.0, {}, {}, 0
    for m, d in cases:
        g = make_generator(derive_seed(ctx.seed, "jl", m, d), ctx.device)
        U = random_unit_vectors(m, d, batch=(trials,), generator=g)
        C = pairwise_cosines(U).double()
        iu = torch.triu_indices(m, m, 1, device=C.device)
        t2 = C[:, iu[0], iu[1]] ** 2
        ms = float(t2.mean())
        n_pairs = t2.numel()
        m2, m4 = 1 / d, 3 / (d * (d + 2))
        z = abs(ms - m2) / math.sqrt((m4 - m2**2) / n_pairs)
        worst_z = max(worst_z, z)
        rms = math.sqrt(ms)
        obs[f"m={m},d={d}"] = {"rms": rms, "jl/rms": jl_typical_noise(m, d) / rms}
        pred[f"m={m},d={d}"] = {"rms": rms_interference(d), "jl/rms": jl_overstatement(m)}
        jl_exceed += int((t2.sqrt() > jl_typical_noise(m, d)).sum())
    ok = ratio_ok and cap_ok and lib_err < 1e-12 and worst_z <= _SE_TOL and jl_exceed == 0
    return Result(
        holds_if(ok),
        predicted=pred,
        observed=obs,
        tolerance={"z": _SE_TOL},
        detail=f"sympy: eps_JL / d^-1/2 = sqrt(8 ln m) ({ratio_ok}) and capacity ratio d / (d/(8 ln m)) = "
        f"8 ln m ({cap_ok}); MC {trials} configurations per (m, d) on {ctx.device}: mean t^2 vs 1/d worst "
        f"|z| = {worst_z:.2f}; pairs above the JL eps (a worst-case bound): {jl_exceed}.",
    )


_COH_GRID_D = (64, 128, 256, 512, 1024)
_COH_GRID_M = (32, 64, 128, 256, 512, 1024, 2048)


@claim(
    "interference.max_coherence",
    status="empirical",
    statement="""For m independent uniform unit vectors in R^d the median of the largest |cosine|
    over the m(m-1)/2 pairs solves M * P(|t| > x) = ln 2 with M = m(m-1)/2 and the exact Beta tail
    of t, to within 5% for d in 64..1024 and m in 32..2048. The asymptotic form sqrt(4 ln m / d)
    overestimates it at these sizes.""",
    source="Seed 000; Cai, Fan & Jiang 2013 (asymptotic law of the largest coherence).",
)
def _check_max_coherence(ctx: Context) -> Result:
    rng = _rng(ctx, "max_coherence")
    grid = [(d, m) for d in _COH_GRID_D for m in _COH_GRID_M]
    # Always the two corners that cost least/most, plus random pairs per budget.
    n_random = ctx.pick(1, 3, 10)
    flop_budget = ctx.pick(2e8, 3e9, 1e11)  # multiply-adds for the Gram matrices, per pair
    cap = ctx.pick(2**22, 2**28, 2**32)  # skip pairs whose single trial costs more than this
    affordable = [(d, m) for d, m in grid if m * m * d <= cap]
    picks = [affordable[0]] + [affordable[i] for i in rng.choice(len(affordable), size=n_random, replace=False)]
    picks = sorted(set(picks))
    worst_rel, obs, pred, over, all_within = 0.0, {}, {}, [], True
    for d, m in picks:
        trials = int(np.clip(flop_budget / (m * m * d), 24, 400))
        mu = sample_max_coherence(m, d, trials, seed=derive_seed(ctx.seed, "coh"), device=ctx.device)
        med = float(mu.median())
        p = max_coherence_median(m, d)
        a = max_coherence_asymptotic(m, d)
        worst_rel = max(worst_rel, abs(med - p) / p)
        all_within = all_within and within(p, med, rel=0.05)
        key = f"d={d},m={m}"
        obs[key], pred[key] = med, p
        over.append(a / med - 1)
    # The asymptotic formula against the exact-tail prediction over the whole grid (analytic).
    grid_over = [max_coherence_asymptotic(m, d) / max_coherence_median(m, d) - 1 for d, m in grid]
    ok = all_within and min(over) > 0
    return Result(
        holds_if(ok),
        predicted=pred,
        observed={**obs, "asymptotic_overestimate_sampled": [min(over), max(over)],
                  "asymptotic_overestimate_grid": [min(grid_over), max(grid_over)]},
        tolerance={"rel": 0.05},
        detail=f"(d, m) in {picks}, 24-400 trials each on {ctx.device}; worst relative error of the "
        f"exact-tail median {100 * worst_rel:.2f}%. sqrt(4 ln m/d) overestimates the observed median by "
        f"{100 * min(over):.1f}%-{100 * max(over):.1f}% here, and the exact-tail median by "
        f"{100 * min(grid_over):.1f}%-{100 * max(grid_over):.1f}% over the whole grid d in 64..1024, "
        f"m in 32..2048 (catalogue: 10-20%; below 10% only at d >= 512 with m >= 1024).",
    )


@claim(
    "interference.welch_bound",
    status="proven",
    statement="""Any m > d unit vectors in R^d have max_{i != j} |<u_i,u_j>| >= sqrt((m-d)/(d(m-1)));
    equiangular tight frames attain it, e.g. three vectors at 120 degrees in the plane (both sides 1/2).""",
    source="Welch 1974; Strohmer & Heath 2003 (Grassmannian frames).",
)
def _check_welch_bound(ctx: Context) -> Result:
    rng = _rng(ctx, "welch")
    # 1. Random configurations: coherence and frame potential above their bounds.
    n_cases = ctx.pick(6, 30, 200)
    worst_gap, worst_fp = math.inf, math.inf
    for i in range(n_cases):
        d = int(rng.integers(2, 40))
        m = int(rng.integers(d + 1, 4 * d + 3))
        g = make_generator(derive_seed(ctx.seed, "welch", i), ctx.device)
        U = random_unit_vectors(m, d, batch=(8,), generator=g, dtype=torch.float64)
        worst_gap = min(worst_gap, float(max_coherence(U).min()) - welch_bound(m, d))
        worst_fp = min(worst_fp, float(frame_potential(U).min()) / frame_potential_bound(m, d) - 1)
    # 2. Optimised configurations: the search never beats the bound.
    opt_cases = ctx.pick([(3, 2), (4, 2)], [(3, 2), (4, 2), (4, 3), (6, 3), (7, 3)],
                         [(3, 2), (4, 2), (5, 2), (4, 3), (6, 3), (7, 3), (5, 4), (8, 4), (16, 6)])
    opt = {}
    for m, d in opt_cases:
        U = optimise_coherence(m, d, steps=ctx.pick(150, 400, 1500), seed=ctx.seed)
        mu = float(max_coherence(U))
        opt[f"m={m},d={d}"] = {"coherence": mu, "welch": welch_bound(m, d)}
        worst_gap = min(worst_gap, mu - welch_bound(m, d))
    # 3. Equality: three vectors at 120 degrees, and the regular simplex for several m.
    tri = simplex_etf(3)
    tri_mu = float(max_coherence(tri))
    etf_err = max(abs(float(max_coherence(simplex_etf(m))) - welch_bound(m, m - 1)) for m in range(3, 12))
    eq_ok = abs(tri_mu - 0.5) < 1e-12 and abs(welch_bound(3, 2) - 0.5) < 1e-15 and etf_err < 1e-12
    tol = 1e-12
    ok = worst_gap >= -tol and worst_fp >= -tol and eq_ok
    return Result(
        holds_if(ok),
        predicted={"welch(3,2)": welch_bound(3, 2), "gap >=": 0.0},
        observed={"triangle_coherence": tri_mu, "min coherence - welch": worst_gap,
                  "min frame potential / bound - 1": worst_fp, "optimised": opt, "simplex_err": etf_err},
        tolerance=tol,
        detail=f"{n_cases} random (m, d) with m > d (8 configurations each) and {len(opt_cases)} optimised "
        f"frames: smallest coherence minus Welch bound {worst_gap:.3g} (optimised frames come within it); "
        f"frame potential never below max(m, m^2/d); triangle coherence {tri_mu:.15f}; regular simplices "
        f"m = 3..11 attain 1/(m-1) (err {etf_err:.1e}).",
    )
