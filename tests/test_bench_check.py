"""The comparison logic of ``benchmarks/check.py`` (``make bench-check``): floors parsing,
result-line parsing, pass / fail / skipped verdicts and the exit code. No timing here: the
benchmark results are written by hand."""
from __future__ import annotations

import importlib.util
import json
import math
import sys
from pathlib import Path

import pytest

BENCH_DIR = Path(__file__).resolve().parents[1] / "benchmarks"


def _load(name: str):
    spec = importlib.util.spec_from_file_location(f"_bench_{name}", BENCH_DIR / f"{name}.py")
    mod = importlib.util.module_from_spec(spec)
    sys.modules[spec.name] = mod  # dataclasses look their module up while the class is built
    spec.loader.exec_module(mod)
    return mod


check = _load("check")

FLOORS = """
[tms_intro]
min = 3.0
what = "intro"
[geometry]
min = 2
[sae_topk]
min = 2.0
[sae_relu]
min = 1.0
[data_thread_auto_vs_off]
min = 0.95
[saelens_mcc]
min = 0.0
[sweep_overhead_s]
max = 0.5
"""


def e2e(key: str, name: str, ref: float, off: float, auto: float) -> dict:
    return {"section": "end-to-end", key: name, "reference_s": ref, "off_s": off, "auto_s": auto, "on_s": auto}


def line(bench: str, rows: list[dict], **extra) -> str:
    return json.dumps({"bench": bench, "rows": rows, **extra})


def verdicts_of(bench_name: str, output: str, rc: int = 0) -> dict[str, "check.Verdict"]:
    bench = next(b for b in check.BENCHES if b.name == bench_name)
    results = check.result_lines(output)
    return {v.label: v for v in check.judge(check.bench_measures(bench, results, rc, output), check.parse_floors(FLOORS))}


# ---------------------------------------------------------------------- floors
def test_the_shipped_floors_file_parses_and_covers_exactly_the_checked_numbers():
    floors = check.load_floors(check.DEFAULT_FLOORS)
    check.check_coverage(floors, check.BENCHES)
    assert floors["tms_intro"].min == 3.0 and floors["geometry"].min == 2.0
    assert floors["sae_topk"].min == 2.0 and floors["sae_relu"].min == 1.0
    assert 0.9 <= floors["data_thread_auto_vs_off"].min < 1.0  # 1 less a stated noise margin
    assert floors["saelens_mcc"].min == 0.0 and floors["sweep_overhead_s"].max == 0.5
    assert all(f.what for f in floors.values())


def test_floors_parse_min_and_max_bounds():
    floors = check.parse_floors(FLOORS)
    assert floors["geometry"].min == 2 and floors["geometry"].max is None
    assert floors["tms_intro"].what == "intro"
    assert floors["sweep_overhead_s"].holds(0.5) and not floors["sweep_overhead_s"].holds(0.51)
    assert floors["tms_intro"].holds(3.0) and not floors["tms_intro"].holds(2.99)
    assert not floors["tms_intro"].holds(math.nan) and not floors["sweep_overhead_s"].holds(math.nan)
    assert not floors["tms_intro"].holds(math.inf)  # a zero-second run is not a speed-up
    assert floors["tms_intro"].bound() == ">= 3" and floors["sweep_overhead_s"].bound() == "<= 0.5"


@pytest.mark.parametrize("text,match", [
    ("[a]\nwhat = 'x'", "exactly one of min and max"),
    ("[a]\nmin = 1\nmax = 2", "exactly one of min and max"),
    ("[a]\nmin = 'three'", "finite number"),
    ("[a]\nmin = true", "finite number"),
    ("[a]\nmin = nan", "finite number"),
    ("[a]\nminimum = 1", "unknown field"),
    ("a = 1", "must be a table"),
    ("[a\nmin = 1", "not valid TOML"),
    ("", "no floors"),
])
def test_bad_floors_are_refused_naming_what_is_wrong(text, match):
    with pytest.raises(ValueError, match=match):
        check.parse_floors(text, "floors.toml")


def test_a_floor_no_benchmark_checks_or_a_missing_floor_is_refused():
    floors = check.parse_floors(FLOORS + "\n[tms_intr]\nmin = 3\n")  # a typo would never be checked
    with pytest.raises(ValueError, match="tms_intr"):
        check.check_coverage(floors, check.BENCHES)
    floors = check.parse_floors(FLOORS.replace("[geometry]\nmin = 2\n", ""))
    with pytest.raises(ValueError, match="no floor for .*geometry"):
        check.check_coverage(floors, check.BENCHES)


