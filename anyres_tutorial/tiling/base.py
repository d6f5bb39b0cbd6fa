"""Shared pieces of every tiling method: the ``Plan``, size checks, selection helpers, pixels.

Taught in `tiling_basics` and used by every tiling notebook, `tiling_vs_packing` and `grid_explorer`.

A *plan* is pure geometry computed from the image size alone (no pixels, no torch, no PIL): which canvas the
image is resized/padded to, how the canvas is cut into tiles, which global views are added and where, and how
many images the vision encoder sees and tokens the language model receives. ``apply`` (see ``__init__``) then
turns a plan plus a PIL image into the batch the ViT sees.

Conventions: sizes are ``(width, height)``; boxes are ``(left, top, right, bottom)`` in pixels (right/bottom
exclusive, as PIL's ``crop``); grids are ``(rows, cols)``; tile positions are ``(row, col)``.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

from ..checks import (  # noqa: F401  (re-exported: the methods import their checks from here)
    MAX_ASPECT,
    MAX_SIDE,
    check_choice,
    check_int,
    check_pair,
    check_pair_list,
    check_rgb,
    check_size,
)
from ..types import PATCH, Grid, Size
from .protocol import ScoreTable

#: Most tiles one grid may have (64 x 64, UReader's largest anchor) and most LLM tokens one image may take:
#: checked when options are resolved, before any plan is built.
MAX_TILES = 4096
MAX_TOKENS = 2 ** 22


def check_canvas_list(name: str, value, tile: int) -> tuple:
    """Candidate canvases (W, H), multiples of ``tile``, each of at most MAX_TILES tiles."""
    pairs = check_pair_list(name, value, multiple_of=tile)
    for w, h in pairs:
        if (w // tile) * (h // tile) > MAX_TILES:
            raise ValueError(f"{name}: the canvas {w}x{h} holds {(w // tile) * (h // tile):,} tiles of "
                             f"{tile} px, more than the supported {MAX_TILES}")
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


def patch_coverage(lo: float, hi: float, extent: float, g: int) -> list[float]:
    """Fraction of each of ``g`` equal patches spanning [0, extent) that lies inside [lo, hi) -> g floats.

    The building block of the token accounting: along each axis of an encoder image, how much of every patch
    row/column shows image content. Taught in `tiling_vs_packing`."""
    step = extent / g
    return [max(0.0, min((i + 1) * step, hi) - max(i * step, lo)) / step for i in range(g)]


def content_patches(box, size, gx: int, gy: int) -> int:
    """Patches of a gx x gy patch grid laid over an encoder image of ``size`` = (w, h) that show image
    content: at least half of the patch's area lies inside ``box`` (left, top, right, bottom). The same
    rule marks padding patches in ``features.encode_tiled``'s feature maps."""
    fx = patch_coverage(box[0], box[2], size[0], gx)
    fy = patch_coverage(box[1], box[3], size[1], gy)
    return sum(1 for y in fy for x in fx if x * y >= 0.5)


@dataclass(frozen=True)
class EncoderTokens:
    """The tutorial's one token accounting of a plan (``Plan.encoder_tokens``); every table, picture, explorer
    and the benchmark report these numbers.

    ``images``: encoder images (tiles + global views); ``per_image``: patch tokens of one encoder image;
    ``useful``: patches showing image content for the first time; ``padding``: patches showing mostly fill
    (less than half of their area is image); ``duplicated``: global-view patches showing content that the
    tiles already show; ``cls``: one CLS token per encoder image. ``patches`` = useful + padding + duplicated,
    ``total`` = patches + cls (the length the ViT runs on).
    """

    images: int
    per_image: int
    useful: int
    padding: int
    duplicated: int
    cls: int

    @property
    def patches(self) -> int:
        return self.useful + self.padding + self.duplicated

    @property
    def total(self) -> int:
        return self.patches + self.cls


