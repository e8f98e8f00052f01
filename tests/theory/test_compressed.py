"""compressed.bigram_capacity: the verdict rule with positive and negative controls, and the check."""
import math

import pytest

from theory.compressed import EXPONENT_TOL, capacity_verdict, check_bigram_capacity
from theory.registry import CLAIMS, Context, load_all, run_claim


def test_verdict_rule_controls():
    widths = [8, 16, 32, 64]
    # linear growth (what the least-squares picture predicts for frozen W_in): a counterexample
    v, a = capacity_verdict(widths, [8, 16, 32, 64])
    assert v == "counterexample" and math.isclose(a, 1.0, rel_tol=1e-9)
    # quadratic growth (the seed's picture): the conjecture stays open
    v, a = capacity_verdict(widths, [w * w // 4 for w in widths])
    assert v == "open" and math.isclose(a, 2.0, rel_tol=1e-9)
    # just above the tolerance: open; just below: counterexample
    assert capacity_verdict(widths, [w ** (1 + EXPONENT_TOL + 0.05) for w in widths])[0] == "open"
    assert capacity_verdict(widths, [w ** (1 + EXPONENT_TOL - 0.05) for w in widths])[0] == "counterexample"
    # nothing stored at all: no exponent, nothing found
    v, a = capacity_verdict(widths, [0, 0, 0, 0])
    assert v == "open" and math.isnan(a)


def test_check_at_tiny_budget_reports_the_exponent():
    load_all()
    rec = run_claim(CLAIMS["compressed.bigram_capacity"], Context(budget="tiny"))
    assert rec.status == "conjecture" and rec.verdict in ("open", "counterexample"), rec.detail
    assert "fitted exponent" in rec.detail and rec.observed is not None


@pytest.mark.slow
def test_check_is_seeded():
    a, b = (check_bigram_capacity(Context(budget="tiny")) for _ in range(2))
    assert a.observed == b.observed and a.detail == b.detail
