"""The layering is a test (issue 7 item 6): imports inside the ``toymodels`` package follow

    figures -> theory -> toymodels;  in toymodels: data <- models/sae <- train <- cli

Never: toymodels importing theory or figures; toymodels.data importing models or the SAEs
(directly or through another module); toymodels.metrics importing the trainer; the core
importing the CLI; an import circle among toymodels modules. Imports are read with ``ast``
from every file of the package, function-level (lazy) imports included — a lazy import is
still a dependency.
"""
from __future__ import annotations

import ast
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]
PKG = ROOT / "toymodels"


def _module_name(path: Path) -> str:
    parts = list(path.relative_to(ROOT).with_suffix("").parts)
    if parts[-1] == "__init__":
        parts.pop()
    return ".".join(parts)


def _modules() -> dict[str, Path]:
    return {_module_name(p): p for p in sorted(PKG.rglob("*.py"))}


def _resolve(module: str, is_package: bool, level: int, target: str | None) -> str:
    """The absolute name of ``from <level dots><target> import ...`` inside ``module``."""
    if level == 0:
        return target or ""
    base = module.split(".")
    if not is_package:
        base = base[:-1]
    base = base[: len(base) - (level - 1)]
    return ".".join(base + ([target] if target else []))


def imports_of(path: Path, module: str) -> set[str]:
    """Absolute names of every module ``path`` imports (``from X import y`` adds X.y when
    X.y is a module of the package, else X)."""
    known = _modules()
    is_package = path.name == "__init__.py"
    found: set[str] = set()
    for node in ast.walk(ast.parse(path.read_text(), str(path))):
        if isinstance(node, ast.Import):
            found.update(alias.name for alias in node.names)
        elif isinstance(node, ast.ImportFrom):
            base = _resolve(module, is_package, node.level, node.module)
            subs = [f"{base}.{a.name}" for a in node.names if f"{base}.{a.name}" in known]
            found.update(subs or [base])
    return found


def graph() -> dict[str, set[str]]:
    """Edges between toymodels modules (a module's own package __init__ excluded)."""
    mods = _modules()
    out = {}
    for name, path in mods.items():
        deps = set()
        for imp in imports_of(path, name):
            # the deepest toymodels module named by the import
            parts = imp.split(".")
            while parts and ".".join(parts) not in mods:
                parts.pop()
            if parts and ".".join(parts) != name:
                deps.add(".".join(parts))
        out[name] = deps
    return out


def reachable(g: dict[str, set[str]], start: str) -> dict[str, list[str]]:
    """Every module reachable from ``start``, with one import path to it."""
    paths, todo = {start: [start]}, [start]
    while todo:
        m = todo.pop()
        for d in sorted(g.get(m, ())):
            if d not in paths:
                paths[d] = paths[m] + [d]
                todo.append(d)
    return paths


CLI = ("toymodels.cli", "toymodels.sae.cli", "toymodels.__main__", "toymodels.configargs")


def _is_cli(name: str) -> bool:
    return any(name == c or name.startswith(c + ".") for c in CLI)


def test_the_parser_sees_the_package():
    g = graph()
    assert {"toymodels.train", "toymodels.data", "toymodels.runs", "toymodels.sae.base"} <= set(g)
    assert "toymodels.runs" in g["toymodels.train"] and "toymodels.data" in g["toymodels"]


def test_toymodels_never_imports_theory_or_figures():
    bad = []
    for name, path in _modules().items():
        for imp in imports_of(path, name):
            if imp.split(".")[0] in ("theory", "figures"):
                bad.append(f"{name} imports {imp}")
    assert not bad, bad


@pytest.mark.parametrize(
    "module, forbidden",
    [
        ("toymodels.data", ("toymodels.models", "toymodels.sae", "toymodels.train")),
        ("toymodels.metrics", ("toymodels.train",)),
    ],
)
def test_lower_layers_do_not_reach_upper_ones(module, forbidden):
    paths = reachable(graph(), module)
    bad = [" -> ".join(p) for m, p in paths.items() if any(m == f or m.startswith(f + ".") for f in forbidden)]
    assert not bad, bad


def test_the_core_never_imports_the_cli():
    g = graph()
    bad = [f"{m} imports {d}" for m, deps in g.items() if not _is_cli(m) and m != "toymodels" for d in deps if _is_cli(d)]
    # the package __init__ is core too, but may not import the CLI either
    bad += [f"toymodels imports {d}" for d in g.get("toymodels", ()) if _is_cli(d)]
    assert not bad, bad


def test_no_import_cycle():
    """No circle among toymodels modules (a package importing its own submodules, and those
    importing siblings, is fine; a submodule importing its own package's __init__ back is a
    circle through the __init__ and is reported)."""
    g = graph()
    cycles = []
    for m in g:
        for d in g[m]:
            back = reachable(g, d)
            if m in back:
                cycle = [m] + back[m]
                # a package's __init__ importing its submodules: the submodule naming the
                # package only to reach a sibling (from . import x) resolves to the sibling
                cycles.append(" -> ".join(cycle))
    assert not cycles, sorted(set(cycles))[:5]


def test_importing_the_core_loads_no_cli_theory_or_figures():
    code = (
        "import sys, toymodels, toymodels.train, toymodels.runs, toymodels.data, toymodels.metrics, toymodels.sae;"
        "print(sorted(m for m in sys.modules if m.split('.')[0] in ('theory', 'figures') "
        "or m in ('toymodels.cli', 'toymodels.sae.cli', 'toymodels.configargs') or m.startswith('toymodels.cli.')))"
    )
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, cwd=ROOT, timeout=120)
    assert out.returncode == 0, out.stderr[-2000:]
    assert out.stdout.strip() == "[]", out.stdout


def test_the_checker_catches_a_violation(tmp_path, monkeypatch):
    """The graph sees lazy (function-level) and relative imports — a check that cannot fail is no check."""
    fake = tmp_path / "toymodels"
    fake.mkdir()
    (fake / "__init__.py").write_text("from .data import X\n")
    (fake / "data.py").write_text("def f():\n    from .helper import g\n")
    (fake / "helper.py").write_text("from .models import M\nimport theory.tms\n")
    (fake / "models.py").write_text("from . import data\n")
    monkeypatch.setattr(sys.modules[__name__], "ROOT", tmp_path)
    monkeypatch.setattr(sys.modules[__name__], "PKG", fake)
    g = graph()
    assert g["toymodels.data"] == {"toymodels.helper"} and "toymodels.models" in g["toymodels.helper"]
    assert "toymodels.models" in reachable(g, "toymodels.data")
    with pytest.raises(AssertionError):
        test_no_import_cycle()
    with pytest.raises(AssertionError):
        test_toymodels_never_imports_theory_or_figures()
