"""The ``published`` status (a paper's result to reproduce) in the registry and the report.

Its verdicts are ``reproduces`` / ``differs``; its claims run on request (the plain
``python -m theory`` lists them, ``--only published`` or ``--all`` runs them); ``--budget paper``
gives a check its paper's settings (``Context.pick(..., paper=...)``); the README's
published-results table is generated from the report. Every claim here is a throwaway
registered in a test-local registry (``monkeypatch`` on ``CLAIMS`` / ``load_all``), so the
global registry is never touched.
"""
import json
from pathlib import Path

import pytest

import theory.__main__ as tm
import theory.registry as R
from theory.registry import Context, Record, Result, allowed_verdicts, is_failure, run_claim

REPO = Path(__file__).resolve().parents[2]


def _published(verdict="reproduces", ran=None, cid="published.fake", searches=False, observed=None):
    """A throwaway published claim whose check records the budget it ran at."""
    def check(ctx):
        if ran is not None:
            ran.append((cid, ctx.budget))
        return Result(verdict, {"mmcs": 1.0, "ml2r": 0.993},
                      observed if observed is not None else {"mmcs": 0.9991, "ml2r": 0.9874},
                      {"mmcs": ">= 0.99", "ml2r": "± 0.03"}, "3 seeds, 100 steps (1.5 s on cpu)")

    return R.Claim(cid, "published", "a throwaway published result to reproduce", "a paper, Table 1", check,
                   "theory.published", searches)


def _plain(ran=None, cid="topic.plain"):
    def check(ctx):
        if ran is not None:
            ran.append((cid, ctx.budget))
        return Result("holds", 1.0, 1.0, 0.0, "d")

    return R.Claim(cid, "empirical", "a throwaway empirical claim for the selection tests", "none", check,
                   "theory.topic")


@pytest.fixture
def registry(monkeypatch):
    """A test-local registry (a plain claim, two published ones) and the list of what ran."""
    ran: list = []
    claims = {"published.a": _published(ran=ran, cid="published.a"),
              "published.b": _published("differs", ran=ran, cid="published.b"),
              "topic.plain": _plain(ran)}
    monkeypatch.setattr(tm, "load_all", lambda: claims)
    return claims, ran


def _run(argv, tmp_path, capsys, code=0):
    out = tmp_path / "r.json"
    md = tmp_path / "r.md"
    assert tm.main(["--budget", "tiny", "--device", "cpu", "--json", str(out), "--markdown", str(md), *argv]) == code
    text = capsys.readouterr().out
    return json.loads(out.read_text()), md.read_text(), text


# ---------------------------------------------------------------------- status, verdicts, budget
def test_published_status_and_its_verdicts():
    assert "published" in R.STATUSES and "paper" in R.BUDGETS
    assert allowed_verdicts("published") == ("reproduces", "differs", "inconclusive")
    assert {"reproduces", "differs"} <= set(R.VERDICTS) and R.VERDICTS[-1] == "inconclusive"
    assert R.ON_REQUEST_STATUSES == ("published",)


def test_claim_registers_a_published_check(monkeypatch):
    monkeypatch.setattr(R, "CLAIMS", {})

    @R.claim("published.throwaway", status="published", statement="a paper's number, reproduced here or not",
             source="a paper, Table 1", searches=True)
    def check(ctx):
        return Result("reproduces", 1.0, 1.0, 0.01, "d")

    c = R.CLAIMS["published.throwaway"]
    assert c.status == "published" and c.searches and R.runs_on_request(c)
    assert not R.runs_on_request(_plain()) and R.runs_on_request({"status": "published"})
    rec = run_claim(c, Context(budget="tiny"))
    assert rec.verdict == "reproduces" and rec.budget_stable is True and not is_failure(rec)


@pytest.mark.parametrize("verdict,bad", [("reproduces", False), ("differs", False), ("inconclusive", False),
                                         ("holds", True), ("fails", True), ("open", True), ("counterexample", True)])
def test_exit_rule_for_published(verdict, bad):
    """A published result that differs is a finding, not an error (exit 0); a verdict of another
    status is refused."""
    rec = Record("published.x", "published", verdict, None, None, None, "d")
    assert is_failure(rec) == bad and is_failure(rec.as_json()) == bad


