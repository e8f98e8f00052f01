"""Generators: statistics within sampling tolerance, determinism, validation, sparse cost."""
import math

import pytest
import torch
from hypothesis import given
from hypothesis import strategies as st

from toymodels.data import GaussianMixture, ModelActivations, SparseFeatures, UnitCube
from toymodels.models import TMSConfig, build_model


def _rate_tol(p, n):
    """Five binomial standard errors of a firing rate (p a float or a tensor)."""
    return 5 * (torch.as_tensor(p) * (1 - torch.as_tensor(p)) / n).sqrt() + 1e-9


@pytest.mark.parametrize("threshold", [0.0, 1.0])  # dense path, sparse (geometric skipping) path
@pytest.mark.parametrize("magnitude, mean", [("uniform", 0.5), ("constant", 1.0), ("signed", 0.0)])
def test_firing_rate_and_magnitudes(threshold, magnitude, mean):
    p = torch.tensor([[0.02] * 10 + [0.3] * 10, [0.001] * 10 + [0.05] * 10])
    s = SparseFeatures(20, p, 2, magnitude=magnitude, sparse_threshold=threshold, seed=3)
    x = s.sample(40_000)
    assert x.shape == (2, 40_000, 20)
    rate = (x != 0).float().mean(1)
    n = 40_000
    assert ((rate - p).abs() <= _rate_tol(p, n)).all(), rate
    vals = x[x != 0]
    assert abs(vals.mean().item() - mean) < 0.02
    if magnitude == "uniform":
        assert vals.min() >= 0 and vals.max() <= 1 and abs(vals.var().item() - 1 / 12) < 0.01
    if magnitude == "signed":
        assert vals.min() >= -1 and vals.max() <= 1 and abs(vals.var().item() - 1 / 3) < 0.02


def test_correlated_and_anticorrelated_groups():
    s = SparseFeatures(8, 0.2, 1, correlated_groups=1, anticorrelated_groups=1, group_size=3, seed=0)
    a = (s.sample(50_000)[0] != 0).float()
    n = 50_000
    # every feature still fires with probability p
    assert ((a.mean(0) - 0.2).abs() < _rate_tol(0.2, n)).all()
    # a correlated group fires together: all or none
    assert torch.equal(a[:, 0], a[:, 1]) and torch.equal(a[:, 1], a[:, 2])
    # an anticorrelated group: at most one fires, so pairwise co-firing is 0
    assert (a[:, 3:6].sum(1) <= 1).all()
    # independent features co-fire at p^2
    assert abs((a[:, 6] * a[:, 7]).mean().item() - 0.04) < _rate_tol(0.04, n)


def test_anticorrelated_groups_need_room():
    with pytest.raises(ValueError, match="group_size must be <= 1"):
        SparseFeatures(4, 0.6, anticorrelated_groups=1, group_size=2)
    with pytest.raises(ValueError, match="need 6 features"):
        SparseFeatures(5, 0.1, correlated_groups=3, group_size=2)


def test_same_seed_same_batch_and_state_restore():
    a, b = SparseFeatures(50, 0.01, 3, seed=7), SparseFeatures(50, 0.01, 3, seed=7)
    assert torch.equal(a.sample(100), b.sample(100))
    state = a.get_state()
    first = a.sample(64)
    a.set_state(state)
    assert torch.equal(a.sample(64), first)
    assert not torch.equal(SparseFeatures(50, 0.01, 3, seed=8).sample(100), b.sample(100))


def test_embedding_is_unit_norm_and_sparse_matches_dense():
    s = SparseFeatures(40, 0.02, 2, d_embed=8, seed=1)
    assert s.directions.shape == (2, 40, 8) and s.dim == 8
    assert torch.allclose(s.directions.norm(dim=-1), torch.ones(2, 40), atol=1e-6)
    coo = s.sample_coo(500)
    dense = coo.to_dense()
    assert torch.allclose(coo.embed(s.directions), torch.bmm(dense, s.directions), atol=1e-5)
    assert coo.nnz == int((dense != 0).sum())


