"""What every figure script shares: presets, the output folder, saving PNGs."""
from __future__ import annotations

import os
from pathlib import Path

import matplotlib

matplotlib.use("Agg")
import matplotlib.pyplot as plt  # noqa: E402

OUT = Path(__file__).resolve().parent / "out"
"""The gallery: the quick preset's figures (tracked); other presets go to OUT / preset."""
PRESET_NAMES = ("tiny", "quick", "full")


def default_out(preset: str) -> Path:
    """Where a preset's figures go by default: the gallery (``OUT``) for quick, its own
    untracked folder ``OUT/<preset>`` for tiny and full, so they never replace the gallery."""
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
