"""Linear classifiers on finite weighted datasets (exact threshold search, best affine classifier,
weighted multinomial logistic regression) and the equal-means counterexample.

Equal means are a statement about convex losses, not about accuracy: a dataset whose two class
means coincide can still be classified far above chance by a linear threshold, because
accuracy depends on where most of each class's mass sits (its median), which a few far-away
points can leave untouched while they drag the mean back (seed 001's comment).
"""
from __future__ import annotations

from dataclasses import dataclass
from fractions import Fraction
from typing import Any, Sequence

import numpy as np

from .leace import _as_features, _as_labels, _as_weights, _validate

__all__ = ["threshold_accuracy", "best_threshold_1d", "LinearClassifier", "best_linear_classifier",
    "best_linear_accuracy", "LogisticFit", "fit_logistic", "WeightedPoints", "equal_means_family",
    "equal_means_example"]

# ---------------------------------------------------------------------------------------------
# Linear classifiers on finite weighted datasets
# ---------------------------------------------------------------------------------------------


def threshold_accuracy(x: Sequence, y: Sequence[int], weights: Sequence, threshold, sign: int = 1):
    """Weighted accuracy of "predict 1 iff sign·(x − threshold) > 0" on 1-D points.

    Pure Python, so it is exact on :class:`fractions.Fraction` (or sympy) inputs and returns a
    Fraction for integer weights; the weights need not sum to 1 (the result is divided by their sum)."""
    total = sum(weights)
    correct = sum(wt for xi, yi, wt in zip(x, y, weights) if (sign * (xi - threshold) > 0) == (yi == 1))
    if isinstance(total, int) and isinstance(correct, int):  # integer counts: keep the ratio exact
        return Fraction(correct, total)
    return correct / total


def best_threshold_1d(x: Sequence, y: Sequence[int], weights: Sequence):
    """Exact best weighted accuracy of a threshold rule on 1-D points: (accuracy, threshold, sign).

    Scans the thresholds between consecutive distinct values (and beyond both ends) in both
    orientations; exact for Fraction inputs. Labels are 0/1."""
    pts = sorted(set(x))
    cands = [pts[0] - 1] + [(a + b) / 2 for a, b in zip(pts, pts[1:])] + [pts[-1] + 1]
    best = None
    for t in cands:
        for sign in (1, -1):
            acc = threshold_accuracy(x, y, weights, t, sign)
            if best is None or acc > best[0]:
                best = (acc, t, sign)
    return best


def _scan_np(p: np.ndarray, y: np.ndarray, w: np.ndarray) -> tuple[float, float, int]:
    """Vectorised :func:`best_threshold_1d` for float arrays (weights summing to 1)."""
    order = np.argsort(p, kind="stable")
    ps, ys, ws = p[order], y[order], w[order]
    w0 = np.concatenate([[0.0], np.cumsum(ws * (ys == 0))])  # class-0 mass at or below split i
    w1 = np.concatenate([[0.0], np.cumsum(ws * (ys == 1))])
    acc = w0 + (w1[-1] - w1)  # "p > t → 1" with the first i sorted points below t
    valid = np.ones(len(ps) + 1, bool)
    valid[1:-1] = ps[1:] > ps[:-1]  # a split only between distinct values
    acc_all = np.where(valid, np.maximum(acc, 1.0 - acc), -np.inf)
    i = int(np.argmax(acc_all))
    sign = 1 if acc[i] >= 1.0 - acc[i] else -1
    if i == 0:
        t = ps[0] - 1.0
    elif i == len(ps):
        t = ps[-1] + 1.0
    else:
        t = 0.5 * (ps[i - 1] + ps[i])
    return float(acc_all[i]), float(t), sign


@dataclass(frozen=True)
class LinearClassifier:
    """Predict class 1 iff x·w + b > 0."""

    w: np.ndarray
    b: float
    accuracy: float
    exact: bool
    """True when the search provably found the best affine classifier (d ≤ 2)."""


def _binary(y: Any, n: int) -> np.ndarray:
    y = _as_labels(y, n)
    vals = np.unique(y)
    if not set(vals.tolist()) <= {0, 1}:
        raise ValueError(f"y must hold binary labels 0/1; got values {vals.tolist()}")
    return y


