"""What both explorers share: PNG rendering sized for the screen, error messages, HTML tables, the
presentation switch."""

from __future__ import annotations

import html
import io
from typing import Any

import ipywidgets as W
import matplotlib.pyplot as plt
import numpy as np
from matplotlib.image import AxesImage

from .. import tiling

CSS_DPI = 96  # CSS pixels per inch: a picture shown at its natural size has 96 pixels per inch
MIN_FONT_PT = 10  # smallest text of a picture at its displayed size (normal mode)
PRESENTATION_FONT_PT = 13  # ... in presentation mode
# the box a picture is drawn for (CSS px): beside the controls at 1280×800 even with JupyterLab's file
# browser open (about 470 px are left there), so a change and its result fit one screen and the picture is
# shown unshrunk, its text >= 10 pt; presentation mode (a projector, no sidebar) draws larger
PICTURE_BOX = (440, 500)
PRESENTATION_BOX = (760, 560)
#: the largest upload: ``dev.py lab`` and ``dev.py app`` raise the server's websocket message limit to match
UPLOAD_LIMIT_MB = 100
USER_ERRORS = (ValueError, TypeError)  # documented bad-input errors of the library: shown as a message


def _texts(fig) -> list:
    """Every text a figure shows: its own, its legends', and each axes' (tick labels only where the axes
    are shown). Cheaper than ``fig.findobj(Text)``, which walks every patch and makes hidden axes' ticks."""
    out = list(fig.texts)
    for leg in fig.legends:
        out += leg.get_texts()
    for ax in fig.axes:
        out += [*ax.texts, ax.title, ax._left_title, ax._right_title]
        if ax.axison:
            out += [ax.xaxis.label, ax.yaxis.label, *ax.get_xticklabels(), *ax.get_yticklabels()]
        if ax.get_legend() is not None:
            out += ax.get_legend().get_texts()
    return out


def _smallest_font(fig) -> float:
    sizes = [t.get_fontsize() for t in _texts(fig) if t.get_visible() and t.get_text().strip()]
    return min(sizes, default=MIN_FONT_PT)


def _downsample_rasters(fig, width_px: int, height_px: int) -> None:
    """Shrink RGB pictures far larger than the figure's pixels (a 3136×1792 canvas shown 700 px wide) before
    drawing: the same picture on screen, drawn in a fraction of the time. The data extent is kept."""
    from PIL import Image

    for im in (im for ax in fig.axes for im in ax.images if isinstance(im, AxesImage)):
        a = np.asarray(im.get_array())
        if a.ndim != 3 or a.shape[2] not in (3, 4):
            continue
        h, w = a.shape[:2]
        scale = min(1.0, 1.5 * width_px / w, 1.5 * height_px / h)
        if scale >= 0.9:
            continue
        u8 = a if a.dtype == np.uint8 else (np.clip(a, 0, 1) * 255).astype(np.uint8)
        small = Image.fromarray(u8).resize((max(1, int(w * scale)), max(1, int(h * scale))), Image.BOX)
        im.set_extent(im.get_extent())  # freeze the data coordinates before the array changes shape
        im.set_data(np.asarray(small))


def figure_png(fig, box: tuple[int, int] | None = None, min_font_pt: float = MIN_FONT_PT) -> bytes:
    """PNG bytes of a matplotlib figure, sized to be shown at its natural size; the figure is closed after.

    With ``box`` = (width, height) in CSS pixels the figure is scaled (aspect kept) to fit the box, at a
    resolution chosen so that its smallest text is at least ``min_font_pt`` points on screen when the PNG is
    shown unstretched (96 px per inch). Long titles wrap. ``box=None``: the figure as it is, at 96 dpi.
    """
    try:
        dpi = float(CSS_DPI)
        if box is not None:
            w_in, h_in = fig.get_size_inches()
            dpi = CSS_DPI * max(1.0, min_font_pt / _smallest_font(fig))
            # never wider than the box (the picture column: a wider picture would be shrunk on screen);
            # its height fits the box too, but a tall picture keeps at least half the inches it was
            # designed for (a long candidate list grows taller than the box rather than collapsing)
            scale = min(box[0] / (w_in * dpi), max(0.5, box[1] / (h_in * dpi)))
            fig.set_size_inches(w_in * scale, h_in * scale)
            for ax in fig.axes:
                ax.title.set_wrap(True)
            for t in fig.texts:
                t.set_wrap(True)
        w_in, h_in = fig.get_size_inches()
        _downsample_rasters(fig, int(w_in * dpi), int(h_in * dpi))
        png = _save(fig, dpi)
        width = _png_width(png)
        if box is not None and width > box[0] + 2:  # labels reach out of the axes: narrow the figure once
            k = (box[0] - (width - w_in * dpi)) / (w_in * dpi)
            if k > 0.3:
                fig.set_size_inches(w_in * k, h_in)
                png = _save(fig, dpi)
        return png
    finally:
        plt.close(fig)


