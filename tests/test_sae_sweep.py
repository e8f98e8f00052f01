"""The SAE experiments layer (toymodels/sae/sweep.py): batched sweeps, the matched-L0
comparison and seed stability, on tiny settings. (That the module imports no theory or figures
is checked for all of toymodels in tests/test_layering.py.)"""
import math

import numpy as np
import pytest
import torch

from toymodels import SparseFeatures
from toymodels.measures import metrics as M
from toymodels.experiments import train_tms
from toymodels.models import TMSConfig
from toymodels.sae.sweep import (
    SweepResult,
    architecture_frontier,
    common_l0_grid,
    dictionary_ratio_sweep,
    interpolate_at_l0,
    matched_l0,
    random_toy_model,
    seed_stability,
    small_seed,
    stack_models,
    train_sae_sweep,
)
from toymodels.train import TrainConfig


@pytest.fixture(scope="module")
def toy():
    """A small trained toy model: 16 features in 6 dimensions."""
    return train_tms(TMSConfig(n_features=16, d_hidden=6), 0.05, train=TrainConfig(steps=600, batch_size=1024),
                     seed=1).model


def test_small_seed_is_deterministic_31_bit_and_label_dependent():
    assert small_seed(0, "a") == small_seed(0, "a") < 2**31
    assert small_seed(0, "a") != small_seed(0, "b") and small_seed(0, "a") != small_seed(1, "a")


# ---------------------------------------------------------------------------------------------
# training sweeps
# ---------------------------------------------------------------------------------------------


def test_train_sae_sweep_is_one_batched_run():
    src = SparseFeatures(12, 2 / 12, d_embed=6, seed=0)
    r = train_sae_sweep(src, arch="relu", dict_size=16, l1_coefficient=(0.01, 3.0), steps=60, batch_size=128,
                        eval_samples=1024)
    assert r.sae.n_instances == 2 and r.parameter == "l1_coefficient" and r.values == [0.01, 3.0]
    for name in ("l0", "fvu", "shrinkage", "mmcs", "mcc", "dead_fraction"):
        assert getattr(r, name).shape == (2,)
    assert r.l0[0] > r.l0[1]  # a 300× larger penalty is sparser
    sub = r.select([1])
    assert sub.sae.n_instances == 1 and sub.values == [3.0] and sub.l0[0] == r.l0[1]
    assert set(r.summary()) >= {"l1_coefficient", "l0", "fvu", "mmcs"}


def test_train_sae_sweep_is_reproducible_and_init_is_applied():
    src = lambda: SparseFeatures(12, 2 / 12, d_embed=6, seed=0)  # noqa: E731
    kw = dict(arch="relu", dict_size=16, l1_coefficient=(0.1, 0.3), steps=20, batch_size=64, eval_samples=512)
    a, b = train_sae_sweep(src(), **kw), train_sae_sweep(src(), **kw)
    assert torch.equal(a.sae.W_dec, b.sae.W_dec) and np.array_equal(a.fvu, b.fvu)
    seen = []
    train_sae_sweep(src(), init=lambda sae: seen.append(sae.n_instances), **kw)
    assert seen == [2]


def test_train_sae_sweep_topk_and_argument_errors():
    src = SparseFeatures(12, 2 / 12, d_embed=6, seed=0)
    r = train_sae_sweep(src, arch="topk", dict_size=16, k=(1, 3), steps=30, batch_size=64, eval_samples=512)
    np.testing.assert_allclose(r.l0, [1, 3], atol=0.05)
    with pytest.raises(ValueError):
        train_sae_sweep(src, arch="topk", dict_size=16, l1_coefficient=(0.1,), steps=1)
    with pytest.raises(ValueError):
        train_sae_sweep(src, arch="relu", dict_size=16, k=(1,), steps=1)
    with pytest.raises(ValueError):
        train_sae_sweep(src, arch="relu", dict_size=16, steps=1)
    with pytest.raises(ValueError, match="empty"):
        train_sae_sweep(src, arch="relu", dict_size=16, l1_coefficient=(), steps=1)


def test_architecture_frontier_and_ratio_sweep_run_one_sweep_each():
    src = SparseFeatures(8, 2 / 8, d_embed=4, seed=0)
    res = architecture_frontier(src, {"relu": (0.1,), "topk": (2,)}, dict_size=8, steps=10, batch_size=64,
                                eval_samples=256)
    assert set(res) == {"relu", "topk"} and res["topk"].parameter == "k" and res["relu"].values == [0.1]
    grid = dictionary_ratio_sweep(src, (0.5, 2), (0.1, 0.2), n_features=8, steps=10, batch_size=64,
                                  eval_samples=256)
    assert [r.sae.dict_size for r in grid.values()] == [4, 16] and all(r.sae.n_instances == 2 for r in grid.values())


# ---------------------------------------------------------------------------------------------
# matched-L0 comparison
# ---------------------------------------------------------------------------------------------


def test_interpolate_at_l0_hand_example():
    l0, fvu = [16.0, 1.0, 4.0], [0.1, 0.8, 0.4]  # unsorted on purpose
    out = interpolate_at_l0(l0, fvu, [1.0, 2.0, 4.0, 8.0, 16.0, 0.5, 32.0])
    # linear in log L0: 2 is halfway between 1 and 4, 8 halfway between 4 and 16
    np.testing.assert_allclose(out[:5], [0.8, 0.6, 0.4, 0.25, 0.1])
    assert np.isnan(out[5]) and np.isnan(out[6])  # no extrapolation


