"""The report's outputs: every verdict counted (``inconclusive`` too), ``budget_stable`` shown,
wall-clock times kept out of tracked files, and the README's verdict section generated from the
committed report (a test fails when the two disagree)."""
import json
import re
from pathlib import Path

import pytest

import theory.__main__ as tm
import theory.registry as R
from theory.registry import Result

REPO = Path(__file__).resolve().parents[2]
GALLERY = REPO / "gallery"
COMMITTED = GALLERY / "theory_report.json"


def _rec(cid, verdict="holds", status="empirical", stable=None, observed=1.0, detail="ran 3 steps (2.5 s on cpu)"):
    return {"id": cid, "status": status, "verdict": verdict, "predicted": 1.0, "observed": observed,
            "tolerance": 0.1, "detail": detail, "seconds": 2.5, "budget_stable": stable}


RECORDS = [
    _rec("tms.a"),
    _rec("tms.sticky", "fails", observed={"near sticky": 0.209, "null": 0.05}, stable=True),
    _rec("sae.b", "inconclusive", stable=False),
    _rec("sae.c", "counterexample", status="conjecture", stable=True),
    _rec("linalg.d", "open", status="question"),
]


# ---------------------------------------------------------------------- counts and the stable column
def test_counts_include_inconclusive_and_stability():
    counts = tm.verdict_counts(RECORDS)
    # every verdict, but a published result's (reproduces/differs) only where a published claim ran
    assert list(counts) == [v for v in R.VERDICTS if v not in R.PUBLISHED_VERDICTS]
    assert counts["inconclusive"] == 1 and sum(counts.values()) == 5
    assert tm.stability_counts(RECORDS) == (2, 1)
    assert tm.summary(RECORDS) == ("1 holds, 1 fails, 1 open, 1 counterexample, 1 inconclusive; "
                                   "searching claims: 2 budget-stable, 1 not")
    with pytest.raises(ValueError, match="maybe"):
        tm.verdict_counts([_rec("x.y", "maybe")])


def test_markdown_counts_every_verdict_and_shows_budget_stable():
    text = tm.markdown(RECORDS)
    assert "1 inconclusive" in text and "2 budget-stable, 1 not" in text
    assert "| ID | status | verdict | stable |" in text
    rows = {line.split(" | ")[0][2:]: line.split(" | ") for line in text.splitlines() if line.startswith("| ") and "." in line.split(" | ")[0]}
    assert rows["tms.a"][3] == "" and rows["tms.sticky"][3] == "yes" and rows["sae.b"][3] == "no"
    assert "2.5 s" not in text  # no wall-clock time in the tracked report


def test_console_counts_inconclusive_and_shows_stable(monkeypatch, capsys):
    """The console summary used to count holds/fails/open/counterexample only: an inconclusive
    claim vanished from the totals."""
    claims = {"topic.flip": R.Claim("topic.flip", "empirical", "a claim whose verdict follows the seed", "none",
                                    lambda ctx: Result("holds" if ctx.seed == 0 else "fails", 1, 1, 0, "d"),
                                    "theory.topic", True),
              "topic.plain": R.Claim("topic.plain", "empirical", "a claim that does not search", "none",
                                     lambda ctx: Result("holds", 1, 1, 0, "d"), "theory.topic")}
    monkeypatch.setattr(tm, "load_all", lambda: claims)
    assert tm.main(["--budget", "tiny", "--device", "cpu"]) == 0
    out = capsys.readouterr().out
    assert "1 holds, 0 fails, 0 open, 0 counterexample, 1 inconclusive" in out
    assert "0 budget-stable, 1 not" in out
    flip = next(line for line in out.splitlines() if line.startswith("topic.flip"))
    assert flip.split()[2:4] == ["inconclusive", "no"]


def test_searches_flag_runs_only_the_searching_claims(monkeypatch, capsys):
    ran = []
    claims = {cid: R.Claim(cid, "empirical", "a claim for the selection test", "none",
                           lambda ctx, cid=cid: ran.append(cid) or Result("holds", 1, 1, 0, "d"), "theory.topic", s)
              for cid, s in (("topic.s", True), ("topic.p", False))}
    monkeypatch.setattr(tm, "load_all", lambda: claims)
    assert tm.main(["--budget", "tiny", "--device", "cpu", "--searches"]) == 0
    assert set(ran) == {"topic.s"}
    monkeypatch.setattr(tm, "load_all", lambda: {"topic.p": claims["topic.p"]})
    assert tm.main(["--budget", "tiny", "--device", "cpu", "--searches"]) == 2
    assert "among the searching claims" in capsys.readouterr().err


