"""Choosing the device: ``auto`` picks CUDA when present, else the CPU."""
from __future__ import annotations

import torch

DEVICE_CHOICES = ("auto", "cpu", "cuda")


def resolve_device(device: str | torch.device | None = "auto") -> torch.device:
    """Turn ``auto``/``cpu``/``cuda``/``cuda:N`` (or a ``torch.device``) into a usable device.

    Raises ``ValueError`` for an unknown name or for CUDA on a machine without it.
    """
    if isinstance(device, torch.device):
        dev = device
    else:
        name = "auto" if device is None else str(device)
        if name == "auto":
            return torch.device("cuda" if torch.cuda.is_available() else "cpu")
        if name != "cpu" and not name.startswith("cuda"):
            raise ValueError(f"device must be one of auto, cpu, cuda or cuda:N; got {name!r}")
        try:
            dev = torch.device(name)
        except RuntimeError:
            raise ValueError(f"device must be one of auto, cpu, cuda or cuda:N; got {name!r}") from None
    if dev.type == "cuda":
        if not torch.cuda.is_available():
            raise ValueError(f"device {str(dev)!r} was asked for but CUDA is not available here; use 'cpu' or 'auto'")
        if dev.index is not None and dev.index >= torch.cuda.device_count():
            raise ValueError(f"device {str(dev)!r}: only {torch.cuda.device_count()} CUDA device(s) present")
    elif dev.type != "cpu":
        raise ValueError(f"device must be cpu or cuda, got {str(dev)!r}")
    return dev


def make_generator(seed: int, device: torch.device) -> torch.Generator:
    """A ``torch.Generator`` on ``device`` seeded with ``seed``."""
    g = torch.Generator(device=device)
    g.manual_seed(int(seed))
    return g


def derive_seed(seed: int, *keys: object) -> int:
    """A deterministic 63-bit seed from ``seed`` and any labels (e.g. a chunk index), so
    independent streams never share a seed by accident."""
    import hashlib

    h = hashlib.sha256(repr((int(seed),) + keys).encode()).digest()
    return int.from_bytes(h[:8], "little") & ((1 << 63) - 1)


# ---------------------------------------------------------------------- CPU threads
SMALL_WORK = 1 << 23
"""Multiply-adds per training step below which one CPU thread is used: torch's intra-op
threads cost more than they save on toy-sized matrices, and they spin-wait, so a model this
small slows down 10-50x when another process holds one of the cores."""


def parse_threads(value: str | int | None) -> int | None:
    """``auto``/None -> None (decide later), else a positive integer; ValueError otherwise."""
    if value is None or str(value).strip().lower() == "auto":
        return None
    try:
        n = int(str(value).strip())
    except ValueError:
        raise ValueError(f"threads must be a positive integer or 'auto', got {value!r}") from None
    if n < 1:
        raise ValueError(f"threads must be a positive integer or 'auto', got {n}")
    return n


def usable_cores() -> int:
    """Cores this process may run on (its affinity set), else ``os.cpu_count()``."""
    import os

    try:
        return max(1, len(os.sched_getaffinity(0)))
    except (AttributeError, OSError):
        return max(1, os.cpu_count() or 1)


def _cpu_times() -> tuple[int, int] | None:
    try:
        with open("/proc/stat") as f:
            parts = f.readline().split()
    except OSError:
        return None
    if not parts or parts[0] != "cpu":
        return None
    vals = [int(v) for v in parts[1:]]
    idle = vals[3] + (vals[4] if len(vals) > 4 else 0)  # idle + iowait
    return idle, sum(vals[:8])


def idle_cores(interval: float = 0.1) -> float:
    """How many cores are idle now: the idle share of /proc/stat over ``interval`` seconds
    times the machine's core count (the 1-minute load average when /proc/stat is missing),
    capped at :func:`usable_cores`."""
    import os
    import time

    total_cores = os.cpu_count() or 1
    a = _cpu_times()
    if a is not None:
        time.sleep(interval)
        b = _cpu_times()
        if b is not None and b[1] > a[1]:
            idle = (b[0] - a[0]) / (b[1] - a[1]) * total_cores
            return max(0.0, min(float(usable_cores()), idle))
    try:
        load = os.getloadavg()[0]
    except (AttributeError, OSError):
        return float(usable_cores())
    return max(0.0, min(float(usable_cores()), total_cores - load))


def choose_threads(requested: str | int | None = "auto", *, work: float | None = None, jobs: int = 1) -> int:
    """The number of torch CPU threads to use.

    Rule: an explicit number wins. ``auto`` gives 1 thread when the work per step is small
    (``work`` multiply-adds < :data:`SMALL_WORK`, or ``work=None`` for callers whose models
    are all toy-sized: ``python -m theory``, ``python -m figures``); otherwise the idle cores
    this process may use (:func:`idle_cores`, rounded down) shared among ``jobs`` worker
    processes, at least 1. ``OMP_NUM_THREADS`` set in the environment counts as explicit.
    """
    import os

    n = parse_threads(requested)
    if n is not None:
        return n
    env = os.environ.get("OMP_NUM_THREADS", "").strip()
    if env.isdigit() and int(env) > 0:
        return max(1, int(env) // max(1, jobs))
    if work is None or work < SMALL_WORK:
        return 1
    return max(1, int(idle_cores()) // max(1, jobs))


def set_threads(requested: str | int | None = "auto", *, work: float | None = None, jobs: int = 1) -> int:
    """:func:`choose_threads`, applied with ``torch.set_num_threads``; returns the number."""
    n = choose_threads(requested, work=work, jobs=jobs)
    if torch.get_num_threads() != n:
        torch.set_num_threads(n)
    return n
