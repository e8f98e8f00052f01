"""The contract every registered SAE architecture keeps, run for each name in the registry
(collected at import time, so a new architecture module is tested without editing a list):
options, shapes, input checks, the base's training step (gradient against autograd in
float64, orthogonality penalty, dead-latent tracking, data init per chunk), unit decoder
rows, resampling, save/load, D = 1 and F = 1, and instances that train independently."""
import ast
import dataclasses
import inspect
from pathlib import Path

import pytest
import torch

from toymodels.data import SparseFeatures
from toymodels.train.runs import load_model, load_weights, save_weights, write_json
from toymodels.sae import ARCHITECTURES, SAE, SAEConfig, arch_names, build_sae, decoder_orthogonality, geometric_median, sae_from_spec
from toymodels.sae.base import latent_axis
from toymodels.train import TrainConfig, train

from ._helpers import assert_same_grads, clear_grads, data, perturbed, run_steps, tiny, twin

ARCHS = arch_names()
TESTS = Path(__file__).parent


def test_every_known_architecture_is_discovered():
    assert {"relu", "gated", "rescaled", "topk", "batchtopk", "jumprelu", "bound"} <= set(ARCHS)


# ---------------------------------------------------------------------- registration
def _field_docstrings(cls) -> dict[str, str]:
    """Docstrings written directly under each dataclass field."""
    tree = ast.parse(inspect.getsource(cls).lstrip())
    body = tree.body[0].body
    out = {}
    for node, nxt in zip(body, body[1:]):
        if isinstance(node, ast.AnnAssign) and isinstance(nxt, ast.Expr) and isinstance(nxt.value, ast.Constant):
            out[node.target.id] = nxt.value.value
    return out


@pytest.mark.parametrize("arch", ARCHS)
def test_registration_options_and_own_test_file(arch):
    cls = ARCHITECTURES[arch]
    assert issubclass(cls, SAE) and cls.arch == arch
    opts = cls.Options
    assert dataclasses.is_dataclass(opts) and opts.__dataclass_params__.frozen
    docs = _field_docstrings(opts)
    for f in dataclasses.fields(opts):
        assert f.default is not dataclasses.MISSING, f"{arch} option {f.name} needs a default"
        assert docs.get(f.name, "").strip(), f"{arch} option {f.name} needs a docstring under it"
        flag = f.metadata.get("flag", "--" + f.name.replace("_", "-"))
        assert flag.startswith("--") and " " not in flag
    for old, new in cls.legacy_options.items():
        assert new in {f.name for f in dataclasses.fields(opts)}, (old, new)
    assert isinstance(tiny(arch).options, opts)
    module = cls.__module__.rsplit(".", 1)[-1]
    assert (TESTS / f"test_{module}.py").exists(), f"architecture module {module}.py needs tests/sae/test_{module}.py"


@pytest.mark.parametrize("arch", ARCHS)
def test_options_reject_unknown_keys_and_other_types(arch):
    with pytest.raises(ValueError, match="unknown key"):
        tiny(arch, options={"no_such_option": 1})
    with pytest.raises(ValueError, match="options"):
        tiny(arch, options=3)
    other = next(c.Options for n, c in ARCHITECTURES.items() if c.Options is not ARCHITECTURES[arch].Options)
    with pytest.raises(ValueError, match="options"):
        tiny(arch, options=other())


@pytest.mark.parametrize("arch", ARCHS)
def test_config_round_trips_through_its_dict(arch):
    cfg = tiny(arch)
    assert SAEConfig.from_dict(cfg.to_dict()) == cfg
    assert cfg.subset([1]).options == cfg.options


def test_loss_and_grad_cannot_be_overridden():
    with pytest.raises(TypeError, match="loss_and_grad_core"):
        class Bad(ARCHITECTURES["relu"]):  # noqa: F841
            def loss_and_grad(self, x):
                return x


# ---------------------------------------------------------------------- shapes and inputs
@pytest.mark.parametrize("arch", ARCHS)
def test_shapes(arch):
    sae = build_sae(tiny(arch), seed=0)
    for lead in (1, 2):
        x = data(lead, 5, 6)
        f, x_hat = sae.encode_decode(x)
        assert f.shape == (2, 5, 12) and x_hat.shape == (2, 5, 6)
        assert sae(x).shape == (2, 5, 6) and sae.encode(x, train=True).shape == (2, 5, 12)
        assert sae.loss(x).shape == (2,)
        terms = sae.loss_terms(x)
        assert {"mse", "sparsity", "total"} <= set(terms) and all(t.shape == (2,) for t in terms.values())
    assert sae.W_dec.shape == (2, 12, 6) and sae.decoder_directions().shape == (2, 6, 12)


