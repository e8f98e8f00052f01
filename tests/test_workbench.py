"""The workbench (toymodels.workbench): load_run for every run kind, the checks that turn a
damaged folder into one RunFolderError line, --truth files and the scores against them
(compared with a hand computation), and the guard that refuses rebuilt directions which do
not reproduce a run's recorded mmcs."""
from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest
import torch
from scipy.optimize import linear_sum_assignment

import toymodels
from toymodels.cli import main
from toymodels.train.runs import RunFolderError, load_model, read_json
from toymodels.workbench import latent_matches, load_run, matched_order, read_truth, run_truth, select_instances

TINY = ["--steps", "30", "--batch-size", "64", "--eval-samples", "256", "--quiet", "--device", "cpu"]


def _cli(*argv: str) -> None:
    assert main(list(argv)) == 0


@pytest.fixture(scope="module")
def runs(tmp_path_factory: pytest.TempPathFactory) -> dict[str, Path]:
    """One tiny run of every kind: tms, sae (synthetic features), an SPD decomposition, and a
    tms and an sae sweep job."""
    root = tmp_path_factory.mktemp("wb")
    _cli("tms", "--n-features", "5", "--d-hidden", "2", "--instances", "3", "--feature-probability", "0.05", "0.5",
         "--out", str(root / "tms"), *TINY)
    _cli("sae", "--data", "features", "--arch", "topk", "--n-features", "8", "--d-model", "6", "--dict-size", "12",
         "--k", "2", "3", "--instances", "2", "--out", str(root / "sae"), *TINY)
    from toymodels import SparseFeatures, TMSConfig, build_model
    from toymodels.research.spd import SPDConfig, train_spd
    from toymodels.train import TrainConfig

    tms = build_model(TMSConfig(5, 2, n_instances=2), seed=3)
    train_spd(tms, SparseFeatures(5, 0.2, 2, seed=1), SPDConfig(n_components=3),
              TrainConfig(steps=20, batch_size=32, quiet=True, eval_samples=64), out=root / "spd")
    for cmd, fixed, grid in (
        ("tms", 'n_features = 4\nd_hidden = 2\n', "feature_probability = [0.1, 0.4]\nseed = [0, 1]\n"),
        ("sae", 'data = "features"\nn_features = 6\nd_model = 4\ndict_size = 8\narch = "relu"\n',
         "l1_coefficient = [0.01, 0.1]\n"),
    ):
        spec = root / f"{cmd}.toml"
        spec.write_text(f'command = "{cmd}"\n[fixed]\n{fixed}steps = 20\nbatch_size = 64\neval_samples = 256\n[grid]\n{grid}')
        _cli("sweep", str(spec), "--out", str(root / f"{cmd}-sweep"), "--workers", "1")
    return {"tms": root / "tms", "sae": root / "sae", "spd": root / "spd",
            "tms-sweep": next((root / "tms-sweep" / "jobs").iterdir()),
            "sae-sweep": next((root / "sae-sweep" / "jobs").iterdir()), "sweep-root": root / "tms-sweep"}


# ---------------------------------------------------------------------- load_run round trips
@pytest.mark.parametrize("kind", ["tms", "sae", "spd"])
def test_load_run_round_trips_every_plain_run(runs, kind):
    path = runs[kind]
    run = toymodels.load_run(path)
    assert isinstance(run, toymodels.Run) and run.kind == kind and run.points is None
    assert run.config == read_json(path / "config.json")
    assert run.metrics == read_json(path / "metrics.json")
    assert run.history == read_json(path / "history.json")
    assert run.n_instances == run.config["model"].get("n_instances", 2)
    saved = {k: v for k, v in __import__("safetensors.torch").torch.load_file(str(path / "model.safetensors")).items()}
    state = run.model.state_dict()
    assert set(saved) == set(state) and all(torch.equal(saved[k], state[k].cpu()) for k in saved)
    assert run.model is run.model  # loaded once
    steps, loss = run.history_array("loss")
    assert loss.shape == (len(run.history), run.n_instances) and steps[-1] == run.history[-1]["step"]
    if kind != "spd":
        assert all(torch.equal(a, b) for a, b in zip(load_model(path).state_dict().values(), state.values()))


@pytest.mark.parametrize("kind", ["tms-sweep", "sae-sweep"])
def test_a_sweep_job_is_a_run_of_its_points_without_the_padding(runs, kind):
    path = runs[kind]
    run = load_run(path)
    points = read_json(path / "points.json")
    padded = load_model(path)
    assert run.kind == kind.split("-")[0] and run.is_sweep_job and run.n_instances == len(points)
    assert padded.n_instances > len(points)  # the job trained padding instances
    assert run.model.n_instances == len(points)
    full, mine = padded.state_dict(), run.model.state_dict()
    assert all(torch.equal(full[k][: len(points)], mine[k]) for k in mine)
    assert run.history_array("loss")[1].shape[1] == len(points)
    for key in ("loss",):
        assert len(run.metrics[key]) == run.n_instances
    labels = run.instance_labels()
    assert len(labels) == len(points) and len(set(labels)) == len(labels)


