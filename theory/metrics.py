"""Claims: metrics — "loss recovered" against the compute a Chinchilla-optimal model would need.

Loss recovered = 1 − (L_SAE − L_orig) / (L_ablated − L_orig) is linear in the loss, while loss
is logarithmic-ish in compute. Under the Chinchilla fit L(N, D) = E + A/N^α + B/D^β with
C = 6ND, the compute-optimal loss is L*(C) = E + K (C/6)^−γ with γ = αβ/(α + β), so a model
whose loss rose from L_orig to L_SAE is worth a fraction ((L_orig − E)/(L_SAE − E))^(1/γ) of the
compute (seed 004). The functions live in :mod:`toymodels.metrics`; this module checks them.
"""
from __future__ import annotations

import math

import numpy as np

from toymodels.measures.metrics import (
    CHINCHILLA,
    chinchilla_gamma,
    chinchilla_loss,
    chinchilla_optimal_loss,
    loss_recovered_vs_compute,
)

from .registry import Context, Result, claim, holds_if, within

# The worked example of the catalogue, and the numbers it quotes.
EXAMPLE = {"loss_orig": 2.0, "loss_sae": 3.0, "loss_ablated": 13.0}
EXAMPLE_LOSS_RECOVERED = 10 / 11  # 1 − 1/11 = 90.9 %
EXAMPLE_COMPUTE_FRACTION = 8.4e-5  # quoted to two significant figures


def chinchilla_symbolic() -> dict[str, object]:
    """Derive the compute-optimal frontier with sympy.

    Returns N*(C) (the stationary point of L(N, C/(6N)), verified by substitution), the exponent
    d log(L* − E) / d log C (simplified; −γ), its difference from −αβ/(α+β) (simplified; 0), and
    K = (L* − E)(C/6)^γ as an expression in A, B, α, β.
    """
    import sympy as sp

    N, C, A, B, E, al, be, t = sp.symbols("N C A B E alpha beta t", positive=True)
    L = E + A * N ** (-al) + B * (C / (6 * N)) ** (-be)
    n_star = (al * A / (be * B)) ** (1 / (al + be)) * (C / 6) ** (be / (al + be))
    stationary = sp.simplify(sp.powsimp(sp.expand_power_base(sp.diff(L, N).subs(N, n_star), force=True), force=True))
    excess = sp.powsimp(sp.expand_power_base(L.subs(N, n_star) - E, force=True), force=True)
    # exponent of the frontier: d log(L* − E) / d log C with C = 6 e^t
    slope = sp.simplify(sp.diff(sp.log(excess.subs(C, 6 * sp.exp(t))), t))
    gap = sp.simplify(slope + al * be / (al + be))
    k = sp.simplify(sp.powsimp(sp.expand_power_base(excess * (C / 6) ** (al * be / (al + be)), force=True), force=True))
    return {"n_star": n_star, "stationary": stationary, "slope": slope, "gamma_gap": gap, "K": k,
            "symbols": {"A": A, "B": B, "alpha": al, "beta": be, "C": C}}


def scipy_optimal_loss(compute: float, **fit: float) -> tuple[float, float]:
    """min over N of L(N, C/(6N)) by bounded Brent search in log N: (loss, N*)."""
    from scipy.optimize import minimize_scalar

    hi = math.log(compute / 6)
    res = minimize_scalar(lambda u: chinchilla_loss(math.exp(u), compute / (6 * math.exp(u)), **fit),
                          bounds=(0.0, hi), method="bounded", options={"xatol": 1e-10, "maxiter": 500})
    return float(res.fun), math.exp(float(res.x))


