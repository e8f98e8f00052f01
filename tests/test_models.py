"""Toy models: the loss against a float64 reference, hand gradients, validation, subsets."""
import math

import pytest
import torch
from hypothesis import given
from hypothesis import strategies as st

from toymodels.models import MODELS, TMSConfig, build_model, importance_vector


def _reference_loss(model, x):
    """E Σ_i I_i (t_i − x'_i)², written out from the paper in float64."""
    m = model.double()
    x = x.double()
    W, b = m.W.double(), m.b_IN.double()
    if model.kind == "computation":
        out = torch.relu(torch.einsum("inm,imb->ibn", m.W2_INM, torch.relu(torch.einsum("imn,ibn->imb", W, x))) + b[:, None])
        target = x.abs()
    else:
        h = torch.einsum("imn,ibn->ibm", W, x)
        if model.kind == "hidden-relu":
            h = torch.relu(h)
        z = torch.einsum("ibm,imn->ibn", h, W) + b[:, None]
        out = z if model.kind == "linear" else torch.relu(z)
        target = x
    imp = m.importance.double()[:, None, :]
    return (imp * (target - out) ** 2).mean(dim=(1, 2))


@pytest.mark.parametrize("kind", sorted(MODELS))
def test_loss_matches_float64_reference(kind):
    cfg = TMSConfig(7, 3, 4, kind=kind, importance_decay=0.8)
    model = build_model(cfg, seed=2)
    with torch.no_grad():
        model.b_IN.uniform_(-0.3, 0.3)
    x = torch.rand(4, 64, 7) * (torch.rand(4, 64, 7) < 0.4)
    if kind == "computation":
        x = 2 * x - 1
    got = model.double().loss(x.double())
    assert torch.allclose(got, _reference_loss(model, x), rtol=1e-12, atol=1e-14)



def assert_hand_step_matches_autograd(model, x, loss):
    """The gradients ``loss_and_grad`` left in ``.grad`` (and its ``loss``) equal autograd's
    through ``model.loss(x)``, and the hand path built no graph (float64 tolerances)."""
    hand = [p.grad.clone() for p in model.parameters()]
    assert all(h.grad_fn is None for h in hand), "the hand path must not build a graph"
    for p in model.parameters():
        p.grad = None
    ref = model.loss(x)
    ref.sum().backward()
    assert torch.allclose(loss, ref.detach(), rtol=1e-12, atol=1e-15)
    for h, p in zip(hand, model.parameters()):
        assert torch.allclose(h, p.grad, rtol=1e-10, atol=1e-13)


@given(n=st.integers(2, 9), m=st.integers(1, 9), n_inst=st.integers(1, 3), shared=st.booleans(), seed=st.integers(0, 99))
@pytest.mark.parametrize("kind", ["relu-output", "linear"])
def test_hand_gradients_equal_autograd(kind, n, m, n_inst, shared, seed):
    m = min(m, n)
    model = build_model(TMSConfig(n, m, n_inst, kind=kind, importance_decay=0.9), seed=seed).double()
    with torch.no_grad():
        model.b_IN.uniform_(-0.2, 0.2)
    g = torch.Generator().manual_seed(seed)
    x = torch.rand(1 if shared else n_inst, 16, n, generator=g, dtype=torch.float64)
    loss = model.loss_and_grad(x.clone())
    assert_hand_step_matches_autograd(model, x, loss)


def test_importance_weights_the_loss():
    assert torch.allclose(importance_vector(4, 0.5), torch.tensor([1, 0.5, 0.25, 0.125]))
    model = build_model(TMSConfig(3, 1, 2), importance=[[1.0, 0.0, 0.0], [0.0, 0.0, 2.0]])
    x = torch.zeros(2, 4, 3)
    x[:, :, 0] = 1.0  # only feature 0 is on; instance 1 does not care about it
    with torch.no_grad():
        model.W_IMN.zero_()
    loss = model.loss(x)
    assert loss[0].item() == pytest.approx(1 / 3) and loss[1].item() == 0.0


