"""Natural latents, the mathematics: information measures on finite joints, the error definitions,
constructions of latents, deterministic latents and resampling.

A joint distribution over (X1, X2, Λ) is a 3-D float64 numpy array ``P`` with axes in that
order; ``P[a, b, c] = P[X1=a, X2=b, Λ=c]``. Exact zeros are allowed everywhere. All
information quantities are in nats and use the convention 0·log 0 = 0.

Sources: J. Wentworth & D. Lorell, "Natural Latents: The Math" (LessWrong / Alignment Forum,
2023, with later addenda) for the error definitions; Wentworth & Lorell, "Natural Latents:
Latent Variables Stable Across Ontologies", arXiv:2509.03780 (2025) for the
mediator-determines-redund theorem; Wentworth & Lorell, "$500 Bounty Problem: Are
(Approximately) Deterministic Natural Latents All You Need?" (Apr 2025) for the conjecture;
Wentworth & Lorell, "Resampling Conserves Redundancy (Approximately)" (Aug 2025, later found
wrong) for the KL resampling lemma; D. Lorell, "Resampling Conserves Redundancy & Mediation
(Approximately) Under the Jensen-Shannon Divergence" (Oct 2025) for the JS version.

The errors (KL form = information form):

* mediation error ε_med = D_KL(P[X,Λ] || P[Λ] P[X1|Λ] P[X2|Λ]) = I(X1; X2 | Λ);
* stochastic redundancy error of X_i (j the other index)
  ε_i = D_KL(P[X,Λ] || P[X] P[Λ|X_j]) = I(Λ; X_i | X_j)  — what X_i tells about Λ beyond X_j,
  i.e. how far the diagram X_i → X_j → Λ is from holding;
* deterministic redundancy error of X_i: H(Λ | X_i) — how far Λ is from a function of X_i.

Index convention (used by every ``*_redundancy_*`` function here): ``i`` names the variable
whose *extra* information about Λ is measured; the factorisation conditions Λ on the other
one. The Lorell posts index by the variable conditioned on instead, so their ε_1 (the diagram
X2 → X1 → Λ) is ``redundancy_error(P, 2)`` here.
"""
from __future__ import annotations

import functools
import math
from collections.abc import Iterable, Sequence
from typing import Any

import numpy as np
from scipy.special import entr

__all__ = ["SUM_TOL", "JS_FLOOR", "X1", "X2", "LAM", "LAM2", "validate_joint", "marginal", "entropy",
    "conditional_entropy", "mutual_information", "conditional_mutual_information", "kl_divergence",
    "js_divergence", "mediation_factorization", "redundancy_factorization", "mediation_error",
    "redundancy_error", "deterministic_redundancy_error", "mediation_kl", "redundancy_kl",
    "js_mediation_error", "js_redundancy_error", "stochastic_errors", "deterministic_errors", "random_joint",
    "random_kernel", "latent_joint", "deterministic_latent_joint", "latent_pair_joint", "resample_latent",
    "shared_bits_joint", "trivial_latent_errors", "set_partitions", "deterministic_errors_batch",
    "best_deterministic_latent", "deterministic_conjecture_ratio", "kl_resampling_errors",
    "js_resampling_errors"]

SUM_TOL = 1e-9
"""How far ``P.sum()`` may be from 1 before a joint is rejected."""

JS_FLOOR = 1e-20
"""Absolute slack for JS comparisons: float64 round-off in O(1) entries makes JS values below
about 1e-25 noise, so a bound is counted as violated only by more than this."""

X1, X2, LAM, LAM2 = 0, 1, 2, 3
"""Axis numbers: X1, X2, Λ (and Λ' for 4-D joints)."""


# ---------------------------------------------------------------------------------------------
# validation
# ---------------------------------------------------------------------------------------------


