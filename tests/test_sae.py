"""Sparse autoencoders: configs, hand-derived backwards, constraints, architectures,
resampling, instance independence, checkpoints — and (slow) recovery of true features."""
import math

import pytest
import torch

from toymodels.data import SparseFeatures
from toymodels.sae import (
    ARCHITECTURES,
    SAEConfig,
    build_sae,
    decoder_orthogonality,
    evaluate_sae,
    geometric_median,
    sae_from_spec,
)
from toymodels.sae.config import K_ARCHS
from toymodels.sae.jumprelu import jumprelu, step
from toymodels.sae.sparse import Pattern, sparse_decode, sparse_linear_at
from toymodels.train import TrainConfig, make_optimizer, optimizer_step, train

ALL_ARCHS = ["relu", "gated", "rescaled", "topk", "batchtopk", "jumprelu", "bound"]


def tiny(arch, **kw):
    n = kw.get("n_instances", 2)
    base = dict(arch=arch, d_model=6, dict_size=12, n_instances=2, l1_coefficient=(0.05, 0.2) if n == 2 else 0.1, b_dec_init="zeros")
    if arch in K_ARCHS:
        base["k"] = (2, 3) if n == 2 else 2
    base.update(kw)
    return SAEConfig(**base)


def data(n_inst, bsz, d, seed=0, dtype=torch.float32):
    g = torch.Generator().manual_seed(seed)
    x = torch.rand(n_inst, bsz, d, generator=g, dtype=dtype)
    return x * (torch.rand(n_inst, bsz, d, generator=g, dtype=dtype) < 0.5)


def run_steps(sae, xs, opt=None):
    """What the trainer does each step."""
    opt = opt or make_optimizer(list(sae.parameters()), TrainConfig(lr=1e-2))
    sae.attach_optimizer(opt)
    for x in xs:
        optimizer_step(sae, opt, x, 0)
    return opt


def perturbed(sae, seed=0, scale=0.1):
    g = torch.Generator().manual_seed(seed)
    with torch.no_grad():
        for p in sae.parameters():
            p.add_(scale * torch.randn(p.shape, generator=g, dtype=p.dtype))
    return sae


# ---------------------------------------------------------------------- config
@pytest.mark.parametrize(
    "kw, field",
    [
        (dict(dict_size=0), "dict_size"),
        (dict(arch="topk", dict_size=4, k=5), "k"),
        (dict(arch="topk", k=None), "k"),
        (dict(l1_coefficient=-0.1), "l1_coefficient"),
        (dict(l1_coefficient=float("nan")), "l1_coefficient"),
        (dict(l1_coefficient=(0.1, 0.2, 0.3), n_instances=2), "l1_coefficient"),
        (dict(arch="nope"), "arch"),
        (dict(arch="bound", dict_size=7), "dict_size"),
        (dict(d_model=0), "d_model"),
        (dict(b_dec_init="median"), "b_dec_init"),
        (dict(jumprelu_bandwidth=0.0), "jumprelu_bandwidth"),
        (dict(decoder_orthogonality=float("nan")), "decoder_orthogonality"),
        (dict(aux_k=-1), "aux_k"),
    ],
)
def test_config_rejects_bad_values_naming_the_field(kw, field):
    with pytest.raises(ValueError, match=field):
        SAEConfig(**kw)


def test_config_per_instance_values_and_unknown_keys():
    cfg = SAEConfig(arch="topk", n_instances=3, k=[1, 2, 3], l1_coefficient=0.5)
    assert cfg.k == (1, 2, 3) and cfg.per_instance("l1_coefficient") == [0.5] * 3
    assert cfg.subset([2, 0]).k == (3, 1)
    assert SAEConfig.from_dict(cfg.to_dict()) == cfg
    with pytest.raises(ValueError, match="unknown SAEConfig field"):
        SAEConfig.from_dict({**cfg.to_dict(), "l1_coeficient": 0.1})


def test_registry_has_every_architecture_and_spec_round_trips():
    assert set(ALL_ARCHS) <= set(ARCHITECTURES)
    x = data(1, 16, 6)
    for arch in ALL_ARCHS:
        sae = perturbed(build_sae(tiny(arch), seed=3))
        assert sae.arch == arch and sae.spec()["family"] == "sae"
        again = sae_from_spec(sae.spec())
        assert type(again) is type(sae)
        again.load_state_dict(sae.state_dict())
        assert torch.equal(again(x), sae(x))


