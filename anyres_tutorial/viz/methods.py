"""Teaching pictures of one tiling step each: template matching, UReader's anchor scores and crop position
ids, LLaVA-NeXT's unpad step.

Each takes a :class:`anyres_tutorial.tiling.Plan` and checks the plan for the step it draws (its score-table
kind, its ``details``, its options), never the method's name: a plan without that step raises ValueError
saying what is missing. Taught in `tiling_basics` (template), `llava_next_anyres` (unpad),
`ureader_shape_adaptive` and `positions` (anchors, crop positions) and `grid_explorer`.
"""

from __future__ import annotations

import matplotlib.pyplot as plt
import numpy as np
from matplotlib.colors import to_rgb
from matplotlib.figure import Figure
from matplotlib.patches import Patch, Rectangle

from ..tiling.protocol import TILE0, encoder_order, tile_map
from .fit import OPTIONAL, short_form
from .palette import (
    CHOSEN_COLOR,
    CONTENT_FILL,
    GLOBAL_COLOR,
    NEWLINE_COLOR,
    PADDING,
    USEFUL,
    fig_ax,
    fill_rgb,
    new_figure,
    tile_colors,
    wh,
)
from .tiling import shade_outside

__all__ = ["template_diagram", "ureader_scores", "unpad_diagram", "crop_positions", "pick_frames"]

CODE_MARK, PAPER_MARK = NEWLINE_COLOR, "#ff7f0e"  # the code's and the paper's pick in the anchor maps


def _score_data(plan, kind: str, who: str) -> tuple:
    from .. import tiling

    table = tiling.score_table(plan)
    if table.kind != kind:
        raise ValueError(f"{who} needs a plan whose score table has kind {kind!r}, got {table.kind!r} "
                         f"(method {plan.method!r})")
    return table.data


def _need_option(plan, name: str, who: str) -> None:
    if name not in plan.options:
        raise ValueError(f"{who} replans with option {name!r}, which method {plan.method!r} does not have")


# ---------------------------------------------------------------------------------------------------------
# Template matching (`tiling_basics`)


def _template_aspect_axis(ax, plan, data) -> None:
    """Every template's cols/rows on a log axis against the image's W/H, with the log distances."""
    w, h = plan.image_size
    ars = [d["grid"][1] / d["grid"][0] for d in data] + [w / h]
    ax.set_xscale("log")
    ax.set_xlim(min(ars) / 1.6, max(ars) * 1.6)
    ax.set_ylim(-1, 1.3)
    ax.axvline(w / h, color=NEWLINE_COLOR, linewidth=2, label=f"image W/H = {w}/{h} = {w / h:.3f}")
    seen: dict = {}
    for d in data:
        rr, c = d["grid"]
        a = c / rr
        level = seen.get(a, 0)
        seen[a] = level + 1
        y = 0.55 - 0.55 * level
        ax.plot([a], [y], marker="*" if d["chosen"] else "o", markersize=16 if d["chosen"] else 9,
                color=CHOSEN_COLOR if d["chosen"] else "0.4", zorder=3)
        note = ax.annotate(f"{c}:{rr} (cols:rows)\n|Δlog| = {d['log_distance']:.3f}", (a, y), xytext=(8, 0),
                           textcoords="offset points", fontsize=10, va="center")
        short_form(note, f"{c}:{rr}")  # a narrow picture: the template's name only
    ax.set_yticks([])
    ax.set_xlabel("aspect ratio W/H (log scale)")
    ax.legend(loc="upper left", fontsize=10)
    chosen = next(d for d in data if d["chosen"])
    ax.set_title(f"template tiling of a {w}×{h} image: closest template = {chosen['grid'][1]}:"
                 f"{chosen['grid'][0]} (cols:rows) → canvas {wh(plan.canvas_size)}, {plan.num_tiles} "
                 f"tiles + {len(plan.global_views)} thumbnail", fontsize=10)


