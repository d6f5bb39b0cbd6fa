"""Tiling vs packing at equal budgets: token bars, effective resolution, small print at encoder resolution.

Used by `tiling_vs_packing`. Every picture draws the rows of ``features.equal_budget`` (and the crops of
``features.encoder_crops``) as they are: one bar or panel per row, the row's ``view`` picks its colour, no
method is named in the drawing code.

- ``equal_encoder_bars(rows)``: per image, each method's encoder tokens by category next to packing at the
  same encoder tokens
- ``effective_resolution_bars(rows)``: source pixels per useful encoder patch, per method and packed view
- ``legibility_crops(crops)``: one small-print region as each method's encoder and each packed view get it
"""

from __future__ import annotations

import math

import numpy as np
from matplotlib.figure import Figure
from matplotlib.patches import Patch

from ..features.equal_budget import CAPPED, SAME_ENCODER, SAME_LLM, TILED
from .palette import DUPLICATED, ENCODER_COLOR, LLM_COLOR, PACKED_COLOR, PAD_EDGE, PADDING, USEFUL, subplots

#: The colour of each ``view`` of an equal-budget row (the tiling's, packed, the LLM-token budget's, capped).
VIEW_COLORS = {TILED: ENCODER_COLOR, SAME_ENCODER: PACKED_COLOR, SAME_LLM: LLM_COLOR, CAPPED: PADDING}


def _check_rows(rows) -> list[dict]:
    rows = list(rows)
    if not rows:
        raise ValueError("rows is empty: pass features.equal_budget(images)")
    missing = {"image", "view", "method", "useful"} - set(rows[0])
    if missing:
        raise ValueError(f"rows lack {sorted(missing)}: pass features.equal_budget(images)")
    return rows


