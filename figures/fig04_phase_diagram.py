"""Figure 4 — the two-feature phase diagram (Elhage et al. 2022, "Superposition as a Phase
Change"), from the true optimum.

Two features, one hidden dimension; feature 2 has importance r relative to feature 1 and both
have density p. Left: what the optimum of the 2 → 1 model is at each (r, p) —
:func:`theory.tms.optimal_two_feature`, the global minimum over W and b of the exact expected
loss — classified by its structure (:func:`theory.tms.two_feature_optimum_phase`: one feature
dropped, an antipodal pair, an asymmetric pair, a same-sign pair). Right: trained 2 → 1 models
(a p × r × seeds grid over a coarser (p, r) grid through the sweep layer,
:func:`toymodels.sweep.run_grid` — the code path of ``toymodels sweep
examples/phase_diagram.toml`` — best seed per cell), classified the same way. Both carry the seed's
analytic boundary p = min(4r/(2+5r), 4/(5+2r)) (the b = 0 antipodal pair against the better
dedicated configuration): the true optimum superposes above it too (``tms.two_feature_boundary``).
"""
from __future__ import annotations

from pathlib import Path
from typing import Any, Mapping, Sequence

import matplotlib as mpl
import numpy as np
import torch

from figures.common import plt, savefig
from theory.tms import TWO_FEATURE_PHASES, optimal_two_feature, two_feature_boundary, two_feature_phase
from toymodels.sweep import best_rows, run_grid

PRESETS: dict[str, dict[str, Any]] = {
    "tiny": dict(opt_p=2, opt_r=2, train_p=2, train_r=2, p_min=0.05, r_max=10.0, seeds=1, steps=20, batch=32,
                 lr=3e-3, seed=0, eval_samples=256),
    "quick": dict(opt_p=14, opt_r=15, train_p=7, train_r=9, p_min=0.05, r_max=10.0, seeds=3, steps=2000, batch=256,
                  lr=3e-3, seed=0, eval_samples=16384),
    "full": dict(opt_p=40, opt_r=41, train_p=20, train_r=21, p_min=0.02, r_max=10.0, seeds=4, steps=10000,
                 batch=1024, lr=1e-3, seed=0, eval_samples=16384),
}
COLORS = {"feature 2 dropped": "#d9d9d9", "feature 1 dropped": "#fdae61", "antipodal pair": "#5e3c99",
          "asymmetric pair": "#b2abd2", "same-sign pair": "#1b9e77", "neither": "white"}
LABELS = {"feature 2 dropped": "feature 2 dropped (feature 1 dedicated)",
          "feature 1 dropped": "feature 1 dropped (feature 2 dedicated)",
          "antipodal pair": "antipodal pair (each output silenced by the other feature)",
          "asymmetric pair": "asymmetric pair (one output never silenced)",
          "same-sign pair": "same-sign pair", "neither": "neither represented"}


def _grid(n_p: int, n_r: int, cfg: dict[str, Any]) -> tuple[np.ndarray, np.ndarray]:
    return np.geomspace(cfg["p_min"], 1.0, n_p), np.geomspace(1 / cfg["r_max"], cfg["r_max"], n_r)


def optimum_grid(cfg: dict[str, Any]) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Phase index (into TWO_FEATURE_PHASES) of the true optimum on the (p, r) grid."""
    ps, rs = _grid(cfg["opt_p"], cfg["opt_r"], cfg)
    phase = np.array([[TWO_FEATURE_PHASES.index(optimal_two_feature(float(p), float(r)).phase) for r in rs]
                      for p in ps])
    return ps, rs, phase


CELL = ("feature_probability", "importance_decay")
"""The grid keys of a (p, r) cell; the seeds are the third axis (best of them kept)."""


def phase_grid(rows: Sequence[Mapping[str, Any]], params: Sequence[Mapping[str, torch.Tensor]]
               ) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """The grid (ps, rs) of ``rows`` (one per cell: ``toymodels.sweep.best_rows(rows, CELL)``)
    and the phase index (into TWO_FEATURE_PHASES; -1: no row) of each cell's trained 2 → 1
    model, labelled by :func:`theory.tms.two_feature_phase` from its ``params`` (``W_IMN``,
    ``b_IN``, as :func:`toymodels.sweep.point_params` gives them)."""
    ps = np.array(sorted({float(r["feature_probability"]) for r in rows}))
    rs = np.array(sorted({float(r["importance_decay"]) for r in rows}))
    phase = np.full((len(ps), len(rs)), -1)
    if not rows:
        return ps, rs, phase
    labels = two_feature_phase(torch.cat([p["W_IMN"] for p in params]), torch.cat([p["b_IN"] for p in params]))
    for r, lab in zip(rows, labels):
        i = int(np.searchsorted(ps, float(r["feature_probability"])))
        j = int(np.searchsorted(rs, float(r["importance_decay"])))
        phase[i, j] = TWO_FEATURE_PHASES.index(lab)
    return ps, rs, phase


def train_grid(cfg: dict[str, Any], device: torch.device, out: Path | None = None
               ) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Phase index of the best-of-seeds trained model on the (coarser) training grid: one
    p × r × seeds grid of 2 → 1 models through :func:`toymodels.sweep.run_grid` (the layer
    ``toymodels sweep examples/phase_diagram.toml`` uses), in ``out`` or a temporary folder."""
    ps, rs = _grid(cfg["train_p"], cfg["train_r"], cfg)
    fixed = dict(n_features=2, d_hidden=1, steps=cfg["steps"], batch_size=cfg["batch"], lr=cfg["lr"],
                 schedule="cosine", eval_samples=cfg["eval_samples"])
    grid = dict(feature_probability=[float(p) for p in ps], importance_decay=[float(r) for r in rs],
                seed=[cfg["seed"] + k for k in range(cfg["seeds"])])
    rows = best_rows(run_grid("tms", fixed, grid, out, device=str(device), with_params=True), CELL)
    _, _, phase = phase_grid(rows, [r["params"] for r in rows])
    return ps, rs, phase


