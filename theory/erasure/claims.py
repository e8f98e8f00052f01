"""Linear concept erasure: the claims (see ``python -m theory --only erasure``)."""
from __future__ import annotations

from fractions import Fraction

import numpy as np

from ..registry import Context, Result, claim, holds_if
from .classifiers import (
    best_linear_accuracy, best_linear_classifier, best_threshold_1d, equal_means_example, equal_means_family,
    fit_logistic,
)
from .leace import data_scale, label_cross_covariance, leace_erase, leace_fit

__all__ = ["random_erasure_dataset"]

# ---------------------------------------------------------------------------------------------
# Random datasets for the guardedness check (and the tests)
# ---------------------------------------------------------------------------------------------


def random_erasure_dataset(rng: np.random.Generator, degenerate: str | None = None) -> tuple[np.ndarray, np.ndarray, np.ndarray | None]:
    """A random labelled dataset (X (n, d), z (n,), weights or None) whose class means differ.

    ``degenerate`` (or a random choice when None): "none", "collinear" (a column is a linear
    combination of others), "wide" (n < d), "duplicates" (repeated rows), "constant" (a
    constant column), "scales" (columns on scales 1e-3..1e3) or "weighted" (random weights)."""
    kinds = ("none", "collinear", "wide", "duplicates", "constant", "scales", "weighted")
    kind = degenerate if degenerate is not None else kinds[rng.integers(len(kinds))]
    if kind not in kinds:
        raise ValueError(f"degenerate must be one of {kinds}; got {kind!r}")
    k = int(rng.integers(2, 5))
    d = int(rng.integers(1, 9)) if kind != "wide" else int(rng.integers(k + 1, 12))
    n = int(rng.integers(max(k, 6), 80)) if kind != "wide" else int(rng.integers(k, d))
    z = np.concatenate([np.arange(k), rng.integers(0, k, n - k)])
    rng.shuffle(z)
    means = rng.normal(0, 1.5, (k, d))
    X = means[z] + rng.standard_normal((n, d)) @ rng.normal(0, 1, (d, d))
    weights = None
    if kind == "collinear" and d >= 2:
        X[:, -1] = X[:, :-1] @ rng.normal(0, 1, d - 1)
    elif kind == "duplicates":
        idx = rng.integers(0, n, n // 2)
        X = np.concatenate([X, X[idx]])
        z = np.concatenate([z, z[idx]])
    elif kind == "constant" and d >= 2:
        X[:, rng.integers(d)] = rng.normal()
    elif kind == "scales":
        X = X * 10.0 ** rng.uniform(-3, 3, d)
    elif kind == "weighted":
        weights = rng.exponential(1.0, len(z))
    return X, z, weights


# ---------------------------------------------------------------------------------------------
# Claims
# ---------------------------------------------------------------------------------------------

COV_TOL = 1e-10
LOGIT_TOL = 1e-8
GAIN_TOL = 1e-12


@claim(
    "erasure.leace_guardedness",
    status="proven",
    statement="""After the LEACE map x − W⁺PW(x − μ) (W = (Σ_XX^{1/2})⁺, P the projection onto
    col(W Σ_XZ), Z the one-hot label) every class has the same mean: the covariance of the erased
    features with the one-hot label is 0. Hence for a convex loss such as cross-entropy no affine
    predictor of the label beats the best constant one, and a logistic regression fitted to the
    erased data has zero weights.""",
    source="Belrose et al. 2023, LEACE: Perfect linear concept erasure in closed form (seed 001)",
    searches=True,
)
def check_leace_guardedness(ctx: Context) -> Result:
    rng = ctx.rng("erasure.leace_guardedness")
    starts = ctx.rng("erasure.leace_guardedness", "logistic-starts")  # the fits' random starts follow ctx.seed
    n_sets = ctx.pick(8, 60, 400)
    kinds = ("none", "collinear", "wide", "duplicates", "constant", "scales", "weighted")
    worst_cov, worst_logit, worst_gain, worst_idem, min_cov_before = 0.0, 0.0, -np.inf, 0.0, np.inf
    erased_dirs, all_converged = 0, True
    for i in range(n_sets):
        X, z, wts = random_erasure_dataset(rng, kinds[i % len(kinds)])
        eraser = leace_fit(X, z, wts)
        Xe = eraser(X)
        scale = max(1.0, data_scale(X, wts))
        min_cov_before = min(min_cov_before, float(np.abs(label_cross_covariance(X, z, wts)).max()) / scale)
        worst_cov = max(worst_cov, float(np.abs(label_cross_covariance(Xe, z, wts)).max()) / scale)
        if kinds[i % len(kinds)] != "scales":  # re-erasing is the identity only up to eps·cond noise
            worst_idem = max(worst_idem, float(np.abs(leace_erase(Xe, z, wts) - Xe).max()) / scale)
        erased_dirs += eraser.rank
        fit = fit_logistic(Xe, z, wts, seed=int(starts.integers(2**31)), ref_scale=data_scale(X, wts))
        all_converged &= fit.converged
        worst_logit = max(worst_logit, fit.logit_std)
        worst_gain = max(worst_gain, fit.constant_loss - fit.loss)  # > 0 would mean beating the constant
    ok = worst_cov <= COV_TOL and worst_logit <= LOGIT_TOL and worst_gain <= GAIN_TOL and all_converged
    return Result(
        verdict=holds_if(ok),
        predicted={"max_abs_cov_xz": 0.0, "logit_std_after": 0.0, "loss_gain_over_constant": 0.0},
        observed={"max_abs_cov_xz": worst_cov, "logit_std_after": worst_logit,
                  "loss_gain_over_constant": worst_gain, "reerase_max_change_well_conditioned": worst_idem,
                  "min_abs_cov_before": min_cov_before},
        tolerance={"max_abs_cov_xz": COV_TOL, "logit_std_after": LOGIT_TOL, "loss_gain_over_constant": GAIN_TOL},
        detail=(f"{n_sets} random datasets (2-4 classes, d = 1-11, incl. collinear, n < d, duplicated, "
                f"constant-column, badly scaled and weighted ones), {erased_dirs} directions erased in all; "
                "covariances divided by max(1, largest std of X); multinomial logistic regression fitted to "
                f"the erased data by Newton from a random start (all converged: {all_converged}). Before "
                f"erasure every dataset had max |cov(X, Z)| >= {min_cov_before:.3g}."),
    )


@claim(
    "erasure.equal_means_accuracy",
    status="proven",
    statement="""Equal class means do not bound linear accuracy (a counterexample). Class 0 at
    (0, ±1) with mass 1/4 each, class 1 at (1, 0) with mass 3/8 and at (−3, 0) with mass 1/8: both
    class means are the origin, yet the threshold x₁ > 1/2 classifies exactly 7/8 of the mass
    correctly (and LEACE leaves these data unchanged). Moving class 1's mass to q at +1 and 1 − q
    at −q/(1 − q) keeps its mean at 0 and gives accuracy (1 + q)/2, which approaches 1: such accuracy
    follows the medians, not the means.""",
    source="seed 001 (comment on mean ablation and classifiers); Belrose et al. 2023 counterexamples",
)
def check_equal_means_accuracy(ctx: Context) -> Result:
    import sympy as sp

    half = Fraction(1, 2)
    ex = equal_means_example()
    means = (ex.class_mean(0), ex.class_mean(1))
    acc = ex.accuracy(0, half)
    # The best threshold along x₁, exactly, and the best affine classifier in the plane (float, exact search).
    best_x1 = best_threshold_1d([p[0] for p in ex.points], ex.labels, ex.masses)[0]
    X, z, w = ex.arrays()
    best_2d = best_linear_classifier(X, z, w)
    Xe = leace_erase(X, z, w)
    leace_change = float(np.abs(Xe - X).max())
    acc_after_leace = best_linear_accuracy(Xe, z, w)

    # The family, symbolically (sympy) and at exact rational q.
    q = sp.symbols("q", positive=True)
    a = -q / (1 - q)
    mean1_sym = sp.simplify(q * 1 + (1 - q) * a)
    # x₁ > 1/2 is right on (0, ±1) (x₁ = 0) and (1, 0), wrong on (a, 0) since a < 0 < 1/2.
    acc_sym = sp.simplify(sp.Rational(1, 4) + sp.Rational(1, 4) + q / 2 - (1 + q) / 2)
    qs = [Fraction(1, 10), Fraction(1, 3), Fraction(1, 2), Fraction(3, 4), Fraction(9, 10), Fraction(99, 100)]
    if ctx.budget != "tiny":
        qs += [Fraction(i, 40) for i in range(1, 40)]
    fam_ok, fam_best = True, []
    for qi in qs:
        fam = equal_means_family(qi)
        fam_ok &= fam.class_mean(0) == (0, 0) and fam.class_mean(1) == (0, 0) and fam.accuracy(0, half) == (1 + qi) / 2
        fam_best.append(best_threshold_1d([p[0] for p in fam.points], fam.labels, fam.masses)[0] == max((1 + qi) / 2, 1 - qi / 2))
    ok = (means == ((0, 0), (0, 0)) and acc == Fraction(7, 8) and best_x1 == Fraction(7, 8)
          and abs(best_2d.accuracy - 0.875) <= 1e-12 and leace_change <= 1e-12 and abs(acc_after_leace - 0.875) <= 1e-12
          and mean1_sym == 0 and acc_sym == 0 and fam_ok and all(fam_best))
    return Result(
        verdict=holds_if(ok),
        predicted={"class_means": "(0, 0), (0, 0)", "accuracy_x1_gt_half": "7/8", "family_accuracy": "(1+q)/2"},
        observed={"class_means": ", ".join("(" + ", ".join(map(str, m)) + ")" for m in means),
                  "accuracy_x1_gt_half": str(acc), "best_threshold_on_x1": str(best_x1),
                  "best_affine_in_plane": best_2d.accuracy, "leace_max_change": leace_change,
                  "family_mean_minus_0": str(mean1_sym), "family_accuracy_minus_(1+q)/2": str(acc_sym),
                  "family_q_checked": len(qs)},
        tolerance="exact (fractions.Fraction and sympy); the float search for the best plane classifier to 1e-12",
        detail=("7/8 is also the best any affine classifier achieves on the example (exact arrangement search); "
                "LEACE changes nothing since the cross-covariance is already 0, so it guards convex losses, "
                "not accuracy. Along x₁ the family's best threshold accuracy is max((1+q)/2, 1 − q/2) "
                f"(checked at {len(qs)} rational q); the class-1 median sits at +1 for q > 1/2 while its mean is 0."),
    )
