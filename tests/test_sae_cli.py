"""``toymodels sae``: tiny runs of every architecture and every data kind write the metrics
contract; bad input exits with code 2 and one line before training."""
import json
import math

import pytest
import torch

from toymodels.cli import main
from toymodels.train.runs import load_model
from toymodels.sae import SAE

TINY = ["--n-features", "12", "--d-model", "6", "--dict-size", "16", "--steps", "4", "--batch-size", "32",
        "--eval-samples", "128", "--quiet", "--checkpoint-every", "0"]
PER_INSTANCE = ["l0", "mse", "fvu", "shrinkage", "dead_fraction"]
RUN_FILES = ["config.json", "model.safetensors", "history.json", "metrics.json"]


def run_ok(args, out):
    assert main(["sae", *args, "--out", str(out)]) == 0
    for name in RUN_FILES:
        assert (out / name).exists(), name
    m = json.loads((out / "metrics.json").read_text())
    assert {"train_seconds", "device", "peak_memory_bytes"} <= m.keys()
    assert m["device"] == "cpu" and m["peak_memory_bytes"] > 0 and m["train_seconds"] >= 0
    return m


@pytest.mark.parametrize("arch", ["relu", "gated", "rescaled", "topk", "batchtopk", "jumprelu", "bound"])
def test_every_arch_trains_and_writes_the_contract(tmp_path, arch):
    sweep = ["--k", "1", "4"] if arch in ("topk", "batchtopk") else ["--l1-coefficient", "0.01", "0.1"]
    out = tmp_path / arch
    m = run_ok(["--data", "features", "--arch", arch, "--instances", "3", *sweep, *TINY], out)
    for key in PER_INSTANCE + ["mmcs", "mcc"]:
        assert len(m[key]) == 3 and all(isinstance(v, float) and math.isfinite(v) for v in m[key]), key
    assert all(-1 <= v <= 1 for v in m["mmcs"] + m["mcc"])
    if arch in ("topk", "batchtopk"):
        assert m["k"] == [1, 2, 4]  # log-spaced from 1 to 4, rounded
        if arch == "topk":
            assert all(l0 <= k for l0, k in zip(m["l0"], m["k"]))
    else:
        assert m["l1_coefficient"] == pytest.approx([0.01, 0.1 ** 1.5, 0.1])  # log-spaced
    sae = load_model(out)
    assert isinstance(sae, SAE) and sae.arch == arch and sae.n_instances == 3
    x = torch.rand(1, 8, 6)
    assert torch.isfinite(sae(x)).all()


def test_tms_data_with_random_weights(tmp_path):
    m = run_ok(["--data", "tms", "--random-weights", *TINY], tmp_path / "r")
    assert {"mmcs", "mcc", "downstream_loss", "clean_loss", "loss_recovered"} <= m.keys()
    assert m["clean_loss"][0] <= m["zero_ablated_loss"][0]
    cfg = json.loads((tmp_path / "r" / "config.json").read_text())
    assert cfg["model"]["family"] == "sae" and cfg["data"]["kind"] == "tms"


def test_tms_data_from_a_tms_run(tmp_path, capsys):
    tms = tmp_path / "tms"
    assert main(["tms", "--n-features", "12", "--d-hidden", "4", "--instances", "2", "--steps", "5", "--quiet",
                 "--checkpoint-every", "0", "--out", str(tms)]) == 0
    out = tmp_path / "sae"
    args = ["--data", "tms", "--tms-run", str(tms), "--tms-instance", "1", "--dict-size", "8", "--steps", "4",
            "--batch-size", "32", "--eval-samples", "128", "--quiet", "--checkpoint-every", "0"]
    m = run_ok(args, out)
    assert load_model(out).d_model == 4  # D comes from the toy model's hidden width
    assert len(m["mmcs"]) == 1 and "downstream_loss" in m
    capsys.readouterr()
    bad = tmp_path / "bad"
    assert main(["sae", *args, "--d-model", "6", "--out", str(bad)]) == 2
    err = capsys.readouterr().err.strip()
    assert err.startswith("toymodels sae: error:") and "--d-model 6 does not match" in err and "\n" not in err
    assert not bad.exists()


@pytest.mark.parametrize("data", ["gaussian-mixture", "unit-cube"])
def test_featureless_data(tmp_path, data):
    m = run_ok(["--data", data, "--arch", "topk", "--k", "2", *TINY], tmp_path / data)
    assert "mmcs" not in m and len(m["fvu"]) == 1 and math.isfinite(m["fvu"][0])


@pytest.mark.parametrize(
    "args, message",
    [
        (["--dict-size", "0"], "dict_size must be an integer in [1"),
        (["--arch", "topk", "--dict-size", "8", "--k", "9"], "k[0] must be"),
        (["--l1-coefficient", "-0.5"], "l1_coefficient[0] must be in [0.0"),
        (["--l1-coefficient", "nan"], "l1_coefficient[0] must be a number"),
        (["--data", "tms"], "--data tms needs a toy model: --tms-run DIR"),
        (["--data", "tms", "--random-weights", "--n-features", "4", "--d-model", "8"], "d_hidden must be in [1, n_features = 4]"),
        (["--data", "tms", "--tms-run", "/nonexistent", "--random-weights"], "either --tms-run DIR or --random-weights"),
        (["--data", "tms", "--tms-run", "/nonexistent"], "is not a finished `toymodels tms` run folder"),
        (["--random-weights"], "only apply to --data tms"),
        (["--arch", "bound", "--dict-size", "7"], "dict_size must be even"),
    ],
)
def test_bad_input_exits_2_with_one_line_before_training(tmp_path, capsys, args, message):
    out = tmp_path / "run"
    assert main(["sae", *args, "--steps", "3", "--quiet", "--out", str(out)]) == 2
    err = capsys.readouterr().err.strip()
    assert err.startswith("toymodels sae: error:") and "\n" not in err
    assert message in err
    assert not out.exists()  # nothing trained or written


def test_k_is_ignored_with_a_note_for_penalty_architectures(tmp_path, capsys):
    """One contract command line (with --k and --l1-coefficient) drives every --arch."""
    out = tmp_path / "run"
    assert main(["sae", "--arch", "relu", "--k", "3", "--l1-coefficient", "0.1", "--d-model", "8", "--n-features", "16",
                 "--dict-size", "16", "--steps", "3", "--batch-size", "32", "--quiet", "--out", str(out)]) == 0
    assert "--k applies to topk and batchtopk; ignored for --arch relu" in capsys.readouterr().err
    assert (out / "metrics.json").exists()


@pytest.mark.parametrize("arch, flag", [("relu", "--jumprelu-threshold"), ("topk", "--threshold-ema")])
def test_another_architectures_option_is_noted_not_silently_dropped(tmp_path, capsys, arch, flag):
    k = ["--k", "2"] if arch == "topk" else []
    assert main(["sae", "--arch", arch, *k, flag, "0.3", *TINY, "--out", str(tmp_path / "r")]) == 0
    err = capsys.readouterr().err
    assert f"{flag} applies to --arch" in err and f"ignored for --arch {arch}" in err


def test_the_chosen_architectures_options_reach_the_model(tmp_path):
    out = tmp_path / "r"
    assert main(["sae", "--arch", "jumprelu", "--jumprelu-threshold", "0.3", "--jumprelu-bandwidth", "0.02", *TINY,
                 "--out", str(out)]) == 0
    spec = json.loads((out / "config.json").read_text())["model"]
    assert sorted(spec["options"].values()) == pytest.approx([0.02, 0.3])
