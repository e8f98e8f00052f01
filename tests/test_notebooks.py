"""The tutorials in examples/*.ipynb: stored without outputs, listed in the docs, and each one
runs top to bottom (nbclient, kernel python3) at the tiny sizes its parameter cell picks when
TOYMODELS_TINY=1, with the kernel's working directory a temporary folder."""
from __future__ import annotations

import re
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]
NOTEBOOKS = sorted((ROOT / "examples").glob("*.ipynb"))
TUTORIALS = ("01_superposition.ipynb", "02_sae_on_your_activations.ipynb", "03_theory_registry.ipynb")
CELL_TIMEOUT_S = 300  # per cell; a tiny notebook takes seconds of CPU, but CI machines can be loaded


def _ids(paths: list[Path]) -> list[str]:
    return [p.stem for p in paths]


def test_the_tutorials_exist() -> None:
    assert {p.name for p in NOTEBOOKS} >= set(TUTORIALS)


@pytest.mark.parametrize("path", NOTEBOOKS, ids=_ids(NOTEBOOKS))
def test_notebook_stored_without_outputs(path: Path) -> None:
    nbformat = pytest.importorskip("nbformat")
    nb = nbformat.read(path, as_version=4)
    nbformat.validate(nb)
    code = [c for c in nb.cells if c.cell_type == "code"]
    assert code, f"{path.name} has no code cells"
    for i, cell in enumerate(code):
        assert cell.get("outputs") == [], f"{path.name}: code cell {i} is stored with outputs"
        assert cell.get("execution_count") is None, f"{path.name}: code cell {i} has an execution count"
    params = [c for c in code if "parameters" in c.metadata.get("tags", [])]
    assert len(params) == 1 and "TOYMODELS_TINY" in params[0].source, (
        f"{path.name} needs one cell tagged 'parameters' that reads TOYMODELS_TINY")
    assert nb.metadata.get("kernelspec", {}).get("name") == "python3"


def test_mkdocs_lists_every_notebook() -> None:
    text = (ROOT / "mkdocs.yml").read_text()
    nav = text[text.index("\nnav:"):]
    listed = set(re.findall(r"tutorials/([\w.-]+\.ipynb)", nav))
    assert listed == {p.name for p in NOTEBOOKS}, (
        f"mkdocs.yml's nav must list every notebook of examples/ as tutorials/<name>: "
        f"missing {sorted({p.name for p in NOTEBOOKS} - listed)}, unknown {sorted(listed - {p.name for p in NOTEBOOKS})}")


def _files(folder: Path) -> set[str]:
    return {str(p.relative_to(folder)) for p in folder.rglob("*") if "__pycache__" not in p.parts}


@pytest.mark.parametrize("path", NOTEBOOKS, ids=_ids(NOTEBOOKS))
def test_notebook_runs(path: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    nbformat = pytest.importorskip("nbformat")
    nbclient = pytest.importorskip("nbclient")
    pytest.importorskip("ipykernel")
    monkeypatch.setenv("TOYMODELS_TINY", "1")  # the kernel inherits the environment
    monkeypatch.setenv("OMP_NUM_THREADS", "1")  # no spin-waiting threads on a shared CI machine
    monkeypatch.setenv("MPLBACKEND", "agg")
    monkeypatch.setenv("TMPDIR", str(tmp_path))  # tempfile.mkdtemp inside the notebook lands here
    examples_before = _files(ROOT / "examples")
    nb = nbformat.read(path, as_version=4)
    client = nbclient.NotebookClient(
        nb, timeout=CELL_TIMEOUT_S, kernel_name="python3", resources={"metadata": {"path": str(tmp_path)}},
    )
    client.execute()  # raises CellExecutionError, naming the cell, when any cell fails
    code = [c for c in nb.cells if c.cell_type == "code"]
    assert all(c.execution_count is not None for c in code), "every code cell ran"
    errors = [o for c in code for o in c.outputs if o.output_type == "error"]
    assert not errors
    assert _files(ROOT / "examples") == examples_before, "the notebook wrote into examples/"
