"""The bigram toy and the residual-MLP toy: sources, models, the stored-bigram count."""
import math

import pytest
import torch

from toymodels.research.compressed import (
    BigramMLP,
    BigramMLPConfig,
    BigramSource,
    ResidualMLP,
    ResidualMLPConfig,
    bigram_capacity,
    fit_power_law,
    make_bigram_task,
    stored_bigrams,
)
from toymodels.data import SparseFeatures
from toymodels.protocols import Source, TrainableModel
from toymodels.train import TrainConfig, train


def test_task_is_nested_in_the_number_of_bigrams_and_unit_norm():
    small = make_bigram_task(2, 8, 6, [3, 5], seed=4)
    big = make_bigram_task(2, 8, 6, 20, seed=4)
    assert small.pairs.shape == (2, 5, 2) and big.pairs.shape == (2, 20, 2)
    assert torch.equal(small.pairs[0, :3], big.pairs[0, :3]) and torch.equal(small.v[1], big.v[1, :5])
    for t in (big.A, big.B, big.v):
        assert torch.allclose(t.norm(dim=-1), torch.ones(t.shape[:2]), atol=1e-5)
    # known bigrams are distinct pairs and the lookup inverts them
    flat = big.pairs[..., 0] * 6 + big.pairs[..., 1]
    assert all(len(set(row.tolist())) == 20 for row in flat)
    assert torch.equal(big.lookup.gather(1, flat), torch.arange(20).expand(2, 20))
    assert int((small.lookup[0] >= 0).sum()) == 3
    with pytest.raises(ValueError, match="n_bigrams"):
        make_bigram_task(1, 8, 3, 10)  # more than T² = 9 pairs
    with pytest.raises(ValueError, match="one per instance"):
        make_bigram_task(2, 8, 6, [3])


def test_source_rows_hold_the_embedded_pair_and_its_vector():
    src = BigramSource(8, 6, [4, 9], 2, seed=3)
    assert isinstance(src, Source) and src.dim == 16
    x, pair = src.sample_pairs(50)
    assert x.shape == (2, 50, 16)
    t1, t2 = pair // 6, pair % 6
    task = src.task
    for i in range(2):
        r = task.A[i, t1[i]] + task.B[i, t2[i]]
        assert torch.allclose(x[i, :, :8], r, atol=1e-6)
        rows = task.lookup[i, pair[i]]
        assert (rows >= 0).all() and (rows < task.n_bigrams[i]).all()  # only known bigrams
        assert torch.allclose(x[i, :, 8:], task.v[i, rows], atol=1e-6)


def test_unknown_pairs_have_zero_target_and_noise_has_its_norm():
    src = BigramSource(64, 10, 5, 1, unknown_fraction=1.0, noise=0.5, seed=0)
    x, pair = src.sample_pairs(4000)
    known = src.task.lookup[0, pair[0]] >= 0
    assert 0 < int(known.sum()) < 400  # about 5/100 of uniform pairs are known
    assert float(x[0, ~known, 64:].abs().max()) == 0.0
    t1, t2 = pair[0] // 10, pair[0] % 10
    eps = x[0, :, :64] - src.task.A[0, t1] - src.task.B[0, t2]
    assert abs(float(eps.norm(dim=-1).square().mean()) - 0.25) < 0.02  # E|ε|² = σ²


def test_source_subset_keeps_streams_and_tasks_and_state_restores():
    src = BigramSource(8, 6, [3, 4, 5], 3, seed=9)
    sub = src.subset([2, 0])
    full = src.sample(20)
    part = sub.sample(20)
    assert torch.equal(part, full[[2, 0]])
    assert sub.task.n_bigrams.tolist() == [5, 3]
    st = src.get_state()
    a = src.sample(7)
    src.set_state(st)
    assert torch.equal(a, src.sample(7))
    assert src.spec()["n_bigrams"] == [3, 4, 5]


def test_bigram_mlp_forward_and_loss_by_hand():
    cfg = BigramMLPConfig(d_resid=3, d_mlp=4, n_instances=2, train_in=True)
    m = BigramMLP(cfg, seed=1)
    assert isinstance(m, TrainableModel) and m.input_dim == 6
    x = torch.randn(2, 5, 6)
    h = torch.relu(torch.einsum("ibd,imd->ibm", x[..., :3], m.W_in_IMD) + m.b_in_IM[:, None])
    out = torch.einsum("ibm,idm->ibd", h, m.W_out_IDM)
    want = (out - x[..., 3:]).square().mean(dim=(1, 2))
    assert torch.allclose(m.loss(x), want, atol=1e-6)
    with pytest.raises(ValueError, match="shaped"):
        m.loss(torch.randn(2, 5, 3))


