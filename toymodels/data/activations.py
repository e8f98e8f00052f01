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

A file is part of the run's identity: :meth:`Activations.spec` (recorded in the run's
config.json and compared on resume and on a sweep's rerun) holds its fingerprint — size and a
BLAKE2b hash of its bytes (all of them up to 64 MiB; above, 64 blocks of 64 KiB spread over
the file plus its modification time) — so a resume on a changed file is refused naming
``data.file.…``. While a source reads, each batch first checks the file's size, modification
time and inode against those it opened: a file changed or truncated under a running job
raises ValueError naming the file (instead of training on other data, or a SIGBUS from the
memory mapping). A tensor or array in memory is fingerprinted the same way by its bytes.
"""
from __future__ import annotations

import hashlib
import json
import math
import os
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
FULL_HASH_BYTES = 64 * 2**20
"""Files (and in-memory arrays) up to this size are hashed whole; larger ones by samples."""
_SAMPLE_BLOCKS, _SAMPLE_BYTES = 64, 64 * 1024
_CHECK_ELEMENTS = 2**24
"""At most this many values per chunk of the finiteness scan (fewer rows for wide arrays)."""


# ---------------------------------------------------------------------- identity
def _stat_key(path: Path) -> tuple[int, int, int]:
    st = os.stat(path)
    return (int(st.st_size), int(st.st_mtime_ns), int(st.st_ino))


def file_fingerprint(path: str | Path) -> dict[str, Any]:
    """A cheap identity of a file's contents: ``size``, ``blake2b`` of its bytes and
    ``hashed`` ("all" up to :data:`FULL_HASH_BYTES`; else "sampled": 64 blocks of 64 KiB
    evenly spread, first and last included, and then ``mtime_ns`` too)."""
    p = Path(path)
    try:
        size = os.stat(p).st_size
        h = hashlib.blake2b(digest_size=16)
        with open(p, "rb") as fh:
            if size <= FULL_HASH_BYTES:
                for piece in iter(lambda: fh.read(2**20), b""):
                    h.update(piece)
                return {"size": int(size), "hashed": "all", "blake2b": h.hexdigest()}
            last = max(0, size - _SAMPLE_BYTES)
            for j in range(_SAMPLE_BLOCKS):
                fh.seek(last * j // (_SAMPLE_BLOCKS - 1))
                h.update(fh.read(_SAMPLE_BYTES))
        return {"size": int(size), "hashed": "sampled", "blake2b": h.hexdigest(), "mtime_ns": int(os.stat(p).st_mtime_ns)}
    except OSError as e:
        raise _fail(p, f"cannot be read ({e.strerror or e})") from None


def tensor_fingerprint(x: torch.Tensor) -> dict[str, Any]:
    """The in-memory counterpart of :func:`file_fingerprint`: shape, dtype and a BLAKE2b
    hash of the bytes (all up to :data:`FULL_HASH_BYTES`, else 64 evenly spread rows)."""
    t = x.detach()
    n = int(t.shape[0]) if t.ndim else 1
    nbytes = t.numel() * t.element_size()
    if nbytes > FULL_HASH_BYTES and n > _SAMPLE_BLOCKS:
        t = t[torch.linspace(0, n - 1, _SAMPLE_BLOCKS).round().long()]
    t = t.to("cpu").contiguous().reshape(-1)
    h = hashlib.blake2b(t.view(torch.uint8).numpy().tobytes() if t.numel() else b"", digest_size=16)
    return {"shape": list(x.shape), "dtype": str(x.dtype).replace("torch.", ""),
            "hashed": "all" if nbytes <= FULL_HASH_BYTES or n <= _SAMPLE_BLOCKS else "sampled", "blake2b": h.hexdigest()}


# ---------------------------------------------------------------------- reading
def _fail(path: Path, what: str) -> ValueError:
    return ValueError(f"activations file {path}: {what}")


def _open_npy(path: Path) -> torch.Tensor:
    import numpy as np

    try:
        arr = np.load(path, mmap_mode="r", allow_pickle=False)
    except Exception as e:  # not an .npy, truncated, or an object array
        raise _fail(path, f"not a readable .npy array ({' '.join(str(e).split())[:120]})") from None
    if arr.dtype.kind != "f" or arr.dtype.itemsize not in (2, 4, 8):
        raise _fail(path, f"holds dtype {arr.dtype}, need a floating-point (float16, float32 or float64) array")
    if not arr.dtype.isnative:
        raise _fail(path, f"holds big-endian {arr.dtype.newbyteorder('=')} values; save it little-endian "
                    "(np.save(path, x.astype(x.dtype.newbyteorder('<'))))")
    if arr.ndim != 2:
        raise _fail(path, f"shape {tuple(arr.shape)}; need a 2-d (N samples, D dims) array")
    try:
        return _mmap_view(arr)
    except Exception as e:  # a last guard: never a bare traceback without the file's name
        raise _fail(path, f"cannot be read as a tensor ({' '.join(str(e).split())[:120]})") from None


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
    if not isinstance(header, dict):
        raise _fail(path, f"not a readable safetensors file (its header is a {type(header).__name__}, not an object)")
    if SAFETENSORS_KEY not in header:
        keys = sorted(str(k) for k in header if k != "__metadata__")
        raise _fail(path, f"has no tensor named {SAFETENSORS_KEY!r} (it holds {keys[:8]})")
    info = header[SAFETENSORS_KEY]
    if not isinstance(info, dict) or not {"dtype", "shape", "data_offsets"} <= set(info):
        raise _fail(path, f"has a damaged header: tensor {SAFETENSORS_KEY!r} needs dtype, shape and data_offsets")
    dtype = _ST_DTYPES.get(info["dtype"]) if isinstance(info["dtype"], str) else None
    if dtype is None:
        raise _fail(path, f"tensor {SAFETENSORS_KEY!r} has dtype {info['dtype']!r}, need F16, BF16, F32 or F64")
    shape_raw, offs = info["shape"], info["data_offsets"]
    if not isinstance(shape_raw, list) or not all(type(v) is int and v >= 0 for v in shape_raw):
        raise _fail(path, f"has a damaged header: shape {shape_raw!r} is not a list of non-negative integers")
    if not isinstance(offs, list) or len(offs) != 2 or not all(type(v) is int and v >= 0 for v in offs) or offs[1] < offs[0]:
        raise _fail(path, f"has a damaged header: data_offsets {offs!r} is not [start, end] with 0 <= start <= end")
    shape = tuple(shape_raw)
    if len(shape) != 2:
        raise _fail(path, f"shape {shape}; need a 2-d (N samples, D dims) array")
    start, end = offs
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
    if not obj.is_floating_point() or obj.is_complex():
        raise _fail(path, f"holds dtype {obj.dtype}, need a floating-point tensor")
    if obj.ndim != 2:
        raise _fail(path, f"shape {tuple(obj.shape)}; need a 2-d (N samples, D dims) array")
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
    try:
        return {".npy": _open_npy, ".pt": _open_pt, ".safetensors": _open_safetensors}[ext](p)
    except ValueError:
        raise
    except (RuntimeError, MemoryError, OSError) as e:  # e.g. DefaultCPUAllocator: not enough memory
        raise _fail(p, f"cannot be read ({' '.join(str(e).split())[:120]})") from None


def _check_values(x: torch.Tensor, name: str, chunk_rows: int, guard: Any = None) -> None:
    """Raise ValueError naming the first row with a NaN or an infinity (chunked scan, at most
    :data:`_CHECK_ELEMENTS` values a chunk; ``guard()`` runs before each chunk is read)."""
    rows = max(1, min(chunk_rows, _CHECK_ELEMENTS // max(1, int(x.shape[1]))))
    for s in range(0, x.shape[0], rows):
        if guard is not None:
            guard()
        try:
            part = x[s : s + rows]
            bad = ~torch.isfinite(part.float() if part.dtype in (torch.float16, torch.bfloat16) else part)
            hit = bool(bad.any())
        except (RuntimeError, MemoryError) as e:
            raise ValueError(f"{name}: cannot be scanned in memory ({' '.join(str(e).split())[:120]})") from None
        if hit:
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
        self._stat: tuple[int, int, int] | None = None
        if isinstance(data, (str, Path)):
            self.path = str(data)
            name = f"activations file {data}"
            p = Path(data)
            if p.suffix.lower() in EXTENSIONS and p.is_file():
                self._stat = _stat_key(p)
                self.fingerprint = file_fingerprint(p)
            x = open_activations(data)
            self._check_unchanged()
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
        if self.path is None:
            self.fingerprint = tensor_fingerprint(x)
        if _check:
            _check_values(x, name, self.chunk_rows, self._check_unchanged)
        self._check_unchanged()
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

    def _check_unchanged(self) -> None:
        """ValueError naming the file when it changed (size, modification time or inode)
        since this source opened it; a stat call, made before every read of the file."""
        if self.path is None or self._stat is None:
            return
        try:
            now = _stat_key(Path(self.path))
        except OSError:
            raise ValueError(f"activations file {self.path}: was removed while in use; restore it and resume") from None
        if now != self._stat:
            what = ("truncated" if now[0] < self._stat[0] else "changed size") if now[0] != self._stat[0] else (
                "replaced" if now[2] != self._stat[2] else "rewritten (modification time changed)")
            raise ValueError(f"activations file {self.path}: was {what} while in use "
                             f"(size {self._stat[0]} -> {now[0]} bytes); the run stopped rather than read other data")

    def _rows(self, idx: torch.Tensor) -> torch.Tensor:
        """Rows ``idx`` (CPU or device long tensor) as float32 on the device."""
        self._check_unchanged()
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
                "holdout": self.holdout, "n_train": self.n_train, "n_heldout": self.n_heldout, "seed": self.seed,
                "file" if self.path is not None else "array": dict(self.fingerprint)}

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


__all__ = ["Activations", "EXTENSIONS", "HeldOut", "as_source", "file_fingerprint", "open_activations",
           "save_activations", "tensor_fingerprint"]
