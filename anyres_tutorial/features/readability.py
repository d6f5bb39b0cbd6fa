"""Can a reader read what the encoder is given? Text lines cut from each view's pixels, read by a recognizer.

Part of :mod:`anyres_tutorial.features`; taught in `tiling_vs_packing`.

- :func:`text_lines`, :func:`text_pieces`, :func:`sample_pieces`: the text a synthetic image draws
  (:func:`~.legibility.print_sizes`) grouped into lines, lines cut into pieces of a few words, and an even
  sample of pieces per print size: the ground truth.
- :func:`encoder_views`: for each row of :func:`~.equal_budget.equal_budget`, the pixels its encoder is
  given (the method's own ``tiling.apply``: tiles pasted back at their grid places, and each global view;
  packing's resize), plus the source pixels, each with the map from source boxes into it; :func:`packed_view`
  for any packed size.
- :func:`line_image`: a piece's box cut from a view and brought to the recognizer's line height (48 px).
- :func:`read_piece`, :func:`readability`: a piece, every sampled piece, read in every view and scored
  (:mod:`.reader`); :func:`summarise`, :func:`format_readability`: mean character accuracy, words correct
  and x-height in patches per view and print size.
- :func:`rule_of_thumb`: accuracy against x-height in patches, a monotone fit, and where it crosses 50% / 90%;
  :func:`scale_sweep`: one line read at a series of scales.

What this measures is the information left in the encoder's input pixels: an upper bound on what an encoder of
that resolution could read. DINOv2 itself is not a text reader. Boxes are (left, top, right, bottom).
"""

from __future__ import annotations

import functools
import math

import numpy as np
from PIL import Image

from ..checks import check_number, check_positive_int, check_size
from ..types import PATCH
from .equal_budget import TILED, patch_pitch, tile_regions
from .legibility import print_sizes, x_height
from .reader import char_accuracy, load_reader, words_correct

SOURCE = "source"  # the view of the source pixels, the ceiling (no row of equal_budget)
PAD = 0.25  # margin around a piece's ink box, in font sizes, on every side
PIECE_CHARS = 24  # a piece: consecutive words of one line, at most this many characters (one word at least)
MAX_CHARS = 120  # characters sampled of the body text and of the smallest print, per image


# ---------------------------------------------------------------------------------------------------------
# the ground truth: lines and pieces


def _union(boxes) -> tuple:
    return (min(b[0] for b in boxes), min(b[1] for b in boxes), max(b[2] for b in boxes),
            max(b[3] for b in boxes))


def text_lines(name: str) -> list[dict]:
    """The lines of text a synthetic image draws: its recorded text calls (:func:`print_sizes`) of one font
    size whose boxes overlap vertically by at least half the smaller height, left to right, split where the
    gap exceeds 1.5 font sizes (a column gutter, a table cell). Each: size, text (words joined by one space),
    box (ink box), words ((text, box) per call), x_src (x-height in source px). Top to bottom, then left to
    right."""
    return [dict(d) for d in _lines(name)]


@functools.cache
def _lines(name: str) -> tuple:
    """The lines of :func:`text_lines`, computed once per image."""
    rows: list[dict] = []
    for r in sorted(print_sizes(name)["records"], key=lambda r: (r["size"], r["box"][1] + r["box"][3])):
        b = r["box"]
        for row in rows:
            lb = row["box"]
            if row["size"] == r["size"] and (min(lb[3], b[3]) - max(lb[1], b[1])
                                             >= 0.5 * min(lb[3] - lb[1], b[3] - b[1])):
                row["calls"].append(r)
                row["box"] = _union([lb, b])
                break
        else:
            rows.append(dict(size=r["size"], calls=[r], box=b))
    lines = []
    for row in rows:
        calls = sorted(row["calls"], key=lambda r: r["box"][0])
        groups = [[calls[0]]]
        for r in calls[1:]:
            if r["box"][0] - groups[-1][-1]["box"][2] > 1.5 * row["size"]:
                groups.append([])
            groups[-1].append(r)
        for g in groups:
            words = [(" ".join(r["text"].split()), r["box"]) for r in g if r["text"].split()]
            if words:
                lines.append(dict(size=row["size"], text=" ".join(w for w, _ in words),
                                  box=_union([b for _, b in words]), words=words,
                                  x_src=x_height(row["size"])))
    return tuple(sorted(lines, key=lambda d: (d["box"][1], d["box"][0])))


