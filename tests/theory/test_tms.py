"""Toy models of superposition: tight frames, the two-feature model, the linear optimum,
crowding the circle, and every tms.* check."""
import math

import numpy as np
import pytest
import scipy.integrate
import scipy.optimize
import sympy as sp
import torch
from hypothesis import assume, given
from hypothesis import strategies as st

import theory.tms as T
from theory.registry import CLAIMS, Context, run_claim
from toymodels.device import derive_seed
from toymodels.measures.analysis import (
    STICKY_DIMENSIONALITIES, classify_geometry, feature_dimensionality, feature_norms,
)

import theory.tms.claims as TC
import theory.tms.crowding as TCR
import theory.tms.two_feature as TF

MY_CLAIMS = [
    "tms.frame_dimensionality",
    "tms.sticky_dimensionality",
    "tms.pentagon",
    "tms.two_feature_phase",
    "tms.two_feature_boundary",
    "tms.linear_no_superposition",
    "tms.circle_crowding",
]
# The verdict each check gives at the tiny and default budgets (the boundary claim is refuted).
EXPECTED = {"tms.two_feature_boundary": "counterexample"}
# The checks that optimise or train: their verdict gets a second opinion on fresh seeds.
SEARCHING = {"tms.sticky_dimensionality", "tms.pentagon", "tms.two_feature_boundary", "tms.linear_no_superposition",
             "tms.circle_crowding"}
FRAME_NAMES = list(T.TIGHT_FRAMES)
seeds = st.integers(0, 2**32 - 1)


# ----------------------------------------------------------------------------- tight frames


@pytest.mark.parametrize("name", FRAME_NAMES)
def test_named_frames_are_tight_with_the_sticky_dimensionality(name):
    F = T.tight_frame(name)
    d, k = F.shape
    value, k_expected = STICKY_DIMENSIONALITIES[name]
    assert k == k_expected and T.is_tight_frame(F)
    assert math.isclose(d / k, value) and math.isclose(T.frame_dimensionality(F), value)
    assert torch.allclose(feature_dimensionality(F), torch.full((k,), value, dtype=torch.float64), atol=1e-12)


def test_frames_hand_values():
    # The pentagon's neighbours are 72° apart; the tetrahedron's pairs have cos = -1/3.
    P = T.pentagon()
    assert math.isclose(float(P[:, 0] @ P[:, 1]), math.cos(2 * math.pi / 5), abs_tol=1e-12)
    G = T.tetrahedron().T @ T.tetrahedron()
    assert torch.allclose(G, (4 * torch.eye(4, dtype=torch.float64) - 1) / 3, atol=1e-12)
    A = T.square_antiprism()
    assert torch.allclose(A @ A.T, 8 / 3 * torch.eye(3, dtype=torch.float64), atol=1e-12)


def test_equal_edge_antiprism_is_not_tight():
    # The regular (equal-edge) antiprism has h² = ρ²/(2√2): not a tight frame, D_i ≠ 3/8.
    rho2 = 1 / (1 + 1 / (2 * math.sqrt(2)))
    h, rho = math.sqrt(1 - rho2), math.sqrt(rho2)
    ang = np.pi / 2 * np.arange(4)
    cols = [(rho * np.cos(a), rho * np.sin(a), h) for a in ang]
    cols += [(rho * np.cos(a + np.pi / 4), rho * np.sin(a + np.pi / 4), -h) for a in ang]
    F = torch.tensor(cols, dtype=torch.float64).T
    assert not T.is_tight_frame(F)
    D = feature_dimensionality(F)
    assert abs(float(D[0]) - 0.366) < 1e-3 and abs(float(D[0]) - 3 / 8) > 5e-3


@given(k=st.integers(3, 60))
def test_equally_spaced_polygon_dimensionality_and_interference(k):
    F = T.equally_spaced(k)
    assert F.shape == (2, k) and T.is_tight_frame(F)
    assert torch.allclose(feature_dimensionality(F), torch.full((k,), 2 / k, dtype=torch.float64), atol=1e-12)
    assert math.isclose(float(F[:, 0] @ F[:, 1]), T.circle_interference(k), abs_tol=1e-12)
    assert (T.circle_interference(k) <= 1e-12) == (k <= 4)


@given(name=st.sampled_from(FRAME_NAMES), extra=st.integers(0, 3), seed=seeds)
def test_rotations_and_embeddings_leave_dimensionality_invariant(name, extra, seed):
    rng = np.random.default_rng(seed)
    F = T.tight_frame(name)
    d, k = F.shape
    G = torch.cat([F, torch.zeros(extra, k, dtype=F.dtype)])
    Q = T.random_rotation(d + extra, rng)
    assert torch.allclose(Q.T @ Q, torch.eye(d + extra, dtype=torch.float64), atol=1e-12)
    D = feature_dimensionality(Q @ G)
    assert torch.allclose(D, torch.full((k,), d / k, dtype=torch.float64), atol=1e-10)


