"""SAE decoder geometry against random directions, the Gated SAE's gate, and bound dictionaries.

Empirical claims, each a simulation with ``toymodels.sae`` compared with a stated prediction.
The experiment functions here are public: the claims and the figures (6, 7, 8) call the same
code, and every training run is one batched run over the instance axis (an L1 or k sweep, one
SAE per instance, all trained side by side).

Decoder geometry (:func:`decoder_cosine_stats`, :func:`random_direction_stats`,
:func:`random_cosine_standard_errors`, :func:`knn_cosine_quantile_random`). For m uniform random
unit vectors in R^d every pairwise cosine t has E t = 0 and Var t = 1/d; distinct pairs are
uncorrelated, and so are their squares (given u_i, the cosines to the others are independent
with conditional second moment 1/d), so the mean of the M = m(m−1)/2 pair cosines has standard
error sqrt(1/(dM)) and the mean of their squares sqrt((3/(d(d+2)) − 1/d²)/M). Given one
vector, its m − 1 |cosines| to the others are i.i.d. with the exact tail q(x) = P(|t| > x)
(:func:`theory.interference.inner_product_tail`), so the k-th largest is below x with
probability P(Binomial(m − 1, q(x)) ≤ k − 1): the exact law of the "k-th nearest neighbour"
statistic that seed 000 plots for k = 1, 10, 100.

Training and matched-L0 comparison (:func:`train_sae_sweep`, :class:`SweepResult`,
:func:`architecture_frontier`, :func:`dictionary_ratio_sweep`, :func:`interpolate_at_l0`,
:func:`common_l0_grid`, :func:`matched_l0`). SAEs trade sparsity against reconstruction, so two
architectures are only comparable at equal L0: each sweep's metric is interpolated linearly in
log L0 at common L0 values inside both sweeps' ranges (never extrapolated).

Bound data (:class:`BoundFeatures`, :func:`binding_error`, :func:`pairs_recovered`): H base
feature directions u_j and their partners v_j = u_j R for a fixed map R, each of the 2H features
firing independently — feature j "in slot 1" along u_j, "in slot 2" along u_j R (seed 004's
matrix-binding picture) — the data the ``bound`` SAE (W_dec = [W_half; W_half R_map]) is built
for. With H <= d any pairing of 2H directions is some linear map, so the binding only
constrains when H > d; the experiments use H = 2d.

Experiments shared by claims and figures: :func:`decoder_orthogonality_experiment` (claim
``interference.sae_decoder_orthogonality``, figure 6), :func:`gated_vs_rescaled_experiment`
(claim ``sae.gated_vs_rescaled``; figure 8 runs :func:`architecture_frontier` over all six
architectures), :func:`bound_dictionary_experiment` (claim ``sae.bound_dictionary``);
figure 7 runs :func:`dictionary_ratio_sweep`.

Findings at the default budget when this was written (the claims' records carry the numbers):
a toy SAE that recovers randomly embedded features has a decoder about as orthogonal as random
directions (seed 000's excess non-orthogonality does not appear); the Gated SAE has lower FVU
and less shrinkage than its gate-less twin at matched L0; a bound SAE started from random
initialisation does not find the binding (its halves mix slot-1 and slot-2 features) and
recovers fewer features than a plain SAE, although started at the truth it keeps the binding
and reconstructs better.
"""
from __future__ import annotations

import math
import time
from dataclasses import dataclass, field
from typing import Any, Callable, Sequence

import numpy as np
import scipy.optimize
import scipy.stats
import torch

from toymodels import SparseFeatures
from toymodels._validate import check_choice, check_float, check_int
from toymodels.device import derive_seed, make_generator, resolve_device
from toymodels.sae import SAEConfig, build_sae, evaluate_sae
from toymodels.sae.config import K_ARCHS
from toymodels.train import TrainConfig, train

from ..interference import inner_product_tail, pairwise_cosines, random_unit_vectors
from ..registry import Context, Result, claim, holds_if, within

__all__ = [
    "KNN_KS",
    "CosineStats",
    "decoder_cosine_stats",
    "random_direction_stats",
    "random_cosine_standard_errors",
    "knn_cosine_quantile_random",
    "SweepResult",
    "train_sae_sweep",
    "architecture_frontier",
    "dictionary_ratio_sweep",
    "interpolate_at_l0",
    "common_l0_grid",
    "matched_l0",
    "BoundFeatures",
    "binding_error",
    "pairs_recovered",
    "decoder_orthogonality_experiment",
    "gated_vs_rescaled_experiment",
    "bound_dictionary_experiment",
]

KNN_KS = (1, 10, 100)
"""The neighbour ranks of seed 000's histograms: 1st, 10th and 100th largest |cos|."""

_SE_TOL = 5.0  # Monte Carlo agreement: within 5 standard errors
_MEDIAN_REL_TOL = 0.05  # random k-th neighbour median vs the exact order-statistic median
_EXCEED_REL = 0.05  # "exceeds random": the SAE's median above random's by more than 5 %


# =============================================================================================
# Decoder geometry
# =============================================================================================


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
    instance (:func:`theory.interference.pairwise_cosines`), in float64.
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


# =============================================================================================
# Training sweeps and matched-L0 comparison
# =============================================================================================


