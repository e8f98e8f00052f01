"""Your own activations as a data source: a tensor or array in memory, or a file on disk.

    from toymodels.activations import Activations
    src = Activations(x)                       # x: (N, D) tensor / ndarray, or a path
    train(sae, src, TrainConfig(...))          # train(sae, x, ...) wraps x the same way
    evaluate_sae(sae, src)                     # scored on the held-out rows only

A file is a ``.npy`` (read memory-mapped, ``np.load(mmap_mode="r")``), a ``.safetensors``
(tensor key ``activations``; memory-mapped at the tensor's byte offset in the file) or a
``.pt`` (a tensor, or a dict with key ``activations``; ``torch.load(mmap=True)``) holding an
(N, D) floating-point array. Nothing is read whole: the checks (shape, dtype, every value
finite) scan the file in chunks of ``chunk_rows`` rows, and a training batch gathers its
rows from the mapping, so a file larger than memory trains with memory for one batch (the
operating system pages the rows in).

Split: the last ``holdout`` fraction of the rows (at least one row when ``holdout > 0``) is
held out. Training batches draw rows uniformly with replacement from the rest, with a seeded
``torch.Generator`` (same seed, same batches); :meth:`Activations.heldout` is a source over
the held-out rows that yields them in order, which :func:`toymodels.sae.evaluate_sae` uses for
its metrics. Put the rows in random order before saving if their order means something
(a tail of a time series is not a random sample).

The source is shared (``n_instances = 1``): every instance of a sweep sees the same batches.
Batches are float32, shaped (1, B, D), on the source's device. Problems with the input (a
missing file, an unknown extension, a wrong shape or dtype, a non-finite value) raise
ValueError with one line naming the file and the problem, before any training.
"""
from __future__ import annotations

import json
import math
import struct
import warnings
from pathlib import Path
from typing import Any

import torch

from .._validate import check_float, check_int, check_seed
from ..device import make_generator, resolve_device

EXTENSIONS = (".npy", ".pt", ".safetensors")
SAFETENSORS_KEY = "activations"
_ST_DTYPES = {"F64": torch.float64, "F32": torch.float32, "F16": torch.float16, "BF16": torch.bfloat16}


# ---------------------------------------------------------------------- reading
def _fail(path: Path, what: str) -> ValueError:
    return ValueError(f"activations file {path}: {what}")


def _open_npy(path: Path) -> torch.Tensor:
    import numpy as np

    try:
        arr = np.load(path, mmap_mode="r", allow_pickle=False)
    except Exception as e:  # not an .npy, truncated, or an object array
        raise _fail(path, f"not a readable .npy array ({' '.join(str(e).split())[:120]})") from None
    if arr.dtype.kind != "f":
        raise _fail(path, f"holds dtype {arr.dtype}, need a floating-point array")
    return _mmap_view(arr)


def _mmap_view(arr: Any) -> torch.Tensor:
    with warnings.catch_warnings():  # a read-only mapping: we never write to it
        warnings.simplefilter("ignore", UserWarning)
        return torch.from_numpy(arr)


def _open_safetensors(path: Path) -> torch.Tensor:
    """The ``activations`` tensor, memory-mapped at its offset (format: 8-byte little-endian
    header length, a JSON header with dtype, shape and data_offsets, then the raw bytes)."""
    import numpy as np

    try:
        with open(path, "rb") as fh:
            (n,) = struct.unpack("<Q", fh.read(8))
            if n > 100_000_000:
                raise ValueError("header too long")
            header = json.loads(fh.read(n))
    except Exception as e:
        raise _fail(path, f"not a readable safetensors file ({' '.join(str(e).split())[:120]})") from None
    if SAFETENSORS_KEY not in header:
        keys = sorted(k for k in header if k != "__metadata__")
        raise _fail(path, f"has no tensor named {SAFETENSORS_KEY!r} (it holds {keys[:8]})")
    info = header[SAFETENSORS_KEY]
    dtype = _ST_DTYPES.get(info.get("dtype"))
    if dtype is None:
        raise _fail(path, f"tensor {SAFETENSORS_KEY!r} has dtype {info.get('dtype')}, need a floating-point array")
    shape = tuple(int(s) for s in info["shape"])
    start, end = (int(v) for v in info["data_offsets"])
    item = torch.empty(0, dtype=dtype).element_size()
    if end - start != math.prod(shape) * item or path.stat().st_size < 8 + n + end:
        raise _fail(path, "is truncated or damaged (tensor bytes do not match its shape)")
    np_dtype = {torch.float64: np.float64, torch.float32: np.float32, torch.float16: np.float16, torch.bfloat16: np.uint16}[dtype]
    if math.prod(shape) == 0:
        return torch.empty(shape, dtype=dtype)
    arr = np.memmap(path, dtype=np_dtype, mode="r", offset=8 + n + start, shape=shape)
    t = _mmap_view(arr)
    return t.view(torch.bfloat16) if dtype == torch.bfloat16 else t


