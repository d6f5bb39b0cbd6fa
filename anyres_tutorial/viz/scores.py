"""Why a plan's grid won: pictures of a tiling method's score table (``tiling.score_table(plan)``).

:func:`score_picture` draws any plan's table, choosing the picture by the table's ``kind`` (never by the
method's name) from a small registry: "resolution" and "aspect" -> :func:`candidate_scores`, "template" ->
``viz.template_diagram``, "anchors" -> ``viz.ureader_scores``, "none" -> no picture; any other kind (a method
added with ``tiling.register``) gets :func:`table_picture`, a bar chart of the table's first numeric column
with the chosen row highlighted. :func:`register_score_picture` adds a picture for a new kind.

Used by `llava_next_anyres`, `deepseek_vl2_and_internvl` and `grid_explorer`.
"""

from __future__ import annotations

from collections.abc import Callable

import numpy as np
from matplotlib.figure import Figure
from matplotlib.patches import Patch
from matplotlib.ticker import FuncFormatter, MaxNLocator

from ..registry import Registry
from .fit import OPTIONAL, short_form
from .palette import CHOSEN_COLOR, NEWLINE_COLOR, PAD_EDGE, PADDING, USEFUL, fig_ax, wh

__all__ = ["score_picture", "register_score_picture", "SCORE_PICTURES", "candidate_scores", "table_picture",
           "shown_candidates"]

OTHER_COLOR = "#9ecae1"  # candidates that lost
TIE_COLOR = "#ff7f0e"  # candidates tied with the winner


def _table(plan, kinds: tuple, who: str):
    """The plan's score table, checked to be of one of ``kinds`` (ValueError naming what was found)."""
    from .. import tiling

    table = tiling.score_table(plan)
    if table.kind not in kinds or not table.data:
        raise ValueError(f"{who} needs a plan whose candidates are scored by {' or '.join(kinds)} "
                         f"(score table kind {table.kind!r} of method {plan.method!r})")
    return table


def _mark_chosen_ticks(ax, data) -> None:
    for tick, d in zip(ax.get_yticklabels(), data):
        if d["chosen"]:
            tick.set_fontweight("bold")
            tick.set_color(CHOSEN_COLOR)


# ---------------------------------------------------------------------------------------------------------
# "resolution" and "aspect" tables


def candidate_scores(plan, ax=None) -> Figure:
    """The candidate search of a plan made visible, for score tables of kind "resolution" or "aspect".

    "resolution" (``select_best_resolution``): one horizontal bar per candidate canvas (in list order, top =
    first): effective resolution (the image pixels the canvas can show, blue) plus wasted resolution (canvas
    pixels left over, grey) = the canvas area. The chosen canvas is starred; candidates that tie with it on
    both numbers are marked "tie" — the *first* in list order wins. "aspect" (``find_closest_aspect_ratio``):
    |W/H − cols/rows| per candidate grid with the tie-break events written. Other kinds raise ValueError.
    Used by `llava_next_anyres`, `deepseek_vl2_and_internvl` and `grid_explorer`.
    """
    table = _table(plan, ("resolution", "aspect"), "candidate_scores")
    if table.kind == "aspect":
        return _aspect_candidates(plan, table.data, ax)
    return _resolution_candidates(plan, table.data, ax)


def _legend_below(ax, handles=None, ncol: int = 1) -> None:
    """The legend under the x-axis label: it never hides a bar."""
    kw = {} if handles is None else {"handles": handles}
    ax.legend(**kw, fontsize=10, loc="upper left", bbox_to_anchor=(0.0, -0.14), ncol=ncol, frameon=False)


