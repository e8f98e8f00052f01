"""Sweeps as one declarative file: a spec -> grid points -> packed jobs -> a results table.

    toymodels sweep SPEC.toml --out DIR [--backend local|ray] [--address ADDR] [--workers N]

- :mod:`~toymodels.sweep.spec`: the TOML spec (command, [fixed], [grid]).
- :mod:`~toymodels.sweep.jobs`: points, packing into instance-batched jobs, ids, one job's run.
- :mod:`~toymodels.sweep.streams`: one data stream per point (packing never changes a result).
- :mod:`~toymodels.sweep.runner`: done-skipping, the local and Ray backends, results.csv.
- :mod:`~toymodels.sweep.grid`: :func:`run_grid`, the same grid from Python (figures, theory).

Which spec keys a command takes is the command line's business (keys are its flag names):
:mod:`toymodels.cli.sweep` turns each grid point into a config dict and calls
:func:`run_sweep`; this package never imports the command line.
"""
from __future__ import annotations

from .grid import best_rows, grid_points, point_params, run_grid
from .jobs import MAX_PACK, PER_INSTANCE, Job, job_id, pack_key, plan_jobs, point_id, run_job
from .runner import BACKENDS, Point, SweepReport, read_results, run_sweep, stored_results
from .spec import Spec, load_spec, parse_spec
from .streams import PointStreams

__all__ = [
    "BACKENDS", "MAX_PACK", "best_rows", "PER_INSTANCE", "Job", "Point", "PointStreams", "Spec", "SweepReport", "job_id",
    "grid_points", "load_spec", "pack_key", "point_params", "parse_spec", "plan_jobs", "point_id", "read_results", "run_job", "run_grid", "run_sweep",
    "stored_results",
]
