"""Figure 10: SAEs on featureless data (a Gaussian mixture and the unit square).

TopK SAEs (k = 1) of several dictionary sizes, all in one batched run
(:func:`theory.sae.stability.featureless_experiment`, the experiment of the claim
``sae.featureless_data``). Top: the learned dictionary over held-out data — each point coloured
by the one latent that codes it, arrows from b_dec along the live decoder directions (length: the
latent's mean activation, so the tip is its typical reconstruction). Bottom: held-out (solid)
and training (dashed) FVU against dictionary size for a small and a large training set, and the
number of live latents.
"""
from __future__ import annotations

from pathlib import Path

import numpy as np
import torch

from theory.sae.stability import DATASETS, featureless_experiment

from .common import plt, savefig

PRESETS = {
    "tiny": {"sizes": (4, 8, 16), "n_train": (128, 4096), "steps": 300, "show": 16, "n_clusters": 12},
    "quick": {"sizes": (2, 4, 8, 16, 32, 64), "n_train": (256, 65536), "steps": 2500, "show": 32, "n_clusters": 12},
    "full": {"sizes": (2, 4, 8, 16, 32, 64, 128), "n_train": (256, 1 << 20), "steps": 10000, "show": 32,
             "n_clusters": 12},
}
SCALE = 0.05


def _dictionary_panel(ax, r, dataset: int, size_index: int, means=None) -> None:
    i = r.index(dataset, len(r.n_train) - 1, size_index)
    sae = r.sae.subset([i])
    x = r.heldout[dataset][None].to(sae.b_dec_ID.device)
    with torch.no_grad():
        f = sae.encode(x)[0]
    who = f.argmax(-1).cpu().numpy()
    fired = (f > 0).any(0).cpu().numpy()
    live = np.flatnonzero(fired)
    # colour by latent: a shuffled qualitative map so neighbouring wedges differ
    rank = {j: k for k, j in enumerate(live)}
    cmap = plt.get_cmap("tab20")
    perm = np.random.default_rng(0).permutation(max(len(live), 1))
    colors = np.array([cmap(perm[rank[j]] % 20) for j in who])
    xy = r.heldout[dataset].numpy()
    ax.scatter(xy[:, 0], xy[:, 1], s=2, c=colors, alpha=0.6, linewidths=0)
    b = sae.b_dec_ID[0].detach().cpu().numpy()
    W = sae.W_dec[0].detach().cpu().numpy()
    mean_act = (f.sum(0) / (f > 0).sum(0).clamp_min(1)).cpu().numpy()
    for j in live:
        d = W[j] * mean_act[j]
        ax.annotate("", xy=b + d, xytext=b, arrowprops=dict(arrowstyle="-|>", color="k", lw=0.9, shrinkA=0, shrinkB=0))
    ax.plot(*b, "o", color="k", ms=5, label="b_dec (training mean)")
    if means is not None:
        ax.plot(means[:, 0], means[:, 1], "x", color="crimson", ms=7, mew=1.8, label="cluster means")
    ax.set_aspect("equal")
    ax.set_title(f"{DATASETS[dataset]}: {len(live)} of {r.dict_sizes[size_index]} latents alive")
    ax.legend(fontsize=8, loc="lower right" if dataset == 1 else "best", framealpha=0.9)


def make(cfg: dict, out_dir: Path, device: torch.device) -> list[Path]:
    r = featureless_experiment(dict_sizes=cfg["sizes"], n_train=cfg["n_train"], n_components=cfg["n_clusters"],
                               cluster_scale=SCALE, steps=cfg["steps"], device=device)
    show = r.dict_sizes.index(cfg["show"])
    fig, axes = plt.subplots(2, 2, figsize=(12, 10.5))
    _dictionary_panel(axes[0, 0], r, 0, show, r.means.numpy())
    _dictionary_panel(axes[0, 1], r, 1, show)

    ax, ax2 = axes[1]
    sizes = np.array(r.dict_sizes)
    held = r.heldout[0].double()
    floor = SCALE**2 / float((held - held.mean(0)).square().sum(-1).mean())
    colors = {0: "tab:purple", 1: "tab:orange"}
    for d in range(2):
        for t, nt in enumerate(r.n_train):
            lw = 2.2 if t == len(r.n_train) - 1 else 1.2
            ax.plot(sizes, r.fvu_heldout[d, t], "o-", color=colors[d], lw=lw, ms=4, alpha=1.0 if lw > 2 else 0.7,
                    label=f"{DATASETS[d]}, {nt:,} training points: held-out")
            ax.plot(sizes, r.fvu_train[d, t], "--", color=colors[d], lw=lw, alpha=1.0 if lw > 2 else 0.7,
                    label=f"{DATASETS[d]}, {nt:,} training points: train" if t == 0 else None)
            ax2.plot(sizes, r.alive[d, t], "o-", color=colors[d], lw=lw, ms=4, alpha=1.0 if lw > 2 else 0.7,
                     label=f"{DATASETS[d]}, {nt:,} training points")
    ax.axhline(floor, color="tab:purple", ls=":", lw=1, label="within-cluster noise σ²/E‖x − x̄‖²")
    ref = r.fvu_heldout[1, -1, 0] * (sizes / sizes[0]) ** -2.0
    ax.plot(sizes, ref, color="gray", lw=0.8, ls="-.", label="∝ 1/F² (wedges narrowing)")
    ax.set_xscale("log", base=2)
    ax.set_yscale("log")
    ax.set_xlabel("dictionary size F (TopK, k = 1)")
    ax.set_ylabel("FVU")
    ax.set_ylim(min(floor, float(np.nanmin(r.fvu_train))) / 3, 1.0)
    ax.set_title("square: FVU keeps falling — mixture: stops at the clusters")
    ax.grid(alpha=0.3, which="both")
    ax.legend(fontsize=7.5, loc="upper right")
    ax2.plot(sizes, sizes, color="gray", ls=":", lw=1, label="all latents")
    ax2.axhline(cfg["n_clusters"], color="tab:purple", ls="--", lw=1, label=f"{cfg['n_clusters']} clusters")
    ax2.set_xscale("log", base=2)
    ax2.set_yscale("log", base=2)
    ax2.set_xlabel("dictionary size F")
    ax2.set_ylabel("live latents (fire on held-out data)")
    ax2.set_title("live latents")
    ax2.grid(alpha=0.3, which="both")
    ax2.legend(fontsize=8, loc="upper left")
    fig.tight_layout()
    return [savefig(fig, out_dir, "fig10_featureless")]
