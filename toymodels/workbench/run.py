"""A finished run folder as one object: :func:`load_run` and :class:`Run`.

    from toymodels import load_run
    run = load_run("runs/tms")       # `toymodels tms`, `toymodels sae`, an SPD run, a sweep job
    run.kind, run.n_instances       # "tms" | "sae" | "spd", the instances the metrics describe
    run.config["data"]              # config.json as written by the trainer
    run.metrics["loss"]             # metrics.json
    run.history[-1]["loss"]         # history.json: [{"step", "lr", "loss": [per instance]}, ...]
    run.model                       # the trained model, built on first use (then kept)

The JSON files are read (and checked) at once; the weights are loaded on first use of
:attr:`Run.model`, after :func:`load_run` has checked that ``model.safetensors`` is complete
(its header parses and the file holds every byte the header promises), so a damaged or
unfinished folder fails in :func:`load_run` with the one-line
:class:`toymodels.train.runs.RunFolderError`, not later in a notebook cell.

A sweep job folder (``DIR/jobs/<id>/`` of ``toymodels sweep``) is a run whose instances are
its grid points (``points.json``, in instance order). The job trains a few extra *padding*
instances (copies of the first point, so that packing never changes a result); they are
dropped here: :attr:`Run.n_instances`, :attr:`Run.model` and :meth:`Run.history_array`
cover the points only, like metrics.json does.
"""
from __future__ import annotations

import json
import struct
from dataclasses import dataclass, field
from functools import cached_property
from pathlib import Path
from typing import Any

import torch

from ..train.runs import RunFolderError, load_model, load_weights, read_json

RUN_KINDS = ("tms", "sae", "spd")
"""The model families a run folder can hold (config.json's ``model.family``)."""


@dataclass(frozen=True)
class Run:
    """One run folder, read. Build it with :func:`load_run`.

    ``kind`` is the model family (:data:`RUN_KINDS`); ``n_instances`` the instances that
    metrics.json describes (a sweep job's grid points, without its padding instances);
    ``points`` a sweep job's grid points (``[{"id", "config"}, ...]`` in instance order), or
    None for a plain run."""

    path: Path
    kind: str
    config: dict[str, Any]
    metrics: dict[str, Any]
    history: list[dict[str, Any]]
    n_instances: int
    points: list[dict[str, Any]] | None = None
    device: str = field(default="cpu", compare=False)
    """Where :attr:`model` is built."""

    @cached_property
    def model(self) -> torch.nn.Module:
        """The trained model (toy model, SAE or SPD decomposition), loaded on first use;
        for a sweep job only the instances of its points."""
        if self.kind == "spd":
            model = _load_spd(self.path, self.config, self.device)
        else:
            model = load_model(self.path, self.device)
        if model.n_instances != self.n_instances:
            model = model.subset(list(range(self.n_instances)))
        model.eval()
        for p in model.parameters():
            p.requires_grad_(False)
        return model

    @property
    def is_sweep_job(self) -> bool:
        return self.points is not None

    def history_array(self, key: str = "loss") -> tuple[torch.Tensor, torch.Tensor] | None:
        """(steps (T,), values (T, I)) of a per-instance ``key`` of history.json (I the run's
        instances, padding dropped); None when no entry holds ``key`` as a per-instance list."""
        rows = [(h.get("step"), h.get(key)) for h in self.history if isinstance(h, dict)]
        rows = [(s, v) for s, v in rows if isinstance(s, (int, float)) and isinstance(v, list) and len(v) >= self.n_instances]
        if not rows:
            return None
        steps = torch.tensor([float(s) for s, _ in rows], dtype=torch.float64)
        vals = torch.tensor([[_num(x) for x in v[: self.n_instances]] for _, v in rows], dtype=torch.float64)
        return steps, vals

    def instance_labels(self) -> list[str]:
        """A short label per instance: the grid values that differ between a sweep job's
        points (e.g. ``p=0.05 seed=1``), else ``#i``."""
        if not self.points:
            return [f"#{i}" for i in range(self.n_instances)]
        cfgs = [p.get("config", {}) if isinstance(p, dict) else {} for p in self.points]
        keys = [k for k in cfgs[0] if not isinstance(cfgs[0][k], dict) and k != "command"
                and len({json.dumps(c.get(k), sort_keys=True) for c in cfgs}) > 1]
        short = {"feature_probability": "p", "l1_coefficient": "l1", "importance_decay": "r"}
        return [" ".join(f"{short.get(k, k)}={_fmt(c.get(k))}" for k in keys) or f"#{i}" for i, c in enumerate(cfgs)]


def _num(x: Any) -> float:
    """A history/metrics number: JSON null is NaN, "inf"/"-inf" the infinities."""
    if x is None:
        return float("nan")
    if isinstance(x, str):
        return float(x) if x in ("inf", "-inf") else float("nan")
    return float(x)


def _fmt(v: Any) -> str:
    return f"{v:.3g}" if isinstance(v, float) else str(v)


