"""LLaVA-NeXT "AnyRes" tiling (LLaVA-1.6). Taught in `llava_next_anyres`.

Paper: Liu et al., "LLaVA-NeXT: Improved reasoning, OCR, and world knowledge" (blog, Jan 2024) and
"Improved Baselines with Visual Instruction Tuning" (LLaVA-1.5-HD, arXiv:2310.03744).
Reference code: LLaVA-VL/LLaVA-NeXT ``llava/mm_utils.py`` (``select_best_resolution``,
``resize_and_pad_image``, ``divide_to_patches``, ``process_anyres_image``, ``get_anyres_image_grid_shape``)
and ``llava/model/llava_arch.py`` (``unpad_image``, ``image_newline``,
``mm_patch_merge_type="spatial_unpad"``); the Hugging Face port ``transformers/models/llava_next``
(``variant="hf"``, see :func:`hf_candidates`).

Steps, as the code does them (tile t = 336, CLIP ViT-L/14 -> 24 x 24 features per tile), each described
where it is computed: 1. choose the canvas (:func:`plan`); 2. resize and pad onto it
(:func:`resize_and_pad_geometry`); 3. row-major 336 x 336 crops and 4. the squashed global view, placed
before the tiles (:func:`render`); 5. the LLM's tokens ``576 + h' * w' + h'`` after ``unpad_image``
(:func:`unpad_shape`, :func:`token_layout`).

Paper vs code: the blog describes the grid set and "pad"-ding of the low-res image; the released code uses the
five pinpoints ``V16_PINPOINTS`` and squashes the global view (the FIXME, see :func:`render`). Both rules are
selectable here.
"""

from __future__ import annotations

import math

import numpy as np

from ..types import PATCH
from .base import (
    GlobalView,
    check_canvas_list,
    check_choice,
    grid_boxes,
    make_plan,
    pad_paste,
    resolution_table,
    select_best_resolution,
)
from .protocol import GLOBAL, ScoreTable, TokenBlock, tile_map, with_newlines

TITLE = "LLaVA-NeXT AnyRes"
TILE = 336
SIDE = TILE // PATCH  # 24 features per tile side
V16_PINPOINTS = ((336, 672), (672, 336), (672, 672), (1008, 336), (336, 1008))  # (W, H), released v1.6
# the blog's {2x2, 1x{2,3,4}, {2,3,4}x1} read as (cols x rows) tiles of 336, as (W, H)
PAPER_GRIDS = ((672, 672), (336, 672), (336, 1008), (336, 1344), (672, 336), (1008, 336), (1344, 336))
CANDIDATE_SETS = {"v1.6": V16_PINPOINTS, "paper": PAPER_GRIDS}

OPTIONS = {"candidates": "v1.6", "unpad": "original", "variant": "original"}
CONTROLS = {
    "candidates": ("choice", [("v1.6 pinpoints (released)", "v1.6"), ("paper grid set", "paper")]),
    "unpad": ("choice", [("original: int()", "original"), ("HF port: int(round(x, 7))", "hf")]),
    "variant": ("choice", [("original code: (W, H)", "original"),
                           ("HF transformers port: (H, W)", "hf")]),
}
VARIANTS = ("original", "hf")


def resolve(opts: dict) -> dict:
    cands = opts["candidates"]
    if isinstance(cands, str):
        cands = CANDIDATE_SETS[check_choice("candidates", cands, tuple(CANDIDATE_SETS))]
    else:
        cands = check_canvas_list("candidates", cands, TILE)
    unpad = check_choice("unpad", opts["unpad"], ("original", "hf"))
    variant = check_choice("variant", opts["variant"], VARIANTS)
    if variant == "hf":
        unpad = "hf"  # the port always rounds with int(round(x, 7))
    return {"candidates": cands, "unpad": unpad, "variant": variant}


def hf_candidates(candidates) -> tuple:
    """The canvases (W, H) the Hugging Face port scores for a pinpoint list written as the original's (W, H):
    it reads every pair as (height, width), i.e. swaps it.

    Original vs Hugging Face port (``variant="hf"``): the port reads both the image size and the
    ``image_grid_pinpoints`` as (height, width), while the original reads (width, height). The configs ship
    the same literal list ``[[336, 672], [672, 336], ...]``, so HF's candidate canvases are the original's
    with width and height swapped - the same *set* in a different *order*. Wherever the choice is decided by
    the scores nothing changes, but on a full tie the first candidate wins: every image that fits in
    336 x 336 ties on all candidates, and HF picks 1 row x 2 cols where the original picks 2 rows x 1 col
    (64 x 48: HF 1368 LLM tokens vs the original's 1026; 200 x 336: 936 vs 1576). The port also rounds
    ``unpad_image`` with ``int(round(x, 7))``; ``variant="hf"`` does both (the ``unpad`` option then has no
    say), ``unpad="hf"`` alone isolates the rounding.
    """
    return tuple((h, w) for w, h in candidates)


