"""Activation files as part of a run's identity (issue 20 item 3): the spec holds the file's
fingerprint, so a resume on a changed file is refused naming it; a file changed or
truncated under a running source stops it with one line; damaged or odd files are named."""
from __future__ import annotations

import json
import os
import struct
import subprocess
import sys
import textwrap

import numpy as np
import pytest
import torch

from toymodels.data.activations import Activations, file_fingerprint, save_activations
from toymodels.sae import SAEConfig, build_sae
from toymodels.train import TrainConfig, train

TC = TrainConfig(steps=3, batch_size=8, quiet=True, eval_samples=8)


def rows(seed: int, n: int = 64, d: int = 4) -> np.ndarray:
    return np.random.default_rng(seed).standard_normal((n, d)).astype(np.float32)


def small_sae():
    return build_sae(SAEConfig(arch="relu", d_model=4, dict_size=8), seed=0)


def test_the_spec_fingerprints_the_file_and_a_resume_on_a_changed_file_is_refused(tmp_path):
    p = tmp_path / "a.npy"
    np.save(p, rows(0))
    spec = Activations(p).spec()
    assert spec["file"]["size"] == p.stat().st_size and spec["file"]["hashed"] == "all"
    assert file_fingerprint(p) == spec["file"]
    train(small_sae(), Activations(p), TC, tmp_path / "run")
    np.save(p, rows(1))  # same size, other values: was resumed on silently
    with pytest.raises(ValueError, match=r"data\.file\.blake2b"):
        train(small_sae(), Activations(p), TrainConfig(steps=4, batch_size=8, quiet=True, eval_samples=8),
              tmp_path / "run", resume=True)


def test_a_large_file_is_fingerprinted_by_samples_and_its_mtime(tmp_path, monkeypatch):
    import toymodels.data.activations as acts

    monkeypatch.setattr(acts, "FULL_HASH_BYTES", 1000)
    p = save_activations(tmp_path / "a.npy", torch.from_numpy(rows(0, n=2000)))
    fp = file_fingerprint(p)
    assert fp["hashed"] == "sampled" and fp["mtime_ns"] == p.stat().st_mtime_ns


def test_a_file_rewritten_under_a_running_source_stops_it(tmp_path):
    p = tmp_path / "a.npy"
    np.save(p, rows(0))
    src = Activations(p)
    src.sample(4)
    np.save(p, rows(1))  # was: the next batches silently read the new rows
    with pytest.raises(ValueError, match=f"activations file {p}: was .* while in use"):
        src.sample(4)


def test_a_file_truncated_under_a_memory_mapped_source_is_one_line_not_sigbus(tmp_path):
    p = save_activations(tmp_path / "a.npy", torch.randn(20000, 64))
    code = textwrap.dedent(f"""
        import os
        from toymodels.data.activations import Activations
        src = Activations({str(p)!r})
        src.sample(8)
        os.truncate({str(p)!r}, 4096)
        src.sample(20000)
        """)
    r = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=120)
    assert r.returncode == 1, (r.returncode, r.stderr[-300:])  # was -7 (SIGBUS), no message
    assert f"ValueError: activations file {p}: was truncated while in use" in r.stderr


def header_st(path, info) -> None:
    h = json.dumps({"activations": info}).encode()
    path.write_bytes(struct.pack("<Q", len(h)) + h + b"\0" * 480)


@pytest.mark.parametrize("make,match", [
    (lambda p: np.save(p / "a.npy", np.ones((8, 2), dtype=np.longdouble)), "dtype float128"),  # was TypeError
    (lambda p: np.save(p / "a.npy", np.ones((8, 2), dtype=">f4")), "big-endian"),  # did not name the file
    (lambda p: header_st(p / "a.safetensors", {"dtype": "F32", "shape": [40, 3]}), "data_offsets"),  # was KeyError
    (lambda p: header_st(p / "a.safetensors", {"dtype": "F32", "shape": [-40, -3], "data_offsets": [0, 480]}), "shape"),
    (lambda p: header_st(p / "a.safetensors", {"dtype": "F32", "shape": ["forty", 3], "data_offsets": [0, 480]}), "shape"),
])
def test_odd_files_fail_with_one_line_naming_the_file(make, match, tmp_path):
    make(tmp_path)
    (path,) = list(tmp_path.iterdir())
    with pytest.raises(ValueError, match=match) as e:
        Activations(path)
    assert str(e.value).startswith(f"activations file {path}: ") and "\n" not in str(e.value)


def test_a_scan_that_runs_out_of_memory_is_one_line_naming_the_file(tmp_path, monkeypatch):
    p = tmp_path / "a.npy"
    np.save(p, rows(0))

    def boom(x):
        raise RuntimeError("DefaultCPUAllocator: not enough memory: you tried to allocate 1099511627776 bytes.")

    monkeypatch.setattr(torch, "isfinite", boom)
    with pytest.raises(ValueError, match=f"activations file {p}: cannot be scanned in memory"):
        Activations(p)