@dataclass
class SweepResult:
    """One batched SAE run: instance i trained with ``values[i]`` of ``parameter``.

    Metrics are numpy arrays (I,) from :func:`toymodels.sae.evaluate_sae` on fresh samples;
    ``mmcs``/``mcc`` are None without ground truth. ``shrinkage`` is the relative
    reconstruction bias γ (< 1: x̂ too short). ``seconds`` is the wall time of the whole run,
    training and evaluation (a :meth:`select`-ed part keeps the whole run's).
    """

    arch: str
    parameter: str
    values: list[float]
    l0: np.ndarray
    fvu: np.ndarray
    shrinkage: np.ndarray
    dead_fraction: np.ndarray
    mmcs: np.ndarray | None
    mcc: np.ndarray | None
    seconds: float
    sae: Any = field(repr=False)

    def metric(self, name: str) -> np.ndarray:
        v = getattr(self, name)
        if v is None:
            raise ValueError(f"{name} was not measured (no ground truth)")
        return v

    def at_l0(self, name: str, targets: Any) -> np.ndarray:
        """``name`` interpolated at L0 ``targets`` (:func:`interpolate_at_l0`)."""
        return interpolate_at_l0(self.l0, self.metric(name), targets)

    def select(self, index: Sequence[int]) -> "SweepResult":
        """The chosen instances as a sweep of their own (metrics sliced, SAE subset)."""
        idx = [int(i) for i in index]
        cut = lambda v: None if v is None else v[idx]  # noqa: E731
        return SweepResult(self.arch, self.parameter, [self.values[i] for i in idx], cut(self.l0), cut(self.fvu),
                           cut(self.shrinkage), cut(self.dead_fraction), cut(self.mmcs), cut(self.mcc),
                           self.seconds, self.sae.subset(idx))

    def summary(self, digits: int = 4) -> dict[str, list]:
        """JSON-ready rounded lists, for a claim's ``observed``."""
        out = {self.parameter: [round(float(v), 6) for v in self.values]}
        for name in ("l0", "fvu", "shrinkage", "mmcs", "dead_fraction"):
            v = getattr(self, name)
            if v is not None:
                out[name] = [round(float(x), digits) for x in v]
        return out


def train_sae_sweep(
    source: Any,
    *,
    arch: str = "relu",
    dict_size: int,
    l1_coefficient: Sequence[float] | None = None,
    k: Sequence[int] | None = None,
    steps: int = 2000,
    batch_size: int = 1024,
    lr: float = 1e-3,
    seed: int = 0,
    truth: Any = "auto",
    eval_samples: int = 8192,
    quiet: bool = True,
    init: Callable[[Any], None] | None = None,
    **sae_options: Any,
) -> SweepResult:
    """Train one SAE per sweep value, all as instances of ONE batched run, and evaluate them.

    ``l1_coefficient`` (the sparsity coefficient: L1 for relu/gated/rescaled/bound, L0 for
    jumprelu) or ``k`` (topk/batchtopk) gives one value per instance. The SAE lives on the
    source's device with ``d_model = source.dim``; ``truth`` (rows (1 or I, N, D), "auto" or
    None) is passed to :func:`toymodels.sae.evaluate_sae`; ``sae_options`` go to
    :class:`toymodels.sae.SAEConfig`. ``init(sae)``, if given, may overwrite parameters of the
    freshly built SAE (under ``torch.no_grad``) before training, e.g. to start some instances
    at the ground truth.
    """
    if (k is None) == (l1_coefficient is None):
        raise ValueError("give exactly one of l1_coefficient (a sweep of penalties) or k (a sweep of k)")
    if arch in K_ARCHS and k is None:
        raise ValueError(f"arch {arch!r} sweeps k, not l1_coefficient")
    if arch not in K_ARCHS and l1_coefficient is None:
        raise ValueError(f"arch {arch!r} sweeps l1_coefficient, not k")
    if k is not None:
        parameter, values = "k", [int(v) for v in k]
    else:
        parameter, values = "l1_coefficient", [float(v) for v in l1_coefficient]
    if not values:
        raise ValueError(f"the {parameter} sweep is empty")
    cfg = SAEConfig(arch=arch, d_model=source.dim, dict_size=dict_size, n_instances=len(values),
                    **{parameter: tuple(values)}, **sae_options)
    sae = build_sae(cfg, seed=seed, device=source.device)
    if init is not None:
        with torch.no_grad():
            init(sae)
    t0 = time.perf_counter()
    train(sae, source, TrainConfig(steps=steps, batch_size=batch_size, lr=lr, quiet=quiet,
                                   eval_samples=min(eval_samples, 4096)), desc=f"sae {arch}")
    ev = evaluate_sae(sae, source, n_samples=eval_samples, truth=truth)
    seconds = time.perf_counter() - t0
    arr = lambda name: np.asarray(ev[name], dtype=np.float64) if name in ev else None  # noqa: E731
    return SweepResult(arch, parameter, values, arr("l0"), arr("fvu"), arr("shrinkage"), arr("dead_fraction"),
                       arr("mmcs"), arr("mcc"), seconds, sae)


def architecture_frontier(
    source: Any,
    sweeps: dict[str, Sequence[float]],
    *,
    dict_size: int,
    arch_options: dict[str, dict[str, Any]] | None = None,
    **options: Any,
) -> dict[str, SweepResult]:
    """One :func:`train_sae_sweep` per architecture: ``sweeps`` maps an architecture to its
    sweep values (k for topk/batchtopk, the penalty coefficient otherwise); ``options`` (steps,
    batch_size, seed, truth, …) are shared and ``arch_options[arch]`` adds SAEConfig options
    for one architecture (e.g. JumpReLU's initial threshold). Returns {arch: SweepResult}."""
    out = {}
    for arch, values in sweeps.items():
        key = "k" if arch in K_ARCHS else "l1_coefficient"
        extra = (arch_options or {}).get(arch, {})
        out[arch] = train_sae_sweep(source, arch=arch, dict_size=dict_size, **{key: values}, **options, **extra)
    return out


