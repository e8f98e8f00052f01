"""Run a sweep: skip what is done, pack the rest into jobs, run them on a backend, write the table.

Backends: ``local`` (in this process, or ``workers`` processes of one CPU thread each,
forked on Linux) and
``ray`` (each job a Ray task: one CPU, one GPU when CUDA is present, retried up to
``max_retries`` times when its worker dies). A job that raises fails alone: its points are
marked ``failed`` with the error in results.csv and tried again by the next run.

``DIR/results.csv`` is rewritten after every finished job, so an interrupted sweep leaves a
table of what is done; running the same spec into the same DIR again runs only the points
that are not done.

Reliability: one sweep at a time writes a folder (``DIR/.sweep.lock``, an OS lock released
when its holder dies; a second sweep is refused in one line); local workers die with the
sweep (``PR_SET_PDEATHSIG`` on Linux, and a watchdog thread polling the parent everywhere),
so a killed sweep leaves nothing running; a point once ``done`` is never marked failed
again; a packed job that fails has its points retried one per job, so a diverging point
fails alone; and a point whose final loss is not finite or grew more than tenfold from its
initial loss is ``done`` with ``converged`` = False (see
:func:`toymodels.train.converged_instances`).
"""
from __future__ import annotations

import concurrent.futures as cf
import csv
import io
import json
import math
import multiprocessing
import os
import sys
import threading
import time
from contextlib import contextmanager
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Callable, Iterator, Sequence

from ..device import worker_processes
from .jobs import MAX_PACK, Job, plan_jobs, point_id, run_job

BACKENDS = ("local", "ray")
MAX_POINTS = 100_000
"""At most this many grid points in one sweep (a bigger grid is refused before any work:
planning it and rewriting its results.csv after every job would take longer than most runs)."""
LOCK_NAME = ".sweep.lock"
METRIC_COLUMNS = {"tms": ("dimensionality",), "sae": ("l0", "fvu", "mmcs")}


@dataclass
class Point:
    """One grid point: its grid values (the table's first columns) and full config."""

    labels: dict[str, Any]
    config: dict[str, Any]

    @property
    def id(self) -> str:
        return point_id(self.config)


@dataclass
class SweepReport:
    """What a sweep did (``done``/``failed`` count jobs, ``not_converged`` points; ``retried``
    the points of failed packed jobs that ran again one per job)."""

    n_points: int
    already_done: int
    jobs: list[str] = field(default_factory=list)
    done: int = 0
    failed: int = 0
    not_converged: int = 0
    retried: int = 0
    results: Path | None = None
    seconds: float = 0.0


# ---------------------------------------------------------------------- stored results
def stored_results(out: Path) -> dict[str, dict[str, Any]]:
    """Point id -> its latest result row, from every ``jobs/<id>/results.json`` in ``out``
    (a done row wins over a failed one)."""
    found: dict[str, dict[str, Any]] = {}
    jobs = out / "jobs"
    if not jobs.is_dir():
        return found
    for f in sorted(jobs.glob("*/results.json")):
        try:
            rows = json.loads(f.read_text())
        except (OSError, ValueError):
            continue  # a damaged or half-written file: its points run again
        for row in rows if isinstance(rows, list) else []:
            if isinstance(row, dict) and "id" in row and (row.get("status") == "done" or row["id"] not in found):
                found[row["id"]] = row
    return found


def write_results(out: Path, command: str, points: Sequence[Point], grid_keys: Sequence[str],
                  results: dict[str, dict[str, Any]]) -> Path:
    """``out/results.csv``: one row per point (grid keys, loss, status, job, metrics,
    converged, instance, error, id), written atomically. Points not run yet have status ``pending``."""
    cols = [*grid_keys, "loss", "status", "job", *METRIC_COLUMNS[command], "converged", "instance", "error", "id"]
    buf = io.StringIO()
    w = csv.writer(buf, lineterminator="\n")
    w.writerow(cols)
    for p in points:
        r = results.get(p.id, {})
        row = {**{k: p.labels[k] for k in grid_keys}, "status": r.get("status", "pending"), "job": r.get("job", ""),
               "id": p.id}
        for c in ("loss", *METRIC_COLUMNS[command], "instance", "error"):
            row[c] = r.get(c, "")
        row["converged"] = _converged_cell(r)
        w.writerow([_cell(row[c]) for c in cols])
    path = out / "results.csv"
    tmp = path.with_name(f".results.csv.{os.getpid()}.tmp")
    tmp.write_text(buf.getvalue())
    os.replace(tmp, path)
    return path


