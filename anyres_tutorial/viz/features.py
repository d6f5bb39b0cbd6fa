"""Pictures of real features, resolution and token budgets (each returns a matplotlib Figure).

Stable signatures (the notebooks named after each rely on them):

- ``downsample_comparison(image, box, sides=(224, 336, 448), title=None)``: `setup_and_why_resolution`
- ``token_cost_curve(sides=None, patch_sizes=(14, 16), marks=(224, 336, 448, 518, 672, 1024))``:
  `setup_and_why_resolution`, `patches_tokens_real_vit`
- ``patch_grid(image, size=(224, 224), patch_size=14, highlight=6)``: `patches_tokens_real_vit`
- ``pos_embed_resize(original, resized, position=None, channels=(0, 1, 2))``: `patches_tokens_real_vit`
- ``pca_map(image, features, title=None, foreground=False)``: `patches_tokens_real_vit`
- ``seams_comparison(image, tiled, native, show_edges=True, title=None)``: `tiling_vs_packing`, `llava_mini`;
  ``tiled`` = ``features.encode_tiled(model, image, plan)``, ``native`` = ``features.encode_native(...)``
- ``token_budget_bars(rows, title=None)``: `tiling_vs_packing`;
  ``rows`` = ``features.token_budget(images, methods)``
- ``compression_map(image, fmap, pool, cls=None, max_queries=4, title=None)``: `llava_mini`;
  ``pool`` = ``features.attention_pool(fmap, ...)``

All numbers are computed by :mod:`anyres_tutorial.features`; these functions only draw.
"""

from __future__ import annotations

import matplotlib.pyplot as plt
import numpy as np
from matplotlib.figure import Figure
from matplotlib.patches import Rectangle
from matplotlib.ticker import MaxNLocator
from PIL import Image

from .. import features as _f
from ..checks import check_positive_int, check_size
from ..lazy import lazy_module
from .palette import DUPLICATED, PADDING, USEFUL, closed

# imported when a picture first needs them (the explorers' pictures never do)
torch = lazy_module("torch")
_maps = lazy_module("anyres_tutorial.features.maps")
_pca = lazy_module("anyres_tutorial.pca")


def as_grid(*args, **kwargs):
    return _maps.as_grid(*args, **kwargs)


def check_pil(*args, **kwargs):
    return _maps.check_pil(*args, **kwargs)


def pca_rgb(*args, **kwargs):
    return _pca.pca_rgb(*args, **kwargs)

__all__ = [
    "compression_map", "downsample_comparison", "patch_grid", "pca_map", "pos_embed_resize",
    "seams_comparison", "token_budget_bars", "token_cost_curve",
]

def _off(ax):
    ax.set_xticks([])
    ax.set_yticks([])


def _np(x) -> np.ndarray:
    return x.detach().cpu().numpy() if isinstance(x, torch.Tensor) else np.asarray(x)


# ---------------------------------------------------------------------------------------------------------
# `setup_and_why_resolution`


def downsample_comparison(image: Image.Image, box, sides=(224, 336, 448), title: str | None = None) -> Figure:
    """Crop ``box`` (x0, y0, x1, y1 in original pixels) of ``image`` at native resolution beside the same crop
    after squashing the WHOLE image to ``side x side`` and back (``features.roundtrip_resize``), one panel
    per side, PSNR of the crop in each title. Small text and thin lines are what disappears: the model cannot
    read what its input never contained, so it guesses ("hallucinates"). Used by
    `setup_and_why_resolution`."""
    image = check_pil(image)
    x0, y0, x1, y1 = (int(v) for v in box)
    if not (0 <= x0 < x1 <= image.width and 0 <= y0 < y1 <= image.height):
        raise ValueError(f"box {box} is not inside the {image.width}x{image.height} image (width x height)")
    sides = list(sides)
    if not sides:
        raise ValueError("sides is empty")
    n = 2 + len(sides)
    ratios = [1.3] + [1] * (n - 1)
    fig, axes = plt.subplots(1, n, figsize=(min(10.8, 2.2 * n + 0.6), 3.4),
                             gridspec_kw={"width_ratios": ratios})
    ax = axes[0]
    ax.imshow(image)
    ax.add_patch(Rectangle((x0, y0), x1 - x0, y1 - y0, fill=False, ec="red", lw=2))
    ax.set_title(f"whole image {image.width}x{image.height}\n(red box = crop)", fontsize=10)
    _off(ax)
    crop = image.crop((x0, y0, x1, y1))
    axes[1].imshow(crop)
    axes[1].set_title(f"native crop\n{x1 - x0}x{y1 - y0}", fontsize=10)
    _off(axes[1])
    for ax, s in zip(axes[2:], sides):
        rt = _f.roundtrip_resize(image, s)
        p = _f.psnr(image, rt, (x0, y0, x1, y1))
        ax.imshow(rt.crop((x0, y0, x1, y1)))
        ax.set_title(f"via {s}x{s} and back\nPSNR {p:.1f} dB", fontsize=10)
        _off(ax)
    fig.suptitle(title or "What a fixed low input resolution erases: the same crop before and after "
                 "squashing the whole image", fontsize=11)
    fig.tight_layout()
    return closed(fig)


