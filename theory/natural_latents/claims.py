"""Natural latents: the claims (see ``python -m theory --only natural_latents``)."""
from __future__ import annotations

import itertools
import math
from typing import Any

import numpy as np

from ..registry import Context, Result, claim, holds_if
from .measures import *  # noqa: F403
from .measures import LAM, LAM2, X1, X2, _ch, _cmi, _h, _safe_div
from .search import *  # noqa: F403

# ---------------------------------------------------------------------------------------------
# pinned examples
# ---------------------------------------------------------------------------------------------

KL_RESAMPLING_COUNTEREXAMPLES = {
    "eps~1e-4": np.array([1.33e-05, 0.000521, 0.0105, 0.0329, 7.08e-08, 0.95606562711, 1e-09, 1.09e-09]).reshape(2, 2, 2),
    "eps~1e-5": np.array([0.99496596398, 3.64e-08, 4.31e-08, 6.52e-09, 6.59e-05, 1.05e-06, 0.00404, 0.000927]).reshape(2, 2, 2),
}
"""Binary joints (axes X1, X2, Λ; every entry > 0, decimal entries summing to exactly 1) where
resampling Λ from P[Λ|X1] gives I(Γ;X1|X2) > 9·max(I(Λ;X1|X2), I(Λ;X2|X1)): ratios 9.727
(eps = 1.001e-4) and 11.98 (eps = 9.98e-6), confirmed at 50 digits with mpmath. Found by
``search_kl_resampling`` and rounded to 3 significant digits."""


KL_RESAMPLING_ALL_ERRORS_COUNTEREXAMPLES = {
    "binary eps~1e-8": np.array([
        1.2979836910491683e-12, 1.0294831822213263e-14, 0.9999999793882742, 1.0000000008323437e-14,
        5.313691501835375e-10, 1.0956165638289776e-08, 8.58958276941426e-09, 5.332899767389729e-10]).reshape(2, 2, 2),
    "ternary X1 eps~1e-5": np.array([
        1e-14, 0.4999901425827425, 1e-14, 1e-14, 1e-14, 1e-14, 0.49999019431354236, 1e-14,
        4.5368228457653456e-07, 9.37786992095726e-06, 9.377869174923963e-06, 4.5368227476287087e-07]).reshape(3, 2, 2),
}
"""Joints (axes X1, X2, Λ; every entry > 0) with all three errors I(X1;X2|Λ), I(Λ;X1|X2),
I(Λ;X2|X1) <= eps where resampling Λ from P[Λ|X1] gives I(Γ;X1|X2) > 9·max(errors): ratio 9.63 with
binary X1 at eps <= 1e-8, and 11.0 with ternary X1 at eps <= 1e-5 (X1's third value is rare and Λ is
nearly X2's parity there). Found by ``search_kl_resampling_all_errors`` (seeds 0 and 3); re-checked at
50 digits in the tests."""


def _random_shape(rng: np.random.Generator, ndim: int, hi: int) -> tuple[int, ...]:
    return tuple(int(s) for s in rng.integers(1, hi + 1, size=ndim))


def _random_test_joint(rng: np.random.Generator, ndim: int = 3, hi: int = 5, zero_fracs=(0.0, 0.3, 0.6, 0.9)) -> np.ndarray:
    return random_joint(_random_shape(rng, ndim, hi), rng, float(rng.choice([0.1, 0.5, 1.0, 3.0])), float(rng.choice(zero_fracs)))


def _fmt(P: np.ndarray, digits: int = 4) -> str:
    return np.array2string(np.asarray(P).ravel(), precision=digits, separator=",", max_line_width=10**6)


# ---------------------------------------------------------------------------------------------
# claims
# ---------------------------------------------------------------------------------------------

_SRC_MATH = 'Wentworth & Lorell, "Natural Latents: The Math" (2023)'


VERIFY_REL = 1e-6
"""A searched ratio counts as crossing 9 only above 9·(1 + VERIFY_REL): far beyond float error."""
_VERIFIED = (" A counterexample verifies exactly (the ratio is recomputed from the joint itself; the pinned joints "
             "are checked at 50 digits in the tests), so a fresh seed's search cannot undo it: budget_stable is "
             "reported by the check")


