"""Figure 4 — the two-feature phase diagram (Elhage et al. 2022, "Superposition as a Phase
Change").

Two features, one hidden dimension; feature 2 has importance r relative to feature 1 and both
have density p. Left: what trained models do (one batched run over the (r, p) grid, best of
several seeds): feature 2 not represented, given the dimension (feature 1 dropped), or stored
in superposition with feature 1. Right: the winner among the three configurations of the paper
(:func:`theory.tms.two_feature_losses`: ignore feature 2, ignore feature 1, antipodal pair with
b = 0). Both panels carry the analytic boundary p = min(4r/(2+5r), 4/(5+2r)) (solid) and the
boundary when the antipodal pair's bias and weight scale are optimised too (dashed), which
:mod:`theory.tms` derives exactly: at r = 1 that pair wins at every density.
"""
from __future__ import annotations

from pathlib import Path
from typing import Any

import matplotlib as mpl
import numpy as np
import torch

from figures.common import plt, savefig
from theory.tms import two_feature_boundary, two_feature_losses, two_feature_phase
from toymodels.data import SparseFeatures
from toymodels.device import derive_seed
from toymodels.models import TMSConfig, build_model
from toymodels.train import TrainConfig, best_of, train

PRESETS: dict[str, dict[str, Any]] = {
    "tiny": dict(n_p=5, n_r=5, p_min=0.05, r_max=10.0, seeds=1, steps=150, batch=256, lr=3e-3, n_curve=5, n_near_1=0,
                 seed=0),
    "quick": dict(n_p=15, n_r=15, p_min=0.05, r_max=10.0, seeds=4, steps=2000, batch=256, lr=3e-3, n_curve=17,
                  n_near_1=9, seed=0),
    "full": dict(n_p=40, n_r=40, p_min=0.01, r_max=10.0, seeds=4, steps=10000, batch=1024, lr=1e-3, n_curve=61,
                 n_near_1=21, seed=0),
}
PHASES = ("ignore feature 2", "ignore feature 1", "superposition")
PHASE_LABELS = ("feature 2 not represented", "feature 2 gets the dimension", "superposition (both |w_i| > 0.5)")
COLORS = ("#d9d9d9", "#fdae61", "#5e3c99")


def train_grid(cfg: dict[str, Any], device: torch.device):
    """Trained phase (n_p, n_r) as indices into PHASES (-1: neither), with the grids."""
    ps = np.geomspace(cfg["p_min"], 1.0, cfg["n_p"])
    rs = np.geomspace(1 / cfg["r_max"], cfg["r_max"], cfg["n_r"])
    P, R = np.meshgrid(ps, rs, indexing="ij")
    seeds = cfg["seeds"]
    probs = torch.tensor(P.ravel(), dtype=torch.float32).repeat_interleave(seeds)
    imp = torch.tensor(np.stack([np.ones(R.size), R.ravel()], 1), dtype=torch.float32).repeat_interleave(seeds, 0)
    src = SparseFeatures(2, probs, len(probs), seed=derive_seed(cfg["seed"], "fig04", "data"), device=device)
    model = build_model(TMSConfig(n_features=2, d_hidden=1, n_instances=len(probs)), importance=imp,
                        seed=cfg["seed"], device=device)
    res = train(model, src, TrainConfig(steps=cfg["steps"], batch_size=cfg["batch"], lr=cfg["lr"], quiet=True),
                desc="fig04")
    best, _ = best_of(model, res.final_loss, seeds)
    labels = two_feature_phase(best.W)
    phase = np.array([PHASES.index(x) if x in PHASES else -1 for x in labels]).reshape(P.shape)
    return ps, rs, phase


def analytic_phase(ps: np.ndarray, rs: np.ndarray) -> np.ndarray:
    out = np.zeros((len(ps), len(rs)), dtype=int)
    keys = ("ignore_2", "ignore_1", "antipodal")
    for i, p in enumerate(ps):
        for j, r in enumerate(rs):
            loss = two_feature_losses(float(p), float(r))
            out[i, j] = int(np.argmin([loss[k] for k in keys]))
    return out


