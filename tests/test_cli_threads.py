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
