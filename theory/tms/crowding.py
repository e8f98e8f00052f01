"""Crowding the circle: the p → 0 loss of k equally spaced features in two dimensions, which
answers seed 002's "why not put arbitrarily many features around the circle?"."""
from __future__ import annotations

import math
from functools import lru_cache
from typing import Callable, NamedTuple, Sequence

import numpy as np
import scipy.optimize
import torch

from toymodels._validate import check_int

from .frames import circle_interference

_GX, _GW = np.polynomial.legendre.leggauss(3)  # exact for the piecewise quadratics below


def _piecewise_integral(f: Callable[[np.ndarray], np.ndarray], breaks: list[float]) -> float:
    pts = sorted({0.0, 1.0, *(min(max(x, 0.0), 1.0) for x in breaks)})
    tot = 0.0
    for lo, hi in zip(pts[:-1], pts[1:]):
        x = (hi - lo) / 2 * _GX + (hi + lo) / 2
        tot += (hi - lo) / 2 * float(np.sum(_GW * f(x)))
    return tot


def polygon_feature_loss(k: int, a: float, b: float) -> float:
    """lim_{p→0} (loss per feature) / p for k equally spaced features of norm √a in the plane
    with bias b ≤ 0: one active feature at a time, so

      ℓ = ∫_0^1 (x - ReLU(a x + b))² dx + Σ_{j=1}^{k-1} ∫_0^1 ReLU(a cos(2πj/k) x + b)² dx,

    its own error plus the interference it causes on the k - 1 others (Elhage et al. 2022,
    section 3). A dropped feature costs E x² = 1/3 instead.
    """
    k = check_int("k", k, 1)
    if a <= 0:
        return 1 / 3
    tot = _piecewise_integral(lambda x: (x - np.maximum(a * x + b, 0.0)) ** 2, [-b / a])
    for j in range(1, k):
        c = a * math.cos(2 * math.pi * j / k)
        if c > 1e-12:
            tot += _piecewise_integral(lambda x, c=c: np.maximum(c * x + b, 0.0) ** 2, [-b / c])
        elif b > 0:
            tot += _piecewise_integral(lambda x, c=c: np.maximum(c * x + b, 0.0) ** 2, [-b / c if c < 0 else 2.0])
    return tot


@lru_cache(maxsize=64)
def best_polygon(k: int) -> tuple[float, float, float]:
    """(ℓ*, a*, b*): :func:`polygon_feature_loss` minimised over the squared norm a and bias b.

    Up to k = 4 the interference cos(2π/k) ≤ 0 and ℓ* = 0 (a = 1, b = 0); beyond, the bias must
    cancel interference ≈ a cos(2π/k) → a as k grows, and ℓ* rises towards 1/3.
    """
    k = check_int("k", k, 1)
    c = circle_interference(k)
    starts = [(1.0, 0.0), (1.0, -c), (1 / (1 - c) if c < 1 else 1.0, -c / (1 - c) if c < 1 else -1.0), (2.0, -1.0)]
    best = (polygon_feature_loss(k, 1.0, 0.0), 1.0, 0.0)
    for a0, b0 in starts:
        res = scipy.optimize.minimize(
            lambda z: polygon_feature_loss(k, z[0], z[1]), [a0, b0], method="L-BFGS-B",
            bounds=[(1e-3, 20.0), (-20.0, 0.0)],
        )
        if res.fun < best[0]:
            best = (float(res.fun), float(res.x[0]), float(res.x[1]))
    return best


def crowding_prediction(n: int) -> dict[str, float]:
    """Best "k equally spaced, the other n - k dropped" configuration of n features in two
    dimensions as p → 0: loss/p = n/3 + min_{k ≤ n} k (ℓ*(k) - 1/3).

    Each added direction costs every represented feature more interference, so the optimum
    stops at k* = 7 however large n is (ℓ*(7) ≈ 0.083). Returns k, loss_per_density, the
    squared norm a and bias b of the polygon, and its neighbour interference cos(2π/k).
    """
    n = check_int("n", n, 1)
    gains = {k: k * (best_polygon(k)[0] - 1 / 3) for k in range(1, n + 1)}
    k = min(gains, key=gains.get)
    _, a, b = best_polygon(k)
    return {"k": k, "loss_per_density": n / 3 + gains[k], "a": a, "b": b, "interference": circle_interference(k)}



# ---------------------------------------------------------------------- any configuration, p → 0
def _relu_square_integral(c: torch.Tensor, b: torch.Tensor) -> torch.Tensor:
    """∫_0^1 ReLU(c x + b)² dx for b <= 0 (elementwise): (c + b)³ / (3c) when c + b > 0, else 0."""
    pos = (c + b).clamp_min(0.0)
    return torch.where(c > 1e-12, pos**3 / (3 * c.clamp_min(1e-12)), torch.zeros_like(c))