def _edges(v: np.ndarray) -> np.ndarray:
    lv = np.log(v)
    mid = (lv[1:] + lv[:-1]) / 2
    return np.exp(np.concatenate([[2 * lv[0] - mid[0]], mid, [2 * lv[-1] - mid[-1]]]))


def make(cfg: dict[str, Any], out_dir: Path, device: torch.device) -> list[Path]:
    ps, rs, trained = train_grid(cfg, device)
    fine_p = np.geomspace(_edges(ps)[0], 1.0, 120)
    analytic = analytic_phase(fine_p, rs)
    r_curve = np.geomspace(1 / cfg["r_max"], cfg["r_max"], 400)
    b_unit = [two_feature_boundary(float(r)) for r in r_curve]
    # The optimised boundary climbs steeply to p = 1 at r = 1: sample it densely there.
    r_opt = np.unique(np.concatenate([np.geomspace(1 / cfg["r_max"], cfg["r_max"], cfg["n_curve"]),
                                      np.geomspace(0.75, 1 / 0.75, cfg["n_near_1"])]))
    b_opt = [two_feature_boundary(float(r), "optimal") for r in r_opt]

    cmap = mpl.colors.ListedColormap(("white",) + COLORS)
    norm = mpl.colors.BoundaryNorm([-1.5, -0.5, 0.5, 1.5, 2.5], cmap.N)
    fig, axes = plt.subplots(1, 2, figsize=(12, 5.2), sharey=True)
    for ax, grid, pv, title in (
        (axes[0], trained, ps, f"trained 2 → 1 models (best of {cfg['seeds']} seeds, {cfg['steps']} steps)"),
        (axes[1], analytic, fine_p, "analytic: cheapest of the three configurations (b = 0 antipodal)"),
    ):
        ax.pcolormesh(_edges(rs), _edges(pv), grid, cmap=cmap, norm=norm, shading="flat")
        ax.plot(r_curve, b_unit, color="k", lw=1.6, label="p = min(4r/(2+5r), 4/(5+2r))  (antipodal b = 0)")
        ax.plot(r_opt, b_opt, color="k", lw=1.4, ls="--", label="optimised antipodal bias and scale")
        ax.set_xscale("log")
        ax.set_yscale("log")
        ax.set_xlim(rs[0] / 1.05, rs[-1] * 1.05)
        ax.set_ylim(_edges(ps)[0], 1.0)
        ax.set_xlabel("relative importance of feature 2, r")
        ax.set_title(title, fontsize=10)
        for axis in (ax.xaxis, ax.yaxis):
            axis.set_major_formatter(mpl.ticker.FuncFormatter(lambda v, _: f"{v:g}"))
    axes[0].set_ylabel("feature density p = 1 − S")
    handles = [mpl.patches.Patch(color=c, label=lab) for c, lab in zip(COLORS, PHASE_LABELS)]
    if (trained < 0).any():
        handles.append(mpl.patches.Patch(facecolor="white", edgecolor="0.5", label="neither represented"))
    handles += axes[0].get_legend_handles_labels()[0]
    fig.legend(handles=handles, loc="lower center", ncol=3, fontsize=9, frameon=False, bbox_to_anchor=(0.5, -0.06))
    agree = np.mean((trained == 2) == (ps[:, None] < np.array([two_feature_boundary(float(r)) for r in rs])[None, :]))
    fig.suptitle(f"Two features in one dimension: where superposition wins (trained phase agrees with the solid "
                 f"boundary on {agree:.0%} of cells)", fontsize=11)
    fig.tight_layout(rect=(0, 0.05, 1, 1))
    return [savefig(fig, out_dir, "fig04_phase_diagram")]
