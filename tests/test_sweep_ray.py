"""``toymodels sweep --backend ray`` on a local Ray cluster started by the test (CI has none)."""
from __future__ import annotations

import os
import signal
import subprocess
import threading
import time

import pytest

ray = pytest.importorskip("ray", reason="Ray is an optional extra: pip install 'toymodels[ray]'")

from tests.test_sweep import TMS_SPEC, assert_same_points, rows, sweep, write  # noqa: E402

from toymodels.sweep import Point, run_sweep  # noqa: E402


@pytest.fixture(scope="module")
def cluster():
    os.environ.setdefault("RAY_AUTH_MODE", "disabled")
    ray.init(num_cpus=2, include_dashboard=False, log_to_driver=False)
    yield
    ray.shutdown()


def test_ray_gives_the_local_results_and_a_bad_job_fails_alone(cluster, tmp_path):
    spec = write(tmp_path, TMS_SPEC)
    assert sweep(spec, tmp_path / "local") == 0
    assert sweep(spec, tmp_path / "ray", "--backend", "ray", "--max-pack", "3") == 0
    assert len({r["job"] for r in rows(tmp_path / "ray")}) == 3
    assert_same_points(tmp_path / "local", tmp_path / "ray", ("dimensionality",))
    good = {"command": "tms", "model": {"n_features": 2, "d_hidden": 1, "kind": "relu-output"},
            "importance_decay": 1.0, "feature_probability": 0.2, "seed": 0,
            "train": {"steps": 5, "batch_size": 8, "eval_samples": 16}}
    bad = {**good, "model": {**good["model"], "kind": "no-such-model"}}
    report = run_sweep("tms", [Point({"case": "good"}, good), Point({"case": "bad"}, bad)], tmp_path / "mixed",
                       grid_keys=["case"], backend="ray", progress=False)
    assert (report.done, report.failed) == (1, 1)
    table = {r["case"]: r for r in rows(tmp_path / "mixed")}
    assert table["good"]["status"] == "done"
    assert table["bad"]["status"] == "failed" and "kind" in table["bad"]["error"]


def _ray_job_pids() -> list[int]:
    out = subprocess.run(["ps", "-eo", "pid=,args="], capture_output=True, text=True).stdout
    return [int(line.split(None, 1)[0]) for line in out.splitlines() if "ray::_ray_job" in line]


@pytest.mark.slow
def test_a_killed_ray_worker_loses_nothing(cluster, tmp_path):
    spec = write(tmp_path, TMS_SPEC.replace("steps = 30", "steps = 4000"))
    done = {}
    t = threading.Thread(target=lambda: done.setdefault(
        "rc", sweep(spec, tmp_path / "ray", "--backend", "ray", "--max-pack", "2")))
    t.start()
    killed = None
    deadline = time.time() + 120
    while killed is None and time.time() < deadline and t.is_alive():
        pids = _ray_job_pids()
        if pids:
            time.sleep(0.5)  # let it start training
            os.kill(pids[0], signal.SIGKILL)
            killed = pids[0]
        time.sleep(0.1)
    t.join(600)
    assert killed is not None, "no Ray worker was seen running a job"
    assert done.get("rc") == 0
    assert {r["status"] for r in rows(tmp_path / "ray")} == {"done"} and len(rows(tmp_path / "ray")) == 8
    assert sweep(spec, tmp_path / "local") == 0
    assert_same_points(tmp_path / "local", tmp_path / "ray", ("dimensionality",))