def validate_joint(P: Any, ndim: int | None = 3, name: str = "P") -> np.ndarray:
    """``P`` as a float64 array, after checking it is a probability distribution.

    Raises ``ValueError`` naming what is wrong: the wrong number of axes (when ``ndim`` is
    given), an empty axis, NaN or infinite entries, negative entries, or a total that differs
    from 1 by more than ``SUM_TOL`` = 1e-9.
    """
    try:
        arr = np.asarray(P, dtype=np.float64)
    except (TypeError, ValueError):
        raise ValueError(f"{name} must be an array of real numbers, got {type(P).__name__}") from None
    if ndim is not None and arr.ndim != ndim:
        raise ValueError(f"{name} must be a {ndim}-D array (axes X1, X2, Λ), got {arr.ndim}-D with shape {arr.shape}")
    if arr.ndim == 0:
        raise ValueError(f"{name} must have at least one axis, got a scalar")
    if arr.size == 0:
        raise ValueError(f"{name} must have every axis of size >= 1, got shape {arr.shape}")
    if not np.all(np.isfinite(arr)):
        n_nan, n_inf = int(np.isnan(arr).sum()), int(np.isinf(arr).sum())
        raise ValueError(f"{name} must be finite, got {n_nan} NaN and {n_inf} infinite entries")
    if np.any(arr < 0):
        raise ValueError(f"{name} must be non-negative, got {int((arr < 0).sum())} negative entries (min {arr.min():.3g})")
    total = float(arr.sum())
    if abs(total - 1.0) > SUM_TOL:
        raise ValueError(f"{name} must sum to 1 (tolerance {SUM_TOL:g}), got sum {total!r}")
    return arr


def _check_index(i: Any) -> int:
    if isinstance(i, bool) or i not in (1, 2):
        raise ValueError(f"i must be 1 or 2 (which X_i), got {i!r}")
    return int(i)


def _axes(a: int | Iterable[int]) -> tuple[int, ...]:
    return (int(a),) if isinstance(a, (int, np.integer)) else tuple(int(x) for x in a)


# ---------------------------------------------------------------------------------------------
# the one entropy helper, and what is built on it
# ---------------------------------------------------------------------------------------------


def _h(p: np.ndarray, axis: int | tuple[int, ...] | None = None) -> Any:
    """−Σ p ln p with 0·ln 0 = 0 (``scipy.special.entr``), over all entries (a float) or over
    ``axis`` (an array: one entropy per remaining index, for batches). No validation: the one
    place where an entropy is computed; everything else is a sum of these."""
    out = entr(p).sum(axis=axis)
    return float(out) if axis is None else out


def marginal(P: np.ndarray, keep: int | Iterable[int]) -> np.ndarray:
    """The marginal of ``P`` on the axes ``keep`` (in increasing axis order, summed over the rest)."""
    keep = set(_axes(keep))
    drop = tuple(a for a in range(P.ndim) if a not in keep)
    return P.sum(axis=drop) if drop else P


def _H(P: np.ndarray, keep: Iterable[int]) -> float:
    """H of the marginal of an already-validated joint on the axes ``keep`` (0 for no axes)."""
    keep = _axes(keep)
    return _h(marginal(P, keep)) if keep else 0.0


def _cmi(P: np.ndarray, a: Iterable[int], b: Iterable[int], g: Iterable[int] = ()) -> float:
    """I(A; B | G) = H(A,G) + H(B,G) − H(A,B,G) − H(G) on a validated joint."""
    a, b, g = set(_axes(a)), set(_axes(b)), set(_axes(g))
    return _H(P, a | g) + _H(P, b | g) - _H(P, a | b | g) - _H(P, g)


def _ch(P: np.ndarray, a: Iterable[int], g: Iterable[int]) -> float:
    """H(A | G) = H(A, G) − H(G) on a validated joint."""
    a, g = set(_axes(a)), set(_axes(g))
    return _H(P, a | g) - _H(P, g)


def _joint_and_axes(P: Any, *axis_sets: int | Iterable[int]) -> np.ndarray:
    """Validate ``P`` (any number of axes) and that every axis named is one of its axes."""
    P = validate_joint(P, ndim=None)
    for axes in axis_sets:
        bad = [a for a in _axes(axes) if not 0 <= a < P.ndim]
        if bad:
            raise ValueError(f"axes must be in [0, {P.ndim - 1}] for a {P.ndim}-D joint, got {bad}")
    return P


