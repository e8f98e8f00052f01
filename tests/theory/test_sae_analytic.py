"""The analytic SAE claims (theory/sae.py): the composed-latent bias interval, the exact 2-atom
lasso and the composition preference of the L1 penalty."""
import math
from fractions import Fraction

import numpy as np
import pytest
import sympy as sp
from hypothesis import assume, given
from hypothesis import strategies as st
from hypothesis.extra import numpy as hnp
from scipy.optimize import minimize, nnls

from theory.registry import CLAIMS, Context, run_claim
from theory.sae import (
    COMPOSITION_CLUSTERS,
    TILT_SERIES,
    BiasInterval,
    asymmetric_branch,
    composition_jump_lambda,
    composed_latent_bias_interval,
    composed_sae_example,
    composition_loss,
    decoder_from_angles,
    fires_only_on_composition,
    lasso_2atoms,
    latent_fires,
    min_l1_exact_code,
    nonneg_lasso_2atoms,
    nonneg_lasso_exact,
    optimal_two_latent_angles,
    symmetric_optimal_tilt,
    symmetric_tilt_loss,
    symmetric_tilt_series,
)

SQ2 = sp.sqrt(2)

# ---------------------------------------------------------------------------------------------
# The composed-latent bias interval
# ---------------------------------------------------------------------------------------------

small_fracs = st.fractions(min_value=-5, max_value=5, max_denominator=12)


def orthonormal_pair(A):
    Q, _ = np.linalg.qr(A)
    return Q[:, 0], Q[:, 1]


@given(
    data=st.data(),
    d=st.integers(2, 12),
    scale=st.floats(1e-2, 1e2),
)
def test_interval_matches_brute_force_on_random_float_vectors(data, d, scale):
    A = data.draw(hnp.arrays(np.float64, (d, 2), elements=st.floats(-3, 3)))
    assume(np.linalg.matrix_rank(A, tol=1e-3) == 2)
    f1, f2 = orthonormal_pair(A)
    # e with random components along f1 and f2 (any signs) plus an orthogonal part
    a, b = data.draw(st.floats(-2, 2)), data.draw(st.floats(-2, 2))
    noise = data.draw(hnp.arrays(np.float64, d, elements=st.floats(-1, 1)))
    noise -= (noise @ f1) * f1 + (noise @ f2) * f2
    e = scale * (a * f1 + b * f2 + noise)
    iv = composed_latent_bias_interval(e, f1, f2)
    tol = 1e-9 * (1 + abs(iv.lower) + abs(iv.upper))
    # the bounds are −e·(f1+f2) and −max(e·f1, e·f2): here −scale(a+b) and −scale·max(a, b)
    assert iv.lower == pytest.approx(-scale * (a + b), abs=1e-9 * scale)
    assert iv.upper == pytest.approx(-scale * max(a, b), abs=1e-9 * scale)
    for bias in (iv.lower - tol, iv.lower, iv.upper + tol):
        assert not fires_only_on_composition(e, bias, f1, f2)
        assert not iv.contains(bias)
    if scale * min(a, b) > 2 * tol:
        assert not iv.empty
        for bias in (iv.lower + tol, iv.upper, (iv.lower + iv.upper) / 2):
            assert fires_only_on_composition(e, bias, f1, f2)
            assert iv.contains(bias)
    if scale * min(a, b) < -2 * tol:  # e points away from one feature (beyond rounding)
        assert iv.empty


@given(data=st.data(), d=st.integers(2, 7))
def test_interval_is_exact_on_rationals(data, d):
    """Any rational f1, f2 (the iff needs no orthonormality) and e; biases anywhere, incl. the bounds."""
    vec = st.lists(small_fracs, min_size=d, max_size=d)
    e, f1, f2 = data.draw(vec), data.draw(vec), data.draw(vec)
    iv = composed_latent_bias_interval(e, f1, f2)
    e1 = sum(a * b for a, b in zip(e, f1))
    e2 = sum(a * b for a, b in zip(e, f2))
    assert iv.lower == -(e1 + e2) and iv.upper == -max(e1, e2)
    assert iv.empty == (min(e1, e2) <= 0)
    assert iv.width == max(min(e1, e2), 0)
    extra = data.draw(small_fracs)
    for b in (iv.lower, iv.upper, iv.lower + Fraction(1, 10**6), iv.upper + Fraction(1, 10**6),
              iv.lower - Fraction(1, 10**6), (iv.lower + iv.upper) / 2, extra):
        assert iv.contains(b) == fires_only_on_composition(e, b, f1, f2)


