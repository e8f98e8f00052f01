"""Richer ground truth (issue 10): zipfian firing, hierarchies (parents gate children,
mutually exclusive children), and the firing metrics, each against a hand computation."""
from __future__ import annotations

import math

import pytest
import torch

from toymodels.measures.ground_truth import absorption, firing_scores, splitting, uniqueness
from toymodels.data.hierarchy import HierarchicalFeatures, tree, zipf_probabilities

H = tree(2, 3, mutually_exclusive=True) + [(8, [9, 10], False)]  # 0:{1,2,3} 4:{5,6,7} exclusive; 8:{9,10}


# ---------------------------------------------------------------------- generators
def test_zipf_probabilities_by_hand():
    p = zipf_probabilities(4, 0.25, 1.0)[0]  # w = 1, 1/2, 1/3, 1/4 (sum 25/12), total 1
    want = torch.tensor([12 / 25, 6 / 25, 4 / 25, 3 / 25])
    torch.testing.assert_close(p, want)
    q = zipf_probabilities(4, 0.5, 2.0)[0]  # 1/(1+1/4+1/9+1/16)*2 = 1.45 > 1: capped, rest share 1
    assert q[0] == 1.0 and float(q.sum()) == pytest.approx(2.0)
    torch.testing.assert_close(q[1:] / q[1], torch.tensor([1.0, 4 / 9, 4 / 16]))
    torch.testing.assert_close(zipf_probabilities(10, [0.1, 0.3], 0.0), torch.tensor([[0.1] * 10, [0.3] * 10]))
    with pytest.raises(ValueError, match="zipf_exponent"):
        zipf_probabilities(4, 0.1, -1.0)


@pytest.mark.parametrize("threshold", [0.0, 1.0], ids=["dense", "sparse"])
def test_children_fire_only_with_their_parent_and_exclusive_ones_alone(threshold):
    src = HierarchicalFeatures(12, 0.3, 2, hierarchy=H, firing="zipf", zipf_exponent=0.5, sparse_threshold=threshold, seed=1)
    act = src.sample(20000) != 0
    for p, ch, me in H:
        assert not (act[..., ch].any(-1) & ~act[..., p]).any()
        if me:
            assert int(act[..., ch].sum(-1).max()) == 1
    # non-exclusive children keep their conditional rate: P(9 | 8) = p_9
    p = src.feature_probability
    cond = act[..., 9][act[..., 8]].float().mean()
    assert float(cond) == pytest.approx(float(p[0, 9]), abs=0.02)
    assert float(act[..., 0].float().mean()) == pytest.approx(float(p[:, 0].mean()), abs=0.01)


def test_expected_l0_by_hand_and_refused_for_exclusive_children():
    src = HierarchicalFeatures(4, 0.5, hierarchy=[(0, [1], False), (1, [2], False)])
    assert float(src.expected_l0[0]) == pytest.approx(0.5 + 0.25 + 0.125 + 0.5)
    with pytest.raises(ValueError, match="no closed form"):
        HierarchicalFeatures(4, 0.5, hierarchy=[(0, [1, 2], True)]).expected_l0


@pytest.mark.parametrize("threshold", [0.0, 1.0], ids=["dense", "sparse"])
def test_instance_streams_survive_subsets(threshold):
    def make():
        return HierarchicalFeatures(12, 0.2, 300, hierarchy=H, firing="zipf", d_embed=5, sparse_threshold=threshold, seed=4)

    idx = [299, 3, 0]
    torch.testing.assert_close(make().subset(idx).sample(64), make().sample(64)[idx], rtol=0, atol=0)
    a, b = make().subset(idx).sample_coo(32).to_dense(), make().sample_coo(32).to_dense()[idx]
    assert torch.equal(a, b)


def test_sample_with_truth_embeds_the_coefficients():
    src = HierarchicalFeatures(12, 0.2, 2, hierarchy=H, d_embed=6, seed=0)
    x, c = src.sample_with_truth(50)
    torch.testing.assert_close(x, torch.bmm(c, src.directions))
    assert src.spec()["hierarchy"][0] == [0, [1, 2, 3], True]


