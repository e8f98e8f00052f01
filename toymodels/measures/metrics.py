"""Metrics for SAEs and toy models: pure functions, each tested against a hand computation.

This module never imports the trainer: every function takes tensors (or, for
:func:`spliced_loss`, a toy model and a reconstruction callable) and returns tensors.

Shapes: x and x_hat are (..., B, D) — a leading instance axis is allowed — and reductions run
over the batch (and feature) axes, returning one value per instance.

Nonsense in, no number out: a NaN in an input gives NaN for the instances it touches (never
a number that silently ignores it), empty batches and mismatched shapes raise ValueError,
and integer tensors are computed in floating point (the result is float64 for them).
"""
from __future__ import annotations

import math

import numpy as np
import torch

# Chinchilla fit (Hoffmann et al. 2022, approach 3): L(N, D) = E + A / N^α + B / D^β.
CHINCHILLA = {"E": 1.69, "A": 406.4, "B": 410.7, "alpha": 0.34, "beta": 0.28}


def _check_positive(**values: float) -> None:
    for name, v in values.items():
        if not v > 0:  # also NaN
            raise ValueError(f"{name} must be > 0, got {v}")


def loss_recovered(loss_orig: float, loss_sae: float, loss_ablated: float) -> float:
    """1 − (L_SAE − L_orig) / (L_ablated − L_orig): 1 when splicing the SAE in costs nothing,
    0 when it is as bad as ablating the activations."""
    if loss_ablated == loss_orig:
        raise ValueError("loss_ablated must differ from loss_orig (the ablation must hurt)")
    return 1.0 - (loss_sae - loss_orig) / (loss_ablated - loss_orig)


def chinchilla_gamma(alpha: float = CHINCHILLA["alpha"], beta: float = CHINCHILLA["beta"]) -> float:
    """γ = αβ / (α + β): the exponent of the compute-optimal frontier L*(C) = E + K (C/6)^−γ."""
    return alpha * beta / (alpha + beta)


def chinchilla_loss(n_params: float, n_tokens: float, **fit: float) -> float:
    """L(N, D) = E + A / N^α + B / D^β."""
    _check_positive(n_params=n_params, n_tokens=n_tokens)
    c = {**CHINCHILLA, **fit}
    return c["E"] + c["A"] / n_params ** c["alpha"] + c["B"] / n_tokens ** c["beta"]


def chinchilla_optimal_loss(compute: float, **fit: float) -> float:
    """L*(C) = min over N·D = C/6 of L(N, D) = E + K (C/6)^−γ with
    K = A (αA/βB)^(−α/(α+β)) + B (βB/αA)^(−β/(α+β))."""
    _check_positive(compute=compute)  # (C/6)^−γ of a negative C is a complex number
    c = {**CHINCHILLA, **fit}
    a, b, al, be = c["A"], c["B"], c["alpha"], c["beta"]
    k = a * (al * a / (be * b)) ** (-al / (al + be)) + b * (be * b / (al * a)) ** (-be / (al + be))
    return c["E"] + k * (compute / 6) ** (-chinchilla_gamma(al, be))


def compute_fraction(loss_orig: float, loss_sae: float, **fit: float) -> float:
    """The fraction of compute whose compute-optimal model has the SAE-spliced loss:
    C_SAE / C_orig = ((L_orig − E) / (L_SAE − E))^(1/γ) (seed 004's "loss recovered" critique)."""
    c = {**CHINCHILLA, **fit}
    if min(loss_orig, loss_sae) <= c["E"]:
        raise ValueError(f"losses must exceed the irreducible loss E = {c['E']}")
    return ((loss_orig - c["E"]) / (loss_sae - c["E"])) ** (1 / chinchilla_gamma(c["alpha"], c["beta"]))


def loss_recovered_vs_compute(loss_orig: float, loss_sae: float, loss_ablated: float, **fit: float) -> dict[str, float]:
    """Both views of one spliced model: loss recovered and its compute-equivalent fraction."""
    return {
        "loss_recovered": loss_recovered(loss_orig, loss_sae, loss_ablated),
        "compute_fraction": compute_fraction(loss_orig, loss_sae, **fit),
        "log10_compute_fraction": math.log10(compute_fraction(loss_orig, loss_sae, **fit)),
    }


