"""Figure 22: SPD on TMS 5-2 as in the paper's Figure 1, and our published rows against the paper.

Bushnaq, Braun & Sharkey 2025 ("Stochastic Parameter Decomposition"), Figure 1 and Table 1.
Top left: the target's columns W_{:,j} (one 2-D arrow per input feature j) of a 5 → 2 toy model
trained as the paper trains it (:func:`theory.published.paper_tms_target`). Top middle: the
columns of the sum of SPD's subcomponents Σ_c U_c V_cᵀ (faithfulness: the same pentagon).
Bottom: the largest subcomponents U_c V_cᵀ of W by Frobenius norm, each with its columns as
arrows (one subcomponent per feature is one arrow per panel). Top right: ours against the paper
for the five ``published.*`` rows: TMS 5-2 from this figure's own run, the other rows from the
saved report ``gallery/published_report.json`` (``python -m theory --only published --json
gallery/published_report.json``) where it has them, else "not run".
"""
from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import torch

from theory.published import PAPER_TMS, TMS_ROWS, run_tms_row
from theory.registry import Context

from .common import plt, savefig

PRESETS = {"tiny": {"budget": "tiny", "seeds": 1},
           "quick": {"budget": "default", "seeds": 1, "steps": 1500, "batch_size": 1024, "target_steps": 5000},
           "full": {"budget": "default"}}
"""tiny: seconds; quick: one seed at half the default SPD budget (about a minute); full: the
claim's default settings (three seeds, the first drawn)."""

SAVED_REPORT = Path(__file__).resolve().parent.parent / "gallery" / "published_report.json"
N_SUB = 6
"""Subcomponents drawn in the bottom row."""

_ROWS = (("published.spd_tms_5_2", "TMS 5-2"), ("published.spd_tms_40_10", "TMS 40-10"),
         ("published.spd_tms_5_2_id", "TMS 5-2+ID"), ("published.spd_tms_40_10_id", "TMS 40-10+ID"),
         ("published.spd_resid_mlp1", "resid_mlp1"))
_PAPER = {"published.spd_tms_5_2": "1.000 / 0.993", "published.spd_tms_40_10": "1.000 / 1.010",
          "published.spd_tms_5_2_id": "1.000 / 0.992", "published.spd_tms_40_10_id": "1.000 / 1.031",
          "published.spd_resid_mlp1": "owned≥.95, W_out~50, r≥.9"}


def _saved() -> dict[str, dict]:
    try:
        claims = json.loads(SAVED_REPORT.read_text()).get("claims", [])
    except (OSError, ValueError):
        return {}
    return {c["id"]: c for c in claims if isinstance(c, dict) and str(c.get("id", "")).startswith("published.")}


def _ours(rec: dict) -> str:
    o = rec.get("observed") or {}
    if "mmcs" in o:
        return f"{o['mmcs']:.3f} / {o['ml2r']:.3f}"
    if "w_in_features_owned" in o:
        return f"owned {o['w_in_features_owned']:.2f}, W_out {o['w_out_live']:g}, r {o['neuron_contribution_corr']:.2f}"
    return "?"


def _arrows(ax, cols: np.ndarray, title: str, lim: float, colors) -> None:
    """cols (N, 2): one arrow per feature."""
    for j, (x, y) in enumerate(cols):
        if np.hypot(x, y) > 1e-3 * lim:
            ax.annotate("", xy=(x, y), xytext=(0, 0),
                        arrowprops={"arrowstyle": "-|>", "color": colors[j], "lw": 2})
    ax.set_xlim(-lim, lim)
    ax.set_ylim(-lim, lim)
    ax.set_aspect("equal")
    ax.axhline(0, color="0.85", lw=0.5)
    ax.axvline(0, color="0.85", lw=0.5)
    ax.set_xticks([])
    ax.set_yticks([])
    ax.set_title(title, fontsize=9)


def make(cfg: dict, out_dir: Path, device: torch.device) -> list[Path]:
    from theory.published import _settings

    ctx = Context(device=torch.device(device), budget=cfg["budget"])
    s = {**_settings(ctx, "5_2"), **{k: v for k, v in cfg.items() if k != "budget"}}
    o = run_tms_row("5_2", s, seed=ctx.seed, device=ctx.device)
    W = o.tms.W_IMN[0].detach().cpu().numpy()  # (2, 5)
    U, V = o.spd.U["W"][0].detach().cpu().numpy(), o.spd.V["W"][0].detach().cpu().numpy()  # (C, 2), (C, 5)
    subs = U[:, :, None] * V[:, None, :]  # (C, 2, 5): U_c V_cᵀ
    W_hat = subs.sum(0)
    order = np.argsort(-np.linalg.norm(subs.reshape(len(subs), -1), axis=1))[:N_SUB]
    lim = 1.15 * float(max(np.linalg.norm(W, axis=0).max(), np.linalg.norm(W_hat, axis=0).max(), 1e-6))
    colors = plt.get_cmap("tab10")(np.arange(W.shape[1]))

    fig = plt.figure(figsize=(13, 6.4))
    gs = fig.add_gridspec(2, N_SUB, height_ratios=[1.5, 1])
    _arrows(fig.add_subplot(gs[0, 0:2]), W.T, "target: columns $W_{:,j}$ (5 → 2)", lim, colors)
    _arrows(fig.add_subplot(gs[0, 2:4]), W_hat.T, f"sum of the {len(subs)} subcomponents $\\sum_c U_c V_c^T$",
            lim, colors)
    for k, c in enumerate(order):
        norm = float(np.linalg.norm(subs[c]))
        _arrows(fig.add_subplot(gs[1, k]), subs[c].T, f"subcomponent {c}: ‖·‖ {norm:.2f}", lim, colors)

    saved = _saved()
    mm, ml = float(o.mmcs.mean()), float(o.ml2r.mean())
    rows = []
    for cid, label in _ROWS:
        if cid == "published.spd_tms_5_2":
            ours, note = f"{mm:.3f} / {ml:.3f}", f"this run, {len(o.mmcs)} seed(s)"
        elif cid in saved:
            ours, note = _ours(saved[cid]), saved[cid].get("verdict", "")
        else:
            ours, note = "not run", ""
        rows.append([label, _PAPER[cid], ours, note])
    ax = fig.add_subplot(gs[0, 4:])
    ax.axis("off")
    tab = ax.table(cellText=rows, colLabels=["row", "paper (MMCS / ML2R)", "ours", ""], loc="center",
                   cellLoc="left", colWidths=[0.2, 0.36, 0.4, 0.26])
    tab.auto_set_font_size(False)
    tab.set_fontsize(6.5)
    tab.scale(1.0, 1.5)
    ax.set_title(f"ours vs paper (Table 1, resid_mlp1). This run: {s['steps']} steps x {s['batch_size']}, "
                 f"C = {s['C']}", fontsize=8)
    live = ", ".join(f"{k} {v.tolist()}" for k, v in o.live.items())
    fig.suptitle(f"SPD on TMS 5-2 (paper Figure 1): MMCS {mm:.3f}, ML2R {ml:.3f} (paper 1.000, 0.993); "
                 f"live subcomponents {live}", fontsize=10)
    fig.tight_layout()
    return [savefig(fig, out_dir, "fig22_spd_published")]
