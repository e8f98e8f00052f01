"""GPU paths (issue 13): matmul precision, graph-replayed steps, the fused toy-model step.

Runs on the CPU: config validation and CLI flags, the fallbacks (cuda_graph on the CPU),
the graph's step function against the trainer's step (bit for bit, eagerly), the fused
step against the reference, bf16/tf32 on the CPU, and that importing the package never
imports Triton. Marked ``requires_cuda`` (skipped here): graph capture and replay against
the eager loop, resume and the NaN guard under graphs, the fused step compiled on CUDA,
TF32/bf16 on CUDA, and the sparse SAE kernels on CUDA against the CPU.
"""
from __future__ import annotations

import dataclasses
import json
import subprocess
import sys

import pytest
import torch

from toymodels import SparseFeatures, TMSConfig, TrainingDiverged, build_model
import toymodels.train.steps.fused as fused_strategy
from toymodels.train.accel import FusedTMSStep, functional_step, matmul_precision, use_cuda_graph
from toymodels.train.accel.fused import use_fused_step
from toymodels.train.accel.graphs import ineligible, lean_state
from toymodels.cli.configargs import field_specs
from toymodels.train.runs import RunFolderError
from toymodels.sae import SAEConfig, build_sae
from toymodels.train import TrainConfig, make_optimizer, optimizer_step, train

requires_cuda = pytest.mark.requires_cuda


def toy(kind: str = "relu-output", n_inst: int = 4, device: str | torch.device = "cpu"):
    model = build_model(TMSConfig(6, 3, n_inst, kind=kind), seed=0, device=device)
    source = SparseFeatures(6, 0.3, n_inst, seed=1, device=device)
    return model, source


def cfg(**kw) -> TrainConfig:
    base = dict(steps=30, batch_size=32, lr=3e-3, quiet=True, eval_samples=256, log_every=5, checkpoint_every=10)
    return TrainConfig(**{**base, **kw})


# ---------------------------------------------------------------------- import hygiene
def test_importing_the_package_never_imports_triton():
    # what importing torch alone loads does not count (a CUDA build might load more)
    code = (
        "import sys, torch; base = set(sys.modules); "
        "import toymodels, toymodels.accel, toymodels.train, toymodels.sae; "
        "new = set(sys.modules) - base; "
        "assert not any(m == 'triton' or m.startswith('triton.') for m in new), 'triton imported'; "
        "assert not any(m.startswith('torch._inductor') for m in new), 'inductor imported'; "
        "assert 'triton' not in sys.modules or 'triton' in base"
    )
    done = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=120)
    assert done.returncode == 0, done.stderr[-2000:]


@pytest.mark.skipif(torch.cuda.is_available(), reason="checks the no-CUDA exit of the GPU benchmark")
def test_gpu_benchmark_says_no_cuda_and_exits_0_without_a_gpu():
    from pathlib import Path

    script = Path(__file__).resolve().parents[1] / "benchmarks" / "bench_gpu.py"
    done = subprocess.run([sys.executable, str(script)], capture_output=True, text=True, timeout=120)
    assert done.returncode == 0, done.stderr[-2000:]
    assert done.stdout.strip().splitlines() == ["bench_gpu: no CUDA device (torch.cuda.is_available() is False); GPU tables skipped"]


# ---------------------------------------------------------------------- config and flags
@pytest.mark.parametrize("field,value", [("matmul_precision", "fp16"), ("matmul_precision", "FP32"), ("cuda_graph", True),
                                         ("cuda_graph", "yes"), ("fused_step", "compile")])
def test_bad_gpu_options_are_refused_naming_the_field(field, value):
    with pytest.raises(ValueError, match=field):
        TrainConfig(**{field: value})


def test_gpu_options_become_cli_flags_with_their_choices():
    specs = {s.flag: s for s in field_specs(TrainConfig)}
    assert specs["--matmul-precision"].choices == ("fp32", "tf32", "bf16")
    assert specs["--matmul-precision"].default == "fp32"
    assert specs["--cuda-graph"].choices == ("off", "on", "auto")
    assert specs["--cuda-graph"].default == "off"
    assert specs["--fused-step"].choices == ("off", "on", "auto") and specs["--fused-step"].default == "off"
    assert "reference" in specs["--matmul-precision"].help and "CPU" in specs["--cuda-graph"].help