# ====================================================================== SAE metrics
# Reconstruction metrics take x, x_hat shaped (B, D) or (..., B, D) and return one value per
# leading index (a 0-d tensor for (B, D)). Dictionary metrics take directions as COLUMNS,
# (D, F) or (..., D, F). All are pure functions of tensors.


def _float_dtype(*ts: torch.Tensor) -> torch.dtype:
    """The common floating dtype of the inputs; float64 when they are integer or bool."""
    dt = ts[0].dtype
    for t in ts[1:]:
        dt = torch.promote_types(dt, t.dtype)
    return dt if dt.is_floating_point else torch.float64


def _check_pair(x: torch.Tensor, x_hat: torch.Tensor) -> torch.dtype:
    """Shapes (..., B, D) with equal B and D, broadcastable leading axes, B, D >= 1; returns
    the floating dtype of the result."""
    if not (isinstance(x, torch.Tensor) and isinstance(x_hat, torch.Tensor)):
        raise ValueError(f"x and x_hat must be tensors, got {type(x).__name__} and {type(x_hat).__name__}")
    if x.ndim < 2 or x_hat.ndim < 2 or x.shape[-1] != x_hat.shape[-1] or x.shape[-2] != x_hat.shape[-2]:
        raise ValueError(
            f"x and x_hat must be (batch, dim) with an optional leading instance axis and equal batch and dim; "
            f"got {tuple(x.shape)} and {tuple(x_hat.shape)}"
        )
    try:
        torch.broadcast_shapes(x.shape, x_hat.shape)
    except RuntimeError:
        raise ValueError(
            f"x and x_hat have leading (instance) axes that do not match: {tuple(x.shape)} and {tuple(x_hat.shape)}"
        ) from None
    if x.shape[-2] == 0 or x.shape[-1] == 0:
        raise ValueError(f"x and x_hat are empty {tuple(x.shape)}: a metric of no samples is undefined")
    return _float_dtype(x, x_hat)


def _check_codes(codes: torch.Tensor) -> None:
    if not isinstance(codes, torch.Tensor) or codes.ndim < 2:
        raise ValueError(f"codes must be a tensor shaped (..., batch, latents), got {getattr(codes, 'shape', codes)!r}")
    if codes.shape[-2] == 0:
        raise ValueError(f"codes has an empty batch {tuple(codes.shape)}: a frequency of no samples is undefined")


def _nan_where(value: torch.Tensor, bad: torch.Tensor) -> torch.Tensor:
    """``value`` with NaN wherever ``bad`` (a NaN input) holds."""
    return torch.where(bad, torch.nan, value)


def l0(codes: torch.Tensor) -> torch.Tensor:
    """Mean number of nonzero latents per sample: mean_b #{j : f_bj ≠ 0}; codes (..., B, F) → (...).
    NaN for an instance with a NaN code."""
    _check_codes(codes)
    out = (codes != 0).sum(dim=-1).to(torch.float32).mean(dim=-1)
    return _nan_where(out, codes.isnan().any(dim=-1).any(dim=-1))


def mse(x: torch.Tensor, x_hat: torch.Tensor) -> torch.Tensor:
    """Mean squared error over batch and dimensions: mean_{b,d} (x_bd − x̂_bd)² → (...).
    (The SAE training loss sums over d instead: mean_b ||x_b − x̂_b||² = D · mse.)"""
    dt = _check_pair(x, x_hat)
    return (x.to(dt) - x_hat.to(dt)).square().mean(dim=(-2, -1))