# ---------------------------------------------------------------------- gradients
@pytest.mark.parametrize("arch", ["relu", "bound"])
def test_hand_derived_backward_matches_autograd(arch):
    cfg = tiny(arch, n_instances=3, l1_coefficient=(0.0, 0.1, 0.7), sparsity_warmup_steps=4, decoder_orthogonality=0.3)
    a = perturbed(build_sae(cfg, seed=1).double())
    with torch.no_grad():
        a.b_dec_ID.add_(0.2)
        a.step_count_I.fill_(1)  # inside the warm-up: λ·2/4
    b = sae_from_spec(a.spec()).double()
    b.load_state_dict(a.state_dict())
    for x in (data(1, 9, 6, dtype=torch.float64), data(3, 9, 6, seed=1, dtype=torch.float64)):
        for m in (a, b):
            for p in m.parameters():
                p.grad = None
        loss_a = a.loss_and_grad(x)
        terms = b.loss_terms(x, train=True)
        terms["total"].sum().backward()
        torch.testing.assert_close(loss_a, terms["total"].detach(), rtol=1e-12, atol=1e-12)
        for (name, p), q in zip(a.named_parameters(), b.parameters()):
            assert q.grad is not None and q.grad.abs().sum() > 0, name
            torch.testing.assert_close(p.grad, q.grad, rtol=1e-10, atol=1e-12, msg=name)


def _dense_k_reference(sae, x, ks, batch):
    """Dense autograd TopK / BatchTopK loss with the aux-k term, for the gradient check."""
    pre = sae.pre_activations(x)
    n_b = x.shape[1]
    fs = []
    for i, k in enumerate(ks):
        if batch:
            act = pre[i].clamp_min(0).flatten()
            v, idx = act.topk(n_b * k)
            fs.append(torch.zeros_like(act).scatter(0, idx, v).view_as(pre[i]))
        else:
            v, idx = pre[i].topk(k, dim=-1)
            fs.append(torch.zeros_like(pre[i]).scatter(-1, idx, torch.relu(v)))
    x_hat = sae.decode(torch.stack(fs))
    mse = (x_hat - x).square().sum(dim=(1, 2)) / n_b
    dead = sae.dead_latents()
    masked = pre.masked_fill(~dead[:, None, :], float("-inf"))
    v, idx = masked.topk(sae.config.effective_aux_k, dim=-1)
    f_aux = torch.zeros_like(pre).scatter(-1, idx, torch.relu(torch.where(torch.isfinite(v), v, 0 * v)))
    e = (x - x_hat).detach()
    aux = sae.config.aux_coefficient * (e - torch.bmm(f_aux, sae.W_dec)).square().sum(dim=(1, 2)) / n_b
    return mse + aux + sae.config.decoder_orthogonality * decoder_orthogonality(sae.W_dec)


@pytest.mark.parametrize("path", ["hand-derived", "autograd"])
@pytest.mark.parametrize("arch", ["topk", "batchtopk"])
def test_sparse_backward_matches_dense_autograd(arch, path):
    cfg = tiny(arch, n_instances=3, k=(1, 2, 4), aux_k=3, dead_window=3, decoder_orthogonality=0.2)
    a = perturbed(build_sae(cfg, seed=2).double())
    with torch.no_grad():
        a.b_enc_IF.add_(0.3)
        a.steps_since_fired_IF[:, :5] = 10  # five dead latents: the aux-k loss is on
    b = sae_from_spec(a.spec()).double()
    b.load_state_dict(a.state_dict())
    x = data(1, 7, 6, dtype=torch.float64)
    if path == "hand-derived":
        loss_a = a.loss_and_grad(x)
    else:  # the custom autograd functions behind loss_terms
        total = a.loss_terms(x, train=True)["total"]
        total.sum().backward()
        loss_a = total.detach()
    ref = _dense_k_reference(b, x, [1, 2, 4], batch=arch == "batchtopk")
    ref.sum().backward()
    torch.testing.assert_close(loss_a, ref.detach(), rtol=1e-12, atol=1e-12)
    for (name, p), q in zip(a.named_parameters(), b.parameters()):
        assert q.grad.abs().sum() > 0, name
        torch.testing.assert_close(p.grad, q.grad, rtol=1e-10, atol=1e-12, msg=name)


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