def dictionary_ratio_sweep(
    source: Any,
    ratios: Sequence[float],
    l1_coefficient: Sequence[float],
    *,
    n_features: int,
    arch: str = "relu",
    **options: Any,
) -> dict[float, SweepResult]:
    """Sharkey, Braun & Millidge (2022)'s grid: for each dictionary ratio r one L1 sweep (one
    run, one instance per coefficient) with ``dict_size = round(r · n_features)``; ``options``
    go to :func:`train_sae_sweep`. Returns {ratio: SweepResult}."""
    out = {}
    for r in ratios:
        f = max(1, int(round(float(r) * n_features)))
        out[float(r)] = train_sae_sweep(source, arch=arch, dict_size=f, l1_coefficient=l1_coefficient, **options)
    return out


def interpolate_at_l0(l0: Any, values: Any, targets: Any) -> np.ndarray:
    """``values`` measured at ``l0`` (one per instance), linearly interpolated in log L0 at the
    ``targets``; NaN outside [min L0, max L0] (no extrapolation). Instances with L0 <= 0 or a
    non-finite value are dropped; instances sharing an L0 are averaged."""
    l0 = np.asarray(l0, dtype=np.float64).ravel()
    y = np.asarray(values, dtype=np.float64).ravel()
    if l0.shape != y.shape:
        raise ValueError(f"l0 and values must have the same length, got {l0.size} and {y.size}")
    t = np.asarray(targets, dtype=np.float64)
    ok = np.isfinite(l0) & np.isfinite(y) & (l0 > 0)
    if not ok.any():
        return np.full(t.shape, np.nan)
    x, inv = np.unique(np.log(l0[ok]), return_inverse=True)
    yy = np.bincount(inv, weights=y[ok]) / np.bincount(inv)
    with np.errstate(divide="ignore", invalid="ignore"):
        lt = np.log(t)
    out = np.interp(lt, x, yy)
    inside = np.isfinite(lt) & (lt >= x[0] - 1e-12) & (lt <= x[-1] + 1e-12)
    return np.where(inside, out, np.nan)


def common_l0_grid(*l0s: Any, n: int = 5, lo: float | None = None, hi: float | None = None) -> np.ndarray:
    """``n`` geometrically spaced L0 values inside every sweep's L0 range (optionally clipped to
    [lo, hi]); empty when the ranges do not overlap."""
    n = check_int("n", n, 1)
    a = max(float(np.min(np.asarray(v)[np.asarray(v) > 0])) for v in l0s)
    b = min(float(np.max(v)) for v in l0s)
    if lo is not None:
        a = max(a, lo)
    if hi is not None:
        b = min(b, hi)
    if not a < b:
        return np.array([a]) if a == b else np.array([])
    # stay a hair inside the range so floating-point logs never push an end outside it
    return np.geomspace(a * (1 + 1e-9), b * (1 - 1e-9), n)


def matched_l0(
    results: dict[str, SweepResult],
    metrics: Sequence[str] = ("fvu", "shrinkage"),
    *,
    n: int = 5,
    lo: float | None = None,
    hi: float | None = None,
) -> dict[str, Any]:
    """Every sweep's ``metrics`` at common L0 values (:func:`common_l0_grid` over all of them).
    Returns {"l0": targets, metric: {arch: values at the targets}}."""
    targets = common_l0_grid(*(r.l0 for r in results.values()), n=n, lo=lo, hi=hi)
    out: dict[str, Any] = {"l0": targets}
    for m in metrics:
        out[m] = {name: r.at_l0(m, targets) for name, r in results.items()}
    return out


# =============================================================================================
# Bound features (seed 004)
# =============================================================================================


class BoundFeatures:
    """Sparse features whose second half is a fixed linear map of the first (a data source).

    H = ``n_base`` base directions u_j (uniform random unit vectors in R^d) and their partners
    v_j = u_j R (row vectors; R a fixed random rotation, or with ``binding="gaussian"`` a
    Gaussian matrix scaled by 1/sqrt(d)). The 2H features — u_j ("feature j in slot 1") and v_j
    ("feature j in slot 2") — fire independently, slot 1 with probability p, slot 2 with
    ``slot2_ratio``·p, magnitudes as in :class:`toymodels.SparseFeatures`; a sample is
    x = Σ_j a_j u_j + Σ_j b_j v_j. :attr:`directions` (1, 2H, d) are the ground-truth rows in
    the layout of the ``bound`` SAE (first half, then partners, same order), :attr:`binding`
    the map R (d, d). Sampling goes through :meth:`SparseFeatures.sample_coo`, so it costs in
    proportion to the active features and trains with :func:`toymodels.train.train`.
    """

    n_instances = 1

    def __init__(
        self,
        n_base: int,
        d: int,
        feature_probability: float,
        *,
        slot2_ratio: float = 1.0,
        binding: str = "rotation",
        magnitude: str = "uniform",
        seed: int = 0,
        device: str | torch.device = "cpu",
    ) -> None:
        self.n_base = check_int("n_base", n_base, 1)
        self.dim = check_int("d", d, 2)
        p = check_float("feature_probability", feature_probability, 0.0, 1.0)
        self.slot2_ratio = check_float("slot2_ratio", slot2_ratio, 0.0, math.inf)
        if p * self.slot2_ratio > 1:
            raise ValueError(f"slot2_ratio · feature_probability must be <= 1, got {p * self.slot2_ratio}")
        self.binding_kind = check_choice("binding", binding, ("rotation", "gaussian"))
        self.seed = check_int("seed", seed, 0)
        self.device = resolve_device(device)
        probs = torch.cat([torch.full((n_base,), p), torch.full((n_base,), p * self.slot2_ratio)])[None]
        self.features = SparseFeatures(2 * n_base, probs, magnitude=magnitude, seed=seed, device=self.device)
        g = make_generator(derive_seed(seed, "bound-features"), self.device)
        base = random_unit_vectors(n_base, self.dim, generator=g)
        A = torch.randn(self.dim, self.dim, generator=g, device=self.device)
        if binding == "rotation":
            q, r = torch.linalg.qr(A)
            s = torch.sign(torch.diagonal(r))
            A = q * torch.where(s == 0, torch.ones_like(s), s)
        else:
            A = A / math.sqrt(self.dim)
        self.binding = A
        self.directions = torch.cat([base, base @ A])[None]  # (1, 2H, d)
        self.feature_probability = p

    @property
    def n_features(self) -> int:
        return 2 * self.n_base

    @property
    def expected_l0(self) -> float:
        return self.n_base * self.feature_probability * (1 + self.slot2_ratio)

    def sample(self, batch_size: int) -> torch.Tensor:
        """A batch (1, B, d)."""
        return self.features.sample_coo(batch_size).embed(self.directions)

    def get_state(self) -> torch.Tensor:
        return self.features.get_state()

    def set_state(self, state: torch.Tensor) -> None:
        self.features.set_state(state)

    def spec(self) -> dict[str, Any]:
        return {"kind": "bound-features", "n_base": self.n_base, "d": self.dim,
                "feature_probability": self.feature_probability, "slot2_ratio": self.slot2_ratio,
                "binding": self.binding_kind, "magnitude": self.features.magnitude, "seed": self.seed}


