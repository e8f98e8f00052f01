"""Run folders: config, weights, metrics and history, each written atomically.

A run folder holds ``config.json``, ``model.safetensors``, ``metrics.json``,
``history.json`` and, while training, ``checkpoint.pt`` (or ``checkpoint-<c>.pt`` per chunk
of instances: model, optimizer and RNG state, plus the run's settings and its chunking).
Every file is written to a temporary name in the same folder and renamed into place, so a
crash never leaves a half-written file.

Guarantees (enforced by :func:`toymodels.train.train` with the helpers here):

- a folder that holds a run is never written into by a different run: a new run refuses
  unless ``overwrite=True``, which first removes every file of the old run;
- resume refuses any change of settings except more steps (:func:`settings_diff`);
- one run at a time per folder (:func:`lock_run_folder`, an exclusive ``flock``);
- a damaged file (empty, truncated, garbage) raises :class:`RunFolderError` naming it.
"""
from __future__ import annotations

import errno
import fcntl
import json
import math
import os
import tempfile
from contextlib import contextmanager
from pathlib import Path
from typing import Any, Iterator

import numpy as np
import torch
from safetensors.torch import load_file, save_file

RUN_FILES = ("config.json", "model.safetensors", "metrics.json", "history.json", "checkpoint.pt")
"""The files a run writes (plus ``checkpoint-<c>.pt`` for chunked runs)."""
LOCK_NAME = ".lock"


class RunFolderError(ValueError):
    """A run folder (or a file in it) cannot be used as asked; the message is one line naming
    the file and the problem."""


def _one_line(text: object, limit: int = 200) -> str:
    s = " ".join(str(text).split())
    return s if len(s) <= limit else s[: limit - 1] + "…"


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
    """The JSON in ``path``; :class:`RunFolderError` naming the file when it is missing,
    empty or not valid JSON."""
    path = Path(path)
    try:
        text = path.read_text()
    except FileNotFoundError:
        raise RunFolderError(f"{path}: file not found") from None
    except (OSError, UnicodeDecodeError) as e:
        raise RunFolderError(f"{path}: cannot be read ({_one_line(e)})") from None
    if not text.strip():
        raise RunFolderError(f"{path}: the file is empty (a damaged run folder?)")
    try:
        return json.loads(text)
    except json.JSONDecodeError as e:
        raise RunFolderError(f"{path}: not valid JSON ({e.msg} at line {e.lineno}, column {e.colno}); truncated or damaged") from None


def save_weights(path: str | Path, module: torch.nn.Module) -> None:
    """The module's state dict as safetensors, atomically."""
    tensors = {k: v.detach().contiguous().cpu() for k, v in module.state_dict().items()}
    _atomic(Path(path), lambda tmp: save_file(tensors, tmp))


def load_weights(path: str | Path, module: torch.nn.Module) -> None:
    """Load a safetensors file into ``module``; :class:`RunFolderError` naming the file when it
    is missing, damaged, or holds other tensors (names or shapes) than the module."""
    path = Path(path)
    if not path.is_file():
        raise RunFolderError(f"{path}: file not found (the run did not finish, or the folder is damaged)")
    if path.stat().st_size == 0:
        raise RunFolderError(f"{path}: the file is empty (a damaged run folder?)")
    try:
        tensors = load_file(str(path))
    except Exception as e:  # safetensors raises its own SafetensorError and others
        raise RunFolderError(f"{path}: not a readable safetensors file ({_one_line(e, 120)}); truncated or damaged") from None
    mine = module.state_dict()
    missing, extra = sorted(set(mine) - set(tensors)), sorted(set(tensors) - set(mine))
    if missing or extra:
        raise RunFolderError(f"{path}: its tensors do not match the model in config.json (missing {missing}, unexpected {extra})")
    bad = [k for k, v in tensors.items() if tuple(v.shape) != tuple(mine[k].shape)]
    if bad:
        k = bad[0]
        raise RunFolderError(
            f"{path}: tensor {k!r} has shape {tuple(tensors[k].shape)} but the model in config.json needs {tuple(mine[k].shape)}"
        )
    device = next(iter(mine.values())).device
    module.load_state_dict({k: v.to(device) for k, v in tensors.items()})


def save_checkpoint(path: str | Path, state: dict[str, Any]) -> None:
    _atomic(Path(path), lambda tmp: torch.save(state, tmp))


CHECKPOINT_KEYS = ("step", "model", "optimizer", "rng", "history")


