"""Compressed computation (topic ``compressed``): how many known bigrams an MLP can store.

The bigram toy of seed 002 (see :mod:`toymodels.research.compressed`): the residual stream
holds A_{t1} + B_{t2} for a known bigram (t1, t2); an MLP out = W_out ReLU(W_in r + b_in) must
write that bigram's own vector v_{t1 t2}. A bigram is *stored* when the noise-free output is
nearer to its v than to every other known v and to 0. The seed suggests that a randomly
initialised W_in (only W_out trained) already stores quadratically many bigrams in the MLP
width — more than the residual dimension.

**The trained W_out in closed form.** With W_in and b_in frozen and no input noise, the
training loss is (1/(K·D)) Σ_k ||W_out h_k − v_k||², h_k = ReLU(W_in r_k + b_in) over the K
known bigrams (sampled uniformly): a quadratic in W_out. Its minimisers are the least-squares
solutions of H W_outᵀ = V (H the K × M feature matrix, V the K × D targets); every one of them
gives the same outputs on the known bigrams, H H⁺ V (the projection of V onto the column space
of H), so "trained to convergence" has one exact answer, whatever the seed and the optimiser,
and :func:`optimal_w_out` computes it (float64, a minimum-norm solver). A training run can
only fall short of it (a finite run at widths 32 and 64 stored 34 and 63 bigrams where the
optimum stores about 41 and 84, which pulls the fitted exponent down).

**The verdict.** For each of S independent draws (task and W_in), :func:`optimum_capacity`
counts the bigrams stored at the optimum for a fine grid of K at each width M (the capacity
is the most over K) and fits the exponent α_s of capacity ∝ M^α over the widths;
:func:`interval_verdict` turns the S exponents into a Student-t confidence interval (95 %) and
the conjecture "faster than linear" meets a counterexample when the whole interval lies at or
below 1 + :data:`EXPONENT_TOL`; otherwise it stays open. A counting argument says what to
expect: the output on the known bigrams is the projection of V onto an M-dimensional subspace
of R^K, which keeps about M/K of each v (stored needs more than 1/2), so capacity is linear
in M at fixed D.

>>> from theory.compressed import optimum_capacity, interval_verdict
>>> cap = optimum_capacity([8, 16, 32], seeds=3)
>>> cap.capacity.shape, interval_verdict(cap.exponents)[0]
((3, 3), 'counterexample')
"""
from __future__ import annotations

import math
from dataclasses import dataclass

import numpy as np
import scipy.stats
import torch

from toymodels.device import derive_seed, resolve_device
from toymodels.research.compressed import (
    BigramMLP, BigramMLPConfig, BigramTask, fit_power_law, make_bigram_task, stored_bigrams,
)

from .registry import Context, Result, claim

EXPONENT_TOL = 0.1
"""Slack on the exponent: α <= 1.1 counts as no faster than linear."""
CONFIDENCE = 0.95
"""Level of the Student-t interval on the mean exponent over independent draws."""
D_RESID = 16
"""The residual dimension of the check (fixed while the width grows)."""
N_TOKENS = 24
"""Tokens per position: T² = 576 possible bigrams."""
K_FACTORS = tuple(0.75 + j / 16 for j in range(29))
"""K / M on the grid of known-bigram counts searched at each width: 0.75 to 2.5 in steps of 1/16
(the capacity sits near K ≈ 1.25–1.75 M; the check reports where, and says so if it is at the top)."""


def capacity_verdict(widths: list[int], capacity: list[int], tol: float = EXPONENT_TOL) -> tuple[str, float]:
    """("counterexample" | "open", α) for ONE capacity curve: α is the least-squares exponent of
    log capacity vs log width; counterexample when α <= 1 + tol, open otherwise (or when fewer
    than two widths store any). The claim itself decides on many curves (:func:`interval_verdict`)."""
    alpha, _ = fit_power_law([float(w) for w in widths], [float(c) for c in capacity])
    if math.isnan(alpha):
        return "open", alpha
    return ("counterexample" if alpha <= 1 + tol else "open"), alpha


def exponent_interval(exponents: np.ndarray | list[float], level: float = CONFIDENCE) -> tuple[float, float, float]:
    """(mean, low, high): the Student-t interval of the mean of independent per-draw exponents.
    Needs at least two finite exponents (a ValueError otherwise: one draw has no interval)."""
    a = np.asarray(exponents, dtype=float)
    if a.ndim != 1 or a.size < 2 or not np.isfinite(a).all():
        raise ValueError(f"exponents must be at least two finite values, got {a.tolist()}")
    if not 0 < level < 1:
        raise ValueError(f"level must be in (0, 1), got {level}")
    mean, sem = float(a.mean()), float(a.std(ddof=1) / math.sqrt(a.size))
    half = float(scipy.stats.t.ppf(0.5 + level / 2, a.size - 1)) * sem
    return mean, mean - half, mean + half


