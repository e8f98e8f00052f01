"""A grid from Python: :func:`run_grid` runs the same points, jobs and results table as
``toymodels sweep SPEC.toml --out DIR``, in this process (figures and theory checks use it).

    rows = run_grid("tms", {"n_features": 2, "d_hidden": 1, "steps": 2000},
                    {"feature_probability": [0.1, 1.0], "importance_decay": [0.5, 2.0], "seed": [0, 1]},
                    with_params=True)

Keys are the spec file's keys (the command's flag names with underscores); a point's config
equals the one the command line builds from the same spec (tests/test_sweep.py checks it), so
its id, its job and its result are the same whichever way the grid was started, and a folder
``out`` filled by one is reused by the other.
"""
from __future__ import annotations

import dataclasses
import itertools
import tempfile
from pathlib import Path
from typing import Any, Mapping, Sequence

from .runner import METRIC_COLUMNS, Point, run_sweep

TMS_DEFAULTS: dict[str, Any] = {"steps": 5000, "batch_size": 1024, "lr": 1e-3, "feature_probability": 0.05,
                                "seed": 0, "model": "relu-output", "importance_decay": 1.0}
"""``toymodels tms``'s defaults for the keys whose default is the command's, not the config's."""

TMS_MODEL_KEYS = {"model": "kind", "n_features": "n_features", "d_hidden": "d_hidden"}
"""Spec key -> :class:`~toymodels.models.TMSConfig` field (``--model`` sets ``kind``)."""

TMS_POINT_KEYS = ("feature_probability", "importance_decay", "seed")

TRAIN_SET_BY_SWEEP = ("quiet", "prefetch_elements")
"""TrainConfig fields a sweep sets itself (the command line refuses them in a spec too)."""


def _train_keys() -> tuple[str, ...]:
    from ..train.loop import TrainConfig

    return tuple(f.name for f in dataclasses.fields(TrainConfig) if f.name not in TRAIN_SET_BY_SWEEP)


def tms_keys() -> tuple[str, ...]:
    """Every key a ``tms`` grid accepts."""
    return (*TMS_MODEL_KEYS, *TMS_POINT_KEYS, *_train_keys())


def tms_point(values: Mapping[str, Any]) -> dict[str, Any]:
    """The config of one ``tms`` point from its keys (defaults: ``toymodels tms``'s), checked
    by :class:`~toymodels.models.TMSConfig` and :class:`~toymodels.train.TrainConfig`
    (ValueError naming the field)."""
    from .._validate import check_float, check_int
    from ..models import TMSConfig
    from ..train.loop import TrainConfig

    v = {**TMS_DEFAULTS, **values}
    model = TMSConfig(**{TMS_MODEL_KEYS[k]: v[k] for k in TMS_MODEL_KEYS if k in v},
                      importance_decay=float(v["importance_decay"]), n_instances=1)
    train_keys = _train_keys()
    t = {k: v[k] for k in train_keys if k in v}
    if "betas" in t:
        t["betas"] = tuple(t["betas"])
    train = dataclasses.asdict(TrainConfig(**t))
    check_int("steps", train["steps"], 1)  # steps = 0 would "finish" every point untrained
    for k in TRAIN_SET_BY_SWEEP:
        train.pop(k, None)
    train["betas"] = list(train["betas"])
    p = v["feature_probability"]
    if isinstance(p, bool) or not isinstance(p, (int, float)):
        raise ValueError(f"feature_probability must be a number in [0, 1], got {p!r}")
    check_float("feature_probability", float(p), 0.0, 1.0)
    seed = v["seed"]
    if isinstance(seed, bool) or not isinstance(seed, int):
        raise ValueError(f"seed must be an integer in [0, 2**63 - 1], got {seed!r}")
    check_int("seed", seed, 0, 2**63 - 1)
    m = dataclasses.asdict(model)
    m.pop("importance_decay")
    m.pop("n_instances")
    return {"command": "tms", "model": m, "importance_decay": float(model.importance_decay),
            "feature_probability": float(p), "seed": int(seed), "train": train}


