"""toymodels.experiments: the one build-train-best-of sequence for toy models."""
import json

import pytest
import torch

from toymodels.data import SparseFeatures
from toymodels.device import derive_seed
from toymodels.experiments import TMSRun, grid, importance_rows, train_tms
from toymodels.models import TMSConfig, build_model
from toymodels.train import TrainConfig, best_of, train

TCFG = TrainConfig(steps=30, batch_size=64, lr=1e-2, quiet=True, eval_samples=256, checkpoint_every=0)


def test_train_tms_matches_the_hand_written_glue():
    cfg = TMSConfig(5, 2, n_instances=2)
    run = train_tms(cfg, [0.3, 0.05], train=TCFG, best_of=3, seed=4)
    assert isinstance(run, TMSRun)
    # the glue it replaces
    probs = torch.tensor([0.3, 0.05]).repeat_interleave(3)
    src = SparseFeatures(5, probs, 6, seed=derive_seed(4, "data"))
    model = build_model(TMSConfig(5, 2, n_instances=6), seed=4)
    res = train(model, src, TCFG)
    win, chosen = best_of(model, res.final_loss, 3)
    assert torch.equal(run.all_losses, res.final_loss)
    assert torch.equal(run.chosen, chosen)
    assert torch.equal(run.model.W, win.W)
    assert run.model.n_instances == 2 and run.loss.shape == (2,)
    assert torch.equal(run.loss, res.final_loss[chosen])
    assert run.feature_probability.tolist() == pytest.approx([0.3, 0.05])
    for c in range(2):  # each kept instance is the lowest loss of its own three seeds
        assert run.loss[c] == run.all_losses[3 * c : 3 * c + 3].min()
    for key in ("loss", "dimensionality", "dimensions_per_feature", "feature_norms", "geometry",
                "feature_probability", "all_losses", "best_of", "chosen_instances"):
        assert key in run.metrics
    assert len(run.metrics["geometry"]) == 2 and len(run.metrics["dimensionality"][0]) == 5


def test_train_tms_writes_the_run_folder_as_toymodels_tms(tmp_path):
    """best_of > 1: model.safetensors holds the kept instances; config.json records best_of and
    chosen_instances; metrics.json has the keys `toymodels tms` writes."""
    from toymodels.train.runs import load_weights

    run = train_tms(TMSConfig(4, 2, n_instances=2), [0.5, 0.1], train=TCFG, best_of=2, seed=3, out=tmp_path)
    metrics = json.loads((tmp_path / "metrics.json").read_text())
    for key in ("loss", "all_losses", "chosen_instances", "dimensionality", "dimensions_per_feature",
                "feature_norms", "geometry", "best_of", "feature_probability", "train_seconds", "steps"):
        assert key in metrics, key
    assert metrics["loss"] == run.loss.tolist()
    assert metrics["chosen_instances"] == run.chosen.tolist()
    config = json.loads((tmp_path / "config.json").read_text())
    assert config["best_of"] == 2 and config["chosen_instances"] == run.chosen.tolist()
    assert config["model"]["n_instances"] == 2
    fresh = build_model(TMSConfig(4, 2, n_instances=2), seed=99)
    load_weights(tmp_path / "model.safetensors", fresh)
    assert torch.equal(fresh.W_IMN, run.model.W_IMN)


def test_train_tms_computation_model_gets_signed_inputs():
    run = train_tms(TMSConfig(4, 3, n_instances=1, kind="computation"), 0.3, train=TCFG)
    assert run.source.magnitude == "signed"
    assert run.source.sample(64).min() < 0


def test_train_tms_importance_per_configuration_is_repeated_over_seeds():
    imp = importance_rows(3, [1.0, 0.5])
    run = train_tms(TMSConfig(3, 2, n_instances=2), 0.2, train=TCFG, best_of=2, importance=imp)
    full = run.result.model.importance
    assert torch.equal(full, imp.repeat_interleave(2, 0))
    assert torch.equal(run.model.importance, imp)


@pytest.mark.parametrize("bad, match", [
    (dict(feature_probability=[0.1, 0.2, 0.3]), "feature_probability"),
    (dict(best_of=0), "best_of"),
    (dict(importance=torch.ones(3, 3)), "importance"),
    (dict(magnitude="gaussian"), "magnitude"),
    (dict(feature_probability="0.1"), "feature_probability must be a number"),
    (dict(feature_probability=1.5), "feature_probability"),
    (dict(seed=2**64), "seed must be an integer"),
])
def test_train_tms_rejects_bad_arguments(bad, match):
    kw = dict(feature_probability=0.1)
    kw.update(bad)
    p = kw.pop("feature_probability")
    with pytest.raises(ValueError, match=match):
        train_tms(TMSConfig(4, 2, n_instances=2), p, train=TCFG, **kw)


def test_grid_is_configuration_major():
    g = grid(decay=[1.0, 0.7], p=[0.1, 0.01, 0.001])
    assert g["decay"] == [1.0] * 3 + [0.7] * 3
    assert g["p"] == [0.1, 0.01, 0.001] * 2
    assert torch.allclose(importance_rows(3, [0.5])[0], torch.tensor([1.0, 0.5, 0.25]))


def test_train_tms_per_feature_probabilities_and_resume(tmp_path):
    p = torch.tensor([[0.5, 0.1, 0.1], [0.05, 0.05, 0.3]])
    run = train_tms(TMSConfig(3, 2, n_instances=2), p, train=TCFG, out=tmp_path)
    assert run.feature_probability.shape == (2, 3)
    assert torch.equal(run.source.feature_probability.cpu(), p)
    assert run.metrics["feature_probability"] == p.tolist()
    assert run.chosen.tolist() == [0, 1] and torch.equal(run.loss, run.all_losses)
    again = train_tms(TMSConfig(3, 2, n_instances=2), p, train=TCFG, out=tmp_path, overwrite=True)
    assert torch.equal(again.model.W, run.model.W)  # same seed, same device: bit for bit


def test_train_tms_chunking_changes_nothing():
    """Issue 8 #1 through the experiments layer: same-p seeds in different chunks used to get
    identical data; now every instance trains on its own stream whatever the chunking."""
    from dataclasses import replace

    cfg = TMSConfig(6, 2, n_instances=2)
    ref = train_tms(cfg, [0.2, 0.05], train=TCFG, best_of=2, seed=1)
    for per_chunk in (1, 3):
        run = train_tms(cfg, [0.2, 0.05], train=replace(TCFG, max_instances_per_chunk=per_chunk), best_of=2, seed=1)
        # data bit for bit; the batched matmul may round differently per batch size (~1e-7)
        torch.testing.assert_close(run.all_losses, ref.all_losses, rtol=1e-5, atol=1e-7)
        torch.testing.assert_close(run.result.model.W_IMN, ref.result.model.W_IMN, rtol=1e-5, atol=1e-6)
    assert not torch.equal(ref.result.model.W_IMN[0], ref.result.model.W_IMN[1])
