"""Figure 14: SAEs from different seeds on a trained vs a random-weight toy model.

ReLU SAEs from several seeds at several L1 coefficients, on the hidden activations of a trained
toy model and of a random-weight copy (same shape and weight norm, same sparse inputs), all in
one batched run (:func:`toymodels.sae.sweep.seed_stability`, the experiment of the claim
``sae.seed_stability``). Left: the MMCS between every pair of SAEs, each model at the smallest
λ whose L0 is at most 1.5x the data's true L0. Right: cross-seed MMCS per λ for both models,
with the chance level (an SAE on one model against an SAE on the other).
"""
from __future__ import annotations

from pathlib import Path

import numpy as np
import torch

from theory.sae.stability import L0_FACTOR, least_penalised, trained_toy_model
from toymodels.sae.sweep import seed_stability

from .common import plt, savefig

PRESETS = {
    "tiny": {"model": (32, 8, 0.03, 500), "l1": (0.3, 0.6), "seeds": 2, "steps": 400},
    "quick": {"model": (64, 16, 0.04, 2000), "l1": (0.3, 0.6), "seeds": 3, "steps": 2500},
    "full": {"model": (128, 32, 0.02, 6000), "l1": (0.2, 0.3, 0.45, 0.6, 1.0), "seeds": 5, "steps": 10000},
}
COLORS = ("tab:blue", "tab:red")
NAMES = ("trained model", "random-weight model")


def make(cfg: dict, out_dir: Path, device: torch.device) -> list[Path]:
    n, m, p, model_steps = cfg["model"]
    model = trained_toy_model(n, m, p, steps=model_steps, device=device)
    r = seed_stability(model, n_seeds=cfg["seeds"], l1_coefficients=cfg["l1"], feature_probability=p,
                       steps=cfg["steps"], device=device)
    s, lams = r.n_seeds, r.l1_coefficients
    pick = [least_penalised(r.l0[g].mean(-1), r.true_l0) for g in range(2)]
    fig, (ax, ax2) = plt.subplots(1, 2, figsize=(13, 6.2), gridspec_kw={"width_ratios": [1, 1.25]})

    # ---- matrix: trained seeds at their λ, then random seeds at theirs
    idx = [r.index(g, pick[g], k) for g in range(2) for k in range(s)]
    mat = r.matrix[np.ix_(idx, idx)]
    im = ax.imshow(mat, vmin=0.5, vmax=1.0, cmap="magma")
    for a in range(2 * s):
        for b in range(2 * s):
            ax.text(b, a, f"{mat[a, b]:.2f}", ha="center", va="center", fontsize=8 if s <= 4 else 6,
                    color="k" if mat[a, b] > 0.8 else "w")
    ticks = [f"{'T' if g == 0 else 'R'} seed {k}" for g in range(2) for k in range(s)]
    ax.set_xticks(range(2 * s), ticks, rotation=45, ha="right", fontsize=8)
    ax.set_yticks(range(2 * s), ticks, fontsize=8)
    ax.axhline(s - 0.5, color="w", lw=2)
    ax.axvline(s - 0.5, color="w", lw=2)
    fig.colorbar(im, ax=ax, fraction=0.046, pad=0.04, label="MMCS between dictionaries")
    ax.set_title(f"T: trained (λ={lams[pick[0]]:g}, L0 {r.l0[0, pick[0]].mean():.2f}); "
                 f"R: random (λ={lams[pick[1]]:g}, L0 {r.l0[1, pick[1]].mean():.2f})\n"
                 f"true L0 {r.true_l0:.2f}; {r.sae.dict_size} latents, {n} features in {m} dims", fontsize=10)

    # ---- bars per λ
    width = 0.36
    xs = np.arange(len(lams))
    for g in range(2):
        vals = r.cross_seed[g]  # (L, pairs)
        mean = vals.mean(-1)
        lo, hi = mean - vals.min(-1), vals.max(-1) - mean
        ax2.bar(xs + (g - 0.5) * width, mean, width, color=COLORS[g], alpha=0.8, yerr=[lo, hi], capsize=3,
                label=f"{NAMES[g]}: across seeds (range over pairs)")
        ax2.plot(xs + (g - 0.5) * width, r.mmcs_truth[g].mean(-1), "D", color="k", ms=5, mfc=COLORS[g],
                 label="decoder vs the model's true feature directions" if g == 0 else None)
        for j in range(len(lams)):
            ax2.text(xs[j] + (g - 0.5) * width, 0.6, f"SAE L0\n{r.l0[g, j].mean():.1f}", ha="center", va="bottom",
                     fontsize=8, color="w")
            if j == pick[g]:
                ax2.text(xs[j] + (g - 0.5) * width, min(1.0, mean[j] + hi[j]) + 0.005, "★", ha="center",
                         va="bottom", color=COLORS[g], fontsize=12)
    ax2.axhline(float(r.cross_model.mean()), color="gray", ls="--", lw=1,
                label=f"chance: trained-model SAE vs random-model SAE ({r.cross_model.mean():.2f})")
    ax2.axhline(0.95, color="k", ls=":", lw=1, label="0.95 (reported for language models)")
    ax2.set_xticks(xs, [f"λ = {lam:g}" for lam in lams])
    ax2.set_ylim(0.5, 1.06)
    ax2.set_ylabel("mean max cosine similarity")
    ax2.set_title(f"★: smallest λ with L0 ≤ {L0_FACTOR:g} × true L0 (compared in the claim)", fontsize=10)
    ax2.legend(fontsize=8, loc="upper center", bbox_to_anchor=(0.5, -0.08), ncol=2, frameon=False)
    fig.tight_layout()
    return [savefig(fig, out_dir, "fig14_seed_stability")]
