"""Stochastic parameter decomposition: shapes, each loss against a hand computation, the
gradients, the source of mask uniforms, and training through the one trainer."""
import pytest
import torch

from toymodels.research.compressed import BigramMLP, BigramMLPConfig, BigramSource, ResidualMLP, ResidualMLPConfig
from toymodels.data import SparseFeatures
from toymodels.models import HiddenReLU, ReLUOutput, TMSConfig
from toymodels.protocols import Source, TrainableModel
from toymodels.research.spd import (
    MaskedSource,
    SPDConfig,
    SPDModel,
    TiedTarget,
    as_target,
    causal_importance,
    faithfulness_warmup,
    leaky_hard_mask,
    lower_leaky_hard_sigmoid,
    rank_one_cosine,
    train_spd,
    upper_leaky_hard_sigmoid,
)
from toymodels.train import TrainConfig, train


def _tms(n=5, m=2, inst=1, seed=0):
    return ReLUOutput(TMSConfig(n, m, n_instances=inst), seed=seed)


def test_config_rejects_bad_values():
    for kw, field in (({"n_components": 0}, "n_components"), ({"p": 0.0}, "p"), ({"importance": -1.0}, "importance"),
                      ({"leak": 1.0}, "leak")):
        with pytest.raises(ValueError, match=field):
            SPDConfig(**kw)


def test_hard_sigmoids():
    x = torch.tensor([-2.0, 0.0, 0.5, 1.0, 3.0])
    assert torch.allclose(lower_leaky_hard_sigmoid(x, 0.01), torch.tensor([-0.02, 0.0, 0.5, 1.0, 1.0]))
    assert torch.allclose(upper_leaky_hard_sigmoid(x, 0.01), torch.tensor([0.0, 0.0, 0.5, 1.0, 1.02]))


def test_shapes_protocol_and_frozen_target():
    tms = _tms(inst=3)
    spd = SPDModel(tms, SPDConfig(n_components=4))
    assert isinstance(spd, TrainableModel) and spd.names == ("W", "W_T")
    assert spd.U["W"].shape == (3, 4, 2) and spd.V["W"].shape == (3, 4, 5)
    assert spd.U["W_T"].shape == (3, 4, 5) and spd.V["W_T"].shape == (3, 4, 2)
    assert spd.input_dim == 5 + 2 * 4
    # only subcomponents and gates train; the caller's model is copied, not frozen in place
    assert all(p.requires_grad for p in spd.parameters())
    assert len(list(spd.parameters())) == 12
    assert all(p.requires_grad for p in tms.parameters())
    assert "target.model.W_IMN" in spd.state_dict()
    x = torch.rand(3, 7, spd.input_dim)
    assert spd.loss(x).shape == (3,)
    with pytest.raises(ValueError, match="uniforms"):
        spd.loss(torch.rand(3, 7, 5))
    with pytest.raises(ValueError, match="cannot be decomposed"):
        as_target(torch.nn.Linear(2, 2))


def _exact_tms_spd(tms: ReLUOutput) -> SPDModel:
    """SPD with the true pieces and hand-set gates: component i of W is W_i e_iᵀ, of Wᵀ e_i W_iᵀ;
    each gate is g = clamp(gelu(20 s − 10)), on iff its inner activation s > 1/2 (C = N, H = 1)."""
    n = tms.n_features
    spd = SPDModel(tms, SPDConfig(n_components=n, gate_hidden=1))
    W = tms.W_IMN.detach()[0]  # (M, N)
    with torch.no_grad():
        spd.U["W"][0] = W.T
        spd.V["W"][0] = torch.eye(n)
        spd.U["W_T"][0] = torch.eye(n)
        spd.V["W_T"][0] = W.T
        for name in ("W", "W_T"):
            spd.gate_w1[name].fill_(20.0)
            spd.gate_b1[name].fill_(-10.0)
            spd.gate_w2[name].fill_(1.0)
            spd.gate_b2[name].fill_(0.0)
    return spd


