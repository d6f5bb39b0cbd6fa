"""The offline HTML handout: ``python tools/book.py [--out build] [notebook ...]``.

``python3 dev.py book`` calls this. Each notebook is executed on a fresh kernel and written as one
self-contained HTML page; ``index.html`` lists the pages in order with the one-line description of the
README's notebook table, and ``README.html`` is the README itself. The pages need no network:

- Figures: the kernel keeps IPython's inline matplotlib backend (``MPLBACKEND`` is removed from the
  kernel's environment, since ``MPLBACKEND=Agg`` makes every figure print as ``<Figure size ...>``), so each
  figure is a PNG embedded in the page.
- Explorers: rendering live widgets in a static page needs require.js and the widget manager's
  ``embed-amd.js``, which nbconvert fetches from CDNs and which no pip package ships. The handout instead
  replaces every widget output with a static snapshot of the explorer as it stood after the notebook ran
  (its pictures, tables and the values of its controls, read from the saved widget state) under a note that
  the explorer runs live in JupyterLab (``python3 dev.py lab``). The saved widget state itself is dropped.
- No script, MathJax or Mermaid loader is written into the page (the notebooks use neither).
- Links: ``NN_name.ipynb`` becomes ``NN_name.html`` (``index.html`` when that page is not part of the
  build) and ``../README.md`` becomes ``README.html``.
- Exercise stubs: the outputs of cells tagged ``raises-exception`` (they raise on purpose until the learner
  fills them in) are replaced by a one-line note, so no traceback appears.
- Solutions (a "**Solution**" cell and the cells after it up to the next markdown cell): ``--solutions
  shown`` as they are, ``folded`` (default) inside ``<details>``, ``hidden`` left out (``dev.py book
  --student``). ``--student-copy DIR`` writes the notebooks without their solution cells instead (no run).
- Navigation like a book: a sidebar with every page, an "On this page" list of the Steps, a build stamp
  (commit, date), a readable column, a projector switch (large type, no script: a checkbox and CSS), a print
  stylesheet that wraps code inside an A4 page, a CJK font fallback for the glossary's terms.
- No paths of the machine that built it: the repository, the environment and the home folder in outputs are
  written as ``<repository>``, ``<python environment>`` and ``~``.
- Progress: one line when a notebook starts and one when it ends, with its time; a line every 15 s while a
  long notebook runs.
"""

from __future__ import annotations

import argparse
import base64
import datetime
import html
import os
import re
import subprocess
import sys
import time
from collections.abc import Iterator, Sequence
from contextlib import contextmanager
from pathlib import Path

from anyres_tutorial import ROOT

NOTEBOOK_DIR = ROOT / "notebooks"
README = ROOT / "README.md"
LIVE_COMMAND = "python3 dev.py lab"
WIDGET_VIEW = "application/vnd.jupyter.widget-view+json"
WIDGET_STATE = "application/vnd.jupyter.widget-state+json"
STUB_NOTE = "Exercise stub: this cell raises on purpose until you write your answer (solution below)."
SOLUTION_MARK = "**Solution**"
SOLUTION_MODES = ("shown", "folded", "hidden")
FONTS = ('-apple-system, "Segoe UI", Roboto, "Helvetica Neue", Arial, "Noto Sans", "Noto Sans CJK SC", '
         '"Source Han Sans SC", "PingFang SC", "Hiragino Sans GB", "Microsoft YaHei", "WenQuanYi Micro Hei", '
         'sans-serif')

_TEMPLATE = r"""{%- extends 'lab/index.html.j2' -%}
{%- block html_head_js -%}{%- endblock html_head_js -%}
{%- block jupyter_widgets -%}{%- endblock jupyter_widgets -%}
{%- block html_head_js_mathjax -%}{%- endblock html_head_js_mathjax -%}
{%- block html_head_js_mermaidjs -%}{%- endblock html_head_js_mermaidjs -%}
{%- block extra_css -%}<style type="text/css">HANDOUT_CSS</style>{%- endblock extra_css -%}
"""

#: the handout's own style (tools/book.css), on the notebook pages and on the index and README pages alike
HANDOUT_CSS = Path(__file__).with_name("book.css").read_text().replace("FONTS", FONTS)
_TEMPLATE = _TEMPLATE.replace("HANDOUT_CSS", HANDOUT_CSS)


