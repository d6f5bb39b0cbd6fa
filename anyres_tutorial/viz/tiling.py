"""Pictures of tiling (切图): grid overlays, tile montages, LLM token layouts, UReader score maps,
template and candidate diagrams, the LLaVA-NeXT unpad step.

Every function takes a :class:`anyres_tutorial.tiling.Plan` (or an image size and calls
:func:`anyres_tutorial.tiling.plan`), returns a matplotlib ``Figure`` and never calls ``plt.show()``.
Functions that draw a single panel accept ``ax=`` so that the grid explorer (notebook 11) can put
methods side by side. The numbers come from the tiling library; the pictures only lay them out.

Used by notebooks 02 (tiling basics, template), 03 (LLaVA-NeXT AnyRes), 04 (UReader), 05 (DeepSeek-VL2 and
InternVL), 09 (tiling vs packing) and 11 (grid explorer). Sizes are (width, height) unless a name says ``hw``.
"""

from __future__ import annotations

import math

import matplotlib.pyplot as plt
import numpy as np
from matplotlib.colors import ListedColormap, to_rgb
from matplotlib.figure import Figure
from matplotlib.patches import Patch, Rectangle

__all__ = [
    "grid_overlay",
    "tile_montage",
    "token_strip",
    "ureader_scores",
    "template_diagram",
    "candidate_scores",
    "unpad_diagram",
    "crop_positions",
]

GLOBAL_COLOR = "#222222"  # global view(s) / thumbnail
NEWLINE_COLOR = "#d62728"  # LLaVA-NeXT / DeepSeek-VL2 newline tokens
SEPARATOR_COLOR = "#e377c2"  # DeepSeek-VL2 view separator, UReader's +1 token (pink)
PAD_COLOR = "#9e9e9e"  # padding / dropped


# tab20 indices of the tile palette: no red (newline), grey/black (global), pink (separator)
_TILE_PALETTE = (0, 2, 4, 8, 10, 18, 16, 1, 3, 5, 9, 11, 19, 17)


def tile_color(k: int):
    """Colour of local tile number ``k`` (the same in every picture of this module)."""
    return plt.get_cmap("tab20")(_TILE_PALETTE[k % len(_TILE_PALETTE)])


def _new_figure(figsize) -> Figure:
    """A new Figure, created through pyplot (so Jupyter's inline backend and its PNG formatter are set up) and
    closed at once: the returned figure is shown exactly once (as the cell's value), never twice, and no
    figure accumulates in pyplot (widgets redraw often)."""
    fig = plt.figure(figsize=figsize, layout="constrained")
    plt.close(fig)
    return fig


def _fig_ax(ax, figsize):
    if ax is None:
        fig = _new_figure(figsize)
        ax = fig.subplots()
        return fig, ax
    return ax.figure, ax


def _plan_of(plan_or_size, method: str, **options):
    """Accept a Plan or a (width, height) size (planned with ``method``)."""
    from .. import tiling

    if hasattr(plan_or_size, "tile_boxes"):
        return plan_or_size
    return tiling.plan(method, tuple(plan_or_size), **options)


def _global_first(plan) -> bool:
    pos = str(getattr(plan, "global_position", "after") or "after").lower()
    return pos in ("before", "first", "head", "start")


def encoder_order(plan) -> list[tuple[str, int]]:
    """``[("global", i) | ("tile", k), ...]`` in the order the vision encoder sees the images."""
    g = [("global", i) for i in range(len(plan.global_views))]
    t = [("tile", k) for k in range(len(plan.tile_boxes))]
    return g + t if _global_first(plan) else t + g


def _wh(size) -> str:
    return f"{size[0]}×{size[1]}"


def _shade_outside(ax, box, content, label=None, alpha=0.45):
    """Hatch the parts of ``box`` (l, t, r, b) outside ``content`` (l, t, r, b): the padding."""
    x0_, y0_, x1_, y1_ = box
    cl, ct, cr, cb = content
    parts = [(x0_, y0_, x1_, ct), (x0_, cb, x1_, y1_), (x0_, ct, cl, cb), (cr, ct, x1_, cb)]
    drawn = 0
    for x0, y0, x1, y1 in parts:
        if x1 - x0 > 0 and y1 - y0 > 0:
            ax.add_patch(Rectangle((x0, y0), x1 - x0, y1 - y0, facecolor=PAD_COLOR, alpha=alpha, hatch="//",
                                   edgecolor="white", linewidth=0, label=label if drawn == 0 else None))
            drawn += 1
    return drawn


def _fill_rgb(fill):
    if fill is None:
        return (0.85, 0.85, 0.85)
    if isinstance(fill, str):
        return to_rgb(fill)
    f = np.asarray(fill, dtype=float).reshape(-1)
    if f.size == 1:
        f = np.repeat(f, 3)
    return tuple((f[:3] / 255.0) if f.max() > 1 else f[:3])


# ---------------------------------------------------------------------------------------------------------
# Grid overlay


