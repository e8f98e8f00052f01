"""Three small linear-algebra facts the seed discussions lean on.

* Change of basis (seed 002, on Stochastic Parameter Decomposition): for linearly independent
  v_1..v_k in R^n, extend them to a basis; with V the change of basis to it, W = (W V^-1) V,
  and splitting W V^-1 into rank-1 pieces splits W into rank-1 pieces with the same images —
  so one may assume the v_i orthonormal (they become the standard basis vectors).
* Truth-like directions (seed 001): for data made of "facts" ±e_i, every sign vector
  s in {-1, 1}^d gives s·x = ±1 and s·(-x) = ∓1 — a consistent, equally confident truth
  direction — and those 2^d directions (up to scale) are the only ones.
* LayerNorm squeeze (seed 000, on "Mapping the semantic void II"): a fixed-norm component f added
  to an embedding scaled by c keeps a share ||Pf|| / ||P(c e + f)|| of the LayerNorm output
  (P centres), which decays to 0 like 1/c: the component is "squeezed out".
"""
from __future__ import annotations

import itertools
import math
from dataclasses import dataclass
from typing import Any

import numpy as np
import torch

from toymodels._validate import check_choice, check_float
from toymodels._validate import check_int as _check_int

from .registry import Context, Result, claim, holds_if

__all__ = [
    "extend_to_basis",
    "ChangeOfBasis",
    "change_of_basis_decomposition",
    "signed_one_hot_facts",
    "truth_like_directions",
    "truth_labels",
    "is_truth_like",
    "layernorm",
    "squeeze_share",
    "squeeze_share_closed_form",
    "squeeze_monotone_from",
]


_int = _check_int  # numpy integers count as integers (bools and NaN do not)


def _matrix(name: str, a: Any, ndim: int = 2) -> np.ndarray:
    try:
        x = np.array(a.detach().cpu().numpy() if isinstance(a, torch.Tensor) else a, dtype=np.float64)
    except (TypeError, ValueError):
        raise ValueError(f"{name} must be a real array, got {type(a).__name__}") from None
    if x.ndim != ndim:
        raise ValueError(f"{name} must have {ndim} dimensions, got shape {x.shape}")
    if not np.isfinite(x).all():
        raise ValueError(f"{name} must be finite (found NaN or inf)")
    return x


# ----------------------------------------------------------------------------- change of basis


def extend_to_basis(vectors: Any, *, rtol: float = 1e-10) -> np.ndarray:
    """An invertible n x n matrix B whose first k columns are v_1..v_k (``vectors`` is (k, n), one
    vector a row); the remaining n - k columns are an orthonormal basis of their orthogonal
    complement (from the SVD). Raises ``ValueError`` if the v_i are not linearly independent
    (smallest singular value below ``rtol`` times the largest) or k > n."""
    Vk = _matrix("vectors", vectors)
    k, n = Vk.shape
    if k == 0 or n == 0:
        raise ValueError("vectors must hold at least one vector of dimension >= 1")
    if k > n:
        raise ValueError(f"{k} vectors in R^{n} cannot be linearly independent (k > n)")
    _, s, vt = np.linalg.svd(Vk, full_matrices=True)
    if s[-1] <= rtol * s[0] or s[0] == 0:
        raise ValueError(
            f"vectors must be linearly independent; smallest/largest singular value = {s[-1] / max(s[0], 1e-300):.3g}"
        )
    return np.concatenate([Vk.T, vt[k:].T], axis=1)


@dataclass(frozen=True)
class ChangeOfBasis:
    """W = (W V^-1) V and its rank-1 pieces (all float64 numpy arrays).

    ``basis`` B (n, n): columns b_1..b_n, the first k the given v_i. ``V`` = B^-1, the change of
    basis from the standard basis to B (row i of V reads off the i-th coordinate). ``W_new`` =
    W V^-1 = W B (p, n): W in the new coordinates, its column i is W b_i. ``factors``: rank-1
    matrices summing to W_new; ``pieces`` (r, p, n): piece_c = factor_c V, summing to W, each of
    rank <= 1 with image(piece_c) = image(factor_c).
    """

    basis: np.ndarray
    V: np.ndarray
    W_new: np.ndarray
    factors: np.ndarray
    pieces: np.ndarray


