"""Shared pieces of every tiling method: the ``Plan``, size checks, selection helpers, pixels.

Taught in notebook 02 (tiling basics) and used by 03-06 and 09-11.

A *plan* is pure geometry computed from the image size alone (no pixels, no torch, no PIL): which canvas the
image is resized/padded to, how the canvas is cut into tiles, which global views are added and where, and how
many images the vision encoder sees and tokens the language model receives. ``apply`` (see ``__init__``) then
turns a plan plus a PIL image into the batch the ViT sees.

Conventions: sizes are ``(width, height)``; boxes are ``(left, top, right, bottom)`` in pixels (right/bottom
exclusive, as PIL's ``crop``); grids are ``(rows, cols)``; tile positions are ``(row, col)``.
"""

from __future__ import annotations

import numbers
from dataclasses import dataclass, field
from typing import Any

#: Largest accepted aspect ratio max(W, H) / min(W, H). Beyond it tiles of a few pixels (or none) would hold
#: the image, so every method refuses it with a ValueError.
MAX_ASPECT = 100
#: Largest accepted side in pixels (a 65536-pixel side is already far beyond any VLM's input).
MAX_SIDE = 65536

Box = tuple  # (left, top, right, bottom)


# ----------------------------------------------------------------------------------------------------------
# validation


def check_int(name: str, value: Any, minimum: int | None = None, maximum: int | None = None) -> int:
    """``value`` as an int: bools, floats and strings raise TypeError, out-of-range values ValueError."""
    if isinstance(value, bool) or not isinstance(value, numbers.Integral):
        raise TypeError(f"{name} must be an integer, got {value!r} ({type(value).__name__})")
    value = int(value)
    if minimum is not None and value < minimum:
        raise ValueError(f"{name} must be >= {minimum}, got {value}")
    if maximum is not None and value > maximum:
        raise ValueError(f"{name} must be <= {maximum}, got {value}")
    return value


def check_pair(name: str, value: Any, minimum: int = 1, maximum: int | None = None) -> tuple[int, int]:
    """A pair of integers such as a size ``(width, height)`` or a grid; clear errors otherwise."""
    if isinstance(value, (str, bytes)) or not hasattr(value, "__len__") or not hasattr(value, "__getitem__"):
        raise TypeError(f"{name} must be a pair of integers like (width, height), got {value!r}")
    if len(value) != 2:
        raise ValueError(f"{name} must have exactly 2 entries, got {len(value)}: {value!r}")
    a = check_int(f"{name}[0]", value[0], minimum, maximum)
    b = check_int(f"{name}[1]", value[1], minimum, maximum)
    return a, b


def check_size(image_size: Any, name: str = "image_size") -> tuple[int, int]:
    """Validate an image size ``(width, height)`` and return it as a tuple of two ints.

    Rules: exactly two integers (bools and floats are refused), each in [1, MAX_SIDE], and an aspect ratio
    max/min of at most ``MAX_ASPECT`` (100:1). Raises TypeError (wrong types) or ValueError (wrong values).
    """
    w, h = check_pair(name, image_size, minimum=1, maximum=MAX_SIDE)
    if max(w, h) > MAX_ASPECT * min(w, h):
        raise ValueError(
            f"{name}={w}x{h} has aspect ratio {max(w, h) / min(w, h):.1f}:1, beyond the supported "
            f"limit of {MAX_ASPECT}:1"
        )
    return w, h


def check_choice(name: str, value: Any, choices: tuple) -> Any:
    if not isinstance(value, str) or value not in choices:
        raise ValueError(f"{name} must be one of {choices}, got {value!r}")
    return value


def check_rgb(name: str, value: Any) -> tuple[int, int, int]:
    if isinstance(value, (str, bytes)) or not hasattr(value, "__len__") or len(value) != 3:
        raise ValueError(f"{name} must be an (R, G, B) tuple of 3 integers in [0, 255], got {value!r}")
    return tuple(check_int(f"{name}[{i}]", v, 0, 255) for i, v in enumerate(value))


def check_pair_list(name: str, value: Any, multiple_of: int | None = None, max_len: int = 256) -> tuple:
    """A non-empty sequence of integer pairs (e.g. candidate canvases or anchors), as a tuple of tuples."""
    if isinstance(value, (str, bytes)) or not hasattr(value, "__len__"):
        raise TypeError(f"{name} must be a sequence of integer pairs, got {value!r}")
    if len(value) == 0:
        raise ValueError(f"{name} must not be empty")
    if len(value) > max_len:
        raise ValueError(f"{name} has {len(value)} entries, more than the supported {max_len}")
    pairs = tuple(check_pair(f"{name}[{i}]", p, minimum=1, maximum=MAX_SIDE) for i, p in enumerate(value))
    if multiple_of is not None:
        for p in pairs:
            if p[0] % multiple_of or p[1] % multiple_of:
                raise ValueError(f"{name}: every entry must be a multiple of the tile size {multiple_of}, "
                                 f"got {p}")
    return pairs


