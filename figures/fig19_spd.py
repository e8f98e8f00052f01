"""Figure 19: stochastic parameter decomposition on the toy models.

Left and middle: SPD of a trained 5 → 2 toy model (W and Wᵀ decomposed separately). The
causal importance g of each live subcomponent (columns, ordered by the feature they match
best) on the one-hot inputs e_1 … e_5 (rows), with each column's Frobenius cosine to its
feature's rank-1 piece above it: one subcomponent per feature is a diagonal of ones.
Right: on the bigram toy (random frozen W_in, more known bigrams than residual dims), how
many known bigrams each live W_in subcomponent is causally important for (seed 002's
question: one each, or many?).
"""
from __future__ import annotations

from pathlib import Path

import numpy as np
import torch

from theory.registry import Context
from theory.spd import CI_ON, CI_OFF, bigram_setting, run_bigram_spd, run_tms_spd, tms_pieces
from toymodels.research.spd import causal_importance, rank_one_cosine

from .common import plt, savefig

PRESETS = {"tiny": {"budget": "tiny"}, "quick": {"budget": "default"}, "full": {"budget": "thorough"}}


def make(cfg: dict, out_dir: Path, device: torch.device) -> list[Path]:
    ctx = Context(device=torch.device(device), budget=cfg["budget"])
    tms, run = run_tms_spd(ctx)
    spd = run.model
    g = causal_importance(spd, torch.eye(5, device=ctx.device)[None])
    pieces = tms_pieces(tms.W_IMN)
    fig, axes = plt.subplots(1, 3, figsize=(15, 4.4), gridspec_kw={"width_ratios": [1, 1, 1.2]})
    for ax, name, title in ((axes[0], "W", "W (features → hidden)"), (axes[1], "W_T", "Wᵀ (hidden → features)")):
        gi = g[name][0].cpu().numpy()  # (5, C)
        u, v = pieces[name]
        cos = rank_one_cosine(spd.U[name][0], spd.V[name][0], u[0], v[0]).cpu().numpy()  # (C, 5)
        live = np.flatnonzero(gi.max(0) > CI_OFF)
        order = live[np.argsort(cos[live].argmax(1) + 0.01 * np.arange(len(live)))] if live.size else live
        im = ax.imshow(gi[:, order] if order.size else np.zeros((5, 1)), vmin=0, vmax=1, cmap="viridis", aspect="auto")
        ax.set_yticks(range(5), [f"$e_{i + 1}$" for i in range(5)])
        ax.set_xticks(range(len(order)), [f"{cos[c].max():.2f}" for c in order], fontsize=8)
        ax.set_xlabel("live subcomponents (label: best cosine with a feature's piece)")
        ax.set_title(f"5→2 toy, {title}: {live.size} live of {spd.n_components}")
        fig.colorbar(im, ax=ax, fraction=0.046, label="causal importance g")

    b = run_bigram_spd(ctx)
    s = bigram_setting(ctx)
    ax = axes[2]
    top = int(max([0, *b.counts.tolist(), *b.counts_out.tolist()]))
    xs = np.arange(top + 1)
    for counts, dx, color, label in ((b.counts, -0.2, "tab:blue", "$W_{in}$"), (b.counts_out, 0.2, "tab:orange",
                                                                                "$W_{out}$")):
        hist = np.bincount(counts.astype(int), minlength=top + 1) if counts.size else np.zeros(top + 1)
        ax.bar(xs + dx, hist, width=0.4, color=color, label=f"{label}: {counts.size} live subcomponents")
    ax.set_xticks(xs)
    ax.set_xlabel(f"known bigrams on which g ≥ {CI_ON}")
    ax.set_ylabel("live subcomponents")
    ax.set_title(f"bigram toy: D = {s['d_resid']}, K = {s['n_bigrams']} bigrams, M = {s['d_mlp']} "
                 f"({b.n_stored} stored)")
    ax.legend(fontsize=8)
    ax.grid(alpha=0.3)
    fig.tight_layout()
    return [savefig(fig, out_dir, "fig19_spd")]
