"""Pictures of what the language model receives: whole-prompt strips, connector shape flows, LLM positions.

Taught in `what_the_language_model_receives`. Colours come from the shared palette (``viz.palette``): image k
has :func:`image_color` ``(k)``, global views :data:`GLOBAL_COLOR`, newline tokens :data:`NEWLINE_COLOR`,
separator / extra / row-end tokens :data:`EXTRA_COLOR`; text, wrapper markers and the local tiles of the view
lane, which the palette does not cover, get the neutral colours below (tiles alternate two greys, so that no
colour means an image in one lane and a tile in the other). Every text is at least 10 pt at the width a
notebook shows the figure.
"""

from __future__ import annotations

import textwrap

import numpy as np
from matplotlib import patheffects
from matplotlib.figure import Figure
from matplotlib.patches import FancyBboxPatch

from .palette import EXTRA_COLOR, GLOBAL_COLOR, NEWLINE_COLOR, fig_ax, image_color, subplots

TEXT_COLOR = "#e3dcc2"  # text tokens (beige: not a token category of the palette)
MARKER_COLOR = "#8c6d31"  # wrapper markers such as <img> / <|vision_start|> (olive)
TILE_SHADES = ("#a9a9a9", "#d9d9d9")  # local tiles in the view lane: tile k gets TILE_SHADES[k % 2]
FONT = 10  # points: every text of these figures
#: Kinds drawn as thin lines: single special tokens that would vanish as bars.
_THIN = {"newline": NEWLINE_COLOR, "separator": EXTRA_COLOR, "extra": EXTRA_COLOR, "break": NEWLINE_COLOR,
         "end": EXTRA_COLOR, "marker": MARKER_COLOR}


def _view_color(view: str | None):
    if view and view.startswith("tile "):
        return TILE_SHADES[int(view.split()[1]) % 2]
    return GLOBAL_COLOR if view == "global" else None


def _draw_prompt(ax, p, y: float) -> None:
    """One prompt as two lanes at height ``y``: what each token is (top: colour = image) and which view it
    came from (bottom: global view or local tile)."""
    x = 0
    for s in p.segments:
        if s.kind in _THIN and s.count <= 2:
            ax.vlines(x + s.count / 2, y, y + 0.62, color=_THIN[s.kind], lw=0.7)
        else:
            color = TEXT_COLOR if s.kind == "text" else _THIN.get(s.kind, image_color(s.image or 0))
            ax.add_patch(FancyBboxPatch((x, y + 0.22), s.count, 0.4, boxstyle="square,pad=0", lw=0,
                                        fc=color))
            lane = _view_color(s.view) if s.kind == "image" else None
            if lane is not None:
                ax.add_patch(FancyBboxPatch((x, y), s.count, 0.18, boxstyle="square,pad=0", lw=0, fc=lane))
        x += s.count


def _summary(p) -> str:
    """"image 0: 2040 (24 newline) · image 1: ..." for a row label."""
    parts = []
    for i in range(len(p.image_sizes)):
        c = p.counts(i)
        special = ", ".join(f"{v} {k}" for k, v in c.items() if k not in ("image", "marker"))
        parts.append(f"img {i}: {p.image_tokens(i)}" + (f" ({special})" if special else ""))
    text = sum(s.count for s in p.segments if s.kind == "text")
    marks = sum(s.count for s in p.segments if s.kind == "marker")
    return " · ".join(parts) + f" · text {text}" + (f" · markers {marks}" if marks else "")


