"""The data thread (TrainConfig.data_thread): the same batches and checkpoints as drawing
between steps (resume: tests/test_train.py::test_resume_equals_uninterrupted); errors on
either thread surface in the trainer; the source is left as if a block in flight had never
been drawn; the thread counts are put back."""
import subprocess
import sys

import pytest
import torch

import toymodels.train.loop as T
from toymodels import SparseFeatures, TMSConfig, build_model
from toymodels import device
from toymodels.train import datathread
from toymodels.train.datathread import BlockFeed, spare_core, use_data_thread
from toymodels.train import TrainConfig, train

N, I, B = 5, 3, 256
STEP = I * B * N  # floats per step


@pytest.fixture
def threads():
    """Run the test with ``n`` torch threads, then restore the count."""
    before = torch.get_num_threads()

    def use(n: int) -> None:
        torch.set_num_threads(n)

    yield use
    torch.set_num_threads(before)


def _fresh(p=0.3, shared=False):
    src = SparseFeatures(N, p, 1 if shared else I, seed=1)
    return build_model(TMSConfig(N, 2, I), seed=0), src


def _cfg(steps=40, block_steps=3, **kw):
    return TrainConfig(steps=steps, batch_size=B, quiet=True, prefetch_elements=STEP * block_steps, **kw)


def _record_checkpoints(monkeypatch):
    saved = []
    real = T.save_checkpoint

    def keep(path, state):
        saved.append((state["step"], state["rng"].clone()))
        real(path, state)

    monkeypatch.setattr(T, "save_checkpoint", keep)
    return saved


@pytest.mark.parametrize("shared", [False, True])
@pytest.mark.parametrize("p", [1.0, 0.05])
def test_the_data_thread_gives_the_same_run(tmp_path, monkeypatch, threads, p, shared):
    """One torch thread for the steps either way, so the arithmetic is the same: weights,
    losses, history, every checkpoint's RNG state (at block ends and inside blocks) and the
    source's end state are bit-identical with and without the data thread."""
    threads(1)
    saved = _record_checkpoints(monkeypatch)
    runs = {}
    for mode in ("off", "on"):
        saved.clear()
        m, s = _fresh(p, shared)
        r = train(m, s, _cfg(checkpoint_every=4, data_thread=mode), tmp_path / mode)
        runs[mode] = (m.W_IMN.detach().clone(), m.b_IN.detach().clone(), r.final_loss, r.history,
                      list(saved), s.get_state())
    (w0, b0, l0, h0, c0, g0), (w1, b1, l1, h1, c1, g1) = runs["off"], runs["on"]
    assert torch.equal(w0, w1) and torch.equal(b0, b1) and torch.equal(l0, l1)
    assert h0 == h1
    assert [st for st, _ in c0] == [st for st, _ in c1] == [4, 8, 12, 16, 20, 24, 28, 32, 36, 40]
    assert all(torch.equal(a, b) for (_, a), (_, b) in zip(c0, c1))
    assert torch.equal(g0, g1)


def test_a_failing_step_leaves_the_source_as_without_the_thread(monkeypatch, threads):
    """An error in step 7 (block 2 of 3 steps; block 3 in flight) leaves the source after
    block 2 — where the run without the data thread leaves it — not after block 3."""
    threads(1)
    ends = {}
    for mode in ("off", "on"):
        m, s = _fresh()
        real, calls = m.loss_and_grad, []

        def boom(x, real=real, calls=calls):
            calls.append(1)
            if len(calls) == 8:
                raise RuntimeError("step failed")
            return real(x)

        monkeypatch.setattr(m, "loss_and_grad", boom)
        with pytest.raises(RuntimeError, match="step failed"):
            train(m, s, _cfg(data_thread=mode))
        ends[mode] = s.get_state()
    assert torch.equal(ends["off"], ends["on"])
    m, s = _fresh()
    s.sample(3 * B * 3)  # blocks 0, 1, 2 in one draw: the same stream
    assert torch.equal(s.get_state(), ends["on"])


def test_a_failing_draw_on_the_data_thread_raises_in_the_trainer(threads):
    threads(1)
    m, s = _fresh()
    real, calls = s.sample, []

    def sample(n):
        calls.append(n)
        if len(calls) == 3:
            raise RuntimeError("disk went away")
        return real(n)

    s.sample = sample
    with pytest.raises(RuntimeError, match="disk went away"):
        train(m, s, _cfg(data_thread="on"))
    assert len(calls) == 3


