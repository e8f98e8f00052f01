"""Run a sweep: skip what is done, pack the rest into jobs, run them on a backend, write the table.

Backends: ``local`` (in this process, or ``workers`` processes of one CPU thread each,
forked on Linux) and
``ray`` (each job a Ray task: one CPU, one GPU when CUDA is present, retried up to
``max_retries`` times when its worker dies). A job that raises fails alone: its points are
marked ``failed`` with the error in results.csv and tried again by the next run.

``DIR/results.csv`` is rewritten after every finished job, so an interrupted sweep leaves a
table of what is done; running the same spec into the same DIR again runs only the points
that are not done.
"""
from __future__ import annotations

import concurrent.futures as cf
import csv
import io
import json
import multiprocessing
import os
import sys
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Callable, Iterator, Sequence

from .jobs import MAX_PACK, Job, plan_jobs, point_id, run_job

BACKENDS = ("local", "ray")
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
    """What a sweep did."""

    n_points: int
    already_done: int
    jobs: list[str] = field(default_factory=list)
    done: int = 0
    failed: int = 0
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
    instance, error, id), written atomically. Points not run yet have status ``pending``."""
    cols = [*grid_keys, "loss", "status", "job", *METRIC_COLUMNS[command], "instance", "error", "id"]
    buf = io.StringIO()
    w = csv.writer(buf, lineterminator="\n")
    w.writerow(cols)
    for p in points:
        r = results.get(p.id, {})
        row = {**{k: p.labels[k] for k in grid_keys}, "status": r.get("status", "pending"), "job": r.get("job", ""),
               "id": p.id}
        for c in ("loss", *METRIC_COLUMNS[command], "instance", "error"):
            row[c] = r.get(c, "")
        w.writerow([_cell(row[c]) for c in cols])
    path = out / "results.csv"
    tmp = path.with_name(f".results.csv.{os.getpid()}.tmp")
    tmp.write_text(buf.getvalue())
    os.replace(tmp, path)
    return path


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


# ---------------------------------------------------------------------- backends
def _worker_init() -> None:
    import torch

    torch.set_num_threads(1)


def _local(jobs: Sequence[Job], out: Path, workers: int, device: str, on_start: Callable[[int], None],
           max_retries: int) -> Iterator[tuple[Job, list[dict[str, Any]]]]:
    if workers <= 1:
        for job in jobs:
            on_start(1)
            yield job, run_job(job.to_dict(), out, device)
        return
    todo = list(jobs)
    tries = 0
    while todo:
        ctx = multiprocessing.get_context(_start_method())
        broken = False
        with cf.ProcessPoolExecutor(max_workers=workers, mp_context=ctx, initializer=_worker_init) as pool:
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
        if broken:
            tries += 1
            if tries > max_retries:
                for job in todo:
                    yield job, _failed(job, f"a worker process died {tries} times running this job")
                return


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
    out = Path(out)
    out.mkdir(parents=True, exist_ok=True)
    results = stored_results(out)
    unique: dict[str, dict[str, Any]] = {}
    for p in points:
        unique.setdefault(p.id, p.config)
    todo = [(pid, cfg) for pid, cfg in unique.items() if results.get(pid, {}).get("status") != "done"]
    report = SweepReport(n_points=len(points), already_done=len(unique) - len(todo))
    jobs = plan_jobs(todo, cap=cap if cap is not None else (lambda cfg: memory_cap(cfg, device)),
                     workers=workers if backend == "local" else 2 * max(workers, 1))
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

    run = (_local(jobs, out, workers, device, on_start, max_retries) if backend == "local"
           else _ray(jobs, out, address, device, on_start, max_retries))
    remaining = len(jobs)
    for job, rows in run:
        remaining -= 1
        for row in rows:
            results[row["id"]] = row
        if all(r["status"] == "done" for r in rows):
            report.done += 1
        else:
            report.failed += 1
        write_results(out, command, points, grid_keys, results)
        if bar is not None:
            bar.update(1)
            bar.set_postfix(done=report.done, failed=report.failed, running=min(state["running"], remaining), refresh=True)
    if bar is not None:
        bar.close()
    report.results = write_results(out, command, points, grid_keys, results)
    report.seconds = time.perf_counter() - t0
    return report
