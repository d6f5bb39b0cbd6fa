"""Pictures of NaViT packing (打包): packed-sequence bars, block-diagonal masks (块对角掩码), position-id
maps and position-similarity maps (native sizes and mask memory: :mod:`.sizes`).

Every function returns a matplotlib ``Figure`` and never calls ``plt.show()``; single-panel pictures accept
``ax=`` so that the packing explorer (`grid_explorer`) can place them. The numbers come from
:mod:`anyres_tutorial.packing`; the pictures only lay them out.

Used by `navit_packing`, `positions`, `tiling_vs_packing` and `grid_explorer` (the packing explorer).
Sizes are (width, height) unless a name says ``hw``.
"""

from __future__ import annotations

import numbers

import matplotlib.pyplot as plt
import numpy as np
from matplotlib.colors import ListedColormap
from matplotlib.figure import Figure
from matplotlib.patches import Patch, Rectangle
from matplotlib.ticker import MaxNLocator

from ..lazy import lazy_module
from ..packing import packer as _packer
from .fit import OPTIONAL, short_form
from .palette import NEWLINE_COLOR, PAD_EDGE, PADDING, fig_ax, image_color, subplots

# imported when a picture first needs them: the explorers' pictures need neither torch nor the masks
torch = lazy_module("torch")
_features = lazy_module("anyres_tutorial.features")
_masks = lazy_module("anyres_tutorial.packing.masks")
_memory = lazy_module("anyres_tutorial.packing.memory")

__all__ = [
    "packed_rows",
    "packing_comparison",
    "mask_heatmap",
    "block_mask_view",
    "position_map",
    "position_similarity",
]

PAD_COLOR = PADDING  # padding slots (hatched): the one padding colour of every picture
WRONG_COLOR = NEWLINE_COLOR  # marks the "what goes wrong" panels
BLOCK_COLORS = {"empty": "#f7f7f7", "partial": "#fdae61", "full": "#1a9641"}


def _pct(x: float) -> str:
    return f"{100 * x:.1f}%"


def _text_px(text: str, size: float, dpi: float) -> float:
    """Width in pixels of the widest line of ``text`` at font ``size`` (points)."""
    from matplotlib.textpath import TextPath

    return max(TextPath((0, 0), line, size=size).get_extents().width for line in text.split("\n")) * dpi / 72


# ---------------------------------------------------------------------------------------------------------
# packed rows


def packed_rows(rows, lengths, max_len: int, ax=None, *, title: str | None = None, labels=None) -> Figure:
    """Packed rows as horizontal bars: one bar per row, one coloured segment per image, padding hatched grey.

    ``rows`` as returned by :func:`anyres_tutorial.packing.pack` (image indices per row, in slot order),
    ``lengths`` tokens per image, ``max_len`` the row length. ``labels`` optionally names the images (default
    their index). Each row's padding share is written at its right, the total in the title.
    Used by `navit_packing` and `grid_explorer`.
    """
    rep = _packer.padding_report(rows, lengths, max_len)  # validates rows / lengths / max_len
    lengths = [int(n) for n in lengths]
    if labels is not None and len(labels) != len(lengths):
        raise ValueError(f"got {len(labels)} labels for {len(lengths)} images")
    fig, ax = fig_ax(ax, (9, 0.55 * len(rows) + 1.4))
    bbox = ax.get_position()  # pixels per slot: a label is written only where it fits inside its segment
    px_per_slot = bbox.width * fig.get_figwidth() * fig.dpi / (max_len * 1.13)
    for r, row in enumerate(rows):
        x = 0
        for i in row:
            n = lengths[i]
            ax.add_patch(Rectangle((x, r - 0.4), n, 0.8, facecolor=image_color(i), edgecolor="white", lw=1.5,
                                   label=f"image {i}"))
            name = str(labels[i]) if labels is not None else f"#{i}"
            fits = [t for t in (f"{name}\n{n}", name, str(n))
                    if _text_px(t, 9, fig.dpi) <= 0.9 * n * px_per_slot]
            label = ax.text(x + n / 2, r, fits[0] if fits else "", ha="center", va="center", fontsize=9,
                            color="black", gid=OPTIONAL)  # a narrow picture: the name only, or nothing
            short_form(label, str(n) if fits and fits[0] == str(n) else name)
            x += n
        if x < max_len:
            ax.add_patch(Rectangle((x, r - 0.4), max_len - x, 0.8, facecolor=PAD_COLOR, edgecolor=PAD_EDGE,
                                   hatch="///", lw=0.8))
        ax.text(max_len * 1.01, r, f"pad {_pct(1 - rep['fill'][r])}", va="center", fontsize=9)
    ax.set_xlim(0, max_len * 1.13)
    ax.set_ylim(len(rows) - 0.5, -0.5)
    ax.set_yticks(range(len(rows)), [f"row {r}" for r in range(len(rows))])
    ax.set_xlabel(f"token slot (row length max_len = {max_len})")
    ax.axvline(max_len, color="black", lw=1, ls="--")
    ax.spines[["top", "right"]].set_visible(False)
    head = title if title is not None else "Packed rows"
    ax.set_title(f"{head}: {len(rows)} rows, padding {rep['padding']} of {rep['slots']} slots "
                 f"({_pct(rep['padding_fraction'])})", fontsize=10)
    return fig


