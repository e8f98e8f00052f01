"""SAE training-step speed and memory: toymodels.sae against plain dense PyTorch SAEs.

    .venv/bin/python benchmarks/bench_sae.py [--steps 7] [--threads N] [--archs relu topk ...]

The first line of the output gives the thread count and the load average before and after:
on a shared machine, other processes stealing a core make every multithreaded op wait for
its descheduled partner thread, which hurts a step made of many small ops (ours) more than
one made of a few large ones (the references) — compare runs at equal load, or use
``--threads 1``.

Shapes (the stated target): 512 sparse features embedded in D = 256 dims, dictionary
F = 2048, batch B = 4096, k = 32, one instance. Every row times one full training step —
zero grads, loss and gradients, decoder-gradient projection, Adam, decoder renormalisation,
exactly what ``toymodels.train`` runs — on the same pre-sampled batches, with the same Adam
(``toymodels.train.make_optimizer``).

The references are written here, plainly: a dense ReLU SAE (L1 weighted by decoder norms),
a dense TopK SAE (topk of the dense pre-activations, scattered into a dense (B, F) code,
dense decoder matmul) and a dense BatchTopK SAE, all with autograd and Adam, all subtracting
b_dec before the encoder as ours do. Ours and the reference alternate step by step in ONE
process (after warm-up), so background load hits both alike; the table shows medians.

End to end (``--sections end-to-end``, what ``make bench-check`` checks): the ``toymodels sae``
command as a user runs it — in this process through ``toymodels.cli.main``: ``--data
features`` at the same shapes with p = 0.01, ``--steps 15`` (``--e2e-steps``), run folder,
final metrics (16,384 evaluation samples, MCC against the true directions) and
``--threads auto`` included, with ``--data-thread off``, ``auto`` and ``on`` side by side —
against a plain dense PyTorch training loop doing the same number of steps at the same batch
size on the same data (dense ``rand`` draws of the same feature probability, embedded along
the same directions): the dense reference SAE above, ``torch.optim.Adam``, decoder rows
renormalised after each step, nothing evaluated or written (every cost beyond the steps
counts against ours). Median wall seconds of rotating rounds. Targets: TopK >= 2x, ReLU >=
1x; data thread ``auto`` no slower than ``off``.

Besides the tables the script prints one JSON line starting with ``{"bench": "sae"``
(``benchmarks/check.py`` reads it).

Peak memory: on CPU, the peak of bytes allocated by PyTorch during one step, from the
torch profiler's memory events (allocations minus frees in time order; parameters, data
and optimizer state that exist before the step are not counted; our SAEs' reusable work
buffers, which exist before the step, are added to ours). On CUDA,
``torch.cuda.max_memory_allocated`` during one step minus the allocation before it.
"""
from __future__ import annotations

import argparse
import os
import statistics
import sys
import tempfile
import time
from pathlib import Path

import torch
from torch import nn

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))
sys.path.insert(0, str(Path(__file__).resolve().parent))

from _common import emit, interleaved, load_average, run_cli, table  # noqa: E402

from toymodels.data import SparseFeatures  # noqa: E402
from toymodels.sae import SAEConfig, build_sae  # noqa: E402
from toymodels.train import TrainConfig, make_optimizer, optimizer_step  # noqa: E402

D, F, N_FEATURES, K = 256, 2048, 512, 32
L1 = 1e-3


# ---------------------------------------------------------------------- references
class DenseReLU(nn.Module):
    """f = ReLU((x − b_dec) W_enc + b_enc); L = mean_b ||x − x̂||² + λ mean_b Σ_j f_j ||d_j||."""

    def __init__(self, device: torch.device) -> None:
        super().__init__()
        g = torch.Generator(device=device).manual_seed(0)
        W = torch.randn(F, D, generator=g, device=device)
        W = W / W.norm(dim=1, keepdim=True)
        self.W_dec = nn.Parameter(W)
        self.W_enc = nn.Parameter(W.t().clone())
        self.b_enc = nn.Parameter(torch.zeros(F, device=device))
        self.b_dec = nn.Parameter(torch.zeros(D, device=device))

    def codes(self, x: torch.Tensor) -> torch.Tensor:
        return torch.relu((x - self.b_dec) @ self.W_enc + self.b_enc)

    def loss(self, x: torch.Tensor) -> torch.Tensor:
        f = self.codes(x)
        x_hat = f @ self.W_dec + self.b_dec
        return (x_hat - x).square().sum(-1).mean() + L1 * (f * self.W_dec.norm(dim=1)).sum(-1).mean()


