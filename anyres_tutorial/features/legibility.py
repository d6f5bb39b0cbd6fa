"""Can the encoder still read the small print? x-heights and crops at encoder resolution, per method.

Part of :mod:`anyres_tutorial.features`; taught in `tiling_vs_packing`.

- :func:`print_sizes`: every piece of text a synthetic image of ``data/`` draws (font size, text, box),
  recorded while :func:`anyres_tutorial.data.render` draws it; the smallest print and the body text's size.
- :func:`x_height`: the x-height in pixels of PIL's built-in font (the synthetic images' font) at a size.
- :func:`legibility`: for :func:`~.equal_budget.equal_budget` rows, that x-height in encoder pixels and in
  patches (the tiles' and the global view's apart).
- :func:`format_legibility`: those x-heights as a table to print.
- :func:`encoder_crops`: what the encoder actually gets of a source box, per row: the method's own rendering
  (``tiling.apply``) or the packed resize, cut at encoder resolution, with the patch borders inside it.

Boxes are (left, top, right, bottom) in pixels; sizes (width, height).
"""

from __future__ import annotations

import functools
import math
from contextlib import contextmanager

from PIL import Image, ImageDraw

from ..checks import check_number
from ..types import PATCH
from .equal_budget import TILED, box_scale, patch_pitch, tile_regions


@contextmanager
def _recording_text(records: list):
    """While active, every ``ImageDraw.text`` call also appends (font size, text, box, drawn-on size)."""
    original = ImageDraw.ImageDraw.text

    def text(self, xy, text, *args, **kw):
        f = kw.get("font")
        if f is not None and hasattr(f, "size"):
            box = self.textbbox(xy, text, font=f, anchor=kw.get("anchor"),
                                stroke_width=kw.get("stroke_width", 0))
            records.append(dict(size=int(f.size), text=str(text), box=tuple(box), canvas=tuple(self.im.size)))
        return original(self, xy, text, *args, **kw)

    ImageDraw.ImageDraw.text = text
    try:
        yield records
    finally:
        ImageDraw.ImageDraw.text = original


@functools.cache
def _print_records(name: str) -> tuple:
    from ..data import render

    records: list = []
    with _recording_text(records):
        im = render(name)
    return tuple(r for r in records if r["canvas"] == im.size)  # text pasted from a side image is left out


def x_height(font_size: int) -> int:
    """Height in pixels of a lowercase "x" in PIL's built-in font at ``font_size`` px (the font every
    synthetic image of ``data/`` is drawn with, ``synthetic.font``)."""
    from ..synthetic import font

    left, top, right, bottom = font(font_size).getbbox("x")
    return int(bottom - top)


def print_sizes(name: str) -> dict:
    """The text a synthetic image draws, recorded while :func:`anyres_tutorial.data.render` draws it.

    Returns dict: ``records`` (size, text, box per text call), ``smallest`` (smallest font size),
    ``smallest_boxes`` (boxes of the text at that size), ``body`` (the size with the most characters), and the
    x-heights in source pixels of both (``x_smallest``, ``x_body``). ValueError for photos (no drawing code).
    Taught in `tiling_vs_packing`."""
    recs = _print_records(name)
    if not recs:
        raise ValueError(f"{name!r} draws no text")
    chars: dict[int, int] = {}
    for r in recs:
        chars[r["size"]] = chars.get(r["size"], 0) + len(r["text"])
    smallest = min(chars)
    body = max(chars, key=chars.get)
    return dict(records=recs, smallest=smallest, body=body, chars=chars,
                smallest_boxes=tuple(r["box"] for r in recs if r["size"] == smallest),
                x_smallest=x_height(smallest), x_body=x_height(body))


def small_print_box(name: str, width: int = 240, height: int = 96) -> tuple[int, int, int, int]:
    """A ``width`` x ``height`` source box around the first piece of the smallest print of a synthetic image
    (centred vertically, the print a quarter of the width from the left edge; clipped to the image): the
    region :func:`encoder_crops` shows."""
    from ..data import IMAGES

    info = print_sizes(name)
    w, h = IMAGES[name].size
    width, height = int(check_number("width", width, 8, w)), int(check_number("height", height, 8, h))
    b = info["smallest_boxes"][0]
    cx, cy = (b[0] + b[2]) / 2, (b[1] + b[3]) / 2
    x0 = int(min(max(0, round(cx - width / 4)), w - width))
    y0 = int(min(max(0, round(cy - height / 2)), h - height))
    return (x0, y0, x0 + width, y0 + height)