def packing_comparison(lengths, max_len: int, strategies=("next_fit", "ffd"), *, labels=None) -> Figure:
    """The same images packed by each strategy, side by side (default next-fit vs first-fit-decreasing).

    Calls :func:`anyres_tutorial.packing.pack` once per strategy and draws each result with
    :func:`packed_rows`; the titles give rows and padding %. Used by `navit_packing` and `tiling_vs_packing`.
    """
    strategies = list(strategies)
    if not strategies:
        raise ValueError("strategies is empty")
    results = [(s, _packer.pack(lengths, max_len, s)) for s in strategies]
    nrows = max(len(r) for _, r in results)
    fig, axes = subplots(1, len(results), figsize=(min(10.8, 6.2 * len(results)), 0.55 * nrows + 1.8),
                         squeeze=False)
    names = {"next_fit": "next-fit (keeps order)", "ffd": "first-fit decreasing"}
    for ax, (s, rows) in zip(axes[0], results):
        packed_rows(rows, lengths, max_len, ax=ax, title=names.get(s, s), labels=labels)
        ax.set_ylim(nrows - 0.5, -0.5)
    fig.suptitle(f"{len(list(lengths))} images, {sum(int(n) for n in lengths)} tokens, rows of {max_len}: "
                 "fewer rows = less padding", fontsize=11)
    return fig


# ---------------------------------------------------------------------------------------------------------
# masks


def _segment_ids_of(seg_or_batch, row: int = 0) -> torch.Tensor:
    """Segment ids (N,) from a PackedBatch (one row), a tensor of segment ids, or a list of lengths."""
    if hasattr(seg_or_batch, "segment_ids"):
        seg = seg_or_batch.segment_ids
        if not 0 <= row < seg.shape[0]:
            raise ValueError(f"row={row} but the batch has {seg.shape[0]} rows")
        return seg[row].cpu()
    if isinstance(seg_or_batch, torch.Tensor):
        if seg_or_batch.ndim != 1:
            raise ValueError(f"segment ids must be 1-D, got shape {tuple(seg_or_batch.shape)}")
        return seg_or_batch.cpu()
    if isinstance(seg_or_batch, (list, tuple)):
        return _masks.segment_ids(seg_or_batch)  # a list of per-image lengths
    raise TypeError("expected a PackedBatch, a 1-D tensor of segment ids or a list of lengths, got "
                    f"{type(seg_or_batch).__name__}")


def _boundaries(seg: torch.Tensor) -> list[int]:
    """Token indices where the segment id changes (image boundaries, start of padding)."""
    s = seg.tolist()
    return [i for i in range(1, len(s)) if s[i] != s[i - 1]]


