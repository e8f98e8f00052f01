"""Probe findings, replayed end to end: ``toymodels sweep --workers 2`` killed (SIGKILL,
SIGINT) leaves no worker running, and the rerun finishes every point, runs nothing twice
and leaves a results.csv that agrees with jobs/."""
from __future__ import annotations

import csv
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest

from toymodels.cli import main
from toymodels.sweep import stored_results

pytestmark = pytest.mark.skipif(not sys.platform.startswith("linux"), reason="reads /proc")

SPEC = """
command = "tms"
[fixed]
n_features = 2
d_hidden = 1
steps = 200000
batch_size = 16
eval_samples = 64
checkpoint_every = 500
[grid]
seed = [0, 1]
"""


def children(pid: int) -> set[int]:
    found = set()
    for d in Path("/proc").iterdir():
        if d.name.isdigit():
            try:
                if int((d / "stat").read_text().rsplit(")", 1)[1].split()[1]) == pid:
                    found.add(int(d.name))
            except (OSError, IndexError, ValueError):
                pass
    return found


def alive(pid: int) -> bool:
    try:
        return (Path("/proc") / str(pid) / "stat").read_text().rsplit(")", 1)[1].split()[0] != "Z"
    except OSError:
        return False


@pytest.mark.parametrize("sig", [signal.SIGKILL, signal.SIGINT])
def test_a_killed_sweep_leaves_no_worker_and_the_rerun_finishes_it(tmp_path, capsys, sig):
    spec = tmp_path / "spec.toml"
    spec.write_text(SPEC)
    out = tmp_path / "out"
    env = {**os.environ, "OMP_NUM_THREADS": "1"}
    proc = subprocess.Popen([sys.executable, "-m", "toymodels", "sweep", str(spec), "--out", str(out),
                             "--workers", "2"], env=env, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    try:
        workers: set[int] = set()
        deadline = time.monotonic() + 120
        while time.monotonic() < deadline and not (len(workers) >= 2 and list(out.glob("jobs/*/checkpoint*.pt"))):
            workers |= children(proc.pid)
            time.sleep(0.2)
        assert len(workers) >= 2, "the sweep never started its workers"
        os.kill(proc.pid, sig)
        proc.wait(timeout=60)
        deadline = time.monotonic() + 30
        while time.monotonic() < deadline and any(alive(w) for w in workers):
            time.sleep(0.2)
        assert not [w for w in workers if alive(w)], "a worker outlived its sweep"
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.wait(timeout=30)
    assert_agrees(out)


def assert_agrees(out: Path) -> None:
    """results.csv says what jobs/ says, for every point."""
    stored = stored_results(out)
    with open(out / "results.csv", newline="") as f:
        for r in csv.DictReader(f):
            want = stored.get(r["id"], {}).get("status", "pending")
            assert r["status"] == want, (r, want)


def test_the_rerun_after_a_kill_finishes_every_point_and_runs_nothing_twice(tmp_path, capsys):
    spec = tmp_path / "spec.toml"
    spec.write_text(SPEC.replace("steps = 200000", "steps = 3000").replace("checkpoint_every = 500",
                                                                           "checkpoint_every = 100"))
    out = tmp_path / "out"
    proc = subprocess.Popen([sys.executable, "-m", "toymodels", "sweep", str(spec), "--out", str(out),
                             "--workers", "2", "--max-pack", "1"],
                            stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    try:
        deadline = time.monotonic() + 120
        while time.monotonic() < deadline and not list(out.glob("jobs/*/checkpoint*.pt")):
            if proc.poll() is not None:
                break
            time.sleep(0.1)
        if proc.poll() is None:
            os.kill(proc.pid, signal.SIGKILL)
        proc.wait(timeout=60)
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.wait(timeout=30)
    assert_agrees(out)
    capsys.readouterr()
    assert main(["sweep", str(spec), "--out", str(out), "--workers", "2", "--max-pack", "1"]) == 0
    assert_agrees(out)
    done_before = sum(1 for r in stored_results(out).values() if r["status"] == "done")
    assert done_before == 2
    capsys.readouterr()
    assert main(["sweep", str(spec), "--out", str(out), "--workers", "2", "--max-pack", "1"]) == 0
    assert "2 already done, 0 job(s) run" in capsys.readouterr().out


def test_two_sweeps_into_one_folder_one_is_refused_and_nothing_is_marked_failed(tmp_path):
    spec = tmp_path / "spec.toml"
    spec.write_text(SPEC.replace("steps = 200000", "steps = 20000"))
    out = tmp_path / "out"
    cmd = [sys.executable, "-m", "toymodels", "sweep", str(spec), "--out", str(out), "--workers", "2"]
    first = subprocess.Popen(cmd, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    try:
        deadline = time.monotonic() + 120
        while time.monotonic() < deadline and not (out / "jobs").is_dir():
            time.sleep(0.1)
        second = subprocess.run(cmd, capture_output=True, text=True, timeout=120)
        assert second.returncode == 2
        assert "another sweep is running" in second.stderr and len(second.stderr.strip().splitlines()) == 1
        assert first.wait(timeout=300) == 0
    finally:
        if first.poll() is None:
            first.kill()
            first.wait(timeout=30)
    with open(out / "results.csv", newline="") as f:
        assert [r["status"] for r in csv.DictReader(f)] == ["done", "done"]
    assert_agrees(out)
