"""Causal abstraction and its input conditions (topic ``causal``; seed 002).

The puzzle (Jørgensen 2025, "Small foundational puzzle for causal theories of mechanistic
interpretability"): M has inputs x1, x2, an intermediate h = x1 and output y = g(h), so x2 does
nothing. If the inputs always satisfy x1 = x2, the high-level model M* (input x, h = x,
y = g(h)) passes every interchange-intervention test as an abstraction of M whether its
input is aligned with X1 or with X2. Only inputs off the diagonal separate the two, and an
explanation that states its condition ("M* has M's output whenever x1 = x2", seed 002's
comment) can be checked symbolically on domains far too large to enumerate.

The tool is :mod:`toymodels.causal`; this module registers the claims and exposes the checks
the tests drive with hypothesis: :func:`puzzle_report` (IIA of every high-level variable under
both alignments on a finite domain, with the failing pairs) and :func:`expected_failures`
(the failing pairs computed by hand, to compare with).
"""
from __future__ import annotations

import time
from typing import Any, Sequence

import numpy as np
import torch

from toymodels.research.causal import (
    Explanation, grid_domain, interchange_accuracy, interchange_intervention, puzzle_alignment, puzzle_models,
    toy_model_abstraction,
)

from .registry import Context, Result, claim, holds_if

SOURCE = ("Jørgensen 2025, Small foundational puzzle for causal theories of mechanistic interpretability, "
          "and the comments on it (seed 002); Geiger et al. 2021/2025 (interchange interventions)")


# ---------------------------------------------------------------------------------------------
# Helpers shared with the tests
# ---------------------------------------------------------------------------------------------


def permutation_readout(perm: Sequence[int]):
    """y = perm[h] as a function that works on int tensors and Python ints."""
    table = torch.as_tensor(list(perm), dtype=torch.int64)

    def g(h: Any) -> Any:
        if isinstance(h, torch.Tensor):
            return table[h]
        return int(table[int(h)])

    return g


def puzzle_report(rows: Sequence[tuple[int, int]], perm: Sequence[int] | None = None) -> dict[str, dict[str, Any]]:
    """IIA of each high-level variable (x, h, y) of the puzzle on the input domain ``rows`` under
    the X1 and the X2 alignment, with every failing pair. ``perm``: the readout y = perm[h]
    (identity when None); the domain's values must index it."""
    g = permutation_readout(perm) if perm is not None else None
    low, high = puzzle_models(g)
    dom = grid_domain(low.inputs, rows)
    out: dict[str, dict[str, Any]] = {}
    for name in ("x1", "x2"):
        al = puzzle_alignment(name)
        out[name] = {}
        for v in high.order:
            r = interchange_accuracy(low, high, al, v, dom, max_counterexamples=10**9)
            out[name][v] = r
    return out


def expected_failures(rows: Sequence[tuple[int, int]], perm: Sequence[int], input_name: str, variable: str) -> set:
    """The failing (base, source) pairs worked out by hand, for an injective readout g = perm.

    X1 alignment: none. X2 alignment, intervening on h or y: low gives g(s1), high g(s2), so the
    pair fails iff s1 ≠ s2. On x: the intervened input (b1, s2) must be in the domain
    (admissible); low gives g(b1), high g(s2): fails iff b1 ≠ s2.
    """
    rows = [tuple(r) for r in rows]
    dom = set(rows)
    if input_name == "x1":
        return set()
    bad = set()
    for b in rows:
        for s in rows:
            if variable in ("h", "y") and perm[s[0]] != perm[s[1]]:
                bad.add((b, s))
            if variable == "x" and (b[0], s[1]) in dom and perm[b[0]] != perm[s[1]]:
                bad.add((b, s))
    return bad


def _pairs(result) -> set:
    return {(tuple(c["base"].values()), tuple(c["source"].values())) for c in result.counterexamples}


