"""Sweep overheads: the cost of a job beyond its training, and 1 vs 2 local workers.

1. Overhead per job (local backend, one process): a grid of ``--jobs`` points run as one job
   each (``max_pack = 1``) with 1 training step and few evaluation samples, so the time is
   nearly all per-job work (model and source built, run folder, checkpoint, evaluation,
   results.json and results.csv); the target is <= 0.5 s per job.
2. Workers: the same ``--jobs``-job grid of small toy models (5 -> 2, ``--steps`` steps,
   batch 256) with 1 and with 2 worker processes; the target on a 2-core machine is a
   speedup >= 1.6. The 2-worker time includes starting the workers (spawn, torch import).

Times need a quiet machine: another process on the cores slows every row unevenly.
``--overhead-only`` runs part 1 alone (``make bench-check``). Besides the table the script
prints one JSON line starting with ``{"bench": "sweep"`` (``benchmarks/check.py`` reads it).

Run: ``.venv/bin/python benchmarks/bench_sweep.py`` (``--tiny`` checks that it works in seconds).
"""
from __future__ import annotations

import argparse
import shutil
import sys
import tempfile
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))
from _common import emit, load_average, table  # noqa: E402

from toymodels.sweep import Point, run_sweep  # noqa: E402


def grid(n_jobs: int, steps: int, eval_samples: int) -> list[Point]:
    """``n_jobs`` toy-model points, 5 -> 2, one per (feature probability, seed)."""
    points = []
    for j in range(n_jobs):
        p = 0.02 * (1.1 ** (j // 4))
        cfg = {"command": "tms", "model": {"n_features": 5, "d_hidden": 2, "kind": "relu-output"},
               "importance_decay": 0.9, "feature_probability": round(p, 6), "seed": j % 4,
               "train": {"steps": steps, "batch_size": 256, "lr": 1e-3, "eval_samples": eval_samples,
                         "checkpoint_every": 1000, "log_every": 10}}
        points.append(Point({"job": j}, cfg))
    return points


def timed_sweep(points: list[Point], workers: int) -> float:
    out = Path(tempfile.mkdtemp(prefix="bench-sweep-"))
    try:
        t0 = time.perf_counter()
        report = run_sweep("tms", points, out, grid_keys=["job"], workers=workers, cap=1, device="cpu", progress=False)
        seconds = time.perf_counter() - t0
        if report.failed or report.done != len(points):
            raise SystemExit(f"benchmark sweep failed: {report}")
        return seconds
    finally:
        shutil.rmtree(out, ignore_errors=True)


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--jobs", type=int, default=32, help="jobs in each grid (default 32)")
    ap.add_argument("--steps", type=int, default=2000, help="training steps of the workers grid (default 2000)")
    ap.add_argument("--tiny", action="store_true", help="4 jobs of 20 steps: check that the benchmark runs")
    ap.add_argument("--overhead-only", action="store_true", help="measure the overhead per job only (no worker grids)")
    args = ap.parse_args()
    jobs, steps = (4, 20) if args.tiny else (args.jobs, args.steps)
    if jobs < 1 or steps < 1:
        ap.error(f"--jobs and --steps must be >= 1, got {jobs} and {steps}")

    load0 = load_average()
    timed_sweep(grid(2, 1, 64), 1)  # warm-up: imports, first-call costs
    overhead = timed_sweep(grid(jobs, 1, 64), 1) / jobs
    rows = [["overhead per job (1 step, local)", f"{overhead:.3f} s", "<= 0.5 s"]]
    results = [{"measure": "overhead_per_job_s", "value": overhead, "jobs": jobs}]
    if not args.overhead_only:
        one = timed_sweep(grid(jobs, steps, 4096), 1)
        two = timed_sweep(grid(jobs, steps, 4096), 2)
        rows += [
            [f"1 worker, {steps} steps/job", f"{one:.1f} s", ""],
            [f"2 workers, {steps} steps/job", f"{two:.1f} s", ""],
            ["speedup 2 vs 1 workers", f"{one / two:.2f}x", ">= 1.6x on 2 cores"],
        ]
        results += [{"measure": "one_worker_s", "value": one, "jobs": jobs, "steps": steps},
                    {"measure": "two_workers_s", "value": two, "jobs": jobs, "steps": steps}]
    print(f"{jobs} jobs; toy models 5 -> 2, batch 256; one CPU thread per worker")
    print(table(["measure", "value", "target"], rows))
    print(f"(numbers need a quiet machine: other processes on the cores skew every row; "
          f"load average {load0:.1f} -> {load_average():.1f})")
    emit("sweep", results, load_average=[load0, load_average()])


if __name__ == "__main__":
    main()