def fvu(x: torch.Tensor, x_hat: torch.Tensor) -> torch.Tensor:
    """Fraction of variance unexplained: Σ_b ||x_b − x̂_b||² / Σ_b ||x_b − x̄||², with x̄ the
    batch MEAN of x (variance about the mean, not about zero; 1 − FVU is the explained
    variance). A batch with zero variance gives 0 if reconstructed exactly, else inf; NaN
    input gives NaN. Computed in float64."""
    dt = _check_pair(x, x_hat)
    x, x_hat = torch.broadcast_tensors(x.double(), x_hat.double())
    num = (x - x_hat).square().sum(dim=(-2, -1))
    den = (x - x.mean(dim=-2, keepdim=True)).square().sum(dim=(-2, -1))
    flat = torch.where(num == 0, 0.0, torch.where(num > 0, torch.inf, torch.nan))  # zero variance
    return torch.where(den == 0, flat, num / den).to(dt)


def relative_reconstruction_bias(x: torch.Tensor, x_hat: torch.Tensor) -> torch.Tensor:
    """γ = E_b ||x̂_b||² / E_b [x_b · x̂_b] (Wright & Sharkey 2024, "Addressing feature
    suppression in SAEs"): the γ minimising E||x̂/γ − x||²; γ < 1 means shrinkage (x̂ is
    systematically too short), γ = 1 unbiased. Undefined (nan) when E[x·x̂] = 0."""
    dt = _check_pair(x, x_hat)
    num = x_hat.double().square().sum(dim=-1).mean(dim=-1)
    den = (x.double() * x_hat.double()).sum(dim=-1).mean(dim=-1)
    return torch.where(den != 0, num / torch.where(den != 0, den, 1.0), torch.nan).to(dt)


def norm_ratio(x: torch.Tensor, x_hat: torch.Tensor) -> torch.Tensor:
    """E_b[||x̂_b|| / ||x_b||] over the samples with x_b ≠ 0 (< 1: shrinkage); nan if there are
    none, or if a sample holds NaN."""
    dt = _check_pair(x, x_hat)
    x, x_hat = torch.broadcast_tensors(x.double(), x_hat.double())
    nx, nh = x.norm(dim=-1), x_hat.norm(dim=-1)
    ok = nx != 0  # a NaN norm counts (and makes the mean NaN)
    ratio = torch.where(ok, nh / torch.where(ok, nx, 1.0), 0.0).sum(dim=-1)
    n = ok.sum(dim=-1)
    return torch.where(n > 0, ratio / n.clamp_min(1), torch.nan).to(dt)


def firing_frequency(codes: torch.Tensor) -> torch.Tensor:
    """Fraction of samples on which each latent is nonzero: codes (..., B, F) → (..., F);
    NaN for a latent with a NaN code."""
    _check_codes(codes)
    out = (codes != 0).to(torch.float32).mean(dim=-2)
    return _nan_where(out, codes.isnan().any(dim=-2))


def dead_fraction(frequency: torch.Tensor, threshold: float = 0.0) -> torch.Tensor:
    """Fraction of latents firing on at most ``threshold`` of samples (default: never); NaN
    when a frequency is NaN."""
    out = (frequency <= threshold).to(torch.float32).mean(dim=-1)
    return _nan_where(out, frequency.isnan().any(dim=-1))


def dense_fraction(frequency: torch.Tensor, threshold: float = 0.1) -> torch.Tensor:
    """Fraction of latents firing on more than ``threshold`` of samples (default 10%); NaN
    when a frequency is NaN."""
    out = (frequency > threshold).to(torch.float32).mean(dim=-1)
    return _nan_where(out, frequency.isnan().any(dim=-1))


def _check_frequencies(frequency: torch.Tensor) -> None:
    bad = frequency.isnan() | (frequency < 0) | (frequency > 1)
    if bool(bad.any()):
        raise ValueError(f"frequencies must be numbers in [0, 1], found {frequency[bad].flatten()[0].item()}")


