"""A figure laid out for the width it is shown at: text >= a minimum size, nothing overlapping.

The explorers of `grid_explorer` show each picture at its natural size in a column whose width the browser
reports. :func:`fit_figure` sets the figure to that width (96 px per inch, so a point is a point on screen),
raises every text to at least ``min_font_pt``, thins automatic ticks to what fits, wraps titles, and then
draws and looks: text boxes that overlap (:func:`layout_problems`) make the figure taller; labels marked
:data:`OPTIONAL` (value labels inside bars) that still collide or spill out of their axes are left out.
Nothing is ever shrunk, so the text keeps its size. :func:`figure_png` returns the PNG with the report of
what is left (an empty report: every text readable and apart).
"""

from __future__ import annotations

import io
import warnings

import matplotlib.pyplot as plt
import numpy as np
from matplotlib.ticker import AutoLocator, FixedFormatter, FixedLocator, MaxNLocator

CSS_DPI = 96  # CSS pixels per inch: a picture shown at its natural size has 96 pixels per inch
MIN_FONT_PT = 10
OPTIONAL = "anyres-optional"  # gid of a label that a narrow layout may leave out (e.g. a bar's value)
MIN_AXES_PX = 24  # an axes thinner than this has collapsed
PAD_IN = 0.04  # the margin around the cropped PNG (inches)


def short_form(text, short: str):
    """Give a label (a matplotlib Text) the shorter text a narrow layout uses when the long one collides
    (e.g. a tile badge "#1 (r0, c0)" -> "#1"). Returns ``text``."""
    text._anyres_short = short
    return text


def texts(fig) -> list:
    """Every visible, non-empty text of ``fig``: its own, legends', titles, labels, tick labels, notes."""
    out = list(fig.texts)
    for leg in fig.legends:
        out += leg.get_texts()
    for ax in fig.axes:
        if not ax.get_visible():
            continue
        out += [*ax.texts, ax.title, ax._left_title, ax._right_title]
        if ax.axison:
            out += [ax.xaxis.label, ax.yaxis.label, *_shown_ticklabels(ax.xaxis, ax.get_xlim(), 0),
                    *_shown_ticklabels(ax.yaxis, ax.get_ylim(), 1)]
        if ax.get_legend() is not None:
            out += ax.get_legend().get_texts()
    return [t for t in out if t.get_visible() and t.get_text().strip()]


def _shown_ticklabels(axis, lim, along: int) -> list:
    """The tick labels matplotlib draws: those of ticks inside the view (a locator also labels a few
    outside it, which are never drawn)."""
    lo, hi = sorted(lim)
    eps = 1e-9 * max(1.0, abs(hi - lo))
    return [t for t in axis.get_ticklabels() if lo - eps <= t.get_position()[along] <= hi + eps]


def _extent(t, renderer):
    """The box a text is drawn in: a wrapping text (a long title) measured as wrapped, as it is drawn."""
    if t.get_wrap() and hasattr(t, "_get_wrapped_text") and hasattr(t, "_cm_set"):
        with t._cm_set(text=t._get_wrapped_text()):
            return t.get_window_extent(renderer)
    return t.get_window_extent(renderer)


def text_boxes(fig, renderer) -> list[tuple]:
    """(text artist, its drawn extent) for every visible, non-empty text of ``fig``."""
    out = []
    for t in texts(fig):
        bb = _extent(t, renderer)
        if bb.width > 0 and bb.height > 0:
            out.append((t, bb))
    return out


def boxes_hit(a, b, tol: float = 1.0) -> bool:
    """Whether two extents overlap by more than ``tol`` pixels on both axes."""
    return (a.x0 + tol < b.x1 and b.x0 + tol < a.x1) and (a.y0 + tol < b.y1 and b.y0 + tol < a.y1)


