"""``make bench-check``: run the benchmarks once, at a reduced but representative size, and
fail when a checked number falls outside its floor in ``benchmarks/floors.toml``.

    .venv/bin/python benchmarks/check.py [--floors FILE] [--only tms sae ...]
                                         [--save FILE] [--results FILE]

Each benchmark script runs in its own process (its tables stream to the console) and prints
one machine-readable line starting with ``{"bench":`` (``{"bench": NAME, "rows": [...]}``);
the check parses those lines, never the tables, turns them into the checked numbers
(:data:`EXTRACTORS`) and compares each with its floor. It is not part of ``make test`` or
CI: timings need a quiet machine, so run it before a release.

What is checked (the floors file holds the bounds, one table each): the end-to-end speed-ups
of ``toymodels tms`` (intro, geometry) and ``toymodels sae`` (topk, relu) over their plain
PyTorch references; data thread ``auto`` against ``off`` for each of those rows; SAELens MCC
at equal settings (ours minus theirs; skipped, not passed, where ``sae_lens`` is missing);
the sweep overhead per job.

Exit codes: 0 every number within its floor (skipped rows allowed); 1 one or more outside it,
or a benchmark that broke (one ``bench-check: FAIL`` line each, after the table); 2 a bad
floors file, results file or argument (one line, before any benchmark runs).
"""
from __future__ import annotations

import argparse
import json
import math
import os
import subprocess
import sys
import time
import tomllib
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Callable, Iterable

HERE = Path(__file__).resolve().parent
DEFAULT_FLOORS = HERE / "floors.toml"
RESULT_PREFIX = '{"bench":'
"""The start of a benchmark's result line (``_common.emit`` prints it)."""


# ---------------------------------------------------------------------- floors
@dataclass(frozen=True)
class Floor:
    """One checked number's bound: exactly one of ``min`` (value >= min) and ``max``
    (value <= max), both finite; ``what`` says what the number is."""

    name: str
    min: float | None = None
    max: float | None = None
    what: str = ""

    def __post_init__(self) -> None:
        if (self.min is None) == (self.max is None):
            raise ValueError(f"floor [{self.name}] needs exactly one of min and max, got "
                             f"min = {self.min!r}, max = {self.max!r}")
        for key in ("min", "max"):
            v = getattr(self, key)
            if v is not None and (isinstance(v, bool) or not isinstance(v, (int, float)) or not math.isfinite(v)):
                raise ValueError(f"floor [{self.name}] {key} must be a finite number, got {v!r}")
        if not isinstance(self.what, str):
            raise ValueError(f"floor [{self.name}] what must be a string, got {self.what!r}")

    def holds(self, value: float) -> bool:
        """Whether ``value`` is within the bound (never for NaN or infinity)."""
        if not math.isfinite(value):
            return False
        return value >= self.min if self.min is not None else value <= self.max  # type: ignore[operator]

    def bound(self) -> str:
        return f">= {self.min:g}" if self.min is not None else f"<= {self.max:g}"


def parse_floors(text: str, origin: str = "floors") -> dict[str, Floor]:
    """The floors of a TOML text: one table per checked number with ``min`` or ``max`` and
    ``what``. ValueError naming ``origin`` and the offending key for anything else (bad TOML,
    a key that is not a table, an unknown field, no or two bounds, a non-number)."""
    try:
        data = tomllib.loads(text)
    except tomllib.TOMLDecodeError as e:
        raise ValueError(f"{origin}: not valid TOML ({e})") from None
    if not data:
        raise ValueError(f"{origin}: no floors")
    floors = {}
    for name, spec in data.items():
        if not isinstance(spec, dict):
            raise ValueError(f"{origin}: {name} must be a table ([{name}] with min or max), got {spec!r}")
        unknown = sorted(set(spec) - {"min", "max", "what"})
        if unknown:
            raise ValueError(f"{origin}: [{name}] has unknown field(s) {unknown}; allowed: min, max, what")
        try:
            floors[name] = Floor(name, spec.get("min"), spec.get("max"), spec.get("what", ""))
        except ValueError as e:
            raise ValueError(f"{origin}: {e}") from None
    return floors


def load_floors(path: Path) -> dict[str, Floor]:
    try:
        text = path.read_text(encoding="utf-8")
    except OSError as e:
        raise ValueError(f"cannot read the floors file {path}: {e.strerror or e}") from None
    return parse_floors(text, str(path))