@claim(
    "natural_latents.error_definitions",
    status="proven",
    statement="""The mediation error D_KL(P[X,Λ] || P[Λ]P[X1|Λ]P[X2|Λ]) equals I(X1;X2|Λ); the stochastic
    redundancy error of X_i, D_KL(P[X,Λ] || P[X]P[Λ|X_j]), equals I(Λ;X_i|X_j); the deterministic
    redundancy error is H(Λ|X_i) = E[−ln P[Λ|X_i]]. KL and information forms agree on every finite joint.""",
    source=_SRC_MATH,
)
def _check_error_definitions(ctx: Context) -> Result:
    rng = ctx.rng("natural_latents.error_definitions")
    n = ctx.pick(40, 600, 6000)
    worst, most_negative = 0.0, 0.0
    for _ in range(n):
        P = _random_test_joint(rng)
        errs = [mediation_error(P), redundancy_error(P, 1), redundancy_error(P, 2)]
        kls = [mediation_kl(P), redundancy_kl(P, 1), redundancy_kl(P, 2)]
        det = [deterministic_redundancy_error(P, i) for i in (1, 2)]
        direct = []
        for ax in (0, 1):  # E[−ln P[Λ|X_i]] straight from the conditional
            pil = P.sum(axis=1 - ax)
            cond = _safe_div(pil, pil.sum(axis=1, keepdims=True))
            s = pil > 0
            direct.append(float(-(pil[s] * np.log(cond[s])).sum()))
        worst = max(worst, *(abs(a - b) for a, b in zip(errs + det, kls + direct)))
        most_negative = min(most_negative, *errs, *det)
    # hand computations: X1, X2 independent fair bits and Λ = X1 xor X2 — every error is ln 2;
    # Λ = X1 = X2 one fair bit — every error is 0.
    xor = np.zeros((2, 2, 2))
    for a, b in itertools.product(range(2), range(2)):
        xor[a, b, a ^ b] = 0.25
    copy = np.zeros((2, 2, 2))
    copy[0, 0, 0] = copy[1, 1, 1] = 0.5
    hand = [mediation_kl(xor), redundancy_kl(xor, 1), redundancy_kl(xor, 2), deterministic_redundancy_error(xor, 1)]
    hand_dev = max(max(abs(h - math.log(2)) for h in hand), mediation_kl(copy), redundancy_kl(copy, 1),
                   deterministic_redundancy_error(copy, 2))
    ok = worst <= 1e-10 and most_negative >= -1e-12 and hand_dev <= 1e-12
    return Result(holds_if(ok), 0.0, worst, 1e-10,
                  f"max |KL form − information form| over {n} random joints (shapes 1..5 per axis, up to 90% exact "
                  f"zeros) = {worst:.2e}; most negative error {most_negative:.1e}; xor and copy hand examples off by "
                  f"{hand_dev:.1e} from ln 2 / 0")


@claim(
    "natural_latents.kl_finite",
    status="proven",
    statement="""On finite spaces the mediation KL is always finite: wherever P[Λ]P[X1|Λ]P[X2|Λ] is zero,
    P[X,Λ] is zero too (a zero factor forces a zero marginal). The same holds for the redundancy
    factorisations P[X]P[Λ|X_j], with as many exact zeros as one likes.""",
    source=f"{_SRC_MATH}; Alex Gibson's comment on the $500 bounty post (2025)",
)
def _check_kl_finite(ctx: Context) -> Result:
    rng = ctx.rng("natural_latents.kl_finite")
    n = ctx.pick(40, 600, 6000)
    violations, largest = 0, 0.0
    for _ in range(n):
        P = _random_test_joint(rng, zero_fracs=(0.5, 0.7, 0.9))
        for Q in (mediation_factorization(P), redundancy_factorization(P, 1), redundancy_factorization(P, 2)):
            violations += int(np.sum((P > 0) & (Q <= 0)))
        kls = [mediation_kl(P), redundancy_kl(P, 1), redundancy_kl(P, 2)]
        largest = max(largest, *kls) if all(math.isfinite(k) for k in kls) else math.inf
    ok = violations == 0 and math.isfinite(largest)
    return Result(holds_if(ok), 0, violations, 0,
                  f"{n} random joints with 50-90% exact zeros: {violations} entries where P > 0 but a factorisation "
                  f"is 0; largest KL {largest:.3g} nats (finite)")