# ---------------------------------------------------------------------- deterministic JSON
def test_no_timings_json_is_deterministic(monkeypatch, tmp_path, capsys):
    """The JSON always carried wall-clock seconds and durations in the detail: a committed copy
    would change on every run. With --no-timings two runs write the same bytes."""
    import time

    def check(ctx):
        t0 = time.perf_counter()
        time.sleep(0.01)
        return Result("holds", 1.0, 1.0, 0.0, f"10 steps ({time.perf_counter() - t0:.3f} s on cpu)")

    monkeypatch.setattr(tm, "load_all", lambda: {"topic.t": R.Claim("topic.t", "empirical", "a timed fake claim",
                                                                    "none", check, "theory.topic")})
    texts = []
    for k in range(2):
        assert tm.main(["--budget", "tiny", "--device", "cpu", "--no-timings", "--json", str(tmp_path / f"{k}.json")]) == 0
        texts.append((tmp_path / f"{k}.json").read_text())
    assert texts[0] == texts[1]
    rep = json.loads(texts[0])
    assert rep["claims"][0]["seconds"] is None and rep["claims"][0]["detail"] == "10 steps (on cpu)"
    assert rep["counts"]["holds"] == 1 and rep["budget"] == "tiny" and rep["cpu_capability"]
    assert tm.main(["--budget", "tiny", "--device", "cpu", "--json", str(tmp_path / "t.json")]) == 0
    assert json.loads((tmp_path / "t.json").read_text())["claims"][0]["seconds"] > 0  # the default keeps them
    capsys.readouterr()


# ---------------------------------------------------------------------- the README section
REPORT = {"claims": RECORDS, "device": "cpu", "budget": "default"}


def test_readme_section_quotes_the_report_numbers():
    sec = tm.readme_section(REPORT)
    assert sec.startswith(tm.README_BEGIN) and sec.endswith(tm.README_END)
    assert "5 claims (default budget, cpu" in sec
    assert "**1 holds**" in sec and "**1 inconclusive**" in sec and "2 of them kept their verdict" in sec
    assert "0.209" in sec  # an observed number comes from the report, never from a hand
    assert "- **Toy models** — `a` (empirical): **holds**; `sticky` (empirical): **fails**" in sec
    for bad in ({"claims": []}, {}, [RECORDS]):
        with pytest.raises(ValueError, match="no 'claims'"):
            tm.readme_section(bad)


def test_readme_rewrites_only_between_the_markers(tmp_path, capsys):
    report = tmp_path / "r.json"
    report.write_text(json.dumps(REPORT))
    readme = tmp_path / "README.md"
    readme.write_text(f"# x\n\nbefore\n\n{tm.README_BEGIN}\nold text 0.16\n{tm.README_END}\n\nafter\n")
    assert tm.main(["--readme", str(readme), "--from", str(report)]) == 0
    text = readme.read_text()
    assert text.startswith("# x\n\nbefore\n\n") and text.endswith("\n\nafter\n")
    assert "0.16" not in text and "0.209" in text
    assert "rewritten" in capsys.readouterr().out
    assert tm.main(["--readme", str(readme), "--from", str(report)]) == 0
    assert "already up to date" in capsys.readouterr().out and readme.read_text() == text


@pytest.mark.parametrize("argv,message", [
    (["--from", "r.json"], "--from is only read by --readme"),
    (["--readme", "README.md", "--from", "r.json", "--json", "x.json"], "does not combine with --json"),
    (["--readme", "README.md", "--from", "missing.json"], "no such file"),
    (["--readme", "missing.md", "--from", "r.json"], "--readme missing.md: no such file"),
    (["--readme", "nomarkers.md", "--from", "r.json"], "exactly once"),
    (["--readme", "twice.md", "--from", "r.json"], "exactly once"),
    (["--readme", "README.md", "--from", "bad.json"], "not valid JSON"),
])
def test_readme_refuses_bad_input_with_one_line(tmp_path, monkeypatch, capsys, argv, message):
    monkeypatch.chdir(tmp_path)
    Path("r.json").write_text(json.dumps(REPORT))
    Path("bad.json").write_text("{")
    Path("README.md").write_text(f"{tm.README_BEGIN}\n{tm.README_END}\n")
    Path("nomarkers.md").write_text("# no markers\n")
    Path("twice.md").write_text(f"{tm.README_BEGIN}\n{tm.README_END}\n{tm.README_BEGIN}\n{tm.README_END}\n")
    before = Path("README.md").read_text()
    assert tm.main(argv) == 2
    err = capsys.readouterr().err.strip()
    assert err.startswith("python -m theory: error:") and message in err and "\n" not in err
    assert Path("README.md").read_text() == before


