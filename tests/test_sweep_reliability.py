"""A sweep survives what a user or the machine does to it: refused inputs (huge grids,
steps = 0, settings the sweep cannot apply, equal values), a diverging point of a packed
job, a second sweep into the same folder, and non-converged points flagged in results.csv."""
from __future__ import annotations

import csv
import time
from pathlib import Path

import pytest

from toymodels.cli import main
from toymodels.sweep import jobs as sweep_jobs
from toymodels.sweep import run_grid, stored_results
from toymodels.sweep.runner import _merge, folder_lock

BASE = """
command = "{command}"
[fixed]
{fixed}
[grid]
{grid}
"""
TMS_FIXED = "n_features = 2\nd_hidden = 1\nsteps = 20\nbatch_size = 16\neval_samples = 64"
SAE_FIXED = 'arch = "relu"\nn_features = 6\nd_model = 4\ndict_size = 8\nsteps = 5\nbatch_size = 16\neval_samples = 64'


def spec(tmp_path: Path, grid: str, fixed: str = TMS_FIXED, command: str = "tms") -> Path:
    p = tmp_path / "spec.toml"
    p.write_text(BASE.format(command=command, fixed=fixed, grid=grid))
    return p


def sweep(p: Path, out: Path, *extra: str) -> int:
    return main(["sweep", str(p), "--out", str(out), *extra])


def rows(out: Path) -> list[dict[str, str]]:
    with open(out / "results.csv", newline="") as f:
        return list(csv.DictReader(f))


def one_error_line(capsys: pytest.CaptureFixture[str]) -> str:
    err = capsys.readouterr().err.strip()
    assert len(err.splitlines()) == 1, err
    return err


# ---------------------------------------------------------------------- refused before any work
def test_a_grid_too_large_to_plan_is_refused_in_one_line_with_its_point_count(tmp_path, capsys):
    values = ", ".join(f"{0.0001 * (i + 1):.6g}" for i in range(2000))
    decays = ", ".join(f"{0.01 * (i + 1):.6g}" for i in range(2000))
    p = spec(tmp_path, f"feature_probability = [{values}]\nimportance_decay = [{decays}]")
    t = time.perf_counter()
    assert sweep(p, tmp_path / "out") == 2
    assert time.perf_counter() - t < 30
    assert "4000000 points" in one_error_line(capsys)
    assert not (tmp_path / "out" / "jobs").exists()


def test_an_absurd_grid_is_refused_with_its_point_count(tmp_path, capsys):
    axis = "[" + ", ".join(str(i) for i in range(100)) + "]"
    p = spec(tmp_path, "\n".join(f"{k} = {axis}" for k in ("seed", "lr", "log_every", "warmup_steps",
                                                            "checkpoint_every", "weight_decay")))
    assert sweep(p, tmp_path / "out") == 2
    assert f"{100 ** 6} points" in one_error_line(capsys)


def test_run_grid_refuses_a_huge_grid_before_building_points():
    with pytest.raises(ValueError, match="4000000 points"):
        run_grid("tms", {}, {"feature_probability": [i / 4000 for i in range(1, 2001)],
                             "importance_decay": [i / 100 for i in range(1, 2001)]})


def test_steps_zero_is_refused_by_name(tmp_path, capsys):
    p = spec(tmp_path, "seed = [0, 1]", fixed=TMS_FIXED.replace("steps = 20", "steps = 0"))
    assert sweep(p, tmp_path / "out") == 2
    assert "steps" in one_error_line(capsys)
    with pytest.raises(ValueError, match="steps"):
        run_grid("tms", {"steps": 0}, {"seed": [0]})


@pytest.mark.parametrize("command, fixed, grid, name", [
    ("sae", SAE_FIXED + '\nfiring = "zipf"', "seed = [0]", "fixed.firing"),
    ("sae", SAE_FIXED + "\nzipf_exponent = 2.0", "seed = [0]", "fixed.zipf_exponent"),
    ("sae", SAE_FIXED + "\nhierarchy_exclusive = false", "seed = [0]", "fixed.hierarchy_exclusive"),
    ("sae", SAE_FIXED + "\nholdout = 0.3", "seed = [0]", "fixed.holdout"),
    ("sae", SAE_FIXED + "\nk = 3", "seed = [0]", "k = 3"),
    ("sae", SAE_FIXED, "jumprelu_threshold = [0.1, 0.2]", "grid.jumprelu_threshold"),
    ("sae", SAE_FIXED, "threshold_ema = [0.5]", "grid.threshold_ema"),
])
def test_a_setting_the_sweep_cannot_apply_is_refused_by_name(tmp_path, capsys, command, fixed, grid, name):
    assert sweep(spec(tmp_path, grid, fixed, command), tmp_path / "out") == 2
    err = capsys.readouterr().err.strip().splitlines()
    assert name in err[-1] and "error" in err[-1], err  # (a "note: ... ignored" line may come first)
    assert not (tmp_path / "out" / "jobs").exists()