@claim(
    "natural_latents.mediator_determines_redund",
    status="proven",
    statement="""For any joint over (X1, X2, Λ, Λ'): H(Λ'|Λ) <= I(X1;X2|Λ) + H(Λ'|X1) + H(Λ'|X2) — a
    latent that (nearly) mediates between X1 and X2 (nearly) determines any latent that each X_i
    (nearly) determines.""",
    source="Wentworth & Lorell, arXiv:2509.03780 (2025), Theorem 1",
)
def _check_mediator_determines_redund(ctx: Context) -> Result:
    rng = ctx.rng("natural_latents.mediator_determines_redund")
    n = ctx.pick(100, 2000, 20000)

    def sides(P: np.ndarray) -> tuple[float, float]:
        return _ch(P, LAM2, LAM), _cmi(P, X1, X2, LAM) + _ch(P, LAM2, X1) + _ch(P, LAM2, X2)

    slacks, rel = [], []
    for k in range(n):
        if k % 2:
            P = _random_test_joint(rng, ndim=4, hi=3)
        else:  # latents built from X (conditionally independent, peaked kernels: near-natural cases)
            PX = random_joint(_random_shape(rng, 2, 3), rng, float(rng.choice([0.2, 1.0])), float(rng.choice([0.0, 0.5])))
            a = float(rng.choice([0.05, 0.3, 1.0]))
            P = latent_pair_joint(PX, random_kernel(PX.shape, int(rng.integers(1, 4)), rng, a),
                                  random_kernel(PX.shape, int(rng.integers(1, 4)), rng, a))
        lhs, rhs = sides(P)
        slacks.append(rhs - lhs)
        if lhs > 0.05:
            rel.append(rhs / lhs)
    # an equality case: X1 = X2 = Λ' one fair bit, Λ constant (H(Λ'|Λ) = ln 2 = I(X1;X2))
    eq = np.zeros((2, 2, 1, 2))
    eq[0, 0, 0, 0] = eq[1, 1, 0, 1] = 0.5
    lhs, rhs = sides(eq)
    # a short optimisation pushing H(Λ'|Λ) up against the right-hand side (LHS kept >= 0.05)
    def objective(P: np.ndarray) -> float:
        l, r = sides(P)
        return (r - l) + 100 * max(0.0, 0.05 - l)

    runs = logit_search(objective, (2, 2, 2, 2), rng, ctx.pick(1, 3, 12), ctx.pick(200, 800, 3000), scale=(0.5, 4.0))
    opt = min(float(np.subtract(*sides(P)[::-1])) for _, P in runs)
    min_slack = min(min(slacks), opt)
    ok = min_slack >= -1e-12 and abs(lhs - math.log(2)) < 1e-12 and abs(rhs - lhs) < 1e-12
    return Result(holds_if(ok), 0.0, min_slack, 1e-12,
                  f"min RHS − LHS = {min(slacks):.2e} over {n} random 4-D joints (half arbitrary with zeros, half "
                  f"with Λ, Λ' drawn from X); Nelder–Mead minimising the slack reached {opt:.2e}; tightest "
                  f"RHS/LHS with LHS > 0.05: {min(rel) if rel else float('nan'):.4f}; equality example "
                  f"(X1 = X2 = Λ', Λ constant) slack {rhs - lhs:.1e}")


@claim(
    "natural_latents.stochastic_mediator_redund",
    status="proven",
    statement="""If Λ and Λ' are independent given X: I(Λ';X|Λ) <= I(X1;X2|Λ) + I(Λ';X1|X2) + I(Λ';X2|X1).
    Derivation: chain rule, I(Λ';X2|Λ) <= I(X1;X2|Λ) + I(Λ';X2|X1,Λ), and conditional independence
    gives I(Λ';X_i|X_j,Λ) <= I(Λ';X_i|X_j). Without the independence the inequality can fail.""",
    source="Stochastic analogue of arXiv:2509.03780 Thm 1 (Wentworth & Lorell); derivation in this module",
)
def _check_stochastic_mediator_redund(ctx: Context) -> Result:
    rng = ctx.rng("natural_latents.stochastic_mediator_redund")
    n = ctx.pick(100, 2000, 20000)

    def sides(P: np.ndarray) -> tuple[float, float]:
        return _cmi(P, LAM2, (X1, X2), LAM), _cmi(P, X1, X2, LAM) + _cmi(P, LAM2, X1, X2) + _cmi(P, LAM2, X2, X1)

    min_slack, worst_P = math.inf, None
    for _ in range(n):
        PX = random_joint(_random_shape(rng, 2, 4), rng, float(rng.choice([0.1, 0.5, 1.0])), float(rng.choice([0.0, 0.4])))
        a = float(rng.choice([0.05, 0.3, 1.0, 3.0]))
        P = latent_pair_joint(PX, random_kernel(PX.shape, int(rng.integers(1, 4)), rng, a, float(rng.choice([0.0, 0.5]))),
                              random_kernel(PX.shape, int(rng.integers(1, 4)), rng, a, float(rng.choice([0.0, 0.5]))))
        lhs, rhs = sides(P)
        if rhs - lhs < min_slack:
            min_slack, worst_P = rhs - lhs, P
    # the independence is needed: X1, X2, N fair bits, Λ = N, Λ' = X1 xor N: LHS ln 2, RHS 0
    dep = np.zeros((2, 2, 2, 2))
    for x1, x2, nb in itertools.product(range(2), repeat=3):
        dep[x1, x2, nb, x1 ^ nb] = 0.125
    dl, dr = sides(dep)
    ok = min_slack >= -1e-12 and dl - dr > 0.5
    return Result(holds_if(ok), 0.0, min_slack, 1e-12,
                  f"min RHS − LHS = {min_slack:.2e} over {n} joints P[X]P[Λ|X]P[Λ'|X] (shapes up to 4x4, latents "
                  f"up to 3 values, exact zeros); without Λ ⊥ Λ' | X the bound fails: Λ = N, Λ' = X1 xor N "
                  f"gives LHS {dl:.4f} > RHS {dr:.1e}")


