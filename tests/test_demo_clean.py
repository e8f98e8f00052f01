"""`make demo` changes nothing tracked: its code path runs in a fresh clone and `git status
--porcelain` stays empty.

On a second CPU the demo used to end with 11 tracked files modified (the gallery PNGs and
figures/out/theory_report.md: their pixels and numbers follow the CPU's vectorised kernels),
because it wrote into the tracked gallery. Here the clone is of this checkout as it is now
(committed state plus the working tree's changes, committed inside the clone), and the real
`make demo` recipe runs in it at the tiny preset on one figure and a few claims; the clone's
own `figures`/`theory` packages are the ones imported (the working directory comes first on
``sys.path``), so a default output path inside the package would show up as a change.
"""
import os
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parent.parent

pytestmark = pytest.mark.skipif(
    shutil.which("git") is None or shutil.which("make") is None or not (REPO / ".git").exists(),
    reason="needs git, make and a git checkout",
)


def _git(cwd: Path, *args: str) -> str:
    return subprocess.run(["git", *args], cwd=cwd, check=True, capture_output=True, text=True).stdout


def clone_of_working_tree(dest: Path) -> Path:
    """A clone of :data:`REPO` whose HEAD is the working tree as it is: tracked changes,
    deletions and untracked (not ignored) files, committed in the clone only."""
    subprocess.run(["git", "clone", "--quiet", "--no-hardlinks", str(REPO), str(dest)], check=True)
    changed = _git(REPO, "diff", "--name-only", "-z", "HEAD").split("\0")
    untracked = _git(REPO, "ls-files", "--others", "--exclude-standard", "-z").split("\0")
    for rel in filter(None, changed + untracked):
        src, dst = REPO / rel, dest / rel
        if src.is_file():
            dst.parent.mkdir(parents=True, exist_ok=True)
            shutil.copy2(src, dst)
        elif dst.exists() or dst.is_symlink():
            dst.unlink()
    _git(dest, "add", "-A")
    if _git(dest, "status", "--porcelain"):
        _git(dest, "-c", "user.name=test", "-c", "user.email=test@example.invalid", "commit", "-q", "-m", "working tree")
    assert _git(dest, "status", "--porcelain") == ""
    return dest


def _tracked_stamps(repo: Path) -> dict[str, int]:
    """Each tracked file's modification time: a file rewritten with the same bytes (the same
    CPU as the one that made the gallery) still counts as written."""
    return {rel: (repo / rel).stat().st_mtime_ns for rel in filter(None, _git(repo, "ls-files", "-z").split("\0"))
            if (repo / rel).is_file()}


def test_make_demo_leaves_a_fresh_clone_clean(tmp_path):
    clone = clone_of_working_tree(tmp_path / "clone")
    stamps = _tracked_stamps(clone)
    env = {**os.environ, "PYTHONDONTWRITEBYTECODE": "1", "MPLBACKEND": "Agg"}
    cmd = ["make", "--no-print-directory", "demo", f"PY={sys.executable}", "STAMP=", "DEVICE=cpu",
           "DEMO_PRESET=tiny", "DEMO_BUDGET=tiny", "DEMO_FIGURES=fig15", "DEMO_CLAIMS=linalg"]
    done = subprocess.run(cmd, cwd=clone, env=env, capture_output=True, text=True, timeout=300)
    assert done.returncode == 0, done.stdout[-3000:] + done.stderr[-3000:]
    assert _git(clone, "status", "--porcelain", "--untracked-files=all") == ""
    after = _tracked_stamps(clone)
    assert [rel for rel in stamps if after.get(rel) != stamps[rel]] == [], "tracked files written by make demo"
    assert "make demo: figures in out/figures/" in done.stdout  # it says where its outputs went
    assert (clone / "out" / "figures" / "fig15_equal_means.png").is_file()
    for name in ("theory_report.md", "theory_report.json"):
        assert (clone / "out" / name).is_file()