@given(d=st.integers(2, 9), data=st.data())
def test_reading_off_the_composition_needs_bias_in_minus_one_to_minus_half(d, data):
    """e = (f1 + f2)/2 for signed standard basis vectors in any dimension: exactly (−1, −1/2]."""
    i, j = data.draw(st.lists(st.integers(0, d - 1), min_size=2, max_size=2, unique=True))
    s1, s2 = data.draw(st.sampled_from([1, -1])), data.draw(st.sampled_from([1, -1]))
    f1 = [Fraction(0)] * d
    f2 = [Fraction(0)] * d
    f1[i], f2[j] = Fraction(s1), Fraction(s2)
    e = [(a + b) / 2 for a, b in zip(f1, f2)]
    iv = composed_latent_bias_interval(e, f1, f2)
    assert (iv.lower, iv.upper) == (-1, Fraction(-1, 2))
    assert not fires_only_on_composition(e, Fraction(-1), f1, f2)  # silent on f1 + f2 (pre-activation 0)
    assert fires_only_on_composition(e, Fraction(-1, 2), f1, f2)  # ReLU(0) on f1 and f2: silent there
    assert not fires_only_on_composition(e, Fraction(-49, 100), f1, f2)  # now fires on f1 as well
    assert latent_fires(e, Fraction(-49, 100), f1)


def test_interval_for_a_symbolic_rotation():
    th = sp.symbols("theta", real=True)
    f1, f2 = [sp.cos(th), sp.sin(th)], [-sp.sin(th), sp.cos(th)]
    iv = composed_latent_bias_interval([(a + b) / 2 for a, b in zip(f1, f2)], f1, f2)
    assert sp.simplify(iv.lower) == -1 and sp.simplify(iv.upper) == sp.Rational(-1, 2)


def test_interval_validates_its_input():
    with pytest.raises(ValueError, match="same dimension"):
        composed_latent_bias_interval([1, 0, 0], [1, 0], [0, 1])
    with pytest.raises(ValueError, match="finite"):
        composed_latent_bias_interval(np.array([np.nan, 0.0]), [1, 0], [0, 1])
    with pytest.raises(ValueError, match="1-D"):
        composed_latent_bias_interval(np.eye(2), [1, 0], [0, 1])
    with pytest.raises(ValueError, match="at least one"):
        composed_latent_bias_interval([], [], [])
    assert BiasInterval(Fraction(-1), Fraction(-1, 2)).width == Fraction(1, 2)
    assert BiasInterval(0, 0).empty and BiasInterval(0, 0).width == 0


@pytest.mark.parametrize("b", [Fraction(-3, 4), Fraction(-1, 2), Fraction(-999, 1000)])
def test_composed_sae_codes_and_reconstructs_exactly(b):
    W_enc, b_enc, W_dec = composed_sae_example(b)
    relu = lambda v: v.applyfunc(lambda t: sp.Max(t, 0))  # noqa: E731
    for x, code in (([1, 0], [1, 0, 0]), ([0, 1], [0, 1, 0]), ([1, 1], [0, 0, SQ2])):
        c = relu(W_enc * sp.Matrix(x) + b_enc)
        assert sp.simplify(c - sp.Matrix(code)) == sp.zeros(3, 1)
        assert sp.simplify(W_dec * c - sp.Matrix(x)) == sp.zeros(2, 1)
    # unit decoder columns, so the code's L1 is comparable with the plain SAE's 1, 1, 2
    assert all(sp.simplify(W_dec[:, j].norm() - 1) == 0 for j in range(3))


@pytest.mark.parametrize("b", [-1, Fraction(-2, 5), 0])
def test_composed_sae_rejects_biases_outside_the_interval(b):
    with pytest.raises(ValueError, match="must be in"):
        composed_sae_example(b)