# ---------------------------------------------------------------------- results
def result_lines(output: str, origin: str = "output") -> list[dict[str, Any]]:
    """The result objects among ``output``'s lines (those starting with ``{"bench":``).
    ValueError naming ``origin`` for a line that starts so but is not ``{"bench": str,
    "rows": list, ...}``."""
    out = []
    for n, line in enumerate(output.splitlines(), 1):
        line = line.strip()
        if not line.startswith(RESULT_PREFIX):
            continue
        try:
            obj = json.loads(line)
        except json.JSONDecodeError as e:
            raise ValueError(f"{origin} line {n}: a result line that is not JSON ({e})") from None
        if not isinstance(obj.get("bench"), str) or not isinstance(obj.get("rows"), list):
            raise ValueError(f'{origin} line {n}: a result line needs "bench" (a string) and "rows" (a list)')
        out.append(obj)
    return out


@dataclass(frozen=True)
class Measure:
    """One checked number: the floor it answers to, a label, and its value — or why it has
    none (``skipped``: not measured here, e.g. sae_lens missing; ``broken``: the benchmark
    failed or gave something unusable)."""

    floor: str
    label: str
    value: float | None = None
    detail: str = ""
    """How the value came about, for the table (e.g. ``3.41 s / 1.02 s``)."""
    skipped: str | None = None
    broken: str | None = None


def _seconds(row: dict[str, Any], key: str) -> float:
    v = row.get(key)
    if isinstance(v, bool) or not isinstance(v, (int, float)) or not math.isfinite(v) or v <= 0:
        raise ValueError(f"row {row.get('case', row.get('arch', '?'))!r}: {key} must be a positive number of seconds, got {v!r}")
    return float(v)


def _speedups(rows: Iterable[dict[str, Any]], key: str, floor_of: Callable[[str], str], bench: str) -> list[Measure]:
    """Reference / ours (data thread auto) and off / auto for each end-to-end row."""
    out = []
    for row in rows:
        if row.get("section") != "end-to-end":
            continue
        name = str(row.get(key))
        ref, off, auto = (_seconds(row, k) for k in ("reference_s", "off_s", "auto_s"))
        out.append(Measure(floor_of(name), f"{bench} {name}: speed-up", ref / auto, f"{ref:.2f} s / {auto:.2f} s"))
        out.append(Measure("data_thread_auto_vs_off", f"{bench} {name}: auto vs off", off / auto,
                           f"{off:.2f} s / {auto:.2f} s"))
    return out


TMS_FLOORS = {"intro": "tms_intro", "geometry": "geometry"}


def tms_measures(rows: list[dict[str, Any]]) -> list[Measure]:
    return _speedups(rows, "case", lambda case: TMS_FLOORS.get(case, f"tms_{case}"), "tms")


def sae_measures(rows: list[dict[str, Any]]) -> list[Measure]:
    return _speedups(rows, "arch", lambda arch: f"sae_{arch}", "sae")


def _number(row: dict[str, Any], key: str) -> float:
    v = row.get(key)
    if isinstance(v, bool) or not isinstance(v, (int, float)) or not math.isfinite(v):
        raise ValueError(f"row {row.get('arch', '?')!r}: {key} must be a finite number, got {v!r}")
    return float(v)


def saelens_measures(rows: list[dict[str, Any]]) -> list[Measure]:
    out = []
    for row in rows:
        ours, theirs = _number(row, "mcc_ours"), _number(row, "mcc_saelens")
        out.append(Measure("saelens_mcc", f"saelens {row.get('arch', '?')}: MCC ours - SAELens", ours - theirs,
                           f"{ours:.3f} - {theirs:.3f}"))
    return out


def sweep_measures(rows: list[dict[str, Any]]) -> list[Measure]:
    out = []
    for row in rows:
        if row.get("measure") == "overhead_per_job_s":
            v = _seconds(row, "value")
            out.append(Measure("sweep_overhead_s", "sweep: overhead per job (s)", v, f"{row.get('jobs', '?')} jobs"))
    return out


EXTRACTORS: dict[str, Callable[[list[dict[str, Any]]], list[Measure]]] = {
    "tms": tms_measures, "sae": sae_measures, "saelens": saelens_measures, "sweep": sweep_measures,
}
"""Each benchmark's rows -> its checked numbers."""


@dataclass(frozen=True)
class Bench:
    """One benchmark script as the check runs it, and the floors its numbers answer to."""

    name: str
    """The ``"bench"`` of its result line, and its :data:`EXTRACTORS` key."""
    script: str
    args: tuple[str, ...]
    floors: tuple[str, ...]
    quick_args: tuple[str, ...]
    """``--quick``: smoke sizes that exercise the same code paths in seconds (numbers meaningless)."""
    may_skip: bool = False
    """Exit 0 without a result line is a skip (a missing optional package), not a failure."""


