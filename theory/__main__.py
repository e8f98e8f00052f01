"""``python -m theory``: run every registered claim and print the report."""
from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path

from toymodels.device import DEVICE_CHOICES, resolve_device

from .registry import BUDGETS, EXPECTED_IDS, Context, load_all, run_claim


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


def markdown(records: list[dict]) -> str:
    lines = [
        "# Theory report",
        "",
        "| ID | status | verdict | predicted | observed | tolerance | detail |",
        "|---|---|---|---|---|---|---|",
    ]
    for r in records:
        cells = [r["id"], r["status"], f"**{r['verdict']}**", _short(r["predicted"], 40), _short(r["observed"], 40),
                 _short(r["tolerance"], 20), r["detail"].replace("|", "/")]
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
    p.add_argument("--threads", type=int, default=None,
                   help="CPU threads for torch (the checks' models are small: 1 is often fastest)")
    args = p.parse_args(argv)
    if args.threads:
        import torch

        torch.set_num_threads(args.threads)

    registry = load_all()
    missing = [i for i in EXPECTED_IDS if i not in registry]
    if missing:
        print(f"missing claims: {', '.join(missing)}", file=sys.stderr)
        return 2
    ids = [i for i in EXPECTED_IDS if i.startswith(args.only)]
    if not ids:
        print(f"no claim ID starts with {args.only!r}", file=sys.stderr)
        return 2
    if args.list:
        for i in ids:
            c = registry[i]
            print(f"{i:50s} {c.status:11s} {c.statement}")
        return 0
    ctx = Context(device=resolve_device(args.device), budget=args.budget, seed=args.seed)
    records = []
    print(f"{'ID':50s} {'status':11s} {'verdict':15s} {'predicted':>22s} {'observed':>22s}  secs")
    for i in ids:
        rec = run_claim(registry[i], ctx).as_json()
        records.append(rec)
        print(f"{i:50s} {rec['status']:11s} {rec['verdict']:15s} {_short(rec['predicted'], 22):>22s} "
              f"{_short(rec['observed'], 22):>22s}  {rec['seconds']:.1f}", flush=True)
    counts = {v: sum(r["verdict"] == v for r in records) for v in ("holds", "fails", "open", "counterexample")}
    print("  ".join(f"{k}: {v}" for k, v in counts.items()))
    if args.json:
        args.json.parent.mkdir(parents=True, exist_ok=True)
        args.json.write_text(json.dumps({"claims": records, "device": str(ctx.device), "budget": ctx.budget}, indent=2) + "\n")
    if args.markdown:
        args.markdown.parent.mkdir(parents=True, exist_ok=True)
        args.markdown.write_text(markdown(records))
    bad = [r["id"] for r in records if r["status"] in ("proven", "exact") and r["verdict"] == "fails"]
    if bad:
        print(f"proven/exact claims failing: {', '.join(bad)}", file=sys.stderr)
        return 1
    return 0


if __name__ == "__main__":
    sys.exit(main())
