"""Shared benchmark helpers: interleaved timing rounds, a plain-text table, the CLI run in
process, and the one machine-readable result line each script prints for ``benchmarks/check.py``."""
from __future__ import annotations

import contextlib
import io
import json
import os
import platform
import statistics
import time
from typing import Any, Callable, Sequence

import torch


def device_line(device: torch.device) -> str:
    if device.type == "cuda":
        return f"cuda: {torch.cuda.get_device_name(device)}"
    return f"cpu: {platform.processor() or platform.machine()}, {torch.get_num_threads()} threads"


def sync(device: torch.device) -> None:
    if device.type == "cuda":
        torch.cuda.synchronize(device)


def interleaved(fns: dict[str, Callable[[], float]], rounds: int = 3, rotate: bool = False) -> dict[str, float]:
    """Run each timing function ``rounds`` times, alternating, and keep the median: the
    contenders share whatever else the machine is doing. ``rotate``: round r starts with the
    r-th contender, so none always runs first (after the previous round's garbage) or last."""
    if rounds < 1:
        raise ValueError(f"rounds must be >= 1, got {rounds}")
    samples: dict[str, list[float]] = {k: [] for k in fns}
    names = list(fns)
    for r in range(rounds):
        shift = r % len(names) if rotate and names else 0
        for k in names[shift:] + names[:shift]:
            samples[k].append(fns[k]())
    return {k: statistics.median(v) for k, v in samples.items()}


def timed(fn: Callable[[], None], device: torch.device) -> float:
    sync(device)
    t0 = time.perf_counter()
    fn()
    sync(device)
    return time.perf_counter() - t0


def table(header: list[str], rows: list[list[str]]) -> str:
    widths = [max(len(str(r[i])) for r in [header, *rows]) for i in range(len(header))]
    line = lambda r: "| " + " | ".join(str(c).rjust(w) for c, w in zip(r, widths)) + " |"  # noqa: E731
    return "\n".join([line(header), "|" + "|".join("-" * (w + 2) for w in widths) + "|", *map(line, rows)])


def load_average() -> float:
    """The 1-minute load average (0.0 where the platform has none): printed beside the
    timings, since on a shared machine the other processes set every number."""
    try:
        return os.getloadavg()[0]
    except (AttributeError, OSError):
        return 0.0


def run_cli(argv: Sequence[str]) -> None:
    """``toymodels ARGV`` in this process, as a user runs it (``toymodels.cli.main``), with its
    console output swallowed and torch's thread count put back afterwards (the CLI sets its
    own with ``--threads auto``; the reference that runs next must not inherit it). A
    non-zero exit is a RuntimeError carrying the end of what the command printed."""
    from toymodels.cli import main

    threads = torch.get_num_threads()
    out = io.StringIO()
    try:
        with contextlib.redirect_stdout(out), contextlib.redirect_stderr(out):
            try:
                rc = main(list(argv))
            except SystemExit as e:  # argparse errors exit
                rc = e.code if isinstance(e.code, int) else 2
    finally:
        if torch.get_num_threads() != threads:
            torch.set_num_threads(threads)
    if rc != 0:
        raise RuntimeError(f"toymodels {' '.join(argv)} exited {rc}: {out.getvalue()[-2000:]}")


RESULT_PREFIX = '{"bench":'
"""Every benchmark script prints one line starting with this: ``{"bench": NAME, "rows": [...],
...}``, the numbers of its tables for ``benchmarks/check.py`` (which parses, never scrapes)."""


def emit(bench: str, rows: list[dict[str, Any]], **extra: Any) -> None:
    """Print the script's one machine-readable result line (see :data:`RESULT_PREFIX`)."""
    line = json.dumps({"bench": bench, "rows": rows, **extra}, sort_keys=False)
    assert line.startswith(RESULT_PREFIX)
    print(line, flush=True)