# ----------------------------------------------------------------------------------------------------------
# the plan


@dataclass(frozen=True)
class GlobalView:
    """A whole-image view added next to the tiles (e.g. LLaVA-NeXT's squashed 336x336 image).

    ``kind``: "squash" (distorting resize), "pad" (aspect-preserving resize + padding with ``fill``) or
    "crop" (shortest-edge resize + centre crop, content is lost at the sides).
    ``size``: (width, height) of the view the encoder sees. ``content_box``: where the image lies in the view
    (may hold floats when the reference resizes a padded intermediate image).
    """

    kind: str
    size: tuple
    fill: tuple | None
    content_box: tuple


def _area(box) -> float:
    return max(0, box[2] - box[0]) * max(0, box[3] - box[1])


@dataclass(frozen=True)
class Plan:
    """Everything a tiling method decides for one image size (pure geometry; see module docstring).

    Fields (sizes are (width, height), boxes (left, top, right, bottom)):
      method, image_size, options (resolved options), tile_size (t), grid (rows, cols), canvas_size,
      resize_size (the image's size inside the canvas), content_box (image inside canvas), fill (canvas
      padding colour or None), tile_boxes (crop boxes in canvas coordinates, method order), tile_positions
      ((row, col) per tile), tile_content_boxes (where image content lies inside each t x t tile the encoder
      sees),
      global_views, global_position ("before" | "after" | None), num_images (encoder images), num_tokens (LLM
      tokens by the method's own accounting), token_formula (that accounting with numbers), details
      (method-specific intermediate steps, e.g. per-candidate scores).
    """

    method: str
    image_size: tuple
    options: dict
    tile_size: int
    grid: tuple
    canvas_size: tuple
    resize_size: tuple
    content_box: tuple
    fill: tuple | None
    tile_boxes: tuple
    tile_positions: tuple
    global_views: tuple
    global_position: str | None
    num_images: int
    num_tokens: int
    token_formula: str
    details: dict = field(default_factory=dict)
    tile_content_boxes: tuple = ()

    # --- pixel accounting (used by notebook 09, the comparison) ---
    @property
    def num_tiles(self) -> int:
        return len(self.tile_boxes)

    @property
    def pixels_used(self) -> int:
        """Pixels the vision encoder processes: num_images * t**2."""
        return self.num_images * self.tile_size * self.tile_size

    @property
    def padding_pixels(self) -> float:
        """Encoder pixels that show padding (fill colour) instead of image content, tiles and global views."""
        t2 = self.tile_size * self.tile_size
        pad = sum(t2 - _area(b) for b in self.tile_content_boxes)
        pad += sum(v.size[0] * v.size[1] - _area(v.content_box) for v in self.global_views)
        return pad

    @property
    def padding_fraction(self) -> float:
        """padding_pixels / pixels_used: the share of the encoder's work spent on padding (0 = none)."""
        return self.padding_pixels / self.pixels_used

    @property
    def useful_pixels(self) -> float:
        """Encoder pixels that show image content (pixels_used - padding_pixels)."""
        return self.pixels_used - self.padding_pixels

    @property
    def duplicated_pixels(self) -> float:
        """Encoder pixels spent on global views (thumbnails) showing content the tiles already show."""
        if not self.tile_boxes:
            return 0
        return sum(_area(v.content_box) for v in self.global_views)

    def summary(self) -> dict:
        """A short dict for tables (notebooks 09 and 11)."""
        return {
            "method": self.method,
            "image": f"{self.image_size[0]}x{self.image_size[1]}",
            "grid": f"{self.grid[0]}x{self.grid[1]}",
            "canvas": f"{self.canvas_size[0]}x{self.canvas_size[1]}",
            "tile": self.tile_size,
            "images": self.num_images,
            "tokens": self.num_tokens,
            "padding": round(self.padding_fraction, 4),
            "pixels_used": self.pixels_used,
        }


def grid_boxes(rows: int, cols: int, tile_w: int, tile_h: int | None = None) -> tuple[tuple, tuple]:
    """Row-major crop boxes and (row, col) positions of a rows x cols grid of tile_w x tile_h tiles."""
    tile_h = tile_w if tile_h is None else tile_h
    boxes, positions = [], []
    for r in range(rows):
        for c in range(cols):
            boxes.append((c * tile_w, r * tile_h, (c + 1) * tile_w, (r + 1) * tile_h))
            positions.append((r, c))
    return tuple(boxes), tuple(positions)


def content_in_tiles(tile_boxes, content_box) -> tuple:
    """Content box inside each tile (tile coordinates) for methods whose tiles are 1:1 crops of the canvas."""
    cl, ct, cr, cb = content_box
    out = []
    for left, top, right, bottom in tile_boxes:
        l2, t2, r2, b2 = max(left, cl), max(top, ct), min(right, cr), min(bottom, cb)
        if r2 <= l2 or b2 <= t2:
            out.append((0, 0, 0, 0))
        else:
            out.append((l2 - left, t2 - top, r2 - left, b2 - top))
    return tuple(out)