def _converged_cell(r: dict[str, Any]) -> str:
    """``True``/``False`` for a done point (a row written before the column existed: judged
    by a finite loss), empty otherwise."""
    if r.get("status") != "done":
        return ""
    c = r.get("converged")
    if c is None:
        loss = r.get("loss")
        c = isinstance(loss, (int, float)) and math.isfinite(loss)
    return "True" if c else "False"


def _cell(v: Any) -> Any:
    if isinstance(v, float):
        return repr(v)
    if isinstance(v, list):
        return " ".join(str(x) for x in v)
    return v


def read_results(path: str | Path) -> list[dict[str, str]]:
    """The rows of a results.csv as dicts of strings."""
    with open(path, newline="") as f:
        return list(csv.DictReader(f))


def check_n_points(n: int, limit: int = MAX_POINTS) -> None:
    """Refuse a grid of more than ``limit`` points in one line (before it is planned)."""
    if n > limit:
        raise ValueError(f"the grid has {n} points, more than a sweep takes ({limit}); split it into several "
                         "sweeps or use fewer values per axis")


class SweepLocked(ValueError):
    """Another sweep is running into the same folder (one line naming the folder)."""


@contextmanager
def folder_lock(out: Path) -> Iterator[None]:
    """Hold ``out/.sweep.lock`` (an exclusive ``flock``, freed by the OS when the holder
    dies) while a sweep writes ``out``; raise :class:`SweepLocked` when another holds it."""
    try:
        import fcntl
    except ImportError:  # not POSIX: no lock (one sweep per folder is then the user's to keep)
        yield
        return
    fd = os.open(out / LOCK_NAME, os.O_RDWR | os.O_CREAT, 0o644)
    try:
        try:
            fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except OSError:
            raise SweepLocked(f"another sweep is running into {out} (it holds {out / LOCK_NAME}); wait for it "
                              "to finish, then rerun to finish any points it left") from None
        try:
            os.ftruncate(fd, 0)
            os.write(fd, f"{os.getpid()}\n".encode())
        except OSError:
            pass
        yield
    finally:
        os.close(fd)  # releases the lock


# ---------------------------------------------------------------------- backends
PR_SET_PDEATHSIG = 1


def _die_with_parent(parent: int) -> None:
    """Make this worker process exit when ``parent`` (the sweep) dies, however it dies:
    ``PR_SET_PDEATHSIG`` on Linux (the kernel sends SIGKILL), and everywhere a daemon thread
    that exits the process once the parent is gone (the worker is re-parented)."""
    import signal

    if sys.platform.startswith("linux"):
        try:
            import ctypes

            libc = ctypes.CDLL(None, use_errno=True)
            libc.prctl(PR_SET_PDEATHSIG, int(signal.SIGKILL), 0, 0, 0)
        except (OSError, AttributeError):
            pass

    def watch() -> None:
        while True:
            if os.getppid() != parent:
                os._exit(1)
            time.sleep(0.5)

    if os.getppid() != parent:  # the parent died before the signal was armed
        os._exit(1)
    threading.Thread(target=watch, name="toymodels-sweep-parent-watch", daemon=True).start()


def _worker_init(parent: int | None = None) -> None:
    import torch

    torch.set_num_threads(1)
    if parent is not None:
        _die_with_parent(parent)


def _local(jobs: Sequence[Job], out: Path, workers: int, device: str, on_start: Callable[[int], None],
           max_retries: int) -> Iterator[tuple[Job, list[dict[str, Any]]]]:
    if workers <= 1:
        for job in jobs:
            on_start(1)
            yield job, run_job(job.to_dict(), out, device)
        return
    with worker_processes(workers):  # the workers (started on demand) count on their share of the cores
        yield from _local_pool(jobs, out, workers, device, on_start, max_retries)


def _local_pool(jobs: Sequence[Job], out: Path, workers: int, device: str, on_start: Callable[[int], None],
                max_retries: int) -> Iterator[tuple[Job, list[dict[str, Any]]]]:
    todo = list(jobs)
    tries = 0
    while todo:
        ctx = multiprocessing.get_context(_start_method())
        broken = False
        pool = cf.ProcessPoolExecutor(max_workers=workers, mp_context=ctx, initializer=_worker_init,
                                      initargs=(os.getpid(),))
        finished = False
        try:
            futs = {pool.submit(run_job, j.to_dict(), out, device): j for j in todo}
            on_start(min(workers, len(futs)))
            for fut in cf.as_completed(futs):
                job = futs[fut]
                try:
                    rows = fut.result()
                except cf.process.BrokenProcessPool:
                    broken = True
                    continue
                todo.remove(job)
                yield job, rows
            finished = True
        finally:
            if finished:
                pool.shutdown(wait=True)
            else:  # interrupted (Ctrl-C, an error, the caller stopped): stop the workers now
                _stop_pool(pool)
        if broken:
            tries += 1
            if tries > max_retries:
                for job in todo:
                    yield job, _failed(job, f"a worker process died {tries} times running this job")
                return


