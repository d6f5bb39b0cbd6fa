"""``at.show(fn)``: the code a notebook step teaches, on screen beside its prose.

The source of a function, method or class as the library has it, syntax-highlighted (HTML with inline styles,
so it survives the offline handout), its docstring cut to the first sentence so the first screen shows the
idea. Used by every notebook's "the code" cells.
"""

from __future__ import annotations

import ast
import inspect
import textwrap

WIDTH = 110  # the library's line length: a cut docstring is wrapped to it, so nothing scrolls sideways


class Source:
    """The shown source: ``text`` (plain), highlighted HTML in a notebook, plain text elsewhere."""

    def __init__(self, text: str, title: str):
        self.text, self.title = text, title

    def __repr__(self) -> str:
        return f"# {self.title}\n{self.text}"

    def _repr_html_(self) -> str:
        from pygments import highlight
        from pygments.formatters import HtmlFormatter
        from pygments.lexers import PythonLexer

        code = highlight(self.text, PythonLexer(), HtmlFormatter(noclasses=True, nobackground=True))
        return (f'<div style="font-size: 0.85em; color: #555">{self.title}</div>'
                f'<div style="overflow-x: auto">{code}</div>')


def _short_docstring(source: str) -> str:
    """``source`` with every docstring cut to its first sentence (first line)."""
    tree = ast.parse(source)
    lines = source.splitlines()
    cuts = []
    for node in ast.walk(tree):
        if isinstance(node, (ast.FunctionDef, ast.AsyncFunctionDef, ast.ClassDef)) and node.body:
            first = node.body[0]
            if isinstance(first, ast.Expr) and isinstance(first.value, ast.Constant) \
                    and isinstance(first.value.value, str) and first.end_lineno > first.lineno:
                cuts.append(first)
    for doc in sorted(cuts, key=lambda d: -d.lineno):
        indent = lines[doc.lineno - 1][: len(lines[doc.lineno - 1]) - len(lines[doc.lineno - 1].lstrip())]
        summary = doc.value.value.strip().split("\n\n")[0].split(". ")[0].replace("\n", " ")
        summary = " ".join(summary.split()).rstrip(".")
        text = textwrap.fill(f'"""{summary}. (...)"""', WIDTH, initial_indent=indent,
                             subsequent_indent=indent, break_long_words=False, break_on_hyphens=False)
        lines[doc.lineno - 1: doc.end_lineno] = text.splitlines()
    return "\n".join(lines)


def show(obj, full_docstring: bool = False) -> Source:
    """The source of ``obj`` (a function, method or class of the library), docstrings cut to their first
    sentence unless ``full_docstring``; a notebook displays it highlighted."""
    try:
        source = textwrap.dedent(inspect.getsource(obj))
    except (TypeError, OSError) as e:
        raise TypeError(f"show() needs a function, method or class defined in Python source, got "
                        f"{obj!r}") from e
    if not full_docstring:
        source = _short_docstring(source)
    module = getattr(obj, "__module__", "") or ""
    name = getattr(obj, "__qualname__", getattr(obj, "__name__", repr(obj)))
    return Source(source.rstrip() + "\n", f"{module}.{name}")