def prompt_strips(prompts, title: str | None = None) -> Figure:
    """Whole-prompt strips, one per laid-out prompt (``llm.layout`` results), on a common token axis. Upper
    lane, what each token is: text (beige), each image's tokens in its image colour, newline / separator /
    row tokens as thin red / pink lines, wrapper markers olive. Lower lane, which view an image token comes
    from: the global view (black) or a local tile (two greys, alternating tile by tile). Taught in
    `what_the_language_model_receives`."""
    from ..llm import get

    prompts = list(prompts)
    if not prompts:
        raise ValueError("prompt_strips needs at least one laid-out prompt")
    fig, ax = subplots(figsize=(10.6, 1.15 * len(prompts) + 1.5))
    longest = max(p.num_tokens for p in prompts)
    for row, p in enumerate(prompts):
        y = len(prompts) - 1 - row
        _draw_prompt(ax, p, y)
        ax.text(-0.01 * longest, y + 0.4, f"{get(p.method).title}\n{p.num_tokens} tokens", ha="right",
                va="center", fontsize=FONT)
        ax.text(0, y + 0.66, _summary(p), ha="left", va="bottom", fontsize=FONT)
    ax.set_xlim(0, longest * 1.01)
    ax.set_ylim(-0.15, len(prompts) + 0.05)
    ax.set_yticks([])
    ax.set_xlabel("LLM position (tokens)", fontsize=FONT)
    ax.tick_params(labelsize=FONT)
    for side in ("left", "right", "top"):
        ax.spines[side].set_visible(False)
    n_images = max(len(p.image_sizes) for p in prompts)
    colors = [TEXT_COLOR, *(image_color(k) for k in range(n_images)), NEWLINE_COLOR, EXTRA_COLOR,
              MARKER_COLOR, GLOBAL_COLOR, TILE_SHADES[0]]
    names = ["text (whitespace words)", *(f"image {k} tokens" for k in range(n_images)),
             "newline / [IMG_BREAK]", "separator / extra / [IMG_END]", "wrapper marker",
             "lower lane: global view", "lower lane: local tiles (alternating)"]
    handles = [FancyBboxPatch((0, 0), 1, 1, fc=c, lw=0) for c in colors]
    fig.legend(handles, names, loc="outside lower center", ncol=3, fontsize=FONT, frameon=False)
    ax.set_title(title or "What the language model receives: a two-image prompt per method", fontsize=11)
    return fig


BOX_IN, ROW_IN = 1.75, 1.7  # connector_flow: inches per step box, per method row
_PT = 1 / 72  # one point in inches


def _box_texts(ax, x: float, y: float, step: str, shape, last: bool) -> None:
    """One step of a connector flow: a box with the step's name, its symbolic shape and the real shape."""
    name, sym = (step.rsplit(" (", 1) + [""])[:2] if step.endswith(")") else (step, "")
    ax.add_patch(FancyBboxPatch((x + 0.04, y - 0.42), 0.84, 0.78, boxstyle="round,pad=0.02",
                                fc="#fde0c5" if last else "#e8eef7", ec="#555555", lw=0.6))
    unit = _PT / ROW_IN  # a point in row units
    top = y + 0.36 - 5 * unit
    name = textwrap.fill(name, 17, break_on_hyphens=False)
    ax.text(x + 0.46, top, name, ha="center", va="top", fontsize=FONT, linespacing=1.05)
    if sym:
        sym = textwrap.fill("(" + sym, 19, break_on_hyphens=False)
        ax.text(x + 0.46, top - (name.count("\n") + 1) * 12.5 * unit - 3 * unit, sym, ha="center", va="top",
                fontsize=FONT, color="#555555", linespacing=1.05)
    ax.text(x + 0.46, y - 0.42 + 5 * unit, "(" + ", ".join(map(str, shape)) + ")", ha="center", va="bottom",
            fontsize=FONT, family="monospace")


def connector_flow(traces: dict, title: str | None = None) -> Figure:
    """The shape flow from pixels to LLM embeddings, one row per method (its label above it): ``traces``
    maps a label to the trace of ``llm.run_connector`` ((step, shape) pairs). Taught in
    `what_the_language_model_receives`."""
    if not traces:
        raise ValueError("connector_flow needs at least one trace")
    width = max(len(t) for t in traces.values())
    fig, ax = subplots(figsize=(BOX_IN * width, ROW_IN * len(traces) + 0.45))
    for row, (label, trace) in enumerate(traces.items()):
        y = len(traces) - 1 - row
        ax.text(0.06, y + 0.41, label, ha="left", va="bottom", fontsize=FONT + 0.5, fontweight="bold")
        for i, (step, shape) in enumerate(trace):
            _box_texts(ax, i, y, step, shape, last=i == len(trace) - 1)
            if i < len(trace) - 1:
                ax.annotate("", (i + 1.04, y - 0.03), (i + 0.88, y - 0.03),
                            arrowprops={"arrowstyle": "->", "lw": 0.8})
    ax.set_xlim(0, width)
    ax.set_ylim(-0.47, len(traces) - 0.5 + 0.05)
    ax.axis("off")
    ax.set_title(title or "Connector shape flow (random weights; small widths Dv, D)", fontsize=11)
    return fig