def change_of_basis_decomposition(W: Any, vectors: Any, *, split: str = "columns") -> ChangeOfBasis:
    """Rank-1 pieces of W (p, n) adapted to linearly independent ``vectors`` (k, n) (seed 002).

    Extend v_1..v_k to a basis B (:func:`extend_to_basis`), let V = B^-1 and write
    W = (W V^-1) V. Split W V^-1 into rank-1 factors W_c — ``split='columns'``: W_c = (column c of
    W V^-1) e_c^T, one per basis vector, so piece c = (W b_c) (row c of V) maps b_j to
    delta_cj W b_j (it reads off exactly the c-th basis coordinate); ``split='svd'``: the SVD terms
    sigma_c a_c w_c^T of W V^-1. Then the pieces W_c V sum to W, and since V is invertible each
    has rank <= 1 and image(W_c V) = image(W_c) — the v_i may as well be orthonormal.
    """
    Wm = _matrix("W", W)
    B = extend_to_basis(vectors)
    n = B.shape[0]
    if Wm.shape[1] != n:
        raise ValueError(f"W must be shaped (p, n) with n = {n} (the vectors' dimension), got {Wm.shape}")
    check_choice("split", split, ("columns", "svd"))
    V = np.linalg.inv(B)
    W_new = Wm @ B  # = W V^-1
    if split == "columns":
        factors = np.einsum("pc,cn->cpn", W_new, np.eye(n))
    else:
        a, s, wt = np.linalg.svd(W_new, full_matrices=False)
        factors = np.einsum("pc,c,cn->cpn", a, s, wt)
    pieces = factors @ V
    return ChangeOfBasis(basis=B, V=V, W_new=W_new, factors=factors, pieces=pieces)


# ----------------------------------------------------------------------------- truth-like directions


def signed_one_hot_facts(d: int) -> np.ndarray:
    """The 2d "facts" of seed 001: rows e_1..e_d then their negations -e_1..-e_d; shape (2d, d).
    Fact i and fact i + d are each other's negation."""
    d = _int("d", d, 1)
    eye = np.eye(d)
    return np.concatenate([eye, -eye])


def truth_like_directions(d: int) -> np.ndarray:
    """All 2^d sign vectors s in {-1, 1}^d, shape (2^d, d) (d <= 24), in lexicographic order.
    For ±one-hot facts x, s·x = ±1 and s·(-x) = ∓1 (seed 001)."""
    d = _int("d", d, 1, 24)
    return np.array(list(itertools.product((-1.0, 1.0), repeat=d)))


def truth_labels(w: Any, facts: Any) -> np.ndarray:
    """Which facts the direction w calls true: w·x > 0, one boolean per row of ``facts`` (q, d)."""
    F = _matrix("facts", facts)
    wv = _matrix("w", w, ndim=1)
    if wv.shape[0] != F.shape[1]:
        raise ValueError(f"w has dimension {wv.shape[0]} but facts have {F.shape[1]}")
    return F @ wv > 0


def is_truth_like(w: Any, facts: Any, *, rtol: float = 1e-9) -> bool:
    """Is w a truth-like direction for ``facts`` (q, d) and their negations?

    It must separate every fact from its negation — w·x and w·(-x) nonzero with opposite signs,
    i.e. w·x != 0 — with the same confidence |w·x| = c > 0 for every fact (up to ``rtol``), as a
    direction reading "true = +c, false = -c" (seed 001, "up to a scaling constant").
    """
    F = _matrix("facts", facts)
    wv = _matrix("w", w, ndim=1)
    if wv.shape[0] != F.shape[1]:
        raise ValueError(f"w has dimension {wv.shape[0]} but facts have {F.shape[1]}")
    s = np.abs(F @ wv)
    c = s.max(initial=0.0)
    if c == 0:
        return False
    return bool(((F @ wv) * (-F @ wv) < 0).all() and (np.abs(s - c) <= rtol * c).all())


