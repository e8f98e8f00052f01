"""Hessian-vector products, Lanczos, Hutchinson and stochastic Lanczos quadrature (theory.hessian)."""
import itertools
import math

import numpy as np
import pytest
import torch
from hypothesis import given, settings
from hypothesis import strategies as st

from theory import hessian as hs
from theory.hessian import claims as hclaims
from theory.registry import CLAIMS, Context, run_claim
from toymodels.data import SparseFeatures
from toymodels.models import TMSConfig, build_model

SPECTRA = ("spread", "repeated", "zeros", "clustered", "psd")


def _gen(seed: int) -> torch.Generator:
    g = torch.Generator()
    g.manual_seed(seed)
    return g


def _sym_from_eigs(eigs, seed):
    g = _gen(seed)
    lam = torch.tensor(eigs, dtype=torch.float64)
    n = lam.numel()
    Q, R = torch.linalg.qr(torch.randn(n, n, generator=g, dtype=torch.float64))
    Q = Q * torch.sign(torch.diagonal(R))
    A = (Q * lam) @ Q.T
    return 0.5 * (A + A.T)


# ------------------------------------------------------------------ Lanczos


@given(n=st.integers(1, 24), m_frac=st.floats(0.0, 1.0), spectrum=st.sampled_from(SPECTRA), seed=st.integers(0, 2**31 - 1))
def test_lanczos_gauss_quadrature_moments(n, m_frac, spectrum, seed):
    g = _gen(seed)
    A, _ = hs.random_symmetric(n, spectrum, g)
    m = max(1, min(n, 1 + int(m_frac * n)))
    v = torch.randn(n, generator=g, dtype=torch.float64)
    v = v / v.norm()
    res = hs.lanczos(A, m=m, v0=v, generator=g)
    theta, tau = res.ritz()
    assert abs(float(tau.sum()) - 1.0) < 1e-12
    exact = hs.quadratic_form_moments(A, v, 2 * m)
    quad = torch.stack([(tau * theta.pow(p)).sum() for p in range(2 * m + 1)])
    # ||A|| = ||v|| = 1: exact for every p <= 2m - 1
    assert float((quad[: 2 * m] - exact[: 2 * m]).abs().max()) < 1e-10
    # at p = 2m the rule is off by exactly (β_1 ⋯ β_m)²
    gap = float(exact[2 * m] - quad[2 * m])
    pred = float(torch.prod(torch.cat([res.betas, torch.tensor([res.beta_next], dtype=torch.float64)])) ** 2)
    assert abs(gap - pred) < 1e-10
    assert gap > -1e-12


@given(
    eigs=st.lists(st.sampled_from([-2.0, -0.5, 0.0, 0.0, 1.0, 3.0]), min_size=1, max_size=16),
    seed=st.integers(0, 2**31 - 1),
)
def test_lanczos_full_run_recovers_repeated_and_zero_eigenvalues(eigs, seed):
    A = _sym_from_eigs(eigs, seed)
    n = len(eigs)
    res = hs.lanczos(A, m=n, generator=seed, return_q=True)
    Q, T = res.Q, res.tridiagonal()
    assert float((Q @ Q.T - torch.eye(n, dtype=torch.float64)).abs().max()) < 1e-12
    assert float((Q @ A @ Q.T - T).abs().max()) < 1e-12
    got = hs.lanczos_spectrum(A, generator=seed)
    assert torch.allclose(got, torch.tensor(sorted(eigs), dtype=torch.float64), atol=1e-11)
    distinct = len(set(eigs))
    # each Krylov block has at most as many dimensions as A has distinct eigenvalues
    assert res.restarts + 1 >= math.ceil(n / distinct)
    assert hs.numerical_rank(got, 1e-9) == sum(e != 0 for e in eigs)


