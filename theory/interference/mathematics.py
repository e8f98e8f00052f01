"""The mathematics of interference between random directions (seed 000, "Some costs of
superposition"): how far apart can m unit vectors in R^d be, and what does their overlap cost?

A comment on the post points out that the *typical* inner product of two independent random
unit vectors in R^d is d^-1/2, not the Johnson–Lindenstrauss figure sqrt(8 ln m / d), which
bounds the *worst* pair. This module computes both, exactly where possible:

* samplers of uniform unit directions on the device (:func:`random_unit_vectors`);
* the exact law of t = <u, v> — (1 + t)/2 ~ Beta((d-1)/2, (d-1)/2) — its density, cdf and
  two-sided tail via scipy, and its moments as exact sympy expressions;
* the noise k/d that k active features put on another one;
* reading k active features out of m superposed ones by thresholded dot products: the
  per-feature error rates, the capacity for an error-free readout (d/(8 ln m) to leading
  order) and a batched simulation of it (:func:`simulate_readout`);
* the median of the largest |cos| among m random vectors (an extreme-value prediction from the
  exact tail) and its asymptotic form sqrt(4 ln m / d);
* the Welch bound, the smallest worst-case coherence any m unit vectors in R^d can have, with
  the simplex frames that attain it and an optimiser that searches for low-coherence frames.

Tensors follow the shape letters of STYLE: ``(..., m, d)`` stacks of m vectors in R^d.
"""
from __future__ import annotations

import math
from dataclasses import dataclass
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
from toymodels.measures.cosines import (  # shared with theory.sae; re-exported here
    _beta,
    _dim,
    inner_product_cdf,
    inner_product_pdf,
    inner_product_tail,
    pairwise_cosines,
    random_unit_vectors,
)
from toymodels.measures.linalg import random_orthogonal