def _random_domain(rng: np.random.Generator, diagonal: bool) -> tuple[list[tuple[int, int]], list[int]]:
    k = int(rng.integers(1, 8))
    perm = [int(v) for v in rng.permutation(k + 1)]
    if diagonal:
        vals = rng.choice(k + 1, size=int(rng.integers(1, k + 2)), replace=False)
        return [(int(v), int(v)) for v in vals], perm
    cells = [(a, b) for a in range(k + 1) for b in range(k + 1)]
    take = rng.choice(len(cells), size=int(rng.integers(1, len(cells) + 1)), replace=False)
    rows = [cells[t] for t in take]
    if all(a == b for a, b in rows):
        rows.append((0, 1))
    return rows, perm


# ---------------------------------------------------------------------------------------------
# Claims
# ---------------------------------------------------------------------------------------------


@claim(
    "causal.puzzle_both_alignments",
    status="proven",
    statement="""In the puzzle model M (h copies x1, y = g(h), x2 idle) with inputs restricted to the
    diagonal {(0,0), (1,1)}, the one-variable model M* (y = g(x)) is a valid causal abstraction of
    M under both alignments, X* with X1 and X* with X2: every single-node hard interchange
    intervention (on M*'s input, intermediate and output) has interchange-intervention accuracy
    1, and so does running M* on every input. The same holds on every subset of the diagonal
    and for every injective readout g.""",
    source=SOURCE,
)
def check_puzzle_both_alignments(ctx: Context) -> Result:
    rng = ctx.rng("causal.puzzle_both_alignments")
    rep = puzzle_report([(0, 0), (1, 1)])
    exact = {f"{a}:{v}": r.accuracy for a, vs in rep.items() for v, r in vs.items()}
    admissible = {f"{a}:{v}": f"{r.n_admissible}/{r.n_pairs}" for a, vs in rep.items() for v, r in vs.items()}
    ok = all(acc == 1.0 for acc in exact.values())
    low, high = puzzle_models()
    for a in ("x1", "x2"):
        ok &= Explanation(low, high, puzzle_alignment(a)).verify_enumerated(grid_domain(low.inputs, [(0, 0), (1, 1)])).holds is True
    n_draws, worst = ctx.pick(10, 120, 1000), 1.0
    for _ in range(n_draws):
        rows, perm = _random_domain(rng, diagonal=True)
        for vs in puzzle_report(rows, perm).values():
            for r in vs.values():
                worst = min(worst, r.accuracy)
    ok &= worst == 1.0
    return Result(
        verdict=holds_if(ok),
        predicted={"iia_every_variable_both_alignments": 1.0, "random_diagonal_domains_min_iia": 1.0},
        observed={"iia": exact, "admissible_pairs": admissible, "random_diagonal_domains_min_iia": worst,
                  "random_domains": n_draws},
        tolerance="exact (integer outputs compared exactly)",
        detail=("Interchange on M*'s input x: a pair whose intervened input (part base, part source) is off the "
                "diagonal is not admissible (the domain says it never occurs), hence 2 of 4 pairs; h and y: all 4. "
                f"Plus {n_draws} random diagonal subsets of {{0..k}}², k <= 7, with random permutation readouts."),
    )