def make_plan(**kw) -> Plan:
    """Build a Plan; fills ``tile_content_boxes`` for 1:1 crop methods and checks basic invariants."""
    if not kw.get("tile_content_boxes"):
        kw["tile_content_boxes"] = content_in_tiles(kw["tile_boxes"], kw["content_box"])
    plan = Plan(**kw)
    assert plan.num_images == len(plan.tile_boxes) + len(plan.global_views), "num_images mismatch"
    assert len(plan.tile_positions) == len(plan.tile_boxes), "one position per tile"
    return plan


# ----------------------------------------------------------------------------------------------------------
# shared selection rule: LLaVA's select_best_resolution (used by llava_next and deepseek_vl2)


def select_best_resolution(image_size: tuple, candidates: tuple) -> tuple[tuple, list]:
    """LLaVA-NeXT's ``select_best_resolution`` (llava/mm_utils.py), reproduced with its float/int steps.

    For each candidate canvas (W', H'): scale = min(W'/W, H'/H); the image downscaled *with int() truncation*
    gives the effective resolution min(int(W*s) * int(H*s), W*H) (upscaling earns nothing beyond the original
    pixels); wasted = W'*H' - effective. Keep the largest effective resolution, then the least waste; on a
    full tie the *first* candidate in list order wins (strict comparisons). DeepSeek-VL2's processor carries
    an identical copy. Returns (best (W', H'), per-candidate list of dicts for pictures).
    Taught in notebook 03 (and 05 for DeepSeek-VL2).
    """
    w, h = image_size
    best, best_eff, best_waste = None, 0, float("inf")
    rows = []
    for cw, ch in candidates:
        scale = min(cw / w, ch / h)
        dw, dh = int(w * scale), int(h * scale)
        eff = min(dw * dh, w * h)
        waste = cw * ch - eff
        rows.append({"candidate": (cw, ch), "scale": scale, "downscaled": (dw, dh),
                     "effective_resolution": eff, "wasted_resolution": waste, "chosen": False})
        if eff > best_eff or (eff == best_eff and waste < best_waste):
            best, best_eff, best_waste = (cw, ch), eff, waste
    if best is None:  # only possible if every effective resolution is 0
        raise ValueError(f"no candidate canvas can hold an image of size {w}x{h}")
    for r in rows:
        if r["candidate"] == best:
            r["chosen"] = True
            break
    return best, rows


# ----------------------------------------------------------------------------------------------------------
# pixels (PIL + torch are imported lazily so that planning stays pure geometry)


def to_rgb_image(image: Any):
    """Accept a PIL image or an (H, W, 3) uint8 array; return an RGB PIL image."""
    from PIL import Image

    if isinstance(image, Image.Image):
        return image if image.mode == "RGB" else image.convert("RGB")
    try:
        import numpy as np
    except ImportError:  # pragma: no cover
        np = None
    if np is not None and isinstance(image, np.ndarray):
        if image.ndim != 3 or image.shape[2] != 3 or image.dtype != np.uint8:
            raise ValueError(f"array images must be (H, W, 3) uint8, got {image.shape} {image.dtype}")
        return Image.fromarray(image, "RGB")
    raise TypeError(f"image must be a PIL.Image or an (H, W, 3) uint8 array, got {type(image).__name__}")


def pil_to_tensor(images: list):
    """List of t x t RGB PIL images -> float tensor (N, 3, t, t) in [0, 1] (not normalised)."""
    import numpy as np
    import torch

    arr = np.stack([np.asarray(im, dtype=np.uint8) for im in images])  # (N, t, t, 3)
    return torch.from_numpy(arr).permute(0, 3, 1, 2).float().div_(255.0)  # (N, 3, t, t)


def pad_paste(image, canvas_size: tuple, resize_size: tuple, offset: tuple, fill: tuple, resample):
    """Resize ``image`` to resize_size and paste it at ``offset`` on a canvas filled with ``fill``."""
    from PIL import Image

    resized = image if image.size == tuple(resize_size) else image.resize(tuple(resize_size), resample)
    canvas = Image.new("RGB", tuple(canvas_size), tuple(fill))
    canvas.paste(resized, tuple(offset))
    return canvas


def ceil_div(a: int, b: int) -> int:
    return -(-a // b)


__all__ = [
    "MAX_ASPECT", "MAX_SIDE", "Plan", "GlobalView", "check_size", "check_int", "check_pair", "check_choice",
    "check_rgb", "check_pair_list", "grid_boxes", "content_in_tiles", "make_plan", "select_best_resolution",
    "to_rgb_image", "pil_to_tensor", "pad_paste", "ceil_div",
]
