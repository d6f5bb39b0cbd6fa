"""What every picture of the tutorial shares: one palette and the small figure helpers.

Colours (one meaning, one colour, in every figure of ``viz`` and in the benchmark's plots):

- token categories of the encoder accounting (``Plan.encoder_tokens``): :data:`USEFUL`, :data:`PADDING`,
  :data:`DUPLICATED`, :data:`CLS` (``TOKEN_COLORS`` maps the category names to them);
- the LLM token layout (``tiling.token_layout``): :data:`GLOBAL_COLOR` (global view), :data:`NEWLINE_COLOR`,
  :data:`EXTRA_COLOR` (view separator / extra token); local tiles get :func:`tile_colors`;
- packed images: :func:`image_color` (image k has the same colour in every packing figure);
- attention backends: :func:`backend_color` (never one of the token-category colours);
- data-parallel ranks: :func:`rank_color` (rank r has the same colour in every picture of
  `data_parallel_training`).

Every function of ``viz`` returns a Figure made by :func:`new_figure` / :func:`subplots`: created through
pyplot (so Jupyter's inline backend formats it) and closed at once, so that a notebook cell shows it exactly
once (as the cell's value) and the explorers of `grid_explorer`, which redraw often, never pile figures up.
"""

from __future__ import annotations

import colorsys
import zlib

import matplotlib.pyplot as plt
import numpy as np
from matplotlib.colors import to_rgb
from matplotlib.figure import Figure

# ----------------------------------------------------------------------------------------------------------
# the palette

USEFUL = "#4c72b0"  # encoder tokens that show image content (blue)
PADDING = "#b0b0b0"  # padding: fill colour in a tile / view, empty slots of a packed row (grey, hatched)
DUPLICATED = "#dd8452"  # global-view tokens repeating what the tiles show (orange)
CLS = "#8172b3"  # one CLS token per encoder image (violet)
GLOBAL_COLOR = "#222222"  # the global view(s) / thumbnail in the LLM layout and in the tiling pictures
NEWLINE_COLOR = "#d62728"  # newline tokens (red)
EXTRA_COLOR = "#e377c2"  # separator / extra tokens (pink)
PAD_EDGE = "#7f7f7f"  # outline of padding areas
CONTENT_FILL = "#cfe3f5"  # where the image lies, when a picture draws geometry without pixels
CHOSEN_COLOR = "#2ca02c"  # the winning candidate in score pictures
# totals compared side by side (the packing explorer): packed tokens, a tiling's encoder and LLM tokens;
# none of them a token category's, a packed image's (tab20) or a tile's colour, since they share pictures
PACKED_COLOR, ENCODER_COLOR, LLM_COLOR = "#1b9e77", "#e6ab02", "#7a0177"

#: Token category -> colour (the encoder accounting and the LLM layout).
TOKEN_COLORS = {"useful": USEFUL, "padding": PADDING, "duplicated": DUPLICATED, "cls": CLS,
                "global": GLOBAL_COLOR, "newline": NEWLINE_COLOR, "extra": EXTRA_COLOR}

# tab20 indices for tiles and images: no red (newline), grey (padding), pink (extra), and the dark blue /
# orange / purple of the token categories come last
_TAB20 = (2, 4, 8, 10, 18, 16, 1, 3, 5, 9, 11, 19, 17, 0)


def token_color(category: str) -> str:
    """Colour of a token category ("useful", "padding", "duplicated", "cls", "global", "newline", "extra")."""
    if category not in TOKEN_COLORS:
        raise ValueError(f"unknown token category {category!r}; choose one of {tuple(TOKEN_COLORS)}")
    return TOKEN_COLORS[category]


def _spread(n: int) -> list[tuple]:
    """``n`` distinct colours: evenly spaced hues (red and pink left out: newline / extra tokens), three
    lightness levels in turn, so that neighbours differ in both."""
    hues = np.linspace(0.06, 0.86, n, endpoint=False) if n > 1 else [0.55]
    levels = ((0.45, 0.75), (0.62, 0.6), (0.32, 0.85))
    return [(*colorsys.hls_to_rgb(h, *levels[i % 3]), 1.0) for i, h in enumerate(hues)]


def tile_colors(n: int) -> list[tuple]:
    """The colours of ``n`` local tiles in one figure: all different for any ``n`` and none of them the
    global view's, the newline's, the extra token's or the padding's colour. Up to 14 tiles the fixed tab20
    colours (tile k keeps its colour whatever ``n``); more tiles get ``n`` evenly spread hues."""
    if isinstance(n, bool) or not isinstance(n, (int, np.integer)) or n < 0:
        raise ValueError(f"n must be a non-negative integer, got {n!r}")
    if n <= len(_TAB20):
        cmap = plt.get_cmap("tab20")
        return [cmap(i) for i in _TAB20[:n]]
    return _spread(int(n))