def load_run(path: str | Path, device: str | torch.device = "cpu") -> Run:
    """The run in folder ``path`` (see the module docstring). Raises
    :class:`~toymodels.train.runs.RunFolderError` (one line naming the file) for a folder that
    is not a finished run: config.json, metrics.json, history.json or model.safetensors
    missing, empty, truncated or not what a run writes; a sweep's top folder is refused with
    a pointer to its jobs."""
    path = Path(path)
    if not path.is_dir():
        raise RunFolderError(f"{path}: not a folder" if path.exists() else f"{path}: no such folder")
    if not (path / "config.json").exists():
        jobs = sorted(p for p in (path / "jobs").glob("*") if p.is_dir()) if (path / "jobs").is_dir() else []
        if jobs:
            raise RunFolderError(f"{path} is a sweep folder, not a run; give one of its {len(jobs)} job folder(s), "
                                 f"e.g. {jobs[0]}")
        raise RunFolderError(f"{path} is not a run folder: config.json is missing")
    config = _json_object(path / "config.json")
    spec = config.get("model")
    if not isinstance(spec, dict):
        raise RunFolderError(f"{path / 'config.json'}: has no 'model' settings (not a run's config.json)")
    kind = spec.get("family", "tms")
    if kind not in RUN_KINDS:
        raise RunFolderError(f"{path / 'config.json'}: unknown model family {kind!r} (known: {', '.join(RUN_KINDS)})")
    n_model = spec.get("n_instances", spec.get("target", {}).get("n_instances") if isinstance(spec.get("target"), dict) else None)
    if not isinstance(n_model, int) or n_model < 1:
        raise RunFolderError(f"{path / 'config.json'}: model.n_instances is missing or not a positive integer")
    for name in ("metrics.json", "history.json", "model.safetensors"):
        if not (path / name).exists():
            hint = " (the run did not finish; `--resume` continues it)" if any(path.glob("checkpoint*.pt")) else ""
            raise RunFolderError(f"{path / name}: file not found{hint}")
    metrics = _json_object(path / "metrics.json")
    history = read_json(path / "history.json")
    if not isinstance(history, list):
        raise RunFolderError(f"{path / 'history.json'}: expected a list of logged steps, got {type(history).__name__}")
    _check_safetensors(path / "model.safetensors")
    points = None
    n_inst = n_model
    if (path / "points.json").exists():
        points = read_json(path / "points.json")
        if not isinstance(points, list) or not points or not all(isinstance(p, dict) for p in points):
            raise RunFolderError(f"{path / 'points.json'}: expected a non-empty list of sweep points")
        if len(points) > n_model:
            raise RunFolderError(f"{path / 'points.json'}: {len(points)} points but the model has {n_model} instances")
        n_inst = len(points)
    return Run(path=path, kind=kind, config=config, metrics=metrics, history=history, n_instances=n_inst,
               points=points, device=str(device))


def _json_object(path: Path) -> dict[str, Any]:
    obj = read_json(path)
    if not isinstance(obj, dict):
        raise RunFolderError(f"{path}: expected a JSON object, got {type(obj).__name__} (damaged?)")
    return obj


def _check_safetensors(path: Path) -> None:
    """A cheap completeness check of a safetensors file without reading its tensors: the
    8-byte header length, a JSON header, and a file at least as long as its last tensor's end."""
    size = path.stat().st_size
    if size == 0:
        raise RunFolderError(f"{path}: the file is empty (a damaged run folder?)")
    try:
        with open(path, "rb") as fh:
            (n,) = struct.unpack("<Q", fh.read(8))
            if n > min(size, 100_000_000):
                raise ValueError("header length beyond the file")
            header = json.loads(fh.read(n))
        ends = [int(v["data_offsets"][1]) for k, v in header.items() if k != "__metadata__"]
    except Exception as e:  # noqa: BLE001 - any parse failure is damage
        raise RunFolderError(f"{path}: not a readable safetensors file ({' '.join(str(e).split())[:100]}); "
                             "truncated or damaged") from None
    if size < 8 + n + max(ends, default=0):
        raise RunFolderError(f"{path}: truncated ({size} bytes, its header needs {8 + n + max(ends, default=0)})")


def _load_spd(path: Path, config: dict[str, Any], device: str) -> torch.nn.Module:
    """Rebuild an SPD decomposition (:mod:`toymodels.research.spd`) from config.json — its
    frozen target from ``model.target`` (a toy model or a compressed-computation MLP), the
    :class:`SPDConfig` from the other fields — and load model.safetensors into it."""
    from ..research.spd import SPDConfig, SPDModel

    cfg_path = path / "config.json"
    spec = dict(config["model"])
    target_spec = spec.pop("target", None)
    spec.pop("family", None)
    if not isinstance(target_spec, dict):
        raise RunFolderError(f"{cfg_path}: an SPD run needs model.target (the decomposed model's settings)")
    try:
        target = _target_from_spec(target_spec, device)
        model = SPDModel(target, SPDConfig(**spec))
    except (ValueError, TypeError) as e:
        raise RunFolderError(f"{cfg_path}: {' '.join(str(e).split())[:200]}") from None
    load_weights(path / "model.safetensors", model)
    return model


def _target_from_spec(spec: dict[str, Any], device: str) -> torch.nn.Module:
    family = spec.get("family", "tms")
    if family == "tms":
        from ..models import model_from_spec

        return model_from_spec(spec, device=device)
    from ..research import compressed

    classes = {"bigram-mlp": (compressed.BigramMLP, compressed.BigramMLPConfig),
               "residual-mlp": (compressed.ResidualMLP, compressed.ResidualMLPConfig)}
    if family not in classes:
        raise ValueError(f"unknown SPD target family {family!r} (known: tms, {', '.join(classes)})")
    cls, cfg_cls = classes[family]
    fields = {k: v for k, v in spec.items() if k not in ("family", "seed")}
    return cls(cfg_cls(**fields), seed=spec.get("seed", 0), device=device)


__all__ = ["RUN_KINDS", "Run", "load_run"]