@pytest.mark.parametrize(
    "bad, match",
    [([(0, [0], False)], "own child"), ([(0, [1], False), (2, [1], False)], "at most one parent"),
     ([(0, [1], False), (1, [0], False)], "cycle"), ([(0, [99], False)], "not in"), ([(0, [], False)], "at least one"),
     ([(0, [1], "yes")], "True or False")],
)
def test_bad_hierarchies_are_refused(bad, match):
    with pytest.raises(ValueError, match=match):
        HierarchicalFeatures(12, 0.1, hierarchy=bad)


# ---------------------------------------------------------------------- metrics by hand
# 6 samples, 2 features, 3 latents:
#   feature 0 active in samples 0,1,2,3; feature 1 in 3,4
#   latent 0 fires in 0,1,2   (precision 1 for f0, recall 3/4)
#   latent 1 fires in 3,4,5   (f1: tp 2, precision 2/3, recall 1)
#   latent 2 fires in 0,1     (f0: tp 2, precision 1, recall 1/2)
TRUTH = torch.tensor([[1, 0], [1, 0], [1, 0], [1, 1], [0, 1], [0, 0]], dtype=torch.float32)
CODES = torch.tensor([[1, 0, 2], [1, 0, 3], [1, 0, 0], [0, 1, 0], [0, 1, 0], [0, 5, 0]], dtype=torch.float32)


def test_firing_scores_by_hand():
    s = firing_scores(CODES, TRUTH)
    assert s["tp"][0].tolist() == [[3, 0], [1, 2], [2, 0]]
    assert s["match"][0].tolist() == [0, 1, 0]
    torch.testing.assert_close(s["latent_precision"][0], torch.tensor([1.0, 2 / 3, 1.0], dtype=torch.float64))
    torch.testing.assert_close(s["latent_recall"][0], torch.tensor([3 / 4, 1.0, 1 / 2], dtype=torch.float64))
    # F1 = 2 tp / (fires + active): 6/7, 4/5, 4/6
    torch.testing.assert_close(s["latent_f1"][0], torch.tensor([6 / 7, 4 / 5, 4 / 6], dtype=torch.float64))
    torch.testing.assert_close(s["feature_f1"][0], torch.tensor([6 / 7, 4 / 5], dtype=torch.float64))
    dead = firing_scores(torch.zeros(6, 3), TRUTH)
    assert math.isnan(float(dead["latent_precision"][0, 0])) and float(dead["latent_recall"][0, 0]) == 0


def test_uniqueness_and_splitting_by_hand():
    s = firing_scores(CODES, TRUTH)
    assert uniqueness(s["match"]).tolist() == [2 / 3]  # latents 0 and 2 share feature 0
    assert uniqueness(s["match"], torch.tensor([[True, True, False]])).tolist() == [1.0]
    assert math.isnan(float(uniqueness(s["match"], torch.zeros(1, 3, dtype=torch.bool))[0]))
    sp = splitting(CODES, TRUTH, precision=0.9)
    assert sp["trackers"][0].tolist() == [2, 0] and sp["split"][0].tolist() == [True, False]
    assert sp["rate"].tolist() == [0.5]
    assert splitting(CODES, TRUTH, precision=0.5)["trackers"][0].tolist() == [2, 1]


def test_absorption_by_hand():
    # parent 0 with child 1. Parent active in samples 0-3; the child with it in 2 and 3.
    truth = torch.tensor([[1, 0], [1, 0], [1, 1], [1, 1], [0, 0]], dtype=torch.float32)
    # the parent latent (0) fires in 0, 1 and 3: silent in sample 2, where the child fires
    codes = torch.tensor([[1, 0], [1, 0], [0, 1], [1, 1], [0, 0]], dtype=torch.float32)
    a = absorption(codes, truth, [(0, [1], False)])
    assert a["latent"].tolist() == [[0]]
    assert a["n"].tolist() == [[2]]
    assert a["rate"].tolist() == [[0.5]] and a["baseline"].tolist() == [[0.0]] and a["excess"].tolist() == [[0.5]]
    assert a["mean_rate"].tolist() == [0.5]
    # a given parent latent is used as is: latent 1 misses the parent in samples 0 and 1 (baseline 1)
    b = absorption(codes, truth, [(0, [1], False)], parent_latent=torch.tensor([[1]]))
    assert b["rate"].tolist() == [[0.0]] and b["baseline"].tolist() == [[1.0]]