@pytest.mark.parametrize(
    "kw, message",
    [
        (dict(n_features=0), "n_features"),
        (dict(d_hidden=6, n_features=5), r"d_hidden must be in \[1, n_features = 5\]"),
        (dict(kind="mlp"), "kind"),
        (dict(importance_decay=0.0), "importance_decay"),
        (dict(importance_decay=float("nan")), "importance_decay"),
        (dict(n_instances=0), "n_instances"),
    ],
)
def test_config_validation(kw, message):
    with pytest.raises(ValueError, match=message):
        TMSConfig(**kw)


def test_importance_vector_is_per_feature():
    """A vector is read per feature even when instances = features (no silent misreading)."""
    vec = 0.9 ** torch.arange(4.0)
    model = build_model(TMSConfig(4, 2, 4), importance=vec)
    assert torch.equal(model.importance, vec.expand(4, 4))
    per_instance = build_model(TMSConfig(4, 2, 4), importance=[[1.0], [2.0], [3.0], [4.0]])
    assert torch.equal(per_instance.importance[:, 0], torch.tensor([1.0, 2.0, 3.0, 4.0]))
    with pytest.raises(ValueError, match="n_features = 4 entries"):
        build_model(TMSConfig(4, 2, 3), importance=[1.0, 2.0, 3.0])


def test_wider_hidden_layer_allowed_where_it_matters_not():
    assert TMSConfig(5, 8, kind="hidden-relu").d_hidden == 8
    assert TMSConfig(5, 8, kind="computation").d_hidden == 8


def test_subset_and_load_instances():
    model = build_model(TMSConfig(5, 2, 4), seed=0)
    sub = model.subset([3, 1])
    assert sub.n_instances == 2 and torch.equal(sub.W_IMN, model.W_IMN[[3, 1]])
    with torch.no_grad():
        sub.W_IMN.add_(1.0)
    model.load_instances([3, 1], sub)
    assert torch.equal(model.W_IMN[[3, 1]], sub.W_IMN)


def test_same_seed_same_init():
    a, b = build_model(TMSConfig(10, 3, 2), seed=5), build_model(TMSConfig(10, 3, 2), seed=5)
    assert torch.equal(a.W_IMN, b.W_IMN)
    assert not torch.equal(a.W_IMN, build_model(TMSConfig(10, 3, 2), seed=6).W_IMN)


# ---------------------------------------------------------------------- input validation (issue 8 #10)
@pytest.mark.parametrize("kw, match", [
    (dict(n_features=5.0), "n_features must be an integer"),
    (dict(d_hidden=2.0), "d_hidden must be an integer"),
    (dict(n_instances=True), "n_instances must be an integer"),
    (dict(importance_decay="0.7"), "importance_decay must be a real number"),
])
def test_config_rejects_floats_and_text(kw, match):
    with pytest.raises(ValueError, match=match):
        TMSConfig(**kw)


@pytest.mark.parametrize("seed", [2**64, -1, 1.0, "3"])
def test_bad_seeds_are_clear_errors(seed):
    with pytest.raises(ValueError, match=r"seed must be an integer in \[0, 18446744073709551615\]"):
        build_model(TMSConfig(), seed=seed)


def test_largest_seed_is_accepted():
    assert build_model(TMSConfig(), seed=2**64 - 1).seed == 2**64 - 1


