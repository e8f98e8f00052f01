"""The trainer's loop with its strategies chosen once (toymodels.train.steps, .feed), and the
data thread's ``auto`` rule, which decides from measured times (toymodels.train.feed).

Times are injected, never measured: the feed's clock is replaced by a fake one that the
source's draws and the model's steps advance by scripted amounts, so every decision here is
deterministic."""
from __future__ import annotations

import ast
import inspect
import json
import textwrap

import pytest
import torch
from hypothesis import given, settings
from hypothesis import strategies as st

import toymodels.train.datathread as datathread
import toymodels.train.feed as feed_module
import toymodels.train.loop as T
from toymodels import SparseFeatures, TMSConfig, build_model
from toymodels.train import TrainConfig, train
from toymodels.train.feed import AUTO_MARGIN, AUTO_MIN_BLOCKS, auto_choice
from toymodels.train.steps import EagerStep, FusedStep, Step, choose_step
from toymodels.train.steps.bf16 import Bf16Step

N, I, B = 5, 3, 256
STEP = I * B * N
LOOP_MAX_LINES = 60


# ---------------------------------------------------------------------- the loop's size
def test_the_step_loop_fits_on_one_screen():
    """``toymodels.train.loop._run_steps`` (signature and docstring included) is at most 60
    lines: the lr, the batch, the step, the log, the checkpoint; strategies live elsewhere."""
    lines, _ = inspect.getsourcelines(T._run_steps)
    assert len(lines) <= LOOP_MAX_LINES, f"_run_steps has {len(lines)} lines"
    tree = ast.parse(textwrap.dedent("".join(lines)))
    fn = tree.body[0]
    assert isinstance(fn, ast.FunctionDef) and fn.name == "_run_steps"
    assert fn.end_lineno - fn.lineno + 1 == len(lines)
    # no strategy is named in the loop: it calls the step and the feed it was given
    names = {n.id for n in ast.walk(fn) if isinstance(n, ast.Name)}
    assert not names & {"FusedTMSStep", "GraphedStep", "GradDtypeGuard", "optimizer_step", "side_stream"}


def test_choose_step_picks_one_strategy():
    m = build_model(TMSConfig(N, 2, I), seed=0)
    params = list(m.parameters())
    opt = T.make_optimizer(params, TrainConfig())
    src = SparseFeatures(N, 0.3, I, seed=1)
    eager = choose_step(m, opt, params, TrainConfig(), src, 0, 1)
    assert isinstance(eager, EagerStep) and isinstance(eager, Step) and not eager.compiled
    fused = choose_step(m, opt, params, TrainConfig(fused_step="on"), src, 0, 1)
    assert isinstance(fused, FusedStep) and fused.compiled
    bf16 = choose_step(m, opt, params, TrainConfig(matmul_precision="bf16"), src, 0, 1)
    assert isinstance(bf16, Bf16Step) and isinstance(bf16.inner, EagerStep)
    bf16.close()


# ---------------------------------------------------------------------- the auto rule, pure
@pytest.mark.parametrize(
    "draw, step, threads, probe, expected",
    [
        (16.0, 16.0, 2, None, "probe"),   # the TMS intro: as long as the step, worth a probe
        (16.0, 16.0, 2, (17.0, 18.0), "on"),  # steps barely slower on one thread: overlap wins
        (16.0, 16.0, 2, (16.0, 32.0), "off"),  # perfect scaling: 32 vs 32, no gain
        (5.0, 100.0, 2, None, "off"),     # an SAE: cheap draw, big matmuls: off without a probe
        (100.0, 5.0, 2, None, "off"),     # the draw dwarfs the steps: overlap hides little
        (16.0, 16.0, 1, None, "off"),     # no thread to spare
        (0.0, 0.0, 4, None, "off"),
    ],
)
def test_auto_choice_cases(draw, step, threads, probe, expected):
    assert auto_choice(draw, step, threads, probe) == expected