__all__ = [
    "random_unit_vectors",
    "anisotropic_unit_vectors",
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
    "readout_error_rates",
    "readout_expected_errors",
    "readout_capacity",
    "readout_capacity_asymptotic",
    "ReadoutSimulation",
    "simulate_readout",
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








# ----------------------------------------------------------------------------- sampling





def anisotropic_unit_vectors(
    m: int, d: int, exponent: float, generator: torch.Generator, *, batch: tuple[int, ...] = ()
) -> torch.Tensor:
    """m unit vectors in R^d from an anisotropic law, shaped ``(*batch, m, d)``, float32 on the
    generator's device: u = g / ||g|| with g ~ N(0, Sigma), Sigma = Q diag(lambda) Q^T,
    eigenvalues lambda_i = i^(-exponent) (i = 1..d) in a Haar-random basis Q
    (:func:`toymodels.linalg.random_orthogonal`, one Q per batch element). ``exponent = 0`` is
    the uniform law of :func:`random_unit_vectors`.

    Such directions crowd into the top eigen-directions, so their cosines are larger than
    random: E t^2 ~ sum lambda^2 / (sum lambda)^2 (1/d for lambda constant; about 2.4/d at
    d = 32, exponent 1). A model of feature directions with structure in the activation space.
    """
    exponent = float(exponent)
    if not math.isfinite(exponent) or exponent < 0:
        raise ValueError(f"exponent must be a finite number >= 0, got {exponent!r}")
    # a uniform direction z/||z|| mapped by Q diag(sqrt lambda) and renormalised: the norm of z cancels
    z = random_unit_vectors(m, d, batch=batch, generator=generator, dtype=torch.float64)
    Q = torch.stack([random_orthogonal(d, generator=generator, dtype=torch.float64)
                     for _ in range(math.prod(z.shape[:-2]))]).reshape(*z.shape[:-2], d, d)
    scale = torch.arange(1, d + 1, device=z.device, dtype=torch.float64) ** (-exponent / 2)  # sqrt(lambda)
    u = (z * scale) @ Q.transpose(-1, -2)
    return (u / u.norm(dim=-1, keepdim=True)).float()


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
    return _draw_in_chunks(n, 2, d, chunk, g, lambda uv: (uv[:, 0] * uv[:, 1]).sum(-1))


def _draw_in_chunks(n: int, m: int, d: int, floats: int, generator: torch.Generator, stat: Any) -> torch.Tensor:
    """n draws of ``stat(U)``, U (b, m, d) a batch of b stacks of m uniform unit vectors, with
    b·m·d at most about ``floats`` per batch (memory stays bounded); float64 (n,)."""
    per = max(1, floats // (m * d))
    out = []
    for start in range(0, n, per):
        U = random_unit_vectors(m, d, batch=(min(per, n - start),), generator=generator)
        out.append(stat(U).double())
    return torch.cat(out)


# ----------------------------------------------------------------------------- the exact law










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
    return _draw_in_chunks(n, k + 1, d, chunk, g, lambda u: (u[:, 0] * u[:, 1:].sum(1)).sum(-1))


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



# ----------------------------------------------------------------------------- reading features out


def _threshold(threshold: Any) -> float:
    t = float(threshold)
    if not 0.0 < t < 1.0:
        raise ValueError(f"threshold must be in (0, 1) (between an inactive 0 and an active 1), got {threshold!r}")
    return t


def readout_error_rates(k: float, d: int, threshold: float = 0.5) -> tuple[float, float]:
    """Per-feature error probabilities when k unit features at independent random directions in
    R^d are active and feature i is read as active iff <x, u_i> > threshold (x = sum of the active
    u_j). Gaussian approximation of the interference (mean 0, variance k/d, :func:`k_active_noise_variance`):

        false positive (i inactive):  P(N(0, k/d) > theta)            = Phi_bar(theta sqrt(d/k))
        false negative (i active):    P(1 + N(0, (k-1)/d) < theta)    = Phi_bar((1-theta) sqrt(d/(k-1)))

    (0 for k <= 1: a lone active feature reads exactly 1). Both depend on k/d only, not on the
    number m of features. ``k`` may be fractional (for root finding). Returns (fp, fn).
    """
    d, theta = _dim(d), _threshold(threshold)
    k = float(k)
    if not k > 0:
        raise ValueError(f"k must be > 0 active features, got {k!r}")
    fp = float(scipy.stats.norm.sf(theta * math.sqrt(d / k)))
    fn = float(scipy.stats.norm.sf((1 - theta) * math.sqrt(d / (k - 1)))) if k > 1 else 0.0
    return fp, fn


def readout_expected_errors(m: int, k: float, d: int, threshold: float = 0.5) -> float:
    """Expected number of wrongly read features among m, k of them active:
    (m - k) fp + k fn (:func:`readout_error_rates`). Divided by m it is the per-feature error rate."""
    m = _m_at_least_2(m)
    fp, fn = readout_error_rates(k, d, threshold)
    return (m - float(k)) * fp + float(k) * fn


def readout_capacity(m: int, d: int, threshold: float = 0.5) -> float:
    """The number of simultaneously active features at which half of all random frames read every
    one of the m features correctly: the k solving

        readout_expected_errors(m, k, d) = ln 2,

    since errors are rare and nearly independent, P(no error) ~ exp(-E[errors]) (Poisson).
    Continuous in k (Brent's method); m - 1 if even k = m - 1 leaves fewer errors. To leading
    order this is :func:`readout_capacity_asymptotic`, d/(8 ln m) at threshold 1/2 — the figure
    "Some costs of superposition" states as its capacity; at m = 10^2..10^4 it is 27-54% larger.
    """
    m, d, theta = _m_at_least_2(m), _dim(d), _threshold(threshold)
    target = math.log(2)

    def f(k: float) -> float:
        return readout_expected_errors(m, k, d, theta) - target

    if f(m - 1) <= 0:
        return float(m - 1)
    return float(scipy.optimize.brentq(f, 1e-9, m - 1, xtol=1e-10, rtol=1e-10))


def readout_capacity_asymptotic(m: int, d: int, threshold: float = 0.5) -> float:
    """Leading order of :func:`readout_capacity`: min(theta, 1-theta)^2 d / (2 ln m), from
    Phi_bar(x) ~ exp(-x^2/2) and m exp(-theta^2 d/(2k)) ~ 1; d/(8 ln m) at theta = 1/2
    (= :func:`jl_capacity` with threshold 1). It ignores the tail's prefactor, so at finite m it
    underestimates the capacity (ratio -> 1 only as ln m -> infinity)."""
    m, d, theta = _m_at_least_2(m), _dim(d), _threshold(threshold)
    return min(theta, 1 - theta) ** 2 * d / (2 * math.log(m))


@dataclass
class ReadoutSimulation:
    """Reading k = 1..k_max active unit features out of m at random directions in R^d, over
    ``trials`` independent frames (:func:`simulate_readout`). Arrays are indexed by k - 1:

    ``error_rate``: fraction of the m features read wrongly (mean over trials), with its standard
    error across trials ``error_rate_se``; ``false_positive`` / ``false_negative``: the error
    fractions among the m - k inactive / the k active features; ``error_free``: fraction of
    trials that read all m features correctly; ``noise_var``: mean squared readout of the
    inactive features (the interference, predicted k/d) and ``noise_var_se``.
    """

    m: int
    d: int
    threshold: float
    trials: int
    k: np.ndarray
    error_rate: np.ndarray
    error_rate_se: np.ndarray
    false_positive: np.ndarray
    false_negative: np.ndarray
    error_free: np.ndarray
    noise_var: np.ndarray
    noise_var_se: np.ndarray

    def capacity(self) -> float:
        """The k at which ``error_free`` first falls below 1/2, linearly interpolated between
        integer k (k = 0 is always error-free); NaN if it never does up to k_max."""
        p = np.concatenate([[1.0], self.error_free])
        below = np.nonzero(p < 0.5)[0]
        if not len(below):
            return math.nan
        j = int(below[0])
        return float(j - 1 + (p[j - 1] - 0.5) / (p[j - 1] - p[j]))


def simulate_readout(
    m: int,
    d: int,
    k_max: int,
    trials: int,
    *,
    threshold: float = 0.5,
    seed: int = 0,
    device: str | torch.device = "cpu",
    max_floats: int = 1 << 24,
) -> ReadoutSimulation:
    """Simulate the readout of superposed features: per trial, m fresh uniform unit directions
    u_1..u_m in R^d; for k = 1..k_max the first k features are active with magnitude 1, x = sum
    of their directions, and feature i is read as active iff <x, u_i> > ``threshold``.

    One Gram block G = U U[:k_max]^T (m, k_max) per trial serves every k: the readouts for k
    active features are its cumulative sums along k. Trials are batched on the device, at most
    about ``max_floats`` floats per batch. (The active set being the first k is no loss: the
    directions are i.i.d.)
    """
    m, d = _m_at_least_2(m), _dim(d)
    k_max = _int("k_max", k_max, 1, m - 1)
    trials, theta = _int("trials", trials, 2), _threshold(threshold)
    g = make_generator(derive_seed(seed, "readout", m, d), resolve_device(device))
    active = torch.arange(m, device=g.device)[:, None] < torch.arange(1, k_max + 1, device=g.device)  # (m, k_max)
    n_active = active.sum(0).double()  # (k_max,) = k
    per = max(1, max_floats // (m * max(d, k_max)))
    fp, fn, nvar = [], [], []
    for start in range(0, trials, per):
        U = random_unit_vectors(m, d, batch=(min(per, trials - start),), generator=g)  # (b, m, d)
        R = (U @ U[:, :k_max].transpose(1, 2)).cumsum(-1)  # (b, m, k_max) readouts
        wrong = torch.where(active, R < theta, R > theta)
        fp.append((wrong & ~active).sum(1).double())  # (b, k_max)
        fn.append((wrong & active).sum(1).double())
        nvar.append(R.double().square().masked_fill(active, 0.0).sum(1) / (m - n_active))
    fp_t, fn_t, nvar_t = torch.cat(fp).cpu(), torch.cat(fn).cpu(), torch.cat(nvar).cpu()  # (trials, k_max)
    n_active = n_active.cpu()
    err = (fp_t + fn_t) / m
    se = lambda a: (a.std(0, correction=1) / math.sqrt(trials)).numpy()  # noqa: E731
    return ReadoutSimulation(
        m=m, d=d, threshold=theta, trials=trials, k=np.arange(1, k_max + 1),
        error_rate=err.mean(0).numpy(), error_rate_se=se(err),
        false_positive=(fp_t.mean(0) / (m - n_active)).numpy(), false_negative=(fn_t.mean(0) / n_active).numpy(),
        error_free=((fp_t + fn_t) == 0).double().mean(0).numpy(),
        noise_var=nvar_t.mean(0).numpy(), noise_var_se=se(nvar_t),
    )


# ----------------------------------------------------------------------------- coherence




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
    # the Gram matrix (m, m) may be larger than U (m, d): budget for the larger of the two
    return _draw_in_chunks(trials, m, d, max_floats * d // max(m, d), g, max_coherence)


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


