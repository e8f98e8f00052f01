"""The causal-abstraction claims (theory/causal.py): properties of the puzzle over hypothesis
draws, the registered checks, and negative controls (each check fed something false fails)."""
import pytest
import torch
from hypothesis import given
from hypothesis import strategies as st

import theory.causal as TC
from theory.causal import expected_failures, puzzle_report
from theory.registry import CLAIMS, Context, load_all, run_claim
from toymodels.research.causal import AlignedVariable, Alignment, CausalModel, direction_interchange

load_all()
IDS = ("causal.puzzle_both_alignments", "causal.puzzle_extension_separates", "causal.condition_scales",
       "causal.toy_model_alignment")


@st.composite
def domains(draw, diagonal: bool):
    k = draw(st.integers(1, 6))
    perm = draw(st.permutations(list(range(k + 1))))
    if diagonal:
        vals = draw(st.sets(st.integers(0, k), min_size=1))
        return [(v, v) for v in sorted(vals)], perm
    cells = draw(st.sets(st.tuples(st.integers(0, k), st.integers(0, k)), min_size=1))
    off = draw(st.tuples(st.integers(0, k), st.integers(0, k)).filter(lambda t: t[0] != t[1]))
    return sorted(cells | {off}), perm


def _pairs(r):
    return {(tuple(c["base"].values()), tuple(c["source"].values())) for c in r.counterexamples}


@given(domains(diagonal=True))
def test_on_the_diagonal_both_alignments_pass(dom):
    rows, perm = dom
    rep = puzzle_report(rows, perm)
    for a in ("x1", "x2"):
        for v, r in rep[a].items():
            assert r.accuracy == 1.0 and r.counterexamples == []
            assert r.n_admissible == (len(rows) if v == "x" else len(rows) ** 2)


@given(domains(diagonal=False))
def test_off_the_diagonal_only_x1_passes_and_the_failures_are_named(dom):
    rows, perm = dom
    rep = puzzle_report(rows, perm)
    assert all(r.accuracy == 1.0 for r in rep["x1"].values())
    assert rep["x2"]["h"].accuracy < 1.0 and rep["x2"]["y"].accuracy < 1.0
    for a in rep:
        for v, r in rep[a].items():
            assert _pairs(r) == expected_failures(rows, perm, a, v)


@pytest.mark.parametrize("cid", IDS)
def test_claims_registered_and_hold_at_tiny_budget(cid):
    c = CLAIMS[cid]
    assert c.topic == "causal"
    rec = run_claim(c, Context(budget="tiny"))
    assert rec.verdict == "holds", rec.detail
    assert rec.predicted is not None and rec.observed is not None and rec.tolerance is not None


# ---------------------------------------------------------------------------------------------
# Negative controls
# ---------------------------------------------------------------------------------------------


def _leaky_puzzle(readout=None):
    """x2 is not idle: h = x1 + x2, so on the diagonal y = 2x while M* says y = x."""
    g = readout if readout is not None else (lambda h: h)
    low = CausalModel(("x1", "x2"), {"h": (("x1", "x2"), lambda a, b: a + b), "y": (("h",), g)}, ("y",))
    high = CausalModel(("x",), {"h": (("x",), lambda x: x), "y": (("h",), g)}, ("y",))
    return low, high


def _swapped_puzzle(readout=None):
    """h copies x2 instead of x1: now the X1 alignment is the wrong one."""
    g = readout if readout is not None else (lambda h: h)
    low = CausalModel(("x1", "x2"), {"h": (("x2",), lambda b: b), "y": (("h",), g)}, ("y",))
    high = CausalModel(("x",), {"h": (("x",), lambda x: x), "y": (("h",), g)}, ("y",))
    return low, high


@pytest.mark.parametrize("cid, fake", [
    ("causal.puzzle_both_alignments", _leaky_puzzle),
    ("causal.puzzle_extension_separates", _swapped_puzzle),
    ("causal.condition_scales", _swapped_puzzle),
])
def test_puzzle_checks_fail_on_a_different_model(monkeypatch, cid, fake):
    monkeypatch.setattr(TC, "puzzle_models", fake)
    rec = run_claim(CLAIMS[cid], Context(budget="tiny"))
    assert rec.verdict == "fails", rec.detail


