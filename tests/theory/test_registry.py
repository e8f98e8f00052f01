"""The claim registry: discovery, the conformance of every registered claim, the verdict rules.

One conformance test covers every claim that any topic module registers, so adding a claim
needs no list here: its ID, statement, source and status are checked, and its check is run at
the tiny budget and must give a record with the report's keys and a verdict its status allows.
"""
import json

import pytest

import theory.registry as R
from theory.registry import (
    CLAIMS, RECORD_KEYS, VERDICTS_BY_STATUS, Context, Record, Result, allowed_verdicts, is_failure,
    load_all, run_claim, topics,
)

REGISTRY = load_all()

def test_topics_are_discovered_and_each_registers_a_claim():
    found = topics()
    assert "registry" not in found and "__main__" not in found
    assert {"natural_latents", "hessian", "erasure", "linalg", "metrics"} <= set(found)
    assert {c.topic for c in REGISTRY.values()} == set(found)
    assert len(REGISTRY) == len(CLAIMS)


def test_registry_is_grouped_by_topic():
    order = [c.topic for c in REGISTRY.values()]
    assert order == sorted(order, key=list(topics()).index)


@pytest.mark.parametrize("cid", list(REGISTRY))
def test_claim_metadata(cid):
    c = REGISTRY[cid]
    m = R.ID_PATTERN.match(cid)
    assert m and c.id == cid and m.group(1) == c.topic and c.topic in topics()
    assert c.module == f"theory.{c.topic}" or c.module.startswith(f"theory.{c.topic}."), c.module
    assert c.status in VERDICTS_BY_STATUS
    assert len(c.statement.split()) >= 5, "a statement in our own words, not a title"
    assert c.source.strip()


@pytest.mark.parametrize("cid", list(REGISTRY))
def test_claim_runs_at_tiny_budget(cid):
    c = REGISTRY[cid]
    rec = run_claim(c, Context(budget="tiny"))
    out = rec.as_json()
    assert tuple(out) == RECORD_KEYS
    json.dumps(out, allow_nan=False)  # the report is valid JSON
    assert out["id"] == cid and out["status"] == c.status
    assert "check raised" not in rec.detail, rec.detail
    assert rec.verdict in allowed_verdicts(c.status)
    assert not is_failure(rec), rec.detail  # a proven or exact claim must hold
    assert rec.detail.strip()


# ------------------------------------------------------------------------------------------
# the registry's own rules, each with the input that must be refused
# ------------------------------------------------------------------------------------------

@pytest.mark.parametrize("bad", ["noTopic", "topic.", "Topic.name", "a.b.c", "topic.na-me", ".name"])
def test_claim_rejects_malformed_ids(bad):
    with pytest.raises(ValueError, match="<topic>.<name>"):
        R.claim(bad, status="proven", statement="s", source="s")


def test_claim_rejects_bad_status_and_empty_text():
    with pytest.raises(ValueError, match="status"):
        R.claim("topic.name", status="likely", statement="s", source="s")
    with pytest.raises(ValueError, match="statement and source"):
        R.claim("topic.name", status="proven", statement=" ", source="s")
    with pytest.raises(ValueError, match="statement and source"):
        R.claim("topic.name", status="proven", statement="s", source="")


def test_claim_refuses_a_second_registration(monkeypatch):
    monkeypatch.setattr(R, "CLAIMS", {})
    R.claim("topic.name", status="proven", statement="s", source="s")(lambda ctx: None)
    with pytest.raises(ValueError, match="registered twice"):
        R.claim("topic.name", status="proven", statement="s", source="s")(lambda ctx: None)


def _fake(status, verdict=None, raises=False):
    def check(ctx):
        if raises:
            raise RuntimeError("boom")
        return Result(verdict, 1.0, 1.0, 0.0, "detail")

    return R.Claim("topic.fake", status, "a fake claim for the registry's tests", "none", check, "theory.topic")


def test_verdicts_by_status():
    assert allowed_verdicts("proven") == allowed_verdicts("exact") == ("holds", "fails", "inconclusive")
    assert allowed_verdicts("empirical") == ("holds", "fails", "inconclusive")
    assert allowed_verdicts("conjecture") == ("open", "counterexample", "inconclusive")
    assert allowed_verdicts("refuted") == ("counterexample", "fails", "inconclusive")
    assert allowed_verdicts("question") == ("open",)


def _searching(check):
    return R.Claim("topic.search", "empirical", "a searching fake claim", "none", check, "theory.topic", True)