@pytest.mark.parametrize("arch", ARCHS)
@pytest.mark.parametrize(
    "x, match",
    [
        (torch.zeros(2, 4, 5), "d_model = 6"),
        (torch.zeros(3, 4, 6), "n_instances = 2"),
        (torch.zeros(4, 6), r"\(1 or n_instances"),
        (torch.zeros(2, 4, 6, dtype=torch.float64), "dtype torch.float32"),
        (torch.zeros(2, 4, 6, dtype=torch.int64), "dtype torch.float32"),
        (torch.zeros(2, 0, 6), "empty batch"),
    ],
    ids=["wrong-D", "wrong-I", "2-d", "float64", "int64", "empty"],
)
def test_bad_inputs_raise_one_clear_error(arch, x, match):
    sae = build_sae(tiny(arch), seed=0)
    for call in (sae.encode, sae.forward, sae.loss, sae.loss_and_grad):
        with pytest.raises(ValueError, match=match):
            call(x)


# ---------------------------------------------------------------------- the training step
@pytest.mark.parametrize("arch", ARCHS)
def test_training_gradient_matches_autograd_float64(arch):
    """loss_and_grad (hand-derived where the arch has one) against autograd through
    loss_terms, with warm-up, orthogonality penalty and per-instance coefficients."""
    cfg = tiny(arch, n_instances=3, sparsity_warmup_steps=4, decoder_orthogonality=0.3,
               **({"k": (1, 2, 4), "aux_k": 3, "dead_window": 3} if ARCHITECTURES[arch].uses_k
                  else {"l1_coefficient": (0.0, 0.1, 0.7)}))
    a = perturbed(build_sae(cfg, seed=1).double())
    with torch.no_grad():
        a.b_dec_ID.add_(0.2)
        a.b_enc_IF.add_(0.1)
        a.step_count_I.fill_(1)  # inside the warm-up, and past the data init
        a.steps_since_fired_IF[:, :4] = 10  # some dead latents (the aux-k loss is on)
    for x in (data(1, 9, 6, dtype=torch.float64), data(3, 9, 6, seed=1, dtype=torch.float64)):
        b = twin(a)  # same dead counters as a (a's step records firing)
        clear_grads(a, b)
        loss_a = a.loss_and_grad(x)
        total = b.loss_terms(x, train=True)["total"]
        total.sum().backward()
        torch.testing.assert_close(loss_a, total.detach(), rtol=1e-12, atol=1e-12)
        assert_same_grads(a, b)
        assert sum(float(p.grad.abs().sum()) for p in a.parameters()) > 0


@pytest.mark.parametrize("arch", ARCHS)
def test_orthogonality_penalty_is_in_every_training_step(arch):
    """With coefficient c the step's loss grows by c·ortho(W_dec) and its gradient by
    c·∇ortho (autograd of decoder_orthogonality), whatever the architecture's backward."""
    c = 0.7
    plain = perturbed(build_sae(tiny(arch), seed=2).double())
    with_c = sae_from_spec({**plain.spec(), "decoder_orthogonality": c}).double()
    with_c.load_state_dict(plain.state_dict())
    ref = twin(plain)
    x = data(1, 16, 6, dtype=torch.float64)
    loss0, loss1 = plain.loss_and_grad(x), with_c.loss_and_grad(x)
    ortho = decoder_orthogonality(ref.W_dec)
    (c * ortho).sum().backward()
    torch.testing.assert_close(loss1 - loss0, c * ortho.detach(), rtol=1e-10, atol=1e-12)
    assert float(ortho.detach().sum()) > 0
    for (name, p0), p1, pr in zip(plain.named_parameters(), with_c.parameters(), ref.parameters()):
        expected = pr.grad if pr.grad is not None else torch.zeros_like(p0)
        torch.testing.assert_close(p1.grad - p0.grad, expected, rtol=1e-8, atol=1e-12, msg=name)


