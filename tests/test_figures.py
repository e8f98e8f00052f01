"""Every figure script runs at its tiny preset and writes real PNG files; figures go under the
working directory, never into the package; the README's gallery is the tracked gallery/."""
import re
from pathlib import Path

import pytest

import figures
from figures.common import default_out
from figures.runner import figure_modules, run

PNG_MAGIC = b"\x89PNG\r\n\x1a\n"


@pytest.mark.parametrize("name", figure_modules())
def test_figure_runs_tiny(name, tmp_path):
    paths = run(name, "tiny", tmp_path, "cpu")
    assert paths, f"{name} wrote no figure"
    for path in paths:
        assert path.suffix == ".png" and path.parent == tmp_path
        data = path.read_bytes()
        assert data[:8] == PNG_MAGIC and len(data) > 2000, f"{path} is not a real PNG"


# ---------------------------------------------------------------------- where figures go
REPO = Path(__file__).resolve().parent.parent
GALLERY = REPO / "gallery"


def test_figures_write_under_the_working_directory_never_into_the_package(tmp_path, monkeypatch, capsys):
    """`python -m figures` without --out wrote into the package's own figures/out/ whatever the
    working directory (issue: `make demo` dirtied the checkout); now its default is relative."""
    from figures.__main__ import main as figures_main

    package = Path(figures.__file__).resolve().parent
    before = sorted(p.relative_to(package) for p in package.rglob("*") if "__pycache__" not in p.parts)
    monkeypatch.chdir(tmp_path)
    assert figures_main(["--preset", "tiny", "--only", "fig15", "--device", "cpu"]) == 0
    assert "out/figures/tiny" in capsys.readouterr().out
    written = sorted(p.relative_to(tmp_path).as_posix() for p in tmp_path.rglob("*") if p.is_file())
    assert written == ["out/figures/tiny/fig15_equal_means.png", "out/figures/tiny/timings.json"]
    after = sorted(p.relative_to(package) for p in package.rglob("*") if "__pycache__" not in p.parts)
    assert after == before


def test_default_out_is_relative_and_refuses_an_unknown_preset():
    assert default_out("quick") == Path("out/figures") and not default_out("quick").is_absolute()
    assert default_out("tiny") == Path("out/figures/tiny") and default_out("full") == Path("out/figures/full")
    with pytest.raises(ValueError, match="preset"):
        default_out("huge")


def test_the_readme_gallery_is_the_tracked_gallery_folder():
    """Every figure script has its image in the README, linked into gallery/ (tracked), and
    every image the README links exists; nothing links the old figures/out/."""
    readme = (REPO / "README.md").read_text()
    links = re.findall(r"!\[[^\]]*\]\(([^)]+)\)", readme)
    assert "figures/out" not in readme
    assert sorted(links) == sorted(f"gallery/{name}.png" for name in figure_modules())
    for link in links:
        assert (REPO / link).is_file(), link
    for name in ("theory_report.md", "theory_report.json"):
        assert f"](gallery/{name})" in readme and (GALLERY / name).is_file()


def test_cuda_without_cuda_is_refused_before_any_work(tmp_path, capsys):
    """`python -m figures --device cuda` on a machine without CUDA: one line, exit 2, nothing run
    (it was a worker's traceback)."""
    import torch

    from figures.__main__ import main

    if torch.cuda.is_available():
        pytest.skip("this machine has CUDA")
    assert main(["--device", "cuda", "--only", "fig15", "--preset", "tiny", "--out", str(tmp_path / "f")]) == 2
    err = capsys.readouterr().err
    assert err.count("\n") == 1 and "CUDA is not available" in err and "Traceback" not in err
    assert not (tmp_path / "f").exists()


def test_an_output_folder_replaced_by_a_file_mid_run_is_one_line(tmp_path, monkeypatch, capsys):
    """The output folder replaced by a file while the figures run gave a raw FileExistsError."""
    import figures.__main__ as fm

    out = tmp_path / "f"

    def replaced(name, preset, out_dir, device, threads):
        out_dir.rmdir() if out_dir.is_dir() else None
        out_dir.write_text("not a folder")
        (out_dir / "x.png").write_bytes(b"")  # raises NotADirectoryError, as a figure's savefig would

    monkeypatch.setattr(fm, "timed_run", replaced)
    assert fm.main(["--only", "fig15", "--preset", "tiny", "--out", str(out)]) == 2
    err = capsys.readouterr().err
    assert err.startswith("python -m figures: error: cannot write the figures into") and "Traceback" not in err