def _save(fig, dpi: float) -> bytes:
    buf = io.BytesIO()
    fig.savefig(buf, format="png", dpi=dpi, bbox_inches="tight", pad_inches=0.05)
    return buf.getvalue()


def _png_width(png: bytes) -> int:
    return int.from_bytes(png[16:20], "big")  # the IHDR chunk: width, then height (big-endian)


def legends_outside(fig):
    """Move every axes legend of ``fig`` into one figure legend below the panels, so that no legend covers
    data (labels shown once). Returns ``fig``."""
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
        ncol = max(1, min(4, len(labels), 80 // max(len(t) for t in labels)))
        fig.legend(handles, labels, loc="outside lower center", ncol=ncol, frameon=False, fontsize=size)
    return fig


def fewer_ticks(fig):
    """At least 10-pt text leaves room for fewer tick labels: automatic numeric ticks get at most 5."""
    from matplotlib.ticker import AutoLocator, MaxNLocator

    for ax in fig.axes:
        for axis in (ax.xaxis, ax.yaxis):
            if type(axis.get_major_locator()) is AutoLocator:
                axis.set_major_locator(MaxNLocator(5))
    return fig


def explorer_png(fig, presentation: bool) -> bytes:
    """An explorer's picture: legends below the panels (never over data), fewer ticks, sized for the picture
    box with >= 10 pt text (larger box and >= 13 pt text in presentation mode)."""
    fig = fewer_ticks(legends_outside(fig))
    if presentation:
        return figure_png(fig, PRESENTATION_BOX, PRESENTATION_FONT_PT)
    return figure_png(fig, PICTURE_BOX)


def image_widget() -> W.Image:
    """A picture shown at its natural size (never stretched to its column: its text keeps the size it was
    drawn at), shrunk only when the page is narrower; hidden
    while it has no picture (no broken-image icon)."""
    img = W.Image(format="png", layout=W.Layout(max_width="100%", width="auto", height="auto",
                                                display="none", align_self="flex-start"))  # not stretched
    img.add_class("anyres-picture")
    return img


def show_png(img: W.Image, png: bytes) -> None:
    """Put ``png`` into ``img``; an empty picture hides the widget instead of showing a broken image."""
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
    th = "".join(f'<th style="padding:2px 8px;text-align:right">{html.escape(h)}</th>' for h in headers)
    body = []
    for i, r in enumerate(rows):
        style = ""
        if highlight and highlight[i]:
            style = ' style="background:#e6f4ea;font-weight:bold"'
        if marked and marked[i]:
            style = ' class="anyres-does-not-fit" style="background:#fdecea;color:#b00020"'
        td = '<td style="padding:2px 8px;text-align:right;white-space:nowrap">'
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


def presentation_toggle() -> W.ToggleButton:
    t = W.ToggleButton(value=False, description="Presentation mode", icon="",
                       tooltip="larger text in the card, the tables and the pictures (for a projector)",
                       layout=W.Layout(width="180px"))
    t.add_class("anyres-presentation")
    return t


_STYLE = """<style>
.anyres-present .widget-label, .anyres-present select, .anyres-present button, .anyres-present input,
.anyres-present .widget-inline-hbox, .anyres-present .lm-TabBar-tab { font-size: 16px !important; }
.anyres-present .widget-dropdown select, .anyres-present .widget-text input { height: 30px !important; }
.anyres-picture { display: block; }
</style>"""


def picture_column_flex(presentation: bool) -> str:
    """The picture column's CSS flex: it grows, and its basis is the width of the picture box."""
    return f"1 1 {(PRESENTATION_BOX if presentation else PICTURE_BOX)[0]}px"


def explorer_columns() -> tuple[W.Layout, W.Layout]:
    """Controls beside the picture while both fit, the picture below the controls when the notebook is
    narrower: the picture's column never gets narrower than the picture box (its basis, which follows the
    presentation switch through :func:`picture_column_flex`), so the picture is never shrunk (its text
    stays >= 10 pt) unless the page itself is narrower. Returns the layouts for the row and the column."""
    row = W.Layout(width="100%", flex_flow="row wrap", align_items="flex-start")
    column = W.Layout(flex=picture_column_flex(False), min_width="0", max_width="100%")
    return row, column


def explorer_style() -> W.HTML:
    """The explorers' CSS (presentation mode enlarges the controls); an invisible HTML widget."""
    return W.HTML(_STYLE, layout=W.Layout(width="0px", height="0px", margin="0"))


def method_options() -> list[str]:
    """The registered tiling methods' names (the numbers card shows each one's display name)."""
    return list(tiling.METHODS)


class Explorer:
    """What both explorers share: their pictures are drawn at the size the presentation switch asks for."""

    def _png(self, fig) -> bytes:
        return explorer_png(fig, self.presentation.value)