@claim(
    "causal.puzzle_extension_separates",
    status="proven",
    statement="""Adding the off-diagonal inputs (0,1) and (1,0), i.e. on {0,1}², the X1 alignment
    keeps interchange-intervention accuracy 1 for every variable while the X2 alignment does not
    (IIA 1/2 for each of x, h and y); the tool names the failing (base, source) pairs, and they
    are exactly the ones worked out by hand (source off the diagonal for h and y). The same
    holds on every domain with an off-diagonal input and every injective readout.""",
    source=SOURCE,
)
def check_puzzle_extension_separates(ctx: Context) -> Result:
    rng = ctx.rng("causal.puzzle_extension_separates")
    square = [(0, 0), (0, 1), (1, 0), (1, 1)]
    ident = [0, 1]
    rep = puzzle_report(square)
    iia = {f"{a}:{v}": r.accuracy for a, vs in rep.items() for v, r in vs.items()}
    ok = all(rep["x1"][v].accuracy == 1.0 for v in ("x", "h", "y"))
    ok &= all(rep["x2"][v].accuracy == 0.5 for v in ("x", "h", "y"))
    named_match = all(_pairs(rep[a][v]) == expected_failures(square, ident, a, v) for a in rep for v in rep[a])
    ok &= named_match
    low, high = puzzle_models()
    e2 = Explanation(low, high, puzzle_alignment("x2"))
    v2 = e2.verify_enumerated(grid_domain(low.inputs, square))
    ok &= v2.holds is False and v2.counterexample == {"input": {"x1": 0, "x2": 1}}
    n_draws, mismatches, x2_fail_min = ctx.pick(10, 60, 1000), 0, 1.0
    for _ in range(n_draws):
        rows, perm = _random_domain(rng, diagonal=False)
        rep_r = puzzle_report(rows, perm)
        ok &= all(r.accuracy == 1.0 for r in rep_r["x1"].values())
        x2_fail_min = min(x2_fail_min, rep_r["x2"]["h"].accuracy)
        for a in rep_r:
            for v, r in rep_r[a].items():
                mismatches += _pairs(r) != expected_failures(rows, perm, a, v)
    ok &= mismatches == 0 and x2_fail_min < 1.0
    first = rep["x2"]["h"].counterexamples[0]
    return Result(
        verdict=holds_if(ok),
        predicted={"x1_alignment_iia": 1.0, "x2_alignment_iia": 0.5, "failing_pairs": "source off the diagonal (h, y)"},
        observed={"iia": iia, "x2_first_counterexample_h": first, "x2_observational_counterexample": v2.counterexample,
                  "named_pairs_match_hand_computation": bool(named_match), "random_domains": n_draws,
                  "random_domains_pair_mismatches": mismatches, "random_domains_worst_x2_iia_h": x2_fail_min},
        tolerance="exact (integer outputs compared exactly; failing-pair sets compared as sets)",
        detail=(f"On {{0,1}}² the X2 alignment fails on {len(rep['x2']['h'].counterexamples)} of 16 pairs for h, e.g. "
                f"base {first['base']}, source {first['source']}; plus {n_draws} random domains in {{0..k}}², k <= 7, with "
                "at least one off-diagonal input and a random permutation readout."),
    )


BOX = 10**6
SMALL = 30


def _explanations():
    import sympy as sp

    low, high = puzzle_models()
    x1, x2 = sp.symbols("x1 x2")
    cond = sp.Eq(x1, x2)
    return low, high, {
        "x2|x1=x2": Explanation(low, high, puzzle_alignment("x2"), condition=cond),
        "x2": Explanation(low, high, puzzle_alignment("x2")),
        "x1": Explanation(low, high, puzzle_alignment("x1")),
    }