@given(names=st.lists(st.sampled_from(FRAME_NAMES), min_size=1, max_size=5), seed=seeds)
def test_orthogonal_frames_fill_m_dimensions(names, seed):
    rng = np.random.default_rng(seed)
    B = T.block_frame(*[T.tight_frame(x) for x in names])
    m = B.shape[0]
    assert m == sum(T.tight_frame(x).shape[0] for x in names)
    D = feature_dimensionality(T.random_rotation(m, rng) @ B)
    assert math.isclose(float(D.sum()), m, abs_tol=1e-9)


@given(m=st.integers(1, 6), n=st.integers(1, 14), seed=seeds, zero=st.booleans(), scale=st.floats(0.01, 100))
def test_random_W_dimensionality_bounds(m, n, seed, zero, scale):
    rng = np.random.default_rng(seed)
    W = torch.as_tensor(rng.standard_normal((m, n)))
    if zero:
        W[:, 0] = 0.0
    D = feature_dimensionality(W)
    assert torch.isfinite(D).all() and (D >= 0).all() and (D <= 1 + 1e-9).all()
    assert float(D.sum()) <= m + 1e-9
    if zero:
        assert float(D[0]) == 0.0
    # D_i is invariant to a global scale of W.
    assert torch.allclose(feature_dimensionality(W * scale), D, atol=1e-9)


def test_classify_geometry_names_the_frames():
    B = T.block_frame(T.pentagon(), T.tetrahedron(), T.digon(), T.tight_frame("dedicated"))
    labels = classify_geometry(B)
    assert labels == ["pentagon"] * 5 + ["tetrahedron"] * 4 + ["antipodal pair"] * 2 + ["dedicated"]


def test_frame_inputs_are_checked():
    for bad in (0, -1, 2.5):
        with pytest.raises(ValueError):
            T.equally_spaced(bad)
    with pytest.raises(ValueError):
        T.tight_frame("hexagon")
    with pytest.raises(ValueError):
        T.block_frame()


# ----------------------------------------------------------------------------- two features


def test_sympy_derivation_reproduces_the_closed_forms():
    d = T.two_feature_derivation()
    p, r = sp.symbols("p r", nonnegative=True)
    assert sp.simplify(d.ignore_2 - r * (p / 3 - p**2 / 4)) == 0
    assert sp.simplify(d.ignore_1 - (p / 3 - p**2 / 4)) == 0
    assert sp.simplify(d.antipodal_unit - (1 + r) * p**2 / 6) == 0
    assert sp.simplify(d.optimal_bias_ignore - p / 2) == 0
    assert sp.simplify(d.boundary_unit[0] - 4 * r / (2 + 5 * r)) == 0
    assert sp.simplify(d.boundary_unit[1] - 4 / (5 + 2 * r)) == 0


def _feature1_loss_quadrature(p, a, b):
    """E (x_1 - ReLU(a(x_1 - x_2) + b))² by numerical integration, independently of sympy."""
    f = lambda u, v: (u - max(a * (u - v) + b, 0.0)) ** 2  # noqa: E731
    both, _ = scipy.integrate.dblquad(lambda v, u: f(u, v), 0, 1, 0, 1, epsabs=1e-11)
    only1, _ = scipy.integrate.quad(lambda u: f(u, 0.0), 0, 1, epsabs=1e-12)
    only2, _ = scipy.integrate.quad(lambda v: f(0.0, v), 0, 1, epsabs=1e-12)
    return (1 - p) ** 2 * f(0.0, 0.0) + p * (1 - p) * (only1 + only2) + p**2 * both


@pytest.mark.parametrize("p,a,b", [(0.3, 1.0, 0.0), (0.6, 1.0, 0.2), (0.8, 0.6, 0.3), (0.5, 1.3, 0.05),
                                   (0.9, 0.5, 0.7)])
def test_antipodal_loss_matches_numerical_integration(p, a, b):
    d = T.two_feature_derivation()
    P, A, B, R = sp.symbols("p a b r", nonnegative=True)
    expr = d.antipodal if b <= a else d.antipodal_linear
    exact = float(expr.subs({P: p, A: a, B: b, R: 0}))
    assert math.isclose(exact, _feature1_loss_quadrature(p, a, b), rel_tol=1e-6, abs_tol=1e-10)


@given(p=st.floats(0.01, 1.0), r=st.floats(0.05, 20.0), seed=seeds)
def test_two_feature_losses_match_monte_carlo(p, r, seed):
    rng = np.random.default_rng(seed)
    n = 200_000
    x = np.where(rng.random((n, 2)) < p, rng.random((n, 2)), 0.0)
    imp = np.array([1.0, r])
    configs = {"ignore_2": ([1.0, 0.0], [0.0, p / 2]), "ignore_1": ([0.0, 1.0], [p / 2, 0.0]),
               "antipodal": ([1.0, -1.0], [0.0, 0.0])}
    exact = T.two_feature_losses(p, r)
    for name, (w, b) in configs.items():
        w = np.array(w)
        out = np.maximum((x @ w)[:, None] * w[None, :] + np.array(b), 0)
        per = ((x - out) ** 2 * imp).sum(1)
        assert abs(per.mean() - exact[name]) <= 6 * per.std() / math.sqrt(n) + 1e-12


