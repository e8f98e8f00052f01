"""Cosines between directions: the exact law for random unit vectors, and the statistics of a
set of directions (an SAE's decoder rows) to compare with it.

Shared by two theory topics (superposition's interference mathematics and the SAE decoder-geometry
claims) and by figure 6, so it lives here, below both.

For u, v independent uniform on S^{d-1}, (1 + <u, v>)/2 ~ Beta((d-1)/2, (d-1)/2)
(:func:`inner_product_pdf`, :func:`inner_product_cdf`, :func:`inner_product_tail`). For m random
unit vectors every pairwise cosine t has E t = 0 and Var t = 1/d; distinct pairs are uncorrelated,
and so are their squares, so the mean of the M = m(m-1)/2 pair cosines has standard error
sqrt(1/(dM)) and the mean of their squares sqrt((3/(d(d+2)) - 1/d^2)/M)
(:func:`random_cosine_standard_errors`). Given one vector, its m - 1 |cosines| to the others are
i.i.d. with tail q(x) = P(|t| > x), so the k-th largest is below x with probability
P(Binomial(m - 1, q(x)) <= k - 1) (:func:`knn_cosine_quantile_random`).
"""
from __future__ import annotations

import math
from dataclasses import dataclass, field
from typing import Any, Sequence

import numpy as np
import scipy.optimize
import scipy.special
import scipy.stats
import torch

from .._validate import check_float, check_int
from ..device import derive_seed, make_generator, resolve_device

__all__ = [
    "KNN_KS",
    "CosineStats",
    "random_unit_vectors",
    "inner_product_pdf",
    "inner_product_cdf",
    "inner_product_tail",
    "pairwise_cosines",
    "decoder_cosine_stats",
    "random_direction_stats",
    "random_cosine_standard_errors",
    "knn_cosine_quantile_random",
]

_int = check_int  # numpy integers count as integers (bools and NaN do not)


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


KNN_KS = (1, 10, 100)
"""The neighbour ranks of seed 000's histograms: 1st, 10th and 100th largest |cos|."""


@dataclass
class CosineStats:
    """Cosine statistics of I sets of m directions in R^d (one set per instance).

    ``mean`` and ``second_moment`` run over the m(m−1)/2 distinct pairs (the second moment is
    the variance about the predicted mean 0); ``var`` is the sample variance about the sample
    mean. ``knn[k]`` (I, m) holds each direction's k-th largest |cos| to the others and
    ``knn_median[k]`` (I,) its median over the directions.
    """

    d: int
    m: int
    mean: np.ndarray
    second_moment: np.ndarray
    var: np.ndarray
    knn: dict[int, np.ndarray] = field(repr=False)
    knn_median: dict[int, np.ndarray]

    @property
    def n_pairs(self) -> int:
        return self.m * (self.m - 1) // 2


def _rows(directions: Any) -> torch.Tensor:
    """Directions as rows (I, m, d): an SAE's decoder rows, or a tensor (m, d) / (I, m, d)."""
    if hasattr(directions, "W_dec"):
        directions = directions.W_dec
    if not isinstance(directions, torch.Tensor):
        directions = torch.as_tensor(np.asarray(directions, dtype=np.float64))
    d = directions.detach()
    if d.ndim == 2:
        d = d[None]
    if d.ndim != 3:
        raise ValueError(f"directions must be rows shaped (m, d) or (I, m, d), or an SAE; got {tuple(d.shape)}")
    if d.shape[1] < 2:
        raise ValueError(f"cosine statistics need m >= 2 directions, got {d.shape[1]}")
    return d


@torch.no_grad()
def decoder_cosine_stats(directions: Any, ks: Sequence[int] = KNN_KS) -> CosineStats:
    """Pairwise-cosine statistics of decoder directions (seed 000's comparison with random ones).

    ``directions``: an SAE (its decoder rows ``W_dec``, (I, F, D)), or rows (m, d) / (I, m, d).
    ``ks``: neighbour ranks; those above m − 1 are skipped. The Gram matrix is computed once per
    instance (:func:`pairwise_cosines`), in float64.
    """
    rows = _rows(directions).double()
    n_i, m, d = rows.shape
    ks = sorted({check_int("k", int(k), 1) for k in ks if int(k) <= m - 1})
    C = pairwise_cosines(rows)  # (I, m, m)
    off = ~torch.eye(m, dtype=torch.bool, device=C.device)
    vals = C[:, off]  # (I, m(m−1)): each pair twice, same mean and moments
    mean = vals.mean(-1)
    second = vals.square().mean(-1)
    var = vals.var(-1, correction=0)
    knn: dict[int, np.ndarray] = {}
    if ks:
        A = C.abs().masked_fill(~off, -math.inf)
        top = A.topk(max(ks), dim=-1).values  # (I, m, kmax), descending
        for k in ks:
            knn[k] = top[..., k - 1].cpu().numpy()
    return CosineStats(
        d=d,
        m=m,
        mean=mean.cpu().numpy(),
        second_moment=second.cpu().numpy(),
        var=var.cpu().numpy(),
        knn=knn,
        knn_median={k: np.median(v, axis=-1) for k, v in knn.items()},
    )


def random_direction_stats(
    m: int,
    d: int,
    *,
    n_draws: int = 1,
    ks: Sequence[int] = KNN_KS,
    seed: int = 0,
    device: str | torch.device = "cpu",
) -> CosineStats:
    """:func:`decoder_cosine_stats` of ``n_draws`` independent sets of m uniform random unit
    vectors in R^d (the baseline "random directions" of seed 000), drawn on ``device``."""
    m, d = check_int("m", m, 2), check_int("d", d, 2)
    g = make_generator(derive_seed(seed, "random-directions", m, d), resolve_device(device))
    U = random_unit_vectors(m, d, batch=(check_int("n_draws", n_draws, 1),), generator=g, dtype=torch.float64)
    return decoder_cosine_stats(U, ks)


def random_cosine_standard_errors(m: int, d: int) -> dict[str, float]:
    """Exact standard errors, for m uniform random unit vectors in R^d, of the mean over the
    M = m(m−1)/2 pairs of the cosine t ("mean", sqrt(1/(dM))) and of t² ("second_moment",
    sqrt((3/(d(d+2)) − 1/d²)/M)); the pairs (and their squares) are uncorrelated."""
    m, d = check_int("m", m, 2), check_int("d", d, 2)
    M = m * (m - 1) / 2
    return {"mean": math.sqrt(1 / (d * M)), "second_moment": math.sqrt((3 / (d * (d + 2)) - 1 / d**2) / M)}


def knn_cosine_quantile_random(k: int, m: int, d: int, q: float = 0.5) -> float:
    """The q-quantile of one direction's k-th largest |cos| to the m − 1 others, for m uniform
    random unit vectors in R^d: the x solving P(Binomial(m − 1, P(|t| > x)) ≤ k − 1) = q
    (exact: given one vector, the others' |cosines| to it are i.i.d.). Brent's method on [0, 1]."""
    m, d = check_int("m", m, 2), check_int("d", d, 2)
    k = check_int("k", k, 1, m - 1)
    q = check_float("q", q, 0.0, 1.0, lo_open=True, hi_open=True)

    def f(x: float) -> float:
        return float(scipy.stats.binom.cdf(k - 1, m - 1, inner_product_tail(x, d))) - q

    return float(scipy.optimize.brentq(f, 0.0, 1.0, xtol=1e-12, rtol=1e-12))