def test_a_missing_floors_file_is_one_clear_error(tmp_path, capsys):
    assert check.main(["--floors", str(tmp_path / "none.toml"), "--results", str(tmp_path / "r.jsonl")]) == 2
    assert "cannot read the floors file" in capsys.readouterr().err


# ---------------------------------------------------------------------- result lines
def test_result_lines_are_parsed_and_tables_ignored():
    out = "| a | b |\n" + line("sweep", [{"measure": "overhead_per_job_s", "value": 0.1}]) + "\nload 1.0\n"
    (res,) = check.result_lines(out)
    assert res["bench"] == "sweep" and res["rows"][0]["value"] == 0.1


@pytest.mark.parametrize("bad", ['{"bench": "tms", "rows": [', '{"bench": "tms"}', '{"bench": 3, "rows": []}'])
def test_a_malformed_result_line_is_refused(bad):
    with pytest.raises(ValueError, match="line 2"):
        check.result_lines("table\n" + bad)


def test_common_emit_prints_what_the_check_parses(capsys):
    common = _load("_common")
    assert common.RESULT_PREFIX == check.RESULT_PREFIX
    common.emit("sweep", [{"measure": "overhead_per_job_s", "value": 0.2}], load_average=[0.1, 0.2])
    (res,) = check.result_lines(capsys.readouterr().out)
    assert res == {"bench": "sweep", "rows": [{"measure": "overhead_per_job_s", "value": 0.2}], "load_average": [0.1, 0.2]}


# ---------------------------------------------------------------------- verdicts
def test_tms_speedups_and_auto_vs_off_pass_and_fail_against_their_floors():
    out = line("tms", [
        {"section": "throughput", "ours_s": 1.0},  # rows of other sections are not checked
        e2e("case", "intro", ref=3.3, off=1.0, auto=1.0),      # 3.3x, auto = off
        e2e("case", "geometry", ref=3.0, off=1.0, auto=2.0),   # 1.5x < 2; auto 2x slower than off
    ])
    v = verdicts_of("tms", out)
    assert v["tms intro: speed-up"].status == "pass" and v["tms intro: speed-up"].value == "3.3"
    assert v["tms intro: auto vs off"].status == "pass"
    assert v["tms geometry: speed-up"].status == "fail" and "geometry" in v["tms geometry: speed-up"].reason
    assert v["tms geometry: auto vs off"].status == "fail"


def test_auto_vs_off_inside_the_noise_margin_passes():
    v = verdicts_of("sae", line("sae", [e2e("arch", "topk", 4.0, off=1.0, auto=1.04), e2e("arch", "relu", 4.0, off=1.0, auto=1.06)]))
    assert v["sae topk: auto vs off"].status == "pass"  # 0.96 >= 0.95
    assert v["sae relu: auto vs off"].status == "fail"  # 0.94 < 0.95


def test_sae_rows_map_to_their_architecture_floors():
    v = verdicts_of("sae", line("sae", [
        {"section": "step", "arch": "relu", "ours_ms": 1.0},
        e2e("arch", "topk", ref=3.0, off=1.6, auto=1.6),   # 1.875x < 2
        e2e("arch", "relu", ref=3.0, off=2.9, auto=2.9),   # 1.03x >= 1
    ]))
    assert v["sae topk: speed-up"].status == "fail" and v["sae relu: speed-up"].status == "pass"


def test_a_row_without_a_floor_fails_rather_than_passing_unchecked():
    v = verdicts_of("sae", line("sae", [e2e("arch", "topk", 4, 1, 1), e2e("arch", "relu", 4, 1, 1),
                                        e2e("arch", "batchtopk", 4, 1, 1)]))
    assert v["sae batchtopk: speed-up"].status == "fail" and "no floor [sae_batchtopk]" in v["sae batchtopk: speed-up"].reason


def test_a_benchmark_that_gives_no_number_for_one_of_its_floors_fails():
    v = verdicts_of("tms", line("tms", [e2e("case", "intro", 4, 1, 1)]))  # geometry missing
    assert v["tms: geometry"].status == "fail" and "no number" in v["tms: geometry"].reason


@pytest.mark.parametrize("bad", [0.0, -1.0, None, "1.0", True])
def test_unusable_seconds_break_the_benchmark_rather_than_divide(bad):
    v = verdicts_of("tms", line("tms", [e2e("case", "intro", 4, 1, bad), e2e("case", "geometry", 4, 1, 1)]))
    assert {x.status for x in v.values()} == {"fail"}
    assert all("auto_s" in x.reason for x in v.values())