def test_boundary_values():
    assert T.two_feature_boundary(1.0) == pytest.approx(4 / 7, abs=1e-15)
    assert T.two_feature_boundary(0.1) == pytest.approx(0.16)
    assert T.two_feature_boundary(10.0) == pytest.approx(0.16)
    # Optimising the antipodal bias (and scale) moves the boundary up; at r = 1 it reaches p = 1.
    assert 4 / 7 < T.two_feature_boundary(1.0, "bias") < 0.65
    assert T.two_feature_boundary(1.0, "optimal") == 1.0
    for r in (0.3, 3.0):
        unit, bias, opt = (T.two_feature_boundary(r, mode) for mode in T.ANTIPODAL_MODES)
        assert unit < bias <= opt + 1e-9 < 1


@given(r=st.floats(0.02, 50.0))
def test_boundary_is_where_the_losses_cross(r):
    b = T.two_feature_boundary(r)
    assert math.isclose(b, T.two_feature_boundary(1 / r), rel_tol=1e-12)  # symmetric under r -> 1/r
    loss = T.two_feature_losses(b, r)
    assert math.isclose(loss["antipodal"], min(loss["ignore_1"], loss["ignore_2"]), rel_tol=1e-9)
    below, above = T.two_feature_losses(0.9 * b, r), T.two_feature_losses(min(1.0, 1.1 * b), r)
    assert below["antipodal"] < min(below["ignore_1"], below["ignore_2"])
    assert above["antipodal"] > min(above["ignore_1"], above["ignore_2"])


@given(p=st.floats(0.01, 1.0))
def test_optimised_antipodal_losses_are_ordered(p):
    unit = p * p / 6
    bias, a1, b1 = T.antipodal_optimum(p, scale=False)
    opt, a, b = T.antipodal_optimum(p)
    assert a1 == 1.0 and 0 < b1 <= 1 and bias < unit  # the optimal bias is positive
    assert opt <= bias + 1e-12 and a > 0 and b >= 0


def test_antipodal_optimum_matches_monte_carlo_of_the_model():
    # The optimised configuration, run through the 2 → 1 model, has the predicted loss.
    rng = np.random.default_rng(0)
    n = 400_000
    for p in (0.4, 0.8):
        loss, a, b = T.antipodal_optimum(p)
        x = np.where(rng.random((n, 2)) < p, rng.random((n, 2)), 0.0)
        out1 = np.maximum(a * (x[:, 0] - x[:, 1]) + b, 0)
        per = (x[:, 0] - out1) ** 2
        assert abs(per.mean() - loss) <= 6 * per.std() / math.sqrt(n)


def test_two_feature_phase_labels():
    W = torch.tensor([[[1.0, -0.9]], [[1.0, 0.01]], [[0.0, 1.0]], [[0.02, 0.01]], [[0.97, 0.39]], [[0.93, -0.4]]])
    b = torch.tensor([[0.1, 0.1], [0.0, 0.3], [0.3, 0.0], [0.1, 0.1], [-0.13, 0.14], [0.2, 0.5]])
    assert T.two_feature_phase(W, b) == ["antipodal pair", "feature 2 dropped", "feature 1 dropped", "neither",
                                         "same-sign pair", "asymmetric pair"]


def _exact_loss_quadrature(p, r, w1, w2, b1, b2):
    """The 2 → 1 model's loss by scipy quadrature, independently of the piecewise integration."""
    tot = 0.0
    for i, (wi, bi, imp) in enumerate([(w1, b1, 1.0), (w2, b2, r)]):
        def f(u, v, i=i, wi=wi, bi=bi):
            return ((u if i == 0 else v) - max(wi * (w1 * u + w2 * v) + bi, 0.0)) ** 2
        both = scipy.integrate.dblquad(lambda v, u: f(u, v), 0, 1, 0, 1, epsabs=1e-12)[0]
        one = scipy.integrate.quad(lambda u: f(u, 0.0), 0, 1, epsabs=1e-13)[0]
        one += scipy.integrate.quad(lambda v: f(0.0, v), 0, 1, epsabs=1e-13)[0]
        tot += imp * ((1 - p) ** 2 * f(0.0, 0.0) + p * (1 - p) * one + p * p * both)
    return tot


@pytest.mark.parametrize("seed", range(6))
def test_exact_two_feature_loss_matches_quadrature(seed):
    rng = np.random.default_rng(seed)
    z = rng.uniform(-1.5, 1.5, 4)
    if seed % 3 == 0:
        z[seed % 4] = 0.0  # a zero weight or bias: the kinks degenerate
    p, r = float(rng.uniform(0, 1)), float(rng.uniform(0.1, 3))
    assert T.two_feature_loss(p, r, *z) == pytest.approx(_exact_loss_quadrature(p, r, *z), rel=1e-7, abs=1e-10)


