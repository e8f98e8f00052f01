"""Geometry functions against hand computations and tight frames."""
import math

import pytest
import torch
from hypothesis import given
from hypothesis import strategies as st

from toymodels.measures.analysis import (
    classify_geometry,
    dimensions_per_feature,
    feature_dimensionality,
    feature_norms,
    superposition,
)


def _polygon(k, scale=1.0):
    a = torch.arange(k, dtype=torch.float64) * 2 * math.pi / k
    return scale * torch.stack([a.cos(), a.sin()])


def test_hand_computed_example():
    # columns: e1, 2·e1 (same direction), e2, 0
    W = torch.tensor([[1.0, 2.0, 0.0, 0.0], [0.0, 0.0, 1.0, 0.0]])
    assert torch.allclose(feature_norms(W), torch.tensor([1.0, 2.0, 1.0, 0.0]))
    # Σ_{j≠i} (Ŵ_i·W_j)²: feature 0 sees 2² = 4; feature 1 sees 1² = 1; e2 sees 0; zero column 0
    assert torch.allclose(superposition(W), torch.tensor([4.0, 1.0, 0.0, 0.0]))
    # D_0 = 1 / (1 + 4), D_1 = 4 / (4 + 1), D_2 = 1
    assert torch.allclose(feature_dimensionality(W), torch.tensor([0.2, 0.8, 1.0, 0.0]))
    assert dimensions_per_feature(W).item() == pytest.approx(2 / 6)


@pytest.mark.parametrize("k, d_over_k", [(2, 1 / 2), (3, 2 / 3), (5, 2 / 5)])
def test_polygons_have_frame_dimensionality(k, d_over_k):
    D = feature_dimensionality(_polygon(k, 0.7))
    assert torch.allclose(D, torch.full((k,), d_over_k, dtype=torch.float64))


def test_zero_columns_give_zero_not_nan():
    W = torch.zeros(3, 2, 4)
    D = feature_dimensionality(W)
    assert D.shape == (3, 4) and torch.equal(D, torch.zeros(3, 4))
    assert torch.equal(superposition(W), torch.zeros(3, 4))


@given(m=st.integers(1, 6), n=st.integers(1, 12), seed=st.integers(0, 10_000), zeros=st.integers(0, 3))
def test_dimensionality_bounds_and_rotation_invariance(m, n, seed, zeros):
    g = torch.Generator().manual_seed(seed)
    W = torch.randn(m, n, generator=g, dtype=torch.float64)
    W[:, : min(zeros, n)] = 0
    D = feature_dimensionality(W)
    assert torch.isfinite(D).all() and (D >= 0).all() and (D <= 1 + 1e-12).all()
    assert D.sum() <= m + 1e-9
    Q, _ = torch.linalg.qr(torch.randn(m, m, generator=g, dtype=torch.float64))
    assert torch.allclose(feature_dimensionality(Q @ W), D, atol=1e-10)


def test_batched_shapes():
    W = torch.randn(4, 3, 2, 7)
    assert feature_dimensionality(W).shape == (4, 3, 7)
    assert dimensions_per_feature(W).shape == (4, 3)


def test_classify_geometry():
    pent = _polygon(5).float()
    assert classify_geometry(pent) == ["pentagon"] * 5
    W = torch.zeros(3, 6)
    W[0, 0], W[0, 1] = 1.0, -1.0  # antipodal pair
    W[1, 2] = 1.0  # dedicated
    W[2, 3], W[2, 4] = 1.0, 0.5  # two features in one direction: D = 0.8 / 0.2: "other"
    assert classify_geometry(W) == ["antipodal pair"] * 2 + ["dedicated", "other", "other", "not represented"]
    batched = torch.stack([pent, torch.zeros(2, 5)])  # (I, M, N): one list of labels per instance (issue 22)
    assert classify_geometry(batched) == [["pentagon"] * 5, ["not represented"] * 5]
    with pytest.raises(ValueError, match="W must be"):
        classify_geometry(torch.zeros(4))


def test_analysis_returns_detached_tensors():
    """Issue 8 #18: the README example printed grad_fn=<WhereBackward0>."""
    from toymodels.models import TMSConfig, build_model

    W = build_model(TMSConfig(5, 2, 2), seed=0).W
    assert W.requires_grad
    for f in (feature_dimensionality, feature_norms, superposition, dimensions_per_feature):
        out = f(W)
        assert out.grad_fn is None and not out.requires_grad, f.__name__
    assert len(classify_geometry(W[0])) == 5


@pytest.mark.parametrize("W", [torch.ones(5, dtype=torch.float32), torch.ones(2, 5, dtype=torch.int64), [[1.0]]])
def test_analysis_rejects_non_weights(W):
    with pytest.raises(ValueError, match=r"W must be a floating-point tensor shaped \(\.\.\., M, N\)"):
        feature_dimensionality(W)