def test_default_gpu_options_stay_out_of_config_json_and_others_are_recorded(tmp_path):
    model, source = toy()
    train(model, source, cfg(steps=5), tmp_path / "a")
    rec = json.loads((tmp_path / "a" / "config.json").read_text())["train"]
    assert "matmul_precision" not in rec and "cuda_graph" not in rec and "fused_step" not in rec and rec["steps"] == 5
    model, source = toy()
    train(model, source, cfg(steps=5, matmul_precision="tf32"), tmp_path / "b")
    assert json.loads((tmp_path / "b" / "config.json").read_text())["train"]["matmul_precision"] == "tf32"


def test_resume_refuses_a_changed_precision(tmp_path):
    model, source = toy("hidden-relu")
    train(model, source, cfg(steps=10), tmp_path / "r")
    model, source = toy("hidden-relu")
    with pytest.raises(RunFolderError, match="matmul_precision"):
        train(model, source, cfg(steps=20, matmul_precision="bf16"), tmp_path / "r", resume=True)


# ---------------------------------------------------------------------- cuda_graph fallbacks
def test_cuda_graph_on_is_refused_on_the_cpu_before_any_work(tmp_path):
    model, source = toy()
    w0 = model.W_IMN.detach().clone()
    with pytest.raises(ValueError, match="cuda_graph = 'on'.*CUDA"):
        train(model, source, cfg(cuda_graph="on"), tmp_path / "g")
    assert not (tmp_path / "g").exists() or not any((tmp_path / "g").iterdir())
    assert torch.equal(model.W_IMN, w0)


def test_cuda_graph_auto_on_the_cpu_is_the_eager_run_bit_for_bit():
    runs = []
    for mode in ("off", "auto"):
        model, source = toy()
        res = train(model, source, cfg(cuda_graph=mode))
        runs.append((res.history, res.final_loss, model.W_IMN.detach().clone()))
    assert runs[0][0] == runs[1][0]
    assert torch.equal(runs[0][1], runs[1][1]) and torch.equal(runs[0][2], runs[1][2])


def test_graph_eligibility_names_the_reason():
    model, _ = toy()
    opt = make_optimizer(list(model.parameters()), cfg())
    cuda = torch.device("cuda")  # only inspected, nothing is allocated on it
    assert ineligible(model, opt, cuda) is None
    assert "CUDA" in ineligible(model, opt, torch.device("cpu"))
    sae = build_sae(SAEConfig(arch="topk", d_model=6, dict_size=12, k=2), seed=0)
    sae_opt = make_optimizer(list(sae.parameters()), cfg())
    assert "hooks" in ineligible(sae, sae_opt, cuda)
    plain = torch.optim.Adam(model.parameters(), lr=1e-3)
    assert "fused" in ineligible(model, plain, cuda)
    # the modes: off never, auto falls back silently, on raises naming the reason
    assert use_cuda_graph("off", model, opt, cuda, 10) is False
    assert use_cuda_graph("auto", model, opt, cuda, 10) is True
    assert use_cuda_graph("auto", model, opt, cuda, 1 << 30) is False  # a big batch is not launch-bound
    assert use_cuda_graph("auto", sae, sae_opt, cuda, 10) is False
    with pytest.raises(ValueError, match="hooks"):
        use_cuda_graph("on", sae, sae_opt, cuda, 10)