@claim(
    "metrics.loss_recovered_vs_compute",
    status="exact",
    statement="""Loss recovered is 1 − (L_SAE − L_orig)/(L_ablated − L_orig). Under the Chinchilla fit
    L(N, D) = E + A/N^α + B/D^β (E = 1.69, A = 406.4, B = 410.7, α = 0.34, β = 0.28) with compute
    C = 6ND, the compute-optimal loss is L*(C) = E + K (C/6)^−γ with γ = αβ/(α+β), so an SAE-spliced
    model is worth a fraction ((L_orig − E)/(L_SAE − E))^(1/γ) of the original compute. Example:
    L_orig = 2, L_SAE = 3, L_ablated = 13 gives 90.9% loss recovered but only about 8.4e-5 of the
    compute.""",
    source="seed 004 (loss recovered on a linear scale); Hoffmann et al. 2022 (Chinchilla, approach 3)",
)
def check_loss_recovered_vs_compute(ctx: Context) -> Result:
    import sympy as sp

    fit = CHINCHILLA
    # 1. γ = αβ/(α+β) from the symbolic minimisation, and the same K as the code's closed form.
    sym = chinchilla_symbolic()
    s = sym["symbols"]
    subs = {s["A"]: sp.Rational("406.4"), s["B"]: sp.Rational("410.7"),
            s["alpha"]: sp.Rational("0.34"), s["beta"]: sp.Rational("0.28")}
    gamma_exact = sp.Rational(34, 100) * sp.Rational(28, 100) / (sp.Rational(34, 100) + sp.Rational(28, 100))
    k_sym = float(sym["K"].subs(subs).evalf(30))
    k_code = chinchilla_optimal_loss(6.0) - fit["E"]  # (C/6)^−γ = 1 at C = 6
    sym_ok = (sym["stationary"] == 0 and sym["gamma_gap"] == 0
              and within(float(gamma_exact), chinchilla_gamma(), rel=1e-15) and within(k_sym, k_code, rel=1e-12))

    # 2. Closed-form L*(C) against a numerical minimisation over N.
    computes = np.logspace(18, 26, ctx.pick(5, 25, 200))
    rel_errs = []
    for c in computes:
        numeric, _ = scipy_optimal_loss(float(c))
        rel_errs.append(abs(numeric - chinchilla_optimal_loss(float(c))) / chinchilla_optimal_loss(float(c)))
    frontier_err = max(rel_errs)

    # 3. The worked example, against exact / high-precision values.
    ex = loss_recovered_vs_compute(**EXAMPLE)
    cf_exact = float((sp.Rational(31, 100) / sp.Rational(131, 100)) ** (1 / gamma_exact))
    # independently: invert the frontier at both losses and take the ratio of computes
    from scipy.optimize import brentq

    def compute_at(loss: float) -> float:
        return math.exp(brentq(lambda lc: chinchilla_optimal_loss(math.exp(lc)) - loss, 1.0, 300.0, xtol=1e-14, rtol=1e-15))

    cf_inverted = compute_at(EXAMPLE["loss_sae"]) / compute_at(EXAMPLE["loss_orig"])
    ex_ok = (within(EXAMPLE_LOSS_RECOVERED, ex["loss_recovered"], abs_=1e-12)
             and within(cf_exact, ex["compute_fraction"], rel=1e-12)
             and within(cf_exact, cf_inverted, rel=1e-8)
             and within(EXAMPLE_COMPUTE_FRACTION, ex["compute_fraction"], abs_=0.05e-5))
    ok = sym_ok and frontier_err <= 1e-9 and ex_ok
    return Result(
        verdict=holds_if(ok),
        predicted={"gamma": float(gamma_exact), "loss_recovered": EXAMPLE_LOSS_RECOVERED,
                   "compute_fraction": EXAMPLE_COMPUTE_FRACTION, "frontier_rel_err": 0.0},
        observed={"gamma": chinchilla_gamma(), "loss_recovered": ex["loss_recovered"],
                  "compute_fraction": ex["compute_fraction"], "frontier_rel_err": frontier_err,
                  "compute_fraction_by_inverting_L*": cf_inverted, "K": k_code},
        tolerance={"gamma": "exact (sympy: γ = 119/775)", "loss_recovered": 1e-12,
                   "compute_fraction": "rel 1e-12 vs exact; 8.4e-5 to 2 s.f.", "frontier_rel_err": 1e-9},
        detail=(f"sympy: dL/dN = 0 at N* ∝ (C/6)^(β/(α+β)) and d log(L*−E)/d log C = −αβ/(α+β) exactly; K "
                f"= {k_code:.6g} matches the code. L*(C) vs bounded Brent over log N at {len(computes)} computes "
                f"1e18..1e26: max rel err {frontier_err:.2g}. Example: 10/11 = 90.9% recovered, compute fraction "
                f"{ex['compute_fraction']:.4g} (exact {cf_exact:.6g}; {cf_inverted:.6g} by inverting L*)."),
    )
