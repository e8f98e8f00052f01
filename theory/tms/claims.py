"""The ``tms.*`` claims of the catalogue: each check compares the mathematics of
:mod:`theory.tms` with exact computation or with models trained by
:func:`toymodels.experiments.train_tms`."""
from __future__ import annotations

import math
from typing import Any

import numpy as np
import scipy.optimize
import sympy as sp
import torch

from toymodels.measures.analysis import (
    STICKY_DIMENSIONALITIES,
    feature_dimensionality,
    feature_norms,
    interference_groups,
    superposition,
)
from toymodels.data import SparseFeatures
from toymodels.device import derive_seed
from toymodels.experiments import TMSRun, train_tms
from toymodels.models import TMSConfig, build_model
from toymodels.sweep import best_rows, run_grid
from toymodels.train import TrainConfig

from ..registry import Context, Result, claim, holds_if
from .crowding import crowding_prediction, descend_limit_loss, limit_loss, polygon_starts, represented
from .frames import (
    STICKY_VALUES,
    TIGHT_FRAMES,
    block_frame,
    circle_interference,
    equally_spaced,
    frame_dimensionality,
    nearest_value,
    random_rotation,
    sticky_null_fraction,
    tight_frame,
)
from .linear import linear_optimum, uniform_feature_variance
from .two_feature import (
    _p,
    _r,
    optimal_two_feature,
    two_feature_boundary,
    two_feature_derivation,
    two_feature_loss,
    two_feature_losses,
    two_feature_phase,
)


# ====================================================================== training
def _train(
    ctx: Context,
    tag: str,
    n: int,
    m: int,
    prob: Any,
    importance: Any = None,
    *,
    steps: int,
    batch: int,
    lr: float,
    best_of: int = 1,
    kind: str = "relu-output",
    schedule: str = "constant",
    eval_samples: int = 16384,
) -> TMSRun:
    """One instance-batched run of the configurations ``prob`` (C,) or (C, n) x ``best_of``
    seeds through :func:`toymodels.experiments.train_tms`, seeded from the context and ``tag``."""
    prob = torch.as_tensor(prob, dtype=torch.float32)
    return train_tms(
        TMSConfig(n_features=n, d_hidden=m, n_instances=prob.shape[0], kind=kind),
        prob,
        train=TrainConfig(steps=steps, batch_size=batch, lr=lr, schedule=schedule, quiet=True,
                          eval_samples=eval_samples),
        best_of=best_of,
        seed=derive_seed(ctx.seed, "tms", tag),
        device=ctx.device,
        importance=importance,
    )


# ====================================================================== claims
_FRAME_TOL = 1e-9


@claim(
    "tms.frame_dimensionality",
    status="exact",
    statement="""With D_i = ||W_i||² / Σ_j (Ŵ_i·W_j)² (j includes i), every feature of a unit-norm tight
    frame of k vectors spanning d dimensions has D_i = d/k: digon 1/2, triangle 2/3, pentagon 2/5,
    tetrahedron 3/4, square antiprism 3/8, a dedicated dimension 1; frames placed in orthogonal
    subspaces filling all m dimensions have Σ_i D_i = m.""",
    source="Elhage et al. 2022, Toy Models of Superposition, 'The Geometry of Superposition'.",
)
def _check_frame_dimensionality(ctx: Context) -> Result:
    rng = ctx.rng("frame_dimensionality")
    reps = ctx.pick(3, 10, 50)
    worst, observed, predicted = 0.0, {}, {}
    for name, make in TIGHT_FRAMES.items():
        F = make()
        d, k = F.shape
        pred = STICKY_DIMENSIONALITIES[name][0]
        predicted[name] = pred
        measured = [frame_dimensionality(F), d / k]
        for _ in range(reps):  # D_i is invariant under rotations and embedding in more dims
            extra = int(rng.integers(0, 3))
            G = torch.cat([F, torch.zeros(extra, k, dtype=F.dtype)]) if extra else F
            measured += feature_dimensionality(random_rotation(d + extra, rng) @ G).tolist()
        observed[name] = max(measured, key=lambda x: abs(x - pred))  # the D_i farthest from d/k
        worst = max(worst, abs(observed[name] - pred))
    for k in range(3, ctx.pick(8, 17, 33)):  # every regular polygon: D_i = 2/k
        worst = max(worst, float((feature_dimensionality(equally_spaced(k)) - 2 / k).abs().max()))
    # Σ D_i = m for frames in orthogonal subspaces that fill R^m, rotated.
    sum_dev = 0.0
    names = list(TIGHT_FRAMES)
    for _ in range(reps):
        pick = [names[i] for i in rng.integers(0, len(names), size=int(rng.integers(1, 5)))]
        B = block_frame(*[tight_frame(x) for x in pick])
        m = B.shape[0]
        total = float(feature_dimensionality(random_rotation(m, rng) @ B[:, rng.permutation(B.shape[1])]).sum())
        sum_dev = max(sum_dev, abs(total - m))
    ok = worst <= _FRAME_TOL and sum_dev <= _FRAME_TOL
    return Result(
        holds_if(ok),
        predicted=predicted,
        observed={**observed, "max |D_i - d/k|": worst, "max |Σ D_i - m|": sum_dev},
        tolerance=_FRAME_TOL,
        detail=f"{len(TIGHT_FRAMES)} named frames and regular k-gons, each under {reps} Haar rotations (some embedded "
        f"in up to 2 extra dimensions), float64; {reps} random block sums of frames. The square antiprism is the tight "
        "one (heights ±1/√3); the equal-edge antiprism is not tight (D_i ≈ 0.366).",
    )