class DenseTopK(DenseReLU):
    """f = scatter(ReLU(topk_k(pre))) into a dense (B, F) code; L = mean_b ||x − x̂||²."""

    def codes(self, x: torch.Tensor) -> torch.Tensor:
        pre = (x - self.b_dec) @ self.W_enc + self.b_enc
        vals, idx = pre.topk(K, dim=-1)
        return torch.zeros_like(pre).scatter(-1, idx, torch.relu(vals))

    def loss(self, x: torch.Tensor) -> torch.Tensor:
        x_hat = self.codes(x) @ self.W_dec + self.b_dec
        return (x_hat - x).square().sum(-1).mean()


class DenseBatchTopK(DenseTopK):
    """The B·k largest ReLU pre-activations of the batch, dense mask."""

    def codes(self, x: torch.Tensor) -> torch.Tensor:
        act = torch.relu((x - self.b_dec) @ self.W_enc + self.b_enc)
        flat = act.flatten()
        idx = flat.topk(K * x.shape[0]).indices
        mask = torch.zeros_like(flat, dtype=torch.bool).scatter_(0, idx, True)
        return (flat * mask).view_as(act)


REFERENCES = {"relu": DenseReLU, "topk": DenseTopK, "batchtopk": DenseBatchTopK}


# ---------------------------------------------------------------------- steps
def ours_step(model, opt):
    def step(x: torch.Tensor) -> None:
        optimizer_step(model, opt, x, 0)

    return step


def reference_step(model, opt):
    def step(x: torch.Tensor) -> None:
        for p in model.parameters():
            p.grad = None
        model.loss(x[0]).backward()
        opt.step()

    return step


def sync(device: torch.device) -> None:
    if device.type == "cuda":
        torch.cuda.synchronize(device)


def timed(step, x: torch.Tensor, device: torch.device) -> float:
    sync(device)
    t0 = time.perf_counter()
    step(x)
    sync(device)
    return time.perf_counter() - t0


def peak_step_memory(step, x: torch.Tensor, device: torch.device) -> int:
    """Bytes allocated at the peak of one step, above what was allocated before it."""
    if device.type == "cuda":
        sync(device)
        base = torch.cuda.memory_allocated(device)
        torch.cuda.reset_peak_memory_stats(device)
        step(x)
        sync(device)
        return int(torch.cuda.max_memory_allocated(device) - base)
    from torch.profiler import ProfilerActivity, profile

    with profile(activities=[ProfilerActivity.CPU], profile_memory=True) as prof:
        step(x)
    events = sorted(prof.events(), key=lambda e: e.time_range.start)
    cur = peak = 0
    for e in events:
        cur += e.cpu_memory_usage if e.name == "[memory]" else e.self_cpu_memory_usage
        peak = max(peak, cur)
    return int(peak)


# ---------------------------------------------------------------------- end to end
E2E_P = 0.01
"""Feature probability of the end-to-end data (about 5 of the 512 features active)."""
DATA_THREAD_MODES = ("off", "auto", "on")


def cli_args(arch: str, steps: int, batch: int, out: Path, mode: str, threads: int | None) -> list[str]:
    """``toymodels sae ...`` for one end-to-end run (CLI seed 0, the CPU)."""
    return [
        "sae", "--data", "features", "--arch", arch, "--n-features", str(N_FEATURES), "--d-model", str(D),
        "--dict-size", str(F), "--feature-probability", str(E2E_P), "--l1-coefficient", str(L1),
        *(["--k", str(K)] if arch in ("topk", "batchtopk") else []),
        "--steps", str(steps), "--batch-size", str(batch), "--lr", "1e-3", "--device", "cpu",
        "--out", str(out), "--overwrite", "--quiet", "--data-thread", mode,
        *(["--threads", str(threads)] if threads else []),
    ]


def true_directions(device: torch.device) -> torch.Tensor:
    """(N, D) the unit feature directions the CLI's ``--data features`` source embeds along
    (the same seed, so the reference trains on the same data distribution)."""
    from toymodels.cli.sae import SAEData, build_source

    source, _ = build_source(SAEData(n_features=N_FEATURES, d_model=D, feature_probability=E2E_P), 0, device)
    return source.directions[0]


