"""``toymodels plot``: every panel of every run kind draws into a real image, and every way to
misuse it (not a run, an unknown or inapplicable kind, a truth panel without truth, an
unusable --out) exits 2 with one line and writes nothing."""
from __future__ import annotations

import os
from pathlib import Path

import numpy as np
import pytest

from toymodels.cli import main
from toymodels.workbench import PANELS, load_run, plot_run

TINY = ["--steps", "20", "--batch-size", "64", "--eval-samples", "256", "--quiet", "--device", "cpu"]
PNG = b"\x89PNG\r\n\x1a\n"


@pytest.fixture(scope="module")
def runs(tmp_path_factory: pytest.TempPathFactory) -> dict[str, Path]:
    root = tmp_path_factory.mktemp("plot")
    assert main(["tms", "--n-features", "5", "--d-hidden", "2", "--instances", "8", "--feature-probability", "0.02",
                 "0.5", "--out", str(root / "tms"), *TINY]) == 0
    assert main(["tms", "--n-features", "6", "--d-hidden", "3", "--out", str(root / "tms3"), *TINY]) == 0
    assert main(["sae", "--data", "features", "--arch", "topk", "--n-features", "8", "--d-model", "6", "--dict-size",
                 "12", "--k", "2", "3", "--instances", "2", "--out", str(root / "sae"), *TINY]) == 0
    np.save(root / "acts.npy", np.random.default_rng(0).normal(size=(300, 4)).astype(np.float32))
    assert main(["sae", "--data", "activations", "--activations", str(root / "acts.npy"), "--dict-size", "8",
                 "--out", str(root / "acts"), *TINY]) == 0
    spec = root / "sweep.toml"
    spec.write_text('command = "tms"\n[fixed]\nn_features = 4\nd_hidden = 2\nsteps = 20\nbatch_size = 64\n'
                    'eval_samples = 256\n[grid]\nfeature_probability = [0.1, 0.4]\nseed = [0, 1]\n')
    assert main(["sweep", str(spec), "--out", str(root / "sweep"), "--workers", "1"]) == 0
    return {"tms": root / "tms", "tms3": root / "tms3", "sae": root / "sae", "acts": root / "acts",
            "sweep": next((root / "sweep" / "jobs").iterdir()), "sweep-root": root / "sweep"}


def _plot(capsys, *argv: str) -> tuple[int, str]:
    try:
        rc = main(["plot", *argv])
    except SystemExit as e:  # argparse's own errors (an unknown --kind) exit from the parser
        rc = int(e.code)
    return rc, capsys.readouterr().err.strip()


@pytest.mark.parametrize("run,kind", [("tms", None), ("tms3", None), ("sae", None), ("acts", None), ("sweep", None)]
                         + [("tms", k) for k in PANELS["tms"]] + [("sae", k) for k in PANELS["sae"]]
                         + [("sweep", "geometry")])
def test_every_panel_of_every_run_kind_writes_a_png(runs, tmp_path, capsys, run, kind):
    out = tmp_path / "fig.png"
    rc, err = _plot(capsys, str(runs[run]), "--out", str(out), *(["--kind", kind] if kind else []))
    assert rc == 0, err
    data = out.read_bytes()
    assert data.startswith(PNG) and len(data) > 5000
    assert not [p for p in tmp_path.iterdir() if p.name.startswith(".")]  # no temporary left behind


def test_the_geometry_grid_shows_at_most_max_instances_and_says_which(runs):
    run = load_run(runs["tms"])
    fig = plot_run(run, "geometry", max_instances=3)
    assert len([a for a in fig.axes if a.get_title()]) == 3
    assert "instances [0, 4, 7] of 8 (at most 3, evenly spaced by index)" in fig._suptitle.get_text()
    fig = plot_run(run)  # the full figure: 6 geometry + 6 WᵀW + dimensionality + loss (+ one colorbar)
    assert "instances [0, 1, 3, 4, 6, 7] of 8" in fig._suptitle.get_text()


def test_plot_run_draws_one_panel_into_given_axes(runs):
    import matplotlib.pyplot as plt

    fig, ax = plt.subplots()
    assert plot_run(load_run(runs["sae"]), "frontier", ax=ax) is fig
    assert ax.get_xlabel().startswith("L0") and ax.get_ylabel().startswith("FVU")
    assert len(ax.collections) >= 1
    plot_run(load_run(runs["tms"]), "geometry", ax=ax, instance=5)
    assert ax.get_title().startswith("#5 ")
    with pytest.raises(ValueError, match="ax takes one panel"):
        plot_run(load_run(runs["tms"]), ax=ax)
    plt.close(fig)


def test_the_sae_loss_panel_names_what_history_does_not_hold(runs):
    fig = plot_run(load_run(runs["sae"]), "loss")
    assert "history.json logs no L0 or FVU" in fig.axes[0].get_title()


def test_the_full_sae_figure_says_why_truth_is_missing(runs):
    fig = plot_run(load_run(runs["acts"]))
    titles = [a.get_title() for a in fig.axes]
    assert "truth: not available" in titles
    texts = [t.get_text() for a in fig.axes for t in a.texts]
    assert any("--data activations without --truth" in t for t in texts)


@pytest.mark.parametrize("target,argv,needle", [
    ("nowhere", [], "no such folder"),
    ("sweep-root", [], "is a sweep folder, not a run"),
    ("tms", ["--kind", "frontier"], "--kind frontier does not apply to a tms run"),
    ("sae", ["--kind", "geometry"], "--kind geometry does not apply to a sae run"),
    ("acts", ["--kind", "truth"], "no known true directions"),
    ("tms", ["--kind", "geometri"], "invalid choice: 'geometri'"),
    ("tms", ["--instance", "8"], "--instance must be in [0, 7]"),
    ("tms", ["--max-instances", "0"], "--max-instances must be >= 1"),
])
def test_misuse_exits_2_with_one_line_and_writes_nothing(runs, tmp_path, capsys, target, argv, needle):
    out = tmp_path / "fig.png"
    rc, err = _plot(capsys, str(runs.get(target, tmp_path / target)), "--out", str(out), *argv)
    assert rc == 2 and len(err.splitlines()) == 1 and needle in err, err
    assert not out.exists()


def test_an_unusable_out_exits_2_before_any_work(runs, tmp_path, capsys):
    rc, err = _plot(capsys, str(runs["tms"]), "--out", str(tmp_path))
    assert rc == 2 and "is a folder, not a file" in err
    rc, err = _plot(capsys, str(runs["tms"]), "--out", str(tmp_path / "fig.xyz"))
    assert rc == 2 and "unknown image format '.xyz'" in err and len(err.splitlines()) == 1
    (tmp_path / "afile").write_text("x")
    rc, err = _plot(capsys, str(runs["tms"]), "--out", str(tmp_path / "afile" / "fig.png"))
    assert rc == 2 and "which is a file, not a folder" in err


def test_a_read_only_out_folder_exits_2(runs, tmp_path, capsys):
    locked = tmp_path / "ro"
    locked.mkdir()
    os.chmod(locked, 0o500)
    try:
        if os.access(locked, os.W_OK):  # root writes anywhere: nothing to test
            pytest.skip("running as root: a read-only folder is writable")
        rc, err = _plot(capsys, str(runs["tms"]), "--out", str(locked / "fig.png"))
        assert rc == 2 and "cannot be written" in err
    finally:
        os.chmod(locked, 0o700)