def test_a_setting_that_applies_still_runs(tmp_path):
    p = spec(tmp_path, "seed = [0]", SAE_FIXED.replace('"relu"', '"jumprelu"') + "\njumprelu_threshold = 0.2",
             "sae")
    assert sweep(p, tmp_path / "out") == 0


@pytest.mark.parametrize("grid, key", [("importance_decay = [1, 1.0]", "grid.importance_decay"),
                                       ("lr = [0.001, 1e-3]", "grid.lr")])
def test_equal_values_in_a_grid_are_refused_by_name(tmp_path, capsys, grid, key):
    assert sweep(spec(tmp_path, grid), tmp_path / "out") == 2
    assert key in one_error_line(capsys)


def test_run_grid_refuses_equal_values():
    with pytest.raises(ValueError, match="importance_decay"):
        run_grid("tms", {"steps": 5}, {"importance_decay": [1, 1.0]})


# ---------------------------------------------------------------------- failures stay local
def test_a_failing_point_of_a_packed_job_fails_alone(tmp_path, monkeypatch):
    p = spec(tmp_path, "seed = [0, 1, 2, 3]")
    assert sweep(p, tmp_path / "clean", "--max-pack", "4") == 0
    clean = {r["id"]: r for r in rows(tmp_path / "clean")}
    real = sweep_jobs._run_tms

    def diverges_with_seed_1(configs, folder, dev):
        if any(c["seed"] == 1 for c in configs):
            from toymodels.train.loop import TrainingDiverged

            raise TrainingDiverged("training diverged: the loss became NaN/inf", 3, [1], None)
        return real(configs, folder, dev)

    monkeypatch.setattr(sweep_jobs, "_run_tms", diverges_with_seed_1)
    assert sweep(p, tmp_path / "out", "--max-pack", "4") == 1
    got = rows(tmp_path / "out")
    assert [r["status"] for r in got] == ["done", "failed", "done", "done"]
    assert "diverged" in got[1]["error"]
    for r in got:
        if r["status"] == "done":  # retried apart: the same answer as packed
            assert r["loss"] == clean[r["id"]]["loss"]
            assert r["dimensionality"] == clean[r["id"]]["dimensionality"]


def test_a_point_that_did_not_converge_is_flagged(tmp_path):
    p = spec(tmp_path, "lr = [0.001, 1e6]")
    sweep(p, tmp_path / "out")
    got = {r["lr"]: r for r in rows(tmp_path / "out")}
    assert got["0.001"]["status"] == "done" and got["0.001"]["converged"] == "True"
    bad = got["1000000.0"]
    assert bad["status"] == "failed" or bad["converged"] == "False", bad


# ---------------------------------------------------------------------- one sweep per folder
def test_a_second_sweep_into_a_busy_folder_is_refused_and_marks_nothing_failed(tmp_path, capsys):
    p = spec(tmp_path, "seed = [0, 1]")
    out = tmp_path / "out"
    assert sweep(p, out) == 0
    before = (out / "results.csv").read_text()
    capsys.readouterr()
    p2 = spec(tmp_path, "seed = [0, 1, 2]")
    with folder_lock(out):
        assert sweep(p2, out) == 2
    assert "another sweep is running" in one_error_line(capsys)
    assert (out / "results.csv").read_text() == before
    assert sweep(p2, out) == 0  # free again: finishes the new point, reruns nothing
    assert "2 already done" in capsys.readouterr().out
    assert all(r["status"] == "done" for r in rows(out))


def test_a_done_point_is_never_marked_failed_again():
    results = {"a": {"id": "a", "status": "done", "loss": 0.1}}
    _merge(results, [{"id": "a", "status": "failed", "error": "x"}, {"id": "b", "status": "failed", "error": "y"}])
    assert results["a"]["status"] == "done" and results["b"]["status"] == "failed"


def test_results_csv_agrees_with_the_job_folders(tmp_path):
    p = spec(tmp_path, "seed = [0, 1, 2]")
    out = tmp_path / "out"
    assert sweep(p, out) == 0
    stored = stored_results(out)
    for r in rows(out):
        assert r["status"] == stored[r["id"]]["status"] == "done"