def reference_run(arch: str, directions: torch.Tensor, steps: int, batch: int, device: torch.device) -> None:
    """The plain loop a notebook writes: build the dense SAE, then per step draw a dense batch
    (two ``rand`` calls and a ``where``, times the directions), autograd, Adam, renormalise
    the decoder rows."""
    model = REFERENCES[arch](device)
    opt = torch.optim.Adam(model.parameters(), lr=1e-3)
    g = torch.Generator(device=device).manual_seed(1)
    for _ in range(steps):
        on = torch.rand(batch, N_FEATURES, generator=g, device=device) < E2E_P
        x = torch.where(on, torch.rand(batch, N_FEATURES, generator=g, device=device), 0.0) @ directions
        opt.zero_grad(set_to_none=True)
        model.loss(x).backward()
        opt.step()
        with torch.no_grad():
            model.W_dec /= model.W_dec.norm(dim=1, keepdim=True)


def end_to_end(arch: str, steps: int, batch: int, rounds: int, threads: int | None) -> dict:
    """Median wall seconds of the reference loop and of ``toymodels sae`` with each data-thread
    mode, over ``rounds`` rotating rounds after a short warm-up run of each."""
    device = torch.device("cpu")
    directions = true_directions(device)
    with tempfile.TemporaryDirectory(prefix="bench-sae-") as tmp:
        def ours(mode: str, n_steps: int) -> None:
            run_cli(cli_args(arch, n_steps, batch, Path(tmp) / mode, mode, threads))

        runs = {"reference": lambda n_steps: reference_run(arch, directions, n_steps, batch, device),
                **{mode: (lambda n_steps, mode=mode: ours(mode, n_steps)) for mode in DATA_THREAD_MODES}}
        for run in runs.values():  # warm-up: first-call kernels, the allocator, the data thread
            run(2)

        def clocked(run) -> float:
            t0 = time.perf_counter()
            run(steps)
            return time.perf_counter() - t0

        t = interleaved({k: (lambda r=r: clocked(r)) for k, r in runs.items()}, rounds=rounds, rotate=True)
    return {"section": "end-to-end", "arch": arch, "k": K if arch in ("topk", "batchtopk") else None,
            "n_features": N_FEATURES, "d": D, "dict_size": F, "batch": batch, "steps": steps, "rounds": rounds,
            "reference_s": t["reference"], **{f"{mode}_s": t[mode] for mode in DATA_THREAD_MODES}}


