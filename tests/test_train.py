"""The trainer: reproducibility, exact resume, the NaN guard, chunking, best-of-N, run folders."""
import json
import math

import pytest
import torch

import toymodels.train as T
from toymodels import SparseFeatures, TMSConfig, build_model
from toymodels.runs import load_model
from toymodels.train import TrainConfig, TrainingDiverged, best_of, train


def _fresh(n_inst=3, seed=0):
    return build_model(TMSConfig(5, 2, n_inst), seed=seed), SparseFeatures(5, 0.05, n_inst, seed=1)


def test_same_seed_same_result():
    cfg = TrainConfig(steps=60, quiet=True)
    (m1, s1), (m2, s2) = _fresh(), _fresh()
    r1, r2 = train(m1, s1, cfg), train(m2, s2, cfg)
    assert torch.equal(m1.W_IMN, m2.W_IMN) and torch.equal(r1.final_loss, r2.final_loss)
    m3, s3 = _fresh(seed=1)
    train(m3, s3, cfg)
    assert not torch.equal(m1.W_IMN, m3.W_IMN)


def test_training_lowers_the_loss():
    m, s = _fresh()
    before = T.evaluate(m, s, 4096)
    after = train(m, s, TrainConfig(steps=300, quiet=True)).final_loss
    assert (after < 0.7 * before).all()


@pytest.mark.parametrize("prefetch_steps", [1, 9])
def test_resume_equals_uninterrupted(tmp_path, monkeypatch, prefetch_steps):
    """Kill the run right after its second checkpoint (step 140, not a multiple of the
    prefetch block of 9 steps) and resume: weights, eval loss and history are identical."""
    cfg = TrainConfig(steps=300, quiet=True, checkpoint_every=70, prefetch_elements=1024 * 15 * prefetch_steps)
    m, s = _fresh()
    assert T.prefetch_steps(s, cfg) == prefetch_steps
    full = train(m, s, cfg, tmp_path / "a")
    W_full = m.W_IMN.detach().clone()

    class Crash(Exception):
        pass

    real, calls = T.save_checkpoint, []

    def crash_after_second(path, state):
        real(path, state)
        calls.append(state["step"])
        if len(calls) == 2:
            raise Crash

    monkeypatch.setattr(T, "save_checkpoint", crash_after_second)
    m, s = _fresh()
    with pytest.raises(Crash):
        train(m, s, cfg, tmp_path / "b")
    monkeypatch.setattr(T, "save_checkpoint", real)
    assert calls == [70, 140]
    m, s = _fresh()
    resumed = train(m, s, cfg, tmp_path / "b", resume=True)
    assert torch.equal(W_full, m.W_IMN)
    assert torch.equal(full.final_loss, resumed.final_loss)
    assert full.history == resumed.history


def test_nan_guard_keeps_last_good_checkpoint(tmp_path):
    m, s = _fresh()
    cfg = TrainConfig(steps=100, quiet=True, checkpoint_every=20, log_every=10)
    poison_at = 50

    real_sample = s.sample
    calls = {"n": 0}

    def sample(b):
        calls["n"] += 1
        x = real_sample(b)
        return x * float("nan") if calls["n"] > poison_at else x

    s.sample = sample
    cfg = TrainConfig(steps=100, quiet=True, checkpoint_every=20, log_every=10, prefetch_elements=0)
    with pytest.raises(TrainingDiverged) as err:
        train(m, s, cfg, tmp_path)
    e = err.value
    assert e.step == 60 and e.instances == [0, 1, 2]
    assert "step 60" in str(e) and "last good checkpoint (step 40)" in str(e)
    state = torch.load(tmp_path / "checkpoint.pt", weights_only=True)
    assert state["step"] == 40
    assert all(torch.isfinite(v).all() for v in state["model"].values())


def test_nan_without_folder_says_so():
    m, s = _fresh()
    m.W_IMN.data.fill_(float("nan"))
    with pytest.raises(TrainingDiverged, match="no checkpoint was written"):
        train(m, s, TrainConfig(steps=10, quiet=True))


def test_chunked_sweep_matches_its_chunks(tmp_path):
    """A sweep split into chunks trains every instance and records the chunking."""
    m, s = _fresh(n_inst=5)
    r = train(m, s, TrainConfig(steps=200, quiet=True, max_instances_per_chunk=2), tmp_path)
    assert r.chunks == 3 and r.metrics["instance_chunks"] == 3
    assert len(r.history[-1]["loss"]) == 5
    assert sorted(p.name for p in tmp_path.glob("checkpoint-*.pt")) == [f"checkpoint-{i}.pt" for i in range(3)]
    # Instances are independent: chunk 0 (instances 0-1) equals training those two alone.
    m_alone, _ = _fresh(n_inst=5)
    m_alone = m_alone.subset(slice(0, 2))
    s_alone = s.subset(slice(0, 2))
    train(m_alone, s_alone, TrainConfig(steps=200, quiet=True))
    assert torch.allclose(m.W_IMN[:2], m_alone.W_IMN, atol=1e-6)
    assert (r.final_loss < 0.05).all()