# Pre-registered design of tms.sticky_dimensionality. Issue 9 item 4 fixed n, m, the null and the
# rule before any run; its seven densities pooled three regimes, and the claim could hardly pass:
# at the sparsest densities every feature packs into one frame (D ≈ m / #represented ≈ 0.2, off the
# sticky list by design). Re-posed (the stability issue): the densities are named per regime below,
# from an exploratory sweep at seeds 0 and 1000003 (p = 1 ... 0.04); the verdict counts the
# small-frame band only, and every other seed is out of sample. The packing is its own finding.
STICKY_N, STICKY_M = 50, 10
"""n features in m dims: n/m = 5, so D = m/n = 1/5 < 1/3 is reachable and 1/3 (15 features in
one frame filling the 10 dims) is as easy to hit as any sticky value."""
STICKY_DENSITIES = (0.45, 0.35, 0.28)
"""The small-frame band, where the claim is tested: between the dense regime and the packing,
the represented features split into small frames in orthogonal subspaces."""
STICKY_PACKED_DENSITIES = (0.12, 0.07, 0.04)
"""The sparsest densities: predicted to pack all represented features into one frame spanning the
m dimensions (D_i ≈ m / #represented): reported as a finding, not counted for or against stickiness."""
STICKY_CONTEXT_DENSITIES = (1.0, 0.6, 0.2)
"""Reported only: p = 1 and 0.6 (dense; the optimum is degenerate, any rank-m projection) and p = 0.2
(the packing begins; with ~30 represented, m / #represented ≈ 1/3 by coincidence)."""
STICKY_SWEEP = tuple(sorted(STICKY_DENSITIES + STICKY_PACKED_DENSITIES + STICKY_CONTEXT_DENSITIES, reverse=True))
"""Every density trained (one batched run)."""
STICKY_TOL = 0.02
"""|D_i - value| for 'at a value'."""
STICKY_REPRESENTED = 0.5
"""Features with ||W_i|| > this count (the others are unrepresented, D = 0)."""
STICKY_OVERLAP = 0.1
"""Two represented features share a frame when |Ŵ_i·Ŵ_j| > this (interference groups)."""
STICKY_NULL = "Uniform[0, 1]"
"""The null: a represented feature's D_i uniform on [0, 1]; its rates are exact
(:func:`theory.tms.sticky_null_fraction`)."""
STICKY_RULE = ("holds iff, pooled over the small-frame band, (a) the fraction of represented features within tol of "
               "a sticky value is >= 2x its null rate and (b) the fraction within tol of 1/3 is <= its null rate + 2 "
               "binomial standard errors")


def sticky_statistics(D: torch.Tensor, norms: torch.Tensor, tol: float = STICKY_TOL) -> dict[str, Any]:
    """The pre-registered statistic of tms.sticky_dimensionality for dimensionalities D and
    norms (..., n): each represented D_i goes to the nearest of the sticky values and 1/3 (if
    within ``tol``); returns the fractions, their null rates, the limits and ``ok`` (:data:`STICKY_RULE`)."""
    cands = STICKY_VALUES + (1 / 3,)
    idx = nearest_value(D, cands, tol)
    rep = norms > STICKY_REPRESENTED
    n_rep = int(rep.sum())
    near = float(((idx >= 0) & (idx < len(STICKY_VALUES)) & rep).sum()) / max(1, n_rep)
    third = float(((idx == len(STICKY_VALUES)) & rep).sum()) / max(1, n_rep)
    null = sticky_null_fraction(cands, tol, STICKY_VALUES)
    null_third = sticky_null_fraction(cands, tol, (1 / 3,))
    third_limit = null_third + 2 * math.sqrt(null_third * (1 - null_third) / max(1, n_rep))
    ok = n_rep > 0 and near >= 2 * null and third <= third_limit
    return {"represented": n_rep, "near sticky": near, "near 1/3": third, "null sticky": null,
            "null 1/3": null_third, "limit 1/3": third_limit, "ok": ok}


STICKY_SPAN_RTOL = 0.1
"""A frame spans the directions whose singular value is above this fraction of its largest (a
trained antipodal pair, slightly bent, spans 1 dimension, not 2)."""


def _span(W: torch.Tensor) -> int:
    """The number of dimensions the columns of W (m, k) span, at :data:`STICKY_SPAN_RTOL`."""
    sv = torch.linalg.svdvals(W)
    return int((sv > STICKY_SPAN_RTOL * sv.max()).sum()) if sv.numel() and float(sv.max()) > 0 else 0


def frame_packing(W: torch.Tensor, tol: float = STICKY_TOL) -> dict[str, Any]:
    """How one (m, n) matrix organises its represented features (||W_i|| > :data:`STICKY_REPRESENTED`):
    its interference groups (|Ŵ_i·Ŵ_j| > :data:`STICKY_OVERLAP`) as (size, rank) counts, whether they
    are one frame (one group holding every represented feature and spanning all m dimensions), and the
    fraction of represented features with D_i within ``tol`` of m / #represented (the packing's value)."""
    m = W.shape[-2]
    norms = feature_norms(W)
    rep = norms > STICKY_REPRESENTED
    k = int(rep.sum())
    groups = interference_groups(W, STICKY_OVERLAP, STICKY_REPRESENTED)
    shapes: dict[str, int] = {}
    for grp in groups:
        key = f"{len(grp)} in {_span(W[:, grp])}d"
        shapes[key] = shapes.get(key, 0) + 1
    one = len(groups) == 1 and len(groups[0]) == k and _span(W[:, groups[0]]) == m
    D = feature_dimensionality(W)
    at = float(((D - m / max(k, 1)).abs() <= tol)[rep].double().mean()) if k else 0.0
    return {"represented": k, "groups": shapes, "one frame": one, "m/represented": m / max(k, 1), "at m/represented": at}


