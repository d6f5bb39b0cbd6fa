"""What both explorers share: pictures drawn for the width the browser reports, error messages, HTML
tables, the presentation switch (one size preset for every explorer)."""

from __future__ import annotations

import html
import os
from typing import Any

import ipywidgets as W
import traitlets as T

from .. import tiling
from .picture import DEFAULT_WIDTH

MIN_FONT_PT = 10  # smallest text of a picture at its displayed size (normal size)
PRESENTATION_FONT_PT = 14  # ... in presentation mode (a projector: larger text, the same width)
PRESENT_FULL_PX = 800  # presenting, a column at least this wide gets the full PRESENTATION_FONT_PT
MIN_PICTURE_PX = 400  # never draw for a narrower column (a phone-sized window scrolls instead)
SCREEN_MARGIN_PX = 140  # a picture is at most the window's height minus this (tabs and title above it)
#: the largest upload: ``dev.py lab`` and ``dev.py app`` raise the server's websocket message limit to match
UPLOAD_LIMIT_MB = 100
USER_ERRORS = (ValueError, TypeError)  # documented bad-input errors of the library: shown as a message
#: the environment variable that starts every explorer in presentation mode (``dev.py app --present``)
PRESENT_ENV = "ANYRES_PRESENT"


def figure_png(fig, width: int | None = None, presentation: bool = False) -> bytes:
    """PNG bytes of a matplotlib figure laid out for ``width`` CSS pixels (``viz.fit.figure_png``: text >= 10
    pt, or 14 pt in presentation mode, nothing overlapping); ``None``: as it is. The figure is closed."""
    from ..viz.fit import figure_png as _png

    return _png(fig, width, min_font_pt=PRESENTATION_FONT_PT if presentation else MIN_FONT_PT)[0]