@pytest.mark.parametrize("verdict", ["holds", "fails", "open", "not run"])
def test_negative_control_a_published_check_returning_another_verdict_is_an_error(verdict):
    rec = run_claim(_published(verdict), Context(budget="tiny"))
    assert rec.verdict == "fails" and rec.detail.startswith(R.ERROR_PREFIX) and "not allowed" in rec.detail
    assert is_failure(rec)
    for status in ("empirical", "conjecture", "refuted", "question", "proven"):  # and theirs it may not borrow
        other = R.Claim("topic.x", status, "s", "s", lambda ctx: Result("reproduces", 1, 1, 0, "d"), "theory.topic")
        assert "not allowed" in run_claim(other, Context(budget="tiny")).detail


def test_not_run_is_no_verdict():
    with pytest.raises(ValueError, match="not run"):
        tm.verdict_counts([{"id": "published.a", "status": "published", "verdict": "not run"}])


def test_pick_paper():
    assert Context(budget="paper").pick(1, 2, 3, paper=4) == 4
    assert Context(budget="paper").pick(1, 2, 3) == 3  # not given: thorough
    assert Context(budget="paper").pick(1, 2, 3, paper=None) is None  # given, even as None
    for budget, want in (("tiny", 1), ("default", 2), ("thorough", 3)):
        assert Context(budget=budget).pick(1, 2, 3) == want
        assert Context(budget=budget).pick(1, 2, 3, paper=4) == want
        assert Context(budget=budget).pick(tiny=1, default=2, thorough=3, paper=4) == want
    with pytest.raises(KeyError):
        Context(budget="huge").pick(1, 2, 3, paper=4)


# ---------------------------------------------------------------------- selection
def test_default_run_lists_published_claims_on_request(registry, tmp_path, capsys):
    claims, ran = registry
    rep, md, out = _run([], tmp_path, capsys)
    assert ran == [("topic.plain", "tiny")]  # the published claims did not run
    assert [r["id"] for r in rep["claims"]] == ["topic.plain"]
    assert rep["on_request"] == ["published.a", "published.b"]
    for r in rep["claims"]:  # every record stays a record: no "not run" verdict
        assert tuple(r) == R.RECORD_KEYS and r["verdict"] in allowed_verdicts(r["status"])
    assert rep["counts"] == tm.verdict_counts(rep["claims"]) and "reproduces" not in rep["counts"]
    assert "## Run on request" in md and "| published.a | `python -m theory --only published` or `--all`" in md
    assert md == tm.markdown(rep["claims"], rep["on_request"])
    rows = [line for line in out.splitlines() if line.startswith("published.")]
    assert len(rows) == 2 and all("on request" in line and "--only published" in line for line in rows)
    assert "2 claims run on request, not run here (published.a, published.b)" in out


@pytest.mark.parametrize("argv,want", [
    (["--only", "published"], {"published.a", "published.b"}),
    (["--only", "pub"], {"published.a", "published.b"}),  # any prefix that matches them
    (["--only", "published.b"], {"published.b"}),
    (["--all"], {"published.a", "published.b", "topic.plain"}),
    (["--all", "--only", "topic"], {"topic.plain"}),
])
def test_only_and_all_run_published_claims(registry, tmp_path, capsys, argv, want):
    claims, ran = registry
    rep, md, out = _run(argv, tmp_path, capsys)
    assert {cid for cid, _ in ran} == want and rep["on_request"] == [] and "Run on request" not in md
    published = [r for r in rep["claims"] if r["status"] == "published"]
    if published:  # their verdicts are counted, and only then
        assert rep["counts"]["reproduces"] == sum(r["verdict"] == "reproduces" for r in published)
        assert rep["counts"]["differs"] == sum(r["verdict"] == "differs" for r in published)
        assert "reproduces" in tm.summary(rep["claims"])
    else:
        assert "reproduces" not in rep["counts"]


def test_searches_alone_does_not_run_published_claims(monkeypatch, tmp_path, capsys):
    ran: list = []
    claims = {"published.s": _published(ran=ran, cid="published.s", searches=True),
              "topic.s": R.Claim("topic.s", "empirical", "a searching throwaway claim", "none",
                                 lambda ctx: ran.append(("topic.s", ctx.budget)) or Result("holds", 1, 1, 0, "d"),
                                 "theory.topic", True)}
    monkeypatch.setattr(tm, "load_all", lambda: claims)
    rep, _, _ = _run(["--searches"], tmp_path, capsys)
    assert {c for c, _ in ran} == {"topic.s"} and rep["on_request"] == ["published.s"]


