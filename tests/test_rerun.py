"""A rerun of a finished, identical run is a no-op (issue 22 item 4): train() and the CLI load
it from its final checkpoint and say so; a different run into the same folder is still refused."""
import json

import pytest
import torch

from toymodels import SparseFeatures, TMSConfig, build_model
from toymodels.cli import main
from toymodels.train import TrainConfig, train
from toymodels.train.runs import RunFolderError


def _run(out, steps=60, seed=0):
    model = build_model(TMSConfig(n_features=5, d_hidden=2, n_instances=3), seed=seed)
    data = SparseFeatures(n_features=5, feature_probability=0.05, n_instances=3, seed=1)
    return train(model, data, TrainConfig(steps=steps, batch_size=64, checkpoint_every=20, quiet=True), out=out), data


def test_the_readme_example_runs_twice(tmp_path, capsys):
    out = tmp_path / "pentagon"
    first, data1 = _run(out)
    metrics1 = (out / "metrics.json").read_text()
    second, data2 = _run(out)
    assert second.reused and not first.reused
    assert "already holds this finished run" in capsys.readouterr().err
    assert torch.equal(first.final_loss, second.final_loss)
    assert all(torch.equal(a, b) for a, b in zip(first.model.state_dict().values(), second.model.state_dict().values()))
    assert second.history == first.history
    assert torch.equal(data1.get_state(), data2.get_state())  # the source ends where the first run left it
    assert (out / "metrics.json").read_text() == metrics1  # train_seconds kept from the run that trained


def test_a_different_run_is_still_refused(tmp_path):
    out = tmp_path / "run"
    _run(out)
    with pytest.raises(RunFolderError, match="already holds a run"):
        _run(out, seed=5)
    with pytest.raises(RunFolderError, match="already holds a run"):
        _run(out, steps=80)  # more steps is a resume, not a rerun


def test_the_cli_reruns_a_finished_best_of_run_as_a_no_op(tmp_path, capsys):
    argv = ["tms", "--n-features", "5", "--d-hidden", "2", "--instances", "2", "--best-of", "2", "--steps", "40",
            "--checkpoint-every", "20", "--out", str(tmp_path / "t"), "--quiet", "--device", "cpu"]
    assert main(argv) == 0
    first = json.loads((tmp_path / "t" / "metrics.json").read_text())
    capsys.readouterr()
    assert main(argv) == 0
    assert "nothing trained" in capsys.readouterr().err
    again = json.loads((tmp_path / "t" / "metrics.json").read_text())
    assert again["loss"] == first["loss"] and again["chosen_instances"] == first["chosen_instances"]


def test_a_rerun_reads_each_checkpoint_once(tmp_path, monkeypatch):
    """The check that a run is finished read the checkpoints; the resume that follows used to
    read them all again."""
    import toymodels.train.loop as loop

    out = tmp_path / "run"
    _run(out)
    reads, real = [], loop.load_checkpoint
    monkeypatch.setattr(loop, "load_checkpoint", lambda path, *a, **k: reads.append(path) or real(path, *a, **k))
    second, _ = _run(out)
    assert second.reused
    assert sorted(reads) == sorted(set(reads)) and len(reads) == len(list(out.glob("checkpoint*.pt")))