# ----------------------------------------------------------------------------- LayerNorm squeeze


def layernorm(x: Any, eps: float = 0.0) -> torch.Tensor:
    """LayerNorm without the affine map over the last dimension:
    LN(x) = (x - mean(x)) / sqrt(var(x) + eps), var the biased (1/n) variance (Ba, Kiros & Hinton
    2016). Equal to ``torch.nn.functional.layer_norm(x, (n,), eps=eps)``; float64 unless x is a
    float tensor already. With eps = 0 the output has norm sqrt(n) (when x is not constant)."""
    eps = check_float("eps", eps, 0.0)
    t = x if isinstance(x, torch.Tensor) and x.is_floating_point() else torch.as_tensor(np.asarray(x, dtype=np.float64))
    if t.ndim == 0 or t.shape[-1] < 1:
        raise ValueError("x must have a last dimension of size >= 1")
    if torch.isnan(t).any():
        raise ValueError("x must not contain NaN")
    xc = t - t.mean(dim=-1, keepdim=True)
    return xc / torch.sqrt(xc.pow(2).mean(dim=-1, keepdim=True) + eps)


def _centred_pair(embedding: Any, component: Any) -> tuple[np.ndarray, np.ndarray]:
    e = _matrix("embedding", embedding, ndim=1)
    f = _matrix("component", component, ndim=1)
    if e.shape != f.shape:
        raise ValueError(f"embedding and component must have the same shape, got {e.shape} and {f.shape}")
    pe, pf = e - e.mean(), f - f.mean()
    if np.linalg.norm(pe) == 0:
        raise ValueError("the embedding is constant: LayerNorm removes it entirely (centred norm 0)")
    return pe, pf


def _scales(c: Any) -> np.ndarray:
    a = np.asarray(c, dtype=np.float64)
    if np.isnan(a).any() or (a < 0).any() or np.isinf(a).any():
        raise ValueError("c must be finite and >= 0")
    return a


def squeeze_share(embedding: Any, component: Any, c: Any, eps: float = 0.0) -> Any:
    """Share of the LayerNorm output carried by ``component`` f when the input is c·e + f.

    LN is linear up to its scalar normaliser alpha = 1/sqrt(var(c e + f) + eps):
    LN(c e + f) = alpha P(c e) + alpha P f (P centres). The share is ||alpha P f|| / ||LN(c e + f)||,
    computed here by running :func:`layernorm`; it does not depend on eps. Vectorised over c.
    (Seed 000: the "I am the token being defined" direction squeezed out by a large embedding.)
    """
    pe, pf = _centred_pair(embedding, component)
    cs = _scales(c)
    e = torch.as_tensor(_matrix("embedding", embedding, ndim=1))
    f = torch.as_tensor(_matrix("component", component, ndim=1))
    X = torch.as_tensor(cs.reshape(-1, 1)) * e + f  # (C, n)
    out = layernorm(X, eps)
    xc = X - X.mean(dim=-1, keepdim=True)
    alpha = 1 / torch.sqrt(xc.pow(2).mean(dim=-1) + eps)  # (C,)
    f_part = alpha[:, None] * torch.as_tensor(pf)
    with np.errstate(invalid="ignore", divide="ignore"):
        share = (f_part.norm(dim=-1) / out.norm(dim=-1)).numpy()
    return float(share[0]) if cs.ndim == 0 else share.reshape(cs.shape)


def squeeze_share_closed_form(embedding: Any, component: Any, c: Any) -> Any:
    """||Pf|| / sqrt(c^2 ||Pe||^2 + 2c <Pe, Pf> + ||Pf||^2) = ||Pf|| / ||P(c e + f)||, so
    c · share -> ||Pf|| / ||Pe|| and the share tends to 0 like 1/c."""
    pe, pf = _centred_pair(embedding, component)
    cs = _scales(c)
    a2, r, b2 = pe @ pe, pe @ pf, pf @ pf
    with np.errstate(invalid="ignore", divide="ignore"):
        s = math.sqrt(b2) / np.sqrt(cs**2 * a2 + 2 * cs * r + b2)
    return float(s) if cs.ndim == 0 else s


