"""Change of basis into rank-1 pieces, truth-like directions, the LayerNorm squeeze."""
import itertools
import math

import numpy as np
import pytest
import torch
from hypothesis import given
from hypothesis import strategies as st
from hypothesis.extra.numpy import arrays

import theory.linalg as L
from theory.registry import CLAIMS, Context, run_claim

finite = st.floats(-10, 10, allow_nan=False, allow_infinity=False)


@st.composite
def w_and_vectors(draw):
    n = draw(st.integers(1, 7))
    k = draw(st.integers(1, n))
    p = draw(st.integers(1, 5))
    W = draw(arrays(np.float64, (p, n), elements=finite))
    seed = draw(st.integers(0, 2**32 - 1))
    vs = np.random.default_rng(seed).normal(size=(k, n))  # independent with probability 1
    return W, vs


# ----------------------------------------------------------------------------- change of basis


@given(w_and_vectors(), st.sampled_from(["columns", "svd"]))
def test_pieces_sum_to_w_with_rank_one_and_same_images(wv, split):
    W, vs = wv
    k, n = vs.shape
    cb = L.change_of_basis_decomposition(W, vs, split=split)
    assert np.allclose(cb.basis[:, :k], vs.T)
    assert np.allclose(cb.V @ cb.basis, np.eye(n), atol=1e-8)
    assert np.allclose(cb.W_new @ cb.V, W, atol=1e-8 * max(1, np.abs(W).max()))
    assert np.allclose(cb.pieces.sum(0), W, atol=1e-8 * max(1, np.abs(W).max()))
    for fac, piece in zip(cb.factors, cb.pieces):
        assert np.linalg.matrix_rank(piece, tol=1e-8 * max(1, np.abs(W).max())) <= 1
        # image(piece) = image(factor): side by side they still have rank <= 1, and since V is
        # invertible the factor is recovered from the piece
        assert np.linalg.matrix_rank(np.hstack([piece, fac]), tol=1e-8 * max(1, np.abs(W).max())) <= 1
        assert np.allclose(piece @ cb.basis, fac, atol=1e-8 * max(1, np.abs(W).max()) * np.linalg.cond(cb.basis))


@given(w_and_vectors())
def test_column_pieces_read_off_one_vector_each(wv):
    W, vs = wv
    k, n = vs.shape
    cb = L.change_of_basis_decomposition(W, vs)
    scale = max(1, np.abs(W).max()) * np.linalg.cond(cb.basis)
    for c in range(n):
        for j in range(k):
            expect = W @ vs[j] if c == j else np.zeros(W.shape[0])
            assert np.allclose(cb.pieces[c] @ vs[j], expect, atol=1e-9 * scale)
        # its image is spanned by W b_c, the c-th column of W V^-1
        assert np.allclose(cb.W_new[:, c], W @ cb.basis[:, c])


def test_change_of_basis_hand_case():
    # W = I, v_1 = (1, 0), v_2 = (1, 1): B = [[1, 1], [0, 1]], V = [[1, -1], [0, 1]]
    cb = L.change_of_basis_decomposition(np.eye(2), [[1.0, 0.0], [1.0, 1.0]])
    assert np.allclose(cb.basis, [[1, 1], [0, 1]])
    assert np.allclose(cb.V, [[1, -1], [0, 1]])
    assert np.allclose(cb.pieces[0], [[1, -1], [0, 0]])
    assert np.allclose(cb.pieces[1], [[0, 1], [0, 1]])
    assert np.allclose(cb.pieces[0] @ [1, 1], 0) and np.allclose(cb.pieces[1] @ [1, 0], 0)


def test_extend_to_basis_completes_orthonormally():
    B = L.extend_to_basis([[1.0, 2.0, 0.0, 0.0]])
    assert B.shape == (4, 4) and abs(np.linalg.det(B)) > 1e-8
    rest = B[:, 1:]
    assert np.allclose(rest.T @ rest, np.eye(3)) and np.allclose(rest.T @ [1, 2, 0, 0], 0)


@pytest.mark.parametrize(
    "W,vs",
    [
        (np.ones((2, 3)), [[1.0, 2, 3], [2.0, 4, 6]]),  # dependent
        (np.ones((2, 2)), [[1.0, 0], [0, 1], [1, 1]]),  # k > n
        (np.ones((2, 3)), [[0.0, 0, 0]]),  # the zero vector
        (np.ones((2, 3)), [[1.0, float("nan"), 0]]),  # NaN
        (np.full((2, 3), np.nan), [[1.0, 0, 0]]),  # NaN in W
        (np.ones((2, 4)), [[1.0, 0, 0]]),  # shapes disagree
        (np.ones(3), [[1.0, 0, 0]]),  # W not a matrix
    ],
)
def test_change_of_basis_rejects_bad_input(W, vs):
    with pytest.raises(ValueError):
        L.change_of_basis_decomposition(W, vs)