def text_pieces(name: str, piece_chars: int = PIECE_CHARS) -> list[dict]:
    """Every line of :func:`text_lines` cut into pieces of consecutive drawn words (a call that drew several
    words stays whole) of at most ``piece_chars`` characters. Each: size, text, box, x_src, line (index)."""
    piece_chars = check_positive_int("piece_chars", piece_chars)
    out = []
    for i, ln in enumerate(text_lines(name)):
        cur: list = []
        for w in ln["words"]:
            if cur and len(" ".join(t for t, _ in cur + [w])) > piece_chars:
                out.append(_piece(ln, cur, i))
                cur = []
            cur.append(w)
        out.append(_piece(ln, cur, i))
    return out


def _piece(line, words, i) -> dict:
    return dict(size=line["size"], text=" ".join(t for t, _ in words), box=_union([b for _, b in words]),
                x_src=line["x_src"], line=i)


def sample_pieces(name: str, max_chars: int | None = MAX_CHARS, piece_chars: int = PIECE_CHARS,
                  all_sizes: bool = False) -> list[dict]:
    """The pieces to read of the body text and the smallest print (:func:`print_sizes`; every print size
    with ``all_sizes``): per size, pieces spread evenly over the image (every k-th in reading order) until
    they hold ``max_chars`` characters (spaces not counted; at least one piece); ``max_chars=None``: all."""
    pieces = text_pieces(name, piece_chars)
    info = print_sizes(name)
    sizes = sorted(info["chars"]) if all_sizes else sorted({info["smallest"], info["body"]})
    if max_chars is not None:
        max_chars = check_positive_int("max_chars", max_chars)
    out = []
    for size in sizes:
        same = [p for p in pieces if p["size"] == size]
        if max_chars is None:
            out += same
            continue
        chars = [len("".join(p["text"].split())) for p in same]
        n = 1
        while n < len(same) and sum(chars[round(k)] for k in np.linspace(0, len(same) - 1, n)) < max_chars:
            n += 1
        out += [same[round(k)] for k in np.linspace(0, len(same) - 1, n)]
    return sorted(out, key=lambda p: (p["box"][1], p["box"][0]))


# ---------------------------------------------------------------------------------------------------------
# the views: what each row's encoder is given


def _view(row, part, label, image, regions, patch_px, source_size, name=None) -> dict:
    return dict(row=row, image_name=name if row is None else row["image"], source_size=tuple(source_size),
                method=None if row is None else row["method"], view=SOURCE if row is None else row["view"],
                part=part, label=label, pixels=image, regions=regions, patch_px=float(patch_px))


def encoder_views(image, rows: list[dict], source: bool = True) -> list[dict]:
    """The pixels each row of :func:`~.equal_budget.equal_budget` (all of one image, of ``image``'s size)
    hands its encoder, as views: a tiled row gives "tiles" (``tiling.apply``'s tiles pasted at their grid
    places, when it has tiles) and one "global view" per global view; a packed row gives "packed" (the image
    resized with BICUBIC to its ``encoder_size``); ``source=True`` adds the source pixels first (part
    "source"). Each view: row, image_name, method, view, part, label, pixels (PIL image), regions ((source
    box, box in ``pixels``) pairs, one per tile), patch_px, source_size."""
    from .. import tiling
    from ..tiling.base import to_rgb_image

    image = to_rgb_image(image)
    rows = list(rows)
    if not rows:
        raise ValueError("rows is empty: pass equal_budget(...) rows of this image")
    w, h = image.size
    if len({r["image"] for r in rows}) != 1:
        raise ValueError("rows must all be of one image: pass [r for r in rows if r['image'] == name]")
    out = [_view(None, SOURCE, "source pixels", image, [((0, 0, w, h), (0, 0, w, h))], PATCH, (w, h),
                 rows[0]["image"])] if source else []
    for r in rows:
        if tuple(r["size"]) != image.size:
            raise ValueError(f"row for {r['image']!r} has size {tuple(r['size'])}, image is {image.size}")
        if r["view"] != TILED:
            out.append(dict(packed_view(image, r["encoder_size"], r["image"], r["label"]), row=r,
                            method=r["method"], view=r["view"]))
            continue
        pl = tiling.plan(r["method"], image.size, **r["options"])
        got, t = tiling.apply(pl, image), pl.tile_size
        regions = tile_regions(pl)
        if regions:
            rows_, cols_ = pl.grid
            mosaic = Image.new("RGB", (cols_ * t, rows_ * t), (255, 255, 255))
            for im, (i, j) in zip(got.tiles, pl.tile_positions):
                mosaic.paste(im, (j * t, i * t))
            placed = []
            for src, enc, k in regions:
                i, j = pl.tile_positions[k]
                placed.append((src, (enc[0] + j * t, enc[1] + i * t, enc[2] + j * t, enc[3] + i * t)))
            out.append(_view(r, "tiles", f"{r['method']}: tiles", mosaic, placed, patch_pitch(pl),
                             (w, h)))
        for n, (v, im) in enumerate(zip(pl.global_views, got.global_views)):
            name = "global view" if len(pl.global_views) == 1 else f"global view {n + 1}"
            out.append(_view(r, name, f"{r['method']}: {name}", im, [((0, 0, w, h), tuple(v.content_box))],
                             patch_pitch(pl), (w, h)))
    return out


