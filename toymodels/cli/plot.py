"""``toymodels plot``: one figure of a finished run folder.

    toymodels plot runs/tms --out tms.png                   # every panel of the run's kind
    toymodels plot runs/sae-k --out frontier.png --kind frontier
    toymodels plot runs/phase/jobs/<id> --out point.png     # a sweep job plots as its run kind

Panels by run kind (:mod:`toymodels.workbench.plots`): tms — geometry, wtw, dimensionality,
loss; sae — loss, frontier, truth; spd — loss. Exit 2 with one line, before anything is
written, for a folder that is not a finished run, an unknown kind, a kind that does not
apply to the run (or a truth panel where no truth is known), or an unusable --out.
"""
from __future__ import annotations

import argparse

from . import _common


def add_parser(sub: argparse._SubParsersAction) -> None:
    from ..workbench.plots import MAX_GRID, PANELS, PLOT_KINDS

    kinds = "; ".join(f"{k}: {', '.join(v)}" for k, v in PANELS.items())
    p = sub.add_parser(
        "plot",
        help="plot a finished run folder (tms, sae, spd or a sweep job) into an image",
        description=f"Draw a run folder into one figure (matplotlib, no display). Panels by run kind — {kinds}.",
        epilog="Exit codes: 0 written; 2 not a run folder, an unknown or inapplicable --kind, or an unusable "
        "--out (one line, nothing written).",
    )
    p.add_argument("run_dir", metavar="RUN", help="a run folder (toymodels tms / sae, an SPD run, or DIR/jobs/<id> of a sweep)")
    p.add_argument("--out", required=True, metavar="FILE", help="the image to write (.png, .pdf, .svg, ...)")
    p.add_argument("--kind", choices=PLOT_KINDS, default=None,
                   help="one panel only (default: every panel of the run's kind)")
    p.add_argument("--instance", type=int, default=None, metavar="I",
                   help="the instance of the geometry, wtw and truth panels (default: an evenly spaced selection; "
                   "for truth the instance of best mcc)")
    p.add_argument("--max-instances", type=int, default=MAX_GRID, metavar="N",
                   help=f"at most N instances in the geometry and WᵀW rows, evenly spaced by index (default {MAX_GRID})")
    p.set_defaults(func=run_plot)


def run_plot(args: argparse.Namespace) -> int:
    from ..workbench.plots import check_image_path, check_kind, plot_run, save_figure
    from ..workbench.run import load_run

    out = check_image_path(_common.check_output_file(args.out, "--out"))
    if args.max_instances < 1:
        raise ValueError(f"--max-instances must be >= 1, got {args.max_instances}")
    run = load_run(args.run_dir)
    if args.kind is not None:
        check_kind(run, args.kind)
    fig = plot_run(run, args.kind, instance=args.instance, max_instances=args.max_instances)
    try:
        save_figure(fig, out)
    finally:
        import matplotlib.pyplot as plt

        plt.close(fig)
    print(f"wrote {out} ({run.kind} run {run.path}, {args.kind or 'all panels'})")
    return 0


__all__ = ["add_parser", "run_plot"]
