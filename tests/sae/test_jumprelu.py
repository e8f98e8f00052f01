"""``jumprelu``: the straight-through estimators, its options, and old specs."""
import pytest
import torch

from toymodels.sae import SAEConfig, build_sae, sae_from_spec
from toymodels.sae.jumprelu import JumpReLUOptions, jumprelu, step

from ._helpers import data, perturbed, tiny


def test_threshold_gets_the_ste_gradient():
    eps = 0.4
    cfg = tiny("jumprelu", options={"bandwidth": eps, "init_threshold": 0.3}, l1_coefficient=0.7)
    sae = perturbed(build_sae(cfg, seed=4).double())
    x = data(1, 20, 6, dtype=torch.float64)
    terms = sae.loss_terms(x)
    terms["total"].sum().backward()
    with torch.no_grad():
        pre = sae.pre_activations(x)
        theta = sae.threshold[:, None, :]
        kernel = ((pre - theta) / eps).abs() < 0.5
        f = pre * (pre > theta)
        g_f = torch.bmm(2 * (sae.decode(f) - x) / x.shape[1], sae.W_dec.transpose(1, 2))  # ∂mse/∂f
        lam = torch.tensor([0.7, 0.7], dtype=torch.float64)[:, None]
        d_theta = (g_f * (-theta / eps) * kernel).sum(1) + lam * (-(1 / eps) * kernel).sum(1) / x.shape[1]
        expected = d_theta * sae.threshold  # chain rule through θ = exp(log θ)
    assert kernel.any()
    torch.testing.assert_close(sae.log_threshold_IF.grad, expected)
    assert sae.log_threshold_IF.grad.abs().sum() > 0
    # the L0 term alone sends no gradient to the pre-activations
    p = torch.tensor([0.1, 0.5], requires_grad=True)
    t = torch.tensor([0.3, 0.3], requires_grad=True)
    step(p, t, eps).sum().backward()
    assert p.grad is None or torch.all(p.grad == 0)
    assert jumprelu(torch.tensor([0.1, 0.5]), torch.tensor([0.3, 0.3]), eps).tolist() == [0.0, 0.5]


def test_options_set_the_initial_threshold_and_are_checked():
    sae = build_sae(tiny("jumprelu", options=JumpReLUOptions(init_threshold=0.25)), seed=0)
    torch.testing.assert_close(sae.threshold, torch.full((2, 12), 0.25))
    assert sae.options.bandwidth == 0.05
    for bad in ({"bandwidth": 0.0}, {"bandwidth": float("nan")}, {"init_threshold": -1.0}, {"bandwidth": float("inf")}):
        with pytest.raises(ValueError, match=next(iter(bad))):
            tiny("jumprelu", options=bad)
    with pytest.raises(ValueError, match="unknown key"):
        tiny("jumprelu", options={"jumprelu_bandwidth": 0.1})  # the old flat name is not an option


def test_a_spec_saved_before_options_still_loads():
    """config.json written before options moved into the architectures held flat keys."""
    old = {"family": "sae", "arch": "jumprelu", "d_model": 6, "dict_size": 12, "n_instances": 1,
           "l1_coefficient": 0.1, "k": None, "aux_k": None, "aux_coefficient": 0.03125, "dead_window": 200,
           "decoder_orthogonality": 0.0, "tied_init": True, "b_dec_init": "geometric-median",
           "sparsity_warmup_steps": 0, "resample_every": 0, "resample_scale": 0.2,
           "jumprelu_bandwidth": 0.02, "jumprelu_init_threshold": 0.3, "threshold_ema": 0.01, "seed": 4}
    sae = sae_from_spec(old)
    assert sae.options == JumpReLUOptions(bandwidth=0.02, init_threshold=0.3) and sae.seed == 4
    spec = {k: v for k, v in sae.spec().items() if k not in ("family", "seed")}
    assert spec["options"] == {"bandwidth": 0.02, "init_threshold": 0.3} and "jumprelu_bandwidth" not in spec
    assert SAEConfig.from_dict(spec) == sae.config
    relu = sae_from_spec({**old, "arch": "relu"})  # another arch's old keys are dropped
    assert relu.config.options == type(relu.config.options)()


def test_resampling_resets_the_threshold():
    sae = perturbed(build_sae(tiny("jumprelu", options={"init_threshold": 0.2}), seed=0))
    dead = torch.zeros(2, 12, dtype=torch.bool)
    dead[1, [0, 5]] = True
    sae.steps_since_fired_IF.masked_fill_(dead, 10_000)
    sae.resample_dead_latents(data(1, 32, 6))
    torch.testing.assert_close(sae.threshold[dead], torch.full((2,), 0.2))
    assert not torch.allclose(sae.threshold[~dead], torch.full((22,), 0.2))