def resize_and_pad_geometry(image_size: tuple, target: tuple) -> tuple[tuple, tuple]:
    """``resize_and_pad_image`` without pixels: (resized (W, H), paste offset (x, y)).

    Step 2: the side that binds is filled exactly, the other is ``min(ceil(x * s), target)`` (note: *ceil*
    here, while step 1 scored candidates with *int* truncation), pasted centred with ``//2`` offsets on a
    black (0, 0, 0) canvas (:func:`render` uses PIL's ``resize`` default filter, BICUBIC for RGB).
    """
    (w, h), (tw, th) = image_size, target
    sw, sh = tw / w, th / h
    if sw < sh:
        nw, nh = tw, min(math.ceil(h * sw), th)
    else:
        nw, nh = min(math.ceil(w * sh), tw), th
    return (nw, nh), ((tw - nw) // 2, (th - nh) // 2)


def unpad_shape(image_size: tuple, feat_hw: tuple, mode: str = "original") -> dict:
    """``unpad_image`` on a (H, W) feature map, returning the kept shape and the intermediate numbers.

    Step 5: the tile features arranged as a (rows*24) x (cols*24) map lose the rows/cols that only saw
    padding. The unpadded length is computed with ``int()`` (original, ``mode="original"``) or
    ``int(round(x, 7))`` (HF port, ``mode="hf"``), then the map is sliced ``[pad : n - pad]`` with
    ``pad = (n - new) // 2`` - so when ``n - new`` is odd one extra padded row/col is *kept*.
    """
    w, h = image_size
    fh, fw = feat_hw
    trunc = (lambda x: int(x)) if mode == "original" else (lambda x: int(round(x, 7)))
    if w / h > fw / fh:  # image wider than the map: padding was added top and bottom
        new = trunc(h * (fw / w))
        pad = (fh - new) // 2
        kept = (fh - 2 * pad, fw)
        axis = "rows"
    else:
        new = trunc(w * (fh / h))
        pad = (fw - new) // 2
        kept = (fh, fw - 2 * pad)
        axis = "cols"
    return {"feature_map_hw": (fh, fw), "axis": axis, "new_length": new, "padding": pad, "unpadded_hw": kept}


def plan(image_size: tuple, opts: dict):
    """Step 1, ``select_best_resolution`` (shared helper in base.py): largest effective resolution, then least
    waste, first candidate on a full tie. Default candidates = the released v1.6 ``image_grid_pinpoints``
    [(336,672), (672,336), (672,672), (1008,336), (336,1008)] (W, H); ``candidates="paper"`` gives the blog's
    grid set {2x2, 1x{2,3,4}, {2,3,4}x1} x 336. Steps 2-5 follow on the chosen canvas."""
    cands = hf_candidates(opts["candidates"]) if opts["variant"] == "hf" else opts["candidates"]
    (cw, ch), scores = select_best_resolution(image_size, cands)
    rows, cols = ch // TILE, cw // TILE
    resize, (ox, oy) = resize_and_pad_geometry(image_size, (cw, ch))
    boxes, positions = grid_boxes(rows, cols, TILE)
    un = unpad_shape(image_size, (rows * SIDE, cols * SIDE), opts["unpad"])
    hh, ww = un["unpadded_hw"]
    tokens = SIDE * SIDE + hh * ww + hh
    formula = (f"{SIDE}x{SIDE} global + {hh}x{ww} unpadded tile features (of {rows * SIDE}x{cols * SIDE}) + "
               f"{hh} newlines = {SIDE * SIDE} + {hh * ww} + {hh} = {tokens}")
    return make_plan(
        method="llava_next", image_size=image_size, options=opts, tile_size=TILE, grid=(rows, cols),
        canvas_size=(cw, ch), resize_size=resize, content_box=(ox, oy, ox + resize[0], oy + resize[1]),
        fill=(0, 0, 0), tile_boxes=boxes, tile_positions=positions,
        global_views=(GlobalView("squash", (TILE, TILE), None, (0, 0, TILE, TILE)),),
        global_position="before",
        num_images=len(boxes) + 1, num_tokens=tokens, token_formula=formula,
        details={"candidates": scores, "unpad": un, "unpad_mode": opts["unpad"], "variant": opts["variant"]},
    )


def render(plan, image):
    """PIL pixels: canvas (resize + centred black pad), row-major crops, squashed global view.

    Step 3, ``divide_to_patches``: row-major 336 x 336 crops. Step 4, the global view: the *whole image
    squashed* to 336 x 336 (``image.resize((336, 336))``; the code carries a FIXME saying it "resizes instead
    of pad"), placed *before* the tiles.
    """
    from PIL import Image

    x, y = plan.content_box[:2]
    canvas = pad_paste(image, plan.canvas_size, plan.resize_size, (x, y), plan.fill, Image.BICUBIC)
    tiles = [canvas.crop(b) for b in plan.tile_boxes]
    return canvas, tiles, [image.resize((TILE, TILE), Image.BICUBIC)]


def unpad_slice(plan) -> tuple[int, int, int, int]:
    """(top, bottom, left, right) of the kept part of the stitched (rows*24, cols*24) feature map."""
    un = plan.details["unpad"]
    fh, fw = un["feature_map_hw"]
    pad = un["padding"]
    if un["axis"] == "rows":
        return pad, fh - pad, 0, fw
    return 0, fh, pad, fw - pad


def token_layout(plan) -> list[TokenBlock]:
    """``llava_arch.py`` with ``spatial_unpad``: the global view's 24×24 features, then the tiles' stitched
    feature map, unpadded (:func:`unpad_shape`), with one ``image_newline`` token after each row:
    576 global tokens + h' * w' + h' newlines = 576 + h'·(w' + 1)."""
    top, bottom, left, right = unpad_slice(plan)
    kept = tile_map(plan, (SIDE, SIDE))[top:bottom, left:right]  # the unpadded (h', w') map
    return [TokenBlock(f"1 · global view {SIDE}×{SIDE}", np.full((SIDE, SIDE), GLOBAL)),
            TokenBlock(f"2 · tiles, unpadded {kept.shape[0]}×{kept.shape[1]} + {kept.shape[0]} newlines",
                       with_newlines(kept))]


def score_table(plan) -> ScoreTable:
    """select_best_resolution's effective and wasted resolution for every candidate canvas."""
    return resolution_table(plan.details["candidates"])