BENCHES = (
    # intro 2000 steps, geometry 60 steps (the notebook trains 10,000; users thousands): long
    # enough that the steps, not the fixed cost of a run, decide, short enough for 2 cores
    Bench("tms", "bench_tms.py", ("--sections", "end-to-end", "--e2e-rounds", "3"),
          ("tms_intro", "geometry", "data_thread_auto_vs_off"),
          quick_args=("--sections", "end-to-end", "--e2e-rounds", "1", "--e2e-steps", "0.05")),
    Bench("sae", "bench_sae.py", ("--archs", "relu", "topk", "--steps", "5", "--e2e-steps", "15", "--e2e-rounds", "3"),
          ("sae_topk", "sae_relu", "data_thread_auto_vs_off"),
          quick_args=("--archs", "relu", "topk", "--sections", "end-to-end", "--e2e-steps", "2", "--e2e-rounds", "1")),
    Bench("saelens", "bench_saelens.py", (), ("saelens_mcc",), quick_args=("--quick",), may_skip=True),
    Bench("sweep", "bench_sweep.py", ("--overhead-only",), ("sweep_overhead_s",), quick_args=("--tiny", "--overhead-only")),
)


def bench_measures(bench: Bench, results: list[dict[str, Any]], returncode: int = 0, output: str = "") -> list[Measure]:
    """The checked numbers of one benchmark run: its result rows through its extractor; every
    floor of the benchmark that got no number is broken (or skipped, for an optional
    benchmark that exited 0 without a result line)."""
    def none(**why: str) -> list[Measure]:
        return [Measure(f, f"{bench.name}: {f}", **why) for f in bench.floors]

    last = next((ln.strip() for ln in reversed(output.splitlines()) if ln.strip()), "")
    if returncode != 0:
        return none(broken=f"{bench.script} exited {returncode}" + (f": {last[:200]}" if last else ""))
    mine = [r for r in results if r["bench"] == bench.name]
    if not mine:
        if bench.may_skip:
            return none(skipped=last[:200] or f"{bench.script} printed no result line")
        return none(broken=f"{bench.script} printed no {RESULT_PREFIX} line")
    try:
        measures = [m for r in mine for m in EXTRACTORS[bench.name](r["rows"])]
    except (ValueError, TypeError, AttributeError) as e:
        return none(broken=f"{bench.script}: unusable result ({e})")
    covered = {m.floor for m in measures}
    return measures + [Measure(f, f"{bench.name}: {f}", broken=f"{bench.script} gave no number for it")
                       for f in bench.floors if f not in covered]


# ---------------------------------------------------------------------- verdicts
@dataclass(frozen=True)
class Verdict:
    label: str
    status: str
    """pass, fail or skipped."""
    value: str
    bound: str
    reason: str = ""


def judge(measures: Iterable[Measure], floors: dict[str, Floor]) -> list[Verdict]:
    """One verdict per measure: skipped (no number, with the reason); fail for a broken
    benchmark, a number with no floor of that name, or a number outside its floor; else pass."""
    out = []
    for m in measures:
        floor = floors.get(m.floor)
        bound = floor.bound() if floor else "?"
        if m.skipped is not None:
            out.append(Verdict(m.label, "skipped", "-", bound, m.skipped))
        elif m.broken is not None or m.value is None:
            out.append(Verdict(m.label, "fail", "-", bound, m.broken or "no value"))
        elif floor is None:
            out.append(Verdict(m.label, "fail", f"{m.value:.3g}", bound, f"no floor [{m.floor}] in the floors file"))
        else:
            ok = floor.holds(m.value)
            out.append(Verdict(m.label, "pass" if ok else "fail", f"{m.value:.3g}", bound,
                               m.detail + ("" if ok else f"; outside [{m.floor}] {bound}")))
    return out


def check_coverage(floors: dict[str, Floor], benches: Iterable[Bench]) -> None:
    """ValueError when the floors file and the benchmarks disagree: a floor no benchmark
    answers to (a typo would never be checked) or a benchmark floor the file lacks."""
    wanted = {f for b in benches for f in b.floors}
    extra, missing = sorted(set(floors) - wanted), sorted(wanted - set(floors))
    if extra:
        raise ValueError(f"floors file: no benchmark checks {extra} (known: {sorted(wanted)})")
    if missing:
        raise ValueError(f"floors file: no floor for {missing}")