# ---------------------------------------------------------------------------------------------
# The exact 2-atom lasso
# ---------------------------------------------------------------------------------------------


def nnls_lasso(x, D, lam):
    """Non-negative lasso through NNLS: for full-column-rank D, ||x − Dc||² + λ1ᵀc equals
    ||x̃ − Dc||² + const with Dᵀx̃ = Dᵀx − (λ/2)1, i.e. x̃ = x − (λ/2) D (DᵀD)⁻¹ 1."""
    xt = x - lam / 2 * D @ np.linalg.solve(D.T @ D, np.ones(D.shape[1]))
    c, _ = nnls(D, xt)
    return c, float(((x - D @ c) ** 2).sum() + lam * c.sum())


@given(
    data=st.data(),
    n=st.integers(2, 5),
    lam=st.floats(0, 3),
)
def test_nonneg_lasso_matches_nnls(data, n, lam):
    D = data.draw(hnp.arrays(np.float64, (n, 2), elements=st.floats(-2, 2)))
    x = data.draw(hnp.arrays(np.float64, n, elements=st.floats(-2, 2)))
    s = np.linalg.svd(D, compute_uv=False)
    assume(s[-1] > 0.05 * max(s[0], 1e-9) and s[-1] > 0.05)
    c, loss = nonneg_lasso_2atoms(x, D, lam)
    c_ref, loss_ref = nnls_lasso(x, D, lam)
    assert (c >= 0).all()
    assert loss == pytest.approx(loss_ref, abs=1e-9)
    assert np.allclose(c, c_ref, atol=1e-6)  # the minimiser is unique for full-rank D
    assert loss == pytest.approx(float(((x - D @ c) ** 2).sum() + lam * np.abs(c).sum()), abs=1e-12)


@given(data=st.data(), lam=st.floats(0, 3))
def test_free_sign_lasso_beats_every_grid_point_and_lbfgs(data, lam):
    D = data.draw(hnp.arrays(np.float64, (2, 2), elements=st.floats(-2, 2)))
    x = data.draw(hnp.arrays(np.float64, 2, elements=st.floats(-2, 2)))
    c, loss = lasso_2atoms(x, D, lam, nonneg=False)
    g = np.linspace(-4, 4, 161)
    C = np.stack(np.meshgrid(g, g, indexing="ij"), -1)
    grid = (((x - C @ D.T) ** 2).sum(-1) + lam * np.abs(C).sum(-1)).min()
    assert loss <= grid + 1e-12
    # split c = p − q, p, q ≥ 0: a smooth bounded problem
    obj = lambda pq: float(((x - D @ (pq[:2] - pq[2:])) ** 2).sum() + lam * pq.sum())  # noqa: E731
    ref = min(minimize(obj, s, method="L-BFGS-B", bounds=[(0, None)] * 4, options={"ftol": 1e-15, "gtol": 1e-12}).fun
              for s in (np.zeros(4), np.ones(4)))
    assert loss <= ref + 1e-9


@pytest.mark.parametrize("lam", [0.0, 0.5, 1.3, 5.0])
def test_orthonormal_atoms_soft_threshold(lam):
    x = np.array([1.2, -0.4])
    c, loss = nonneg_lasso_2atoms(x, np.eye(2), lam)
    want = np.maximum(x - lam / 2, 0)  # c ≥ 0: one-sided soft threshold
    np.testing.assert_allclose(c, want, atol=1e-15)
    assert loss == pytest.approx(((x - want) ** 2).sum() + lam * want.sum(), abs=1e-14)
    c2, _ = lasso_2atoms(x, np.eye(2), lam, nonneg=False)
    np.testing.assert_allclose(c2, np.sign(x) * np.maximum(np.abs(x) - lam / 2, 0), atol=1e-15)