@pytest.mark.parametrize("kind,optimizer,wd", [("relu-output", "adam", 0.0), ("hidden-relu", "adam", 0.01), ("linear", "adamw", 0.05)])
def test_the_graphed_step_function_equals_the_trainer_step_bit_for_bit(kind, optimizer, wd):
    """What GraphedStep records — loss_and_grad, the step counters, the fused kernel with a
    tensor learning rate — run eagerly, against optimizer_step with the same optimizer."""
    c = cfg(optimizer=optimizer, weight_decay=wd)
    (m1, src), (m2, _) = toy(kind), toy(kind)
    xs = [src.sample(32) for _ in range(12)]
    o1, o2 = make_optimizer(list(m1.parameters()), c), make_optimizer(list(m2.parameters()), c)
    optimizer_step(m1, o1, xs[0], 0)
    optimizer_step(m2, o2, xs[0], 0)
    state = lean_state(o2)
    assert state is not None
    lr = torch.tensor(c.lr, dtype=torch.float64)  # the CPU kernel takes lr in double, as a float
    for i, x in enumerate(xs[1:], 1):
        a = optimizer_step(m1, o1, x, i)
        for p in state[0]:
            p.grad = None
        b = functional_step(m2, o2, state, x, lr)
        assert torch.equal(a, b)
    for p, q in zip(m1.parameters(), m2.parameters()):
        assert torch.equal(p, q)
    assert all(torch.equal(u, v) for u, v in zip(o1.state_dict()["state"][0].values(), o2.state_dict()["state"][0].values()))


# ---------------------------------------------------------------------- fused toy-model step
def _fused_vs_reference(kind, optimizer, wd, device, compile=False, steps=25):
    c = cfg(optimizer=optimizer, weight_decay=wd, lr=1e-2)
    (m1, src), (m2, _) = toy(kind, device=device), toy(kind, device=device)
    o1 = make_optimizer(list(m1.parameters()), c)
    fused = FusedTMSStep(m2, c, compile=compile)
    for i in range(steps):
        x = src.sample(64)
        a = optimizer_step(m1, o1, x, i)
        b = fused(x, c.lr)
        torch.testing.assert_close(b, a, rtol=1e-5, atol=1e-7)
    for p, q in zip(m1.parameters(), m2.parameters()):
        torch.testing.assert_close(q, p, rtol=1e-4, atol=1e-6)
    # the moments are the optimizer's, so the gradients agreed too
    st = o1.state_dict()["state"]
    torch.testing.assert_close(fused.moments[0], st[0]["exp_avg"], rtol=1e-4, atol=1e-6)
    torch.testing.assert_close(fused.moments[2], st[1]["exp_avg"], rtol=1e-4, atol=1e-6)
    assert float(fused.t) == steps


@pytest.mark.parametrize("kind,optimizer,wd", [("relu-output", "adam", 0.0), ("relu-output", "adam", 0.01), ("linear", "adamw", 0.05)])
def test_fused_step_matches_the_reference_step(kind, optimizer, wd):
    _fused_vs_reference(kind, optimizer, wd, "cpu")


@pytest.mark.slow
def test_fused_step_compiled_matches_the_reference_step_on_the_cpu():
    _fused_vs_reference("relu-output", "adam", 0.0, "cpu", compile=True, steps=10)


def test_fused_step_refuses_models_it_does_not_implement():
    model, _ = toy("hidden-relu")
    with pytest.raises(ValueError, match="relu-output, linear"):
        FusedTMSStep(model, cfg())


def test_fused_step_modes_and_their_refusals(tmp_path):
    relu, _ = toy()
    hidden, src = toy("hidden-relu")
    cuda, cpu = torch.device("cuda"), torch.device("cpu")
    assert use_fused_step("off", relu, cuda) is False
    assert use_fused_step("auto", relu, cuda) is True and use_fused_step("auto", relu, cpu) is False
    assert use_fused_step("auto", hidden, cuda) is False and use_fused_step("auto", relu, cuda, "bf16") is False
    assert use_fused_step("on", relu, cpu) is True
    with pytest.raises(ValueError, match="fused_step = 'on'.*relu-output, linear"):
        train(hidden, src, cfg(fused_step="on"), tmp_path / "h")
    assert not (tmp_path / "h").exists()
    with pytest.raises(ValueError, match="fused_step = 'on'.*bf16"):
        use_fused_step("on", relu, cpu, "bf16")
    with pytest.raises(ValueError, match="exclude each other"):
        TrainConfig(fused_step="on", cuda_graph="on")


@pytest.fixture
def eager_fused(monkeypatch):
    """The trainer's fused step without torch.compile (the compiled one: the slow test)."""
    class Eager(FusedTMSStep):
        def __init__(self, model, config, **kw):
            kw["compile"] = False
            super().__init__(model, config, **kw)

    monkeypatch.setattr(fused_strategy, "FusedTMSStep", Eager)


