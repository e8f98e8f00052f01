"""Issue 8 from the command line: one line and the right exit code for divergence, unusable
output paths, damaged run folders, memory and silent drops; non-convergence reported; the
toy model's own p for `sae --data tms`; TopK's default k against a small dictionary; theory
and figure outputs that are deterministic and checked before any work."""
import json
import os

import pytest

from toymodels.cli import main

TMS = ["tms", "--steps", "20", "--batch-size", "64", "--quiet", "--checkpoint-every", "0", "--device", "cpu"]
SAE = ["sae", "--n-features", "12", "--d-model", "6", "--dict-size", "16", "--steps", "4", "--batch-size", "32",
       "--eval-samples", "128", "--quiet", "--checkpoint-every", "0", "--device", "cpu"]


def one_line_error(capsys, prog="toymodels"):
    err = capsys.readouterr().err.strip()
    assert err.startswith(f"{prog}") and "error:" in err and "\n" not in err and "Traceback" not in err, err
    return err


# ---------------------------------------------------------------------- 8: divergence
def test_divergence_is_one_line_with_step_instances_and_checkpoint(tmp_path, capsys):
    out = tmp_path / "run"
    rc = main(["tms", "--steps", "60", "--lr", "1e30", "--batch-size", "64", "--checkpoint-every", "20", "--quiet",
               "--device", "cpu", "--out", str(out)])
    err = one_line_error(capsys)
    assert rc == 1 and "diverged" in err and "step" in err and "instance(s) [0]" in err and "checkpoint" in err


@pytest.mark.parametrize("cmd", [TMS, SAE])
def test_huge_learning_rate_is_reported_as_not_converged(tmp_path, capsys, cmd):
    out = tmp_path / "run"
    assert main([*cmd, "--lr", "1e6", "--steps", "60", "--out", str(out)]) == 0
    err = capsys.readouterr().err
    assert "did not converge" in err
    m = json.loads((out / "metrics.json").read_text())
    assert m["converged"] == [False] and m["non_converged_instances"] == [0]


def test_a_normal_run_converges(tmp_path):
    out = tmp_path / "run"
    assert main([*TMS, "--steps", "200", "--lr", "0.01", "--out", str(out)]) == 0
    assert json.loads((out / "metrics.json").read_text())["converged"] == [True]


# ---------------------------------------------------------------------- 9: output paths and damaged files
def _file(tmp_path):
    f = tmp_path / "a_file"
    f.write_text("x")
    return f


@pytest.mark.parametrize("cmd", [TMS, SAE])
@pytest.mark.parametrize("where, message", [("file", "is a file"), ("through", "which is a file"), ("empty", "empty")])
def test_unusable_out_is_refused_before_work(tmp_path, capsys, cmd, where, message):
    f = _file(tmp_path)
    out = {"file": str(f), "through": str(f / "run"), "empty": ""}[where]
    assert main([*cmd, "--out", out]) == 2
    assert message in one_line_error(capsys)
    assert f.read_text() == "x" and not (tmp_path / "metrics.json").exists()


@pytest.mark.skipif(os.geteuid() == 0, reason="root writes into read-only folders")
def test_read_only_out_is_refused(tmp_path, capsys):
    ro = tmp_path / "ro"
    ro.mkdir()
    ro.chmod(0o500)
    try:
        assert main([*TMS, "--out", str(ro / "run")]) == 2
        assert "not writable" in one_line_error(capsys)
    finally:
        ro.chmod(0o700)


@pytest.mark.parametrize("name, content", [("config.json", "{garbage"), ("model.safetensors", "junk")])
def test_damaged_tms_run_is_one_line_naming_the_file(tmp_path, capsys, name, content):
    tms = tmp_path / "tms"
    assert main([*TMS, "--n-features", "6", "--d-hidden", "3", "--out", str(tms)]) == 0
    (tms / name).write_text(content)
    capsys.readouterr()
    assert main(["sae", "--data", "tms", "--tms-run", str(tms), "--steps", "2", "--quiet",
                 "--out", str(tmp_path / "sae")]) == 2
    assert name in one_line_error(capsys)