def test_sparse_sampling_cost_follows_active_features():
    """100,000 features at p = 1e-4: the coordinate form holds ~10 entries per row, and is
    built without touching the other 99,990 (no dense (B, N) tensor is formed)."""
    s = SparseFeatures(100_000, 1e-4, 1, d_embed=16, seed=0)
    coo = s.sample_coo(2048)
    expected = 2048 * 100_000 * 1e-4
    assert abs(coo.nnz - expected) < 5 * math.sqrt(expected)
    assert s.sample(2048).shape == (1, 2048, 16)


@given(
    n=st.integers(1, 30),
    n_inst=st.integers(1, 3),
    p=st.floats(0.0, 1.0),
    batch=st.integers(1, 50),
    threshold=st.sampled_from([0.0, 1.0]),
)
def test_any_valid_setting_samples_a_valid_batch(n, n_inst, p, batch, threshold):
    x = SparseFeatures(n, p, n_inst, sparse_threshold=threshold).sample(batch)
    assert x.shape == (n_inst, batch, n)
    assert torch.isfinite(x).all() and (x >= 0).all() and (x <= 1).all()
    if p == 0:
        assert (x == 0).all()


@pytest.mark.parametrize(
    "kw, message",
    [
        (dict(n_features=0), "n_features"),
        (dict(n_features=5, feature_probability=-0.1), "feature_probability"),
        (dict(n_features=5, feature_probability=1.5), "feature_probability"),
        (dict(n_features=5, feature_probability=float("nan")), "feature_probability.*NaN"),
        (dict(n_features=5, feature_probability=[0.1, 0.2], n_instances=3), "2 values but there are 3 instances"),
        (dict(n_features=5, magnitude="gaussian"), "magnitude"),
        (dict(n_features=5, d_embed=0), "d_embed"),
        (dict(n_features=5, device="tpu"), "device"),
        (dict(n_features=5, n_instances=0), "n_instances"),
    ],
)
def test_sparse_features_validation(kw, message):
    with pytest.raises(ValueError, match=message):
        SparseFeatures(**kw)


def test_batch_size_validated():
    with pytest.raises(ValueError, match="batch_size"):
        SparseFeatures(5).sample(0)


def test_cuda_on_cpu_machine_is_a_clear_error():
    if torch.cuda.is_available():
        pytest.skip("CUDA present")
    with pytest.raises(ValueError, match="CUDA is not available"):
        UnitCube(2, device="cuda")


def test_gaussian_mixture_statistics():
    means = torch.tensor([[0.0, 0.0], [5.0, 5.0], [-5.0, 5.0]])
    g = GaussianMixture(3, 2, means=means, scales=[0.1, 0.2, 0.3], weights=[1, 2, 1], seed=0)
    x, labels = g.sample_with_labels(60_000)
    x, labels = x[0], labels[0]
    freq = torch.bincount(labels, minlength=3).float() / 60_000
    assert torch.allclose(freq, torch.tensor([0.25, 0.5, 0.25]), atol=0.01)
    for k, sd in enumerate([0.1, 0.2, 0.3]):
        xk = x[labels == k]
        assert torch.allclose(xk.mean(0), means[k], atol=0.02)
        assert torch.allclose(xk.std(0), torch.full((2,), sd), rtol=0.05)


@pytest.mark.parametrize(
    "kw, message",
    [
        (dict(n_components=0, dim=2), "n_components"),
        (dict(n_components=2, dim=2, weights=[1, -1]), "weights"),
        (dict(n_components=2, dim=2, scales=[-1.0, 1.0]), "scales"),
        (dict(n_components=2, dim=2, means=[[0.0, float("nan")], [1.0, 1.0]]), "means"),
        (dict(n_components=2, dim=2, means=[[0.0, 0.0]]), "means must be shaped"),
    ],
)
def test_gaussian_mixture_validation(kw, message):
    with pytest.raises(ValueError, match=message):
        GaussianMixture(**kw)