def frequency_histogram(frequency: torch.Tensor, bins: int = 20, lowest: float = 1e-5) -> dict[str, torch.Tensor]:
    """Histogram of log10 firing frequencies over [log10(lowest), 0] (frequencies below
    ``lowest`` but above 0 land in the first bin); never-firing latents are counted apart.
    Frequencies must lie in [0, 1] (NaN raises: a count cannot say it is unknown).

    Returns {"edges": (bins + 1,) log10 edges, "counts": (..., bins), "dead": (...)}.
    """
    if bins < 1 or not 0 < lowest < 1:
        raise ValueError(f"bins must be >= 1 and lowest in (0, 1); got bins={bins}, lowest={lowest}")
    _check_frequencies(frequency)
    lo = math.log10(lowest)
    edges = torch.linspace(lo, 0.0, bins + 1, dtype=torch.float64)
    alive = frequency > 0
    logf = torch.log10(torch.where(alive, frequency.double(), 1.0)).clamp(lo, 0.0)
    idx = ((logf - lo) / (-lo) * bins).floor().long().clamp(0, bins - 1)
    onehot = torch.nn.functional.one_hot(idx, bins) * alive[..., None]
    return {"edges": edges, "counts": onehot.sum(dim=-2), "dead": (~alive).sum(dim=-1)}


def _unit_columns(a: torch.Tensor) -> torch.Tensor:
    """Columns scaled to unit norm; a zero column stays zero, a NaN (or infinite) one is NaN."""
    n = a.norm(dim=-2, keepdim=True)
    return torch.where(n == 0, torch.zeros_like(a), a / torch.where(n == 0, 1.0, n))


def cosine_matrix(a: torch.Tensor, b: torch.Tensor) -> torch.Tensor:
    """cos(a_i, b_j) for columns of a (..., D, F) and b (..., D, G) → (..., F, G); a zero
    column has cosine 0 with everything, a column holding NaN or inf has cosine NaN."""
    if a.ndim < 2 or b.ndim < 2 or a.shape[-2] != b.shape[-2]:
        raise ValueError(f"directions must be (..., D, columns) sharing D (rows): got {tuple(a.shape)} and {tuple(b.shape)}")
    dt = _float_dtype(a, b)
    return _unit_columns(a.to(dt)).transpose(-1, -2) @ _unit_columns(b.to(dt))


def mmcs(learned: torch.Tensor, truth: torch.Tensor) -> torch.Tensor:
    """Mean max cosine similarity (Sharkey, Braun & Millidge 2022): the mean over the G
    columns of ``truth`` (D, G) of the largest cosine with any column of ``learned`` (D, F).
    Signed cosines; scale-invariant (columns are normalised; zero columns give cosine 0).
    Also compares two dictionaries (``truth`` = the reference one). Leading axes batch.
    NaN when a column of either holds NaN (a broken dictionary has no score); raises when
    either has no columns."""
    if learned.shape[-1] == 0 or truth.shape[-1] == 0:
        raise ValueError(f"mmcs needs at least one column in each dictionary: got {tuple(learned.shape)} and {tuple(truth.shape)}")
    return cosine_matrix(learned, truth).amax(dim=-2).mean(dim=-1)


def mmcs_between(a: torch.Tensor, b: torch.Tensor) -> torch.Tensor:
    """Symmetric MMCS of two dictionaries (columns): ½ (mmcs(a, b) + mmcs(b, a))."""
    return 0.5 * (mmcs(a, b) + mmcs(b, a))


def mcc(learned: torch.Tensor, truth: torch.Tensor) -> torch.Tensor:
    """Mean cosine of the best ONE-TO-ONE matching (Hungarian algorithm,
    ``scipy.optimize.linear_sum_assignment``, maximising the summed signed cosine) between
    truth columns (D, G) and learned columns (D, F), averaged over the G true features
    (a true feature left unmatched when F < G counts 0). Invariant to permuting either set.
    NaN when a column of either holds NaN or inf, or ``truth`` has no columns."""
    from scipy.optimize import linear_sum_assignment

    cos = cosine_matrix(learned, truth)  # (..., F, G)
    lead = cos.shape[:-2]
    flat = cos.reshape(-1, *cos.shape[-2:]).double().cpu().numpy()
    out = []
    for c in flat:
        if not c.shape[1] or not np.isfinite(c).all():
            out.append(float("nan"))
            continue
        rows, cols = linear_sum_assignment(c, maximize=True)
        out.append(c[rows, cols].sum() / c.shape[1])
    return torch.tensor(out, dtype=cos.dtype).reshape(lead)