@given(p=st.floats(0.0, 1.0), r=st.floats(0.0, 5.0), z=st.lists(st.floats(-2, 2), min_size=4, max_size=4))
def test_exact_loss_gradient_and_vectorised_form(p, r, z):
    # (The loss is not differentiable where an output sits at its kink on a set of positive
    # measure, e.g. W = 0 with b_i = 0: generic points only.)
    assume(all(abs(x) > 1e-3 for x in z))
    loss, grad = TF._loss_and_grad(p, r, z)
    assert loss == pytest.approx(T.two_feature_loss(p, r, *z))
    h = 1e-6
    for k in range(4):
        e = np.zeros(4)
        e[k] = h
        fd = (T.two_feature_loss(p, r, *(np.array(z) + e)) - T.two_feature_loss(p, r, *(np.array(z) - e))) / (2 * h)
        assert grad[k] == pytest.approx(fd, abs=1e-5)
    w1, w2, b1, b2 = z
    vec = TF._output_loss_grid(p, np.array(w1), np.array(w1), np.array(w2), np.array(b1), 0)
    vec = vec + r * TF._output_loss_grid(p, np.array(w2), np.array(w1), np.array(w2), np.array(b2), 1)
    assert float(vec) == pytest.approx(loss, rel=1e-10, abs=1e-12)


def test_antipodal_pair_at_zero_bias_has_the_paper_loss():
    for p, r in [(0.3, 1.0), (0.6, 2.0), (1.0, 0.5)]:
        assert T.two_feature_loss(p, r, 1.0, -1.0, 0.0, 0.0) == pytest.approx((1 + r) * p * p / 6, abs=1e-14)


@pytest.mark.parametrize("p,r,w,loss", TC._AUDIT_POINTS)
def test_optimum_is_below_the_audit_configurations(p, r, w, loss):
    opt = T.optimal_two_feature(p, r)
    assert opt.loss <= loss + TC._ROUNDING and opt.loss <= TC._best_bias_loss(p, r, w) + 1e-9
    assert opt.loss == pytest.approx(T.two_feature_loss(p, r, *opt.W, *opt.b), abs=1e-12)
    lo, W, b = opt  # unpacks as (loss, W, b)
    assert lo == opt.loss and W == opt.W and b == opt.b


def test_audit_same_sign_pair_reproduces():
    # The audit's same-sign partial pair at p = 0.6 has the loss it reported (a local optimum).
    assert T.two_feature_loss(0.6, 1.0, 0.970, 0.392, -0.127, 0.140) == pytest.approx(0.10851, abs=TC._ROUNDING)


@pytest.mark.parametrize("p,r,phase", [(0.6, 1.0, "antipodal pair"), (0.9, 1.0, "asymmetric pair"),
                                       (0.6, 0.5, "feature 2 dropped"), (0.6, 2.0, "feature 1 dropped"),
                                       (0.2, 3.0, "antipodal pair")])
def test_optimum_phases(p, r, phase):
    assert T.optimal_two_feature(p, r).phase == phase


@pytest.mark.parametrize("p,r", [(0.6, 1.0), (0.9, 1.0), (0.3, 0.4)])
def test_random_starts_never_beat_the_optimum(p, r):
    # An independent search: 20 random starts with Nelder–Mead on the exact loss.
    rng = np.random.default_rng(1)
    best = T.optimal_two_feature(p, r).loss
    for _ in range(20):
        z0 = rng.uniform([-1.5, -1.5, -0.5, -0.5], [1.5, 1.5, 0.8, 0.8])
        res = scipy.optimize.minimize(lambda z: T.two_feature_loss(p, r, *z), z0, method="Nelder-Mead",
                                      options={"xatol": 1e-8, "fatol": 1e-12, "maxiter": 3000})
        assert res.fun >= best - 1e-9


def test_seed_boundary_is_right_below_and_wrong_above():
    # Below the seed's boundary the optimum superposes (it beats the b = 0 pair); above, at r = 1, it still does.
    assert T.optimal_two_feature(0.4, 1.0).phase == "antipodal pair"
    assert T.optimal_two_feature(0.3, 0.25).phase == "antipodal pair"  # boundary(0.25) = 0.30769 > 0.3
    assert T.optimal_two_feature(0.6, 1.0).phase == "antipodal pair" and 0.6 > T.two_feature_boundary(1.0)


def test_two_feature_inputs_are_checked():
    with pytest.raises(ValueError):
        T.two_feature_losses(1.5, 1.0)
    with pytest.raises(ValueError):
        T.two_feature_losses(0.5, -1.0)
    with pytest.raises(ValueError):
        T.two_feature_losses(0.5, 1.0, antipodal="best")
    with pytest.raises(ValueError):
        T.two_feature_boundary(0.0)


# ----------------------------------------------------------------------------- linear model


@given(n=st.integers(2, 10), data=st.data(), seed=seeds)
def test_linear_optimum_is_the_top_m_projection(n, data, seed):
    m = data.draw(st.integers(0, n))
    rng = np.random.default_rng(seed)
    imp = rng.uniform(0.1, 1.0, n)
    var = np.full(n, T.uniform_feature_variance(float(rng.uniform(0.01, 1.0))))
    A, loss = T.linear_optimum(imp, var, m)
    top = np.argsort(imp)[::-1][:m]
    P = np.zeros((n, n))
    P[top, top] = 1
    assert np.allclose(A, P, atol=1e-9)
    assert math.isclose(loss, float(np.sort(imp * var)[: n - m].sum()), rel_tol=1e-9, abs_tol=1e-15)


