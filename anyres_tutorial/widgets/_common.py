"""What both explorers share: PNG rendering of figures, error messages, HTML tables."""

from __future__ import annotations

import html
import io
from typing import Any

import ipywidgets as W
import matplotlib.pyplot as plt

from .. import tiling

DPI = 80
USER_ERRORS = (ValueError, TypeError)  # documented bad-input errors of the library: shown as a message


def figure_png(fig, dpi: int = DPI) -> bytes:
    """PNG bytes of a matplotlib figure; the figure is closed afterwards (so figures do not pile up)."""
    try:
        buf = io.BytesIO()
        fig.savefig(buf, format="png", dpi=dpi, bbox_inches="tight")
        return buf.getvalue()
    finally:
        plt.close(fig)


def image_widget() -> W.Image:
    return W.Image(format="png", layout=W.Layout(max_width="100%", height="auto"))


def error_html(text: str) -> str:
    return (f'<div style="color:#b00020;background:#fdecea;border:1px solid #f5c2c7;padding:6px 10px;'
            f'border-radius:4px;"><b>⚠</b> {html.escape(text)}</div>')


def table_html(headers: list[str], rows: list[list[Any]], highlight: list[bool] | None = None) -> str:
    th = "".join(f'<th style="padding:2px 8px;text-align:right">{html.escape(h)}</th>' for h in headers)
    body = []
    for i, r in enumerate(rows):
        style = ' style="background:#e6f4ea;font-weight:bold"' if highlight and highlight[i] else ""
        tds = "".join(f'<td style="padding:2px 8px;text-align:right">{html.escape(str(c))}</td>' for c in r)
        body.append(f"<tr{style}>{tds}</tr>")
    return (f'<table style="border-collapse:collapse;font-size:12px"><thead><tr>{th}</tr></thead>'
            f'<tbody>{"".join(body)}</tbody></table>')


def method_options() -> list[str]:
    """The registered tiling methods' names (the numbers card shows each one's display name)."""
    return list(tiling.METHODS)