def mask_heatmap(seg_or_batch, row: int = 0, ax=None, *, title: str | None = None,
                 max_tokens: int = 512, image_ids=None) -> Figure:
    """The dense block-diagonal mask (块对角掩码) as an N×N picture: query token (row) may attend key
    (column).

    Allowed cells are coloured by image, forbidden cells white, padding rows/columns grey; image boundaries
    are drawn as lines. ``seg_or_batch``: a :class:`~anyres_tutorial.packing.PackedBatch` (row ``row``), a
    tensor of segment ids (-1 = padding) or a list of per-image lengths. The mask itself comes from
    :func:`anyres_tutorial.packing.masks.dense_mask`. Meant for small examples (N <= ``max_tokens``).
    ``image_ids``: the image index of each segment (segment ids count from 0 in every row; for a row of a
    packing, pass that row's image list), so that image k has its colour of :func:`packed_rows`; default:
    the row of a PackedBatch, else the segment ids themselves.
    Used by `navit_packing` and `grid_explorer`.
    """
    seg = _segment_ids_of(seg_or_batch, row)
    n = seg.numel()
    if n > max_tokens:
        raise ValueError(f"{n} tokens is too many to draw cell by cell (max_tokens={max_tokens}); use "
                         "block_mask_view for long sequences")
    mask = _masks.dense_mask(seg)  # (N, N) bool
    k = int(seg.max()) + 1 if bool((seg >= 0).any()) else 0
    ids = _segment_images(seg_or_batch, row, k, image_ids)
    # colour index: 0 = forbidden, 1 = padding, 2 + i = allowed inside image i
    code = np.zeros((n, n), dtype=int)
    pad = (seg < 0).numpy()
    code[pad, :] = 1
    code[:, pad] = 1
    code[mask.numpy()] = 2 + seg.clamp(min=0).numpy()[:, None].repeat(n, 1)[mask.numpy()]
    cmap = ListedColormap(["white", PAD_COLOR] + [image_color(i) for i in ids])
    fig, ax = fig_ax(ax, (5.6, 5.2))
    ax.imshow(code, cmap=cmap, vmin=-0.5, vmax=k + 1.5, interpolation="nearest")
    if n <= 64:  # one cell per token pair: show the token grid
        ax.set_xticks(np.arange(-0.5, n, 1), minor=True)
        ax.set_yticks(np.arange(-0.5, n, 1), minor=True)
        ax.grid(which="minor", color="#e0e0e0", lw=0.4)
        ax.tick_params(which="minor", length=0)
    for b in _boundaries(seg):
        ax.axhline(b - 0.5, color="black", lw=0.8)
        ax.axvline(b - 0.5, color="black", lw=0.8)
    # ticks at the centre of each image's block
    ticks, names = [], []
    for i in range(k):
        idx = torch.nonzero(seg == i).flatten()
        ticks.append(float(idx.float().mean()))
        names.append(f"img {ids[i]}\n({idx.numel()})")
    if pad.any():
        ticks.append(float(np.nonzero(pad)[0].mean()))
        names.append(f"pad\n({int(pad.sum())})")
    ax.set_xticks(ticks, names, fontsize=10 if k <= 6 else 9)
    ax.set_yticks(ticks, [s.replace("\n", " ") for s in names], fontsize=10 if k <= 6 else 9)
    ax.set_xlabel("key token j")
    ax.set_ylabel("query token i")
    allowed = int(mask.sum())
    head = title if title is not None else "Block-diagonal mask"
    ax.set_title(f"{head}\nN = {n}: {allowed} of {n * n} pairs allowed ({_pct(allowed / (n * n))})",
                 fontsize=10)
    handles = [Patch(facecolor="white", edgecolor="black", label="masked (other image)")]
    if pad.any():
        handles.append(Patch(facecolor=PAD_COLOR, label="padding (never attends, never attended)"))
    ax.legend(handles=handles, loc="upper right", fontsize=9, framealpha=0.9)
    return fig


def _segment_images(seg_or_batch, row: int, k: int, image_ids) -> list[int]:
    """The image index of each of the ``k`` segments of a row (see :func:`mask_heatmap`)."""
    if image_ids is None:
        rows = getattr(seg_or_batch, "rows", None)
        image_ids = rows[row] if rows is not None else range(k)
    ids = [int(i) for i in image_ids]
    if len(ids) != k or any(i < 0 for i in ids):
        raise ValueError(f"image_ids must give one non-negative image index per segment ({k}), got {ids}")
    return ids


def _kv_table(num_blocks: torch.Tensor, indices: torch.Tensor, n: int) -> np.ndarray:
    """(n, n) bool table from BlockMask's (num_blocks, indices) pair of one batch/head."""
    out = np.zeros((n, n), dtype=bool)
    nb = num_blocks.reshape(-1, num_blocks.shape[-1])[0]  # (n,)
    ind = indices.reshape(-1, *indices.shape[-2:])[0]  # (n, n)
    for q in range(n):
        out[q, ind[q, : int(nb[q])].tolist()] = True
    return out


