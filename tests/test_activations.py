"""Your own activations as a source (issue 10): tensors and arrays train directly, files are
read memory-mapped in all three formats with the same batches, the held-out split is what
evaluate_sae scores, and bad input fails with one line before training."""
from __future__ import annotations

import numpy as np
import pytest
import torch

from toymodels.data.activations import Activations, as_source, open_activations, save_activations
from toymodels.cli import main
from toymodels.sae import SAEConfig, build_sae, evaluate_sae
from toymodels.train import TrainConfig, train


def acts(n: int = 400, d: int = 8, seed: int = 0) -> torch.Tensor:
    g = torch.Generator().manual_seed(seed)
    return torch.randn(n, d, generator=g) * (torch.rand(n, d, generator=g) < 0.3)


def small_sae(d: int = 8):
    return build_sae(SAEConfig(arch="topk", d_model=d, dict_size=16, k=2), seed=0)


TC = TrainConfig(steps=5, batch_size=32, quiet=True, eval_samples=64)


def test_train_accepts_a_tensor_and_an_array_like_the_wrapper():
    x = acts()
    r_tensor = train(small_sae(), x, TC)  # was AttributeError: 'Tensor' object has no attribute 'n_instances'
    r_array = train(small_sae(), x.numpy(), TC)
    r_wrapped = train(small_sae(), Activations(x), TC)
    assert r_tensor.final_loss.tolist() == r_wrapped.final_loss.tolist() == r_array.final_loss.tolist()
    assert as_source(Activations(x)).n_rows == 400


def test_batches_are_training_rows_seeded_and_float32():
    x = acts().double()
    src = Activations(x, holdout=0.25, seed=3)
    assert (src.n_train, src.n_heldout) == (300, 100)
    b = src.sample(500)
    assert b.shape == (1, 500, 8) and b.dtype == torch.float32
    train_rows = {tuple(r) for r in x[:300].float().tolist()}
    assert all(tuple(r) in train_rows for r in b[0].tolist())
    assert torch.equal(Activations(x, holdout=0.25, seed=3).sample(500), b)
    state = src.get_state()
    nxt = src.sample(7)
    src.set_state(state)
    assert torch.equal(src.sample(7), nxt)


def test_heldout_rows_come_in_order_and_evaluate_sae_uses_only_them():
    x = acts()
    src = Activations(x, holdout=0.1)
    held = src.heldout()
    assert len(held) == 40
    assert torch.equal(held.sample(40)[0], x[360:])
    sae = small_sae()
    m = evaluate_sae(sae, src, n_samples=8192)
    assert m["eval_samples"] == 40  # each held-out row once, never training rows
    xh = x[360:][None]
    want = (sae(xh) - xh).square().mean().item()  # metrics.mse: mean over rows and dims
    assert m["mse"][0] == pytest.approx(want, rel=1e-5)
    no_split = Activations(x, holdout=0.0)
    assert no_split.heldout() is None and evaluate_sae(sae, no_split, n_samples=100)["eval_samples"] == 100


@pytest.mark.parametrize("ext", [".npy", ".pt", ".safetensors"])
def test_every_file_format_gives_the_tensor_s_batches(ext, tmp_path):
    x = acts()
    path = save_activations(tmp_path / f"a{ext}", x)
    src = Activations(path)
    assert torch.equal(src.sample(64), Activations(x).sample(64))
    mapped = open_activations(path)
    assert mapped.shape == (400, 8)
    if ext != ".pt":  # .npy and .safetensors: a view of the file, not a copy
        assert not mapped.is_contiguous() or mapped.untyped_storage().nbytes() == 400 * 8 * 4


def test_a_file_is_scanned_in_chunks_and_never_copied(tmp_path):
    x = acts(n=1000)
    x[937, 5] = float("inf")
    path = save_activations(tmp_path / "big.npy", x)
    with pytest.raises(ValueError, match="row 937 holds a non-finite value"):
        Activations(path, chunk_rows=100)
    np.save(tmp_path / "f16.npy", acts().numpy().astype(np.float16))
    assert Activations(tmp_path / "f16.npy").sample(4).dtype == torch.float32


@pytest.mark.parametrize(
    "make, match",
    [
        (lambda p: p / "missing.npy", "no such file"),
        (lambda p: save_activations(p / "a.pt", acts()).with_suffix(".csv"), "unknown extension"),
        (lambda p: save_activations(p / "a3.npy", acts()[None]), r"shape \(1, 400, 8\)"),
        (lambda p: (np.save(p / "i.npy", np.ones((4, 3), dtype=np.int64)), p / "i.npy")[1], "floating-point"),
        (lambda p: (torch.save({"x": acts()}, p / "k.pt"), p / "k.pt")[1], "without key 'activations'"),
    ],
)
def test_bad_files_fail_with_one_line(make, match, tmp_path):
    with pytest.raises(ValueError, match=match):
        Activations(make(tmp_path))


def test_cli_trains_on_a_file_and_refuses_bad_ones_before_training(tmp_path, capsys):
    path = save_activations(tmp_path / "a.safetensors", acts())
    out = tmp_path / "run"
    common = ["--arch", "topk", "--k", "2", "--dict-size", "16", "--steps", "10", "--batch-size", "32",
              "--eval-samples", "64", "--threads", "1"]
    assert main(["sae", "--data", "activations", "--activations", str(path), "--out", str(out), *common]) == 0
    assert "the last 40 held out" in capsys.readouterr().out
    import json

    cfg = json.loads((out / "config.json").read_text())
    assert cfg["model"]["d_model"] == 8 and cfg["data"]["kind"] == "activations"
    bad = tmp_path / "bad.npy"
    y = acts()
    y[3, 1] = float("nan")
    np.save(bad, y.numpy())
    for args, msg in ((["--activations", str(bad)], "row 3 holds a non-finite"),
                      (["--activations", str(tmp_path / "no.npy")], "no such file"),
                      (["--activations", str(path), "--d-model", "5"], "does not match the 8 columns"),
                      ([], "needs --activations")):
        capsys.readouterr()
        assert main(["sae", "--data", "activations", *args, "--out", str(tmp_path / "r2"), *common]) == 2
        err = capsys.readouterr().err
        assert msg in err and len(err.strip().splitlines()) == 1
        assert not (tmp_path / "r2").exists()
