"""Issue 10 contract: ``SparseFeatures(..., hierarchy=..., firing="zipf", zipf_exponent=a)``."""
from __future__ import annotations

import torch

from toymodels import SparseFeatures
from toymodels.data.hierarchy import HierarchicalFeatures


def test_hierarchy_keyword_on_sparse_features_gates_children():
    src = SparseFeatures(8, 0.3, 2, hierarchy=[(0, [1, 2, 3], True)], d_embed=None, seed=3)
    assert isinstance(src, HierarchicalFeatures)
    x = src.sample(4096)                                    # (I, B, N)
    parent_off = x[..., 0] == 0
    children = x[..., 1:4] != 0
    assert not children[parent_off].any()                   # a child fires only with its parent
    assert (children.sum(-1) <= 1).all()                    # mutually exclusive children
    assert children.any()                                   # and they do fire
    # subset invariance of the per-instance streams survives the richer sampler
    torch.testing.assert_close(src.subset([1]).sample(64)[0], src.sample(64)[1], rtol=0, atol=0)


def test_zipf_firing_keyword_on_sparse_features():
    n, mean_p = 64, 0.05
    src = SparseFeatures(n, mean_p, firing="zipf", zipf_exponent=1.0, seed=1)
    assert isinstance(src, HierarchicalFeatures)
    rate = (src.sample(20000)[0] != 0).float().mean(0)
    assert abs(rate.mean().item() - mean_p) < 0.005
    # p_i ∝ rank^-1: feature 0 fires about twice as often as feature 1 and 8x feature 7
    assert 1.6 < (rate[0] / rate[1]).item() < 2.5
    assert 5.5 < (rate[0] / rate[7]).item() < 11


def test_plain_sparse_features_stays_plain():
    assert type(SparseFeatures(5, 0.1)) is SparseFeatures