def test_jumprelu_threshold_gets_the_ste_gradient():
    eps = 0.4
    sae = perturbed(build_sae(tiny("jumprelu", jumprelu_bandwidth=eps, jumprelu_init_threshold=0.3, l1_coefficient=0.7), seed=4).double())
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


# ---------------------------------------------------------------------- constraints
@pytest.mark.parametrize("arch", ALL_ARCHS)
def test_decoder_rows_stay_unit_norm(arch):
    sae = build_sae(tiny(arch), seed=0)
    run_steps(sae, [data(1, 32, 6, seed=s) for s in range(5)])
    for name in sae.unit_norm_params:
        norms = getattr(sae, name).norm(dim=-1)
        torch.testing.assert_close(norms, torch.ones_like(norms), rtol=0, atol=1e-5)


def test_projection_removes_the_radial_gradient():
    sae = build_sae(tiny("relu"), seed=0)
    sae.loss_and_grad(data(1, 16, 6))
    sae.before_optimizer_step(0)
    radial = (sae.W_dec_IFD.grad * sae.W_dec_IFD).sum(-1)
    assert radial.abs().max() < 1e-6


def test_decoder_orthogonality_by_hand():
    W = torch.tensor([[[1.0, 0.0], [0.6, 0.8], [0.0, 2.0]]])  # cos²: .36, 0, .64
    assert decoder_orthogonality(W).item() == pytest.approx(2 * (0.36 + 0 + 0.64) / 6)


def test_sparsity_warmup_is_linear():
    sae = build_sae(tiny("relu", l1_coefficient=0.8, sparsity_warmup_steps=4))
    got = []
    for s in range(6):
        sae.step_count_I.fill_(s)
        got.append(sae.sparsity_coefficient(train=True)[0].item())
    assert got == pytest.approx([0.2, 0.4, 0.6, 0.8, 0.8, 0.8])
    assert sae.sparsity_coefficient(train=False)[0].item() == pytest.approx(0.8)


def test_geometric_median_and_b_dec_init():
    g = torch.Generator().manual_seed(0)
    x = torch.randn(1, 200, 3, generator=g, dtype=torch.float64)
    y = geometric_median(x, iters=500, tol=1e-12)
    u = (x - y[:, None]) / (x - y[:, None]).norm(dim=-1, keepdim=True)
    assert u.sum(1).norm() < 1e-6  # the optimality condition Σ_b (x_b − y)/||x_b − y|| = 0
    outliers = torch.cat([x, torch.full((1, 20, 3), 100.0, dtype=torch.float64)], dim=1)
    assert geometric_median(outliers).norm() < 1.0 < outliers.mean(1).norm()  # robust, unlike the mean
    sae = build_sae(tiny("relu", b_dec_init="geometric-median"))
    batch = data(1, 64, 6)
    sae.loss_and_grad(batch)
    torch.testing.assert_close(sae.b_dec_ID[0], geometric_median(batch)[0])


# ---------------------------------------------------------------------- architectures
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


def test_topk_l0_is_exactly_k():
    sae = build_sae(tiny("topk", n_instances=3, k=(1, 3, 5)), seed=0)
    with torch.no_grad():
        sae.b_enc_IF.add_(10.0)  # every pre-activation positive
    x = data(1, 50, 6)
    f = sae.encode(x)
    assert ((f != 0).sum(-1) == torch.tensor([1, 3, 5])[:, None]).all()
    run_steps(sae, [x])  # the sparse training path keeps exactly k too
    v = sae._sparse_reconstruct(x, True)["v"].detach().view(3, 50, 5)  # values at the (kmax = 5)-pattern
    assert ((v != 0).sum(-1) == torch.tensor([1, 3, 5])[:, None]).all()


def test_batchtopk_mean_l0_is_k_in_training_and_threshold_at_eval():
    cfg = SAEConfig(arch="batchtopk", d_model=8, dict_size=32, n_instances=2, k=(2, 4), threshold_ema=0.1, b_dec_init="zeros")
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


def test_bound_decoder_structure():
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