@given(n=st.integers(2, 30), m_frac=st.floats(0.1, 1.0), seed=st.integers(0, 2**31 - 1))
def test_ritz_values_interlace_and_residual_bounds(n, m_frac, seed):
    g = _gen(seed)
    A, lam = hs.random_symmetric(n, "spread", g)
    lam = torch.sort(lam).values
    m = max(1, min(n, int(m_frac * n)))
    ext = hs.lanczos_extreme_eigs(A, m=m, k=1, generator=g)
    assert lam[0] - 1e-12 <= float(ext.smallest[0]) and float(ext.largest[0]) <= lam[-1] + 1e-12
    for th, bound in ((ext.largest[0], ext.largest_bound[0]), (ext.smallest[0], ext.smallest_bound[0])):
        assert float((lam - th).abs().min()) <= float(bound) + 1e-10


def test_lanczos_matches_callable_and_matrix():
    g = _gen(3)
    A, _ = hs.random_symmetric(12, "spread", g)
    v = torch.randn(12, generator=g, dtype=torch.float64)
    r1 = hs.lanczos(A, m=6, v0=v)
    r2 = hs.lanczos(lambda x: A @ x, 12, 6, v)
    assert torch.allclose(r1.alphas, r2.alphas, atol=1e-14) and torch.allclose(r1.betas, r2.betas, atol=1e-14)
    # breakdown='stop' on a matrix with 2 distinct eigenvalues stops after 2 steps
    B = _sym_from_eigs([1.0, 1.0, 1.0, -1.0, -1.0], 1)
    r = hs.lanczos(B, m=5, v0=torch.ones(5, dtype=torch.float64), breakdown="stop")
    assert r.steps == 2 and r.beta_next < 1e-10


# ------------------------------------------------------------------ Hutchinson


@given(n=st.integers(1, 9), symmetric=st.booleans(), seed=st.integers(0, 2**31 - 1))
def test_rademacher_variance_by_enumeration(n, symmetric, seed):
    A = torch.randn(n, n, generator=_gen(seed), dtype=torch.float64)
    if symmetric:
        A = (A + A.T) / 2
    mean, var = hs.rademacher_exact_moments(A)
    scale = float(A.square().sum()) + 1e-300
    assert abs(mean - float(torch.trace(A))) <= 1e-12 * math.sqrt(scale) + 1e-12
    assert abs(var - hs.hutchinson_variance(A, "rademacher")) <= 1e-11 * scale
    # by hand for symmetric A: 2(||A||_F² − Σ A_ii²); Gaussian is 2||A||_F² >= it
    S = (A + A.T) / 2
    assert abs(hs.hutchinson_variance(A, "rademacher") - 2 * float(S.square().sum() - torch.diagonal(S).square().sum())) < 1e-10 * scale
    assert hs.hutchinson_variance(A, "gaussian") >= hs.hutchinson_variance(A, "rademacher") - 1e-12


def test_rademacher_enumeration_small_case_by_hand():
    A = torch.tensor([[1.0, 2.0], [2.0, 5.0]], dtype=torch.float64)
    # z ∈ {±1}²: zᵀAz = 6 + 4 z1 z2 ∈ {10, 2}: mean 6, variance 16 = 2 (||A||_F² − 26) = 2 · 8
    assert hs.rademacher_exact_moments(A) == pytest.approx((6.0, 16.0))
    assert hs.hutchinson_variance(A, "rademacher") == pytest.approx(16.0)
    assert hs.hutchinson_variance(A, "gaussian") == pytest.approx(2 * 34.0)
    assert hs.hutchinson_variance(torch.diag(torch.tensor([3.0, -1.0])), "rademacher") == 0.0


@pytest.mark.parametrize("kind", hs.PROBE_KINDS)
def test_hutchinson_empirical_variance_matches_formula(kind):
    g = _gen(11)
    A, _ = hs.random_symmetric(15, "spread", g)
    A = A + torch.diag(torch.linspace(0, 1, 15, dtype=torch.float64))
    K = 40_000
    est = hs.hutchinson_trace(A, n_probes=K, kind=kind, generator=g)
    s = est.samples
    var = float(s.var())
    c = s - s.mean()
    se_var = math.sqrt(float(c.pow(4).mean() - var**2) / K)
    assert abs(var - hs.hutchinson_variance(A, kind)) < 5 * se_var
    assert abs(est.estimate - float(torch.trace(A))) < 5 * est.std_error
    if kind == "rademacher":
        assert set(hs.probe_vectors(50, 7, kind, g).unique().tolist()) == {-1.0, 1.0}
    # a callable operator gives the same samples as the matrix
    a = hs.hutchinson_samples(A, n_probes=20, kind=kind, generator=5)
    b = hs.hutchinson_samples(lambda v: A @ v, 15, 20, kind, 5)
    assert torch.allclose(a, b, atol=1e-12)