def test_loss_terms_by_hand():
    torch.manual_seed(0)
    tms = _tms(4, 2)
    spd = SPDModel(tms, SPDConfig(n_components=3, gate_hidden=2, p=1.5))
    x_in, u = torch.rand(1, 6, 4), torch.rand(1, 6, 6)
    L = spd.losses(torch.cat([x_in, u], -1))
    W = tms.W_IMN.detach()
    Wh = {n: spd.U[n][0].T @ spd.V[n][0] for n in ("W", "W_T")}
    faith = ((W[0] - Wh["W"]).square().sum() + (W[0].T - Wh["W_T"]).square().sum()) / 16
    assert torch.allclose(L["faithfulness"][0], faith, atol=1e-6)

    def gates(name, a):
        s = a @ spd.V[name][0].T  # (B, C)
        h = torch.nn.functional.gelu(s[..., None] * spd.gate_w1[name][0] + spd.gate_b1[name][0])
        return (h * spd.gate_w2[name][0]).sum(-1) + spd.gate_b2[name][0]

    x = x_in[0]
    h = x @ W[0].T
    y = torch.relu(h @ W[0] + tms.b_IN[0])
    lw, lt = gates("W", x), gates("W_T", h)
    # the default masks squash with the plain hard sigmoid forward (sigmoid="leaky_hard", as the
    # reference implementation; the leak only shapes the gradient below 0)
    mw = lw.clamp(0, 1)
    mt = lt.clamp(0, 1)
    mw, mt = mw + (1 - mw) * u[0, :, :3], mt + (1 - mt) * u[0, :, 3:]
    hm = ((x @ spd.V["W"][0].T) * mw) @ spd.U["W"][0]
    ym = torch.relu(((hm @ spd.V["W_T"][0].T) * mt) @ spd.U["W_T"][0] + tms.b_IN[0])
    assert torch.allclose(L["reconstruction"][0], (ym - y).square().mean(), atol=1e-6)
    y1 = torch.relu(hm @ W[0] + tms.b_IN[0])
    y2 = torch.relu(((h @ spd.V["W_T"][0].T) * mt) @ spd.U["W_T"][0] + tms.b_IN[0])
    want = ((y1 - y).square().mean() + (y2 - y).square().mean()) / 2
    assert torch.allclose(L["layerwise"][0], want, atol=1e-6)
    imp = sum(upper_leaky_hard_sigmoid(g, 0.01).abs().pow(1.5).sum(-1).mean() for g in (lw, lt))
    assert torch.allclose(L["importance"][0], imp, atol=1e-5)
    cfg = spd.config
    total = (cfg.faithfulness * faith + cfg.reconstruction * L["reconstruction"][0]
             + cfg.layerwise * L["layerwise"][0] + cfg.importance * imp)
    assert torch.allclose(spd.loss(torch.cat([x_in, u], -1))[0], total, atol=1e-6)


def test_lower_leaky_masks_use_the_leaky_forward():
    torch.manual_seed(0)
    tms = _tms(4, 2)
    x = torch.cat([torch.rand(1, 6, 4), torch.rand(1, 6, 6)], -1)
    a = SPDModel(tms, SPDConfig(n_components=3, gate_hidden=2))
    b = SPDModel(tms, SPDConfig(n_components=3, gate_hidden=2, sigmoid="lower_leaky"))
    la = a.gate_logits("W", x[..., :4] @ a.V["W"].transpose(1, 2))
    assert bool((la < 0).any())  # some gate is closed, where the two forms differ
    assert torch.allclose(b.mask_squash(la), lower_leaky_hard_sigmoid(la, 0.01))
    assert torch.equal(a.mask_squash(la), la.clamp(0, 1))
    assert not torch.allclose(a.losses(x)["reconstruction"], b.losses(x)["reconstruction"])


def test_leaky_hard_mask_gradient():
    x = torch.tensor([-2.0, -2.0, 0.5, 3.0], requires_grad=True)
    y = leaky_hard_mask(x, 0.01)
    assert torch.equal(y.detach(), torch.tensor([0.0, 0.0, 0.5, 1.0]))
    # upstream gradients -1 (raise x), +1 (lower x), 1, 1: below 0 only the raising one leaks
    y.backward(torch.tensor([-1.0, 1.0, 1.0, 1.0]))
    assert torch.allclose(x.grad, torch.tensor([-0.01, 0.0, 1.0, 0.0]))


def test_new_config_fields_rejected_by_name():
    for kw, name in (({"sigmoid": "tanh"}, "sigmoid"), ({"gate_init": "zeros"}, "gate_init"),
                     ({"faithfulness_warmup_steps": -1}, "faithfulness_warmup_steps"),
                     ({"faithfulness_warmup_steps": 2.5}, "faithfulness_warmup_steps"),
                     ({"faithfulness_warmup_lr": 0.0}, "faithfulness_warmup_lr"),
                     ({"faithfulness_warmup_weight_decay": -0.1}, "faithfulness_warmup_weight_decay"),
                     ({"delta_component": 1}, "delta_component")):
        with pytest.raises(ValueError, match=name):
            SPDConfig(**kw)