@claim(
    "causal.condition_scales",
    status="exact",
    statement="""An explanation that carries its input condition, "M* (aligned with X2) has the same
    output as M, also under interchange interventions, whenever x1 = x2", is verified on the domain
    {0..10^6}² symbolically (sympy: the output differences vanish once the condition is
    substituted, for base, source and intervened inputs), where enumerating the ~10^12 input pairs
    is hopeless; the symbolic verdict agrees with enumeration on {0..30}². Without the condition
    the same check returns a named counterexample input, and the X1 alignment needs no condition.""",
    source=SOURCE + "; Alex Gibson's comment (mechanisms should come with their input conditions)",
)
def check_condition_scales(ctx: Context) -> Result:
    low, high, ex = _explanations()
    big = {n: (0, BOX) for n in low.inputs}
    small = grid_domain(low.inputs, ranges=[range(SMALL + 1)] * 2)
    sym, enum, secs = {}, {}, {}
    for name, e in ex.items():
        t0 = time.perf_counter()
        sym[name] = e.verify_symbolic(big)
        secs[name] = time.perf_counter() - t0
        enum[name] = e.verify_enumerated(small)
    # counterexamples outside the condition, by enumeration on the small box
    n_out, named_out = ex["x2|x1=x2"].counterexamples_outside(small, limit=3)
    ce = sym["x2"].counterexample
    ce_checks = False
    if ce is not None and "input" in ce:
        x = ce["input"]
        ce_checks = x["x1"] != x["x2"] and all(0 <= v <= BOX for v in x.values()) and \
            not ex["x2"]._concrete_ok(None, ce)
    expect = {"x2|x1=x2": True, "x2": False, "x1": True}
    ok = all(sym[k].holds is expect[k] and enum[k].holds is expect[k] for k in expect)
    ok &= ce_checks and n_out == (SMALL + 1) * SMALL
    return Result(
        verdict=holds_if(ok),
        predicted={"symbolic_0..1e6": expect, "enumerated_0..30": expect,
                   "outside_condition_failures_0..30": (SMALL + 1) * SMALL},
        observed={"symbolic_0..1e6": {k: v.holds for k, v in sym.items()},
                  "enumerated_0..30": {k: v.holds for k, v in enum.items()},
                  "symbolic_counterexample_without_condition": ce,
                  "outside_condition_failures_0..30": n_out, "outside_first": named_out[:2],
                  "symbolic_model_runs": {k: v.cases for k, v in sym.items()},
                  "enumerated_cases": {k: v.cases for k, v in enum.items()},
                  "symbolic_seconds": {k: round(v, 3) for k, v in secs.items()}},
        tolerance="exact (sympy simplification to 0; integer comparisons)",
        detail=(f"Symbolic: {sym['x2|x1=x2'].cases} symbolic model runs (1 plain + 4 per intervened variable) "
                f"whatever the box; enumeration with the condition checks {enum['x2|x1=x2'].cases} cases on "
                f"{{0..{SMALL}}}² and would need ~(10^6)² pairs on {{0..10^6}}². The counterexample is re-run "
                "concretely before it is reported; every off-diagonal input of the small box fails."),
    )


@claim(
    "causal.toy_model_alignment",
    status="empirical",
    statement="""On a 5→2 ReLU-output toy model trained at feature probability 0.05 (a pentagon),
    swapping the hidden state's component along W_i between a base and a source input makes the
    outputs what the high-level model "feature i is read from W_i·h, each other feature from its
    own direction" predicts (every output within 0.1) when the inputs are sparse: the
    hypothesis holds on the sparsity-restricted domain (no feature other than i active in base
    or source; IIA there >= 0.95), so the interchange-intervention accuracy at input density p is
    at least the chance (1 − p)^(2(N−1)) of that domain (less 0.05), is >= 0.9 at p = 0.01, and
    falls strictly as the density rises over p = 0.01..0.5 (other active features share the two
    hidden dimensions, and the swap along W_i moves their readouts too).""",
    source="seed 002 (causal abstraction on trained models); Elhage et al. 2022 (the 5→2 toy model)",
    searches=True,
)
def check_toy_model_alignment(ctx: Context) -> Result:
    r = toy_model_iia(ctx)
    iia, bound = r["iia"], r["p_condition"]
    decreasing = all(a > b for a, b in zip(iia, iia[1:]))
    above = all(a >= pc - TOY_TOL for a, pc in zip(iia, bound))
    ok = iia[0] >= TOY_SPARSE_MIN and r["iia_on_condition_pooled"] >= 1 - TOY_TOL and above and decreasing
    return Result(
        verdict=holds_if(ok),
        predicted={"iia_at_p=0.01": f">= {TOY_SPARSE_MIN}", "iia_on_restricted_domain": 1.0,
                   "iia_lower_bound=(1-p)^(2(N-1))": [round(v, 4) for v in bound],
                   "iia_vs_density": "strictly decreasing"},
        observed={"densities": r["densities"], "iia": [round(v, 4) for v in iia],
                  "iia_on_restricted_domain": round(r["iia_on_condition_pooled"], 4),
                  "iia_on_restricted_domain_by_density": [round(v, 4) for v in r["iia_on_condition"]],
                  "fraction_on_restricted_domain": [round(v, 4) for v in r["fraction_on_condition"]],
                  "decreasing": decreasing, "model_loss": round(r["loss"], 5), "geometry": r["geometry"]},
        tolerance={"iia_on_restricted_domain": TOY_TOL, "iia_lower_bound": TOY_TOL, "output_atol": TOY_ATOL},
        detail=(f"{r['pairs']} (base, source) pairs per density and feature from independent SparseFeatures draws, "
                "averaged over the 5 features. On the restricted domain the swap gives h' = h_source exactly; its "
                "residual misses are neighbours' outputs firing above the tolerance at large magnitudes (the pooled "
                "value weights densities by their number of restricted pairs). Off it, the swap along W_i also moves "
                "the other features' readouts W_j·h (the pentagon's directions are not orthogonal)."),
    )


