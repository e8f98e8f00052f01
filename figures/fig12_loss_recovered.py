"""Figure 12: "loss recovered" against the compute a Chinchilla-optimal model would need.

A spliced-in SAE raises the loss from L_orig to L_SAE. Loss recovered
1 − (L_SAE − L_orig)/(L_ablated − L_orig) is linear in the loss; the compute fraction
((L_orig − E)/(L_SAE − E))^(1/γ) (Chinchilla, γ = αβ/(α+β)) is what that loss would cost to
train. Left: both views over a grid of L_SAE between L_orig and L_ablated, for several L_orig.
Right: the same SAE scores differently depending on the ablation baseline (seed 004).
"""
from __future__ import annotations

from pathlib import Path

import numpy as np
import torch

from toymodels.measures.metrics import CHINCHILLA, compute_fraction, loss_recovered

from .common import plt, savefig

PRESETS = {
    "tiny": {"n_grid": 40, "loss_orig": [2.0, 3.0], "loss_ablated": 13.0, "baselines": [8.0, 13.0]},
    "quick": {"n_grid": 200, "loss_orig": [2.0, 2.5, 3.0, 4.0], "loss_ablated": 13.0, "baselines": [6.0, 8.0, 10.8, 13.0]},
    "full": {"n_grid": 1000, "loss_orig": [1.8, 2.0, 2.5, 3.0, 4.0], "loss_ablated": 13.0,
             "baselines": [6.0, 8.0, 10.8, 13.0, 20.0]},
}

EXAMPLE = (2.0, 3.0, 13.0)  # L_orig, L_SAE, L_ablated: 90.9 % recovered, about 8.4e-5 of the compute


def curve(loss_orig: float, loss_ablated: float, n: int) -> tuple[np.ndarray, np.ndarray]:
    """(compute fraction, loss recovered) for L_SAE on a grid from L_orig to L_ablated."""
    l_sae = np.linspace(loss_orig, loss_ablated, n)
    frac = np.array([compute_fraction(loss_orig, float(l)) for l in l_sae])
    rec = np.array([loss_recovered(loss_orig, float(l), loss_ablated) for l in l_sae])
    return frac, rec


def make(cfg: dict, out_dir: Path, device: torch.device) -> list[Path]:
    fig, (ax, ax2) = plt.subplots(1, 2, figsize=(11, 4.2))
    for lo in cfg["loss_orig"]:
        frac, rec = curve(lo, cfg["loss_ablated"], cfg["n_grid"])
        ax.plot(frac, 100 * rec, label=f"$L_{{orig}}$ = {lo:g}")
    lo, ls, la = EXAMPLE
    fx, rx = compute_fraction(lo, ls), loss_recovered(lo, ls, la)
    for a in (ax, ax2):
        a.plot([fx], [100 * rx], "k*", ms=13, zorder=5)
    ax.annotate(f"$L$: {lo:g} → {ls:g} (ablated {la:g})\n{100 * rx:.1f}% recovered,\n{fx:.2g} of the compute",
                (fx, 100 * rx), xytext=(1e-9, 60), arrowprops={"arrowstyle": "->"}, fontsize=8)
    ax.set_xscale("log")
    ax.set_xlabel("compute fraction $C_{SAE}/C_{orig}$ (Chinchilla-optimal)")
    ax.set_ylabel("loss recovered (%)")
    ax.set_title(f"$L_{{ablated}}$ = {cfg['loss_ablated']:g}; E = {CHINCHILLA['E']}")
    ax.legend(fontsize=8)
    ax.grid(alpha=0.3, which="both")

    for la2 in cfg["baselines"]:
        frac, rec = curve(2.0, la2, cfg["n_grid"])
        ax2.plot(frac, 100 * rec, label=f"$L_{{ablated}}$ = {la2:g}")
    ax2.set_xscale("log")
    ax2.set_xlabel("compute fraction $C_{SAE}/C_{orig}$")
    ax2.set_ylabel("loss recovered (%)")
    ax2.set_title("$L_{orig}$ = 2: the same SAE under different ablation baselines")
    ax2.legend(fontsize=8)
    ax2.grid(alpha=0.3, which="both")
    fig.tight_layout()
    return [savefig(fig, out_dir, "fig12_loss_recovered")]