def test_frozen_w_in_is_a_buffer_that_training_leaves_alone():
    src = BigramSource(8, 6, 6, 2, seed=0)
    m = BigramMLP(BigramMLPConfig(8, 16, 2, train_in=False), seed=0)
    assert [n for n, _ in m.named_parameters()] == ["W_out_IDM"]
    w_in = m.W_in_IMD.clone()
    res = train(m, src, TrainConfig(steps=200, batch_size=64, lr=1e-2, quiet=True, eval_samples=256))
    assert torch.equal(m.W_in_IMD, w_in)
    assert (res.final_loss < res.initial_loss).all()


def test_subset_and_load_instances_copy_buffers_too():
    m = BigramMLP(BigramMLPConfig(4, 5, 3, train_in=False), seed=2)
    sub = m.subset([2, 1])
    assert torch.equal(sub.W_in_IMD, m.W_in_IMD[[2, 1]]) and torch.equal(sub.W_out_IDM, m.W_out_IDM[[2, 1]])
    other = BigramMLP(BigramMLPConfig(4, 5, 2, train_in=False), seed=7)
    m.load_instances([0, 1], other)
    assert torch.equal(m.W_in_IMD[:2], other.W_in_IMD) and torch.equal(m.W_out_IDM[:2], other.W_out_IDM)


def _least_squares_mlp(src: BigramSource, width: int, seed: int = 0) -> BigramMLP:
    """A frozen-W_in MLP whose W_out is the least-squares fit on the known bigrams."""
    m = BigramMLP(BigramMLPConfig(src.d_resid, width, src.n_instances, train_in=False), seed=seed)
    with torch.no_grad():
        r = src.task.residuals()
        H = torch.relu(r @ m.W_in_IMD.transpose(1, 2) + m.b_in_IM[:, None])  # (I, K, M)
        for i in range(src.n_instances):
            k = int(src.task.n_bigrams[i])
            sol = torch.linalg.lstsq(H[i, :k].double(), src.task.v[i, :k].double()).solution  # (M, D)
            m.W_out_IDM[i] = sol.T.float()
    return m


def test_stored_counts_hand_cases():
    src = BigramSource(16, 12, [10, 40], 2, seed=1)
    exact = _least_squares_mlp(src, 64)  # K <= M: interpolation, every bigram stored
    s = stored_bigrams(exact, src)
    assert s.count.tolist() == [10, 40] and bool((s.cosine[0, :10] > 0.99).all())
    # negative control: a zero W_out stores nothing (0 is the "no bigram" output)
    zero = BigramMLP(BigramMLPConfig(16, 64, 2, train_in=False))
    with torch.no_grad():
        zero.W_out_IDM.zero_()
    assert stored_bigrams(zero, src).count.tolist() == [0, 0]
    # far past the interpolation threshold (K = 40 > M = 4) most bigrams are lost
    assert int(stored_bigrams(_least_squares_mlp(src, 4), src).count[1]) < 20


def test_fit_power_law_recovers_exponents():
    a, c = fit_power_law([2, 4, 8, 16], [3 * 2**2, 3 * 4**2, 3 * 8**2, 3 * 16**2])
    assert math.isclose(a, 2.0, rel_tol=1e-9) and math.isclose(c, 3.0, rel_tol=1e-9)
    assert math.isnan(fit_power_law([4, 8], [0, 5])[0])  # one usable point


def test_bigram_capacity_tiny_sweep_trains_through_the_trainer():
    cap = bigram_capacity([4, 8], d_resid=8, n_tokens=6, k_factors=(1.0, 2.0),
                          train=TrainConfig(steps=150, batch_size=64, lr=1e-2, quiet=True, eval_samples=128))
    assert cap.n_bigrams == [[4, 8], [8, 16]] and len(cap.stored[1]) == 2
    assert cap.capacity == [max(s) for s in cap.stored] and all(c <= 16 for c in cap.capacity)


def test_residual_mlp_by_hand_and_trains():
    cfg = ResidualMLPConfig(n_features=6, d_embed=20, d_mlp=3, n_instances=2, embed_seed=1)
    m = ResidualMLP(cfg, seed=0)
    assert isinstance(m, TrainableModel)
    assert torch.allclose(m.W_E_IND.norm(dim=-1), torch.ones(2, 6), atol=1e-5)
    x = torch.randn(1, 4, 6)
    r = x @ m.W_E_IND
    r2 = r + torch.relu(r @ m.W_in_IMD.transpose(1, 2) + m.b_in_IM[:, None]) @ m.W_out_IDM.transpose(1, 2)
    y = r2 @ m.W_E_IND.transpose(1, 2)
    assert torch.allclose(m(x), y, atol=1e-5)
    assert torch.allclose(m.loss(x), (y - x - torch.relu(x)).square().mean(dim=(1, 2)), atol=1e-5)
    src = SparseFeatures(6, 0.2, 2, magnitude="signed", seed=3)
    res = train(m, src, TrainConfig(steps=200, batch_size=128, lr=3e-3, quiet=True, eval_samples=512))
    assert (res.final_loss < res.initial_loss).all()
    with pytest.raises(ValueError, match="d_mlp"):
        ResidualMLPConfig(d_mlp=0)
