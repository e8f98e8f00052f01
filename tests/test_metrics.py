"""Every metric against a hand computation on tiny arrays (plus invariances)."""
import itertools
import math

import pytest
import torch
from hypothesis import given
from hypothesis import strategies as st

from toymodels.measures import metrics as M
from toymodels.models import TMSConfig, build_model

X = torch.tensor([[1.0, 2.0], [3.0, 4.0]])
X_HAT = torch.tensor([[1.0, 1.0], [2.0, 4.0]])


# ---------------------------------------------------------------------- existing metrics
def test_loss_recovered_by_hand():
    assert M.loss_recovered(1.0, 1.5, 2.0) == pytest.approx(0.5)
    assert M.loss_recovered(1.0, 1.0, 3.0) == pytest.approx(1.0)


# ---------------------------------------------------------------------- reconstruction
def test_l0_by_hand():
    codes = torch.tensor([[0.0, 1.0, 2.0], [0.0, 0.0, 3.0]])  # 2 and 1 active
    assert M.l0(codes).item() == pytest.approx(1.5)
    batched = torch.stack([codes, torch.zeros_like(codes)])
    assert M.l0(batched).tolist() == pytest.approx([1.5, 0.0])


def test_mse_by_hand():
    # differences (0, 1) and (1, 0): squares sum to 2 over 4 entries
    assert M.mse(X, X_HAT).item() == pytest.approx(0.5)


def test_fvu_is_about_the_mean_not_zero():
    # mean of X = (2, 3); Σ||x − mean||² = (1 + 1) + (1 + 1) = 4; Σ||x − x̂||² = 2
    assert M.fvu(X, X_HAT).item() == pytest.approx(0.5)
    about_zero = 2.0 / (1 + 4 + 9 + 16)
    assert M.fvu(X, X_HAT).item() != pytest.approx(about_zero)
    # adding a constant to x and x̂ changes nothing (variance about the mean)
    assert M.fvu(X + 10, X_HAT + 10).item() == pytest.approx(0.5)
    # predicting the mean everywhere explains nothing: FVU = 1
    assert M.fvu(X, X.mean(0, keepdim=True).expand_as(X)).item() == pytest.approx(1.0)


def test_fvu_instance_axis_and_broadcast():
    x = torch.stack([X, 2 * X])  # (2, B, D)
    x_hat = torch.stack([X_HAT, 2 * X])
    assert M.fvu(x, x_hat).tolist() == pytest.approx([0.5, 0.0])
    # shared data (1, B, D) against two reconstructions
    assert M.fvu(X[None], torch.stack([X_HAT, X])).tolist() == pytest.approx([0.5, 0.0])


def test_relative_reconstruction_bias_and_norm_ratio_by_hand():
    x = torch.tensor([[1.0, 0.0], [0.0, 2.0]])
    x_hat = torch.tensor([[1.0, 1.0], [0.0, 2.0]])
    # E||x̂||² = (2 + 4)/2 = 3; E[x·x̂] = (1 + 4)/2 = 2.5 → γ = 1.2
    assert M.relative_reconstruction_bias(x, x_hat).item() == pytest.approx(1.2)
    # E[||x̂||/||x||] = (√2/1 + 2/2)/2
    assert M.norm_ratio(x, x_hat).item() == pytest.approx((math.sqrt(2) + 1) / 2)
    half = 0.5 * x
    assert M.relative_reconstruction_bias(x, half).item() == pytest.approx(0.5)  # shrinkage
    # a zero input row is skipped by norm_ratio
    x0 = torch.cat([x, torch.zeros(1, 2)])
    xh0 = torch.cat([x_hat, torch.tensor([[1.0, 0.0]])])
    assert M.norm_ratio(x0, xh0).item() == pytest.approx((math.sqrt(2) + 1) / 2)


