"""Discovering and running figure scripts (importable, so worker processes can use it)."""
from __future__ import annotations

import importlib
import pkgutil
import time
from pathlib import Path

import figures
from toymodels.device import resolve_device


def figure_modules() -> list[str]:
    return sorted(m.name for m in pkgutil.iter_modules(figures.__path__) if m.name.startswith("fig"))


def run(name: str, preset: str, out_dir: Path, device: str = "cpu") -> list[Path]:
    mod = importlib.import_module(f"figures.{name}")
    return mod.make(mod.PRESETS[preset], Path(out_dir), resolve_device(device))


def timed_run(name: str, preset: str, out_dir: Path, device: str, threads: int) -> tuple[str, float, list[Path]]:
    """Run one figure script with ``threads`` torch threads; (name, seconds, paths)."""
    import torch

    if torch.get_num_threads() != threads:
        torch.set_num_threads(threads)
    t0 = time.perf_counter()
    paths = run(name, preset, out_dir, device)
    return name, time.perf_counter() - t0, paths
