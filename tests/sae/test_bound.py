"""``bound``: W_dec = [W_half; W_half R_map], its chain-rule backward, partner resampling."""
import pytest
import torch

from toymodels.sae import SAEConfig, build_sae

from ._helpers import data, perturbed, run_steps, tiny, twin


def test_decoder_structure():
    sae = perturbed(build_sae(tiny("bound", dict_size=10), seed=0))
    h = 5
    torch.testing.assert_close(sae.W_dec[:, h:], torch.bmm(sae.W_half_IHD, sae.R_map_IDD))
    assert not hasattr(sae, "W_dec_IFD")
    sae.loss_and_grad(data(1, 16, 6))
    assert sae.R_map_IDD.grad.abs().sum() > 0  # the binding map learns
    run_steps(sae, [data(1, 16, 6, seed=s) for s in range(3)])
    torch.testing.assert_close(sae.W_dec[:, h:], torch.bmm(sae.W_half_IHD, sae.R_map_IDD))
    fresh = build_sae(tiny("bound", dict_size=10), seed=0)  # R_map starts as a rotation
    torch.testing.assert_close(fresh.W_dec.norm(dim=-1), torch.ones(2, 10), rtol=0, atol=1e-5)
    eye = torch.eye(6).expand(2, 6, 6)
    torch.testing.assert_close(fresh.R_map_IDD.transpose(1, 2) @ fresh.R_map_IDD, eye, rtol=0, atol=1e-5)


def test_decoder_gradient_follows_the_chain_rule():
    """_decoder_backward(G) gives ∂/∂W_half = G₁ + G₂ R_mapᵀ and ∂/∂R_map = W_halfᵀ G₂: the
    autograd gradient of Σ W_dec ⊙ G (the full step is checked in test_conformance)."""
    sae = perturbed(build_sae(tiny("bound", dict_size=8), seed=1).double())
    G = torch.randn(2, 8, 6, generator=torch.Generator().manual_seed(0), dtype=torch.float64)
    ref = twin(sae)
    (ref.W_dec * G).sum().backward()
    sae._decoder_backward(G)
    for name in ("W_half_IHD", "R_map_IDD"):
        torch.testing.assert_close(getattr(sae, name).grad, getattr(ref, name).grad, rtol=1e-12, atol=1e-12, msg=name)
        assert getattr(sae, name).grad.abs().sum() > 0


def test_dict_size_must_be_even():
    with pytest.raises(ValueError, match="dict_size must be even"):
        SAEConfig(arch="bound", dict_size=7)


def test_resampling_resets_a_half_row_only_when_both_partners_are_dead():
    sae = build_sae(tiny("bound", dead_window=5, dict_size=8), seed=0)
    xs = [data(1, 32, 6, seed=s) for s in range(4)]
    opt = run_steps(sae, xs)
    dead = torch.zeros(2, 8, dtype=torch.bool)
    dead[0, [1, 5]] = True  # latents 1 and 5 are partners, both dead
    dead[1, 2] = True  # its partner 6 is alive
    half_before = sae.W_half_IHD.detach().clone()
    sae.steps_since_fired_IF.masked_fill_(dead, 10)
    assert sae.resample_dead_latents(xs[-1]).tolist() == [2, 1]
    state = opt.state[sae.W_half_IHD]["exp_avg"]
    assert torch.all(state[0, 1] == 0) and torch.any(state[1, 2] != 0)
    assert not torch.equal(sae.W_half_IHD[0, 1], half_before[0, 1])  # a new direction
    assert torch.equal(sae.W_half_IHD[1, 2], half_before[1, 2])  # kept: partner alive
    torch.testing.assert_close(sae.W_half_IHD[0, 1].norm(), torch.tensor(1.0))