@pytest.mark.parametrize("kind", sorted(MODELS))
@pytest.mark.parametrize("x, match", [
    (torch.rand(3, 8, 4), r"n_features = 5"),  # wrong N
    (torch.rand(2, 8, 5), r"n_instances = 3"),  # wrong I
    (torch.rand(8, 5), r"shaped \(1 or n_instances"),  # no instance axis
    (torch.rand(3, 8, 5, dtype=torch.float64), "model's dtype torch.float32"),
    (torch.ones(3, 8, 5, dtype=torch.int64), "model's dtype torch.float32"),
    (torch.rand(3, 0, 5), "empty batch"),
    ([[0.0] * 5], "torch.Tensor"),
])
def test_models_reject_bad_inputs(kind, x, match):
    model = build_model(TMSConfig(5, 2, 3, kind=kind))
    for call in (model.loss, model.loss_and_grad, model.hidden, model):
        with pytest.raises(ValueError, match=match):
            call(x)


def test_a_float64_model_takes_float64_inputs():
    model = build_model(TMSConfig(5, 2, 2)).double()
    assert model.loss(torch.rand(2, 4, 5, dtype=torch.float64)).dtype == torch.float64


def test_check_compatible_names_the_mismatch():
    from toymodels.data import SparseFeatures, check_compatible

    model = build_model(TMSConfig(5, 2, 3))
    check_compatible(model, SparseFeatures(5, 0.1, 3))
    check_compatible(model, SparseFeatures(5, 0.1, 1))
    with pytest.raises(ValueError, match="width 6.*n_features = 5"):
        check_compatible(model, SparseFeatures(6, 0.1, 3))
    with pytest.raises(ValueError, match="2 instances but the model has 3"):
        check_compatible(model, SparseFeatures(5, 0.1, 2))


def test_model_from_spec_rejects_unknown_keys():
    from toymodels.models import model_from_spec

    spec = build_model(TMSConfig(4, 2)).spec()
    assert model_from_spec(spec).config == TMSConfig(4, 2)
    with pytest.raises(ValueError, match="unknown toy-model setting"):
        model_from_spec({**spec, "n_feature": 3})


@given(n=st.integers(2, 9), m=st.integers(1, 9), n_inst=st.integers(1, 3), shared=st.booleans(), seed=st.integers(0, 99))
@pytest.mark.parametrize("kind", ["relu-output", "linear"])
def test_per_instance_path_equals_batched_path(kind, n, m, n_inst, shared, seed):
    """The CPU per-instance path (large batches) and the batched feature-major path compute
    the same loss and gradients (float64, to rounding)."""
    m = min(m, n)
    model = build_model(TMSConfig(n, m, n_inst, kind=kind, importance_decay=0.9), seed=seed).double()
    with torch.no_grad():
        model.b_IN.uniform_(-0.2, 0.2)
    g = torch.Generator().manual_seed(seed)
    x = torch.rand(1 if shared else n_inst, 16, n, generator=g, dtype=torch.float64)
    x = x * (torch.rand(x.shape, generator=g, dtype=torch.float64) < 0.5)
    batched = model.loss_and_grad(x)  # 16·n entries per instance: the batched path
    ref = [p.grad.clone() for p in model.parameters()]
    per = model._loss_and_grad_per_instance(x)
    assert torch.allclose(per, batched, rtol=1e-12, atol=1e-15)
    for r, p in zip(ref, model.parameters()):
        assert torch.allclose(p.grad, r, rtol=1e-10, atol=1e-13)


@pytest.mark.parametrize("kind", ["relu-output", "linear"])
@pytest.mark.parametrize("shared", [False, True])
def test_large_batches_take_the_per_instance_path_with_autograd_gradients(kind, shared):
    from toymodels.data import SparseFeatures

    n, bsz = 40, 512  # B·N = 20480 >= chunk_elements: the per-instance CPU path
    assert bsz * n >= MODELS[kind].chunk_elements
    model = build_model(TMSConfig(n, 6, 3, kind=kind, importance_decay=0.95), seed=1).double()
    with torch.no_grad():
        model.b_IN.uniform_(-0.2, 0.2)
    x = SparseFeatures(n, [0.9, 0.3, 0.05], 3, seed=2).sample(bsz).double()
    x = x[:1] if shared else x
    loss = model.loss_and_grad(x)
    assert model._ws[0][0] == bsz, "the per-instance path ran (its work buffers exist)"
    assert_hand_step_matches_autograd(model, x, loss)


