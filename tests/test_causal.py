"""The causal-abstraction tool (toymodels/causal.py): models, interchange interventions, IIA,
explanations with input conditions, checked against hand computations."""
import doctest

import pytest
import sympy as sp
import torch

import toymodels.research.causal as C
from toymodels.research.causal import (
    AlignedVariable, Alignment, CausalModel, Explanation, direction_interchange, grid_domain,
    interchange_accuracy, interchange_intervention, puzzle_alignment, puzzle_models, toy_model_abstraction,
)

X1, X2 = sp.symbols("x1 x2")
BIG = {"x1": (0, 10**6), "x2": (0, 10**6)}


def test_module_docstring_example_runs():
    res = doctest.testmod(C, verbose=False)
    assert res.attempted >= 10 and res.failed == 0


# ---------------------------------------------------------------------------------------------
# Causal models
# ---------------------------------------------------------------------------------------------


def test_run_follows_the_graph_and_interventions():
    m = CausalModel(("a", "b"), {"y": (("s",), lambda s: 2 * s), "s": (("a", "b"), lambda a, b: a + b)}, ("y",))
    assert m.order.index("s") < m.order.index("y")
    assert m.run({"a": 1, "b": 2}) == {"a": 1, "b": 2, "s": 3, "y": 6}
    assert m.run({"a": 1, "b": 2}, {"s": 10})["y"] == 20
    assert m.run({"a": 1, "b": 2}, {"a": 5})["y"] == 14  # an input intervention overrides the input


@pytest.mark.parametrize("build, match", [
    (lambda: CausalModel(("a",), {"p": (("q",), lambda q: q), "q": (("p",), lambda p: p)}, ("p",)), "cycle"),
    (lambda: CausalModel(("a",), {"p": (("zz",), lambda z: z)}, ("p",)), "unknown parent"),
    (lambda: CausalModel(("a",), {"a": (("a",), lambda a: a)}, ("a",)), "both inputs and mechanisms"),
    (lambda: CausalModel(("a",), {"p": (("a",), lambda a: a)}, ("nope",)), "outputs"),
    (lambda: CausalModel((), {}, ("a",)), "inputs"),
])
def test_bad_models_are_refused(build, match):
    with pytest.raises(ValueError, match=match):
        build()


def test_unknown_intervention_and_missing_input_raise():
    low, _ = puzzle_models()
    with pytest.raises(ValueError, match="unknown node"):
        low.run({"x1": 0, "x2": 0}, {"z": 1})
    with pytest.raises(ValueError, match="no value"):
        low.run({"x1": 0})


def test_grid_domain():
    d = grid_domain(("x1", "x2"), ranges=[range(3), range(2)])
    assert d["x1"].tolist() == [0, 0, 1, 1, 2, 2] and d["x2"].tolist() == [0, 1, 0, 1, 0, 1]
    with pytest.raises(ValueError, match="exactly one"):
        grid_domain(("x1",))


# ---------------------------------------------------------------------------------------------
# Interchange interventions, hand-checked
# ---------------------------------------------------------------------------------------------


def test_puzzle_iia_by_hand():
    low, high = puzzle_models()
    square = grid_domain(low.inputs, [(0, 0), (0, 1), (1, 0), (1, 1)])
    diag = grid_domain(low.inputs, [(0, 0), (1, 1)])
    for v in ("x", "h", "y"):
        assert interchange_accuracy(low, high, puzzle_alignment("x1"), v, square).accuracy == 1.0
        r = interchange_accuracy(low, high, puzzle_alignment("x2"), v, diag)
        assert r.accuracy == 1.0 and r.counterexamples == []
    # X2 alignment on h: low y = s1, high y = s2; fails iff the source is off the diagonal: 4 bases x 2 sources
    r = interchange_accuracy(low, high, puzzle_alignment("x2"), "h", square, max_counterexamples=100)
    assert (r.n_pairs, r.n_admissible, r.n_agree, r.accuracy) == (16, 16, 8, 0.5)
    assert all(c["source"]["x1"] != c["source"]["x2"] for c in r.counterexamples) and len(r.counterexamples) == 8
    # on the input x: only pairs whose intervened input (b1, s2) stays on the diagonal are admissible
    rx = interchange_accuracy(low, high, puzzle_alignment("x2"), "x", diag)
    assert (rx.n_pairs, rx.n_admissible) == (4, 2)


