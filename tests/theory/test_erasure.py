"""LEACE, linear-accuracy search and the equal-means counterexample (theory/erasure.py)."""
from fractions import Fraction
from itertools import product

import numpy as np
import pytest
from hypothesis import assume, given
from hypothesis import strategies as st
from hypothesis.extra import numpy as hnp
from scipy.linalg import sqrtm
from scipy.optimize import linprog

from theory.erasure import (
    best_linear_accuracy,
    best_linear_classifier,
    best_threshold_1d,
    class_means,
    data_scale,
    equal_means_example,
    equal_means_family,
    fit_logistic,
    label_cross_covariance,
    leace_erase,
    leace_fit,
    random_erasure_dataset,
    threshold_accuracy,
)
import theory.erasure.claims as E
from theory.registry import CLAIMS, Context, run_claim

KINDS = ("none", "collinear", "wide", "duplicates", "constant", "scales", "weighted")
WELL_CONDITIONED = tuple(k for k in KINDS if k != "scales")


def max_cov(X, z, w=None):
    """max |Cov(X, onehot z)| relative to the data's scale."""
    return float(np.abs(label_cross_covariance(X, z, w)).max())


# ---------------------------------------------------------------------------------------------
# LEACE: the guarantee over random datasets
# ---------------------------------------------------------------------------------------------


@given(seed=st.integers(0, 2**32 - 1), kind=st.sampled_from(KINDS))
def test_leace_equalises_class_means(seed, kind):
    X, z, w = random_erasure_dataset(np.random.default_rng(seed), kind)
    scale = max(1.0, data_scale(X, w))
    assert max_cov(X, z, w) > 1e-6  # the class means really differed
    Xe = leace_erase(X, z, w)
    assert Xe.shape == X.shape and Xe.dtype == np.float64
    assert max_cov(Xe, z, w) <= 1e-10 * scale
    means = np.array(list(class_means(Xe, z, w).values()))
    wn = np.ones(len(z)) if w is None else w
    p_min = min(wn[z == c].sum() for c in np.unique(z)) / wn.sum()
    assert np.abs(means - means[0]).max() <= 1e-10 * scale / p_min


@given(seed=st.integers(0, 2**32 - 1), kind=st.sampled_from(WELL_CONDITIONED))
def test_erasing_twice_changes_nothing(seed, kind):
    X, z, w = random_erasure_dataset(np.random.default_rng(seed), kind)
    eraser = leace_fit(X, z, w)
    Xe = eraser(X)
    assert np.abs(leace_erase(Xe, z, w) - Xe).max() <= 1e-8 * max(1.0, data_scale(X, w))
    # the map is an oblique projection of rank <= classes − 1
    M = eraser.matrix
    assert np.allclose(M @ M, M, atol=1e-8 * max(1.0, np.abs(M).max()))
    assert eraser.rank <= len(np.unique(z)) - 1


@given(
    X=hnp.arrays(np.int64, st.tuples(st.integers(4, 16), st.integers(1, 5)), elements=st.integers(-3, 3)),
    data=st.data(),
)
def test_leace_on_small_integer_data(X, data):
    """Integer entries in a small range: many ties, repeated points and exactly collinear columns."""
    n = X.shape[0]
    k = data.draw(st.integers(2, 3))
    z = np.array(data.draw(st.lists(st.integers(0, k - 1), min_size=n, max_size=n)))
    z[:2] = [0, 1]  # at least two classes
    Xe = leace_erase(X, z)
    assert max_cov(Xe, z) <= 1e-10 * max(1.0, data_scale(X))
    assert np.abs(leace_erase(Xe, z) - Xe).max() <= 1e-8 * max(1.0, data_scale(X))


@given(seed=st.integers(0, 2**32 - 1), kind=st.sampled_from(WELL_CONDITIONED))
def test_no_affine_predictor_beats_constant_after_erasure(seed, kind):
    X, z, w = random_erasure_dataset(np.random.default_rng(seed), kind)
    Xe = leace_erase(X, z, w)
    fit = fit_logistic(Xe, z, w, seed=seed % 1000, ref_scale=data_scale(X, w))
    assert fit.converged
    assert fit.logit_std <= 1e-8
    assert fit.loss >= fit.constant_loss - 1e-12
    assert np.abs(Xe @ fit.W - (Xe @ fit.W).mean(0)).max() <= 1e-7  # every logit is constant on the data


