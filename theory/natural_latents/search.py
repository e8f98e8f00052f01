"""Natural latents: searches over softmax-parametrised joints (Nelder–Mead from many starts) for
the worst cases of the conjecture and the resampling bounds."""
from __future__ import annotations

import math
from collections.abc import Sequence
from typing import Any

import numpy as np
from scipy.optimize import minimize

from .measures import (
    JS_FLOOR, LAM, X1, X2, _cmi, _det_ratio, _js_resampling_errors, _kl_resampling_errors, _kl_resampling_fast, random_joint,
)

__all__ = ["softmax_joint", "logit_search", "search_kl_resampling", "kl_resampling_curve",
    "search_deterministic_conjecture", "search_js_resampling", "search_kl_resampling_all_errors"]


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


def _kl_errors_torch(P: "torch.Tensor") -> "torch.Tensor":
    """[I(X1;X2|Λ), I(Λ;X1|X2), I(Λ;X2|X1), I(Γ;X1|X2)] for Γ from P[Λ|X1], as a differentiable
    float64 tensor (the same entropy sums as ``_kl_resampling_fast`` and ``stochastic_errors``)."""
    import torch

    def h(p: torch.Tensor) -> torch.Tensor:
        p = p.reshape(-1)
        return -torch.xlogy(p, p).sum()

    p12, p1l, p2l = P.sum(2), P.sum(1), P.sum(0)
    p1, p2, pl = p12.sum(1), p12.sum(0), p1l.sum(0)
    ha, h12, h1l, h2l, h1, h2, hl = h(P), h(p12), h(p1l), h(p2l), h(p1), h(p2), h(pl)
    q2l = torch.einsum("ab,ac->bc", p12, p1l / p1[:, None])
    return torch.stack([h1l + h2l - hl - ha, h12 + h2l - ha - h2, h12 + h1l - ha - h1, h(q2l) - h1l + h1 - h2])


def search_kl_resampling_all_errors(eps_targets: Sequence[float], shape: Sequence[int] = (2, 2, 2), n_starts: int = 4,
                                    seed: int = 0, min_entry: float = 1e-14, max_iter: int = 300) -> dict[float, dict[str, Any]]:
    """Largest I(Γ;X1|X2)/ε with ε = max(I(X1;X2|Λ), I(Λ;X1|X2), I(Λ;X2|X1)) — all three errors
    small, not only the two the KL resampling lemma bounds — found near each target ε.

    Joints P = min_entry + (1 − n·min_entry)·softmax(θ) (every entry > 0, as the lemma assumes);
    L-BFGS in float64 on −ln(ratio) + 10·ln(ε/target)², with ε a smooth maximum (log-sum-exp of
    the three log-errors at sharpness 200), from ``n_starts`` random θ ~ N(0, s²), s ~ U(0.5, 8)
    at the first (largest) target and, at each smaller target, from the previous target's best θ
    (continuation) plus ``n_starts // 2`` fresh starts. Every candidate is re-priced with the numpy
    information measures; only joints whose ε is within e^0.3 of the target count. Returns, per
    target, the best ratio, its three errors and resampled error, and the joint."""
    import torch

    shape, n = tuple(int(s) for s in shape), math.prod(shape)
    g = torch.Generator().manual_seed(int(seed))
    out: dict[float, dict[str, Any]] = {}
    prev: torch.Tensor | None = None

    def joint(th: torch.Tensor) -> torch.Tensor:
        return (min_entry + (1 - n * min_entry) * torch.softmax(th, 0)).reshape(shape)

    for k, target in enumerate(sorted(eps_targets, reverse=True)):
        fresh = n_starts if k == 0 else n_starts // 2
        inits = [torch.randn(n, generator=g, dtype=torch.float64) * (0.5 + 7.5 * torch.rand(1, generator=g, dtype=torch.float64))
                 for _ in range(fresh)]
        if prev is not None:
            inits = [prev, prev + 0.3 * torch.randn(n, generator=g, dtype=torch.float64)] + inits
        best: dict[str, Any] = {"ratio": float("nan"), "eps_target": target, "in_band": False}
        for th0 in inits:
            th = th0.clone().requires_grad_(True)
            opt = torch.optim.LBFGS([th], lr=1, max_iter=int(max_iter), line_search_fn="strong_wolfe",
                                    tolerance_grad=1e-14, tolerance_change=1e-16)

            def closure() -> torch.Tensor:
                opt.zero_grad()
                e = _kl_errors_torch(joint(th))
                lmax = torch.logsumexp(200.0 * e[:3].clamp_min(1e-300).log(), 0) / 200.0
                loss = lmax - e[3].clamp_min(1e-300).log() + 10 * (lmax - math.log(target)) ** 2
                loss.backward()
                return loss

            opt.step(closure)
            P = joint(th.detach()).numpy()
            P = P / P.sum()
            r = _kl_resampling_errors(P)
            med = max(0.0, _cmi(P, X1, X2, LAM))
            eps = max(med, r["red1"], r["red2"])
            if not (eps > 0 and math.isfinite(r["resampled"])) or abs(math.log(eps / target)) > 0.3:
                continue
            ratio = r["resampled"] / eps
            if not best["in_band"] or ratio > best["ratio"]:
                best = {"ratio": ratio, "eps": eps, "med": med, "red1": r["red1"], "red2": r["red2"],
                        "resampled": r["resampled"], "P": P, "eps_target": target, "in_band": True}
                prev = th.detach().clone()
        out[target] = best
    return out