def test_hand_model_with_two_aligned_low_variables():
    # low: a = x1 + x2, b = x1 - x2, y = a + b (= 2 x1); high: s = 2 x1, y = s. Align s with (a, b), tau = a + b.
    low = CausalModel(("x1", "x2"), {"a": (("x1", "x2"), lambda p, q: p + q), "b": (("x1", "x2"), lambda p, q: p - q),
                                     "y": (("a", "b"), lambda a, b: a + b)}, ("y",))
    high = CausalModel(("x1", "x2"), {"s": (("x1",), lambda p: 2 * p), "y": (("s",), lambda s: s)}, ("y",))
    good = Alignment({"x1": AlignedVariable(("x1",)), "x2": AlignedVariable(("x2",)),
                      "s": AlignedVariable(("a", "b"), tau=lambda a, b: a + b), "y": AlignedVariable(("y",))})
    dom = grid_domain(low.inputs, ranges=[range(4), range(4)])
    assert interchange_accuracy(low, high, good, "s", dom).accuracy == 1.0
    # aligned with a only, the interchange keeps the base's b: y = s1 + s2 + b1 - b2 vs 2 s1
    bad = Alignment({**good.variables, "s": AlignedVariable(("a",), tau=lambda a: 2 * a)})
    r = interchange_accuracy(low, high, bad, "s", dom)
    brute = sum((s1 + s2 + b1 - b2) == 2 * s1 for b1 in range(4) for b2 in range(4) for s1 in range(4) for s2 in range(4))
    assert r.n_agree == brute and r.accuracy == brute / 256 < 1


def test_zipped_pairs_and_float_tolerance():
    low = CausalModel(("x",), {"y": (("x",), lambda x: x * 1.0)}, ("y",))
    high = CausalModel(("x",), {"y": (("x",), lambda x: x * 1.0 + 0.05)}, ("y",))
    al = Alignment.identity({"x": "x", "y": "y"})
    d = {"x": torch.linspace(0, 1, 7)}
    assert interchange_accuracy(low, high, al, "y", d, source=d, atol=0.1).accuracy == 1.0
    assert interchange_accuracy(low, high, al, "y", d, source=d, atol=0.01).accuracy == 0.0


def test_direction_interchange_swaps_only_that_component():
    u = torch.tensor([3.0, 4.0])
    hb, hs = torch.tensor([[1.0, 2.0]]), torch.tensor([[-5.0, 7.0]])
    (h,) = direction_interchange(u)((hb,), (hs,))
    un = u / 5
    assert torch.allclose(h @ un, hs @ un) and torch.allclose(h - (h @ un)[:, None] * un, hb - (hb @ un)[:, None] * un)


def test_toy_abstraction_is_exact_without_superposition():
    # W = identity (2 features in 2 dims), b = 0: every feature has its own dimension, IIA = 1
    low, high, al = toy_model_abstraction(torch.eye(2), torch.zeros(2), 0)
    g = torch.Generator().manual_seed(0)
    xb, xs = torch.rand(200, 2, generator=g), torch.rand(200, 2, generator=g)
    assert interchange_intervention(low, high, al, "f", {"x": xb}, {"x": xs}, atol=1e-6).all()


def test_toy_abstraction_fails_in_superposition_off_the_sparse_domain():
    ang = torch.tensor([0.0, 2.0944, 4.1888])  # three features at 120 degrees in 2 dims
    W = torch.stack([ang.cos(), ang.sin()])
    low, high, al = toy_model_abstraction(W, torch.zeros(3), 0)
    one = torch.tensor([[0.0, 1.0, 0.0]])  # base: feature 1 on; source: feature 0 on
    src = torch.tensor([[0.7, 0.0, 0.0]])
    assert not interchange_intervention(low, high, al, "f", {"x": one}, {"x": src}, atol=0.1).all()
    with pytest.raises(ValueError, match="zero direction"):
        toy_model_abstraction(torch.zeros(2, 3), torch.zeros(3), 1)


# ---------------------------------------------------------------------------------------------
# Explanations: enumeration, symbolic, counterexamples
# ---------------------------------------------------------------------------------------------


def test_explanation_with_condition_enumerated_and_symbolic():
    low, high = puzzle_models()
    e = Explanation(low, high, puzzle_alignment("x2"), condition=sp.Eq(X1, X2))
    small = grid_domain(low.inputs, ranges=[range(6)] * 2)
    assert e.satisfies(small).sum() == 6
    assert e.verify_enumerated(small).holds is True
    v = e.verify_symbolic(BIG)
    assert v.holds is True and v.method == "symbolic" and v.cases == 13
    n, named = e.counterexamples_outside(small, limit=2)
    assert n == 30 and named[0] == {"input": {"x1": 0, "x2": 1}}