def _template_canvases(ax, plan, data) -> None:
    """Each template's canvas at scale with the image fitted inside (planned alone by the library)."""
    from .. import tiling

    t = plan.tile_size
    w = plan.image_size[0]
    x, gap, top = 0.0, t * 0.5, 0.0
    for d in data:
        rr, c = d["grid"]
        alone = tiling.replan(plan, templates=((c, rr),))  # this template's own canvas and fit
        cw, ch = alone.canvas_size
        nw, nh = alone.resize_size
        ox, oy = alone.content_box[:2]
        ax.add_patch(Rectangle((x, 0), cw, ch, facecolor=fill_rgb(plan.fill), edgecolor="none"))
        ax.add_patch(Rectangle((x + ox, oy), nw, nh, facecolor=CONTENT_FILL, edgecolor=USEFUL))
        shade_outside(ax, (x, 0, x + cw, ch), (x + ox, oy, x + ox + nw, oy + nh), alpha=0.3)
        for k in range(1, c):
            ax.plot([x + k * t] * 2, [0, ch], color="white", linewidth=1, linestyle="--")
        for k in range(1, rr):
            ax.plot([x, x + cw], [k * t] * 2, color="white", linewidth=1, linestyle="--")
        ax.add_patch(Rectangle((x, 0), cw, ch, fill=False, edgecolor=CHOSEN_COLOR if d["chosen"] else "0.5",
                               linewidth=4 if d["chosen"] else 1))
        note = "holds it without downscaling" if d["covers_image"] else f"image scaled ×{nw / w:.2f}"
        label = ax.text(x + cw / 2, ch + t * 0.08, f"{c}:{rr} → {wh((cw, ch))}\nimage {wh((nw, nh))}\n{note}"
                        + ("\n★ chosen" if d["chosen"] else ""), ha="center", va="top", fontsize=10)
        short_form(label, f"{c}:{rr}" + (" ★" if d["chosen"] else ""))
        x += cw + gap
        top = max(top, ch)
    ax.set_xlim(-gap * 0.2, x - gap * 0.8)
    ax.set_ylim(top + t * 0.75, -t * 0.05)
    ax.set_aspect("equal")
    ax.axis("off")
    ax.legend(handles=[Patch(facecolor=CONTENT_FILL, edgecolor=USEFUL, label="the image, aspect kept"),
                       Patch(facecolor=PADDING, hatch="//", alpha=0.3, label="padding")],
              loc="upper left", bbox_to_anchor=(0, 0), ncol=2, fontsize=10, frameon=False)


def template_diagram(plan, *, axes=None) -> Figure:
    """Why the generic template tiling picks its template: aspect ratios on a log axis, then each template.

    ``plan``: a plan whose score table has kind "template", e.g. ``tiling.plan("template", (500, 800))``.
    Top: the image's aspect ratio W/H (red line) against every template's cols/rows on a log axis, with the
    log distance |log(W/H) − log(cols/rows)| written at each template; the winner is starred. Bottom: each
    template's canvas with the image fitted inside (aspect kept, padding hatched; each template planned
    alone by ``tiling.replan``), whether it holds the image without downscaling, and the chosen one framed.
    ``axes``: an optional pair of axes (top, bottom). Taught in `tiling_basics`; used by `grid_explorer`.
    """
    data = _score_data(plan, "template", "template_diagram")
    _need_option(plan, "templates", "template_diagram")
    if axes is None:
        fig = new_figure((10.8, 6.8))
        gs = fig.add_gridspec(2, 1, height_ratios=[1, 2.2])
        ax1, ax2 = fig.add_subplot(gs[0]), fig.add_subplot(gs[1])
    else:
        ax1, ax2 = axes
        fig = ax1.figure
    _template_aspect_axis(ax1, plan, data)
    _template_canvases(ax2, plan, data)
    return fig


# ---------------------------------------------------------------------------------------------------------
# LLaVA-NeXT's unpad step (`llava_next_anyres`)