def interval_verdict(exponents: np.ndarray | list[float], tol: float = EXPONENT_TOL,
                     level: float = CONFIDENCE) -> tuple[str, tuple[float, float, float]]:
    """("counterexample" | "open", (mean, low, high)): a counterexample to "faster than linear"
    when the whole interval of :func:`exponent_interval` is at or below 1 + ``tol``; open when it
    reaches above (including an interval that straddles the cutoff: nothing shown either way)."""
    mean, lo, hi = exponent_interval(exponents, level)
    return ("counterexample" if hi <= 1 + tol else "open"), (mean, lo, hi)


def optimal_w_out(H: torch.Tensor, V: torch.Tensor) -> torch.Tensor:
    """The minimum-norm least-squares W_out (…, D, M) of H W_outᵀ ≈ V for features H (…, K, M)
    and targets V (…, K, D), in float64 — the global minimum of the frozen-W_in loss (module
    docstring). Zero rows of H and V (padding) change nothing."""
    if H.ndim < 2 or V.shape[:-1] != H.shape[:-1]:
        raise ValueError(f"H (..., K, M) and V (..., K, D) must share their leading shape; got {tuple(H.shape)}, "
                         f"{tuple(V.shape)}")
    H, V = H.double().cpu(), V.double().cpu()
    return torch.linalg.lstsq(H, V, driver="gelsy").solution.transpose(-1, -2)  # pivoted QR: rank-revealing


@dataclass(frozen=True)
class OptimumCapacity:
    """What :func:`optimum_capacity` returns: S draws × W widths."""

    widths: list[int]
    n_bigrams: list[list[int]]
    """The K grid at each width."""
    stored: list[np.ndarray]
    """Per width, (S, G): bigrams stored at the optimum for each K of the grid."""
    capacity: np.ndarray
    """(S, W): the most bigrams stored over the K grid."""
    best_k: np.ndarray
    """(S, W): the K where the capacity is reached (the smallest such K)."""
    exponents: np.ndarray
    """(S,): the fitted exponent α of capacity ∝ M^α of each draw."""
    d_resid: int
    n_tokens: int


def optimum_capacity(widths: list[int], *, seeds: int, d_resid: int = D_RESID, n_tokens: int = N_TOKENS,
                     k_factors: tuple[float, ...] = K_FACTORS, seed: int = 0,
                     device: str | torch.device = "cpu") -> OptimumCapacity:
    """Capacity at the exact optimum of W_out with W_in random and frozen (b_in = 0), for
    ``seeds`` independent draws. Draw s has one task (T tokens, all T² pairs in a random order,
    the known bigrams of a K-task being the first K) and one W_in per width (BigramMLP's own
    init); at each width every K = round(f·M), f in ``k_factors`` (capped at T²), gets its
    least-squares W_out (:func:`optimal_w_out`) and :func:`stored_bigrams` counts in float64."""
    if not widths or any(not isinstance(m, int) or m < 1 for m in widths):
        raise ValueError(f"widths must be positive integers, got {widths}")
    if not isinstance(seeds, int) or seeds < 1:
        raise ValueError(f"seeds must be a positive integer, got {seeds!r}")
    if not k_factors or min(k_factors) <= 0:
        raise ValueError(f"k_factors must be positive, got {k_factors}")
    dev = resolve_device(device)
    t2 = n_tokens * n_tokens
    grids = [sorted({min(t2, max(1, round(f * m))) for f in k_factors}) for m in widths]
    stored = [np.zeros((seeds, len(g)), dtype=int) for g in grids]
    for s in range(seeds):
        full = make_bigram_task(1, d_resid, n_tokens, t2, seed=derive_seed(seed, "bigram-optimum-task", s), device=dev)
        for w, (m, ks) in enumerate(zip(widths, grids)):
            g = len(ks)
            k_max = max(ks)
            mlp = BigramMLP(BigramMLPConfig(d_resid, m, 1, train_in=False),
                            seed=derive_seed(seed, "bigram-optimum-w-in", s, m), device=dev).double()
            w_in = mlp.W_in_IMD.detach().cpu().double()
            task = BigramTask(full.A.double().cpu().expand(g, -1, -1), full.B.double().cpu().expand(g, -1, -1),
                              full.pairs.cpu()[:, :k_max].expand(g, -1, -1),
                              full.v.double().cpu()[:, :k_max].expand(g, -1, -1),
                              torch.tensor(ks, dtype=torch.long), full.lookup.cpu().expand(g, -1))
            mask = (torch.arange(k_max)[None, :] < task.n_bigrams[:, None]).double()[..., None]  # (G, K, 1)
            H = torch.relu(task.residuals() @ w_in.transpose(1, 2)) * mask  # b_in = 0
            W_out = optimal_w_out(H, task.v * mask)
            many = BigramMLP(BigramMLPConfig(d_resid, m, g, train_in=False), device="cpu").double()
            with torch.no_grad():
                many.W_in_IMD.copy_(w_in.expand(g, -1, -1))
                many.b_in_IM.zero_()
                many.W_out_IDM.copy_(W_out)
            stored[w][s] = stored_bigrams(many, task).count.numpy()
    capacity = np.stack([st.max(1) for st in stored], axis=1)
    best_k = np.stack([np.asarray(ks)[st.argmax(1)] for ks, st in zip(grids, stored)], axis=1)
    exps = np.array([fit_power_law([float(m) for m in widths], [float(c) for c in row])[0] for row in capacity])
    return OptimumCapacity(list(widths), grids, stored, capacity, best_k, exps, d_resid, n_tokens)


