"""DeepSeek-VL2 dynamic tiling. Taught in `deepseek_vl2_and_internvl`.

Paper: Wu et al., "DeepSeek-VL2: Mixture-of-Experts Vision-Language Models for Advanced Multimodal
Understanding" (arXiv:2412.10302), Section 2 "Dynamic Tiling Strategy".
Reference code: deepseek-ai/DeepSeek-VL2 ``deepseek_vl2/models/processing_deepseek_vl_v2.py``
(``select_best_resolution``, ``DeepseekVLV2Processor.tokenize_with_images``) and
``deepseek_vl2/models/modeling_deepseek_vl_v2.py`` (2-D tile tag, ``global_view_pos="head"``).

Steps (tile t = 384, SigLIP-SO400M/14 -> 27 x 27 features, 2x2 pixel-unshuffle -> 14 x 14 tokens per view),
each described where it is computed: 1.-2. choose the canvas among 23 candidates, or a single tile when the
prompt holds more than two images (:func:`plan`); 3.-4. ``ImageOps.pad`` the image onto the canvas, cut it
into crops, and pad it whole to the 384 x 384 global view, placed first (:func:`pad_geometry`,
:func:`render`); 5. the LLM's tokens, ``210 + 1 + 14*rows*(14*cols + 1)`` (:func:`token_layout`).

Paper vs code: the paper describes the candidate set and the global-first layout as the code does; it does
not mention the "no tiling beyond two images" rule, which lives only in the processor.
"""

from __future__ import annotations

import math

import numpy as np

from ..types import PATCH
from .base import (
    GlobalView,
    check_canvas_list,
    check_int,
    grid_boxes,
    make_plan,
    pad_paste,
    resolution_table,
    select_best_resolution,
)
from .protocol import EXTRA, GLOBAL, ScoreTable, TokenBlock, no_search, tile_map, with_newlines