def test_firing_dead_dense_by_hand():
    codes = torch.tensor([[1.0, 0, 0], [1, 0, 2], [0, 0, 3], [1, 0, 0]])
    freq = M.firing_frequency(codes)
    assert freq.tolist() == pytest.approx([0.75, 0.0, 0.5])
    assert M.dead_fraction(freq).item() == pytest.approx(1 / 3)
    assert M.dense_fraction(freq, 0.6).item() == pytest.approx(1 / 3)
    assert M.dense_fraction(freq, 0.4).item() == pytest.approx(2 / 3)


def test_frequency_histogram_by_hand():
    freq = torch.tensor([0.0, 2e-3, 0.5, 1.0, 1e-7])
    h = M.frequency_histogram(freq, bins=5, lowest=1e-5)
    assert h["edges"].tolist() == pytest.approx([-5, -4, -3, -2, -1, 0])
    # 2e-3 → log10 −2.7 → bin [−3, −2); 0.5 → [−1, 0]; 1.0 → last bin; 1e-7 → clamped to the first
    assert h["counts"].tolist() == [1, 0, 1, 0, 2]
    assert int(h["dead"]) == 1


# ---------------------------------------------------------------------- dictionaries
def test_mmcs_by_hand():
    learned = torch.eye(2)  # columns e1, e2
    truth = torch.tensor([[3.0, 5.0], [3.0, 0.0]])  # columns (1,1)·3 and (1,0)·5
    # t1: max cos = 1/√2; t2: max cos = 1
    assert M.mmcs(learned, truth).item() == pytest.approx((1 / math.sqrt(2) + 1) / 2)


def test_mmcs_zero_columns_give_zero_not_nan():
    learned = torch.tensor([[1.0, 0.0], [0.0, 0.0]])  # e1 and a zero column
    truth = torch.tensor([[0.0, 0.0], [1.0, 0.0]])  # e2 and a zero column
    out = M.mmcs(learned, truth)
    assert torch.isfinite(out) and out.item() == pytest.approx(0.0)


@given(
    st.integers(0, 10_000),
    st.lists(st.floats(0.01, 100.0), min_size=4, max_size=4),
    st.lists(st.floats(0.01, 100.0), min_size=3, max_size=3),
)
def test_mmcs_scale_invariance(seed, learned_scales, truth_scales):
    g = torch.Generator().manual_seed(seed)
    learned, truth = torch.randn(5, 4, generator=g, dtype=torch.float64), torch.randn(5, 3, generator=g, dtype=torch.float64)
    a = M.mmcs(learned, truth)
    b = M.mmcs(learned * torch.tensor(learned_scales, dtype=torch.float64), truth * torch.tensor(truth_scales, dtype=torch.float64))
    assert a.item() == pytest.approx(b.item(), abs=1e-12)


def test_mmcs_batched_over_instances():
    learned = torch.stack([torch.eye(2), -torch.eye(2)])
    truth = torch.eye(2)[None]
    assert M.mmcs(learned, truth).tolist() == pytest.approx([1.0, 0.0])


def test_mcc_by_hand_one_to_one_differs_from_mmcs():
    learned = torch.eye(2)
    truth = torch.tensor([[0.8, 1.0], [0.6, 0.0]])  # t1 = (0.8, 0.6), t2 = e1
    # cos (learned × truth) = [[0.8, 1], [0.6, 0]]: matchings sum to 0.8 or 1.6 → MCC = 1.6/2
    assert M.mcc(learned, truth).item() == pytest.approx(0.8)
    assert M.mmcs(learned, truth).item() == pytest.approx(0.9)  # e1 counted twice


def test_mcc_matches_brute_force_and_counts_unmatched_as_zero():
    g = torch.Generator().manual_seed(0)
    learned, truth = torch.randn(4, 3, generator=g, dtype=torch.float64), torch.randn(4, 3, generator=g, dtype=torch.float64)
    cos = M.cosine_matrix(learned, truth)
    best = max(sum(cos[p[j], j].item() for j in range(3)) for p in itertools.permutations(range(3)))
    assert M.mcc(learned, truth).item() == pytest.approx(best / 3)
    # one learned direction, two true ones: the second true feature is unmatched → 0
    assert M.mcc(torch.tensor([[1.0], [0.0]]), torch.eye(2)).item() == pytest.approx(0.5)