def legibility(rows: list[dict], x_src: float) -> list[dict]:
    """Each row of :func:`~.equal_budget.equal_budget` with the print's x-height ``x_src`` (source pixels) as
    the encoder sees it: ``x_px`` (encoder pixels, the vertical scale of the row's main view), ``x_patches``
    (``x_px / patch_px``) and, for a tiled row with a global view, ``x_global_px`` / ``x_global_patches``.
    Taught in `tiling_vs_packing`."""
    x_src = check_number("x_src", x_src, 0.0, min_inclusive=False)
    out = []
    for r in rows:
        d = dict(r, x_src=x_src, x_px=x_src * r["scale"][1])
        d["x_patches"] = d["x_px"] / r["patch_px"]
        g = r.get("global_scale")
        d["x_global_px"] = None if g is None else x_src * g[1]
        d["x_global_patches"] = None if g is None else d["x_global_px"] / r["patch_px"]
        out.append(d)
    return out


def format_legibility(rows: list[dict], name: str) -> str:
    """Plain-text table: for the rows of image ``name`` (a synthetic image), the x-height of its smallest
    print and of its body text (:func:`print_sizes`) in encoder pixels and in patches, per row; tiled rows
    add their global view's. Taught in `tiling_vs_packing`."""
    info = print_sizes(name)
    rows = [r for r in rows if r["image"] == name]
    if not rows:
        raise ValueError(f"no rows for image {name!r}")
    small, body = legibility(rows, info["x_smallest"]), legibility(rows, info["x_body"])
    head = (f"{'':46}{'smallest print (' + str(info['smallest']) + ' px font)':>26}"
            f"{'body text (' + str(info['body']) + ' px font)':>26}")
    sub = f"{'view':<46}" + f"{'enc px':>10}{'patches':>9}{'global':>7}" * 2
    lines = [f"{name}: x-height {info['x_smallest']} px (smallest print), {info['x_body']} px (body text) "
             "in the source", head, sub, "-" * len(sub)]
    for a, b in zip(small, body):
        cells = ""
        for d in (a, b):
            g = "" if d["x_global_patches"] is None else f"{d['x_global_patches']:.2f}"
            cells += f"{d['x_px']:>10.2f}{d['x_patches']:>9.2f}{g:>7}"
        lines.append(f"{a['label']:<46}{cells}")
    return "\n".join(lines)


# ---------------------------------------------------------------------------------------------------------
# crops at encoder resolution


def _lines(lo: float, hi: float, starts, pitch: float, extent: float) -> list[float]:
    """Patch borders (encoder px, relative to ``lo``) inside [lo, hi): start + j * pitch < start + extent."""
    out = []
    for s in starts:
        j = math.ceil((lo - s) / pitch)
        while s + j * pitch < min(hi, s + extent):
            if j >= 0:
                out.append(s + j * pitch - lo)
            j += 1
    return sorted(set(round(v, 3) for v in out if v >= 0))


def _cut(image, box, starts_x, starts_y, pitch, extent_x, extent_y) -> dict:
    ib = (math.floor(box[0]), math.floor(box[1]), math.ceil(box[2]), math.ceil(box[3]))
    return dict(crop=image.crop(ib), box=ib, lines_x=_lines(ib[0], ib[2], starts_x, pitch, extent_x),
                lines_y=_lines(ib[1], ib[3], starts_y, pitch, extent_y))


def _map(box, src, enc, offset=(0.0, 0.0)) -> tuple:
    sx, sy = (enc[2] - enc[0]) / (src[2] - src[0]), (enc[3] - enc[1]) / (src[3] - src[1])
    return (offset[0] + enc[0] + (box[0] - src[0]) * sx, offset[1] + enc[1] + (box[1] - src[1]) * sy,
            offset[0] + enc[0] + (box[2] - src[0]) * sx, offset[1] + enc[1] + (box[3] - src[1]) * sy)