# ------------------------------------------------------------------ HVPs


@given(d=st.integers(1, 12), seed=st.integers(0, 2**31 - 1), cubic=st.booleans())
def test_hvp_matches_analytic_hessian(d, seed, cubic):
    g = _gen(seed)
    A = torch.randn(d, d, generator=g, dtype=torch.float64)
    C = torch.randn(d, d, d, generator=g, dtype=torch.float64) * float(cubic)
    C = sum(C.permute(*p) for p in itertools.permutations(range(3))) / 6
    x0, v = torch.randn(d, generator=g, dtype=torch.float64), torch.randn(d, generator=g, dtype=torch.float64)

    def f(x):
        return 0.5 * x @ A @ x + torch.einsum("ijk,i,j,k->", C, x, x, x) / 6

    H = 0.5 * (A + A.T) + torch.einsum("ijk,k->ij", C, x0)
    got = hs.hvp(f, x0, v)
    assert float((got - H @ v).norm()) <= 1e-10 * max(float((H @ v).norm()), 1e-30) + 1e-13
    assert torch.allclose(hs.explicit_hessian(f, x0), H, atol=1e-10)
    assert torch.allclose(hs.explicit_hessian(f, x0, mode="reverse-over-reverse"), H, atol=1e-10)


def test_hvp_dict_params_flat_and_dict_vectors():
    g = _gen(0)
    P = {"W": torch.randn(3, 4, generator=g, dtype=torch.float64), "u": torch.randn(4, generator=g, dtype=torch.float64)}

    def f(p):
        return torch.tanh(p["W"] @ p["u"]).square().sum() + (p["W"] ** 2).sum() * p["u"].sum()

    flat, fl = hs.flatten_params(P)
    assert fl.dim == 16 and torch.equal(fl.flatten(fl.unflatten(flat)), flat)
    H = hs.explicit_hessian(f, P, mode="reverse-over-reverse")
    v = torch.randn(16, generator=g, dtype=torch.float64)
    assert torch.allclose(hs.hvp(f, P, v), H @ v, atol=1e-12)
    out = hs.hvp(f, P, fl.unflatten(v))
    assert set(out) == {"W", "u"} and torch.allclose(fl.flatten(out), H @ v, atol=1e-12)
    assert torch.allclose(hs.hvp_operator(f, P)(v), H @ v, atol=1e-12)


@settings(max_examples=10)  # each example differentiates a model several ways (~1 s)
@given(n=st.integers(2, 8), m=st.integers(1, 3), seed=st.integers(0, 1000))
def test_hvp_toy_model_instance(n, m, seed):
    m = min(m, n)
    model = build_model(TMSConfig(n_features=n, d_hidden=m, n_instances=3, importance_decay=0.9), seed=seed)
    g = _gen(seed)
    with torch.no_grad():
        model.b_IN.copy_(0.3 * torch.randn(3, n, generator=g))
    x = SparseFeatures(n, 0.4, seed=seed).sample(64)
    il = hs.toy_model_instance_loss(model, 2, x)
    assert il.dim == m * n + n
    with torch.no_grad():
        ref = float(model.loss(x)[2])
    assert abs(float(il().detach()) - ref) <= 1e-5 * max(ref, 1e-12)
    H = il.hessian(mode="reverse-over-reverse")
    assert torch.allclose(H, H.T, atol=1e-12)
    v = torch.randn(il.dim, generator=g, dtype=torch.float64)
    Hv = H @ v
    assert float((il.hvp(v) - Hv).norm()) <= 1e-9 * max(float(Hv.norm()), 1e-30) + 1e-14
    assert torch.allclose(hs.toy_model_loss_hessian(model, 2, x), H, atol=1e-12)
    # Hutchinson on HVPs alone estimates tr H (within 5 standard errors)
    est = hs.hutchinson_trace(il.hvp, il.dim, 16, "rademacher", g)
    assert abs(est.estimate - float(torch.trace(H))) <= 5 * est.std_error + 1e-12
    # the flattening is (W (M, N) row-major, then b)
    sl = il.flattener.slices()
    assert torch.allclose(il.params[sl["W_IMN"]].view(m, n), model.W_IMN[2].double())