def test_block_feed_close_restores_a_block_never_taken():
    s = SparseFeatures(N, 0.5, I, seed=3)
    feed = BlockFeed(s, B, 2, 10, background=True)
    st0, blk0 = feed.take(0)
    after0 = feed.state_before_next()
    feed.close()
    assert torch.equal(s.get_state(), after0)
    ref = SparseFeatures(N, 0.5, I, seed=3)
    assert torch.equal(ref.get_state(), st0) and torch.equal(ref.sample(2 * B), blk0)
    assert torch.equal(ref.get_state(), after0)


@pytest.mark.parametrize("n", [1, 2, 3])
def test_training_puts_the_thread_count_back(threads, n):
    threads(n)
    m, s = _fresh()
    train(m, s, _cfg(steps=12, data_thread="on"))
    assert torch.get_num_threads() == n


def _spied(monkeypatch):
    """A fresh model and source; the list of torch thread counts its steps ran on."""
    m, s = _fresh()
    seen, real = [], m.loss_and_grad

    def spy(x):
        seen.append(torch.get_num_threads())
        return real(x)

    monkeypatch.setattr(m, "loss_and_grad", spy)
    return m, s, seen


def test_the_steps_get_one_thread_fewer(threads, monkeypatch):
    monkeypatch.setenv(device.WORKERS_ENV, str(device.usable_cores()))  # a share of one core: none spare
    threads(3)
    m, s, seen = _spied(monkeypatch)
    train(m, s, _cfg(steps=9, data_thread="on"))
    train(m, s, _cfg(steps=9, data_thread="off"))
    assert seen == [2] * 9 + [3] * 9


def test_with_a_spare_core_the_steps_keep_their_threads(threads, monkeypatch):
    """Toy-sized runs get one torch thread on a multi-core machine: the data thread takes a
    core of its own and the steps keep their thread (and their bits)."""
    monkeypatch.setattr(device, "usable_cores", lambda: 4)
    monkeypatch.delenv(device.WORKERS_ENV, raising=False)
    threads(1)
    assert spare_core()
    m, s, seen = _spied(monkeypatch)
    train(m, s, _cfg(steps=9, data_thread="on"))
    assert seen == [1] * 9
    assert use_data_thread("auto", CPU, n_blocks=5, block_elements=1 << 22, precision="fp32", compiled=False)
    with device.worker_processes(4):  # one of four workers on 4 cores: its one core is taken
        assert not spare_core()
        assert not use_data_thread("auto", CPU, n_blocks=5, block_elements=1 << 22, precision="fp32", compiled=False)


def test_starting_the_data_thread_keeps_the_process_thread_default():
    """The data thread sets one torch thread for itself; threads started later still get the
    process's count (torch.set_num_threads also writes the default new threads read)."""
    code = (
        "import threading, torch\n"
        "torch.set_num_threads(2)\n"
        "from toymodels.datathread import _executor\n"
        "_executor()\n"
        "out = []\n"
        "t = threading.Thread(target=lambda: out.append(torch.get_num_threads())); t.start(); t.join()\n"
        "print(torch.get_num_threads(), out[0], _executor().submit(torch.get_num_threads).result())\n"
    )
    res = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=120)
    assert res.returncode == 0, res.stderr
    assert res.stdout.split() == ["2", "2", "1"]


CPU = torch.device("cpu")