@pytest.mark.parametrize("optimizer,wd,schedule", [("adam", 0.0, "cosine"), ("adamw", 0.05, "constant")])
def test_trainer_fused_step_matches_the_reference_path(eager_fused, optimizer, wd, schedule):
    # steps = 23 with prefetch blocks of 4 steps: the last block is short (padded to full length)
    c = cfg(steps=23, optimizer=optimizer, weight_decay=wd, schedule=schedule, warmup_steps=3,
            prefetch_elements=4 * 4 * 32 * 6)
    runs = {}
    for mode in ("off", "on"):
        model, source = toy()
        res = train(model, source, dataclasses.replace(c, fused_step=mode))
        runs[mode] = (res, model.W_IMN.detach().clone(), source.get_state())
    (a, wa, sa), (b, wb, sb) = runs["off"], runs["on"]
    assert [h["step"] for h in a.history] == [h["step"] for h in b.history]
    for ha, hb in zip(a.history, b.history):
        torch.testing.assert_close(torch.tensor(hb["loss"]), torch.tensor(ha["loss"]), rtol=1e-5, atol=1e-7)
    torch.testing.assert_close(wb, wa, rtol=1e-4, atol=1e-6)
    torch.testing.assert_close(b.final_loss, a.final_loss, rtol=1e-4, atol=1e-7)
    assert torch.equal(sa, sb)  # the same data drawn


def test_trainer_fused_step_checkpoints_and_resumes(eager_fused, tmp_path):
    c = cfg(prefetch_elements=0, fused_step="on")
    full_model, full_src = toy()
    full = train(full_model, full_src, dataclasses.replace(c, steps=40), tmp_path / "full")
    m, s = toy()
    train(m, s, dataclasses.replace(c, steps=20), tmp_path / "part")
    m, s = toy()
    resumed = train(m, s, dataclasses.replace(c, steps=40), tmp_path / "part", resume=True)
    torch.testing.assert_close(resumed.final_loss, full.final_loss, rtol=1e-5, atol=1e-7)
    torch.testing.assert_close(m.W_IMN, full_model.W_IMN, rtol=1e-5, atol=1e-7)


@pytest.mark.slow
def test_trainer_fused_step_compiled_matches_the_reference_on_the_cpu():
    c = cfg(steps=23, prefetch_elements=4 * 4 * 32 * 6)
    out = {}
    for mode in ("off", "on"):
        model, source = toy()
        out[mode] = train(model, source, dataclasses.replace(c, fused_step=mode)).final_loss
    torch.testing.assert_close(out["on"], out["off"], rtol=1e-4, atol=1e-7)


# ---------------------------------------------------------------------- precision
def test_tf32_is_a_no_op_on_the_cpu():
    out = []
    for prec in ("fp32", "tf32"):
        model, source = toy()
        res = train(model, source, cfg(matmul_precision=prec))
        out.append((res.history, model.W_IMN.detach().clone()))
    assert out[0][0] == out[1][0] and torch.equal(out[0][1], out[1][1])


def test_bf16_is_refused_before_any_work_for_a_step_that_cannot_run_under_autocast(tmp_path):
    """The ReLU-output model's hand-derived step updates float32 buffers in place with
    bf16 products: refused naming matmul_precision, nothing trained, no run folder."""
    model, source = toy("relu-output")
    w0, s0 = model.W_IMN.detach().clone(), source.get_state()
    with pytest.raises(ValueError, match="matmul_precision = 'bf16' is not supported for ReLUOutput"):
        train(model, source, cfg(matmul_precision="bf16"), tmp_path / "bf")
    assert torch.equal(model.W_IMN, w0) and torch.equal(source.get_state(), s0)
    assert not (tmp_path / "bf").exists()