def squeeze_monotone_from(embedding: Any, component: Any) -> float:
    """c* = max(0, -<Pe, Pf> / ||Pe||^2): the share is strictly decreasing for c > c* (the
    denominator ||P(c e + f)||^2 is a parabola in c with its minimum at -<Pe,Pf>/||Pe||^2). For
    c < c* the embedding partly cancels f and the share can first grow."""
    pe, pf = _centred_pair(embedding, component)
    return max(0.0, -float(pe @ pf) / float(pe @ pe))


# ============================================================================= claims


@claim(
    "linalg.change_of_basis",
    status="proven",
    statement="""Given linearly independent v_1..v_k in R^n, extend them to a basis and let V change
    coordinates to it: W = (W V^-1) V, and any split of W V^-1 into rank-1 matrices W_c gives rank-1
    pieces W_c V summing to W with image(W_c V) = image(W_c). So the v_i may be taken orthonormal
    without loss of generality.""",
    source="Seed 002 (comment on 'Stochastic Parameter Decomposition').",
)
def _check_change_of_basis(ctx: Context) -> Result:
    rng = ctx.rng("linalg", "change_of_basis")
    n_cases = ctx.pick(20, 300, 3000)
    worst = {"sum": 0.0, "rank": 0.0, "image": 0.0, "reads_off": 0.0, "basis": 0.0}
    for i in range(n_cases):
        n = int(rng.integers(1, 12))
        k = int(rng.integers(1, n + 1))
        p = int(rng.integers(1, 9))
        W = rng.normal(size=(p, n)) * rng.choice([1e-2, 1.0, 1e2])
        vs = rng.normal(size=(k, n))
        if i % 3 == 0 and k >= 2:  # nearly parallel but independent v's
            vs[1] = vs[0] + 0.05 * vs[1]
        for split in ("columns", "svd"):
            cb = change_of_basis_decomposition(W, vs, split=split)
            scale = max(1.0, float(np.abs(W).max()))
            cond = np.linalg.cond(cb.basis)
            worst["sum"] = max(worst["sum"], float(np.abs(cb.pieces.sum(0) - W).max()) / (scale * cond))
            worst["basis"] = max(worst["basis"], float(np.abs(cb.basis[:, :k] - vs.T).max()))
            for fac, piece in zip(cb.factors, cb.pieces):
                sv = np.linalg.svd(piece, compute_uv=False)
                top = max(sv[0], 1e-300)
                worst["rank"] = max(worst["rank"], float(sv[1] / top) if len(sv) > 1 else 0.0)
                # image(piece) = image(factor): stacking them side by side keeps rank <= 1
                both = np.linalg.svd(np.concatenate([piece, fac], axis=1), compute_uv=False)
                if both[0] > 1e-12 * scale:
                    worst["image"] = max(worst["image"], float(both[1] / both[0]) if len(both) > 1 else 0.0)
            if split == "columns":
                # piece c maps v_j (j <= k) to delta_cj W v_j: the v's act like orthonormal e_j
                Wv = W @ vs.T  # (p, k)
                acts = cb.pieces[:, :, :] @ vs.T  # (n, p, k)
                expect = np.zeros_like(acts)
                for j in range(k):
                    expect[j, :, j] = Wv[:, j]
                worst["reads_off"] = max(worst["reads_off"], float(np.abs(acts - expect).max()) / (scale * cond))
    tol = 1e-9
    ok = all(v <= tol for v in worst.values())
    # The claim must also be able to fail on bad input: dependent vectors are rejected.
    try:
        change_of_basis_decomposition(np.ones((2, 3)), np.array([[1.0, 2, 3], [2.0, 4, 6]]))
        rejects = False
    except ValueError:
        rejects = True
    ok = ok and rejects
    return Result(
        holds_if(ok),
        predicted={"sum - W": 0.0, "second singular value / first": 0.0, "image mismatch": 0.0},
        observed=worst,
        tolerance=tol,
        detail=f"{n_cases} random (W, v) with n <= 11, k <= n, column and SVD splits: pieces sum to W, each has "
        "rank <= 1 with the image of its factor, column pieces read off exactly one v_i (errors relative "
        f"to scale x cond(B)); linearly dependent v's rejected: {rejects}.",
    )


