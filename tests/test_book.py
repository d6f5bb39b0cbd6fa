"""The offline handout (`dev.py book`): embedded figures, no network, links resolve, no tracebacks."""

from __future__ import annotations

import importlib.util
import json
from html.parser import HTMLParser
from pathlib import Path

import pytest

from anyres_tutorial import ROOT

# the handout builder is a build tool beside dev.py (tools/book.py), not part of the library
_spec = importlib.util.spec_from_file_location("book", ROOT / "tools" / "book.py")
book = importlib.util.module_from_spec(_spec)
_spec.loader.exec_module(book)

# Fast notebooks: figures (02), a packing walk-through with exercise stubs (07), the explorers (14).
BUILT = ["02_tiling_basics", "07_navit_packing", "14_grid_explorer"]


class _Page(HTMLParser):
    def __init__(self):
        super().__init__()
        self.scripts, self.hrefs, self.imgs, self.links = [], [], [], []

    def handle_starttag(self, tag, attrs):
        a = dict(attrs)
        if tag == "script" and a.get("src"):
            self.scripts.append(a["src"])
        if tag == "a" and a.get("href"):
            self.hrefs.append(a["href"])
        if tag == "img":
            self.imgs.append(a.get("src") or "")
        if tag == "link" and a.get("href"):
            self.links.append(a["href"])


def _parse(path: Path) -> _Page:
    page = _Page()
    page.feed(path.read_text())
    return page


@pytest.fixture(scope="module")
def handout(tmp_path_factory):
    mp = pytest.MonkeyPatch()
    mp.setenv("ANYRES_FAST", "1")
    mp.setenv("MPLBACKEND", "Agg")  # what dev.py used to force: the build must still get inline figures
    out = tmp_path_factory.mktemp("book")
    try:
        book.build(out, [book.NOTEBOOK_DIR / f"{n}.ipynb" for n in BUILT], timeout=600, log=lambda *_: None)
    finally:
        mp.undo()
    return out


def _stub_cells(name: str) -> int:
    nb = json.loads((book.NOTEBOOK_DIR / f"{name}.ipynb").read_text())
    return sum("raises-exception" in c.get("metadata", {}).get("tags", []) for c in nb["cells"])


@pytest.mark.slow
@pytest.mark.parametrize("name", BUILT)
def test_page_has_its_figures_and_no_traceback(handout, name):
    text = (handout / f"{name}.html").read_text()
    page = _parse(handout / f"{name}.html")
    pngs = [s for s in page.imgs if s.startswith("data:image/png;base64,") and len(s) > 100]
    assert pngs, f"{name}: no embedded PNG figure"
    assert "&lt;Figure size" not in text, f"{name}: a figure was printed as text instead of drawn"
    assert "Traceback" not in text, f"{name}: an error output is shown"
    assert text.count(book.STUB_NOTE.split(":")[0]) >= _stub_cells(name)


@pytest.mark.slow
def test_pages_load_nothing_from_the_network(handout):
    for f in handout.glob("*.html"):
        page = _parse(f)
        remote = [s for s in page.scripts + page.links if "://" in s or s.startswith("//")]
        assert not remote, f"{f.name} loads {remote}"
        text = f.read_text()
        for cdn in ("cdnjs", "unpkg", "jsdelivr", "require.js", "embed-amd"):
            assert cdn not in text, f"{f.name} mentions {cdn}"
        assert book.WIDGET_VIEW not in text, f"{f.name} still holds a live widget view"


@pytest.mark.slow
def test_every_local_link_resolves(handout):
    for f in handout.glob("*.html"):
        for href in _parse(f).hrefs:
            if href.startswith(("http://", "https://", "mailto:", "#")):
                continue
            target = href.split("#", 1)[0]
            assert (handout / target).is_file(), f"{f.name}: dead link {href}"


@pytest.mark.slow
def test_index_links_every_page_in_order(handout):
    hrefs = [h for h in _parse(handout / "index.html").hrefs
             if h.endswith(".html") and h not in ("README.html", "index.html")]
    assert list(dict.fromkeys(hrefs)) == [f"{n}.html" for n in BUILT]  # the sidebar, then the contents
    assert hrefs[len(BUILT):] == [f"{n}.html" for n in BUILT]
    assert "README.html" in _parse(handout / "index.html").hrefs
    assert (handout / "README.html").is_file()