def legends_outside(fig, width_px: int = 640, font_pt: float = MIN_FONT_PT):
    """Move every axes legend of ``fig`` into one figure legend below the panels, so that no legend covers
    data (labels shown once), in as many columns as ``width_px`` has room for at ``font_pt``. Returns
    ``fig``."""
    handles, labels, size = [], [], None
    for ax in fig.axes:
        leg = ax.get_legend()
        if leg is None:
            continue
        size = size or leg.get_texts()[0].get_fontsize() if leg.get_texts() else size
        for h, t in zip(leg.legend_handles, leg.get_texts()):
            if t.get_text() not in labels:
                handles.append(h)
                labels.append(t.get_text())
        leg.remove()
    if handles:
        column_px = 0.62 * font_pt * 96 / 72 * max(len(t) for t in labels) + 48  # handle, gap, text
        ncol = max(1, min(4, len(labels), int(width_px // column_px)))
        fig.legend(handles, labels, loc="outside lower center", ncol=ncol, frameon=False, fontsize=size)
    return fig


def picture_font_pt(width: int, presentation: bool) -> float:
    """The smallest text of a picture: 10 pt; presenting, 14 pt in a column of at least ``PRESENT_FULL_PX``
    (a projector's wide screen), less in a narrower one, down to 10 pt at ``MIN_PICTURE_PX`` + 60 (larger
    text there would only crowd the picture; the controls and tables are still enlarged)."""
    if not presentation:
        return MIN_FONT_PT
    lo, hi = MIN_PICTURE_PX + 60, PRESENT_FULL_PX
    k = min(1.0, max(0.0, (width - lo) / (hi - lo)))
    return MIN_FONT_PT + k * (PRESENTATION_FONT_PT - MIN_FONT_PT)


def explorer_png(fig, width: int, screen_height: int, presentation: bool) -> tuple[bytes, dict]:
    """An explorer's picture and its layout report: legends below the panels (never over data), laid out for
    the column's ``width`` (CSS px) and at most the window's height, text >= 10 pt (14 pt presenting)."""
    from ..viz.fit import figure_png as _png

    width = max(MIN_PICTURE_PX, int(width))
    pt = picture_font_pt(width, presentation)
    return _png(legends_outside(fig, width, pt), width, min_font_pt=pt,
                max_height_px=max(360, int(screen_height) - SCREEN_MARGIN_PX, int(0.65 * width)))


def image_widget():
    """A picture (:class:`~anyres_tutorial.widgets.picture.Picture`) that fills its column's width, reports
    that width back, and is hidden while it has no picture."""
    from .picture import Picture

    pic = Picture(layout=W.Layout(width="100%", min_width="0", display="none"))
    pic.add_class("anyres-picture-widget")
    return pic


def show_png(img, png: bytes, report: dict | None = None) -> None:
    """Put ``png`` (and its layout report) into the picture ``img``; an empty picture hides it."""
    img.report = dict(report or {})
    img.value = png
    img.layout.display = None if png else "none"


def error_html(text: str) -> str:
    return (f'<div style="color:#b00020;background:#fdecea;border:1px solid #f5c2c7;padding:6px 10px;'
            f'border-radius:4px;"><b>⚠</b> {html.escape(text)}</div>')


def font_px(presentation: bool) -> int:
    """Font size (px) of the cards and tables: larger in presentation mode."""
    return 18 if presentation else 13


def table_html(headers: list[str], rows: list[list[Any]], highlight: list[bool] | None = None,
               presentation: bool = False, marked: list[bool] | None = None) -> str:
    """An HTML table; ``highlight`` rows green (the chosen one), ``marked`` rows red (does not fit)."""
    th = "".join(f'<th style="padding:2px 6px;text-align:right">{html.escape(h)}</th>' for h in headers)
    body = []
    for i, r in enumerate(rows):
        style = ""
        if highlight and highlight[i]:
            style = ' style="background:#e6f4ea;font-weight:bold"'
        if marked and marked[i]:
            style = ' class="anyres-does-not-fit" style="background:#fdecea;color:#b00020"'
        td = '<td style="padding:2px 6px;text-align:right">'
        tds = "".join(f"{td}{html.escape(str(c))}</td>" for c in r)
        body.append(f"<tr{style}>{tds}</tr>")
    return (f'<div style="overflow-x:auto;max-width:100%"><table style="border-collapse:collapse;'
            f'font-size:{font_px(presentation)}px"><thead><tr>{th}</tr></thead><tbody>{"".join(body)}</tbody>'
            f'</table></div>')


def swatch(rgb_hex: str | None) -> str:
    """A small colour square (HTML) for a fill colour '#rrggbb'; empty for None."""
    if not rgb_hex:
        return ""
    return (f'<span style="display:inline-block;width:0.9em;height:0.9em;vertical-align:-0.1em;'
            f'border:1px solid #888;background:{html.escape(rgb_hex)}"></span> ')


class SizePreset(T.HasTraits):
    """The size every explorer in a kernel is drawn at: ``presentation`` (larger text everywhere, for a
    projector). One switch: each explorer's toggle is linked to :data:`PRESET`, so turning it on in one turns
    it on in all; ``dev.py app --present`` starts the app with it on (environment variable
    ``ANYRES_PRESENT``)."""

    presentation = T.Bool(False)


PRESET = SizePreset(presentation=os.environ.get(PRESENT_ENV, "") not in ("", "0"))


def presentation_toggle() -> W.ToggleButton:
    """The presentation switch, linked to :data:`PRESET` (all explorers follow it)."""
    t = W.ToggleButton(value=PRESET.presentation, description="Presentation mode", icon="",
                       tooltip="larger text in the controls, card, tables and pictures (projector)",
                       layout=W.Layout(width="auto", min_width="180px"))
    t.add_class("anyres-presentation")
    T.link((PRESET, "presentation"), (t, "value"))
    return t


_STYLE = """<style>
.anyres-explorer .lm-TabBar-tab { flex: 0 0 auto !important; max-width: none !important; }
.anyres-explorer .lm-TabBar-content { flex-wrap: wrap; }
.anyres-explorer .widget-dropdown > select { text-overflow: ellipsis; }
.anyres-present .widget-label, .anyres-present select, .anyres-present button, .anyres-present input,
.anyres-present .widget-inline-hbox, .anyres-present .lm-TabBar-tab, .anyres-present .widget-html-content
{ font-size: 17px !important; }
.anyres-present .lm-TabBar-tab { min-height: 32px; line-height: 30px !important; }
.anyres-present .widget-dropdown, .anyres-present .widget-select-multiple, .anyres-present .widget-text,
.anyres-present .widget-upload { width: 100% !important; height: auto !important; }
.anyres-present .widget-dropdown select, .anyres-present .widget-text input { height: 34px !important; }
.anyres-present .widget-label { width: auto !important; min-width: 110px; }
.anyres-present .anyres-controls { width: 420px !important; min-width: 420px !important; }
.anyres-picture { display: block; }
</style>"""


def explorer_columns() -> tuple[W.Layout, W.Layout]:
    """Controls beside the picture while the picture gets at least ``MIN_PICTURE_PX``, else the
    picture column moves below the controls; either way it takes all the width left (the picture is drawn
    for it). Returns the layouts for the row and the picture column."""
    row = W.Layout(width="100%", flex_flow="row wrap", align_items="flex-start")
    column = W.Layout(flex=f"1 1 {MIN_PICTURE_PX}px", min_width="0", max_width="100%")
    return row, column


def explorer_style() -> W.HTML:
    """The explorers' CSS (tabs never clip; presentation mode enlarges the controls); an invisible widget."""
    return W.HTML(_STYLE, layout=W.Layout(width="0px", height="0px", margin="0"))


def method_options() -> list[str]:
    """The registered tiling methods' names (the numbers card shows each one's display name)."""
    return list(tiling.METHODS)


def describe_error(what: str, e: Exception) -> str:
    """A drawing error as the explorer's message (a bug shows here instead of only in a log console)."""
    return error_html(f"Could not draw {what}: {type(e).__name__}: {e}")


class Explorer:
    """What both explorers share: one picture per tab (:func:`image_widget`), drawn for the width the browser
    reports, at the size the presentation switch asks for. Subclasses define ``TABS``, ``tabs``, ``widget``,
    ``message``, ``presentation`` and ``_render_tab``."""

    width = DEFAULT_WIDTH
    screen_height = 900

    def _make_pictures(self) -> dict:
        pictures = {t: image_widget() for t in self.TABS}
        for p in pictures.values():
            p.observe(self._on_width, names=["width", "screen_height"])
        return pictures

    def _on_width(self, change) -> None:
        """A picture reports its column's width (or the window's height): all pictures share the column, so
        the explorer keeps one width, and the visible tab is redrawn for it."""
        pic = change["owner"]
        width, height = max(MIN_PICTURE_PX, pic.width), pic.screen_height
        if (width, height) == (self.width, self.screen_height):
            return
        self.width, self.screen_height = width, height
        self._render_tab()

    def _png(self, fig) -> tuple[bytes, dict]:
        png, report = explorer_png(fig, self.width, self.screen_height, self.presentation.value)
        report["drawn_for"] = self.width
        return png, report

    def _size_key(self) -> tuple:
        return (self.width, self.screen_height, self.presentation.value)

    def _present_classes(self) -> None:
        self.widget.remove_class("anyres-present")
        if self.presentation.value:
            self.widget.add_class("anyres-present")