@claim(
    "linalg.truth_like_directions",
    status="proven",
    statement="""If the data are the 2d facts ±e_i (one-hot vectors in R^d and their negations), every sign
    vector s in {-1,1}^d separates each fact from its negation with equal confidence (s·x = ±1,
    s·(-x) = ∓1), and these are all such directions up to scale: 2^d distinct truth-like directions.""",
    source="Seed 001 (on 'truth-like' features and CCS).",
)
def _check_truth_like_directions(ctx: Context) -> Result:
    dims = ctx.pick(range(1, 7), range(1, 11), range(1, 15))
    counts, all_ok = {}, True
    for d in dims:
        facts = signed_one_hot_facts(d)
        S = truth_like_directions(d)
        vals = S @ facts.T  # (2^d, 2d)
        sep = np.array_equal(vals[:, :d], -vals[:, d:]) and np.array_equal(np.abs(vals), np.ones_like(vals))
        labels = vals > 0
        distinct = len({row.tobytes() for row in labels})
        # every labelling that calls exactly one of each pair (x, -x) true is realised
        consistent = bool((labels[:, :d] ^ labels[:, d:]).all())
        counts[d] = distinct
        all_ok &= sep and consistent and distinct == 2**d
    # Exhaustive converse on a grid: among w in {-2,-1,0,1,2}^d the truth-like ones are exactly c·s,
    # c in {1, 2}: 2 · 2^d of them (zeros fail to separate, unequal magnitudes fail equal confidence).
    conv = {}
    for d in ctx.pick((1, 2, 3), (1, 2, 3, 4, 5), (1, 2, 3, 4, 5, 6)):
        facts = signed_one_hot_facts(d)
        grid = itertools.product((-2.0, -1.0, 0.0, 1.0, 2.0), repeat=d)
        found = [w for w in grid if is_truth_like(np.array(w), facts)]
        conv[d] = len(found)
        all_ok &= len(found) == 2 * 2**d and all(len(set(np.abs(w))) == 1 for w in found)
    # Random Gaussian directions separate every fact but are not truth-like (unequal confidence).
    rng = ctx.rng("linalg", "truth")
    gauss_tl = sum(is_truth_like(rng.normal(size=5), signed_one_hot_facts(5)) for _ in range(200))
    all_ok &= gauss_tl == 0
    return Result(
        holds_if(all_ok),
        predicted={d: 2**d for d in dims},
        observed=counts,
        tolerance=0,
        detail=f"d = {min(dims)}..{max(dims)}: every sign vector gives s·x = ±1 with s·(-x) = -s·x and the 2^d "
        f"labellings are distinct and consistent; grid {{-2..2}}^d has exactly 2·2^d truth-like points "
        f"({conv}); Gaussian directions truth-like: {gauss_tl}/200.",
    )


