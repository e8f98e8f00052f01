"""What every ``toymodels`` subcommand shares: the run settings (--out, --seed, --device,
--threads, --resume, --overwrite), the training flags generated from
:class:`toymodels.train.TrainConfig`, log-spaced sweeps, output-path checks made before any
work, and the one-line report of a run that did not converge."""
from __future__ import annotations

import argparse
import math
import os
import tempfile
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Mapping, Sequence

import torch

from . import configargs
from .._validate import check_int
from ..device import DEVICE_CHOICES, parse_threads
from ..train.loop import TrainConfig


EXIT_CODES = ("Exit codes: 0 done; 1 training diverged (NaN/inf; the last good checkpoint is kept); "
              "2 bad input or an unusable run folder (one line, nothing trained).")


@dataclass(frozen=True)
class RunSettings:
    """Where a run goes and how it runs (flags shared by every subcommand)."""

    out: str = "runs/run"
    """Run folder (created if missing)."""
    seed: int = 0
    """Seed for weights and data."""
    device: str = "auto"
    """auto picks CUDA when present."""
    threads: str = "auto"
    """CPU threads for torch: a number, or auto (1 for small models, else the idle cores
    this process may use; see toymodels.device.choose_threads)."""
    resume: bool = False
    """Continue from DIR/checkpoint.pt (the run's config must be unchanged, except more --steps)."""
    overwrite: bool = False
    """Replace a different run already in --out (otherwise refused)."""

    def __post_init__(self) -> None:
        if not str(self.out).strip():
            raise ValueError("--out must name a folder, got an empty string")
        check_int("seed", self.seed, -(1 << 63), (1 << 63) - 1)
        if self.device not in DEVICE_CHOICES and not str(self.device).startswith("cuda:"):
            raise ValueError(f"device must be one of {', '.join(DEVICE_CHOICES)}; got {self.device!r}")
        parse_threads(self.threads)
        if self.resume and self.overwrite:
            raise ValueError("give --resume (continue the run in --out) or --overwrite (replace it), not both")


RUN_FLAGS = {"out": "--out", "threads": "--threads"}


def add_run_arguments(p: argparse.ArgumentParser, *, out: str) -> None:
    """--out (default ``out``), --seed, --device, --threads, --resume, --overwrite."""
    configargs.add_arguments(p, RunSettings, include=["out"], defaults={"out": out}, metavars={"out": "DIR"})
    g = p.add_argument_group("run")
    configargs.add_arguments(g, RunSettings, exclude=["out"], choices={"device": DEVICE_CHOICES})


def add_train_arguments(p: argparse.ArgumentParser, **defaults: Any) -> None:
    """Every :class:`TrainConfig` field as a flag, with this command's ``defaults``."""
    g = p.add_argument_group("training")
    configargs.add_arguments(g, TrainConfig, defaults=defaults)


def train_flags(run: RunSettings) -> dict[str, Any]:
    """``resume`` and ``overwrite`` for :func:`toymodels.train.train` (the trainer refuses a
    folder holding another run unless ``overwrite``). ``--resume`` without a checkpoint is
    refused here, before any work and without creating the folder."""
    if run.resume and not any(Path(run.out).glob("checkpoint*.pt")):
        raise ValueError(f"--resume: {run.out} holds no checkpoint (checkpoint.pt) to continue from; start without --resume")
    return {"resume": run.resume, "overwrite": run.overwrite}


def run_settings(args: argparse.Namespace) -> RunSettings:
    return configargs.build(RunSettings, args)


def train_config(args: argparse.Namespace, **overrides: Any) -> TrainConfig:
    return configargs.build(TrainConfig, args, **overrides)


# ---------------------------------------------------------------------- sweeps
def sweep_values(values: Sequence[float], n: int, flag: str, *, integer: bool = False) -> list[Any]:
    """One value for every instance, or two: log-spaced from the first to the last across
    the n instances (rounded for integers). Two values with one instance is refused (one of
    them would be dropped without a word)."""
    if isinstance(values, (int, float)):
        values = [values]
    if len(values) not in (1, 2):
        raise ValueError(f"{flag} takes one value or two (first and last of a log-spaced sweep); got {len(values)}")
    if len(values) == 1:
        return [values[0]] * n
    if n == 1 and values[0] != values[1]:
        raise ValueError(f"{flag} gives two values (a sweep) but --instances is 1; give one value, or --instances 2 or more")
    lo, hi = float(values[0]), float(values[1])
    if not (lo > 0 and hi > 0 and math.isfinite(lo) and math.isfinite(hi)):
        raise ValueError(f"{flag} values must be positive and finite to be log-spaced, got {values[0]} and {values[1]}")
    pts = [lo] if n == 1 else torch.logspace(math.log10(lo), math.log10(hi), n, dtype=torch.float64).tolist()
    return [int(round(v)) for v in pts] if integer else pts


