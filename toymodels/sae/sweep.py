"""The SAE experiments layer: sweeps of SAEs trained as ONE batched run, and the matched-L0
comparison between sweeps.

Every sweep value (an L1 coefficient, a k, a seed, a toy model) is an instance on the leading
axis, so a sweep costs one training run. Theory checks and figures call these functions; they
never write the "build an SAE, train it, evaluate it" loop themselves.

- :func:`train_sae_sweep` — one SAE per sweep value of the sparsity coefficient (or k), trained
  side by side on one source and evaluated (:class:`SweepResult`).
- :func:`architecture_frontier` — one :func:`train_sae_sweep` per architecture.
- :func:`dictionary_ratio_sweep` — Sharkey, Braun & Millidge (2022)'s grid of dictionary sizes.
- :func:`interpolate_at_l0`, :func:`common_l0_grid`, :func:`matched_l0` — SAEs trade sparsity
  against reconstruction, so two sweeps are only comparable at equal L0: a metric is
  interpolated linearly in log L0 at common L0 values inside every sweep's range (never
  extrapolated).
- :func:`seed_stability` — SAEs from several seeds on the hidden layer of a toy model and of
  its random-weight copy (:func:`random_toy_model`), and the mean max cosine similarity (MMCS)
  between the dictionaries of every pair of seeds (:class:`SeedStability`; seed 003).

Imports only ``toymodels`` (never ``theory`` or ``figures``).
"""
from __future__ import annotations

import dataclasses
import time
from dataclasses import dataclass, field
from typing import Any, Callable, Sequence

import numpy as np
import torch

from ..measures import metrics as M
from .._validate import check_int
from ..data.features import ModelActivations, SparseFeatures
from ..device import derive_seed, resolve_device
from ..models import ToyModel, build_model
from ..train.loop import TrainConfig, train
from . import SAE, SAEConfig, build_sae, evaluate_sae
from .config import K_ARCHS

__all__ = [
    "SweepResult",
    "train_sae_sweep",
    "architecture_frontier",
    "dictionary_ratio_sweep",
    "interpolate_at_l0",
    "common_l0_grid",
    "matched_l0",
    "small_seed",
    "random_toy_model",
    "stack_models",
    "alive_decoder_columns",
    "SeedStability",
    "seed_stability",
]


def small_seed(*keys: object) -> int:
    """A 31-bit seed derived from labels (:func:`toymodels.device.derive_seed` modulo 2³¹), for
    constructors that want small integers; different labels give independent streams."""
    return derive_seed(*keys) % (2**31)


# =============================================================================================
# L1 / k sweeps
# =============================================================================================


@dataclass
class SweepResult:
    """One batched SAE run: instance i trained with ``values[i]`` of ``parameter``.

    Metrics are numpy arrays (I,) from :func:`toymodels.sae.evaluate_sae` on fresh samples;
    ``mmcs``/``mcc`` are None without ground truth. ``shrinkage`` is the relative
    reconstruction bias γ = E||x̂||² / E[x·x̂] (< 1: x̂ too short; Wright & Sharkey 2024).
    ``seconds`` is the wall time of the whole run, training and evaluation (a :meth:`select`-ed
    part keeps the whole run's); it is for logs, never for a figure or a report.
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
        """The metric ``name`` (I,); ValueError when it was not measured."""
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


# =============================================================================================
# Matched-L0 comparison
# =============================================================================================


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
# Seed stability: SAEs on a trained vs a random-weight toy model (seed 003)
# =============================================================================================


def random_toy_model(like: ToyModel, *, seed: int = 0) -> ToyModel:
    """A random-weight control for ``like``: same kind, shape and importance; Xavier-normal weight
    matrices rescaled to the Frobenius norms of ``like``'s (so activations have a comparable
    scale) and zero biases. Its feature directions are the columns of its random W."""
    model = build_model(like.config, importance=like.importance.detach().cpu(),
                        seed=small_seed(seed, "random-toy-model"), device=like.device_)
    theirs = dict(like.named_parameters())
    with torch.no_grad():
        for name, prm in model.named_parameters():
            if name.startswith("W"):
                prm.mul_(theirs[name].norm() / prm.norm().clamp_min(1e-30))
            else:
                prm.zero_()
    return model


def stack_models(models: Sequence[ToyModel], repeats: int) -> ToyModel:
    """One toy model whose instances are ``repeats`` copies of each of ``models`` (1 instance
    each), model-major: instance j · repeats + r is a copy of ``models[j]``."""
    first = models[0]
    cfg = dataclasses.replace(first.config, n_instances=repeats * len(models))
    big = build_model(cfg, device=first.device_)
    for j, m in enumerate(models):
        big.load_instances(slice(j * repeats, (j + 1) * repeats), m.subset([0] * repeats))
    return big


def alive_decoder_columns(sae: SAE, i: int, freq: torch.Tensor) -> torch.Tensor:
    """Decoder directions (D, F_alive) of instance i's latents with nonzero firing frequency
    (``freq`` (I, F), e.g. :func:`toymodels.metrics.firing_frequency`)."""
    return sae.decoder_directions()[i][:, freq[i] > 0]


@dataclass
class SeedStability:
    """What :func:`seed_stability` measured. Arrays are indexed [model, λ, seed] with model 0 the
    trained toy model and 1 the random-weight control."""

    l1_coefficients: list[float]
    n_seeds: int
    cross_seed: np.ndarray
    """(2, L, S(S−1)/2) symmetric MMCS between the alive dictionaries of every pair of seeds."""
    cross_model: np.ndarray
    """(L, S·S) MMCS between an SAE on the trained model and one on the random model (unrelated
    hidden spaces: the chance level of the comparison)."""
    matrix: np.ndarray
    """(I, I) MMCS between every pair of the I = 2·L·S SAEs, in instance order (see :meth:`index`)."""
    mmcs_truth: np.ndarray
    """(2, L, S) MMCS of the decoder against the model's true feature directions W_i."""
    l0: np.ndarray
    fvu: np.ndarray
    loss_recovered: np.ndarray
    alive: np.ndarray
    """(2, L, S) latents that fire on the evaluation batch."""
    feature_interference: list[float]
    """Per model: mean over features of the largest |cos| with another feature direction."""
    true_l0: float
    sae: SAE = field(repr=False)
    models: tuple[ToyModel, ToyModel] = field(repr=False)

    def index(self, model: int, lam: int, seed: int) -> int:
        """The SAE instance of (model, λ index, seed)."""
        return (model * len(self.l1_coefficients) + lam) * self.n_seeds + seed