def test_logistic_fit_finds_signal_before_erasure():
    """Non-vacuous: on overlapping but shifted classes the fit is far from constant."""
    rng = np.random.default_rng(1)
    z = np.repeat([0, 1], 100)
    X = rng.standard_normal((200, 3)) + np.outer(z, [1.0, 0.0, 0.0])
    fit = fit_logistic(X, z)
    assert fit.converged and fit.logit_std > 0.3 and fit.loss < fit.constant_loss - 0.05
    assert fit.W[0, 1] > 0.5  # class 1 sits at larger x₁
    after = fit_logistic(leace_erase(X, z), z, ref_scale=data_scale(X))
    assert after.logit_std <= 1e-8 and abs(after.loss - after.constant_loss) <= 1e-12


# ---------------------------------------------------------------------------------------------
# LEACE: hand computations and an independent implementation
# ---------------------------------------------------------------------------------------------


def test_one_dimensional_erasure_collapses_to_the_mean():
    X = np.array([[0.0], [1.0], [2.0], [3.0]])
    z = np.array([0, 0, 1, 1])
    np.testing.assert_allclose(leace_erase(X, z), np.full((4, 1), 1.5), atol=1e-14)


def test_uncorrelated_nuisance_feature_is_kept():
    # the label lives in x₂ only, and x₁ is uncorrelated with it: x₂ → its mean, x₁ untouched
    X = np.array([[0.0, 0.0], [2.0, 0.0], [0.0, 1.0], [2.0, 1.0]])
    z = np.array([0, 0, 1, 1])
    np.testing.assert_allclose(leace_erase(X, z), [[0, 0.5], [2, 0.5], [0, 0.5], [2, 0.5]], atol=1e-14)


def test_correlated_features_hand_example():
    # x₂ = x₁ + label. Σ_XX = [[1.25, 1.25], [1.25, 1.5]], Σ_XZ = (0, 1/4): the map moves points along
    # Σ_XZ (only x₂ changes) until Σ_XX⁻¹Σ_XZ ∝ (−1, 1), i.e. x₂ − x₁ = the label, equals its mean 1/2.
    x1 = np.array([0.0, 1.0, 2.0, 3.0, 0.0, 1.0, 2.0, 3.0])
    z = np.array([0, 0, 0, 0, 1, 1, 1, 1])
    Xe = leace_erase(np.stack([x1, x1 + z], 1), z)
    np.testing.assert_allclose(Xe, np.stack([x1, x1 + 0.5], 1), atol=1e-13)


def naive_leace(X, z):
    """The textbook formula with scipy's matrix square root (full-rank data only)."""
    classes = np.unique(z)
    Z = (z[:, None] == classes).astype(float)
    mu = X.mean(0)
    S = np.cov(X.T, bias=True).reshape(X.shape[1], X.shape[1])
    Sxz = (X - mu).T @ (Z - Z.mean(0)) / len(z)
    W = np.linalg.inv(np.real(sqrtm(S)))
    A = W @ Sxz
    P = A @ np.linalg.pinv(A, rcond=1e-9)  # rank k − 1: the centred one-hot columns sum to 0
    return X - (X - mu) @ (np.linalg.inv(W) @ P @ W).T


@given(seed=st.integers(0, 2**32 - 1))
def test_matches_the_textbook_formula(seed):
    X, z, _ = random_erasure_dataset(np.random.default_rng(seed), "none")
    assume(X.shape[0] > X.shape[1] + 1)  # the textbook formula needs a full-rank covariance
    np.testing.assert_allclose(leace_erase(X, z), naive_leace(X, z), atol=1e-8 * max(1.0, data_scale(X)))


@given(seed=st.integers(0, 2**32 - 1), shift=st.floats(-50, 50), a=st.integers(1, 5), b=st.integers(-3, 3))
def test_equivariances(seed, shift, a, b):
    X, z, w = random_erasure_dataset(np.random.default_rng(seed), "none")
    Xe = leace_erase(X, z, w)
    tol = 1e-9 * max(1.0, data_scale(X), abs(shift))
    np.testing.assert_allclose(leace_erase(X + shift, z, w), Xe + shift, atol=tol)  # translation
    np.testing.assert_allclose(leace_erase(X, a * z + b, w), Xe, atol=tol)  # relabelling
    perm = np.random.default_rng(seed).permutation(len(z))
    np.testing.assert_allclose(leace_erase(X[perm], z[perm], None if w is None else w[perm]), Xe[perm], atol=tol)


def test_integer_weights_equal_duplicated_rows():
    rng = np.random.default_rng(3)
    X, z = rng.standard_normal((12, 3)), np.array([0, 1, 2] * 4)
    counts = rng.integers(1, 4, 12)
    weighted = leace_erase(X, z, sample_weight=counts)
    duplicated = leace_erase(np.repeat(X, counts, 0), np.repeat(z, counts))
    np.testing.assert_allclose(np.repeat(weighted, counts, 0), duplicated, atol=1e-12)


