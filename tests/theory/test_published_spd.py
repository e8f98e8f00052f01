"""The published SPD checks (theory/published.py): the metrics on hand-built decompositions,
the paper's settings, and each claim at the tiny budget (record keys are public)."""
import numpy as np
import pytest
import torch

from theory import published as P
from theory.registry import Context
from toymodels.models import ReLUOutput, TMSConfig
from toymodels.research.spd import SPDConfig, SPDModel, TiedTarget

TINY = Context(budget="tiny")


def _pentagon(inst=1):
    tms = ReLUOutput(TMSConfig(5, 2, n_instances=inst))
    ang = torch.arange(5) * 2 * torch.pi / 5
    with torch.no_grad():
        tms.W_IMN[:] = torch.stack([ang.cos(), ang.sin()])
        tms.b_IN.fill_(-0.3)
    return tms


def _exact(tms, scale=1.0):
    spd = SPDModel(tms, SPDConfig(n_components=5))
    W = tms.W_IMN.detach()[0]
    with torch.no_grad():
        spd.U["W"][0] = scale * W.T
        spd.V["W"][0] = torch.eye(5)
    return spd


def test_mmcs_ml2r_exact_and_shrunk():
    tms = _pentagon()
    mm, ml = P.mmcs_ml2r(_exact(tms), tms.W_IMN)
    assert mm[0] == pytest.approx(1.0, abs=1e-6) and ml[0] == pytest.approx(1.0, abs=1e-6)
    mm, ml = P.mmcs_ml2r(_exact(tms, 0.5), tms.W_IMN)
    assert mm[0] == pytest.approx(1.0, abs=1e-6) and ml[0] == pytest.approx(0.5, abs=1e-6)


def test_mmcs_detects_a_merged_feature():
    # negative control: features 0 and 2 share one subcomponent along their mean direction
    tms = _pentagon()
    spd = _exact(tms)
    W = tms.W_IMN.detach()[0]
    with torch.no_grad():
        spd.U["W"][0, 0] = (W[:, 0] + W[:, 2]) / 2
        spd.V["W"][0, 0] = torch.tensor([1.0, 0, 1.0, 0, 0])
        spd.U["W"][0, 2] = 0.0
    mm, ml = P.mmcs_ml2r(spd, tms.W_IMN)
    assert mm[0] < P.MMCS_MIN and ml[0] < 1 - P.ML2R_TOL


def test_paper_settings_are_the_papers():
    s = P.PAPER_TMS["5_2"]
    assert (s["C"], s["steps"], s["batch_size"], s["lr"], s["importance"], s["p"]) == (20, 40_000, 4096, 1e-3, 3e-3, 1.0)
    s = P.PAPER_TMS["40_10_id"]
    assert (s["C"], s["importance"], s["p"]) == (200, 1e-4, 2.0)
    r = P.PAPER_RESID
    assert (r["C"], r["steps"], r["batch_size"], r["lr"], r["importance"], r["p"]) == (100, 30_000, 2048, 2e-3, 1e-5, 2.0)
    paper = Context(budget="paper") if "paper" in __import__("theory.registry", fromlist=["BUDGETS"]).BUDGETS else None
    if paper is not None:
        assert P._settings(paper, "5_2") == P.PAPER_TMS["5_2"]
    assert P._settings(TINY, "5_2")["steps"] < 100


def test_identity_row_decomposes_three_matrices():
    t = TiedTarget(_pentagon(), identity=True)
    assert tuple(t.spd_weights()) == ("W", "ID", "W_T")


@pytest.mark.parametrize("row", ["spd_tms_5_2", "spd_tms_5_2_id", "spd_tms_40_10", "spd_tms_40_10_id"])
def test_tms_claims_tiny(row):
    r = getattr(P, f"check_{row}")(TINY)
    assert r.verdict in ("reproduces", "differs")
    assert set(r.observed) == {"mmcs", "ml2r"} and all(isinstance(v, float) for v in r.observed.values())
    assert set(r.predicted) == {"mmcs", "ml2r"}
    assert -1.0 <= r.observed["mmcs"] <= 1.0 and np.isfinite(r.observed["ml2r"])


def test_tms_predictions_are_table_1():
    assert P.check_spd_tms_40_10  # registered
    want = {"5_2": (1.0, 0.993), "40_10": (1.0, 1.010), "5_2_id": (1.0, 0.992), "40_10_id": (1.0, 1.031)}
    assert {k: v["paper"] for k, v in P.TMS_ROWS.items()} == want


def test_resid_claim_tiny():
    r = P.check_spd_resid_mlp1(TINY)
    assert r.verdict in ("reproduces", "differs")
    assert set(r.observed) == {"w_in_features_owned", "w_out_live", "neuron_contribution_corr"}
    assert 0.0 <= r.observed["w_in_features_owned"] <= 1.0


def test_registered_ids():
    from theory.registry import CLAIMS

    for cid in ("published.spd_tms_5_2", "published.spd_tms_40_10", "published.spd_tms_5_2_id",
                "published.spd_tms_40_10_id", "published.spd_resid_mlp1"):
        assert CLAIMS[cid].status == "published"


def test_tms_components_uses_the_published_settings():
    # spd.tms_components runs published.spd_tms_5_2's machinery and settings, one seed (issue 21)
    from theory import spd as S

    for budget in ("tiny", "default"):
        ctx = Context(budget=budget)
        cfg, tr = S.tms_spd_config(ctx)
        want_cfg, want_tr = P.tms_spd_configs(P._settings(ctx, "5_2"), seed=ctx.seed)
        assert cfg == want_cfg and tr == want_tr
    d = P._settings(Context(budget="default"), "5_2")
    assert d["seeds"] == 3 and (d["C"], d["lr"], d["steps"], d["batch_size"]) == (20, 1e-2, 3000, 1024)
    assert P._settings(TINY, "5_2")["seeds"] == 1


def test_a_failing_row_says_why():
    # the detail of a differing TMS row names the merged or unconverged seeds and the code path
    r = P.check_spd_tms_5_2(TINY)
    if r.verdict == "differs":
        assert "Code path followed" in r.detail and "seed(s)" in r.detail