@torch.no_grad()
def binding_error(sae: Any, source: BoundFeatures) -> np.ndarray:
    """How well a ``bound`` SAE's learned map reproduces the data's binding, per instance (I,):
    ||U (R_map − R)||_F / ||U R||_F over the true base directions U (H, d) — the relative error
    of the partners u_j R_map the SAE would predict for the true slot-1 features (R is only
    identified on the span of U)."""
    U = source.directions[0, : source.n_base].to(sae.dtype)
    R = source.binding.to(sae.dtype)
    diff = torch.einsum("hd,ide->ihe", U, sae.R_map_IDD.detach() - R[None])
    return (diff.flatten(1).norm(dim=-1) / (U @ R).norm()).cpu().numpy()


@torch.no_grad()
def pairs_recovered(sae: Any, source: BoundFeatures, threshold: float = 0.9) -> np.ndarray:
    """Fraction of the true bound pairs (u_a, u_a R) that some latent pair (j, H + j) of a
    ``bound`` SAE matches, both cosines >= ``threshold``; per instance (I,)."""
    h = source.n_base
    truth = source.directions.expand(sae.n_instances, -1, -1).to(sae.dtype)
    cos = pairwise_cosines(torch.cat([sae.W_dec.detach(), truth], 1))
    fh = sae.dict_size // 2
    first = cos[:, :fh, 2 * fh : 2 * fh + h]  # first-half latents vs slot-1 features (I, F/2, H)
    second = cos[:, fh : 2 * fh, 2 * fh + h :]  # their partners vs slot-2 features
    both = (first >= threshold) & (second >= threshold)  # latent pair j matches true pair a
    return both.any(dim=1).double().mean(dim=-1).cpu().numpy()


# =============================================================================================
# Experiments (shared by the claims and the figures)
# =============================================================================================


def decoder_orthogonality_experiment(
    *,
    n_features: int = 128,
    d: int = 32,
    dict_size: int = 128,
    expected_l0: float = 3.0,
    l1_coefficient: Sequence[float] = (0.03, 0.1, 0.3, 1.0),
    steps: int = 3000,
    batch_size: int = 1024,
    ks: Sequence[int] = KNN_KS,
    n_random: int = 8,
    seed: int = 0,
    device: str | torch.device = "cpu",
) -> dict[str, Any]:
    """Seed 000's comparison on a toy SAE: train a relu SAE L1 sweep (one run) on
    ``n_features`` sparse features embedded at random unit directions in R^d, and compute the
    decoder-cosine statistics of each instance, of the ground-truth directions, and of
    ``n_random`` draws of ``dict_size`` random unit vectors in R^d, plus the exact medians of
    the k-th neighbour statistic for random directions. Returns {"sweep", "sae", "truth",
    "random", "predicted_median", "d", "m"}."""
    dev = resolve_device(device)
    src = SparseFeatures(n_features, expected_l0 / n_features, d_embed=d, seed=seed, device=dev)
    sweep = train_sae_sweep(src, arch="relu", dict_size=dict_size, l1_coefficient=l1_coefficient,
                            steps=steps, batch_size=batch_size, seed=seed)
    ks = [k for k in ks if k <= dict_size - 1]
    return {
        "sweep": sweep,
        "sae": decoder_cosine_stats(sweep.sae, ks),
        "truth": decoder_cosine_stats(src.directions, [k for k in ks if k <= n_features - 1]),
        "random": random_direction_stats(dict_size, d, n_draws=n_random, ks=ks, seed=seed, device=dev),
        "predicted_median": {k: knn_cosine_quantile_random(k, dict_size, d) for k in ks},
        "d": d,
        "m": dict_size,
    }


