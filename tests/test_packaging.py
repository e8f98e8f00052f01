"""What an installed toymodels ships besides its modules: the py.typed marker (PEP 561), so
type checkers read the package's annotations."""
import importlib.resources
import tomllib
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]


def test_py_typed_is_shipped():
    assert importlib.resources.files("toymodels").joinpath("py.typed").is_file()
    pyproject = tomllib.loads((ROOT / "pyproject.toml").read_text())
    assert "py.typed" in pyproject["tool"]["setuptools"]["package-data"]["toymodels"]