@claim(
    "natural_latents.trivial_latents",
    status="proven",
    statement="""Every X has deterministic natural latents with all errors <= min(I(X1;X2), H(X1|X2),
    H(X2|X1)): a constant latent has errors (I(X1;X2), 0, 0), the copy Λ = X1 has (0, 0, H(X1|X2))
    and Λ = X2 has (0, H(X2|X1), 0) as (mediation, H(Λ|X1), H(Λ|X2)).""",
    source=f'{_SRC_MATH}; the $500 bounty post (Apr 2025)',
)
def _check_trivial_latents(ctx: Context) -> Result:
    rng = ctx.rng("natural_latents.trivial_latents")
    n = ctx.pick(30, 500, 5000)
    dev, batch_dev, n_small = 0.0, 0.0, 0
    for _ in range(n):
        PX = random_joint(_random_shape(rng, 2, 5), rng, float(rng.choice([0.1, 1.0])), float(rng.choice([0.0, 0.5])))
        hx, h1, h2 = _h(PX), _h(PX.sum(axis=1)), _h(PX.sum(axis=0))
        mi, h1g2, h2g1 = h1 + h2 - hx, hx - h2, hx - h1
        t = trivial_latent_errors(PX)
        want = {"constant": (mi, 0, 0), "copy1": (0, 0, h1g2), "copy2": (0, h2g1, 0)}
        for name, (m, d1, d2) in want.items():
            got = t[name]
            dev = max(dev, abs(got["med"] - m), abs(got["det1"] - d1), abs(got["det2"] - d2))
        bound = min(mi, h1g2, h2g1)
        achieved = min(max(v.values()) for v in t.values())
        dev = max(dev, abs(achieved - bound))
        if PX.size <= 6:
            # the partition enumeration (batched entropies) must price the three trivial latents
            # exactly as the direct construction does, and its best latent re-priced directly
            # must give the error it reported: two independent paths that can disagree
            n_small += 1
            n1, n2 = PX.shape
            labels = np.stack([np.zeros(PX.size, dtype=np.int64), np.repeat(np.arange(n1), n2), np.tile(np.arange(n2), n1)])
            batch = deterministic_errors_batch(PX, labels)
            direct = np.array([[t[k]["med"], t[k]["det1"], t[k]["det2"]] for k in ("constant", "copy1", "copy2")])
            best = best_deterministic_latent(PX)
            again = max(deterministic_errors(deterministic_latent_joint(PX, best["labels"])).values())
            batch_dev = max(batch_dev, float(np.abs(batch - direct).max()), abs(again - best["max_error"]))
    ok = dev <= 1e-10 and batch_dev <= 1e-10
    return Result(holds_if(ok), 0.0, max(dev, batch_dev), 1e-10,
                  f"{n} random P[X] (shapes up to 5x5, exact zeros): errors of the constant / copy latents match "
                  f"(I, 0, 0), (0, 0, H(X1|X2)), (0, H(X2|X1), 0) and their best equals min(I, H(X1|X2), H(X2|X1)) "
                  f"to {dev:.1e}; on the {n_small} joints with <= 6 cells the partition enumeration prices the "
                  f"trivial latents and its own best latent as the direct construction does (max deviation "
                  f"{batch_dev:.1e})")


