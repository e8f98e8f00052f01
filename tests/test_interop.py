"""SAELens files out and in (issue 10): ``toymodels export --format saelens`` and
``toymodels.sae.from_saelens``.

Without sae-lens: the keys, shapes and dtypes of cfg.json and sae_weights.safetensors, the
SAELens inference formulas (written out below from sae_lens/saes/*.py, 6.x) applied to the
exported tensors reproduce our codes and outputs, and our own import reproduces them too.
With sae-lens (tests marked ``interop``, ``make test-interop``): the real
``sae_lens.SAE.load_from_disk`` does."""
from __future__ import annotations

import json

import pytest
import torch
from safetensors.torch import load_file

from toymodels.cli import main
from toymodels.train.runs import save_weights, write_json
from toymodels.sae import SAEConfig, build_sae, export_saelens, from_saelens, to_saelens
from toymodels.sae.saelens import EXPORTABLE

LOADABLE = ("relu", "topk", "jumprelu", "gated")
WEIGHTS = {
    "standard": {"W_enc", "W_dec", "b_enc", "b_dec"},
    "topk": {"W_enc", "W_dec", "b_enc", "b_dec"},
    "jumprelu": {"W_enc", "W_dec", "b_enc", "b_dec", "threshold"},
    "gated": {"W_enc", "W_dec", "b_gate", "b_mag", "r_mag", "b_dec"},
}


def trained_like(arch: str, seed: int = 0):
    """Two instances with weights moved off the symmetric initialisation (and, for the
    threshold SAEs, positive calibrated thresholds)."""
    kw = dict(arch=arch, d_model=6, dict_size=12, n_instances=2, b_dec_init="zeros")
    if arch in ("topk", "batchtopk", "matryoshka"):
        kw["k"] = (2, 3)
    sae = build_sae(SAEConfig(**kw), seed=seed)
    g = torch.Generator().manual_seed(seed + 1)
    with torch.no_grad():
        for name, p in sae.named_parameters():
            p.add_(0.2 * torch.randn(p.shape, generator=g))
        if hasattr(sae, "threshold_I"):
            sae.threshold_I.copy_(torch.tensor([0.05, 0.15]))
    return sae


def inputs(seed: int = 3) -> torch.Tensor:
    g = torch.Generator().manual_seed(seed)
    return torch.randn(1, 64, 6, generator=g)


def saelens_encode(cfg: dict, st: dict, x: torch.Tensor) -> torch.Tensor:
    """SAELens 6.x inference (sae.py process_sae_in, each architecture's encode) on (B, D)."""
    sae_in = x - st["b_dec"] * cfg["apply_b_dec_to_input"]
    arch = cfg["architecture"]
    if arch == "gated":
        active = (sae_in @ st["W_enc"] + st["b_gate"] > 0).to(x.dtype)
        return active * torch.relu(sae_in @ (st["W_enc"] * st["r_mag"].exp()) + st["b_mag"])
    pre = sae_in @ st["W_enc"] + st["b_enc"]
    if arch == "standard":
        return torch.relu(pre)
    if arch == "jumprelu":
        return torch.relu(pre) * (pre > st["threshold"])
    if arch == "topk":
        vals, idx = pre.topk(cfg["k"], dim=-1)
        return torch.zeros_like(pre).scatter(-1, idx, vals.relu())
    raise AssertionError(arch)


@pytest.mark.parametrize("arch", EXPORTABLE)
def test_file_format_and_saelens_formulas_reproduce_our_outputs(arch, tmp_path):
    sae = trained_like(arch)
    dirs = export_saelens(sae, tmp_path / "out")
    assert [d.name for d in dirs] == ["instance_000", "instance_001"]
    x = inputs()
    f_ours, x_hat = sae.encode_decode(x)
    for i, d in enumerate(dirs):
        cfg = json.loads((d / "cfg.json").read_text())
        st = load_file(str(d / "sae_weights.safetensors"))
        target = cfg["architecture"]
        assert set(st) == WEIGHTS[target]
        assert (cfg["d_in"], cfg["d_sae"], cfg["dtype"], cfg["device"]) == (6, 12, "float32", "cpu")
        assert cfg["apply_b_dec_to_input"] is True
        assert cfg["normalize_activations"] == "none" and cfg["reshape_activations"] == "none"
        assert cfg["metadata"]["sae_lens_version"].startswith("6.")
        assert st["W_enc"].shape == (6, 12) and st["W_dec"].shape == (12, 6) and st["b_dec"].shape == (6,)
        assert all(t.dtype == torch.float32 and t.is_contiguous() for t in st.values())
        if target == "topk":
            assert cfg["k"] == (2, 3)[i] and cfg["rescale_acts_by_decoder_norm"] is False
        f = saelens_encode(cfg, st, x[0])
        torch.testing.assert_close(f, f_ours[i].detach(), rtol=1e-5, atol=1e-6)
        torch.testing.assert_close(f @ st["W_dec"] + st["b_dec"], x_hat[i].detach(), rtol=1e-5, atol=1e-6)
        assert int((f != 0).sum()) > 0  # the check sees firing latents, not all zeros