@given(n=st.integers(2, 8), seed=seeds)
def test_linear_optimum_beats_random_rank_m_maps(n, seed):
    rng = np.random.default_rng(seed)
    m = int(rng.integers(1, n))
    imp = rng.uniform(0.1, 1.0, n)
    L = rng.standard_normal((n, n))
    cov = L @ L.T / n  # correlated features: the optimum is no longer a coordinate projection
    A, loss = T.linear_optimum(imp, cov, m)
    Dm = np.diag(imp)
    f = lambda A: float(np.trace(Dm @ (np.eye(n) - A) @ cov @ (np.eye(n) - A).T))  # noqa: E731
    assert math.isclose(f(A), loss, rel_tol=1e-8, abs_tol=1e-12)
    assert np.linalg.matrix_rank(A, tol=1e-8) <= m
    for _ in range(20):
        B = rng.standard_normal((n, m)) @ rng.standard_normal((m, n))
        assert f(B) >= loss - 1e-9


def test_feature_variance():
    assert T.uniform_feature_variance(1.0) == pytest.approx(1 / 12)
    assert T.uniform_feature_variance(0.0) == 0.0


# ----------------------------------------------------------------------------- crowding


@pytest.mark.parametrize("k", [1, 2, 3, 4])
def test_up_to_four_directions_do_not_interfere(k):
    loss, a, b = T.best_polygon(k)
    assert loss == pytest.approx(0.0, abs=1e-12)


@pytest.mark.parametrize("k,a,b", [(5, 1.37, -0.28), (8, 1.0, -0.7), (12, 2.0, -1.5), (6, 1.0, 0.1)])
def test_polygon_feature_loss_matches_quadrature(k, a, b):
    def quad(f, kink):
        pts = [kink] if 0 < kink < 1 else None
        return scipy.integrate.quad(f, 0, 1, points=pts, epsabs=1e-13, epsrel=1e-12, limit=200)[0]

    own = quad(lambda x: (x - max(a * x + b, 0)) ** 2, -b / a)
    cosines = [math.cos(2 * math.pi * j / k) for j in range(1, k)]
    other = sum(quad(lambda x, c=c: max(a * c * x + b, 0) ** 2, -b / (a * c) if c else 2.0) for c in cosines)
    assert T.polygon_feature_loss(k, a, b) == pytest.approx(own + other, rel=1e-9, abs=1e-12)


def test_crowding_prediction_saturates_at_seven():
    losses = [T.best_polygon(k)[0] for k in range(1, 17)]
    assert all(x < 1 / 3 for x in losses) and all(np.diff(losses[3:]) > 0)  # interference grows with k
    assert [T.crowding_prediction(n)["k"] for n in (3, 5, 7, 8, 16)] == [3, 5, 7, 7, 7]
    pred = T.crowding_prediction(16)
    assert pred["interference"] == pytest.approx(math.cos(2 * math.pi / 7))
    # Dropping all 16 features costs 16/3; the best heptagon saves 7 (1/3 - ℓ*(7)).
    assert pred["loss_per_density"] == pytest.approx(16 / 3 - 7 * (1 / 3 - T.best_polygon(7)[0]))


def test_pentagon_optimum_matches_the_trained_pentagon():
    # The trained pentagon (tms.pentagon) has norms ≈ 1.13–1.17 and bias ≈ -0.28 at small p.
    loss, a, b = T.best_polygon(5)
    assert math.sqrt(a) == pytest.approx(1.17, abs=0.01) and b == pytest.approx(-0.28, abs=0.01)


# ----------------------------------------------------------------------------- sticky statistics


@given(tol=st.floats(0.001, 0.1))
def test_sticky_null_fraction_matches_a_grid(tol):
    cands = T.STICKY_VALUES + (1 / 3,)
    grid = torch.linspace(0, 1, 200_001, dtype=torch.float64)
    idx = T.nearest_value(grid, cands, tol)
    for count in (T.STICKY_VALUES, (1 / 3,)):
        hits = torch.zeros_like(idx, dtype=torch.bool)
        for c in count:
            hits |= idx == cands.index(c)
        # each interval edge is resolved to one grid step: 2 edges per candidate
        grid_error = 2 * len(cands) * (1 / (grid.numel() - 1))
        assert T.sticky_null_fraction(cands, tol, count) == pytest.approx(float(hits.double().mean()), abs=grid_error)


def test_nearest_value():
    D = torch.tensor([0.0, 0.36, 0.34, 0.5, 0.9])
    assert T.nearest_value(D, (0.375, 1 / 3, 0.5), 0.02).tolist() == [-1, 0, 1, 2, -1]


# ----------------------------------------------------------------------------- the registered checks


def test_all_tms_claims_registered():
    assert [c for c in CLAIMS if c.startswith("tms.")] == MY_CLAIMS
    for cid in MY_CLAIMS:
        assert CLAIMS[cid].source and CLAIMS[cid].statement
    assert {cid for cid in MY_CLAIMS if CLAIMS[cid].searches} == SEARCHING


