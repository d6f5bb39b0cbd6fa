"""Is a figure readable as a notebook shows it? The check the test suite runs on every figure a cell shows.

Jupyter's inline backend shows a figure as a PNG of its drawn content (``bbox_inches="tight"``) at the
figure's dpi, scaled down to the output column when wider (:data:`COLUMN_PX` CSS pixels). A text of ``s`` pt
then reads ``s · dpi / 96 · scale`` pt on screen (96 CSS pixels per inch). :func:`shown_report` measures
that for every text, and reuses :func:`viz.fit.layout_problems` (the explorers' layout report) for axes
that collapsed and for text boxes that overlap (a slanted label tested as the rotated rectangle it is).
:func:`install` hooks the check into an IPython kernel: every Figure a cell displays (as its value, through
``display`` or ``plt.show``) and every pyplot figure still open at the end of a cell (which the inline
backend shows) raises :class:`FigureLayoutError` naming the figure and its problems, so the cell fails. The
test suite installs it in every kernel it starts (``conftest.py``: an IPython startup file through
``IPYTHONDIR``), for the notebooks and for the handout.
"""

from __future__ import annotations

import ast
import json
import os

import numpy as np

from .fit import boxes_hit, draw_layout, layout_problems, text_boxes, texts

COLUMN_PX = 1100  # the width of a notebook's output column (CSS px); wider figures are scaled down to it
MIN_PT = 9  # the smallest text a reader should meet, in points on screen
CSS_DPI = 96
PAD_IN = 0.1  # the inline backend's pad around the tight bounding box (savefig's default pad_inches)
REPORT_ENV = "ANYRES_FIGURE_REPORT"  # a file path: append each problem (JSON, PNG beside it), do not raise


class FigureLayoutError(AssertionError):
    """A figure a notebook shows has overlapping labels, collapsed axes or text below :data:`MIN_PT`."""


def figure_title(fig) -> str:
    """The figure's suptitle, else its first axes title, else a description."""
    if getattr(fig, "_suptitle", None) is not None and fig._suptitle.get_text().strip():
        return fig._suptitle.get_text()
    for ax in fig.axes:
        if ax.get_title().strip():
            return ax.get_title()
    return f"untitled figure with {len(fig.axes)} axes"


def _footprint(t, bb, renderer) -> np.ndarray:
    """The 4 corners (px) of the rectangle a text is drawn in: its axis-aligned box, or for a slanted text
    (a tick label at 45°) the rotated rectangle of its unrotated size around the same centre."""
    angle = t.get_rotation() % 180
    if angle % 90 == 0:
        return np.array([[bb.x0, bb.y0], [bb.x1, bb.y0], [bb.x1, bb.y1], [bb.x0, bb.y1]])
    t.set_rotation(0)
    flat = t.get_window_extent(renderer)
    t.set_rotation(angle)
    w, h, a = flat.width / 2, flat.height / 2, np.deg2rad(angle)
    rot = np.array([[np.cos(a), -np.sin(a)], [np.sin(a), np.cos(a)]])
    centre = [(bb.x0 + bb.x1) / 2, (bb.y0 + bb.y1) / 2]
    return (rot @ np.array([[-w, -h], [w, -h], [w, h], [-w, h]]).T).T + centre


def _polygons_overlap(p: np.ndarray, q: np.ndarray, tol: float = 1.0) -> bool:
    """Two convex polygons overlap by more than ``tol`` px (separating-axis test)."""
    for poly in (p, q):
        for i in range(len(poly)):
            edge = poly[(i + 1) % len(poly)] - poly[i]
            axis = np.array([-edge[1], edge[0]]) / (np.hypot(*edge) or 1.0)
            a, b = p @ axis, q @ axis
            if a.max() - tol <= b.min() or b.max() - tol <= a.min():
                return False
    return True


def _overlaps(fig, renderer) -> list[tuple[str, str]]:
    """Pairs of texts whose drawn rectangles overlap (slanted texts as slanted rectangles)."""
    boxes = text_boxes(fig, renderer)
    out = []
    for i, (a, ba) in enumerate(boxes):
        for b, bb in boxes[i + 1:]:
            if boxes_hit(ba, bb) and _polygons_overlap(_footprint(a, ba, renderer),
                                                       _footprint(b, bb, renderer)):
                out.append((a.get_text(), b.get_text()))
    return out