@settings(max_examples=200, deadline=None)
@given(
    st.floats(0, 1e4), st.floats(0, 1e4), st.integers(1, 64),
    st.one_of(st.none(), st.tuples(st.floats(0, 1e4), st.floats(0, 1e4))),
)
def test_auto_choice_only_promises_a_gain(draw, step, threads, probe):
    got = auto_choice(draw, step, threads, probe)
    assert got in ("off", "probe", "on")
    if threads < 2:
        assert got == "off"
    if got != "off":  # even with steps that lose nothing on a thread fewer, overlap gains the margin
        assert draw + step >= AUTO_MARGIN * max(draw, step) and draw + step > 0
    if got == "on":
        assert probe is not None and draw + step >= AUTO_MARGIN * max(probe)
    if probe is None:
        assert got != "on"


def test_auto_choice_refuses_nonsense():
    with pytest.raises(ValueError, match="draw_ms"):
        auto_choice(float("nan"), 1.0, 2)
    with pytest.raises(ValueError, match="margin"):
        auto_choice(1.0, 1.0, 2, margin=0.5)


# ---------------------------------------------------------------------- auto in the trainer
@pytest.fixture
def two_threads():
    before = torch.get_num_threads()
    torch.set_num_threads(2)
    yield
    torch.set_num_threads(before)


class FakeTime:
    """The feed's clock, advanced by the source's draws and the model's steps: a draw costs
    ``draw`` ms on any thread count, a step ``step`` ms on 2 threads and ``step_one`` ms on one."""

    def __init__(self, draw: float, step: float, step_one: float) -> None:
        self.t, self.draw, self.step, self.step_one = 0.0, draw, step, step_one

    def __call__(self) -> float:
        return self.t


def _instrumented(monkeypatch, clock: FakeTime, shared=False):
    """A tiny model and source (per instance, or ``shared``) whose draws and steps advance
    ``clock``; the threads each step ran on are collected in the returned list."""
    m, s = build_model(TMSConfig(N, 2, I), seed=0), SparseFeatures(N, 1.0, 1 if shared else I, seed=1)
    cls = type(m)
    real_step = cls.__dict__.get("_unpatched_loss_and_grad", cls.loss_and_grad)  # never wrap a wrapper
    monkeypatch.setattr(cls, "_unpatched_loss_and_grad", real_step, raising=False)
    real_sample, seen = s.sample, []

    def sample(n):
        clock.t += clock.draw / 1e3
        return real_sample(n)

    def loss_and_grad(self, x):
        n = torch.get_num_threads()
        seen.append(n)
        clock.t += (clock.step if n >= 2 else clock.step_one) / 1e3
        return real_step(self, x)

    s.sample = sample
    monkeypatch.setattr(cls, "loss_and_grad", loss_and_grad)  # chunks train subsets: patch the class
    return m, s, seen


@pytest.fixture
def fake_clock(monkeypatch):
    monkeypatch.setattr(datathread, "MIN_BLOCK_ELEMENTS", 1)  # tiny blocks may use the thread
    monkeypatch.setattr(datathread, "spare_core", lambda: False)  # cores = torch threads, on any machine
    monkeypatch.setattr(feed_module, "spare_core", lambda: False)

    def use(draw: float, step: float, step_one: float | None = None) -> FakeTime:
        clock = FakeTime(draw, step, 2 * step if step_one is None else step_one)
        monkeypatch.setattr(feed_module, "_now", clock)
        return clock

    return use


def _cfg(steps=30, prefetch_elements=STEP, **kw):
    """One step a block (k = 1) for a per-instance source."""
    return TrainConfig(steps=steps, batch_size=B, quiet=True, prefetch_elements=prefetch_elements, log_every=1, **kw)


