"""Figure 3 — dimensions per feature and feature dimensionality vs sparsity (Elhage et al.
2022, "The Geometry of Superposition").

One batched run of a ReLU-output model (n features, m dims, uniform importance) over a sweep of
densities p = 1 - S. Top: dimensions per feature m / ||W||_F² against 1/(1 - S) (log axis).
Bottom: every represented feature's dimensionality D_i = ||W_i||² / Σ_j (Ŵ_i·W_j)², with the
sticky values of the tight frames (1 dedicated, 3/4 tetrahedron, 2/3 triangle, 1/2 antipodal
pair, 2/5 pentagon, 3/8 square antiprism; :mod:`theory.tms`) and, dotted, 1/3 and m/n — the
value when every feature is represented in one frame spanning all m dimensions.
"""
from __future__ import annotations

from pathlib import Path
from typing import Any

import matplotlib.ticker
import numpy as np
import torch

from figures.common import plt, savefig
from toymodels.measures.analysis import STICKY_DIMENSIONALITIES, dimensions_per_feature, feature_dimensionality, feature_norms
from toymodels.experiments import train_tms
from toymodels.models import TMSConfig
from toymodels.train import TrainConfig

PRESETS: dict[str, dict[str, Any]] = {
    "tiny": dict(n=30, m=6, n_sparsities=4, inv_density_max=10.0, steps=200, batch=128, lr=3e-3, schedule="cosine",
                 seed=0),
    "quick": dict(n=100, m=20, n_sparsities=12, inv_density_max=30.0, steps=2000, batch=256, lr=3e-3,
                  schedule="cosine", seed=0),
    "full": dict(n=200, m=20, n_sparsities=40, inv_density_max=100.0, steps=10000, batch=1024, lr=1e-3,
                 schedule="constant", seed=0),
}


def train_sweep(cfg: dict[str, Any], device: torch.device):
    """W (I, m, n) for densities p = 1 / logspace(1, inv_density_max)."""
    inv = torch.logspace(0, np.log10(cfg["inv_density_max"]), cfg["n_sparsities"])
    run = train_tms(TMSConfig(n_features=cfg["n"], d_hidden=cfg["m"], n_instances=len(inv)), 1 / inv,
                    train=TrainConfig(steps=cfg["steps"], batch_size=cfg["batch"], lr=cfg["lr"],
                                      schedule=cfg["schedule"]),
                    seed=cfg["seed"], device=device, desc="fig03")
    return inv.numpy(), run.model.W.detach().cpu().double()


def make(cfg: dict[str, Any], out_dir: Path, device: torch.device) -> list[Path]:
    inv, W = train_sweep(cfg, device)
    n, m = cfg["n"], cfg["m"]
    dpf = dimensions_per_feature(W).numpy()
    D = feature_dimensionality(W).numpy()
    rep = (feature_norms(W) > 0.5).numpy()

    fig, (ax1, ax2) = plt.subplots(2, 1, figsize=(8.5, 8), sharex=True, gridspec_kw=dict(height_ratios=[1, 1.4]))
    sticky = sorted(STICKY_DIMENSIONALITIES.items(), key=lambda kv: -kv[1][0])
    frac_names = {1.0: "1", 0.75: "3/4", 2 / 3: "2/3", 0.5: "1/2", 0.4: "2/5", 0.375: "3/8"}
    for ax in (ax1, ax2):
        for name, (v, _) in sticky:
            ax.axhline(v, color="tab:blue", lw=0.8, alpha=0.5)
        ax.axhline(1 / 3, color="tab:red", lw=0.8, ls=":", alpha=0.7)
        ax.axhline(m / n, color="0.5", lw=0.8, ls="--", alpha=0.8)
        ax.set_xscale("log")
        ax.set_ylim(0, 1.08)
        ax.grid(axis="x", which="major", alpha=0.3)
    ax1.plot(inv, dpf, "o-", color="k", ms=4)
    ax1.set_ylabel("dimensions per feature  m / ‖W‖_F²")
    ax1.set_title(f"n = {n} features in m = {m} dims, uniform importance ({cfg['steps']} steps, one batched run)",
                  fontsize=10)
    rng = np.random.default_rng(0)
    for k in range(len(inv)):
        d = D[k][rep[k]]
        x = inv[k] * np.exp(rng.uniform(-0.04, 0.04, size=d.shape))  # a little jitter in x
        ax2.plot(x, d, ".", color="k", ms=3, alpha=0.5)
    xr = ax2.get_xlim()
    nudge = {0.4: 0.014, 0.375: -0.008}  # keep the 2/5, 3/8 and 1/3 labels apart
    for name, (v, _) in sticky:
        ax2.text(xr[1] * 1.03, v + nudge.get(v, 0.0), f"{frac_names.get(v, f'{v:.3g}')} {name}", va="center",
                 fontsize=8, color="tab:blue")
    ax2.text(xr[1] * 1.03, 1 / 3 - 0.014, "1/3 (not sticky)", va="center", fontsize=8, color="tab:red")
    ax2.text(xr[1] * 1.03, m / n, f"m/n = {m / n:.2g}", va="center", fontsize=8, color="0.4")
    ax2.set_xlim(xr)
    ax2.set_ylabel("feature dimensionality D_i  (||W_i|| > 0.5)")
    ax2.set_xlabel("1 / (1 − S)  =  1 / feature density")
    ax2.xaxis.set_major_formatter(matplotlib.ticker.FuncFormatter(lambda v, _: f"{v:g}"))
    fig.tight_layout()
    return [savefig(fig, out_dir, "fig03_dimensionality")]