def test_interpolate_drops_zero_l0_and_averages_ties():
    out = interpolate_at_l0([0.0, 2.0, 2.0, 8.0], [9.0, 0.4, 0.6, 0.2], [2.0, 4.0, 1.0])
    np.testing.assert_allclose(out[:2], [0.5, 0.35])
    assert np.isnan(out[2])
    assert np.isnan(interpolate_at_l0([0.0], [1.0], [1.0])).all()
    with pytest.raises(ValueError):
        interpolate_at_l0([1.0, 2.0], [1.0], [1.0])


def test_common_l0_grid():
    g = common_l0_grid([1.0, 10.0], [2.0, 20.0], n=3)
    np.testing.assert_allclose(g, [2.0, math.sqrt(20.0), 10.0], rtol=1e-6)
    assert common_l0_grid([1.0, 2.0], [3.0, 4.0]).size == 0
    np.testing.assert_allclose(common_l0_grid([1.0, 100.0], n=2, lo=2.0, hi=8.0), [2.0, 8.0], rtol=1e-6)


def _fake(arch, l0, fvu, gamma):
    a = lambda v: np.asarray(v, dtype=float)  # noqa: E731
    n = len(l0)
    return SweepResult(arch, "l1_coefficient", [0.1] * n, a(l0), a(fvu), a(gamma), a([0] * n), None, None, 0.0, None)


def test_matched_l0_on_fake_sweeps():
    res = {"a": _fake("a", [1, 4, 16], [0.8, 0.4, 0.1], [0.9, 0.9, 0.9]),
           "b": _fake("b", [2, 8, 32], [0.9, 0.5, 0.2], [1, 1, 1])}
    m = matched_l0(res, ("fvu", "shrinkage"), n=2)
    np.testing.assert_allclose(m["l0"], [2.0, 16.0], rtol=1e-6)
    np.testing.assert_allclose(m["fvu"]["a"], [0.6, 0.1], rtol=1e-6)
    np.testing.assert_allclose(m["fvu"]["b"], [0.9, 0.35], rtol=1e-6)
    np.testing.assert_allclose(m["shrinkage"]["b"], [1.0, 1.0])
    with pytest.raises(ValueError):
        res["a"].at_l0("mmcs", [2.0])  # no ground truth


# ---------------------------------------------------------------------------------------------
# seed stability
# ---------------------------------------------------------------------------------------------


def test_random_toy_model_matches_the_weight_norm_not_the_weights(toy):
    rand = random_toy_model(toy, seed=3)
    assert rand.config == toy.config
    assert float(rand.W_IMN.detach().norm()) == pytest.approx(float(toy.W_IMN.detach().norm()), rel=1e-5)
    assert float(rand.b_IN.detach().abs().max()) == 0.0
    cos = M.cosine_matrix(rand.W[0].detach(), toy.W[0].detach()).diagonal().abs()
    assert float(cos.max()) < 0.99  # genuinely different directions
    g = torch.Generator().manual_seed(0)
    x = torch.rand(1, 2048, 16, generator=g) * (torch.rand(1, 2048, 16, generator=g) < 0.05)
    with torch.no_grad():
        assert float(toy.loss(x)) < 0.5 * float(rand.loss(x))


def test_stack_models_repeats_each_model_in_order(toy):
    rand = random_toy_model(toy)
    big = stack_models([toy, rand], 3)
    assert big.n_instances == 6
    for i in range(3):
        assert torch.equal(big.W_IMN[i], toy.W_IMN[0]) and torch.equal(big.W_IMN[3 + i], rand.W_IMN[0])


def test_seed_stability_tiny(toy):
    r = seed_stability(toy, n_seeds=2, l1_coefficients=(0.3, 0.6), feature_probability=0.05, steps=600, n_eval=2048)
    n_i = 2 * 2 * 2
    assert r.sae.n_instances == n_i and r.matrix.shape == (n_i, n_i)
    np.testing.assert_allclose(r.matrix, r.matrix.T)
    np.testing.assert_allclose(np.diag(r.matrix), 1.0)
    assert np.all(r.matrix <= 1 + 1e-6) and np.all(r.matrix >= -1)
    assert r.cross_seed.shape == (2, 2, 1) and r.cross_model.shape == (2, 4)
    for g in range(2):
        for j in range(2):
            assert r.cross_seed[g, j, 0] == r.matrix[r.index(g, j, 0), r.index(g, j, 1)]
    # SAEs on the same model agree far more than an SAE on the trained model with one on the random model
    assert r.cross_seed.min() > r.cross_model.max()
    assert r.l0.shape == r.fvu.shape == r.mmcs_truth.shape == (2, 2, 2)
    assert np.all(r.l0[:, 1] < r.l0[:, 0])  # a larger λ, a sparser code
    assert np.all((r.fvu > 0) & (r.fvu < 1)) and np.all(r.alive <= 16)
    assert r.true_l0 == pytest.approx(16 * 0.05)


def test_seed_stability_needs_two_seeds(toy):
    with pytest.raises(ValueError, match="n_seeds"):
        seed_stability(toy, n_seeds=1, steps=1)