@claim(
    "natural_latents.shared_bits_example",
    status="proven",
    statement="""X1 and X2 are 2k-bit strings that share their first k bits (the other bits independent
    and uniform). Λ = the shared k bits has every error (stochastic and deterministic) 0, while
    I(X1;X2) = H(X1|X2) = H(X2|X1) = k ln 2, so both trivial latents have error k ln 2.""",
    source=f"{_SRC_MATH}; seed 002",
)
def _check_shared_bits(ctx: Context) -> Result:
    ks = ctx.pick((1, 2), (1, 2, 3), (1, 2, 3, 4))
    dev, mis = 0.0, []
    for k in ks:
        P = shared_bits_joint(k)
        errs = [*stochastic_errors(P).values(), *deterministic_errors(P).values()]
        PX = P.sum(axis=2)
        mi = mutual_information(PX, 0, 1)
        mis.append(mi)
        dev = max(dev, max(abs(e) for e in errs), abs(mi - k * math.log(2)),
                  abs(conditional_entropy(PX, 0, 1) - k * math.log(2)), abs(conditional_entropy(PX, 1, 0) - k * math.log(2)))
    ok = dev <= 1e-12
    return Result(holds_if(ok), [k * math.log(2) for k in ks], mis, 1e-12,
                  f"k = {list(ks)}: latent errors 0 and I(X1;X2), H(X1|X2), H(X2|X1) = k ln 2, worst deviation {dev:.1e}")


@claim(
    "natural_latents.deterministic_conjecture",
    status="conjecture",
    statement="""If a stochastic natural latent has all errors <= eps, a deterministic natural latent
    (mediation, H(Λ'|X1), H(Λ'|X2)) with errors O(eps) exists. Searched: the ratio of the best
    deterministic latent found to eps over random and optimised small joints.""",
    source='Wentworth & Lorell, "$500 Bounty Problem: Are (Approximately) Deterministic Natural Latents All You Need?" (Apr 2025)',
    searches=True,
)
def _check_deterministic_conjecture(ctx: Context) -> Result:
    rng = ctx.rng("natural_latents.deterministic_conjecture")
    # sanity first: an exact stochastic natural latent (block label + independent noise) has
    # eps = 0 and the block label is found as an exact deterministic one
    PX = np.array([[0.2, 0.1, 0.0], [0.2, 0.1, 0.0], [0.0, 0.0, 0.4]])
    block = np.array([[0, 0, 1], [0, 0, 1], [1, 1, 1]])
    P = deterministic_latent_joint(PX, block)
    P = np.concatenate([0.5 * P, 0.5 * P], axis=2)  # Λ = (block, fair coin)
    e0, b0 = max(stochastic_errors(P).values()), best_deterministic_latent(PX, max_cells=9)
    if e0 > 1e-12 or b0["max_error"] > 1e-12:
        raise RuntimeError(f"exact block example: eps {e0:.2e}, best deterministic {b0['max_error']:.2e} (both should be 0)")
    # (3, 2, ·) is (2, 3, ·) with X1 and X2 swapped, under which every error is symmetric
    shapes = ctx.pick(((2, 2, 2),), ((2, 2, 2), (2, 2, 3), (2, 3, 2)), ((2, 2, 2), (2, 2, 3), (2, 3, 2), (2, 3, 3)))
    r = search_deterministic_conjecture(rng, shapes, n_random=ctx.pick(30, 150, 400), n_starts=ctx.pick(1, 3, 5),
                                        maxiter=ctx.pick(150, 600, 1500),
                                        eps_targets=ctx.pick((1e-2,), (1e-2, 1e-3, 1e-4), (1e-2, 1e-3, 1e-4, 1e-5)))
    pts = r["points"]
    bands = []
    for lo, hi in ((0.0, 1e-4), (1e-4, 1e-3), (1e-3, 1e-2), (1e-2, math.inf)):
        m = (pts[:, 0] > lo) & (pts[:, 0] <= hi)
        if m.any():
            bands.append(f"eps in ({lo:g}, {hi:g}]: {pts[m, 1].max():.2f} (n={int(m.sum())})")
    # the ratio must be reproducible and the latent found no worse than the trivial ones
    again = deterministic_conjecture_ratio(r["P"])
    PXw = r["P"].sum(axis=2)
    triv = min(max(v.values()) for v in trivial_latent_errors(PXw).values())
    if abs(again["ratio"] - r["ratio"]) > 1e-9 * max(1.0, r["ratio"]) or again["det_error"] > triv + 1e-12:
        raise RuntimeError("search result not reproducible or worse than a trivial latent")
    return Result("open", "ratio O(1) as eps -> 0 (conjectured)", float(r["ratio"]), None,
                  f"worst ratio (best deterministic latent's max error)/(stochastic eps) = {r['ratio']:.3f} at eps "
                  f"{r['eps']:.3g} ({r['how']}); worst per eps band: {'; '.join(bands)}. {r['n_evaluated']} joints "
                  f"over shapes {list(shapes)}: Dirichlet draws plus Nelder–Mead over softmax logits towards eps "
                  f"targets; deterministic latents searched = every function of X (all partitions of the X cells), "
                  f"so each ratio is an upper bound for that joint. Worst joint "
                  f"{_fmt(r['P'])} (shape {r['P'].shape}), latent labels {r['labels'].ravel().tolist()}. The verdict is open "
                  "whatever the search finds (a finite ratio cannot refute an O(1) claim): stable by construction",
                  budget_stable=True)


