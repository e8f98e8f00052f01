"""The CLI behaves as a Python user expects (issue 22 item 7): Ctrl-C says how to resume,
a broken pipe is silent, a misspelt flag gets a suggestion and one line (no usage dump), a
transposed activations file and p = 0 are refused by name, help texts and labels are right."""
import io
import json
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import numpy as np
import pytest
import torch

from toymodels.cli import interrupted_message, main
from toymodels.data.activations import Activations
from toymodels.measures.analysis import classify_geometry, feature_dimensionality, interference_groups
from toymodels.sae import ARCHITECTURES

ROOT = Path(__file__).resolve().parents[1]
TINY_TMS = ["tms", "--n-features", "5", "--d-hidden", "2", "--steps", "20", "--batch-size", "64",
            "--device", "cpu", "--quiet"]


def _one_line_error(capsys):
    err = capsys.readouterr().err
    lines = [ln for ln in err.splitlines() if ln.strip()]
    assert len(lines) == 1, err
    assert "usage:" not in err and "Traceback" not in err
    return lines[0]


@pytest.mark.parametrize("argv, typo, wanted", [
    (["tms", "--stesp", "10"], "--stesp", "--steps"),
    (["sae", "--dict-sise", "8"], "--dict-sise", "--dict-size"),
    (["sweep", "spec.toml", "--wokers", "2"], "--wokers", "--workers"),
    (["export", "run", "--out", "x", "--formt", "saelens"], "--formt", "--format"),
])
def test_a_misspelt_flag_gets_one_line_and_a_suggestion(capsys, argv, typo, wanted):
    with pytest.raises(SystemExit) as e:
        main(argv)
    assert e.value.code == 2
    line = _one_line_error(capsys)
    assert line.startswith(f"toymodels {argv[0]}: error:") and typo in line and f"did you mean {wanted}" in line


@pytest.mark.parametrize("argv, fragment", [
    (["sae", "--arch", "topkk"], "did you mean 'topk'"),
    (["tsm"], "did you mean 'tms'"),
    (["tms", "--steps", "1e3"], "invalid int value: '1e3'"),
])
def test_a_bad_value_is_one_line_without_the_usage(capsys, argv, fragment):
    with pytest.raises(SystemExit) as e:
        main(argv)
    assert e.value.code == 2
    assert fragment in _one_line_error(capsys)


def test_feature_probability_zero_is_refused(tmp_path, capsys):
    rc = main([*TINY_TMS, "--feature-probability", "0", "--out", str(tmp_path / "run")])
    assert rc == 2
    assert "p = 0" in _one_line_error(capsys)
    assert not (tmp_path / "run").exists()


def test_a_transposed_activations_file_is_named_as_such(tmp_path, capsys):
    x = np.random.default_rng(0).standard_normal((8, 400)).astype(np.float32)  # (D, N) by mistake
    np.save(tmp_path / "acts.npy", x)
    with pytest.raises(ValueError, match="transposed"):
        Activations(tmp_path / "acts.npy")
    rc = main(["sae", "--data", "activations", "--activations", str(tmp_path / "acts.npy"), "--steps", "5",
               "--out", str(tmp_path / "run"), "--quiet", "--device", "cpu"])
    assert rc == 2 and "transposed" in _one_line_error(capsys)
    assert Activations(x.T.copy()).dim == 8  # the right way round is fine


class _ClosedPipe(io.TextIOBase):
    def write(self, s):
        raise BrokenPipeError(32, "Broken pipe")

    def fileno(self):
        raise io.UnsupportedOperation("no fd")


def test_a_broken_pipe_is_silent(tmp_path, monkeypatch, capsys):
    monkeypatch.setattr(sys, "stdout", _ClosedPipe())
    rc = main([*TINY_TMS, "--out", str(tmp_path / "run")])
    assert rc == 141
    assert capsys.readouterr().err == ""


def test_a_broken_pipe_is_silent_in_a_real_pipe(tmp_path):
    proc = subprocess.Popen([sys.executable, "-m", "toymodels", *TINY_TMS, "--out", str(tmp_path / "run")],
                            stdout=subprocess.PIPE, stderr=subprocess.PIPE, cwd=ROOT)
    proc.stdout.close()  # the reader goes away before anything is printed, as `| head -0` would
    _, err = proc.communicate(timeout=120)
    assert proc.returncode == 141, err.decode()
    assert b"Traceback" not in err and b"BrokenPipe" not in err, err.decode()