def sticky_report(W: torch.Tensor, densities: tuple[float, ...] = STICKY_SWEEP) -> dict[str, Any]:
    """The verdict statistics of tms.sticky_dimensionality from the trained W (I, m, n), one instance
    per density of ``densities``: :func:`sticky_statistics` pooled over the :data:`STICKY_DENSITIES`
    band (``band``, with ``ok``), the packing finding at :data:`STICKY_PACKED_DENSITIES` (``packing``),
    and every density's own statistics (``per density``)."""
    if W.ndim != 3 or W.shape[0] != len(densities):
        raise ValueError(f"W must be (len(densities) = {len(densities)}, m, n), got {tuple(W.shape)}")
    missing = [q for q in STICKY_DENSITIES + STICKY_PACKED_DENSITIES if q not in densities]
    if missing:
        raise ValueError(f"densities must include the pre-registered {missing}")
    D, norms = feature_dimensionality(W), feature_norms(W)
    band = [densities.index(q) for q in STICKY_DENSITIES]
    st = sticky_statistics(D[band], norms[band])
    per = {}
    for i, q in enumerate(densities):
        s_i, f_i = sticky_statistics(D[i], norms[i]), frame_packing(W[i])
        per[f"p={q:g}"] = {"represented": s_i["represented"], "near sticky": round(s_i["near sticky"], 2),
                           "near 1/3": round(s_i["near 1/3"], 2), "groups": f_i["groups"],
                           "at m/represented": round(f_i["at m/represented"], 2)}
    packed = {f"p={q:g}": frame_packing(W[densities.index(q)]) for q in STICKY_PACKED_DENSITIES}
    packing = {"one frame": sum(f["one frame"] for f in packed.values()), "of": len(packed),
               "at m/represented": round(float(np.mean([f["at m/represented"] for f in packed.values()])), 3),
               "m/represented": {k: round(f["m/represented"], 3) for k, f in packed.items()}}
    return {"band": st, "ok": st["ok"], "packing": packing, "per density": per}


@claim(
    "tms.sticky_dimensionality",
    status="empirical",
    statement="""In a sparsity sweep of ReLU-output models with n = 50 uniform-importance features in m = 10
    dimensions, at the densities p = 0.45, 0.35, 0.28 (named in advance: between the dense regime and the
    sparse packing, where represented features split into small frames in orthogonal subspaces) the feature
    dimensionalities D_i of represented features cluster at 1, 3/4, 2/3, 1/2, 2/5 and 3/8, not at 1/3. Not
    part of the claim, reported as its own finding: at the sparsest densities p = 0.12, 0.07, 0.04 all
    represented features pack into one frame spanning the m dimensions, D_i ≈ m / #represented.""",
    source="Elhage et al. 2022, Toy Models of Superposition, 'The Geometry of Superposition' (feature dimensionality).",
    searches=True,
)
def _check_sticky_dimensionality(ctx: Context) -> Result:
    n, m, dens = STICKY_N, STICKY_M, STICKY_SWEEP
    steps, seeds, batch = ctx.pick((1500, 1, 128), (3000, 2, 128), (20000, 4, 256))
    run = _train(ctx, "sticky", n, m, list(dens), steps=steps, batch=batch, lr=3e-3, best_of=seeds, schedule="cosine")
    W = run.model.W.detach().double().cpu()
    rep = sticky_report(W, dens)
    st, pk = rep["band"], rep["packing"]
    return Result(
        holds_if(rep["ok"]),
        predicted={"near sticky": f">= 2 x null = {2 * st['null sticky']:.3f}",
                   "near 1/3": f"<= null + 2 se = {st['limit 1/3']:.3f}"},
        observed={"near sticky": round(st["near sticky"], 3), "near 1/3": round(st["near 1/3"], 3),
                  "2 se": round(2 * math.sqrt(st["near sticky"] * (1 - st["near sticky"])
                                              / max(1, st["represented"])), 3),
                  "represented features (band)": st["represented"],
                  "finding: sparsest densities packed in one frame": f"{pk['one frame']} of {pk['of']}",
                  "finding: fraction at m/represented": pk["at m/represented"]},
        tolerance={"|D_i - value|": STICKY_TOL},
        detail=f"Pre-registered: n={n}, m={m}; the rule counts the small-frame band p in {list(STICKY_DENSITIES)} "
        f"(pooled), null D ~ {STICKY_NULL} (near a sticky value with probability {st['null sticky']:.3f}, near 1/3 "
        f"with {st['null 1/3']:.3f}), rule: {STICKY_RULE}. Trained: one batched run over p in {list(dens)}, best of "
        f"{seeds} seeds, {steps} steps, batch {batch}, cosine lr 3e-3; represented = ||W_i|| > {STICKY_REPRESENTED}; "
        f"frames = interference groups (|Ŵ_i·Ŵ_j| > {STICKY_OVERLAP}) as 'size in rank d'. Finding (not counted for or "
        f"against stickiness): at p in {list(STICKY_PACKED_DENSITIES)} the represented features form one frame "
        f"spanning all {m} dimensions in {pk['one frame']} of {pk['of']} densities, with a fraction "
        f"{pk['at m/represented']} of them within {STICKY_TOL} of m / #represented ({pk['m/represented']}): off the "
        f"sticky list by design, and near 1/3 when ~30 features are represented (p = 0.2). Per density: "
        f"{rep['per density']}.",
    )