def entropy(P: Any, keep: int | Iterable[int] | None = None) -> float:
    """H of the marginal of the joint ``P`` on the axes ``keep`` (all axes when None), in nats:
    H = −Σ p ln p with 0 ln 0 = 0. Every information quantity in this module is a sum of these."""
    if keep is None:
        P = validate_joint(P, ndim=None)
        return _H(P, tuple(range(P.ndim)))
    return _H(_joint_and_axes(P, keep), keep)


def conditional_entropy(P: Any, a: int | Iterable[int], given: int | Iterable[int]) -> float:
    """H(A | G) = H(A, G) − H(G) for the axis sets A = ``a`` and G = ``given`` of the joint ``P``."""
    return _ch(_joint_and_axes(P, a, given), a, given)


def mutual_information(P: Any, a: int | Iterable[int], b: int | Iterable[int]) -> float:
    """I(A; B) = H(A) + H(B) − H(A, B) for axis sets of the joint ``P``."""
    return _cmi(_joint_and_axes(P, a, b), a, b)


def conditional_mutual_information(
    P: Any, a: int | Iterable[int], b: int | Iterable[int], given: int | Iterable[int]
) -> float:
    """I(A; B | G) = H(A, G) + H(B, G) − H(A, B, G) − H(G) for axis sets of the joint ``P``."""
    return _cmi(_joint_and_axes(P, a, b, given), a, b, given)


def kl_divergence(p: Any, q: Any) -> float:
    """D_KL(p || q) = Σ p ln(p/q) over p > 0 (0 ln 0/q = 0; +inf if p > 0 where q = 0)."""
    p, q = np.asarray(p, dtype=np.float64), np.asarray(q, dtype=np.float64)
    if p.shape != q.shape:
        raise ValueError(f"p and q must have the same shape, got {p.shape} and {q.shape}")
    s = p > 0
    if np.any(q[s] <= 0):
        return math.inf
    return float((p[s] * (np.log(p[s]) - np.log(q[s]))).sum())


def js_divergence(p: Any, q: Any) -> float:
    """JS(p || q) = ½ D_KL(p || m) + ½ D_KL(q || m), m = (p + q)/2 — always finite, <= ln 2;
    √JS is a metric (Endres & Schindelin 2003).

    Computed as ½ Σ [p ln(1 + d/s) + q ln(1 − d/s)] with s = p + q, d = p − q (``log1p``), which
    keeps its relative precision when p ≈ q (JS down to ~1e-25 for well-separated entries);
    clamped at 0 against round-off."""
    p, q = np.asarray(p, dtype=np.float64), np.asarray(q, dtype=np.float64)
    if p.shape != q.shape:
        raise ValueError(f"p and q must have the same shape, got {p.shape} and {q.shape}")
    total = _js_half(p, q) + _js_half(q, p)
    return max(0.0, 0.5 * total)


def _js_half(p: np.ndarray, q: np.ndarray) -> float:
    """Σ_{p>0} p ln(2p/(p+q)): ``log1p`` of (p−q)/(p+q) where that is small, logs otherwise."""
    keep = p > 0
    p, q = p[keep], q[keep]
    s = p + q
    t = (p - q) / s
    near = np.abs(t) < 0.5
    out = np.where(near, np.log1p(np.where(near, t, 0.0)), math.log(2.0) + np.log(p) - np.log(s))
    return float((p * out).sum())


def _safe_div(a: np.ndarray, b: np.ndarray) -> np.ndarray:
    out = np.zeros(np.broadcast(a, b).shape)
    np.divide(a, b, out=out, where=np.broadcast_to(b, out.shape) > 0)
    return out


# ---------------------------------------------------------------------------------------------
# factorisations and the errors (contract: mediation_error, redundancy_error,
# deterministic_redundancy_error)
# ---------------------------------------------------------------------------------------------


def _mediation_factorization(P: np.ndarray) -> np.ndarray:
    p1l, p2l, pl = P.sum(axis=1), P.sum(axis=0), P.sum(axis=(0, 1))
    return _safe_div(p1l[:, None, :] * p2l[None, :, :], pl[None, None, :])