def grid_overlay(plan, image=None, ax=None, *, show_global: bool = True, title: str | None = None) -> Figure:
    """The canvas a method cuts into tiles, with the tile boxes numbered in encoder order.

    The resized image sits inside the canvas at ``plan.content_box``; the rest of the canvas (the padding) is
    hatched grey. Each tile box carries its index in the vision encoder's batch (big number) and its
    (row, col). The global view(s) are drawn to the right of the canvas at their true pixel size (so one sees
    how coarse a global thumbnail is compared with a tile), numbered in the same encoder order. Axes are in
    canvas pixels. With ``image=None`` only the geometry is drawn. Used by notebooks 02–05, 09 and 11.
    """
    from .. import tiling

    fig, ax = _fig_ax(ax, (9, 6))
    cw, ch = plan.canvas_size
    tiled = tiling.apply(plan, image) if image is not None else None
    if tiled is not None:
        ax.imshow(np.asarray(tiled.canvas.convert("RGB")), extent=(0, cw, ch, 0), interpolation="antialiased")
    else:
        ax.add_patch(Rectangle((0, 0), cw, ch, facecolor=_fill_rgb(plan.fill), edgecolor="none"))
        cl, ct, cr, cb = plan.content_box
        ax.add_patch(Rectangle((cl, ct), cr - cl, cb - ct, facecolor="#cfe3f5", edgecolor="none"))
    cl, ct, cr, cb = plan.content_box
    n_pad = _shade_outside(ax, (0, 0, cw, ch), plan.content_box, label="padding")
    ax.add_patch(Rectangle((cl, ct), cr - cl, cb - ct, fill=False, edgecolor="white", linestyle="--",
                           linewidth=1.2))

    order = encoder_order(plan)
    index = {item: i for i, item in enumerate(order)}
    positions = getattr(plan, "tile_positions", None) or []
    font = max(7, min(16, int(200 / max(1, math.sqrt(len(plan.tile_boxes))) / 4)))
    for k, (x0, y0, x1, y1) in enumerate(plan.tile_boxes):
        c = tile_color(k)
        ax.add_patch(Rectangle((x0, y0), x1 - x0, y1 - y0, fill=False, edgecolor=c, linewidth=2.2))
        rc = f"\n(r{positions[k][0]}, c{positions[k][1]})" if k < len(positions) else ""
        ax.text((x0 + x1) / 2, (y0 + y1) / 2, f"#{index[('tile', k)]}{rc}", ha="center", va="center",
                fontsize=font, color="white", fontweight="bold",
                bbox=dict(boxstyle="round,pad=0.25", facecolor=c, alpha=0.85, edgecolor="none"))

    xmax = cw
    if show_global and plan.global_views:
        gap = max(cw, ch) * 0.04
        x = cw + gap
        ax.axvline(cw + gap / 2, color="0.5", linestyle=":", linewidth=1)
        y = 0.0
        for i, gv in enumerate(plan.global_views):
            gw, gh = gv.size
            if tiled is not None and i < len(tiled.global_views):
                ax.imshow(np.asarray(tiled.global_views[i].convert("RGB")), extent=(x, x + gw, y + gh, y))
            else:
                ax.add_patch(Rectangle((x, y), gw, gh, facecolor=_fill_rgb(gv.fill), edgecolor="none"))
                gl, gt, gr, gb = gv.content_box
                ax.add_patch(Rectangle((x + gl, y + gt), gr - gl, gb - gt, facecolor="#cfe3f5",
                                       edgecolor="none"))
            gl, gt, gr, gb = gv.content_box
            _shade_outside(ax, (x, y, x + gw, y + gh), (x + gl, y + gt, x + gr, y + gb))
            ax.add_patch(Rectangle((x, y), gw, gh, fill=False, edgecolor=GLOBAL_COLOR, linewidth=2.2))
            ax.text(x + gw / 2, y + gh + gap * 0.3,
                    f"#{index[('global', i)]} global\n{gv.kind} {_wh(gv.size)}", ha="center", va="top",
                    fontsize=9, color=GLOBAL_COLOR)
            y += gh + gap * 2.2
            xmax = max(xmax, x + gw)
        ax.set_ylim(max(ch, y), 0)
    else:
        ax.set_ylim(ch, 0)
    ax.set_xlim(0, xmax)
    ax.set_aspect("equal")
    ax.set_xlabel("canvas x (px)")
    ax.set_ylabel("canvas y (px)")
    rows, cols = plan.grid
    if title is None:
        title = (f"{plan.method}: image {_wh(plan.image_size)} → resized {_wh(plan.resize_size)} in canvas "
                 f"{_wh(plan.canvas_size)}\ngrid {rows}×{cols} (rows×cols) of {plan.tile_size}-px tiles, "
                 f"{plan.num_images} images to the ViT, {plan.num_tokens} LLM tokens, "
                 f"padding {plan.padding_fraction:.0%}")
    ax.set_title(title, fontsize=10)
    handles = [Patch(facecolor=PAD_COLOR, hatch="//", alpha=0.45, label="padding")] if n_pad else []
    handles.append(Patch(facecolor="none", edgecolor=GLOBAL_COLOR, label="global view"))
    if not (plan.global_views and show_global):
        handles = handles[:1] if n_pad else []
    if handles:  # below the axes, so it never hides a tile or the global view's label
        ax.legend(handles=handles, loc="upper right", bbox_to_anchor=(1.0, -0.09), fontsize=8,
                  ncol=len(handles), frameon=False)
    return fig


# ---------------------------------------------------------------------------------------------------------
# Tile montage