def block_mask_view(seg_or_batch, block_size: int = 128, row: int = 0, ax=None, *,
                    title: str | None = None, compile: bool = False) -> Figure:
    """What a FlexAttention ``BlockMask`` stores: each ``block_size``×``block_size`` tile of the attention
    matrix is *full* (computed without a mask), *partial* (computed, mask_mod applied per element) or *empty*
    (skipped). Image boundaries are drawn in token units scaled to blocks.

    The BlockMask comes from :func:`anyres_tutorial.packing.masks.flex_block_mask` (``compile=False``: the
    eager builder, fine for a picture). Accepts a PackedBatch (row ``row``), segment ids or a list of lengths.
    Used by `navit_packing`.
    """
    seg = _segment_ids_of(seg_or_batch, row)
    bm = _masks.flex_block_mask(seg, block_size=block_size, compile=compile)
    n_q = bm.kv_num_blocks.shape[-1]
    n_kv = bm.kv_indices.shape[-1]
    n = max(n_q, n_kv)
    partial = _kv_table(bm.kv_num_blocks, bm.kv_indices, n)
    full = np.zeros_like(partial)
    if bm.full_kv_num_blocks is not None:
        full = _kv_table(bm.full_kv_num_blocks, bm.full_kv_indices, n)
    code = np.where(full, 2, np.where(partial, 1, 0))[:n_q, :n_kv]  # 0 empty, 1 partial, 2 full
    fig, ax = fig_ax(ax, (5.6, 5.2))
    cmap = ListedColormap([BLOCK_COLORS["empty"], BLOCK_COLORS["partial"], BLOCK_COLORS["full"]])
    ax.imshow(code, cmap=cmap, vmin=-0.5, vmax=2.5, interpolation="nearest")
    ax.set_xticks(np.arange(-0.5, n_kv, 1), minor=True)
    ax.set_yticks(np.arange(-0.5, n_q, 1), minor=True)
    ax.grid(which="minor", color="#bbbbbb", lw=0.5)
    ax.tick_params(which="minor", length=0)
    for b in _boundaries(seg):
        ax.axhline(b / block_size - 0.5, color="black", lw=1.2)
        ax.axvline(b / block_size - 0.5, color="black", lw=1.2)
    nf, npart = int((code == 2).sum()), int((code == 1).sum())
    total = code.size
    ax.set_xlabel(f"key block ({block_size} tokens each)")
    ax.set_ylabel(f"query block ({block_size} tokens each)")
    head = title if title is not None else "FlexAttention BlockMask"
    ax.set_title(f"{head}: N = {seg.numel()}, {n_q}×{n_kv} blocks\n"
                 f"full {nf}, partial {npart}, empty {total - nf - npart}: computes "
                 f"{nf + npart} of {total} blocks ({_pct((nf + npart) / total)})", fontsize=10)
    ax.legend(handles=[Patch(facecolor=BLOCK_COLORS[k], edgecolor="#888888", label=k)
                       for k in ("full", "partial", "empty")] +
              [plt.Line2D([], [], color="black", lw=1.2, label="image boundary")],
              loc="upper right", fontsize=9, framealpha=0.9)
    return fig


# ---------------------------------------------------------------------------------------------------------
# positions


def _continuing_positions(batch, row: int) -> tuple[np.ndarray, np.ndarray]:
    """The WRONG positions one gets by not restarting per image (for contrast only): (1-D slot index, row id
    that keeps counting from the previous image's last row)."""
    seg = batch.segment_ids[row].cpu()
    real = (seg >= 0).numpy()
    slot = np.where(real, np.arange(seg.numel()), -1)
    rows_cont = batch.positions[row, :, 0].cpu().numpy().copy()
    offset = 0
    for i in batch.rows[row]:
        sel = (batch.image_ids[row].cpu() == i).numpy()
        rows_cont[sel] += offset
        offset += batch.grids[i][0]
    rows_cont[~real] = -1
    return slot, rows_cont