def test_unit_cube_is_uniform():
    x = UnitCube(2, n_instances=2, seed=0).sample(50_000)
    assert x.shape == (2, 50_000, 2) and x.min() >= 0 and x.max() < 1
    assert torch.allclose(x.mean(1), torch.full((2, 2), 0.5), atol=0.01)
    assert torch.allclose(x.var(1), torch.full((2, 2), 1 / 12), atol=0.005)


def test_model_activations_are_the_hidden_layer():
    model = build_model(TMSConfig(6, 3, 2), seed=0)
    feats = SparseFeatures(6, 0.2, 1, seed=4)
    src = ModelActivations(model, feats)
    assert src.dim == 3 and src.n_instances == 2
    h = src.sample(32)
    feats2 = SparseFeatures(6, 0.2, 1, seed=4)
    assert torch.allclose(h, model.hidden(feats2.sample(32)))
    assert torch.equal(src.directions, model.W_IMN.transpose(1, 2))
    with pytest.raises(ValueError, match="n_features"):
        ModelActivations(model, SparseFeatures(7, 0.2))


# ---------------------------------------------------------------------- per-instance streams
def _p_mixed(n_inst, n):
    """Per-instance probabilities spanning both paths: dense (p > 0.1) and sparse."""
    return torch.logspace(0, -2.5, n_inst)


STREAM_SOURCES = {
    "dense": lambda: SparseFeatures(12, 0.3, 5, seed=11),
    "sparse": lambda: SparseFeatures(12, 0.03, 5, seed=11),
    "per-instance p, both paths": lambda: SparseFeatures(12, _p_mixed(5, 12), 5, seed=11),
    "per-feature p (thinning), signed": lambda: SparseFeatures(
        12, torch.rand(5, 12, generator=torch.Generator().manual_seed(0)) * 0.1, 5, magnitude="signed", seed=11),
    "per-feature p, dense, constant": lambda: SparseFeatures(
        12, torch.linspace(0.05, 0.9, 12)[None].expand(5, 12), 5, magnitude="constant", seed=11),
    "low p two draws": lambda: SparseFeatures(12, 0.005, 5, sparse_threshold=0.0, seed=11),
    "groups": lambda: SparseFeatures(12, _p_mixed(5, 12) * 0.3, 5, correlated_groups=2, anticorrelated_groups=1,
                                     group_size=3, seed=11),
    "d_embed": lambda: SparseFeatures(30, _p_mixed(5, 30), 5, d_embed=6, seed=11),
    "gaussian mixture": lambda: GaussianMixture(3, 4, 5, seed=11),
    "unit cube": lambda: UnitCube(3, 5, seed=11),
    "model activations": lambda: ModelActivations(build_model(TMSConfig(12, 3, 5), seed=1),
                                                  SparseFeatures(12, _p_mixed(5, 12), 5, seed=11)),
}


@pytest.fixture(params=[256, 2], ids=["one block", "blocks of 2"])
def block_size(request, monkeypatch):
    """Per-instance streams come in blocks of STREAM_BLOCK instances; 2 puts block edges
    inside every subset below."""
    import toymodels.data.features as D

    monkeypatch.setattr(D, "STREAM_BLOCK", request.param)
    return request.param


