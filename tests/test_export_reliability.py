"""Exports that can be trusted (issue 20 item 2): an output folder never mixes two runs, an
unfinished run is not exported under its newer config, every export reads back with
from_saelens, and file → from_saelens → export is exact for every architecture."""
from __future__ import annotations

import pytest
import torch
from safetensors.torch import load_file

from toymodels.cli import main
from toymodels.sae import export_saelens, from_saelens
from toymodels.sae.saelens import EXPORTABLE, exact_log
from toymodels.train.runs import save_weights, write_json

from tests.sae._helpers import moved_sae


def sae_of(arch: str, n: int = 2, trained: bool = True, seed: int = 0):
    return moved_sae(arch, n, seed, moved=trained)


def run_folder(path, sae, steps: int = 5, metrics_steps: int | None = 5):
    path.mkdir()
    write_json(path / "config.json", {"model": sae.spec(), "data": {}, "train": {"steps": steps}})
    save_weights(path / "model.safetensors", sae)
    if metrics_steps is not None:
        write_json(path / "metrics.json", {"steps": metrics_steps})
    return path


def test_an_existing_export_is_refused_unless_overwrite(tmp_path, capsys):
    a = run_folder(tmp_path / "a", sae_of("relu", n=3))
    b = run_folder(tmp_path / "b", sae_of("topk", n=1))
    out = tmp_path / "out"
    assert main(["export", str(a), "--out", str(out)]) == 0
    # was: exit 0, leaving instance_001/002 of run a beside run b's instance_000
    assert main(["export", str(b), "--out", str(out)]) == 2
    err = capsys.readouterr().err.strip()
    assert "already holds an export" in err and "--overwrite" in err and "\n" not in err
    assert sorted(p.name for p in out.iterdir()) == ["instance_000", "instance_001", "instance_002"]
    assert main(["export", str(b), "--out", str(out), "--overwrite"]) == 0
    assert [p.name for p in out.iterdir()] == ["instance_000"]
    assert from_saelens(out / "instance_000").config.arch == "topk"


def test_overwrite_never_deletes_files_that_are_not_an_export(tmp_path):
    out = tmp_path / "out"
    out.mkdir()
    (out / "notes.txt").write_text("mine")
    with pytest.raises(ValueError, match="notes.txt, which is not part of an SAE export"):
        export_saelens(sae_of("relu"), out, overwrite=True)
    assert (out / "notes.txt").read_text() == "mine" and len(list(out.iterdir())) == 1


def test_an_unfinished_or_resumed_and_killed_run_is_not_exported(tmp_path, capsys):
    sae = sae_of("jumprelu")
    # a resume to 10 steps killed mid-way: config.json says 10, the weights and metrics are from 5
    killed = run_folder(tmp_path / "killed", sae, steps=10, metrics_steps=5)
    assert main(["export", str(killed), "--out", str(tmp_path / "o1")]) == 2  # was 0: old weights, new config
    assert "config.json asks for 10" in capsys.readouterr().err
    never = run_folder(tmp_path / "never", sae, steps=5, metrics_steps=None)
    assert main(["export", str(never), "--out", str(tmp_path / "o2")]) == 2
    assert "did not finish" in capsys.readouterr().err
    assert not (tmp_path / "o1").exists() and not (tmp_path / "o2").exists()


@pytest.mark.parametrize("arch", ["batchtopk", "matryoshka"])
def test_an_untrained_threshold_sae_exports_a_folder_that_loads(arch, tmp_path):
    sae = sae_of(arch, trained=False)  # θ = 0: was a folder from_saelens refused (log 0)
    dirs = export_saelens(sae, tmp_path / "x")
    for i, d in enumerate(dirs):
        back = from_saelens(d)
        assert back.config.arch == arch and float(back.threshold_I[0]) == 0.0
        assert back.config.per_instance("k")[0] == sae.config.per_instance("k")[i]


@pytest.mark.parametrize("arch", EXPORTABLE)
def test_file_from_saelens_export_is_exact(arch, tmp_path):
    dirs = export_saelens(sae_of(arch, seed=3), tmp_path / "a")
    for i, d in enumerate(dirs):
        export_saelens(from_saelens(d), tmp_path / f"b{i}")
        first = load_file(str(d / "sae_weights.safetensors"))
        again = load_file(str(tmp_path / f"b{i}" / "instance_000" / "sae_weights.safetensors"))
        assert set(first) == set(again)
        for k in first:  # was: batchtopk/matryoshka threshold one ulp off (log/exp)
            assert torch.equal(first[k], again[k]), (arch, i, k)


def test_exact_log_inverts_float32_exp():
    lt = torch.randn(20000, generator=torch.Generator().manual_seed(0)) * 4
    th = torch.exp(lt)
    assert torch.equal(torch.exp(exact_log(th)), th)
    assert not torch.equal(torch.exp(torch.log(th)), th)  # the plain log is not enough


def test_non_finite_weights_are_refused_before_anything_is_written(tmp_path):
    sae = sae_of("gated")
    with torch.no_grad():
        sae.b_mag_IF[1, 2] = float("inf")
    with pytest.raises(ValueError, match="instance 1: b_mag holds NaN or infinity"):
        export_saelens(sae, tmp_path / "x")
    assert not (tmp_path / "x").exists()
