"""The `toymodels tms` contract: flags, run folder, metrics keys, clear errors."""
import json
import subprocess
import sys

import pytest
import torch

from toymodels.cli import main, sweep_probabilities
from toymodels.train.runs import load_model


def test_tms_contract(tmp_path, capsys):
    out = tmp_path / "run"
    rc = main([
        "tms", "--n-features", "6", "--d-hidden", "2", "--instances", "3", "--feature-probability", "0.01", "0.5",
        "--importance-decay", "0.9", "--steps", "40", "--batch-size", "256", "--lr", "0.01", "--seed", "3",
        "--device", "cpu", "--out", str(out), "--quiet",
    ])
    assert rc == 0
    metrics = json.loads((out / "metrics.json").read_text())
    assert len(metrics["loss"]) == 3 and all(isinstance(v, float) for v in metrics["loss"])
    assert [len(d) for d in metrics["dimensionality"]] == [6, 6, 6]
    assert metrics["train_seconds"] > 0 and metrics["device"] == "cpu" and metrics["peak_memory_bytes"] > 0
    assert metrics["feature_probability"] == pytest.approx([0.01, 0.01 * 50**0.5, 0.5], rel=1e-5)
    config = json.loads((out / "config.json").read_text())
    assert config["model"]["n_features"] == 6 and config["model"]["importance_decay"] == 0.9
    assert config["train"]["lr"] == 0.01 and config["train"]["batch_size"] == 256
    model = load_model(out)
    assert model.W.shape == (3, 2, 6)
    assert "run folder" in capsys.readouterr().out


def test_best_of_keeps_winners(tmp_path):
    out = tmp_path / "run"
    assert main(["tms", "--instances", "2", "--best-of", "3", "--steps", "30", "--out", str(out), "--quiet",
                 "--device", "cpu"]) == 0
    metrics = json.loads((out / "metrics.json").read_text())
    assert len(metrics["all_losses"]) == 6 and len(metrics["loss"]) == 2
    for c, chosen in enumerate(metrics["chosen_instances"]):
        group = metrics["all_losses"][3 * c : 3 * c + 3]
        assert metrics["loss"][c] == min(group) and chosen == 3 * c + group.index(min(group))
    assert load_model(out).n_instances == 2


def test_same_seed_same_run(tmp_path):
    args = ["tms", "--steps", "30", "--quiet", "--device", "cpu", "--seed", "4", "--out"]
    main(args + [str(tmp_path / "a")])
    main(args + [str(tmp_path / "b")])
    a, b = load_model(tmp_path / "a"), load_model(tmp_path / "b")
    assert torch.equal(a.W, b.W)


@pytest.mark.parametrize(
    "argv, message",
    [
        (["--feature-probability", "-0.1"], "feature_probability"),
        (["--feature-probability", "0.1", "0.2", "0.3"], "one value"),
        (["--d-hidden", "9", "--n-features", "5"], "d_hidden"),
        (["--lr", "nan"], "lr"),
        (["--importance-decay", "-1"], "importance_decay"),
        (["--feature-probability", "0", "0.5", "--instances", "2"], "log-spaced"),
    ],
)
def test_bad_input_is_one_clear_line(tmp_path, capsys, argv, message):
    rc = main(["tms", "--steps", "5", "--quiet", "--device", "cpu", "--out", str(tmp_path / "x"), *argv])
    err = capsys.readouterr().err
    assert rc == 2 and message in err and "Traceback" not in err
    assert not (tmp_path / "x" / "model.safetensors").exists()


def test_sweep_probabilities():
    assert sweep_probabilities([0.2], 3).tolist() == pytest.approx([0.2] * 3)
    assert sweep_probabilities([0.001, 0.1], 3).tolist() == pytest.approx([0.001, 0.01, 0.1], rel=1e-5)


def test_module_entry_point_help():
    r = subprocess.run([sys.executable, "-m", "toymodels", "--help"], capture_output=True, text=True)
    assert r.returncode == 0 and "tms" in r.stdout
    r = subprocess.run([sys.executable, "-m", "toymodels", "tms", "--help"], capture_output=True, text=True)
    for flag in ("--n-features", "--d-hidden", "--instances", "--feature-probability", "--importance-decay",
                 "--steps", "--batch-size", "--lr", "--seed", "--device", "--out"):
        assert flag in r.stdout, flag