def test_per_instance_path_is_bit_reproducible_and_instance_local():
    """Reused work buffers carry nothing between calls: the same batch gives the same bits
    again, and an instance's loss and gradients are bit-identical when it is trained alone
    (its result depends on its own weights and data only)."""
    from toymodels.data import SparseFeatures

    n, bsz = 64, 300
    model = build_model(TMSConfig(n, 5, 4), seed=3)
    x = SparseFeatures(n, [1.0, 0.3, 0.05, 0.02], 4, seed=5).sample(bsz)
    first = model.loss_and_grad(x)
    grads = [p.grad.clone() for p in model.parameters()]
    model.loss_and_grad(SparseFeatures(n, 0.5, 4, seed=9).sample(bsz))  # other data through the buffers
    again = model.loss_and_grad(x)
    assert torch.equal(first, again)
    assert all(torch.equal(g, p.grad) for g, p in zip(grads, model.parameters()))
    alone = model.subset([2])
    loss2 = alone.loss_and_grad(x[2:3])
    assert torch.equal(loss2, first[2:3])
    assert all(torch.equal(p.grad[0], g[2]) for g, p in zip(grads, alone.parameters()))


def test_training_on_the_fast_path_is_bit_reproducible():
    from toymodels.data import SparseFeatures
    from toymodels.train import TrainConfig, train

    def run():
        model = build_model(TMSConfig(100, 8, 3), seed=4)
        source = SparseFeatures(100, torch.logspace(0, math.log10(0.02), 3), 3, seed=6)
        train(model, source, TrainConfig(steps=4, batch_size=200, lr=1e-2, quiet=True, eval_samples=64))
        return [p.detach().clone() for p in model.parameters()]

    assert all(torch.equal(a, b) for a, b in zip(run(), run()))


@pytest.mark.parametrize("kind", ["relu-output", "linear"])
def test_a_slice_of_a_prefetch_block_gives_the_bits_of_a_contiguous_batch(kind):
    """The trainer hands the model strided slices of a multi-step data block; the batched
    path copies x feature-major once, so the result is that of a contiguous batch, bit for bit."""
    from toymodels.data import SparseFeatures

    model = build_model(TMSConfig(5, 2, 8, kind=kind), seed=1)
    block = SparseFeatures(5, 0.3, 8, seed=2).sample(4 * 256)
    x = block[:, 256:512]
    assert not x.is_contiguous()
    loss = model.loss_and_grad(x)
    grads = [p.grad.clone() for p in model.parameters()]
    assert torch.equal(model.loss_and_grad(x.contiguous()), loss)
    assert all(torch.equal(g, p.grad) for g, p in zip(grads, model.parameters()))


def test_several_threads_keep_the_batched_path():
    """With more than one torch thread the per-instance path (eleven small kernels per
    instance, each a parallel region) is not taken; both paths give the same loss."""
    from toymodels.data import SparseFeatures

    x = SparseFeatures(40, 0.3, 3, seed=2).sample(512)  # B·N >= chunk_elements
    one = build_model(TMSConfig(40, 6, 3), seed=1)
    loss1 = one.loss_and_grad(x)
    assert hasattr(one, "_ws")
    old = torch.get_num_threads()
    torch.set_num_threads(2)
    try:
        two = build_model(TMSConfig(40, 6, 3), seed=1)
        loss2 = two.loss_and_grad(x)
    finally:
        torch.set_num_threads(old)
    assert not hasattr(two, "_ws"), "the batched path ran"
    assert torch.allclose(loss1, loss2, rtol=1e-5, atol=1e-8)
    for p, q in zip(one.parameters(), two.parameters()):
        assert torch.allclose(p.grad, q.grad, rtol=1e-4, atol=1e-7)


