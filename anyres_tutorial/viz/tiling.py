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

from ..tiling.protocol import EMPTY, EXTRA, GLOBAL, NEWLINE, TILE0, encoder_order
from ._common import (
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

__all__ = ["grid_overlay", "tile_montage", "token_strip", "token_layout"]


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


def _overlay_canvas(ax, plan, tiled) -> int:
    """The canvas (pixels, or geometry without an image), its padding hatched, the content box dashed."""
    cw, ch = plan.canvas_size
    if tiled is not None:
        ax.imshow(np.asarray(tiled.canvas.convert("RGB")), extent=(0, cw, ch, 0), interpolation="antialiased")
    else:
        _geometry(ax, 0, 0, plan.canvas_size, plan.fill, plan.content_box)
    n_pad = shade_outside(ax, (0, 0, cw, ch), plan.content_box, label="padding")
    cl, ct, cr, cb = plan.content_box
    ax.add_patch(Rectangle((cl, ct), cr - cl, cb - ct, fill=False, edgecolor="white", linestyle="--",
                           linewidth=1.2))
    return n_pad


def _overlay_tiles(ax, plan, index: dict) -> None:
    """One coloured box per tile, labelled with its encoder index and (row, col)."""
    colors = tile_colors(plan.num_tiles)
    font = max(7, min(16, int(200 / max(1, math.sqrt(plan.num_tiles)) / 4)))
    for k, (x0, y0, x1, y1) in enumerate(plan.tile_boxes):
        r, c = plan.tile_positions[k]
        ax.add_patch(Rectangle((x0, y0), x1 - x0, y1 - y0, fill=False, edgecolor=colors[k], linewidth=2.2))
        ax.text((x0 + x1) / 2, (y0 + y1) / 2, f"#{index[('tile', k)]}\n(r{r}, c{c})", ha="center",
                va="center", fontsize=font, color="white", fontweight="bold",
                bbox=dict(boxstyle="round,pad=0.25", facecolor=colors[k], alpha=0.85, edgecolor="none"))


def _overlay_global_views(ax, plan, tiled, index: dict) -> tuple[float, float]:
    """The global view(s) right of the canvas at their true pixel size; returns (x_max, y_max) drawn."""
    cw, ch = plan.canvas_size
    gap = max(cw, ch) * 0.04
    x, y, xmax = cw + gap, 0.0, cw
    ax.axvline(cw + gap / 2, color="0.5", linestyle=":", linewidth=1)
    for i, gv in enumerate(plan.global_views):
        gw, gh = gv.size
        if tiled is not None and i < len(tiled.global_views):
            ax.imshow(np.asarray(tiled.global_views[i].convert("RGB")), extent=(x, x + gw, y + gh, y))
        else:
            _geometry(ax, x, y, gv.size, gv.fill, gv.content_box)
        gl, gt, gr, gb = gv.content_box
        shade_outside(ax, (x, y, x + gw, y + gh), (x + gl, y + gt, x + gr, y + gb))
        ax.add_patch(Rectangle((x, y), gw, gh, fill=False, edgecolor=GLOBAL_COLOR, linewidth=2.2))
        ax.text(x + gw / 2, y + gh + gap * 0.3, f"#{index[('global', i)]} global\n{gv.kind} {wh(gv.size)}",
                ha="center", va="top", fontsize=9, color=GLOBAL_COLOR)
        y += gh + gap * 2.2
        xmax = max(xmax, x + gw)
    return xmax, y


def _overlay_title(plan) -> str:
    rows, cols = plan.grid
    return (f"{plan.method}: image {wh(plan.image_size)} → resized {wh(plan.resize_size)} in canvas "
            f"{wh(plan.canvas_size)}\ngrid {rows}×{cols} (rows×cols) of {plan.tile_size}-px tiles, "
            f"{plan.num_images} images to the ViT, {plan.num_tokens} LLM tokens, "
            f"padding {plan.padding_fraction:.0%}")


def grid_overlay(plan, image=None, ax=None, *, show_global: bool = True, title: str | None = None) -> Figure:
    """The canvas a method cuts into tiles, with the tile boxes numbered in encoder order.

    The resized image sits inside the canvas at ``plan.content_box``; the rest of the canvas (the padding) is
    hatched grey. Each tile box carries its index in the vision encoder's batch (big number) and its
    (row, col). The global view(s) are drawn to the right of the canvas at their true pixel size (so one sees
    how coarse a global thumbnail is compared with a tile), numbered in the same encoder order. Axes are in
    canvas pixels. With ``image=None`` only the geometry is drawn. Used by `tiling_basics` through
    `deepseek_vl2_and_internvl`, `tiling_vs_packing` and `grid_explorer`.
    """
    from .. import tiling

    fig, ax = fig_ax(ax, (9, 6))
    tiled = tiling.apply(plan, image) if image is not None else None
    n_pad = _overlay_canvas(ax, plan, tiled)
    index = {item: i for i, item in enumerate(encoder_order(plan))}
    _overlay_tiles(ax, plan, index)
    cw, ch = plan.canvas_size
    views = show_global and bool(plan.global_views)
    xmax, ymax = _overlay_global_views(ax, plan, tiled, index) if views else (cw, ch)
    ax.set_xlim(0, xmax)
    ax.set_ylim(max(ch, ymax), 0)
    ax.set_aspect("equal")
    ax.set_xlabel("canvas x (px)")
    ax.set_ylabel("canvas y (px)")
    ax.set_title(_overlay_title(plan) if title is None else title, fontsize=10)
    handles = [Patch(facecolor=PADDING, hatch="//", alpha=0.45, label="padding")] if n_pad else []
    if views:
        handles.append(Patch(facecolor="none", edgecolor=GLOBAL_COLOR, label="global view"))
    if handles:  # below the axes, so it never hides a tile or the global view's label
        ax.legend(handles=handles, loc="upper right", bbox_to_anchor=(1.0, -0.09), fontsize=8,
                  ncol=len(handles), frameon=False)
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
    fig, ax = fig_ax(ax, (min(2.2 * cols + 1, 16), 2.4 * rows + 0.8))
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
        ax.text(x0 + 3, y0 + 3, f"{i}: {labels[i]}", ha="left", va="top", fontsize=8, color="white",
                bbox=dict(boxstyle="round,pad=0.2", facecolor=color, alpha=0.85, edgecolor="none"))
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
        ax.text(x, y - 0.6, f"{b.label}\n{n} token{'s' if n != 1 else ''}", ha="left", va="bottom",
                fontsize=8 if len(blocks) <= 3 else 7)
        x_max = max(x_max, x + w)
        x += w + gap
        row_h = max(row_h, h)
    ax.set_xlim(-1, x_max + 1)
    ax.set_ylim(y + row_h + 1, -6)
    ax.set_aspect("equal")
    ax.axis("off")


def token_strip(plan, ax=None, *, wrap: int | None = None) -> Figure:
    """How the language model receives the visual tokens: blocks in sequence order, coloured by source.

    The blocks are ``tiling.token_layout(plan)`` (the method's own layout). Black = global view, tile colours
    as in :func:`grid_overlay`, red = newline tokens, pink = separator / extra tokens. Without ``ax`` a second
    panel shows the flat sequence (one pixel column per token), where periodic newline tokens are visible.
    Used by `tiling_basics`, `llava_next_anyres`, `ureader_shape_adaptive`, `deepseek_vl2_and_internvl` and
    `grid_explorer`.
    """
    blocks = token_layout(plan)
    seq = np.concatenate([b.codes[b.codes != EMPTY].ravel() for b in blocks])  # (num_tokens,)
    n_tiles = plan.num_tiles
    cmap = _layout_cmap(n_tiles)
    vmin, vmax = -1, TILE0 + max(1, n_tiles) - 1
    if ax is None:
        fig = new_figure((11, 6.2))
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
    ax.legend(handles=handles, loc="upper left", bbox_to_anchor=(0, 0), fontsize=8, ncol=len(handles),
              frameon=False)
    if len(fig.axes) == 1:
        ax.set_title(f"{plan.method}: {plan.num_tokens} visual tokens — {plan.token_formula}", fontsize=10)
    return fig