def _stop_pool(pool: cf.ProcessPoolExecutor) -> None:
    """Cancel what has not started and end the workers (a job cut off mid-way resumes from
    its checkpoint on the next run), leaving no process behind."""
    procs = list((getattr(pool, "_processes", None) or {}).values())
    pool.shutdown(wait=False, cancel_futures=True)
    for proc in procs:
        try:
            proc.terminate()
        except (OSError, AttributeError):
            pass
    for proc in procs:
        try:
            proc.join(5)
            if proc.is_alive():
                proc.kill()
                proc.join(5)
        except (OSError, AttributeError, ValueError, AssertionError):
            pass


def _start_method() -> str:
    """fork where it is safe (Linux, CUDA not initialised: the workers start in milliseconds
    instead of importing torch again), else spawn."""
    import torch

    if sys.platform.startswith("linux") and not torch.cuda.is_initialized():
        return "fork"
    return "spawn"


def _failed(job: Job, error: str) -> list[dict[str, Any]]:
    return [{"id": pid, "job": job.id, "instance": i, "status": "failed", "error": error}
            for i, (pid, _) in enumerate(job.points)]


def _ray(jobs: Sequence[Job], out: Path, address: str | None, device: str, on_start: Callable[[int], None],
         max_retries: int) -> Iterator[tuple[Job, list[dict[str, Any]]]]:
    try:
        import ray
    except ImportError:
        raise ValueError("--backend ray needs Ray: pip install 'toymodels[ray]'") from None
    import torch

    if not ray.is_initialized():
        ray.init(address=address, ignore_reinit_error=True, log_to_driver=False)
    gpus = 1 if torch.cuda.is_available() or ray.cluster_resources().get("GPU", 0) > 0 else 0
    task = ray.remote(num_cpus=1, num_gpus=gpus, max_retries=max_retries)(_ray_job)
    refs = {task.remote(j.to_dict(), str(out.resolve()), device): j for j in jobs}
    pending = list(refs)
    while pending:
        on_start(min(len(pending), max(1, int(ray.cluster_resources().get("CPU", 1)))))
        ready, pending = ray.wait(pending, num_returns=1)
        for ref in ready:
            job = refs[ref]
            try:
                rows = ray.get(ref)
            except Exception as e:  # noqa: BLE001 - the task died max_retries + 1 times
                rows = _failed(job, " ".join(f"{type(e).__name__}: {e}".split())[:300])
            yield job, rows


def _ray_job(job: dict[str, Any], out: str, device: str) -> list[dict[str, Any]]:
    _worker_init()
    return run_job(job, out, device)


# ---------------------------------------------------------------------- the sweep
def memory_cap(config: dict[str, Any], device: str = "auto") -> int:
    """At most :data:`MAX_PACK` points, and no more instances than the trainer fits in one
    chunk of half the free memory (the trainer's estimate, :func:`toymodels.train.bytes_per_instance`)."""
    from ..device import resolve_device
    from ..train.loop import available_memory_bytes, bytes_per_instance
    from .jobs import _sae_config

    dev = resolve_device(device)
    try:
        if config["command"] == "tms":
            from ..models import TMSConfig, build_model

            model = build_model(TMSConfig(**{**config["model"], "n_instances": 1}), device="cpu")
        else:
            from ..sae import build_sae

            model = build_sae(_sae_config(config, 1, config["l1_coefficient"], config["k"]), device="cpu")
    except (ValueError, TypeError, KeyError):
        return 1  # a bad config: its job fails alone, with the error in the table
    fit = int(0.5 * available_memory_bytes(dev)) // max(1, bytes_per_instance(model, int(config["train"]["batch_size"])))
    return max(1, min(MAX_PACK, fit))