@claim(
    "compressed.bigram_capacity",
    status="conjecture",
    statement="""An MLP whose input matrix W_in is random and frozen (width d_mlp), with only
    W_out trained, can write the right output vector v_{t1t2} for more known bigrams
    (residual stream t1·A + t2·B) than the residual stream has dimensions, and the number of
    bigrams it stores grows faster than linearly in d_mlp. The check takes W_out at the exact
    optimum of its training loss (least squares: the loss is quadratic in W_out), counts the
    stored bigrams (output nearest to its own v among all known v's and 0) at the best number
    of known bigrams for several widths at a fixed residual dimension, fits the exponent of
    stored ∝ d_mlp^α for each of several independent draws, and calls a counterexample when the
    95% confidence interval of the mean exponent lies at or below 1.1.""",
    source="seed 002 (comment on Bushnaq, Braun & Sharkey 2025, Stochastic Parameter Decomposition)",
    searches=True,
)
def check_bigram_capacity(ctx: Context) -> Result:
    widths = ctx.pick([8, 16, 32, 64], [8, 16, 32, 64, 128], [8, 16, 32, 64, 128])
    seeds = ctx.pick(6, 8, 32)
    cap = optimum_capacity(widths, seeds=seeds, seed=ctx.seed, device=ctx.device)
    verdict, (mean, lo, hi) = interval_verdict(cap.exponents)
    median = np.median(cap.capacity, axis=0)
    ratio = np.round(np.median(cap.best_k / np.asarray(widths), axis=0), 2).tolist()
    above = [w for w, c in zip(widths, median) if c > D_RESID]
    top = [w for w, ks, b in zip(widths, cap.n_bigrams, cap.best_k.T) if (b == ks[-1]).any() and ks[-1] < N_TOKENS ** 2]
    detail = (f"frozen random W_in, D = {D_RESID}, T = {N_TOKENS}, W_out at the exact least-squares optimum "
              f"of the training loss; {seeds} independent draws (task and W_in), K searched over "
              f"{K_FACTORS[0]:g}–{K_FACTORS[-1]:g}·M in steps of M/16. Widths {widths} store a median "
              f"{median.tolist()} bigrams (best K ≈ {ratio}·M); per-draw exponents "
              f"{np.round(cap.exponents, 3).tolist()}; mean α = {mean:.3f}, {CONFIDENCE:.0%} t-interval "
              f"[{lo:.3f}, {hi:.3f}]. Rule: counterexample when the interval's top is <= {1 + EXPONENT_TOL} "
              f"(no faster than linear), open otherwise. More bigrams than residual dims (> {D_RESID}) at widths "
              f"{above or 'none'}. Expected: the outputs are the projection of V onto an M-dim subspace of R^K, "
              "keeping about M/K of each v, so capacity is linear in M."
              + (f" The best K is at the top of the grid at widths {top}: the capacity there may be more." if top
                 else ""))
    return Result(verdict, f"alpha > 1 (counterexample when the {CONFIDENCE:.0%} interval is <= {1 + EXPONENT_TOL})",
                  {"alpha_mean": round(mean, 4), "alpha_interval": [round(lo, 4), round(hi, 4)],
                   "capacity_median": median.tolist(), "widths": widths},
                  {"exponent": EXPONENT_TOL, "confidence": CONFIDENCE}, detail)