def test_without_condition_a_counterexample_is_named_and_real():
    low, high = puzzle_models()
    e = Explanation(low, high, puzzle_alignment("x2"))
    v = e.verify_symbolic(BIG)
    assert v.holds is False
    x = v.counterexample["input"]
    assert x["x1"] != x["x2"] and low.run(x)["y"] != high.run({"x": x["x2"]})["y"]
    assert e.verify_enumerated(grid_domain(low.inputs, ranges=[range(3)] * 2)).holds is False
    assert Explanation(low, high, puzzle_alignment("x1")).verify_symbolic(BIG).holds is True


def test_nonlinear_mechanism_symbolic_agrees_with_enumeration():
    # low computes x1*x2 + x2, high claims x1**2 + x1: equal iff x1 = x2 (on nonnegative integers)
    low = CausalModel(("x1", "x2"), {"p": (("x1", "x2"), lambda a, b: a * b), "y": (("p", "x2"), lambda p, b: p + b)}, ("y",))
    high = CausalModel(("x",), {"y": (("x",), lambda x: x * x + x)}, ("y",))
    al = Alignment({"x": AlignedVariable(("x1",)), "y": AlignedVariable(("y",))})
    with_c = Explanation(low, high, al, condition=sp.Eq(X1, X2), variables=("y",))
    bare = Explanation(low, high, al, variables=("y",))
    dom = grid_domain(low.inputs, ranges=[range(9)] * 2)
    assert with_c.verify_symbolic(BIG).holds is True and with_c.verify_enumerated(dom).holds is True
    assert bare.verify_symbolic(BIG).holds is False and bare.verify_enumerated(dom).holds is False


def test_symbolic_interchange_counterexample_names_base_and_source():
    # low: h = x1, k = x2 (unused), y = h; high: h = x, y = h with h aligned to k: the plain runs agree
    # (y = x1 on both sides) but swapping k changes nothing on the low level while the high level follows
    low = CausalModel(("x1", "x2"), {"h": (("x1",), lambda a: a), "k": (("x2",), lambda b: b),
                                     "y": (("h",), lambda h: h)}, ("y",))
    _, high = puzzle_models()
    al = Alignment.identity({"x": "x1", "h": "k", "y": "y"})
    v = Explanation(low, high, al, condition=sp.Eq(X1, X2)).verify_symbolic(BIG)
    assert v.holds is False and v.counterexample["variable"] == "h"
    b, s = v.counterexample["base"], v.counterexample["source"]
    assert b["x1"] == b["x2"] and s["x1"] == s["x2"] and b["x1"] != s["x1"]  # inside the condition, a real failure
    assert not interchange_intervention(low, high, al, "h", {k: torch.tensor([b[k]]) for k in b},
                                        {k: torch.tensor([s[k]]) for k in s}).all()
    assert Explanation(low, high, al, variables=()).verify_symbolic(BIG).holds is True


def test_undecided_is_reported_not_guessed():
    # x1 <= x2 and x1 >= x2 means x1 = x2, but as inequalities it is not substituted: the difference
    # x1 - x2 does not simplify to 0 and no counterexample exists -> None (undecided)
    low, high = puzzle_models()
    cond = sp.And(sp.Le(X1, X2), sp.Ge(X1, X2))
    v = Explanation(low, high, puzzle_alignment("x2"), condition=cond, variables=()).verify_symbolic(
        {"x1": (0, 50), "x2": (0, 50)}, n_random=16)
    assert v.holds is None and "no counterexample" in v.detail


def test_bad_explanations_are_refused():
    low, high = puzzle_models()
    y = sp.Symbol("y")
    with pytest.raises(ValueError, match="not inputs"):
        Explanation(low, high, puzzle_alignment("x1"), condition=sp.Eq(y, 0))
    with pytest.raises(ValueError, match="not aligned"):
        Explanation(low, high, Alignment.identity({"x": "x1", "y": "y"}))
    with pytest.raises(ValueError, match="bounds"):
        Explanation(low, high, puzzle_alignment("x1")).verify_symbolic({"x1": (0, 3)})
    with pytest.raises(ValueError, match="empty"):
        Explanation(low, high, puzzle_alignment("x1")).verify_symbolic({"x1": (3, 0), "x2": (0, 1)})
    with pytest.raises(ValueError, match="x1 or x2"):
        puzzle_alignment("x3")
