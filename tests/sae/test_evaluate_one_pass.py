"""evaluate_sae's one pass per batch: a k-sparse SAE decodes from its active latents only,
the firing counts come from one product; the numbers are those of encode + dense decode."""
import pytest
import torch

from toymodels import SparseFeatures
from toymodels.sae import build_sae
from toymodels.sae.config import SAEConfig
from toymodels.sae.evaluate import _firing_counts, evaluate_sae


@pytest.mark.parametrize("arch", ["topk", "batchtopk"])
def test_sparse_encode_decode_matches_the_dense_decode(arch):
    sae = build_sae(SAEConfig(d_model=16, dict_size=64, n_instances=2, arch=arch, k=(3, 5)), seed=0)
    x = torch.randn(2, 100, 16, generator=torch.Generator().manual_seed(1))
    f, x_hat = sae.encode_decode(x)
    assert torch.equal(f, sae.encode(x))
    torch.testing.assert_close(x_hat, sae.decode(f), rtol=1e-5, atol=1e-6)


def test_firing_counts_are_exact_counts():
    f = torch.relu(torch.randn(3, 257, 40, generator=torch.Generator().manual_seed(2)))
    f[0, 5, 7] = float("nan")  # a NaN code counts as firing, as before
    assert torch.equal(_firing_counts(f), (f != 0).sum(dim=1).to(torch.float32))


@pytest.mark.parametrize("arch", ["relu", "topk"])
def test_the_l0_is_the_mean_count_of_latents_on(arch):
    kw = {"k": (4,)} if arch == "topk" else {}
    sae = build_sae(SAEConfig(d_model=8, dict_size=32, arch=arch, **kw), seed=0)
    src = SparseFeatures(12, 0.2, 1, seed=3, d_embed=8)
    m = evaluate_sae(sae, src, n_samples=300, batch_size=128)
    src2 = SparseFeatures(12, 0.2, 1, seed=3, d_embed=8)
    f = sae.encode(torch.cat([src2.sample(b) for b in (128, 128, 44)], dim=1))
    assert m["l0"][0] == pytest.approx(float((f != 0).sum(dim=-1).float().mean()), rel=1e-6)