def best_linear_classifier(X: Any, y: Any, sample_weight: Any = None, n_random: int = 200, seed: int = 0) -> LinearClassifier:
    """The best weighted accuracy of an affine threshold classifier 1[x·w + b > 0] on (X, y).

    d = 1: exact scan of thresholds. d = 2: exact — the order of the projections x·u changes
    only where u ⟂ x_i − x_j, so one direction inside each arc between those critical angles,
    each scanned exactly, covers every linear dichotomy. d ≥ 3: a lower bound from the
    directions of a logistic-regression fit, the Fisher direction Σ⁺(μ₁ − μ₀), the coordinate
    axes and ``n_random`` random directions (``exact`` is False).
    """
    X = _as_features(X if np.ndim(X) != 1 else np.asarray(X)[:, None])
    n, d = X.shape
    y = _binary(y, n)
    w = _as_weights(sample_weight, n)
    if d <= 2:
        if d == 1:
            dirs = np.ones((1, 1))
        else:
            diff = (X[:, None, :] - X[None, :, :])[np.triu_indices(n, 1)]
            diff = diff[np.abs(diff).sum(1) > 0]
            crit = np.sort(np.unique(np.round(np.mod(np.arctan2(diff[:, 1], diff[:, 0]) + np.pi / 2, np.pi), 13)))
            if crit.size == 0:
                thetas = np.array([0.0])
            else:
                thetas = 0.5 * (crit + np.concatenate([crit[1:], [crit[0] + np.pi]]))
            dirs = np.stack([np.cos(thetas), np.sin(thetas)], 1)
        exact = True
    else:
        rng = np.random.default_rng(seed)
        cands = [np.eye(d)]
        if 0 < w[y == 1].sum() < 1:
            Xc = X - w @ X
            cov = (w[:, None] * Xc).T @ Xc
            diff = w[y == 1] @ X[y == 1] / w[y == 1].sum() - w[y == 0] @ X[y == 0] / w[y == 0].sum()
            cands.append((np.linalg.pinv(cov, rcond=1e-10, hermitian=True) @ diff)[None])
            cands.append(fit_logistic(X, y, w, seed=seed, maxiter=50).W[:, 1][None])
        cands.append(rng.standard_normal((n_random, d)))
        dirs = np.concatenate(cands)
        dirs = dirs[np.linalg.norm(dirs, axis=1) > 0]
        exact = False
    best = (-1.0, 0.0, 1, dirs[0])
    for u in dirs:
        acc, t, sign = _scan_np(X @ u, y, w)
        if acc > best[0]:
            best = (acc, t, sign, u)
    acc, t, sign, u = best
    return LinearClassifier(w=sign * u, b=-sign * t, accuracy=acc, exact=exact)


def best_linear_accuracy(X: Any, y: Any, sample_weight: Any = None, **kw: Any) -> float:
    """Best weighted accuracy of an affine threshold classifier (see :func:`best_linear_classifier`)."""
    return best_linear_classifier(X, y, sample_weight, **kw).accuracy


@dataclass(frozen=True)
class LogisticFit:
    """Weighted multinomial logistic regression: logits = x W + b, class 0's logit fixed at 0
    (W shape (d, k), first column 0) so that the parameters are identifiable."""

    W: np.ndarray
    b: np.ndarray
    loss: float
    """Weighted mean cross-entropy at the fit (nats)."""
    constant_loss: float
    """The best constant predictor's loss: the entropy of the class proportions."""
    logit_std: float
    """max over classes of the weighted std of x·W_k over the data: 0 iff the fit is constant."""
    converged: bool


