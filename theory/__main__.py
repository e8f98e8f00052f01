"""``python -m theory``: run every registered claim and print the report.

Output paths (--json, --markdown) are checked before any claim runs. Every row that does
not hold is followed by its full reason (predicted, observed, tolerance, detail). The
markdown report is deterministic for a given device and budget: wall-clock times go to the
console and the JSON records only. Threads: ``--threads auto`` (the default) uses one CPU
thread, the fastest for these toy-sized models and robust when another process holds a core
(see :func:`toymodels.device.choose_threads`).
"""
from __future__ import annotations

import argparse
import json
import re
import sys
from pathlib import Path

from toymodels.cli import check_output_file
from toymodels.device import DEVICE_CHOICES, resolve_device, set_threads

from .registry import BUDGETS, Context, is_failure, load_all, run_claim


def _short(x: object, width: int = 28) -> str:
    if isinstance(x, float):
        s = f"{x:.4g}"
    elif isinstance(x, (list, tuple)) and x and all(isinstance(v, (int, float)) for v in x):
        s = "[" + ", ".join(f"{v:.3g}" if isinstance(v, float) else str(v) for v in list(x)[:4]) + (", ...]" if len(x) > 4 else "]")
    elif isinstance(x, dict):
        s = ", ".join(f"{k}={_short(v, 12)}" for k, v in list(x.items())[:3])
    else:
        s = str(x)
    return s if len(s) <= width else s[: width - 1] + "…"


_TIMING = re.compile(r"\s*\b\d+(?:\.\d+)?\s?s\b(?! *=)")


def strip_timings(text: str) -> str:
    """``text`` without wall-clock durations ("4.4 s", "12 s"), so a tracked report does not
    change from one run to the next: "(2000 steps, 4.4 s on cpu)" -> "(2000 steps, on cpu)"."""
    out = _TIMING.sub("", text)
    out = re.sub(r"\(\s*,\s*", "(", out)
    out = re.sub(r",\s*,", ",", out)
    out = re.sub(r";\s*(?=[;)])", "", out)
    return re.sub(r" {2,}", " ", out)


def reason(rec: dict) -> str:
    """The full reason of a row that does not hold, on one line."""
    return (f"    {rec['verdict']}: predicted {rec['predicted']}; observed {rec['observed']}; "
            f"tolerance {rec['tolerance']}; {' '.join(str(rec['detail']).split())}")


def markdown(records: list[dict]) -> str:
    lines = [
        "# Theory report",
        "",
        "| ID | status | verdict | predicted | observed | tolerance | detail |",
        "|---|---|---|---|---|---|---|",
    ]
    for r in records:
        cells = [r["id"], r["status"], f"**{r['verdict']}**", _short(r["predicted"], 40), _short(r["observed"], 40),
                 _short(r["tolerance"], 20), strip_timings(r["detail"]).replace("|", "/")]
        lines.append("| " + " | ".join(cells) + " |")
    return "\n".join(lines) + "\n"


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(prog="python -m theory", description="Check every catalogued claim against theory and simulation.")
    p.add_argument("--only", default="", help="run the claims whose ID starts with this prefix")
    p.add_argument("--json", type=Path, help="write the records to this JSON file")
    p.add_argument("--markdown", type=Path, help="write the report as a markdown table")
    p.add_argument("--device", choices=DEVICE_CHOICES, default="auto")
    p.add_argument("--budget", choices=BUDGETS, default="default", help="simulation size (default: default)")
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--list", action="store_true", help="list the claims and exit")
    p.add_argument("--threads", default="auto",
                   help="CPU threads for torch: a number, or auto (default: 1, the fastest for these small models)")
    args = p.parse_args(argv)
    try:
        for flag, path in (("--json", args.json), ("--markdown", args.markdown)):
            if path is not None:
                check_output_file(path, flag)
        set_threads(args.threads)
        device = resolve_device(args.device)
    except ValueError as e:
        print(f"python -m theory: error: {e}", file=sys.stderr)
        return 2

    registry = load_all()
    ids = [i for i in registry if i.startswith(args.only)]
    if not ids:
        print(f"no claim ID starts with {args.only!r}", file=sys.stderr)
        return 2
    if args.list:
        for i in ids:
            c = registry[i]
            print(f"{i:50s} {c.status:11s} {c.statement}")
        return 0
    ctx = Context(device=device, budget=args.budget, seed=args.seed)
    records = []
    print(f"{'ID':50s} {'status':11s} {'verdict':15s} {'predicted':>22s} {'observed':>22s}  secs")
    for i in ids:
        rec = run_claim(registry[i], ctx).as_json()
        records.append(rec)
        print(f"{i:50s} {rec['status']:11s} {rec['verdict']:15s} {_short(rec['predicted'], 22):>22s} "
              f"{_short(rec['observed'], 22):>22s}  {rec['seconds']:.1f}", flush=True)
        if rec["verdict"] != "holds":
            print(reason(rec), flush=True)
    counts = {v: sum(r["verdict"] == v for r in records) for v in ("holds", "fails", "open", "counterexample")}
    print("  ".join(f"{k}: {v}" for k, v in counts.items()))
    if args.json:
        args.json.parent.mkdir(parents=True, exist_ok=True)
        args.json.write_text(json.dumps({"claims": records, "device": str(ctx.device), "budget": ctx.budget}, indent=2) + "\n")
    if args.markdown:
        args.markdown.parent.mkdir(parents=True, exist_ok=True)
        args.markdown.write_text(markdown(records))
    bad = [r["id"] for r in records if is_failure(r)]
    if bad:
        print(f"proven/exact claims not holding, or verdicts their status forbids: {', '.join(bad)}", file=sys.stderr)
        return 1
    return 0


if __name__ == "__main__":
    sys.exit(main())