def _panels(n: int, width: float, height: float):
    ncols = min(2, n)
    nrows = (n + ncols - 1) // ncols
    fig, axes = subplots(nrows, ncols, figsize=(min(10.8, width * ncols), height * nrows), squeeze=False)
    for k in range(n, nrows * ncols):
        axes[k // ncols, k % ncols].axis("off")
    return fig, [axes[k // ncols, k % ncols] for k in range(n)]


def equal_encoder_bars(rows, title: str | None = None) -> Figure:
    """Per image (one panel each): for every method, its encoder tokens stacked by category (useful, padding,
    duplicated global view) and, beside it, packing at the same encoder tokens (all useful); the number on
    a bar is its encoder tokens. Used by `tiling_vs_packing`."""
    rows = _check_rows(rows)
    images = list(dict.fromkeys(r["image"] for r in rows))
    fig, axes = _panels(len(images), 6.1, 4.4)
    for ax, name in zip(axes, images):
        pairs = [(r, next(p for p in rows if p["image"] == name and p["method"] == r["method"]
                          and p["view"] == SAME_ENCODER))
                 for r in rows if r["image"] == name and r["view"] == TILED]
        x = np.arange(len(pairs))
        for off, k in ((-0.2, 0), (0.2, 1)):
            sub = [p[k] for p in pairs]
            u, pd_, d = (np.array([r[c] for r in sub]) for c in ("useful", "padding", "duplicated"))
            edge = [VIEW_COLORS[r["view"]] for r in sub]
            ax.bar(x + off, u, 0.38, color=USEFUL, edgecolor=edge, linewidth=2,
                   label="useful" if k == 0 else None)
            ax.bar(x + off, pd_, 0.38, bottom=u, color=PADDING, hatch="//", edgecolor=PAD_EDGE,
                   label="padding" if k == 0 else None)
            ax.bar(x + off, d, 0.38, bottom=u + pd_, color=DUPLICATED, label="duplicated (global view)"
                   if k == 0 else None)
            for xi, r in zip(x + off, sub):
                ax.text(xi, r["encoder_tokens"], f"{r['encoder_tokens']:,}", ha="center", va="bottom",
                        fontsize=10, rotation=90)
        ax.set_xticks(x, [p[0]["method"] for p in pairs], rotation=45, ha="right", fontsize=10)
        ax.set_ylim(0, max(p[0]["encoder_tokens"] for p in pairs) * 1.3)
        w, h = pairs[0][0]["size"]
        ax.set_title(f"{name} ({w}×{h}): left bar tiled, right bar packed", fontsize=11)
        ax.set_ylabel("encoder patch tokens", fontsize=10)
        ax.tick_params(axis="y", labelsize=10)
        ax.grid(axis="y", alpha=0.3)
    handles, labels = axes[0].get_legend_handles_labels()
    handles += [Patch(facecolor="white", edgecolor=VIEW_COLORS[v], linewidth=2)
                for v in (TILED, SAME_ENCODER)]
    labels += ["outline: tiled", "outline: packed, same encoder tokens"]
    fig.legend(handles, labels, loc="outside lower center", ncol=5, fontsize=10)
    fig.suptitle(title or "The same encoder budget: each method's tokens (left) and packing at that many "
                 "patches (right)", fontsize=12)
    return fig


def effective_resolution_bars(rows, title: str | None = None) -> Figure:
    """Per image: source pixels per useful encoder patch (log scale, smaller = finer detail) for every
    method (tiled) and packing at its encoder budget and at its LLM budget (2×2 merge); packing capped at a
    fixed budget as a dashed line. A row with no useful patch says so. Used by `tiling_vs_packing`."""
    rows = _check_rows(rows)
    images = list(dict.fromkeys(r["image"] for r in rows))
    views = (TILED, SAME_ENCODER, SAME_LLM)
    fig, axes = _panels(len(images), 6.1, 4.4)
    for ax, name in zip(axes, images):
        sub = [r for r in rows if r["image"] == name]
        methods = list(dict.fromkeys(r["method"] for r in sub if r["view"] == TILED))
        x = np.arange(len(methods))
        for j, v in enumerate(views):
            vals = [next(r for r in sub if r["method"] == m and r["view"] == v) for m in methods]
            for xi, r in zip(x + (j - 1) * 0.27, vals):
                eff = r["effective_resolution"]
                if math.isinf(eff):
                    ax.text(xi, 1.5, "no content", rotation=90, ha="center", va="bottom", fontsize=10)
                    continue
                ax.bar(xi, eff, 0.26, color=VIEW_COLORS[v], label=v if xi == x[0] + (j - 1) * 0.27 else None)
        for r in sub:
            if r["view"] == CAPPED:
                ax.axhline(r["effective_resolution"], color="k", ls="--", lw=1.2, label=r["label"])
        ax.set_yscale("log")
        ax.set_xticks(x, methods, rotation=45, ha="right", fontsize=10)
        ax.set_ylabel("source px per useful patch", fontsize=10)
        ax.tick_params(axis="y", labelsize=10)
        w, h = sub[0]["size"]
        ax.set_title(f"{name} ({w}×{h})", fontsize=11)
        ax.grid(axis="y", alpha=0.3, which="both")
    handles, labels = axes[0].get_legend_handles_labels()
    fig.legend(handles, labels, loc="outside lower center", ncol=4, fontsize=10)
    fig.suptitle(title or "Effective resolution: source pixels behind each useful encoder patch "
                 "(lower = finer)", fontsize=12)
    return fig


def _show_crop(ax, c, title: str) -> None:
    im = np.asarray(c["crop"])
    h, w = im.shape[:2]
    ax.imshow(im, interpolation="nearest", extent=(0, w, h, 0))
    for v in c["lines_x"]:
        ax.axvline(v, color="#d62728", lw=0.6, alpha=0.6)
    for v in c["lines_y"]:
        ax.axhline(v, color="#d62728", lw=0.6, alpha=0.6)
    ax.set_xlim(0, w)
    ax.set_ylim(h, 0)
    ax.set_xticks([])
    ax.set_yticks([])
    ax.set_title(title, fontsize=10.5)


def legibility_crops(crops, source=None, title: str | None = None) -> Figure:
    """The crops of ``features.encoder_crops`` side by side, one row per method whose budget they share
    (tiles, global view, packed at its encoder tokens, packed at its LLM tokens) and a last row with the
    ``source`` crop (a PIL image, optional) and the budget-less crops (packing capped). Each crop is drawn at
    its own encoder resolution (nearest neighbour, patch borders in red); the title gives its size in
    encoder pixels and, when computed, the x-height in patches. Used by `tiling_vs_packing`."""
    crops = list(crops)
    if not crops:
        raise ValueError("crops is empty: pass features.encoder_crops(image, box, rows)")
    groups = list(dict.fromkeys(c["row"]["method"] for c in crops if c["row"]["method"] is not None))
    last = [c for c in crops if c["row"]["method"] is None]
    ncols = max(max(sum(c["row"]["method"] == g for c in crops) for g in groups) if groups else 1,
                len(last) + (source is not None))
    nrows = len(groups) + (1 if last or source is not None else 0)
    fig, axes = subplots(nrows, ncols, figsize=(3.05 * ncols, 1.75 * nrows), squeeze=False)
    for ax in axes.flat:
        ax.axis("off")
    for i, g in enumerate(groups):
        for j, c in enumerate(c for c in crops if c["row"]["method"] == g):
            axes[i, j].axis("on")
            _show_crop(axes[i, j], c, _crop_title(c))
    j0 = 0
    if source is not None:
        ax = axes[nrows - 1, 0]
        ax.axis("on")
        ax.imshow(np.asarray(source), interpolation="nearest")
        ax.set_xticks([])
        ax.set_yticks([])
        ax.set_title(f"source {source.width}×{source.height} px", fontsize=10.5)
        j0 = 1
    for j, c in enumerate(last):
        axes[nrows - 1, j0 + j].axis("on")
        _show_crop(axes[nrows - 1, j0 + j], c, _crop_title(c))
    fig.suptitle(title or "What the encoder gets of the same small print (red lines: patch borders)",
                 fontsize=12)
    return fig


def _crop_title(c) -> str:
    part = c["part"] if c["part"] != "packed" else c["row"]["view"].replace("packed, ", "packed ")
    if c["row"]["view"] == CAPPED:
        part = c["label"]
    head = f"{c['row']['method']}: {part}" if c["row"]["method"] and c["part"] != "packed" else part
    w, h = c["crop"].size
    x = "" if c.get("x_patches") is None else f", x-height {c['x_patches']:.2f} patch"
    return f"{head}\n{w}×{h} px{x}"


__all__ = ["VIEW_COLORS", "equal_encoder_bars", "effective_resolution_bars", "legibility_crops"]