def packed_view(image, size, name: str | None = None, label: str | None = None) -> dict:
    """A view (as :func:`encoder_views` gives) of ``image`` resized with BICUBIC to ``size`` = (width,
    height), as packing does: e.g. ``features.fit_native_grid(image.size, budget)["size"]`` for a budget."""
    from ..tiling.base import to_rgb_image

    image = to_rgb_image(image)
    ew, eh = check_size(size, "size", max_aspect=None)
    w, h = image.size
    view = _view(None, "packed", label or f"packed to {ew}×{eh}", image.resize((ew, eh), Image.BICUBIC),
                 [((0, 0, w, h), (0, 0, ew, eh))], PATCH, (w, h), name)
    view["view"] = "packed"
    return view


def _region(view, box) -> tuple:
    cx, cy = (box[0] + box[2]) / 2, (box[1] + box[3]) / 2

    def dist(src):
        return max(src[0] - cx, 0, cx - src[2]) + max(src[1] - cy, 0, cy - src[3])

    return min(view["regions"], key=lambda reg: dist(reg[0]))


def map_box(view, box) -> tuple[tuple, float]:
    """(the source ``box`` in the view's pixels, vertical scale): mapped by the region (tile) whose source
    box holds the box's centre, or the nearest one; a line crossing a tile border reads on into the
    neighbouring tile pasted beside it."""
    src, enc = _region(view, box)
    sx, sy = (enc[2] - enc[0]) / (src[2] - src[0]), (enc[3] - enc[1]) / (src[3] - src[1])
    return ((enc[0] + (box[0] - src[0]) * sx, enc[1] + (box[1] - src[1]) * sy,
             enc[0] + (box[2] - src[0]) * sx, enc[1] + (box[3] - src[1]) * sy), sy)


def line_image(view, piece: dict, pad: float = PAD, height: int = 48) -> Image.Image:
    """The piece's ink box grown by ``pad`` font sizes on every side (clipped to the source image), mapped
    into the view's pixels and resampled (bilinear) straight to ``height`` px high, aspect ratio kept: what
    the recognizer reads of this view."""
    src_w, src_h = view["source_size"]
    m = pad * piece["size"]
    b = piece["box"]
    box = (max(0, b[0] - m), max(0, b[1] - m), min(src_w, b[2] + m), min(src_h, b[3] + m))
    e, _ = map_box(view, box)
    pw, ph = view["pixels"].size
    e = (max(0.0, e[0]), max(0.0, e[1]), min(float(pw), e[2]), min(float(ph), e[3]))
    width = max(1, math.ceil(height * (e[2] - e[0]) / (e[3] - e[1])))
    return view["pixels"].resize((width, height), Image.BILINEAR, box=e)


# ---------------------------------------------------------------------------------------------------------
# reading