def _unpad_panel(ax, plan, un: dict, tokens: int, original: bool) -> None:
    """One rounding mode: the stitched feature map, the image content, the removed and the kept part."""
    fh, fw = un["feature_map_hw"]
    rows, cols = plan.grid
    s = fh // rows  # features per tile side
    tiles = tile_map(plan, (s, s)) - TILE0  # (fh, fw) tile index per feature
    pale = np.array([np.array(to_rgb(c)) * 0.35 + 0.65 for c in tile_colors(plan.num_tiles)])
    ax.imshow(pale[tiles], extent=(0, fw, fh, 0), interpolation="nearest")
    w, h = plan.image_size
    pad = un["padding"]
    if un["axis"] == "rows":
        keep, raw, expr = (0, pad, fw, fh - pad), h * (fw / w), f"H·(w_map/W) = {h}·{fw}/{w}"
    else:
        keep, raw, expr = (pad, 0, fw - pad, fh), w * (fh / h), f"W·(h_map/H) = {w}·{fh}/{h}"
    shade_outside(ax, (0, 0, fw, fh), keep, alpha=0.6)
    fl, ft, fr, fb = (v / plan.patch_size for v in plan.content_box)
    ax.add_patch(Rectangle((fl, ft), fr - fl, fb - ft, fill=False, edgecolor=USEFUL, linestyle="--",
                           linewidth=1.5, label=f"image content (canvas content box / {plan.patch_size})"))
    hh, ww = un["unpadded_hw"]
    ax.add_patch(Rectangle(keep[:2], keep[2] - keep[0], keep[3] - keep[1], fill=False, edgecolor=CHOSEN_COLOR,
                           linewidth=2.5, label=f"kept {hh}×{ww}"))
    for k in range(1, cols):
        ax.axvline(k * s, color="white", linewidth=0.8)
    for k in range(1, rows):
        ax.axhline(k * s, color="white", linewidth=0.8)
    ax.set_xlim(0, fw)
    ax.set_ylim(fh, 0)
    ax.set_aspect("equal")
    ax.set_xlabel("feature column")
    ax.set_ylabel("feature row")
    rnd = "int(x)" if original else "int(round(x, 7))"
    ax.set_title(f"{'original LLaVA-NeXT' if original else 'Hugging Face port'}: {rnd}\n"
                 f"x = {expr}\n= {raw!r} → new = {un['new_length']}\npad = {pad} per side; "
                 f"kept {hh}×{ww} + {hh} newlines\n→ {tokens} LLM tokens", fontsize=10)
    ax.legend(fontsize=10, loc="upper left", bbox_to_anchor=(0.0, -0.12), frameon=False)


def unpad_diagram(plan, axes=None) -> Figure:
    """LLaVA-NeXT ``unpad_image`` on the stitched tile feature map, original ``int()`` vs HF ``round(x, 7)``.

    ``plan``: a plan with an unpad step (``plan.details["unpad"]`` and an ``unpad`` option), e.g.
    a LLaVA-NeXT plan of a 704×396 image; both rounding modes are planned with ``tiling.replan``.
    Each panel shows the (rows·24)×(cols·24) feature map (one cell per token, pale tile colours), where the
    image content lies (blue dashed: content box / 14), the rows/cols that ``unpad_image`` removes (hatched)
    and the kept region (green). Left: the original LLaVA-NeXT code (``int()`` truncation); right: the Hugging
    Face port (``int(round(x, 7))``). When ``n − new`` is odd, the ``[pad : n − pad]`` slice keeps one padded
    row/col. ``axes``: an optional pair. Taught in `llava_next_anyres`; used by `grid_explorer`.
    """
    from .. import tiling

    if "unpad" not in (plan.details or {}):
        raise ValueError(f"unpad_diagram needs a plan with an unpad step (plan.details['unpad']), got "
                         f"method {plan.method!r}")
    _need_option(plan, "unpad", "unpad_diagram")
    if axes is None:
        axes = new_figure((10, 7.4)).subplots(1, 2)
    fig = axes[0].figure
    for ax, mode in zip(axes, ("original", "hf")):
        q = tiling.replan(plan, unpad=mode)
        _unpad_panel(ax, q, q.details["unpad"], q.num_tokens, mode == "original")
    fh, fw = plan.details["unpad"]["feature_map_hw"]
    fig.suptitle(f"unpad_image for a {wh(plan.image_size)} image on canvas {wh(plan.canvas_size)}\n"
                 f"(feature map {fh}×{fw} = rows·{fh // plan.grid[0]} × cols·{fw // plan.grid[1]}; hatched = "
                 f"removed as padding)", fontsize=11)
    return fig