@claim(
    "tms.pentagon",
    status="empirical",
    statement="""n = 5 features in m = 2 dimensions with uniform importance at density p = 0.05: the lowest-loss
    of a few seeds is a regular pentagon, every D_i = 2/5.""",
    source="Elhage et al. 2022, Toy Models of Superposition, section 3 (the pentagon).",
    searches=True,
)
def _check_pentagon(ctx: Context) -> Result:
    seeds, steps = ctx.pick((4, 2500), (4, 5000), (8, 10000))
    lr = ctx.pick(3e-3, 1e-3, 1e-3)
    run = _train(ctx, "pentagon", 5, 2, [0.05], steps=steps, batch=1024, lr=lr, best_of=seeds)
    win, chosen, loss = run.model, run.chosen, run.all_losses
    W = win.W.detach().double().cpu()[0]
    D = feature_dimensionality(W)
    ang = torch.sort(torch.atan2(W[1], W[0])).values
    gaps = torch.diff(torch.cat([ang, ang[:1] + 2 * math.pi])) * 180 / math.pi
    tol = 0.02
    ok = bool((D - 0.4).abs().max() <= tol)
    return Result(
        holds_if(ok),
        predicted=[0.4] * 5,
        observed=[round(float(x), 4) for x in D],
        tolerance=tol,
        detail=f"best of {seeds} seeds (instance {int(chosen[0])}, loss {float(loss[chosen[0]]):.3e}) after {steps} "
        "steps "
        f"at lr {lr:g}; angular gaps {[round(float(g), 1) for g in gaps]} degrees, norms "
        f"{[round(float(x), 3) for x in feature_norms(W)]}; seed losses {[f'{float(x):.3e}' for x in loss]}.",
    )


def _configuration_mc(ctx: Context, p: float, r: float, W: Any, b: Any, n_samples: int) -> list[tuple[float, float]]:
    """Monte Carlo losses Σ_i I_i (x_i - x'_i)² (mean, standard error) of K fixed 2 → 1
    configurations W (K, 2), b (K, 2), run through toymodels' own ReLUOutput model."""
    W = torch.as_tensor(W, dtype=torch.float32).reshape(-1, 1, 2)
    k = W.shape[0]
    model = build_model(TMSConfig(n_features=2, d_hidden=1, n_instances=k), importance=torch.tensor([[1.0, r]] * k),
                        device=ctx.device)
    with torch.no_grad():
        model.W_IMN.copy_(W)
        model.b_IN.copy_(torch.as_tensor(b, dtype=torch.float32).reshape(k, 2))
    src = SparseFeatures(2, p, 1, seed=derive_seed(ctx.seed, "two_feature_mc", p, r), device=ctx.device)
    s1 = torch.zeros(k, dtype=torch.float64)
    s2 = torch.zeros(k, dtype=torch.float64)
    done = 0
    with torch.no_grad():
        while done < n_samples:
            bsz = min(262144, n_samples - done)
            x = src.sample(bsz)  # (1, B, 2), shared by the K instances
            per = (model.importance[:, None, :] * (x - model(x)).square()).sum(-1).double().cpu()  # (K, B)
            s1 += per.sum(1)
            s2 += per.square().sum(1)
            done += bsz
    mean = s1 / done
    se = ((s2 / done - mean.square()).clamp_min(0) / done).sqrt()
    return [(float(mu), float(e)) for mu, e in zip(mean, se)]


_PAPER_CONFIGS = ("ignore_2", "ignore_1", "antipodal")


def _paper_configurations(p: float) -> tuple[list[list[float]], list[list[float]]]:
    """(W, b) of the paper's three configurations, in the order of :data:`_PAPER_CONFIGS`."""
    return [[1.0, 0.0], [0.0, 1.0], [1.0, -1.0]], [[0.0, p / 2], [p / 2, 0.0], [0.0, 0.0]]


@claim(
    "tms.two_feature_phase",
    status="exact",
    statement="""Two features, one hidden dimension, density p, importance of feature 2 = r: ignoring feature 2
    (W = (1, 0), b = (0, p/2)) costs r(p/3 - p²/4), ignoring feature 1 costs p/3 - p²/4, and the antipodal pair
    W = (1, -1), b = 0 costs (1 + r)p²/6.""",
    source="Elhage et al. 2022, Toy Models of Superposition, 'Superposition as a Phase Change'.",
)
def _check_two_feature_phase(ctx: Context) -> Result:
    d = two_feature_derivation()
    p, r = _p, _r
    claimed = {"ignore_2": r * (p / 3 - p**2 / 4), "ignore_1": p / 3 - p**2 / 4, "antipodal": (1 + r) * p**2 / 6}
    derived = {"ignore_2": d.ignore_2, "ignore_1": d.ignore_1, "antipodal": d.antipodal_unit}
    sym_ok = all(sp.simplify(derived[k] - claimed[k]) == 0 for k in claimed)
    # The exact loss of any (W, b) (piecewise integration) reproduces the three formulas ...
    rng = ctx.rng("two_feature_phase")
    worst_exact = 0.0
    for _ in range(ctx.pick(20, 200, 2000)):
        pv, rv = float(rng.uniform(0, 1)), float(rng.uniform(0.05, 10))
        Ws, bs = _paper_configurations(pv)
        closed = two_feature_losses(pv, rv)
        for name, w, b in zip(_PAPER_CONFIGS, Ws, bs):
            worst_exact = max(worst_exact, abs(two_feature_loss(pv, rv, *w, *b) - closed[name]))
    exact_ok = worst_exact <= 1e-12
    # ... and Monte Carlo through the package's model agrees with both, for the three
    # configurations and for random (W, b) (so the exact loss used by tms.two_feature_boundary
    # is the model's loss).
    n_mc = ctx.pick(200_000, 1_000_000, 8_000_000)
    cases = ctx.pick([(0.3, 0.5)], [(0.1, 2.0), (0.3, 0.5), (0.7, 1.0)],
                     [(0.05, 3.0), (0.1, 2.0), (0.3, 0.5), (0.7, 1.0), (0.95, 0.2)])
    worst_z, mc = 0.0, {}
    for pv, rv in cases:
        Ws, bs = _paper_configurations(pv)
        Ws += rng.uniform(-1.3, 1.3, (3, 2)).tolist()
        bs += rng.uniform(-0.4, 0.6, (3, 2)).tolist()
        est = _configuration_mc(ctx, pv, rv, Ws, bs, n_mc)
        closed = two_feature_losses(pv, rv)
        for k, ((mu, se), w, b) in enumerate(zip(est, Ws, bs)):
            exact = two_feature_loss(pv, rv, *w, *b)
            worst_z = max(worst_z, abs(mu - exact) / max(se, 1e-15))
            if k < 3:
                worst_z = max(worst_z, abs(mu - closed[_PAPER_CONFIGS[k]]) / max(se, 1e-15))
        mc[f"p={pv},r={rv}"] = {k: round(mu, 5) for k, (mu, _) in zip(_PAPER_CONFIGS, est)}
    mc_ok = worst_z <= 5.0
    ok = sym_ok and exact_ok and mc_ok
    return Result(
        holds_if(ok),
        predicted={"ignore feature 2": "r(p/3 - p²/4)", "ignore feature 1": "p/3 - p²/4", "antipodal": "(1+r)p²/6"},
        observed={"sympy derivation matches": sym_ok, "exact integration max |Δ|": worst_exact,
                  "Monte Carlo worst z": round(worst_z, 2)},
        tolerance={"exact integration": 1e-12, "Monte Carlo z": 5.0},
        detail=f"sympy derivation from x' = ReLU(WᵀWx + b), case by case over which features are active; the exact "
        f"piecewise integration of any (W, b) (theory.tms.two_feature_loss) on {ctx.pick(20, 200, 2000)} random "
        f"(p, r); Monte Carlo ({n_mc} samples) through toymodels' ReLUOutput of the three configurations and 3 random "
        f"(W, b) per case: {mc}. Which configuration is best, and where, is tms.two_feature_boundary.",
    )