def gated_vs_rescaled_experiment(
    *,
    n_features: int = 64,
    d: int = 32,
    dict_size: int = 128,
    expected_l0: float = 3.0,
    l1_coefficient: Sequence[float] = tuple(np.geomspace(0.1, 3.0, 6)),
    steps: int = 2000,
    batch_size: int = 512,
    n_points: int = 5,
    seed: int = 0,
    device: str | torch.device = "cpu",
) -> dict[str, Any]:
    """Gated vs rescaled SAEs (the same three-term loss, with and without the Heaviside gate)
    on sparse features embedded in R^d: the same L1 sweep for both (one run each), then FVU,
    shrinkage and MMCS interpolated at ``n_points`` common L0 values inside both sweeps' ranges
    and [E[L0]/2, 4·E[L0]] (between an SAE that drops most features and one that fires far
    more latents than there are active features). Returns {"results", "matched"}."""
    src = SparseFeatures(n_features, expected_l0 / n_features, d_embed=d, seed=seed, device=resolve_device(device))
    results = architecture_frontier(src, {"gated": l1_coefficient, "rescaled": l1_coefficient}, dict_size=dict_size,
                                    steps=steps, batch_size=batch_size, seed=seed)
    matched = matched_l0(results, ("fvu", "shrinkage", "mmcs"), n=n_points, lo=expected_l0 / 2, hi=4 * expected_l0)
    return {"results": results, "matched": matched}


def bound_dictionary_experiment(
    *,
    n_base: int = 32,
    d: int = 16,
    expected_l0: float = 3.0,
    slot2_ratio: float = 1.0,
    dict_size: int | None = None,
    l1_coefficient: Sequence[float] = (0.1, 0.2, 0.4, 0.8),
    steps: int = 2000,
    batch_size: int = 512,
    oracle: bool = True,
    n_points: int = 5,
    seed: int = 0,
    device: str | torch.device = "cpu",
) -> dict[str, Any]:
    """A ``bound`` SAE against a plain ``relu`` SAE on :class:`BoundFeatures` data (2·n_base
    features in R^d, E[L0] = ``expected_l0``), the same L1 sweep for both (one run each).

    With ``oracle`` the bound run has twice the instances: the sweep from random
    initialisation, then the same sweep started AT the ground truth (W_half = U, R_map = R,
    encoder = decoderᵀ) — a control that separates what the bound objective prefers from what
    gradient descent finds. ``dict_size`` defaults to the number of true features.
    Returns {"source", "results" ({"bound", "relu"} and "bound_oracle"), "matched" (MMCS, FVU,
    shrinkage at common L0), "binding_error" and "pairs_recovered" (per bound sweep)}.
    """
    p = expected_l0 / (n_base * (1 + slot2_ratio))
    src = BoundFeatures(n_base, d, p, slot2_ratio=slot2_ratio, seed=seed, device=device)
    f = dict_size or src.n_features
    l1 = [float(v) for v in l1_coefficient]
    n = len(l1)
    opts = dict(dict_size=f, steps=steps, batch_size=batch_size, seed=seed, truth=src.directions)

    def start_at_truth(sae: Any) -> None:
        if f != src.n_features:
            raise ValueError("the oracle start needs dict_size = 2 * n_base")
        sae.W_half_IHD[n:] = src.directions[0, : src.n_base]
        sae.R_map_IDD[n:] = src.binding
        sae.W_enc_IDF[n:] = sae.W_dec[n:].transpose(1, 2)

    bound = train_sae_sweep(src, arch="bound", l1_coefficient=l1 + l1 if oracle else l1,
                            init=start_at_truth if oracle else None, **opts)
    results = {"bound": bound.select(range(n)) if oracle else bound,
               "relu": train_sae_sweep(src, arch="relu", l1_coefficient=l1, **opts)}
    if oracle:
        results["bound_oracle"] = bound.select(range(n, 2 * n))
    bound_runs = [k for k in results if k.startswith("bound")]
    return {
        "source": src,
        "results": results,
        "matched": matched_l0(results, ("mmcs", "fvu", "shrinkage"), n=n_points,
                              lo=expected_l0 / 2, hi=4 * expected_l0),
        "binding_error": {k: binding_error(results[k].sae, src) for k in bound_runs},
        "pairs_recovered": {k: pairs_recovered(results[k].sae, src) for k in bound_runs},
    }


# =============================================================================================
# Claims
# =============================================================================================


def _r(x: Any, digits: int = 4) -> Any:
    """Rounded plain floats (lists for arrays), NaN kept."""
    a = np.asarray(x, dtype=np.float64)
    if a.ndim == 0:
        return round(float(a), digits)
    return [round(float(v), digits) for v in a.ravel()]


def _orthogonality_reading(ok: bool, ratio: dict, var_d: float, sweep: SweepResult, sae: CosineStats,
                           pred: dict, ks: list) -> str:
    """One data-driven sentence on what the SAE's decoder geometry shows."""
    if ok:
        return "As reported for the language-model SAE, the decoder is less orthogonal than random directions."
    near = all(abs(r - 1) <= 0.15 for r in ratio.values()) and abs(var_d - 1) <= 0.15
    low = int(np.argmin(sweep.values))
    low_r = ", ".join(f"{float(sae.knn_median[k][low]) / pred[k]:.2f}" for k in ks)
    head = ("The best instance's decoder is about as orthogonal as random directions (within 15%), as are "
            "the random ground-truth directions it recovers: here the geometry is inherited from the data, "
            "so excess non-orthogonality is not a generic product of SAE training"
            if near else "The best instance's statistics do not all exceed the random ones")
    return (f"{head}. The least sparse instance (λ = {sweep.values[low]:.3g}, L0 {sweep.l0[low]:.1f}) has "
            f"k-th neighbour ratios {low_r} (k = {', '.join(map(str, ks))}) and cosine variance "
            f"{float(sae.second_moment[low]) * sae.d:.2f}/d.")


