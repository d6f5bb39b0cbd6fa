"""Pictures of what the language model receives: whole-prompt strips, connector shape flows, LLM positions.

Taught in `what_the_language_model_receives`. Colours come from the shared palette (``viz.palette``): image k
has :func:`image_color` ``(k)``, global views :data:`GLOBAL_COLOR`, local tiles :func:`tile_color`, newline
tokens :data:`NEWLINE_COLOR`, separator / extra / row-end tokens :data:`EXTRA_COLOR`; text and wrapper
markers, which the palette does not cover, get the two neutral colours below.
"""

from __future__ import annotations

import textwrap

import numpy as np
from matplotlib.figure import Figure
from matplotlib.patches import FancyBboxPatch

from .palette import EXTRA_COLOR, GLOBAL_COLOR, NEWLINE_COLOR, fig_ax, image_color, subplots, tile_color

TEXT_COLOR = "#e3dcc2"  # text tokens (beige: not a token category of the palette)
MARKER_COLOR = "#8c6d31"  # wrapper markers such as <img> / <|vision_start|> (olive)
#: Kinds drawn as thin lines: single special tokens that would vanish as bars.
_THIN = {"newline": NEWLINE_COLOR, "separator": EXTRA_COLOR, "extra": EXTRA_COLOR, "break": NEWLINE_COLOR,
         "end": EXTRA_COLOR, "marker": MARKER_COLOR}


def _view_color(view: str | None, n_tiles: int):
    if view and view.startswith("tile "):
        return tile_color(int(view.split()[1]), max(n_tiles, 1))
    return GLOBAL_COLOR if view == "global" else "#9e9e9e"


def _draw_prompt(ax, p, y: float) -> None:
    """One prompt as two lanes at height ``y``: what each token is (top) and which view it came from."""
    n_tiles = 1 + max((int(s.view.split()[1]) for s in p.segments if s.view and s.view.startswith("tile ")),
                      default=-1)
    x = 0
    for s in p.segments:
        if s.kind in _THIN and s.count <= 2:
            ax.vlines(x + s.count / 2, y, y + 0.62, color=_THIN[s.kind], lw=0.7)
        else:
            color = TEXT_COLOR if s.kind == "text" else _THIN.get(s.kind, image_color(s.image or 0))
            ax.add_patch(FancyBboxPatch((x, y + 0.22), s.count, 0.4, boxstyle="square,pad=0", lw=0,
                                        fc=color))
            if s.kind == "image" and s.view and (s.view == "global" or s.view.startswith("tile ")):
                ax.add_patch(FancyBboxPatch((x, y), s.count, 0.18, boxstyle="square,pad=0", lw=0,
                                            fc=_view_color(s.view, n_tiles)))
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
    """Whole-prompt strips, one per laid-out prompt (``llm.layout`` results), on a common token axis: text
    (beige), each image's tokens in its image colour, newline / separator / row tokens as thin red / pink
    lines, wrapper markers olive; the thin lane below an image's tokens shows the view (global view black,
    tiles in their tile colours). Taught in `what_the_language_model_receives`."""
    from ..llm import get

    prompts = list(prompts)
    if not prompts:
        raise ValueError("prompt_strips needs at least one laid-out prompt")
    fig, ax = subplots(figsize=(11, 0.95 * len(prompts) + 0.9))
    longest = max(p.num_tokens for p in prompts)
    for row, p in enumerate(prompts):
        y = len(prompts) - 1 - row
        _draw_prompt(ax, p, y)
        ax.text(-0.01 * longest, y + 0.4, f"{get(p.method).title}\n{p.num_tokens} tokens", ha="right",
                va="center", fontsize=8)
        ax.text(0, y + 0.66, _summary(p), ha="left", va="bottom", fontsize=7.5)
    ax.set_xlim(0, longest * 1.01)
    ax.set_ylim(-0.15, len(prompts) + 0.05)
    ax.set_yticks([])
    ax.set_xlabel("LLM position (tokens)")
    for side in ("left", "right", "top"):
        ax.spines[side].set_visible(False)
    handles = [FancyBboxPatch((0, 0), 1, 1, fc=c, lw=0) for c in
               (TEXT_COLOR, image_color(0), image_color(1), NEWLINE_COLOR, EXTRA_COLOR, MARKER_COLOR,
                GLOBAL_COLOR)]
    fig.legend(handles, ["text (whitespace words)", "image 0 tokens", "image 1 tokens",
                         "newline / [IMG_BREAK]", "separator / extra / [IMG_END]", "wrapper marker",
                         "lower lane: global view (tiles: tile colours)"],
               loc="outside lower center", ncol=4, fontsize=7.5, frameon=False)
    ax.set_title(title or "What the language model receives: a two-image prompt per method", fontsize=10)
    return fig