def notebooks() -> list[Path]:
    """Every tutorial notebook, in order."""
    return sorted(NOTEBOOK_DIR.glob("[0-9][0-9]_*.ipynb"))


def descriptions(readme: Path = README) -> dict[str, str]:
    """Notebook file name -> its one-line description, from the README's notebook table."""
    text = readme.read_text()
    section = text.split("## The notebooks", 1)[1].split("\n## ", 1)[0]
    rows = re.findall(r"^\|\s*`([^`]+\.ipynb)`\s*\|\s*(.*?)\s*\|\s*$", section, flags=re.M)
    return dict(rows)


def title(nb) -> str:
    """The first markdown heading of a notebook (its file name when it has none)."""
    for cell in nb.cells:
        if cell.cell_type == "markdown":
            m = re.search(r"^#\s+(.+)$", cell.source, flags=re.M)
            if m:
                return m.group(1).strip()
    return nb.metadata.get("name", "notebook")


@contextmanager
def _inline_matplotlib() -> Iterator[None]:
    """Start kernels without ``MPLBACKEND`` so that ipykernel installs its inline (PNG) backend."""
    old = os.environ.pop("MPLBACKEND", None)
    try:
        yield
    finally:
        if old is not None:
            os.environ["MPLBACKEND"] = old


def execute(path: Path, timeout: int = 1800, log=print):
    """Run a notebook top to bottom on a fresh kernel (in its own folder); return it with outputs. ``log``
    gets a progress line every 15 s (cell k of n)."""
    import nbformat
    from nbclient import NotebookClient

    nb = nbformat.read(path, as_version=4)
    n_code = sum(c.cell_type == "code" for c in nb.cells)
    state = {"done": 0, "last": time.monotonic(), "start": time.monotonic()}

    def on_cell_executed(cell, cell_index, execute_reply, **_):
        state["done"] += 1
        now = time.monotonic()
        if now - state["last"] >= 15:
            state["last"] = now
            log(f"    ... {path.name}: cell {state['done']}/{n_code}, {now - state['start']:.0f} s")

    client = NotebookClient(nb, timeout=timeout, kernel_name="python3", store_widget_state=True,
                            resources={"metadata": {"path": str(path.parent)}},
                            on_cell_executed=on_cell_executed)
    with _inline_matplotlib():
        client.execute()
    return nb


# ---- widgets -> static snapshot ---------------------------------------------------------------------------


def _image_src(entry: dict) -> str | None:
    """A data: URL for an Image widget's value, from the saved state's buffers."""
    st = entry.get("state", {})
    fmt = st.get("format", "png")
    for buf in entry.get("buffers", []):
        if buf.get("path") == ["value"]:
            data = buf["data"]
            if not data:
                return None
            if buf.get("encoding") != "base64":
                data = base64.b64encode(data.encode("latin-1")).decode()
            return f"data:image/{fmt};base64,{data}"
    value = st.get("value")
    if isinstance(value, str) and value:
        return f"data:image/{fmt};base64,{value}"
    return None


def _outputs_html(outputs: list[dict]) -> str:
    parts = []
    for out in outputs:
        data = out.get("data", {})
        if "image/png" in data:
            parts.append(f'<img src="data:image/png;base64,{data["image/png"].strip()}">')
        elif "text/html" in data:
            parts.append("".join(data["text/html"]))
        elif "text/plain" in data:
            parts.append(f"<pre>{html.escape(''.join(data['text/plain']))}</pre>")
        elif out.get("output_type") == "stream":
            parts.append(f"<pre>{html.escape(''.join(out.get('text', '')))}</pre>")
    return "".join(parts)