@pytest.mark.parametrize("arch", ARCHS)
def test_dead_latent_tracking_is_in_every_training_step(arch):
    sae = perturbed(build_sae(tiny(arch), seed=3))
    x = data(1, 16, 6)
    fired = (sae.encode(x, train=True) != 0).any(dim=1)
    sae.steps_since_fired_IF.fill_(5)
    sae.loss_and_grad(x)
    expected = torch.where(fired, 0, 6)
    assert torch.equal(sae.steps_since_fired_IF, expected)
    assert bool(fired.any())


@pytest.mark.parametrize("arch", ARCHS)
def test_b_dec_is_initialised_per_instance_in_every_chunk(arch):
    """Issue 8 #1: a chunk split off after another chunk trained still gets its own
    geometric-median b_dec from its first batch, exactly as in the unchunked SAE."""
    cfg = tiny(arch, n_instances=3, b_dec_init="geometric-median",
               **({"k": (1, 2, 3)} if ARCHITECTURES[arch].uses_k else {"l1_coefficient": (0.0, 0.1, 0.3)}))
    x = data(1, 32, 6, seed=4) + 0.5
    whole = build_sae(cfg, seed=5)
    whole.loss_and_grad(x)
    chunked = build_sae(cfg, seed=5)
    first = chunked.subset([0])
    first.loss_and_grad(x)
    chunked.load_instances([0], first)
    rest = chunked.subset([1, 2])
    rest.loss_and_grad(x)
    chunked.load_instances([1, 2], rest)
    median = geometric_median(x)[0]
    for i in range(3):
        torch.testing.assert_close(chunked.b_dec_ID[i], median)
    torch.testing.assert_close(chunked.b_dec_ID, whole.b_dec_ID)
    # an instance that has stepped is never re-initialised
    fresh = build_sae(cfg, seed=5).subset([1])
    fresh.step_count_I.fill_(1)
    fresh.loss_and_grad(x)
    assert torch.all(fresh.b_dec_ID == 0)


@pytest.mark.parametrize("arch", ARCHS)
def test_chunked_training_equals_unchunked(arch):
    """Through the trainer, with the geometric-median init (issue 8 #1)."""
    cfg = tiny(arch, n_instances=3, b_dec_init="geometric-median",
               **({"k": (1, 2, 3)} if ARCHITECTURES[arch].uses_k else {"l1_coefficient": (0.0, 0.1, 0.3)}))
    a, b = build_sae(cfg, seed=1), build_sae(cfg, seed=1)
    base = dict(steps=4, batch_size=32, quiet=True, eval_samples=64)
    ra = train(a, SparseFeatures(10, 0.2, d_embed=6, seed=2), TrainConfig(**base))
    rb = train(b, SparseFeatures(10, 0.2, d_embed=6, seed=2), TrainConfig(**base, max_instances_per_chunk=1))
    assert rb.chunks == 3 and ra.chunks == 1
    # every chunk moved b_dec to its data's geometric median: 4 Adam steps at lr 1e-3 move a
    # zero b_dec by at most 0.004 per coordinate, the median of this data is ~0.04 away
    assert b.b_dec_ID.norm(dim=-1).min() > 0.02
    for k, v in a.state_dict().items():
        torch.testing.assert_close(v, b.state_dict()[k], rtol=1e-4, atol=1e-5, msg=k)


@pytest.mark.parametrize("arch", ARCHS)
def test_decoder_rows_stay_unit_norm(arch):
    sae = build_sae(tiny(arch), seed=0)
    run_steps(sae, [data(1, 32, 6, seed=s) for s in range(4)])
    for name in sae.unit_norm_params:
        norms = getattr(sae, name).norm(dim=-1)
        torch.testing.assert_close(norms, torch.ones_like(norms), rtol=0, atol=1e-5)


