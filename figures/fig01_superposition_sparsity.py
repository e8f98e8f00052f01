"""Figure 1 — superposition as a function of sparsity (Elhage et al. 2022, section 2).

n = 20 features, m = 5 hidden dimensions, importance 0.7^i, trained at several sparsities S in
one batched run (the sparsity sweep lies on the instance axis). For each S:

* top: WᵀW (n x n, red positive, blue negative) and the bias b as a strip on its right;
* bottom: ||W_i|| per feature, coloured by how much other features project onto it,
  Σ_{j≠i} (Ŵ_i · W_j)² (black: a dimension of its own; yellow: in superposition).

Dense features (S = 0) give the linear answer — the 5 most important features, orthogonal,
the rest dropped; as S grows the model packs more and more features into 5 dimensions.
"""
from __future__ import annotations

from pathlib import Path
from typing import Any

import matplotlib as mpl
import numpy as np
import torch

from figures.common import plt, savefig
from toymodels.measures.analysis import feature_norms, superposition
from toymodels.experiments import train_tms
from toymodels.models import TMSConfig
from toymodels.train import TrainConfig

PRESETS: dict[str, dict[str, Any]] = {
    "tiny": dict(n=20, m=5, decay=0.7, sparsities=(0.0, 0.9, 0.99), seeds=1, steps=150, batch=256, lr=1e-3,
                 schedule="constant", seed=0),
    "quick": dict(n=20, m=5, decay=0.7, sparsities=(0.0, 0.7, 0.9, 0.97, 0.99, 0.997), seeds=1, steps=3000,
                  batch=1024, lr=3e-3, schedule="cosine", seed=0),
    # The paper's settings: 10 000 steps of Adam at lr 1e-3, batch 1024; seven sparsities.
    "full": dict(n=20, m=5, decay=0.7, sparsities=(0.0, 0.7, 0.9, 0.97, 0.99, 0.997, 0.999), seeds=4, steps=10000,
                 batch=1024, lr=1e-3, schedule="constant", seed=0),
}


def train_sweep(cfg: dict[str, Any], device: torch.device):
    """One run over sparsities x seeds; returns (W (S, m, n), b (S, n)) of the best seed of each."""
    probs = [1 - s for s in cfg["sparsities"]]
    run = train_tms(TMSConfig(n_features=cfg["n"], d_hidden=cfg["m"], n_instances=len(probs),
                              importance_decay=cfg["decay"]), probs,
                    train=TrainConfig(steps=cfg["steps"], batch_size=cfg["batch"], lr=cfg["lr"],
                                      schedule=cfg["schedule"]),
                    best_of=cfg["seeds"], seed=cfg["seed"], device=device, desc="fig01")
    return run.model.W.detach().cpu(), run.model.b_IN.detach().cpu()


def make(cfg: dict[str, Any], out_dir: Path, device: torch.device) -> list[Path]:
    W, b = train_sweep(cfg, device)
    n_s, n = len(cfg["sparsities"]), cfg["n"]
    gram = (W.transpose(1, 2) @ W).numpy()
    norms = feature_norms(W).numpy()
    sup = superposition(W).numpy()
    lim = max(1.0, float(np.abs(gram).max()), float(np.abs(b.numpy()).max()))
    sup_norm = mpl.colors.Normalize(0.0, 1.0)
    sup_cmap = mpl.colormaps["inferno"]

    fig = plt.figure(figsize=(2.35 * n_s + 1.2, 6.6))
    outer = fig.add_gridspec(2, n_s + 1, height_ratios=[1.0, 1.05], width_ratios=[1] * n_s + [0.07], hspace=0.28,
                             wspace=0.32)
    for k, s in enumerate(cfg["sparsities"]):
        top = outer[0, k].subgridspec(1, 2, width_ratios=[n, 1.6], wspace=0.08)
        ax = fig.add_subplot(top[0])
        im = ax.imshow(gram[k], cmap="RdBu_r", vmin=-lim, vmax=lim)
        ax.set_title(f"S = {s:g}\n(1 − S = {1 - s:.3g})", fontsize=10)
        ax.set_xticks([0, n - 1])
        ax.set_yticks([0, n - 1])
        if k == 0:
            ax.set_ylabel("WᵀW  (feature i)")
        ax.set_xlabel("feature j", fontsize=8, labelpad=1)
        axb = fig.add_subplot(top[1])
        axb.imshow(b[k].numpy()[:, None], cmap="RdBu_r", vmin=-lim, vmax=lim, aspect="auto")
        axb.set_xticks([0])
        axb.set_xticklabels(["b"])
        axb.set_yticks([])

        ax2 = fig.add_subplot(outer[1, k])
        y = np.arange(n)
        ax2.barh(y, norms[k], color=sup_cmap(sup_norm(np.clip(sup[k], 0, 1))), edgecolor="0.4", linewidth=0.4)
        ax2.set_ylim(n - 0.5, -0.5)
        ax2.set_xlim(0, max(1.3, float(norms.max()) * 1.05))
        ax2.axvline(1.0, color="0.6", lw=0.6, ls=":")
        ax2.set_xlabel("‖W_i‖")
        ax2.set_yticks([0, 5, 10, 15, 19] if n == 20 else [0, n - 1])
        if k == 0:
            ax2.set_ylabel("feature i (importance 0.7^i)" if cfg["decay"] == 0.7 else f"feature i ({cfg['decay']}^i)")
        n_rep = int((norms[k] > 0.5).sum())
        ax2.set_title(f"{n_rep} of {n} represented", fontsize=9)
    cax = fig.add_subplot(outer[0, n_s])
    fig.colorbar(im, cax=cax, label="WᵀW, b")
    cax2 = fig.add_subplot(outer[1, n_s])
    fig.colorbar(mpl.cm.ScalarMappable(sup_norm, sup_cmap), cax=cax2, label="Σ_j≠i (Ŵ_i·W_j)²  (superposition)")
    seeds = f", best of {cfg['seeds']} seeds" if cfg["seeds"] > 1 else ""
    fig.suptitle(f"Superposition vs sparsity: n = {n} features in m = {cfg['m']} dims, importance {cfg['decay']}^i "
                 f"({cfg['steps']} steps{seeds})", fontsize=11, y=1.0)
    return [savefig(fig, out_dir, "fig01_superposition_sparsity")]
