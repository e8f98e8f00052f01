"""What every figure script shares: presets, the output folders, saving PNGs.

Generated files never land in the package or anywhere tracked by accident: ``python -m
figures`` writes under the working directory (:data:`OUT`, ignored by git) unless ``--out``
says otherwise. The README's gallery is the tracked folder ``gallery/`` at the top of the
repository, refreshed only on purpose (``make gallery``); the figures differ in their last
pixels from one CPU to another (vectorised kernels round differently), so a demo run must
never write over it.
"""
from __future__ import annotations

import os
from pathlib import Path

import matplotlib

matplotlib.use("Agg")
import matplotlib.pyplot as plt  # noqa: E402

OUT = Path("out") / "figures"
"""The default output folder, relative to the working directory (ignored by git): the quick
preset's figures go here, other presets to ``OUT / preset``."""
PRESET_NAMES = ("tiny", "quick", "full")


def default_out(preset: str) -> Path:
    """Where a preset's figures go by default (relative to the working directory): ``OUT`` for
    quick, its own folder ``OUT/<preset>`` for tiny and full, so presets never mix."""
    if preset not in PRESET_NAMES:
        raise ValueError(f"preset must be one of {PRESET_NAMES}, got {preset!r}")
    return OUT if preset == "quick" else OUT / preset


def savefig(fig: "plt.Figure", out_dir: Path, name: str) -> Path:
    """Save ``fig`` as ``out_dir/name.png`` (atomically) and close it."""
    out_dir = Path(out_dir)
    out_dir.mkdir(parents=True, exist_ok=True)
    path = out_dir / f"{name}.png"
    tmp = out_dir / f".{name}.tmp.png"
    fig.savefig(tmp, dpi=110, bbox_inches="tight")
    plt.close(fig)
    os.replace(tmp, path)
    return path