def load_checkpoint(path: str | Path, device: torch.device | str = "cpu") -> dict[str, Any]:
    """A checkpoint written by the trainer; :class:`RunFolderError` naming the file when it is
    empty, truncated, not a checkpoint, or lacks a required entry."""
    path = Path(path)
    if not path.is_file():
        raise RunFolderError(f"{path}: file not found")
    if path.stat().st_size == 0:
        raise RunFolderError(f"{path}: the file is empty (a damaged checkpoint)")
    try:
        state = torch.load(path, map_location=device, weights_only=True)
    except Exception as e:  # truncated zip, pickle garbage, unsupported types ...
        raise RunFolderError(f"{path}: not a readable checkpoint ({_one_line(e, 120)}); truncated or damaged") from None
    if not isinstance(state, dict):
        raise RunFolderError(f"{path}: not a trainer checkpoint (holds a {type(state).__name__}, not a dict)")
    missing = [k for k in CHECKPOINT_KEYS if k not in state]
    if missing:
        raise RunFolderError(f"{path}: not a trainer checkpoint (missing {missing})")
    return state


# ---------------------------------------------------------------------- generator state
def rng_state_to_cpu(state: Any) -> Any:
    """A saved generator state as ``Generator.set_state`` takes it, for CPU and CUDA alike:
    every tensor a contiguous CPU uint8 tensor (lists, tuples and dicts of states are
    converted element by element). A checkpoint loaded with ``map_location='cuda'`` would
    otherwise hand a CUDA tensor to ``set_state``, which refuses it."""
    if isinstance(state, torch.Tensor):
        if state.dtype != torch.uint8:
            raise RunFolderError(f"a generator state must be a uint8 tensor, got {state.dtype}")
        return state.detach().to("cpu").contiguous()
    if isinstance(state, dict):
        return {k: rng_state_to_cpu(v) for k, v in state.items()}
    if isinstance(state, (list, tuple)):
        return type(state)(rng_state_to_cpu(v) for v in state)
    return state


def check_rng_device(saved: str | None, device: torch.device | str, path: str | Path) -> None:
    """Refuse to continue a data stream on another kind of device than it was saved on: CPU
    (Mersenne Twister) and CUDA (Philox) generators have different states, so a CUDA run's
    stream cannot continue on the CPU or the other way round."""
    kind = torch.device(device).type
    if saved is not None and saved != kind:
        raise RunFolderError(
            f"{path}: the run's data stream was saved on {saved} and cannot continue on {kind} "
            f"(their random generators differ); resume on {saved}, or start a new run"
        )


# ---------------------------------------------------------------------- folder checks
def check_writable_dir(path: str | Path) -> Path:
    """Check, before any work, that ``path`` can be a run folder: not empty, not an existing
    file, not through a file, and writable (the folder, or its first existing parent when it
    does not exist yet). Returns it as a Path; :class:`RunFolderError` otherwise."""
    if isinstance(path, str) and not path.strip():
        raise RunFolderError("the output folder is an empty string; give a folder name")
    path = Path(path)
    if path.exists() and not path.is_dir():
        raise RunFolderError(f"{path}: exists and is a file, not a folder")
    probe = path
    while not probe.exists():
        parent = probe.parent
        if parent == probe:
            break
        probe = parent
    if probe.exists() and not probe.is_dir():
        raise RunFolderError(f"{path}: cannot be a folder, {probe} is a file")
    if not os.access(probe, os.W_OK | os.X_OK):
        raise RunFolderError(f"{path}: {probe} is not writable")
    if probe == path:  # permission bits can lie (root, read-only mounts): try a file
        try:
            fd, tmp = tempfile.mkstemp(prefix=".probe.", dir=path)
        except OSError as e:
            raise RunFolderError(f"{path}: not writable ({_one_line(e.strerror or e)})") from None
        os.close(fd)
        os.unlink(tmp)
    return path


def run_files(path: str | Path) -> list[Path]:
    """The files of a run in folder ``path`` (config, weights, metrics, history,
    checkpoints, and temporaries left by a crash)."""
    path = Path(path)
    if not path.is_dir():
        return []
    found = [path / n for n in RUN_FILES if (path / n).exists()]
    found += sorted(path.glob("checkpoint-*.pt"))
    found += sorted(p for p in path.glob(".*.tmp") if p.is_file())
    return found


def clear_run(path: str | Path) -> list[Path]:
    """Remove the files of the run in ``path`` (only those :func:`run_files` lists; other
    files are left alone). Returns what was removed."""
    removed = run_files(path)
    for p in removed:
        p.unlink(missing_ok=True)
    return removed


def prepare_new_run(path: str | Path, overwrite: bool) -> None:
    """A new run may start in ``path``: refuse (one line) when the folder holds a run,
    unless ``overwrite``, which removes that run's files first."""
    existing = run_files(path)
    if not existing:
        return
    if not overwrite:
        names = ", ".join(p.name for p in existing[:4]) + (" ..." if len(existing) > 4 else "")
        raise RunFolderError(
            f"{path}: already holds a run ({names}); pass overwrite=True (--overwrite) to replace it, "
            "resume=True (--resume) to continue it, or choose another folder"
        )
    clear_run(path)