def run_sweep(
    command: str,
    points: Sequence[Point],
    out: str | Path,
    *,
    grid_keys: Sequence[str],
    backend: str = "local",
    workers: int = 1,
    address: str | None = None,
    device: str = "auto",
    cap: int | None = None,
    max_retries: int = 3,
    progress: bool = True,
) -> SweepReport:
    """Run every point of ``points`` not already done in ``out``; write ``out/results.csv``."""
    if backend not in BACKENDS:
        raise ValueError(f"backend must be one of {', '.join(BACKENDS)}; got {backend!r}")
    if workers < 1:
        raise ValueError(f"workers must be at least 1, got {workers}")
    t0 = time.perf_counter()
    check_n_points(len(points))
    ids: dict[str, Point] = {}
    for p in points:
        if p.id in ids:
            raise ValueError(f"grid points {ids[p.id].labels} and {p.labels} are the same point (id {p.id}); "
                             "remove one of the equal values")
        ids.setdefault(p.id, p)
    out = Path(out)
    out.mkdir(parents=True, exist_ok=True)
    with folder_lock(out):
        return _run_locked(command, points, out, grid_keys=grid_keys, backend=backend, workers=workers,
                           address=address, device=device, cap=cap, max_retries=max_retries, progress=progress,
                           t0=t0)


def _merge(results: dict[str, dict[str, Any]], rows: Sequence[dict[str, Any]]) -> None:
    """Record ``rows``; a point once done stays done (a later failure of a rerun never hides it)."""
    for row in rows:
        if results.get(row["id"], {}).get("status") == "done" and row.get("status") != "done":
            continue
        results[row["id"]] = row


def _run_locked(command: str, points: Sequence[Point], out: Path, *, grid_keys: Sequence[str], backend: str,
                workers: int, address: str | None, device: str, cap: int | None, max_retries: int, progress: bool,
                t0: float) -> SweepReport:
    results = stored_results(out)
    unique: dict[str, dict[str, Any]] = {}
    for p in points:
        unique.setdefault(p.id, p.config)
    todo = [(pid, cfg) for pid, cfg in unique.items() if results.get(pid, {}).get("status") != "done"]
    report = SweepReport(n_points=len(points), already_done=len(unique) - len(todo))
    cap_of = cap if cap is not None else (lambda cfg: memory_cap(cfg, device))
    jobs = plan_jobs(todo, cap=cap_of, workers=workers if backend == "local" else 2 * max(workers, 1))
    report.jobs = [j.id for j in jobs]
    write_results(out, command, points, grid_keys, results)
    bar = None
    if progress and jobs:
        from tqdm.auto import tqdm

        bar = tqdm(total=len(jobs), unit="job", desc=f"sweep {command}", file=sys.stderr)
    state = {"running": 0}

    def on_start(n: int) -> None:
        state["running"] = n
        if bar is not None:
            bar.set_postfix(done=report.done, failed=report.failed, running=n, refresh=True)

    def backend_run(batch: Sequence[Job]) -> Iterator[tuple[Job, list[dict[str, Any]]]]:
        return (_local(batch, out, workers, device, on_start, max_retries) if backend == "local"
                else _ray(batch, out, address, device, on_start, max_retries))

    remaining = len(jobs)
    batch: list[Job] = list(jobs)
    while batch:
        apart: list[tuple[str, dict[str, Any]]] = []
        for job, rows in backend_run(batch):
            remaining -= 1
            failed = [r for r in rows if r["status"] != "done"]
            if failed and len(job.points) > 1:
                # One bad point (a diverging lr, a bad value) must not fail its job-mates: each
                # point of the failed job runs again alone (a point's result does not depend on
                # its job, so a healthy one gets the same answer as packed).
                apart.extend(p for p in job.points if p[0] in {r["id"] for r in failed})
                _merge(results, [r for r in rows if r["status"] == "done"])
            else:
                _merge(results, rows)
                if failed:
                    report.failed += 1
                else:
                    report.done += 1
            write_results(out, command, points, grid_keys, results)
            if bar is not None:
                bar.update(1)
                bar.set_postfix(done=report.done, failed=report.failed, running=min(state["running"], remaining),
                                refresh=True)
        batch = plan_jobs(apart, cap=1) if apart else []
        report.retried += len(apart)
        report.jobs += [j.id for j in batch]
        remaining += len(batch)
        if bar is not None and batch:
            bar.total += len(batch)
    if bar is not None:
        bar.close()
    report.not_converged = sum(1 for pid in unique if results.get(pid, {}).get("status") == "done"
                               and results[pid].get("converged") is False)
    report.results = write_results(out, command, points, grid_keys, results)
    report.seconds = time.perf_counter() - t0
    return report