def llm_positions(p_1d, p_mrope, ax=None) -> Figure:
    """LLM position ids along the prompt: plain 1-D positions of a LLaVA-style prompt (``p_1d``) against
    Qwen2-VL's M-RoPE (t, h, w) ids of ``p_mrope`` (told apart by line style); image tokens shaded in their
    image colour. Taught in
    `what_the_language_model_receives`."""
    from ..llm import mrope, positions_1d

    fig, axes = subplots(2, 1, figsize=(10, 5.2)) if ax is None else (ax[0].figure, ax)
    for a, p in zip(axes, (p_1d, p_mrope)):
        x = 0
        for s in p.segments:
            if s.image is not None and s.kind != "marker":
                a.axvspan(x, x + s.count, color=image_color(s.image), alpha=0.18, lw=0)
            x += s.count
    n = np.arange(p_1d.num_tokens)
    axes[0].plot(n, positions_1d(p_1d), color="#333333", lw=1)
    axes[0].set_title(f"{p_1d.method}: 1-D positions 0..{p_1d.num_tokens - 1} (image tokens shaded)",
                      fontsize=FONT + 0.5)
    ids = mrope(p_mrope)
    n = np.arange(p_mrope.num_tokens)
    # the three ids differ by line style, not colour: colour means an image (the shading) in this figure
    for row, (name, style, lw) in enumerate((("t", "-", 2.2), ("h", "-", 0.9), ("w", ":", 1.1))):
        axes[1].plot(n, ids[row], color="#333333" if row == 0 else "black", ls=style, lw=lw, label=name)
    axes[1].set_title(f"{p_mrope.method}: M-RoPE (t, h, w) ids - the sequence is {p_mrope.num_tokens} long "
                      f"but the ids only reach {int(ids.max())}", fontsize=FONT + 0.5)
    axes[1].legend(fontsize=FONT, loc="upper left")
    for a in axes:
        a.set_xlabel("token index in the LLM input", fontsize=FONT)
        a.set_ylabel("position id", fontsize=FONT)
        a.tick_params(labelsize=FONT)
    return fig


def mrope_grid(p, image: int = 0, picture=None, ax=None) -> Figure:
    """The M-RoPE ids (h, w) of one image's tokens, written on its grid of merged tokens (each cell is one
    LLM token: a 28×28-pixel block of the resized image); ``picture`` (a PIL image): drawn under the grid,
    resized to the grid's pixels as the processor does. The title gives the shared t. Taught in
    `what_the_language_model_receives`."""
    from ..llm import mrope

    seg = [s for s in p.segments if s.kind == "image" and s.image == image]
    if len(seg) != 1 or seg[0].grid is None:
        raise ValueError("mrope_grid needs a qwen2_vl layout (one image run with a token grid)")
    s = seg[0]
    start = sum(x.count for x in p.segments[: p.segments.index(s)])
    ids = mrope(p)[:, start:start + s.count]
    rows, cols = s.grid
    cell = 0.62  # inches per token: room for "h,w" at 10 pt
    fig, ax = fig_ax(ax, (cell * cols + 0.9, cell * rows + 0.9))
    if picture is not None:
        ax.imshow(np.asarray(picture.convert("RGB").resize((28 * cols, 28 * rows))),
                  extent=(-0.5, cols - 0.5, rows - 0.5, -0.5))
    else:
        ax.imshow(np.zeros((rows, cols)), cmap="Greys", vmin=0, vmax=1)
    for k in range(1, max(rows, cols)):
        if k < rows:
            ax.axhline(k - 0.5, color="white", lw=0.8)
        if k < cols:
            ax.axvline(k - 0.5, color="white", lw=0.8)
    outline = [patheffects.withStroke(linewidth=2.5, foreground="white")]
    for k in range(s.count):
        r, c = divmod(k, cols)
        ax.text(c, r, f"{ids[1, k]},{ids[2, k]}", ha="center", va="center", fontsize=FONT,
                path_effects=outline)
    ax.set_xticks([])
    ax.set_yticks([])
    ax.set_xlim(-0.5, cols - 0.5)
    ax.set_ylim(rows - 0.5, -0.5)
    ax.set_title(f"image {image}: {rows}×{cols} merged tokens, ids (h, w) in each; t = {ids[0, 0]} for all",
                 fontsize=FONT + 0.5)
    return fig


__all__ = ["TEXT_COLOR", "MARKER_COLOR", "TILE_SHADES", "prompt_strips", "connector_flow", "llm_positions",
           "mrope_grid"]
