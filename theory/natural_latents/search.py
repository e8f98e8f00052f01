"""Natural latents: searches over softmax-parametrised joints (Nelder–Mead from many starts) for
the worst cases of the conjecture and the resampling bounds."""
from __future__ import annotations

import math
from collections.abc import Sequence
from typing import Any

import numpy as np
from scipy.optimize import minimize

from .measures import (
    JS_FLOOR, _det_ratio, _js_resampling_errors, _kl_resampling_errors, _kl_resampling_fast, random_joint,
)

__all__ = ["softmax_joint", "logit_search", "search_kl_resampling", "kl_resampling_curve",
    "search_deterministic_conjecture", "search_js_resampling"]


# ---------------------------------------------------------------------------------------------
# searches over softmax-parametrised joints
# ---------------------------------------------------------------------------------------------


def softmax_joint(theta: np.ndarray, shape: Sequence[int]) -> np.ndarray:
    """P = softmax(θ) reshaped: every joint with full support is reachable, and gradients-free
    optimisers can move freely in θ ∈ R^n."""
    z = np.exp(theta - theta.max())
    return (z / z.sum()).reshape(tuple(shape))


def logit_search(objective, shape: Sequence[int], rng: np.random.Generator, n_starts: int, maxiter: int,
                 scale: tuple[float, float] = (0.5, 8.0), inits: Sequence[np.ndarray] = ()) -> list[tuple[float, np.ndarray]]:
    """Minimise ``objective(P)`` over joints P = softmax(θ) of ``shape`` with Nelder–Mead
    (adaptive) from ``n_starts`` random θ ~ N(0, s²), s ~ U(scale) (large s: peaked joints
    with near-zeros), plus one start at θ = ln P for each joint in ``inits``. Returns
    (value, P) per start, best first."""
    n = math.prod(shape)
    starts = [np.log(np.maximum(np.asarray(P, dtype=np.float64).ravel(), 1e-300)) for P in inits]
    starts += [rng.normal(size=n) * rng.uniform(*scale) for _ in range(int(n_starts))]
    out = []
    for th0 in starts:
        res = minimize(lambda th: objective(softmax_joint(th, shape)), th0, method="Nelder-Mead",
                       options={"maxiter": int(maxiter), "xatol": 1e-10, "fatol": 1e-13, "adaptive": True})
        out.append((float(res.fun), softmax_joint(res.x, shape)))
    return sorted(out, key=lambda t: t[0])


def _floor_penalty(P: np.ndarray, min_entry: float) -> float:
    return 1e3 * float(np.sum(np.maximum(0.0, np.log(min_entry / np.maximum(P, 1e-300))) ** 2)) if min_entry > 0 else 0.0


def search_kl_resampling(rng: np.random.Generator, eps_target: float, shape: Sequence[int] = (2, 2, 2),
                         n_starts: int = 12, maxiter: int = 1500, min_entry: float = 1e-9,
                         inits: Sequence[np.ndarray] = ()) -> dict[str, Any]:
    """Largest resampled/eps ratio (``kl_resampling_errors``, given=1) found near a target eps.

    Objective over θ (P = softmax(θ)): −ln(ratio) + 10·ln(eps/eps_target)² + a penalty keeping
    every entry >= ``min_entry`` (the lemma assumes P > 0). Nelder–Mead from ``n_starts``
    random θ and from each joint in ``inits`` (e.g. the best joint at a nearby eps: a
    continuation in eps), ``maxiter`` each, then two restarts from the best point (restarting
    re-expands a collapsed simplex). Returns the best joint whose eps is within a factor e^0.2 of the target
    (``in_band``; otherwise the best overall, flagged)."""
    def objective(P: np.ndarray) -> float:
        eps, res = _kl_resampling_fast(P)
        if not eps > 0 or not res > 0:
            return 50.0
        return -math.log(res / eps) + 10 * math.log(eps / eps_target) ** 2 + _floor_penalty(P, min_entry)

    runs = logit_search(objective, shape, rng, n_starts, maxiter, inits=inits)
    for _ in range(2):
        top = runs[0][1]
        th = np.log(np.maximum(top.ravel(), 1e-300))
        res = minimize(lambda t: objective(softmax_joint(t, shape)), th, method="Nelder-Mead",
                       options={"maxiter": int(maxiter), "xatol": 1e-10, "fatol": 1e-13, "adaptive": True})
        runs = sorted(runs + [(float(res.fun), softmax_joint(res.x, shape))], key=lambda t: t[0])
    best = None
    for _, P in runs:
        r = _kl_resampling_errors(P)
        in_band = abs(math.log(r["eps"] / eps_target)) <= 0.2 and P.min() >= 0.5 * min_entry
        key = (in_band, r["ratio"])
        if best is None or key > best[0]:
            best = (key, P, r)
    (in_band, _), P, r = best
    return {**r, "P": P, "in_band": in_band, "eps_target": eps_target, "n_starts": n_starts}