def test_toy_check_fails_for_a_wrong_direction(monkeypatch):
    real = TC.toy_model_abstraction

    def rotated(W, b, i):
        low, high, al = real(W, b, i)
        c, s = torch.cos(torch.tensor(1.0)), torch.sin(torch.tensor(1.0))
        u = torch.stack([c * W[0, i] - s * W[1, i], s * W[0, i] + c * W[1, i]])  # W_i turned by 1 rad
        f = al.variables["f"]
        return low, high, Alignment({**al.variables, "f": AlignedVariable(f.low, f.tau, direction_interchange(u))})

    monkeypatch.setattr(TC, "toy_model_abstraction", rotated)
    rec = run_claim(CLAIMS["causal.toy_model_alignment"], Context(budget="tiny"))
    assert rec.verdict == "fails" and rec.observed["iia_on_restricted_domain"] < 1 - TC.TOY_TOL


def test_toy_iia_is_measured_not_assumed():
    r = TC.toy_model_iia(Context(budget="tiny"), densities=(0.02, 0.4))
    assert 0.0 <= r["iia"][1] < r["iia"][0] <= 1.0
    assert abs(r["fraction_on_condition"][0] - r["p_condition"][0]) < 0.05


@given(a1=st.integers(-3, 3), a2=st.integers(-3, 3), c=st.integers(-5, 5), aligned=st.sampled_from(["x1", "x2"]),
       with_condition=st.booleans())
def test_symbolic_verdict_agrees_with_enumeration(a1, a2, c, aligned, with_condition):
    """The tool's two checks agree on random affine mechanisms: low y = a1 x1 + a2 x2 + c, high
    y = (a1 + a2) x + c, x aligned with x1 or x2; with x1 = x2 it always holds, without it holds
    iff the unaligned coefficient is 0. A counterexample from the symbolic check is a real one."""
    import sympy as sp

    from toymodels.research.causal import Explanation, grid_domain

    low = CausalModel(("x1", "x2"), {"y": (("x1", "x2"), lambda p, q: a1 * p + a2 * q + c)}, ("y",))
    high = CausalModel(("x",), {"y": (("x",), lambda x: (a1 + a2) * x + c)}, ("y",))
    al = Alignment.identity({"x": aligned, "y": "y"})
    x1, x2 = sp.symbols("x1 x2")
    e = Explanation(low, high, al, condition=sp.Eq(x1, x2) if with_condition else None)
    expected = with_condition or (a2 if aligned == "x1" else a1) == 0
    sym = e.verify_symbolic({"x1": (0, 10**6), "x2": (0, 10**6)})
    enum = e.verify_enumerated(grid_domain(low.inputs, ranges=[range(5)] * 2))
    assert sym.holds is expected and enum.holds is expected
    if not expected:
        ce = sym.counterexample
        if "input" in ce:
            x = ce["input"]
            assert low.run(x)["y"] != high.run({"x": x[aligned]})["y"]
        else:
            assert ce["variable"] in ("x", "y")


def test_only_the_trained_check_searches():
    # The trained toy model's verdict gets a second opinion on fresh seeds; the exact puzzles do not.
    load_all()
    assert {cid for cid in IDS if CLAIMS[cid].searches} == {"causal.toy_model_alignment"}


def test_toy_model_iia_follows_the_context_seed():
    # The second opinion must draw a fresh model and fresh pairs: everything derives from ctx.seed.
    a, b = TC.toy_model_iia(Context(budget="tiny", seed=0), (0.1,)), TC.toy_model_iia(Context(budget="tiny", seed=1), (0.1,))
    assert not torch.equal(a["W"], b["W"])
    again = TC.toy_model_iia(Context(budget="tiny", seed=0), (0.1,))
    assert torch.equal(a["W"], again["W"]) and a["iia"] == again["iia"]
