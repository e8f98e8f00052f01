"""Run-folder I/O: JSON-safe values and atomic writes."""
import json
import math
from pathlib import Path

import numpy as np
import torch

from toymodels.train.runs import jsonable, read_json, write_json


def test_jsonable_makes_strict_json():
    obj = {
        "tensor": torch.tensor([1.5, float("nan"), float("inf")]),
        "array": np.array([[1, 2]]),
        "scalars": (np.float32(0.25), np.int64(3), np.bool_(True), torch.tensor(2.0)),
        "path": Path("/tmp/x"),
        7: -math.inf,
    }
    out = jsonable(obj)
    assert out == {
        "tensor": [1.5, None, "inf"],
        "array": [[1, 2]],
        "scalars": [0.25, 3, True, 2.0],
        "path": "/tmp/x",
        "7": "-inf",
    }
    json.dumps(out, allow_nan=False)  # strict JSON: raises on NaN/inf


def test_write_json_is_atomic_and_round_trips(tmp_path):
    path = tmp_path / "sub" / "metrics.json"
    write_json(path, {"loss": torch.tensor([0.5, 0.25])})
    assert read_json(path) == {"loss": [0.5, 0.25]}
    assert [p.name for p in path.parent.iterdir()] == ["metrics.json"]  # no temporary left behind


# ---------------------------------------------------------------------- damaged files (issue 8 #9)
import os  # noqa: E402

import pytest  # noqa: E402

from toymodels import SparseFeatures, TMSConfig, build_model  # noqa: E402
from toymodels.train.runs import (  # noqa: E402
    RunFolderError,
    check_rng_device,
    check_writable_dir,
    load_checkpoint,
    load_model,
    rng_state_to_cpu,
    settings_diff,
)
from toymodels.train import TrainConfig, train  # noqa: E402


@pytest.fixture(scope="module")
def finished_run(tmp_path_factory):
    out = tmp_path_factory.mktemp("run")
    train(build_model(TMSConfig(5, 2, 2), seed=0), SparseFeatures(5, 0.05, 2, seed=1),
          TrainConfig(steps=10, batch_size=16, quiet=True, eval_samples=32), out)
    return out


def _copy(src, dst):
    dst.mkdir()
    for p in src.iterdir():
        if p.is_file():
            (dst / p.name).write_bytes(p.read_bytes())
    return dst


def _damage(path, how):
    data = path.read_bytes()
    path.write_bytes({"empty": b"", "truncated": data[: len(data) // 2], "garbage": b"\x00\xffnot this format{"}[how])


@pytest.mark.parametrize("how", ["empty", "truncated", "garbage"])
@pytest.mark.parametrize("name", ["config.json", "model.safetensors"])
def test_load_model_on_a_damaged_file_is_one_line(finished_run, tmp_path, name, how):
    run = _copy(finished_run, tmp_path / "run")
    _damage(run / name, how)
    with pytest.raises(RunFolderError, match=name.replace(".", r"\.")) as err:
        load_model(run)
    assert "\n" not in str(err.value)


@pytest.mark.parametrize("how", ["empty", "truncated", "garbage"])
def test_load_checkpoint_on_a_damaged_file_is_one_line(finished_run, tmp_path, how):
    run = _copy(finished_run, tmp_path / "run")
    _damage(run / "checkpoint.pt", how)
    with pytest.raises(RunFolderError, match=r"checkpoint\.pt") as err:
        load_checkpoint(run / "checkpoint.pt")
    assert "\n" not in str(err.value)


def test_load_model_rejects_unknown_spec_keys_and_missing_weights(finished_run, tmp_path):
    run = _copy(finished_run, tmp_path / "run")
    cfg = read_json(run / "config.json")
    cfg["model"]["n_featurez"] = 5
    write_json(run / "config.json", cfg)
    with pytest.raises(RunFolderError, match=r"config\.json.*n_featurez"):
        load_model(run)
    run2 = _copy(finished_run, tmp_path / "run2")
    cfg = read_json(run2 / "config.json")
    cfg["model"]["n_features"] = 6  # the weights no longer fit the spec
    write_json(run2 / "config.json", cfg)
    with pytest.raises(RunFolderError, match=r"model\.safetensors.*shape"):
        load_model(run2)
    (run2 / "model.safetensors").unlink()
    with pytest.raises(RunFolderError, match=r"model\.safetensors: file not found"):
        load_model(run2)
    with pytest.raises(RunFolderError, match="config.json is missing"):
        load_model(tmp_path)


# ---------------------------------------------------------------------- output paths
def test_check_writable_dir(tmp_path, monkeypatch):
    assert check_writable_dir(tmp_path / "new" / "deeper") == tmp_path / "new" / "deeper"
    (tmp_path / "file").write_text("x")
    with pytest.raises(RunFolderError, match="is a file, not a folder"):
        check_writable_dir(tmp_path / "file")
    with pytest.raises(RunFolderError, match="file is a file"):
        check_writable_dir(tmp_path / "file" / "run")
    with pytest.raises(RunFolderError, match="empty string"):
        check_writable_dir("")
    real_access = os.access
    monkeypatch.setattr(os, "access", lambda p, mode: False if str(p) == str(tmp_path) else real_access(p, mode))
    with pytest.raises(RunFolderError, match="not writable"):
        check_writable_dir(tmp_path / "run")


def test_check_writable_dir_tries_a_file(tmp_path, monkeypatch):
    """Permission bits say nothing to root or on a read-only mount: the check writes a file."""
    import tempfile

    def refuse(*a, **k):
        raise PermissionError(13, "Read-only file system")

    monkeypatch.setattr(tempfile, "mkstemp", refuse)
    with pytest.raises(RunFolderError, match="not writable"):
        check_writable_dir(tmp_path)


# ---------------------------------------------------------------------- resume helpers
def test_settings_diff_names_fields():
    a = {"model": {"kind": "relu-output", "n_features": 5}, "data": {"p": [0.1, 0.2]}, "train": {"lr": 0.001, "steps": 10, "quiet": False}}
    b = {"model": {"kind": "linear", "n_features": 5}, "data": {"p": [0.1, 0.3]}, "train": {"lr": 0.001, "steps": 99, "quiet": True}}
    assert settings_diff(a, b) == ["data.p ([0.1, 0.2] → [0.1, 0.3])", "model.kind ('relu-output' → 'linear')"]
    assert settings_diff(a, a) == []


def test_generator_state_crosses_devices_by_construction():
    """A CUDA run's checkpoint loaded with map_location='cuda' gives set_state a CUDA tensor;
    the state is converted to the CPU uint8 tensor every generator takes (tested on CPU with
    a real CPU state); another device type is refused in one line."""
    g = torch.Generator().manual_seed(5)
    state = g.get_state()
    odd = state.as_strided((state.numel() // 2,), (2,))  # a non-contiguous view
    out = rng_state_to_cpu([state, {"x": odd}])
    assert out[0].device.type == "cpu" and out[0].dtype == torch.uint8 and out[1]["x"].is_contiguous()
    g2 = torch.Generator()
    g2.set_state(rng_state_to_cpu(state))
    assert torch.equal(torch.rand(4, generator=g2), torch.rand(4, generator=g))
    with pytest.raises(RunFolderError, match="uint8"):
        rng_state_to_cpu(torch.zeros(3))
    check_rng_device("cpu", "cpu", "ck.pt")
    check_rng_device(None, "cpu", "ck.pt")
    with pytest.raises(RunFolderError, match=r"ck\.pt: .*saved on cuda and cannot continue on cpu"):
        check_rng_device("cuda", torch.device("cpu"), "ck.pt")
