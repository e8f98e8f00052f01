"""``python -m figures [--preset quick|full|tiny] [--only figNN] [--jobs N]``: regenerate the figures.

Each module ``figures/figNN_*.py`` defines ``PRESETS`` (tiny, quick, full) and
``make(cfg, out_dir, device) -> list[Path]``. The figures go under the working directory,
never into the package: the quick preset to ``out/figures/``, tiny and full to
``out/figures/<preset>/``, unless ``--out`` is given (``make gallery`` passes ``--out gallery``
to refresh the README's tracked gallery). With ``--jobs N`` the scripts run in N worker
processes. Each script prints a line when it starts and when it ends; the timings go to the
console and ``<out>/timings.json`` (ignored by git, in the gallery too), never into the
figures. ``--threads auto`` (the default) gives each worker one CPU thread: the figures'
models are toy-sized, and one thread is both fastest and unaffected by another busy process
(see :func:`toymodels.device.choose_threads`).
"""
from __future__ import annotations

import argparse
import concurrent.futures
import json
import sys
import time
from pathlib import Path

from toymodels.cli import check_output_dir
from toymodels.device import DEVICE_CHOICES, choose_threads, resolve_device

from .common import PRESET_NAMES, default_out
from .runner import figure_modules, timed_run


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(prog="python -m figures", description=__doc__.splitlines()[0])
    p.add_argument("--preset", choices=PRESET_NAMES, default="quick")
    p.add_argument("--only", default="", help="run the figure modules whose name starts with this")
    p.add_argument("--out", type=Path, default=None,
                   help="output folder (default, under the working directory: out/figures for quick, "
                        "out/figures/<preset> otherwise)")
    p.add_argument("--device", choices=DEVICE_CHOICES, default="auto")
    p.add_argument("--jobs", type=int, default=1, help="worker processes (default 1)")
    p.add_argument("--threads", default="auto", help="CPU threads per worker: a number, or auto (default: 1)")
    args = p.parse_args(argv)
    names = [n for n in figure_modules() if n.startswith(args.only)]
    if not names:
        print(f"no figure module starts with {args.only!r}", file=sys.stderr)
        return 2
    out = args.out if args.out is not None else default_out(args.preset)
    try:
        if args.jobs < 1:
            raise ValueError(f"--jobs must be a positive integer, got {args.jobs}")
        check_output_dir(out)
        resolve_device(args.device)  # 'cuda' without CUDA: one line before any work, not a worker's traceback
        jobs = min(args.jobs, len(names))
        threads = choose_threads(args.threads, jobs=jobs)
    except ValueError as e:
        print(f"python -m figures: error: {e}", file=sys.stderr)
        return 2
    n = len(names)
    print(f"{n} figure script(s), {args.preset} preset, {jobs} job(s) x {threads} thread(s) -> {out}", flush=True)
    timings: dict[str, float] = {}

    def done(k: int, name: str, secs: float, paths: list[Path]) -> None:
        timings[name] = round(secs, 2)
        print(f"[{k}/{n}] {name:40s} {secs:6.1f} s  " + ", ".join(str(x) for x in paths), flush=True)

    t_all = time.perf_counter()
    try:
        _run_all(names, args, out, jobs, threads, done)
    except OSError as e:  # e.g. the output folder replaced by a file while the figures ran
        print(f"python -m figures: error: cannot write the figures into {out}: {e.strerror or e} "
              f"({getattr(e, 'filename', None) or out})", file=sys.stderr)
        return 2
    total = time.perf_counter() - t_all
    (Path(out) / "timings.json").write_text(json.dumps(
        {"preset": args.preset, "jobs": jobs, "threads": threads, "total_seconds": round(total, 2), "scripts": timings},
        indent=2) + "\n")
    print(f"{n} figure scripts in {total:.1f} s ({args.preset} preset, {jobs} job(s)); figures in {out}/, "
          f"timings in {Path(out) / 'timings.json'}")
    return 0


def _run_all(names: list[str], args: argparse.Namespace, out: Path, jobs: int, threads: int, done) -> None:
    """Run every figure script, here or in ``jobs`` spawned workers, calling ``done`` for each."""
    n = len(names)
    if jobs == 1:
        for k, name in enumerate(names, 1):
            print(f"[{k}/{n}] {name}: running", flush=True)
            done(k, *timed_run(name, args.preset, out, args.device, threads))
        return
    from toymodels.device import worker_processes

    ctx = __import__("multiprocessing").get_context("spawn")
    with worker_processes(jobs), concurrent.futures.ProcessPoolExecutor(jobs, mp_context=ctx) as pool:
        futures = [pool.submit(timed_run, name, args.preset, out, args.device, threads) for name in names]
        for k, fut in enumerate(concurrent.futures.as_completed(futures), 1):
            done(k, *fut.result())


if __name__ == "__main__":
    sys.exit(main())