# The audit's configurations (issue 9): (p, r, (w1, w2), its reported loss, rounded to 5
# digits). Its biases are not all given: each W is scored with its best biases.
_AUDIT_POINTS = (
    (0.6, 1.0, (0.970, 0.392), 0.10851),  # same-sign partial pair, b = (-0.127, 0.140)
    (0.3, 1.0, (0.970, 0.392), 0.07537),
    (0.9, 1.0, (0.93, -0.40), 0.09709),  # asymmetric pair
    (0.6, 1.0, (0.8687, -0.8687), 0.09889),  # antipodal pair with optimised scale and bias
)
_ROUNDING = 5e-6
"""Half a unit in the 5th decimal: the audit's losses are rounded."""


def _best_bias_loss(p: float, r: float, W: tuple[float, float]) -> float:
    """min over b of the exact loss with W fixed (L-BFGS-B from a few biases)."""
    best = math.inf
    for b0 in ([0.0, 0.0], [-0.1, 0.1], [0.2, 0.5], [0.5, 0.2], [p / 2, p / 2]):
        res = scipy.optimize.minimize(lambda b: two_feature_loss(p, r, *W, *b), b0, method="L-BFGS-B")
        best = min(best, float(res.fun))
    return best


def _is_pair(phase: str) -> bool:
    return phase in ("antipodal pair", "asymmetric pair", "same-sign pair")