@pytest.mark.parametrize("cid", MY_CLAIMS)
def test_check_at_tiny_budget(cid):
    rec = run_claim(CLAIMS[cid], Context(budget="tiny"))
    assert rec.verdict == EXPECTED.get(cid, "holds"), rec.detail
    assert rec.predicted is not None and rec.observed is not None and rec.tolerance is not None


def test_frame_check_detects_a_wrong_frame(monkeypatch):
    # Swap a frame for the non-tight equal-edge antiprism: the exact check must fail.
    def bad():
        F = T.square_antiprism().clone()
        F[2] *= 0.9
        return F / F.norm(dim=0)

    monkeypatch.setitem(T.TIGHT_FRAMES, "square antiprism", bad)
    rec = run_claim(CLAIMS["tms.frame_dimensionality"], Context(budget="tiny"))
    assert rec.verdict == "fails"


@pytest.mark.slow
@pytest.mark.parametrize("cid", MY_CLAIMS)
def test_check_at_default_budget(cid):
    rec = run_claim(CLAIMS[cid], Context(budget="default"))
    assert rec.verdict == EXPECTED.get(cid, "holds"), rec.detail


# ----------------------------------------------------------------------------- negative controls
def test_two_feature_phase_check_fails_with_a_wrong_loss(monkeypatch):
    monkeypatch.setattr(TC, "two_feature_loss", lambda p, r, *z: 1.01 * TF.two_feature_loss(p, r, *z))
    assert run_claim(CLAIMS["tms.two_feature_phase"], Context(budget="tiny")).verdict == "fails"


def test_boundary_check_fails_when_the_optimum_is_not_optimal(monkeypatch):
    # An "optimum" that only knows the dropped-feature configurations: trained models beat it.
    def dropped_only(p, r):
        o1 = TF.TwoFeatureOptimum(p, r, TF.two_feature_loss(p, r, 1.0, 0.0, 0.0, p / 2), (1.0, 0.0), (0.0, p / 2),
                                  "feature 2 dropped")
        o2 = TF.TwoFeatureOptimum(p, r, TF.two_feature_loss(p, r, 0.0, 1.0, p / 2, 0.0), (0.0, 1.0), (p / 2, 0.0),
                                  "feature 1 dropped")
        return min(o1, o2, key=lambda o: o.loss)

    monkeypatch.setattr(TC, "optimal_two_feature", dropped_only)
    assert run_claim(CLAIMS["tms.two_feature_boundary"], Context(budget="tiny")).verdict == "fails"


def test_sticky_statistics_can_hold_and_fail():
    # Tight frames (D on the sticky values) hold; features all at D = 1/3 and spread uniformly fail.
    frames = T.block_frame(T.pentagon(), T.tetrahedron(), T.digon(), T.tight_frame("dedicated"), T.triangle())
    D = feature_dimensionality(frames)
    assert TC.sticky_statistics(D, torch.ones_like(D))["ok"]
    third = torch.full((40,), 1 / 3, dtype=torch.float64)
    assert not TC.sticky_statistics(third, torch.ones_like(third))["ok"]
    spread = torch.linspace(0.0, 1.0, 400, dtype=torch.float64)
    st_ = TC.sticky_statistics(spread, torch.ones_like(spread))
    assert not st_["ok"] and st_["near sticky"] == pytest.approx(st_["null sticky"], abs=0.01)
    assert TC.sticky_statistics(D, torch.zeros_like(D))["represented"] == 0


def test_sticky_design_is_preregistered():
    assert TC.STICKY_DENSITIES == (0.45, 0.35, 0.28)  # the small-frame band: the rule counts these
    assert TC.STICKY_PACKED_DENSITIES == (0.12, 0.07, 0.04)  # the packing: a finding, not counted
    assert TC.STICKY_SWEEP == (1.0, 0.6, 0.45, 0.35, 0.28, 0.2, 0.12, 0.07, 0.04)
    assert (TC.STICKY_N, TC.STICKY_M, TC.STICKY_TOL) == (50, 10, 0.02)
    statement = CLAIMS["tms.sticky_dimensionality"].statement
    for q in TC.STICKY_DENSITIES + TC.STICKY_PACKED_DENSITIES:  # named in the claim itself
        assert f"{q:g}" in statement
    assert "n = 50" in statement and "m = 10" in statement