@pytest.mark.parametrize("kind", ["hidden-relu", "computation"])  # autograd gradients
def test_bf16_trains_close_to_fp32_and_leaves_the_parameters_fp32(kind):
    out = {}
    for prec in ("fp32", "bf16"):
        model, source = toy(kind)
        res = train(model, source, cfg(matmul_precision=prec, steps=60))
        out[prec] = res
        assert all(p.dtype == torch.float32 and p.grad_dtype == torch.float32 for p in model.parameters())
    a, b = out["fp32"].final_loss, out["bf16"].final_loss
    assert not torch.equal(a, b)  # bf16 really changed the arithmetic
    torch.testing.assert_close(b, a, rtol=0.1, atol=1e-3)
    assert bool(out["bf16"].converged.all())


def test_matmul_precision_rejects_an_unknown_name():
    with pytest.raises(ValueError, match="matmul_precision"):
        with matmul_precision("fp8", "cpu"):
            pass


# ---------------------------------------------------------------------- on `--device`
def test_gpu_options_train_on_the_test_device(device):
    """`pytest --device cuda` runs this on CUDA (graphs and TF32 then active)."""
    model, source = toy(device=device)
    graph = "on" if device.type == "cuda" else "auto"
    res = train(model, source, cfg(cuda_graph=graph, matmul_precision="tf32", steps=40))
    assert bool(torch.isfinite(res.final_loss).all()) and bool(res.converged.all())
    assert [h["step"] for h in res.history] == list(range(5, 41, 5))


@pytest.mark.parametrize("arch", ["topk", "batchtopk"])
def test_sparse_saes_train_on_the_test_device(arch, device):
    src = SparseFeatures(24, 0.1, d_embed=12, seed=1, device=device)
    sae = build_sae(SAEConfig(arch=arch, d_model=12, dict_size=48, n_instances=2, k=3), seed=0, device=device)
    res = train(sae, src, cfg(steps=20, batch_size=128))
    assert bool(torch.isfinite(res.final_loss).all())
    # bf16 autocast: their steps take it (the sparse kernels included); the loss stays close
    src = SparseFeatures(24, 0.1, d_embed=12, seed=1, device=device)
    sae16 = build_sae(SAEConfig(arch=arch, d_model=12, dict_size=48, n_instances=2, k=3), seed=0, device=device)
    res16 = train(sae16, src, cfg(steps=20, batch_size=128, matmul_precision="bf16"))
    torch.testing.assert_close(res16.final_loss, res.final_loss, rtol=0.1, atol=1e-3)


# ---------------------------------------------------------------------- CUDA only
@requires_cuda
@pytest.mark.parametrize("kind", ["relu-output", "hidden-relu", "computation"])
def test_graph_replay_matches_the_eager_loop_on_cuda(kind):
    c = cfg(steps=60, warmup_steps=10, schedule="cosine", final_lr_fraction=0.1, log_every=3)
    runs = {}
    for mode in ("off", "on"):
        model, source = toy(kind, device="cuda")
        res = train(model, source, dataclasses.replace(c, cuda_graph=mode))
        runs[mode] = (res, [p.detach().clone() for p in model.parameters()])
    (e, pe), (g, pg) = runs["off"], runs["on"]
    assert [h["step"] for h in e.history] == [h["step"] for h in g.history]
    for he, hg in zip(e.history, g.history):
        assert he["lr"] == hg["lr"]
        torch.testing.assert_close(torch.tensor(hg["loss"]), torch.tensor(he["loss"]), rtol=1e-4, atol=1e-6)
    for p, q in zip(pe, pg):
        torch.testing.assert_close(q, p, rtol=1e-4, atol=1e-5)
    torch.testing.assert_close(g.final_loss, e.final_loss, rtol=1e-4, atol=1e-6)


def _graph(device: torch.device) -> str:
    return "on" if device.type == "cuda" else "auto"  # auto: the eager loop on the CPU