def _widget_html(model_id: str, state: dict, depth: int = 0) -> str:
    """Static HTML for one widget and its children (pictures, HTML, output, control values)."""
    entry = state.get(model_id)
    if entry is None or depth > 30:
        return ""
    name = entry.get("model_name", "")
    st = entry.get("state", {})
    children = [c.removeprefix("IPY_MODEL_") for c in st.get("children", []) if isinstance(c, str)]
    if children and name in ("TabModel", "AccordionModel", "StackModel"):
        pick = st.get("selected_index") or 0
        names = st.get("titles") or []
        head = " · ".join(html.escape(str(t)) for t in names)
        shown = _widget_html(children[min(pick, len(children) - 1)], state, depth + 1)
        return f'<div class="control">[{head}]</div>{shown}' if head else shown
    if children:
        inner = "".join(_widget_html(c, state, depth + 1) for c in children)
        cls = "handout-row" if name in ("HBoxModel", "GridBoxModel") else "handout-col"
        return f'<div class="{cls}">{inner}</div>'
    if name == "ImageModel" or st.get("_anyres_picture"):  # ipywidgets.Image, the explorers' Picture
        src = _image_src(entry)
        return f'<img src="{src}">' if src else ""
    if name in ("HTMLModel", "HTMLMathModel"):
        return f"<div>{st.get('value', '')}</div>"
    if name == "LabelModel":
        return f"<div>{html.escape(str(st.get('value', '')))}</div>"
    if name == "OutputModel":
        return _outputs_html(st.get("outputs", []))
    if "value" in st or "index" in st:
        value = st.get("value", st.get("index"))
        labels = st.get("_options_labels")
        if labels and "index" in st:
            idx = st["index"] if isinstance(st["index"], list) else [st["index"]]
            value = [labels[i] for i in idx if isinstance(i, int) and 0 <= i < len(labels)]
        if isinstance(value, list):
            value = ", ".join(map(str, value))
        label = st.get("description") or ""
        text = f"{label} {value}" if label else str(value)
        return f'<span class="control">[{html.escape(text.strip())}]</span>'
    return ""


def static_widget(model_id: str, state: dict) -> str:
    """The snapshot shown in place of a live explorer, with the note on how to run it live."""
    note = (f'<div class="live">Static snapshot of an interactive explorer. It runs live in JupyterLab: '
            f"<code>{LIVE_COMMAND}</code>, then open this notebook.</div>")
    return f'<div class="handout-widget">{note}{_widget_html(model_id, state)}</div>'


# ---- cleaning a notebook for the handout -------------------------------------------------------------------


def rewrite_links(markdown: str, built: set[str]) -> str:
    """``NN_x.ipynb`` (also ``notebooks/NN_x.ipynb``, as the repository README writes it) -> ``NN_x.html``
    (``index.html`` if not built); ``../README.md`` -> ``README.html``; the notebooks' own index ``README.md``
    -> the handout's ``index.html``."""

    def fix(m: re.Match) -> str:
        target, anchor = m.group(1), m.group(2) or ""
        stem = Path(target).stem
        if target.endswith(".ipynb"):
            return f"]({stem}.html{anchor})" if stem in built else "](index.html)"
        if target == "README.md":
            return f"](index.html{anchor})"
        return f"](README.html{anchor})"

    pattern = r"\]\((?:\./)?((?:\.\./|notebooks/)?[\w.-]+\.ipynb|(?:\.\./)?README\.md)(#[^)]*)?\)"
    return re.sub(pattern, fix, markdown)


def solution_cells(nb) -> list[list[int]]:
    """The solution blocks of a notebook: the indices of a "**Solution**" markdown cell and of the cells
    after it up to (not including) the next markdown cell."""
    blocks, current = [], None
    for i, cell in enumerate(nb.cells):
        if cell.cell_type == "markdown":
            current = None
            if cell.source.strip() == SOLUTION_MARK:
                current = [i]
                blocks.append(current)
        elif current is not None:
            current.append(i)
    return blocks


def without_solutions(nb):
    """``nb`` without its solution blocks (the exercise and its stub stay); in place."""
    drop = {i for block in solution_cells(nb) for i in block}
    nb.cells = [c for i, c in enumerate(nb.cells) if i not in drop]
    return nb


def machine_paths() -> list[tuple[str, str]]:
    """(path, placeholder) of the building machine, longest first: never printed in a page."""
    pairs = [(str(ROOT), "<repository>"), (sys.prefix, "<python environment>"),
             (os.path.realpath(sys.prefix), "<python environment>"), (str(Path.home()), "~")]
    base = getattr(sys, "base_prefix", sys.prefix)
    if base != sys.prefix:
        pairs.append((base, "<python>"))
    return sorted({p: r for p, r in pairs if len(p) > 1}.items(), key=lambda pr: -len(pr[0]))


def hide_paths(text: str) -> str:
    for path, placeholder in machine_paths():
        text = text.replace(path, placeholder)
    return text


