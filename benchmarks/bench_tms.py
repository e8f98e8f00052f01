"""Toy-model training throughput: toymodels' trainer vs a plain einsum-batched reference.

The reference is what a notebook writes: two ``rand`` calls and a ``where`` for the data,
einsum forward, autograd, ``torch.optim.Adam``. Both train the same batched ReLU-output model
(same shapes, batch, learning rate, feature probability) in one process, in alternating
rounds; the table reports training steps per second (median of the rounds).

Rows: 8 x (5->2) and 20 x (200->20) at single feature probabilities and as a sweep (p
log-spaced 1 -> 0.02 across the instances, the feature-geometry configuration of issue 14).
"ours, data thread off" is the same trainer drawing each block of data between steps
instead of on the data thread during the previous block (``TrainConfig.data_thread``);
``--compiled`` adds the torch.compile'd step (``fused_step="on"``: forward,
gradient and Adam in one compiled function; it runs without the data thread).

End to end (``--sections end-to-end``, what ``make bench-check`` checks): the ``toymodels
tms`` command as a user runs it — in this process through ``toymodels.cli.main``, run folder,
checkpoints, final evaluation and geometry summary included, ``--threads auto`` unless
``--threads`` is given, with ``--data-thread off``, ``auto`` and ``on`` side by side —
against the notebook reference building its weights and training the same number of steps
(nothing evaluated or written: every cost beyond the steps counts against ours). Cases:
``intro``, the toy-models notebook (10 x 5->2, importance 0.9^i, p log-spaced 1 -> 0.05
over the instances; target ours >= 3x the reference), and ``geometry``, the feature-geometry
sweep (20 x 200->20, p 1 -> 0.02; target >= 2x). The rounds alternate, in an order that
rotates from round to round; the table shows medians.

Besides the tables the script prints one JSON line starting with ``{"bench": "tms"``
(``benchmarks/check.py`` reads it).

Run: ``.venv/bin/python benchmarks/bench_tms.py`` (add ``--device cuda`` on a GPU machine; on a
busy CPU machine ``--threads 1 --clock cpu`` compares the CPU time each side spends).
"""
from __future__ import annotations

import argparse
import math
import sys
import tempfile
import time
from dataclasses import dataclass
from pathlib import Path

import torch

sys.path.insert(0, str(Path(__file__).resolve().parent))
from _common import device_line, emit, interleaved, load_average, run_cli, table, timed  # noqa: E402

from toymodels import SparseFeatures, TMSConfig, build_model  # noqa: E402
from toymodels.train import TrainConfig, train  # noqa: E402
from toymodels.device import resolve_device  # noqa: E402


def feature_probabilities(n_inst: int, p: float | str) -> torch.Tensor:
    """(I,) per-instance probabilities: ``p`` everywhere, or ``"sweep"``: log-spaced 1 -> 0.02."""
    if p == "sweep":
        return torch.logspace(0.0, math.log10(0.02), n_inst)
    return torch.full((n_inst,), float(p))


def reference_trainer(
    n_inst: int, n: int, m: int, p: float | str | torch.Tensor, batch: int, lr: float, device: torch.device,
    importance_decay: float = 1.0,
):
    """The plain baseline: returns a function running ``steps`` training steps. ``p``: one
    probability, ``"sweep"`` (log-spaced 1 -> 0.02) or an (I,) tensor of per-instance ones."""
    g = torch.Generator(device=device).manual_seed(0)
    if isinstance(p, torch.Tensor):
        p = p.to(device)[:, None, None]
    else:
        p = feature_probabilities(n_inst, p).to(device)[:, None, None] if p == "sweep" else float(p)
    W = torch.nn.Parameter(torch.randn(n_inst, m, n, generator=g, device=device) * (2 / (m + n)) ** 0.5)
    b = torch.nn.Parameter(torch.zeros(n_inst, n, device=device))
    opt = torch.optim.Adam([W, b], lr=lr)
    importance = importance_decay ** torch.arange(n, dtype=torch.float32, device=device)

    def run(steps: int) -> None:
        for _ in range(steps):
            mags = torch.rand(n_inst, batch, n, generator=g, device=device)
            on = torch.rand(n_inst, batch, n, generator=g, device=device) < p
            x = torch.where(on, mags, 0.0)
            h = torch.einsum("ibn,imn->ibm", x, W)
            out = torch.relu(torch.einsum("ibm,imn->ibn", h, W) + b[:, None, :])
            loss = (importance * (x - out) ** 2).mean(dim=(1, 2)).sum()
            opt.zero_grad()
            loss.backward()
            opt.step()

    return run


def ours_trainer(
    n_inst: int, n: int, m: int, p: float | str, batch: int, lr: float, device: torch.device, **options: str
):
    model = build_model(TMSConfig(n, m, n_inst), seed=0, device=device)
    source = SparseFeatures(n, feature_probabilities(n_inst, p) if p == "sweep" else p, n_inst, seed=1, device=device)
    cfg = dict(batch_size=batch, lr=lr, quiet=True, eval_samples=1, **options)

    def run(steps: int) -> None:
        train(model, source, TrainConfig(steps=steps, **cfg))

    return run