# ---------------------------------------------------------------------- the committed report
def _committed() -> dict:
    assert COMMITTED.is_file(), f"{COMMITTED} is missing: `make gallery` writes it"
    return json.loads(COMMITTED.read_text())


def test_readme_verdict_section_matches_the_committed_report():
    """The README's verdict section once quoted numbers typed by hand (the sticky dimensionality
    "0.16" where the report said 0.209); now it must be exactly what the committed report gives.
    Fix: `python -m theory --readme` (run by `make gallery`)."""
    readme = (REPO / "README.md").read_text()
    expected = tm.readme_section(_committed(), "gallery/theory_report.json")
    i, j = readme.find(tm.README_BEGIN), readme.find(tm.README_END)
    assert i >= 0 and j > i, "README.md lacks the generated verdict section's markers"
    assert readme[i:j + len(tm.README_END)] == expected, (
        "README.md's verdict section disagrees with gallery/theory_report.json: run `python -m theory --readme`")


def test_committed_reports_agree_and_hold_no_timings():
    """gallery/theory_report.md is the table of gallery/theory_report.json, and neither holds a
    wall-clock time (each run on any machine would otherwise change a tracked file)."""
    rep = _committed()
    assert set(rep) >= {"claims", "device", "budget", "counts"} and rep["device"] == "cpu"
    assert rep["counts"] == tm.verdict_counts(rep["claims"])
    for r in rep["claims"]:
        assert tuple(r) == R.RECORD_KEYS, r["id"]
        assert r["seconds"] is None and r["detail"] == tm.strip_timings(r["detail"]), r["id"]
    assert (GALLERY / "theory_report.md").read_text() == tm.markdown(rep["claims"], rep.get("on_request", []))


def test_committed_report_covers_the_registry():
    """A claim added, removed or renamed since the last `make gallery` shows here. The claims run
    on request (status published) are listed under "on_request" instead, unless the report ran them."""
    rep, registry = _committed(), R.load_all()
    ran = [r["id"] for r in rep["claims"]]
    listed = rep.get("on_request", [])
    assert ran == [i for i in registry if i in ran] and not set(ran) & set(listed)
    assert sorted(ran + listed) == sorted(registry), "the registry changed since the last `make gallery`: rerun it"
    assert all(R.runs_on_request(registry[i]) for i in listed)


def test_readme_verdict_section_quotes_no_number_outside_the_markers():
    """The hand-written prose around the generated section states rules, not observations: no
    decimal number in it (the claim count and every observed value are generated)."""
    readme = (REPO / "README.md").read_text()
    start = readme.index("## Theory: the verdicts")
    prose = readme[start:readme.index(tm.README_BEGIN)] + readme[readme.index(tm.README_END) + len(tm.README_END):readme.index("\n## ", start + 5)]
    assert re.findall(r"\d+\.\d+|\b\d{2,}\b", prose) == []


@pytest.mark.parametrize("text,stripped", [
    ("(2000 steps, 4.4 s on cpu)", "(2000 steps, on cpu)"),
    ("(4.4 s on cpu)", "(on cpu)"),  # was "( on cpu)"
    ("took 12 s; then 3.5 s", "took; then"),
    ("s = 3 s=4 (0.5 s, 2 s)", "s = 3 s=4 ()"),
])
def test_strip_timings(text, stripped):
    assert tm.strip_timings(text) == stripped
    assert tm.strip_timings(stripped) == stripped


def test_jobs_gives_the_same_records(tmp_path):
    """``python -m theory --jobs 2`` runs claims in spawned workers; each record is the same."""
    import json
    import subprocess
    import sys

    def run(*extra):
        out = tmp_path / f"r{len(extra)}.json"
        done = subprocess.run([sys.executable, "-m", "theory", "--only", "linalg", "--budget", "tiny", "--no-timings",
                               "--json", str(out), *extra], capture_output=True, text=True, timeout=300)
        assert done.returncode == 0, done.stderr[-2000:]
        return json.loads(out.read_text())["claims"]

    assert run() == run("--jobs", "2")


def test_wide_prints_predicted_and_observed_in_full(capsys):
    """The console table cuts values to 22 characters; --wide prints them whole (issue 22)."""
    from theory.__main__ import main

    assert main(["--only", "linalg.truth_like_directions", "--budget", "tiny"]) == 0
    narrow = capsys.readouterr().out
    assert main(["--only", "linalg.truth_like_directions", "--budget", "tiny", "--wide"]) == 0
    wide = capsys.readouterr().out
    full = '{"1": 2, "2": 4, "3": 8, "4": 16, "5": 32, "6": 64}'
    assert full in wide and full not in narrow
