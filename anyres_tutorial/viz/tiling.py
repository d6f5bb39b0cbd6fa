"""Pictures of tiling (切图) that work for every tiling method: grid overlays, tile montages, token strips.

Every function takes a :class:`anyres_tutorial.tiling.Plan`, returns a matplotlib ``Figure`` and never calls
``plt.show()``; single-panel pictures accept ``ax=`` so that the grid explorer (`grid_explorer`) can put
methods side by side. The numbers come from the tiling library (the plan, ``tiling.apply``,
``tiling.token_layout``); the pictures only lay them out, and they know no method by name: a method added
with ``tiling.register`` is drawn like the built-in ones. The per-candidate score pictures are in
``viz.scores``, the pictures of one method's own steps in ``viz.methods``.

Used by `tiling_basics`, `llava_next_anyres`, `ureader_shape_adaptive`, `deepseek_vl2_and_internvl`,
`tiling_vs_packing` and `grid_explorer`. Sizes are (width, height) unless a name says ``hw``.
"""

from __future__ import annotations

import math

import numpy as np
from matplotlib.colors import ListedColormap, to_rgba
from matplotlib.figure import Figure
from matplotlib.patches import Patch, Rectangle
from matplotlib.transforms import ScaledTranslation

from ..tiling.protocol import EMPTY, EXTRA, GLOBAL, NEWLINE, TILE0, encoder_order
from .fit import OPTIONAL, short_form
from .palette import (
    CONTENT_FILL,
    EXTRA_COLOR,
    GLOBAL_COLOR,
    NEWLINE_COLOR,
    PADDING,
    fig_ax,
    fill_rgb,
    new_figure,
    tile_colors,
    wh,
)
from .preview import DISPLAY_SIDE, block_pixels, canvas_pixels, display_copy, fit_image, view_pixels

__all__ = ["grid_overlay", "tile_montage", "token_strip", "token_layout", "display_copy", "padded_views"]


def shade_outside(ax, box, content, label=None, alpha=0.45) -> int:
    """Hatch the parts of ``box`` (l, t, r, b) outside ``content`` (l, t, r, b): the padding. Returns how many
    bands were drawn."""
    x0_, y0_, x1_, y1_ = box
    cl, ct, cr, cb = content
    parts = [(x0_, y0_, x1_, ct), (x0_, cb, x1_, y1_), (x0_, ct, cl, cb), (cr, ct, x1_, cb)]
    drawn = 0
    for x0, y0, x1, y1 in parts:
        if x1 - x0 > 0 and y1 - y0 > 0:
            ax.add_patch(Rectangle((x0, y0), x1 - x0, y1 - y0, facecolor=PADDING, alpha=alpha, hatch="//",
                                   edgecolor="white", linewidth=0, label=label if drawn == 0 else None))
            drawn += 1
    return drawn


def _geometry(ax, x, y, size, fill, content_box) -> None:
    """A canvas / view of ``size`` at (x, y) without pixels: fill colour, the content in pale blue."""
    ax.add_patch(Rectangle((x, y), size[0], size[1], facecolor=fill_rgb(fill), edgecolor="none"))
    cl, ct, cr, cb = content_box
    ax.add_patch(Rectangle((x + cl, y + ct), cr - cl, cb - ct, facecolor=CONTENT_FILL, edgecolor="none"))


# ---------------------------------------------------------------------------------------------------------
# Grid overlay


def _overlay_canvas(ax, plan, source, max_side: int) -> int:
    """The canvas (pixels, or geometry without an image), its padding hatched, the content box dashed."""
    cw, ch = plan.canvas_size
    if source is not None:
        ax.imshow(canvas_pixels(plan, source, max_side), extent=(0, cw, ch, 0), interpolation="antialiased")
    else:
        _geometry(ax, 0, 0, plan.canvas_size, plan.fill, plan.content_box)
    n_pad = shade_outside(ax, (0, 0, cw, ch), plan.content_box, label="padding")
    cl, ct, cr, cb = plan.content_box
    ax.add_patch(Rectangle((cl, ct), cr - cl, cb - ct, fill=False, edgecolor="white", linestyle="--",
                           linewidth=1.2))
    return n_pad


