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
"""

from __future__ import annotations

import argparse
import base64
import html
import os
import re
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

_TEMPLATE = r"""{%- extends 'lab/index.html.j2' -%}
{%- block html_head_js -%}{%- endblock html_head_js -%}
{%- block jupyter_widgets -%}{%- endblock jupyter_widgets -%}
{%- block html_head_js_mathjax -%}{%- endblock html_head_js_mathjax -%}
{%- block html_head_js_mermaidjs -%}{%- endblock html_head_js_mermaidjs -%}
{%- block extra_css -%}<style type="text/css">""" + r"""
nav.handout { display: flex; gap: 1.5em; padding: 0.6em 1em; margin-bottom: 1em;
  border-bottom: 1px solid #ccc; font-family: var(--jp-ui-font-family, sans-serif); }
nav.handout.bottom { border-top: 1px solid #ccc; border-bottom: none; margin-top: 2em; }
.handout-stub { color: #555; font-style: italic; padding: 0.3em 0; }
.handout-widget { border: 1px dashed #888; padding: 0.6em; }
.handout-widget .live { background: #fff6d5; padding: 0.3em 0.6em; margin-bottom: 0.6em; }
.handout-widget .control { color: #444; font-size: 90%; margin: 0.1em 0.6em 0.1em 0; display: inline-block; }
.handout-row { display: flex; flex-wrap: wrap; gap: 0.6em; align-items: flex-start; }
.handout-widget img { max-width: 100%; }
</style>{%- endblock extra_css -%}
"""

_PAGE_CSS = """body { font-family: sans-serif; max-width: 60em; margin: 2em auto; padding: 0 1em;
  line-height: 1.45; }
table { border-collapse: collapse; }
td, th { border: 1px solid #ccc; padding: 0.3em 0.6em; text-align: left; }
code, pre { background: #f4f4f4; } pre { padding: 0.6em; overflow-x: auto; }"""


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


def execute(path: Path, timeout: int = 1800):
    """Run a notebook top to bottom on a fresh kernel (in its own folder); return it with outputs."""
    import nbformat
    from nbclient import NotebookClient

    nb = nbformat.read(path, as_version=4)
    client = NotebookClient(nb, timeout=timeout, kernel_name="python3", store_widget_state=True,
                            resources={"metadata": {"path": str(path.parent)}})
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
    if name == "ImageModel":
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


def clean(nb, built: set[str]):
    """Make an executed notebook fit for the offline handout (see the module docstring); in place."""
    import nbformat

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
    return nb


# ---- pages ---------------------------------------------------------------------------------------------


def _nav(order: Sequence[str], i: int, titles: dict[str, str], cls: str) -> str:
    links = []
    if i > 0:
        links.append(f'<a href="{order[i - 1]}.html">&larr; {html.escape(titles[order[i - 1]])}</a>')
    links.append('<a href="index.html">Contents</a>')
    if i + 1 < len(order):
        links.append(f'<a href="{order[i + 1]}.html">{html.escape(titles[order[i + 1]])} &rarr;</a>')
    return f'<nav class="handout {cls}">{"".join(links)}</nav>'


def to_html(nb, name: str) -> str:
    """One self-contained page (the lab template without any script loader)."""
    from jinja2 import DictLoader
    from nbconvert import HTMLExporter

    exporter = HTMLExporter(extra_loaders=[DictLoader({"handout.html.j2": _TEMPLATE})],
                            template_file="handout.html.j2")
    body, _ = exporter.from_notebook_node(nb, resources={"metadata": {"name": name}})
    return body


def _page(title_text: str, body: str) -> str:
    return (f'<!DOCTYPE html>\n<html lang="en"><head><meta charset="utf-8"><title>{html.escape(title_text)}'
            f"</title><style>{_PAGE_CSS}</style></head><body>{body}</body></html>\n")


def index_html(order: Sequence[str], titles: dict[str, str], desc: dict[str, str]) -> str:
    items = "".join(
        f'<li><a href="{n}.html">{html.escape(titles[n])}</a> <code>{n}.ipynb</code><br>'
        f"{html.escape(desc.get(n + '.ipynb', ''))}</li>" for n in order)
    body = (f"<h1>anyres-tutorial: the handout</h1><p>Every notebook executed top to bottom; figures are "
            f"embedded, the explorers are shown as static snapshots (run them live with "
            f"<code>{LIVE_COMMAND}</code>). See also the <a href=\"README.html\">README</a>.</p>"
            f"<ol start=\"0\">{items}</ol>")
    return _page("anyres-tutorial handout", body)


def readme_html(built: set[str]) -> str:
    import mistune

    text = re.sub(r"`((\d\d_[\w-]+)\.ipynb)`",
                  lambda m: f"[`{m.group(1)}`]({m.group(2)}.html)" if m.group(2) in built else m.group(0),
                  README.read_text())
    text = rewrite_links(text, built)  # its links to notebooks/NN_x.ipynb
    body = '<p><a href="index.html">Contents of the handout</a></p>' + mistune.html(text)
    return _page("anyres-tutorial README", body)


def build(out: Path, paths: Sequence[Path] | None = None, timeout: int = 1800, log=print) -> list[Path]:
    """Execute ``paths`` (default: every notebook) and write the handout under ``out``; return the pages."""
    import nbformat

    paths = [Path(p) for p in (paths if paths is not None else notebooks())]
    out.mkdir(parents=True, exist_ok=True)
    order = [p.stem for p in paths]
    built = set(order)
    titles = {p.stem: title(nbformat.read(p, as_version=4)) for p in paths}
    pages = []
    for i, (name, p) in enumerate(zip(order, paths)):
        log(f"executing {p.name}")
        nb = clean(execute(p, timeout), built)
        nbformat.validate(nb)
        page = to_html(nb, titles[name])
        page = page.replace("<main>", "<main>" + _nav(order, i, titles, "top"), 1)
        page = page.replace("</main>", _nav(order, i, titles, "bottom") + "</main>", 1)
        target = out / f"{name}.html"
        target.write_text(page)
        pages.append(target)
    (out / "index.html").write_text(index_html(order, titles, descriptions()))
    (out / "README.html").write_text(readme_html(built))
    log(f"handout written: {out / 'index.html'}")
    return pages


def main(argv: Sequence[str] | None = None) -> None:
    fmt = argparse.RawDescriptionHelpFormatter
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=fmt)
    parser.add_argument("notebooks", nargs="*", type=Path, help="notebooks to build (default: all)")
    parser.add_argument("--out", type=Path, default=ROOT / "build", help="output folder (default: build/)")
    parser.add_argument("--timeout", type=int, default=1800, help="seconds per cell")
    args = parser.parse_args(argv)
    build(args.out, args.notebooks or None, args.timeout)


if __name__ == "__main__":
    main()