# ---------------------------------------------------------------------- damaged folders
def _copy(src: Path, dst: Path) -> Path:
    import shutil

    shutil.copytree(src, dst, ignore=shutil.ignore_patterns(".lock"))
    return dst


@pytest.mark.parametrize("damage,needle", [
    (lambda p: (p / "metrics.json").write_text(""), "metrics.json: the file is empty"),
    (lambda p: (p / "history.json").write_text("[{\"step\": 1"), "history.json: not valid JSON"),
    (lambda p: (p / "history.json").unlink(), "history.json: file not found"),
    (lambda p: (p / "model.safetensors").write_bytes((p / "model.safetensors").read_bytes()[:-9]), "truncated"),
    (lambda p: (p / "model.safetensors").write_bytes(b"\x05\x00"), "not a readable safetensors"),
    (lambda p: (p / "config.json").write_text("[1, 2]"), "config.json: expected a JSON object"),
    (lambda p: (p / "config.json").write_text('{"model": {"family": "gpt", "n_instances": 1}}'), "unknown model family"),
    (lambda p: (p / "config.json").unlink(), "config.json is missing"),
])
def test_a_damaged_or_incomplete_folder_is_one_runfoldererror_line(runs, tmp_path, damage, needle):
    path = _copy(runs["tms"], tmp_path / "run")
    damage(path)
    with pytest.raises(RunFolderError) as e:
        load_run(path)
    assert needle in str(e.value) and "\n" not in str(e.value)


def test_an_unfinished_run_says_it_can_be_resumed_and_a_sweep_root_points_at_its_jobs(runs, tmp_path):
    path = _copy(runs["sae"], tmp_path / "run")
    (path / "metrics.json").unlink()
    with pytest.raises(RunFolderError, match="did not finish.*--resume"):
        load_run(path)
    with pytest.raises(RunFolderError, match="is a sweep folder, not a run; give one of its 1 job"):
        load_run(runs["sweep-root"])
    with pytest.raises(RunFolderError, match="no such folder"):
        load_run(tmp_path / "nowhere")


def test_spd_weights_of_another_shape_are_refused_when_the_model_loads(runs, tmp_path):
    path = _copy(runs["spd"], tmp_path / "spd")
    cfg = read_json(path / "config.json")
    cfg["model"]["n_components"] = 4
    (path / "config.json").write_text(json.dumps(cfg))
    run = load_run(path)
    with pytest.raises(RunFolderError, match="model.safetensors: tensor .* has shape"):
        run.model


def test_select_instances_is_evenly_spaced_with_the_ends():
    assert select_instances(3, 6) == [0, 1, 2]
    assert select_instances(100, 6) == [0, 20, 40, 59, 79, 99]
    assert select_instances(7, 2) == [0, 6] and select_instances(9, 1) == [0]
    with pytest.raises(ValueError, match="max_instances"):
        select_instances(3, 0)


# ---------------------------------------------------------------------- truth files
def _save(path: Path, t: torch.Tensor, key: str = "truth") -> Path:
    if path.suffix == ".npy":
        np.save(path, t.numpy())
    elif path.suffix == ".pt":
        torch.save({key: t}, path)
    else:
        from safetensors.torch import save_file

        save_file({key: t.contiguous()}, str(path))
    return path


@pytest.mark.parametrize("ext", [".npy", ".pt", ".safetensors"])
def test_read_truth_reads_every_format(tmp_path, ext):
    t = torch.randn(5, 3)
    got = read_truth(_save(tmp_path / f"t{ext}", t), width=3)
    assert got.dtype == torch.float32 and torch.equal(got, t)


@pytest.mark.parametrize("value,needle", [
    (torch.randn(4, 5), "has shape (4, 5), but the activations have width D = 3"),
    (torch.randn(4), "must be a (G, D) array"),
    (torch.zeros(0, 3), "must be a (G, D) array"),
    (torch.tensor([[1.0, 0, 0], [float("nan"), 0, 0]]), "row 1 holds a NaN"),
    (torch.tensor([[1.0, 0, 0], [0.0, 0, 0]]), "row 1 is all zeros"),
])
def test_read_truth_refuses_bad_arrays_naming_the_flag(tmp_path, value, needle):
    with pytest.raises(ValueError) as e:
        read_truth(_save(tmp_path / "t.npy", value), width=3)
    assert str(e.value).startswith("--truth ") and needle in str(e.value)