def test_bad_shapes_raise():
    with pytest.raises(ValueError, match="share the batch"):
        firing_scores(torch.zeros(5, 3), torch.zeros(6, 2))


def test_sae_cli_builds_the_hierarchical_zipfian_source(tmp_path):
    import json

    from toymodels.cli import main

    out = tmp_path / "run"
    assert main(["sae", "--data", "features", "--firing", "zipf", "--zipf-exponent", "1.5", "--hierarchy", "2x3",
                 "--n-features", "16", "--d-model", "8", "--arch", "topk", "--k", "2", "--dict-size", "16",
                 "--steps", "5", "--batch-size", "64", "--eval-samples", "128", "--out", str(out), "--threads", "1"]) == 0
    data = json.loads((out / "config.json").read_text())["data"]
    assert data["kind"] == "hierarchical-features" and data["firing"] == "zipf" and data["zipf_exponent"] == 1.5
    assert data["hierarchy"] == [[0, [1, 2, 3], True], [4, [5, 6, 7], True]]
    assert main(["sae", "--hierarchy", "9x9", "--n-features", "16", "--out", str(tmp_path / "x")]) == 2
    assert not (tmp_path / "x").exists()


@pytest.mark.parametrize("threshold", [0.0, 1.0], ids=["dense", "sparse"])
def test_magnitude_distributions_have_their_moments(threshold):
    e = HierarchicalFeatures(8, 0.5, magnitude_distribution="exponential", magnitude_mean=2.0, sparse_threshold=threshold)
    v = e.sample(20000)
    v = v[v != 0]
    assert float(v.mean()) == pytest.approx(2.0, rel=0.03) and float(v.std()) == pytest.approx(2.0, rel=0.05)
    f = HierarchicalFeatures(8, 0.5, magnitude_distribution="folded-normal", magnitude_mean=3.0, magnitude_std=0.5,
                             sparse_threshold=threshold, n_instances=3, seed=1)
    w = f.sample(20000)
    w = w[w != 0]
    assert float(w.mean()) == pytest.approx(3.0, rel=0.02) and float(w.std()) == pytest.approx(0.5, rel=0.05)
    def make():
        return HierarchicalFeatures(8, 0.5, magnitude_distribution="folded-normal", magnitude_mean=3.0, magnitude_std=0.5,
                                    sparse_threshold=threshold, n_instances=3, seed=1)

    torch.testing.assert_close(make().subset([2]).sample(16), make().sample(16)[[2]], rtol=0, atol=0)
    with pytest.raises(ValueError, match="not both"):
        HierarchicalFeatures(8, 0.5, magnitude_distribution="exponential", magnitude="signed")


def test_low_rank_correlated_firing_keeps_rates_and_correlates():
    def make(**kw):
        return HierarchicalFeatures(6, 0.2, 3, correlation_rank=1, correlation_strength=0.9, seed=2, **kw)

    src = make()
    act = (src.sample(40000) != 0).float()
    rate = act.mean(1)
    torch.testing.assert_close(rate, torch.full_like(rate, 0.2), atol=0.01, rtol=0)
    a = act[0] - act[0].mean(0)
    corr = (a.T @ a) / (a.norm(dim=0)[:, None] * a.norm(dim=0)[None, :])
    f = src.factors
    sign = torch.sign(f @ f.T)  # rank 1: every pair correlates, with the sign of F_i F_j
    off = ~torch.eye(6, dtype=torch.bool)
    assert bool(((corr * sign)[off] > 0.15).all()), corr
    assert torch.equal(make().subset([1]).sample(32), make().sample(32)[[1]])
    ind = (HierarchicalFeatures(6, 0.2, seed=2).sample(40000)[0] != 0).float()
    b = ind - ind.mean(0)
    assert float(((b.T @ b) / (b.norm(dim=0)[:, None] * b.norm(dim=0)[None, :]))[off].abs().max()) < 0.03