def token_cost_curve(sides=None, patch_sizes=(14, 16), marks=(224, 336, 448, 518, 672, 1024)) -> Figure:
    """Left: patch tokens of a square image vs its side, for each patch size (``features.tokens_for_side``),
    common input sizes marked with their token counts (for the first patch size). Right: the attention cost
    (N^2 token pairs) relative to 224 px, log scale. Quadratic in the side, quartic for attention.
    Used by `setup_and_why_resolution` and `patches_tokens_real_vit`."""
    patch_sizes = list(patch_sizes)
    if not patch_sizes:
        raise ValueError("patch_sizes is empty")
    if sides is None:
        sides = np.arange(112, 1345, 8)
    sides = np.asarray(sides, dtype=np.int64)
    fig, (a1, a2) = plt.subplots(1, 2, figsize=(10.6, 4.4))
    for p in patch_sizes:
        n = _f.tokens_for_side(sides, p)
        a1.plot(sides, n, label=f"patch {p}")
        base = _f.tokens_for_side(224, p)
        a2.semilogy(sides, (n.astype(float) / base) ** 2, label=f"patch {p}")
    p0 = patch_sizes[0]
    for k, m in enumerate(marks):
        n = _f.tokens_for_side(int(m), p0)
        a1.plot([m], [n], "o", color="k", ms=4)
        below = k % 2 == 0  # alternate below-right / above-left, so that neighbouring marks never collide
        a1.annotate(f"{m}px: {n}", (m, n), textcoords="offset points", xytext=(6, -12) if below else (-6, 8),
                    fontsize=9.5, ha="left" if below else "right")
        r = (n / _f.tokens_for_side(224, p0)) ** 2
        a2.plot([m], [r], "o", color="k", ms=4)
        a2.annotate(f"{m}px: x{r:,.0f}", (m, r), textcoords="offset points", xytext=(8, -12), fontsize=9.5,
                    ha="left")
    a1.set_xlabel("image side (px), square image")
    a1.set_ylabel("patch tokens N = (side // patch)^2")
    a1.set_title("Tokens grow with the square of the side")
    a2.set_xlabel("image side (px), square image")
    a2.set_ylabel("attention pairs N^2, relative to 224 px")
    a2.set_title("Self-attention cost grows with the 4th power")
    for a in (a1, a2):
        a.legend(loc="upper left")
        a.grid(alpha=0.3)
    fig.tight_layout()
    return closed(fig)


# ---------------------------------------------------------------------------------------------------------
# `patches_tokens_real_vit`