def _own_integral(a: torch.Tensor, b: torch.Tensor) -> torch.Tensor:
    """∫_0^1 (x - ReLU(a x + b))² dx for a >= 0, b <= 0: x² up to the kink x0 = -b/a, then
    ((1 - a) x - b)²."""
    x0 = torch.where(a > -b, -b / a.clamp_min(1e-12), torch.ones_like(a)).clamp(0.0, 1.0)
    k = 1 - a

    def F(x: torch.Tensor) -> torch.Tensor:
        return k * k * x**3 / 3 - k * b * x**2 + b * b * x

    return x0**3 / 3 + F(torch.ones_like(x0)) - F(x0)


def limit_loss(W: torch.Tensor, b: torch.Tensor, mask: torch.Tensor | None = None) -> torch.Tensor:
    """lim_{p→0} (loss Σ_i (x_i - x'_i)²) / p of the ReLU-output model with any W (..., 2, n) and
    bias b (..., n) <= 0, shape (...): one feature active at a time, so

      Σ_i [ ∫_0^1 (x - ReLU(||W_i||² x + b_i))² dx + Σ_{j≠i} ∫_0^1 ReLU((W_i·W_j) x + b_j)² dx ].

    A positive bias costs b_j² on every sample with no feature active, which dominates as p → 0,
    so b <= 0 is the p → 0 constraint. :func:`polygon_feature_loss` is this for k equally spaced
    features, per feature. ``mask`` (..., n) (0/1) keeps only the first features of padded
    instances: a masked feature never fires and is not counted.
    """
    if mask is not None:
        W = W * mask[..., None, :]
    G = W.transpose(-1, -2) @ W  # (..., n, n): W_i · W_j
    n = G.shape[-1]
    own = _own_integral(torch.diagonal(G, dim1=-2, dim2=-1), b)
    off = _relu_square_integral(G, b[..., None, :])  # row i active, column j the output
    off = off * (1.0 - torch.eye(n, dtype=G.dtype, device=G.device))
    if mask is not None:
        own = own * mask
        off = off * mask[..., :, None] * mask[..., None, :]
    return own.sum(-1) + off.sum((-1, -2))


def represented(W: torch.Tensor, b: torch.Tensor, min_output: float = 0.0) -> torch.Tensor:
    """Features whose output ever opens: ||W_i||² + b_i > ``min_output`` (with b_i <= 0 the output
    ReLU(||W_i||² x + b_i) of an active feature is largest at x = 1, and 0 for every x in [0, 1] when
    ||W_i||² + b_i <= 0, so the feature is not represented however long W_i is). A feature that opens
    by ε changes the loss by O(ε²): ``min_output`` > 0 keeps such float-level openings out of the
    count. Shape (..., n), bool."""
    return W.square().sum(-2) + b > min_output


def _adam_limit(W: torch.Tensor, b: torch.Tensor, mask: torch.Tensor, steps: int, lr: float) -> None:
    """Adam on :func:`limit_loss` in place (b clamped to <= 0; lr/5 for the last third)."""
    W.requires_grad_()
    b.requires_grad_()
    opt = torch.optim.Adam([W, b], lr=lr)
    for it in range(steps):
        if it == 2 * steps // 3:
            for group in opt.param_groups:
                group["lr"] = lr / 5
        opt.zero_grad()
        limit_loss(W, b.clamp_max(0.0), mask).sum().backward()
        opt.step()


def polygon_starts(ns: Sequence[int]) -> tuple[torch.Tensor, torch.Tensor]:
    """The analytic candidates of the p → 0 search, the "known answers" it starts from: for each
    n in ``ns`` and each k <= n, the regular k-gon with its optimal squared norm and bias
    (:func:`best_polygon`) on the first k features, the other n - k dropped (W_i = 0, b_i = 0).
    k = 1 is one dedicated feature, k = 2 the antipodal pair, k = 4 two antipodal pairs, k = 5 the
    pentagon, k = 7 the prediction. Returns W (len(ns), A, 2, N) and b (len(ns), A, N), float64,
    with A = N = max(ns); an n < N repeats its n-gon in the spare slots (padded features are zero)."""
    ns = [check_int("n", n, 1) for n in ns]
    N = max(ns)
    W = torch.zeros(len(ns), N, 2, N, dtype=torch.float64)
    b = torch.zeros(len(ns), N, N, dtype=torch.float64)
    for c, n in enumerate(ns):
        for slot in range(N):
            k = min(slot + 1, n)
            _, a, bias = best_polygon(k)
            ang = 2 * math.pi * torch.arange(k, dtype=torch.float64) / k
            W[c, slot, :, :k] = math.sqrt(a) * torch.stack([torch.cos(ang), torch.sin(ang)])
            b[c, slot, :k] = bias
    return W, b