def _open_pt(path: Path) -> torch.Tensor:
    try:
        obj = torch.load(path, map_location="cpu", mmap=True, weights_only=True)
    except Exception:
        try:  # an old-format (non-zip) file cannot be memory-mapped
            obj = torch.load(path, map_location="cpu", weights_only=True)
        except Exception as e:
            raise _fail(path, f"not a readable torch file ({' '.join(str(e).split())[:120]})") from None
    if isinstance(obj, dict):
        if SAFETENSORS_KEY not in obj:
            raise _fail(path, f"holds a dict without key {SAFETENSORS_KEY!r} (keys {sorted(map(str, obj))[:8]})")
        obj = obj[SAFETENSORS_KEY]
    if not isinstance(obj, torch.Tensor):
        raise _fail(path, f"holds a {type(obj).__name__}, need a tensor or a dict with key {SAFETENSORS_KEY!r}")
    if not obj.is_floating_point():
        raise _fail(path, f"holds dtype {obj.dtype}, need a floating-point tensor")
    return obj


def open_activations(path: str | Path) -> torch.Tensor:
    """The (N, D) array in ``path`` as a CPU tensor backed by the file where the format allows
    (no copy into memory). Checks the extension, that the file exists and its dtype; the
    shape and values are checked by :class:`Activations`."""
    p = Path(path)
    ext = p.suffix.lower()
    if ext not in EXTENSIONS:
        raise _fail(p, f"unknown extension {ext or '(none)'!r}; use one of {', '.join(EXTENSIONS)}")
    if not p.is_file():
        raise _fail(p, "no such file")
    return {".npy": _open_npy, ".pt": _open_pt, ".safetensors": _open_safetensors}[ext](p)


def _check_values(x: torch.Tensor, name: str, chunk_rows: int) -> None:
    """Raise ValueError naming the first row with a NaN or an infinity (chunked scan)."""
    for s in range(0, x.shape[0], chunk_rows):
        part = x[s : s + chunk_rows]
        bad = ~torch.isfinite(part.float() if part.dtype in (torch.float16, torch.bfloat16) else part)
        if bool(bad.any()):
            r = int(bad.any(dim=1).nonzero()[0, 0]) + s
            raise ValueError(f"{name}: row {r} holds a non-finite value (NaN or infinity); clean the data first")