@claim(
    "interference.sae_decoder_orthogonality",
    status="empirical",
    statement="""The decoder directions of a trained SAE are less orthogonal than random unit vectors
    in the same dimension d. Baseline (exact): m uniform random unit vectors in R^d have pairwise
    cosines with mean 0 and variance 1/d, and each vector's k-th largest |cos| to the other m - 1
    follows the Binomial order statistic of the exact Beta law (sampled means within 5 standard
    errors, sampled k-th neighbour medians within 5% of the exact median). Prediction (reported for
    an SAE on GPT-2 small's residual stream): the SAE's cosines have a variance above 1/d and its
    1st, 10th and 100th nearest-neighbour |cos| medians exceed the random ones by more than 5%.
    Tested on a ReLU SAE L1 sweep (one batched run) trained on sparse features embedded at random
    unit directions, at the instance that recovers the true features best (highest MMCS).""",
    source="Seed 000 (jacobcd52, comments on 'Do sparse autoencoders find \"true features\"?' and on "
    "an open-source replication of Bricken et al. 2023: decoder max-cos histograms at k = 1, 10, 100; "
    "cosine variance about 4/d).",
)
def _check_sae_decoder_orthogonality(ctx: Context) -> Result:
    kw = ctx.pick(
        dict(n_features=128, d=16, dict_size=128, l1_coefficient=(0.1, 0.3), steps=400, batch_size=256, n_random=2),
        dict(n_features=128, d=32, dict_size=128, l1_coefficient=(0.03, 0.1, 0.3, 1.0), steps=2000,
             batch_size=512, n_random=8),
        dict(n_features=256, d=64, dict_size=256, l1_coefficient=(0.03, 0.1, 0.3, 1.0), steps=8000,
             batch_size=1024, n_random=32),
    )
    ex = decoder_orthogonality_experiment(**kw, seed=ctx.seed, device=ctx.device)
    d, m, n_random = ex["d"], ex["m"], kw["n_random"]
    pred = ex["predicted_median"]
    ks = sorted(pred)
    rnd, sae, truth, sweep = ex["random"], ex["sae"], ex["truth"], ex["sweep"]
    # 1. the random baseline against its exact law (pooled over the independent draws)
    se = random_cosine_standard_errors(m, d)
    z_mean = abs(float(rnd.mean.mean())) / (se["mean"] / math.sqrt(n_random))
    z_second = abs(float(rnd.second_moment.mean()) - 1 / d) / (se["second_moment"] / math.sqrt(n_random))
    rnd_median = {k: float(np.median(rnd.knn[k])) for k in ks}
    rnd_rel = {k: rnd_median[k] / pred[k] - 1 for k in ks}
    random_ok = (z_mean <= _SE_TOL and z_second <= _SE_TOL
                 and all(within(pred[k], rnd_median[k], rel=_MEDIAN_REL_TOL) for k in ks))
    # 2. the SAE instance that recovered the features best
    best = int(np.nanargmax(sweep.mmcs))
    ratio = {k: float(sae.knn_median[k][best]) / pred[k] for k in ks}
    z_var = (float(sae.second_moment[best]) - 1 / d) / se["second_moment"]
    exceeds = {f"k={k}": ratio[k] > 1 + _EXCEED_REL for k in ks}
    sae_less_orthogonal = all(exceeds.values()) and z_var > _SE_TOL
    ok = random_ok and sae_less_orthogonal
    per_instance = {
        "l1_coefficient": _r(sweep.values, 6), "l0": _r(sweep.l0, 3), "mmcs": _r(sweep.mmcs),
        "cos_mean": _r(sae.mean, 5), "cos_second_moment_times_d": _r(sae.second_moment * d),
        **{f"knn{k}_median_over_random": _r(sae.knn_median[k] / pred[k]) for k in ks},
    }
    return Result(
        holds_if(ok),
        predicted={"random": {"cos_mean": 0.0, "cos_second_moment": 1 / d,
                              **{f"knn{k}_median": pred[k] for k in ks}},
                   "sae_best_instance": {"cos_second_moment_times_d": "> 1",
                                         **{f"knn{k}_median_over_random": f"> {1 + _EXCEED_REL}" for k in ks}}},
        observed={"random": {"cos_mean": float(rnd.mean.mean()), "cos_second_moment": float(rnd.second_moment.mean()),
                             "z_mean": z_mean, "z_second_moment": z_second,
                             **{f"knn{k}_median": rnd_median[k] for k in ks}},
                  "sae_best_instance": {"index": best, "l1_coefficient": sweep.values[best],
                                        "mmcs": float(sweep.mmcs[best]), "l0": float(sweep.l0[best]),
                                        "cos_second_moment_times_d": float(sae.second_moment[best] * d), "z_var": z_var,
                                        **{f"knn{k}_median_over_random": ratio[k] for k in ks}, "exceeds": exceeds},
                  "sae_all_instances": per_instance,
                  "ground_truth": {"cos_second_moment_times_d": float(truth.second_moment[0] * d),
                                   **{f"knn{k}_median_over_random": float(truth.knn_median[k][0]) / pred[k]
                                      for k in ks if k in truth.knn_median and truth.m == m}},
                  "random_baseline_ok": random_ok},
        tolerance={"z": _SE_TOL, "random_knn_median_rel": _MEDIAN_REL_TOL, "exceeds_rel": _EXCEED_REL},
        detail=(
            f"ReLU SAE, F = {m} latents on {kw['n_features']} sparse features (E[L0] = 3) embedded at random unit "
            f"directions in d = {d}; L1 sweep {list(kw['l1_coefficient'])} as {len(sweep.values)} instances of one "
            f"run ({kw['steps']} steps, {sweep.seconds:.1f} s on {ctx.device}). Random baseline, {n_random} draws of "
            f"{m} vectors: |z| = {z_mean:.2f} (mean), {z_second:.2f} (mean square vs 1/d); k-th neighbour medians "
            "off the exact order-statistic median by "
            + ", ".join(f"{100 * rnd_rel[k]:+.1f}% (k={k})" for k in ks)
            + f". Best SAE instance (λ = {sweep.values[best]:.3g}, MMCS {sweep.mmcs[best]:.3f}, "
            f"L0 {sweep.l0[best]:.2f}): "
            f"cosine variance {sae.second_moment[best] * d:.3f}/d, k-th neighbour median / random "
            + ", ".join(f"{ratio[k]:.3f} (k={k})" for k in ks)
            + f". {_orthogonality_reading(ok, ratio, float(sae.second_moment[best] * d), sweep, sae, pred, ks)}"
        ),
    )