class LimitSearch(NamedTuple):
    """What :func:`descend_limit_loss` returns."""

    W: torch.Tensor
    """(len(ns), S, 2, N): the last round's configurations, the best found in slot 0."""
    b: torch.Tensor
    """(len(ns), S, N), <= 0."""
    loss: torch.Tensor
    """(len(ns), S): their :func:`limit_loss`; slot 0 holds the lowest of the whole search."""
    random_first_round: torch.Tensor
    """(len(ns), starts): the loss each *random* start reached in the first round, before any hop
    or analytic start could help it: how often the search alone finds the optimum."""
    lowest: torch.Tensor
    """(len(ns),): the lowest loss any configuration reached at any round (the evidence a better
    configuration than the prediction exists, if it is below it)."""


def descend_limit_loss(ns: Sequence[int], *, starts: int = 64, steps: int = 2000, lr: float = 0.03,
                       hops: int = 2, hop_noise: float = 0.3, init_scale: float = 0.8,
                       seed: int = 0, init: tuple[torch.Tensor, torch.Tensor] | None = None) -> LimitSearch:
    """Train the p → 0 toy model: Adam on :func:`limit_loss` from ``starts`` random (W, b) per n
    in ``ns`` (float64, all n in one batch padded to max(ns) features) plus the configurations
    ``init`` (W (len(ns), A, 2, N), b (len(ns), A, N); e.g. :func:`polygon_starts`), then ``hops``
    rounds of basin hopping — every start restarts from the best configuration so far plus
    Gaussian noise (``hop_noise``) and descends ``steps // 2`` more. The best so far starts as the
    best of ``init`` as given (undescended), so the search never ends above a known answer: it can
    only find a lower configuration. Nothing else is assumed about the configuration's shape.
    Returns a :class:`LimitSearch`; padded features are zero."""
    ns = [check_int("n", n, 1) for n in ns]
    starts = check_int("starts", starts, 1)
    N, C = max(ns), len(ns)
    g = torch.Generator().manual_seed(int(seed))
    W = torch.randn(C, starts, 2, N, generator=g, dtype=torch.float64) * init_scale
    b = -0.3 * torch.rand(C, starts, N, generator=g, dtype=torch.float64)
    A = 0
    if init is not None:
        W0, b0 = (t.to(torch.float64) for t in init)
        if W0.shape[:2] != b0.shape[:2] or W0.shape[0] != C or W0.shape[2:] != (2, N) or b0.shape[2:] != (N,):
            raise ValueError(f"init must be W ({C}, A, 2, {N}) and b ({C}, A, {N}), got {tuple(W0.shape)} and "
                             f"{tuple(b0.shape)}")
        A = W0.shape[1]
        W, b = torch.cat([W, W0], 1), torch.cat([b, b0.clamp_max(0.0)], 1)
    S = starts + A
    mask = (torch.arange(N)[None, :] < torch.tensor(ns)[:, None]).to(torch.float64)[:, None, :].expand(-1, S, -1)
    best_W, best_b, best_L = None, None, None
    if A:
        with torch.no_grad():
            Wa, ba = W[:, starts:] * mask[:, starts:, None, :], b[:, starts:] * mask[:, starts:]
            La = limit_loss(Wa, ba, mask[:, starts:])
            i = La.argmin(1)
            best_W, best_b, best_L = Wa[torch.arange(C), i], ba[torch.arange(C), i], La[torch.arange(C), i]
    lowest = best_L.clone() if best_L is not None else torch.full((C,), math.inf, dtype=torch.float64)
    first = None
    for round_ in range(hops + 1):
        _adam_limit(W, b, mask, steps if round_ == 0 else steps // 2, lr)
        with torch.no_grad():
            Wm, bm = W.detach() * mask[..., None, :], b.detach().clamp_max(0.0) * mask
            L = limit_loss(Wm, bm, mask)
            if first is None:
                first = L[:, :starts].clone()
            lowest = torch.minimum(lowest, L.min(1).values)
            i = L.argmin(1)
            cand_W, cand_b, cand_L = Wm[torch.arange(C), i], bm[torch.arange(C), i], L[torch.arange(C), i]
            if best_L is None:
                best_W, best_b, best_L = cand_W, cand_b, cand_L
            else:
                better = cand_L < best_L
                best_W = torch.where(better[:, None, None], cand_W, best_W)
                best_b = torch.where(better[:, None], cand_b, best_b)
                best_L = torch.minimum(cand_L, best_L)
            if round_ < hops:
                W = best_W[:, None] + hop_noise * torch.randn(C, S, 2, N, generator=g, dtype=torch.float64)
                noise = hop_noise * torch.randn(C, S, N, generator=g, dtype=torch.float64)
                b = (best_b[:, None] + noise).clamp_max(0.0)
    Wm[:, 0], bm[:, 0], L[:, 0] = best_W, best_b, best_L
    return LimitSearch(Wm, bm, L, first, lowest)