# ---------------------------------------------------------------------------------------------------------
# UReader (`ureader_shape_adaptive`, `positions`)


def pick_frames(ax) -> dict:
    """The picks a panel of :func:`ureader_scores` frames: rule ("code" / "paper") -> (nw, nh) cell."""
    return {r.get_gid()[5:]: (r.get_x() + r.get_width() / 2, r.get_y() + r.get_height() / 2)
            for r in ax.patches if (r.get_gid() or "").startswith("pick-")}


def _anchor_panel(ax, fig, anchors, vals, title: str, fmt: str, picks: dict, robust: bool) -> None:
    """One heat map over the (nh, nw) anchors; the code's pick framed (solid) and the paper's (dashed, inset),
    so that the frames never cover a cell's value."""
    H, W = max(a[0] for a in anchors), max(a[1] for a in anchors)
    grid = np.full((H, W), np.nan)
    for (nh, nw), v in zip(anchors, vals):
        grid[nh - 1, nw - 1] = v
    finite = grid[np.isfinite(grid)]
    lo = np.percentile(finite, 5) if robust else finite.min()
    cmap = plt.get_cmap("viridis").with_extremes(bad="#e6e6e6")
    im = ax.imshow(np.ma.masked_invalid(grid), cmap=cmap, vmin=lo, vmax=finite.max(),
                   extent=(0.5, W + 0.5, H + 0.5, 0.5))
    fig.colorbar(im, ax=ax, shrink=0.8)
    if len(anchors) <= 64:
        size = 10 if max(H, W) <= 11 else 8
        for (nh, nw), v in zip(anchors, vals):
            ax.text(nw, nh, fmt.format(v), ha="center", va="center", fontsize=size, zorder=5,
                    color="white" if v < (lo + finite.max()) / 2 else "black",
                    gid=OPTIONAL)  # a narrow picture keeps the colours only
    for rule, inset, style, color in (("code", 0.0, "-", CODE_MARK), ("paper", 0.1, "--", PAPER_MARK)):
        nh, nw = picks[rule]
        ax.add_patch(Rectangle((nw - 0.5 + inset, nh - 0.5 + inset), 1 - 2 * inset, 1 - 2 * inset, fill=False,
                               edgecolor=color, linewidth=3, linestyle=style, zorder=6, gid=f"pick-{rule}",
                               label=f"{rule} picks {nh}×{nw}"))
    ax.set_xticks(range(1, W + 1))
    ax.set_yticks(range(1, H + 1))
    ax.tick_params(labelsize=10 if max(H, W) <= 12 else 8)
    ax.set_xlabel("nw (crop columns)")
    ax.set_ylabel("nh (crop rows)")
    ax.set_title(title, fontsize=10)


