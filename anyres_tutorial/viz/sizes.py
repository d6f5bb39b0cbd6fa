"""Pictures of what native-resolution packing costs: each image at its native size under a rule, and the
memory of each attention-mask form as packed sequences grow.

Used by `navit_packing` and `grid_explorer` (the packing explorer); the numbers come from
:mod:`anyres_tutorial.packing` (``native_size``, ``mask_memory``). Sizes are (width, height).
"""

from __future__ import annotations

import numbers

import numpy as np
from matplotlib.figure import Figure

from ..lazy import lazy_module
from ..packing import sizing as _sizing
from .palette import fig_ax, subplots

_memory = lazy_module("anyres_tutorial.packing.memory")  # imported when the memory picture first needs it

__all__ = ["native_sizes", "mask_memory_plot"]


# ---------------------------------------------------------------------------------------------------------
# native sizes


def native_sizes(images, rule: str = "navit", *, names=None, title: str | None = None, **options) -> Figure:
    """Each image resized by a native-resolution ``rule`` (see :func:`anyres_tutorial.packing.native_size`),
    drawn at the same pixel scale with its patch grid, labelled input (W×H) → output (W×H) and the token grid.

    ``images``: PIL images (or ``(name, PIL)`` pairs); ``options`` go to the rule (``max_tokens``,
    ``max_pixels``, ...). The grid cell is the rule's unit: the patch (NaViT, SigLIP2, Pixtral) or the 28-px
    2×2 merged patch of Qwen2-VL. Used by `navit_packing` and `tiling_vs_packing`.
    """
    items = []
    for k, im in enumerate(images):
        name = None
        if isinstance(im, tuple) and len(im) == 2:
            name, im = im
        if not hasattr(im, "resize") or not hasattr(im, "size"):
            raise TypeError(f"images[{k}] must be a PIL image (or a (name, image) pair), "
                            f"got {type(im).__name__}")
        if names is not None:
            name = names[k]
        items.append((name if name is not None else f"image {k}", im))
    if not items:
        raise ValueError("images is empty")
    details = [_sizing.native_size_details(tuple(im.size), rule, **options) for _, im in items]
    widths = [d["size"][0] for d in details]
    hmax = max(d["size"][1] for d in details)
    total_w = sum(widths)
    fig_w = min(10.8, max(7.0, 2.2 * len(items)))
    eff = [max(w, 0.15 * total_w) for w in widths]  # narrow images get room for their labels
    fig_h = max(2.8, min(7.5, fig_w * hmax / sum(eff) + 1.2))
    fig, axes = subplots(1, len(items), figsize=(fig_w, fig_h), squeeze=False,
                         gridspec_kw=dict(width_ratios=eff))
    for ax, (name, im), d in zip(axes[0], items, details):
        W, H = d["size"]
        gh, gw = d["grid"]  # Grid(rows, cols)
        ax.imshow(np.asarray(im.convert("RGB").resize((W, H))), extent=(0, W, H, 0))
        cw, ch = W / gw, H / gh
        lw = 0.6 if gw * gh <= 400 else 0.3
        for x in range(1, gw):
            ax.axvline(x * cw, color="white", lw=lw, alpha=0.8)
        for y in range(1, gh):
            ax.axhline(y * ch, color="white", lw=lw, alpha=0.8)
        ax.set_xlim(0, max(W, 0.15 * total_w))
        ax.set_ylim(hmax, 0)
        ax.set_xticks([])
        ax.set_yticks([])
        for s in ax.spines.values():
            s.set_visible(False)
        iw, ih = d["input"]
        ax.set_title(f"{name}\n{iw}×{ih}\n→ {W}×{H}\n{gw}×{gh} = {d['tokens']} tok", fontsize=9.5, loc="left")
    unit = "28-px cells (2×2 merged 14-px patches)" if rule == "qwen2_vl" else "patches"
    opts = ", ".join(f"{k}={v}" for k, v in options.items())
    head = title if title is not None else f"Native resolution, rule {rule!r}"
    if title is None and opts:
        head += f" ({opts})"
    fig.suptitle(f"{head}\nsame pixel scale; grid = {unit}; sizes are width×height", fontsize=10)
    fig.get_layout_engine().set(h_pad=0.15)  # room between the suptitle and the four-line panel titles
    return fig


# ---------------------------------------------------------------------------------------------------------
# memory


def mask_memory_plot(num_images: int = 8, sizes=None, block_size: int = 128, ax=None) -> Figure:
    """Bytes of each mask form for one packed sequence of ``N`` tokens (``num_images`` equal images), over N,
    on log-log axes: dense bool and float32 (N²), FlexAttention BlockMask tables (+ segment ids), cu_seqlens.

    Numbers from :func:`anyres_tutorial.packing.mask_memory`. ``sizes``: the N values (default 256 … 262144).
    Used by `navit_packing` and `tiling_vs_packing`.
    """
    if isinstance(num_images, bool) or not isinstance(num_images, numbers.Integral) or num_images <= 0:
        raise ValueError(f"num_images must be a positive integer, got {num_images!r}")
    sizes = [2 ** k for k in range(8, 19)] if sizes is None else [int(s) for s in sizes]
    if not sizes or min(sizes) < num_images:
        raise ValueError(f"sizes must be non-empty and each at least num_images={num_images}")
    rows = []
    for N in sizes:
        base, extra = divmod(N, num_images)
        lengths = [base + (1 if i < extra else 0) for i in range(num_images)]
        rows.append(_memory.mask_memory(lengths, block_size=block_size))
    N = np.array([r["N"] for r in rows], dtype=float)
    series = [
        ("dense float32 mask (4·N²)", [r["dense_float32"] for r in rows], "#d62728", "-"),
        ("dense bool mask (N²)", [r["dense_bool"] for r in rows], "#ff7f0e", "-"),
        (f"BlockMask tables + segment ids (block {block_size})",
         [r["block_mask"] + r["block_segment_ids"] for r in rows], "#1a9641", "-"),
        ("cu_seqlens (4·(k+1))", [r["cu_seqlens"] for r in rows], "#1f77b4", "-"),
    ]
    fig, ax = fig_ax(ax, (7.5, 4.8))
    for label, ys, color, ls in series:
        ax.loglog(N, ys, marker="o", ms=3.5, color=color, ls=ls, label=label)
    for val, name in ((2 ** 20, "1 MiB"), (2 ** 30, "1 GiB")):
        ax.axhline(val, color="#888888", lw=0.8, ls=":")
        ax.text(N[-1], val * 1.25, name, fontsize=9, color="#555555", ha="right")
    ax.set_xlabel("N = tokens in the packed sequence")
    ax.set_ylabel("bytes")
    ax.set_title(f"Mask memory for one packed sequence of {num_images} images: dense masks grow as N²",
                 fontsize=10)
    ax.grid(True, which="major", alpha=0.3)
    ax.legend(fontsize=9, loc="upper left")
    return fig