def knn_cosine(directions: torch.Tensor, k: int = 1, absolute: bool = True) -> torch.Tensor:
    """For each column of ``directions`` (..., D, F), its k-th largest cosine (|cos| by
    default) to the OTHER columns → (..., F) (seed 000: the 1st, 10th, 100th neighbour).
    NaN for every column when one holds NaN (its cosines are unknown)."""
    n_f = directions.shape[-1]
    if isinstance(k, bool) or not isinstance(k, int) or not 1 <= k <= n_f - 1:
        raise ValueError(f"k must be in [1, F - 1 = {n_f - 1}], got {k}")
    cos = cosine_matrix(directions, directions)
    if absolute:
        cos = cos.abs()
    eye = torch.eye(n_f, dtype=torch.bool, device=cos.device)
    cos = cos.masked_fill(eye, -torch.inf)
    out = cos.topk(k, dim=-1).values[..., k - 1]
    return _nan_where(out, cos.isnan().any(dim=-1).any(dim=-1, keepdim=True))


def prune_by_frequency(frequency: torch.Tensor, target_l0: float) -> torch.Tensor:
    """Which latents to keep (..., F) bool when removing the highest-frequency latents until
    the expected L0 = Σ_j freq_j of the rest is <= ``target_l0`` (seed 003, Sam Marks'
    experiment). Recompute metrics with the removed latents' codes set to zero."""
    if not target_l0 >= 0:
        raise ValueError(f"target_l0 must be >= 0, got {target_l0}")
    _check_frequencies(frequency)
    order = frequency.argsort(dim=-1, descending=True)
    sorted_f = frequency.gather(-1, order).double()
    total = sorted_f.sum(dim=-1, keepdim=True)
    removed = torch.cumsum(sorted_f, dim=-1)
    # latent at sorted position m is removed iff the L0 left after removing positions < m still exceeds the target
    left_before = total - (removed - sorted_f)
    tol = torch.finfo(frequency.dtype).eps * frequency.shape[-1] * total.clamp_min(1.0)  # rounding of the sums
    remove_sorted = left_before > target_l0 + tol
    keep = torch.ones_like(frequency, dtype=torch.bool)
    return keep.scatter(-1, order, ~remove_sorted)


def _readout(model, h: torch.Tensor) -> torch.Tensor:
    """A toy model's output from its hidden activations h (I or 1, B, M)."""
    if hasattr(model, "readout"):
        return model.readout(h)
    kind = getattr(model, "kind", None)
    if kind in ("relu-output", "linear", "hidden-relu"):
        z = h @ model.W_IMN + model.b_IN[:, None, :]
        return z if kind == "linear" else torch.relu(z)
    if kind == "computation":
        return torch.relu(h @ model.W2_INM.transpose(1, 2) + model.b_IN[:, None, :])
    raise ValueError(f"cannot splice into a model of kind {kind!r}: give it a readout(h) method")


@torch.no_grad()
def spliced_loss(model, x: torch.Tensor, reconstruct) -> dict[str, torch.Tensor]:
    """Downstream loss of a toy model with ``reconstruct`` (e.g. an SAE) spliced into its
    hidden layer: h = model.hidden(x) is replaced by reconstruct(h) before the readout.

    Loss is the toy model's own, mean_{b,i} I_i (t_i − y_i)². Returns per-instance tensors
    "clean" (h itself), "spliced" (reconstruct(h)), "zero_ablated" (h = 0) and
    "loss_recovered" = 1 − (spliced − clean) / (zero_ablated − clean).
    """
    h = model.hidden(x)
    target = model.target(x)
    imp = model.importance[:, None, :]

    def loss_of(h_in: torch.Tensor) -> torch.Tensor:
        return (imp * (target - _readout(model, h_in)).square()).mean(dim=(-2, -1))

    clean, spliced, ablated = loss_of(h), loss_of(reconstruct(h)), loss_of(torch.zeros_like(h))
    denom = ablated - clean
    rec = torch.where(denom != 0, 1 - (spliced - clean) / torch.where(denom != 0, denom, 1.0), torch.nan)
    return {"clean": clean, "spliced": spliced, "zero_ablated": ablated, "loss_recovered": rec}