def test_rank_deficient_inputs():
    rng = np.random.default_rng(5)
    z = np.array([0, 1, 2] * 6)
    base = rng.standard_normal((18, 2)) + np.eye(3)[z][:, :2]
    X = np.concatenate([base, base @ [[1.0], [-2.0]], np.full((18, 1), 4.0)], 1)  # collinear + constant
    X = np.concatenate([X, X[:5]])  # duplicated rows
    z = np.concatenate([z, z[:5]])
    eraser = leace_fit(X, z)
    assert eraser.data_rank == 2 and eraser.rank == 2
    Xe = eraser(X)
    assert max_cov(Xe, z) <= 1e-12 * data_scale(X)
    np.testing.assert_allclose(Xe[:, 3], 4.0, atol=1e-12)  # the constant column stays put
    wide = rng.standard_normal((3, 7))
    assert max_cov(leace_erase(wide, [0, 1, 1]), [0, 1, 1]) <= 1e-12 * data_scale(wide)
    assert np.array_equal(leace_erase(np.ones((4, 2)), [0, 1, 0, 1]), np.ones((4, 2)))  # nothing to erase


def test_fitted_map_applies_to_new_data():
    rng = np.random.default_rng(7)
    z = rng.integers(0, 3, 60)
    z[:3] = [0, 1, 2]
    X = rng.standard_normal((60, 4)) + np.eye(4)[z] * 2
    eraser = leace_fit(X, z)
    np.testing.assert_array_equal(eraser(X), leace_erase(X, z))
    new = rng.standard_normal((5, 4))
    np.testing.assert_allclose(eraser(new), new - (new - eraser.mean) @ eraser.matrix.T, atol=1e-12)
    with pytest.raises(ValueError, match="4 columns"):
        eraser(new[:, :3])


# ---------------------------------------------------------------------------------------------
# The contract: types in and out, and bad input
# ---------------------------------------------------------------------------------------------


def test_contract_types():
    rng = np.random.default_rng(11)
    X = rng.integers(-5, 6, (10, 3))
    z = np.array([0, 1] * 5)
    ref = leace_erase(X.astype(np.float64), z)
    for Xin in (X, X.tolist(), X.astype(np.float32), X.astype(np.int32)):
        for zin in (z, z.tolist(), z.astype(np.int32), z.astype(np.float64), z.astype(bool)):
            out = leace_erase(Xin, zin)
            assert isinstance(out, np.ndarray) and out.dtype == np.float64 and out.shape == (10, 3)
            np.testing.assert_allclose(out, ref, atol=1e-12)
    assert not np.shares_memory(leace_erase(X.astype(np.float64), z), X)


@pytest.mark.parametrize(
    "X, z, match",
    [
        (np.zeros(5), [0, 1, 0, 1, 0], "2-D"),
        (np.zeros((2, 3, 2)), [0, 1], "2-D"),
        (np.zeros((0, 3)), [], "at least one row"),
        (np.zeros((4, 2)), [[0, 1], [0, 1]], "1-D"),
        (np.zeros((4, 2)), [0, 1, 0], "length 4"),
        (np.zeros((4, 2)), [0, 0.5, 1, 1], "not an integer"),
        (np.zeros((4, 2)), ["a", "b", "a", "b"], "integer class labels"),
        (np.zeros((4, 2)), [0, np.nan, 1, 1], "NaN"),
        (np.array([[0.0, 1.0], [np.nan, 0.0], [1.0, 1.0], [2.0, 2.0]]), [0, 1, 0, 1], "finite"),
        (np.array([[0.0, np.inf], [0.0, 0.0], [1.0, 1.0], [2.0, 2.0]]), [0, 1, 0, 1], "finite"),
        (np.zeros((4, 2)), [1, 1, 1, 1], "two classes"),
        (np.array([["a", "b"], ["c", "d"]]), [0, 1], "numeric"),
    ],
)
def test_bad_input_raises(X, z, match):
    with pytest.raises(ValueError, match=match):
        leace_erase(X, z)


def test_bad_weights_raise():
    X, z = np.eye(4), [0, 1, 0, 1]
    with pytest.raises(ValueError, match="non-negative"):
        leace_erase(X, z, sample_weight=[1, -1, 1, 1])
    with pytest.raises(ValueError, match="shape"):
        leace_erase(X, z, sample_weight=[1, 1])
    with pytest.raises(ValueError, match="two classes"):  # class 1 has no weight
        leace_erase(X, z, sample_weight=[1, 0, 1, 0])