@claim(
    "tms.two_feature_boundary",
    status="refuted",
    statement="""Two features in one hidden dimension superpose (both are represented) iff
    p < min(4r/(2+5r), 4/(5+2r)) (4/7 at r = 1): the boundary where the antipodal pair W = (1, -1), b = 0 stops
    beating the better dedicated configuration. Refuted: that compares three configurations only; the true
    optimum over W and b superposes above the boundary too.""",
    source="Elhage et al. 2022, Toy Models of Superposition, 'Superposition as a Phase Change'; issue 9 audit.",
    searches=True,
)
def _check_two_feature_boundary(ctx: Context) -> Result:
    # 1. The true optimum (global search over W, b of the exact loss) on a (p, r) grid.
    n_p, n_r = ctx.pick((3, 2), (7, 5), (12, 11))
    ps = np.geomspace(0.1, 1.0, n_p)
    rs = np.geomspace(0.25, 4.0, n_r)
    opt = {(float(pv), float(rv)): optimal_two_feature(float(pv), float(rv)) for pv in ps for rv in rs}
    seed_says = {k: k[0] < two_feature_boundary(k[1]) for k in opt}
    wrong = [k for k, o in opt.items() if _is_pair(o.phase) != seed_says[k]]
    above = [k for k in wrong if not seed_says[k]]  # superposes although p is above the boundary
    # 2. The optimum is at most every configuration the audit found by hand.
    audit, audit_ok = {}, True
    for pv, rv, w, loss in _AUDIT_POINTS:
        o, best_b = optimal_two_feature(pv, rv), _best_bias_loss(pv, rv, w)
        audit_ok &= o.loss <= loss + _ROUNDING and o.loss <= best_b + 1e-9
        audit[f"p={pv} W=({w[0]}, {w[1]})"] = (loss, round(best_b, 6), round(o.loss, 6))
    # 3. No trained model beats the optimum: each trained (W, b), evaluated exactly, costs at
    #    least the optimum (a wrong optimiser shows up here), and their phases are compared.
    #    The p × r × seeds grid of 2 → 1 models runs through the sweep layer (toymodels.sweep.run_grid,
    #    as figure 4 and `toymodels sweep examples/phase_diagram.toml` do); best seed per cell.
    seeds, steps, batch = ctx.pick((2, 800, 256), (3, 2000, 256), (8, 8000, 1024))
    cells = list(opt)
    base = derive_seed(ctx.seed, "tms", "two_feature_boundary")
    rows = run_grid("tms", dict(n_features=2, d_hidden=1, steps=steps, batch_size=batch, lr=3e-3, schedule="cosine"),
                    dict(feature_probability=[float(pv) for pv in ps], importance_decay=[float(rv) for rv in rs],
                         seed=[derive_seed(base, j) for j in range(seeds)]),
                    device=str(ctx.device), with_params=True)
    best = {(float(r["feature_probability"]), float(r["importance_decay"])): r
            for r in best_rows(rows, ("feature_probability", "importance_decay"))}
    W_t = torch.cat([best[k]["params"]["W_IMN"] for k in cells])
    b_t = torch.cat([best[k]["params"]["b_IN"] for k in cells])
    Wt = W_t.double().reshape(-1, 2).tolist()
    bt = b_t.double().reshape(-1, 2).tolist()
    trained_loss = [two_feature_loss(k[0], k[1], *w, *b) for k, w, b in zip(cells, Wt, bt)]
    excess = [tl - opt[k].loss for k, tl in zip(cells, trained_loss)]
    beaten = [k for k, e in zip(cells, excess) if e < -1e-9]
    trained_phase = two_feature_phase(W_t, b_t)
    agree_opt = float(np.mean([_is_pair(tp) == _is_pair(opt[k].phase) for k, tp in zip(cells, trained_phase)]))
    agree_seed = float(np.mean([_is_pair(tp) == seed_says[k] for k, tp in zip(cells, trained_phase)]))
    # 4. The counterexample the audit reported: r = 1, p = 0.6 > 4/7, where the optimum is a pair.
    ce = optimal_two_feature(0.6, 1.0)
    dropped = min(two_feature_losses(0.6, 1.0)[k] for k in ("ignore_1", "ignore_2"))
    ce_ok = _is_pair(ce.phase) and ce.loss < dropped - 1e-6 and 0.6 > two_feature_boundary(1.0)
    valid = audit_ok and not beaten
    verdict = "counterexample" if valid and ce_ok and above else "fails"
    phases = {}
    for o in opt.values():
        phases[o.phase] = phases.get(o.phase, 0) + 1
    table = {f"p={k[0]:.3g},r={k[1]:.3g}": (o.phase, round(o.loss, 5)) for k, o in opt.items() if k in above[:6]}
    return Result(
        verdict,
        predicted={"superposition iff": "p < min(4r/(2+5r), 4/(5+2r))", "r=1, p=0.6": "no superposition",
                   "dropped-feature loss at r=1, p=0.6": round(dropped, 5)},
        observed={"r=1, p=0.6 optimum": {"loss": round(ce.loss, 5), "W": [round(x, 4) for x in ce.W],
                                         "b": [round(x, 4) for x in ce.b], "phase": ce.phase},
                  "cells where the boundary is wrong": f"{len(wrong)} of {len(opt)} ({len(above)} superpose above it)",
                  "optimum phases": phases, "audit (reported, W with best b, optimum)": audit,
                  "trained beats optimum": len(beaten), "max trained excess": round(max(excess), 5),
                  "trained agrees with optimum": round(agree_opt, 3),
                  "trained agrees with boundary": round(agree_seed, 3)},
        tolerance={"optimum <= audit and trained": 1e-9},
        detail=f"Optimum = global minimum of the exact loss (theory.tms.optimal_two_feature: grid over (w1, w2, b) "
        f"with each bias profiled out, L-BFGS-B from the best grid basins and the paper's configurations) on a "
        f"{n_p}x{n_r} "
        f"grid p in [0.1, 1], r in [0.25, 4]. Superposition = both features represented (a pair of any sign). "
        f"Cells above the boundary whose optimum superposes (phase, loss): {table}. Trained: a p x r x {seeds} "
        f"seeds grid through the sweep layer (toymodels.sweep.run_grid), best seed per cell, {steps} steps, each "
        f"trained (W, b) evaluated exactly; it never beats the optimum "
        f"({len(beaten)} cells do), so the optimum is validated; phases of trained models use |w_i| > 0.05 for "
        f"'represented'.",
    )