def test_change_of_basis_rejects_unknown_split():
    with pytest.raises(ValueError):
        L.change_of_basis_decomposition(np.eye(2), [[1.0, 0.0]], split="qr")


# ----------------------------------------------------------------------------- truth-like directions


@pytest.mark.parametrize("d", range(1, 9))
def test_all_sign_vectors_are_truth_like_and_distinct(d):
    facts = L.signed_one_hot_facts(d)
    S = L.truth_like_directions(d)
    assert facts.shape == (2 * d, d) and S.shape == (2**d, d)
    assert np.array_equal(facts[d:], -facts[:d])
    labels = np.array([L.truth_labels(s, facts) for s in S])
    assert all(L.is_truth_like(s, facts) for s in S)
    assert np.array_equal(labels[:, :d], ~labels[:, d:])  # exactly one of x, -x is "true"
    assert len({row.tobytes() for row in labels}) == 2**d


def test_truth_like_hand_cases():
    facts = L.signed_one_hot_facts(3)
    assert L.is_truth_like([1, -1, 1], facts)
    assert L.is_truth_like([-0.3, -0.3, 0.3], facts)  # any positive multiple of a sign vector
    assert not L.is_truth_like([1, 0, 1], facts)  # fails to separate e_2 from -e_2
    assert not L.is_truth_like([1, 2, 1], facts)  # separates, but with unequal confidence
    assert not L.is_truth_like([0, 0, 0], facts)
    assert list(L.truth_labels([1, -1, 1], facts)) == [True, False, True, False, True, False]


def test_exhaustive_grid_has_exactly_the_scaled_sign_vectors():
    for d in (1, 2, 3, 4):
        facts = L.signed_one_hot_facts(d)
        found = [w for w in itertools.product(range(-3, 4), repeat=d) if L.is_truth_like(np.array(w, float), facts)]
        assert len(found) == 3 * 2**d  # c * s for c in {1, 2, 3}


@given(d=st.integers(1, 12), seed=st.integers(0, 10**6), c=st.floats(1e-3, 1e3))
def test_scaled_sign_vectors_truth_like_perturbed_ones_not(d, seed, c):
    rng = np.random.default_rng(seed)
    s = rng.choice([-1.0, 1.0], size=d)
    facts = L.signed_one_hot_facts(d)
    assert L.is_truth_like(c * s, facts)
    w = c * s.copy()
    w[rng.integers(d)] *= 1.5
    assert d == 1 or not L.is_truth_like(w, facts)


def test_truth_like_rejects_bad_input():
    for bad in (lambda: L.signed_one_hot_facts(0), lambda: L.truth_like_directions(25),
                lambda: L.is_truth_like([1.0, float("nan")], L.signed_one_hot_facts(2)),
                lambda: L.truth_labels([1.0, 1.0, 1.0], L.signed_one_hot_facts(2))):
        with pytest.raises(ValueError):
            bad()


# ----------------------------------------------------------------------------- LayerNorm squeeze


@given(arrays(np.float64, st.tuples(st.integers(1, 4), st.integers(2, 16)), elements=finite),
       st.sampled_from([0.0, 1e-5, 1.0]))
def test_layernorm_matches_torch_and_is_normalised(x, eps):
    X = torch.as_tensor(x)
    out = L.layernorm(X, eps)
    ref = torch.nn.functional.layer_norm(X, (X.shape[-1],), eps=eps)
    spread = (X - X.mean(-1, keepdim=True)).abs().amax(-1)
    ok = spread > 1e-3  # (a constant row with eps = 0 is 0/0: ill-defined, compared only when eps > 0)
    assert torch.allclose(out[ok], ref[ok], atol=1e-7)
    if eps > 0:
        assert torch.allclose(out, ref, atol=1e-7)
    assert torch.allclose(out[ok].mean(-1), torch.zeros(int(ok.sum()), dtype=torch.float64), atol=1e-9)
    if eps == 0.0 and ok.any():
        n = X.shape[-1]
        assert torch.allclose(out[ok].norm(dim=-1), torch.full((int(ok.sum()),), math.sqrt(n), dtype=torch.float64))
        # invariant to shifts and positive rescaling
        assert torch.allclose(L.layernorm(3.0 * X[ok] + 7.0), out[ok], atol=1e-7)