TITLE = "DeepSeek-VL2 dynamic tiling"
TILE = 384
DOWNSAMPLE = 2
SIDE = math.ceil((TILE // PATCH) / DOWNSAMPLE)  # 14 tokens per side per view
FILL = tuple(int(x * 255) for x in (0.5, 0.5, 0.5))  # (127, 127, 127)
# (W, H), the order of the released candidate_resolutions
CANDIDATES = (
    (384, 384), (384, 768), (768, 384), (384, 1152), (1152, 384), (384, 1536), (1536, 384), (768, 768),
    (384, 1920), (1920, 384), (384, 2304), (2304, 384), (768, 1152), (1152, 768), (384, 2688), (2688, 384),
    (384, 3072), (3072, 384), (768, 1536), (1536, 768), (384, 3456), (3456, 384), (1152, 1152),
)

OPTIONS = {"candidates": "default", "images_in_prompt": 1}
CONTROLS = {"images_in_prompt": ("int", 1, 5)}


def resolve(opts: dict) -> dict:
    c = opts["candidates"]
    if isinstance(c, str):
        if c != "default":
            raise ValueError(f"candidates must be 'default' or a sequence of (W, H) pairs, got {c!r}")
        c = CANDIDATES
    else:
        c = check_canvas_list("candidates", c, TILE)
    n = check_int("images_in_prompt", opts["images_in_prompt"], 1, 1000)
    return {"candidates": c, "images_in_prompt": n}


def pad_geometry(image_size: tuple, size: tuple) -> tuple[tuple, tuple]:
    """``PIL.ImageOps.pad`` without pixels: (resized (W, H), paste offset (x, y)).

    Step 3 (and 4 for the global view): aspect-preserving BICUBIC resize (the non-binding side is
    ``round``-ed, Python's half-to-even) and a centred paste at ``round(diff * 0.5)``, on the mean colour
    ``int(0.5*255)`` = (127, 127, 127). Geometry follows the installed Pillow's ``ImageOps.pad``
    (``contain`` + rounded centring; Pillow >= 9.5).
    """
    (w, h), (bw, bh) = image_size, size
    im_ratio, dest_ratio = w / h, bw / bh
    rw, rh = bw, bh
    if im_ratio != dest_ratio:
        if im_ratio > dest_ratio:
            rh = round(h / w * bw)
        else:
            rw = round(w / h * bh)
    if (rw, rh) == (bw, bh):
        return (bw, bh), (0, 0)
    if rw != bw:
        return (rw, rh), (round((bw - rw) * 0.5), 0)
    return (rw, rh), (0, round((bh - rh) * 0.5))


def plan(image_size: tuple, opts: dict):
    """Step 1, candidate canvases (m*384, n*384) with m*n <= 9: 23 canvases, in the order of the released
    ``candidate_resolutions``; the *same* ``select_best_resolution`` as LLaVA-NeXT (shared in base.py).
    Step 2: only if the prompt holds at most two images (``cropping = len(images) <= 2``); with more images
    (option ``images_in_prompt``) the canvas is a single 384 x 384 tile."""
    cropping = opts["images_in_prompt"] <= 2
    if cropping:
        (cw, ch), scores = select_best_resolution(image_size, opts["candidates"])
    else:
        (cw, ch), scores = (TILE, TILE), []
    rows, cols = ch // TILE, cw // TILE
    resize, (ox, oy) = pad_geometry(image_size, (cw, ch))
    (gw, gh), (gx, gy) = pad_geometry(image_size, (TILE, TILE))
    boxes, positions = grid_boxes(rows, cols, TILE)
    g_tok, l_tok = SIDE * (SIDE + 1), (rows * SIDE) * (cols * SIDE + 1)
    tokens = g_tok + 1 + l_tok
    formula = (f"global {SIDE}x({SIDE}+1) + 1 separator + local ({rows}*{SIDE})x({cols}*{SIDE}+1) = "
               f"{g_tok} + 1 + {l_tok} = {tokens}")
    return make_plan(
        method="deepseek_vl2", image_size=image_size, options=opts, tile_size=TILE, grid=(rows, cols),
        canvas_size=(cw, ch), resize_size=resize, content_box=(ox, oy, ox + resize[0], oy + resize[1]),
        fill=FILL, tile_boxes=boxes, tile_positions=positions,
        global_views=(GlobalView("pad", (TILE, TILE), FILL, (gx, gy, gx + gw, gy + gh)),),
        global_position="before", num_images=len(boxes) + 1, num_tokens=tokens, token_formula=formula,
        # images_spatial_crop is the reference's (cols, rows) = (width, height) in tiles; grid is (rows, cols)
        details={"candidates": scores, "cropping": cropping, "images_spatial_crop": (cols, rows)},
    )


def render(plan, image):
    """PIL pixels: ImageOps.pad-style canvas and global view (BICUBIC, mean-colour fill), row-major crops.

    Step 3, local view: ``PIL.ImageOps.pad`` onto the canvas (:func:`pad_geometry`), then row-major 384 crops.
    Step 4, global view: ``ImageOps.pad`` of the whole image to 384 x 384 (same colour), placed *first*
    ("head").
    """
    from PIL import Image

    x, y = plan.content_box[:2]
    canvas = pad_paste(image, plan.canvas_size, plan.resize_size, (x, y), plan.fill, Image.BICUBIC)
    tiles = [canvas.crop(b) for b in plan.tile_boxes]
    view = plan.global_views[0]
    x0, y0, x1, y1 = view.content_box
    glob = pad_paste(image, view.size, (x1 - x0, y1 - y0), (x0, y0), view.fill, Image.BICUBIC)
    return canvas, tiles, [glob]


def token_layout(plan) -> list[TokenBlock]:
    """``modeling_deepseek_vl_v2.py`` with the global view at the head: global 14×14 with a newline per row,
    one view-separator token, then the local (14·rows)×(14·cols) map with a newline per row.

    Step 5: h = w = ceil((384 // 14) / 2) = 14. Global 14 x (14 + 1) (a newline per row), 1 view separator,
    local (rows*14) x (cols*14 + 1): ``210 + 1 + 14*rows*(14*cols + 1)``.
    """
    rows, cols = plan.grid
    glob = with_newlines(np.full((SIDE, SIDE), GLOBAL))  # (14, 15)
    local = with_newlines(tile_map(plan, (SIDE, SIDE)))  # (14 rows, 14 cols + 1)
    return [TokenBlock(f"1 · global {SIDE}×{SIDE} + {SIDE} newlines", glob),
            TokenBlock("2 · view\nseparator", np.full((1, 1), EXTRA)),
            TokenBlock(f"3 · local {SIDE * rows}×{SIDE * cols} + newlines", local)]


def score_table(plan) -> ScoreTable:
    """select_best_resolution's table; with more than two images in the prompt no candidate is compared."""
    if not plan.details["cropping"]:
        n = plan.options["images_in_prompt"]
        return no_search(f"More than two images in the prompt ({n}): no tiling, one {TILE}×{TILE} view.")
    return resolution_table(plan.details["candidates"])
