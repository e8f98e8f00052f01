"""Plot the two-feature phase diagram from a sweep's results.csv (examples/phase_diagram.toml).

    toymodels sweep examples/phase_diagram.toml --out runs/phase-diagram --workers 2
    python examples/plot_phase_diagram.py runs/phase-diagram [--out phase_diagram.png]

For every (p, r) cell the lowest-loss seed is kept (best of N, as figure 4 does); its weights
W (1 x 2) are read from the job's run folder (the row's ``job`` and ``instance``) and labelled
by :func:`theory.tms.two_feature_phase`: feature 2 dropped, feature 1 dropped (feature 2 gets
the dimension), or both in superposition as an antipodal pair. The analytic boundary of Elhage et al. 2022,
p = min(4r/(2+5r), 4/(5+2r)), is drawn on top, and the fraction of cells where "superposition"
agrees with "p below the boundary" is printed (figure 4 prints the same number).
"""
from __future__ import annotations

import argparse
import csv
from pathlib import Path

import matplotlib

matplotlib.use("Agg")
import matplotlib.pyplot as plt  # noqa: E402
import numpy as np  # noqa: E402
import torch  # noqa: E402
from safetensors.torch import load_file  # noqa: E402

from theory.tms import two_feature_boundary, two_feature_phase  # noqa: E402

PHASES = ("feature 2 dropped", "feature 1 dropped", "antipodal pair")
"""Labels of :func:`theory.tms.two_feature_phase` shown in colour (others: "neither", a
same-sign or asymmetric pair, are white)."""
COLORS = ("white", "#d9d9d9", "#fdae61", "#5e3c99")


def best_cells(sweep: Path) -> tuple[np.ndarray, np.ndarray, dict[tuple[float, float], dict[str, str]]]:
    """The grid (ps, rs) and, per cell, the row of its lowest-loss finished seed."""
    with open(sweep / "results.csv", newline="") as f:
        rows = [r for r in csv.DictReader(f) if r["status"] == "done"]
    if not rows:
        raise SystemExit(f"{sweep}/results.csv has no finished rows")
    best: dict[tuple[float, float], dict[str, str]] = {}
    for r in rows:
        key = (float(r["feature_probability"]), float(r["importance_decay"]))
        if key not in best or float(r["loss"]) < float(best[key]["loss"]):
            best[key] = r
    ps = np.array(sorted({k[0] for k in best}))
    rs = np.array(sorted({k[1] for k in best}))
    return ps, rs, best


def phases(sweep: Path, ps: np.ndarray, rs: np.ndarray, best: dict) -> np.ndarray:
    """(n_p, n_r) phase index into PHASES (-1: another label, -2: missing)."""
    by_job: dict[str, list[tuple[int, int, int]]] = {}
    for (p, r), row in best.items():
        by_job.setdefault(row["job"], []).append((int(np.searchsorted(ps, p)), int(np.searchsorted(rs, r)),
                                                  int(row["instance"])))
    out = np.full((len(ps), len(rs)), -2)
    for job, cells in by_job.items():
        w = load_file(sweep / "jobs" / job / "model.safetensors")
        idx = torch.tensor([c[2] for c in cells])
        labels = two_feature_phase(w["W_IMN"][idx], w["b_IN"][idx])
        for (i, j, _), lab in zip(cells, labels):
            out[i, j] = PHASES.index(lab) if lab in PHASES else -1
    return out


def edges(v: np.ndarray) -> np.ndarray:
    lv = np.log(v)
    mid = (lv[1:] + lv[:-1]) / 2
    return np.exp(np.concatenate([[2 * lv[0] - mid[0]], mid, [2 * lv[-1] - mid[-1]]]))


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("sweep", type=Path, help="the sweep folder (holding results.csv and jobs/)")
    ap.add_argument("--out", type=Path, default=None, help="image file (default SWEEP/phase_diagram.png)")
    args = ap.parse_args()
    ps, rs, best = best_cells(args.sweep)
    grid = phases(args.sweep, ps, rs, best)
    boundary = np.array([two_feature_boundary(float(r)) for r in rs])
    cells = grid > -2
    agree = np.mean(((grid == 2) == (ps[:, None] < boundary[None, :]))[cells])
    cmap = matplotlib.colors.ListedColormap(COLORS)
    norm = matplotlib.colors.BoundaryNorm([-1.5, -0.5, 0.5, 1.5, 2.5], cmap.N)
    fig, ax = plt.subplots(figsize=(9.5, 5.2))
    ax.pcolormesh(edges(rs), edges(ps), np.where(grid == -2, -1, grid), cmap=cmap, norm=norm, shading="flat")
    r_curve = np.geomspace(rs[0], rs[-1], 400)
    ax.plot(r_curve, [two_feature_boundary(float(r)) for r in r_curve], color="k", lw=1.6,
            label="p = min(4r/(2+5r), 4/(5+2r))")
    ax.set_xscale("log")
    ax.set_yscale("log")
    ax.set_xlabel("relative importance of feature 2, r")
    ax.set_ylabel("feature density p")
    n_seeds = len({row["seed"] for row in best.values()}) if best else 0
    ax.set_title(f"2 → 1 models, {len(ps)} × {len(rs)} cells (best seed); superposition agrees with the "
                 f"boundary on {agree:.0%} of cells", fontsize=9)
    handles = [matplotlib.patches.Patch(color=c, label=lab)
               for c, lab in zip(COLORS[1:], ("feature 2 not represented", "feature 2 gets the dimension",
                                              "superposition (antipodal pair)"))]
    handles.append(matplotlib.patches.Patch(facecolor="white", edgecolor="0.5", label="other (same-sign pair, neither)"))
    ax.legend(handles=handles + ax.get_legend_handles_labels()[0], fontsize=8, loc="upper left", bbox_to_anchor=(1.02, 1))
    fig.tight_layout()
    out = args.out or args.sweep / "phase_diagram.png"
    fig.savefig(out, dpi=130)
    print(f"{len(best)} cells ({n_seeds} seed(s) kept), agreement with the analytic boundary: {agree:.1%}")
    print(f"wrote {out}")


if __name__ == "__main__":
    main()
