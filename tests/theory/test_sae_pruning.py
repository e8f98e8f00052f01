"""High-frequency pruning (theory/sae/pruning.py): the null-space toy model, the pruning curve on
tiny settings, the verdict function (with its negative control) and the registered check."""

import numpy as np
import pytest
import torch

from theory.registry import CLAIMS, Context, run_claim
from theory.sae import pruning as P
from theory.sae import stability as S
from toymodels.measures import metrics as M
from toymodels.data import ModelActivations, SparseFeatures
from toymodels.sae import SAEConfig, build_sae


@pytest.fixture(scope="module")
def toy():
    """A small trained toy model (shared, cached by trained_toy_model)."""
    return S.trained_toy_model(16, 6, 0.05, steps=600)


# ----------------------------------------------------------------------------- the null-space model


def test_null_space_model_hides_the_dense_features_from_the_readout(toy):
    null = P.NullSpaceModel(toy, n_null=3, n_dense=5, p_dense=0.4, seed=1)
    assert (null.n_features, null.d_hidden) == (16 + 5, 6 + 3)
    torch.testing.assert_close(null.Q @ null.Q.T, torch.eye(9), atol=1e-5, rtol=0)
    assert null.feature_probabilities(0.05) == [0.05] * 16 + [0.4] * 5
    g = torch.Generator().manual_seed(0)
    x = torch.rand(1, 256, 21, generator=g)
    h = null.hidden(x)
    assert h.shape == (1, 256, 9)
    # the readout is the toy model's own on the sparse part ...
    torch.testing.assert_close(null.readout(h), toy(x[..., :16]), atol=1e-5, rtol=1e-5)
    # ... and ignores the dense features entirely
    z = x.clone()
    z[..., 16:] = torch.rand(1, 256, 5, generator=g)
    torch.testing.assert_close(null.readout(null.hidden(z)), null.readout(h), atol=1e-5, rtol=1e-5)
    assert not torch.allclose(null.hidden(z), h)
    # spliced loss: zeroing the null-space component of h costs nothing downstream
    keep_m = lambda hh: ((hh @ null.Q) * torch.tensor([1.0] * 6 + [0.0] * 3)) @ null.Q.T  # noqa: E731
    spl = M.spliced_loss(null, x, keep_m)
    torch.testing.assert_close(spl["spliced"], spl["clean"], atol=1e-6, rtol=1e-5)
    src = ModelActivations(null, SparseFeatures(21, torch.tensor([null.feature_probabilities(0.05)]), seed=0))
    assert src.sample(8).shape == (1, 8, 9) and src.dim == 9


def test_null_space_model_rejects_bad_input(toy):
    with pytest.raises(ValueError, match="p_dense"):
        P.NullSpaceModel(toy, p_dense=0.0)
    with pytest.raises(ValueError, match="n_null"):
        P.NullSpaceModel(toy, n_null=0)
    with pytest.raises(ValueError, match="relu-output"):
        P.NullSpaceModel(S.random_toy_model(toy).subset([0, 0]))


def test_masked_reconstruction_keeps_and_removes_latents():
    sae = build_sae(SAEConfig(d_model=5, dict_size=7), seed=2)
    with torch.no_grad():
        sae.b_dec_ID.normal_()
        sae.b_enc_IF.fill_(0.3)  # make sure latents fire
    h = torch.randn(1, 50, 5)
    masks = torch.tensor([[1.0] * 7, [0.0] * 7, [1, 0, 1, 0, 1, 0, 1]])
    rec = P.masked_reconstruction(sae, masks)(h)
    assert rec.shape == (3, 50, 5)
    torch.testing.assert_close(rec[0], sae(h)[0])
    torch.testing.assert_close(rec[1], sae.b_dec_ID[0].detach().expand(50, 5))
    f = sae.encode(h)[0] * masks[2]
    torch.testing.assert_close(rec[2], f @ sae.W_dec[0].detach() + sae.b_dec_ID[0].detach())


# ----------------------------------------------------------------------------- the pruning curve