def _redundancy_factorization(P: np.ndarray, i: int) -> np.ndarray:
    px = P.sum(axis=2)
    if i == 1:  # condition on X2
        cond = _safe_div(P.sum(axis=0), P.sum(axis=(0, 2))[:, None])  # P[Λ|X2], (n2, nλ)
        return px[:, :, None] * cond[None, :, :]
    cond = _safe_div(P.sum(axis=1), P.sum(axis=(1, 2))[:, None])  # P[Λ|X1], (n1, nλ)
    return px[:, :, None] * cond[:, None, :]


def mediation_factorization(P: Any) -> np.ndarray:
    """P[Λ] P[X1|Λ] P[X2|Λ] = P[X1,Λ] P[X2,Λ] / P[Λ] (0 where P[Λ] = 0), same shape as P."""
    return _mediation_factorization(validate_joint(P))


def redundancy_factorization(P: Any, i: int) -> np.ndarray:
    """P[X] P[Λ|X_j] (j ≠ i): Λ redrawn from what X_j alone says about it (0 where P[X_j] = 0)."""
    return _redundancy_factorization(validate_joint(P), _check_index(i))


def mediation_error(P: Any) -> float:
    """ε_med = I(X1; X2 | Λ) in nats (Wentworth & Lorell, "Natural Latents: The Math").

    Equals D_KL(P[X,Λ] || P[Λ]P[X1|Λ]P[X2|Λ]) (``mediation_kl``). Like every contract error,
    a Python float clamped at 0 against round-off (the raw value is at worst ~−1e-15)."""
    return max(0.0, _cmi(validate_joint(P), X1, X2, LAM))


def redundancy_error(P: Any, i: int) -> float:
    """Stochastic redundancy error of X_i: I(Λ; X_i | X_j), j the other index, in nats.

    Equals D_KL(P[X,Λ] || P[X] P[Λ|X_j]) (``redundancy_kl``): 0 iff X_i → X_j → Λ."""
    i = _check_index(i)
    return max(0.0, _cmi(validate_joint(P), LAM, i - 1, 2 - i))


def deterministic_redundancy_error(P: Any, i: int) -> float:
    """Deterministic redundancy error of X_i: H(Λ | X_i) in nats (0 iff Λ is a function of X_i)."""
    i = _check_index(i)
    return max(0.0, _ch(validate_joint(P), LAM, i - 1))


def mediation_kl(P: Any) -> float:
    """D_KL(P[X,Λ] || P[Λ] P[X1|Λ] P[X2|Λ]), computed entry by entry (finite on finite spaces)."""
    P = validate_joint(P)
    return kl_divergence(P, _mediation_factorization(P))


def redundancy_kl(P: Any, i: int) -> float:
    """D_KL(P[X,Λ] || P[X] P[Λ|X_j]), j ≠ i, computed entry by entry."""
    P = validate_joint(P)
    return kl_divergence(P, _redundancy_factorization(P, _check_index(i)))


def js_mediation_error(P: Any) -> float:
    """JS(P[X,Λ] || P[Λ] P[X1|Λ] P[X2|Λ]) — Lorell's ε_med under Jensen–Shannon."""
    P = validate_joint(P)
    return js_divergence(P, _mediation_factorization(P))


def js_redundancy_error(P: Any, i: int) -> float:
    """JS(P[X,Λ] || P[X] P[Λ|X_j]), j ≠ i — the JS analogue of ``redundancy_error(P, i)``.
    Lorell's ε_1 (Λ from X1) is ``js_redundancy_error(P, 2)``; his ε_2 is ``(P, 1)``."""
    P = validate_joint(P)
    return js_divergence(P, _redundancy_factorization(P, _check_index(i)))


def stochastic_errors(P: Any) -> dict[str, float]:
    """The three stochastic natural-latent errors: med = I(X1;X2|Λ), red1 = I(Λ;X1|X2),
    red2 = I(Λ;X2|X1)."""
    return {"med": mediation_error(P), "red1": redundancy_error(P, 1), "red2": redundancy_error(P, 2)}