def _resolution_candidates(plan, data, ax) -> Figure:
    fig, ax = fig_ax(ax, (9, 0.5 * len(data) + 2.8))
    chosen = next(d for d in data if d["chosen"])
    key = (chosen["effective_resolution"], chosen["wasted_resolution"])
    y = np.arange(len(data))
    eff = np.array([d["effective_resolution"] for d in data], dtype=float)
    waste = np.array([d["wasted_resolution"] for d in data], dtype=float)
    ax.barh(y, eff, color=USEFUL, label="effective resolution = min(int(W·s)·int(H·s), W·H)")
    ax.barh(y, waste, left=eff, color=PADDING, hatch="//", edgecolor="white",
            label="wasted resolution = canvas − effective")
    t = plan.tile_size
    labels = []
    for d in data:
        cw, ch = d["candidate"]
        tie = (d["effective_resolution"], d["wasted_resolution"]) == key
        tag = "  ★ chosen" if d["chosen"] else ("  tie (later: loses)" if tie else "")
        labels.append(f"{cw}×{ch} ({ch // t}×{cw // t}){tag}")
    ax.set_yticks(y, labels, fontsize=10)
    _mark_chosen_ticks(ax, data)
    ax.invert_yaxis()
    total = eff + waste
    for yi, e, tt in zip(y, eff, total):
        ax.text(tt, yi, f" {int(e):,} / {int(tt):,}", va="center", fontsize=10,
                gid=OPTIONAL)  # a narrow picture leaves the numbers to the table below it
    w, h = plan.image_size
    ax.axvline(w * h, color=NEWLINE_COLOR, linestyle=":", linewidth=1.2,
               label=f"image pixels W·H = {w * h:,}")
    ax.set_xlim(0, total.max() * 1.45)  # room for the value labels right of the longest bar
    ax.xaxis.set_major_locator(MaxNLocator(5))
    ax.xaxis.set_major_formatter(FuncFormatter(lambda v, _: f"{v:,.0f}"))
    ax.set_xlabel("pixels")
    short_form(ax.set_ylabel("candidate canvas W×H (rows×cols)"), "canvas W×H")
    _legend_below(ax)
    ax.set_title(f"{plan.method}: select_best_resolution for a {wh(plan.image_size)} image → "
                 f"{wh(chosen['candidate'])}\nmost effective resolution first, then least waste; full tie → "
                 f"first in list", fontsize=10)
    return fig


#: the most candidate grids an "aspect" picture draws; a longer list shows the chosen one, the search's steps
#: and the closest others (the table under the picture in `grid_explorer` lists them all)
MAX_BARS = 20


def shown_candidates(data, limit: int = MAX_BARS) -> list[int]:
    """Indices (in the code's order) of the candidates an "aspect" picture draws: all of them up to
    ``limit``; else the chosen one, the steps of the search (rows with an event: a better grid, a tie) and
    the closest others, ``limit`` in all."""
    if len(data) <= limit:
        return list(range(len(data)))
    must = [i for i, d in enumerate(data) if d["chosen"] or d["event"]]
    must = sorted(must, key=lambda i: (not data[i]["chosen"], data[i]["aspect_diff"]))[:limit]
    rest = sorted((i for i in range(len(data)) if i not in must), key=lambda i: data[i]["aspect_diff"])
    return sorted(must + rest[:limit - len(must)])


def _aspect_candidates(plan, data, ax) -> Figure:
    """``find_closest_aspect_ratio``: |W/H − cols/rows| per candidate grid, ties annotated."""
    shown = shown_candidates(data)
    rows = [data[i] for i in shown]
    fig, ax = fig_ax(ax, (9, 0.36 * len(rows) + 2.8))
    w, h = plan.image_size
    y = np.arange(len(rows))
    diff = np.array([d["aspect_diff"] for d in rows])
    colors = [CHOSEN_COLOR if d["chosen"] else (TIE_COLOR if d["event"].startswith("tie") else OTHER_COLOR)
              for d in rows]
    ax.barh(y, diff, color=colors)
    labels = [f"{d['grid'][0]}×{d['grid'][1]} ({d['grid'][1]}:{d['grid'][0]})"
              + ("  ★ chosen" if d["chosen"] else "") for d in rows]
    ax.set_yticks(y, labels, fontsize=10)
    _mark_chosen_ticks(ax, rows)
    for yi, d in zip(y, rows):
        if d["event"]:
            event = ax.text(d["aspect_diff"], yi, f"  {d['event']}", va="center", fontsize=10)
            short_form(event, f"  {d['event'].split(':')[0]}")  # narrow: "tie" / "better"
    marks = [(yi, d["aspect_diff"], c, d["chosen"]) for yi, d, c in zip(y, rows, colors)
             if d["chosen"] or d["event"].startswith("tie")]  # zero-length bars stay visible
    for star in (True, False):
        sel = [m for m in marks if m[3] == star]
        if sel:
            ax.scatter([m[1] for m in sel], [m[0] for m in sel], c=[m[2] for m in sel], s=90, zorder=3,
                       marker="*" if star else "o")
    ax.invert_yaxis()
    ax.set_xlim(0, max(diff.max(), 1e-3) * 1.6)
    short_form(ax.set_xlabel("|W/H − cols/rows|  (smaller is better;\nstrict < keeps the earlier grid)"),
               "|W/H − cols/rows|")
    some = "" if len(rows) == len(data) else f"\nthe {len(rows)} closest of {len(data)}"
    short_form(ax.set_ylabel(f"grid rows×cols (cols:rows), code's order{some}"), "grid rows×cols")
    t = plan.tile_size
    _legend_below(ax, [Patch(color=CHOSEN_COLOR, label="chosen"),
                       Patch(color=TIE_COLOR, label=f"exact tie: W·H > 0.5·{t}²·cols·rows decides"),
                       Patch(color=OTHER_COLOR, label="other candidates")])
    rr, cc = plan.grid
    ax.set_title(f"{plan.method}: find_closest_aspect_ratio, {w}×{h} image (W/H = {w / h:.3f})\n→ "
                 f"{rr}×{cc} tiles (rows×cols) out of {len(data)} candidate grids", fontsize=10)
    return fig