# ---------------------------------------------------------------------- resampling
@pytest.mark.parametrize("arch", ARCHS)
def test_resampling_resets_dead_latents_and_their_adam_state(arch):
    sae = build_sae(tiny(arch, dead_window=5), seed=0)
    xs = [data(1, 32, 6, seed=s) for s in range(3)]
    opt = run_steps(sae, xs)
    dead = torch.zeros(2, 12, dtype=torch.bool)
    dead[0, [1, 7]] = True  # bound: partners 1 and 7 (F/2 = 6)
    dead[1, 2] = True
    before = {n: p.detach().clone() for n, p in sae.named_parameters()}
    sae.steps_since_fired_IF.masked_fill_(dead, 10)
    counts = sae.resample_dead_latents(xs[-1])
    assert counts.tolist() == [2, 1]
    assert torch.all(sae.steps_since_fired_IF[dead] == 0)
    assert torch.all(sae.b_enc_IF[dead] == 0)
    enc = sae.W_enc_IDF.detach()
    assert not torch.equal(enc.transpose(1, 2)[dead], before["W_enc_IDF"].transpose(1, 2)[dead])
    checked = 0
    for name, p in sae.named_parameters():
        axis = latent_axis(name)
        if axis is None:
            continue
        moved = lambda t: t.movedim(axis, 1)  # noqa: E731  (I, F, ...)
        for key in ("exp_avg", "exp_avg_sq"):
            assert torch.all(moved(opt.state[p][key])[dead] == 0), (name, key)
        assert moved(opt.state[p]["exp_avg"])[~dead].abs().sum() > 0, name
        torch.testing.assert_close(moved(p.detach())[~dead], moved(before[name])[~dead], msg=name)  # alive: untouched
        checked += 1
    assert checked >= 2


# ---------------------------------------------------------------------- saving
@pytest.mark.parametrize("arch", ARCHS)
def test_save_and_load_round_trip(arch, tmp_path):
    sae = perturbed(build_sae(tiny(arch), seed=3))
    run_steps(sae, [data(1, 16, 6)])
    write_json(tmp_path / "config.json", {"model": sae.spec()})
    save_weights(tmp_path / "model.safetensors", sae)
    again = load_model(tmp_path)
    assert type(again) is type(sae) and again.config == sae.config
    x = data(1, 16, 6, seed=1)
    torch.testing.assert_close(again(x), sae(x), rtol=0, atol=0)
    for k, v in sae.state_dict().items():
        assert torch.equal(v, again.state_dict()[k]), k


@pytest.mark.parametrize("arch", ARCHS)
@pytest.mark.parametrize("d_model, dict_size", [(1, 4), (3, 1), (1, 1), (1, 2)])
def test_one_dimensional_shapes_do_not_share_storage(arch, d_model, dict_size, tmp_path):
    """Issue 8 #5: with D = 1 or F = 1 the transposed decoder is already contiguous; the
    encoder must still be a copy (editing it must not move the decoder) and save."""
    cls = ARCHITECTURES[arch]
    kw = dict(arch=arch, d_model=d_model, dict_size=dict_size, n_instances=2, b_dec_init="zeros")
    if cls.uses_k:
        kw["k"] = 1
    try:
        cfg = SAEConfig(**kw)
    except ValueError:
        pytest.skip(f"{arch} does not allow dict_size = {dict_size}")
    sae = build_sae(cfg, seed=0)
    dec = sae.W_dec.detach().clone()
    with torch.no_grad():
        sae.W_enc_IDF.add_(1.0)
    torch.testing.assert_close(sae.W_dec.detach(), dec, rtol=0, atol=0)
    run_steps(sae, [data(1, 8, d_model)])
    save_weights(tmp_path / "w.safetensors", sae)
    again = sae_from_spec(sae.spec())
    load_weights(tmp_path / "w.safetensors", again)
    for k, v in sae.state_dict().items():
        assert torch.equal(v, again.state_dict()[k]), k


# ---------------------------------------------------------------------- instances
@pytest.mark.parametrize("arch", ARCHS)
def test_instances_train_independently(arch):
    """Instance i of a 3-instance run equals that instance trained alone (subset), with the
    geometric-median init and resampling on."""
    extra = dict(k=(1, 2, 3)) if ARCHITECTURES[arch].uses_k else dict(l1_coefficient=(0.01, 0.1, 0.5))
    cfg = tiny(arch, n_instances=3, b_dec_init="geometric-median", dead_window=2, resample_every=3, **extra)
    init = build_sae(cfg, seed=7)
    tcfg = TrainConfig(steps=6, batch_size=32, lr=1e-2, quiet=True, eval_samples=64)
    together = build_sae(cfg, seed=7)
    train(together, SparseFeatures(10, 0.2, d_embed=6, seed=3), tcfg)
    for i in range(3):
        alone = init.subset([i])
        assert alone.config == cfg.subset([i])
        train(alone, SparseFeatures(10, 0.2, d_embed=6, seed=3), tcfg)
        mine = together.subset([i]).state_dict()
        for k, v in alone.state_dict().items():
            torch.testing.assert_close(v, mine[k], rtol=1e-4, atol=1e-5, msg=f"instance {i} {k}")