def deterministic_errors(P: Any) -> dict[str, float]:
    """The three deterministic natural-latent errors: med = I(X1;X2|Λ), det1 = H(Λ|X1),
    det2 = H(Λ|X2)."""
    return {"med": mediation_error(P), "det1": deterministic_redundancy_error(P, 1),
            "det2": deterministic_redundancy_error(P, 2)}


# ---------------------------------------------------------------------------------------------
# constructions: random joints, latents built from kernels, resampling, examples
# ---------------------------------------------------------------------------------------------


def random_joint(shape: Sequence[int], rng: np.random.Generator, alpha: float = 1.0, zero_frac: float = 0.0) -> np.ndarray:
    """A random joint of the given shape: Dirichlet(α, …, α) over all entries, then a fraction
    ``zero_frac`` of the entries (at most all but one) set exactly to 0, renormalised.
    Small α gives peaked joints with many near-zeros; ``zero_frac`` gives exact zeros."""
    shape = tuple(int(s) for s in shape)
    if not shape or min(shape) < 1:
        raise ValueError(f"shape must be a non-empty tuple of sizes >= 1, got {shape}")
    if not (alpha > 0 and math.isfinite(alpha)):
        raise ValueError(f"alpha must be a positive finite number, got {alpha}")
    if not 0.0 <= zero_frac <= 1.0:
        raise ValueError(f"zero_frac must be in [0, 1], got {zero_frac}")
    n = math.prod(shape)
    p = rng.dirichlet(np.full(n, float(alpha))) if n > 1 else np.ones(1)
    n_zero = min(int(round(zero_frac * n)), n - 1)
    if n_zero:
        p[rng.choice(n, n_zero, replace=False)] = 0.0
    if not np.isfinite(p).all() or p.sum() <= 0:  # every kept entry underflowed
        p = np.zeros(n)
        p[rng.integers(n)] = 1.0
    return (p / p.sum()).reshape(shape)


def random_kernel(n_in: int | Sequence[int], n_out: int, rng: np.random.Generator, alpha: float = 1.0,
                  zero_frac: float = 0.0) -> np.ndarray:
    """A random conditional distribution K[..., y] = P[Y=y | input]: one ``random_joint`` row of
    length ``n_out`` per input (``n_in`` an int or a shape)."""
    n_in = (int(n_in),) if isinstance(n_in, (int, np.integer)) else tuple(int(s) for s in n_in)
    rows = [random_joint((n_out,), rng, alpha, zero_frac) for _ in range(math.prod(n_in))]
    return np.stack(rows).reshape(*n_in, n_out)


def latent_joint(PX: Any, kernel: Any) -> np.ndarray:
    """P[x1, x2, λ] = P[X=(x1,x2)] K[x1, x2, λ] for a kernel K = P[Λ|X] of shape (n1, n2, nλ)."""
    PX = validate_joint(PX, ndim=2, name="PX")
    return PX[:, :, None] * _check_kernel(kernel, PX.shape, "kernel")


def _check_kernel(K: Any, in_shape: tuple[int, ...], name: str) -> np.ndarray:
    """K as float64 of shape in_shape + (n,), finite, >= 0, each row summing to 1 (±1e-9)."""
    K = np.asarray(K, dtype=np.float64)
    if K.ndim != len(in_shape) + 1 or K.shape[:-1] != tuple(in_shape) or K.shape[-1] < 1:
        raise ValueError(f"{name} must have shape {tuple(in_shape) + ('n_latent',)}, got {K.shape}")
    if not np.all(np.isfinite(K)) or np.any(K < 0):
        raise ValueError(f"{name} must be finite and non-negative")
    worst = float(np.abs(K.sum(axis=-1) - 1).max())
    if worst > SUM_TOL:
        raise ValueError(f"every row of {name} must sum to 1 (tolerance {SUM_TOL:g}), worst off by {worst:.3g}")
    return K


def deterministic_latent_joint(PX: Any, labels: Any) -> np.ndarray:
    """The joint of X and the deterministic latent Λ = labels[x1, x2] (integers >= 0)."""
    PX = validate_joint(PX, ndim=2, name="PX")
    labels = np.asarray(labels).reshape(PX.shape).astype(int)
    if labels.min() < 0:
        raise ValueError("labels must be non-negative integers")
    onehot = labels[:, :, None] == np.arange(labels.max() + 1)
    return PX[:, :, None] * onehot