# ---------------------------------------------------------------------- the source
class Activations:
    """A shared data source over a fixed (N, D) array of activations (see the module docstring).

    ``data``: a tensor or NumPy array (N, D), or a path to a .npy / .pt / .safetensors file.
    ``holdout`` in [0, 1): the fraction of rows, taken from the end, kept for evaluation.
    ``chunk_rows``: rows per chunk when scanning the values.
    """

    n_instances = 1
    per_instance = False
    shared = True

    def __init__(
        self,
        data: Any,
        *,
        holdout: float = 0.1,
        seed: int = 0,
        device: str | torch.device = "cpu",
        chunk_rows: int = 65536,
        _check: bool = True,
    ) -> None:
        self.seed = check_seed("seed", seed)
        self.device = resolve_device(device)
        self.holdout = check_float("holdout", holdout, 0.0, 1.0, hi_open=True)
        self.chunk_rows = check_int("chunk_rows", chunk_rows, 1)
        self.path: str | None = None
        if isinstance(data, (str, Path)):
            self.path = str(data)
            x = open_activations(data)
            name = f"activations file {data}"
        else:
            name = "activations"
            if not isinstance(data, torch.Tensor):
                try:
                    import numpy as np

                    if not isinstance(data, np.ndarray):
                        raise TypeError
                except (ImportError, TypeError):
                    raise ValueError(
                        f"activations must be a tensor, a NumPy array or a file path; got {type(data).__name__}"
                    ) from None
                if data.dtype.kind != "f":
                    raise ValueError(f"activations have dtype {data.dtype}; need a floating-point array")
                data = torch.from_numpy(data)
            if not data.is_floating_point():
                raise ValueError(f"activations have dtype {data.dtype}; need a floating-point tensor")
            x = data.detach()
        if x.ndim != 2:
            raise ValueError(f"{name}: shape {tuple(x.shape)}; need a 2-d (N samples, D dims) array")
        n, d = int(x.shape[0]), int(x.shape[1])
        if n < 2 or d < 1:
            raise ValueError(f"{name}: shape {tuple(x.shape)}; need at least 2 rows and 1 column")
        if d > n:  # (D, N) saved instead of (N, D): would otherwise read as N-dimensional activations
            raise ValueError(
                f"{name}: shape {tuple(x.shape)} has more columns than rows; activations are (N samples, D dims) "
                f"with many more samples than dims: the array looks transposed (save x.T)"
            )
        if _check:
            _check_values(x, name, self.chunk_rows)
        self._x = x
        self.dim = d
        self.n_rows = n
        n_held = 0 if self.holdout == 0 else min(n - 1, max(1, round(n * self.holdout)))
        self.n_train = n - n_held
        self.n_heldout = n_held
        self.generators = [make_generator(self.seed, self.device)]

    # -------------------------------------------------------------- source protocol
    @property
    def generator(self) -> torch.Generator:
        return self.generators[0]

    def __len__(self) -> int:
        return self.n_train

    def _rows(self, idx: torch.Tensor) -> torch.Tensor:
        """Rows ``idx`` (CPU or device long tensor) as float32 on the device."""
        x = self._x
        if x.device.type != "cpu" and x.device != self.device:
            x = x.to(self.device)
        idx = idx.to(x.device)
        return x.index_select(0, idx).to(device=self.device, dtype=torch.float32)

    def sample(self, batch_size: int) -> torch.Tensor:
        """A batch (1, B, D): B training rows drawn uniformly with replacement."""
        batch_size = check_int("batch_size", batch_size, 1)
        idx = torch.randint(0, self.n_train, (batch_size,), generator=self.generator, device=self.device)
        return self._rows(idx)[None]

    def get_state(self) -> torch.Tensor:
        return self.generator.get_state()

    def set_state(self, state: torch.Tensor) -> None:
        if not isinstance(state, torch.Tensor) or state.dtype != torch.uint8 or state.ndim != 1:
            raise ValueError("a data-stream state must be a uint8 tensor from get_state() of a shared source")
        try:
            self.generator.set_state(state.cpu().clone())
        except RuntimeError as e:
            raise ValueError(f"the data-stream state does not fit this source's generator on {self.device}: {e}") from None

    def subset(self, index: Any) -> "Activations":
        """A shared source serves every instance: the same source (rewound by the trainer)."""
        return self

    def spec(self) -> dict[str, Any]:
        return {"kind": "activations", "path": self.path, "n_rows": self.n_rows, "dim": self.dim,
                "holdout": self.holdout, "n_train": self.n_train, "n_heldout": self.n_heldout, "seed": self.seed}

    # -------------------------------------------------------------- evaluation
    def heldout(self) -> "HeldOut | None":
        """A source over the held-out rows, yielding them in order (for evaluation); None with
        ``holdout = 0`` (then the metrics are taken on training rows, as asked)."""
        return HeldOut(self) if self.n_heldout else None


class HeldOut:
    """The held-out rows of an :class:`Activations` source, in file order: ``sample(B)``
    returns the next B rows (wrapping around after the last one); ``len()`` is their count."""

    n_instances = 1
    per_instance = False
    shared = True

    def __init__(self, parent: Activations) -> None:
        self.parent = parent
        self.dim = parent.dim
        self.device = parent.device
        self._next = 0

    def __len__(self) -> int:
        return self.parent.n_heldout

    def sample(self, batch_size: int) -> torch.Tensor:
        batch_size = check_int("batch_size", batch_size, 1)
        n = self.parent.n_heldout
        idx = (torch.arange(batch_size) + self._next) % n + self.parent.n_train
        self._next = (self._next + batch_size) % n
        return self.parent._rows(idx)[None]

    def spec(self) -> dict[str, Any]:
        return {**self.parent.spec(), "split": "heldout"}


def as_source(data: Any, **kwargs: Any) -> Any:
    """``data`` unchanged when it is already a source (has ``sample``); a tensor or NumPy array
    (N, D), or a file path, wrapped as :class:`Activations` (``kwargs`` go to it)."""
    if hasattr(data, "sample") and hasattr(data, "n_instances"):
        return data
    if isinstance(data, (torch.Tensor, str, Path)) or type(data).__module__ == "numpy":
        return Activations(data, **kwargs)
    return data


def save_activations(path: str | Path, x: Any) -> Path:
    """Write an (N, D) array as .npy, .pt or .safetensors (key ``activations``) by the
    extension of ``path`` — the files :class:`Activations` and ``--data activations`` read."""
    p = Path(path)
    t = x if isinstance(x, torch.Tensor) else torch.as_tensor(x)
    t = t.detach().cpu().contiguous()
    ext = p.suffix.lower()
    if ext == ".npy":
        import numpy as np

        np.save(p, t.numpy())
    elif ext == ".pt":
        torch.save({SAFETENSORS_KEY: t}, p)
    elif ext == ".safetensors":
        from safetensors.torch import save_file

        save_file({SAFETENSORS_KEY: t}, str(p))
    else:
        raise ValueError(f"unknown extension {ext or '(none)'!r} for {p}; use one of {', '.join(EXTENSIONS)}")
    return p


__all__ = ["Activations", "EXTENSIONS", "HeldOut", "as_source", "open_activations", "save_activations"]