@claim(
    "sae.gated_vs_rescaled",
    status="empirical",
    statement="""The Heaviside gate of the Gated SAE matters: against the same three-term loss
    without the gate ('rescaled': code exp(r_mag) * ReLU(pi_gate), so a latent's code grows
    continuously from zero), the Gated SAE has lower FVU and no more shrinkage (|1 - gamma|, gamma the
    relative reconstruction bias) at every common L0 between E[L0]/2 and 4 E[L0]. Both are trained
    as one L1 sweep each (same coefficients) on sparse features embedded in R^d; FVU and gamma are
    interpolated linearly in log L0 at common L0 values.""",
    source="Seed 000 (jacobcd52's question under 'Improving Dictionary Learning with Gated Sparse "
    "Autoencoders', Rajamanoharan et al. 2024); shrinkage measure from Wright & Sharkey 2024.",
)
def _check_gated_vs_rescaled(ctx: Context) -> Result:
    kw = ctx.pick(
        dict(n_features=32, d=12, dict_size=64, expected_l0=2.0, l1_coefficient=tuple(np.geomspace(0.1, 3.0, 4)),
             steps=600, batch_size=256),
        dict(n_features=48, d=16, dict_size=96, expected_l0=3.0, l1_coefficient=tuple(np.geomspace(0.1, 3.0, 6)),
             steps=1500, batch_size=512),
        dict(n_features=128, d=32, dict_size=256, expected_l0=3.0, l1_coefficient=tuple(np.geomspace(0.05, 3.0, 10)),
             steps=4000, batch_size=1024),
    )
    ex = gated_vs_rescaled_experiment(**kw, seed=ctx.seed, device=ctx.device)
    res, mt = ex["results"], ex["matched"]
    l0 = mt["l0"]
    fg, fr = mt["fvu"]["gated"], mt["fvu"]["rescaled"]
    sg, sr = np.abs(1 - mt["shrinkage"]["gated"]), np.abs(1 - mt["shrinkage"]["rescaled"])
    tol = 1e-3  # γ is measured on 8192 samples; differences below this are noise
    fvu_lower = bool(len(l0) and np.all(fg < fr))
    less_shrinkage = bool(len(l0) and np.all(sg <= sr + tol))
    ok = fvu_lower and less_shrinkage
    fmt = lambda a, n=3: ", ".join(f"{v:.{n}f}" for v in a)  # noqa: E731
    return Result(
        holds_if(ok),
        predicted={"fvu_gated_below_rescaled_at_every_L0": True, "abs_1_minus_gamma_gated_at_most_rescaled": True},
        observed={"l0": _r(l0, 3), "fvu": {"gated": _r(fg), "rescaled": _r(fr)},
                  "gamma": {"gated": _r(mt["shrinkage"]["gated"]), "rescaled": _r(mt["shrinkage"]["rescaled"])},
                  "mmcs": {"gated": _r(mt["mmcs"]["gated"]), "rescaled": _r(mt["mmcs"]["rescaled"])},
                  "fvu_gated_below_rescaled_at_every_L0": fvu_lower,
                  "abs_1_minus_gamma_gated_at_most_rescaled": less_shrinkage,
                  "sweeps": {a: r.summary() for a, r in res.items()}},
        tolerance={"gamma_abs": tol, "l0_range": [kw["expected_l0"] / 2, 4 * kw["expected_l0"]]},
        detail=(
            f"{kw['n_features']} sparse features (E[L0] = {kw['expected_l0']}) at random unit directions in "
            f"d = {kw['d']}, "
            f"F = {kw['dict_size']}; λ in {_r(kw['l1_coefficient'], 3)} for both ({kw['steps']} steps; "
            f"{res['gated'].seconds:.1f} s gated, {res['rescaled'].seconds:.1f} s rescaled on {ctx.device}). "
            + (f"At L0 = {fmt(l0, 2)}: FVU gated {fmt(fg)} vs rescaled {fmt(fr)}; γ gated "
               f"{fmt(mt['shrinkage']['gated'])} vs rescaled {fmt(mt['shrinkage']['rescaled'])}. "
               if len(l0) else "The sweeps' L0 ranges do not overlap inside [E[L0]/2, 4 E[L0]]: nothing to compare. ")
            + ("The gate helps here. A likely reason: without it the code is exp(r_mag)·ReLU(h + b_gate), so "
               "the negative bias that keeps a latent sparse also subtracts a fixed amount from every code it "
               "emits (an additive shrinkage that a multiplicative rescale cannot undo); the gate gives the "
               "magnitude path its own bias b_mag."
               if ok else
               f"The prediction fails here: gated FVU lower at every L0: {fvu_lower}; gated |1 − γ| no larger at "
               f"every L0: {less_shrinkage}.")
        ),
    )