@pytest.mark.parametrize(
    "draw, step, step_one, used, from_block, threads_seen",
    [
        (20.0, 10.0, 11.0, True, 4, [2, 2, 2, 1] + [1] * 26),   # an expensive draw: probe, then on
        (1.0, 10.0, 20.0, False, 3, [2] * 30),                  # a cheap draw (an SAE): off, unprobed
        (10.0, 10.0, 20.0, False, 4, [2, 2, 2, 1] + [2] * 26),  # the probe shows perfect scaling: off
    ],
)
def test_auto_decides_from_the_measured_times(two_threads, fake_clock, monkeypatch, tmp_path,
                                              draw, step, step_one, used, from_block, threads_seen):
    fake_clock(draw, step, step_one)
    m, s, seen = _instrumented(monkeypatch, feed_module._now)
    r = train(m, s, _cfg(), tmp_path / "run")
    assert seen == threads_seen
    assert torch.get_num_threads() == 2
    (rec,) = r.metrics["data_thread"]
    assert r.metrics["data_thread_used"] is used and rec["used"] is used and rec["from_block"] == from_block
    assert rec["draw_ms"] == pytest.approx(draw) and rec["step_ms"] == pytest.approx(step)
    on_disk = json.loads((tmp_path / "run" / "metrics.json").read_text())
    assert on_disk["data_thread_used"] is used and on_disk["data_thread"][0]["from_block"] == from_block


def test_auto_with_a_cheap_draw_is_the_off_run_bit_for_bit(two_threads, fake_clock, monkeypatch):
    fake_clock(1.0, 10.0)
    runs = {}
    for mode in ("off", "auto"):
        m, s, seen = _instrumented(monkeypatch, feed_module._now)
        r = train(m, s, _cfg(data_thread=mode))
        runs[mode] = (m.W_IMN.detach().clone(), r.final_loss, r.history, s.get_state(), seen)
    (w0, l0, h0, g0, t0), (w1, l1, h1, g1, t1) = runs["off"], runs["auto"]
    assert torch.equal(w0, w1) and torch.equal(l0, l1) and h0 == h1 and torch.equal(g0, g1) and t0 == t1


def test_too_short_a_run_is_never_measured(two_threads, fake_clock, monkeypatch):
    fake_clock(20.0, 10.0, 10.0)
    m, s, seen = _instrumented(monkeypatch, feed_module._now)
    r = train(m, s, _cfg(steps=AUTO_MIN_BLOCKS - 1))
    assert seen == [2] * (AUTO_MIN_BLOCKS - 1) and r.metrics["data_thread"][0]["draw_ms"] is None


def test_one_torch_thread_and_a_spare_core_turns_auto_on_with_the_off_runs_bits(fake_clock, monkeypatch):
    """The toy-sized run on 2 cores (``--threads auto`` gives it one torch thread): the data
    thread takes the other core, the steps keep their one thread, and the result is the
    ``off`` run's, bit for bit."""
    monkeypatch.setattr(datathread, "spare_core", lambda: True)
    monkeypatch.setattr(feed_module, "spare_core", lambda: True)
    before = torch.get_num_threads()
    torch.set_num_threads(1)
    runs = {}
    try:
        for mode in ("off", "auto"):
            fake_clock(20.0, 10.0, 10.0)
            m, s, seen = _instrumented(monkeypatch, feed_module._now)
            r = train(m, s, _cfg(data_thread=mode))
            runs[mode] = (m.W_IMN.detach().clone(), r.final_loss, s.get_state(), seen, r.metrics["data_thread_used"])
    finally:
        torch.set_num_threads(before)
    (w0, l0, g0, t0, used0), (w1, l1, g1, t1, used1) = runs["off"], runs["auto"]
    assert used0 is False and used1 is True
    assert t0 == t1 == [1] * 30
    assert torch.equal(w0, w1) and torch.equal(l0, l1) and torch.equal(g0, g1)


def test_one_torch_thread_keeps_auto_off(fake_clock, monkeypatch):
    before = torch.get_num_threads()
    torch.set_num_threads(1)
    try:
        fake_clock(20.0, 10.0, 10.0)
        m, s, seen = _instrumented(monkeypatch, feed_module._now)
        r = train(m, s, _cfg())
    finally:
        torch.set_num_threads(before)
    assert seen == [1] * 30 and r.metrics["data_thread_used"] is False