# ---------------------------------------------------------------------------------------------
# Best linear accuracy
# ---------------------------------------------------------------------------------------------


def test_best_linear_accuracy_hand_values():
    assert best_linear_accuracy([[0], [1], [2], [3]], [0, 0, 1, 1]) == 1.0
    assert best_linear_accuracy([[0], [1], [2], [3]], [0, 1, 0, 1]) == 0.75
    assert best_linear_accuracy([[0], [1], [2], [3]], [1, 1, 0, 0]) == 1.0  # either orientation
    xor = np.array([[0, 0], [1, 1], [0, 1], [1, 0]])
    assert best_linear_accuracy(xor, [0, 0, 1, 1]) == 0.75
    assert best_linear_accuracy(np.zeros((4, 2)), [0, 1, 1, 1]) == 0.75  # constant predictor
    clf = best_linear_classifier(xor[:, :1], [0, 0, 1, 1], sample_weight=[1, 1, 1, 5])
    assert clf.exact and clf.accuracy == 0.75  # predict 1 everywhere
    with pytest.raises(ValueError, match="binary"):
        best_linear_accuracy(np.eye(3), [0, 1, 2])


def separable(X1, X0):
    """Is there (w, b) with w·x + b >= 1 on X1 and <= −1 on X0? (LP feasibility)"""
    d = X1.shape[1] if len(X1) else X0.shape[1]
    A = np.concatenate([-np.c_[X1, np.ones(len(X1))], np.c_[X0, np.ones(len(X0))]]).reshape(-1, d + 1)
    res = linprog(np.zeros(d + 1), A_ub=A, b_ub=-np.ones(len(A)), bounds=[(None, None)] * (d + 1), method="highs")
    return res.status == 0


@given(
    X=hnp.arrays(np.int64, st.tuples(st.integers(2, 6), st.just(2)), elements=st.integers(-2, 2)),
    data=st.data(),
)
def test_exact_plane_search_matches_brute_force(X, data):
    """d = 2: the arrangement search equals the best separable subset found by linear programming."""
    n = len(X)
    y = np.array(data.draw(st.lists(st.integers(0, 1), min_size=n, max_size=n)))
    w = np.array(data.draw(st.lists(st.integers(1, 4), min_size=n, max_size=n)), float)
    w /= w.sum()
    best = 0.0
    for keep in product([False, True], repeat=n):
        keep = np.array(keep)
        if w[keep].sum() > best + 1e-12 and separable(X[keep & (y == 1)], X[keep & (y == 0)]):
            best = w[keep].sum()
    clf = best_linear_classifier(X, y, w)
    assert clf.exact and abs(clf.accuracy - best) <= 1e-12
    assert abs(w @ ((X @ clf.w + clf.b > 0) == (y == 1)) - clf.accuracy) <= 1e-12  # the returned rule achieves it


@given(seed=st.integers(0, 2**32 - 1))
def test_higher_dimensional_search_is_a_valid_lower_bound(seed):
    rng = np.random.default_rng(seed)
    X = rng.standard_normal((30, 4))
    y = (X[:, 0] + 0.5 * rng.standard_normal(30) > 0).astype(int)
    clf = best_linear_classifier(X, y, n_random=50, seed=seed % 100)
    assert not clf.exact
    achieved = np.mean((X @ clf.w + clf.b > 0) == (y == 1))
    assert abs(achieved - clf.accuracy) <= 1e-12
    assert clf.accuracy >= best_linear_accuracy(X[:, :1], y)  # at least the best axis threshold


def test_threshold_scan_is_exact_on_fractions():
    x = [Fraction(0), Fraction(1, 3), Fraction(2, 3), Fraction(1)]
    acc, t, sign = best_threshold_1d(x, [0, 1, 0, 1], [Fraction(1, 8), Fraction(1, 2), Fraction(1, 8), Fraction(1, 4)])
    assert acc == Fraction(7, 8) and isinstance(acc, Fraction)
    # "predict 1 iff x < 1/2": wrong on x = 0 (label 0) and x = 1 (label 1), right on the middle two
    half = threshold_accuracy(x, [0, 1, 0, 1], [1, 1, 1, 1], Fraction(1, 2), -1)
    assert half == Fraction(1, 2) and isinstance(half, Fraction)
    assert threshold_accuracy(x, [0, 1, 0, 1], [1, 1, 1, 1], Fraction(1, 2), 1) == Fraction(1, 2)
    assert threshold_accuracy(x, [0, 1, 0, 1], [3, 1, 1, 1], Fraction(1, 6), 1) == Fraction(5, 6)