_HELD: dict[str, list[int]] = {}  # real path -> [fd, depth], the locks this process holds


@contextmanager
def lock_run_folder(path: str | Path) -> Iterator[Path]:
    """Hold an exclusive lock on run folder ``path`` (``flock`` on ``path/.lock``) for the
    block; another process that asks for it gets :class:`RunFolderError` at once. Re-entrant
    within a process (a CLI holding the lock may call :func:`toymodels.train.train`)."""
    path = Path(path)
    path.mkdir(parents=True, exist_ok=True)
    key = os.path.realpath(path)
    held = _HELD.get(key)
    if held is not None:
        held[1] += 1
        try:
            yield path
        finally:
            held[1] -= 1
        return
    fd = os.open(path / LOCK_NAME, os.O_RDWR | os.O_CREAT, 0o644)
    try:
        fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
    except OSError as e:
        os.close(fd)
        if e.errno in (errno.EAGAIN, errno.EACCES, errno.EWOULDBLOCK):
            raise RunFolderError(
                f"{path}: another run is using this folder (it holds {path / LOCK_NAME}); wait for it or choose another folder"
            ) from None
        raise RunFolderError(f"{path / LOCK_NAME}: cannot lock ({_one_line(e.strerror or e)})") from None
    _HELD[key] = [fd, 1]
    try:
        yield path
    finally:
        del _HELD[key]
        fcntl.flock(fd, fcntl.LOCK_UN)
        os.close(fd)


# ---------------------------------------------------------------------- resume
RESUMABLE_CHANGES = (
    "train.steps", "train.quiet", "train.checkpoint_every", "train.max_instances_per_chunk", "train.data_thread",
)
"""Settings a resumed run may change: more steps (checked separately), the progress bar,
the checkpoint interval, the chunk limit (a resumed run keeps its checkpoints' chunking) and
the data thread (it moves when the batches are drawn, not what they are)."""


def _flatten(obj: Any, prefix: str = "") -> dict[str, Any]:
    if isinstance(obj, dict):
        out: dict[str, Any] = {}
        for k, v in obj.items():
            out.update(_flatten(v, f"{prefix}{k}." if isinstance(v, dict) else f"{prefix}{k}"))
            if isinstance(v, dict) and not v:
                out[f"{prefix}{k}"] = {}
        return out
    return {prefix.rstrip("."): obj}


def settings_diff(saved: dict[str, Any], new: dict[str, Any], ignore: tuple[str, ...] = RESUMABLE_CHANGES) -> list[str]:
    """The dotted names (``train.lr``, ``model.kind``, ``data.feature_probability``) of the
    settings that differ between two run records ({"model", "data", "train"} dicts),
    compared as JSON values, with ``old → new`` for short values."""
    a, b = _flatten(jsonable(saved)), _flatten(jsonable(new))
    out = []
    for k in sorted(set(a) | set(b)):
        if k in ignore or a.get(k, "<absent>") == b.get(k, "<absent>"):
            continue
        va, vb = repr(a.get(k, "absent")), repr(b.get(k, "absent"))
        out.append(f"{k} ({va} → {vb})" if len(va) + len(vb) <= 60 else k)
    return out


def load_model(run_dir: str | Path, device: str | torch.device = "cpu") -> torch.nn.Module:
    """Rebuild the trained model (toy model or SAE) of a run folder; :class:`RunFolderError`
    (one line naming the file) when the folder or one of its files is not usable."""
    run_dir = Path(run_dir)
    cfg_path = run_dir / "config.json"
    if not run_dir.is_dir():
        raise RunFolderError(f"{run_dir}: not a folder")
    if not cfg_path.exists():
        raise RunFolderError(f"{run_dir} is not a run folder: config.json is missing")
    record = read_json(cfg_path)
    spec = record.get("model") if isinstance(record, dict) else None
    if not isinstance(spec, dict):
        raise RunFolderError(f"{cfg_path}: has no 'model' settings (not a run's config.json)")
    family = spec.get("family", "tms")
    try:
        if family == "tms":
            from ..models import TMSConfig, model_from_spec

            known = set(TMSConfig.__dataclass_fields__) | {"family", "seed"}
            unknown = sorted(set(spec) - known)
            if unknown:
                raise ValueError(f"unknown model setting(s) {unknown}; known: {sorted(known)}")
            model = model_from_spec(spec, device=device)
        elif family == "sae":
            from ..sae import sae_from_spec

            model = sae_from_spec(spec, device=device)
        else:
            raise ValueError(f"unknown model family {family!r} (known: 'tms', 'sae')")
    except RunFolderError:
        raise
    except (ValueError, TypeError) as e:
        raise RunFolderError(f"{cfg_path}: {_one_line(e)}") from None
    load_weights(run_dir / "model.safetensors", model)
    return model
