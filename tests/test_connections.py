"""Sparse connections between dictionaries (toymodels/connections.py): the toy model, the L1 fit,
the matching and the scoring, each against a hand computation or a known answer."""
import pytest
import torch

from toymodels.research.connections import (
    ConnectionsConfig, LayerActivations, build_two_layer, connections_in_feature_basis, fit_sparse_map,
    layer_source, match_latents, matched_cosines, score_graph,
)
from toymodels.data import SparseFeatures


def test_two_layer_model_computes_layer_2_from_layer_1():
    cfg = ConnectionsConfig(n_instances=3)
    m = build_two_layer(cfg, seed=1)
    assert m.E1.shape == (3, 16, 12) and m.C.shape == (3, 8, 12) and m.E2.shape == (3, 12, 8)
    # orthonormal directions (D >= N)
    assert torch.allclose(m.E1.transpose(1, 2) @ m.E1, torch.eye(12).expand(3, 12, 12), atol=1e-5)
    f1 = SparseFeatures(12, 0.2, 3, seed=0).sample(64)
    h1, h2 = m(f1)
    assert torch.allclose(h2, torch.einsum("ibk,idk->ibd", torch.relu(torch.einsum("ibn,ikn->ibk", f1, m.C)), m.E2), atol=1e-5)
    assert torch.allclose(h1.transpose(1, 2), m.E1 @ f1.transpose(1, 2), atol=1e-6)


def test_graph_has_disjoint_parents_of_the_given_sizes():
    m = build_two_layer(ConnectionsConfig(n_instances=5, max_parents=2), seed=3)
    g = m.graph()
    parents = g.sum(2)
    assert ((parents >= 1) & (parents <= 2)).all()
    assert (g.sum(1) <= 1).all()  # each layer-1 feature feeds at most one layer-2 feature
    assert ((m.C[g] >= 0.5) & (m.C[g] <= 1.0)).all()
    shared = build_two_layer(ConnectionsConfig(n_instances=5, max_parents=3, shared_parents=True), seed=3)
    assert (shared.graph().sum(2) >= 1).all()


def test_same_seed_same_model_and_subset_keeps_instances():
    a = build_two_layer(ConnectionsConfig(n_instances=4), seed=7)
    b = build_two_layer(ConnectionsConfig(n_instances=4), seed=7)
    assert torch.equal(a.C, b.C) and torch.equal(a.E1, b.E1)
    sub = a.subset([2, 0])
    assert torch.equal(sub.C, a.C[[2, 0]]) and sub.n_instances == 2


@pytest.mark.parametrize("kw, field", [
    ({"n_features_2": 13}, "n_features_2"),
    ({"max_parents": 0}, "max_parents"),
    ({"weight_low": 0.0}, "weight_low"),
    ({"weight_high": 0.4}, "weight_high"),
    ({"feature_probability": 1.5}, "feature_probability"),
    ({"shared_parents": 1}, "shared_parents"),
])
def test_config_rejects_bad_values(kw, field):
    with pytest.raises(ValueError, match=field):
        ConnectionsConfig(**kw)


def test_layer_source_shapes_subset_and_streams():
    m = build_two_layer(ConnectionsConfig(n_instances=3), seed=0)
    s1, s2 = layer_source(m, 1, seed=5), layer_source(m, 2, seed=5)
    assert s1.sample(10).shape == (3, 10, 16) and s2.sample(10).shape == (3, 10, 12)
    full = layer_source(m, 2, seed=5).sample(20)
    part = layer_source(m, 2, seed=5).subset([1]).sample(20)
    assert torch.equal(part[0], full[1])  # instance 1's data is the same in a subset
    with pytest.raises(ValueError, match="layer"):
        LayerActivations(m, 3, SparseFeatures(12, 0.1, 3))


def test_fit_sparse_map_recovers_a_known_sparse_map():
    g = torch.Generator().manual_seed(0)
    W_true = torch.zeros(2, 5, 7)
    W_true[0, 0, 1], W_true[0, 3, 4], W_true[1, 2, 6], W_true[1, 4, 0] = 0.8, -0.6, 1.0, 0.5
    z1 = torch.rand(2, 4000, 7, generator=g) * (torch.rand(2, 4000, 7, generator=g) < 0.2)
    z2 = z1 @ W_true.transpose(1, 2) + 0.3
    W, c = fit_sparse_map(z1, z2, l1=1e-4, iters=5000)
    assert torch.allclose(W, W_true, atol=0.02) and torch.allclose(c, torch.full((2, 5), 0.3), atol=0.02)
    # no penalty: least squares to high accuracy; a huge penalty: W = 0, c = mean z2
    W0, _ = fit_sparse_map(z1, z2, l1=0.0, iters=5000)
    assert torch.allclose(W0, W_true, atol=1e-3)
    Wbig, cbig = fit_sparse_map(z1, z2, l1=100.0)
    assert (Wbig == 0).all() and torch.allclose(cbig, z2.mean(1), atol=1e-5)
    with pytest.raises(ValueError, match="z1 and z2"):
        fit_sparse_map(z1, z2[:, :10], l1=0.1)


class _FakeSAE:
    def __init__(self, dec):
        self.dec = dec

    def decoder_directions(self):
        return self.dec


def test_matching_undoes_a_permutation_and_feature_basis_reorders():
    m = build_two_layer(ConnectionsConfig(n_instances=2), seed=0)
    perm = torch.tensor([3, 0, 7, 1, 5, 2, 6, 4])
    # latents = features permuted, plus two extra junk latents
    dec = torch.cat([m.E2[:, :, perm], torch.randn(2, 12, 2)], dim=2)
    match = match_latents(_FakeSAE(dec), m.E2)
    assert torch.equal(dec[:, :, match[0]][0], m.E2[0])
    assert torch.allclose(matched_cosines(_FakeSAE(dec), m.E2, match), torch.ones(2, 8), atol=1e-6)
    W_lat = torch.arange(2 * 10 * 4, dtype=torch.float32).reshape(2, 10, 4)
    m1 = torch.tensor([[2, 0, 1, 3], [0, 1, 2, 3]])
    m2 = torch.tensor([[9, 0], [1, 2]])
    Wf = connections_in_feature_basis(W_lat, m1, m2)
    assert Wf[0, 0, 0] == W_lat[0, 9, 2] and Wf[0, 1, 3] == W_lat[0, 0, 3] and Wf[1, 1, 2] == W_lat[1, 2, 2]
    with pytest.raises(ValueError, match="fewer"):
        match_latents(_FakeSAE(torch.randn(2, 12, 3)), m.E2)


def test_score_graph_by_hand():
    truth = torch.tensor([[[1, 0, 1], [0, 1, 0]]], dtype=torch.bool)
    W = torch.tensor([[[0.9, 0.05, 0.0], [0.3, 0.7, 0.0]]])  # TP 2, FP 1 (0.3), FN 1 (the missing 0,2)
    s = score_graph(W, truth, threshold=0.1)
    assert s["precision"] == [2 / 3] and s["recall"] == [2 / 3] and s["found_edges"] == [3]
    assert score_graph(torch.zeros(1, 2, 3), torch.zeros(1, 2, 3, dtype=torch.bool))["precision"] == [1.0]
    with pytest.raises(ValueError, match="shape"):
        score_graph(W, truth[:, :1])
