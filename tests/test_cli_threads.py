"""CPU threads that behave on a shared machine (issue 7, item 7): ``--threads auto`` picks one
thread for toy-sized work and otherwise the idle cores; an explicit number wins."""
import json

import pytest
import torch

from toymodels import device
from toymodels.cli import main


@pytest.fixture(autouse=True)
def _restore_threads(monkeypatch):
    monkeypatch.delenv("OMP_NUM_THREADS", raising=False)
    n = torch.get_num_threads()
    yield
    torch.set_num_threads(n)


def test_explicit_threads_win():
    assert device.choose_threads(3, work=1) == 3 and device.choose_threads("2", work=1e12) == 2


def test_auto_is_one_thread_for_small_or_unsized_work(monkeypatch):
    monkeypatch.setattr(device, "idle_cores", lambda interval=0.1: 8.0)
    assert device.choose_threads("auto", work=device.SMALL_WORK - 1) == 1
    assert device.choose_threads("auto") == 1  # theory and figures: toy-sized models


def test_auto_uses_the_idle_cores_for_large_work(monkeypatch):
    monkeypatch.setattr(device, "idle_cores", lambda interval=0.1: 3.6)
    assert device.choose_threads("auto", work=1e12) == 3
    assert device.choose_threads("auto", work=1e12, jobs=2) == 1
    monkeypatch.setattr(device, "idle_cores", lambda interval=0.1: 0.2)  # every core busy
    assert device.choose_threads("auto", work=1e12) == 1


def test_omp_num_threads_counts_as_explicit(monkeypatch):
    monkeypatch.setenv("OMP_NUM_THREADS", "2")
    assert device.choose_threads("auto", work=1e12) == 2


def test_idle_cores_is_within_the_usable_cores():
    idle = device.idle_cores(0.01)
    assert 0.0 <= idle <= device.usable_cores()


@pytest.mark.parametrize("bad", ["0", "-1", "x", "1.5"])
def test_bad_threads_are_refused(bad):
    with pytest.raises(ValueError, match="threads"):
        device.parse_threads(bad)


def test_the_cli_records_the_threads_it_used(tmp_path):
    out = tmp_path / "run"
    assert main(["tms", "--steps", "5", "--quiet", "--device", "cpu", "--out", str(out)]) == 0
    assert json.loads((out / "metrics.json").read_text())["threads"] == 1
    assert torch.get_num_threads() == 1
    out2 = tmp_path / "run2"
    assert main(["tms", "--steps", "5", "--quiet", "--device", "cpu", "--threads", "2", "--out", str(out2)]) == 0
    assert json.loads((out2 / "metrics.json").read_text())["threads"] == 2


def test_idle_cores_does_not_count_this_process_as_a_neighbour(monkeypatch):
    """The bug: after a parallel region torch's worker threads spin for a while; idle_cores
    counted that as another process's load, and ``--threads auto`` picked 1 thread of 2 on
    a quiet machine (a 15 s run instead of 8 s, alternating from run to run)."""
    import os

    monkeypatch.setattr(os, "cpu_count", lambda: 2)
    monkeypatch.setattr(device, "usable_cores", lambda: 2)

    def window(own_seconds: float) -> None:  # over the window: 10 of 20 ticks busy, one core of two
        stat, own = iter([(100, 200), (110, 220)]), iter([5.0, 5.0 + own_seconds])
        monkeypatch.setattr(device, "_cpu_times", lambda: next(stat))
        monkeypatch.setattr(device, "_own_cpu_seconds", lambda: next(own))

    window(0.1)  # ... all of it this process's own threads, over the 0.1 s window
    assert device.idle_cores(0.1) >= 1.8
    window(0.1)
    assert device.choose_threads("auto", work=1e12) == 2
    window(0.0)  # the same load from a neighbour: one core left
    assert device.idle_cores(0.1) == pytest.approx(1.0)
    window(0.0)
    assert device.choose_threads("auto", work=1e12) == 1


def test_one_tick_of_noise_does_not_cost_a_thread(monkeypatch):
    monkeypatch.setattr(device, "idle_cores", lambda interval=0.1: 1.9)  # 19 of 20 ticks idle
    assert device.choose_threads("auto", work=1e12) == 2