@given(n=st.integers(2, 40), m=st.integers(1, 8), n_inst=st.integers(1, 4), shared=st.booleans(),
       bsz=st.integers(1, 700), seed=st.integers(0, 99))
@pytest.mark.parametrize("kind", ["relu-output", "linear"])
def test_evaluation_loss_in_pieces_equals_the_batched_expression(kind, n, m, n_inst, shared, bsz, seed):
    """Without autograd a large CPU batch is evaluated instance by instance in pieces of rows
    (here pieces of a few rows, so most draws cut the batch unevenly): the same loss as the
    batched expression, to float rounding."""
    from toymodels.models import ToyModel

    m = min(m, n)
    model = build_model(TMSConfig(n, m, n_inst, kind=kind, importance_decay=0.9), seed=seed)
    model.eval_rows = 7 * n  # (this model only) pieces of 7 rows: most batches take the piecewise path
    with torch.no_grad():
        model.b_IN.uniform_(-0.2, 0.2)
    g = torch.Generator().manual_seed(seed)
    x = torch.rand(1 if shared else n_inst, bsz, n, generator=g)
    x = x * (torch.rand(x.shape, generator=g) < 0.5)
    with torch.no_grad():
        pieces = model.loss(x)
        batched = ToyModel.loss(model, x)
    assert pieces.shape == (n_inst,) and pieces.dtype == torch.float32
    torch.testing.assert_close(pieces, batched, rtol=2e-6, atol=1e-9)


def _no_grad_losses_at_threads(model, x, counts):
    """{t: model.loss(x) under no_grad with t torch threads} (the thread count restored)."""
    out = {}
    old = torch.get_num_threads()
    try:
        for t in counts:
            torch.set_num_threads(t)
            with torch.no_grad():
                out[t] = model.loss(x)
    finally:
        torch.set_num_threads(old)
    return out


def test_evaluation_takes_the_piecewise_path_and_its_bits_do_not_depend_on_threads(monkeypatch):
    """Large evaluation batches (B·N > eval_rows, no autograd) go through ``_loss_per_instance``;
    each instance is evaluated whole on one thread, so 1 and 3 torch threads (3 lanes) give the
    same bits. With autograd, or a batch within one piece, the batched expression runs."""
    from toymodels.data import SparseFeatures
    from toymodels.models import ReLUOutput

    model = build_model(TMSConfig(50, 6, 5), seed=1)
    model.eval_rows = 50 * 64  # (this model only) pieces of 64 rows
    x = SparseFeatures(50, [1.0, 0.5, 0.2, 0.1, 0.05], 5, seed=2).sample(700)
    calls = []
    real = ReLUOutput._loss_per_instance
    monkeypatch.setattr(ReLUOutput, "_loss_per_instance", lambda self, x: calls.append(1) or real(self, x))
    out = _no_grad_losses_at_threads(model, x, (1, 3))
    assert calls == [1, 1]
    assert torch.equal(out[1], out[3])
    with_grad = model.loss(x)
    assert with_grad.requires_grad and len(calls) == 2
    torch.testing.assert_close(with_grad.detach(), out[1], rtol=2e-6, atol=0)
    with torch.no_grad():
        model.loss(x[:, :64])  # one piece: batched
    assert len(calls) == 2


def test_evaluating_an_input_that_requires_grad_under_no_grad_works_with_several_threads():
    """Under ``no_grad`` an input that requires grad is evaluated like any other: the lanes run
    in the caller's autograd mode (on their own default they raised, out= products refusing
    autograd), and 1 and 2 threads give the same bits."""
    model = build_model(TMSConfig(50, 6, 3), seed=1)
    model.eval_rows = 50 * 64  # (this model only) pieces of 64 rows
    x = torch.rand(3, 300, 50, generator=torch.Generator().manual_seed(0)).requires_grad_()
    out = _no_grad_losses_at_threads(model, x, (1, 2))
    assert torch.equal(out[1], out[2]) and not out[2].requires_grad
