"""``relu``: the hand-derived backward against autograd, the constrained step's projection."""
import pytest
import torch

from toymodels.sae import build_sae

from ._helpers import assert_same_grads, clear_grads, data, perturbed, tiny, twin


@pytest.mark.parametrize("lead", [1, 3])
def test_hand_derived_backward_matches_autograd(lead):
    cfg = tiny("relu", n_instances=3, l1_coefficient=(0.0, 0.1, 0.7), sparsity_warmup_steps=4, decoder_orthogonality=0.3)
    a = perturbed(build_sae(cfg, seed=1).double())
    with torch.no_grad():
        a.b_dec_ID.add_(0.2)
        a.step_count_I.fill_(1)  # inside the warm-up: λ·2/4
    b = twin(a)
    x = data(lead, 9, 6, seed=lead, dtype=torch.float64)
    clear_grads(a, b)
    loss_a = a.loss_and_grad(x)
    terms = b.loss_terms(x, train=True)
    terms["total"].sum().backward()
    torch.testing.assert_close(loss_a, terms["total"].detach(), rtol=1e-12, atol=1e-12)
    assert_same_grads(a, b)
    for name, p in a.named_parameters():
        assert p.grad.abs().sum() > 0, name


def test_sparsity_term_weights_codes_by_decoder_norms():
    sae = build_sae(tiny("relu", n_instances=1, l1_coefficient=0.5), seed=0)
    with torch.no_grad():
        sae.W_dec_IFD.mul_(2.0)  # every row norm 2
    x = data(1, 8, 6, seed=2)
    f = sae.encode(x)
    terms = sae.loss_terms(x)
    torch.testing.assert_close(terms["sparsity"], 2.0 * f.sum(dim=(1, 2)) / 8)


def test_projection_removes_the_radial_gradient():
    sae = build_sae(tiny("relu"), seed=0)
    sae.loss_and_grad(data(1, 16, 6))
    sae.before_optimizer_step(0)
    radial = (sae.W_dec_IFD.grad * sae.W_dec_IFD).sum(-1)
    assert radial.abs().max() < 1e-6