def grid_points(command: str, fixed: Mapping[str, Any], grid: Mapping[str, Sequence[Any]]) -> list[Point]:
    """The points of ``grid`` (the product of its axes, first key slowest) over ``fixed``.
    A key the command does not take, a key in both tables, an empty axis, a repeated value or
    a bad value raises one ValueError line, before anything runs."""
    if command != "tms":
        raise ValueError(f"run_grid supports command 'tms'; got {command!r} (sae grids: toymodels sweep SPEC.toml)")
    keys = tms_keys()
    if not grid:
        raise ValueError("grid is empty; give at least one key with a list of values")
    for table, names in (("fixed", fixed), ("grid", grid)):
        bad = [k for k in names if k not in keys]
        if bad:
            raise ValueError(f"{table}.{bad[0]} is not a key of a {command} grid; keys: {', '.join(keys)}")
    both = sorted(set(fixed) & set(grid))
    if both:
        raise ValueError(f"{both} appear in both fixed and grid; keep each key in one table")
    axes = {}
    for k, vals in grid.items():
        if isinstance(vals, (str, bytes)) or not isinstance(vals, Sequence):
            raise ValueError(f"grid.{k} must be a list of values, got {vals!r}")
        vals = list(vals)
        if not vals:
            raise ValueError(f"grid.{k} is an empty list (the grid would have no points)")
        if len({repr(float(x)) if isinstance(x, (int, float)) and not isinstance(x, bool) and k not in ("seed", "steps")
                else repr(x) for x in vals}) != len(vals):
            raise ValueError(f"grid.{k} repeats a value ({vals!r}); each point must be distinct")
        axes[k] = vals
    from .runner import check_n_points

    n = 1
    for vals in axes.values():
        n *= len(vals)
    check_n_points(n)
    points = []
    for combo in itertools.product(*axes.values()):
        labels = dict(zip(axes, combo))
        try:
            cfg = tms_point({**fixed, **labels})
        except (ValueError, TypeError) as e:
            raise ValueError(f"grid point {labels}: {' '.join(str(e).split())}") from None
        points.append(Point(labels=labels, config=cfg))
    return points


def run_grid(
    command: str,
    fixed: Mapping[str, Any],
    grid: Mapping[str, Sequence[Any]],
    out: str | Path | None = None,
    *,
    backend: str = "local",
    workers: int = 1,
    device: Any = "auto",
    cap: int | None = None,
    with_params: bool = False,
    progress: bool = False,
) -> list[dict[str, Any]]:
    """Run the grid (:func:`grid_points`) through :func:`toymodels.sweep.run_sweep` and return
    one row per point, in grid order: the grid keys, ``loss``, ``status``, ``job``,
    ``instance``, ``id``, ``error`` and the command's metric columns (tms: the mean
    ``dimensionality``), as in ``results.csv`` but typed. ``out``: the sweep folder (points
    already done there are not run again); None runs in a temporary folder removed on return.
    ``with_params``: each done row gets ``params``, its trained tensors by name, each with a
    leading instance dimension of 1 (e.g. ``W_IMN`` (1, M, N) and ``b_IN`` (1, N) for tms).
    A point that failed raises a ValueError with its error (a grid here is all or nothing)."""
    points = grid_points(command, fixed, grid)
    if out is None:
        with tempfile.TemporaryDirectory(prefix="toymodels-grid-") as tmp:
            return run_grid(command, fixed, grid, tmp, backend=backend, workers=workers, device=device, cap=cap,
                            with_params=with_params, progress=progress)
    out = Path(out)
    run_sweep(command, points, out, grid_keys=list(grid), backend=backend, workers=workers,
                       device=str(device), cap=cap, progress=progress)
    from .runner import stored_results

    stored = stored_results(out)
    rows = []
    for p in points:
        r = stored.get(p.id, {})
        if r.get("status") != "done":
            raise ValueError(f"grid point {p.labels} failed: {r.get('error') or 'no result'} (sweep folder {out})")
        row = {**p.labels, "loss": float(r["loss"]), "status": "done", "job": r["job"], "instance": int(r["instance"]),
               "id": p.id, "error": ""}
        for c in METRIC_COLUMNS[command]:
            row[c] = r.get(c, "")
        rows.append(row)
    if with_params:
        for row, params in zip(rows, point_params(out, rows)):
            row["params"] = params
    return rows


def best_rows(rows: Sequence[Mapping[str, Any]], keys: Sequence[str]) -> list[Mapping[str, Any]]:
    """Best of the seeds: the lowest-loss done row of every combination of ``keys`` (e.g.
    ``("feature_probability", "importance_decay")``), in the order the combinations first
    appear in ``rows``. ``rows``: :func:`run_grid` rows, or results.csv rows (strings, as
    :func:`~toymodels.sweep.read_results` gives them; values compared as floats)."""
    best: dict[tuple[Any, ...], Mapping[str, Any]] = {}
    for r in rows:
        if r["status"] != "done":
            continue
        key = tuple(float(r[k]) for k in keys)
        if key not in best or float(r["loss"]) < float(best[key]["loss"]):
            best[key] = r
    return list(best.values())


def point_params(out: str | Path, rows: Sequence[Mapping[str, Any]]) -> list[dict[str, Any]]:
    """The trained tensors of each row's point (its ``job`` and ``instance`` in ``out``):
    one dict name -> tensor (leading instance dimension 1) per row."""
    from safetensors.torch import load_file

    cache: dict[str, dict[str, Any]] = {}
    res = []
    for r in rows:
        job = str(r["job"])
        if job not in cache:
            cache[job] = load_file(Path(out) / "jobs" / job / "model.safetensors")
        i = int(r["instance"])
        res.append({k: t[i : i + 1].clone() for k, t in cache[job].items()})
    return res