# ---------------------------------------------------------------------- resampling
@pytest.mark.parametrize("arch", ["relu", "jumprelu", "gated", "bound"])
def test_resampling_resets_adam_state_of_resampled_rows(arch):
    sae = build_sae(tiny(arch, dead_window=5, dict_size=8), seed=0)
    xs = [data(1, 32, 6, seed=s) for s in range(4)]
    opt = run_steps(sae, xs)
    dead = torch.zeros(2, 8, dtype=torch.bool)
    dead[0, [1, 5]] = True  # bound: latents 1 and 5 are partners, both dead
    dead[1, 2] = True
    enc_before = sae.W_enc_IDF.detach().clone()
    sae.steps_since_fired_IF.masked_fill_(dead, 10)
    counts = sae.resample_dead_latents(xs[-1])
    assert counts.tolist() == [2, 1]
    for name, p in sae.named_parameters():
        st = opt.state[p]
        if name in ("W_enc_IDF",):
            m = st["exp_avg"].transpose(1, 2)  # (I, F, D)
        elif name in ("b_enc_IF", "W_dec_IFD", "r_mag_IF", "b_mag_IF", "log_threshold_IF"):
            m = st["exp_avg"]
        else:
            continue
        for key in ("exp_avg", "exp_avg_sq"):
            t = st[key].transpose(1, 2) if name == "W_enc_IDF" else st[key]
            assert torch.all(t[dead] == 0), (name, key)
        alive = ~dead
        assert m[alive].abs().sum() > 0, name  # the others are untouched
    if arch == "bound":
        assert torch.all(opt.state[sae.W_half_IHD]["exp_avg"][0, 1] == 0)  # both halves dead: row reset
        assert torch.any(opt.state[sae.W_half_IHD]["exp_avg"][1, 2] != 0)  # partner 6 alive: kept
    else:
        W = sae.W_dec[dead]  # new rows are unit vectors along inputs minus b_dec
        torch.testing.assert_close(W.norm(dim=-1), torch.ones(3))
    assert not torch.equal(sae.W_enc_IDF.detach(), enc_before)
    assert torch.all(sae.b_enc_IF[dead] == 0) and torch.all(sae.steps_since_fired_IF[dead] == 0)
    if arch == "jumprelu":
        torch.testing.assert_close(sae.threshold[dead], torch.full((3,), sae.config.jumprelu_init_threshold))


def test_resampling_runs_through_the_trainer():
    cfg = SAEConfig(arch="relu", d_model=6, dict_size=12, l1_coefficient=0.01, resample_every=3, dead_window=2, b_dec_init="zeros")
    sae = build_sae(cfg, seed=0)
    with torch.no_grad():
        sae.b_enc_IF[0, :4] = -100.0  # four latents that can never fire
    src = SparseFeatures(8, 0.3, d_embed=6, seed=0)
    train(sae, src, TrainConfig(steps=3, batch_size=64, quiet=True, eval_samples=64))
    assert sae._optimizer is not None  # the trainer attached its optimizer
    assert sae.b_enc_IF[0, :4].abs().max() < 1.0  # resampled: bias reset to 0, then a few Adam steps


# ---------------------------------------------------------------------- batching
def _trained_state(sae):
    return {k: v.detach().clone() for k, v in sae.state_dict().items()}


@pytest.mark.parametrize("arch", ALL_ARCHS)
def test_instances_train_independently(arch):
    extra = dict(k=(1, 2, 3)) if arch in K_ARCHS else dict(l1_coefficient=(0.01, 0.1, 0.5))
    cfg = tiny(arch, n_instances=3, b_dec_init="geometric-median", dead_window=2, resample_every=4, **extra)
    init = build_sae(cfg, seed=7)
    tcfg = TrainConfig(steps=8, batch_size=32, lr=1e-2, quiet=True, eval_samples=64)
    together = build_sae(cfg, seed=7)
    train(together, SparseFeatures(10, 0.2, d_embed=6, seed=3), tcfg)
    for i in range(3):
        alone = init.subset([i])
        train(alone, SparseFeatures(10, 0.2, d_embed=6, seed=3), tcfg)
        mine = together.subset([i]).state_dict()
        for k, v in alone.state_dict().items():
            torch.testing.assert_close(v, mine[k], rtol=1e-4, atol=1e-5, msg=f"instance {i} {k}")


@pytest.mark.parametrize("arch", ["relu", "batchtopk"])
def test_chunked_training_equals_one_chunk(arch):
    cfg = tiny(arch, n_instances=3, **(dict(k=(1, 2, 3)) if arch in K_ARCHS else dict(l1_coefficient=(0.0, 0.1, 0.3))))
    a, b = build_sae(cfg, seed=1), build_sae(cfg, seed=1)
    base = dict(steps=6, batch_size=32, quiet=True, eval_samples=64)
    ra = train(a, SparseFeatures(10, 0.2, d_embed=6, seed=2), TrainConfig(**base))
    rb = train(b, SparseFeatures(10, 0.2, d_embed=6, seed=2), TrainConfig(**base, max_instances_per_chunk=1))
    assert rb.chunks == 3 and ra.chunks == 1
    for k, v in a.state_dict().items():
        torch.testing.assert_close(v, b.state_dict()[k], rtol=1e-4, atol=1e-5, msg=k)