@claim(
    "tms.linear_no_superposition",
    status="proven",
    statement="""Without the ReLU (x' = WᵀWx + b) the MSE optimum is WᵀW = the orthogonal projection onto the m most
    important features (for equal sparsity): eigenvalues 1 (m times) and 0 (n - m times), no superposition.""",
    source="Seed 002; Elhage et al. 2022, Toy Models of Superposition, section 2; Eckart & Young 1936.",
    searches=True,
)
def _check_linear_no_superposition(ctx: Context) -> Result:
    rng = ctx.rng("linear")
    # 1. Analytic: the weighted Eckart–Young optimum is the top-m coordinate projection, and
    #    gradient descent on the exact quadratic loss from random W reaches the same loss.
    draws = ctx.pick(5, 20, 100)
    worst_proj, worst_gd = 0.0, 0.0
    for _ in range(draws):
        n = int(rng.integers(3, 12))
        m = int(rng.integers(1, n))
        imp = rng.uniform(0.1, 1.0, n)
        var = np.full(n, uniform_feature_variance(float(rng.uniform(0.05, 1.0))))
        A, loss = linear_optimum(imp, var, m)
        top = np.argsort(imp)[::-1][:m]
        proj = np.zeros((n, n))
        proj[top, top] = 1.0
        dropped = float(np.sort(imp * var)[: n - m].sum())
        worst_proj = max(worst_proj, float(np.abs(A - proj).max()), abs(loss - dropped))
        W = rng.standard_normal((m, n)) * 0.3  # plain gradient descent on tr(D(1-WᵀW)Σ(1-WᵀW)ᵀ)
        Dm, S = np.diag(imp), np.diag(var)
        step = 0.2 / (imp.max() * var.max())
        for _ in range(4000):
            E = np.eye(n) - W.T @ W
            G = -2 * W @ (E @ S @ Dm + Dm @ E @ S)
            W -= step * G
        E = np.eye(n) - W.T @ W
        worst_gd = max(worst_gd, (np.trace(Dm @ E @ S @ E.T) - loss) / loss)
    # 2. Trained `linear` models (one batched run over densities), importance 0.7^i so the top m
    #    are unique, against a ReLU control trained the same way at the sparsest density.
    n, m, decay = 20, 5, 0.7
    dens = [1.0, 0.3, 0.1, 0.03]
    steps, lr = ctx.pick((1500, 3e-2), (3000, 3e-2), (10000, 1e-2))
    imp = (decay ** torch.arange(n, dtype=torch.float32))[None, :]  # (1, n): shared by every instance
    model_lin = _train(ctx, "linear", n, m, dens, imp, steps=steps, batch=512, lr=lr, kind="linear",
                       schedule="cosine").model
    model_relu = _train(ctx, "linear-relu-control", n, m, [0.03], imp, steps=steps, batch=512, lr=lr,
                        schedule="cosine").model
    W = model_lin.W.detach().double().cpu()
    gram = W.transpose(1, 2) @ W  # (I, n, n)
    proj = torch.diag(torch.cat([torch.ones(m), torch.zeros(n - m)])).double()
    proj_err = float((gram - proj).abs().max())
    eig = torch.linalg.eigvalsh(gram)  # ascending, (I, n)
    eig_err = float((eig - torch.cat([torch.zeros(n - m), torch.ones(m)]).double()).abs().max())

    def represented_superposition(Wm: torch.Tensor) -> float:
        keep = feature_norms(Wm) > 0.5  # (I, n)
        sup = superposition(Wm * keep[:, None, :])
        return float(sup[keep].max()) if keep.any() else 0.0

    sup_lin = represented_superposition(W)
    sup_relu = represented_superposition(model_relu.W.detach().double().cpu())
    tol = 0.05
    ok = worst_proj <= 1e-9 and worst_gd <= 1e-6 and proj_err <= tol and eig_err <= tol and sup_relu > 0.1
    return Result(
        holds_if(ok),
        predicted={"WᵀW": f"diag(1 x {m}, 0 x {n - m})", "eigenvalues": f"1 x {m}, 0 x {n - m}",
                   "superposition": 0.0},
        observed={"max |WᵀW - P|": round(proj_err, 4), "max |eig - target|": round(eig_err, 4),
                  "max superposition (linear)": round(sup_lin, 4),
                  "max superposition (ReLU control)": round(sup_relu, 3),
                  "Eckart-Young vs top-m": worst_proj, "gradient descent excess loss": worst_gd},
        tolerance={"trained": tol, "analytic": 1e-9, "gradient descent": 1e-6},
        detail=f"Analytic: {draws} random (n, m, importance, density): the weighted Eckart–Young optimum equals the "
        f"projection on the m largest I_i Var x_i, and plain gradient descent on the exact loss from random W reaches "
        f"its loss. Trained: n={n}, m={m}, importance {decay}^i, densities {dens} in one run, {steps} steps; "
        f"superposition = max over represented features (||W_i|| > 0.5) of Σ_j≠i (Ŵ_i·W_j)². The ReLU model "
        "trained "
        f"the same way at p=0.03 (control) superposes ({sup_relu:.2f}), so the check can tell the difference.",
    )


def _angular_gaps(W: torch.Tensor) -> list[float]:
    """Sorted angular gaps (degrees) between consecutive columns of a (2, k) matrix."""
    if W.shape[1] == 0:
        return []
    ang = torch.sort(torch.atan2(W[1], W[0])).values * 180 / math.pi
    return torch.diff(torch.cat([ang, ang[:1] + 360])).tolist()


CROWDING_NS = (7, 8, 10, 12, 16)
"""The n of tms.circle_crowding's test: every n >= 7, where the prediction saturates at 7."""
CROWDING_TINY_NS = (7, 8, 10)
"""The tiny budget's n: n = 7 (where the audit's runs stuck) and two beyond."""
CROWDING_GAP_TOL = 2.0
"""Degrees: each gap between represented directions is 360/7 within this."""
CROWDING_BELOW = 1e-6
"""A configuration this far below the prediction's loss/p refutes it (the k*-gon attains the
prediction to ~1e-12; a different optimum of the same loss would show as a wrong count or gap)."""
CROWDING_OPEN = 0.01
"""A feature counts as represented when its largest output ||W_i||² + b_i exceeds this (the
heptagon's are 1.13): an opening of ε moves the loss by O(ε²), so a search can leave openings of
1e-4 that no loss tolerance sees, and the count must not follow them."""
CROWDING_REACHED = 1e-4
"""A random start within this of the prediction's loss/p counts as having found it."""


def crowding_search(ctx: Context, ns: tuple[int, ...], *, starts: int, steps: int, hops: int) -> Any:
    """The search of tms.circle_crowding: :func:`theory.tms.crowding.descend_limit_loss` from
    ``starts`` random starts seeded by ``ctx.seed`` plus the analytic candidates
    (:func:`polygon_starts`: every k-gon, k <= n)."""
    return descend_limit_loss(ns, starts=starts, steps=steps, hops=hops, init=polygon_starts(ns),
                              seed=derive_seed(ctx.seed, "crowding") % 2**31)