@pytest.mark.parametrize(
    "mode, n_threads, dev, n_blocks, elements, precision, compiled, expected",
    [
        ("auto", 2, CPU, 5, 1 << 22, "fp32", False, True),
        ("auto", 1, CPU, 5, 1 << 22, "fp32", False, False),  # no thread to spare
        ("auto", 2, CPU, 5, 1 << 10, "fp32", False, False),  # blocks too small
        ("auto", 2, CPU, 1, 1 << 22, "fp32", False, False),  # nothing to overlap
        ("auto", 2, CPU, 5, 1 << 22, "bf16", False, False),  # autocast does not cross threads
        ("auto", 2, CPU, 5, 1 << 22, "fp32", True, False),   # compiled step
        ("auto", 2, torch.device("cuda"), 5, 1 << 22, "fp32", False, False),
        ("on", 1, CPU, 5, 1 << 10, "bf16", False, True),
        ("on", 1, CPU, 1, 1 << 10, "fp32", False, False),
        ("off", 4, CPU, 5, 1 << 22, "fp32", False, False),
    ],
)
def test_when_the_data_thread_is_used(threads, monkeypatch, mode, n_threads, dev, n_blocks, elements, precision, compiled,
                                     expected):
    monkeypatch.setattr(datathread, "spare_core", lambda: False)  # no core beyond the torch threads
    threads(n_threads)
    got = use_data_thread(mode, dev, n_blocks=n_blocks, block_elements=elements, precision=precision, compiled=compiled)
    assert got is expected


def test_on_off_the_cpu_is_refused_by_name():
    with pytest.raises(ValueError, match="data_thread"):
        use_data_thread("on", torch.device("cuda"), n_blocks=5, block_elements=1, precision="fp32", compiled=False)
    with pytest.raises(ValueError, match="data_thread"):
        TrainConfig(data_thread="yes")


@pytest.mark.skipif(not hasattr(__import__("os"), "fork"), reason="needs os.fork")
def test_a_forked_child_trains_with_its_own_data_thread():
    """A process forked after the data thread started (a multiprocessing pool with the fork
    start method) must not wait on the parent's thread, which the child does not have."""
    code = (
        "import os, torch\n"
        "torch.set_num_threads(1)  # libgomp itself is not fork-safe once a parallel region ran\n"
        "from toymodels import SparseFeatures, TMSConfig, build_model\n"
        "from toymodels.train import TrainConfig, train\n"
        "cfg = TrainConfig(steps=6, batch_size=64, quiet=True, prefetch_elements=64 * 5 * 2, data_thread='on')\n"
        "train(build_model(TMSConfig(5, 2, 2), seed=0), SparseFeatures(5, 0.3, 2, seed=1), cfg)\n"
        "pid = os.fork()\n"
        "if pid == 0:\n"
        "    r = train(build_model(TMSConfig(5, 2, 2), seed=0), SparseFeatures(5, 0.3, 2, seed=1), cfg)\n"
        "    os._exit(0 if torch.isfinite(r.final_loss).all() else 3)\n"
        "_, status = os.waitpid(pid, 0)\n"
        "print(os.waitstatus_to_exitcode(status))\n"
    )
    try:
        res = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=60)
    except subprocess.TimeoutExpired:
        pytest.fail("the forked child hung on the parent's data thread")
    assert res.returncode == 0, res.stderr
    assert res.stdout.split() == ["0"]


@pytest.mark.parametrize("arch", ["relu", "topk"])
def test_an_sae_on_model_activations_trains_the_same_with_the_data_thread(threads, arch):
    """The data thread runs a toy model's forward pass (ModelActivations) while the SAE, with
    its step hooks (resampling, dead-latent tracking), trains: same SAE either way."""
    from toymodels.data import ModelActivations
    from toymodels.sae import SAEConfig, build_sae

    threads(1)
    out = {}
    for mode in ("off", "on"):
        extra = dict(k=(1, 2), aux_k=3, resample_every=5, dead_window=3) if arch == "topk" else dict(l1_coefficient=(0.01, 0.1))
        sae = build_sae(SAEConfig(arch=arch, d_model=4, dict_size=10, n_instances=2, **extra), seed=1)
        src = ModelActivations(build_model(TMSConfig(8, 4, 1), seed=3), SparseFeatures(8, 0.2, seed=2))
        cfg = TrainConfig(steps=24, batch_size=32, lr=3e-3, quiet=True, eval_samples=128, log_every=4,
                          prefetch_elements=32 * 4 * 3, data_thread=mode)
        r = train(sae, src, cfg)
        out[mode] = ({k: v.clone() for k, v in sae.state_dict().items()}, r.final_loss, r.history)
    (s0, l0, h0), (s1, l1, h1) = out["off"], out["on"]
    assert s0.keys() == s1.keys() and all(torch.equal(s0[k], s1[k]) for k in s0)
    assert torch.equal(l0, l1) and h0 == h1
