"""The sparse-connections claim (theory/connections.py): registered, honest, and failing when fed
a wrong matching."""
import doctest

import pytest
import torch

import theory.connections as TC
import toymodels.research.connections as connections
from theory.registry import CLAIMS, Context, load_all, run_claim

load_all()


def test_claim_registered_and_holds_at_tiny_budget():
    c = CLAIMS["connections.sparse_map"]
    assert c.topic == "connections" and c.status == "empirical"
    rec = run_claim(c, Context(budget="tiny"))
    assert rec.verdict == "holds", rec.detail
    assert rec.observed["precision"] >= 0.9 and rec.observed["recall"] >= 0.9


def test_check_fails_with_a_wrong_matching(monkeypatch):
    """Negative control: latents paired with features in their stored order (no Hungarian
    matching) read W in the wrong basis, and the check must say so."""
    def unmatched(sae, directions):
        n = directions.shape[-1]
        return torch.arange(n).roll(1).expand(directions.shape[0], n).clone()

    monkeypatch.setattr(TC, "match_latents", unmatched)
    rec = run_claim(CLAIMS["connections.sparse_map"], Context(budget="tiny"))
    assert rec.verdict == "fails" and rec.observed["recall"] < 0.9


def test_recovered_graph_matches_truth_shapes():
    r = TC.recover_connections(Context(budget="tiny"), n_instances=1, steps=300)
    assert r["W"].shape == r["C"].shape == (1, 8, 12)
    s = TC.graph_summary(r)
    assert set(s) >= {"pooled_precision", "pooled_recall", "max_abs_offgraph"}


@pytest.mark.slow
def test_claim_holds_at_default_budget():
    rec = run_claim(CLAIMS["connections.sparse_map"], Context(budget="default"))
    assert rec.verdict == "holds", rec.observed


@pytest.mark.slow
def test_module_docstring_example_runs():
    res = doctest.testmod(connections, verbose=False)
    assert res.attempted >= 5 and res.failed == 0