def shown_report(fig, column_px: int = COLUMN_PX, min_pt: float = MIN_PT) -> dict:
    """How ``fig`` reads when a notebook shows it: ``width_px`` (its PNG's width), ``scale`` (to fit the
    column), ``overlaps`` (pairs of overlapping texts), ``collapsed`` (axes), ``small`` ((text, pt on
    screen) below ``min_pt``)."""
    if not hasattr(fig.canvas, "get_renderer"):  # a figure closed in pyplot: draw it with Agg
        from matplotlib.backends.backend_agg import FigureCanvasAgg

        FigureCanvasAgg(fig)
    renderer, collapsed_warning = draw_layout(fig)
    width_px = (fig.get_tightbbox(renderer).width + 2 * PAD_IN) * fig.dpi
    scale = min(1.0, column_px / width_px)
    problems = layout_problems(fig, renderer)
    problems["overlaps"] = _overlaps(fig, renderer)  # the same test, slanted labels as drawn
    if collapsed_warning and not problems["collapsed"]:
        problems["collapsed"] = ["constrained layout: axes collapsed"]
    small = [(t.get_text(), round(t.get_fontsize() * fig.dpi / CSS_DPI * scale, 1)) for t in texts(fig)]
    return {"width_px": round(width_px), "scale": round(scale, 3), "overlaps": problems["overlaps"],
            "collapsed": problems["collapsed"], "small": [(s, pt) for s, pt in small if pt < min_pt - 1e-6]}


def _short(s: str, n: int = 50) -> str:
    s = " ".join(str(s).split())
    return repr(s if len(s) <= n else s[: n - 1] + "…")


def check_figure(fig, column_px: int = COLUMN_PX, min_pt: float = MIN_PT) -> dict:
    """:func:`shown_report` of ``fig``; raise :class:`FigureLayoutError` if it has a problem."""
    rep = shown_report(fig, column_px, min_pt)
    lines = []
    if rep["overlaps"]:
        pairs = (f"{_short(a)} / {_short(b)}" for a, b in rep["overlaps"])
        lines.append("overlapping labels: " + "; ".join(pairs))
    if rep["collapsed"]:
        lines.append("collapsed axes: " + ", ".join(map(_short, rep["collapsed"])))
    if rep["small"]:
        pts = sorted({pt for _, pt in rep["small"]})
        lines.append(f"{len(rep['small'])} texts below {min_pt:g} pt on screen ({pts[0]:g}–{pts[-1]:g} pt), "
                     "e.g. " + ", ".join(_short(s, 30) for s, _ in rep["small"][:4]))
    if lines:
        size = f"{rep['width_px']} px wide at {fig.dpi:g} dpi" + (
            f", shown at {rep['scale']:.0%} in a {column_px}-px column" if rep["scale"] < 1 else "")
        raise FigureLayoutError(f"figure {_short(figure_title(fig), 80)} ({size}):\n  " + "\n  ".join(lines))
    return rep


def _check_shown(fig) -> None:
    """:func:`check_figure`; with :data:`REPORT_ENV` set (a survey of every notebook), each problem is
    appended to that file (and the figure saved beside it) instead of raised."""
    try:
        check_figure(fig)
    except FigureLayoutError as e:
        report = os.environ.get(REPORT_ENV)
        if report:
            n = sum(1 for _ in open(report)) if os.path.exists(report) else 0
            fig.savefig(f"{report}.{n}.png", bbox_inches="tight")
            entry = {"title": figure_title(fig), "problem": str(e), "png": f"{report}.{n}.png"}
            with open(report, "a") as f:
                f.write(json.dumps(entry) + "\n")
        else:
            raise


def check_open_figures(result=None):
    """Check every pyplot figure still open and not checked yet (the inline backend shows and closes them
    after the cell); return ``result`` unchanged (the cell's value)."""
    import matplotlib.pyplot as plt

    for num in plt.get_fignums():
        fig = plt.figure(num)
        if not getattr(fig, "_anyres_checked", False):
            fig._anyres_checked = True
            _check_shown(fig)
    return result


class _CheckAtEnd(ast.NodeTransformer):
    """Wrap a cell's last expression as ``check_open_figures(expr)`` (so it is still the cell's value), or
    append ``check_open_figures()``."""

    CALL = "__import__('anyres_tutorial.viz.shown', fromlist=['_']).check_open_figures"

    def visit_Module(self, node):
        fn = ast.parse(self.CALL, mode="eval").body
        if node.body and isinstance(node.body[-1], ast.Expr):
            last = node.body[-1]
            last.value = ast.Call(func=fn, args=[last.value], keywords=[])
        else:
            node.body.append(ast.Expr(ast.Call(func=fn, args=[], keywords=[])))
        return ast.fix_missing_locations(node)


def install(ip=None) -> None:
    """Check every figure the IPython shell ``ip`` (default: the running one) displays; see the module."""
    from matplotlib.figure import Figure

    if ip is None:
        from IPython import get_ipython

        ip = get_ipython()
    if ip is None or getattr(ip, "_anyres_figure_check", False):
        return
    formatter = ip.display_formatter
    original = formatter.format

    def format(obj, *args, **kwargs):  # noqa: A001 - the name IPython calls
        if isinstance(obj, Figure):
            _check_shown(obj)
        return original(obj, *args, **kwargs)

    formatter.format = format
    ip.ast_transformers.append(_CheckAtEnd())
    ip._anyres_figure_check = True


__all__ = ["COLUMN_PX", "MIN_PT", "REPORT_ENV", "FigureLayoutError", "figure_title", "shown_report",
           "check_figure", "check_open_figures", "install"]