def _tiled_crops(row, image, box) -> list[dict]:
    """The box as the method's own tiles (pasted at their grid places) and its global view show it."""
    from .. import tiling

    pl = tiling.plan(row["method"], image.size, **row["options"])
    out = tiling.apply(pl, image)
    t, pitch = pl.tile_size, patch_pitch(pl)
    extent = (t // pl.patch_size) * pitch
    crops = []
    regions = tile_regions(pl)
    if regions:
        cx, cy = (box[0] + box[2]) / 2, (box[1] + box[3]) / 2
        src, enc, k = min(regions, key=lambda reg: _dist(reg[0], cx, cy))
        rows_, cols_ = pl.grid
        mosaic = Image.new("RGB", (cols_ * t, rows_ * t), (255, 255, 255))
        for im, (r, c) in zip(out.tiles, pl.tile_positions):
            mosaic.paste(im, (c * t, r * t))
        r, c = pl.tile_positions[k]
        mapped = _map(box, src, enc, offset=(c * t, r * t))
        cut = _cut(mosaic, mapped, [j * t for j in range(cols_)], [i * t for i in range(rows_)], pitch,
                   extent, extent)
        crops.append(dict(cut, part="tiles", label=f"{row['method']}: tiles", scale=box_scale(src, enc)[1],
                          patch_px=pitch))
    for v, im in zip(pl.global_views, out.global_views):
        mapped = _map(box, (0, 0, *image.size), v.content_box)
        cut = _cut(im, mapped, [0], [0], pitch, extent, extent)
        crops.append(dict(cut, part="global view", label=f"{row['method']}: global view",
                          scale=(v.content_box[3] - v.content_box[1]) / image.height, patch_px=pitch))
    return crops


def _dist(src, cx, cy) -> float:
    dx = max(src[0] - cx, 0, cx - src[2])
    dy = max(src[1] - cy, 0, cy - src[3])
    return dx + dy


def encoder_crops(image, box, rows: list[dict], x_src: float | None = None) -> list[dict]:
    """What the encoder gets of the source ``box`` for each row of :func:`~.equal_budget.equal_budget` for
    this ``image`` (a PIL image of the rows' size).

    Tiled rows: the method's own rendering (``tiling.apply``: its resize, padding, crops), the box cut from
    the tile holding its centre (neighbouring tiles pasted around it at their grid places) and from the
    global view. Packed rows: the image resized (BICUBIC) to the row's ``encoder_size``, the box cut from it.
    Every crop is cut at encoder resolution (no resampling after the pipeline's own). Returns one dict per
    crop: row (the table row), part ("tiles" | "global view" | "packed"), label, crop (PIL image), box
    (integer box in the encoder image), lines_x / lines_y (patch borders inside the crop, crop pixels),
    scale (vertical encoder px per source px of this part), patch_px, and with ``x_src`` (an x-height in
    source px, :func:`print_sizes`) ``x_patches`` = x_src * scale / patch_px.
    Taught in `tiling_vs_packing`."""
    from ..tiling.base import to_rgb_image

    image = to_rgb_image(image)
    if not rows:
        raise ValueError("rows is empty: pass equal_budget(...) rows of this image")
    b = tuple(float(v) for v in box)
    if len(b) != 4 or not (0 <= b[0] < b[2] <= image.width and 0 <= b[1] < b[3] <= image.height):
        raise ValueError(f"box must be (left, top, right, bottom) inside the {image.width}x{image.height} "
                         f"image with left < right and top < bottom, got {box!r}")
    if x_src is not None:
        x_src = check_number("x_src", x_src, 0.0, min_inclusive=False)
    crops = []
    for r in rows:
        if tuple(r["size"]) != image.size:
            raise ValueError(f"row for {r['image']!r} has size {tuple(r['size'])}, image is {image.size}")
        if r["view"] == TILED:
            crops += [dict(c, row=r) for c in _tiled_crops(r, image, b)]
            continue
        packed = image.resize(tuple(r["encoder_size"]), Image.BICUBIC)
        mapped = _map(b, (0, 0, *image.size), (0, 0, *r["encoder_size"]))
        cut = _cut(packed, mapped, [0], [0], float(PATCH), r["encoder_size"][0], r["encoder_size"][1])
        crops.append(dict(cut, row=r, part="packed", label=r["label"], scale=r["scale"][1],
                          patch_px=float(PATCH)))
    for c in crops:
        c["x_patches"] = None if x_src is None else x_src * c["scale"] / c["patch_px"]
    return crops


__all__ = ["print_sizes", "x_height", "small_print_box", "legibility", "format_legibility", "encoder_crops"]
