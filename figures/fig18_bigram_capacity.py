"""Figure 18: how many known bigrams an MLP stores, vs its width (seed 002's bigram toy).

Residual r = A_{t1} + B_{t2} in D = 16 dims; the MLP out = W_out ReLU(W_in r + b_in) must be
nearest to its bigram's own v (among all known v's and 0). Left: the capacity (most bigrams
stored over the number of known bigrams K) vs the width M, with W_in random and frozen (only
W_out trained) and with W_in trained, the residual dimension marked and the fitted exponents
in the legend. Right: bigrams stored vs K at each width (frozen W_in): stored follows K up to
about K = M, the interpolation threshold of least squares on M random features, then drops.
"""
from __future__ import annotations

from pathlib import Path

import numpy as np
import torch

from theory.compressed import D_RESID, N_TOKENS, capacity_verdict
from toymodels.research.compressed import bigram_capacity
from toymodels.train import TrainConfig

from .common import plt, savefig

PRESETS = {
    "tiny": {"widths": [4, 8], "factors": (1.0, 2.0), "steps": 60, "batch": 64},
    "quick": {"widths": [8, 16, 32, 64], "factors": (0.5, 0.7, 1.0, 1.4, 2.0, 2.8, 4.0, 5.6), "steps": 1500,
              "batch": 256},
    "full": {"widths": [8, 16, 32, 64, 128], "factors": (0.5, 0.7, 1.0, 1.2, 1.4, 1.7, 2.0, 2.8, 4.0, 5.6),
             "steps": 4000, "batch": 512},
}


def make(cfg: dict, out_dir: Path, device: torch.device) -> list[Path]:
    tr = TrainConfig(steps=cfg["steps"], batch_size=cfg["batch"], lr=3e-3, schedule="cosine", final_lr_fraction=0.1,
                     quiet=True, eval_samples=1024)
    runs = {tin: bigram_capacity(cfg["widths"], d_resid=D_RESID, n_tokens=N_TOKENS, k_factors=cfg["factors"],
                                 train_in=tin, train=tr, device=device) for tin in (False, True)}
    fig, (ax, ax2) = plt.subplots(1, 2, figsize=(11, 4.5))
    widths = np.array(cfg["widths"], dtype=float)
    for tin, color, label in ((False, "tab:blue", "random frozen $W_{in}$"), (True, "tab:orange", "trained $W_{in}$")):
        cap = runs[tin]
        _, alpha = capacity_verdict(cap.widths, cap.capacity)
        ax.plot(widths, cap.capacity, "o-", color=color, label=f"{label}: exponent α = {alpha:.2f}")
    ax.plot(widths, widths, ":", color="gray", label="stored = M (linear)")
    ax.axhline(D_RESID, color="k", ls="--", lw=1, label=f"residual dimension D = {D_RESID}")
    ax.set_xscale("log", base=2)
    ax.set_yscale("log", base=2)
    ax.set_xlabel("MLP width M")
    ax.set_ylabel("bigrams stored (best K)")
    ax.set_title(f"capacity vs width (D = {D_RESID}, T = {N_TOKENS} tokens)")
    ax.legend(fontsize=8)
    ax.grid(alpha=0.3, which="both")

    frozen = runs[False]
    colors = plt.cm.viridis(np.linspace(0, 0.9, len(frozen.widths)))
    for m, ks, st, c in zip(frozen.widths, frozen.n_bigrams, frozen.stored, colors):
        ax2.plot(np.array(ks) / m, np.array(st) / m, "o-", color=c, label=f"M = {m}")
    lo = min(min(ks) / m for m, ks in zip(frozen.widths, frozen.n_bigrams))
    ax2.plot([lo, 1], [lo, 1], ":", color="gray", label="all K stored")
    ax2.axvline(1.0, color="k", ls="--", lw=1)
    ax2.set_xscale("log", base=2)
    ax2.set_xlabel("known bigrams K / M")
    ax2.set_ylabel("bigrams stored / M")
    ax2.set_title("random frozen $W_{in}$: stored vs K (K = M dashed)")
    ax2.legend(fontsize=8)
    ax2.grid(alpha=0.3)
    fig.tight_layout()
    return [savefig(fig, out_dir, "fig18_bigram_capacity")]
