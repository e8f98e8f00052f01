"""GPU speed tables (issue 13): the package against a plain einsum reference, eager and
under ``torch.compile``, side by side in one process.

    .venv/bin/python benchmarks/bench_gpu.py            # on a CUDA machine: every table
    .venv/bin/python benchmarks/bench_gpu.py --only tms-tiny sae-topk-big
    .venv/bin/python benchmarks/bench_gpu.py --smoke --device cpu   # tiny shapes, any device

Without CUDA it prints one line and exits 0 (``make bench`` runs it everywhere).

Workloads (the issue's table; fp32 unless a column says otherwise):

- ``tms-sweep``  1000 instances × (200 → 20), log-spaced p (1 → 0.02 over instances), batch 1024:
  ms/step and peak memory. Targets: ≤ 1.5 ms/step, ≥ 3× the compiled reference, ≤ 4 GB.
- ``tms-tiny``   8 × (5 → 2), p = 0.05, batch 1024: steps/s. Target ≥ 10,000 steps/s.
- ``tms-mid``    20 × (200 → 20), p = 0.05, batch 1024 (``bench_tms.py``'s case).
- ``sae-topk-small``  TopK k = 32, D = 256, F = 2048, B = 4096 (``bench_sae.py``'s case);
  ``sae-topk-big`` TopK k = 32, D = 512, F = 16384 (target ≤ 3 ms/step); ``sae-batchtopk-big``;
  ``sae-relu-big`` ReLU D = 512, F = 16384 (target ≥ 1.2× the dense reference); the other
  architectures (gated, jumprelu) against the dense ReLU reference (target ≥ 1.0×).

Contenders: ``package`` — :func:`toymodels.train.train` (toy models; also with
``cuda_graph="on"``, ``fused_step="on"``, TF32, and the compiled
:class:`toymodels.accel.FusedTMSStep` driven directly) or
:func:`toymodels.train.optimizer_step` (SAEs; also with bf16 matmuls where the step takes
them); ``reference`` — what a notebook writes: two ``rand`` calls and a ``where`` for the
data, einsum forward, autograd, fused ``torch.optim.Adam``; ``compiled`` — the same
reference with its step under ``torch.compile`` (``reduce-overhead`` for tiny models, which
adds CUDA graphs). Each contender runs ``--rounds`` alternating rounds after a warm-up
(compilation excluded); the tables show medians.
"""
from __future__ import annotations

import argparse
import math
import sys
from pathlib import Path
from typing import Callable

import torch

sys.path.insert(0, str(Path(__file__).resolve().parent))
sys.path.insert(0, str(Path(__file__).resolve().parents[1]))
from _common import device_line, interleaved, table, timed  # noqa: E402

# toymodels is imported in main(), after the CUDA check: without a GPU this script costs
# no more than importing torch.
SparseFeatures = TMSConfig = build_model = FusedTMSStep = check_bf16 = matmul_precision = None
SAEConfig = build_sae = TrainConfig = make_optimizer = optimizer_step = train = None


def _import_package() -> None:
    global SparseFeatures, TMSConfig, build_model, FusedTMSStep, check_bf16, matmul_precision
    global SAEConfig, build_sae, TrainConfig, make_optimizer, optimizer_step, train
    from toymodels import SparseFeatures, TMSConfig, build_model
    from toymodels.train.accel import FusedTMSStep
    from toymodels.train.accel.precision import check_bf16, matmul_precision
    from toymodels.sae import SAEConfig, build_sae
    from toymodels.train import TrainConfig, make_optimizer, optimizer_step, train

Runner = Callable[[int], None]  # runs that many training steps


# ---------------------------------------------------------------------- toy models
def log_spaced_p(n_inst: int, hi: float = 1.0, lo: float = 0.02) -> torch.Tensor:
    if n_inst == 1:
        return torch.tensor([hi])
    return torch.logspace(math.log10(hi), math.log10(lo), n_inst)