@pytest.mark.parametrize("name", list(STREAM_SOURCES))
def test_subset_yields_the_instances_own_streams(name, block_size):
    """source.subset(idx).sample(B)[j] == source.sample(B)[idx[j]], bit for bit, call after
    call (issue 8 #1: each chunk's subset used to restart one shared seed)."""
    make = STREAM_SOURCES[name]
    full = make()
    ref = [full.sample(b) for b in (64, 1, 200)]
    idx = [3, 0, 4]
    sub = make().subset(idx)
    assert sub.n_instances == 3
    for b, x in zip((64, 1, 200), ref):
        assert torch.equal(sub.sample(b), x[idx])
    # chunks partitioning the instances reproduce the unchunked batches
    src = make()
    chunks = [src.subset(slice(0, 2)), src.subset(slice(2, 5))]
    for b, x in zip((64, 1, 200), ref):
        assert torch.equal(torch.cat([c.sample(b) for c in chunks]), x)
    assert torch.equal(src.sample(64), ref[0])  # subsets fork: the parent has not moved
    # a subset of a subset
    sub2 = make().subset([4, 1, 3]).subset([2, 0])
    assert torch.equal(sub2.sample(64), ref[0][[3, 4]])


@pytest.mark.parametrize("name", list(STREAM_SOURCES))
def test_state_covers_every_stream(name, block_size):
    src = STREAM_SOURCES[name]()
    state = src.get_state()
    assert state.shape[0] == -(-5 // block_size)  # one state per stream block
    first = src.sample(50)
    src.sample(7)
    src.set_state(state)
    assert torch.equal(src.sample(50), first)
    # a subset's state is its blocks': resuming a chunk from a checkpoint
    src.set_state(state)
    sub = src.subset([1, 2])
    sub_state = sub.get_state()
    a = sub.sample(50)
    sub.sample(3)
    sub.set_state(sub_state)
    assert torch.equal(sub.sample(50), a)
    assert torch.equal(a, first[1:3])


def test_equal_instances_get_different_data():
    a = SparseFeatures(10, 0.2, 4, seed=3).sample(100)
    assert not torch.equal(a[0], a[1])  # same p, different data
    b = SparseFeatures(10, 0.02, 4, seed=3).sample(100)
    assert not torch.equal(b[0], b[1])


def test_blocks_beyond_the_first(block_size):
    """600 instances: blocks of 256 (3 blocks) or 2; subsets across block edges stay exact."""
    make = lambda: SparseFeatures(3, torch.logspace(0, -2, 600), 600, seed=1)  # noqa: E731
    x = make().sample(8)
    idx = [255, 256, 599, 0, 300]
    assert torch.equal(make().subset(idx).sample(8), x[idx])
    assert make().get_state().shape[0] == -(-600 // block_size)
    coo = make().subset(idx).sample_coo(8)
    full = make().sample_coo(8).to_dense()
    assert torch.equal(coo.to_dense(), full[idx])


def test_sparse_path_over_several_rounds(monkeypatch):
    """Force many rounds of geometric skipping: same statistics, still exact per instance."""
    monkeypatch.setattr(SparseFeatures, "_draws_per_round", staticmethod(lambda mu: 7))
    p = torch.tensor([0.05, 0.01, 0.08])
    make = lambda: SparseFeatures(20, p, 3, seed=2)  # noqa: E731
    x = make().sample(4000)
    rate = (x != 0).float().mean(dim=(1, 2))
    assert ((rate - p).abs() <= _rate_tol(p, 4000 * 20)).all(), rate
    assert torch.equal(make().subset([2, 1]).sample(4000), x[[2, 1]])


def test_shared_source_and_per_instance_source_of_one():
    shared = SparseFeatures(8, 0.1, 1, seed=5)
    assert shared.shared and shared.get_state().ndim == 1
    per = SparseFeatures(8, 0.1, 3, seed=5)
    assert not per.shared
    one = per.subset([2])
    assert not one.shared and one.get_state().shape[0] == 1  # a fork of instance 2's block
    assert torch.equal(one.sample(30), SparseFeatures(8, 0.1, 3, seed=5).sample(30)[2:])
    with pytest.raises(ValueError, match="per-instance stream"):
        per.set_state(shared.get_state())
    with pytest.raises(ValueError, match="shared stream"):
        shared.set_state(per.get_state())
    with pytest.raises(ValueError, match="uint8"):
        shared.set_state([1, 2])


def test_model_activations_with_shared_features_chunk_exactly():
    """Shared features (one x for every model instance): each chunk of model instances forks
    the stream, so chunk c sees the batches of the unchunked run, not the next ones."""
    model = build_model(TMSConfig(6, 3, 4), seed=0)
    ref = ModelActivations(model, SparseFeatures(6, 0.2, 1, seed=4))
    full = [ref.sample(b) for b in (40, 3)]
    src = ModelActivations(model, SparseFeatures(6, 0.2, 1, seed=4))
    assert src.shared
    chunks = [src.subset(slice(0, 2)), src.subset(slice(2, 4))]
    for b, x in zip((40, 3), full):
        assert torch.equal(torch.cat([c.sample(b) for c in chunks]), x)


@pytest.mark.parametrize("make, match", [
    (lambda: SparseFeatures(5, "0.1"), "feature_probability must be a number"),
    (lambda: SparseFeatures(5, ["0.1"] * 5), "feature_probability must be a number"),
    (lambda: SparseFeatures(5.0, 0.1), "n_features must be an integer"),
    (lambda: SparseFeatures(5, 0.1, sparse_threshold="0.1"), "sparse_threshold must be a real number"),
    (lambda: SparseFeatures(5, 0.1, seed=2**64), r"seed must be an integer in \[0, 18446744073709551615\]"),
    (lambda: SparseFeatures(5, 0.1, seed=-1), r"seed must be an integer in \[0, "),
    (lambda: UnitCube(2, seed=2**70), "seed must be an integer"),
    (lambda: GaussianMixture(2, 2, seed=-5), "seed must be an integer"),
    (lambda: SparseFeatures(5, 0.1, d_embed=4, embed_seed=2**64), "embed_seed must be an integer"),
    (lambda: SparseFeatures(5, 0.1).sample(0), "batch_size"),
    (lambda: UnitCube(2).sample(0), "batch_size"),
    (lambda: GaussianMixture(2, 2).sample(0), "batch_size"),
])
def test_bad_api_inputs_are_clear_errors(make, match):
    with pytest.raises(ValueError, match=match):
        make()


def test_largest_seed_works():
    assert SparseFeatures(5, 0.1, 2, seed=2**64 - 1).sample(3).shape == (2, 3, 5)


def test_dense_embedding_is_exact_per_instance():
    """A batched GEMM (bmm) rounds an instance's x @ d differently with the other matrices
    of the batch (here 7 vs 3 instances); a subset embeds its whole blocks, as the parent."""
    make = lambda: SparseFeatures(17, torch.logspace(0, -0.5, 7), 7, d_embed=5, seed=11)  # noqa: E731
    x = make().sample(33)
    assert torch.equal(make().subset([3, 0, 4]).sample(33), x[[3, 0, 4]])
    src = make()
    assert torch.allclose(x, torch.bmm(src._dense_rows(33, src.generators[0], list(range(7))), src.directions), atol=1e-5)


def _one_draw_reference(u, p):
    """x = (u − (1 − p)) / p where u > 1 − p, else 0, in float64: one uniform per entry."""
    u, p = u.double(), torch.as_tensor(p, dtype=torch.float64)
    return torch.where(u > 1 - p, (u - (1 - p)) / p, torch.zeros((), dtype=torch.float64))


@pytest.mark.parametrize("p, bsz", [(1.0, 300), (0.3, 2400), ("sweep", 300), ("per-feature", 300)])
def test_dense_rows_use_one_uniform_per_entry(p, bsz):
    """The dense path (a multiply, an add and a relu, in place) against the formula written
    out from the same generator's uniforms; in a sweep the dense rows come first in the
    stream and the sparse rows (p <= 0.1) after them."""
    from toymodels.data import block_seed
    from toymodels.device import make_generator

    n_inst, n = 6, 7
    if p == "sweep":
        probs = torch.logspace(0, math.log10(0.02), n_inst)  # rows 0-3 dense, 4-5 sparse
    elif p == "per-feature":
        probs = torch.linspace(0.02, 1.0, n_inst * n).reshape(n_inst, n)
    else:
        probs = torch.full((n_inst,), p)
    src = SparseFeatures(n, probs, n_inst, seed=8)
    dense = [i for i in range(n_inst) if not src._sparse_row[i]]
    assert dense == list(range(len(dense))) and dense
    x = src.sample(bsz)
    u = torch.rand(len(dense), bsz, n, generator=make_generator(block_seed(8, 0), "cpu"))
    p3 = probs[dense][:, None, None] if probs.ndim == 1 else probs[dense][:, None, :]
    ref = _one_draw_reference(u, p3)
    assert torch.allclose(x[dense].double(), ref, atol=2e-6, rtol=0)
    near_edge = (u.double() - (1 - p3.double())).abs() < 1e-6  # float rounding may flip these
    assert torch.equal((x[dense] > 0)[~near_edge], (ref > 0)[~near_edge])
    if len(dense) < n_inst:  # the sparse rows: zero-filled, then their active entries
        assert (x[len(dense):] != 0).float().mean() < 0.1


def test_dense_sampling_is_bit_reproducible_and_subset_exact():
    probs = torch.logspace(0, math.log10(0.02), 9)
    make = lambda: SparseFeatures(300, probs, 9, seed=4)  # noqa: E731
    x = make().sample(64)
    assert torch.equal(make().sample(64), x)
    assert torch.equal(make().subset([7, 0, 2]).sample(64), x[[7, 0, 2]])
    assert torch.equal(make().subset([1, 2, 3]).sample(64), x[1:4])


@pytest.mark.parametrize("make", [
    lambda: SparseFeatures(9, torch.linspace(1.0, 0.3, 4), 4, seed=1),
    lambda: SparseFeatures(9, 0.5, 4, correlated_groups=1, anticorrelated_groups=1, seed=2),
    lambda: SparseFeatures(9, torch.tensor([[0.5] * 9, [0.5] * 8 + [0.001], [0.9] * 9, [0.2] * 9]), 4, seed=3),
])
def test_dense_rows_written_into_a_given_buffer_are_the_same_bits(make):
    """``_dense_rows(..., out=)`` (a sweep's run of dense rows drawn in place) gives exactly
    the rows of a fresh draw: plain rows, feature groups (drawn apart, then copied in), and
    one-draw rows beside two-draw rows (a feature below p = 0.01)."""
    a, b = make(), make()
    fresh = a._dense_rows(40, a.generators[0], [0, 1, 2, 3])
    buf = torch.full((4, 40, 9), float("nan"))
    got = b._dense_rows(40, b.generators[0], [0, 1, 2, 3], out=buf)
    assert got.data_ptr() == buf.data_ptr() and torch.equal(buf, fresh)


def test_dense_and_sparse_rows_interleaved_in_a_block():
    """Dense rows that are not one run are drawn apart and copied in; sparse rows that are
    not one run are zero-filled by index: the dense rows still follow the formula."""
    from toymodels.data import block_seed
    from toymodels.device import make_generator

    probs = torch.tensor([0.05, 0.5, 0.05, 0.9])
    x = SparseFeatures(6, probs, 4, seed=5).sample(500)
    u = torch.rand(2, 500, 6, generator=make_generator(block_seed(5, 0), "cpu"))
    ref = _one_draw_reference(u, probs[[1, 3]][:, None, None])
    assert torch.allclose(x[[1, 3]].double(), ref, atol=2e-6, rtol=0)
    rate = (x[[0, 2]] != 0).float().mean()
    assert abs(rate.item() - 0.05) < _rate_tol(0.05, 2 * 500 * 6).item()
