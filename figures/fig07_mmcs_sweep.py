"""Figure 7: feature recovery vs L1 coefficient and dictionary size (Sharkey, Braun & Millidge 2022).

Ground truth: N sparse features embedded at random unit directions in R^d (N = 2d, as in their
toy data: 512 features in 256 dimensions). For each dictionary ratio F/N one ReLU SAE run sweeps
the L1 coefficient across its instances. Panels: mean max cosine similarity (MMCS) of the true
features with the learned dictionary, L0 against the true number of active features, and the
fraction of dead latents.
"""
from __future__ import annotations

from pathlib import Path

import numpy as np
import torch

from toymodels import SparseFeatures
from toymodels.sae.sweep import dictionary_ratio_sweep

from .common import plt, savefig

PRESETS = {
    "tiny": dict(d=8, n_features=16, expected_l0=2.0, ratios=(0.5, 1, 2), l1=(0.03, 0.3, 3.0), steps=60,
                 batch_size=256),
    "quick": dict(d=16, n_features=32, expected_l0=3.0, ratios=(0.5, 1, 2, 4), l1=tuple(np.geomspace(0.01, 3.0, 8)),
                  steps=2000, batch_size=512),
    # their scale: 512 features in 256 dimensions
    "full": dict(d=256, n_features=512, expected_l0=5.0, ratios=(0.5, 1, 2, 4, 8),
                 l1=tuple(np.geomspace(0.003, 3.0, 12)), steps=20000, batch_size=2048),
}


def make(cfg: dict, out_dir: Path, device: torch.device) -> list[Path]:
    n, d = cfg["n_features"], cfg["d"]
    src = SparseFeatures(n, cfg["expected_l0"] / n, d_embed=d, seed=0, device=device)
    sweeps = dictionary_ratio_sweep(src, cfg["ratios"], cfg["l1"], n_features=n, steps=cfg["steps"],
                                    batch_size=cfg["batch_size"])
    fig, (ax1, ax2, ax3) = plt.subplots(1, 3, figsize=(15, 4.3))
    colors = plt.cm.plasma(np.linspace(0.0, 0.85, len(sweeps)))
    for (ratio, r), c in zip(sweeps.items(), colors):
        lab = f"F = {ratio:g}·N = {r.sae.dict_size}"
        ax1.plot(r.values, r.mmcs, "o-", color=c, label=lab)
        ax2.plot(r.values, r.l0, "o-", color=c, label=lab)
        ax3.plot(r.values, r.dead_fraction, "o-", color=c, label=lab)
    ax1.axhline(1.0, color="0.6", lw=0.8)
    ax1.set_ylabel("MMCS (true features vs learned dictionary)")
    ax1.set_title("feature recovery")
    ax2.axhline(cfg["expected_l0"], color="k", ls="--", lw=1, label=f"true E[L0] = {cfg['expected_l0']:g}")
    ax2.set_yscale("log")
    ax2.set_ylabel("L0 (active latents per sample)")
    ax2.set_title("sparsity")
    ax3.set_ylabel("fraction of latents never firing")
    ax3.set_title("dead latents")
    for ax in (ax1, ax2, ax3):
        ax.set_xscale("log")
        ax.set_xlabel("L1 coefficient λ")
        ax.grid(alpha=0.3, which="both")
    ax1.legend(fontsize=8)
    ax2.legend(fontsize=8)
    fig.suptitle(f"ReLU SAEs on N = {n} sparse features at random directions in d = {d} "
                 f"(one L1 sweep per dictionary size, {cfg['steps']} steps)", fontsize=11)
    fig.tight_layout()
    return [savefig(fig, out_dir, "fig07_mmcs_sweep")]
