"""The layering is a test (issue 7 item 6, issue 18 item 5): imports across the house follow

    figures -> theory -> toymodels;  in toymodels: data <- models/sae <- train <- cli

Never: toymodels importing theory or figures; theory importing figures; toymodels.data
importing models or the SAEs (directly or through another module); the measurements importing
the trainer; the core importing the CLI; an import circle anywhere in toymodels, theory or
figures. Imports are read with ``ast`` from every file of the three packages, function-level
(lazy) imports included — a lazy import is still a dependency. The top of ``toymodels/`` reads
like a table of contents: at most 12 modules, the rest in subpackages.
"""
from __future__ import annotations

import ast
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]
PKG = ROOT / "toymodels"
HOUSE = ("toymodels", "theory", "figures")
MAX_TOP_LEVEL_MODULES = 12


def _module_name(path: Path) -> str:
    parts = list(path.relative_to(ROOT).with_suffix("").parts)
    if parts[-1] == "__init__":
        parts.pop()
    return ".".join(parts)


def _modules() -> dict[str, Path]:
    """Every module of the house: toymodels, theory and figures (PKG's siblings of those names)."""
    roots = [PKG] + [PKG.parent / name for name in HOUSE if name != PKG.name]
    return {_module_name(p): p for root in roots if root.is_dir() for p in sorted(root.rglob("*.py"))}


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
    """Edges between the house's modules (a module's own package __init__ excluded)."""
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


CLI = ("toymodels.cli", "toymodels.sae.cli", "toymodels.__main__")


def _is_cli(name: str) -> bool:
    return any(name == c or name.startswith(c + ".") for c in CLI)


def test_the_parser_sees_the_package():
    g = graph()
    assert {"toymodels.train.loop", "toymodels.data.features", "toymodels.train.runs", "toymodels.sae.base"} <= set(g)
    assert "toymodels.train.runs" in g["toymodels.train.loop"] and "toymodels.data.features" in g["toymodels"]
    assert {"theory.registry", "theory.sae.geometry", "figures.runner"} <= set(g)
    assert "toymodels.measures.cosines" in g["theory.sae.geometry"]


def test_toymodels_never_imports_theory_or_figures():
    bad = []
    for name, path in _modules().items():
        if name.split(".")[0] != "toymodels":
            continue
        for imp in imports_of(path, name):
            if imp.split(".")[0] in ("theory", "figures"):
                bad.append(f"{name} imports {imp}")
    assert not bad, bad


def test_theory_never_imports_figures():
    bad = [f"{name} imports {imp}" for name, path in _modules().items() if name.split(".")[0] == "theory"
           for imp in imports_of(path, name) if imp.split(".")[0] == "figures"]
    assert not bad, bad


def test_the_top_of_toymodels_reads_like_a_table_of_contents():
    top = sorted(p.name for p in PKG.glob("*.py"))
    assert len(top) <= MAX_TOP_LEVEL_MODULES, top
    subpackages = sorted(p.parent.name for p in PKG.glob("*/__init__.py"))
    assert {"data", "train", "measures", "research", "sae", "sweep", "cli"} <= set(subpackages), subpackages


@pytest.mark.parametrize("old, new", [
    ("toymodels.spd", "toymodels.research.spd"),
    ("toymodels.runs", "toymodels.train.runs"),
    ("toymodels.metrics", "toymodels.measures.metrics"),
    ("toymodels.accel.fused", "toymodels.train.accel.fused"),
    ("toymodels.activations", "toymodels.data.activations"),
])
def test_moved_modules_still_import_by_their_old_names(old, new):
    """The README's and older scripts' import paths keep working: the same module object."""
    code = f"import importlib; a = importlib.import_module({old!r}); b = importlib.import_module({new!r}); print(a is b)"
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, cwd=ROOT, timeout=120)
    assert out.returncode == 0, out.stderr[-2000:]
    assert out.stdout.strip() == "True"


@pytest.mark.parametrize(
    "module, forbidden",
    [
        ("toymodels.data.features", ("toymodels.models", "toymodels.sae", "toymodels.train")),
        ("toymodels.data.hierarchy", ("toymodels.models", "toymodels.sae", "toymodels.train")),
        ("toymodels.data.activations", ("toymodels.models", "toymodels.sae", "toymodels.train")),
        ("toymodels.measures.metrics", ("toymodels.train",)),
        ("toymodels.measures.cosines", ("toymodels.train", "toymodels.sae")),
    ],
)
def test_lower_layers_do_not_reach_upper_ones(module, forbidden):
    paths = reachable(graph(), module)
    bad = [" -> ".join(p) for m, p in paths.items() if any(m == f or m.startswith(f + ".") for f in forbidden)]
    assert not bad, bad


def test_the_core_never_imports_the_cli():
    g = graph()
    bad = [f"{m} imports {d}" for m, deps in g.items()
           if m.startswith("toymodels.") and not _is_cli(m) for d in deps if _is_cli(d)]
    # the package __init__ is core too, but may not import the CLI either
    bad += [f"toymodels imports {d}" for d in g.get("toymodels", ()) if _is_cli(d)]
    assert not bad, bad


def test_no_import_cycle():
    """No circle among the modules of toymodels, theory and figures (a package importing its own submodules, and those
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
        "or m in ('toymodels.cli', 'toymodels.sae.cli') or m.startswith('toymodels.cli.')))"
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


def test_the_checker_sees_a_circle_in_theory(tmp_path, monkeypatch):
    """A circle between two theory topics (the old interference <-> sae.geometry one) is caught."""
    (tmp_path / "toymodels").mkdir()
    (tmp_path / "toymodels" / "__init__.py").write_text("")
    for pkg in ("theory", "theory/interference", "theory/sae"):
        (tmp_path / pkg).mkdir()
        (tmp_path / pkg / "__init__.py").write_text("")
    (tmp_path / "theory/interference/claims.py").write_text("def f():\n    from theory.sae.geometry import g\n")
    (tmp_path / "theory/sae/geometry.py").write_text("from ..interference.claims import f\n")
    monkeypatch.setattr(sys.modules[__name__], "ROOT", tmp_path)
    monkeypatch.setattr(sys.modules[__name__], "PKG", tmp_path / "toymodels")
    assert "theory.sae.geometry" in graph()["theory.interference.claims"]
    with pytest.raises(AssertionError):
        test_no_import_cycle()
