"""Fault test (issue 8): a run killed with SIGKILL at a random step and resumed is bit-identical
to an uninterrupted one, for a toy model and an SAE (TopK with resampling), chunked and not.

The run trains in a forked child that reports each checkpoint through a pipe and sleeps a
little every step (so the kill lands mid-run; the sleep does not touch the arithmetic).
After a random number of checkpoints and a random delay it gets SIGKILL; the parent
resumes from the folder and compares weights, losses and history with a run that was never
interrupted. The random draw is printed with any failure.
"""
from __future__ import annotations

import json
import os
import random
import signal
import time
from pathlib import Path

import pytest
import torch

def build(kind, per_chunk):
    """(model, source, config) of a tiny run; the same in the child and the parent."""
    from toymodels import SparseFeatures, TMSConfig, build_model
    from toymodels.train import TrainConfig

    if kind == "tms":
        model = build_model(TMSConfig(5, 2, 3), seed=0)
        source = SparseFeatures(5, [0.05, 0.1, 0.2], 3, seed=1)
    else:
        from toymodels.sae import SAEConfig, build_sae

        cfg = SAEConfig(arch="topk", d_model=6, dict_size=12, n_instances=3, k=(1, 2, 3), aux_k=4,
                        resample_every=5, dead_window=3, b_dec_init="geometric-median")
        model = build_sae(cfg, seed=1)
        source = SparseFeatures(10, 0.2, d_embed=6, seed=2)
    config = TrainConfig(steps=90, batch_size=32, lr=3e-3, quiet=True, checkpoint_every=10, log_every=5,
                         eval_samples=128, prefetch_elements=32 * 15 * 4, max_instances_per_chunk=per_chunk)
    return model, source, config


def _state(model):
    return {k: v.detach().clone() for k, v in model.state_dict().items()}


def _child(write_fd: int, kind: str, per_chunk, out: Path) -> None:
    """The forked child: train into ``out``, writing a line per checkpoint to the pipe."""
    import toymodels.train.loop as T
    import toymodels.train.steps.eager as E  # where the trainer's eager step calls optimizer_step

    real_save, real_step = T.save_checkpoint, E.optimizer_step

    def save(path, state):
        real_save(path, state)
        os.write(write_fd, f"checkpoint {state['step']}\n".encode())

    def step(*a, **k):
        time.sleep(0.004)  # pacing only, so that the kill lands mid-run
        return real_step(*a, **k)

    T.save_checkpoint, E.optimizer_step = save, step
    model, source, config = build(kind, per_chunk)
    T.train(model, source, config, out)
    os.write(write_fd, b"finished\n")


def _kill_mid_run(out: Path, kind: str, per_chunk, n_checkpoints: int, delay: float) -> None:
    """Fork a child (no second interpreter start-up), SIGKILL it after ``n_checkpoints``
    checkpoints and ``delay`` seconds."""
    read_fd, write_fd = os.pipe()
    pid = os.fork()
    if pid == 0:  # child: never returns into pytest
        code = 0
        try:
            os.close(read_fd)
            torch.set_num_threads(1)
            _child(write_fd, kind, per_chunk, out)
        except BaseException:
            import traceback

            os.write(write_fd, ("error " + traceback.format_exc().replace("\n", " | ") + "\n").encode())
            code = 1
        finally:
            os._exit(code)
    os.close(write_fd)
    seen, finished = 0, False
    with os.fdopen(read_fd) as lines:
        for line in lines:
            if line.startswith("checkpoint"):
                seen += 1
                if seen == n_checkpoints:
                    time.sleep(delay)
                    os.kill(pid, signal.SIGKILL)
                    break
            elif line.startswith("finished"):
                finished = True
                break
            elif line.startswith("error"):
                os.waitpid(pid, 0)
                raise AssertionError(f"the child failed: {line[-3000:]}")
    _, status = os.waitpid(pid, 0)
    assert not finished and os.WIFSIGNALED(status) and os.WTERMSIG(status) == signal.SIGKILL, (
        f"the child was not killed mid-run (status {status}, {seen} checkpoints seen)"
    )
    assert not (out / "model.safetensors").exists()


@pytest.mark.skipif(not hasattr(os, "fork"), reason="needs os.fork (POSIX)")
@pytest.mark.parametrize("kind, per_chunk", [("tms", None), ("tms", 1), ("sae", None), ("sae", 2)])
def test_sigkill_then_resume_is_bit_identical(tmp_path, kind, per_chunk):
    from toymodels.train import train

    rng = random.Random(int.from_bytes(os.urandom(4), "little"))
    n_checkpoints, delay = rng.randint(1, 4), rng.uniform(0.0, 0.03)
    why = f"killed after checkpoint {n_checkpoints} + {delay * 1000:.0f} ms"

    model, source, config = build(kind, per_chunk)
    ref = train(model, source, config, tmp_path / "ref")
    ref_state = _state(model)

    _kill_mid_run(tmp_path / "run", kind, per_chunk, n_checkpoints, delay)
    model, source, config = build(kind, per_chunk)
    resumed = train(model, source, config, tmp_path / "run", resume=True)

    for k, v in _state(model).items():
        assert torch.equal(v, ref_state[k]), f"{why}: {k} differs"
    assert torch.equal(resumed.final_loss, ref.final_loss), why
    assert resumed.history == ref.history, why
    saved = json.loads((tmp_path / "run" / "metrics.json").read_text())
    assert saved["loss"] == json.loads((tmp_path / "ref" / "metrics.json").read_text())["loss"], why