@claim(
    "linalg.layernorm_squeeze",
    status="proven",
    statement="""Add a fixed component f to an embedding scaled by c and apply LayerNorm (no affine map):
    the share of the output carried by f, ||Pf|| / ||P(ce + f)|| with P the centring projection,
    decreases for c beyond max(0, -<Pe,Pf>/||Pe||^2) and tends to 0 like ||Pf|| / (c ||Pe||).""",
    source="Seed 000 (comment on 'Mapping the semantic void II').",
)
def _check_layernorm_squeeze(ctx: Context) -> Result:
    rng = ctx.rng("linalg", "squeeze")
    n_cases = ctx.pick(10, 200, 2000)
    cs = np.concatenate([[0.0], np.geomspace(1e-3, 1e6, ctx.pick(60, 200, 400))])
    worst = {"ln_vs_torch": 0.0, "share_vs_closed_form": 0.0, "increase_after_cstar": 0.0, "c_share_limit": 0.0}
    non_monotone_before = 0
    for i in range(n_cases):
        n = int(rng.integers(2, 65))
        e = rng.normal(size=n) * rng.choice([0.1, 1.0, 10.0])
        f = rng.normal(size=n)
        if i % 4 == 0:  # anti-aligned component: the share first rises
            f = -e * rng.uniform(0.5, 2.0) + 0.1 * f
        eps = float(rng.choice([0.0, 1e-5, 1.0]))
        X = torch.as_tensor(cs[:, None] * e + f)
        worst["ln_vs_torch"] = max(
            worst["ln_vs_torch"],
            float((layernorm(X, eps) - torch.nn.functional.layer_norm(X, (n,), eps=eps)).abs().max()),
        )
        share = squeeze_share(e, f, cs, eps)
        exact = squeeze_share_closed_form(e, f, cs)
        pe, pf = e - e.mean(), f - f.mean()
        # relative error, divided by the cancellation factor of c e + f (near f = -c e both
        # computations lose digits to cancellation, as any floating-point evaluation must)
        kappa = (cs * np.linalg.norm(pe) + np.linalg.norm(pf)) ** 2 / np.linalg.norm(cs[:, None] * pe + pf, axis=1) ** 2
        rel = np.abs(share - exact) / exact / kappa
        worst["share_vs_closed_form"] = max(worst["share_vs_closed_form"], float(np.nanmax(rel)))
        c_star = squeeze_monotone_from(e, f)
        after = share[cs > c_star]
        worst["increase_after_cstar"] = max(
            worst["increase_after_cstar"], float(np.max(np.diff(after) / after[1:], initial=0.0))
        )
        non_monotone_before += int(np.any(np.diff(share[cs <= c_star]) > 0))
        limit = np.linalg.norm(pf) / np.linalg.norm(pe)
        # c·share / limit = (1 + q)^(-1/2) with q = (2<Pe,Pf>/c + ||Pf||^2/c^2)/||Pe||^2, so the
        # relative error is at most |q| once |q| <= 1/2: it must vanish like 1/c.
        c = cs[-1]
        q = (2 * (pe @ pf) / c + (pf @ pf) / c**2) / (pe @ pe)
        rel = abs(c * share[-1] - limit) / limit
        worst["c_share_limit"] = max(worst["c_share_limit"], rel - abs(q) if abs(q) <= 0.5 else math.inf)
    # hand case: e = (1,0,0), f = (0,1,0) gives share = 1/sqrt(c^2 - c + 1)
    hand = [squeeze_share([1, 0, 0], [0, 1, 0], c) - 1 / math.sqrt(c * c - c + 1) for c in (0.0, 0.5, 1.0, 3.0, 100.0)]
    hand_err = max(abs(h) for h in hand)
    tol = {"ln_vs_torch": 1e-9, "share_vs_closed_form": 1e-9, "increase_after_cstar": 1e-12, "c_share_limit": 1e-9}
    ok = all(worst[k] <= tol[k] for k in tol) and hand_err < 1e-12
    return Result(
        holds_if(ok),
        predicted={"share(c -> inf)": 0.0, "share": "||Pf|| / ||P(ce+f)|| (relative error / cancellation factor)", "c·share(c) -> ||Pf||/||Pe||": "error <= |q| = O(1/c)"},
        observed={**worst, "hand_case_err": hand_err, "cases_rising_before_c*": non_monotone_before},
        tolerance=tol,
        detail=f"{n_cases} random (e, f, eps), c on a grid 0..1e6: LN matches torch's layer_norm; share equals "
        f"||Pf||/||P(ce+f)||, never increases past c*, and c·share -> ||Pf||/||Pe|| (relative error at c = 1e6 "
        f"within the O(1/c) bound |q|, worst excess {worst['c_share_limit']:.1e}); {non_monotone_before} anti-aligned cases rise before c*, "
        "as the formula allows.",
    )
