"""Plot the two-feature phase diagram from a sweep's results.csv (examples/phase_diagram.toml).

    toymodels sweep examples/phase_diagram.toml --out runs/phase-diagram --workers 2
    python examples/plot_phase_diagram.py runs/phase-diagram [--out phase_diagram.png]

The same classification as figure 4's trained panel (figure 4 runs its grid through the same
sweep layer, :func:`toymodels.sweep.run_grid`): for every (p, r) cell the lowest-loss seed is
kept (:func:`toymodels.sweep.best_rows`), its weights W (1 x 2) and bias are read
from the job's run folder (:func:`toymodels.sweep.point_params`: the row's ``job`` and
``instance``) and labelled by :func:`theory.tms.two_feature_phase`
(:func:`figures.fig04_phase_diagram.phase_grid`): one feature dropped, an antipodal, asymmetric
or same-sign pair, or neither. The analytic boundary of Elhage et al. 2022,
p = min(4r/(2+5r), 4/(5+2r)), is drawn on top, and the fraction of cells where "superposes"
(a pair of any sign) agrees with "p below the boundary" is printed
(:func:`figures.fig04_phase_diagram.boundary_agreement`).
"""
from __future__ import annotations

import argparse
from pathlib import Path

import matplotlib as mpl
import numpy as np

from figures.common import plt
from figures.fig04_phase_diagram import CELL, COLORS, LABELS, boundary_agreement, edges, phase_grid
from theory.tms import TWO_FEATURE_PHASES, two_feature_boundary
from toymodels.sweep import best_rows, point_params, read_results


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("sweep", type=Path, help="the sweep folder (holding results.csv and jobs/)")
    ap.add_argument("--out", type=Path, default=None, help="image file (default SWEEP/phase_diagram.png)")
    args = ap.parse_args()
    rows = read_results(args.sweep / "results.csv")
    best = best_rows(rows, CELL)
    if not best:
        raise SystemExit(f"{args.sweep}/results.csv has no finished rows")
    ps, rs, grid = phase_grid(best, point_params(args.sweep, best))
    agree = boundary_agreement(ps, rs, grid)
    n_seeds = len({r["seed"] for r in rows if r["status"] == "done"})

    cmap = mpl.colors.ListedColormap(["white"] + [COLORS[x] for x in TWO_FEATURE_PHASES])
    norm = mpl.colors.BoundaryNorm(np.arange(len(TWO_FEATURE_PHASES) + 2) - 1.5, cmap.N)
    fig, ax = plt.subplots(figsize=(9.5, 5.2))
    ax.pcolormesh(edges(rs), edges(ps), grid, cmap=cmap, norm=norm, shading="flat")
    r_curve = np.geomspace(rs[0], rs[-1], 400)
    ax.plot(r_curve, [two_feature_boundary(float(r)) for r in r_curve], color="k", lw=1.6,
            label="seed's boundary p = min(4r/(2+5r), 4/(5+2r))")
    ax.set_xscale("log")
    ax.set_yscale("log")
    ax.set_xlabel("relative importance of feature 2, r")
    ax.set_ylabel("feature density p")
    ax.set_title(f"trained 2 → 1 models, {len(ps)} × {len(rs)} cells (best of {n_seeds} seeds);\nsuperposition "
                 f"agrees with the boundary on {agree:.0%} of cells", fontsize=9)
    present = sorted(int(i) for i in np.unique(grid) if i >= 0)
    handles = [mpl.patches.Patch(facecolor=COLORS[TWO_FEATURE_PHASES[i]], edgecolor="0.5",
                                 label=LABELS[TWO_FEATURE_PHASES[i]]) for i in present]
    if (grid < 0).any():
        handles.append(mpl.patches.Patch(facecolor="white", edgecolor="0.5", label="no finished run"))
    ax.legend(handles=handles + ax.get_legend_handles_labels()[0], fontsize=8, loc="upper left",
              bbox_to_anchor=(1.02, 1))
    fig.tight_layout()
    out = args.out or args.sweep / "phase_diagram.png"
    fig.savefig(out, dpi=130)
    print(f"{len(best)} cells (best of {n_seeds} seed(s)), agreement with the analytic boundary: {agree:.1%}")
    print(f"wrote {out}")


if __name__ == "__main__":
    main()