@pytest.mark.parametrize("arch", LOADABLE)
def test_from_saelens_round_trip_reproduces_outputs(arch, tmp_path):
    sae = trained_like(arch, seed=5)
    x = inputs(7)
    f_ours, x_hat = sae.encode_decode(x)
    for i in range(2):
        back = from_saelens(to_saelens(sae, tmp_path / f"i{i}", instance=i))
        assert back.config.arch == arch and back.n_instances == 1
        f, y = back.encode_decode(x)
        torch.testing.assert_close(f[0], f_ours[i].detach(), rtol=1e-5, atol=1e-6)
        torch.testing.assert_close(y[0], x_hat[i].detach(), rtol=1e-5, atol=1e-6)
        if arch == "topk":
            assert back.config.k == (2, 3)[i]


def test_threshold_archs_load_back_as_jumprelu_with_their_outputs(tmp_path):
    for arch in ("batchtopk", "matryoshka", "rescaled", "bound"):
        sae = trained_like(arch)
        x = inputs()
        back = from_saelens(to_saelens(sae, tmp_path / arch, instance=1))
        assert back.config.arch == {"batchtopk": "batchtopk", "matryoshka": "matryoshka"}.get(arch, "relu")
        torch.testing.assert_close(back(x)[0], sae(x)[1].detach(), rtol=1e-5, atol=1e-6)


def test_from_saelens_refuses_what_it_cannot_express(tmp_path):
    d = to_saelens(trained_like("relu"), tmp_path / "a")
    cfg = json.loads((d / "cfg.json").read_text())
    for key, value, match in (("architecture", "matching_pursuit", "no toymodels equivalent"),
                              ("normalize_activations", "layer_norm", "normalize_activations"),
                              ("d_sae", 13, "expected")):
        (d / "cfg.json").write_text(json.dumps({**cfg, key: value}))
        with pytest.raises(ValueError, match=match):
            from_saelens(d)
    (d / "cfg.json").unlink()
    with pytest.raises(ValueError, match="cfg.json is missing"):
        from_saelens(d)


def test_apply_b_dec_to_input_false_is_folded_into_the_encoder_bias(tmp_path):
    sae = trained_like("relu")
    d = to_saelens(sae, tmp_path / "a")
    cfg = json.loads((d / "cfg.json").read_text())
    st = load_file(str(d / "sae_weights.safetensors"))
    st["b_enc"] = st["b_enc"] - st["b_dec"] @ st["W_enc"]  # the same function of x without centring
    from safetensors.torch import save_file

    save_file(st, str(d / "sae_weights.safetensors"))
    (d / "cfg.json").write_text(json.dumps({**cfg, "apply_b_dec_to_input": False}))
    x = inputs()
    torch.testing.assert_close(from_saelens(d)(x)[0], sae(x)[0].detach(), rtol=1e-5, atol=1e-5)


def test_export_cli_writes_every_instance_and_refuses_a_toy_model(tmp_path, capsys):
    sae = trained_like("jumprelu")
    run = tmp_path / "run"
    run.mkdir()
    write_json(run / "config.json", {"model": sae.spec(), "data": {}, "train": {"steps": 5}})
    save_weights(run / "model.safetensors", sae)
    write_json(run / "metrics.json", {"steps": 5})  # a finished run (export refuses an unfinished one)
    assert main(["export", str(run), "--format", "saelens", "--out", str(tmp_path / "x")]) == 0
    back = from_saelens(tmp_path / "x" / "instance_001")
    torch.testing.assert_close(back(inputs())[0], sae(inputs())[1].detach(), rtol=1e-5, atol=1e-6)
    assert main(["export", str(tmp_path / "missing"), "--out", str(tmp_path / "y")]) == 2
    assert "not a folder" in capsys.readouterr().err
    assert not (tmp_path / "y").exists()


# ---------------------------------------------------------------------- the real package
@pytest.mark.interop
@pytest.mark.parametrize("arch", ["relu", "topk", "batchtopk", "jumprelu", "gated", "matryoshka"])
def test_sae_lens_load_from_disk_reproduces_our_outputs(arch, tmp_path):
    sae_lens = pytest.importorskip("sae_lens")
    sae = trained_like(arch)
    x = inputs()
    f_ours, x_hat = sae.encode_decode(x)
    for i, d in enumerate(export_saelens(sae, tmp_path)):
        theirs = sae_lens.SAE.load_from_disk(str(d), device="cpu")
        with torch.no_grad():
            f = theirs.encode(x[0])
            y = theirs.decode(f)
            out = theirs(x[0])
        torch.testing.assert_close(f, f_ours[i].detach(), rtol=1e-5, atol=1e-6)
        torch.testing.assert_close(y, x_hat[i].detach(), rtol=1e-5, atol=1e-6)
        torch.testing.assert_close(out, x_hat[i].detach(), rtol=1e-5, atol=1e-6)


@pytest.mark.interop
def test_an_sae_saved_by_sae_lens_loads_into_ours(tmp_path):
    sae_lens = pytest.importorskip("sae_lens")
    from sae_lens import JumpReLUSAE, JumpReLUSAEConfig

    theirs = JumpReLUSAE(JumpReLUSAEConfig(d_in=6, d_sae=12))
    with torch.no_grad():
        g = torch.Generator().manual_seed(0)
        for p in theirs.parameters():
            p.copy_(0.3 * torch.randn(p.shape, generator=g))
        theirs.threshold.copy_(theirs.threshold.abs() + 0.01)
    theirs.save_model(tmp_path / "j")
    ours = from_saelens(tmp_path / "j")
    x = inputs()
    with torch.no_grad():
        torch.testing.assert_close(ours(x)[0], theirs(x[0]), rtol=1e-5, atol=1e-6)
    assert sae_lens is not None