def test_layernorm_hand_case_and_bad_input():
    assert torch.allclose(L.layernorm([1.0, 3.0]), torch.tensor([-1.0, 1.0], dtype=torch.float64))
    assert torch.allclose(L.layernorm([0.0, 0.0, 3.0]), torch.tensor([-1.0, -1.0, 2.0], dtype=torch.float64) / math.sqrt(2))
    with pytest.raises(ValueError):
        L.layernorm([1.0, float("nan")])
    with pytest.raises(ValueError):
        L.layernorm([1.0, 2.0], eps=-1.0)
    with pytest.raises(ValueError):
        L.layernorm([1.0, 2.0], eps=float("nan"))


def test_squeeze_hand_case():
    # e = (1,0,0), f = (0,1,0): ||Pe||^2 = ||Pf||^2 = 2/3, <Pe,Pf> = -1/3, share = 1/sqrt(c^2 - c + 1)
    cs = np.array([0.0, 0.5, 1.0, 2.0, 10.0, 1e4])
    assert np.allclose(L.squeeze_share([1, 0, 0], [0, 1, 0], cs), 1 / np.sqrt(cs**2 - cs + 1))
    assert L.squeeze_monotone_from([1, 0, 0], [0, 1, 0]) == pytest.approx(0.5)
    assert L.squeeze_share([1, 0, 0], [0, 1, 0], 0.0) == pytest.approx(1.0)  # c = 0: all of LN(f) is f
    assert L.squeeze_share([1, 0, 0], [0, 1, 0], 1e4) < 2e-4


@given(n=st.integers(2, 32), seed=st.integers(0, 10**6), eps=st.sampled_from([0.0, 1e-5, 0.5]))
def test_squeeze_share_formula_monotone_and_limit(n, seed, eps):
    rng = np.random.default_rng(seed)
    e, f = rng.normal(size=n), rng.normal(size=n)
    if np.ptp(e) < 1e-6:
        return
    cs = np.concatenate([[0.0], np.geomspace(1e-2, 1e5, 80)])
    share = L.squeeze_share(e, f, cs, eps)
    assert np.allclose(share, L.squeeze_share_closed_form(e, f, cs), rtol=1e-9, atol=1e-12)
    assert np.allclose(share, L.squeeze_share(e, f, cs, 0.0), rtol=1e-9)  # eps cancels in the share
    after = share[cs > L.squeeze_monotone_from(e, f)]
    assert np.all(np.diff(after) <= 1e-12 * after[1:])
    pe, pf = e - e.mean(), f - f.mean()
    limit = np.linalg.norm(pf) / np.linalg.norm(pe)
    # c·share / limit = (1 + q)^(-1/2), q = (2<Pe,Pf>/c + ||Pf||^2/c^2)/||Pe||^2: error <= |q| if |q| <= 1/2
    c = cs[-1]
    q = (2 * (pe @ pf) / c + (pf @ pf) / c**2) / (pe @ pe)
    if abs(q) <= 0.5:
        assert abs(c * share[-1] / limit - 1) <= abs(q) + 1e-9


def test_squeeze_can_rise_before_c_star():
    e = np.array([1.0, 0.0, 0.0])
    f = -0.8 * e + np.array([0.0, 0.05, 0.0])
    c_star = L.squeeze_monotone_from(e, f)
    assert c_star > 0
    assert L.squeeze_share(e, f, c_star) > L.squeeze_share(e, f, 0.0)


def test_squeeze_rejects_bad_input():
    for bad in (lambda: L.squeeze_share([1.0, 1.0], [0.0, 1.0], 1.0),  # constant embedding
                lambda: L.squeeze_share([1.0, 0.0], [0.0, 1.0], -1.0),
                lambda: L.squeeze_share([1.0, 0.0], [0.0, 1.0], float("nan")),
                lambda: L.squeeze_share([1.0, 0.0], [0.0, 1.0, 2.0], 1.0),
                lambda: L.squeeze_share_closed_form([1.0, float("nan")], [0.0, 1.0], 1.0)):
        with pytest.raises(ValueError):
            bad()


# ------------------------------------------- registered checks (each must hold: tests/theory/test_registry.py)


@pytest.mark.parametrize(
    "cid,attr,wrong",
    [
        ("linalg.change_of_basis", "extend_to_basis",
         lambda v, **k: np.eye(np.asarray(v).shape[1])),  # forgets the v's
        ("linalg.truth_like_directions", "truth_like_directions",
         lambda d: np.ones((2**d, d))),  # one direction repeated
        ("linalg.layernorm_squeeze", "layernorm",
         lambda x, eps=0.0: torch.as_tensor(np.asarray(x, float)) / 2),  # no normalisation
    ],
)
def test_registered_checks_can_fail(monkeypatch, cid, attr, wrong):
    monkeypatch.setattr(L, attr, wrong)
    rec = run_claim(CLAIMS[cid], Context(budget="tiny"))
    assert rec.verdict == "fails", rec.detail