# ------------------------------------------------------------------ densities, rank


def test_slq_full_krylov_equals_probe_average_and_density_integrates():
    g = _gen(2)
    n = 10
    A, lam = hs.random_symmetric(n, "spread", g)
    nodes, weights = hs.slq_quadrature(A, m=n, n_probes=4, kind="gaussian", generator=7)
    Z = hs.probe_vectors(4, n, "gaussian", 7)
    for p in range(4):
        direct = float(torch.mean(torch.stack([z @ torch.linalg.matrix_power(A, p) @ z / (z @ z) for z in Z])))
        assert abs(float((weights * nodes.pow(p)).sum()) - direct) < 1e-12
    grid = torch.linspace(-3, 3, 4001, dtype=torch.float64)
    dens = hs.slq_density(A, m=6, n_probes=5, grid=grid, sigma=0.05, generator=1)
    assert abs(float(torch.trapezoid(dens, grid)) - 1.0) < 1e-6
    ex = hs.exact_density(lam, grid, 0.05)
    assert abs(float(torch.trapezoid(ex, grid)) - 1.0) < 1e-6


def test_slq_density_approaches_exact_density():
    g = _gen(4)
    A, lam = hs.random_symmetric(40, "clustered", g)
    grid = torch.linspace(-1.5, 1.5, 3001, dtype=torch.float64)
    ex = hs.exact_density(lam, grid, 0.05)
    slq = hs.slq_density(A, m=12, n_probes=60, grid=grid, sigma=0.05, generator=3)
    l1 = float(torch.trapezoid((slq - ex).abs(), grid))
    assert l1 < 0.15, l1


def test_numerical_rank():
    ev = torch.tensor([0.0, 1e-12, -3.0, 2.0, 1e-5])
    assert hs.numerical_rank(ev, 1e-8) == 3
    assert hs.numerical_rank(ev, 1e-3) == 2
    assert hs.numerical_rank(ev, 0.0) == 4
    assert hs.numerical_rank(ev, 1e-8, atol=2.5) == 1


# ------------------------------------------------------------------ bad inputs


def test_bad_inputs_raise_value_error():
    A = torch.eye(4, dtype=torch.float64)
    with pytest.raises(ValueError, match="square"):
        hs.lanczos(torch.zeros(3, 4), m=2)
    with pytest.raises(ValueError, match="m must"):
        hs.lanczos(A, m=0)
    with pytest.raises(ValueError, match="m must"):
        hs.lanczos(A, m=5)
    with pytest.raises(ValueError, match="dim"):
        hs.lanczos(lambda v: v, m=2)
    with pytest.raises(ValueError, match="v0"):
        hs.lanczos(A, m=2, v0=torch.zeros(4))
    with pytest.raises(ValueError, match="v0"):
        hs.lanczos(A, m=2, v0=torch.ones(3))
    with pytest.raises(ValueError, match="matvec"):
        hs.lanczos(lambda v: v[:2], 4, 2)
    with pytest.raises(ValueError, match="finite"):
        hs.lanczos(torch.full((2, 2), float("nan")), m=1)
    with pytest.raises(ValueError, match="kind"):
        hs.hutchinson_trace(A, n_probes=3, kind="uniform")
    with pytest.raises(ValueError, match="kind"):
        hs.hutchinson_variance(A, "cauchy")
    with pytest.raises(ValueError, match="square"):
        hs.hutchinson_variance(torch.zeros(2, 3))
    with pytest.raises(ValueError, match="n_probes"):
        hs.hutchinson_trace(A, n_probes=0)
    with pytest.raises(ValueError, match="n <= 20"):
        hs.rademacher_exact_moments(torch.eye(21))
    with pytest.raises(ValueError, match="grid"):
        hs.slq_density(A, m=2, n_probes=2)
    with pytest.raises(ValueError, match="sigma"):
        hs.exact_density([1.0], [0.0], 0.0)
    with pytest.raises(ValueError, match="shape"):
        hs.hvp(lambda x: (x**2).sum(), torch.ones(3, dtype=torch.float64), torch.ones(4))
    with pytest.raises(ValueError, match="keys"):
        hs.hvp(lambda p: (p["a"] ** 2).sum(), {"a": torch.ones(2)}, {"b": torch.ones(2)})
    model = build_model(TMSConfig(n_features=4, d_hidden=2, n_instances=2))
    with pytest.raises(ValueError, match="instance"):
        hs.toy_model_instance_loss(model, 2, torch.zeros(8, 4))
    with pytest.raises(ValueError, match="instances"):
        hs.toy_model_instance_loss(model, 0, torch.zeros(3, 8, 4))