@claim(
    "natural_latents.kl_resampling",
    status="conjecture",
    statement="""Resampling Λ from P[Λ|X1] (Γ with P[X,Γ] = P[X]P[Λ=Γ|X1]) keeps the other stochastic
    redundancy error I(Γ;X1|X2) <= 9·eps, eps = max(I(Λ;X1|X2), I(Λ;X2|X1)), for P > 0 (KL errors).
    Settled here by searching binary joints for the ratio I(Γ;X1|X2)/eps.""",
    source='Wentworth & Lorell, "Resampling Conserves Redundancy (Approximately)" (Aug 2025, withdrawn after '
           'a counterexample by J. Gillen & A. Harwood)',
    searches=True,
)
def _check_kl_resampling(ctx: Context) -> Result:
    rng = ctx.rng("natural_latents.kl_resampling")
    pinned = {}
    for name, P in KL_RESAMPLING_COUNTEREXAMPLES.items():
        r = kl_resampling_errors(P)
        Q = resample_latent(P, 1)
        # the KL form must agree with the information form, and P must be strictly positive
        if abs(redundancy_kl(Q, 1) - r["resampled"]) > 1e-12 or P.min() <= 0 or abs(r["zeroed"]) > 1e-13:
            raise RuntimeError(f"pinned example {name} inconsistent")
        pinned[name] = {**r, "med": mediation_error(P)}
    targets = ctx.pick((1e-4,), (1e-3, 1e-4, 1e-5), (1e-2, 1e-3, 1e-4, 1e-5, 1e-6))
    found = kl_resampling_curve(rng, targets, n_starts=ctx.pick(4, 10, 32), maxiter=ctx.pick(800, 1500, 3000))
    in_band = {t: f for t, f in found.items() if f["in_band"]}
    search_max = max((f["ratio"] for f in in_band.values()), default=float("nan"))
    refuted = any(r["ratio"] > 9 for r in pinned.values()) or search_max > 9 * (1 + VERIFY_REL)
    best_t = max(in_band, key=lambda t: in_band[t]["ratio"]) if in_band else None
    observed = {f"search eps~{t:g}": round(f["ratio"], 3) for t, f in found.items()}
    observed.update({f"pinned {k}": round(v["ratio"], 3) for k, v in pinned.items()})
    p = pinned["eps~1e-4"]
    detail = (f"ratio I(Γ;X1|X2)/eps found by Nelder–Mead over the 8 softmax logits of binary joints (entries >= 1e-9; "
              f"random starts plus continuation from the previous eps), per eps target: " + ", ".join(f"{t:g}: {f['ratio']:.3f} (eps {f['eps']:.3g})" for t, f in found.items())
              + f"; the search {'confirms' if search_max > 9 else 'does not by itself confirm'} a ratio > 9"
              + (f" (best at eps~{best_t:g})" if best_t else "")
              + f". Pinned counterexample P (x1,x2,λ order) = {_fmt(KL_RESAMPLING_COUNTEREXAMPLES['eps~1e-4'], 6)}: "
              f"I(Λ;X1|X2) = {p['red1']:.4e}, I(Λ;X2|X1) = {p['red2']:.4e}, I(Γ;X1|X2) = {p['resampled']:.4e}, ratio "
              f"{p['ratio']:.3f}; its mediation error I(X1;X2|Λ) = {p['med']:.4f} nats = {p['med'] / p['eps']:.0f}·eps "
              f"(the lemma bounds only the redundancy errors; with all three errors <= eps see "
              f"natural_latents.kl_resampling_all_errors); at eps {pinned['eps~1e-5']['eps']:.2e} ratio {pinned['eps~1e-5']['ratio']:.2f}: the ratio "
              f"grows as eps shrinks" + ("; the lead (~9.7 eps at eps ~1e-4) is confirmed" if in_band.get(1e-4, {}).get("ratio", 0) > 9 else ""))
    if refuted:
        detail += _VERIFIED
    return Result("counterexample" if refuted else "open", "ratio <= 9", observed, 9.0, detail,
                  budget_stable=True if refuted else None)


