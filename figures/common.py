"""What every figure script shares: presets, the output folder, saving PNGs."""
from __future__ import annotations

import os
from pathlib import Path
from typing import Any

import matplotlib

matplotlib.use("Agg")
import matplotlib.pyplot as plt  # noqa: E402

OUT = Path(__file__).resolve().parent / "out"
PRESET_NAMES = ("tiny", "quick", "full")


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


def preset(presets: dict[str, dict[str, Any]], name: str) -> dict[str, Any]:
    if name not in presets:
        raise ValueError(f"preset must be one of {', '.join(presets)}; got {name!r}")
    return presets[name]