def sweep_probabilities(values: Sequence[float], n: int) -> torch.Tensor:
    """One value for every instance, or two log-spaced from the first to the last."""
    if isinstance(values, (int, float)):
        values = [values]
    for name, v in zip(("P", "P_LAST"), values):
        if len(values) == 2 and not 0 < float(v) <= 1:
            raise ValueError(f"--feature-probability {name} must be in (0, 1] to be log-spaced, got {v}")
        if float(v) == 0:  # would train on zeros and report a "converged" model with a geometry
            raise ValueError("--feature-probability must be in (0, 1]: with p = 0 no feature ever fires and there "
                             "is nothing to learn")
    return torch.tensor(sweep_values(values, n, "--feature-probability"), dtype=torch.float32)


# ---------------------------------------------------------------------- output paths
def check_output_dir(path: str | Path, flag: str = "--out") -> Path:
    """Refuse, before any work, an output folder that cannot be written: an existing file, a
    path through a file, or a read-only parent. Creates nothing."""
    path = Path(path)
    if path.exists() and not path.is_dir():
        raise ValueError(f"{flag} {path} is a file, not a folder")
    _check_parent_writable(path, path, flag)
    return path


def check_output_file(path: str | Path, flag: str) -> Path:
    """Refuse, before any work, an output file that cannot be written: a folder, a path
    through a file, or a read-only folder. Creates nothing."""
    path = Path(path)
    if str(path).strip() in ("", "."):
        raise ValueError(f"{flag} must name a file, got {str(path)!r}")
    if path.is_dir():
        raise ValueError(f"{flag} {path} is a folder, not a file")
    if path.exists() and not os.access(path, os.W_OK):
        raise ValueError(f"{flag} {path} is read-only")
    _check_parent_writable(path.parent, path, flag)
    return path


def _check_parent_writable(start: Path, path: Path, flag: str) -> None:
    """The nearest existing folder at or above ``start`` must be a writable folder."""
    probe = start
    while not probe.exists() and probe.parent != probe:
        probe = probe.parent
    if not probe.is_dir():
        raise ValueError(f"{flag} {path} goes through {probe}, which is a file, not a folder")
    _check_writable(probe, flag, path)


def _check_writable(folder: Path, flag: str, path: Path) -> None:
    try:
        with tempfile.TemporaryFile(dir=folder):
            pass
    except OSError as e:
        raise ValueError(f"{flag} {path} cannot be written: {folder} is not writable ({e.strerror or e})") from None


# ---------------------------------------------------------------------- convergence
def converged(trainer_ok: Sequence[bool] | None, losses: Sequence[float], ceiling: Sequence[float]) -> list[bool]:
    """Per instance: the trainer's verdict (finite, not grown tenfold) and a final loss at
    most ``ceiling`` (the loss of a trivial answer: a model worse than it has learned nothing,
    e.g. a learning rate far too large that ends with loss 1e16 without any NaN)."""
    ok = [True] * len(losses) if trainer_ok is None else [bool(v) for v in trainer_ok]
    return [o and math.isfinite(v) and v <= c for o, v, c in zip(ok, losses, ceiling)]


def warn_not_converged(command: str, converged: Sequence[bool], losses: Sequence[float], extra: str = "") -> None:
    bad = [i for i, ok in enumerate(converged) if not ok]
    if bad:
        import sys

        worst = max((losses[i] for i in bad), key=lambda v: v if math.isfinite(v) else math.inf)
        print(f"toymodels {command}: warning: instance(s) {bad} did not converge (final loss up to {worst:.3g}, "
              f"{extra}); try a smaller --lr or more --steps", file=sys.stderr)


def note(command: str, text: str) -> None:
    import sys

    print(f"toymodels {command}: note: {text}", file=sys.stderr)


def explicitly_set(args: argparse.Namespace, defaults: Mapping[str, Any], names: Sequence[str]) -> list[str]:
    """The names among ``names`` whose parsed value differs from ``defaults``."""
    return [n for n in names if getattr(args, n, None) != defaults.get(n)]