def test_gate_init_kaiming_starts_closed_legacy_half_open():
    tms = _tms(5, 2)
    k = SPDModel(tms, SPDConfig(n_components=4))
    lg = SPDModel(tms, SPDConfig(n_components=4, gate_init="legacy"))
    assert float(k.gate_b2["W"].detach().abs().max()) == 0.0 and float(k.gate_b1["W"].detach().abs().max()) == 0.0
    assert torch.allclose(lg.gate_b2["W"], torch.full_like(lg.gate_b2["W"], 0.5))
    # at zero inner activation the kaiming gates output exactly 0, the legacy ones about 1/2
    z = torch.zeros(1, 3, 4)
    assert float(k.gate_logits("W", z).detach().abs().max()) < 1e-6


def test_faithfulness_warmup_fits_the_weights_and_zero_steps_is_a_no_op():
    tms = _tms(5, 2)
    spd = SPDModel(tms, SPDConfig(n_components=8))
    before = spd.losses(torch.rand(1, 4, spd.input_dim))["faithfulness"].detach()
    U0 = spd.U["W"].detach().clone()
    assert torch.allclose(faithfulness_warmup(spd, 0), before) and torch.equal(spd.U["W"], U0)
    after = faithfulness_warmup(spd, 200)
    assert float(after[0]) < 0.05 * float(before[0])
    assert all(p.grad is None for p in spd.parameters())


def test_delta_component_adds_the_residual_under_its_own_mask():
    tms = _pentagon_tms()
    cfg = SPDConfig(n_components=5, gate_hidden=1, delta_component=True)
    spd = SPDModel(tms, cfg)
    assert spd.input_dim == 5 + 2 * 6
    with torch.no_grad():
        for p in spd.U.values():
            p.zero_()  # Ŵ = 0: the delta is the whole target weight
    x = torch.rand(1, 7, 5) * 0.9
    u = torch.rand(1, 7, 12)
    u[..., 5] = 1.0  # W's delta mask
    u[..., 11] = 1.0  # W_T's delta mask
    L = spd.losses(torch.cat([x, u], -1))
    assert float(L["reconstruction"][0]) < 1e-10 and float(L["layerwise"][0]) < 1e-10
    u[..., 5] = 0.0  # negative control: the residual masked out
    assert float(spd.losses(torch.cat([x, u], -1))["reconstruction"][0]) > 1e-3


def test_identity_target_is_the_same_function_with_three_matrices():
    tms = _pentagon_tms()
    t = TiedTarget(tms, identity=True)
    assert tuple(t.spd_weights()) == ("W", "ID", "W_T")
    x = torch.rand(1, 9, 5)
    plain = TiedTarget(tms)
    mm = lambda W: (lambda n, a: a @ W[n].transpose(1, 2))
    assert torch.allclose(t.spd_forward(x, mm(t.spd_weights())), plain.spd_forward(x, mm(plain.spd_weights())))
    assert SPDModel(t, SPDConfig(n_components=3)).names == ("W", "ID", "W_T")
    assert t.subset([0]).identity
    with pytest.raises(ValueError, match="identity"):
        TiedTarget(tms, identity=1)


def test_faithfulness_gradient_by_hand_matches_autograd():
    tms = _tms(5, 3)
    spd = SPDModel(tms, SPDConfig(n_components=4, faithfulness=1.0, reconstruction=0.0, layerwise=0.0, importance=0.0))
    spd.loss_and_grad(torch.rand(1, 8, spd.input_dim))
    W = tms.W_IMN.detach()[0]
    E = W - spd.U["W"][0].detach().T @ spd.V["W"][0].detach()  # residual (M, N)
    n_entries = 2 * W.numel()
    # L = Σ E² / n  ->  ∂L/∂U = −(2/n) V Eᵀ, ∂L/∂V = −(2/n) U E
    assert torch.allclose(spd.U["W"].grad[0], -2 / n_entries * spd.V["W"][0].detach() @ E.T, atol=1e-6)
    assert torch.allclose(spd.V["W"].grad[0], -2 / n_entries * spd.U["W"][0].detach() @ E, atol=1e-6)


def _pentagon_tms() -> ReLUOutput:
    """The 5 -> 2 optimum's shape: unit columns at 72° steps, bias −0.3 (so the interference
    0.9·cos 72° of a single active feature stays below the ReLU)."""
    tms = _tms(5, 2)
    ang = torch.arange(5) * 2 * torch.pi / 5
    with torch.no_grad():
        tms.W_IMN[0] = torch.stack([ang.cos(), ang.sin()])
        tms.b_IN.fill_(-0.3)
    return tms