def seed_stability(model: ToyModel, *, n_seeds: int = 3, l1_coefficients: Sequence[float] = (0.3, 0.6),
                   dict_size: int | None = None, feature_probability: float = 0.04, steps: int = 2500,
                   batch_size: int = 256, lr: float = 3e-3, n_eval: int = 8192, seed: int = 0,
                   device: str | torch.device | None = None) -> SeedStability:
    """Train ReLU SAEs from ``n_seeds`` seeds at each λ on the hidden activations of ``model``
    (a trained toy model, 1 instance) and of :func:`random_toy_model` of it; all
    2 · len(λ) · n_seeds SAEs are one batched run. Every instance has its own initialisation and
    its own stream of sparse features (density ``feature_probability``, the model's training
    density), so two seeds share nothing but the model. ``dict_size`` defaults to the number
    of features. MMCS between dictionaries (:func:`toymodels.metrics.mmcs_between`, mean over
    one dictionary's columns of the max |cos| with the other's) uses the latents that fire on
    ``n_eval`` samples.
    """
    dev = model.device_ if device is None else resolve_device(device)
    lams = [float(v) for v in l1_coefficients]
    n_l, s = len(lams), int(n_seeds)
    if s < 2:
        raise ValueError(f"n_seeds must be at least 2 (MMCS across seeds), got {n_seeds}")
    n, m = model.n_features, model.d_hidden
    f_size = n if dict_size is None else int(dict_size)
    rand = random_toy_model(model, seed=seed)
    big = stack_models([model, rand], n_l * s)
    n_i = big.n_instances
    feats = SparseFeatures(n, feature_probability, n_i, seed=small_seed(seed, "stability-data"), device=dev)
    src = ModelActivations(big, feats)
    lam_i = tuple(lams[li] for _ in range(2) for li in range(n_l) for _ in range(s))
    sae = build_sae(SAEConfig(arch="relu", d_model=m, dict_size=f_size, n_instances=n_i, l1_coefficient=lam_i),
                    seed=small_seed(seed, "stability-sae"), device=dev)
    train(sae, src, TrainConfig(steps=steps, batch_size=batch_size, lr=lr, quiet=True, eval_samples=2048))
    with torch.no_grad():
        x = SparseFeatures(n, feature_probability, 1, seed=small_seed(seed, "stability-eval"),
                           device=dev).sample(n_eval)
        h = big.hidden(x)
        codes = sae.encode(h)
        x_hat = sae.decode(codes)
        freq = M.firing_frequency(codes)
        spl = M.spliced_loss(big, x, lambda hh: sae.decode(sae.encode(hh)))
        truth = big.feature_directions().transpose(1, 2)  # (I, M, N)
        mm_truth = M.mmcs(sae.decoder_directions(), truth)
        cols = [alive_decoder_columns(sae, i, freq) for i in range(n_i)]
        mat = np.ones((n_i, n_i))
        for a in range(n_i):
            for b in range(a + 1, n_i):
                mat[a, b] = mat[b, a] = float(M.mmcs_between(cols[a], cols[b]))
        W = big.W.detach()
        interf = [float(M.knn_cosine(W[g], 1).mean()) for g in (0, n_i - 1)]
    iu = np.triu_indices(s, 1)
    block = lambda g1, g2, li: mat[np.ix_([(g1 * n_l + li) * s + k for k in range(s)],  # noqa: E731
                                          [(g2 * n_l + li) * s + k for k in range(s)])]
    cross = np.stack([np.stack([block(g, g, li)[iu] for li in range(n_l)]) for g in range(2)])
    cross_model = np.stack([block(0, 1, li).reshape(-1) for li in range(n_l)])
    shape = (2, n_l, s)
    return SeedStability(
        l1_coefficients=lams, n_seeds=s, cross_seed=cross, cross_model=cross_model, matrix=mat,
        mmcs_truth=mm_truth.cpu().numpy().reshape(shape), l0=M.l0(codes).cpu().numpy().reshape(shape),
        fvu=M.fvu(h, x_hat).cpu().numpy().reshape(shape),
        loss_recovered=spl["loss_recovered"].cpu().numpy().reshape(shape),
        alive=(freq > 0).sum(-1).cpu().numpy().reshape(shape), feature_interference=interf,
        true_l0=n * feature_probability, sae=sae, models=(model, rand),
    )
