"""Every figure script runs at its tiny preset and writes real PNG files."""
import pytest

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
