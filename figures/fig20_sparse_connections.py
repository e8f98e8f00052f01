"""Figure 20: sparse connections between two dictionaries (seed 000).

A two-layer toy model whose layer-2 features are sparse non-negative combinations of layer-1
features; a ReLU SAE on each layer; latents matched to features (Hungarian algorithm on
decoder cosines); W (F2 × F1) fitted from layer-1 to layer-2 latent activations with an L1
penalty (FISTA). Left: the true graph C of one instance. Middle: the recovered W in the
feature basis, with every true edge outlined, false positives marked ×, misses marked ○ (the
instance shown is the one with the lowest precision + recall).
Right: precision and recall of the recovered graph (|W| > 0.1) against the L1 coefficient
on W, pooled over the instances (the claim's value marked).
"""
from __future__ import annotations

from pathlib import Path

import numpy as np
import torch

from theory.connections import EDGE_THRESHOLD, MAP_L1, recover_connections
from theory.registry import Context
from toymodels.research.connections import connections_in_feature_basis, fit_sparse_map, score_graph

from .common import plt, savefig

PRESETS = {
    "tiny": {"budget": "tiny", "n_instances": 1, "steps": 300, "lambdas": (1e-4, 1e-3, 1e-2)},
    "quick": {"budget": "default", "n_instances": None, "steps": None, "lambdas": tuple(np.logspace(-5, -1, 9))},
    "full": {"budget": "thorough", "n_instances": None, "steps": None, "lambdas": tuple(np.logspace(-5, -1, 17))},
}


def make(cfg: dict, out_dir: Path, device: torch.device) -> list[Path]:
    r = recover_connections(Context(device=device, budget=cfg["budget"]), n_instances=cfg["n_instances"], steps=cfg["steps"])
    s = r["scores"]
    worst = int(np.argmin(np.array(s["precision"]) + np.array(s["recall"])))  # show the hardest instance
    C, W = r["C"][worst].numpy(), r["W"][worst].numpy()
    vmax = max(float(np.abs(C).max()), float(np.abs(W).max()))
    fig, (ax, ax2, ax3) = plt.subplots(1, 3, figsize=(17, 4.8), gridspec_kw={"width_ratios": [1, 1.1, 0.8]})
    for a, M, title in ((ax, C, "true connections C (layer-2 x layer-1 features)"),
                        (ax2, W, f"recovered W (L1 {MAP_L1:g}), matched to features")):
        im = a.imshow(M, cmap="RdBu_r", vmin=-vmax, vmax=vmax)
        a.set_xlabel("layer-1 feature")
        a.set_ylabel("layer-2 feature")
        a.set_xticks(range(M.shape[1]))
        a.set_yticks(range(M.shape[0]))
        a.set_title(title, fontsize=10)
    fig.colorbar(im, ax=ax2, fraction=0.035, pad=0.03, label="weight")
    true, found = C != 0, np.abs(W) > EDGE_THRESHOLD
    for j, k in zip(*np.nonzero(true)):
        ax2.add_patch(plt.Rectangle((k - 0.5, j - 0.5), 1, 1, fill=False, ec="k", lw=1.5))
    for j, k in zip(*np.nonzero(found & ~true)):
        ax2.plot(k, j, "x", color="tab:red", ms=10, mew=2)
    for j, k in zip(*np.nonzero(true & ~found)):
        ax2.plot(k, j, "o", mfc="none", color="tab:red", ms=12, mew=2)
    fig.suptitle(f"instance {worst} of {r['n_instances']} (the worst): precision {s['precision'][worst]:.2f}, "
                 f"recall {s['recall'][worst]:.2f}.  Middle: outlined = true edge, x = false edge, o = missed edge",
                 fontsize=10)

    lams = np.array(cfg["lambdas"])
    prec, rec = [], []
    for lam in lams:
        Wl, _ = fit_sparse_map(r["z1"], r["z2"], l1=float(lam))
        sc = score_graph(connections_in_feature_basis(Wl, r["match_1"], r["match_2"]), r["C"], threshold=EDGE_THRESHOLD)
        prec.append(sc["pooled_precision"])
        rec.append(sc["pooled_recall"])
    ax3.semilogx(lams, prec, "o-", label="precision")
    ax3.semilogx(lams, rec, "s-", label="recall")
    ax3.axvline(MAP_L1, color="gray", ls=":", label=f"the claim's L1 = {MAP_L1:g}")
    ax3.axhline(0.9, color="k", ls="--", lw=0.8, label="0.9 (claimed)")
    ax3.set_ylim(-0.02, 1.05)
    ax3.set_xlabel("L1 coefficient on W")
    ax3.set_ylabel("pooled over instances")
    ax3.set_title(f"{r['n_instances']} random graphs, edges |W| > {EDGE_THRESHOLD}; matched-latent cosine\n"
                  f">= {float(r['cos_1'].min()):.2f} (layer 1), >= {float(r['cos_2'].min()):.2f} (layer 2)", fontsize=10)
    ax3.legend(fontsize=8, loc="lower left")
    ax3.grid(alpha=0.3)
    fig.tight_layout()
    return [savefig(fig, out_dir, "fig20_sparse_connections")]