def connector_flow(traces: dict, title: str | None = None) -> Figure:
    """The shape flow from pixels to LLM embeddings, one row per method: ``traces`` maps a label to the
    trace of ``llm.run_connector`` ((step, shape) pairs). Taught in `what_the_language_model_receives`."""
    if not traces:
        raise ValueError("connector_flow needs at least one trace")
    width = max(len(t) for t in traces.values())
    fig, ax = subplots(figsize=(2.05 * width + 1.6, 1.05 * len(traces) + 0.4))
    for row, (label, trace) in enumerate(traces.items()):
        y = len(traces) - 1 - row
        ax.text(-0.15, y, label, ha="right", va="center", fontsize=8.5, fontweight="bold")
        for i, (step, shape) in enumerate(trace):
            last = i == len(trace) - 1
            name, sym = (step.rsplit(" (", 1) + [""])[:2] if step.endswith(")") else (step, "")
            ax.add_patch(FancyBboxPatch((i + 0.04, y - 0.4), 0.84, 0.8, boxstyle="round,pad=0.02",
                                        fc="#fde0c5" if last else "#e8eef7", ec="#555555", lw=0.6))
            ax.text(i + 0.46, y + 0.2, textwrap.fill(name, 26), ha="center", va="center", fontsize=6.2,
                    linespacing=1.0)
            if sym:
                ax.text(i + 0.46, y - 0.08, "(" + sym, ha="center", va="center", fontsize=6, color="#555555")
            ax.text(i + 0.46, y - 0.27, "(" + ", ".join(map(str, shape)) + ")", ha="center", va="center",
                    fontsize=7.3, family="monospace")
            if not last:
                ax.annotate("", (i + 1.04, y), (i + 0.88, y), arrowprops={"arrowstyle": "->", "lw": 0.8})
    ax.set_xlim(-1.6, width)
    ax.set_ylim(-0.5, len(traces) - 0.5)
    ax.axis("off")
    ax.set_title(title or "Connector shape flow (random weights; small widths Dv, D)", fontsize=10)
    return fig


def llm_positions(p_1d, p_mrope, ax=None) -> Figure:
    """LLM position ids along the prompt: plain 1-D positions of a LLaVA-style prompt (``p_1d``) against
    Qwen2-VL's M-RoPE (t, h, w) ids of ``p_mrope``; image tokens shaded in their image colour. Taught in
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
                      fontsize=9)
    ids = mrope(p_mrope)
    n = np.arange(p_mrope.num_tokens)
    for row, (name, color) in enumerate((("t", "#333333"), ("h", "#1f77b4"), ("w", "#ff7f0e"))):
        axes[1].plot(n, ids[row], color=color, lw=0.9 if row else 1.6, label=name, alpha=0.9)
    axes[1].set_title(f"{p_mrope.method}: M-RoPE (t, h, w) ids - the sequence is {p_mrope.num_tokens} long "
                      f"but the ids only reach {int(ids.max())}", fontsize=9)
    axes[1].legend(fontsize=8, loc="upper left")
    for a in axes:
        a.set_xlabel("token index in the LLM input")
        a.set_ylabel("position id")
    return fig


def mrope_grid(p, image: int = 0, ax=None) -> Figure:
    """The (h, w) M-RoPE ids of one image's tokens as a little grid of numbers (small images only)."""
    from ..llm import mrope

    seg = [s for s in p.segments if s.kind == "image" and s.image == image]
    if len(seg) != 1 or seg[0].grid is None:
        raise ValueError("mrope_grid needs a qwen2_vl layout (one image run with a token grid)")
    s = seg[0]
    start = sum(x.count for x in p.segments[: p.segments.index(s)])
    ids = mrope(p)[:, start:start + s.count]
    rows, cols = s.grid
    fig, ax = fig_ax(ax, (0.55 * cols + 1, 0.45 * rows + 0.9))
    ax.imshow(np.zeros((rows, cols)), cmap="Greys", vmin=0, vmax=1)
    for k in range(s.count):
        r, c = divmod(k, cols)
        ax.text(c, r, f"{ids[1, k]},{ids[2, k]}", ha="center", va="center", fontsize=6.5)
    ax.set_xticks([])
    ax.set_yticks([])
    ax.set_title(f"image {image}: (h, w) ids, t = {ids[0, 0]}", fontsize=8.5)
    return fig


__all__ = ["TEXT_COLOR", "MARKER_COLOR", "prompt_strips", "connector_flow", "llm_positions", "mrope_grid"]