CASES = [  # (instances, features, hidden, feature probability; "sweep": log-spaced 1 -> 0.02 over instances)
    (8, 5, 2, 0.05),
    (8, 5, 2, 0.3),
    (8, 5, 2, "sweep"),
    (20, 200, 20, "sweep"),
    (20, 200, 20, 1.0),
    (20, 200, 20, 0.3),
    (20, 200, 20, 0.05),
    (20, 200, 20, 0.02),
]


@dataclass(frozen=True)
class EndToEnd:
    """One end-to-end case: ``toymodels tms`` against the notebook reference."""

    name: str
    n_instances: int
    n_features: int
    d_hidden: int
    p_first: float
    """Feature probability of the first instance; log-spaced to ``p_last`` over the instances."""
    p_last: float
    importance_decay: float
    steps: int
    """Default steps (``--e2e-steps`` scales them)."""

    def probabilities(self) -> torch.Tensor:
        """(I,) what ``--feature-probability P P_LAST`` gives: log-spaced from P to P_LAST."""
        return torch.logspace(math.log10(self.p_first), math.log10(self.p_last), self.n_instances)

    def cli_args(self, steps: int, batch: int, out: Path, mode: str, threads: int | None, device: str) -> list[str]:
        return [
            "tms", "--n-features", str(self.n_features), "--d-hidden", str(self.d_hidden),
            "--instances", str(self.n_instances), "--feature-probability", str(self.p_first), str(self.p_last),
            "--importance-decay", str(self.importance_decay), "--steps", str(steps), "--batch-size", str(batch),
            "--lr", "1e-3", "--out", str(out), "--overwrite", "--quiet", "--data-thread", mode, "--device", device,
            *(["--threads", str(threads)] if threads else []),
        ]


E2E_CASES = [
    # the toy-models notebook: 10 x 5->2, importance 0.9^i, p = 20^-linspace(0, 1) (1 -> 0.05)
    EndToEnd("intro", 10, 5, 2, 1.0, 0.05, 0.9, steps=2000),
    # the feature-geometry sweep (issue 14)
    EndToEnd("geometry", 20, 200, 20, 1.0, 0.02, 1.0, steps=60),
]
DATA_THREAD_MODES = ("off", "auto", "on")