def test_degenerate_dictionaries():
    x = np.array([3.0, 4.0])
    d = np.array([0.6, 0.8])
    # repeated atom: the 2-atom support is singular; the loss is the 1-atom lasso's, 25 − (5 − λ/2)²
    for D in (np.stack([d, d], 1), np.stack([d, -d], 1), np.stack([d, np.zeros(2)], 1)):
        c, loss = nonneg_lasso_2atoms(x, D, 1.0)
        assert loss == pytest.approx(25 - 4.5**2, abs=1e-12)
        np.testing.assert_allclose(D @ c, 4.5 * d, atol=1e-12)
    # twice as long an atom is cheaper: code (5 − λ/4)/2 on it, loss 25 − (10 − λ/2)²/4
    c, loss = nonneg_lasso_2atoms(x, np.stack([d, 2 * d], 1), 1.0)
    assert loss == pytest.approx(25 - 9.5**2 / 4, abs=1e-12)
    assert c[0] == 0 and c[1] == pytest.approx(9.5 / 4)
    # the antipodal atom serves negative inputs
    c, _ = nonneg_lasso_2atoms(-x, np.stack([d, -d], 1), 0.0)
    np.testing.assert_allclose(c, [0, 5], atol=1e-12)


def test_lasso_batches_and_validates():
    D = decoder_from_angles(np.array([[0.0, 90.0], [0.0, 45.0], [30.0, 60.0]]))
    assert D.shape == (3, 2, 2)
    c, loss = nonneg_lasso_2atoms(np.array([1.0, 1.0]), D, 0.0)
    assert c.shape == (3, 2) and loss.shape == (3,)
    np.testing.assert_allclose(c[0], [1, 1], atol=1e-12)
    np.testing.assert_allclose(c[1], [0, math.sqrt(2)], atol=1e-12)
    np.testing.assert_allclose(loss, 0, atol=1e-12)
    for i in range(3):  # the batch equals one-by-one
        ci, li = nonneg_lasso_2atoms(np.array([1.0, 1.0]), D[i], 0.0)
        np.testing.assert_allclose(ci, c[i], atol=1e-15)
        np.testing.assert_allclose(li, loss[i], atol=1e-15)
    with pytest.raises(ValueError, match="two atoms"):
        nonneg_lasso_2atoms(np.ones(2), np.eye(3), 0.1)
    with pytest.raises(ValueError, match="rows of D"):
        nonneg_lasso_2atoms(np.ones(3), np.eye(2), 0.1)
    with pytest.raises(ValueError, match="≥ 0"):
        nonneg_lasso_2atoms(np.ones(2), np.eye(2), -0.1)
    with pytest.raises(ValueError, match="finite"):
        nonneg_lasso_2atoms(np.array([np.inf, 0]), np.eye(2), 0.1)


@pytest.mark.parametrize("x", [[1, 0], [0, 1], [1, 1], [2, -1], [-1, -1]])
@pytest.mark.parametrize("lam", [0, sp.Rational(1, 3), 1, 3])
def test_exact_and_float_solvers_agree(x, lam):
    D = [[sp.Rational(3, 5), sp.Rational(-5, 13)], [sp.Rational(4, 5), sp.Rational(12, 13)]]
    c, loss = nonneg_lasso_exact(x, D, lam)
    cf, lf = nonneg_lasso_2atoms(np.array(x, float), np.array(D, dtype=float), float(lam))
    assert float(loss) == pytest.approx(float(lf), abs=1e-12)
    np.testing.assert_allclose([float(v) for v in c], cf, atol=1e-12)


# ---------------------------------------------------------------------------------------------
# Composition: 2 against 3 latents, exactly
# ---------------------------------------------------------------------------------------------


def test_two_latents_y_z_code_the_composition_with_l1_two():
    D = sp.eye(2)
    codes = [nonneg_lasso_exact(x, D, 0) for x in ([1, 0], [0, 1], [1, 1])]
    assert [list(c) for c, _ in codes] == [[1, 0], [0, 1], [1, 1]]
    assert all(loss == 0 for _, loss in codes)
    assert sum(sum(c) for c, _ in codes) == 4


def test_centroid_pairs_with_the_composition_leave_error_one_half():
    for D in (sp.Matrix([[1, 1 / SQ2], [0, 1 / SQ2]]), sp.Matrix([[0, 1 / SQ2], [1, 1 / SQ2]])):
        errs = [nonneg_lasso_exact(x, D, 0)[1] for x in ([1, 0], [0, 1], [1, 1])]
        assert sorted(errs) == [0, 0, sp.Rational(1, 2)]