def patch_grid(image: Image.Image, size=(224, 224), patch_size: int = 14, highlight: int = 6) -> Figure:
    """Left: ``image`` resized to ``size`` (width, height; multiples of ``patch_size``) with the patch grid
    drawn and the first ``highlight`` patches numbered in raster order. Right: those patches laid out as the
    start of the token sequence the ViT reads. Used by `patches_tokens_real_vit`."""
    image = check_pil(image)
    w, h = check_size(size, "size", max_aspect=None)
    p = check_positive_int("patch_size", patch_size)
    if w % p or h % p:
        raise ValueError(f"size {w}x{h} (width x height) must be a multiple of patch_size={p}")
    cols, rows = w // p, h // p
    highlight = max(0, min(int(highlight), rows * cols))
    arr = np.asarray(image.resize((w, h), Image.BICUBIC))
    fig, (a1, a2) = plt.subplots(1, 2, figsize=(11, 5), gridspec_kw={"width_ratios": [1, 1.3]})
    a1.imshow(arr, extent=(0, w, h, 0))
    for x in range(0, w + 1, p):
        a1.axvline(x, color="white", lw=0.5, alpha=0.8)
    for y in range(0, h + 1, p):
        a1.axhline(y, color="white", lw=0.5, alpha=0.8)
    for i in range(highlight):
        r, c = divmod(i, cols)
        a1.add_patch(Rectangle((c * p, r * p), p, p, fill=False, ec="red", lw=1.5))
        a1.text(c * p + p / 2, r * p + p / 2, str(i), color="yellow", ha="center", va="center", fontsize=9,
                fontweight="bold")
    a1.set_xlim(0, w)
    a1.set_ylim(h, 0)
    a1.set_title(f"{w}x{h} image, patch {p}: {cols} x {rows} = {rows * cols} tokens", fontsize=10)
    a1.set_xlabel("width (px)")
    a1.set_ylabel("height (px)")
    a2.set_title(f"token sequence (raster order): the first {highlight} of {rows * cols},\n"
                 "(row, col) under each", fontsize=10)
    for i in range(highlight):
        r, c = divmod(i, cols)
        a2.imshow(arr[r * p:(r + 1) * p, c * p:(c + 1) * p], extent=(i * 1.2, i * 1.2 + 1, 1, 0))
        a2.text(i * 1.2 + 0.5, 1.25, f"token {i}\n({r}, {c})", ha="center", va="top", fontsize=9)
    a2.text(highlight * 1.2 + 0.2, 0.5, "...", fontsize=16, va="center")
    a2.set_xlim(-0.2, highlight * 1.2 + 1)
    a2.set_ylim(1.9, -0.3)
    a2.set_aspect("equal")
    a2.axis("off")
    fig.tight_layout()
    return closed(fig)