def end_to_end(case: EndToEnd, steps: int, batch: int, rounds: int, threads: int | None,
               device: torch.device) -> dict:
    """Median wall seconds of the reference (built and trained) and of ``toymodels tms`` with
    each data-thread mode, over ``rounds`` rotating rounds after a short warm-up run of each."""
    if device.type != "cpu":
        raise ValueError(f"the end-to-end rows compare data-thread modes, which exist on the CPU only (got {device})")
    with tempfile.TemporaryDirectory(prefix="bench-tms-") as tmp:
        def reference(n_steps: int) -> None:
            ref = reference_trainer(case.n_instances, case.n_features, case.d_hidden, case.probabilities(), batch,
                                    1e-3, device, importance_decay=case.importance_decay)
            ref(n_steps)

        def ours(mode: str, n_steps: int) -> None:
            run_cli(case.cli_args(n_steps, batch, Path(tmp) / mode, mode, threads, device.type))

        runs = {"reference": reference, **{mode: (lambda s, mode=mode: ours(mode, s)) for mode in DATA_THREAD_MODES}}
        for run in runs.values():  # warm-up: first-call kernels, the allocator, the data thread
            run(max(2, steps // 10))
        t = interleaved({k: (lambda r=r: timed(lambda: r(steps), device)) for k, r in runs.items()},
                        rounds=rounds, rotate=True)
    return {"section": "end-to-end", "case": case.name, "instances": case.n_instances, "n": case.n_features,
            "m": case.d_hidden, "p": [case.p_first, case.p_last], "importance_decay": case.importance_decay,
            "steps": steps, "batch": batch, "rounds": rounds, "reference_s": t["reference"],
            **{f"{mode}_s": t[mode] for mode in DATA_THREAD_MODES}}


def cpu_timed(fn) -> float:
    """CPU seconds this process spent in ``fn`` (``--clock cpu``): on a busy shared machine the
    wall clock mostly measures the other processes; with one thread CPU time is the work."""
    t0 = time.process_time()
    fn()
    return time.process_time() - t0


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--device", default="cpu")
    ap.add_argument("--steps", type=int, default=300)
    ap.add_argument("--batch-size", type=int, default=1024)
    ap.add_argument("--rounds", type=int, default=3)
    ap.add_argument("--threads", type=int, default=None, help="torch CPU threads (default: torch's choice)")
    ap.add_argument("--clock", choices=("wall", "cpu"), default="wall",
                    help="wall: elapsed time (quiet machine); cpu: this process's CPU time (busy machine, CPU only)")
    ap.add_argument("--compiled", action="store_true",
                    help="add a column for the torch.compile'd step (fused_step='on'; compiles once per row)")
    ap.add_argument("--only", default=None,
                    help="run only the cases whose 'instances x n->m' starts with this, e.g. 20")
    ap.add_argument("--sections", nargs="+", choices=("throughput", "end-to-end"), default=["throughput", "end-to-end"],
                    help="throughput: train() steps/s beside the reference; end-to-end: `toymodels tms` with each "
                         "data-thread mode beside the notebook reference (CPU only)")
    ap.add_argument("--e2e-steps", type=float, default=1.0,
                    help="scale the end-to-end cases' steps (intro 2000, geometry 60) by this factor")
    ap.add_argument("--e2e-rounds", type=int, default=3, help="alternating rounds of the end-to-end rows")
    ap.add_argument("--e2e-cases", nargs="+", choices=[c.name for c in E2E_CASES], default=[c.name for c in E2E_CASES])
    args = ap.parse_args()
    if args.threads:
        torch.set_num_threads(args.threads)
    if args.e2e_steps <= 0:
        ap.error(f"--e2e-steps must be > 0, got {args.e2e_steps}")
    device = resolve_device(args.device)
    load0 = load_average()
    rows = []
    if "throughput" in args.sections:
        rows = throughput(args, device)
        print(f"TMS training throughput, batch {args.batch_size}, {device_line(device)}, {args.clock} clock")
        header = ["instances x n->m", "p", "ours steps/s", "ours, data thread off",
                  *(["ours, compiled step"] if args.compiled else []), "reference steps/s", "speed-up"]
        print(table(header, [r["cells"] for r in rows]))
    e2e = []
    if "end-to-end" in args.sections and device.type != "cpu":
        print(f"\nEnd to end: skipped on {device.type} (the rows compare the data-thread modes, which exist on the CPU only)")
    elif "end-to-end" in args.sections:
        for case in E2E_CASES:
            if case.name in args.e2e_cases:
                steps = max(1, round(case.steps * args.e2e_steps))
                e2e.append(end_to_end(case, steps, args.batch_size, args.e2e_rounds, args.threads, device))
        print(f"\nEnd to end: `toymodels tms` (in process: run folder, checkpoints, evaluation; --threads "
              f"{args.threads or 'auto'}) vs the notebook reference (weights built, steps trained); batch "
              f"{args.batch_size}, {device_line(device)}, wall clock, medians of {args.e2e_rounds} rotating rounds")
        print(table(
            ["case", "instances x n->m", "steps", "reference s", "ours off s", "ours auto s", "ours on s",
             "speed-up (auto)", "auto vs off"],
            [[r["case"], f"{r['instances']} x {r['n']}->{r['m']}", r["steps"], f"{r['reference_s']:.2f}",
              f"{r['off_s']:.2f}", f"{r['auto_s']:.2f}", f"{r['on_s']:.2f}",
              f"{r['reference_s'] / r['auto_s']:.2f}x", f"{r['off_s'] / r['auto_s']:.2f}x"] for r in e2e]))
    print(f"load average {load0:.1f} -> {load_average():.1f}")
    emit("tms", [{k: v for k, v in r.items() if k != "cells"} for r in rows] + e2e,
         threads=torch.get_num_threads(), device=device.type, load_average=[load0, load_average()])


def throughput(args: argparse.Namespace, device: torch.device) -> list[dict]:
    """The steps/s rows: ``train()`` on a built model beside the reference's loop."""
    rows = []
    for n_inst, n, m, p in CASES:
        if args.only and not f"{n_inst} x {n}->{m}".startswith(args.only):
            continue
        steps = args.steps if n < 100 else max(10, args.steps // 15)
        ref = reference_trainer(n_inst, n, m, p, args.batch_size, 1e-3, device)
        ours = ours_trainer(n_inst, n, m, p, args.batch_size, 1e-3, device)
        serial = ours_trainer(n_inst, n, m, p, args.batch_size, 1e-3, device, data_thread="off")
        runs = {"ref": ref, "ours": ours, "serial": serial}
        if args.compiled:
            runs["compiled"] = ours_trainer(n_inst, n, m, p, args.batch_size, 1e-3, device, fused_step="on")
        for run in runs.values():
            run(3)  # warm-up (first-call kernel and allocator set-up; the compile)
        cpu_clock = args.clock == "cpu" and device.type == "cpu"
        clock = cpu_timed if cpu_clock else (lambda f: timed(f, device))
        t = interleaved({k: (lambda r=r: clock(lambda: r(steps))) for k, r in runs.items()}, rounds=args.rounds)
        rows.append({
            "section": "throughput", "instances": n_inst, "n": n, "m": m, "p": p, "steps": steps,
            "clock": args.clock, **{f"{k}_s": v for k, v in t.items()},
            "cells": [
                f"{n_inst} x {n}->{m}", "1 -> 0.02" if p == "sweep" else f"{p:g}",
                f"{steps / t['ours']:.0f}", f"{steps / t['serial']:.0f}",
                *([f"{steps / t['compiled']:.0f}"] if args.compiled else []),
                f"{steps / t['ref']:.0f}", f"{t['ref'] / t['ours']:.2f}x",
            ],
        })
    return rows


if __name__ == "__main__":
    main()