def _hide_output_paths(out) -> None:
    if "text" in out:
        out["text"] = hide_paths("".join(out["text"]))
    for mime, value in out.get("data", {}).items():
        if mime.startswith("text/") or mime in ("application/json",):
            if isinstance(value, str) or isinstance(value, list):
                out["data"][mime] = hide_paths("".join(value))
    if "traceback" in out:
        out["traceback"] = [hide_paths(t) for t in out["traceback"]]


def clean(nb, built: set[str], solutions: str = "folded"):
    """Make an executed notebook fit for the offline handout (see the module docstring); in place. Returns
    the notebook and the cell ids of its solution blocks (to fold), one list per block."""
    import nbformat

    if solutions not in SOLUTION_MODES:
        raise ValueError(f"solutions must be one of {SOLUTION_MODES}, got {solutions!r}")
    widget_state = nb.metadata.pop("widgets", {}).get(WIDGET_STATE, {}).get("state", {})
    for cell in nb.cells:
        if cell.cell_type == "markdown":
            cell.source = rewrite_links(cell.source, built)
            continue
        if cell.cell_type != "code":
            continue
        if "raises-exception" in cell.metadata.get("tags", []):
            cell.outputs = [nbformat.v4.new_output("display_data", data={
                "text/html": f'<div class="handout-stub">{html.escape(STUB_NOTE)}</div>',
                "text/plain": STUB_NOTE})]
            continue
        for out in cell.outputs:
            view = out.get("data", {}).get(WIDGET_VIEW)
            if view:
                out["data"] = {"text/html": static_widget(view["model_id"], widget_state)}
            _hide_output_paths(out)
    if solutions == "hidden":
        without_solutions(nb)
        for cell in nb.cells:  # the stub's note no longer points to a solution below
            for out in cell.get("outputs", []):
                if "text/html" in out.get("data", {}):
                    out["data"]["text/html"] = out["data"]["text/html"].replace(" (solution below)", "")
        return nb, []
    folds = [[nb.cells[i].get("id") for i in block] for block in solution_cells(nb)]
    return nb, (folds if solutions == "folded" else [])


_CELL_START = re.compile(r'<div class="jp-Cell [^"]*"[^>]*id="cell-id=([^"]+)"')


def fold_solutions(page: str, folds: list[list[str]]) -> str:
    """Wrap each solution block's cells (found by their cell ids) in ``<details>``: folded until opened."""
    if not folds:
        return page
    head, main_rest = page.split("<main>", 1)
    main, tail = main_rest.rsplit("</main>", 1)
    starts = [(m.start(), m.group(1)) for m in _CELL_START.finditer(main)]
    if not starts:
        return page
    pieces = [main[:starts[0][0]]]
    cells = [(cid, main[a:(starts[k + 1][0] if k + 1 < len(starts) else len(main))])
             for k, (a, cid) in enumerate(starts)]
    first = {block[0]: block for block in folds if block}
    k = 0
    while k < len(cells):
        cid, body = cells[k]
        block = first.get(cid)
        if block is None:
            pieces.append(body)
            k += 1
            continue
        inner = []
        while k < len(cells) and cells[k][0] in block:
            # the "Solution" heading becomes the summary
            inner.append(cells[k][1] if cells[k][0] != block[0] else "")
            k += 1
        pieces.append(f'<details class="handout-solution"><summary>Solution</summary>{"".join(inner)}'
                      f"</details>\n")
    return f"{head}<main>{''.join(pieces)}</main>{tail}"


def student_copy(out: Path, paths: Sequence[Path] | None = None, log=print) -> list[Path]:
    """Write the notebooks without their solution cells (stubs kept, outputs stripped) into ``out``."""
    import nbformat

    out.mkdir(parents=True, exist_ok=True)
    written = []
    for p in [Path(p) for p in (paths if paths is not None else notebooks())]:
        nb = without_solutions(nbformat.read(p, as_version=4))
        for cell in nb.cells:
            if cell.cell_type == "markdown":
                cell.source = cell.source.replace(" (solution below)", "")
        nbformat.validate(nb)
        nbformat.write(nb, out / p.name)
        written.append(out / p.name)
    log(f"student copy ({len(written)} notebooks, solutions removed): {out}")
    return written


# ---- pages ---------------------------------------------------------------------------------------------