TOY_TOL = 0.05
TOY_SPARSE_MIN = 0.9
TOY_ATOL = 0.1
TOY_DENSITIES = (0.01, 0.03, 0.1, 0.2, 0.3, 0.5)


def toy_model_iia(ctx: Context, densities: Sequence[float] = TOY_DENSITIES, *, train_p: float = 0.05) -> dict[str, Any]:
    """Train a 5→2 toy model at ``train_p`` (via train_tms) and measure, for each input density,
    the IIA of the 'feature i read from W_i·h' hypothesis (averaged over i), on all pairs and on
    the pairs where no other feature is active."""
    from toymodels.data import SparseFeatures
    from toymodels.device import derive_seed
    from toymodels.experiments import train_tms
    from toymodels.models import TMSConfig
    from toymodels.train import TrainConfig

    steps, best_of, pairs = ctx.pick(800, 2000, 5000), ctx.pick(1, 2, 4), ctx.pick(500, 4000, 20000)
    run = train_tms(TMSConfig(5, 2, n_instances=1), train_p, train=TrainConfig(steps=steps, batch_size=1024),
                    best_of=best_of, seed=derive_seed(ctx.seed, "causal", "toy_model", "train"), device=ctx.device)
    W, b = run.model.W_IMN.detach()[0].cpu(), run.model.b_IN.detach()[0].cpu()
    n = W.shape[1]
    iia, on_cond, frac, pcond = [], [], [], []
    n_cond = n_cond_agree = 0
    for k, p in enumerate(densities):
        src = SparseFeatures(n, float(p), 1, seed=derive_seed(ctx.seed, "causal", "toy_model", "pairs", k))
        xb, xs = src.sample(pairs)[0], src.sample(pairs)[0]
        a_all, a_cond, f_cond = [], [], []
        for i in range(n):
            low, high, al = toy_model_abstraction(W, b, i)
            agree = interchange_intervention(low, high, al, "f", {"x": xb}, {"x": xs}, atol=TOY_ATOL)
            others = torch.ones(n, dtype=torch.bool)
            others[i] = False
            cond = (xb[:, others] == 0).all(1) & (xs[:, others] == 0).all(1)
            a_all.append(agree.float().mean().item())
            f_cond.append(cond.float().mean().item())
            if cond.any():
                a_cond.append(agree[cond].float().mean().item())
            n_cond += int(cond.sum())
            n_cond_agree += int(agree[cond].sum())
        iia.append(float(np.mean(a_all)))
        on_cond.append(float(np.mean(a_cond)) if a_cond else float("nan"))
        frac.append(float(np.mean(f_cond)))
        pcond.append((1 - p) ** (2 * (n - 1)))
    return {"densities": list(densities), "iia": iia, "iia_on_condition": on_cond, "fraction_on_condition": frac,
            "p_condition": pcond, "pairs": pairs,
            "iia_on_condition_pooled": n_cond_agree / max(n_cond, 1), "loss": float(run.loss[0]), "geometry": run.metrics["geometry"][0],
            "W": W, "b": b}