@pytest.mark.slow
def test_explorer_page_is_a_static_snapshot(handout):
    text = (handout / "14_grid_explorer.html").read_text()
    assert text.count('class="handout-widget"') >= 2
    assert book.LIVE_COMMAND in text


def test_snapshot_shows_the_explorers_pictures():
    """The explorers' pictures are ``Picture`` widgets (anywidget): the snapshot draws them like an Image."""
    import base64

    png = base64.b64encode(b"\x89PNG fake").decode()
    state = {"box": {"model_name": "VBoxModel", "state": {"children": ["IPY_MODEL_pic", "IPY_MODEL_dd"]}},
             "pic": {"model_name": "AnyModel", "state": {"_anyres_picture": True},
                     "buffers": [{"path": ["value"], "encoding": "base64", "data": png}]},
             "dd": {"model_name": "DropdownModel", "state": {"description": "Method", "index": 0,
                                                              "_options_labels": ["llava_next"]}}}
    out = book.static_widget("box", state)
    assert f'<img src="data:image/png;base64,{png}">' in out and "Method llava_next" in out


def test_links_are_rewritten():
    md = ("see [next](03_llava_next_anyres.ipynb#top), [x](05_deepseek_vl2_and_internvl.ipynb), "
          "[r](../README.md)")
    out = book.rewrite_links(md, {"03_llava_next_anyres"})
    assert out == "see [next](03_llava_next_anyres.html#top), [x](index.html), [r](README.html)"
    # the repository README links notebooks from the root: the pages of the handout are flat
    assert book.rewrite_links("[s](notebooks/03_llava_next_anyres.ipynb)", {"03_llava_next_anyres"}) == (
        "[s](03_llava_next_anyres.html)")


def test_descriptions_cover_every_notebook():
    desc = book.descriptions()
    assert [p.name for p in book.notebooks()] == sorted(desc)


# ---- solutions, student copy, navigation, print ------------------------------------------------------


@pytest.mark.parametrize("path", book.notebooks(), ids=lambda p: p.stem)
def test_every_exercise_stub_has_one_solution_block(path):
    import nbformat

    nb = nbformat.read(path, as_version=4)
    blocks = book.solution_cells(nb)
    assert len(blocks) == _stub_cells(path.stem), f"{path.name}: {len(blocks)} solutions for the stubs"
    for block in blocks:  # a heading and at least one solution cell, none of them a stub
        assert len(block) >= 2
        assert not any("raises-exception" in nb.cells[i].metadata.get("tags", []) for i in block)


@pytest.mark.slow
def test_solutions_are_folded_by_default(handout):
    import nbformat

    for name in BUILT:
        text = (handout / f"{name}.html").read_text()
        nb = nbformat.read(book.NOTEBOOK_DIR / f"{name}.ipynb", as_version=4)
        n = len(book.solution_cells(nb))
        assert text.count('<details class="handout-solution">') == n, name
        assert text.count("<details") == text.count("</details>")
        assert "<p><strong>Solution</strong></p>" not in text  # the heading became the fold's summary


def test_hidden_solutions_and_the_student_copy(tmp_path):
    import nbformat

    path = book.NOTEBOOK_DIR / "07_navit_packing.ipynb"
    nb = nbformat.read(path, as_version=4)
    n_cells, blocks = len(nb.cells), book.solution_cells(nb)
    solution_code = [nb.cells[i].source for b in blocks for i in b[1:]]
    cleaned, folds = book.clean(nb, {"07_navit_packing"}, "hidden")
    assert folds == [] and len(cleaned.cells) == n_cells - sum(map(len, blocks))
    page = book.to_html(cleaned, "07")
    assert "Solution" not in page and "(solution below)" not in page
    assert not any(code.strip() and code.strip()[:60] in page for code in solution_code)
    written = book.student_copy(tmp_path, [path], log=lambda *_: None)
    copy = nbformat.read(written[0], as_version=4)
    nbformat.validate(copy)
    assert _stub_cells("07_navit_packing") == sum(
        "raises-exception" in c.metadata.get("tags", []) for c in copy.cells)  # the stubs stay
    assert not any(c.cell_type == "markdown" and c.source.strip() == book.SOLUTION_MARK for c in copy.cells)
    assert all(c.get("id") for c in copy.cells)
    with pytest.raises(ValueError, match="solutions"):
        book.clean(nbformat.read(path, as_version=4), set(), "nope")