def latent_pair_joint(PX: Any, K1: Any, K2: Any) -> np.ndarray:
    """The 4-D joint P[x1, x2, λ, λ'] = P[X] P[Λ=λ|X] P[Λ'=λ'|X]: two latents that are
    conditionally independent given X (axes X1, X2, Λ, Λ')."""
    P = latent_joint(PX, K1)
    K2 = _check_kernel(K2, P.shape[:2], "K2")
    return P[:, :, :, None] * K2[:, :, None, :]


def resample_latent(P: Any, given: int = 1) -> np.ndarray:
    """Γ drawn from P[Λ | X_given] in place of Λ: Q[x1, x2, γ] = P[x1, x2] P[Λ=γ | X_given].

    By construction the diagram X_other → X_given → Γ holds exactly
    (``redundancy_error(Q, other) == 0``)."""
    P, given = validate_joint(P), _check_index(given)
    return _redundancy_factorization(P, 3 - given)


def shared_bits_joint(k: int) -> np.ndarray:
    """X1 = (S, A), X2 = (S, B) with S, A, B independent uniform k-bit strings, Λ = S.
    Encoded as x1 = s·2^k + a, x2 = s·2^k + b, λ = s; shape (4^k, 4^k, 2^k)."""
    if isinstance(k, bool) or not isinstance(k, (int, np.integer)) or k < 0:
        raise ValueError(f"k must be a non-negative integer, got {k!r}")
    m = 2**k
    s, a, b = np.meshgrid(np.arange(m), np.arange(m), np.arange(m), indexing="ij")
    P = np.zeros((m * m, m * m, m))
    P[(s * m + a).ravel(), (s * m + b).ravel(), s.ravel()] = 1.0 / m**3
    return P


def trivial_latent_errors(PX: Any) -> dict[str, dict[str, float]]:
    """Deterministic errors of the three latents every X has: a constant (errors
    I(X1;X2), 0, 0), Λ = X1 (0, 0, H(X1|X2)) and Λ = X2 (0, H(X2|X1), 0)."""
    PX = validate_joint(PX, ndim=2, name="PX")
    n1, n2 = PX.shape
    return {
        "constant": deterministic_errors(PX[:, :, None]),
        "copy1": deterministic_errors(deterministic_latent_joint(PX, np.repeat(np.arange(n1)[:, None], n2, 1))),
        "copy2": deterministic_errors(deterministic_latent_joint(PX, np.repeat(np.arange(n2)[None, :], n1, 0))),
    }


# ---------------------------------------------------------------------------------------------
# deterministic latents: every function of X, batched
# ---------------------------------------------------------------------------------------------


@functools.lru_cache(maxsize=None)
def set_partitions(n: int) -> np.ndarray:
    """Every partition of n cells as a restricted growth string (row k: the block of each cell;
    labels appear in first-use order), shape (Bell(n), n). n <= 9."""
    if isinstance(n, bool) or not isinstance(n, (int, np.integer)) or not 1 <= n <= 9:
        raise ValueError(f"n must be an integer in [1, 9], got {n!r}")
    rows = np.zeros((1, 1), dtype=np.int64)
    for _ in range(1, n):
        nxt = []
        top = rows.max(axis=1)
        for lab in range(rows.shape[1] + 1):
            ok = lab <= top + 1
            nxt.append(np.concatenate([rows[ok], np.full((int(ok.sum()), 1), lab)], axis=1))
        rows = np.concatenate(nxt)
    rows = rows[np.lexsort(rows.T[::-1])]
    rows.flags.writeable = False  # cached: shared by every caller
    return rows