@given(st.integers(0, 10_000), st.permutations(list(range(5))), st.permutations(list(range(4))))
def test_mcc_permutation_invariance(seed, perm_learned, perm_truth):
    g = torch.Generator().manual_seed(seed)
    learned, truth = torch.randn(6, 5, generator=g, dtype=torch.float64), torch.randn(6, 4, generator=g, dtype=torch.float64)
    a = M.mcc(learned, truth)
    b = M.mcc(learned[:, perm_learned], truth[:, perm_truth])
    assert a.item() == pytest.approx(b.item(), abs=1e-12)


def test_mmcs_between_is_symmetric_by_hand():
    a = torch.eye(2)
    b = torch.tensor([[1.0], [1.0]])
    # mmcs(a, b) = 1/√2 (b's one column vs e1, e2); mmcs(b, a) = 1/√2 for both columns
    assert M.mmcs_between(a, b).item() == pytest.approx(1 / math.sqrt(2))
    assert M.mmcs_between(a, b).item() == pytest.approx(M.mmcs_between(b, a).item())


def test_knn_cosine_by_hand():
    d = torch.tensor([[1.0, 0.6, 0.0], [0.0, 0.8, 1.0]])  # a, b, c: cos ab .6, ac 0, bc .8
    assert M.knn_cosine(d, 1).tolist() == pytest.approx([0.6, 0.8, 0.8])
    assert M.knn_cosine(d, 2).tolist() == pytest.approx([0.0, 0.6, 0.0])
    signed = torch.tensor([[1.0, -1.0, 0.0], [0.0, 0.0, 1.0]])
    assert M.knn_cosine(signed, 1).tolist() == pytest.approx([1.0, 1.0, 0.0])
    assert M.knn_cosine(signed, 1, absolute=False).tolist() == pytest.approx([0.0, 0.0, 0.0])
    with pytest.raises(ValueError, match="k must be"):
        M.knn_cosine(d, 3)


def test_prune_by_frequency_by_hand():
    freq = torch.tensor([0.5, 0.1, 0.3, 0.05])  # L0 = 0.95
    # remove 0.5 (0.45 left), then 0.3 (0.15 <= 0.2): keep the 0.1 and 0.05 latents
    assert M.prune_by_frequency(freq, 0.2).tolist() == [False, True, False, True]
    assert M.prune_by_frequency(freq, 1.0).all()
    assert M.prune_by_frequency(freq, 0.45).tolist() == [False, True, True, True]
    batched = M.prune_by_frequency(torch.stack([freq, freq.flip(0)]), 0.2)
    assert batched.tolist() == [[False, True, False, True], [True, False, True, False]]


# ---------------------------------------------------------------------- splicing
@pytest.mark.parametrize("kind", ["relu-output", "linear", "hidden-relu", "computation"])
def test_spliced_loss_identity_and_zero(kind):
    model = build_model(TMSConfig(n_features=6, d_hidden=3, kind=kind, importance_decay=0.8), seed=1)
    g = torch.Generator().manual_seed(0)
    x = torch.rand(1, 64, 6, generator=g) * (torch.rand(1, 64, 6, generator=g) < 0.3)
    if kind == "computation":
        x = torch.where(torch.rand(x.shape, generator=g) < 0.5, -x, x)
    ident = M.spliced_loss(model, x, lambda h: h)
    assert ident["clean"].item() == pytest.approx(model.loss(x).item(), rel=1e-6)
    assert ident["spliced"].item() == pytest.approx(ident["clean"].item())
    assert ident["loss_recovered"].item() == pytest.approx(1.0)
    zero = M.spliced_loss(model, x, torch.zeros_like)
    assert zero["spliced"].item() == pytest.approx(zero["zero_ablated"].item())
    assert zero["loss_recovered"].item() == pytest.approx(0.0, abs=1e-6)