def padded_views(plan) -> bool:
    """True when the tiles are blocks of the image each scaled into its own t×t view with padding of its
    own (``tile_content_boxes`` smaller than the view although the block is not t×t): that padding lies in
    no canvas, so :func:`grid_overlay` pulls the blocks apart to draw each padded view."""
    t = plan.tile_size
    for (x0, y0, x1, y1), (cl, ct, cr, cb) in zip(plan.tile_boxes, plan.tile_content_boxes):
        if (x1 - x0, y1 - y0) != (t, t) and (cr - cl) * (cb - ct) < t * t - 1e-6:
            return True
    return False


def _view_boxes(plan) -> tuple[list, list, float, float]:
    """Each tile's padded view in image px, laid out by grid position with gaps: (view boxes, content boxes,
    width, height of the layout). A view keeps its block's pixel scale; its content is where the block
    lies."""
    t = plan.tile_size
    views = []
    for (x0, y0, x1, y1), (cl, ct, cr, cb) in zip(plan.tile_boxes, plan.tile_content_boxes):
        sx, sy = (x1 - x0) / (cr - cl), (y1 - y0) / (cb - ct)  # block px per view px
        views.append((t * sx, t * sy, cl * sx, ct * sy, x1 - x0, y1 - y0))
    rows, cols = plan.grid
    col_w = [max(v[0] for v, (_, c) in zip(views, plan.tile_positions) if c == j) for j in range(cols)]
    row_h = [max(v[1] for v, (r, _) in zip(views, plan.tile_positions) if r == i) for i in range(rows)]
    gap = 0.04 * max(sum(col_w), sum(row_h))
    xs = np.concatenate([[0], np.cumsum([w + gap for w in col_w])])
    ys = np.concatenate([[0], np.cumsum([h + gap for h in row_h])])
    boxes, contents = [], []
    for (vw, vh, ox, oy, bw, bh), (r, c) in zip(views, plan.tile_positions):
        x, y = xs[c], ys[r]
        boxes.append((x, y, x + vw, y + vh))
        contents.append((x + ox, y + oy, x + ox + bw, y + oy + bh))
    return boxes, contents, xs[-1] - gap, ys[-1] - gap


def _overlay_padded_views(ax, plan, source, max_side: int) -> tuple[list, float, float]:
    """Every block in its padded view, pulled apart: the fill, the block's pixels, the padding hatched."""
    boxes, contents, width, height = _view_boxes(plan)
    scale = min(1.0, max_side / max(width, height))
    for (x0, y0, x1, y1), (cl, ct, cr, cb), block in zip(boxes, contents, plan.tile_boxes):
        ax.add_patch(Rectangle((x0, y0), x1 - x0, y1 - y0, facecolor=fill_rgb(plan.fill), edgecolor="none",
                               zorder=-1))  # under the block's pixels
        if source is None:
            ax.add_patch(Rectangle((cl, ct), cr - cl, cb - ct, facecolor=CONTENT_FILL, edgecolor="none"))
        else:
            pixels = fit_image(block_pixels(plan, source, block), ((cr - cl) * scale, (cb - ct) * scale))
            ax.imshow(np.asarray(pixels), extent=(cl, cr, cb, ct), interpolation="antialiased")
        shade_outside(ax, (x0, y0, x1, y1), (cl, ct, cr, cb), label="padding")
    return boxes, width, height


def _badge(ax, box, text: str, color, fontsize: float = 10, short: str | None = None) -> None:
    """A small half-transparent label in the top-left corner of ``box``: it never hides the tile's middle.
    ``short``: the text a narrow layout uses when this one collides (``viz.fit.short_form``)."""
    x0, y0 = box[0], box[1]
    pad = 0.015 * max(box[2] - box[0], box[3] - box[1])
    t = ax.text(x0 + pad, y0 + pad, text, ha="left", va="top", fontsize=fontsize, color="white",
            fontweight="bold", zorder=4,
            bbox=dict(boxstyle="round,pad=0.15", facecolor=color, alpha=0.6, edgecolor="none"))
    if short is not None:
        short_form(t, short)


def _tile_width_pt(ax, box, span: float) -> float:
    """How wide ``box`` is on screen (points), from the axes' width and the data span it shows."""
    width_in = ax.get_position().width * ax.figure.get_figwidth()
    return (box[2] - box[0]) / max(span, 1e-9) * width_in * 72