def position_map(batch, row: int = 0, *, show_wrong: bool = True, annotate: bool | None = None) -> Figure:
    """Per-token position ids of one packed row, as strips: image id, patch row, patch column — restarting
    at (0, 0) for every image — and (``show_wrong``) what "continuing" positions would look like: the 1-D slot
    index and a row id that keeps counting across images (the bug: image 2 would look like the bottom part of
    image 1). Padding is grey. ``batch`` is a :class:`~anyres_tutorial.packing.PackedBatch`.
    Used by `navit_packing` and `positions`.
    """
    if not hasattr(batch, "positions"):
        raise TypeError(f"position_map needs a PackedBatch, got {type(batch).__name__}")
    if not 0 <= row < batch.num_rows:
        raise ValueError(f"row={row} but the batch has {batch.num_rows} rows")
    seg = batch.segment_ids[row].cpu()
    pad = (seg < 0).numpy()
    n = seg.numel()
    strips = [("image id", batch.image_ids[row].cpu().numpy(), "tab20", False),
              ("patch row", batch.positions[row, :, 0].cpu().numpy(), "viridis", False),
              ("patch col", batch.positions[row, :, 1].cpu().numpy(), "viridis", False)]
    if show_wrong:
        slot, rows_cont = _continuing_positions(batch, row)
        strips += [("WRONG: 1-D index\ncontinuing", slot, "magma", True),
                   ("WRONG: row id\ncontinuing", rows_cont, "viridis", True)]
    if annotate is None:
        annotate = n <= 48
    fig, axes = subplots(len(strips), 1, figsize=(min(10.8, max(7, 0.28 * n)), 0.9 * len(strips) + 1.1),
                         sharex=True)
    bounds = _boundaries(seg)
    for ax, (name, vals, cmap_name, wrong) in zip(axes, strips):
        vals = np.asarray(vals, dtype=float)
        shown = np.ma.masked_where(pad, vals)
        cmap = plt.get_cmap(cmap_name).with_extremes(bad=PAD_COLOR)
        if name == "image id":
            k = max(batch.rows[row]) + 1
            cmap = ListedColormap([image_color(i) for i in range(k)]).with_extremes(bad=PAD_COLOR)
            ax.imshow(shown[None, :], aspect="auto", cmap=cmap, vmin=-0.5, vmax=k - 0.5,
                      interpolation="nearest")
        else:
            vmax = max(1.0, float(vals[~pad].max())) if (~pad).any() else 1.0
            ax.imshow(shown[None, :], aspect="auto", cmap=cmap, vmin=0, vmax=vmax, interpolation="nearest")
        if annotate:
            top = max(1.0, float(vals[~pad].max())) if (~pad).any() else 1.0
            for j in range(n):
                if not pad[j]:
                    light = name == "image id" or vals[j] / top > 0.6  # bright cell: dark text
                    ax.text(j, 0, str(int(vals[j])), ha="center", va="center", fontsize=9,
                            color="black" if light else "white")
        for b in bounds:
            ax.axvline(b - 0.5, color="black", lw=1.5)
        ax.set_yticks([0], [name], fontsize=9, color=WRONG_COLOR if wrong else "black")
        if wrong:
            for s in ax.spines.values():
                s.set_edgecolor(WRONG_COLOR)
                s.set_linewidth(1.5)
    axes[-1].set_xlabel("token slot in the packed row (grey = padding)")
    grids = ", ".join(f"img {i}: {batch.grids[i][0]}×{batch.grids[i][1]}" for i in batch.rows[row])
    fig.suptitle(f"Position ids restart at (0, 0) for every image — grids (rows×cols) {grids}", fontsize=10)
    return fig


def position_similarity(vectors, query, ax=None, *, title: str | None = None, metric: str = "cosine",
                        cmap: str = "RdBu_r") -> Figure:
    """Similarity of the position at ``query`` = (row, col) to every position of a grid, as a heat map.

    ``vectors`` is (rows, cols, D): one position vector per grid cell, e.g. DINOv2's learned position
    embedding (resized), NaViT's factorised φx + φy, or a 2-D RoPE rotated query/key. ``metric``:
    ``"cosine"`` (learned embeddings) or ``"dot"`` (RoPE: the attention logit between identical content at
    two positions depends only on their offset). Used by `positions`.
    """
    v = torch.as_tensor(vectors).detach().float().cpu()
    if v.ndim != 3:
        raise ValueError(f"vectors must be (rows, cols, D), got shape {tuple(v.shape)}")
    gh, gw = v.shape[:2]
    r, c = query
    if not (isinstance(r, numbers.Integral) and isinstance(c, numbers.Integral)) \
            or not (0 <= r < gh and 0 <= c < gw):
        raise ValueError(f"query (row, col) = {query!r} is outside the {gh}×{gw} grid")
    if metric == "cosine":
        sims = _features.position_similarity(v, (r, c))  # (rows, cols)
        vmin, vmax = -1.0, 1.0
    elif metric == "dot":
        sims = v @ v[r, c]  # (rows, cols)
        m = float(sims.abs().max())
        vmin, vmax = -m, m
    else:
        raise ValueError(f"metric must be 'cosine' or 'dot', got {metric!r}")
    fig, ax = fig_ax(ax, (5.6, 4.4 * gh / max(gw, 1) + 1.0))
    im = ax.imshow(sims.reshape(gh, gw).numpy(), cmap=cmap, vmin=vmin, vmax=vmax, interpolation="nearest")
    ax.plot([c], [r], marker="*", color="gold", markersize=14, markeredgecolor="black")
    ax.set_xlabel("patch col")
    ax.set_ylabel("patch row")
    ax.xaxis.set_major_locator(MaxNLocator(integer=True))  # patch indices are whole numbers
    ax.yaxis.set_major_locator(MaxNLocator(integer=True))
    ax.set_title(title if title is not None else f"{metric} similarity to position ★ {tuple(query)}",
                 fontsize=10)
    fig.colorbar(im, ax=ax, shrink=0.8)
    return fig