def test_spliced_loss_by_hand():
    model = build_model(TMSConfig(n_features=2, d_hidden=1, kind="linear"))
    with torch.no_grad():
        model.W_IMN.copy_(torch.tensor([[[1.0, 0.0]]]))
        model.b_IN.zero_()
    x = torch.tensor([[[1.0, 2.0]]])
    # h = 1; y = Wᵀh = (1, 0); loss = ((1−1)² + (2−0)²)/2 = 2; with h → 0.5: ((0.5)² + 4)/2
    out = M.spliced_loss(model, x, lambda h: 0.5 * h)
    assert out["clean"].item() == pytest.approx(2.0)
    assert out["spliced"].item() == pytest.approx((0.25 + 4) / 2)
    assert out["zero_ablated"].item() == pytest.approx(2.5)
    assert out["loss_recovered"].item() == pytest.approx(1 - 0.125 / 0.5)


# ---------------------------------------------------------------------- nonsense in, no number out (issue 8 #6)
NAN = float("nan")


def test_metrics_of_integer_tensors_are_computed_in_floating_point():
    x = torch.tensor([[1, 2], [3, 4]])
    x_hat = torch.tensor([[0, 2], [3, 1]])  # errors (1, 0), (0, 3): Σ = 10; Σ||x − x̄||² = 4
    assert M.fvu(x, x_hat).item() == 2.5 and M.fvu(x, x_hat).dtype == torch.float64
    assert M.mse(x, x_hat).item() == 2.5  # (1 + 0 + 0 + 9) / 4
    # γ = E||x̂||² / E[x·x̂] = ((4 + 10) / 2) / ((4 + 13) / 2)
    assert M.relative_reconstruction_bias(x, x_hat).item() == pytest.approx(14 / 17)
    assert M.norm_ratio(torch.tensor([[3, 4]]), torch.tensor([[0, 1]])).item() == pytest.approx(0.2)
    # zero variance and an error: inf, not −2^63 (inf cast to int64)
    assert M.fvu(torch.tensor([[1, 1]]), torch.tensor([[1, 2]])).item() == math.inf


def test_fvu_by_hand_the_issues_value():
    x = torch.tensor([[0, 0], [0, 2], [2, 0], [2, 2]])  # mean (1, 1): Σ||x − x̄||² = 8
    x_hat = torch.tensor([[3, 3], [0, 4], [2, 0], [4, 4]])  # errors 18 + 4 + 0 + 8 = 30 → 30 / 8
    assert M.fvu(x, x_hat).item() == 3.75  # was 3 (integer division of the result)


@pytest.mark.parametrize("where", ["x", "x_hat"])
def test_nan_input_gives_nan_for_that_instance(where):
    x, x_hat = torch.stack([X, X]), torch.stack([X_HAT, X_HAT])
    target = x if where == "x" else x_hat
    target[1, 0, 0] = NAN
    for fn in (M.fvu, M.mse, M.relative_reconstruction_bias, M.norm_ratio):
        out = fn(x, x_hat)
        assert not out[0].isnan() and out[1].isnan(), fn.__name__
    assert M.fvu(torch.full((2, 2), NAN), torch.zeros(2, 2)).isnan()  # was 0.0


@pytest.mark.parametrize("fn", [M.fvu, M.mse, M.relative_reconstruction_bias, M.norm_ratio])
def test_empty_or_mismatched_inputs_raise(fn):
    with pytest.raises(ValueError, match="empty"):
        fn(torch.zeros(0, 3), torch.zeros(0, 3))
    with pytest.raises(ValueError, match="empty"):
        fn(torch.zeros(2, 0), torch.zeros(2, 0))
    with pytest.raises(ValueError, match="leading"):
        fn(torch.zeros(3, 4, 2), torch.zeros(2, 4, 2))  # wrong I
    with pytest.raises(ValueError, match="equal batch and dim"):
        fn(torch.zeros(4, 2), torch.zeros(4, 3))


