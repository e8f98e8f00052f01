"""``python -m figures [--preset quick|full|tiny] [--only figNN] [--jobs N]``: regenerate the figures.

Each module ``figures/figNN_*.py`` defines ``PRESETS`` (tiny, quick, full) and
``make(cfg, out_dir, device) -> list[Path]``. With ``--jobs N`` the scripts run in N worker
processes, each with its share of the CPU threads (small models run faster that way than
one process with N threads).
"""
from __future__ import annotations

import argparse
import concurrent.futures
import os
import sys
import time
from pathlib import Path

from toymodels.device import DEVICE_CHOICES

from .common import OUT, PRESET_NAMES
from .runner import timed_run, figure_modules


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(prog="python -m figures", description=__doc__.splitlines()[0])
    p.add_argument("--preset", choices=PRESET_NAMES, default="quick")
    p.add_argument("--only", default="", help="run the figure modules whose name starts with this")
    p.add_argument("--out", type=Path, default=OUT)
    p.add_argument("--device", choices=DEVICE_CHOICES, default="auto")
    p.add_argument("--jobs", type=int, default=1, help="worker processes (default 1)")
    args = p.parse_args(argv)
    names = [n for n in figure_modules() if n.startswith(args.only)]
    if not names:
        print(f"no figure module starts with {args.only!r}", file=sys.stderr)
        return 2
    jobs = max(1, min(args.jobs, len(names)))
    threads = max(1, (os.cpu_count() or 1) // jobs)
    t_all = time.perf_counter()
    if jobs == 1:
        results = (timed_run(n, args.preset, args.out, args.device, threads) for n in names)
        for name, secs, paths in results:
            print(f"{name:40s} {secs:6.1f} s  " + ", ".join(str(x) for x in paths), flush=True)
    else:
        ctx = __import__("multiprocessing").get_context("spawn")
        with concurrent.futures.ProcessPoolExecutor(jobs, mp_context=ctx) as pool:
            futures = [pool.submit(timed_run, n, args.preset, args.out, args.device, threads) for n in names]
            for fut in concurrent.futures.as_completed(futures):
                name, secs, paths = fut.result()
                print(f"{name:40s} {secs:6.1f} s  " + ", ".join(str(x) for x in paths), flush=True)
    print(f"{len(names)} figure scripts in {time.perf_counter() - t_all:.1f} s ({args.preset} preset, {jobs} job(s))")
    return 0


if __name__ == "__main__":
    sys.exit(main())