def read_piece(view, piece: dict, pad: float = PAD, reader=None, keep_image: bool = False) -> dict:
    """Read one piece of text (:func:`text_pieces`) in one view (:func:`encoder_views`) and score it: image,
    method, view, part, label, size (font px), text, reading, accuracy (:func:`~.reader.char_accuracy`),
    words_right, words, chars (spaces not counted), x_src, x_px (x-height in the view's pixels), x_patches
    (``x_px / patch_px``), squash (horizontal / vertical scale: 1 = aspect kept, 0.2 = five times narrower);
    with ``keep_image`` also ``line`` (the 48-px line image the reader was given)."""
    reader = load_reader() if reader is None else reader
    line = line_image(view, piece, pad)
    got = reader.read(line)
    right, words = words_correct(piece["text"], got)
    (enc, sy), b = map_box(view, piece["box"]), piece["box"]
    sx = (enc[2] - enc[0]) / (b[2] - b[0])
    out = dict(image=view["image_name"], method=view["method"], view=view["view"], part=view["part"],
               label=view["label"], size=piece["size"], text=piece["text"], reading=got,
               accuracy=char_accuracy(piece["text"], got), words_right=right, words=words,
               chars=len("".join(piece["text"].split())), x_src=piece["x_src"], x_px=piece["x_src"] * sy,
               x_patches=piece["x_src"] * sy / view["patch_px"], squash=sx / sy)
    if keep_image:
        out["line"] = line
    return out


def readability(images: dict, rows: list[dict], max_chars: int | None = MAX_CHARS,
                piece_chars: int = PIECE_CHARS, all_sizes: bool = False, pad: float = PAD,
                source: bool = True, reader=None) -> list[dict]:
    """Read the sampled text pieces (:func:`sample_pieces`: body text and smallest print, or every size with
    ``all_sizes``) of every image in ``images`` (name -> PIL image; synthetic images that draw text) in every
    view (:func:`encoder_views`) of its ``rows`` (and the source pixels, ``source``): one
    :func:`read_piece` dict per (view, piece). ``reader``: a :class:`~.reader.Reader` (default
    :func:`~.reader.load_reader`, which says how to install the recognizer when it is missing). Taught in
    `tiling_vs_packing`."""
    reader = load_reader() if reader is None else reader
    pad = check_number("pad", pad, 0.0)
    out = []
    for name, image in images.items():
        own = [r for r in rows if r["image"] == name]
        if not own:
            raise ValueError(f"no rows for image {name!r}: pass equal_budget(images) rows")
        pieces = sample_pieces(name, max_chars, piece_chars, all_sizes)
        for v in encoder_views(image, own, source=source):
            out += [read_piece(v, p, pad, reader) for p in pieces]
    return out


def summarise(reads: list[dict]) -> list[dict]:
    """Per (image, view label, print size), in first-seen order: accuracy (mean over characters), words_right,
    words, chars, pieces, x_patches (of that size in that view), method, view, part."""
    groups: dict = {}
    for d in reads:
        groups.setdefault((d["image"], d["label"], d["size"]), []).append(d)
    out = []
    for (image, label, size), ds in groups.items():
        chars = sum(d["chars"] for d in ds)
        out.append(dict(image=image, label=label, size=size, method=ds[0]["method"], view=ds[0]["view"],
                        part=ds[0]["part"], accuracy=sum(d["accuracy"] * d["chars"] for d in ds) / chars,
                        words_right=sum(d["words_right"] for d in ds), words=sum(d["words"] for d in ds),
                        chars=chars, pieces=len(ds), x_patches=float(np.mean([d["x_patches"] for d in ds]))))
    return out


def format_readability(reads: list[dict], name: str, sizes=None) -> str:
    """Plain-text table for image ``name``: per view, for each print size in ``sizes`` (default: the smallest
    print and the body text, :func:`print_sizes`), the x-height in patches, the character accuracy and the
    words read right. Taught in `tiling_vs_packing`."""
    info = print_sizes(name)
    sizes = (info["smallest"], info["body"]) if sizes is None else tuple(sizes)
    summ = {(s["label"], s["size"]): s for s in summarise([d for d in reads if d["image"] == name])}
    if not summ:
        raise ValueError(f"no readings of image {name!r}")
    labels = list(dict.fromkeys(label for label, _ in summ))
    kinds = {info["smallest"]: "smallest print", info["body"]: "body text"}
    head = f"{'view':<46}" + "".join(f"{kinds.get(s, 'print') + f' ({s} px font)':>27}" for s in sizes)
    sub = f"{'':<46}" + f"{'x patches':>10}{'chars':>7}{'words':>10}" * len(sizes)
    lines = [f"{name}: what the reader reads of each view", head, sub, "-" * len(sub)]
    for label in labels:
        cells = ""
        for s in sizes:
            d = summ.get((label, s))
            cells += (f"{d['x_patches']:>10.2f}{d['accuracy']:>7.0%}{d['words_right']:>5}/{d['words']:<4}"
                      if d else f"{'-':>27}")
        lines.append(f"{label:<46}{cells}")
    return "\n".join(lines)