PAIRS = ("antipodal pair", "asymmetric pair", "same-sign pair")
"""Phases where both features are represented (superposition)."""


def boundary_agreement(ps: np.ndarray, rs: np.ndarray, phase: np.ndarray) -> float:
    """Fraction of labelled cells where "superposes" (a pair of any sign) equals "p below the
    seed's boundary" p = min(4r/(2+5r), 4/(5+2r))."""
    pair = np.isin(phase, [TWO_FEATURE_PHASES.index(x) for x in PAIRS])
    below = ps[:, None] < np.array([two_feature_boundary(float(r)) for r in rs])[None, :]
    cells = phase >= 0
    return float(np.mean((pair == below)[cells])) if cells.any() else float("nan")


def edges(v: np.ndarray) -> np.ndarray:
    lv = np.log(v)
    mid = (lv[1:] + lv[:-1]) / 2
    return np.exp(np.concatenate([[2 * lv[0] - mid[0]], mid, [2 * lv[-1] - mid[-1]]]))


def _superposes_above_boundary(ps: np.ndarray, rs: np.ndarray, phase: np.ndarray) -> tuple[int, int]:
    pair = np.isin(phase, [TWO_FEATURE_PHASES.index(x) for x in PAIRS])
    above = ps[:, None] >= np.array([two_feature_boundary(float(r)) for r in rs])[None, :]
    return int((pair & above).sum()), int(above.sum())


def make(cfg: dict[str, Any], out_dir: Path, device: torch.device) -> list[Path]:
    po, ro, opt = optimum_grid(cfg)
    pt, rt, trained = train_grid(cfg, device)
    r_curve = np.geomspace(1 / cfg["r_max"], cfg["r_max"], 400)
    b_unit = [two_feature_boundary(float(r)) for r in r_curve]

    cmap = mpl.colors.ListedColormap([COLORS[x] for x in TWO_FEATURE_PHASES])
    norm = mpl.colors.BoundaryNorm(np.arange(len(TWO_FEATURE_PHASES) + 1) - 0.5, cmap.N)
    fig, axes = plt.subplots(1, 2, figsize=(12, 5.4), sharey=True)
    n_above, n_cells = _superposes_above_boundary(po, ro, opt)
    for ax, grid, pv, rv, title in (
        (axes[0], opt, po, ro, f"true optimum of the 2 → 1 model ({n_above} of {n_cells} cells above the\n"
                               "boundary superpose)"),
        (axes[1], trained, pt, rt, f"trained 2 → 1 models (best of {cfg['seeds']} seeds, {cfg['steps']} steps)"),
    ):
        ax.pcolormesh(edges(rv), edges(pv), grid, cmap=cmap, norm=norm, shading="flat")
        ax.plot(r_curve, b_unit, color="k", lw=1.6, label="seed's boundary p = min(4r/(2+5r), 4/(5+2r))")
        ax.set_xscale("log")
        ax.set_yscale("log")
        ax.set_xlim(edges(rv)[0], edges(rv)[-1])
        ax.set_ylim(cfg["p_min"], 1.0)
        ax.set_xlabel("relative importance of feature 2, r")
        ax.set_title(title, fontsize=10)
        for axis in (ax.xaxis, ax.yaxis):
            axis.set_major_formatter(mpl.ticker.FuncFormatter(lambda v, _: f"{v:g}"))
    axes[0].set_ylabel("feature density p = 1 − S")
    present = sorted(set(np.unique(opt)) | set(np.unique(trained)))
    handles = [mpl.patches.Patch(facecolor=COLORS[TWO_FEATURE_PHASES[i]], edgecolor="0.5",
                                 label=LABELS[TWO_FEATURE_PHASES[i]]) for i in present]
    handles += axes[0].get_legend_handles_labels()[0]
    fig.legend(handles=handles, loc="lower center", ncol=2, fontsize=9, frameon=False, bbox_to_anchor=(0.5, -0.1))
    fig.suptitle("Two features in one dimension: what the optimum is, and where the seed's boundary puts it",
                 fontsize=11)
    fig.tight_layout(rect=(0, 0.03, 1, 1))
    return [savefig(fig, out_dir, "fig04_phase_diagram")]
