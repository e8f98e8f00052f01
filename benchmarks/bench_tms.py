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

Run: ``.venv/bin/python benchmarks/bench_tms.py`` (add ``--device cuda`` on a GPU machine; on a
busy CPU machine ``--threads 1 --clock cpu`` compares the CPU time each side spends).
"""
from __future__ import annotations

import argparse
import math
import sys
import time
from pathlib import Path

import torch

sys.path.insert(0, str(Path(__file__).resolve().parent))
from _common import device_line, interleaved, table, timed  # noqa: E402

from toymodels import SparseFeatures, TMSConfig, build_model  # noqa: E402
from toymodels.train import TrainConfig, train  # noqa: E402
from toymodels.device import resolve_device  # noqa: E402


def feature_probabilities(n_inst: int, p: float | str) -> torch.Tensor:
    """(I,) per-instance probabilities: ``p`` everywhere, or ``"sweep"``: log-spaced 1 -> 0.02."""
    if p == "sweep":
        return torch.logspace(0.0, math.log10(0.02), n_inst)
    return torch.full((n_inst,), float(p))


def reference_trainer(n_inst: int, n: int, m: int, p: float | str, batch: int, lr: float, device: torch.device):
    """The plain baseline: returns a function running ``steps`` training steps."""
    g = torch.Generator(device=device).manual_seed(0)
    p = feature_probabilities(n_inst, p).to(device)[:, None, None] if p == "sweep" else float(p)
    W = torch.nn.Parameter(torch.randn(n_inst, m, n, generator=g, device=device) * (2 / (m + n)) ** 0.5)
    b = torch.nn.Parameter(torch.zeros(n_inst, n, device=device))
    opt = torch.optim.Adam([W, b], lr=lr)
    importance = torch.ones(n, device=device)

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
    args = ap.parse_args()
    if args.threads:
        torch.set_num_threads(args.threads)
    device = resolve_device(args.device)
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
        rows.append([
            f"{n_inst} x {n}->{m}", "1 -> 0.02" if p == "sweep" else f"{p:g}",
            f"{steps / t['ours']:.0f}", f"{steps / t['serial']:.0f}",
            *([f"{steps / t['compiled']:.0f}"] if args.compiled else []),
            f"{steps / t['ref']:.0f}", f"{t['ref'] / t['ours']:.2f}x",
        ])
    print(f"TMS training throughput, batch {args.batch_size}, {device_line(device)}, {args.clock} clock")
    header = ["instances x n->m", "p", "ours steps/s", "ours, data thread off",
              *(["ours, compiled step"] if args.compiled else []), "reference steps/s", "speed-up"]
    print(table(header, rows))


if __name__ == "__main__":
    main()