def layout_problems(fig, renderer=None) -> dict:
    """What a reader would trip over in ``fig`` as drawn: ``overlaps`` (pairs of texts whose boxes
    intersect), ``outside`` (texts past the figure's left or right edge), ``collapsed`` (axes thinner than
    :data:`MIN_AXES_PX`); :func:`fit_figure` adds ``small`` (texts below the minimum size)."""
    renderer = renderer or fig.canvas.get_renderer()
    boxes = text_boxes(fig, renderer)
    fw = fig.bbox.width
    overlaps = [(a.get_text(), b.get_text()) for i, (a, ba) in enumerate(boxes) for b, bb in boxes[i + 1:]
                if boxes_hit(ba, bb)]
    # (above or below the figure is no loss: the PNG is cropped to what is drawn; wider would not fit)
    outside = [t.get_text() for t, bb in boxes if bb.x0 < -1 or bb.x1 > fw + 1]
    collapsed = [ax.get_title() or f"axes {i}" for i, ax in enumerate(fig.axes)
                 if ax.get_visible() and ax.axison and not hasattr(ax, "_colorbar")  # a colour bar is thin
                 and min(ax.bbox.width, ax.bbox.height) < MIN_AXES_PX]
    return {"overlaps": overlaps, "outside": outside, "collapsed": collapsed}


def _raise_fonts(fig, min_pt: float) -> None:
    for t in texts(fig):
        if t.get_fontsize() < min_pt:
            t.set_fontsize(min_pt)
    for ax in fig.axes:  # tick labels made later (after thinning) get the size too
        for axis in (ax.xaxis, ax.yaxis):
            if axis.get_ticklabels() and axis.get_ticklabels()[0].get_fontsize() < min_pt:
                axis.set_tick_params(labelsize=min_pt)