def test_graph_replay_checkpoints_and_resumes(tmp_path, device):
    """On `--device cuda` the steps are graph-replayed; a run resumed from a checkpoint
    written under replay equals the uninterrupted one."""
    # prefetch_elements=0: one draw per step, so a 20-step run draws what a 40-step run
    # draws first (with prefetching the block length depends on steps)
    c = cfg(prefetch_elements=0, cuda_graph=_graph(device))
    full_model, full_src = toy(device=device)
    full = train(full_model, full_src, dataclasses.replace(c, steps=40), tmp_path / "full")
    m, s = toy(device=device)
    train(m, s, dataclasses.replace(c, steps=20), tmp_path / "part")
    m, s = toy(device=device)
    resumed = train(m, s, dataclasses.replace(c, steps=40), tmp_path / "part", resume=True)
    assert [h["step"] for h in resumed.history] == [h["step"] for h in full.history]
    torch.testing.assert_close(resumed.final_loss, full.final_loss, rtol=1e-4, atol=1e-6)
    torch.testing.assert_close(m.W_IMN, full_model.W_IMN, rtol=1e-4, atol=1e-5)


def test_graph_replay_keeps_the_nan_guard(tmp_path, device):
    model, source = toy(device=device)
    with torch.no_grad():
        model.b_IN[1, 0] = float("nan")  # instance 1 diverges from the first step
    with pytest.raises(TrainingDiverged) as e:
        train(model, source, cfg(cuda_graph=_graph(device)), tmp_path / "nan")
    assert e.value.instances == [1] and e.value.step == 5  # seen at the first log step


@requires_cuda
def test_graph_on_refuses_an_sae_and_auto_trains_it_eagerly_on_cuda():
    src = SparseFeatures(24, 0.1, d_embed=12, seed=1, device="cuda")
    sae = build_sae(SAEConfig(arch="topk", d_model=12, dict_size=48, k=3), seed=0, device="cuda")
    with pytest.raises(ValueError, match="hooks"):
        train(sae, src, cfg(cuda_graph="on"))
    assert bool(torch.isfinite(train(sae, src, cfg(cuda_graph="auto")).final_loss).all())


@requires_cuda
def test_fused_step_compiled_matches_the_reference_on_cuda():
    _fused_vs_reference("relu-output", "adam", 0.0, "cuda", compile=False)
    _fused_vs_reference("relu-output", "adam", 0.01, "cuda", compile=True, steps=10)
    c = cfg(steps=23, prefetch_elements=4 * 4 * 32 * 6)  # a short last block (padded)
    out = {}
    for mode in ("off", "auto"):  # auto: fused for relu-output on CUDA
        model, source = toy(device="cuda")
        out[mode] = train(model, source, dataclasses.replace(c, fused_step=mode)).final_loss
    torch.testing.assert_close(out["auto"], out["off"], rtol=1e-4, atol=1e-7)


@requires_cuda
def test_precision_switches_are_restored_on_cuda():
    before = torch.backends.cuda.matmul.allow_tf32
    with matmul_precision("tf32", "cuda"):
        assert torch.backends.cuda.matmul.allow_tf32
    with matmul_precision("fp32", "cuda"):
        assert not torch.backends.cuda.matmul.allow_tf32
    assert torch.backends.cuda.matmul.allow_tf32 == before
    for prec in ("tf32", "bf16"):
        model, source = toy("hidden-relu", device="cuda")
        assert bool(train(model, source, cfg(matmul_precision=prec, steps=60)).converged.all())


@requires_cuda
@pytest.mark.parametrize("arch", ["topk", "batchtopk", "relu"])
def test_sae_losses_on_cuda_match_the_cpu(arch):
    """The same SAE (CPU weights copied to CUDA) on the same batch: the sparse kernels
    (embedding_bag, sampled_addmm) give the CPU's loss and gradients on CUDA."""
    cfg_ = SAEConfig(arch=arch, d_model=12, dict_size=48, k=3 if arch != "relu" else None)
    x = SparseFeatures(24, 0.1, d_embed=12, seed=1).sample(256)
    cpu = build_sae(cfg_, seed=0)
    gpu = build_sae(cfg_, seed=0, device="cuda")
    gpu.load_state_dict(cpu.state_dict())
    loss_cpu, loss_gpu = cpu.loss_and_grad(x), gpu.loss_and_grad(x.cuda())
    torch.testing.assert_close(loss_gpu.cpu(), loss_cpu, rtol=1e-4, atol=1e-5)
    for p, q in zip(cpu.parameters(), gpu.parameters()):
        if p.grad is not None:
            torch.testing.assert_close(q.grad.cpu(), p.grad, rtol=1e-3, atol=1e-5)
