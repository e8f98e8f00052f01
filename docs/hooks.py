"""mkdocs hook: brings files that live outside docs/ into the site at build time, so that no
copies are committed: the tutorials (examples/*.ipynb, rendered by mkdocs-jupyter, not
executed), the tracked gallery (gallery/*.png and the theory report) and a gallery page made
from the README's "Figure gallery" section (its captions and commands, one source of truth).
It also renders the docstrings' reST roles (:func:`x`, :class:`x`, ...) as plain code."""
from __future__ import annotations

import re
import shutil
import tempfile
from pathlib import Path

from mkdocs.plugins import event_priority
from mkdocs.structure.files import File, Files

ROOT = Path(__file__).resolve().parents[1]
GALLERY = ROOT / "gallery"
GALLERY_FILES = ("*.png", "theory_report.md", "theory_report.json")


ROLE = re.compile(r":(?:func|class|mod|meth|attr|data|exc|obj|const|py:\w+):<code>~?\.?([^<]*)</code>")


def gallery_page(readme: str) -> str:
    """The README's "## Figure gallery" section as a page (its links are relative to the
    repository root, and so to the site root, where gallery/ is placed). A link to a gallery
    file that is not there (not yet made by ``make gallery``) is kept as its text."""
    m = re.search(r"^## Figure gallery\n(.*?)(?=^## )", readme, flags=re.S | re.M)
    if m is None:
        raise ValueError("README.md has no '## Figure gallery' section for the docs' gallery page")

    def keep(link: re.Match) -> str:
        return link.group(0) if (ROOT / link.group(2)).is_file() else link.group(1)

    body = re.sub(r"(?<!!)\[([^\]]*)\]\((gallery/[^)\s]+)\)", keep, m.group(1))
    return "# Figure gallery\n" + body


def on_page_content(html: str, page, config, files) -> str:  # noqa: ANN001 - mkdocs' signature
    """``:func:`x``` in a docstring arrives as ``:func:<code>x</code>``: keep the code."""
    return ROLE.sub(r"<code>\1</code>", html)


_STAGE: list[Path] = []


@event_priority(100)  # before mkdocs-jupyter's on_files, which turns the .ipynb files into pages
def on_files(files: Files, config) -> Files:  # noqa: ANN001 - mkdocs' signature
    # mkdocs-jupyter's page wrapper needs a notebook backed by src_dir/src_uri (a generated
    # File's abs_src_path is lost through it): src_dir is a temporary folder whose tutorials/
    # is a link to examples/ (nothing is copied).
    stage = Path(tempfile.mkdtemp(prefix="toymodels-docs-"))
    _STAGE.append(stage)
    (stage / "tutorials").symlink_to(ROOT / "examples", target_is_directory=True)
    for nb in sorted((ROOT / "examples").glob("*.ipynb")):
        files.append(File(f"tutorials/{nb.name}", str(stage), config["site_dir"], config["use_directory_urls"]))
    for pattern in GALLERY_FILES:
        for f in sorted(GALLERY.glob(pattern)):
            files.append(File.generated(config, f"gallery/{f.name}", abs_src_path=str(f)))
    files.append(File.generated(config, "gallery.md", content=gallery_page((ROOT / "README.md").read_text())))
    return files


def on_post_build(config) -> None:  # noqa: ANN001 - mkdocs' signature
    while _STAGE:
        shutil.rmtree(_STAGE.pop(), ignore_errors=True)  # the link only, never what it points to
