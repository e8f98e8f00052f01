"""``gated`` and ``rescaled``: the stop-gradient aux term, the Heaviside gate and its absence."""
import math

import pytest
import torch

from toymodels.sae import build_sae

from ._helpers import data, perturbed, tiny


def test_gated_decoder_gets_no_gradient_from_the_aux_term():
    sae = perturbed(build_sae(tiny("gated"), seed=1))
    x = data(1, 16, 6)
    terms = sae.loss_terms(x)
    terms["aux"].sum().backward()
    assert sae.W_dec_IFD.grad is None or torch.all(sae.W_dec_IFD.grad == 0)
    assert sae.W_enc_IDF.grad.abs().sum() > 0 and sae.b_enc_IF.grad.abs().sum() > 0  # the gate path learns
    # and the decoder's gradient from the full loss is that of the reconstruction term alone
    sae.zero_grad(set_to_none=True)
    sae.loss_terms(x)["total"].sum().backward()
    g_total = sae.W_dec_IFD.grad.clone()
    sae.zero_grad(set_to_none=True)
    sae.loss_terms(x)["mse"].sum().backward()
    torch.testing.assert_close(g_total, sae.W_dec_IFD.grad)


def test_rescaled_has_no_gate():
    gated = build_sae(tiny("gated", n_instances=1, l1_coefficient=0.1), seed=0)
    resc = build_sae(tiny("rescaled", n_instances=1, l1_coefficient=0.1), seed=0)
    assert hasattr(gated, "b_mag_IF") and not hasattr(resc, "b_mag_IF")
    x1 = data(1, 1, 6, seed=5) + 0.1  # one sample (b_dec = 0)
    h = torch.bmm(x1, resc.W_enc_IDF)[0, 0, 0].item()  # latent 0's encoder projection
    with torch.no_grad():
        for m in (gated, resc):
            m.r_mag_IF.fill_(0.5)
        gated.b_mag_IF.fill_(1.0)  # π_mag = e^0.5·h + 1: large and positive
        for offset, open_ in ((1e-3, True), (-1e-3, False)):
            for m in (gated, resc):
                m.b_enc_IF[0, 0] = -h + offset  # π_gate = offset for latent 0
            f_g, f_r = gated.encode(x1), resc.encode(x1)
            pi_gate = torch.bmm(x1, resc.W_enc_IDF) + resc.b_enc_IF[:, None]
            # rescaled: exactly exp(r) ⊙ ReLU(π_gate), so continuous at π_gate = 0
            torch.testing.assert_close(f_r, math.exp(0.5) * torch.relu(pi_gate))
            if open_:
                assert f_r[0, 0, 0].item() == pytest.approx(math.exp(0.5) * 1e-3, rel=1e-2)
                # gated: the Heaviside gate jumps straight to ReLU(π_mag)
                assert f_g[0, 0, 0].item() == pytest.approx(math.exp(0.5) * h + 1.0, rel=1e-5)
                assert f_g[0, 0, 0].item() > 100 * f_r[0, 0, 0].item()
            else:
                assert f_g[0, 0, 0].item() == 0.0 and f_r[0, 0, 0].item() == 0.0


@pytest.mark.parametrize("arch", ["gated", "rescaled"])
def test_resampling_resets_the_magnitude_path(arch):
    sae = perturbed(build_sae(tiny(arch), seed=0))
    dead = torch.zeros(2, 12, dtype=torch.bool)
    dead[0, 3] = True
    sae.steps_since_fired_IF.masked_fill_(dead, 10_000)
    sae.resample_dead_latents(data(1, 32, 6))
    assert sae.r_mag_IF[0, 3] == 0 and sae.r_mag_IF[0, 4] != 0
    if arch == "gated":
        assert sae.b_mag_IF[0, 3] == 0 and sae.b_mag_IF[0, 4] != 0