def test_resume_equals_uninterrupted(tmp_path):
    cfg = tiny("batchtopk", dead_window=2, b_dec_init="geometric-median")
    tcfg = TrainConfig(steps=6, batch_size=32, quiet=True, eval_samples=64, checkpoint_every=3)
    full = build_sae(cfg, seed=0)
    train(full, SparseFeatures(10, 0.2, d_embed=6, seed=2), tcfg, tmp_path / "a")

    class Crash(Exception):
        pass

    crashing = build_sae(cfg, seed=0)
    real_after = crashing.after_optimizer_step

    def after(step, x):
        real_after(step, x)
        if step == 4:  # after the step-3 checkpoint
            raise Crash

    crashing.after_optimizer_step = after
    with pytest.raises(Crash):
        train(crashing, SparseFeatures(10, 0.2, d_embed=6, seed=2), tcfg, tmp_path / "b")
    resumed = build_sae(cfg, seed=0)
    train(resumed, SparseFeatures(10, 0.2, d_embed=6, seed=2), tcfg, tmp_path / "b", resume=True)
    assert resumed.step_count_I.tolist() == [6, 6]
    for k, v in full.state_dict().items():  # weights, threshold, dead counters, step count
        torch.testing.assert_close(v, resumed.state_dict()[k], msg=k)


# ---------------------------------------------------------------------- evaluation
def test_evaluate_sae_with_and_without_ground_truth():
    src = SparseFeatures(6, 0.2, seed=0)  # no embedding: the truth is the standard basis
    cfg = SAEConfig(arch="relu", d_model=6, dict_size=6, n_instances=2, l1_coefficient=0.0, b_dec_init="zeros")
    sae = build_sae(cfg)
    with torch.no_grad():  # instance 0 is the identity dictionary; instance 1 a shuffled one
        sae.W_dec_IFD[0] = torch.eye(6)
        sae.W_enc_IDF[0] = torch.eye(6)
        sae.W_dec_IFD[1] = torch.eye(6)[torch.tensor([1, 2, 3, 4, 5, 0])]
    out = evaluate_sae(sae, src, n_samples=2000)
    assert out["mmcs"][0] == pytest.approx(1.0) and out["mcc"][0] == pytest.approx(1.0)
    assert out["fvu"][0] == pytest.approx(0.0, abs=1e-10) and out["shrinkage"][0] == pytest.approx(1.0)
    assert out["l0"][0] == pytest.approx(6 * 0.2, rel=0.1)
    pruned = evaluate_sae(sae, src, n_samples=500, keep=torch.zeros(2, 6, dtype=torch.bool))
    assert pruned["l0"] == [0.0, 0.0] and pruned["dead_fraction"] == [1.0, 1.0]
    from toymodels.data import UnitCube

    none = evaluate_sae(sae, UnitCube(6), n_samples=100)
    assert "mmcs" not in none and len(none["fvu"]) == 2


# ---------------------------------------------------------------------- quality (slow)
@pytest.mark.slow
@pytest.mark.parametrize(
    "arch, kw, target",
    [
        ("relu", dict(l1_coefficient=0.15), 0.95),
        ("gated", dict(l1_coefficient=0.3), 0.95),
        ("topk", dict(k=3), 0.97),
        ("jumprelu", dict(l1_coefficient=0.03), 0.95),
    ],
)
def test_recovers_ground_truth_features(arch, kw, target):
    """128 true features in 64 dims, about 3 active; dictionary 256; 3000 steps at batch 1024."""
    src = SparseFeatures(128, 3 / 128, d_embed=64, seed=11)
    sae = build_sae(SAEConfig(arch=arch, d_model=64, dict_size=256, **kw), seed=0)
    train(sae, src, TrainConfig(steps=3000, batch_size=1024, quiet=True, eval_samples=4096))
    m = evaluate_sae(sae, src, n_samples=4096)
    assert m["mmcs"][0] >= target, m["mmcs"]