def report(verdicts: list[Verdict]) -> str:
    """The table of every verdict, then one ``bench-check: FAIL`` line per failure."""
    head = ["check", "value", "floor", "status", "how"]
    rows = [[v.label, v.value, v.bound, v.status.upper() if v.status == "fail" else v.status, v.reason] for v in verdicts]
    widths = [max(len(str(r[i])) for r in [head, *rows]) for i in range(len(head))]
    line = lambda r: "| " + " | ".join(str(c).ljust(w) for c, w in zip(r, widths)) + " |"  # noqa: E731
    lines = [line(head), "|" + "|".join("-" * (w + 2) for w in widths) + "|", *map(line, rows)]
    lines += [f"bench-check: FAIL {v.label}: {v.value} (floor {v.bound}): {v.reason}" for v in verdicts if v.status == "fail"]
    return "\n".join(lines)


def exit_code(verdicts: list[Verdict]) -> int:
    return 1 if any(v.status == "fail" for v in verdicts) else 0


# ---------------------------------------------------------------------- running
def run_bench(bench: Bench, quick: bool = False) -> tuple[int, str]:
    """Run one benchmark script in its own process, echoing its output as it comes (result
    lines excepted); returns its exit code and its whole standard output."""
    args = bench.quick_args if quick else bench.args
    cmd = [sys.executable, str(HERE / bench.script), *args]
    print(f"\n=== {bench.script} {' '.join(args)}", flush=True)
    proc = subprocess.Popen(cmd, stdout=subprocess.PIPE, text=True, cwd=HERE.parent,
                            env={**os.environ, "PYTHONUNBUFFERED": "1"})  # the tables as they come
    lines = []
    assert proc.stdout is not None
    for line in proc.stdout:
        lines.append(line)
        if not line.startswith(RESULT_PREFIX):
            print(line, end="", flush=True)
    return proc.wait(), "".join(lines)


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0].strip("`: "))
    ap.add_argument("--floors", type=Path, default=DEFAULT_FLOORS, help="the floors file (default benchmarks/floors.toml)")
    names = [b.name for b in BENCHES]
    ap.add_argument("--only", nargs="+", choices=names, default=names, help="run only these benchmarks")
    ap.add_argument("--save", type=Path, default=None, help="also write every result line to this file")
    ap.add_argument("--results", type=Path, default=None,
                    help="check the result lines of this file (a --save of an earlier run) instead of running")
    ap.add_argument("--quick", action="store_true",
                    help="smoke sizes: checks that every benchmark runs and reports (the verdicts mean nothing)")
    args = ap.parse_args(argv)
    try:
        floors = load_floors(args.floors)
        check_coverage(floors, BENCHES)
        saved = None
        if args.results is not None:
            saved = result_lines(args.results.read_text(encoding="utf-8"), str(args.results))
    except (ValueError, OSError) as e:
        print(f"bench-check: error: {e}", file=sys.stderr)
        return 2
    benches = [b for b in BENCHES if b.name in args.only]
    t0 = time.perf_counter()
    load0 = os.getloadavg()[0] if hasattr(os, "getloadavg") else 0.0
    measures: list[Measure] = []
    lines: list[str] = []
    for bench in benches:
        if saved is not None:
            measures += bench_measures(bench, saved, 0, f"no result line in {args.results}")
            continue
        rc, output = run_bench(bench, args.quick)
        try:
            results = result_lines(output, bench.script)
        except ValueError as e:
            results, rc, output = [], rc or 1, str(e)
        lines += [json.dumps(r) for r in results]
        measures += bench_measures(bench, results, rc, output)
    if args.save is not None and saved is None:
        args.save.write_text("".join(ln + "\n" for ln in lines), encoding="utf-8")
    verdicts = judge(measures, floors)
    cores = os.cpu_count() or 1
    load1 = os.getloadavg()[0] if hasattr(os, "getloadavg") else 0.0
    print(f"\nbench-check: {len(benches)} benchmark(s) in {time.perf_counter() - t0:.0f} s, floors from {args.floors}; "
          f"load average {load0:.1f} -> {load1:.1f} on {cores} core(s)"
          + (" (a busy machine: rerun a near miss on a quiet one)" if max(load0, load1) > cores else ""))
    print(report(verdicts))
    if args.quick:
        print("bench-check: --quick ran smoke sizes: the code paths work; the numbers and verdicts mean nothing")
    return exit_code(verdicts)


if __name__ == "__main__":
    sys.exit(main())
