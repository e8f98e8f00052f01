"""``topk`` and the sparse kernels it runs on: exact k, k < dict_size, sparse gradients."""
import pytest
import torch

from toymodels.sae import SAEConfig, build_sae
from toymodels.sae.sparse import Pattern, sparse_decode, sparse_linear_at

from ._helpers import data, run_steps, tiny
from ._kref import check_sparse_backward


@pytest.mark.parametrize("path", ["hand-derived", "autograd"])
def test_sparse_backward_matches_dense_autograd(path):
    check_sparse_backward("topk", path)


def test_l0_is_exactly_k():
    sae = build_sae(tiny("topk", n_instances=3, k=(1, 3, 5)), seed=0)
    with torch.no_grad():
        sae.b_enc_IF.add_(10.0)  # every pre-activation positive
    x = data(1, 50, 6)
    f = sae.encode(x)
    assert ((f != 0).sum(-1) == torch.tensor([1, 3, 5])[:, None]).all()
    run_steps(sae, [x])  # the sparse training path keeps exactly k too
    v = sae._sparse_reconstruct(x, True)["v"].detach().view(3, 50, 5)  # values at the (kmax = 5)-pattern
    assert ((v != 0).sum(-1) == torch.tensor([1, 3, 5])[:, None]).all()


@pytest.mark.parametrize("arch", ["topk", "batchtopk"])
@pytest.mark.parametrize("k", [8, 9, (2, 8)])
def test_k_at_or_above_dict_size_is_refused(arch, k):
    """Issue 8 #14: k >= dict_size keeps every latent, so nothing is sparse."""
    with pytest.raises(ValueError, match="k.* must be < dict_size = 8"):
        SAEConfig(arch=arch, d_model=2, dict_size=8, n_instances=2 if isinstance(k, tuple) else 1, k=k)
    assert SAEConfig(arch=arch, d_model=2, dict_size=8, k=7).k == 7
    with pytest.raises(ValueError, match="k is required"):
        SAEConfig(arch=arch, d_model=2, dict_size=8)


def test_sparse_kernels_gradcheck():
    g = torch.Generator().manual_seed(0)
    rows, cols, n_cols = 5, 3, 7
    idx = torch.stack([torch.randperm(n_cols, generator=g)[:cols] for _ in range(rows)])[None]  # (1, 5, 3)
    pat = Pattern.from_topk(idx, n_cols)
    v = torch.randn(rows * cols, dtype=torch.float64, generator=g, requires_grad=True)
    W = torch.randn(n_cols, 4, dtype=torch.float64, generator=g, requires_grad=True)
    assert torch.autograd.gradcheck(lambda v, W: sparse_decode(v, W, pat), (v, W))
    A = torch.randn(rows, 4, dtype=torch.float64, generator=g, requires_grad=True)
    bias = torch.randn(n_cols, dtype=torch.float64, generator=g, requires_grad=True)

    def at(A, W, bias):
        vals = (A @ W.t() + bias)[pat.rows, pat.cols].detach()
        return sparse_linear_at(vals, A, W, bias, pat)

    assert torch.autograd.gradcheck(at, (A, W, bias))
    # the forward values are the dense ones at the pattern
    dense = torch.zeros(rows, n_cols, dtype=torch.float64).index_put_((pat.rows, pat.cols), v.detach(), accumulate=True)
    torch.testing.assert_close(sparse_decode(v, W, pat), dense @ W)
    # a variable number of entries per row (the batchtopk case)
    mask = torch.rand(1, rows, n_cols, generator=g) < 0.4
    mask[0, 2] = False  # an empty row
    pm = Pattern.from_mask(mask)
    vm = torch.randn(pm.nnz, dtype=torch.float64, generator=g, requires_grad=True)
    assert torch.autograd.gradcheck(lambda v, W: sparse_decode(v, W, pm), (vm, W))


@pytest.mark.parametrize("arch", ["topk", "batchtopk"])
def test_an_instance_without_dead_latents_has_no_aux_term(arch):
    """Its loss must not depend on the other instances (it used to gain α·mse whenever
    another instance had a dead latent, so its history depended on the chunking)."""
    sae = build_sae(tiny(arch, n_instances=2, k=(2, 2), aux_k=3), seed=0)
    sae.steps_since_fired_IF[0, :4] = 10_000  # instance 0: four dead latents; instance 1: none
    x = data(1, 16, 6)
    alone = sae.subset([1])
    with torch.no_grad():
        together = sae.loss_terms(x, train=True)
        single = alone.loss_terms(x, train=True)
    assert together["aux"][1] == 0 and together["aux"][0] > 0 and "aux" not in single
    torch.testing.assert_close(together["total"][1], single["total"][0])
    torch.testing.assert_close(sae.loss_and_grad(x)[1], alone.loss_and_grad(x)[0])