def fit_logistic(X: Any, z: Any, sample_weight: Any = None, seed: int = 0, init_scale: float = 1.0,
                 gtol: float = 1e-12, rtol: float = 1e-9, ref_scale: float = 0.0, maxiter: int = 200) -> LogisticFit:
    """Unregularised weighted multinomial logistic regression by Newton (trust region) from a random start.

    Minimises Σ_i w_i [logsumexp(x_i W + b) − (x_i W + b)_{z_i}] with class 0's logit pinned at 0.
    The features are first whitened along their principal directions (an affine change that
    leaves the achievable logits unchanged); directions whose std is ≤ ``rtol`` × max(largest
    std, ``ref_scale``) are left out, because in them the data are rounding noise that can look
    perfectly separable (pass the pre-erasure scale as ``ref_scale`` when fitting erased data).
    ``logit_std`` measures how far the fit is from the constant predictor. On separable data the
    loss has no minimiser and the fit stops at ``maxiter``.
    """
    from scipy.optimize import minimize
    from scipy.special import logsumexp

    X, z, w, classes = _validate(X, z, sample_weight)
    k = classes.size
    Y = (z[:, None] == classes[None, :]).astype(np.float64)
    mu = w @ X
    _, s, Vt = np.linalg.svd(np.sqrt(w)[:, None] * (X - mu), full_matrices=False)
    top = max(float(s[0]) if s.size else 0.0, ref_scale)
    keep = s > rtol * top if top > 0 else np.zeros(s.shape, bool)
    proj = Vt[keep].T / s[keep]  # (d, r): whitening onto the kept principal directions
    F = (X - mu) @ proj
    r = F.shape[1]
    m = k - 1

    Ft = np.concatenate([F, np.ones((F.shape[0], 1))], 1)  # θ = [W; b] row-major, shape (r + 1, m)

    def probs(theta: np.ndarray) -> tuple[float, np.ndarray]:
        logits = np.concatenate([np.zeros((Ft.shape[0], 1)), Ft @ theta.reshape(r + 1, m)], 1)
        lse = logsumexp(logits, axis=1)
        return float(w @ (lse - (logits * Y).sum(1))), np.exp(logits - lse[:, None])

    def f(theta: np.ndarray) -> tuple[float, np.ndarray]:
        loss, P = probs(theta)
        return loss, (Ft.T @ (w[:, None] * (P - Y))[:, 1:]).ravel()

    def hess(theta: np.ndarray) -> np.ndarray:
        P = probs(theta)[1][:, 1:]
        C = np.einsum("ij,jl->ijl", P, np.eye(m)) - P[:, :, None] * P[:, None, :]  # (n, m, m)
        H = np.einsum("i,ia,ic,ijl->ajcl", w, Ft, Ft, C)
        return H.reshape((r + 1) * m, (r + 1) * m)

    rng = np.random.default_rng(seed)
    theta0 = np.concatenate([init_scale * rng.standard_normal(r * m), np.zeros(m)])
    res = minimize(f, theta0, jac=True, hess=hess, method="trust-exact", options={"gtol": gtol, "maxiter": maxiter})
    theta, (loss, g) = res.x, f(res.x)
    for _ in range(3):  # polish: near the optimum plain Newton steps converge quadratically
        step = np.linalg.lstsq(hess(theta), g, rcond=None)[0]
        new_loss, new_g = f(theta - step)
        # near the optimum the loss moves by ~|g|², below its rounding noise: judge by the gradient
        if not np.linalg.norm(new_g) < np.linalg.norm(g) or new_loss > loss + 1e-12 * max(1.0, abs(loss)):
            break
        theta, loss, g = theta - step, new_loss, new_g
    converged = bool(np.abs(g).max() <= max(gtol, 1e-9))
    Wf = theta[: r * m].reshape(r, m)
    Wm = np.concatenate([np.zeros((X.shape[1], 1)), proj @ Wf], 1)
    b = np.concatenate([[0.0], theta[r * m:]]) - mu @ Wm
    logits = F @ Wf
    logit_std = float(np.sqrt(w @ (logits - w @ logits) ** 2).max()) if r else 0.0
    p = w @ Y
    const = float(-(p[p > 0] * np.log(p[p > 0])).sum())
    return LogisticFit(Wm, b, loss, const, logit_std, converged)


# ---------------------------------------------------------------------------------------------
# The equal-means counterexample
# ---------------------------------------------------------------------------------------------


@dataclass(frozen=True)
class WeightedPoints:
    """A finite weighted dataset in exact arithmetic: points (tuples), labels, masses summing to 1."""

    points: tuple[tuple[Fraction, ...], ...]
    labels: tuple[int, ...]
    masses: tuple[Fraction, ...]

    def arrays(self) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
        """(X float64 (n, d), z int64 (n,), weights float64 (n,))."""
        return (np.array(self.points, dtype=np.float64), np.array(self.labels, dtype=np.int64),
                np.array(self.masses, dtype=np.float64))

    def class_mean(self, label: int) -> tuple[Fraction, ...]:
        """Exact mean of one class."""
        idx = [i for i, c in enumerate(self.labels) if c == label]
        tot = sum(self.masses[i] for i in idx)
        d = len(self.points[0])
        return tuple(sum(self.masses[i] * self.points[i][j] for i in idx) / tot for j in range(d))

    def accuracy(self, coord: int, threshold: Fraction, sign: int = 1) -> Fraction:
        """Exact accuracy of "class 1 iff sign·(x_coord − threshold) > 0"."""
        return threshold_accuracy([p[coord] for p in self.points], self.labels, self.masses, threshold, sign)


def equal_means_family(q: Fraction | int | str) -> WeightedPoints:
    """Class 0 at (0, ±1) with mass 1/4 each; class 1 at (1, 0) with mass q/2 and at
    (−q/(1−q), 0) with mass (1−q)/2 (0 < q < 1). Both class means are 0, yet the rule
    x₁ > 1/2 → class 1 has accuracy 1/2 + q/2 = (1 + q)/2, which tends to 1 as q → 1."""
    q = Fraction(q)
    if not 0 < q < 1:
        raise ValueError(f"q must lie strictly between 0 and 1; got {q}")
    half, quarter = Fraction(1, 2), Fraction(1, 4)
    return WeightedPoints(
        points=((Fraction(0), Fraction(1)), (Fraction(0), Fraction(-1)), (Fraction(1), Fraction(0)), (-q / (1 - q), Fraction(0))),
        labels=(0, 0, 1, 1),
        masses=(quarter, quarter, half * q, half * (1 - q)),
    )


def equal_means_example() -> WeightedPoints:
    """Class 0 at (0, ±1) mass 1/4 each; class 1 at (1, 0) mass 3/8 and (−3, 0) mass 1/8:
    both means are the origin, and x₁ > 1/2 classifies 7/8 of the mass correctly (q = 3/4)."""
    return equal_means_family(Fraction(3, 4))
