"""``matryoshka``: nested prefixes each reconstruct (the loss against a hand computation),
BatchTopK codes and threshold, prefix sizes, its option."""
import pytest
import torch

from toymodels.data import SparseFeatures
from toymodels.sae import SAEConfig, build_sae
from toymodels.sae.matryoshka import prefix_sizes
from toymodels.train import TrainConfig, train

from ._helpers import data, tiny


def test_prefix_sizes_double_and_end_at_the_dictionary():
    assert prefix_sizes(16, 4) == [2, 4, 8, 16]
    assert prefix_sizes(12, 3) == [3, 6, 12]
    assert prefix_sizes(3, 4) == [1, 2, 3]  # ceil(3/8) = ceil(3/4) = 1: the duplicate is dropped
    assert prefix_sizes(7, 1) == [7]


def test_loss_is_the_sum_of_prefix_reconstruction_errors_by_hand():
    cfg = tiny("matryoshka", options={"prefixes": 3})  # F = 12: prefixes 3, 6, 12
    sae = build_sae(cfg, seed=0)
    x = data(2, 16, 6, seed=3)
    terms = sae.loss_terms(x, train=False)
    f = sae.encode(x)
    W, b = sae.W_dec.detach(), sae.b_dec_ID.detach()
    want = torch.zeros(2)
    for m in (3, 6, 12):
        xh = torch.einsum("ibf,ifd->ibd", f[:, :, :m], W[:, :m]) + b[:, None, :]
        want += (x - xh).square().sum(-1).mean(-1)
    torch.testing.assert_close(terms["total"], want, rtol=1e-5, atol=1e-6)
    full = (x - sae(x)).square().sum(-1).mean(-1)
    torch.testing.assert_close(terms["mse"], full, rtol=1e-5, atol=1e-6)
    torch.testing.assert_close(terms["prefix_mse"], want - full, rtol=1e-5, atol=1e-6)


def test_one_prefix_is_batchtopk():
    kw = dict(d_model=6, dict_size=12, n_instances=2, k=(2, 3), b_dec_init="zeros")
    m = build_sae(SAEConfig(arch="matryoshka", options={"prefixes": 1}, **kw), seed=4)
    b = build_sae(SAEConfig(arch="batchtopk", **kw), seed=4)
    x = data(2, 32, 6, seed=1)
    torch.testing.assert_close(m.loss_terms(x, train=True)["total"], b.loss_terms(x, train=True)["total"])
    lm, lb = m.loss_and_grad(x), b.loss_and_grad(x)
    torch.testing.assert_close(lm, lb)
    torch.testing.assert_close(m.W_enc_IDF.grad, b.W_enc_IDF.grad, rtol=1e-4, atol=1e-6)
    torch.testing.assert_close(m.threshold_I, b.threshold_I)


def test_trains_with_mean_l0_k_and_calibrated_threshold():
    cfg = SAEConfig(arch="matryoshka", d_model=8, dict_size=32, k=3, options={"prefixes": 3})
    sae = build_sae(cfg, seed=0)
    src = SparseFeatures(16, 0.12, d_embed=8, seed=1)
    x = src.sample(64)
    assert int((sae.encode(x, train=True) != 0).sum()) == 64 * 3
    train(sae, src, TrainConfig(steps=150, batch_size=128, lr=3e-3, quiet=True, eval_samples=256))
    xe = src.sample(2048)
    f = sae.encode(xe)
    pre = sae.pre_activations(xe).detach()
    torch.testing.assert_close(f, pre * (pre > sae.threshold_I[:, None, None]))
    assert float(sae.threshold_I) > 0


def test_option_is_checked():
    for bad in (0, -1, 1.5, 99):
        with pytest.raises(ValueError, match="prefixes"):
            tiny("matryoshka", options={"prefixes": bad})