def test_pruning_curve_tiny(toy):
    r = P.pruning_curve(toy, l1_coefficients=(0.3, 0.1), feature_probability=0.05, steps=300, n_eval=2048,
                        n_targets=5, n_random_orders=3)
    assert r.l1_coefficients == [0.1, 0.3]  # sorted: the lowest λ is the one pruned
    bf, ro = r.by_frequency, r.random_order
    # target 0 is the base SAE's own L0: nothing removed, so its numbers are the trained SAE's
    assert bf["removed"][0] == 0
    assert bf["mse"][0] == pytest.approx(r.trained["mse"][0], rel=1e-5)
    assert bf["downstream"][0] == pytest.approx(r.trained["downstream"][0], rel=1e-5)
    assert np.all(np.diff(bf["removed"]) >= 0) and np.all(np.diff(bf["l0"]) <= 1e-6)
    # on the calibration frequencies, pruning reaches each target; on a fresh batch, nearly
    assert np.all(bf["l0"] <= r.targets * 1.15 + 0.05) and np.all(ro["l0"] <= r.targets * 1.15 + 0.05)
    # removing everything leaves the reconstruction b_dec: the loss approaches the ablated one
    assert bf["downstream"][-1] > bf["downstream"][0] and r.zero_ablated_loss > r.clean_loss
    (mm,) = r.matched
    assert mm["target_l0"] == pytest.approx(float(r.trained["l0"][1]))
    assert mm["same_count_l0"] >= mm["pruned_l0"] - 1e-6  # same number removed, but at random: more L0 left
    assert r.frequency.shape == (2, 32) and np.all((r.frequency >= 0) & (r.frequency <= 1))


def test_pruning_curve_on_the_null_space_model_uses_per_feature_densities(toy):
    null = P.NullSpaceModel(toy, n_null=4, n_dense=4, p_dense=0.5)
    r = P.pruning_curve(null, l1_coefficients=(0.15, 0.3), feature_probability=null.feature_probabilities(0.05),
                        steps=200, n_eval=2048, n_targets=4, n_random_orders=2)
    assert r.true_l0 == pytest.approx(16 * 0.05 + 4 * 0.5)
    assert r.frequency.shape == (2, 2 * 20)
    # the dense features make some latents fire far more often than any sparse feature
    assert r.frequency[0].max() > 0.2


def test_pruning_curve_needs_two_lambdas(toy):
    with pytest.raises(ValueError, match="two L1"):
        P.pruning_curve(toy, l1_coefficients=(0.1,), steps=1)


# ----------------------------------------------------------------------------- the verdict


def _curve(pruned_mse, trained_mse, pruned_down, trained_down, random_mse, random_down):
    mm = dict(pruned_mse=pruned_mse, trained_mse=trained_mse, pruned_downstream=pruned_down,
              trained_downstream=trained_down, random_order_mse=random_mse, random_order_downstream=random_down)
    return P.PruningCurve([0.1, 0.2], np.zeros((2, 4)), {}, {}, {}, [mm], np.zeros(1), 0.0, 1.0, 1.0, None)


def test_verdict_holds_on_the_seed_pattern_and_fails_on_each_violation():
    assert P.pruning_verdict(_curve(3.0, 1.0, 1.0, 1.0, 2.0, 2.0))["ok"]
    assert P.pruning_verdict(_curve(3.0, 1.0, 1.019, 1.0, 2.0, 2.0))["ok"]  # within the 2 % slack
    v = P.pruning_verdict(_curve(0.9, 1.0, 1.0, 1.0, 2.0, 2.0))
    assert not v["ok"] and not v["mse_worse"]
    v = P.pruning_verdict(_curve(3.0, 1.0, 1.03, 1.0, 2.0, 2.0))
    assert not v["ok"] and not v["downstream_ok"]
    v = P.pruning_verdict(_curve(3.0, 1.0, 1.0, 1.0, 2.0, 0.9))
    assert not v["ok"] and not v["beats_random"]
    # MSE against random order is reported, not predicted
    v = P.pruning_verdict(_curve(3.0, 1.0, 1.0, 1.0, 2.0, 2.0))
    assert v["ok"] and not v["beats_random_mse"]


def test_check_at_tiny_budget_holds_in_the_null_space_and_the_control_fails():
    """The negative control: the same verdict on the plain toy model (full-rank readout) fails,
    because the pruned latents carry reconstruction that the readout uses."""
    rec = run_claim(CLAIMS["sae.high_frequency_pruning"], Context(budget="tiny"))
    assert rec.verdict == "holds", rec.detail
    null, control = rec.observed["null_space"], rec.observed["control"]
    assert null["ok"] and null["mse_ratio_pruned_over_trained"] > 1
    assert null["downstream_ratio_pruned_over_trained"] <= 1 + P.PRUNE_DOWNSTREAM_TOL
    assert not control["ok"] and not control["downstream_ok"]
    assert control["downstream_ratio_pruned_over_trained"] > 1 + P.PRUNE_DOWNSTREAM_TOL
    assert "raised" not in rec.detail and rec.tolerance == {"downstream_relative": P.PRUNE_DOWNSTREAM_TOL}


@pytest.mark.slow
def test_check_at_default_budget():
    rec = run_claim(CLAIMS["sae.high_frequency_pruning"], Context(budget="default"))
    assert rec.verdict == "holds", rec.detail
    assert not rec.observed["control"]["downstream_ok"]