def kl_resampling_curve(rng: np.random.Generator, eps_targets: Sequence[float], n_starts: int = 8,
                        maxiter: int = 1500, **kw: Any) -> dict[float, dict[str, Any]]:
    """``search_kl_resampling`` at each target, largest eps first, each also started from the
    previous target's best joint (continuation: the worst case moves smoothly with eps)."""
    out: dict[float, dict[str, Any]] = {}
    prev: list[np.ndarray] = []
    for t in sorted(eps_targets, reverse=True):
        out[t] = search_kl_resampling(rng, t, n_starts=n_starts, maxiter=maxiter, inits=prev, **kw)
        prev = [out[t]["P"]]
    return out


def search_deterministic_conjecture(rng: np.random.Generator, shapes: Sequence[Sequence[int]] = ((2, 2, 2), (2, 3, 2), (2, 2, 3)),
                                    n_random: int = 200, n_starts: int = 4, maxiter: int = 400,
                                    eps_targets: Sequence[float] = (1e-2, 1e-3)) -> dict[str, Any]:
    """Worst ratio (best deterministic error)/(stochastic eps) found (``deterministic_conjecture_ratio``).

    Stage 1: ``n_random`` Dirichlet joints per shape (α ∈ {0.1, 0.3, 1}, some with exact
    zeros), skipping eps < 1e-9. Stage 2: per shape and eps target (largest first, each also
    started from the previous target's best joint), Nelder–Mead over softmax logits maximising
    ln(ratio) − 10·ln(eps/target)². Returns the worst case and every point
    (eps, ratio) for plotting."""
    points: list[tuple[float, float]] = []
    worst: dict[str, Any] = {"ratio": -1.0}

    def consider(P: np.ndarray, how: str) -> dict[str, Any] | None:
        nonlocal worst
        r = _det_ratio(P)
        if r["eps"] < 1e-9:
            return None
        points.append((r["eps"], r["ratio"]))
        if r["ratio"] > worst["ratio"]:
            worst = {**r, "P": P, "how": how}
        return r

    for shape in shapes:
        for _ in range(int(n_random)):
            consider(random_joint(shape, rng, float(rng.choice([0.1, 0.3, 1.0])), float(rng.choice([0.0, 0.0, 0.3]))), f"random {shape}")
        prev: list[np.ndarray] = []
        for target in sorted(eps_targets, reverse=True):
            def objective(P: np.ndarray, target: float = target) -> float:
                r = _det_ratio(P)
                if not r["eps"] > 1e-12 or not r["det_error"] > 0:
                    return 50.0
                return -math.log(r["ratio"]) + 10 * math.log(r["eps"] / target) ** 2
            runs = logit_search(objective, shape, rng, n_starts, maxiter, scale=(0.5, 4.0), inits=prev) if n_starts else []
            for _, P in runs:
                consider(P, f"Nelder-Mead {shape} eps~{target:g}")
            prev = [runs[0][1]] if runs else []
    return {**worst, "points": np.array(points), "n_evaluated": len(points)}


def search_js_resampling(rng: np.random.Generator, shape: Sequence[int] = (2, 2, 2), n_starts: int = 4,
                         maxiter: int = 600, eps1_at_least: float | None = None) -> dict[str, Any]:
    """Largest observed/bound ratio for Lorell's two JS bounds, by Nelder–Mead over softmax logits
    (objective −max(ε^Γ_2/(bound2 + 1e-20), ε^Γ_med/(bound_med + 1e-20))); a ratio > 1 would be a
    violation. The 1e-20 keeps the search out of the float64 noise floor: round-off of the
    O(1) entries (relative 1e-16) puts JS noise near 1e-32, so JS values below ~1e-25 carry no
    information and their ratios are meaningless.

    Both bounds are tight as ε1 -> 0 (then Γ ≈ Λ); ``eps1_at_least = c`` adds a penalty keeping
    ε1 >= c·max(ε2, ε_med), to measure the slack away from that corner."""
    def ratios(P: np.ndarray) -> tuple[float, float, dict[str, float]]:
        r = _js_resampling_errors(P)
        return r["g2"] / (r["bound2"] + JS_FLOOR), r["g_med"] / (r["bound_med"] + JS_FLOOR), r

    def objective(P: np.ndarray) -> float:
        r2, rm, r = ratios(P)
        pen = 0.0
        if eps1_at_least is not None:
            want = eps1_at_least * max(r["eps2"], r["eps_med"])
            pen = 100 * max(0.0, math.log(max(want, 1e-300) / max(r["eps1"], 1e-300))) ** 2
        return -max(r2, rm) + pen

    best = logit_search(objective, shape, rng, n_starts, maxiter)[0][1]
    r2, rm, r = ratios(best)
    return {"ratio2": r2, "ratio_med": rm, "P": best, **r}