def test_a_third_atom_cuts_the_composition_l1_to_sqrt2():
    D3 = sp.Matrix([[1, 0, 1 / SQ2], [0, 1, 1 / SQ2]])
    assert sp.simplify(D3 * sp.Matrix([0, 0, SQ2]) - sp.Matrix([1, 1])) == sp.zeros(2, 1)
    assert sp.Matrix([1, 1]).norm() == SQ2  # the L1 lower bound for unit atoms, attained
    assert min_l1_exact_code([1, 1], np.eye(2))[0] == pytest.approx(2, abs=1e-12)
    assert min_l1_exact_code([1, 1], np.array(D3.evalf(), dtype=float))[0] == pytest.approx(math.sqrt(2), abs=1e-12)
    # the lasso picks the composed atom by itself: code √2 − λ/2, loss √2 λ − λ²/4
    lam = sp.Rational(1, 10)
    c, loss = nonneg_lasso_exact([1, 1], D3, lam)
    assert list(c) == [0, 0, SQ2 - lam / 2]
    assert sp.simplify(loss - (SQ2 * lam - lam**2 / 4)) == 0
    # outside the cone: no zero-error non-negative code
    assert min_l1_exact_code([-1, 0], np.eye(2))[0] == math.inf


def test_composition_loss_at_y_z_is_hand_computed():
    for lam in (0.0, 0.01, 0.3, 1.5):
        want = 4 * (lam - lam**2 / 4) / 3  # y, z: λ − λ²/4 each; y + z: twice that
        assert float(composition_loss(np.array([0.0, 90.0]), lam)) == pytest.approx(want, abs=1e-14)
        total = float(composition_loss(np.array([0.0, 90.0]), lam, reduction="sum"))
        assert total == pytest.approx(3 * want, abs=1e-14)
    # weights: only the y + z cluster, atoms at y and z: 2(λ − λ²/4)
    assert float(composition_loss(np.array([0.0, 90.0]), 0.3, weights=(0, 0, 1))) == pytest.approx(2 * (0.3 - 0.0225))
    with pytest.raises(ValueError, match="weights"):
        composition_loss(np.array([0.0, 90.0]), 0.3, weights=(1, 1))
    with pytest.raises(ValueError, match="reduction"):
        composition_loss(np.array([0.0, 90.0]), 0.3, reduction="max")


@pytest.mark.parametrize("delta", [0.0, 3.0, 6.4, 12.0])
@pytest.mark.parametrize("lam", [0.01, 0.3, 0.8])
def test_symmetric_closed_form_equals_the_loss(delta, lam):
    assert float(symmetric_tilt_loss(delta, lam)) == pytest.approx(
        float(composition_loss(np.array([delta, 90 - delta]), lam)), abs=1e-13)


def test_optimal_angles_small_and_moderate_lambda():
    for lam in (0.01, 0.3):
        o = optimal_two_latent_angles(lam, grid_step_deg=3.0)
        d = symmetric_optimal_tilt(lam)
        np.testing.assert_allclose(o.angles_deg, [d, 90 - d], atol=1e-4)
        assert o.used == (True, True)
        assert o.loss == pytest.approx(float(symmetric_tilt_loss(d, lam)), abs=1e-13)
    assert symmetric_optimal_tilt(0.3) == pytest.approx(6.378, abs=1e-3)
    assert symmetric_optimal_tilt(0.01) == pytest.approx(0.2823, abs=1e-4)
    # the series δ = λ/2 − 3λ²/4 + 97λ³/48 (radians), at small λ
    for lam in (1e-3, 3e-3):
        series = math.degrees(sum(float(a) * lam ** (k + 1) for k, a in enumerate(TILT_SERIES)))
        assert symmetric_optimal_tilt(lam) == pytest.approx(series, abs=math.degrees(10 * lam**4))
        # the λ² term is really there: the first-order tilt λ/2 alone is off by about 3λ²/4
        assert abs(symmetric_optimal_tilt(lam) - math.degrees(lam / 2)) > math.degrees(0.5 * lam**2)
    with pytest.raises(ValueError, match="√2"):
        symmetric_optimal_tilt(1.5)