# ------------------------------------------------------------------ registered claims


def test_claims_can_fail():
    """The checks compare against independent references: a wrong variance formula or a
    truncated Lanczos run is caught."""
    A = torch.tensor([[1.0, 2.0], [2.0, 5.0]], dtype=torch.float64)
    _, var = hs.rademacher_exact_moments(A)
    assert abs(var - hs.hutchinson_variance(A, "gaussian")) > 1.0  # the Gaussian formula is wrong for signs
    B, lam = hs.random_symmetric(20, "spread", _gen(1))
    short = hs.lanczos_extreme_eigs(B, m=3, generator=0)
    assert float(lam.max() - short.largest[0]) > 1e-8  # 3 steps do not reach λ_max of a spread spectrum


# Negative controls: each registered check, fed a wrong ingredient, reports "fails" (each holds
# on the real ones: tests/theory/test_registry.py runs every claim).

def _off(real, factor=1.001):
    return lambda *a, **k: factor * real(*a, **k)


def _off_hvp(f, params, v):
    out = hs.hvp(f, params, v)
    return {k: 1.001 * t for k, t in out.items()} if isinstance(out, dict) else 1.001 * out


@pytest.mark.parametrize("cid, name, wrong", [
    ("hessian.hvp_exact", "hvp", lambda: _off_hvp),  # H·v off by 0.1%
    ("hessian.lanczos_moments", "quadratic_form_moments", lambda: _off(hs.quadratic_form_moments, 1 + 1e-7)),
    ("hessian.hutchinson_variance", "hutchinson_variance",  # the Gaussian formula used for sign probes
     lambda: lambda A, kind="rademacher": hs.hutchinson_variance(A, "gaussian")),
])
def test_checks_fail_on_a_wrong_ingredient(monkeypatch, cid, name, wrong):
    monkeypatch.setattr(hclaims, name, wrong())
    rec = run_claim(CLAIMS[cid], Context(budget="tiny"))
    assert rec.verdict == "fails" and "check raised" not in rec.detail, rec.detail


def test_toy_model_spectrum_fails_on_a_wrong_hvp(monkeypatch):
    """Lanczos on an HVP 0.1% too large no longer reproduces the explicit Hessian's spectrum."""
    class Off(hs.InstanceLoss):
        def hvp(self, v):
            return 1.001 * super().hvp(v)

    real = hs.toy_model_instance_loss
    monkeypatch.setattr(hclaims, "toy_model_instance_loss", lambda *a, **k: Off(**vars(real(*a, **k))))
    rec = run_claim(CLAIMS["hessian.toy_model_spectrum"], Context(budget="tiny"))
    assert rec.verdict == "fails" and "check raised" not in rec.detail, rec.detail


def test_only_the_trained_check_searches():
    # hessian.toy_model_spectrum trains a toy model: its verdict gets a second opinion on fresh seeds.
    ids = [cid for cid in CLAIMS if cid.startswith("hessian.")]
    assert {cid for cid in ids if CLAIMS[cid].searches} == {"hessian.toy_model_spectrum"}
