"""Figure 17: the causal-abstraction puzzle (Jørgensen 2025; seed 002) and what an input condition buys.

Left: interchange-intervention accuracy of M* under the X1 and the X2 alignment, per
high-level variable, on the diagonal domain {(0,0), (1,1)} (both pass) and on {0,1}² (only X1
passes). Middle: the cost of verifying "M* (aligned with X2) has M's output whenever x1 = x2"
on {0..n}²: enumeration checks every input and intervention pair satisfying the condition
(measured up to the preset's n, then the same count extrapolated), the symbolic check runs the
models a fixed number of times on symbols whatever n. Counts, not seconds, so the figure is
the same on every run (the seconds are in the theory report, causal.condition_scales). Right:
the same tool on a trained 5→2 toy model: IIA of "feature i is read from W_i·h" vs input
density, against the chance (1 − p)^8 that no other feature is active.
"""
from __future__ import annotations

from pathlib import Path

import numpy as np
import sympy as sp
import torch

from theory.causal import puzzle_report, toy_model_iia
from theory.registry import Context
from toymodels.research.causal import Explanation, grid_domain, puzzle_alignment, puzzle_models

from .common import plt, savefig

PRESETS = {
    "tiny": {"ns": (1, 3, 6), "budget": "tiny", "densities": (0.01, 0.1, 0.4)},
    "quick": {"ns": (1, 3, 10, 30, 100), "budget": "default", "densities": (0.01, 0.03, 0.1, 0.2, 0.3, 0.5)},
    "full": {"ns": (1, 3, 10, 30, 100, 300), "budget": "thorough", "densities": (0.01, 0.02, 0.03, 0.05, 0.1, 0.2, 0.3, 0.5, 0.7)},
}
BIG = 10**6


def make(cfg: dict, out_dir: Path, device: torch.device) -> list[Path]:
    fig, (ax, ax2, ax3) = plt.subplots(1, 3, figsize=(17, 4.8))

    # (a) IIA per variable, alignment and domain
    doms = {"diagonal {(0,0),(1,1)}": [(0, 0), (1, 1)], "{0,1}²": [(0, 0), (0, 1), (1, 0), (1, 1)]}
    labels, vals, colors = [], [], []
    for dname, rows in doms.items():
        rep = puzzle_report(rows)
        for a, col in (("x1", "tab:blue"), ("x2", "tab:orange")):
            for v in ("x", "h", "y"):
                labels.append(f"{v}")
                vals.append(rep[a][v].accuracy)
                colors.append(col)
    pos = np.arange(len(vals)) + np.repeat([0, 1, 2, 3], 3) * 0.8
    ax.bar(pos, vals, color=colors, edgecolor="k")
    ax.set_xticks(pos, labels)
    for k, dname in enumerate(doms):
        ax.text(pos[6 * k: 6 * k + 6].mean(), -0.2, dname, ha="center", fontsize=9, transform=ax.get_xaxis_transform())
    for p_, v_ in zip(pos, vals):
        ax.text(p_, v_ + 0.02, f"{v_:.2g}", ha="center", fontsize=8)
    ax.bar([0], [0], color="tab:blue", label="M*'s input aligned with X1")
    ax.bar([0], [0], color="tab:orange", label="M*'s input aligned with X2")
    ax.set_ylim(0, 1.22)
    ax.set_ylabel("interchange-intervention accuracy")
    ax.set_title("M: h = x1, y = h (x2 idle);  M*: y = x\nIIA per intervened variable of M*")
    ax.legend(fontsize=8, loc="upper right")

    # (b) verification cost vs domain size
    low, high = puzzle_models()
    x1, x2 = sp.symbols("x1 x2")
    e = Explanation(low, high, puzzle_alignment("x2"), condition=sp.Eq(x1, x2))
    ns = np.array(cfg["ns"])
    enum_cases = []
    for n in ns:
        v = e.verify_enumerated(grid_domain(low.inputs, ranges=[range(n + 1)] * 2))
        assert v.holds is True
        enum_cases.append(v.cases + (n + 1) ** 2)  # the pairs and inputs checked, plus the scan for the condition
    sym = e.verify_symbolic({"x1": (0, BIG), "x2": (0, BIG)})
    assert sym.holds is True
    big_n = np.unique(np.concatenate([ns, np.logspace(np.log10(ns[-1]), 6, 30)]))
    formula = lambda n: (n + 1) ** 2 + (n + 1) + 3 * (n + 1) ** 2  # noqa: E731
    ax2.loglog(ns, enum_cases, "o", color="tab:red", label="enumeration, run")
    ax2.loglog(big_n, formula(big_n), "--", color="tab:red", alpha=0.6, label="enumeration, same count extrapolated")
    ax2.loglog(big_n, np.full_like(big_n, sym.cases, dtype=float), "-", color="tab:green",
               label=f"symbolic (sympy): {sym.cases} model runs on symbols,\n{sym.operations} operations simplified")
    ax2.axvline(BIG, color="gray", ls=":")
    ax2.text(BIG, 3, " {0..10⁶}²", rotation=90, va="bottom", ha="right", fontsize=8, color="gray")
    ax2.set_xlabel("n (input domain {0..n}²)")
    ax2.set_ylabel("cases checked (inputs + intervention pairs)\ncounts, not seconds: the same on every run")
    ax2.set_title('cost of verifying "M* (aligned with X2)\nhas M\'s output whenever x1 = x2"')
    ax2.legend(fontsize=8, loc="upper left")
    ax2.grid(alpha=0.3, which="both")

    # (c) trained toy model
    r = toy_model_iia(Context(device=device, budget=cfg["budget"]), densities=cfg["densities"])
    d = np.array(r["densities"])
    ax3.plot(d, r["iia"], "o-", color="tab:purple", label="IIA, all pairs (mean over features i)")
    ax3.plot(d, r["iia_on_condition"], "s-", color="tab:green", ms=4,
             label="IIA on the restricted domain\n(no feature but i active)")
    ax3.plot(d, r["p_condition"], "k--", label="$(1-p)^{2(N-1)}$: chance of the restricted domain")
    ax3.set_xscale("log")
    ax3.set_ylim(-0.02, 1.05)
    ax3.set_xlabel("input feature density p")
    ax3.set_ylabel("interchange-intervention accuracy")
    shape = "/".join(sorted(set(r["geometry"])))
    ax3.set_title(f"trained 5→2 toy model ({shape}, p = 0.05):\nswap h's component along $W_i$, outputs within 0.1")
    ax3.legend(fontsize=8, loc="lower left")
    ax3.grid(alpha=0.3)
    fig.tight_layout()
    return [savefig(fig, out_dir, "fig17_causal_abstraction")]
