"""Figure 2 — the geometry of 5 features in 2 dimensions (Elhage et al. 2022, section 3).

A grid of models, all trained in one batched run: columns sweep the sparsity S, rows the
importance decay (feature i has importance decay^i). Each panel draws the five columns W_i of
the best-of-seeds model as arrows in the hidden plane (colour = feature index, dark = most
important) with the unit circle. Dense features: the two most important get orthogonal
dimensions; sparse features: antipodal pairs, then a pentagon when importance is uniform.

Each panel also gives the loss L = E Σ_i I_i (x_i - x'_i)² of the kept model. With uniform
importance and dense features (S = 0) the optimum is degenerate: every orthogonal projection of
the five features onto a plane costs the linear loss 3 Var x = 3/12, and "two features on
orthogonal axes" is only one member of that family (L = 0.25 exactly); the ReLU lets trained
models go slightly below it with the columns spread over several features (issue 8 #19: the
panel is converged — every seed ends within 0.001 of 0.25 — not a failed pair).
"""
from __future__ import annotations

import math
from pathlib import Path
from typing import Any

import matplotlib as mpl
import numpy as np
import torch

from figures.common import plt, savefig
from toymodels.measures.analysis import classify_geometry, feature_dimensionality
from toymodels.experiments import importance_rows, train_tms
from toymodels.models import TMSConfig
from toymodels.train import TrainConfig

PRESETS: dict[str, dict[str, Any]] = {
    "tiny": dict(sparsities=(0.0, 0.9), decays=(1.0, 0.7), seeds=1, steps=150, batch=256, lr=3e-3,
                 schedule="constant", seed=0),
    "quick": dict(sparsities=(0.0, 0.7, 0.9, 0.97, 0.99), decays=(1.0, 0.9, 0.7), seeds=4, steps=3000, batch=512,
                  lr=3e-3, schedule="cosine", seed=0),
    # Paper-like: 10 000 steps of Adam at lr 1e-3, batch 1024, more seeds and a finer grid.
    "full": dict(sparsities=(0.0, 0.5, 0.7, 0.8, 0.9, 0.95, 0.97, 0.99, 0.995), decays=(1.0, 0.95, 0.9, 0.8, 0.7),
                 seeds=4, steps=10000, batch=1024, lr=1e-3, schedule="constant", seed=0),
}
N, M = 5, 2


def train_grid(cfg: dict[str, Any], device: torch.device) -> tuple[torch.Tensor, torch.Tensor]:
    """W (rows, cols, 2, 5) of the best seed for every (importance decay, sparsity), and its loss
    Σ_i I_i (x_i - x'_i)² (rows, cols)."""
    decays, sps = cfg["decays"], cfg["sparsities"]
    probs = [1 - s for _ in decays for s in sps]
    imps = importance_rows(N, [d for d in decays for _ in sps])
    run = train_tms(TMSConfig(n_features=N, d_hidden=M, n_instances=len(probs)), probs,
                    train=TrainConfig(steps=cfg["steps"], batch_size=cfg["batch"], lr=cfg["lr"],
                                      schedule=cfg["schedule"], eval_samples=262144),
                    best_of=cfg["seeds"], seed=cfg["seed"], device=device, importance=imps, desc="fig02")
    shape = (len(decays), len(sps))
    return run.model.W.detach().cpu().reshape(*shape, M, N), (run.loss * N).reshape(shape)  # mean -> sum over features


def make(cfg: dict[str, Any], out_dir: Path, device: torch.device) -> list[Path]:
    W, loss = train_grid(cfg, device)
    rows, cols = W.shape[:2]
    colors = mpl.colormaps["viridis"](np.linspace(0.0, 0.9, N))
    fig, axes = plt.subplots(rows, cols, figsize=(2.3 * cols + 0.6, 2.35 * rows + 0.9), squeeze=False)
    lim = max(1.25, float(W.norm(dim=2).max()) * 1.1)
    circle = np.linspace(0, 2 * math.pi, 200)
    for r, decay in enumerate(cfg["decays"]):
        for c, s in enumerate(cfg["sparsities"]):
            ax = axes[r, c]
            w = W[r, c]
            ax.plot(np.cos(circle), np.sin(circle), color="0.8", lw=0.8, ls="--", zorder=0)
            for i in range(N):
                x, y = float(w[0, i]), float(w[1, i])
                if math.hypot(x, y) > 0.02:
                    ax.annotate("", xy=(x, y), xytext=(0, 0),
                                arrowprops=dict(arrowstyle="-|>", color=colors[i], lw=1.8, mutation_scale=11))
                ax.plot([x], [y], "o", color=colors[i], ms=3)
            ax.set_xlim(-lim, lim)
            ax.set_ylim(-lim, lim)
            ax.set_aspect("equal")
            ax.set_xticks([])
            ax.set_yticks([])
            labels = classify_geometry(w, norm_threshold=0.5)
            n_rep = sum(lab != "not represented" for lab in labels)
            dims = feature_dimensionality(w)
            rep_dims = sorted({round(float(d), 2) for d, lab in zip(dims, labels) if lab != "not represented"},
                              reverse=True)
            dims_text = ", ".join(f"{d:g}" for d in rep_dims)
            ax.text(0.02, 0.02, f"{n_rep} rep.\nD ∈ {{{dims_text}}}\nL = {float(loss[r, c]):.4g}",
                    transform=ax.transAxes, fontsize=7, va="bottom", color="0.25")
            if r == 0:
                ax.set_title(f"S = {s:g}", fontsize=10)
            if c == 0:
                ax.set_ylabel(f"importance {decay:g}^i" if decay != 1 else "uniform importance", fontsize=9)
    handles = [mpl.lines.Line2D([], [], color=colors[i], lw=2, label=f"feature {i}") for i in range(N)]
    fig.legend(handles=handles, loc="lower center", ncol=N, fontsize=8, frameon=False, bbox_to_anchor=(0.5, -0.01))
    seeds = f"best of {cfg['seeds']} seeds, " if cfg["seeds"] > 1 else ""
    fig.suptitle(f"5 features in 2 dimensions: columns W_i of the trained W ({seeds}{cfg['steps']} steps; "
                 "dashed: unit circle)", fontsize=11)
    fig.text(0.5, 0.045, "Uniform importance, S = 0: every projection onto a plane costs L = 3/12 (two orthogonal "
             "features is one of them); the ReLU model goes slightly below.", ha="center", fontsize=8, color="0.3")
    fig.tight_layout(rect=(0, 0.06, 1, 0.97))
    return [savefig(fig, out_dir, "fig02_geometry_2d")]
