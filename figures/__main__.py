"""``python -m figures [--preset quick|full|tiny] [--only figNN]``: regenerate the figures.

Each module ``figures/figNN_*.py`` defines ``PRESETS`` (tiny, quick, full) and
``make(cfg, out_dir, device) -> list[Path]``.
"""
from __future__ import annotations

import argparse
import importlib
import pkgutil
import sys
import time
from pathlib import Path

import figures
from toymodels.device import DEVICE_CHOICES, resolve_device

from .common import OUT, PRESET_NAMES


def figure_modules() -> list[str]:
    return sorted(m.name for m in pkgutil.iter_modules(figures.__path__) if m.name.startswith("fig"))


def run(name: str, preset: str, out_dir: Path, device: str = "cpu") -> list[Path]:
    mod = importlib.import_module(f"figures.{name}")
    return mod.make(mod.PRESETS[preset], Path(out_dir), resolve_device(device))


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(prog="python -m figures", description=__doc__.splitlines()[0])
    p.add_argument("--preset", choices=PRESET_NAMES, default="quick")
    p.add_argument("--only", default="", help="run the figure modules whose name starts with this")
    p.add_argument("--out", type=Path, default=OUT)
    p.add_argument("--device", choices=DEVICE_CHOICES, default="auto")
    args = p.parse_args(argv)
    names = [n for n in figure_modules() if n.startswith(args.only)]
    for n in names:
        t0 = time.perf_counter()
        paths = run(n, args.preset, args.out, args.device)
        print(f"{n:40s} {time.perf_counter() - t0:6.1f} s  " + ", ".join(str(x) for x in paths), flush=True)
    return 0


if __name__ == "__main__":
    sys.exit(main())
