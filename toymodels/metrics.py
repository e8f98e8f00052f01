"""Metrics for SAEs and toy models: pure functions, each tested against a hand computation.

Shapes: x and x_hat are (..., B, D) — a leading instance axis is allowed — and reductions run
over the batch (and feature) axes, returning one value per instance.
"""
from __future__ import annotations

import math

# Chinchilla fit (Hoffmann et al. 2022, approach 3): L(N, D) = E + A / N^α + B / D^β.
CHINCHILLA = {"E": 1.69, "A": 406.4, "B": 410.7, "alpha": 0.34, "beta": 0.28}


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
    c = {**CHINCHILLA, **fit}
    return c["E"] + c["A"] / n_params ** c["alpha"] + c["B"] / n_tokens ** c["beta"]


def chinchilla_optimal_loss(compute: float, **fit: float) -> float:
    """L*(C) = min over N·D = C/6 of L(N, D) = E + K (C/6)^−γ with
    K = A (αA/βB)^(−α/(α+β)) + B (βB/αA)^(−β/(α+β))."""
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