# ---------------------------------------------------------------------------------------------------------
# any other table


def _number(cell) -> float | None:
    try:
        x = float(cell)
    except (TypeError, ValueError):
        return None
    return x if np.isfinite(x) else None


def table_picture(plan, table=None, ax=None) -> Figure:
    """A generic picture of a score table: one bar per shown row for the first column whose cells are all
    numbers, the chosen row in green and starred, the table's rule as the title; a table without a numeric
    column is drawn as a text table. For score tables of kinds no dedicated picture knows."""
    from .. import tiling

    table = tiling.score_table(plan) if table is None else table
    if not table.rows:
        raise ValueError(f"the score table of {plan.method!r} has no rows to draw (kind {table.kind!r})")
    col = next((j for j in range(len(table.columns))
                if all(_number(r[j]) is not None for r in table.rows)), None)
    fig, ax = fig_ax(ax, (8, 0.4 * len(table.rows) + 1.8))
    names = [" · ".join(str(c) for i, c in enumerate(r) if i != col) or f"#{k}"
             for k, r in enumerate(table.rows)]
    if col is None:
        ax.axis("off")
        cells = ax.table(cellText=[[str(c) for c in r] for r in table.rows], colLabels=list(table.columns),
                         loc="center")
        for k, chosen in enumerate(table.chosen):
            if chosen:
                for j in range(len(table.columns)):
                    cells[k + 1, j].set_facecolor("#e6f4ea")
    else:
        y = np.arange(len(table.rows))
        vals = [_number(r[col]) for r in table.rows]
        ax.barh(y, vals, color=[CHOSEN_COLOR if c else OTHER_COLOR for c in table.chosen], edgecolor=PAD_EDGE)
        ax.set_yticks(y, [n + ("  ★ chosen" if c else "") for n, c in zip(names, table.chosen)], fontsize=8)
        _mark_chosen_ticks(ax, [{"chosen": c} for c in table.chosen])
        for yi, v in zip(y, vals):
            ax.text(v, yi, f" {v:g}", va="center", fontsize=7, gid=OPTIONAL)
        ax.invert_yaxis()
        ax.set_xlabel(str(table.columns[col]))
        ax.set_xlim(min(0.0, min(vals)), max(max(vals), 1e-9) * 1.2)
    ax.set_title(f"{plan.method} ({table.kind}): {table.rule}", fontsize=10, wrap=True)
    return fig


# ---------------------------------------------------------------------------------------------------------
# the registry


def _template_picture(plan) -> Figure:
    from .methods import template_diagram

    return template_diagram(plan)


def _anchor_picture(plan) -> Figure:
    from .methods import ureader_scores

    return ureader_scores(plan)


#: Score-table kind -> picture of a plan (``None``: the kind has no picture).
#: Score-table kind -> ``picture(plan) -> Figure`` (None: no picture for that kind).
SCORE_PICTURES = Registry("score table kind")
for _kind, _picture in (("resolution", candidate_scores), ("aspect", candidate_scores),
                        ("template", _template_picture), ("anchors", _anchor_picture), ("none", None)):
    SCORE_PICTURES.register(_kind, _picture)
del _kind, _picture


def register_score_picture(kind: str, picture: Callable | None, *, replace: bool = False) -> None:
    """Draw score tables of ``kind`` with ``picture(plan) -> Figure`` (None: no picture for that kind)."""
    if picture is not None and not callable(picture):
        raise TypeError(f"picture must be callable (plan -> Figure) or None, got {type(picture).__name__}")
    SCORE_PICTURES.register(kind, picture, replace=replace)


def score_picture(plan) -> Figure | None:
    """The picture of why ``plan``'s grid won, chosen by ``tiling.score_table(plan).kind``; None when the
    method compares no candidates (kind "none"). Unknown kinds get :func:`table_picture`. Used by
    `grid_explorer` (the explorer's score tab)."""
    from .. import tiling

    table = tiling.score_table(plan)
    if table.kind in SCORE_PICTURES:
        picture = SCORE_PICTURES.get(table.kind)
        return None if picture is None else picture(plan)
    if not table.rows:
        return None
    return table_picture(plan, table)