def _nav(order: Sequence[str], i: int, titles: dict[str, str], cls: str) -> str:
    links = []
    if i > 0:
        links.append(f'<a href="{order[i - 1]}.html">&larr; {html.escape(titles[order[i - 1]])}</a>')
    links.append('<a href="index.html">Contents</a>')
    if i + 1 < len(order):
        links.append(f'<a href="{order[i + 1]}.html">{html.escape(titles[order[i + 1]])} &rarr;</a>')
    return f'<nav class="handout {cls}">{"".join(links)}</nav>'


def build_stamp() -> str:
    """"commit abc1234 (2026-12-01), built 2026-12-07": what the pages were built from, and when."""
    def git(*a: str) -> str:
        try:
            return subprocess.run(["git", "-C", str(ROOT), *a], capture_output=True, text=True,
                                  timeout=10).stdout.strip()
        except (OSError, subprocess.SubprocessError):
            return ""

    commit, date = git("rev-parse", "--short", "HEAD"), git("log", "-1", "--format=%cd", "--date=short")
    dirty = " + local changes" if git("status", "--porcelain", "--untracked-files=no") else ""
    built = datetime.date.today().isoformat()
    return f"commit {commit} ({date}){dirty}, built {built}" if commit else f"built {built}"


def sidebar(order: Sequence[str], titles: dict[str, str], current: str | None, stamp: str) -> str:
    """Every page of the handout, the current one marked; the projector switch; the build stamp."""
    mark = ' class="current"'
    items = "".join(f'<li><a href="{n}.html"{mark if n == current else ""}>{html.escape(titles[n])}</a></li>'
                    for n in order)
    first = int(order[0][:2]) if order and order[0][:2].isdigit() else 0
    return (f'<nav class="handout-sidebar"><a href="index.html"><b>anyres-tutorial</b></a>'
            f'<ol start="{first}">{items}</ol><a href="README.html">README</a>'
            f'<p><label class="projector" for="projector">&#9635; projector: large type</label></p>'
            f'<div class="stamp">{html.escape(stamp)}</div></nav>')


_H2 = re.compile(r'<h2 id="([^"]+)"[^>]*>(.*?)</h2>', flags=re.S)


def on_this_page(page: str) -> str:
    """The page's sections (its ``##`` headings: the Steps, check yourself, exercises, summary) as links."""
    items = []
    for anchor, inner in _H2.findall(page):
        text = re.sub(r"<[^>]+>", "", inner).replace("¶", "").strip()
        items.append(f'<li><a href="#{anchor}">{text}</a></li>')
    return f'<nav class="handout-toc"><b>On this page</b><ol>{"".join(items)}</ol></nav>' if items else ""


def _shell(main: str, side: str) -> str:
    """The projector switch, the sidebar and the page's main column."""
    return (f'<input type="checkbox" id="projector" hidden><div class="handout-layout">{side}'
            f'<main class="handout-main">{main}</main></div>')


def to_html(nb, name: str) -> str:
    """One self-contained page (the lab template without any script loader)."""
    from jinja2 import DictLoader
    from nbconvert import HTMLExporter

    exporter = HTMLExporter(extra_loaders=[DictLoader({"handout.html.j2": _TEMPLATE})],
                            template_file="handout.html.j2")
    body, _ = exporter.from_notebook_node(nb, resources={"metadata": {"name": name}})
    return body


def notebook_page(page: str, order, i: int, titles, stamp: str) -> str:
    """A converted notebook page in the book's frame: sidebar, navigation, "On this page"."""
    head, rest = page.split("<main>", 1)
    main, tail = rest.rsplit("</main>", 1)
    main = _nav(order, i, titles, "top") + on_this_page(main) + main + _nav(order, i, titles, "bottom")
    return head + _shell(main, sidebar(order, titles, order[i], stamp)) + tail


def _page(title_text: str, body: str, side: str) -> str:
    return (f'<!DOCTYPE html>\n<html lang="en"><head><meta charset="utf-8"><title>{html.escape(title_text)}'
            f'</title><style>{HANDOUT_CSS}</style></head><body class="handout-page">{_shell(body, side)}'
            f"</body></html>\n")