def test_a_crashed_benchmark_fails_every_floor_it_answers_to():
    v = verdicts_of("sweep", "Traceback ...\nRuntimeError: boom\n", rc=1)
    (only,) = v.values()
    assert only.status == "fail" and "exited 1" in only.reason and "boom" in only.reason


def test_a_required_benchmark_without_a_result_line_fails():
    (only,) = verdicts_of("sweep", "| measure | value |\n").values()
    assert only.status == "fail" and "printed no" in only.reason


def test_saelens_missing_is_skipped_not_passed_and_exits_0():
    msg = "bench_saelens: skipped, sae_lens is not importable (No module named 'sae_lens')"
    (only,) = verdicts_of("saelens", msg + "\n").values()
    assert only.status == "skipped" and "not importable" in only.reason
    assert check.exit_code([only]) == 0


def test_saelens_mcc_compares_ours_with_theirs_per_row():
    v = verdicts_of("saelens", line("saelens", [
        {"arch": "topk", "mcc_saelens": 0.90, "mcc_ours": 0.93, "seconds_saelens": 10.0, "seconds_ours": 2.0},
        {"arch": "relu", "mcc_saelens": 0.80, "mcc_ours": 0.79, "seconds_saelens": 10.0, "seconds_ours": 2.0},
        {"arch": "batchtopk", "mcc_saelens": 0.80, "mcc_ours": 0.80, "seconds_saelens": 1.0, "seconds_ours": 1.0},
    ]))
    assert v["saelens topk: MCC ours - SAELens"].status == "pass"
    assert v["saelens relu: MCC ours - SAELens"].status == "fail"
    assert v["saelens batchtopk: MCC ours - SAELens"].status == "pass"  # equal is ours >= theirs


def test_sweep_overhead_is_a_ceiling():
    ok = verdicts_of("sweep", line("sweep", [{"measure": "overhead_per_job_s", "value": 0.02, "jobs": 32},
                                             {"measure": "one_worker_s", "value": 50.0}]))
    bad = verdicts_of("sweep", line("sweep", [{"measure": "overhead_per_job_s", "value": 0.7, "jobs": 32}]))
    assert [x.status for x in ok.values()] == ["pass"] and [x.status for x in bad.values()] == ["fail"]


def test_report_has_one_fail_line_per_failure_and_the_exit_code_follows():
    verdicts = [check.Verdict("a", "pass", "3.1", ">= 3"), check.Verdict("b", "fail", "1.5", ">= 2", "slow"),
                check.Verdict("c", "skipped", "-", ">= 0", "no sae_lens"), check.Verdict("d", "fail", "-", ">= 1", "crashed")]
    text = check.report(verdicts)
    fails = [ln for ln in text.splitlines() if ln.startswith("bench-check: FAIL")]
    assert fails == ["bench-check: FAIL b: 1.5 (floor >= 2): slow", "bench-check: FAIL d: - (floor >= 1): crashed"]
    assert check.exit_code(verdicts) == 1 and check.exit_code(verdicts[:1] + verdicts[2:3]) == 0


def test_main_checks_a_saved_results_file(tmp_path, capsys):
    results = tmp_path / "results.jsonl"
    results.write_text("\n".join([
        line("tms", [e2e("case", "intro", 3.5, 1.0, 1.0), e2e("case", "geometry", 2.5, 1.0, 1.0)]),
        line("sae", [e2e("arch", "topk", 3.0, 1.0, 1.0), e2e("arch", "relu", 3.0, 1.0, 1.0)]),
        line("sweep", [{"measure": "overhead_per_job_s", "value": 0.02, "jobs": 32}]),
    ]) + "\n")
    assert check.main(["--results", str(results)]) == 0  # saelens absent from the file: skipped
    out = capsys.readouterr().out
    assert "skipped" in out and "FAIL" not in out
    results.write_text(results.read_text().replace('"reference_s": 3.5', '"reference_s": 2.5'))
    assert check.main(["--results", str(results)]) == 1
    assert "bench-check: FAIL tms intro: speed-up: 2.5" in capsys.readouterr().out


def test_every_checked_benchmark_exists_and_has_an_extractor():
    for bench in check.BENCHES:
        assert (BENCH_DIR / bench.script).is_file(), bench.script
        assert bench.name in check.EXTRACTORS and bench.floors and bench.quick_args