def _harmonic_frame(k: int, m: int) -> torch.Tensor:
    """An equal-norm tight frame of k unit vectors in R^m (m even): every D_i = m/k, all overlapping."""
    j = torch.arange(k, dtype=torch.float64)
    rows = []
    for f in range(1, m // 2 + 1):
        rows += [torch.cos(2 * math.pi * f * j / k), torch.sin(2 * math.pi * f * j / k)]
    return torch.stack(rows) * math.sqrt(2 / m)


def _sweep(band: torch.Tensor, packed: torch.Tensor) -> torch.Tensor:
    """W (9, 10, 50) for TC.STICKY_SWEEP: ``band`` at the band densities, ``packed`` everywhere else."""
    return torch.stack([band if q in TC.STICKY_DENSITIES else packed for q in TC.STICKY_SWEEP])


def test_sticky_report_counts_the_band_and_reports_the_packing():
    # Band: 10 antipodal pairs (D = 1/2) and 30 dropped features. Elsewhere: 30 features packed in one
    # frame spanning the 10 dims, D = 10/30 = 1/3 exactly (what the sweep trains at p ≈ 0.2), 20 dropped.
    pairs = torch.zeros(10, 50, dtype=torch.float64)
    for i in range(10):
        pairs[i, 2 * i], pairs[i, 2 * i + 1] = 1.0, -1.0
    packed = torch.cat([_harmonic_frame(30, 10), torch.zeros(10, 20, dtype=torch.float64)], 1)
    assert torch.allclose(feature_dimensionality(packed)[:30], torch.full((30,), 1 / 3, dtype=torch.float64))
    rep = TC.sticky_report(_sweep(pairs, packed))
    assert rep["ok"] and rep["band"]["near sticky"] == 1.0 and rep["band"]["near 1/3"] == 0.0
    assert rep["packing"]["one frame"] == 3 and rep["packing"]["at m/represented"] == 1.0
    assert rep["per density"]["p=0.35"]["groups"] == {"2 in 1d": 10}
    assert rep["per density"]["p=0.04"]["groups"] == {"30 in 10d": 1}
    # The old pooled rule over every density counted the packing at 1/3 against stickiness.
    W = _sweep(pairs, packed)
    assert not TC.sticky_statistics(feature_dimensionality(W), feature_norms(W))["ok"]


def test_sticky_report_fails_small_frames_at_one_third():
    # Hexagons (6 features in 2 dims: D = 1/3) in the band are the claim's failure, not a packing.
    hexes = torch.zeros(10, 50, dtype=torch.float64)
    for i in range(5):
        hexes[2 * i: 2 * i + 2, 6 * i: 6 * i + 6] = T.equally_spaced(6)
    assert torch.allclose(feature_dimensionality(hexes)[:30], torch.full((30,), 1 / 3, dtype=torch.float64))
    rep = TC.sticky_report(_sweep(hexes, hexes))
    assert not rep["ok"] and rep["band"]["near 1/3"] == 1.0
    assert rep["packing"]["one frame"] == 0 and rep["per density"]["p=0.45"]["groups"] == {"6 in 2d": 5}


def test_sticky_report_rejects_a_sweep_without_the_named_densities():
    W = torch.zeros(3, 10, 50, dtype=torch.float64)
    with pytest.raises(ValueError, match="densities"):
        TC.sticky_report(W, (0.45, 0.35, 0.28))
    with pytest.raises(ValueError, match="W must be"):
        TC.sticky_report(W)


def test_crowding_search_stuck_at_a_hexagon_is_inconclusive(monkeypatch):
    # Pretend the search ended at the regular hexagon (a local minimum, above the heptagon): it lost
    # the known answer, which neither confirms nor refutes the claim. Inconclusive, never 'fails'.
    def hexagon(ctx, ns, **kw):
        N = max(ns)
        _, a, b = T.best_polygon(6)
        W = torch.zeros(len(ns), 1, 2, N, dtype=torch.float64)
        W[:, 0, :, :6] = T.equally_spaced(6) * math.sqrt(a)
        bb = torch.zeros(len(ns), 1, N, dtype=torch.float64)
        bb[:, 0, :6] = b
        mask = (torch.arange(N)[None, :] < torch.tensor(ns)[:, None]).double()[:, None, :]
        L = TCR.limit_loss(W, bb, mask)
        return TCR.LimitSearch(W, bb, L, L, L[:, 0])

    monkeypatch.setattr(TC, "crowding_search", hexagon)
    rec = run_claim(CLAIMS["tms.circle_crowding"], Context(budget="tiny"))
    assert rec.verdict == "inconclusive" and rec.budget_stable is False
    assert rec.observed["represented"] == {7: 6, 8: 6, 10: 6}
    assert rec.observed["n where the search stuck above it"] == [7, 8, 10] and "STUCK" in rec.detail


def test_crowding_check_fails_when_a_configuration_beats_the_prediction(monkeypatch):
    # A wrong prediction (the hexagon, k* = 6): the search, which starts from every k-gon, finds the
    # heptagon below it and refutes the claim.
    def hexagon_prediction(n):
        _, a, b = T.best_polygon(6)
        return {"k": 6, "loss_per_density": n / 3 + 6 * (T.best_polygon(6)[0] - 1 / 3), "a": a, "b": b,
                "interference": T.circle_interference(6)}

    monkeypatch.setattr(TC, "crowding_prediction", hexagon_prediction)
    rec = run_claim(CLAIMS["tms.circle_crowding"], Context(budget="tiny"))
    assert rec.verdict == "fails"
    assert rec.observed["n with a configuration below the prediction"] == [7, 8, 10]


def _short_search(with_analytic_starts: bool):
    """A deliberately short search (2 random starts, 60 steps, no hops), with or without the k-gons."""
    def search(ctx, ns, **kw):
        init = TCR.polygon_starts(ns) if with_analytic_starts else None
        return TCR.descend_limit_loss(ns, starts=2, steps=60, hops=0, init=init,
                                      seed=derive_seed(ctx.seed, "crowding") % 2**31)
    return search


def test_crowding_without_the_analytic_starts_gets_stuck_and_says_so(monkeypatch):
    # Negative control: the same short search without the known answers sticks above the heptagon
    # (the second machine's failure: 0.62249 > 0.5829 at n = 7). The old check called that 'fails';
    # the check says the search stuck (inconclusive); with the analytic starts it holds.
    stuck = _short_search(False)(Context(), (7, 8, 10))
    pred = [T.crowding_prediction(n)["loss_per_density"] for n in (7, 8, 10)]
    assert all(float(stuck.loss[c, 0]) > pred[c] + 1e-3 for c in range(3))
    monkeypatch.setattr(TC, "crowding_search", _short_search(False))
    rec = run_claim(CLAIMS["tms.circle_crowding"], Context(budget="tiny"))
    assert rec.verdict == "inconclusive" and rec.observed["n where the search stuck above it"] == [7, 8, 10]
    monkeypatch.setattr(TC, "crowding_search", _short_search(True))
    rec = run_claim(CLAIMS["tms.circle_crowding"], Context(budget="tiny"))
    assert rec.verdict == "holds" and rec.budget_stable is True, rec.detail
    assert rec.observed["represented"] == {7: 7, 8: 7, 10: 7} and rec.observed["worst gap error (deg)"] <= 1e-6


def test_polygon_starts_are_the_k_gons():
    W, b = TCR.polygon_starts([5, 7])
    assert W.shape == (2, 7, 2, 7) and b.shape == (2, 7, 7)
    for c, n in enumerate((5, 7)):
        mask = (torch.arange(7) < n).double()
        L = TCR.limit_loss(W[c], b[c], mask.expand(7, -1))
        for slot in range(7):
            k = min(slot + 1, n)
            assert float(L[slot]) == pytest.approx(k * T.best_polygon(k)[0] + (n - k) / 3, rel=1e-10, abs=1e-12)
            assert int(TCR.represented(W[c, slot], b[c, slot]).sum()) == k
        assert float(W[c, :, :, n:].abs().sum() + b[c, :, n:].abs().sum()) == 0.0  # padding stays zero


def test_descend_never_ends_above_its_analytic_starts():
    init = TCR.polygon_starts([7, 9])
    found = TCR.descend_limit_loss([7, 9], starts=2, steps=30, hops=1, init=init, seed=3)
    mask = (torch.arange(9)[None, :] < torch.tensor([7, 9])[:, None]).double()[:, None, :]
    assert torch.all(found.loss[:, 0] <= TCR.limit_loss(*init, mask).min(1).values + 1e-12)
    assert torch.all(found.lowest <= found.loss[:, 0])
    assert found.random_first_round.shape == (2, 2)
    with pytest.raises(ValueError, match="init"):
        TCR.descend_limit_loss([7, 9], starts=2, steps=1, hops=0, init=(init[0][:, :, :, :7], init[1]))


def test_crowding_search_follows_the_context_seed():
    a = TC.crowding_search(Context(seed=0), (7,), starts=3, steps=20, hops=0)
    b = TC.crowding_search(Context(seed=1), (7,), starts=3, steps=20, hops=0)
    assert not torch.equal(a.random_first_round, b.random_first_round)


def test_limit_loss_of_the_polygon_matches_the_per_feature_formula():
    for k in (5, 7, 9):
        _, a, b = T.best_polygon(k)
        W = T.equally_spaced(k) * math.sqrt(a)
        total = float(TCR.limit_loss(W, torch.full((k,), b, dtype=torch.float64)))
        assert total == pytest.approx(k * T.polygon_feature_loss(k, a, b), rel=1e-10)
        # padding with dropped features adds 1/3 each
        Wp = torch.cat([W, torch.zeros(2, 3, dtype=torch.float64)], 1)
        bp = torch.cat([torch.full((k,), b, dtype=torch.float64), torch.zeros(3, dtype=torch.float64)])
        assert float(TCR.limit_loss(Wp, bp)) == pytest.approx(total + 1, rel=1e-10)
        assert int(TCR.represented(Wp, bp).sum()) == k


def test_two_feature_boundary_counterexample_is_pinned():
    """r = 1, p = 0.6 lies above the claimed boundary 4/7, yet the antipodal pair with its
    optimal bias beats both dedicated configurations: the 'iff' is refuted there."""
    assert T.two_feature_boundary(1.0) == pytest.approx(4 / 7)
    unit = T.two_feature_losses(0.6, 1.0)
    assert unit["antipodal"] > min(unit["ignore_1"], unit["ignore_2"])  # the b = 0 pair loses ...
    best = T.two_feature_losses(0.6, 1.0, antipodal="bias")
    assert best["antipodal"] < min(best["ignore_1"], best["ignore_2"])  # ... the biased one wins
    assert best["ignore_1"] == pytest.approx(0.6 / 3 - 0.36 / 4)