def test_optimum_at_lambda_one_is_exact():
    """λ = 1: one atom at y, the other at (3/5, 4/5) (53.13°); codes 1/2, 3/10, 9/10, loss 19/20."""
    o = optimal_two_latent_angles(1.0, grid_step_deg=3.0)
    np.testing.assert_allclose(o.angles_deg, [0.0, math.degrees(math.atan2(4, 3))], atol=1e-4)
    assert o.loss == pytest.approx(0.95, abs=1e-12)
    D = [[1, sp.Rational(3, 5)], [0, sp.Rational(4, 5)]]
    sols = [nonneg_lasso_exact(x, D, 1) for x in ([1, 0], [0, 1], [1, 1])]
    assert [list(c) for c, _ in sols] == [[sp.Rational(1, 2), 0], [0, sp.Rational(3, 10)], [0, sp.Rational(9, 10)]]
    assert sum(loss for _, loss in sols) / 3 == sp.Rational(19, 20)


def test_large_lambda_uses_one_then_no_atom():
    o = optimal_two_latent_angles(2.0, grid_step_deg=3.0)
    assert o.used == (True, False) and o.angles_deg[0] == pytest.approx(45.0, abs=1e-4) and np.isnan(o.angles_deg[1])
    o = optimal_two_latent_angles(3.0, grid_step_deg=3.0)  # λ/2 > ||y + z|| = √2: every code is 0
    assert o.used == (False, False) and o.loss == pytest.approx(4 / 3, abs=1e-14)
    o = optimal_two_latent_angles(0.0, grid_step_deg=3.0)  # zero error, many optimal pairs
    assert o.loss == pytest.approx(0.0, abs=1e-14)


def test_the_symmetric_pair_gives_way_at_the_jump():
    lam_c = composition_jump_lambda()
    assert lam_c == pytest.approx(0.92367, abs=1e-4)
    below = optimal_two_latent_angles(lam_c - 0.01, grid_step_deg=3.0)
    above = optimal_two_latent_angles(lam_c + 0.01, grid_step_deg=3.0)
    d = symmetric_optimal_tilt(lam_c - 0.01)
    np.testing.assert_allclose(below.angles_deg, [d, 90 - d], atol=1e-4)
    phi, loss = asymmetric_branch(lam_c + 0.01)
    np.testing.assert_allclose(above.angles_deg, [0.0, phi], atol=1e-4)
    assert above.loss == pytest.approx(loss, abs=1e-12)
    assert phi - (90 - d) < -15  # a jump, not a continuous turn: the z-side atom moves about 21° at once


@pytest.mark.slow
def test_tilt_series_derivation():
    assert symmetric_tilt_series() == TILT_SERIES


# ---------------------------------------------------------------------------------------------
# The registered checks
# ---------------------------------------------------------------------------------------------


def test_composed_latent_bias_check_holds_at_tiny_budget():
    rec = run_claim(CLAIMS["sae.composed_latent_bias"], Context(budget="tiny"))
    assert rec.status == "proven"
    assert rec.verdict == "holds", rec.detail
    assert rec.observed["interval_e_half_symbolic"] == "(-1, -1/2]"
    assert rec.observed["float_mismatches"] == 0 and rec.observed["exact_rational_mismatches"] == 0
    assert rec.observed["float_nonempty_intervals"] > 20  # the brute force saw non-empty intervals


def test_composition_preference_check_holds_at_tiny_budget():
    rec = run_claim(CLAIMS["sae.composition_preference"], Context(budget="tiny"))
    assert rec.status == "proven"
    assert rec.verdict == "holds", rec.detail
    a01, a3 = np.array(rec.observed["angles_deg_lam_0.01"]), np.array(rec.observed["angles_deg_lam_0.3"])
    assert np.abs(a01 - [0, 90]).max() <= 2 and np.abs(a3 - [6, 84]).max() <= 2
    assert a3[0] > a01[0] + 5  # the tilt really grew
    assert "mean over clusters, c >= 0" in rec.observed["variants_reproducing"]
    assert not any("MSE averaged" in v for v in rec.observed["variants_reproducing"])
    assert COMPOSITION_CLUSTERS.shape == (3, 2)
