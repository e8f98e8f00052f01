"""Choosing the device: ``auto`` picks CUDA when present, else the CPU."""
from __future__ import annotations

import os
import threading
from concurrent.futures import ThreadPoolExecutor
from contextlib import contextmanager
from typing import Callable, Iterator

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



WORKERS_ENV = "TOYMODELS_WORKER_PROCESSES"
"""Set (by :func:`worker_processes`) while a pool of N worker processes shares the machine."""


def core_share() -> int:
    """The cores this process may count on: :func:`usable_cores`, divided among the worker
    processes of a pool when it is one of them (:func:`worker_processes`), at least 1."""
    import os

    raw = os.environ.get(WORKERS_ENV, "").strip()
    workers = int(raw) if raw.isdigit() and int(raw) > 0 else 1
    return max(1, usable_cores() // workers)


@contextmanager
def worker_processes(n: int) -> Iterator[None]:
    """While a pool of ``n`` worker processes is started and runs: each worker (spawned or
    forked inside the block inherits the environment) counts on its share of the cores
    (:func:`core_share`), e.g. before giving a data thread a core of its own."""
    import os

    old = os.environ.get(WORKERS_ENV)
    os.environ[WORKERS_ENV] = str(max(1, int(n)))
    try:
        yield
    finally:
        if old is None:
            os.environ.pop(WORKERS_ENV, None)
        else:
            os.environ[WORKERS_ENV] = old

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


IDLE_SLACK = 0.2
"""Cores :func:`choose_threads` rounds up by: /proc/stat counts in ticks of 1/100 s, so over
the 0.1 s window one tick is 0.1 core of noise, and 1.9 idle cores of 2 are both."""


def idle_cores(interval: float = 0.1) -> float:
    """How many cores are free for this process now: the machine's core count minus the
    cores other processes kept busy over ``interval`` seconds (/proc/stat's busy share, less
    this process's own CPU time in that window — its own idle worker threads, still spinning
    after a parallel region, are not a neighbour; the 1-minute load average when /proc/stat
    is missing), capped at :func:`usable_cores`."""
    import os
    import time

    total_cores = os.cpu_count() or 1
    a = _cpu_times()
    if a is not None:
        own0, t0 = _own_cpu_seconds(), time.perf_counter()
        time.sleep(interval)
        b = _cpu_times()
        own1, t1 = _own_cpu_seconds(), time.perf_counter()
        if b is not None and b[1] > a[1]:
            busy = (1.0 - (b[0] - a[0]) / (b[1] - a[1])) * total_cores
            own = (own1 - own0) / max(t1 - t0, 1e-9)
            idle = total_cores - max(0.0, busy - own)
            return max(0.0, min(float(usable_cores()), idle))
    try:
        load = os.getloadavg()[0]
    except (AttributeError, OSError):
        return float(usable_cores())
    return max(0.0, min(float(usable_cores()), total_cores - load))


def _own_cpu_seconds() -> float:
    """CPU seconds (user + system) this process has used, all its threads."""
    import os

    t = os.times()
    return t.user + t.system


def choose_threads(requested: str | int | None = "auto", *, work: float | None = None, jobs: int = 1) -> int:
    """The number of torch CPU threads to use.

    Rule: an explicit number wins. ``auto`` gives 1 thread when the work per step is small
    (``work`` multiply-adds < :data:`SMALL_WORK`, or ``work=None`` for callers whose models
    are all toy-sized: ``python -m theory``, ``python -m figures``); otherwise the idle cores
    this process may use (:func:`idle_cores` plus :data:`IDLE_SLACK`, rounded down) shared among ``jobs`` worker
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
    return max(1, int(idle_cores() + IDLE_SLACK) // max(1, jobs))


def set_threads(requested: str | int | None = "auto", *, work: float | None = None, jobs: int = 1) -> int:
    """:func:`choose_threads`, applied with ``torch.set_num_threads``; returns the number."""
    n = choose_threads(requested, work=work, jobs=jobs)
    if torch.get_num_threads() != n:
        torch.set_num_threads(n)
    return n


# ---------------------------------------------------------------------- instance lanes
def _one_torch_thread() -> None:
    # A thread reads its torch (OpenMP) thread count from the process default the first time
    # it asks: ask first, or that read would replace the 1 set here.
    torch.get_num_threads()
    torch.set_num_threads(1)


def one_thread_pool(n: int, name: str) -> "ThreadPoolExecutor":
    """A pool of ``n`` threads (named ``name``-i), started now, each running torch on one
    thread; the caller keeps its own torch thread count."""
    main = torch.get_num_threads()  # fixes the calling thread's own setting first
    pool = ThreadPoolExecutor(n, thread_name_prefix=name, initializer=_one_torch_thread)
    barrier = threading.Barrier(n)  # start all n threads now (their initialisers included)
    for f in [pool.submit(barrier.wait) for _ in range(n)]:
        f.result()
    # torch.set_num_threads in the initialiser also set the process default that threads read
    # when they first run parallel code: put the caller's back, so only the pool runs with one.
    torch.set_num_threads(main)
    return pool


class SharedPool:
    """A process-wide :func:`one_thread_pool`, started on first use, replaced by a larger one
    when more threads are asked for, and forgotten in a forked child (which has the parent's
    record of the threads, not the threads: submitting there would wait forever; the child
    starts its own on first use). A replaced pool is not shut down: a caller that got it
    before may still be submitting to it; its threads end once nobody holds it."""

    def __init__(self, name: str) -> None:
        self.name = name
        self._forget()
        if hasattr(os, "register_at_fork"):
            os.register_at_fork(after_in_child=self._forget)

    def _forget(self) -> None:
        self._pool: ThreadPoolExecutor | None = None
        self._size = 0
        self._lock = threading.Lock()

    def get(self, n: int = 1) -> ThreadPoolExecutor:
        """The pool, with at least ``n`` threads."""
        with self._lock:
            if self._pool is None or self._size < n:
                self._pool, self._size = one_thread_pool(n, self.name), n
            return self._pool


_LANES = SharedPool("toymodels-lane")


def lane_split(n_items: int, lanes: int) -> list[tuple[int, int]]:
    """``range(n_items)`` cut into at most ``lanes`` contiguous, non-empty (start, stop) parts
    of sizes differing by at most one."""
    k = max(1, min(int(lanes), int(n_items)))
    q, r = divmod(int(n_items), k)
    bounds, s = [], 0
    for j in range(k):
        e = s + q + (1 if j < r else 0)
        bounds.append((s, e))
        s = e
    return bounds


def run_in_lanes(fn: Callable[[int, int, int], None], n_items: int, lanes: int | None = None) -> None:
    """Call ``fn(lane, start, stop)`` for the parts of :func:`lane_split` (``n_items``,
    ``lanes``; default: the calling thread's torch thread count), side by side, one thread
    per part, each running torch on one thread (one part alone runs in the caller).

    For work made of many small, independent pieces (a toy model's instances): torch's own
    threads would open a parallel region per small kernel, and split each piece's reductions
    differently per thread count; lanes run each piece whole on one thread, so its bits do
    not depend on the number of lanes. ``fn`` must write disjoint outputs per part. Each part
    runs in the caller's autograd mode (torch's grad mode is per thread: a lane would otherwise
    record gradients under a caller's ``no_grad``). The first exception a part raises is raised
    here, after every part has finished. Called inside a lane (one torch thread) it runs in that
    lane, so nested calls cannot wait on the pool."""
    parts = lane_split(n_items, torch.get_num_threads() if lanes is None else lanes)
    if len(parts) == 1:
        fn(0, *parts[0])
        return
    grad = torch.is_grad_enabled()

    def part(j: int, s: int, e: int) -> None:
        with torch.set_grad_enabled(grad):
            fn(j, s, e)

    pool = _LANES.get(len(parts))
    futures = [pool.submit(part, j, s, e) for j, (s, e) in enumerate(parts)]
    errors = []
    for f in futures:
        try:
            f.result()
        except BaseException as e:  # noqa: BLE001 - re-raised below, once every part is done
            errors.append(e)
    if errors:
        raise errors[0]