def test_exact_decomposition_has_zero_faithfulness_and_reconstruction_on_single_features():
    tms = _pentagon_tms()
    spd = _exact_tms_spd(tms)
    x = torch.eye(5)[None] * 0.9  # one feature at a time
    u = torch.rand(1, 5, 10)
    L = spd.losses(torch.cat([x, u], -1))
    assert float(L["faithfulness"][0].detach()) < 1e-12
    # one subcomponent per matrix at logit gelu(20·0.9 − 10) = 8: upper-leaky 1 + 0.01·7 each
    assert float(L["importance"][0].detach()) == pytest.approx(2.14, abs=1e-3)
    assert float(L["reconstruction"][0].detach()) < 1e-10 and float(L["layerwise"][0].detach()) < 1e-10
    g = causal_importance(spd, torch.eye(5)[None])
    assert torch.allclose(g["W"][0], torch.eye(5))
    # negative control: a wrong piece (two features' components swapped) breaks reconstruction
    with torch.no_grad():
        spd.U["W"][0, [0, 1]] = spd.U["W"][0, [1, 0]].clone()
    assert float(spd.losses(torch.cat([x, u], -1))["reconstruction"][0].detach()) > 1e-3


def test_rank_one_cosine():
    U, V = torch.tensor([[1.0, 0.0]]), torch.tensor([[0.0, 2.0, 0.0]])
    u, v = torch.tensor([[3.0, 0.0], [1.0, 1.0]]), torch.tensor([[0.0, 1.0, 0.0], [0.0, -1.0, 0.0]])
    c = rank_one_cosine(U, V, u, v)
    assert torch.allclose(c, torch.tensor([[1.0, -(2 ** -0.5)]]))


def test_masked_source_streams_subset_and_state():
    base = SparseFeatures(5, 0.3, 3, seed=2)
    src = MaskedSource(base, 4, seed=1)
    assert isinstance(src, Source) and src.dim == 9
    st = src.get_state()
    x = src.sample(11)
    assert x.shape == (3, 11, 9) and float(x[..., 5:].min()) >= 0 and float(x[..., 5:].max()) < 1
    src.set_state(st)
    assert torch.equal(src.sample(11), x)
    src.set_state(st)
    sub = src.subset([2])
    assert torch.equal(sub.sample(11), src.sample(11)[[2]])
    with pytest.raises(ValueError, match="pair"):
        src.set_state(st[0])


def test_subset_and_load_instances():
    spd = SPDModel(_tms(inst=3), SPDConfig(n_components=3))
    sub = spd.subset([2, 0])
    assert torch.equal(sub.U["W"], spd.U["W"][[2, 0]]) and torch.equal(sub.target.model.W_IMN, spd.target.model.W_IMN[[2, 0]])
    assert all(p.requires_grad for p in sub.parameters()) and not sub.target.model.W_IMN.requires_grad
    other = SPDModel(_tms(inst=1, seed=5), SPDConfig(n_components=3, seed=9))
    spd.load_instances([1], other)
    assert torch.equal(spd.V["W_T"][1], other.V["W_T"][0])


def test_trains_through_the_trainer_chunked_like_unchunked():
    tms = _tms(5, 2, inst=2)
    cfg = SPDConfig(n_components=4)
    tr = TrainConfig(steps=30, batch_size=32, lr=1e-2, quiet=True, eval_samples=64)
    a = train_spd(tms, SparseFeatures(5, 0.2, 2, seed=1), cfg, tr)
    b = train_spd(tms, SparseFeatures(5, 0.2, 2, seed=1), cfg,
                  TrainConfig(**{**tr.__dict__, "max_instances_per_chunk": 1}))
    assert torch.allclose(a.model.U["W"], b.model.U["W"], atol=1e-5)
    assert (a.result.final_loss < a.result.initial_loss).all()


def test_other_targets_decompose():
    bm = BigramMLP(BigramMLPConfig(4, 6, 1, train_in=False))
    spd = SPDModel(bm, SPDConfig(n_components=5))
    assert spd.names == ("W_in", "W_out") and spd.input_dim == 8 + 10
    src = MaskedSource(BigramSource(4, 3, 5, seed=0), 10)
    res = train(spd, src, TrainConfig(steps=5, batch_size=16, quiet=True, eval_samples=16))
    assert torch.isfinite(res.final_loss).all()
    rm = ResidualMLP(ResidualMLPConfig(6, 12, 3))
    assert SPDModel(rm, SPDConfig(n_components=2)).loss(torch.rand(1, 3, 6 + 4)).shape == (1,)
    hid = HiddenReLU(TMSConfig(5, 3))
    assert isinstance(as_target(hid), TiedTarget)


