"""Compressed computation (topic ``compressed``): how many known bigrams an MLP can store.

The bigram toy of seed 002 (see :mod:`toymodels.compressed`): the residual stream holds
A_{t1} + B_{t2} for a known bigram (t1, t2); an MLP out = W_out ReLU(W_in r + b_in) must write
that bigram's own vector v_{t1 t2}. A bigram is *stored* when the noise-free output is nearer
to its v than to every other known v and to 0. The seed suggests that a randomly initialised
W_in (only W_out trained) already stores quadratically many bigrams in the MLP width — more
than the residual dimension. :func:`capacity_verdict` turns a measured capacity curve into the
conjecture's verdict: a counterexample when the fitted exponent α of capacity ∝ M^α is at
most 1 + :data:`EXPONENT_TOL` (no faster than linear over the widths tried).

A counting argument says what to expect at fixed D: with W_in frozen the output is a linear
map of M random features, and least squares fits K arbitrary targets exactly only while
K <= M (the interpolation threshold), so nearest-vector decoding is expected to break down
near K ≈ M; W_in trained adds M·D parameters, worth a constant factor more at fixed D.

>>> from theory.compressed import capacity_verdict
>>> from toymodels.compressed import bigram_capacity
>>> cap = bigram_capacity([8, 16, 32], d_resid=16, train_in=False)
>>> cap.capacity, capacity_verdict(cap.widths, cap.capacity)
"""
from __future__ import annotations

import math

from toymodels.research.compressed import BigramCapacity, bigram_capacity, fit_power_law
from toymodels.train import TrainConfig

from .registry import Context, Result, claim

EXPONENT_TOL = 0.1
"""Slack on the exponent: α <= 1.1 counts as no faster than linear."""
D_RESID = 16
"""The residual dimension of the check (fixed while the width grows)."""
N_TOKENS = 24
"""Tokens per position: T² = 576 possible bigrams."""


def capacity_verdict(widths: list[int], capacity: list[int], tol: float = EXPONENT_TOL) -> tuple[str, float]:
    """("counterexample" | "open", α): α is the least-squares exponent of log capacity vs
    log width; the conjecture "capacity grows faster than linearly" meets a counterexample
    when α <= 1 + tol, and stays open otherwise (or when fewer than two widths store any)."""
    alpha, _ = fit_power_law([float(w) for w in widths], [float(c) for c in capacity])
    if math.isnan(alpha):
        return "open", alpha
    return ("counterexample" if alpha <= 1 + tol else "open"), alpha


def capacity_train_config(ctx: Context) -> TrainConfig:
    """The training run of each width in the check (budget-dependent)."""
    return TrainConfig(steps=ctx.pick(200, 1500, 4000), batch_size=ctx.pick(64, 256, 512),
                       lr=ctx.pick(2e-2, 3e-3, 3e-3),
                       schedule="cosine", final_lr_fraction=0.1, quiet=True, eval_samples=1024)


def measure_capacity(ctx: Context, *, train_in: bool) -> BigramCapacity:
    """The check's capacity sweep: widths and K grid by budget, D = 16, T = 24."""
    widths = ctx.pick([4, 8], [8, 16, 32, 64], [8, 16, 32, 64, 128])
    factors = ctx.pick((1.0, 2.0), (0.5, 0.7, 1.0, 1.4, 2.0, 2.8, 4.0, 5.6),
                       (0.5, 0.7, 1.0, 1.2, 1.4, 1.7, 2.0, 2.8, 4.0, 5.6))
    return bigram_capacity(widths, d_resid=D_RESID, n_tokens=N_TOKENS, k_factors=factors, train_in=train_in,
                           seeds=ctx.pick(1, 1, 2), train=capacity_train_config(ctx), seed=ctx.seed,
                           device=ctx.device)


@claim(
    "compressed.bigram_capacity",
    status="conjecture",
    statement="""An MLP whose input matrix W_in is random and frozen (width d_mlp), with only
    W_out trained, can write the right output vector v_{t1t2} for more known bigrams
    (residual stream t1·A + t2·B) than the residual stream has dimensions, and the number of
    bigrams it stores grows faster than linearly in d_mlp. The check trains the MLP at several
    widths with a fixed residual dimension, counts the stored bigrams (output nearest to its
    own v among all known v's and 0) at the best number of known bigrams, and fits the
    exponent of stored ∝ d_mlp^α.""",
    source="seed 002 (comment on Bushnaq, Braun & Sharkey 2025, Stochastic Parameter Decomposition)",
)
def check_bigram_capacity(ctx: Context) -> Result:
    cap = measure_capacity(ctx, train_in=False)
    verdict, alpha = capacity_verdict(cap.widths, cap.capacity)
    per_neuron = [round(c / w, 2) for c, w in zip(cap.capacity, cap.widths)]
    above = [w for w, c in zip(cap.widths, cap.capacity) if c > cap.d_resid]
    detail = (f"frozen random W_in, D = {cap.d_resid}, T = {N_TOKENS}: widths {cap.widths} store "
              f"{cap.capacity} bigrams ({per_neuron} per neuron); fitted exponent α = {alpha:.3f} "
              f"(the conjecture needs α > 1; counterexample rule α <= {1 + EXPONENT_TOL}). "
              f"More bigrams than residual dims (> {cap.d_resid}) at widths {above or 'none'}. "
              "Expected from least squares on M random features: exact fits only up to K = M.")
    return Result(verdict, "alpha > 1", round(alpha, 4) if not math.isnan(alpha) else None,
                  EXPONENT_TOL, detail)