def deterministic_errors_batch(PX: np.ndarray, labels: np.ndarray) -> np.ndarray:
    """(K, 3) array of [I(X1;X2|Λ'), H(Λ'|X1), H(Λ'|X2)] for the K deterministic latents
    Λ' = labels[k] (rows over the flattened X cells), all at once. Uses
    H(X, Λ') = H(X) for a function of X, so I(X1;X2|Λ') = H(X1,Λ') + H(X2,Λ') − H(X) − H(Λ')."""
    PX = validate_joint(PX, ndim=2, name="PX")
    labels = np.asarray(labels)
    if labels.size % PX.size or labels.size == 0 or labels.min() < 0:
        raise ValueError(f"labels must be non-negative integers, rows of {PX.size} (one per X cell), got shape {labels.shape}")
    return _det_errors_batch(PX, labels)


def _det_errors_batch(PX: np.ndarray, labels: np.ndarray) -> np.ndarray:
    n1, n2 = PX.shape
    labels = np.asarray(labels).reshape(-1, n1 * n2)
    m = int(labels.max()) + 1
    J = PX.reshape(1, n1, n2, 1) * (labels.reshape(-1, n1, n2, 1) == np.arange(m))
    h1l, h2l, hl = _h(J.sum(axis=2), axis=(1, 2)), _h(J.sum(axis=1), axis=(1, 2)), _h(J.sum(axis=(1, 2)), axis=1)
    hx, h1, h2 = _h(PX), _h(PX.sum(axis=1)), _h(PX.sum(axis=0))
    return np.maximum(np.stack([h1l + h2l - hx - hl, h1l - h1, h2l - h2], axis=1), 0.0)


def best_deterministic_latent(PX: Any, max_cells: int = 8) -> dict[str, Any]:
    """The function Λ' = f(X) minimising the largest deterministic error
    max(I(X1;X2|Λ'), H(Λ'|X1), H(Λ'|X2)), by enumerating every partition of the
    n1·n2 cells (n1·n2 <= ``max_cells``). An upper bound on the best deterministic latent
    (stochastic Λ' are not searched)."""
    PX = validate_joint(PX, ndim=2, name="PX")
    n = PX.size
    if n > max_cells:
        raise ValueError(f"PX has {n} cells; enumerating partitions is limited to max_cells={max_cells}")
    labels = set_partitions(n)
    errs = _det_errors_batch(PX, labels)
    worst = errs.max(axis=1)
    k = int(np.argmin(worst))
    return {"max_error": float(worst[k]), "errors": errs[k].tolist(), "labels": labels[k].reshape(PX.shape)}


def deterministic_conjecture_ratio(P: Any, max_cells: int = 8) -> dict[str, Any]:
    """For a stochastic latent Λ with eps = max(I(X1;X2|Λ), I(Λ;X1|X2), I(Λ;X2|X1)): the best
    deterministic latent's largest error (``best_deterministic_latent``) and ratio = that / eps.
    The conjecture (Wentworth & Lorell, $500 bounty, Apr 2025) says the ratio is O(1)."""
    P = validate_joint(P)
    if P.shape[0] * P.shape[1] > max_cells:
        raise ValueError(f"P has {P.shape[0] * P.shape[1]} X cells; enumerating partitions is limited to max_cells={max_cells}")
    return _det_ratio(P)


def _det_ratio(P: np.ndarray) -> dict[str, Any]:
    eps = max(_cmi(P, X1, X2, LAM), _cmi(P, LAM, X1, X2), _cmi(P, LAM, X2, X1))
    PX = P.sum(axis=2)
    labels = set_partitions(PX.size)
    worst = _det_errors_batch(PX, labels).max(axis=1)
    k = int(np.argmin(worst))
    det = float(worst[k])
    ratio = det / eps if eps > 0 else (0.0 if det <= 1e-12 else math.inf)
    return {"eps": eps, "det_error": det, "ratio": ratio, "labels": labels[k].reshape(PX.shape)}


# ---------------------------------------------------------------------------------------------
# resampling: KL (the withdrawn lemma) and Jensen–Shannon (Lorell, Oct 2025)
# ---------------------------------------------------------------------------------------------


