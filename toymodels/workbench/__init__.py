"""The researcher's workbench: a finished run as one object, its plots, and scores against
known directions.

- :mod:`.run` — :func:`load_run` (also ``toymodels.load_run``) reads any run folder (tms, sae,
  spd, a sweep job) into a :class:`Run` with ``.config``, ``.metrics``, ``.history`` and a
  lazily loaded ``.model``.
- :mod:`.plots` — :func:`plot_run` draws a run (every panel of its kind, or one) and returns
  the matplotlib Figure; ``toymodels plot RUN --out FILE.png`` is the same from the shell.
- :mod:`.truth` — known true directions: a ``--truth`` file (:func:`read_truth`), latents
  matched to them (:func:`latent_matches`), and a run's own (:func:`run_truth`).

>>> from toymodels.workbench import load_run, plot_run
>>> run = load_run("runs/tms")                           # doctest: +SKIP
>>> plot_run(run, "dimensionality").savefig("dims.png")   # doctest: +SKIP
"""
from .plots import MAX_GRID, PANELS, PLOT_KINDS, plot_run, save_figure, select_instances
from .run import RUN_KINDS, Run, load_run
from .truth import KnownTruth, latent_matches, matched_order, read_truth, run_truth

__all__ = [
    "KnownTruth", "MAX_GRID", "PANELS", "PLOT_KINDS", "RUN_KINDS", "Run", "latent_matches", "load_run",
    "matched_order", "plot_run", "read_truth", "run_truth", "save_figure", "select_instances",
]