@claim(
    "natural_latents.js_resampling",
    status="proven",
    statement="""With Jensen–Shannon errors ε1 = JS(P || P[X]P[Λ|X1]), ε2 = JS(P || P[X]P[Λ|X2]),
    ε_med = JS(P || P[Λ]P[X1|Λ]P[X2|Λ]) and Γ resampled from P[Λ|X1]: ε^Γ_1 = 0,
    ε^Γ_2 <= (2√ε1 + √ε2)² and ε^Γ_med <= (2√ε1 + √ε_med)² (√JS is a metric, and JS only shrinks
    under marginalisation).""",
    source='D. Lorell, "Resampling Conserves Redundancy & Mediation (Approximately) Under the Jensen-Shannon '
           'Divergence" (Oct 2025)',
    searches=True,
)
def _check_js_resampling(ctx: Context) -> Result:
    rng = ctx.rng("natural_latents.js_resampling")
    n = ctx.pick(40, 400, 5000)
    worst1, worst2, worstm, n_bad, bad = 0.0, 0.0, 0.0, 0, None
    for _ in range(n):
        P = _random_test_joint(rng, hi=4)
        r = js_resampling_errors(P)
        worst1 = max(worst1, r["g1"])
        for key, bkey in (("g2", "bound2"), ("g_med", "bound_med")):
            if r[key] > r[bkey] * (1 + 1e-9) + JS_FLOOR:
                n_bad, bad = n_bad + 1, P
        if r["bound2"] > 1e-12:
            worst2 = max(worst2, r["g2"] / r["bound2"])
        if r["bound_med"] > 1e-12:
            worstm = max(worstm, r["g_med"] / r["bound_med"])
    s = search_js_resampling(rng, (2, 2, 2), n_starts=ctx.pick(2, 4, 24), maxiter=ctx.pick(300, 700, 2500))
    away = search_js_resampling(rng, (2, 2, 2), n_starts=ctx.pick(1, 2, 8), maxiter=ctx.pick(300, 700, 2500), eps1_at_least=1.0)
    on_kl = js_resampling_errors(KL_RESAMPLING_COUNTEREXAMPLES["eps~1e-4"])
    worst2, worstm = max(worst2, s["ratio2"]), max(worstm, s["ratio_med"])
    ok = n_bad == 0 and worst1 <= 1e-12 and max(worst2, worstm) <= 1 + 1e-9
    # the search's optimum, if above 1, is a violation too
    for run in (s, away):
        if max(run["ratio2"], run["ratio_med"]) > 1 + 1e-9:
            ok, bad = False, run["P"]
    detail = (f"{n} random joints (shapes up to 4 per axis, exact zeros) plus Nelder–Mead over binary softmax logits "
              f"maximising observed/(bound + 1e-20): max ε^Γ_1 = {worst1:.1e}, max ε^Γ_2/(2√ε1+√ε2)² = {worst2:.6f}, max "
              f"ε^Γ_med/(2√ε1+√ε_med)² = {worstm:.6f} (both tight, -> 1 as ε1 -> 0); keeping ε1 >= max(ε2, ε_med) the search reached only "
              f"{max(away['ratio2'], away['ratio_med']):.3f}; on the KL counterexample "
              f"ε^Γ_2/bound = {on_kl['g2'] / on_kl['bound2']:.3f}. JS computed with log1p (accurate for tiny JS)")
    if bad is not None:
        detail += f"; violation at P = {_fmt(bad, 8)} (shape {bad.shape})"
    if bad is not None:
        detail += ". The violation is computed exactly from that joint, so another seed's search cannot undo it"
    return Result(holds_if(ok), 1.0, {"red2": worst2, "med": worstm, "g1": worst1}, 1e-9, detail,
                  budget_stable=True if bad is not None else None)


