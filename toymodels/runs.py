"""Run folders: config, weights, metrics and history, each written atomically.

A run folder holds ``config.json``, ``model.safetensors``, ``metrics.json``,
``history.json`` and, while training, ``checkpoint.pt`` (model, optimizer and RNG state).
Every file is written to a temporary name in the same folder and renamed into place, so a
crash never leaves a half-written file.
"""
from __future__ import annotations

import json
import math
import os
import tempfile
from pathlib import Path
from typing import Any

import numpy as np
import torch
from safetensors.torch import load_file, save_file


def _atomic(path: Path, write) -> None:
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(prefix=f".{path.name}.", suffix=".tmp", dir=path.parent)
    os.close(fd)
    try:
        write(tmp)
        os.replace(tmp, path)
    except BaseException:
        if os.path.exists(tmp):
            os.unlink(tmp)
        raise


def jsonable(obj: Any) -> Any:
    """Plain JSON values: tensors and numpy arrays become (nested) lists, numpy/torch scalars
    Python numbers, paths strings, and non-finite floats null / "inf" / "-inf" (JSON has no NaN)."""
    if isinstance(obj, torch.Tensor):
        return jsonable(obj.detach().cpu().tolist())
    if isinstance(obj, np.ndarray):
        return jsonable(obj.tolist())
    if isinstance(obj, (np.floating, np.integer, np.bool_)):
        return jsonable(obj.item())
    if isinstance(obj, float) and not math.isfinite(obj):
        return None if math.isnan(obj) else ("inf" if obj > 0 else "-inf")
    if isinstance(obj, dict):
        return {str(k): jsonable(v) for k, v in obj.items()}
    if isinstance(obj, (list, tuple)):
        return [jsonable(v) for v in obj]
    if isinstance(obj, Path):
        return str(obj)
    return obj


def write_json(path: str | Path, obj: Any) -> None:
    """Write ``obj`` as indented JSON, atomically (tensors become lists)."""
    text = json.dumps(jsonable(obj), indent=2)

    def write(tmp: str) -> None:
        with open(tmp, "w") as f:
            f.write(text + "\n")

    _atomic(Path(path), write)


def read_json(path: str | Path) -> Any:
    with open(path) as f:
        return json.load(f)


def save_weights(path: str | Path, module: torch.nn.Module) -> None:
    """The module's state dict as safetensors, atomically."""
    tensors = {k: v.detach().contiguous().cpu() for k, v in module.state_dict().items()}
    _atomic(Path(path), lambda tmp: save_file(tensors, tmp))


def load_weights(path: str | Path, module: torch.nn.Module) -> None:
    device = next(iter(module.state_dict().values())).device
    module.load_state_dict({k: v.to(device) for k, v in load_file(str(path)).items()})


def save_checkpoint(path: str | Path, state: dict[str, Any]) -> None:
    _atomic(Path(path), lambda tmp: torch.save(state, tmp))


def load_checkpoint(path: str | Path, device: torch.device | str = "cpu") -> dict[str, Any]:
    return torch.load(path, map_location=device, weights_only=True)


def load_model(run_dir: str | Path, device: str | torch.device = "cpu") -> torch.nn.Module:
    """Rebuild the trained model (toy model or SAE) of a run folder."""
    run_dir = Path(run_dir)
    cfg_path = run_dir / "config.json"
    if not cfg_path.exists():
        raise ValueError(f"{run_dir} is not a run folder: config.json is missing")
    spec = read_json(cfg_path)["model"]
    family = spec.get("family", "tms")
    if family == "tms":
        from .models import model_from_spec

        model = model_from_spec(spec, device=device)
    elif family == "sae":
        from .sae import sae_from_spec

        model = sae_from_spec(spec, device=device)
    else:
        raise ValueError(f"unknown model family {family!r} in {cfg_path}")
    load_weights(run_dir / "model.safetensors", model)
    return model