def pos_embed_resize(original, resized, position=None, channels=(0, 1, 2)) -> Figure:
    """A learned position-embedding grid before and after resizing (e.g. DINOv2's 37x37 -> another grid with
    bicubic interpolation). Top row: cosine similarity of one position (default: the one a third of the way
    in) to all positions, before and after (the same relative position). Bottom row: a few channels as
    images, before and after. Smooth, similar-looking maps mean interpolation keeps the geometry.
    ``original`` / ``resized``: (rows, cols, D). Used by `patches_tokens_real_vit`."""
    a = as_grid(original, "original")
    b = as_grid(resized, "resized")
    if a.shape[-1] != b.shape[-1]:
        raise ValueError(f"channel counts differ: {a.shape[-1]} vs {b.shape[-1]}")
    channels = list(channels)
    if any(not 0 <= c < a.shape[-1] for c in channels):
        raise ValueError(f"channels {channels} outside 0..{a.shape[-1] - 1}")
    if position is None:
        position = (a.shape[0] // 3, a.shape[1] // 3)
    r, c = position
    rb = min(b.shape[0] - 1, int(round(r * (b.shape[0] - 1) / max(1, a.shape[0] - 1))))
    cb = min(b.shape[1] - 1, int(round(c * (b.shape[1] - 1) / max(1, a.shape[1] - 1))))
    fig = plt.figure(figsize=(min(10.8, 3.0 * (1 + len(channels))), 6.6), layout="constrained")
    gs = fig.add_gridspec(2, 1 + len(channels))
    sa = _f.position_similarity(a, (r, c))
    sb = _f.position_similarity(b, (rb, cb))
    lo = float(min(sa.min(), sb.min()))
    ax = fig.add_subplot(gs[0, 0])
    im = ax.imshow(_np(sa), cmap="viridis", vmin=lo, vmax=1)
    ax.plot([c], [r], "r+", ms=10)
    ax.set_title(f"original {a.shape[0]}x{a.shape[1]}\ncos sim to (row {r}, col {c})", fontsize=10)
    ax0 = ax
    ax = fig.add_subplot(gs[1, 0])
    ax.imshow(_np(sb), cmap="viridis", vmin=lo, vmax=1)
    ax.plot([cb], [rb], "r+", ms=10)
    ax.set_title(f"resized {b.shape[0]}x{b.shape[1]}\ncos sim to (row {rb}, col {cb})", fontsize=10)
    fig.colorbar(im, ax=[ax0, ax], location="left", shrink=0.7, label="cosine similarity")
    for j, ch in enumerate(channels):
        lo = float(torch.minimum(a[..., ch].min(), b[..., ch].min()))
        hi = float(torch.maximum(a[..., ch].max(), b[..., ch].max()))
        for i, (g, name) in enumerate(((a, "original"), (b, "resized"))):
            ax = fig.add_subplot(gs[i, 1 + j])
            ax.imshow(_np(g[..., ch]), cmap="coolwarm", vmin=lo, vmax=hi)
            ax.set_title(f"{name}: channel {ch}", fontsize=10)
    for ax in fig.axes:
        if ax.get_label() != "<colorbar>":
            ax.set_xlabel("col", fontsize=9.5)
            ax.set_ylabel("row", fontsize=9.5)
    fig.suptitle(f"Position embedding {a.shape[0]}x{a.shape[1]} -> {b.shape[0]}x{b.shape[1]}: "
                 "interpolation keeps the spatial pattern", fontsize=11)
    return closed(fig)


def _draw_map(ax, rgb: np.ndarray, fmap=None, title: str = "", borders: bool = True):
    """Show a (rows, cols, 3) map in patch coordinates; tile borders dashed, padding hatched."""
    rows, cols = rgb.shape[:2]
    ax.imshow(rgb, extent=(0, cols, rows, 0), interpolation="nearest")
    if fmap is not None and borders:
        for c in fmap.tile_cols:
            ax.axvline(c, color="white", lw=1.6, ls="--")
        for r in fmap.tile_rows:
            ax.axhline(r, color="white", lw=1.6, ls="--")
    if fmap is not None and fmap.padding is not None and bool(fmap.padding.any()):
        _shade_padding(ax, _np(fmap.padding))
    ax.set_xlim(0, cols)
    ax.set_ylim(rows, 0)
    ax.set_title(title, fontsize=10)
    ax.set_xlabel(f"{cols} patch columns", fontsize=10)
    ax.set_ylabel(f"{rows} patch rows", fontsize=10)
    ax.xaxis.set_major_locator(MaxNLocator(integer=True))  # patch indices are whole numbers
    ax.yaxis.set_major_locator(MaxNLocator(integer=True))
    ax.tick_params(labelsize=10)


def _shade_padding(ax, pad: np.ndarray):
    """Grey, hatched overlay on the patches of a (rows, cols) bool mask (padding)."""
    rows, cols = pad.shape
    over = np.zeros((rows, cols, 4))
    over[pad] = (0.25, 0.25, 0.25, 0.6)
    ax.imshow(over, extent=(0, cols, rows, 0), interpolation="nearest")
    xs, ys = np.arange(cols) + 0.5, np.arange(rows) + 0.5
    ax.contourf(xs, ys, pad.astype(float), levels=[0.5, 1.5], colors="none", hatches=["//"])


def pca_map(image: Image.Image, features, title: str | None = None, foreground: bool = False) -> Figure:
    """``image`` beside the PCA-RGB picture of its patch features (``features.pca_rgb``; a FeatureMap or
    (rows, cols, D); ``foreground=True``: the DINOv2 paper's background removal, background black). Real
    DINOv2 features colour each object part consistently: similar colour = similar feature.
    Used by `patches_tokens_real_vit`."""
    image = check_pil(image)
    rgb = pca_rgb([as_grid(features)], foreground=foreground)[0]
    fmap = features if isinstance(features, _f.FeatureMap) else None
    fig, (a1, a2) = plt.subplots(1, 2, figsize=(10, 4.6))
    a1.imshow(image)
    a1.set_title(f"image {image.width}x{image.height} (width x height)", fontsize=10)
    _off(a1)
    rows, cols = rgb.shape[:2]
    _draw_map(a2, rgb, fmap, f"PCA of {rows}x{cols} = {rows * cols} patch features -> RGB")
    fig.suptitle(title or "Patch features as colours: the first 3 principal components", fontsize=11)
    fig.tight_layout()
    return closed(fig)


# ---------------------------------------------------------------------------------------------------------
# `tiling_vs_packing` (and `llava_mini`): tiled vs native


def seams_comparison(image: Image.Image, tiled, native, show_edges: bool = True,
                     title: str | None = None) -> Figure:
    """Tiling (切图) vs native resolution on real features. ``tiled``: ``features.encode_tiled`` (each tile
    encoded alone, stitched back into the canvas layout); ``native``: ``features.encode_native`` (the whole
    image in one pass). Top row: the image with the tile borders, the tiled PCA map (tile borders dashed,
    padding hatched) and the native PCA map -- ONE PCA fitted on both, so equal colours mean equal features.
    Bottom row (``show_edges``): the cosine distance between neighbouring patches; the tiled map shows bright
    lines exactly at the tile borders (seams), the native map does not. Seam contrast numbers in the titles.
    Used by `tiling_vs_packing` and `llava_mini`."""
    image = check_pil(image)
    for name, fm in (("tiled", tiled), ("native", native)):
        if not isinstance(fm, _f.FeatureMap):
            raise TypeError(f"{name} must be a FeatureMap (features.encode_tiled / encode_native), "
                            f"got {type(fm).__name__}")
    rgb_t, rgb_n = pca_rgb([tiled.features, native.features])  # one PCA fitted on both maps
    nrows = 2 if show_edges else 1
    fig, axes = plt.subplots(nrows, 3, figsize=(10.8, 4.0 * nrows), squeeze=False, layout="constrained")
    ax = axes[0, 0]
    ax.imshow(image)
    xs, ys = _f.borders_in_image(tiled)
    for x in xs:
        ax.axvline(x, color="red", lw=1.5, ls="--")
    for y in ys:
        ax.axhline(y, color="red", lw=1.5, ls="--")
    ax.set_title(f"image {image.width}x{image.height}; red = tile borders", fontsize=10)
    _off(ax)
    has_borders = bool(tiled.tile_rows or tiled.tile_cols)
    st = _f.seam_contrast(tiled, tiled.tile_rows, tiled.tile_cols) if has_borders else None
    sn = _f.seams_at_image_borders(native, tiled, image.size) if has_borders else None
    _draw_map(axes[0, 1], rgb_t, tiled, f"tiled: {tiled.label}\n{tiled.num_tokens} tokens, each tile alone"
              + (f"\nseam ratio {st['ratio']:.2f}" if st else ""))
    _draw_map(axes[0, 2], rgb_n, native, f"whole image: {native.label}\n{native.num_tokens} tokens, one pass"
              + (f"\nratio at the same places {sn['ratio']:.2f}" if sn else ""))
    if show_edges:
        et, en = _np(_f.edge_map(tiled)), _np(_f.edge_map(native))
        vmax = float(np.quantile(np.concatenate([et.ravel(), en.ravel()]), 0.99))
        axes[1, 0].axis("off")
        padded = any(fm.padding is not None and bool(fm.padding.any()) for fm in (tiled, native))
        axes[1, 0].text(0.02, 0.5, "Bottom row: cosine distance between\n"
                        "neighbouring patches (bright = jump).\n\n"
                        "Tiled: bright lines at tile borders =\nseams (a tile never saw its neighbour).\n"
                        "Whole image: jumps only at object edges.\n\nseam ratio = mean distance across\n"
                        "borders / elsewhere (1 = no seam)"
                        + (";\nhatched padding is left out." if padded else "."), fontsize=10, va="center")
        for ax, e, fm, name in ((axes[1, 1], et, tiled, "tiled"), (axes[1, 2], en, native, "whole image")):
            rows, cols = e.shape
            im = ax.imshow(e, extent=(0, cols, rows, 0), cmap="magma", vmin=0, vmax=vmax,
                           interpolation="nearest")
            if fm.padding is not None and bool(fm.padding.any()):
                _shade_padding(ax, _np(fm.padding))
            if fm is tiled:
                for c in fm.tile_cols:  # inside the frame, at its top and left edges
                    ax.plot([c, c], [0, 0.05 * rows], color="cyan", lw=3)
                for r in fm.tile_rows:
                    ax.plot([0, 0.05 * cols], [r, r], color="cyan", lw=3)
            ax.set_xlim(0, cols)
            ax.set_ylim(rows, 0)
            ax.set_title(f"{name}: neighbour cosine distance" + ("\n(cyan ticks = tile borders)"
                         if fm is tiled else ""), fontsize=10)
            ax.tick_params(labelsize=10)
        fig.colorbar(im, ax=axes[1, 1:].tolist(), shrink=0.8, label="1 - cos")
    fig.suptitle(title or "Tiling vs native: seams appear where tiles meet "
                 "(one joint PCA, comparable colours)", fontsize=12)
    return closed(fig)


def token_budget_bars(rows, title: str | None = None) -> Figure:
    """Stacked bars per image (one panel each) and method: encoder tokens on real content (useful), on
    padding and on the duplicated global thumbnail (全局缩略图), with the LLM tokens as a black diamond.
    ``rows`` = ``features.token_budget(images, methods)`` (method ``"packing"`` = 打包 at native
    resolution). Used by `tiling_vs_packing`."""
    rows = list(rows)
    if not rows:
        raise ValueError("rows is empty: pass features.token_budget(images, methods)")
    images = list(dict.fromkeys(r["image"] for r in rows))
    n = len(images)
    ncols = min(3, n)
    nr = (n + ncols - 1) // ncols
    fig, axes = plt.subplots(nr, ncols, figsize=(5.2 * ncols, 4.2 * nr), squeeze=False)
    ymax = max(max(r["encoder_tokens"], r["llm_tokens"]) for r in rows) * 1.12
    for k, name in enumerate(images):
        ax = axes[k // ncols, k % ncols]
        sub = [r for r in rows if r["image"] == name]
        x = np.arange(len(sub))
        u = np.array([r["useful"] for r in sub])
        p = np.array([r["padding"] for r in sub])
        d = np.array([r["duplicated"] for r in sub])
        ax.bar(x, u, color=USEFUL, label="useful (content)")
        ax.bar(x, p, bottom=u, color=PADDING, hatch="//", edgecolor="grey", label="padding")
        ax.bar(x, d, bottom=u + p, color=DUPLICATED, label="thumbnail (duplicated)")
        ax.plot(x, [r["llm_tokens"] for r in sub], "kD", ms=6, label="LLM tokens")
        for xi, r in zip(x, sub):
            ax.text(xi, r["encoder_tokens"], f"{r['encoder_tokens']}", ha="center", va="bottom", fontsize=10)
        ax.set_xticks(x, [r["method"] for r in sub], rotation=35, ha="right", fontsize=10)
        w, h = sub[0]["size"]
        ax.set_title(f"{name} ({w}x{h}, width x height)", fontsize=10)
        ax.set_ylim(0, ymax)
        ax.set_ylabel("tokens")
        ax.grid(axis="y", alpha=0.3)
    for k in range(n, nr * ncols):
        axes[k // ncols, k % ncols].axis("off")
    handles, labels = axes[0, 0].get_legend_handles_labels()
    fig.legend(handles, labels, loc="lower center", ncol=4, fontsize=10, bbox_to_anchor=(0.5, 0.0))
    fig.suptitle(title or "Where the encoder tokens go: content vs padding vs duplicated thumbnail "
                 "(bars), and what the LLM receives (diamonds)", fontsize=11)
    fig.tight_layout(rect=(0, 0.07, 1, 1))
    return closed(fig)


# ---------------------------------------------------------------------------------------------------------
# `llava_mini`


def _compression_header(axes, image, g, pool, cls) -> object:
    """Top row of :func:`compression_map`: the image, what is compressed, DINOv2's CLS map (if given)."""
    axes[0].imshow(image)
    axes[0].set_title(f"image {image.width}x{image.height}", fontsize=10)
    _off(axes[0])
    rows, cols = g.shape[:2]
    note = (f"{rows}x{cols} = {rows * cols} patch tokens\n-> {pool.weights.shape[0]} token(s), queries "
            f"'{pool.kind}'\n(training-free stand-in for\nLLaVA-Mini's learned queries)")
    if cls is not None:
        note += ("\n\nright: DINOv2's own 1-token\nsummary, the CLS token\n(trained by self-distillation,"
                 "\nnot for an LLM)")
    axes[1].axis("off")
    axes[1].text(0.0, 0.5, note, fontsize=10, va="center")
    for ax in axes[2:]:
        ax.axis("off")
    if cls is None:
        return None
    s = _np(_f.cosine_map(g, cls))
    ax = axes[2]
    ax.axis("on")
    im = ax.imshow(s, extent=(0, cols, rows, 0), cmap="viridis", vmin=-1, vmax=1, interpolation="nearest")
    ax.set_title(f"CLS vs each patch\n(cosine, mean {s.mean():.2f})", fontsize=10)
    return im


def _compression_pair(ax_w, ax_s, g, fm, pool, j: int):
    """One query: its attention weights over the patch grid, and its token's cosine to every patch."""
    rows, cols = g.shape[:2]
    wmap = _np(pool.weights[j])
    ax_w.imshow(wmap, extent=(0, cols, rows, 0), cmap="inferno", interpolation="nearest")
    if fm is not None:
        for c in fm.tile_cols:
            ax_w.axvline(c, color="white", lw=1, ls="--")
        for r in fm.tile_rows:
            ax_w.axhline(r, color="white", lw=1, ls="--")
    ax_w.set_title(f"query {j}: attention\n(max {wmap.max():.3f}, sum 1)", fontsize=10)
    s = _np(_f.cosine_map(g, pool.pooled[j]))
    im = ax_s.imshow(s, extent=(0, cols, rows, 0), cmap="viridis", vmin=-1, vmax=1, interpolation="nearest")
    ax_s.set_title(f"token {j} vs each patch\n(cosine, mean {s.mean():.2f})", fontsize=10)
    return im


def compression_map(image: Image.Image, fmap, pool, cls=None, max_queries: int = 4, title: str | None = None
                    ) -> Figure:
    """Compression to very few tokens (LLaVA-Mini style, training-free stand-in). Top row: the image, what is
    compressed and (``cls``, optional) the cosine similarity of DINOv2's own CLS token to every patch. Then,
    for up to ``max_queries`` queries, two per row: the attention weights of that query over the patch grid
    (where the compressed token "looks") beside the cosine similarity of its compressed token to every patch.
    At most four panels a row (11 inches wide), so the text stays legible at notebook width. ``fmap``: a
    FeatureMap (e.g. the stitched 2x2 split); ``pool``: ``features.attention_pool(fmap, ...)``.
    Used by `llava_mini`."""
    image = check_pil(image)
    if not isinstance(pool, _f.PoolResult):
        raise TypeError(f"pool must be a PoolResult from features.attention_pool, got {type(pool).__name__}")
    g = as_grid(fmap)
    q = min(int(max_queries), pool.weights.shape[0])
    if q < 1:
        raise ValueError("max_queries must be >= 1")
    per_row = 1 if q == 1 else 2  # query pairs per row
    ncol, nrow = max(3, 2 * per_row), 1 + -(-q // per_row)
    fig, axes = plt.subplots(nrow, ncol, figsize=(2.7 * ncol, 2.9 * nrow + 0.7), squeeze=False,
                             layout="constrained")
    im = _compression_header(list(axes[0]), image, g, pool, cls)
    fm = fmap if isinstance(fmap, _f.FeatureMap) else None
    cos_axes = [axes[0, 2]] if cls is not None else []
    for j in range(q):
        r, k = divmod(j, per_row)
        ax_w, ax_s = axes[1 + r, 2 * k], axes[1 + r, 2 * k + 1]
        im = _compression_pair(ax_w, ax_s, g, fm, pool, j)
        cos_axes.append(ax_s)
    for r in range(1, nrow):
        for ax in axes[r, 2 * per_row if r < nrow - 1 else 2 * (q - (nrow - 2) * per_row):]:
            ax.axis("off")
    fig.colorbar(im, ax=cos_axes, shrink=0.6, label="cosine similarity")
    rows, cols = g.shape[:2]
    fig.suptitle(title or f"Compressing {rows * cols} patch tokens into {pool.weights.shape[0]}:\n"
                 "where each query looks, and what its token resembles", fontsize=11)
    return closed(fig)