def _growth_per_decade(per_eps: dict[float, float]) -> str:
    """The least-squares slope of the worst ratio against −log10 eps over this run's in-band targets
    (computed here, never quoted), or '' with fewer than two targets."""
    if len(per_eps) < 2:
        return ""
    x = -np.log10(np.array(sorted(per_eps)))
    y = np.array([per_eps[t] for t in sorted(per_eps)])
    slope = float(np.polyfit(x, y, 1)[0])
    return f" In this run the worst ratio rises {slope:.2f} per decade of eps over eps {min(per_eps):g}..{max(per_eps):g}."


@claim(
    "natural_latents.kl_resampling_all_errors",
    status="conjecture",
    statement="""The KL resampling bound with the stronger hypothesis: if all three stochastic errors
    I(X1;X2|Λ), I(Λ;X1|X2), I(Λ;X2|X1) are <= eps (P > 0), then Γ resampled from P[Λ|X1] keeps
    I(Γ;X1|X2) <= 9·eps. Searched: the worst ratio I(Γ;X1|X2)/eps per eps, binary and larger joints.""",
    source='Wentworth & Lorell, "Resampling Conserves Redundancy (Approximately)" (Aug 2025, withdrawn); '
           "the all-errors variant asked by this project's audit (issue 9)",
    searches=True,
)
def _check_kl_resampling_all_errors(ctx: Context) -> Result:
    pinned = {}
    for name, P in KL_RESAMPLING_ALL_ERRORS_COUNTEREXAMPLES.items():
        r = kl_resampling_errors(P)
        if P.min() <= 0 or abs(redundancy_kl(resample_latent(P, 1), 1) - r["resampled"]) > 1e-15:
            raise RuntimeError(f"pinned joint {name} inconsistent (not positive, or KL and information forms disagree)")
        eps = max(mediation_error(P), r["red1"], r["red2"])
        pinned[name] = {"eps": eps, "ratio": r["resampled"] / eps}
    targets = ctx.pick((1e-4,), (1e-3, 1e-4, 1e-5), (1e-3, 1e-4, 1e-5, 1e-6, 1e-7, 1e-8, 1e-9, 1e-10))
    shapes = ctx.pick(((3, 2, 2),), ((3, 2, 2),), ((2, 2, 2), (3, 2, 2), (2, 2, 3), (4, 2, 2), (3, 3, 2)))
    seed = int(ctx.rng("natural_latents.kl_resampling_all_errors").integers(2**31))
    per_eps: dict[float, float] = {}
    worst: dict[str, Any] = {"ratio": -math.inf}
    for shape in shapes:
        found = search_kl_resampling_all_errors(targets, shape, n_starts=ctx.pick(1, 3, 12), seed=seed,
                                                max_iter=ctx.pick(60, 300, 600))
        for t, f in found.items():
            if f["in_band"]:
                per_eps[t] = max(per_eps.get(t, -math.inf), f["ratio"])
                if f["ratio"] > worst["ratio"]:
                    worst = {**f, "shape": shape}
    crossed = sorted(t for t, v in per_eps.items() if v > 9)
    refuted = any(v["ratio"] > 9 for v in pinned.values()) or any(per_eps[t] > 9 * (1 + VERIFY_REL) for t in crossed)
    observed = {f"search eps~{t:g}": round(v, 3) for t, v in sorted(per_eps.items(), reverse=True)}
    observed.update({f"pinned {k}": round(v["ratio"], 3) for k, v in pinned.items()})
    detail = (f"worst I(Γ;X1|X2)/max(all three errors) found by L-BFGS over softmax logits (entries >= 1e-14, "
              f"continuation from larger eps), shapes {list(shapes)}, per eps target: "
              + ", ".join(f"{t:g}: {v:.3f}" for t, v in sorted(per_eps.items(), reverse=True))
              + "; 9 is " + (f"crossed at eps <= {max(crossed):g}" if crossed else "not crossed by this search")
              + (f" (worst {worst['ratio']:.3f}, shape {worst['shape']}, errors med {worst['med']:.3g}, "
                 f"red1 {worst['red1']:.3g}, red2 {worst['red2']:.3g})" if per_eps else "")
              + ". Pinned joints (checked at 50 digits in the tests): "
              + "; ".join(f"{k}: max error {v['eps']:.3g}, ratio {v['ratio']:.3f}" for k, v in pinned.items())
              + "." + _growth_per_decade(per_eps) + (_VERIFIED if refuted else ""))
    return Result("counterexample" if refuted else "open", "ratio <= 9", observed, 9.0, detail,
                  budget_stable=True if refuted else None)
