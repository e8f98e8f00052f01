"""Figure 15: equal class means do not bound linear accuracy.

Left: class 0 at (0, ±1) (mass 1/4 each), class 1 at (1, 0) (mass 3/8) and (−3, 0) (mass 1/8).
Both class means are the origin, yet x₁ > 1/2 classifies 7/8 of the mass correctly.
Right: the family with class-1 mass q at (1, 0) and 1 − q at (−q/(1−q), 0): the rule x₁ > 1/2
reaches (1 + q)/2, and the best affine classifier max((1 + q)/2, 1 − q/2) — means stay at 0.
"""
from __future__ import annotations

from fractions import Fraction
from pathlib import Path

import numpy as np
import torch

from theory.erasure import best_linear_accuracy, equal_means_example, equal_means_family

from .common import plt, savefig

PRESETS = {"tiny": {"n_q": 9}, "quick": {"n_q": 41}, "full": {"n_q": 199}}

COLORS = ("tab:blue", "tab:orange")


def make(cfg: dict, out_dir: Path, device: torch.device) -> list[Path]:
    ex = equal_means_example()
    X, z, w = ex.arrays()
    acc = ex.accuracy(0, Fraction(1, 2))
    fig, (ax, ax2) = plt.subplots(1, 2, figsize=(11, 4.5))

    ax.axvspan(0.5, 2.0, color=COLORS[1], alpha=0.08, label="predict class 1 ($x_1 > 1/2$)")
    ax.axvline(0.5, color="k", lw=1, ls="--")
    for c in (0, 1):
        m = z == c
        ax.scatter(X[m, 0], X[m, 1], s=3000 * w[m], color=COLORS[c], alpha=0.8, edgecolor="k", label=f"class {c}")
        for (x, y), mass in zip(X[m], np.array(ex.masses, dtype=object)[m]):
            ax.annotate(f"{mass}", (x, y), xytext=(0, -28), textcoords="offset points", ha="center", fontsize=9)
    for c, marker in ((0, "P"), (1, "X")):
        mean = [float(v) for v in ex.class_mean(c)]
        ax.scatter(*mean, marker=marker, s=160, color=COLORS[c], edgecolor="k", zorder=5, label=f"class {c} mean")
    ax.set_xlim(-3.7, 2.0)
    ax.set_ylim(-2.3, 1.7)
    ax.set_aspect("equal")
    ax.set_xlabel("$x_1$")
    ax.set_ylabel("$x_2$")
    ax.set_title(f"both means at the origin; $x_1 > 1/2$ is right on {acc} of the mass")
    ax.legend(fontsize=7, loc="lower left", markerscale=0.35, framealpha=0.9)

    qs = np.linspace(0.02, 0.98, cfg["n_q"])
    rule = (1 + qs) / 2
    best = []
    for q in qs:
        Xf, zf, wf = equal_means_family(Fraction(float(q)).limit_denominator(10_000)).arrays()
        best.append(best_linear_accuracy(Xf, zf, wf))
    ax2.plot(qs, rule, color="k", label="$x_1 > 1/2$: $(1+q)/2$")
    ax2.plot(qs, best, "o", ms=4, color="tab:green", label="best affine classifier (exact search)\n= max((1+q)/2, 1 − q/2)")
    ax2.axhline(0.5, color="gray", ls=":", label="chance (means equal)")
    ax2.plot([0.75], [0.875], "k*", ms=13, label="the example: q = 3/4, 7/8")
    ax2.set_xlabel("q (class-1 mass at $x_1 = 1$)")
    ax2.set_ylabel("accuracy")
    ax2.set_ylim(0.45, 1.02)
    ax2.set_title("class-1 mass q at 1 and 1 − q at −q/(1 − q): mean 0")
    ax2.legend(fontsize=8, loc="upper center")
    ax2.grid(alpha=0.3)
    fig.tight_layout()
    return [savefig(fig, out_dir, "fig15_equal_means")]