def test_instances_per_chunk_follows_memory(monkeypatch):
    m, _ = _fresh(n_inst=10)
    cfg = TrainConfig(batch_size=1024)
    per = T.bytes_per_instance(m, 1024)
    monkeypatch.setattr(T, "available_memory_bytes", lambda device: int(per * 6.5))  # budget: half
    assert T.instances_per_chunk(m, cfg, torch.device("cpu")) == 3
    monkeypatch.setattr(T, "available_memory_bytes", lambda device: 10**15)
    assert T.instances_per_chunk(m, cfg, torch.device("cpu")) == 10


def test_best_of_picks_lowest_loss_per_config():
    m, _ = _fresh(n_inst=6)
    losses = torch.tensor([3.0, 1.0, 2.0, 0.5, 4.0, 9.0])
    winners, idx = best_of(m, losses, 3)
    assert idx.tolist() == [1, 3]
    assert winners.n_instances == 2 and torch.equal(winners.W_IMN, m.W_IMN[[1, 3]])
    with pytest.raises(ValueError, match="multiple"):
        best_of(m, losses, 4)


def test_run_folder_round_trip(tmp_path):
    m, s = _fresh()
    r = train(m, s, TrainConfig(steps=30, quiet=True), tmp_path)
    for name in ("config.json", "model.safetensors", "metrics.json", "history.json", "checkpoint.pt"):
        assert (tmp_path / name).exists(), name
    assert not list(tmp_path.glob("*.tmp"))
    metrics = json.loads((tmp_path / "metrics.json").read_text())
    assert metrics["loss"] == pytest.approx(r.final_loss.tolist())
    assert metrics["device"] == "cpu" and metrics["train_seconds"] > 0 and metrics["peak_memory_bytes"] > 0
    loaded = load_model(tmp_path)
    assert torch.equal(loaded.W_IMN, m.W_IMN) and type(loaded) is type(m)


@pytest.mark.parametrize(
    "kw, field",
    [
        (dict(steps=-1), "steps"),
        (dict(lr=0.0), "lr"),
        (dict(lr=float("nan")), "lr"),
        (dict(optimizer="sgd"), "optimizer"),
        (dict(schedule="step"), "schedule"),
        (dict(betas=(0.9, 1.0)), r"betas\[1\]"),
        (dict(final_lr_fraction=2.0), "final_lr_fraction"),
        (dict(batch_size=0), "batch_size"),
    ],
)
def test_config_validation(kw, field):
    with pytest.raises(ValueError, match=field):
        TrainConfig(**kw)


def test_lr_schedules():
    c = TrainConfig(steps=101, lr=1.0, warmup_steps=10, schedule="cosine", final_lr_fraction=0.1)
    assert c.lr_at(0) == pytest.approx(0.1) and c.lr_at(9) == pytest.approx(1.0)
    assert c.lr_at(10) == pytest.approx(1.0) and c.lr_at(100) == pytest.approx(0.1)
    assert c.lr_at(55) == pytest.approx(0.1 + 0.9 * 0.5 * (1 + math.cos(math.pi * 0.5)))
    lin = TrainConfig(steps=11, lr=2.0, schedule="linear")
    assert [round(lin.lr_at(s), 6) for s in (0, 5, 10)] == [2.0, 1.0, 0.0]
    assert TrainConfig(lr=0.5).lr_at(1234) == 0.5


def test_mismatched_source_is_rejected():
    m, _ = _fresh(n_inst=3)
    with pytest.raises(ValueError, match="instances"):
        train(m, SparseFeatures(5, 0.05, 2), TrainConfig(steps=1, quiet=True))


@pytest.mark.parametrize("name", ["adam", "adamw"])
def test_lean_optimizer_is_bit_identical_to_torch_fused(name):
    """The direct fused-kernel step gives exactly torch.optim's fused result, with the
    usual state layout, through a save/load of its state."""
    torch.manual_seed(0)
    cfg = TrainConfig(optimizer=name, lr=1e-2, weight_decay=0.01)
    a = [torch.nn.Parameter(torch.randn(3, 4)), torch.nn.Parameter(torch.randn(5))]
    b = [torch.nn.Parameter(p.detach().clone()) for p in a]
    lean = T.make_optimizer(a, cfg)
    ref = (torch.optim.AdamW if name == "adamw" else torch.optim.Adam)(b, lr=1e-2, weight_decay=0.01, fused=True)
    assert isinstance(lean, T.LeanAdamW if name == "adamw" else T.LeanAdam)
    for step in range(30):
        grads = [torch.randn_like(p) for p in a]
        for p, q, g in zip(a, b, grads):
            p.grad, q.grad = g.clone(), g.clone()
        lean.step()
        ref.step()
        if step == 10:  # checkpoint round trip mid-run
            lean.load_state_dict(lean.state_dict())
        if step == 20:
            for pg in lean.param_groups + ref.param_groups:
                pg["lr"] = 3e-3
    for p, q in zip(a, b):
        assert torch.equal(p, q)
    assert torch.equal(lean.state[a[0]]["exp_avg"], ref.state[b[0]]["exp_avg"])