def ureader_scores(plan, *, axes=None) -> Figure:
    """UReader's anchor scores over every anchor (nh, nw): Srr, Sra, the code's score and the paper's score.

    ``plan``: a plan whose score table has kind "anchors", e.g. a UReader plan of a 1920×1080 image (its
    ``anchors`` option picks the anchor set). Four heat-maps with nw (columns of 224 crops) on x and nh
    (rows) on y; grey cells are grids not in the anchor set. Srr = IoU(anchor, image), Sra = IoU(anchor,
    image rescaled to the anchor's width) — both as the code computes them (float32, Sra box height
    truncated). The code picks argmax(100·Sra + Srr) (solid red frame), the paper argmax(Sra + Srr)
    (dashed orange frame, inset); both frames are drawn on every panel, so one sees when they disagree
    (:func:`pick_frames` reads them back). Numbers from ``tiling.score_table(plan).data``.
    ``axes``: 4 axes. Taught in `ureader_shape_adaptive`; used by `grid_explorer`.
    """
    data = _score_data(plan, "anchors", "ureader_scores")
    anchors = [d["anchor"] for d in data]
    picks = {"code": next(d["anchor"] for d in data if d["best_code"]),
             "paper": next(d["anchor"] for d in data if d["best_paper"])}
    if axes is None:
        axes = list(np.ravel(new_figure((10.6, 10.6)).subplots(2, 2)))
    fig = axes[0].figure
    panels = [("Srr = IoU(anchor, image)  (resolution-related)", "Srr", "{:.2f}", "Srr (resolution)"),
              ("Sra = IoU(anchor, image at anchor width)  (shape)", "Sra", "{:.2f}", "Sra (shape)"),
              ("code: 100·Sra + Srr  (doc_processor.py::anchor_rank)", "score_code", "{:.1f}", "code score"),
              ("paper: Sra + Srr  (arXiv:2310.05126 §3.2)", "score_paper", "{:.2f}", "paper score")]
    for ax, (title, key, fmt, short) in zip(axes, panels):
        vals = np.array([d[key] for d in data], dtype=float)
        _anchor_panel(ax, fig, anchors, vals, title, fmt, picks, robust=key == "score_code")
        short_form(ax.title, short)  # a narrow picture: the short name (the docstring has the rule)
    w, h = plan.image_size
    (ch, cw), (ph, pw) = picks["code"], picks["paper"]
    rr, cc = plan.grid
    fig.suptitle(f"Anchor scores for a {w}×{h} image (aspect W/H = {w / h:.3f}), {len(anchors)} anchors:\n"
                 f"code → {ch}×{cw}, paper → {ph}×{pw}; this plan → {rr}×{cc} ({plan.num_tokens} tokens)",
                 fontsize=11)
    fig.legend(handles=[p for p in axes[0].patches if (p.get_gid() or "").startswith("pick-")],
               loc="outside lower center", ncol=2, fontsize=10, frameon=False)
    return fig


def crop_positions(plan, ax=None) -> Figure:
    """UReader's 2-D crop position ids: the (row, col) of every crop, and the global view's special id.

    ``plan``: a plan with crop position ids (``plan.details["crop_positions"]``, one per encoder image in
    encoder order). The crop grid is drawn with each cell's (row, col) — the indices into the row and column
    embedding tables that are added to the crop's visual tokens; the global view (first in the batch) gets
    (anchor_max, anchor_max). Taught in `ureader_shape_adaptive` and `positions`.
    """
    pos = (plan.details or {}).get("crop_positions")
    if pos is None:
        raise ValueError(f"crop_positions needs a plan with crop position ids (plan.details"
                         f"['crop_positions']), got method {plan.method!r}")
    fig, ax = fig_ax(ax, (8, 4.5))
    rows, cols = plan.grid
    order = encoder_order(plan)
    colors = tile_colors(plan.num_tiles)
    globals_ = [(i, pos[i]) for i, (kind, _) in enumerate(order) if kind == "global"]
    for i, (kind, k) in enumerate(order):
        if kind == "tile":
            r, c = pos[i]
            ax.add_patch(Rectangle((c, r), 1, 1, facecolor=colors[k], alpha=0.75, edgecolor="white"))
            ax.text(c + 0.5, r + 0.5, f"#{i}\n(row {r}, col {c})", ha="center", va="center", fontsize=10)
    gx = cols + 0.5
    for j, (i, gp) in enumerate(globals_):
        ax.add_patch(Rectangle((gx, j), 1, 1, facecolor=GLOBAL_COLOR, edgecolor="white"))
        ax.text(gx + 0.5, j + 0.5, f"#{i} global\n({gp[0]}, {gp[1]})", ha="center", va="center", fontsize=10,
                color="white")
    ax.set_xlim(-0.1, gx + 1.1)
    ax.set_ylim(max(rows, len(globals_)) + 0.1, -0.1)
    ax.set_aspect("equal")
    ax.axis("off")
    ax.set_title(f"{plan.method}: crop position ids (row, col) for a {wh(plan.image_size)} image, grid "
                 f"{rows}×{cols}\nglobal view gets (anchor_max, anchor_max) = "
                 f"{globals_[0][1] if globals_ else '-'}", fontsize=10)
    return fig