def test_resume_without_a_checkpoint_says_so_and_creates_nothing(tmp_path, capsys):
    out = tmp_path / "run"
    assert main([*TMS, "--resume", "--out", str(out)]) == 2
    assert "no checkpoint" in one_line_error(capsys)
    assert not out.exists()


def test_a_finished_run_is_not_overwritten_without_overwrite(tmp_path, capsys):
    out = tmp_path / "run"
    assert main([*TMS, "--out", str(out)]) == 0
    before = (out / "model.safetensors").read_bytes()
    assert main([*TMS, "--lr", "0.01", "--out", str(out)]) == 2
    assert "--overwrite" in one_line_error(capsys)
    assert (out / "model.safetensors").read_bytes() == before
    assert main([*TMS, "--lr", "0.01", "--out", str(out), "--overwrite"]) == 0
    assert json.loads((out / "config.json").read_text())["train"]["lr"] == 0.01


@pytest.mark.parametrize("cmd", [TMS, SAE])
def test_a_batch_that_cannot_fit_is_one_line_naming_the_flag(tmp_path, capsys, cmd):
    assert main([*cmd, "--batch-size", "1000000000", "--out", str(tmp_path / "run")]) == 2
    assert "batch" in one_line_error(capsys)


# ---------------------------------------------------------------------- 12: silent drops
@pytest.mark.parametrize(
    "argv, message",
    [
        ([*TMS, "--feature-probability", "0.1", "0.5", "--instances", "1"], "--instances is 1"),
        ([*SAE, "--l1-coefficient", "0.01", "0.1"], "--instances is 1"),
        ([*SAE, "--arch", "topk", "--k", "2", "4"], "--instances is 1"),
        ([*SAE, "--data", "features", "--n-components", "0"], "n_components"),
        ([*SAE, "--data", "unit-cube", "--feature-probability", "2"], "feature_probability"),
        ([*SAE, "--data", "features", "--tms-instance", "-1"], "tms_instance"),
        ([*SAE, "--data", "gaussian-mixture", "--n-features", "0"], "n_features"),
        ([*TMS, "--threads", "0"], "threads"),
        ([*TMS, "--threads", "many"], "threads"),
    ],
)
def test_values_that_would_be_dropped_or_unused_are_refused(tmp_path, capsys, argv, message):
    out = tmp_path / "run"
    assert main([*argv, "--out", str(out)]) == 2
    assert message in one_line_error(capsys)
    assert not out.exists()


def test_flags_the_data_does_not_use_get_a_note(tmp_path, capsys):
    assert main([*SAE, "--data", "features", "--n-components", "5", "--out", str(tmp_path / "r")]) == 0
    assert "--n-components does not apply to --data features" in capsys.readouterr().err


# ---------------------------------------------------------------------- 13: the toy model's own p
@pytest.mark.parametrize("best_of", ["1", "2"])
def test_sae_on_a_tms_run_uses_the_runs_p_for_the_chosen_instance(tmp_path, capsys, best_of):
    tms = tmp_path / "tms"
    assert main([*TMS, "--n-features", "6", "--d-hidden", "3", "--instances", "2", "--feature-probability", "0.01",
                 "0.3", "--best-of", best_of, "--out", str(tms)]) == 0
    capsys.readouterr()
    out = tmp_path / "sae"
    assert main(["sae", "--data", "tms", "--tms-run", str(tms), "--tms-instance", "1", "--dict-size", "8",
                 "--steps", "3", "--batch-size", "32", "--eval-samples", "128", "--quiet", "--checkpoint-every", "0",
                 "--out", str(out)]) == 0
    printed = capsys.readouterr().out
    assert "p = 0.3" in printed and "instance 1" in printed
    m = json.loads((out / "metrics.json").read_text())
    assert m["feature_probability"] == pytest.approx(0.3) and m["tms_instance"] == 1
    spec = json.loads((out / "config.json").read_text())["data"]
    assert json.dumps(spec).count("0.3") >= 1