def test_budget_paper_reaches_the_check(registry, tmp_path, capsys):
    claims, ran = registry
    assert tm.main(["--budget", "paper", "--device", "cpu", "--only", "published.a"]) == 0
    capsys.readouterr()
    assert ran == [("published.a", "paper")]


def test_a_registry_of_published_claims_only_runs_nothing_by_default(monkeypatch, tmp_path, capsys):
    ran: list = []
    monkeypatch.setattr(tm, "load_all", lambda: {"published.a": _published(ran=ran, cid="published.a")})
    rep, md, _ = _run(["--jobs", "2"], tmp_path, capsys)
    assert ran == [] and rep["claims"] == [] and rep["on_request"] == ["published.a"]


def test_list_marks_claims_run_on_request(registry, capsys):
    assert tm.main(["--list"]) == 0
    lines = {line.split()[0]: line for line in capsys.readouterr().out.splitlines()}
    assert "(run on request)" in lines["published.a"] and "(run on request)" not in lines["topic.plain"]


def test_published_ids_and_status_agree():
    """`--only published` must select exactly the published claims: an ID under ``published.``
    has the status published, and a published claim lives there."""
    for cid, c in R.load_all().items():
        assert (c.status == "published") == cid.startswith("published."), cid


# ---------------------------------------------------------------------- the README's table
REPORT_RAN = {"budget": "default", "device": "cpu", "claims": [
    {"id": "tms.a", "status": "empirical", "verdict": "holds", "predicted": 1.0, "observed": 1.0, "tolerance": 0.1,
     "detail": "d", "seconds": None, "budget_stable": None},
    {"id": "published.spd_tms_5_2", "status": "published", "verdict": "reproduces",
     "predicted": {"mmcs": 1.0, "ml2r": 0.993}, "observed": {"mmcs": 0.99912, "ml2r": 0.98765},
     "tolerance": {"mmcs": ">= 0.99"}, "detail": "d", "seconds": None, "budget_stable": True},
    {"id": "published.spd_resid_mlp1", "status": "published", "verdict": "differs",
     "predicted": {"w_in_features_owned": 1.0, "w_out_live": 50},
     "observed": {"w_in_features_owned": 0.42, "w_out_live": 12, "neuron_contribution_corr": 0.5},
     "tolerance": None, "detail": "d", "seconds": None, "budget_stable": True},
]}
REPORT_NOT_RUN = {"budget": "default", "device": "cpu", "on_request": ["published.spd_tms_5_2"],
                  "claims": REPORT_RAN["claims"][:1]}


def test_published_table_quotes_the_paper_ours_and_the_verdict():
    sec = tm.published_section([(REPORT_RAN, "r.json")])
    assert sec.startswith(tm.PUBLISHED_BEGIN) and sec.endswith(tm.PUBLISHED_END)
    assert "| result | paper | ours | verdict |" in sec
    assert "| `published.spd_tms_5_2` | mmcs 1, ml2r 0.993 | mmcs 0.9991, ml2r 0.9877 | **reproduces** |" in sec
    assert "w_out_live 12" in sec and "neuron_contribution_corr 0.5" in sec and "**differs** |" in sec
    assert "2 published results ([`r.json`](r.json), default budget, cpu): **1 reproduces**, **1 differs**" in sec
    assert "tms.a" not in sec


def test_published_table_says_when_nothing_was_run():
    sec = tm.published_section([(REPORT_NOT_RUN, "gallery/theory_report.json")])
    assert "No published result was run" in sec and "`python -m theory --only published`" in sec
    assert "`published.spd_tms_5_2`" in sec and "|" not in sec
    # a second report holding the published records fills the table
    both = tm.published_section([(REPORT_NOT_RUN, "a.json"), ({**REPORT_RAN, "budget": "paper"}, "b.json")])
    assert "[`b.json`](b.json), paper budget" in both and "**reproduces** |" in both and "a.json" not in both