@claim(
    "tms.circle_crowding",
    status="empirical",
    statement="""Why not place arbitrarily many features equally spaced around the circle? k equally spaced
    directions interfere by cos(2π/k), which a negative bias must cancel at a cost to every represented feature;
    as p → 0 the best k-gon (norm and bias optimised, the other features dropped) has k* = min(n, 7). Prediction:
    n >= 7 features in m = 2, trained on the p → 0 loss, represent exactly 7 features (an output opens:
    its largest output ||W_i||² + b_i exceeds 0.01) at 7 equally spaced directions, with the 7-gon's loss.""",
    source="Seed 002 (question on Elhage et al. 2022); Elhage et al. 2022, section 3.",
    searches=True,
)
def _check_circle_crowding(ctx: Context) -> Result:
    ns = ctx.pick(CROWDING_TINY_NS, CROWDING_NS, CROWDING_NS + (9, 11, 14))
    starts, steps, hops = ctx.pick((4, 400, 1), (8, 1200, 3), (64, 3000, 4))
    found = crowding_search(ctx, ns, starts=starts, steps=steps, hops=hops)
    W, b, L = found.W, found.b, found.loss
    rows, count_ok, gap_ok, below, stuck, attained = {}, True, True, [], [], True
    margins, reached = {}, {}
    for c, n in enumerate(ns):
        pred = crowding_prediction(n)
        k_star = pred["k"]
        # The prediction's own configuration (the regular k*-gon, the rest dropped) attains its loss.
        Wp, bp = polygon_starts([n])
        polys = limit_loss(Wp[0], bp[0])  # (n,): the k-gon for k = 1..n
        attained &= abs(float(polys[k_star - 1]) - pred["loss_per_density"]) <= 1e-9
        others = [float(x) for k, x in enumerate(polys.tolist(), 1) if k != k_star]
        margins[n] = round(min(others) - pred["loss_per_density"], 5) if others else None
        i = int(L[c].argmin())
        rep = represented(W[c, i], b[c, i], CROWDING_OPEN)
        opening = W[c, i].square().sum(0) + b[c, i]
        unclear = int(((opening > 0) & (opening <= CROWDING_OPEN)).sum())
        k = int(rep.sum())
        gaps = _angular_gaps(W[c, i][:, rep])
        worst_gap = max(abs(g - 360 / k_star) for g in gaps) if gaps else 360.0
        count_ok &= k == k_star
        gap_ok &= worst_gap <= CROWDING_GAP_TOL
        if float(found.lowest[c]) < pred["loss_per_density"] - CROWDING_BELOW:
            below.append(n)
        if float(L[c, i]) > pred["loss_per_density"] + CROWDING_BELOW:
            stuck.append(n)
        reached[n] = int((found.random_first_round[c] <= pred["loss_per_density"] + CROWDING_REACHED).sum())
        rows[n] = {"k*": k_star, "k": k, "worst gap error (deg)": round(worst_gap, 2),
                   "loss pred": round(pred["loss_per_density"], 5), "loss": round(float(L[c, i]), 5),
                   "features opening by under 0.01 (not counted)": unclear,
                   "smallest counted opening": round(float(opening[rep].min()), 3) if k else None}
    inconclusive = bool(stuck) and not below
    ok = attained and count_ok and gap_ok and not below and not stuck
    verdict = "inconclusive" if inconclusive else holds_if(ok)
    interf = {k: round(circle_interference(k), 3) for k in (5, 6, 7, 8, 12, 16)}
    stuck_note = (f" STUCK at n = {stuck}: the search ended above the prediction's own configuration, so it neither "
                  "confirms nor refutes it (verdict inconclusive; the analytic starts are missing?)." if stuck else "")
    return Result(
        verdict,
        predicted={"represented (n >= 7)": 7, "angular gap (deg)": round(360 / 7, 2),
                   "loss/p": {n: rows[n]["loss pred"] for n in ns}},
        observed={"represented": {n: rows[n]["k"] for n in ns}, "worst gap error (deg)":
                  max(rows[n]["worst gap error (deg)"] for n in ns), "loss/p": {n: rows[n]["loss"] for n in ns},
                  "n with a configuration below the prediction": below, "n where the search stuck above it": stuck,
                  "margin: next-best k-gon loss/p above the prediction": margins,
                  f"random starts reaching the prediction (of {starts}, first round)": reached},
        tolerance={"represented": "exact", "angular gap (deg)": CROWDING_GAP_TOL,
                   "loss below prediction": CROWDING_BELOW},
        detail=f"The toy model trained on the exact p → 0 loss (theory.tms.limit_loss: one feature active at a time, "
        f"b <= 0), any W and b, starting from the known answers: every k-gon for k <= n with its optimal norm and bias "
        f"(theory.tms.crowding.polygon_starts: the antipodal pair, the pentagon, the heptagon, ...) plus {starts} "
        f"random starts per n (seeded by the context), Adam for {steps} steps, then {hops} rounds of basin hopping "
        f"({starts} + n perturbed copies of the best so far, {steps // 2} steps each), the lowest loss kept. The "
        "claim is refuted if any configuration goes more than 1e-6 below the prediction (none may), or if the lowest "
        "is not 7 equally spaced features. A search that only lost the known answer (ends above it) is inconclusive, "
        "never a failure: random starts alone often stop at a local minimum with 5-9 open features (the audit's "
        "5-6 directions; a second x86 machine stopped at loss 0.62249 > 0.5829 for n = 7), so the verdict must not "
        "rest on them. "
        f"Represented = the feature's output opens (||W_i||² + b_i > {CROWDING_OPEN}; a long W_i with a more negative bias never "
        f"fires and costs what a dropped feature costs). Per n: {rows}. Neighbour interference cos(2π/k): {interf}. "
        "At finite p (toymodels training at p = 0.01) two active features at once add O(p) corrections comparable "
        "to the 1% loss gaps between the 6-, 7- and 8-gons, so this claim is stated and tested in the p → 0 limit."
        + stuck_note,
        budget_stable=False if inconclusive else None,
    )