def kl_resampling_errors(P: Any, given: int = 1) -> dict[str, float]:
    """Errors before and after resampling Λ from P[Λ|X_given] (``resample_latent``).

    eps = max(I(Λ;X1|X2), I(Λ;X2|X1)) (both stochastic redundancy errors of P);
    resampled = the redundancy error of Γ that resampling does not zero:
    I(Γ; X_given | X_other) = D_KL(Q || Q[X] Q[Γ|X_other]); zeroed = the other one (0 up to
    round-off); ratio = resampled / eps. The Aug 2025 lemma (Wentworth & Lorell, "Resampling
    Conserves Redundancy (Approximately)", since withdrawn) claimed ratio <= 9 for P > 0."""
    return _kl_resampling_errors(validate_joint(P), _check_index(given))


def _kl_resampling_errors(P: np.ndarray, given: int = 1) -> dict[str, float]:
    red1, red2 = _cmi(P, LAM, X1, X2), _cmi(P, LAM, X2, X1)
    Q = _redundancy_factorization(P, 3 - given)
    res = _cmi(Q, LAM, given - 1, 2 - given)
    eps = max(red1, red2)
    return {"eps": eps, "red1": red1, "red2": red2, "resampled": res,
            "zeroed": _cmi(Q, LAM, 2 - given, given - 1), "ratio": res / eps if eps > 0 else math.nan}


def _kl_resampling_fast(P: np.ndarray) -> tuple[float, float]:
    """(eps, I(Γ;X1|X2)) for Γ from P[Λ|X1], from six marginal entropies of P and one of Q:
    with Q = P[X]P[Λ|X1], H_Q(X,Γ) = H(X) + H(X1,Λ) − H(X1), so
    I_Q(Γ;X1|X2) = H_Q(X2,Γ) − H(X1,Λ) + H(X1) − H(X2). Same numbers as ``kl_resampling_errors``."""
    p12, p1l, p2l = P.sum(axis=2), P.sum(axis=1), P.sum(axis=0)
    p1, p2 = p12.sum(axis=1), p12.sum(axis=0)
    hall, h12, h1l, h2l, h1, h2 = _h(P), _h(p12), _h(p1l), _h(p2l), _h(p1), _h(p2)
    eps = max(h12 + h2l - hall - h2, h12 + h1l - hall - h1)
    cond = _safe_div(p1l, p1[:, None])
    hq2l = _h(np.einsum("ab,ac->bc", p12, cond))
    return eps, hq2l - h1l + h1 - h2


def js_resampling_errors(P: Any) -> dict[str, float]:
    """Lorell's JS quantities for Γ resampled from P[Λ|X1] (Q = P[X] P[Λ|X1]).

    Definitions (JS(U||V) = ½KL(U||M) + ½KL(V||M), M = (U+V)/2, nats):
    ε1 = JS(P || P[X]P[Λ|X1]) (= ``js_redundancy_error(P, 2)``),
    ε2 = JS(P || P[X]P[Λ|X2]) (= ``js_redundancy_error(P, 1)``),
    ε_med = JS(P || P[Λ]P[X1|Λ]P[X2|Λ]); the same three for Q give ε^Γ_1, ε^Γ_2, ε^Γ_med.
    Claimed: ε^Γ_1 = 0, ε^Γ_2 <= (2√ε1 + √ε2)², ε^Γ_med <= (2√ε1 + √ε_med)²."""
    return _js_resampling_errors(validate_joint(P))


def _js_resampling_errors(P: np.ndarray) -> dict[str, float]:
    Q = _redundancy_factorization(P, 2)
    e1 = js_divergence(P, Q)
    e2 = js_divergence(P, _redundancy_factorization(P, 1))
    em = js_divergence(P, _mediation_factorization(P))
    g1 = js_divergence(Q, _redundancy_factorization(Q, 2))
    g2 = js_divergence(Q, _redundancy_factorization(Q, 1))
    gm = js_divergence(Q, _mediation_factorization(Q))
    b2 = (2 * math.sqrt(e1) + math.sqrt(e2)) ** 2
    bm = (2 * math.sqrt(e1) + math.sqrt(em)) ** 2
    return {"eps1": e1, "eps2": e2, "eps_med": em, "g1": g1, "g2": g2, "g_med": gm, "bound2": b2, "bound_med": bm}