# ---------------------------------------------------------------------- main
def bench_device(device: torch.device, steps: int, batch_size: int, archs: list[str], budget_s: float) -> list[dict]:
    source = SparseFeatures(N_FEATURES, 0.01, 1, d_embed=D, seed=0, device=device)
    batches = [source.sample(batch_size) for _ in range(4)]
    tcfg = TrainConfig(lr=1e-3)
    rows = []
    t_start = time.perf_counter()
    for arch in archs:
        cfg = SAEConfig(arch=arch, d_model=D, dict_size=F, l1_coefficient=L1, k=K if arch in ("topk", "batchtopk") else None)
        ours = build_sae(cfg, seed=0, device=device)
        contenders = {"ours": ours_step(ours, make_optimizer(list(ours.parameters()), tcfg))}
        if arch in REFERENCES:
            ref = REFERENCES[arch](device)
            contenders["reference"] = reference_step(ref, make_optimizer(list(ref.parameters()), tcfg))
        times: dict[str, list[float]] = {name: [] for name in contenders}
        for i in range(2):  # warm-up
            for step in contenders.values():
                step(batches[i % len(batches)])
        n = steps if time.perf_counter() - t_start < budget_s else max(3, steps // 3)
        for i in range(n):
            for name, step in contenders.items():
                times[name].append(timed(step, batches[i % len(batches)], device))
        mem = {name: peak_step_memory(step, batches[0], device) for name, step in contenders.items()}
        # ours keeps its large work buffers between steps: count them as if allocated each step
        mem["ours"] += sum(b.numel() * b.element_size() for b in ours._scratch_buffers.values())
        ms = {name: 1e3 * statistics.median(t) for name, t in times.items()}
        rows.append({
            "device": device.type,
            "arch": arch,
            "ours_ms": ms["ours"],
            "ref_ms": ms.get("reference"),
            "speedup": ms["reference"] / ms["ours"] if "reference" in ms else None,
            "ours_mem": mem["ours"],
            "ref_mem": mem.get("reference"),
            "steps": n,
        })
    return rows


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--steps", type=int, default=7, help="timed steps per contender (median reported)")
    ap.add_argument("--batch-size", type=int, default=4096)
    ap.add_argument("--device", choices=("auto", "cpu", "cuda"), default="auto", help="auto: CPU, and CUDA too when present")
    ap.add_argument("--archs", nargs="+", default=["relu", "topk", "batchtopk", "gated", "rescaled", "jumprelu", "bound"])
    ap.add_argument("--threads", type=int, default=None, help="torch CPU threads (default: torch's choice)")
    ap.add_argument("--sections", nargs="+", choices=("step", "end-to-end"), default=["step", "end-to-end"],
                    help="step: one training step beside the dense reference's; end-to-end: `toymodels sae` with "
                         "each data-thread mode beside a plain training loop (CPU; the --archs with a reference)")
    ap.add_argument("--e2e-steps", type=int, default=15, help="training steps of each end-to-end run")
    ap.add_argument("--e2e-rounds", type=int, default=3, help="alternating rounds of the end-to-end rows")
    args = ap.parse_args(argv)
    if args.threads:
        torch.set_num_threads(args.threads)
    if args.e2e_steps < 1 or args.e2e_rounds < 1:
        ap.error(f"--e2e-steps and --e2e-rounds must be >= 1, got {args.e2e_steps} and {args.e2e_rounds}")
    devices = [torch.device("cpu")] if args.device in ("auto", "cpu") else []
    if args.device == "cuda" or (args.device == "auto" and torch.cuda.is_available()):
        devices.append(torch.device("cuda"))
    t0 = time.perf_counter()
    load0 = os.getloadavg()[0]
    rows = []
    if "step" in args.sections:
        for dev in devices:
            rows += bench_device(dev, args.steps, args.batch_size, args.archs, budget_s=100.0)
    e2e = []
    if "end-to-end" in args.sections and torch.device("cpu") in devices:
        e2e = [end_to_end(arch, args.e2e_steps, args.batch_size, args.e2e_rounds, args.threads)
               for arch in args.archs if arch in REFERENCES]
    if rows:
        print_step_table(rows, args.batch_size, load0)
    if e2e:
        print(f"\nEnd to end: `toymodels sae` (in process: run folder, final metrics; --threads {args.threads or 'auto'}) "
              f"vs a plain dense training loop (same steps, batch, data); {N_FEATURES} features in D={D}, F={F}, "
              f"B={args.batch_size}, p={E2E_P:g}, {args.e2e_steps} steps, wall clock, medians of {args.e2e_rounds} "
              "rotating rounds")
        print(table(
            ["arch", "reference s", "ours off s", "ours auto s", "ours on s", "speed-up (auto)", "auto vs off"],
            [[r["arch"] + (f" (k = {r['k']})" if r["k"] else ""), f"{r['reference_s']:.2f}", f"{r['off_s']:.2f}",
              f"{r['auto_s']:.2f}", f"{r['on_s']:.2f}", f"{r['reference_s'] / r['auto_s']:.2f}x",
              f"{r['off_s'] / r['auto_s']:.2f}x"] for r in e2e]))
    load1 = load_average()
    print(f"total {time.perf_counter() - t0:.0f} s; load average {load0:.1f} -> {load1:.1f}")
    emit("sae", [{"section": "step", **r} for r in rows] + e2e, threads=torch.get_num_threads(),
         load_average=[load0, load1])
    return 0


def print_step_table(rows: list[dict], batch_size: int, load0: float) -> None:
    """The per-step table (one row per device and architecture)."""
    print(f"SAE training step: {N_FEATURES} features in D={D}, F={F}, B={batch_size}, k={K}, 1 instance; "
          f"torch {torch.__version__}, {torch.get_num_threads()} CPU thread(s), load average {load0:.1f} -> {os.getloadavg()[0]:.1f}")
    print("memory: CPU = peak bytes allocated during one step (torch profiler memory events); "
          "CUDA = max_memory_allocated during one step above the allocation before it")
    print(f"{'device':<6} {'arch':<10} {'ours ms':>9} {'ref ms':>9} {'speed-up':>9} {'ours MiB':>9} {'ref MiB':>9}")
    for r in rows:
        ref = f"{r['ref_ms']:>9.1f}" if r["ref_ms"] is not None else f"{'-':>9}"
        sp = f"{r['speedup']:>8.2f}x" if r["speedup"] is not None else f"{'-':>9}"
        rm = f"{r['ref_mem'] / 2**20:>9.1f}" if r["ref_mem"] is not None else f"{'-':>9}"
        print(f"{r['device']:<6} {r['arch']:<10} {r['ours_ms']:>9.1f} {ref} {sp} {r['ours_mem'] / 2**20:>9.1f} {rm}")
    print(f"medians of {min(r['steps'] for r in rows)}-{max(r['steps'] for r in rows)} "
          "interleaved steps after 2 warm-up steps")


if __name__ == "__main__":
    sys.exit(main())