def _thin_ticks(fig, renderer) -> None:
    """Automatic numeric ticks: as many as fit side by side (x) or stacked (y) with room to spare; fixed
    ticks labelled with numbers (a heat map's 1..11) keep every k-th label."""
    for ax in fig.axes:
        for axis, along in ((ax.xaxis, 0), (ax.yaxis, 1)):
            loc = axis.get_major_locator()
            if isinstance(loc, FixedLocator):
                _thin_fixed(axis, along, renderer)
                continue
            if not isinstance(loc, (AutoLocator, MaxNLocator)):
                continue
            labels = [t for t in axis.get_ticklabels() if t.get_text().strip()]
            if not labels:
                continue
            size = max((t.get_window_extent(renderer).width, t.get_window_extent(renderer).height)[along]
                       for t in labels)
            span = (ax.bbox.width, ax.bbox.height)[along]
            n = int(max(2, min(6, span // max(1.0, 2.0 * size))))
            axis.set_major_locator(MaxNLocator(n))


def downsample_rasters(fig, width_px: int, height_px: int) -> None:
    """Shrink RGB pictures far larger than the figure's pixels (a 3136×1792 canvas shown 700 px wide) before
    drawing: the same picture on screen, drawn in a fraction of the time. The data extent is kept."""
    import numpy as np
    from matplotlib.image import AxesImage
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


def _fewer_colliding_ticks(fig, renderer) -> bool:
    """An automatic numeric axis whose tick labels touch gets one tick fewer; True if one did."""
    changed = False
    for ax in fig.axes:
        for axis, lim, along in ((ax.xaxis, ax.get_xlim(), 0), (ax.yaxis, ax.get_ylim(), 1)):
            if not isinstance(axis.get_major_locator(), (AutoLocator, MaxNLocator)):
                continue
            boxes = [t.get_window_extent(renderer) for t in _shown_ticklabels(axis, lim, along)
                     if t.get_text().strip()]
            if len(boxes) >= 2 and any(boxes_hit(a, b, tol=-2.0) for a, b in zip(boxes, boxes[1:])):
                n = max(1, len(boxes) - 2)
                loc = axis.get_major_locator()
                if isinstance(loc, MaxNLocator) and loc._nbins == n:
                    continue  # as few as it gets
                axis.set_major_locator(MaxNLocator(n))
                changed = True
    return changed


def _thin_fixed(axis, along: int, renderer) -> None:
    labels = axis.get_ticklabels()
    texts_ = [t.get_text() for t in labels]
    if len(labels) < 3 or not all(s.strip().lstrip("−-").replace(".", "", 1).isdigit() for s in texts_):
        return
    size = max((t.get_window_extent(renderer).width, t.get_window_extent(renderer).height)[along]
               for t in labels)
    pos = [t.get_position()[along] for t in labels]
    pix = [axis.axes.transData.transform((p, 0) if along == 0 else (0, p))[along] for p in pos]
    step = min(abs(b - a) for a, b in zip(pix, pix[1:])) if len(pix) > 1 else size
    k = int(np.ceil(1.4 * size / max(step, 1e-9)))
    if k > 1:
        axis.set_major_formatter(FixedFormatter([s if i % k == 0 else "" for i, s in enumerate(texts_)]))


def draw_layout(fig):
    """Draw ``fig`` once: (its renderer, whether constrained layout warned that axes collapsed)."""
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        fig.canvas.draw()
    collapsed = any("collapsed" in str(w.message) for w in caught)
    return fig.canvas.get_renderer(), collapsed


def _tight_width(fig, renderer) -> float:
    return fig.get_tightbbox(renderer).width * CSS_DPI  # inches -> px


def fit_figure(fig, width_px: int, *, min_font_pt: float = MIN_FONT_PT, max_height_px: int | None = None,
               tries: int = 12) -> dict:
    """Lay ``fig`` out for ``width_px`` CSS pixels (see the module docstring); return
    :func:`layout_problems` of the result (plus ``size``: the figure's (width, height) in px)."""
    if width_px < 120:
        raise ValueError(f"width_px must be at least 120 CSS pixels, got {width_px}")
    if not hasattr(fig.canvas, "get_renderer"):  # a figure closed in pyplot: draw it with Agg
        from matplotlib.backends.backend_agg import FigureCanvasAgg

        FigureCanvasAgg(fig)
    fig.set_dpi(CSS_DPI)
    w0, h0 = fig.get_size_inches()
    width = width_px / CSS_DPI
    height = h0 * width / w0  # the aspect it was designed with ...
    cap = (max_height_px or 10 ** 6) / CSS_DPI
    height = min(max(height, min(h0, cap)), cap)  # ... never shorter than designed, never above the screen
    fig.set_size_inches(width, height)
    for ax in fig.axes:
        ax.title.set_wrap(True)
    for t in fig.texts:
        t.set_wrap(True)
    _raise_fonts(fig, min_font_pt)
    downsample_rasters(fig, width_px, int(height * CSS_DPI))
    renderer, collapsed = draw_layout(fig)
    _thin_ticks(fig, renderer)
    _raise_fonts(fig, min_font_pt)
    grown, before = 0, None
    for _ in range(tries):
        renderer, collapsed = draw_layout(fig)
        problems = layout_problems(fig, renderer)
        if collapsed and not problems["collapsed"]:
            problems["collapsed"] = ["constrained layout: axes collapsed"]
        trouble = problems["overlaps"] or problems["outside"] or problems["collapsed"]
        if trouble and (_shorten(fig, renderer, everything=bool(problems["collapsed"] or problems["outside"]))
                        or _drop_optional(fig, renderer)):
            continue
        if problems["overlaps"] and _fewer_colliding_ticks(fig, renderer):
            continue
        if _fit_width(fig, renderer, width_px):
            continue
        if not trouble:
            break
        count = (_overlap_area(fig, renderer), len(problems["collapsed"]))
        if before is not None and count >= before[0]:  # the last growth did not help: undo it, stop
            fig.set_size_inches(*before[1])
            break
        if (_stacked_overlaps(fig, renderer) or problems["collapsed"]) and grown < 4:
            before = (count, tuple(fig.get_size_inches()))
            w, h = before[1]
            fig.set_size_inches(w, h * 1.25)  # stacked labels, thin axes get room
            grown += 1
            continue
        break
    renderer, collapsed = draw_layout(fig)
    problems = layout_problems(fig, renderer)
    if collapsed and not problems["collapsed"]:
        problems["collapsed"] = ["constrained layout: axes collapsed"]
    problems["small"] = [t.get_text() for t in texts(fig) if t.get_fontsize() < min_font_pt - 1e-6]
    problems["size"] = (round(fig.bbox.width), round(fig.bbox.height))
    return problems


def _overlap_area(fig, renderer) -> float:
    """How much the texts of ``fig`` overlap (px², summed over pairs): a growth that helps lowers it."""
    boxes = [bb for _, bb in text_boxes(fig, renderer)]
    total = 0.0
    for i, a in enumerate(boxes):
        for b in boxes[i + 1:]:
            if boxes_hit(a, b):
                total += (min(a.x1, b.x1) - max(a.x0, b.x0)) * (min(a.y1, b.y1) - max(a.y0, b.y0))
    return round(total, 1)


def _stacked_overlaps(fig, renderer) -> bool:
    """True when some colliding texts sit above one another (a taller figure separates them)."""
    boxes = text_boxes(fig, renderer)
    for i, (_, a) in enumerate(boxes):
        for _, b in boxes[i + 1:]:
            if boxes_hit(a, b):
                dx = min(a.x1, b.x1) - max(a.x0, b.x0)
                dy = min(a.y1, b.y1) - max(a.y0, b.y0)
                if dy < dx:
                    return True
    return False


def _fit_width(fig, renderer, width_px: int) -> bool:
    """Bring content reaching past ``width_px`` back in: the figure narrows by the excess (the text keeps
    its size). True if something changed."""
    excess = _tight_width(fig, renderer) + 2 * PAD_IN * CSS_DPI - width_px
    if excess <= 0.5:
        return False
    w, h = fig.get_size_inches()
    if w * CSS_DPI - excess < 0.85 * width_px:  # more would squeeze the axes: leave it to the report
        return False
    fig.set_size_inches(w - (excess + 2) / CSS_DPI, h)
    return True


def _colliding(fig, renderer, wanted) -> list:
    """The texts for which ``wanted(text)`` holds that overlap another text or leave their axes."""
    boxes = text_boxes(fig, renderer)
    out = []
    for t, bb in boxes:
        if not wanted(t):
            continue
        ax = t.axes
        outside = ax is not None and (bb.x0 < ax.bbox.x0 - 1 or bb.x1 > ax.bbox.x1 + 1)
        if outside or any(boxes_hit(bb, ob) for o, ob in boxes if o is not t):
            out.append(t)
    return out


def _shorten(fig, renderer, everything: bool = False) -> bool:
    """Colliding labels that have a :func:`short_form` take it (``everything``: all of them, when axes have
    collapsed for lack of room); True if any did."""
    def wanted(t):
        return getattr(t, "_anyres_short", None) not in (None, t.get_text())

    hits = [t for t in texts(fig) if wanted(t)] if everything else _colliding(fig, renderer, wanted)
    for t in hits:
        t.set_text(t._anyres_short)
    return bool(hits)


def _drop_optional(fig, renderer) -> bool:
    """Hide optional labels that collide with another text or leave their axes; True if any was hidden."""
    hits = _colliding(fig, renderer, lambda t: t.get_gid() == OPTIONAL)
    for t in hits:
        t.set_visible(False)
    return bool(hits)


def figure_png(fig, width_px: int | None = None, *, min_font_pt: float = MIN_FONT_PT,
               max_height_px: int | None = None) -> tuple[bytes, dict]:
    """(PNG bytes, layout report) of ``fig`` laid out for ``width_px`` (:func:`fit_figure`; ``None``: as it
    is, at 96 dpi). The PNG is cropped to its content and never wider than ``width_px``; the figure is
    closed after."""
    try:
        report = {} if width_px is None else fit_figure(fig, width_px, min_font_pt=min_font_pt,
                                                        max_height_px=max_height_px)
        buf = io.BytesIO()
        fig.savefig(buf, format="png", dpi=CSS_DPI, bbox_inches="tight", pad_inches=PAD_IN)
        png = buf.getvalue()
        report["png_size"] = (int.from_bytes(png[16:20], "big"), int.from_bytes(png[20:24], "big"))
        return png, report
    finally:
        plt.close(fig)