def tile_montage(tiled, image=None, *, ax=None, cols: int | None = None, plan=None) -> Figure:
    """Every image the vision encoder sees, in batch order, labelled (tiles and global view(s)).

    ``tiled`` is a :class:`TiledImages` (from ``tiling.apply``) or a Plan together with ``image``. The
    pictures are the rows of ``tiled.tensor`` (N, 3, t, t) themselves, i.e. exactly what is batched for the
    ViT; the frame colour matches :func:`grid_overlay` (global views in black). Used by notebooks 02–05.
    """
    from .. import tiling

    if hasattr(tiled, "tile_boxes"):
        if image is None:
            raise ValueError("tile_montage(plan, image): pass the image to cut when giving a Plan")
        plan = tiled
        tiled = tiling.apply(plan, image)
    if not hasattr(tiled, "tensor"):
        raise TypeError(f"tile_montage expects TiledImages or a Plan, got {type(tiled).__name__}")
    plan = plan if plan is not None else getattr(tiled, "plan", None)
    x = tiled.tensor.detach().float().clamp(0, 1).cpu().numpy()  # (N, 3, t, t)
    n, _, th, tw = x.shape
    labels = list(getattr(tiled, "labels", None) or [f"#{i}" for i in range(n)])
    order = encoder_order(plan) if plan is not None else None
    cols = cols or min(n, max(1, math.ceil(math.sqrt(n * 1.6))))
    rows = math.ceil(n / cols)
    gap = max(4, tw // 10)
    H = rows * th + (rows - 1) * gap
    W = cols * tw + (cols - 1) * gap
    mosaic = np.ones((H, W, 3), dtype=np.float32)
    for i in range(n):
        r, c = divmod(i, cols)
        y0, x0 = r * (th + gap), c * (tw + gap)
        mosaic[y0:y0 + th, x0:x0 + tw] = x[i].transpose(1, 2, 0)  # (t, t, 3)
    fig, ax = _fig_ax(ax, (min(2.2 * cols + 1, 16), 2.4 * rows + 0.8))
    ax.imshow(mosaic, extent=(0, W, H, 0), interpolation="antialiased")
    for i in range(n):
        r, c = divmod(i, cols)
        x0, y0 = c * (tw + gap), r * (th + gap)
        if order is not None and i < len(order):
            kind, k = order[i]
            color = GLOBAL_COLOR if kind == "global" else tile_color(k)
        else:
            is_global = "global" in labels[i].lower() or "thumb" in labels[i].lower()
            color = GLOBAL_COLOR if is_global else tile_color(i)
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

# category codes of a token-layout array: -1 nothing drawn, 0 global view, 1 newline, 2 separator / extra
# token, 10 + k local tile k
_EMPTY, _GLOBAL, _NEWLINE, _EXTRA, _TILE0 = -1, 0, 1, 2, 10


def _tile_map(plan, hw_per_tile: tuple[int, int]) -> np.ndarray:
    """(rows*h, cols*w) array: the local tile (10 + k) each position of the stitched feature map came from."""
    rows, cols = plan.grid
    h, w = hw_per_tile
    k = np.arange(rows * cols).reshape(rows, cols)
    return _TILE0 + np.kron(k, np.ones((h, w), dtype=int))  # (rows*h, cols*w)


def _with_newlines(a: np.ndarray) -> np.ndarray:
    return np.concatenate([a, np.full((a.shape[0], 1), _NEWLINE)], axis=1)


def _per_image_blocks(plan, block: np.ndarray, name: str) -> list:
    blocks = []
    positions = plan.tile_positions
    for i, (kind, k) in enumerate(encoder_order(plan)):
        code = _GLOBAL if kind == "global" else _TILE0 + k
        b = np.where(block == _GLOBAL, code, block)
        label = f"#{i} global" if kind == "global" else f"#{i} (r{positions[k][0]},c{positions[k][1]})"
        blocks.append((label, b))
    return blocks


def token_layout(plan) -> list[tuple[str, np.ndarray]]:
    """The language model's visual tokens as labelled 2-D blocks, in sequence order.

    Each block is a small integer array (rows of tokens as the LLM reads them, row-major): -1 nothing,
    0 global view, 1 newline token, 2 separator / extra token, 10 + k a feature of local tile k. Reading every
    block row-major (skipping -1) gives the exact token sequence; its length equals ``plan.num_tokens``
    (checked). Layouts follow the reference code:

    - llava_next (``llava_arch.py``, spatial_unpad): 24×24 base features of the global view, then the tiles'
      stitched feature map, unpadded, with one newline token after each row: 576 + h'·(w' + 1).
    - deepseek_vl2 (``modeling_deepseek_vl_v2.py``, global view at the head): global 14×14 with a newline per
      row, one view-separator token, then the local (14·rows)×(14·cols) map with a newline per row.
    - ureader: 64 visual tokens + 1 per image (65), global first. internvl: 256 (16×16) per image.
    - other methods: ``num_tokens / num_images`` per image, in encoder order.
    """
    m = plan.method
    d = plan.details or {}
    if m == "llava_next":
        s = int(d.get("tokens_per_side", 24))
        full = _tile_map(plan, (s, s))  # (rows*24, cols*24) padded feature map
        top, bottom, left, right = _unpad_slice(plan)
        kept = full[top:bottom, left:right]
        return [("1 · global view 24×24", np.full((s, s), _GLOBAL)),
                (f"2 · tiles, unpadded {kept.shape[0]}×{kept.shape[1]} + {kept.shape[0]} newlines",
                 _with_newlines(kept))]
    if m == "deepseek_vl2":
        s = int(d.get("tokens_per_side", 14))
        return [(f"1 · global {s}×{s} + {s} newlines", _with_newlines(np.full((s, s), _GLOBAL))),
                ("2 · view\nseparator", np.full((1, 1), _EXTRA)),
                (f"3 · local {s * plan.grid[0]}×{s * plan.grid[1]} + newlines",
                 _with_newlines(_tile_map(plan, (s, s))))]
    if m == "ureader":
        block = np.full((8, 9), _EMPTY)
        block[:, :8] = _GLOBAL
        block[0, 8] = _EXTRA
        return _per_image_blocks(plan, block, "ureader")
    if plan.num_images and plan.num_tokens % plan.num_images == 0:
        per = plan.num_tokens // plan.num_images
        side = math.isqrt(per)
        if side * side == per:
            block = np.full((side, side), _GLOBAL)
        else:
            block = np.full((1, per), _GLOBAL)
        return _per_image_blocks(plan, block, m)
    return [("all visual tokens", np.full((1, plan.num_tokens), _GLOBAL))]


def _layout_cmap(n_tiles: int):
    colors = [(1, 1, 1, 0), to_rgb(GLOBAL_COLOR), to_rgb(NEWLINE_COLOR), to_rgb(SEPARATOR_COLOR)]
    colors += [(1, 1, 1)] * (_TILE0 - 3)  # unused codes 3..9 (offset by one for -1)
    colors += [tile_color(k) for k in range(max(1, n_tiles))]
    return ListedColormap([c if len(c) == 4 else (*c, 1.0) for c in colors])


def token_strip(plan, ax=None, *, wrap: int | None = None) -> Figure:
    """How the language model receives the visual tokens: blocks in sequence order, coloured by source.

    Black = global view, tile colours as in :func:`grid_overlay`, red = newline tokens, amber = separator /
    extra tokens. Without ``ax`` a second panel shows the flat sequence (one pixel column per token), where
    the periodic newline tokens are visible. See :func:`token_layout` for each method's layout.
    Used by notebooks 03 (LLaVA-NeXT), 04 (UReader), 05 (DeepSeek-VL2, InternVL) and 11.
    """
    blocks = token_layout(plan)
    seq = np.concatenate([b[b != _EMPTY].ravel() for _, b in blocks])
    if seq.size != plan.num_tokens:
        raise RuntimeError(f"token layout of {plan.method} has {seq.size} tokens but the plan says "
                           f"{plan.num_tokens}: the picture and the library disagree")
    n_tiles = len(plan.tile_boxes)
    cmap = _layout_cmap(n_tiles)
    vmin, vmax = -1, _TILE0 + max(1, n_tiles) - 1
    if ax is None:
        fig = _new_figure((11, 6.2))
        gs = fig.add_gridspec(2, 1, height_ratios=[1, 7])
        ax_seq, ax = fig.add_subplot(gs[0]), fig.add_subplot(gs[1])
        ax_seq.imshow(seq[None, :], aspect="auto", cmap=cmap, vmin=vmin, vmax=vmax, interpolation="nearest")
        for code, color, lw in ((_NEWLINE, NEWLINE_COLOR, 0.8), (_EXTRA, SEPARATOR_COLOR, 2.0)):
            where = np.flatnonzero(seq == code)
            if where.size:  # thin tokens are drawn as lines so that they stay visible at any width
                ax_seq.vlines(where, -0.5, 0.5, color=color, linewidth=lw * 1.4)
        ax_seq.set_yticks([])
        ax_seq.set_xlabel("position in the LLM sequence (visual tokens only)")
        ax_seq.set_title(f"{plan.method}: {plan.num_tokens} visual tokens — {plan.token_formula}",
                         fontsize=10)
    else:
        fig = ax.figure
    # lay the blocks out left to right, wrapping rows
    wrap = wrap or (7 if len(blocks) > 3 else len(blocks))
    widest = max(b.shape[1] for _, b in blocks)
    gap = max(4.0, 0.25 * widest) if len(blocks) <= 3 else 0.8 * widest
    x = y = 0.0
    row_h = 0.0
    x_max = 1.0
    for i, (label, b) in enumerate(blocks):
        h, w = b.shape
        if i and i % wrap == 0:
            x, y = 0.0, y + row_h + 0.6 * gap + 3
            row_h = 0.0
        ax.imshow(np.where(b == _EMPTY, -1, b), cmap=cmap, vmin=vmin, vmax=vmax, interpolation="nearest",
                  extent=(x, x + w, y + h, y))
        ax.add_patch(Rectangle((x, y), w, h, fill=False, edgecolor="0.6", linewidth=0.5))
        n = int((b != _EMPTY).sum())
        ax.text(x, y - 0.6, f"{label}\n{n} token{'s' if n != 1 else ''}", ha="left", va="bottom",
                fontsize=8 if len(blocks) <= 3 else 7)
        x_max = max(x_max, x + w)
        x += w + gap
        row_h = max(row_h, h)
    ax.set_xlim(-1, x_max + 1)
    ax.set_ylim(y + row_h + 1, -6)
    ax.set_aspect("equal")
    ax.axis("off")
    handles = [Patch(color=GLOBAL_COLOR, label="global view")]
    if (seq == _NEWLINE).any():
        handles.append(Patch(color=NEWLINE_COLOR, label="newline token"))
    if (seq == _EXTRA).any():
        handles.append(Patch(color=SEPARATOR_COLOR, label="separator / +1 token"))
    if n_tiles:
        handles.append(Patch(color=tile_color(0), label="local tile features (one colour per tile)"))
    ax.legend(handles=handles, loc="upper left", bbox_to_anchor=(0, 0), fontsize=8, ncol=len(handles),
              frameon=False)
    if len(fig.axes) == 1:
        ax.set_title(f"{plan.method}: {plan.num_tokens} visual tokens — {plan.token_formula}", fontsize=10)
    return fig


# ---------------------------------------------------------------------------------------------------------
# Template matching (generic tiling, notebook 02)


def template_diagram(image_size, *, templates=None, tile_size: int | None = None, axes=None) -> Figure:
    """Why the generic template tiling picks its template: aspect ratios on a log axis, then each template.

    Top: the image's aspect ratio W/H (red line) against every template's cols/rows on a log axis, with the
    log distance |log(W/H) − log(cols/rows)| written at each template; the winner is starred. Bottom: each
    template's canvas with the image fitted inside (aspect kept, padding hatched), whether it holds the image
    without downscaling, and the chosen one framed. Numbers from ``tiling.plan("template", ...)``.
    ``axes``: an optional pair of axes (top, bottom). Used by notebooks 02 and 11.
    """
    from ..tiling import template as tpl

    options = {}
    if templates is not None:
        options["templates"] = templates
    if tile_size is not None:
        options["tile_size"] = tile_size
    p = _plan_of(image_size, "template", **options)
    rows_info = p.details["templates"]
    t = p.tile_size
    w, h = p.image_size
    if axes is None:
        fig = _new_figure((11, 6.5))
        gs = fig.add_gridspec(2, 1, height_ratios=[1, 2.2])
        ax1, ax2 = fig.add_subplot(gs[0]), fig.add_subplot(gs[1])
    else:
        ax1, ax2 = axes
        fig = ax1.figure
    # --- aspect-ratio axis
    ars = [r["aspect"] for r in rows_info] + [w / h]
    lo, hi = min(ars) / 1.6, max(ars) * 1.6
    ax1.set_xscale("log")
    ax1.set_xlim(lo, hi)
    ax1.set_ylim(-1, 1.3)
    ax1.axvline(w / h, color="#d62728", linewidth=2, label=f"image W/H = {w}/{h} = {w / h:.3f}")
    seen = {}
    for r in rows_info:
        a = r["aspect"]
        level = seen.get(a, 0)
        seen[a] = level + 1
        c, rr = r["template"]
        y = 0.55 - 0.55 * level
        ax1.plot([a], [y], marker="*" if r["chosen"] else "o", markersize=16 if r["chosen"] else 9,
                 color="#2ca02c" if r["chosen"] else "0.4", zorder=3)
        ax1.annotate(f"{c}:{rr} (cols:rows)\n|Δlog| = {r['log_distance']:.3f}", (a, y), xytext=(8, 0),
                     textcoords="offset points", fontsize=8, va="center")
    ax1.set_yticks([])
    ax1.set_xlabel("aspect ratio W/H (log scale)")
    ax1.legend(loc="upper left", fontsize=8)
    chosen = next(r for r in rows_info if r["chosen"])
    ax1.set_title(f"template tiling of a {w}×{h} image: closest template = {chosen['template'][0]}:"
                  f"{chosen['template'][1]} (cols:rows) → canvas {_wh(p.canvas_size)}, {len(p.tile_boxes)} "
                  f"tiles + 1 thumbnail", fontsize=10)
    # --- the templates drawn at scale
    x = 0.0
    gap = t * 0.5
    top = 0.0
    for r in rows_info:
        c, rr = r["template"]
        cw, ch = c * t, rr * t
        (nw, nh), (ox, oy) = tpl.fit_inside((w, h), (cw, ch))
        ax2.add_patch(Rectangle((x, 0), cw, ch, facecolor=_fill_rgb(p.fill), edgecolor="none"))
        ax2.add_patch(Rectangle((x + ox, oy), nw, nh, facecolor="#cfe3f5", edgecolor="#1f77b4"))
        _shade_outside(ax2, (x, 0, x + cw, ch), (x + ox, oy, x + ox + nw, oy + nh), alpha=0.3)
        for k in range(1, c):
            ax2.plot([x + k * t] * 2, [0, ch], color="white", linewidth=1, linestyle="--")
        for k in range(1, rr):
            ax2.plot([x, x + cw], [k * t] * 2, color="white", linewidth=1, linestyle="--")
        ax2.add_patch(Rectangle((x, 0), cw, ch, fill=False, edgecolor="#2ca02c" if r["chosen"] else "0.5",
                                linewidth=4 if r["chosen"] else 1))
        scale = nw / w
        note = "holds it without downscaling" if r["covers_image"] else f"image scaled ×{scale:.2f}"
        ax2.text(x + cw / 2, ch + t * 0.08, f"{c}:{rr} → {_wh((cw, ch))}\nimage {_wh((nw, nh))}\n{note}"
                 + ("\n★ chosen" if r["chosen"] else ""), ha="center", va="top", fontsize=8)
        x += cw + gap
        top = max(top, ch)
    ax2.set_xlim(-gap * 0.2, x - gap * 0.8)
    ax2.set_ylim(top + t * 0.75, -t * 0.05)
    ax2.set_aspect("equal")
    ax2.axis("off")
    ax2.legend(handles=[Patch(facecolor="#cfe3f5", edgecolor="#1f77b4", label="the image, aspect kept"),
                        Patch(facecolor=PAD_COLOR, hatch="//", alpha=0.3, label="padding")],
               loc="lower right", fontsize=8)
    return fig


# ---------------------------------------------------------------------------------------------------------
# LLaVA-NeXT: candidates and unpad (notebook 03; DeepSeek-VL2 shares the candidate rule, notebook 05)


def _unpad_slice(plan) -> tuple[int, int, int, int]:
    """(top, bottom, left, right) of the kept part of the stitched (rows*24, cols*24) feature map."""
    un = plan.details["unpad"]
    fh, fw = un["feature_map_hw"]
    pad = un["padding"]
    if un["axis"] == "rows":
        return pad, fh - pad, 0, fw
    return 0, fh, pad, fw - pad


def candidate_scores(plan, ax=None) -> Figure:
    """``select_best_resolution`` made visible: effective vs wasted resolution of every candidate canvas.

    One horizontal bar per candidate (in list order, top = first): effective resolution (the image pixels the
    canvas can show, blue) plus wasted resolution (canvas pixels left over, grey) = the canvas area. The
    chosen canvas is starred; candidates that tie with it on both numbers are marked "tie" — the *first* in
    list order wins. Works for llava_next and deepseek_vl2 plans (``plan.details["candidates"]``).
    Used by notebooks 03, 05 and 11.
    """
    rows = plan.details.get("candidates") if plan.details else None
    if not rows:
        raise ValueError(f"candidate_scores needs a plan with per-candidate scores (llava_next, "
                         f"deepseek_vl2, internvl), got method {plan.method!r}")
    if "ratio" in rows[0]:
        return _aspect_candidates(plan, rows, ax)
    fig, ax = _fig_ax(ax, (9, 0.45 * len(rows) + 1.8))
    chosen = next(r for r in rows if r["chosen"])
    key = (chosen["effective_resolution"], chosen["wasted_resolution"])
    y = np.arange(len(rows))
    eff = np.array([r["effective_resolution"] for r in rows], dtype=float)
    waste = np.array([r["wasted_resolution"] for r in rows], dtype=float)
    ax.barh(y, eff, color="#1f77b4", label="effective resolution = min(int(W·s)·int(H·s), W·H)")
    ax.barh(y, waste, left=eff, color="#c7c7c7", hatch="//", edgecolor="white",
            label="wasted resolution = canvas − effective")
    labels = []
    t = plan.tile_size
    for r in rows:
        cw, ch = r["candidate"]
        tag = ""
        if r["chosen"]:
            tag = "  ★ chosen"
        elif (r["effective_resolution"], r["wasted_resolution"]) == key:
            tag = "  tie (later in list: loses)"
        labels.append(f"{cw}×{ch} ({ch // t}×{cw // t}){tag}")
    ax.set_yticks(y, labels, fontsize=8)
    for tick, r in zip(ax.get_yticklabels(), rows):
        if r["chosen"]:
            tick.set_fontweight("bold")
            tick.set_color("#2ca02c")
    ax.invert_yaxis()
    total = eff + waste
    for yi, e, tt in zip(y, eff, total):
        ax.text(tt, yi, f" {int(e):,} / {int(tt):,}", va="center", fontsize=7)
    ax.axvline(plan.image_size[0] * plan.image_size[1], color="#d62728", linestyle=":", linewidth=1.2,
               label=f"image pixels W·H = {plan.image_size[0] * plan.image_size[1]:,}")
    ax.set_xlim(0, total.max() * 1.25)
    ax.set_xlabel("pixels")
    ax.set_ylabel("candidate canvas W×H (rows×cols)")
    ax.legend(fontsize=7, loc="lower right")
    ax.set_title(f"{plan.method}: select_best_resolution for a {_wh(plan.image_size)} image → "
                 f"{_wh(chosen['candidate'])}\nmost effective resolution first, then least waste; full tie → "
                 f"first in list", fontsize=10)
    return fig


def _aspect_candidates(plan, rows, ax) -> Figure:
    """InternVL's ``find_closest_aspect_ratio``: |W/H − cols/rows| per candidate grid, ties annotated."""
    fig, ax = _fig_ax(ax, (9, 0.28 * len(rows) + 1.8))
    w, h = plan.image_size
    y = np.arange(len(rows))
    diff = np.array([r["aspect_diff"] for r in rows])
    colors = ["#2ca02c" if r["chosen"] else ("#ff7f0e" if r["event"].startswith("tie") else "#9ecae1")
              for r in rows]
    ax.barh(y, diff, color=colors)
    labels = [f"{r['ratio'][1]}×{r['ratio'][0]} tiles (ratio {r['ratio'][0]}:{r['ratio'][1]})"
              + ("  ★ chosen" if r["chosen"] else "") for r in rows]
    ax.set_yticks(y, labels, fontsize=7)
    for tick, r in zip(ax.get_yticklabels(), rows):
        if r["chosen"]:
            tick.set_fontweight("bold")
            tick.set_color("#2ca02c")
    for yi, r, c in zip(y, rows, colors):
        if r["event"]:
            ax.text(r["aspect_diff"], yi, f"    {r['event']}", va="center", fontsize=6.5)
        if r["chosen"] or r["event"].startswith("tie"):  # zero-length bars stay visible
            ax.plot([r["aspect_diff"]], [yi], marker="*" if r["chosen"] else "o", color=c, markersize=10)
    ax.invert_yaxis()
    ax.set_xlim(0, max(diff.max(), 1e-3) * 1.45)
    ax.set_xlabel("|W/H − cols/rows|  (smaller is better; strict < keeps the earlier grid)")
    ax.set_ylabel("candidate grid rows×cols, in the code's order (sorted by tile count)")
    ax.legend(handles=[Patch(color="#2ca02c", label="chosen"),
                       Patch(color="#ff7f0e", label="exact tie: area rule W·H > 0.5·448²·cols·rows decides"),
                       Patch(color="#9ecae1", label="other candidates")], fontsize=7, loc="lower right")
    rr, cc = plan.grid
    ax.set_title(f"{plan.method}: find_closest_aspect_ratio, {w}×{h} image (W/H = {w / h:.3f})\n→ "
                 f"{rr}×{cc} tiles (rows×cols) out of {len(rows)} candidate grids", fontsize=10)
    return fig


def unpad_diagram(plan_or_size, axes=None) -> Figure:
    """LLaVA-NeXT ``unpad_image`` on the stitched tile feature map, original ``int()`` vs HF ``round(x, 7)``.

    Each panel shows the (rows·24)×(cols·24) feature map (one cell per token, pale tile colours), where the
    image content lies (blue dashed: content box / 14), the rows/cols that ``unpad_image`` removes (hatched)
    and the kept region (green). Left: the original LLaVA-NeXT code (``int()`` truncation); right: the Hugging
    Face port (``int(round(x, 7))``). When ``n − new`` is odd, the ``[pad : n − pad]`` slice keeps one padded
    row/col. ``axes``: an optional pair. Used by notebooks 03 and 11.
    """
    from ..tiling import llava_next as ln

    plan = _plan_of(plan_or_size, "llava_next")
    if plan.method != "llava_next":
        raise ValueError(f"unpad_diagram needs a llava_next plan, got {plan.method!r}")
    if axes is None:
        axes = _new_figure((11, 5.2)).subplots(1, 2)
    fig = axes[0].figure
    rows, cols = plan.grid
    s = ln.SIDE
    fh, fw = rows * s, cols * s
    tiles = _tile_map(plan, (s, s)) - _TILE0  # (fh, fw)
    pale = np.array([np.array(to_rgb(tile_color(k))) * 0.35 + 0.65 for k in range(rows * cols)])
    fl, ft, fr, fb = (v / ln.PATCH for v in plan.content_box)
    w, h = plan.image_size
    for ax, mode in zip(axes, ("original", "hf")):
        un = ln.unpad_shape(plan.image_size, (fh, fw), mode)
        ax.imshow(pale[tiles], extent=(0, fw, fh, 0), interpolation="nearest")
        pad = un["padding"]
        if un["axis"] == "rows":
            keep = (0, pad, fw, fh - pad)
            raw = h * (fw / w)
            expr = f"H·(w_map/W) = {h}·{fw}/{w}"
        else:
            keep = (pad, 0, fw - pad, fh)
            raw = w * (fh / h)
            expr = f"W·(h_map/H) = {w}·{fh}/{h}"
        _shade_outside(ax, (0, 0, fw, fh), keep, alpha=0.6)
        ax.add_patch(Rectangle((fl, ft), fr - fl, fb - ft, fill=False, edgecolor="#1f77b4", linestyle="--",
                               linewidth=1.5, label="image content (canvas content box / 14)"))
        ax.add_patch(Rectangle(keep[:2], keep[2] - keep[0], keep[3] - keep[1], fill=False,
                               edgecolor="#2ca02c", linewidth=2.5,
                               label=f"kept {un['unpadded_hw'][0]}×{un['unpadded_hw'][1]}"))
        for k in range(1, cols):
            ax.axvline(k * s, color="white", linewidth=0.8)
        for k in range(1, rows):
            ax.axhline(k * s, color="white", linewidth=0.8)
        ax.set_xlim(0, fw)
        ax.set_ylim(fh, 0)
        ax.set_aspect("equal")
        ax.set_xlabel("feature column")
        ax.set_ylabel("feature row")
        rnd = "int(x)" if mode == "original" else "int(round(x, 7))"
        hh, ww = un["unpadded_hw"]
        ax.set_title(f"{'original LLaVA-NeXT' if mode == 'original' else 'Hugging Face port'}: {rnd}\n"
                     f"x = {expr} = {raw!r} → new = {un['new_length']}, pad = {pad} per side\n"
                     f"kept {hh}×{ww} → {s * s} + {hh}·{ww} + {hh} = {s * s + hh * ww + hh} tokens",
                     fontsize=9)
        ax.legend(fontsize=7, loc="lower right", framealpha=0.85)
    fig.suptitle(f"unpad_image for a {_wh(plan.image_size)} image on canvas {_wh(plan.canvas_size)} "
                 f"(feature map {fh}×{fw} = rows·24 × cols·24; hatched = removed as padding)", fontsize=10)
    return fig


# ---------------------------------------------------------------------------------------------------------
# UReader (notebook 04)


def ureader_scores(image_size, *, anchors="release", axes=None) -> Figure:
    """UReader's anchor scores over every anchor (nh, nw): Srr, Sra, the code's score and the paper's score.

    Four heat-maps with nw (columns of 224 crops) on x and nh (rows) on y; grey cells are grids not in the
    anchor set. Srr = IoU(anchor, image), Sra = IoU(anchor, image rescaled to the anchor's width) — both as
    the code computes them (float32, Sra box height truncated). The code picks argmax(100·Sra + Srr) (★), the
    paper argmax(Sra + Srr) (○); both marks are drawn on every panel, so one sees when they disagree.
    Numbers from ``tiling.ureader.score_anchors``. ``axes``: 4 axes. Used by notebooks 04 and 11.
    """
    from ..tiling import ureader as ur

    w, h = tuple(image_size)
    p_code = _plan_of((w, h), "ureader", anchors=anchors, score="code")
    p_paper = _plan_of((w, h), "ureader", anchors=anchors, score="paper")
    anc = p_code.options["anchors"]
    srr, sra, code, _, best_code = ur.score_anchors((w, h), anc, "code")
    _, _, paper, _, best_paper = ur.score_anchors((w, h), anc, "paper")
    H = max(a[0] for a in anc)
    W = max(a[1] for a in anc)
    if axes is None:
        axes = _new_figure((11, 9.5)).subplots(2, 2)
        axes = list(np.ravel(axes))
    fig = axes[0].figure
    panels = [("Srr = IoU(anchor, image)  (resolution-related)", srr, "{:.2f}"),
              ("Sra = IoU(anchor, image at anchor width)  (shape)", sra, "{:.2f}"),
              ("code: 100·Sra + Srr  (doc_processor.py::anchor_rank)", code, "{:.1f}"),
              ("paper: Sra + Srr  (arXiv:2310.05126 §3.2)", paper, "{:.2f}")]
    (ch, cw), (ph, pw) = anc[best_code], anc[best_paper]
    annotate = len(anc) <= 64
    for ax, (title, vals, fmt) in zip(axes, panels):
        grid = np.full((H, W), np.nan)
        for (nh, nw), v in zip(anc, np.asarray(vals, dtype=float)):
            grid[nh - 1, nw - 1] = v
        finite = grid[np.isfinite(grid)]
        lo = np.percentile(finite, 5) if "code" in title else finite.min()
        cmap = plt.get_cmap("viridis").with_extremes(bad="#e6e6e6")
        im = ax.imshow(np.ma.masked_invalid(grid), cmap=cmap, vmin=lo, vmax=finite.max(),
                       extent=(0.5, W + 0.5, H + 0.5, 0.5))
        fig.colorbar(im, ax=ax, shrink=0.8)
        if annotate:
            for (nh, nw), v in zip(anc, np.asarray(vals, dtype=float)):
                ax.text(nw, nh, fmt.format(v), ha="center", va="center", fontsize=5.5, zorder=5,
                        color="white" if v < (lo + finite.max()) / 2 else "black")
        ax.plot([cw], [ch], marker="*", markersize=20, markerfacecolor="none", markeredgecolor="#d62728",
                markeredgewidth=2, label=f"code picks {ch}×{cw}")
        ax.plot([pw], [ph], marker="o", markersize=17, markerfacecolor="none", markeredgecolor="#ff7f0e",
                markeredgewidth=2, label=f"paper picks {ph}×{pw}")
        ax.set_xticks(range(1, W + 1))
        ax.set_yticks(range(1, H + 1))
        ax.tick_params(labelsize=7)
        ax.set_xlabel("nw (crop columns)")
        ax.set_ylabel("nh (crop rows)")
        ax.set_title(title, fontsize=9)
        ax.legend(fontsize=7, loc="lower right", framealpha=0.85)
    fig.suptitle(f"UReader anchor scores for a {w}×{h} image (aspect W/H = {w / h:.3f}), {len(anc)} anchors: "
                 f"code → {ch}×{cw} ({p_code.num_tokens} tokens), paper → {ph}×{pw} ({p_paper.num_tokens} "
                 f"tokens)", fontsize=10)
    return fig


def crop_positions(plan, ax=None) -> Figure:
    """UReader's 2-D crop position ids: the (row, col) of every crop, and the global view's special id.

    The crop grid is drawn with each cell's (row, col) — the indices into the row and column embedding tables
    that are added to the crop's visual tokens; the global view (first in the batch) gets
    (anchor_max, anchor_max). From ``plan.details["crop_positions"]``. Used by notebooks 04 and 08.
    """
    pos = plan.details.get("crop_positions") if plan.details else None
    if pos is None:
        raise ValueError(f"crop_positions needs a ureader plan, got method {plan.method!r}")
    fig, ax = _fig_ax(ax, (8, 4.5))
    rows, cols = plan.grid
    order = encoder_order(plan)
    gpos = [pos[i] for i, (kind, _) in enumerate(order) if kind == "global"]
    for i, (kind, k) in enumerate(order):
        if kind != "tile":
            continue
        r, c = pos[i]
        ax.add_patch(Rectangle((c, r), 1, 1, facecolor=tile_color(k), alpha=0.75, edgecolor="white"))
        ax.text(c + 0.5, r + 0.5, f"#{i}\n(row {r}, col {c})", ha="center", va="center", fontsize=8)
    gx = cols + 0.5
    for j, gp in enumerate(gpos):
        ax.add_patch(Rectangle((gx, j), 1, 1, facecolor=GLOBAL_COLOR, edgecolor="white"))
        ax.text(gx + 0.5, j + 0.5, f"#0 global\n({gp[0]}, {gp[1]})", ha="center", va="center", fontsize=8,
                color="white")
    ax.set_xlim(-0.1, gx + 1.1)
    ax.set_ylim(max(rows, len(gpos)) + 0.1, -0.1)
    ax.set_aspect("equal")
    ax.axis("off")
    ax.set_title(f"{plan.method}: crop position ids (row, col) for a {_wh(plan.image_size)} image, grid "
                 f"{rows}×{cols}\nglobal view gets (anchor_max, anchor_max) = {gpos[0] if gpos else '-'}",
                 fontsize=10)
    return fig