def test_a_verdict_that_follows_the_seed_is_inconclusive():
    """The negative control of issue 19 item 3: a stuck search (its verdict set by the seed)
    is reported as inconclusive with both verdicts named, never as the first one."""
    flips = _searching(lambda ctx: Result("holds" if ctx.seed == 0 else "fails", 1.0, 1.0, 0.0, "d"))
    rec = run_claim(flips, Context(budget="tiny"))
    assert rec.verdict == "inconclusive" and rec.budget_stable is False
    assert "holds at seed 0" in rec.detail and "fails at seed" in rec.detail
    assert rec.as_json()["budget_stable"] is False and list(rec.as_json()) == list(R.RECORD_KEYS)


def test_a_stable_search_keeps_its_verdict_and_says_so():
    calls = []
    steady = _searching(lambda ctx: calls.append(ctx.seed) or Result("fails", 1.0, 2.0, 0.0, "d"))
    rec = run_claim(steady, Context(budget="tiny", seed=3))
    assert rec.verdict == "fails" and rec.budget_stable is True
    assert calls == [3, 3 + R.STABILITY_SEED_OFFSET]  # the second opinion ran on fresh seeds


def test_a_check_may_test_its_own_stability():
    own = _searching(lambda ctx: Result("holds", 1.0, 1.0, 0.0, "d", budget_stable=False))
    assert run_claim(own, Context(budget="tiny")).verdict == "inconclusive"
    plain = _fake("empirical", "holds")
    assert run_claim(plain, Context(budget="tiny")).budget_stable is None
    lying = R.Claim("topic.fake", "empirical", "s", "none",
                    lambda ctx: Result("holds", 1, 1, 0, "d", budget_stable=True), "theory.topic")
    assert run_claim(lying, Context(budget="tiny")).detail.startswith(R.ERROR_PREFIX)


@pytest.mark.parametrize("status,verdict", [("exact", "counterexample"), ("proven", "open"),
                                            ("empirical", "open"), ("conjecture", "holds"),
                                            ("conjecture", "fails"), ("refuted", "holds")])
def test_a_verdict_the_status_forbids_is_an_error(status, verdict):
    rec = run_claim(_fake(status, verdict), Context(budget="tiny"))
    assert rec.verdict == "fails" and "not allowed" in rec.detail
    assert is_failure(rec) and is_failure(rec.as_json())  # an error in the check trips the exit-1 rule


@pytest.mark.parametrize("status", list(VERDICTS_BY_STATUS))
def test_a_raising_check_is_recorded_not_hidden(status):
    rec = run_claim(_fake(status, raises=True), Context(budget="tiny"))
    assert rec.verdict == "fails" and "RuntimeError: boom" in rec.detail
    assert is_failure(rec)  # whatever the status: an error is not a verdict


@pytest.mark.parametrize("status,verdict,bad", [
    ("proven", "holds", False), ("proven", "fails", True), ("exact", "fails", True),
    ("exact", "counterexample", True), ("empirical", "fails", False), ("empirical", "holds", False),
    ("conjecture", "open", False), ("conjecture", "counterexample", False), ("conjecture", "fails", True),
    ("refuted", "counterexample", False), ("refuted", "open", True),
])
def test_exit_rule(status, verdict, bad):
    rec = Record("topic.x", status, verdict, None, None, None, "d")
    assert is_failure(rec) == bad
    assert is_failure(rec.as_json()) == bad


@pytest.mark.parametrize("status,verdict,code", [("exact", "holds", 0), ("exact", "counterexample", 1),
                                                 ("proven", "fails", 1), ("empirical", "fails", 0),
                                                 ("conjecture", "counterexample", 0), ("conjecture", "holds", 1)])
def test_report_exit_code(monkeypatch, capsys, status, verdict, code):
    """`python -m theory` exits 1 for a proven/exact claim not holding or a forbidden verdict."""
    import theory.__main__ as main_mod

    monkeypatch.setattr(main_mod, "load_all", lambda: {"topic.fake": _fake(status, verdict)})
    assert main_mod.main(["--budget", "tiny", "--device", "cpu"]) == code
    capsys.readouterr()


def test_a_verified_find_at_the_fresh_seed_decides():
    """A conjecture search that finds (and verifies exactly) a counterexample only at the second
    seed reports the counterexample, not 'inconclusive': a verified counterexample is one."""
    def check(ctx):
        if ctx.seed == 0:
            return Result("open", None, None, None, "nothing found")
        return Result("counterexample", None, [1], None, "verified exactly", budget_stable=True)

    found = R.Claim("topic.conj", "conjecture", "a searched conjecture", "none", check, "theory.topic", True)
    rec = run_claim(found, Context(budget="tiny"))
    assert rec.verdict == "counterexample" and rec.budget_stable is True
    assert "found at seed" in rec.detail and rec.observed == [1]
