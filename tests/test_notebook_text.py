"""Notebook text: each title's number matches its file name, other notebooks are referred to by a titled link
(never "notebook 07"), and every relative .ipynb link points to a file that exists."""

from __future__ import annotations

import json
import re
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parent.parent
NB_DIR = ROOT / "notebooks"
NOTEBOOKS = sorted(NB_DIR.glob("*.ipynb"))

# "notebook 07", "notebooks 02–06", "Notebook 7", "notebooks 02, 03": a bare number instead of a titled link
BARE_REF = re.compile(r"\bnotebooks?\s+\d", flags=re.I)
# markdown links [text](target.ipynb) or [text](target.ipynb#anchor); the text is group 1, the path group 2
LINK = re.compile(r"\[([^\[\]]*)\]\(([^)\s]+?\.ipynb)(#[^)]*)?\)")


def _markdown(nb: Path) -> list[str]:
    cells = json.loads(nb.read_text())["cells"]
    return ["".join(c["source"]) for c in cells if c["cell_type"] == "markdown"]


def bare_references(text: str) -> list[str]:
    """The bare "notebook NN" phrases in ``text`` and the links whose text is or starts with a number
    ("[07](...)", "[07 · NaViT packing](...)"): numbers change when a notebook is inserted, titles do not."""
    found = [m.group(0) for m in BARE_REF.finditer(text)]
    found += [m.group(0) for m in LINK.finditer(text) if re.match(r"\s*\d+\b", m.group(1))]
    return found


def broken_links(text: str, base: Path) -> list[str]:
    """Relative .ipynb link targets in ``text`` that do not exist relative to ``base``."""
    out = []
    for m in LINK.finditer(text):
        target = m.group(2)
        if re.match(r"[a-z]+://", target):
            continue
        if not (base / target).is_file():
            out.append(target)
    return out


def test_the_checks_catch_what_they_should():
    """The helpers flag a bare reference and a missing file, and pass a titled link to an existing one."""
    assert bare_references("as in notebook 07, and notebooks 02–06") == ["notebook 0", "notebooks 0"]
    assert bare_references("see [07](07_navit_packing.ipynb)") == ["[07](07_navit_packing.ipynb)"]
    assert bare_references("see [07 · NaViT packing](07_navit_packing.ipynb)") == [
        "[07 · NaViT packing](07_navit_packing.ipynb)"]
    assert bare_references("see [NaViT packing](07_navit_packing.ipynb)") == []
    assert broken_links("[x](no_such_notebook.ipynb) [y](07_navit_packing.ipynb)", NB_DIR) == [
        "no_such_notebook.ipynb"]


@pytest.mark.parametrize("nb", NOTEBOOKS, ids=lambda p: p.name)
def test_title_number_matches_file_name(nb):
    first = json.loads(nb.read_text())["cells"][0]
    line = "".join(first["source"]).splitlines()[0]
    m = re.match(r"#\s+(\d+)\s+·\s+\S", line)
    assert first["cell_type"] == "markdown" and m, (
        f"{nb.name}: the first line must read '# NN · Title', got {line!r}")
    assert m.group(1) == nb.name.split("_", 1)[0], (
        f"{nb.name}: the title says {m.group(1)}, the file name {nb.name.split('_', 1)[0]}")


@pytest.mark.parametrize("nb", NOTEBOOKS, ids=lambda p: p.name)
def test_no_bare_notebook_numbers(nb):
    found = [(i, ref) for i, text in enumerate(_markdown(nb)) for ref in bare_references(text)]
    assert not found, (f"{nb.name}: refer to other notebooks by title with a link, e.g. "
                       f"[NaViT packing](07_navit_packing.ipynb); found (markdown cell, text) {found}")


@pytest.mark.parametrize("nb", NOTEBOOKS, ids=lambda p: p.name)
def test_notebook_links_resolve(nb):
    broken = [t for text in _markdown(nb) for t in broken_links(text, nb.parent)]
    assert not broken, f"{nb.name}: links to missing notebooks {broken}"


@pytest.mark.parametrize("doc", ["README.md", "notebooks/README.md"])
def test_readme_notebook_links_resolve(doc):
    path = ROOT / doc
    assert not broken_links(path.read_text(), path.parent), f"{doc} links to a missing notebook"