# ---------------------------------------------------------------------------------------------------------
# the rule of thumb


def _monotone(y, w) -> np.ndarray:
    """Weighted isotonic (non-decreasing) fit of ``y`` by pooling adjacent violators."""
    vals, wts, counts = [], [], []
    for yi, wi in zip(y, w):
        vals.append(float(yi))
        wts.append(float(wi))
        counts.append(1)
        while len(vals) > 1 and vals[-2] > vals[-1]:
            wt = wts[-2] + wts[-1]
            vals[-2:] = [(vals[-2] * wts[-2] + vals[-1] * wts[-1]) / wt]
            wts[-2:] = [wt]
            counts[-2:] = [counts[-2] + counts[-1]]
    return np.repeat(vals, counts)


def rule_of_thumb(reads: list[dict], levels=(0.5, 0.9), bins: int = 24) -> dict:
    """Accuracy against x-height in patches, over ``reads`` (dicts with x_patches, accuracy, chars): the
    pieces binned on a log scale (``bins`` bins between the smallest and largest x-height, mean accuracy
    over characters), a non-decreasing fit of the bins (isotonic), and for each level of ``levels`` the
    x-height in patches where the fit first reaches it (interpolated in log x; None when it never does).
    Returns dict: x, accuracy, chars (per non-empty bin), fit, crossings {level: x}. Taught in
    `tiling_vs_packing`."""
    pts = [(d["x_patches"], d["accuracy"], d["chars"]) for d in reads if d["x_patches"] > 0]
    if len(pts) < 2:
        raise ValueError("rule_of_thumb needs at least two readings with a positive x-height")
    x, acc, ch = (np.array(v, float) for v in zip(*pts))
    bins = check_positive_int("bins", bins)
    edges = np.geomspace(x.min(), x.max() * (1 + 1e-9), bins + 1)
    k = np.clip(np.searchsorted(edges, x, side="right") - 1, 0, bins - 1)
    bx, ba, bc = [], [], []
    for b in range(bins):
        m = k == b
        if m.any():
            bx.append(float(np.exp(np.average(np.log(x[m]), weights=ch[m]))))
            ba.append(float(np.average(acc[m], weights=ch[m])))
            bc.append(int(ch[m].sum()))
    fit = _monotone(ba, bc)
    crossings = {}
    for lev in levels:
        lev = check_number("level", lev, 0.0, 1.0)
        j = next((i for i, f in enumerate(fit) if f >= lev), None)
        if j is None:
            crossings[lev] = None
        elif j == 0:
            crossings[lev] = bx[0]
        else:
            t = (lev - fit[j - 1]) / (fit[j] - fit[j - 1])
            lo, hi = math.log(bx[j - 1]), math.log(bx[j])
            crossings[lev] = float(math.exp(lo + t * (hi - lo)))
    return dict(x=np.array(bx), accuracy=np.array(ba), chars=np.array(bc), fit=fit, crossings=crossings)


def scale_sweep(image, piece: dict, scales, pad: float = PAD, reader=None) -> list[dict]:
    """One piece of text read at each scale of ``scales`` (the whole image resized with BICUBIC, as packing
    does): a :func:`read_piece` dict per scale, with ``scale``; x_patches = ``x_src * scale / 14``. Taught in
    `tiling_vs_packing`."""
    from ..tiling.base import to_rgb_image

    reader = load_reader() if reader is None else reader
    image = to_rgb_image(image)
    w, h = image.size
    out = []
    for s in scales:
        s = check_number("scale", s, 0.0, min_inclusive=False)
        view = packed_view(image, (max(1, round(w * s)), max(1, round(h * s))), label=f"scale {s:g}")
        out.append(dict(read_piece(view, piece, pad, reader), scale=float(s)))
    return out


__all__ = ["SOURCE", "PAD", "PIECE_CHARS", "MAX_CHARS", "text_lines", "text_pieces", "sample_pieces",
           "encoder_views", "packed_view", "map_box", "line_image", "read_piece", "readability", "summarise",
           "format_readability", "rule_of_thumb", "scale_sweep"]
