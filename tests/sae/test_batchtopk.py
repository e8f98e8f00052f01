"""``batchtopk``: mean L0 = k in training, the calibrated threshold at inference, its option."""
import pytest
import torch

from toymodels.data import SparseFeatures
from toymodels.sae import SAEConfig, build_sae, sae_from_spec
from toymodels.train import TrainConfig, train

from ._helpers import tiny
from ._kref import check_sparse_backward


@pytest.mark.parametrize("path", ["hand-derived", "autograd"])
def test_sparse_backward_matches_dense_autograd(path):
    check_sparse_backward("batchtopk", path)


def test_mean_l0_is_k_in_training_and_threshold_at_eval():
    cfg = SAEConfig(arch="batchtopk", d_model=8, dict_size=32, n_instances=2, k=(2, 4), options={"threshold_ema": 0.1},
                    b_dec_init="zeros")
    sae = build_sae(cfg, seed=0)
    src = SparseFeatures(16, 0.15, d_embed=8, seed=1)
    x = src.sample(64)
    f_train = sae.encode(x, train=True)
    assert (f_train != 0).sum(dim=(1, 2)).tolist() == [64 * 2, 64 * 4]  # mean L0 = k exactly
    sae.loss_and_grad(x)  # first step: θ = the smallest kept activation
    kept = sae._sparse_reconstruct(x, True)["v"].detach()
    assert sae.threshold_I.tolist() == pytest.approx(sae._batch_min.tolist())
    assert 0 < sae.threshold_I.min() and sae.threshold_I.max() <= kept.max()
    train(sae, src, TrainConfig(steps=300, batch_size=128, lr=3e-3, quiet=True, eval_samples=256))
    xe = src.sample(4096)
    f_eval = sae.encode(xe)
    pre = sae.pre_activations(xe).detach()
    torch.testing.assert_close(f_eval, pre * (pre > sae.threshold_I[:, None, None]))
    l0_eval = (f_eval != 0).sum(-1).float().mean(-1)
    assert torch.allclose(l0_eval, torch.tensor([2.0, 4.0]), rtol=0.3), l0_eval


def test_threshold_follows_the_ema_of_its_option():
    sae = build_sae(tiny("batchtopk", options={"threshold_ema": 0.25}), seed=0)
    sae.update_threshold(torch.tensor([1.0, 2.0]))  # step 0: θ = m
    assert sae.threshold_I.tolist() == [1.0, 2.0]
    sae.step_count_I.fill_(1)
    sae.update_threshold(torch.tensor([3.0, 2.0]))
    assert sae.threshold_I.tolist() == pytest.approx([1.5, 2.0])
    for bad in (0.0, 1.5, float("nan")):
        with pytest.raises(ValueError, match="threshold_ema"):
            tiny("batchtopk", options={"threshold_ema": bad})


def test_a_spec_saved_before_options_keeps_its_threshold_ema():
    spec = build_sae(tiny("batchtopk"), seed=0).spec()
    del spec["options"]
    spec.update(threshold_ema=0.3, jumprelu_bandwidth=0.05, jumprelu_init_threshold=0.1)
    assert sae_from_spec(spec).options.threshold_ema == 0.3