def index_html(order: Sequence[str], titles: dict[str, str], desc: dict[str, str], stamp: str = "",
               solutions: str = "folded") -> str:
    items = "".join(
        f'<li><a href="{n}.html">{html.escape(titles[n])}</a> <code>{n}.ipynb</code><br>'
        f"{html.escape(desc.get(n + '.ipynb', ''))}</li>" for n in order)
    note = {"shown": "Solutions are shown under each exercise.",
            "folded": "Solutions are folded under each exercise: click “Solution” to open one.",
            "hidden": "This is the student edition: the exercises have no solutions."}[solutions]
    body = (f"<h1>anyres-tutorial: the handout</h1><p>Every notebook executed top to bottom; figures are "
            f"embedded, the explorers are shown as static snapshots (run them live with "
            f"<code>{LIVE_COMMAND}</code>). {note} See also the <a href=\"README.html\">README</a>.</p>"
            f"<ol start=\"{int(order[0][:2]) if order and order[0][:2].isdigit() else 0}\">{items}</ol>"
            f'<p class="stamp">{html.escape(stamp)}</p>')
    return _page("anyres-tutorial handout", body, sidebar(order, titles, None, stamp))


def readme_html(built: set[str], order: Sequence[str] = (), titles: dict | None = None,
                stamp: str = "") -> str:
    import mistune

    text = re.sub(r"`((\d\d_[\w-]+)\.ipynb)`",
                  lambda m: f"[`{m.group(1)}`]({m.group(2)}.html)" if m.group(2) in built else m.group(0),
                  README.read_text())
    text = rewrite_links(text, built)  # its links to notebooks/NN_x.ipynb
    body = '<p><a href="index.html">Contents of the handout</a></p>' + mistune.html(text)
    return _page("anyres-tutorial README", body, sidebar(order, titles or {}, None, stamp))


def build(out: Path, paths: Sequence[Path] | None = None, timeout: int = 1800, log=print,
          solutions: str = "folded") -> list[Path]:
    """Execute ``paths`` (default: every notebook) and write the handout under ``out``; return the pages.
    ``solutions``: "shown", "folded" (in ``<details>``) or "hidden" (the student edition)."""
    import nbformat

    if solutions not in SOLUTION_MODES:
        raise ValueError(f"solutions must be one of {SOLUTION_MODES}, got {solutions!r}")
    paths = [Path(p) for p in (paths if paths is not None else notebooks())]
    out.mkdir(parents=True, exist_ok=True)
    order = [p.stem for p in paths]
    built = set(order)
    titles = {p.stem: title(nbformat.read(p, as_version=4)) for p in paths}
    stamp = build_stamp()
    pages, start = [], time.monotonic()
    for i, (name, p) in enumerate(zip(order, paths)):
        t = time.monotonic()
        log(f"[{i + 1}/{len(paths)}] executing {p.name} ...")
        nb, folds = clean(execute(p, timeout, log), built, solutions)
        nbformat.validate(nb)
        page = notebook_page(fold_solutions(to_html(nb, titles[name]), folds), order, i, titles, stamp)
        target = out / f"{name}.html"
        target.write_text(page)
        pages.append(target)
        done = time.monotonic() - start
        log(f"[{i + 1}/{len(paths)}] {p.name}: {time.monotonic() - t:.0f} s (total {done / 60:.1f} min)")
    (out / "index.html").write_text(index_html(order, titles, descriptions(), stamp, solutions))
    (out / "README.html").write_text(readme_html(built, order, titles, stamp))
    log(f"handout written: {out / 'index.html'} ({(time.monotonic() - start) / 60:.1f} min, {stamp})")
    return pages


def main(argv: Sequence[str] | None = None) -> None:
    fmt = argparse.RawDescriptionHelpFormatter
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=fmt)
    parser.add_argument("notebooks", nargs="*", type=Path, help="notebooks to build (default: all)")
    parser.add_argument("--out", type=Path, default=ROOT / "build", help="output folder (default: build/)")
    parser.add_argument("--timeout", type=int, default=1800, help="seconds per cell")
    parser.add_argument("--solutions", choices=SOLUTION_MODES, default="folded",
                        help="solutions under the exercises: shown, folded (default) or hidden")
    parser.add_argument("--student", action="store_true", help="the student edition: --solutions hidden")
    parser.add_argument("--student-copy", type=Path, metavar="DIR",
                        help="write the notebooks without solution cells into DIR (nothing is run)")
    args = parser.parse_args(argv)
    if args.student_copy:
        student_copy(args.student_copy, args.notebooks or None)
        return
    build(args.out, args.notebooks or None, args.timeout,
          solutions="hidden" if args.student else args.solutions)


if __name__ == "__main__":
    main()