def _crash_after(monkeypatch, n: int):
    real, calls = T.save_checkpoint, []

    class Crash(Exception):
        pass

    def save(path, state):
        real(path, state)
        calls.append(state["step"])
        if len(calls) == n:
            raise Crash

    monkeypatch.setattr(T, "save_checkpoint", save)
    return Crash, lambda: monkeypatch.setattr(T, "save_checkpoint", real)


@pytest.mark.parametrize("every, crash_after", [(10, 2), (2, 1), (3, 1)])
def test_resume_after_an_auto_switch_is_exact(two_threads, fake_clock, monkeypatch, tmp_path, every, crash_after):
    """Interrupted after the switch (step 20), inside the measurement (step 2) or on the
    probe block (step 3): the resumed run gives the uninterrupted one bit for bit, steps on
    the same thread counts."""
    cfg = _cfg(checkpoint_every=every)
    fake_clock(20.0, 10.0, 11.0)
    m, s, seen_full = _instrumented(monkeypatch, feed_module._now)
    full = train(m, s, cfg, tmp_path / "a")
    W_full, state_full = m.W_IMN.detach().clone(), s.get_state()
    assert full.metrics["data_thread_used"]
    Crash, restore = _crash_after(monkeypatch, crash_after)
    fake_clock(20.0, 10.0, 11.0)
    m, s, seen_a = _instrumented(monkeypatch, feed_module._now)
    with pytest.raises(Crash):
        train(m, s, cfg, tmp_path / "b")
    restore()
    fake_clock(20.0, 10.0, 11.0)
    m, s, seen_b = _instrumented(monkeypatch, feed_module._now)
    resumed = train(m, s, cfg, tmp_path / "b", resume=True)
    done = every * crash_after
    assert seen_a[:done] + seen_b == seen_full
    assert torch.equal(W_full, m.W_IMN) and torch.equal(full.final_loss, resumed.final_loss)
    assert full.history == resumed.history and torch.equal(state_full, s.get_state())
    assert resumed.metrics["data_thread"][0]["from_block"] == full.metrics["data_thread"][0]["from_block"] == 4


@pytest.mark.parametrize("first, then", [((20.0, 10.0, 11.0), (1.0, 10.0, 20.0)), ((1.0, 10.0, 20.0), (20.0, 10.0, 11.0))])
def test_the_recorded_decision_is_honoured_on_resume(two_threads, fake_clock, monkeypatch, tmp_path, first, then):
    """Decided (on, or off) before the checkpoint at step 10; the resumed run measures times
    that would decide the other way, and still follows the checkpoint's decision."""
    cfg = _cfg(checkpoint_every=10)
    Crash, restore = _crash_after(monkeypatch, 1)
    fake_clock(*first)
    m, s, seen_a = _instrumented(monkeypatch, feed_module._now)
    with pytest.raises(Crash):
        train(m, s, cfg, tmp_path / "b")
    restore()
    used = seen_a[-1] == 1
    fake_clock(*then)
    m, s, seen_b = _instrumented(monkeypatch, feed_module._now)
    r = train(m, s, cfg, tmp_path / "b", resume=True)
    assert seen_b == ([1] if used else [2]) * 20
    assert r.metrics["data_thread_used"] is used


def test_chunks_decide_each_and_record_it(two_threads, fake_clock, monkeypatch):
    """A shared source is rewound for every chunk (the wrapped draws stay in play)."""
    fake_clock(20.0, 10.0, 11.0)
    m, s, seen = _instrumented(monkeypatch, feed_module._now, shared=True)
    r = train(m, s, _cfg(max_instances_per_chunk=2, prefetch_elements=B * N))
    assert r.chunks == 2 and [f["from_block"] for f in r.metrics["data_thread"]] == [4, 4]
    assert seen == ([2, 2, 2, 1] + [1] * 26) * 2
