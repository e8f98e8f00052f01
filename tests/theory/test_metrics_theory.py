"""Loss recovered vs Chinchilla compute (theory/metrics.py, functions from toymodels/metrics.py)."""
import math

import pytest
from hypothesis import given
from hypothesis import strategies as st

import theory.metrics as M
from theory.metrics import EXAMPLE, chinchilla_symbolic, scipy_optimal_loss
from theory.registry import CLAIMS, Context, run_claim
from toymodels.measures.metrics import (
    CHINCHILLA,
    chinchilla_gamma,
    chinchilla_loss,
    chinchilla_optimal_loss,
    compute_fraction,
    loss_recovered,
    loss_recovered_vs_compute,
)


def test_gamma_hand_value():
    # 0.34·0.28 / 0.62 = 0.0952 / 0.62 = 119/775
    assert chinchilla_gamma() == pytest.approx(119 / 775, rel=1e-15)
    assert chinchilla_gamma(0.5, 0.5) == 0.25
    assert chinchilla_gamma(1.0, 3.0) == 0.75


def test_chinchilla_loss_hand_value():
    # N = 1e9, D = 2e10: 406.4 / 10^(9·0.34) + 410.7 / (2e10)^0.28
    n, d = 1e9, 2e10
    by_hand = 1.69 + 406.4 / 10 ** 3.06 + 410.7 / (2 ** 0.28 * 10 ** 2.8)
    assert chinchilla_loss(n, d) == pytest.approx(by_hand, rel=1e-14)
    assert by_hand == pytest.approx(2.5800, abs=1e-4)  # 1.69 + 0.3540 + 0.5361
    assert chinchilla_loss(1.0, 1.0) == pytest.approx(1.69 + 406.4 + 410.7, rel=1e-15)


def test_symbolic_frontier():
    sym = chinchilla_symbolic()
    s = sym["symbols"]
    assert sym["stationary"] == 0  # N* is a stationary point of L(N, C/(6N))
    assert sym["gamma_gap"] == 0  # slope of log(L* − E) in log C is exactly −αβ/(α+β)
    k = float(sym["K"].subs({s["A"]: 406.4, s["B"]: 410.7, s["alpha"]: 0.34, s["beta"]: 0.28}))
    assert chinchilla_optimal_loss(6.0) - CHINCHILLA["E"] == pytest.approx(k, rel=1e-12)


@pytest.mark.parametrize("compute", [1e18, 5.76e23, 1e26])
def test_closed_form_frontier_matches_scipy_minimum(compute):
    numeric, n_star = scipy_optimal_loss(compute)
    assert chinchilla_optimal_loss(compute) == pytest.approx(numeric, rel=1e-10)
    # the minimiser sits where sympy says: N* = (αA/βB)^(1/(α+β)) (C/6)^(β/(α+β))
    c = CHINCHILLA
    n_sym = (c["alpha"] * c["A"] / (c["beta"] * c["B"])) ** (1 / (c["alpha"] + c["beta"])) * (compute / 6) ** (
        c["beta"] / (c["alpha"] + c["beta"]))
    assert n_star == pytest.approx(n_sym, rel=1e-4)
    # and nothing on a coarse grid of N beats it
    grid = [math.exp(u) for u in range(1, int(math.log(compute / 6)))]
    assert min(chinchilla_loss(n, compute / (6 * n)) for n in grid) >= chinchilla_optimal_loss(compute) - 1e-12


def test_worked_example():
    assert loss_recovered(**{k: EXAMPLE[k] for k in ("loss_orig", "loss_sae", "loss_ablated")}) == pytest.approx(10 / 11, abs=1e-15)
    frac = compute_fraction(2.0, 3.0)
    assert frac == pytest.approx((0.31 / 1.31) ** (775 / 119), rel=1e-12)
    assert round(frac, 6) == 8.4e-5  # "about 8.4e-5 of the compute"
    both = loss_recovered_vs_compute(2.0, 3.0, 13.0)
    assert both["loss_recovered"] == pytest.approx(0.90909, abs=1e-5)
    assert both["log10_compute_fraction"] == pytest.approx(math.log10(frac), abs=1e-15)


def test_loss_recovered_endpoints():
    assert loss_recovered(2.0, 2.0, 13.0) == 1.0
    assert loss_recovered(2.0, 13.0, 13.0) == 0.0
    assert loss_recovered(2.0, 7.5, 13.0) == 0.5
    assert compute_fraction(2.5, 2.5) == 1.0


@given(log_c=st.floats(18, 27), extra=st.floats(1e-3, 8.0))
def test_compute_fraction_inverts_the_frontier(log_c, extra):
    """If L_orig = L*(C) then L*(C · fraction) = L_SAE: the fraction is a ratio of optimal computes."""
    c = 10 ** log_c
    l_orig = chinchilla_optimal_loss(c)
    l_sae = l_orig + extra
    frac = compute_fraction(l_orig, l_sae)
    assert 0 < frac < 1
    assert chinchilla_optimal_loss(c * frac) == pytest.approx(l_sae, rel=1e-9)


@given(lo=st.floats(1.8, 5.0), gap=st.floats(0.01, 3.0), ablate=st.floats(1.0, 20.0))
def test_loss_recovered_is_linear_but_compute_is_not(lo, gap, ablate):
    """Halving the loss gap doubles the unrecovered loss fraction's complement linearly, while the
    compute fraction moves by a power 1/γ ≈ 6.5 of the excess-loss ratio."""
    la = lo + gap + ablate
    r1, r2 = loss_recovered(lo, lo + gap, la), loss_recovered(lo, lo + gap / 2, la)
    assert (1 - r2) == pytest.approx((1 - r1) / 2, rel=1e-9)
    f = compute_fraction(lo, lo + gap)
    assert math.log(f) == pytest.approx(math.log((lo - 1.69) / (lo + gap - 1.69)) / chinchilla_gamma(), rel=1e-12)


def test_registered_check_holds_at_tiny_budget():
    rec = run_claim(CLAIMS["metrics.loss_recovered_vs_compute"], Context(budget="tiny"))
    assert rec.status == "exact"
    assert rec.verdict == "holds", rec.detail
    assert rec.observed["loss_recovered"] == pytest.approx(10 / 11, abs=1e-12)
    assert rec.observed["compute_fraction"] == pytest.approx(8.4e-5, abs=0.05e-5)
    assert rec.observed["frontier_rel_err"] <= 1e-9


def test_registered_check_fails_on_a_wrong_exponent(monkeypatch):
    """Negative control: γ off by 1% breaks the symbolic match and the worked example."""
    real = M.chinchilla_gamma
    monkeypatch.setattr(M, "chinchilla_gamma", lambda *a, **k: 1.01 * real(*a, **k))
    rec = run_claim(CLAIMS["metrics.loss_recovered_vs_compute"], Context(budget="tiny"))
    assert rec.verdict == "fails" and "check raised" not in rec.detail, rec.detail