def test_run_folder_round_trip_and_exact_resume(tmp_path):
    from toymodels.train.runs import load_weights, read_json

    tms = _tms(5, 2)
    cfg = SPDConfig(n_components=3)
    # prefetch_elements=0: with prefetching, a 10-step run draws its data in other blocks than a
    # 20-step one, and the resumed run is not bit-identical (the same holds for a plain toy model)
    tr = TrainConfig(steps=20, batch_size=16, lr=1e-2, quiet=True, eval_samples=32, checkpoint_every=10,
                     prefetch_elements=0)
    run = train_spd(tms, SparseFeatures(5, 0.2, seed=1), cfg, tr, out=tmp_path / "a")
    assert read_json(tmp_path / "a" / "config.json")["model"]["family"] == "spd"
    fresh = SPDModel(tms, cfg)
    load_weights(tmp_path / "a" / "model.safetensors", fresh)
    assert torch.equal(fresh.U["W"], run.model.U["W"]) and torch.equal(fresh.gate_b2["W_T"], run.model.gate_b2["W_T"])
    # 10 steps, then resumed to 20: the masks' uniforms live in the source state, so it is exact
    short = TrainConfig(**{**tr.__dict__, "steps": 10})
    train_spd(tms, SparseFeatures(5, 0.2, seed=1), cfg, short, out=tmp_path / "b")
    model = SPDModel(tms, cfg)
    src = MaskedSource(SparseFeatures(5, 0.2, seed=1), model.input_dim - model.target_dim, seed=cfg.seed)
    train(model, src, tr, tmp_path / "b", resume=True)
    assert torch.equal(model.V["W"], run.model.V["W"])


def test_gate_mlp_matches_the_broadcast_expression_and_its_autograd():
    """The fused causal-importance MLPs (hand-derived backward) against the plain broadcast
    expression: values and every gradient, in float64."""
    import torch.nn.functional as F

    from toymodels.research.spd import gate_mlp

    g = torch.Generator().manual_seed(0)
    i, c, b, h = 2, 5, 9, 4
    s = torch.randn(i, b, c, generator=g, dtype=torch.float64, requires_grad=True)
    w1, b1, w2 = (torch.randn(i, c, h, generator=g, dtype=torch.float64, requires_grad=True) for _ in range(3))
    b2 = torch.randn(i, c, generator=g, dtype=torch.float64, requires_grad=True)
    ref = (F.gelu(s[..., None] * w1[:, None] + b1[:, None]) * w2[:, None]).sum(-1) + b2[:, None]
    out = gate_mlp(s.transpose(1, 2), w1, b1, w2, b2).transpose(1, 2)
    torch.testing.assert_close(out, ref, rtol=0, atol=1e-12)
    up = torch.randn(ref.shape, generator=g, dtype=torch.float64)
    for a, e in zip(torch.autograd.grad(out, [s, w1, b1, w2, b2], up), torch.autograd.grad(ref, [s, w1, b1, w2, b2], up)):
        torch.testing.assert_close(a, e, rtol=0, atol=1e-12)


def test_residual_mlp_folded_basis_gives_the_same_function_losses_and_gradients():
    """The residual MLP's forward and SPD's losses, causal importances and gradients in the
    folded feature basis (spd_folds) equal those through the D-wide residual stream."""
    m = ResidualMLP(ResidualMLPConfig(8, 30, 4, n_instances=2), seed=1).double()
    g = torch.Generator().manual_seed(2)
    x = torch.randn(2, 6, 8, generator=g, dtype=torch.float64)
    torch.testing.assert_close(m(x), m.spd_forward(x, m.plain_layer), rtol=0, atol=1e-12)
    for delta in (False, True):
        spd = SPDModel(m, SPDConfig(n_components=5, delta_component=delta)).double()
        batch = torch.cat([x, torch.rand(2, 6, spd.input_dim - 8, generator=g, dtype=torch.float64)], -1)

        def run():
            spd.zero_grad(set_to_none=True)
            L = spd.losses(batch)
            sum(L.values()).sum().backward()
            grads = {k: p.grad.clone() for k, p in spd.named_parameters() if p.requires_grad}
            return L, grads, causal_importance(spd, x)

        folded = run()
        spd_folds = ResidualMLP.spd_folds
        try:
            del ResidualMLP.spd_folds  # the same model through the full residual stream
            full = run()
        finally:
            ResidualMLP.spd_folds = spd_folds
        for a, e in zip(folded, full):
            assert a.keys() == e.keys()
            for k in a:
                torch.testing.assert_close(a[k], e[k], rtol=1e-9, atol=1e-12, msg=f"{k} (delta={delta})")