def _overlay_tiles(ax, plan, index: dict, boxes, span: float | None) -> None:
    """One coloured frame per tile; a corner badge with its encoder index, and its (row, col) when the tile
    is wide enough on screen for both (no badges when ``span``, the x range shown, is None)."""
    colors = tile_colors(plan.num_tiles)
    for k, box in enumerate(boxes):
        x0, y0, x1, y1 = box
        r, c = plan.tile_positions[k]
        ax.add_patch(Rectangle((x0, y0), x1 - x0, y1 - y0, fill=False, edgecolor=colors[k], linewidth=2.2))
        if span is None:
            continue
        wide = _tile_width_pt(ax, box, span) >= 90
        number = f"#{index[('tile', k)]}"
        _badge(ax, box, f"{number} (r{r}, c{c})" if wide else number, colors[k], short=number)


def _overlay_global_views(ax, plan, source, index: dict, x_start: float, max_side: int,
                          badges: bool = True) -> tuple[float, float]:
    """The global view(s) right of the canvas at their true pixel size; returns (x_max, y_max) drawn."""
    gap = max(x_start, plan.canvas_size[1]) * 0.04
    x, y, xmax = x_start + gap, 0.0, x_start
    ax.axvline(x_start + gap / 2, color="0.5", linestyle=":", linewidth=1)
    for i, gv in enumerate(plan.global_views):
        gw, gh = gv.size
        if source is not None:
            ax.imshow(view_pixels(gv, source, max_side), extent=(x, x + gw, y + gh, y))
        else:
            _geometry(ax, x, y, gv.size, gv.fill, gv.content_box)
        gl, gt, gr, gb = gv.content_box
        shade_outside(ax, (x, y, x + gw, y + gh), (x + gl, y + gt, x + gr, y + gb))
        ax.add_patch(Rectangle((x, y), gw, gh, fill=False, edgecolor=GLOBAL_COLOR, linewidth=2.2))
        if badges:
            label = f"#{index[('global', i)]} global\n{gv.kind}\n{wh(gv.size)}"  # narrow: fits a small panel
            note = ax.text(x + gw, y + gh + gap * 0.3, label, ha="right", va="top", fontsize=10,
                           color=GLOBAL_COLOR)
            short_form(note, f"#{index[('global', i)]} global")
            note.set_gid(OPTIONAL)  # ... and left out when even that collides
        y += gh + gap * 5  # room for the three-line label even in a small panel
        xmax = max(xmax, x + gw)
    return xmax, y


def _overlay_title(plan) -> str:
    rows, cols = plan.grid
    return (f"{plan.method}: image {wh(plan.image_size)} → resized {wh(plan.resize_size)} in canvas "
            f"{wh(plan.canvas_size)}\ngrid {rows}×{cols} (rows×cols) of {plan.tile_size}-px tiles, "
            f"{plan.num_images} images to the ViT, {plan.num_tokens} LLM tokens, "
            f"padding {plan.padding_fraction:.0%}")


def _overlay_legend(ax, n_pad: int, views: bool) -> None:
    handles = [Patch(facecolor=PADDING, hatch="//", alpha=0.45, label="padding")] if n_pad else []
    if views:
        handles.append(Patch(facecolor="none", edgecolor=GLOBAL_COLOR, label="global view"))
    if handles:  # below the x-axis label (a fixed 36 pt under the axes): it never hides a tile or a label
        below = ax.transAxes + ScaledTranslation(0, -36 / 72, ax.figure.dpi_scale_trans)
        ax.legend(handles=handles, loc="upper right", bbox_to_anchor=(1.0, 0.0), bbox_transform=below,
                  fontsize=10, ncol=len(handles), frameon=False)