# ---------------------------------------------------------------------------------------------
# The equal-means counterexample
# ---------------------------------------------------------------------------------------------


def test_counterexample_exact_numbers():
    ex = equal_means_example()
    assert ex.points == ((0, 1), (0, -1), (1, 0), (-3, 0)) and ex.labels == (0, 0, 1, 1)
    assert ex.masses == (Fraction(1, 4), Fraction(1, 4), Fraction(3, 8), Fraction(1, 8)) and sum(ex.masses) == 1
    assert ex.class_mean(0) == (0, 0) and ex.class_mean(1) == (0, 0)
    assert ex.accuracy(0, Fraction(1, 2)) == Fraction(7, 8)
    X, z, w = ex.arrays()
    assert best_linear_accuracy(X, z, w) == pytest.approx(0.875, abs=1e-12)  # and 7/8 is optimal
    np.testing.assert_array_equal(leace_erase(X, z, w), X)  # nothing for LEACE to erase
    assert max_cov(X, z, w) == 0.0


@given(num=st.integers(1, 999), den=st.integers(2, 1000))
def test_family_reaches_one_plus_q_over_two(num, den):
    q = Fraction(num % den or 1, den)
    fam = equal_means_family(q)
    assert sum(fam.masses) == 1
    assert fam.class_mean(0) == (0, 0) and fam.class_mean(1) == (0, 0)
    assert fam.accuracy(0, Fraction(1, 2)) == (1 + q) / 2
    best_x1 = best_threshold_1d([p[0] for p in fam.points], fam.labels, fam.masses)[0]
    assert best_x1 == max((1 + q) / 2, 1 - q / 2)
    X, z, w = fam.arrays()
    assert best_linear_accuracy(X, z, w) == pytest.approx(float(max((1 + q) / 2, 1 - q / 2)), abs=1e-12)


@pytest.mark.parametrize("q", [0, 1, Fraction(3, 2), -1])
def test_family_rejects_bad_q(q):
    with pytest.raises(ValueError, match="strictly between"):
        equal_means_family(q)


# ---------------------------------------------------------------------------------------------
# The registered checks
# ---------------------------------------------------------------------------------------------


def test_guardedness_check_reports_its_numbers():
    rec = run_claim(CLAIMS["erasure.leace_guardedness"], Context(budget="tiny"))
    assert rec.observed["max_abs_cov_xz"] <= rec.tolerance["max_abs_cov_xz"]
    assert rec.observed["logit_std_after"] <= rec.tolerance["logit_std_after"]
    assert rec.observed["min_abs_cov_before"] > 0.01  # the datasets had something to erase
    ex = run_claim(CLAIMS["erasure.equal_means_accuracy"], Context(budget="tiny"))
    assert ex.observed["accuracy_x1_gt_half"] == "7/8"


def test_guardedness_check_fails_without_erasure(monkeypatch):
    """Negative control: an "eraser" that leaves X unchanged keeps cov(X, Z) and is caught."""
    class Identity:
        rank = 0

        def __call__(self, X):
            return np.asarray(X, dtype=float)

    monkeypatch.setattr(E, "leace_fit", lambda X, z, w=None, rtol=1e-12: Identity())
    rec = run_claim(CLAIMS["erasure.leace_guardedness"], Context(budget="tiny"))
    assert rec.verdict == "fails" and "check raised" not in rec.detail, rec.detail


def test_equal_means_check_fails_on_another_example(monkeypatch):
    """Negative control: the q = 1/2 member (equal means, accuracy 3/4) is not the 7/8 example."""
    monkeypatch.setattr(E, "equal_means_example", lambda: equal_means_family(Fraction(1, 2)))
    rec = run_claim(CLAIMS["erasure.equal_means_accuracy"], Context(budget="tiny"))
    assert rec.verdict == "fails" and "check raised" not in rec.detail, rec.detail


def test_leace_guardedness_fits_start_from_ctx_seed(monkeypatch):
    """The logistic fits are a search (Newton from a random start): their starts must follow
    ctx.seed, so the registry's fresh-seed second opinion really starts elsewhere (it used the
    dataset index, the same at every seed)."""
    seeds = {0: [], 1: []}
    real = E.fit_logistic

    def spy(*args, seed=0, **kw):
        seeds[current].append(seed)
        return real(*args, seed=seed, **kw)

    monkeypatch.setattr(E, "fit_logistic", spy)
    assert CLAIMS["erasure.leace_guardedness"].searches
    for current in (0, 1):
        assert E.check_leace_guardedness(Context(budget="tiny", seed=current)).verdict == "holds"
    assert len(seeds[0]) == len(seeds[1]) > 0 and seeds[0] != seeds[1]