def tile_color(k: int, n: int):
    """Colour of local tile ``k`` of a figure that shows ``n`` tiles (see :func:`tile_colors`)."""
    if not 0 <= k < max(n, 1):
        raise ValueError(f"tile index {k} outside 0..{n - 1}")
    return tile_colors(max(n, 1))[k]


def image_color(k: int):
    """Colour of packed image number ``k``: the same in every packing figure (`navit_packing`,
    `grid_explorer`). The first 14 are tab20 colours without grey (padding), red or pink; then hues spread
    over a repeating 24-step wheel (3 lightness levels), so nearby indices never share a colour."""
    if isinstance(k, bool) or not isinstance(k, (int, np.integer)) or k < 0:
        raise ValueError(f"image index must be a non-negative integer, got {k!r}")
    if k < len(_TAB20):
        return plt.get_cmap("tab20")(_TAB20[k])
    return _spread(24)[(k - len(_TAB20)) % 24]


#: Attention backends' colours, by registration order (the built-in ones: loop, dense_mask, flex, varlen,
#: sdpa_segments, nested), so a backend has one colour in every figure.
BACKEND_PALETTE = ("#17becf", "#8c564b", "#bcbd22", "#393b79", "#637939", "#e7969c", "#e7ba52", "#843c39",
                   "#7b4173", "#3182bd", "#6b6ecf", "#8ca252", "#bd9e39", "#ad494a")


def backend_color(name: str) -> str:
    """Colour of an attention backend (`timing`, `training_with_packed_sequences`): the registry's order
    picks it
    from :data:`BACKEND_PALETTE`; a name this checkout does not register (a recorded result) gets one picked
    by its hash (stable across runs). Never a token-category colour (:data:`TOKEN_COLORS`)."""
    if not isinstance(name, str) or not name:
        raise ValueError(f"backend name must be a non-empty string, got {name!r}")
    from ..encoder import attention

    names = attention.BACKENDS.names()
    k = names.index(name) if name in names else zlib.crc32(name.encode())
    return BACKEND_PALETTE[k % len(BACKEND_PALETTE)]


#: Okabe-Ito colours for ranks 0..7 (none of them a token category's); more ranks get spread hues.
_RANKS = ("#0072b2", "#e69f00", "#009e73", "#56b4e9", "#d55e00", "#cc79a7", "#f0e442", "#000000")


def rank_color(r: int):
    """Colour of data-parallel rank ``r`` (`data_parallel_training`)."""
    if isinstance(r, bool) or not isinstance(r, (int, np.integer)) or r < 0:
        raise ValueError(f"rank must be a non-negative integer, got {r!r}")
    return _RANKS[r] if r < len(_RANKS) else _spread(24)[(r - len(_RANKS)) % 24]


def fill_rgb(fill) -> tuple:
    """A plan's fill colour (RGB 0..255 tuple, a colour name or None) as matplotlib RGB in [0, 1]."""
    if fill is None:
        return (0.85, 0.85, 0.85)
    if isinstance(fill, str):
        return to_rgb(fill)
    f = np.asarray(fill, dtype=float).reshape(-1)
    if f.size == 1:
        f = np.repeat(f, 3)
    return tuple((f[:3] / 255.0) if f.max() > 1 else f[:3])


# ----------------------------------------------------------------------------------------------------------
# figures


def closed(fig: Figure) -> Figure:
    """Close ``fig`` in pyplot and return it: shown once as a cell's value, never twice, and no figure
    accumulates in pyplot."""
    plt.close(fig)
    return fig


def new_figure(figsize, layout: str | None = "constrained") -> Figure:
    """A new Figure made through pyplot and closed at once (see :func:`closed`)."""
    return closed(plt.figure(figsize=figsize, layout=layout))


def subplots(nrows: int = 1, ncols: int = 1, *, figsize, layout: str | None = "constrained", **kw):
    """``plt.subplots`` whose figure is closed at once: (fig, axes)."""
    fig, axes = plt.subplots(nrows, ncols, figsize=figsize, layout=layout, **kw)
    return closed(fig), axes


def fig_ax(ax, figsize):
    """(fig, ax): a new single-panel figure when ``ax`` is None, else ``ax``'s figure and ``ax``."""
    if ax is None:
        fig = new_figure(figsize)
        return fig, fig.subplots()
    return ax.figure, ax


def wh(size) -> str:
    """``"W×H"`` for a (width, height) size."""
    return f"{size[0]}×{size[1]}"


__all__ = ["USEFUL", "PADDING", "DUPLICATED", "CLS", "GLOBAL_COLOR", "NEWLINE_COLOR", "EXTRA_COLOR",
           "PAD_EDGE", "CONTENT_FILL", "CHOSEN_COLOR", "PACKED_COLOR", "ENCODER_COLOR", "LLM_COLOR",
           "TOKEN_COLORS", "token_color", "tile_colors", "tile_color", "image_color", "backend_color",
           "rank_color", "fill_rgb", "closed", "new_figure", "subplots", "fig_ax", "wh"]