def test_codes_and_frequencies_with_nan_or_no_samples():
    codes = torch.tensor([[[1.0, 0.0], [0.0, 0.0]], [[1.0, NAN], [0.0, 2.0]]])  # instance 1 has a NaN code
    assert M.l0(codes)[0].item() == 0.5 and M.l0(codes)[1].isnan()
    freq = M.firing_frequency(codes)
    assert freq[0].tolist() == [0.5, 0.0] and freq[1, 0].item() == 0.5 and freq[1, 1].isnan()
    assert M.dead_fraction(freq)[0].item() == 0.5 and M.dead_fraction(freq)[1].isnan()
    assert M.dense_fraction(freq)[0].item() == 0.5 and M.dense_fraction(freq)[1].isnan()
    for fn in (M.l0, M.firing_frequency):
        with pytest.raises(ValueError, match="empty batch"):
            fn(torch.zeros(2, 0, 3))
    for bad in (NAN, -0.1, 1.5):
        with pytest.raises(ValueError, match=r"\[0, 1\]"):
            M.frequency_histogram(torch.tensor([0.5, bad]))  # a NaN frequency was counted as dead
        with pytest.raises(ValueError, match=r"\[0, 1\]"):
            M.prune_by_frequency(torch.tensor([0.5, bad]), 0.1)


def test_dictionary_metrics_with_nan_columns():
    truth = torch.eye(3)
    broken = torch.full((3, 3), NAN)
    assert M.mmcs(broken, truth).isnan()  # was 0.0
    one_nan = torch.eye(3).clone()
    one_nan[:, 2] = NAN  # was silently ignored: mmcs 2/3 from the other two columns
    assert M.mmcs(one_nan, truth).isnan() and M.mmcs(truth, one_nan).isnan()
    assert M.mcc(one_nan, truth).isnan() and M.mcc(truth, one_nan).isnan()
    inf_col = torch.eye(3).clone()
    inf_col[0, 1] = math.inf
    assert M.mmcs(inf_col, truth).isnan()
    assert M.knn_cosine(one_nan, 1).isnan().all()
    assert M.cosine_matrix(one_nan, truth)[2].isnan().all() and not M.cosine_matrix(one_nan, truth)[:2].isnan().any()
    # instances stay separate: a NaN in instance 1 leaves instance 0's score
    batched = torch.stack([torch.eye(3), one_nan])
    out = M.mmcs(batched, truth[None])
    assert out[0].item() == pytest.approx(1.0) and out[1].isnan()
    with pytest.raises(ValueError, match="at least one column"):
        M.mmcs(torch.zeros(3, 0), truth)


def test_dictionary_metrics_accept_integer_directions():
    learned = torch.tensor([[1, 0], [0, 1]])
    truth = torch.tensor([[3, 5], [3, 0]])
    assert M.mmcs(learned, truth).item() == pytest.approx((1 / math.sqrt(2) + 1) / 2)
    assert M.knn_cosine(torch.tensor([[1, 0, 1], [0, 1, 1]]), 1).tolist() == pytest.approx([1 / math.sqrt(2)] * 2 + [1 / math.sqrt(2)])


def test_chinchilla_helpers_refuse_non_positive_sizes():
    with pytest.raises(ValueError, match="compute"):
        M.chinchilla_optimal_loss(-1e20)  # was a complex number
    with pytest.raises(ValueError, match="n_params"):
        M.chinchilla_loss(0, 1e9)
    with pytest.raises(ValueError, match="n_tokens"):
        M.chinchilla_loss(1e9, NAN)
    assert M.chinchilla_loss(1e9, 1e10) == pytest.approx(1.69 + 406.4 / 1e9**0.34 + 410.7 / 1e10**0.28)