@dataclass(frozen=True)
class Plan:
    """Everything a tiling method decides for one image size (pure geometry; see module docstring).

    Fields (sizes are ``Size(width, height)``, grids ``Grid(rows, cols)``, boxes (left, top, right, bottom)):
      method, image_size, options (resolved options), tile_size (t), grid, canvas_size,
      resize_size (the image's size inside the canvas), content_box (image inside canvas), fill (canvas
      padding colour or None), tile_boxes (crop boxes in canvas coordinates, method order), tile_positions
      ((row, col) per tile), tile_content_boxes (where image content lies inside each t x t tile the encoder
      sees), global_views, global_position ("before" | "after" | None), num_images (encoder images),
      num_tokens (LLM tokens by the method's own accounting), token_formula (that accounting with numbers),
      details (method-specific intermediate steps, e.g. per-candidate scores), patch_size (the encoder's
      patch side, 14 for every method here).
    """

    method: str
    image_size: Size
    options: dict
    tile_size: int
    grid: Grid
    canvas_size: Size
    resize_size: Size
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
    patch_size: int = PATCH

    @property
    def num_tiles(self) -> int:
        return len(self.tile_boxes)

    # --- the token accounting (one definition, see EncoderTokens) ---
    def encoder_tokens(self, patch: int | None = None, tile_px: int | None = None) -> EncoderTokens:
        """Count the encoder's tokens when every encoder image is fed at ``tile_px`` pixels (default: the
        plan's tile size; the benchmark shrinks it) with ``patch``-pixel patches (default ``patch_size``).

        An encoder image of t x t pixels fed at tile_px gives g x g patches, g = tile_px // patch (so
        DeepSeek-VL2's 384-px tile gives 27 x 27, as its SigLIP/14 does). Content boxes are scaled with the
        image. Taught in `tiling_vs_packing`; the explorer (`grid_explorer`) and the benchmark (`timing`)
        report the same numbers.
        """
        patch = self.patch_size if patch is None else check_int("patch", patch, 1)
        t = self.tile_size
        tile_px = t if tile_px is None else check_int("tile_px", tile_px, patch)
        g = tile_px // patch
        useful = padding = duplicated = 0
        for box in self.tile_content_boxes:
            inside = content_patches(box, (t, t), g, g)
            useful, padding = useful + inside, padding + g * g - inside
        for v in self.global_views:
            gx, gy = (v.size[0] * tile_px // t) // patch, (v.size[1] * tile_px // t) // patch
            inside = content_patches(v.content_box, v.size, gx, gy)
            padding += gx * gy - inside
            if self.tile_boxes:  # the tiles show this content already
                duplicated += inside
            else:
                useful += inside
        return EncoderTokens(images=self.num_images, per_image=g * g, useful=useful, padding=padding,
                             duplicated=duplicated, cls=self.num_images)

    # --- pixel accounting (used by `tiling_vs_packing`) ---
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
        """A short dict for tables (`tiling_vs_packing`, `grid_explorer`)."""
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
    """Build a Plan; fills ``tile_content_boxes`` for 1:1 crop methods, types sizes as ``Size`` and the grid
    as ``Grid`` and checks basic invariants."""
    for key in ("image_size", "canvas_size", "resize_size"):
        kw[key] = Size(*kw[key])
    kw["grid"] = Grid(*kw["grid"])
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
    Taught in `llava_next_anyres` (and `deepseek_vl2_and_internvl`).
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


def resolution_table(candidates: list) -> ScoreTable:
    """The score table of LLaVA's select_best_resolution (shared with DeepSeek-VL2: the same rule)."""
    data = tuple({"candidate": tuple(r["candidate"]), "effective_resolution": int(r["effective_resolution"]),
                  "wasted_resolution": int(r["wasted_resolution"]), "chosen": bool(r["chosen"])}
                 for r in candidates)
    return ScoreTable(
        kind="resolution",
        rule="select_best_resolution: largest effective resolution, then least waste, first on a tie.",
        columns=("candidate (W×H)", "effective resolution", "wasted resolution"),
        rows=tuple((f"{d['candidate'][0]}×{d['candidate'][1]}", d["effective_resolution"],
                    d["wasted_resolution"]) for d in data),
        chosen=tuple(d["chosen"] for d in data), data=data)


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


__all__ = [
    "MAX_ASPECT", "MAX_SIDE", "Plan", "GlobalView", "check_size", "check_int", "check_pair", "check_choice",
    "check_rgb", "check_pair_list", "grid_boxes", "content_in_tiles", "make_plan", "select_best_resolution",
    "to_rgb_image", "pil_to_tensor", "pad_paste", "EncoderTokens", "MAX_TILES", "MAX_TOKENS",
    "check_canvas_list",
    "patch_coverage", "content_patches", "resolution_table",
]