def tms_reference(n_inst: int, n: int, m: int, p: torch.Tensor, batch: int, lr: float, device: torch.device,
                  compile_mode: str | None) -> Runner:
    """The notebook: W (I, M, N), b (I, N), data drawn in the step, einsum, autograd, Adam.
    With ``compile_mode`` the step (sampling, forward, backward) is one ``torch.compile``d
    function drawing from the global RNG (a generator argument would break the graph)."""
    torch.manual_seed(0)
    W = torch.nn.Parameter(torch.randn(n_inst, m, n, device=device) * (2 / (m + n)) ** 0.5)
    b = torch.nn.Parameter(torch.zeros(n_inst, n, device=device))
    opt = torch.optim.Adam([W, b], lr=lr, fused=device.type == "cuda")
    p_I11 = p.to(device).reshape(n_inst, 1, 1)

    def fwd_bwd() -> None:
        mags = torch.rand(n_inst, batch, n, device=device)
        on = torch.rand(n_inst, batch, n, device=device) < p_I11
        x = torch.where(on, mags, 0.0)
        h = torch.einsum("ibn,imn->ibm", x, W)
        out = torch.relu(torch.einsum("ibm,imn->ibn", h, W) + b[:, None, :])
        loss = (x - out).square().mean(dim=(1, 2)).sum()
        loss.backward()

    step_fn = torch.compile(fwd_bwd, mode=compile_mode) if compile_mode else fwd_bwd
    graphs = compile_mode == "reduce-overhead"
    for q in (W, b):  # our own gradient buffers: backward accumulates into them, never aliases
        q.grad = torch.zeros_like(q)  # a cudagraph output that the next replay overwrites

    def run(steps: int) -> None:
        for _ in range(steps):
            if graphs:
                torch.compiler.cudagraph_mark_step_begin()
            step_fn()
            opt.step()
            opt.zero_grad(set_to_none=False)

    return run


def tms_package(n_inst: int, n: int, m: int, p: torch.Tensor, batch: int, lr: float, device: torch.device,
                **train_kw) -> Runner:
    model = build_model(TMSConfig(n, m, n_inst), seed=0, device=device)
    source = SparseFeatures(n, p if n_inst > 1 else float(p[0]), n_inst, seed=1, device=device)

    def run(steps: int) -> None:
        train(model, source, TrainConfig(steps=steps, batch_size=batch, lr=lr, quiet=True, eval_samples=1, **train_kw))

    return run


