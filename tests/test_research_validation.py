"""Issue 20, items 4 and 5: the research modules' public functions validate their arguments
(one ValueError naming the argument, never a raw error or a silently wrong answer), the
hierarchy constructor rejects non-integer indices, and the README's chunking promise says
what is true. The broad hostile-input table is ``tests/probe/test_probe_research.py``."""
from __future__ import annotations

import math
import re
from pathlib import Path

import pytest
import torch

from toymodels import SparseFeatures, TMSConfig, build_model
from toymodels.data.hierarchy import tree, zipf_probabilities
from toymodels.research import causal as C
from toymodels.research import compressed as Q
from toymodels.research import connections as K
from toymodels.research import spd as S
from toymodels.train import TrainConfig, train

README = Path(__file__).resolve().parents[1] / "README.md"


# ---------------------------------------------------------------- causal abstraction
def test_wrong_arity_mechanism_is_refused_at_construction():
    # used to build, then fail with a raw TypeError on the first run
    with pytest.raises(ValueError, match=r"node 'b'.*1 parent"):
        C.CausalModel(("a",), {"b": (("a",), lambda a, c: a)}, ("b",))
    with pytest.raises(ValueError, match=r"node 'b'.*2 parent"):
        C.CausalModel(("a", "c"), {"b": (("a", "c"), lambda a: a)}, ("b",))


def test_parents_given_as_one_string_are_refused():
    # "x1" used to be split into the parents ('x', '1')
    with pytest.raises(ValueError, match=r"parents"):
        C.CausalModel(("x1",), {"b": ("x1", lambda a: a)}, ("b",))


def test_short_grid_rows_are_refused_not_merged():
    # rows of one value for two inputs used to be reshaped into fewer, merged rows
    with pytest.raises(ValueError, match=r"rows\[0\] must be 2 integers"):
        C.grid_domain(("a", "b"), [(0,), (1,)])


def test_ragged_and_float_grid_rows_are_refused():
    with pytest.raises(ValueError, match=r"rows\[1\]"):
        C.grid_domain(("a", "b"), [(0, 1), (1,)])
    with pytest.raises(ValueError, match=r"rows\[0\]"):   # 0.5 used to be truncated to 0
        C.grid_domain(("a",), [(0.5,), (1,)])


def test_float_bounds_are_refused_by_verify_symbolic():
    low, high = C.puzzle_models()
    e = C.Explanation(low, high, C.puzzle_alignment("x2"))
    with pytest.raises(ValueError, match=r"bounds\['x1'\] must be a pair of integers"):
        e.verify_symbolic({"x1": (0, 1.5), "x2": (0, 1)})


def test_one_dimensional_W_is_refused():
    with pytest.raises(ValueError, match=r"W_MN must have 2 dimensions"):
        C.toy_model_abstraction(torch.ones(4), torch.zeros(4), 0)


def test_zero_direction_interchange_is_refused_not_nan():
    with pytest.raises(ValueError, match=r"u must be a nonzero direction"):
        C.direction_interchange(torch.zeros(3))


def test_direction_interchange_of_a_valid_direction_is_unchanged():
    rule = C.direction_interchange(torch.tensor([3.0, 0.0]))
    (out,) = rule((torch.tensor([[1.0, 2.0]]),), (torch.tensor([[5.0, 7.0]]),))
    assert out.tolist() == [[5.0, 2.0]]


# ---------------------------------------------------------------- compressed and SPD
def test_stored_bigrams_with_mismatched_width_or_instances_names_the_argument():
    mlp = Q.BigramMLP(Q.BigramMLPConfig(d_resid=4, d_mlp=5, n_instances=2))
    with pytest.raises(ValueError, match=r"source_or_task has d_resid = 6"):
        Q.stored_bigrams(mlp, Q.BigramSource(6, 3, 2, 2))
    with pytest.raises(ValueError, match=r"source_or_task has 3 instances"):
        Q.stored_bigrams(mlp, Q.BigramSource(4, 3, 2, 3))


def test_bigram_mlp_forward_checks_r():
    mlp = Q.BigramMLP(Q.BigramMLPConfig(d_resid=4, d_mlp=5, n_instances=2))
    with pytest.raises(ValueError, match=r"^r must be a tensor shaped"):
        mlp(torch.zeros(2, 3, 5))


def test_load_instances_with_another_width_is_refused():
    a = Q.ResidualMLP(Q.ResidualMLPConfig(n_features=4, d_embed=6, d_mlp=3, n_instances=2))
    b = Q.ResidualMLP(Q.ResidualMLPConfig(n_features=5, d_embed=6, d_mlp=3, n_instances=1))
    with pytest.raises(ValueError, match=r"^other must be a ResidualMLP"):
        a.load_instances([0], b)


def test_train_spd_with_mismatched_source_names_it():
    tms = build_model(TMSConfig(5, 2, 2), seed=0)
    tiny = TrainConfig(steps=2, batch_size=8, quiet=True, eval_samples=16)
    with pytest.raises(ValueError, match=r"source has 3 instances"):
        S.train_spd(tms, SparseFeatures(5, 0.1, 3), S.SPDConfig(n_components=2), tiny)
    with pytest.raises(ValueError, match=r"source has dim 4"):
        S.train_spd(tms, SparseFeatures(4, 0.1, 2), S.SPDConfig(n_components=2), tiny)