def _bound_reading(ok: bool, mmcs_ok: bool, bind_ok: bool, ex: dict, mt: dict) -> str:
    """One data-driven sentence on what the bound-dictionary comparison shows."""
    if ok:
        return "The bound SAE finds the binding from random initialisation and matches the plain SAE."
    pr = float(np.max(ex["pairs_recovered"]["bound"]))
    oracle_better = bool(np.all(mt["fvu"]["bound_oracle"] <= mt["fvu"]["relu"]))
    parts = [f"The prediction fails: MMCS within tolerance of relu at every L0: {mmcs_ok}; binding learned: {bind_ok}."]
    if pr < 0.1:
        parts.append(f"From random initialisation at most {100 * pr:.0f}% of the true pairs sit on one latent pair: "
                     "the first half mixes slot-1 and slot-2 features, which no single linear map can pair when H > d.")
    if oracle_better and float(np.min(ex["pairs_recovered"]["bound_oracle"])) > 0.9:
        parts.append("Started at the truth the bound SAE keeps the pairs and has lower FVU than relu at every "
                     "common L0, so the bound objective does prefer the binding: gradient descent from random "
                     "initialisation does not find it.")
    return " ".join(parts)


@claim(
    "sae.bound_dictionary",
    status="empirical",
    statement="""On data whose true dictionary is bound - 2H feature directions whose second half is a
    fixed linear map R of the first (u_j and u_j R, each feature firing independently, H > d so that
    the binding constrains) - an SAE with the bound decoder [W; W R_map], trained from random
    initialisation, recovers the features at least as well as a plain ReLU SAE of the same size at
    equal L0 (MMCS no more than 0.02 lower at every common L0 between E[L0]/2 and 4 E[L0]) and learns
    the binding (relative error of U R_map against U R below 0.25 at its best instance). A control
    starts the bound SAE at the ground truth.""",
    source="Seed 004 (Lucius Bushnaq: an SAE whose dictionary's second half is a learned linear map "
    "of the first, to test for matrix binding).",
)
def _check_bound_dictionary(ctx: Context) -> Result:
    kw = ctx.pick(
        dict(n_base=16, d=8, expected_l0=2.0, l1_coefficient=(0.1, 0.3, 0.9), steps=600, batch_size=256),
        dict(n_base=32, d=16, expected_l0=3.0, l1_coefficient=(0.1, 0.2, 0.4, 0.8), steps=2000, batch_size=512),
        dict(n_base=96, d=32, expected_l0=3.0, l1_coefficient=(0.05, 0.1, 0.2, 0.4, 0.8, 1.6), steps=8000,
             batch_size=1024),
    )
    ex = bound_dictionary_experiment(**kw, seed=ctx.seed, device=ctx.device)
    res, mt = ex["results"], ex["matched"]
    l0 = mt["l0"]
    mb, mr, mo = mt["mmcs"]["bound"], mt["mmcs"]["relu"], mt["mmcs"]["bound_oracle"]
    tol_mmcs, tol_bind = 0.02, 0.25
    mmcs_ok = bool(len(l0) and np.all(mb >= mr - tol_mmcs))
    bind = ex["binding_error"]
    best_bind = float(np.min(bind["bound"]))
    bind_ok = best_bind < tol_bind
    ok = mmcs_ok and bind_ok
    fmt = lambda a: ", ".join(f"{v:.3f}" for v in a)  # noqa: E731
    return Result(
        holds_if(ok),
        predicted={"mmcs_bound_minus_relu_at_every_L0": f">= -{tol_mmcs}", "best_binding_error": f"< {tol_bind}"},
        observed={"l0": _r(l0, 3), "mmcs": {k: _r(v) for k, v in mt["mmcs"].items()},
                  "fvu": {k: _r(v) for k, v in mt["fvu"].items()},
                  "binding_error": {k: _r(v) for k, v in bind.items()},
                  "pairs_recovered": {k: _r(v) for k, v in ex["pairs_recovered"].items()},
                  "best_binding_error": best_bind, "mmcs_ok": mmcs_ok,
                  "sweeps": {a: r.summary() for a, r in res.items()}},
        tolerance={"mmcs": tol_mmcs, "binding_error": tol_bind,
                   "l0_range": [kw["expected_l0"] / 2, 4 * kw["expected_l0"]]},
        detail=(
            f"{kw['n_base']} base directions u_j in d = {kw['d']} and partners u_j R (R a random rotation), 2H = "
            f"{2 * kw['n_base']} features firing independently (E[L0] = {kw['expected_l0']}); SAEs with F = 2H "
            f"latents, λ in {list(kw['l1_coefficient'])} ({kw['steps']} steps; bound run "
            f"{res['bound'].seconds:.1f} s with the oracle "
            f"control as extra instances, relu {res['relu'].seconds:.1f} s on {ctx.device}). "
            + (f"At L0 = {fmt(l0)}: MMCS bound {fmt(mb)}, relu {fmt(mr)}, bound started at the truth {fmt(mo)}; "
               f"FVU bound {fmt(mt['fvu']['bound'])}, relu {fmt(mt['fvu']['relu'])}, from the truth "
               f"{fmt(mt['fvu']['bound_oracle'])}. " if len(l0) else "No common L0 in range. ")
            + f"Binding error ||U(R_map − R)||/||UR||: from random init {fmt(bind['bound'])} (≈ √2 means an "
            "unrelated "
            f"rotation), from the truth {fmt(bind['bound_oracle'])}; true pairs recovered by a latent pair: "
            f"{fmt(ex['pairs_recovered']['bound'])} vs {fmt(ex['pairs_recovered']['bound_oracle'])}. "
            + _bound_reading(ok, mmcs_ok, bind_ok, ex, mt)
        ),
    )