def grid_overlay(plan, image=None, ax=None, *, show_global: bool = True, title: str | None = None,
                 badges: bool = True) -> Figure:
    """The canvas a method cuts into tiles, with the tile boxes numbered in encoder order.

    The resized image sits inside the canvas at ``plan.content_box``; the rest of the canvas (the padding) is
    hatched grey. Each tile box carries a small corner badge with its index in the vision encoder's batch
    and, when there is room, its (row, col). The global view(s) are drawn to the right of the canvas at their
    true pixel size (so one sees how coarse a global thumbnail is compared with a tile), numbered in the same
    encoder order. When each block is padded in a view of its own (:func:`padded_views`, e.g. LLaVA-Mini's
    expand2square), the blocks are pulled apart and each is drawn in its padded view, the padding hatched.
    Axes are in canvas pixels. ``image``: the full image, a downscaled copy of it
    (``viz.display_copy``: the same picture at screen size, drawn faster), or None for the geometry only.
    ``badges=False`` leaves the tile frames and global views unlabelled (small panels, where a table gives
    the numbers).
    Used by `tiling_basics` through `deepseek_vl2_and_internvl`, `tiling_vs_packing` and `grid_explorer`.
    """
    fig, ax = fig_ax(ax, (9, 6))
    # a display copy says how many pixels the screen needs; the full image is drawn at up to DISPLAY_SIDE
    full = image is None or tuple(image.size) == tuple(plan.image_size)
    max_side = DISPLAY_SIDE if full else min(DISPLAY_SIDE, max(image.size))
    source = None if image is None else display_copy(image, max_side)
    index = {item: i for i, item in enumerate(encoder_order(plan))}
    if padded_views(plan):
        boxes, width, height = _overlay_padded_views(ax, plan, source, max_side)
        n_pad = 1
        xlabel, ylabel = "image x (px; blocks pulled apart)", "image y (px)"
    else:
        n_pad = _overlay_canvas(ax, plan, source, max_side)
        boxes, (width, height) = plan.tile_boxes, plan.canvas_size
        xlabel, ylabel = "canvas x (px)", "canvas y (px)"
    views = show_global and bool(plan.global_views)
    xmax, ymax = (_overlay_global_views(ax, plan, source, index, width, max_side, badges) if views
                  else (width, height))
    ax.set_xlim(0, xmax)
    ax.set_ylim(max(height, ymax), 0)
    ax.set_aspect("equal")
    _overlay_tiles(ax, plan, index, boxes, xmax if badges else None)
    ax.set_xlabel(xlabel)
    ax.set_ylabel(ylabel)
    ax.set_title(_overlay_title(plan) if title is None else title, fontsize=10, pad=9)  # clear of tick "0"
    _overlay_legend(ax, n_pad, views)
    return fig


# ---------------------------------------------------------------------------------------------------------
# Tile montage