def test_ctrl_c_names_the_checkpoint_and_the_resume_command(tmp_path):
    out = tmp_path / "run"
    argv = ["tms", "--n-features", "40", "--d-hidden", "8", "--instances", "4", "--steps", "1000000",
            "--checkpoint-every", "20", "--batch-size", "64", "--device", "cpu", "--threads", "1",
            "--out", str(out), "--quiet"]
    proc = subprocess.Popen([sys.executable, "-m", "toymodels", *argv], stdout=subprocess.PIPE,
                            stderr=subprocess.PIPE, cwd=ROOT)
    try:
        deadline = time.monotonic() + 120
        while not (out / "checkpoint.pt").exists():
            assert proc.poll() is None and time.monotonic() < deadline, proc.stderr.read().decode()
            time.sleep(0.05)
        time.sleep(0.2)
        proc.send_signal(signal.SIGINT)
        _, err = proc.communicate(timeout=60)
    finally:
        if proc.poll() is None:
            proc.kill()
    err = err.decode()
    assert proc.returncode == 130, err
    lines = [ln for ln in err.splitlines() if ln.strip()]
    assert len(lines) == 1 and "Traceback" not in err, err
    assert str(out / "checkpoint.pt") in lines[0]
    assert lines[0].endswith(" ".join(["toymodels", *argv, "--resume"]))


def test_the_interrupt_message_without_a_checkpoint_says_how_to_start_again(tmp_path):
    out = tmp_path / "run"
    out.mkdir()
    (out / "config.json").write_text("{}")
    msg = interrupted_message("toymodels tms", ["tms", "--out", str(out)], out)
    assert "nothing to resume" in msg and msg.endswith(f"toymodels tms --out {out} --overwrite")
    (out / "checkpoint.pt").write_bytes(b"")
    msg = interrupted_message("toymodels tms", ["tms", "--out", str(out), "--overwrite"], out)
    assert msg.endswith(f"toymodels tms --out {out} --resume")


def test_help_texts_and_labels(tmp_path, capsys):
    with pytest.raises(SystemExit):
        main(["sae", "--help"])
    help_text = " ".join(capsys.readouterr().out.split())
    sentence = help_text.split("Architecture, one of", 1)[1].split(".", 1)[0]
    assert all(name in sentence for name in ARCHITECTURES), sentence  # matryoshka included
    with pytest.raises(SystemExit):
        main(["export", "--help"])
    assert "diverged" not in capsys.readouterr().out
    out = tmp_path / "topk"
    assert main(["sae", "--arch", "topk", "--n-features", "16", "--d-model", "8", "--steps", "5",
                 "--out", str(out), "--quiet", "--device", "cpu"]) == 0
    assert "l1_coefficient" not in json.loads((out / "metrics.json").read_text())  # no L1 in a TopK SAE
    capsys.readouterr()
    assert main(["sae", "--arch", "jumprelu", "--n-features", "16", "--d-model", "8", "--steps", "5",
                 "--out", str(tmp_path / "jr"), "--quiet", "--device", "cpu"]) == 0
    header = next(ln for ln in capsys.readouterr().out.splitlines() if ln.strip().startswith("inst"))
    assert "l0 coef" in header and " l1 " not in f" {header} "


def test_classify_geometry_takes_batched_w():
    W = torch.randn(3, 2, 5, generator=torch.Generator().manual_seed(0))
    labels = classify_geometry(W)
    assert labels == [classify_geometry(w) for w in W] and len(labels) == 3 and len(labels[0]) == 5
    assert interference_groups(W) == [interference_groups(w) for w in W]
    assert feature_dimensionality(W).shape == (3, 5)  # the function it is used beside, batched alike
    angles = torch.arange(5, dtype=torch.float64) * 2 * torch.pi / 5
    pentagon = torch.stack([angles.cos(), angles.sin()])  # (2, 5): five features in two dims
    assert classify_geometry(pentagon[None].expand(2, -1, -1)) == [["pentagon"] * 5] * 2


def test_the_cpu_allocator_running_out_is_one_line(tmp_path, monkeypatch, capsys):
    """A model too large for memory raised torch's raw `DefaultCPUAllocator` RuntimeError."""
    import toymodels.cli.tms as tms_cli

    def too_big(*a, **kw):
        raise RuntimeError("[enforce fail at alloc_cpu.cpp:117] data. DefaultCPUAllocator: not enough memory: "
                           "you tried to allocate 53876000000 bytes.")

    monkeypatch.setattr(tms_cli, "run_tms", too_big)
    rc = main([*TINY_TMS, "--out", str(tmp_path / "run")])
    assert rc == 2 and "out of memory" in _one_line_error(capsys)
    monkeypatch.setattr(tms_cli, "run_tms", lambda *a, **kw: (_ for _ in ()).throw(RuntimeError("another bug")))
    with pytest.raises(RuntimeError, match="another bug"):  # other errors are not disguised as memory
        main([*TINY_TMS, "--out", str(tmp_path / "run2")])