@pytest.mark.slow
def test_pages_navigate_like_a_book(handout):
    import re

    stamp = book.build_stamp()
    for f in [*(handout / f"{n}.html" for n in BUILT), handout / "index.html", handout / "README.html"]:
        text = f.read_text()
        side = text.split('<nav class="handout-sidebar">', 1)[1].split("</nav>", 1)[0]
        assert [f"{n}.html" for n in BUILT] == re.findall(r'href="(\d\d_[\w]+\.html)"', side), f.name
        assert stamp.split(", built")[0] in text, f"{f.name}: no build stamp"
        assert 'id="projector"' in text and "@media print" in text and "Noto Sans CJK SC" in text
        assert "max-width: 75ch" in text
    page = (handout / "07_navit_packing.html").read_text()
    toc = page.split('<nav class="handout-toc">', 1)[1].split("</nav>", 1)[0]
    steps = re.findall(r'<h2 id="([^"]+)"', page)
    assert [a for a in re.findall(r'href="#([^"]+)"', toc)] == steps and any("Step" in s for s in steps)


@pytest.mark.slow
def test_no_path_of_the_building_machine_in_the_pages(handout):
    import sys

    for f in handout.glob("*.html"):
        text = f.read_text()
        for path in {str(book.ROOT), sys.prefix, str(Path.home())}:
            assert path not in text, f"{f.name} prints {path}"


def test_hide_paths():
    import sys

    text = f"cache {Path.home()}/.cache/x, venv {sys.prefix}/bin/python, repo {book.ROOT}/data"
    out = book.hide_paths(text)
    assert "<python environment>/bin/python" in out and "<repository>/data" in out and "~/.cache/x" in out


@pytest.mark.slow
@pytest.mark.browser
def test_print_keeps_code_inside_a4(handout, tmp_path):
    """Print preview (Chromium's print media at the width of an A4 page with 15 mm margins): no code block,
    output or picture is wider than the page, and the sidebar is not printed. Also writes the PDF."""
    import os

    chromium = Path("/usr/bin/chromium")
    try:
        from playwright.sync_api import sync_playwright
    except ImportError:
        sync_playwright = None
    if not chromium.exists() or sync_playwright is None:
        if os.environ.get("ANYRES_REQUIRE_BROWSER") == "1":
            pytest.fail("ANYRES_REQUIRE_BROWSER=1 but Chromium or playwright is missing")
        pytest.skip("needs /usr/bin/chromium and playwright")
    a4_css_px = round((210 - 2 * 15) / 25.4 * 96)  # the printable width of A4 in CSS px
    with sync_playwright() as pw:
        browser = pw.chromium.launch(executable_path=str(chromium), headless=True, args=["--no-sandbox"])
        try:
            page = browser.new_page(viewport={"width": a4_css_px, "height": 1000})
            for name in BUILT:
                page.goto((handout / f"{name}.html").as_uri())
                page.emulate_media(media="print")
                wide = page.evaluate("""(limit) => [...document.querySelectorAll(
                    'pre, .jp-OutputArea-output, .jp-InputArea-editor, img, table')]
                    .filter(e => e.offsetParent !== null)
                    .filter(e => e.getBoundingClientRect().right > limit + 1
                                 || e.scrollWidth > e.clientWidth + 1)
                    .map(e => e.tagName + ' ' + (e.textContent || '').slice(0, 60))""", a4_css_px)
                assert not wide, (name, wide[:5])
                assert not page.locator("nav.handout-sidebar").is_visible()
            page.goto((handout / "07_navit_packing.html").as_uri())
            page.pdf(path=str(tmp_path / "07_navit_packing.pdf"), format="A4")
        finally:
            browser.close()