def _mosaic(x: np.ndarray, cols: int) -> tuple[np.ndarray, int]:
    """(N, 3, t, t) images -> one (H, W, 3) mosaic, ``cols`` per row, and the gap between cells."""
    n, _, th, tw = x.shape
    rows = math.ceil(n / cols)
    gap = max(4, tw // 10)
    mosaic = np.ones((rows * th + (rows - 1) * gap, cols * tw + (cols - 1) * gap, 3), dtype=np.float32)
    for i in range(n):
        r, c = divmod(i, cols)
        y0, x0 = r * (th + gap), c * (tw + gap)
        mosaic[y0:y0 + th, x0:x0 + tw] = x[i].transpose(1, 2, 0)  # (t, t, 3)
    return mosaic, gap


def tile_montage(tiled, image=None, *, ax=None, cols: int | None = None, plan=None) -> Figure:
    """Every image the vision encoder sees, in batch order, labelled (tiles and global view(s)).

    ``tiled`` is a :class:`TiledImages` (from ``tiling.apply``) or a Plan together with ``image``. The
    pictures are the rows of ``tiled.tensor`` (N, 3, t, t) themselves, i.e. exactly what is batched for the
    ViT; the frame colour matches :func:`grid_overlay` (global views in black). Used by `tiling_basics`
    through `deepseek_vl2_and_internvl` and `grid_explorer`.
    """
    from .. import tiling

    if isinstance(tiled, tiling.Plan):
        if image is None:
            raise ValueError("tile_montage(plan, image): pass the image to cut when giving a Plan")
        plan, tiled = tiled, tiling.apply(tiled, image)
    if not isinstance(tiled, tiling.TiledImages):
        raise TypeError(f"tile_montage expects TiledImages or a Plan, got {type(tiled).__name__}")
    x = tiled.tensor.detach().float().clamp(0, 1).cpu().numpy()  # (N, 3, t, t)
    n, _, th, tw = x.shape
    labels = list(tiled.labels)
    cols = cols or min(n, max(1, math.ceil(math.sqrt(n * 1.6))))
    rows = math.ceil(n / cols)
    mosaic, gap = _mosaic(x, cols)
    H, W = mosaic.shape[:2]
    fig, ax = fig_ax(ax, (min(2.2 * cols + 1, 10.8), min(2.4, 9.8 / cols) * rows + 0.8))
    ax.imshow(mosaic, extent=(0, W, H, 0), interpolation="antialiased")
    colors = tile_colors(len(tiled.tiles))
    if plan is not None:
        kinds = encoder_order(plan)
    else:  # without the plan, the labels say which rows are global views ("global", "global0", ...)
        kinds = [("global", 0) if lab.startswith("global") else ("tile", None) for lab in labels]
        ks = iter(range(len(tiled.tiles)))
        kinds = [(kind, next(ks) if kind == "tile" else 0) for kind, _ in kinds]
    for i, (kind, k) in enumerate(kinds):
        r, c = divmod(i, cols)
        x0, y0 = c * (tw + gap), r * (th + gap)
        color = GLOBAL_COLOR if kind == "global" else colors[k]
        ax.add_patch(Rectangle((x0, y0), tw, th, fill=False, edgecolor=color, linewidth=3))
        _badge(ax, (x0, y0, x0 + tw, y0 + th), f"{i}: {labels[i]}", color)
    ax.set_xlim(0, W)
    ax.set_ylim(H, 0)
    ax.axis("off")
    what = f"{plan.method}: " if plan is not None else ""
    ax.set_title(f"{what}the {n} images batched for the ViT, in encoder order — tensor (N, 3, H, W) = "
                 f"{tuple(tiled.tensor.shape)}", fontsize=10)
    return fig


# ---------------------------------------------------------------------------------------------------------
# LLM token layout


def token_layout(plan) -> list:
    """The language model's visual tokens as labelled blocks: ``tiling.token_layout(plan)``, a list of
    ``TokenBlock(label, codes)`` (each unpacks as ``label, codes``). ``codes`` read row-major, ``EMPTY``
    (-1) cells skipped, give the token sequence: 0 global view, 1 newline, 2 separator / extra token,
    10 + k a feature of local tile k; the count equals ``plan.num_tokens`` (checked by the library)."""
    from .. import tiling

    return tiling.token_layout(plan)


def _layout_cmap(n_tiles: int) -> ListedColormap:
    """Colour of every code -1 .. TILE0 + n_tiles - 1 of a token layout."""
    colors = [(1, 1, 1, 0)] * (TILE0 + 1 + max(1, n_tiles))
    colors[EMPTY + 1] = (1, 1, 1, 0)
    colors[GLOBAL + 1], colors[NEWLINE + 1], colors[EXTRA + 1] = (to_rgba(c) for c in (
        GLOBAL_COLOR, NEWLINE_COLOR, EXTRA_COLOR))
    for k, c in enumerate(tile_colors(n_tiles)):
        colors[TILE0 + 1 + k] = to_rgba(c)
    return ListedColormap(colors)


def _sequence_panel(ax, plan, seq: np.ndarray, cmap, vmin: int, vmax: int) -> None:
    """The flat token sequence, one pixel column per token; thin tokens drawn as lines to stay visible."""
    ax.imshow(seq[None, :], aspect="auto", cmap=cmap, vmin=vmin, vmax=vmax, interpolation="nearest")
    for code, color, lw in ((NEWLINE, NEWLINE_COLOR, 0.8), (EXTRA, EXTRA_COLOR, 2.0)):
        where = np.flatnonzero(seq == code)
        if where.size:
            ax.vlines(where, -0.5, 0.5, color=color, linewidth=lw * 1.4)
    ax.set_yticks([])
    ax.set_xlabel("position in the LLM sequence (visual tokens only)")
    ax.set_title(f"{plan.method}: {plan.num_tokens} visual tokens — {plan.token_formula}", fontsize=10)


def _label_px(blocks, font_pt: float = 10) -> float:
    """How wide (CSS px) the widest block label is, with room beside it."""
    chars = max(len(line) for b in blocks for line in (b.label, f"{b.num_tokens} tokens"))
    return 0.62 * font_pt * 96 / 72 * chars + 24


def _blocks_panel(ax, blocks, cmap, vmin: int, vmax: int, wrap: int | None) -> None:
    """The blocks left to right in sequence order, wrapping after ``wrap`` blocks, each labelled."""
    wrap = wrap or (7 if len(blocks) > 3 else len(blocks))
    widest = max(b.codes.shape[1] for b in blocks)
    gap = max(4.0, 0.25 * widest) if len(blocks) <= 3 else 0.8 * widest
    x = y = row_h = 0.0
    x_max = 1.0
    for i, b in enumerate(blocks):
        h, w = b.codes.shape
        if i and i % wrap == 0:
            x, y, row_h = 0.0, y + row_h + 0.6 * gap + 3, 0.0
        ax.imshow(b.codes, cmap=cmap, vmin=vmin, vmax=vmax, interpolation="nearest",
                  extent=(x, x + w, y + h, y))
        ax.add_patch(Rectangle((x, y), w, h, fill=False, edgecolor="0.6", linewidth=0.5))
        n = b.num_tokens
        label = ax.text(x, y - 0.6, f"{b.label}\n{n} token{'s' if n != 1 else ''}", ha="left", va="bottom",
                        fontsize=10)
        short_form(label, b.label.split(" ")[0])  # a narrow picture: "#3" / "1", the legend has the rest
        x_max = max(x_max, x + w)
        x += w + gap
        row_h = max(row_h, h)
    ax.set_xlim(-1, x_max + 1)
    ax.set_ylim(y + row_h + 1, -6)
    ax.set_aspect("equal")
    ax.axis("off")


def token_strip(plan, ax=None, *, wrap: int | None = None, width_px: int | None = None) -> Figure:
    """How the language model receives the visual tokens: blocks in sequence order, coloured by source.

    The blocks are ``tiling.token_layout(plan)`` (the method's own layout). Black = global view, tile colours
    as in :func:`grid_overlay`, red = newline tokens, pink = separator / extra tokens. Without ``ax`` a second
    panel shows the flat sequence (one pixel column per token), where periodic newline tokens are visible.
    ``wrap``: blocks per row; ``width_px``: the width the picture will be shown at, which sets ``wrap`` to as
    many blocks as their 10-pt labels fit side by side (the explorer's narrow and wide layouts).
    Used by `tiling_basics`, `llava_next_anyres`, `ureader_shape_adaptive`, `deepseek_vl2_and_internvl` and
    `grid_explorer`.
    """
    blocks = token_layout(plan)
    if wrap is None and width_px is not None:
        wrap = max(1, min(len(blocks), int(width_px // _label_px(blocks))))
    seq = np.concatenate([b.codes[b.codes != EMPTY].ravel() for b in blocks])  # (num_tokens,)
    n_tiles = plan.num_tiles
    cmap = _layout_cmap(n_tiles)
    vmin, vmax = -1, TILE0 + max(1, n_tiles) - 1
    if ax is None:
        fig = new_figure((10.8, 6.2))
        gs = fig.add_gridspec(2, 1, height_ratios=[1, 7])
        ax_seq, ax = fig.add_subplot(gs[0]), fig.add_subplot(gs[1])
        _sequence_panel(ax_seq, plan, seq, cmap, vmin, vmax)
    else:
        fig = ax.figure
    _blocks_panel(ax, blocks, cmap, vmin, vmax, wrap)
    handles = [Patch(color=GLOBAL_COLOR, label="global view")]
    if (seq == NEWLINE).any():
        handles.append(Patch(color=NEWLINE_COLOR, label="newline token"))
    if (seq == EXTRA).any():
        handles.append(Patch(color=EXTRA_COLOR, label="separator / extra token"))
    if n_tiles:
        handles.append(Patch(color=tile_colors(n_tiles)[0],
                             label="local tile features (one colour per tile)"))
    ax.legend(handles=handles, loc="upper left", bbox_to_anchor=(0, 0), fontsize=10,
              ncol=min(len(handles), 2), frameon=False)
    if len(fig.axes) == 1:
        ax.set_title(f"{plan.method}: {plan.num_tokens} visual tokens — {plan.token_formula}", fontsize=10)
    return fig