def test_read_truth_refuses_a_wrong_key_or_extension(tmp_path):
    with pytest.raises(ValueError, match="no tensor named 'truth'"):
        read_truth(_save(tmp_path / "t.safetensors", torch.randn(2, 3), key="activations"))
    with pytest.raises(ValueError, match="without key 'truth'"):
        read_truth(_save(tmp_path / "t.pt", torch.randn(2, 3), key="dirs"))
    with pytest.raises(ValueError, match="unknown extension '.csv'"):
        read_truth(tmp_path / "t.csv")
    with pytest.raises(ValueError, match="no such file"):
        read_truth(tmp_path / "missing.npy")


def test_latent_matches_and_the_plot_order_by_hand():
    # two latents in 2-D: latent 0 along e2, latent 1 along e1, latent 2 between; truth e1, e2
    dec = torch.tensor([[0.0, 2.0, 1.0], [3.0, 0.0, 1.0]])[None]  # (1, D=2, F=3)
    truth = torch.eye(2)[None]
    s = latent_matches(dec, truth)
    assert s["match"].tolist() == [[1, 0, -1]]
    assert torch.allclose(s["best"], torch.tensor([[1.0, 1.0, 2 ** -0.5]]))
    assert matched_order(s["match"][0], s["best"][0]) == [1, 0, 2]


@pytest.fixture(scope="module")
def truth_run(tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, torch.Tensor]:
    """An SAE trained on activations made from 6 known directions in 8 dims, with --truth."""
    root = tmp_path_factory.mktemp("truth")
    g = torch.Generator().manual_seed(0)
    dirs = torch.randn(6, 8, generator=g) * 3.0  # not unit: the scores must normalise
    codes = torch.rand(2000, 6, generator=g) * (torch.rand(2000, 6, generator=g) < 0.2)
    np.save(root / "acts.npy", (codes @ dirs).numpy().astype(np.float32))
    np.save(root / "truth.npy", dirs.numpy())
    _cli("sae", "--data", "activations", "--activations", str(root / "acts.npy"), "--truth", str(root / "truth.npy"),
         "--arch", "relu", "--dict-size", "10", "--instances", "2", "--l1-coefficient", "0.01", "0.1",
         "--out", str(root / "run"), *TINY)
    return root / "run", dirs


def test_truth_scores_match_a_hand_computation(truth_run):
    path, dirs = truth_run
    m = read_json(path / "metrics.json")
    dec = load_model(path).W_dec.detach().double()  # (I, F, D): rows are the decoder directions
    t = dirs.double() / dirs.double().norm(dim=1, keepdim=True)
    for i in range(2):
        d = dec[i] / dec[i].norm(dim=1, keepdim=True)
        cos = (d @ t.T).numpy()  # (F, G)
        assert m["mmcs"][i] == pytest.approx(cos.max(axis=0).mean(), abs=1e-5)
        rows, cols = linear_sum_assignment(cos, maximize=True)
        assert m["mcc"][i] == pytest.approx(cos[rows, cols].sum() / t.shape[0], abs=1e-5)
        match = [-1] * cos.shape[0]
        for r, c in zip(rows, cols):
            match[r] = int(c)
        assert m["truth_match"][i] == match
        assert m["truth_cosine"][i] == pytest.approx(cos.max(axis=1).tolist(), abs=1e-5)
    assert m["truth_shape"] == [6, 8] and Path(m["truth_file"]).name == "truth.npy"


def test_a_truth_run_gets_its_directions_back_and_an_edited_mmcs_is_refused(truth_run, tmp_path):
    path, dirs = truth_run
    known = run_truth(load_run(path))
    assert known.rows is not None and torch.allclose(known.rows[1], dirs)
    edited = _copy(path, tmp_path / "run")
    m = read_json(edited / "metrics.json")
    m["mmcs"][1] += 0.01
    (edited / "metrics.json").write_text(json.dumps(m))
    refused = run_truth(load_run(edited))
    assert refused.rows is None and "do not reproduce metrics.json's mmcs of instance 1" in refused.reason


def test_synthetic_truth_is_rebuilt_from_the_config_and_checked(runs):
    for kind in ("sae", "sae-sweep"):
        run = load_run(runs[kind])
        known = run_truth(run)
        assert known.rows is not None and len(known.rows) == run.n_instances, known.reason
        assert known.rows[0].shape == (run.config["data"].get("n_features") or 6, run.model.d_model)
    assert run_truth(load_run(runs["tms"])).rows is None


