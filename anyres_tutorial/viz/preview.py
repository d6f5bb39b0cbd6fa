"""Pixels for the pictures, drawn from a source no larger than the screen needs.

A picture of a 3136×1792 canvas is shown some 700 pixels wide: resizing the full-size image to the canvas
(what ``tiling.apply`` does for the encoder) only to shrink it again for the screen is wasted work, and the
grid explorer (`grid_explorer`) would do it for every method of its side-by-side view. Here the source is
downscaled once (:func:`display_copy`; the explorer keeps one per image) and the canvas and the global views
are rebuilt from the plan's geometry at that scale: the boxes, the padding and every number still come from
the full-size plan, only the pixels under them are coarser. The encoder's own images (``tile_montage``)
always come from ``tiling.apply`` on the full image.
"""

from __future__ import annotations

import numpy as np

from .palette import fill_rgb

#: the longest side a picture's canvas is drawn at (pixels of the source copy); a 9-inch figure is 900 px
DISPLAY_SIDE = 1600


def display_copy(image, max_side: int = DISPLAY_SIDE):
    """``image`` (PIL, any mode) as RGB, downscaled (aspect kept) so that its longer side is at most
    ``max_side`` pixels; an image already that small is returned as RGB unchanged. Pass the copy to
    ``grid_overlay`` instead of the full image: the picture is the same at screen size."""
    from PIL import Image

    if isinstance(max_side, bool) or not isinstance(max_side, (int, np.integer)) or max_side < 16:
        raise ValueError(f"max_side must be an integer >= 16, got {max_side!r}")
    if not hasattr(image, "size") or not hasattr(image, "convert"):
        raise TypeError(f"display_copy needs a PIL image, got {type(image).__name__}")
    rgb = image.convert("RGB")
    w, h = rgb.size
    f = max_side / max(w, h)
    if f >= 1:
        return rgb
    return rgb.resize((max(1, round(w * f)), max(1, round(h * f))), Image.BOX, reducing_gap=2.0)


def source_scale(plan, image) -> float:
    """Pixels of ``image`` per pixel of the plan's image: 1 for the full image, < 1 for a display copy.
    The scale is taken from the longer side (the one :func:`display_copy` fits exactly); the shorter side
    may be off by the rounding of a few pixels (a 20×2000 strip becomes 5×480, not 4.8×480). ValueError when
    ``image`` is not ``plan.image_size`` up to a uniform scale."""
    w, h = plan.image_size
    sw, sh = image.size
    f = sw / w if w >= h else sh / h
    if sw > w or sh > h or abs(sw - w * f) > 1.0 + 1e-9 or abs(sh - h * f) > 1.0 + 1e-9:
        raise ValueError(f"image of size {sw}×{sh} is neither the plan's image ({w}×{h}) nor a downscaled "
                         f"copy of it (viz.display_copy)")
    return f


def fit_image(image, size):
    """``image`` resized to ``size`` (w, h), at least 1×1 pixel."""
    from PIL import Image

    size = (max(1, round(size[0])), max(1, round(size[1])))
    return image if image.size == size else image.resize(size, Image.BILINEAR)


def _paste_content(size, fill, content_box, picture, scale: float) -> np.ndarray:
    """A ``size`` view (plan px) at ``scale``: ``fill`` everywhere, ``picture`` resized into the content
    box."""
    from PIL import Image

    w, h = (max(1, round(v * scale)) for v in size)
    rgb = tuple(int(round(255 * c)) for c in fill_rgb(fill))
    out = Image.new("RGB", (w, h), rgb)
    cl, ct, cr, cb = (v * scale for v in content_box)
    out.paste(fit_image(picture, (cr - cl, cb - ct)), (round(cl), round(ct)))
    return np.asarray(out)


def canvas_pixels(plan, image, max_side: int = DISPLAY_SIDE) -> np.ndarray:
    """The plan's canvas as an (h, w, 3) uint8 array at display scale: the fill colour, the image resized
    into ``plan.content_box`` (the geometry every method's canvas follows). ``image``: the full image or a
    :func:`display_copy`; the longest side of the result is at most ``max_side``."""
    source_scale(plan, image)  # checks that image is the plan's (or a copy of it)
    cw, ch = plan.canvas_size
    scale = min(1.0, max_side / max(cw, ch))
    return _paste_content(plan.canvas_size, plan.fill, plan.content_box, image, scale)


def view_pixels(view, image, max_side: int = DISPLAY_SIDE) -> np.ndarray:
    """A global view (``GlobalView``: squash / pad / crop) of ``image`` as an (h, w, 3) uint8 array."""
    gw, gh = view.size
    scale = min(1.0, max_side / max(gw, gh))
    if view.kind == "crop":  # shortest edge to the view, centre crop: the sides are cut off
        w, h = image.size
        s = max(gw / w, gh / h)
        big = fit_image(image, (w * s, h * s))
        left, top = (big.width - gw) // 2, (big.height - gh) // 2
        return np.asarray(fit_image(big.crop((left, top, left + gw, top + gh)), (gw * scale, gh * scale)))
    return _paste_content(view.size, view.fill, view.content_box, image, scale)


def block_pixels(plan, image, box) -> object:
    """The part of ``image`` (full or a display copy) under ``box`` (l, t, r, b in the plan's image px)."""
    f = source_scale(plan, image)
    sw, sh = image.size
    left, top, right, bottom = (round(v * f) for v in box)
    left, right = min(max(0, left), sw - 1), min(max(1, right), sw)  # a block thinner than a source
    top, bottom = min(max(0, top), sh - 1), min(max(1, bottom), sh)   # pixel keeps one pixel
    return image.crop((left, top, max(right, left + 1), max(bottom, top + 1)))


__all__ = ["display_copy", "DISPLAY_SIDE"]