def tms_fused(n_inst: int, n: int, m: int, p: torch.Tensor, batch: int, lr: float, device: torch.device,
              mode: str | None) -> Runner:
    """The compiled fused step (toymodels.accel.FusedTMSStep) on the package's data stream,
    k steps of data drawn per call as the trainer does."""
    model = build_model(TMSConfig(n, m, n_inst), seed=0, device=device)
    source = SparseFeatures(n, p if n_inst > 1 else float(p[0]), n_inst, seed=1, device=device)
    step = FusedTMSStep(model, TrainConfig(lr=lr), compile=True, mode=mode)
    k = max(1, (1 << 20) // (n_inst * batch * n))
    # Every block holds k steps, so every slice has the same strides (a new stride would
    # recompile); a block left unfinished by one call is finished by the next.
    state = {"block": None, "i": k}

    def run(steps: int) -> None:
        for _ in range(steps):
            if state["i"] == k:
                state["block"], state["i"] = source.sample(batch * k), 0
            i = state["i"]
            step(state["block"][:, i * batch : (i + 1) * batch], lr)
            state["i"] += 1

    return run


def bench_tms(name: str, n_inst: int, n: int, m: int, p: torch.Tensor, device: torch.device, steps: int,
              rounds: int, batch: int, memory: bool) -> str:
    tiny = n_inst * n * batch <= (1 << 16)
    ref_mode = "reduce-overhead" if tiny and device.type == "cuda" else None
    lr = 1e-3
    contenders: dict[str, Runner] = {
        "package": tms_package(n_inst, n, m, p, batch, lr, device),
        "reference (eager)": tms_reference(n_inst, n, m, p, batch, lr, device, None),
        f"reference (compile{', ' + ref_mode if ref_mode else ''})": tms_reference(
            n_inst, n, m, p, batch, lr, device, ref_mode or "default"),
    }
    if device.type == "cuda":
        contenders["package, cuda_graph=on"] = tms_package(n_inst, n, m, p, batch, lr, device, cuda_graph="on")
        contenders["package, fused_step=on"] = tms_package(n_inst, n, m, p, batch, lr, device, fused_step="on")
        contenders["package, tf32"] = tms_package(n_inst, n, m, p, batch, lr, device, matmul_precision="tf32")
    contenders[f"fused step (compile{', ' + ref_mode if ref_mode else ''})"] = tms_fused(
        n_inst, n, m, p, batch, lr, device, ref_mode)
    for run in contenders.values():
        run(steps)  # warm-up: compilation, capture, allocator — with the timed number of steps, so the
        # trainer's prefetch blocks (and the fused step's input strides) are those timed
    peak = {}
    if memory and device.type == "cuda":
        for k, run in contenders.items():
            torch.cuda.synchronize(device)
            torch.cuda.reset_peak_memory_stats(device)
            run(3)
            torch.cuda.synchronize(device)
            peak[k] = torch.cuda.max_memory_allocated(device)
    t = interleaved({k: (lambda r=r: timed(lambda: r(steps), device)) for k, r in contenders.items()}, rounds=rounds)
    extra = {}
    if memory:  # drawing the dense batch alone, for scale
        src = SparseFeatures(n, p, n_inst, seed=1, device=device, sparse_threshold=0.0)
        extra["(sampling the dense batch alone)"] = timed(lambda: [src.sample(batch) for _ in range(steps)], device)
    ref_c = next(v for k, v in t.items() if k.startswith("reference (compile"))
    rows = []
    for k, sec in {**t, **extra}.items():
        rows.append([k, f"{1e3 * sec / steps:.3f}", f"{steps / sec:,.0f}",
                     f"{ref_c / sec:.2f}x" if k in t else "", f"{peak[k] / 2**30:.2f}" if k in peak else ""])
    head = f"{name}: {n_inst} x ({n} -> {m}), batch {batch}, {steps} steps x {rounds} rounds, {device_line(device)}"
    return head + "\n" + table(["contender", "ms/step", "steps/s", "vs compiled ref", "peak GiB"], rows)


# ---------------------------------------------------------------------- SAEs
class DenseSAE(torch.nn.Module):
    """Plain dense reference SAEs (one instance): ReLU + decoder-norm-weighted L1, TopK
    (topk of the dense pre-activations scattered into a dense code) or BatchTopK."""

    def __init__(self, arch: str, d: int, f: int, k: int, l1: float, device: torch.device) -> None:
        super().__init__()
        g = torch.Generator(device=device).manual_seed(0)
        W = torch.randn(f, d, generator=g, device=device)
        W = W / W.norm(dim=1, keepdim=True)
        self.W_dec = torch.nn.Parameter(W)
        self.W_enc = torch.nn.Parameter(W.t().clone())
        self.b_enc = torch.nn.Parameter(torch.zeros(f, device=device))
        self.b_dec = torch.nn.Parameter(torch.zeros(d, device=device))
        self.arch, self.k, self.l1 = arch, k, l1

    def loss(self, x: torch.Tensor) -> torch.Tensor:
        pre = (x - self.b_dec) @ self.W_enc + self.b_enc
        if self.arch == "topk":
            vals, idx = pre.topk(self.k, dim=-1)
            code = torch.zeros_like(pre).scatter(-1, idx, torch.relu(vals))
        elif self.arch == "batchtopk":
            act = torch.relu(pre).flatten()
            idx = act.topk(self.k * x.shape[0]).indices
            code = torch.zeros_like(act).scatter(0, idx, act[idx]).view_as(pre)
        else:
            code = torch.relu(pre)
        mse = ((code @ self.W_dec + self.b_dec) - x).square().sum(-1).mean()
        if self.arch == "relu":
            return mse + self.l1 * (code * self.W_dec.norm(dim=1)).sum(-1).mean()
        return mse


def bench_sae(name: str, arch: str, d: int, f: int, k: int, batch: int, device: torch.device, steps: int,
              rounds: int) -> str:
    l1 = 1e-3
    src = SparseFeatures(4 * d, 8 / (4 * d), 1, d_embed=d, seed=0, device=device)
    xs = [src.sample(batch) for _ in range(4)]  # (1, B, D)
    tcfg = TrainConfig(lr=1e-3)
    contenders: dict[str, Runner] = {}

    def package(precision: str) -> Runner:
        cfg = SAEConfig(arch=arch, d_model=d, dict_size=f, l1_coefficient=l1, k=k if arch in ("topk", "batchtopk") else None)
        sae = build_sae(cfg, seed=0, device=device)
        opt = make_optimizer(list(sae.parameters()), tcfg)
        if precision == "bf16":
            check_bf16(sae, d, device)
        state = {"i": 0}

        def run(n: int) -> None:
            with matmul_precision(precision, device):
                for _ in range(n):
                    optimizer_step(sae, opt, xs[state["i"] % 4], state["i"])
                    state["i"] += 1

        return run

    def reference(mode: str | None) -> Runner:
        ref_arch = arch if arch in ("relu", "topk", "batchtopk") else "relu"
        ref = DenseSAE(ref_arch, d, f, k, l1, device)
        opt = torch.optim.Adam(ref.parameters(), lr=1e-3, fused=device.type == "cuda")

        def fwd_bwd(x: torch.Tensor) -> None:
            ref.loss(x).backward()

        fn = torch.compile(fwd_bwd, mode=mode) if mode else fwd_bwd
        state = {"i": 0}

        def run(n: int) -> None:
            for _ in range(n):
                fn(xs[state["i"] % 4][0])
                opt.step()
                opt.zero_grad(set_to_none=False)
                state["i"] += 1

        return run

    contenders["package"] = package("fp32")
    if device.type == "cuda":
        contenders["package, tf32"] = package("tf32")
    try:
        contenders["package, bf16"] = package("bf16")
    except ValueError as e:  # the architecture's hand-derived step cannot run under autocast
        print(f"  ({name}: bf16 skipped: {str(e)[:100]}...)")
    ref_name = "dense " + (arch if arch in ("relu", "topk", "batchtopk") else "relu")
    contenders[f"{ref_name} (eager)"] = reference(None)
    contenders[f"{ref_name} (compile)"] = reference("default")
    for run in contenders.values():
        run(3)
    t = interleaved({c: (lambda r=r: timed(lambda: r(steps), device)) for c, r in contenders.items()}, rounds=rounds)
    ref_e = t[f"{ref_name} (eager)"]
    rows = [[c, f"{1e3 * s / steps:.3f}", f"{ref_e / s:.2f}x"] for c, s in t.items()]
    head = f"{name}: {arch} SAE, D = {d}, F = {f}{f', k = {k}' if arch in ('topk', 'batchtopk') else ''}, B = {batch}, {device_line(device)}"
    return head + "\n" + table(["contender", "ms/step", "vs dense eager"], rows)


# ---------------------------------------------------------------------- main
def workloads(smoke: bool) -> dict[str, Callable[[torch.device, int], str]]:
    s = smoke
    return {
        "tms-sweep": lambda dev, r: bench_tms("tms-sweep", 8 if s else 1000, 20 if s else 200, 4 if s else 20,
                                              log_spaced_p(8 if s else 1000), dev, 3 if s else 300, r, 64 if s else 1024, True),
        "tms-tiny": lambda dev, r: bench_tms("tms-tiny", 8, 5, 2, torch.full((8,), 0.05), dev, 20 if s else 3000, r,
                                             64 if s else 1024, False),
        "tms-mid": lambda dev, r: bench_tms("tms-mid", 20, 20 if s else 200, 4 if s else 20, torch.full((20,), 0.05), dev,
                                            3 if s else 1000, r, 64 if s else 1024, False),
        **{
            f"sae-{arch}-{size}": (lambda dev, r, arch=arch, size=size: bench_sae(
                f"sae-{arch}-{size}", arch, *((16, 64, 4, 128) if s else ((256, 2048, 32, 4096) if size == "small" else (512, 16384, 32, 4096))),
                device=dev, steps=3 if s else 30, rounds=r))
            for arch, size in [("topk", "small"), ("batchtopk", "small"), ("topk", "big"), ("batchtopk", "big"),
                               ("relu", "big"), ("gated", "big"), ("jumprelu", "big")]
        },
    }


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--device", default="cuda", help="cuda (default); cpu only with --smoke")
    ap.add_argument("--only", nargs="+", default=None, help="workload names (see the module docstring)")
    ap.add_argument("--rounds", type=int, default=3)
    ap.add_argument("--smoke", action="store_true", help="tiny shapes and few steps: checks the code path on any device")
    args = ap.parse_args(argv)
    if args.device == "cuda" and not torch.cuda.is_available():
        print("bench_gpu: no CUDA device (torch.cuda.is_available() is False); GPU tables skipped")
        return 0
    if args.device != "cuda" and not args.smoke:
        print("bench_gpu: the GPU tables need --device cuda (use --smoke to check the code path on the CPU)")
        return 0
    _import_package()
    import torch._dynamo.config as dynamo_config

    for name in ("recompile_limit", "cache_size_limit"):  # many shapes compile the same functions
        if hasattr(dynamo_config, name):
            setattr(dynamo_config, name, 64)
    device = torch.device(args.device)
    todo = workloads(args.smoke)
    unknown = sorted(set(args.only or []) - set(todo))
    if unknown:
        ap.error(f"unknown workload(s) {unknown}; known: {sorted(todo)}")
    for name in args.only or todo:
        print(todo[name](device, 1 if args.smoke else args.rounds), flush=True)
        print()
    return 0


if __name__ == "__main__":
    sys.exit(main())