@pytest.mark.parametrize("argv,needle", [
    (["--data", "features", "--truth", "t.npy"], "--truth only applies to --data activations"),
    (["--data", "activations", "--activations", "ACTS", "--truth", "WIDE"],
     "--truth WIDE has shape (3, 5), but the activations ACTS (shape (40, 4)) have width D = 4"),
])
def test_the_sae_command_refuses_a_bad_truth_in_one_line(tmp_path, capsys, argv, needle):
    np.save(tmp_path / "acts.npy", np.random.default_rng(0).normal(size=(40, 4)).astype(np.float32))
    np.save(tmp_path / "wide.npy", np.ones((3, 5)))
    sub = {"ACTS": str(tmp_path / "acts.npy"), "WIDE": str(tmp_path / "wide.npy")}
    argv = [sub.get(a, a) for a in argv]
    rc = main(["sae", *argv, "--out", str(tmp_path / "out"), *TINY])
    err = capsys.readouterr().err.strip()
    assert rc == 2 and len(err.splitlines()) == 1
    assert needle.replace("WIDE", sub["WIDE"]).replace("ACTS", sub["ACTS"]) in err
    assert not (tmp_path / "out" / "config.json").exists()


def test_truth_codes_give_per_latent_precision_recall_f1(tmp_path):
    """--truth-codes (the known firing of each row) adds, per latent, its best-F1 direction and
    the precision, recall and F1 of its firing on the held-out rows: equal to a hand count."""
    import json

    import numpy as np

    from toymodels.cli import main
    from toymodels.sae import SAE  # noqa: F401  (the saved run loads as an SAE)
    from toymodels.train.runs import load_model

    rng = np.random.default_rng(0)
    g, d, n = 6, 8, 2000
    dirs = rng.standard_normal((g, d)).astype(np.float32)
    active = rng.random((n, g)) < 0.2
    acts = (active * rng.random((n, g))).astype(np.float32) @ dirs
    np.save(tmp_path / "acts.npy", acts)
    np.save(tmp_path / "truth.npy", dirs)
    np.save(tmp_path / "codes.npy", active)
    out = tmp_path / "run"
    assert main(["sae", "--data", "activations", "--activations", str(tmp_path / "acts.npy"),
                 "--truth", str(tmp_path / "truth.npy"), "--truth-codes", str(tmp_path / "codes.npy"),
                 "--dict-size", "12", "--steps", "60", "--out", str(out), "--quiet", "--device", "cpu"]) == 0
    m = json.loads((out / "metrics.json").read_text())
    sae = load_model(out)
    held = torch.from_numpy(acts[1800:])  # the last 10% are held out
    with torch.no_grad():
        fired = (sae.encode(held[None]) != 0)[0].numpy()  # (B, F)
    truth = active[1800:]
    for j in range(12):
        if not fired[:, j].any():
            assert m["truth_latent_precision"][0][j] is None
            continue
        tp = (fired[:, j:j + 1] & truth).sum(0)
        prec, rec = tp / fired[:, j].sum(), tp / np.maximum(truth.sum(0), 1)
        f1 = np.where(prec + rec > 0, 2 * prec * rec / np.where(prec + rec > 0, prec + rec, 1), 0)
        best = m["truth_latent_match"][0][j]
        assert f1[best] == pytest.approx(f1.max(), abs=1e-9)
        assert m["truth_latent_precision"][0][j] == pytest.approx(prec[best], abs=1e-9)
        assert m["truth_latent_recall"][0][j] == pytest.approx(rec[best], abs=1e-9)
        assert m["truth_latent_f1"][0][j] == pytest.approx(f1[best], abs=1e-9)


def test_truth_codes_of_the_wrong_shape_are_one_line(tmp_path, capsys):
    import numpy as np

    from toymodels.cli import main

    rng = np.random.default_rng(0)
    np.save(tmp_path / "acts.npy", rng.standard_normal((200, 8)).astype(np.float32))
    np.save(tmp_path / "truth.npy", rng.standard_normal((6, 8)).astype(np.float32))
    np.save(tmp_path / "codes.npy", rng.random((200, 5)) < 0.2)
    base = ["sae", "--data", "activations", "--activations", str(tmp_path / "acts.npy"), "--steps", "5",
            "--out", str(tmp_path / "run"), "--quiet", "--device", "cpu"]
    assert main([*base, "--truth", str(tmp_path / "truth.npy"), "--truth-codes", str(tmp_path / "codes.npy")]) == 2
    assert "must be (200, 6)" in capsys.readouterr().err
    assert main([*base, "--truth-codes", str(tmp_path / "codes.npy")]) == 2
    assert "--truth-codes needs --truth" in capsys.readouterr().err