def test_causal_importance_and_rank_one_cosine_check_shapes():
    spd = S.SPDModel(build_model(TMSConfig(5, 2, 2), seed=0), S.SPDConfig(n_components=3, gate_hidden=2))
    with pytest.raises(ValueError, match=r"^x must be shaped"):
        S.causal_importance(spd, torch.zeros(2, 3, 4))
    with pytest.raises(ValueError, match=r"U and V must have the same number C"):
        S.rank_one_cosine(torch.ones(2, 3), torch.ones(4, 3), torch.ones(1, 3), torch.ones(1, 3))


# ---------------------------------------------------------------- connections
def test_score_graph_refuses_nan_W_instead_of_precision_one():
    with pytest.raises(ValueError, match=r"W_INM must not contain NaN"):
        K.score_graph(torch.full((1, 2, 2), math.nan), torch.ones(1, 2, 2, dtype=torch.bool))


def test_score_graph_accepts_weighted_truth_as_before():
    s = K.score_graph(torch.ones(1, 1, 2), torch.tensor([[[0.7, 0.0]]]))
    assert s["precision"] == [0.5] and s["recall"] == [1.0]


def test_fit_sparse_map_refuses_an_empty_batch_and_nan():
    with pytest.raises(ValueError, match=r"^z1 must not be empty"):
        K.fit_sparse_map(torch.zeros(2, 0, 3), torch.zeros(2, 0, 3), l1=0.01)
    z = torch.rand(2, 8, 3)
    with pytest.raises(ValueError, match=r"^z2 must be finite"):
        K.fit_sparse_map(z, z.index_fill(1, torch.tensor([0]), math.nan), l1=0.01)


# ---------------------------------------------------------------- hierarchies
@pytest.mark.parametrize("spec", [
    [(0.5, [1, 2], True)],       # float parent, used to be truncated to 0
    [(0, [1.7, 2], True)],       # float child, used to be truncated to 1
    [(False, [1, 2], True)],     # bool parent, used to mean feature 0
    [(0, [True, 2], True)],      # bool child, used to mean feature 1
    [(0, "123", True)],          # a string of children, used to mean [1, 2, 3]
])
def test_hierarchy_refuses_non_integer_indices(spec):
    with pytest.raises(ValueError, match=r"^hierarchy\[0\]"):
        SparseFeatures(8, 0.3, hierarchy=spec)


@pytest.mark.parametrize("n_parents,n_children,field", [(-1, 2, "n_parents"), (0, 2, "n_parents"), (2, -1, "n_children")])
def test_tree_refuses_empty_sizes(n_parents, n_children, field):
    with pytest.raises(ValueError, match=field):   # used to return an empty hierarchy
        tree(n_parents, n_children)


def test_zipf_with_no_features_is_refused():
    with pytest.raises(ValueError, match=r"^n_features"):   # used to return an empty (1, 0) tensor
        zipf_probabilities(0, 0.1, 1.0)
    with pytest.raises(ValueError, match=r"^n_features"):
        SparseFeatures(0, 0.1, firing="zipf")


# ---------------------------------------------------------------- chunking (issue 20 item 5)
def _chunk_bullet() -> str:
    text = README.read_text()
    m = re.search(r"- \*\*Chunking\.\*\*(.*?)(?=\n- \*\*)", text, re.S)
    assert m, "README has no Chunking bullet"
    return " ".join(m.group(1).split())


def _tms_run(per_chunk):
    m = build_model(TMSConfig(20, 5, 4), seed=3)
    s = SparseFeatures(20, 0.1, 1, seed=4)
    r = train(m, s, TrainConfig(steps=30, batch_size=4096, quiet=True, eval_samples=256, log_every=10,
                                max_instances_per_chunk=per_chunk, prefetch_elements=0))
    return {k: v.detach().clone() for k, v in m.state_dict().items()}, r


def test_chunking_guarantee_is_what_the_readme_says():
    """One torch thread, a large batch: chunked and unchunked runs agree to float32 rounding
    (tested within 1e-6); the README may promise bit-exact weights only if they are."""
    threads = torch.get_num_threads()
    torch.set_num_threads(1)
    try:
        (a, ra), (b, rb) = _tms_run(None), _tms_run(1)
    finally:
        torch.set_num_threads(threads)
    for k in a:
        torch.testing.assert_close(b[k], a[k], rtol=1e-5, atol=1e-6)
    torch.testing.assert_close(rb.final_loss, ra.final_loss, rtol=1e-5, atol=1e-7)
    bit_exact = all(torch.equal(a[k], b[k]) for k in a)
    bullet = _chunk_bullet()
    if not bit_exact:
        assert "exact per instance" not in bullet and "not bit for bit" in bullet, bullet


def test_chunking_keeps_init_and_data_bit_for_bit():
    """What chunking does keep exactly: each instance's initialisation and data stream."""
    m = build_model(TMSConfig(6, 3, 4), seed=1)
    sub = m.subset([2])
    for k, v in sub.state_dict().items():
        assert torch.equal(v[0], m.state_dict()[k][2]), k
    s = SparseFeatures(6, [0.1, 0.2, 0.3, 0.4], 4, seed=2)
    assert torch.equal(s.subset([2]).sample(64)[0], SparseFeatures(6, [0.1, 0.2, 0.3, 0.4], 4, seed=2).sample(64)[2])