# ---------------------------------------------------------------------- 14: TopK k >= dict_size
@pytest.mark.parametrize("arch", ["topk", "batchtopk"])
def test_default_k_that_keeps_every_latent_is_refused(tmp_path, capsys, arch):
    out = tmp_path / "run"
    assert main(["sae", "--arch", arch, "--d-model", "2", "--n-features", "4", "--steps", "2", "--quiet",
                 "--out", str(out)]) == 2  # D = 2 -> F = 8 = the default k
    err = one_line_error(capsys)
    assert "--k" in err and "8" in err and not out.exists()


# ---------------------------------------------------------------------- 15 and 17: theory and figures
def test_theory_refuses_unwritable_outputs_before_running_any_claim(tmp_path, capsys):
    from theory.__main__ import main as theory_main

    f = _file(tmp_path)
    assert theory_main(["--only", "linalg.layernorm", "--budget", "tiny", "--json", str(f / "r.json")]) == 2
    assert "which is a file" in one_line_error(capsys, "python -m theory")
    assert theory_main(["--only", "linalg.layernorm", "--budget", "tiny", "--markdown", str(tmp_path)]) == 2
    assert "is a folder" in one_line_error(capsys, "python -m theory")


def test_theory_prints_the_full_reason_of_rows_that_do_not_hold(monkeypatch, capsys):
    import theory.__main__ as tm

    long = "observed value " * 10
    record = {"id": "x.claim", "status": "empirical", "verdict": "fails", "predicted": "p" * 80, "observed": long,
              "tolerance": 0.1, "detail": "the reason, in full " * 5, "seconds": 1.23}

    class Rec:
        def as_json(self):
            return dict(record)

    monkeypatch.setattr(tm, "load_all", lambda: {"x.claim": object()})
    monkeypatch.setattr(tm, "run_claim", lambda claim, ctx: Rec())
    monkeypatch.setattr(tm, "is_failure", lambda r: False, raising=False)
    assert tm.main(["--device", "cpu"]) == 0
    printed = capsys.readouterr().out
    assert "p" * 80 in printed and long.strip() in printed and ("the reason, in full " * 5).strip() in printed


def test_theory_markdown_has_no_wall_clock_times():
    from theory.__main__ import markdown

    rec = {"id": "a", "status": "empirical", "verdict": "holds", "predicted": 1.0, "observed": 1.0, "tolerance": 0.1,
           "detail": "L1 sweep as 4 instances of one run (2000 steps, 4.4 s on cpu); 4.7 s gated, 3.5 s rescaled",
           "seconds": 9.9}
    text = markdown([rec])
    assert " s on cpu" not in text and "4.4" not in text and "3.5" not in text and "2000 steps" in text


def test_full_and_tiny_figures_do_not_write_over_the_gallery():
    from figures.common import OUT, default_out

    assert default_out("quick") == OUT
    assert default_out("full") != OUT and default_out("tiny") != OUT and default_out("full").parent == OUT


def test_figures_report_progress_and_keep_timings_out_of_tracked_files(tmp_path, capsys):
    from figures.__main__ import main as figures_main

    out = tmp_path / "figs"
    assert figures_main(["--preset", "tiny", "--only", "fig15", "--device", "cpu", "--out", str(out)]) == 0
    printed = capsys.readouterr().out
    assert "running" in printed and "[1/1]" in printed
    timings = json.loads((out / "timings.json").read_text())
    assert timings["preset"] == "tiny" and set(timings["scripts"]) == {"fig15_equal_means"}
    f = _file(tmp_path)
    assert figures_main(["--preset", "tiny", "--only", "fig15", "--out", str(f)]) == 2