def test_verdict_section_names_the_claims_run_on_request():
    sec = tm.readme_section(REPORT_NOT_RUN, "r.json")
    assert "1 more claims run on request and are not in this report" in sec and "--only published" in sec
    assert "run on request" not in tm.readme_section(REPORT_RAN, "r.json")
    assert "**1 reproduces**" in tm.readme_section(REPORT_RAN, "r.json")


def test_readme_writes_both_sections_from_the_report(tmp_path, capsys):
    readme = tmp_path / "README.md"
    readme.write_text(f"# x\n\n{tm.README_BEGIN}\nold\n{tm.README_END}\n\nmiddle\n\n"
                      f"{tm.PUBLISHED_BEGIN}\nold 0.5\n{tm.PUBLISHED_END}\n\nafter\n")
    r1, r2 = tmp_path / "default.json", tmp_path / "published.json"
    r1.write_text(json.dumps(REPORT_NOT_RUN))
    r2.write_text(json.dumps(REPORT_RAN))
    assert tm.main(["--readme", str(readme), "--from", str(r1)]) == 0
    text = readme.read_text()
    assert "No published result was run" in text and "\nmiddle\n" in text and text.endswith("\nafter\n")
    assert "rewritten" in capsys.readouterr().out
    assert tm.main(["--readme", str(readme), "--from", str(r1), "--from", str(r2)]) == 0
    text = readme.read_text()
    assert "**reproduces** |" in text and "old 0.5" not in text
    assert text.count(tm.PUBLISHED_BEGIN) == text.count(tm.README_BEGIN) == 1
    # the verdict section comes from the first report only
    assert tm.readme_section(REPORT_NOT_RUN, r1.as_posix()) in text
    capsys.readouterr()


def test_readme_without_the_published_markers_keeps_working(tmp_path):
    readme = tmp_path / "README.md"
    readme.write_text(f"{tm.README_BEGIN}\n{tm.README_END}\n")
    report = tmp_path / "r.json"
    report.write_text(json.dumps(REPORT_RAN))
    assert tm.readme_from_report(readme, report)
    assert tm.PUBLISHED_BEGIN not in readme.read_text()
    readme.write_text(f"{tm.README_BEGIN}\n{tm.README_END}\n{tm.PUBLISHED_BEGIN}\n")  # half a section: refused
    with pytest.raises(ValueError, match="published-results marker exactly once"):
        tm.readme_from_report(readme, report)
    readme.write_text(f"{tm.README_BEGIN}\n{tm.README_END}\n{tm.PUBLISHED_END}\n{tm.PUBLISHED_BEGIN}\n")
    with pytest.raises(ValueError, match="end marker comes before"):
        tm.readme_from_report(readme, report)


def test_readme_refuses_all(capsys):
    assert tm.main(["--readme", "README.md", "--all"]) == 2
    assert "does not combine with --all" in capsys.readouterr().err


def test_a_default_report_round_trips_through_readme(registry, tmp_path, capsys):
    """The JSON of a default run (published claims on request) is what `--readme --from` reads."""
    rep, _, _ = _run([], tmp_path, capsys)
    readme = tmp_path / "README.md"
    readme.write_text(f"{tm.README_BEGIN}\n{tm.README_END}\n{tm.PUBLISHED_BEGIN}\n{tm.PUBLISHED_END}\n")
    assert tm.main(["--readme", str(readme), "--from", str(tmp_path / "r.json")]) == 0
    text = readme.read_text()
    assert "2 more claims run on request" in text and "`published.a`, `published.b`" in text
    capsys.readouterr()


def test_readme_published_section_matches_the_committed_reports(monkeypatch):
    """The README's published-results table is exactly what the committed report(s) give
    (`python -m theory --readme` rewrites it; `make gallery` runs that)."""
    monkeypatch.chdir(REPO)
    readme = (REPO / "README.md").read_text()
    reports = [(json.loads(Path(p).read_text()), Path(p).as_posix()) for p in tm.default_reports()]
    i, j = readme.find(tm.PUBLISHED_BEGIN), readme.find(tm.PUBLISHED_END)
    assert i >= 0 and j > i, "README.md lacks the generated published-results section's markers"
    assert readme[i:j + len(tm.PUBLISHED_END)] == tm.published_section(reports), (
        "README.md's published-results table disagrees with the committed report(s): run `python -m theory --readme`")
    assert readme == tm.readme_text(readme, reports)  # both generated sections, from the same reports
