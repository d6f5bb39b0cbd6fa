"""LLaVA-Mini high-resolution split. Taught in `llava_mini` (which also teaches the compression).

Paper: Zhang et al., "LLaVA-Mini: Efficient Image and Video Large Multimodal Models with One Vision Token"
(ICLR 2025, arXiv:2501.03895), Section 4 "high-resolution image" variant.
Reference code: ictnlp/LLaVA-Mini ``llavamini/eval/run_llava_mini.py`` (``split_image``, then
``process_images``) and ``llavamini/model/llavamini_arch.py`` (``encode_images_mini``: the N*N block features
are stitched into one (N*24) x (N*24) map, the compressor turns it into C*C queries; the last image, the whole
picture, only feeds the modality pre-fusion layers).

Steps (tile t = 336, CLIP ViT-L/14-336), each described where it is computed: 1. ``split_image`` into N x N
blocks, remainder dropped (:func:`split_image`), full image last (:func:`plan`); 2. every image to a 336 x 336
view, padded or cropped (``_view``, called by :func:`render`); 3. C*C compressed tokens for the LLM
(:func:`token_layout`).

Paper vs code: the paper's high-resolution variant splits into N x N sub-images plus the global image; the
training dataset pads the *whole* image to a square before splitting, while the inference script (followed
here) splits first and pads each block. Which ``image_aspect_ratio`` the released checkpoint sets could not be
checked offline, hence the ``view`` option.
"""

from __future__ import annotations

import numpy as np

from ..types import PATCH
from .base import GlobalView, check_choice, check_int, make_plan
from .protocol import GLOBAL, ScoreTable, TokenBlock, no_search

TITLE = "LLaVA-Mini split + compression"
TILE = 336
MEAN_FILL = tuple(int(x * 255) for x in (0.48145466, 0.4578275, 0.40821073))  # (122, 116, 104)

OPTIONS = {"resolution_ratio": 2, "compressor_size": 1, "view": "pad"}
CONTROLS = {
    "resolution_ratio": ("int", 1, 4),
    "compressor_size": ("int", 1, 8),
    "view": ("choice", [("pad (expand2square)", "pad"), ("crop (CLIP centre crop)", "crop")]),
}


def resolve(opts: dict) -> dict:
    return {
        "resolution_ratio": check_int("resolution_ratio", opts["resolution_ratio"], 1, 8),
        "compressor_size": check_int("compressor_size", opts["compressor_size"], 1, 64),
        "view": check_choice("view", opts["view"], ("pad", "crop")),
    }


def view_content(size: tuple, mode: str) -> tuple:
    """Where a w x h picture lands inside its 336 x 336 view (pad: expand2square then resize; crop: full)."""
    w, h = size
    if mode == "crop" or w == h:
        return (0, 0, TILE, TILE)
    side = max(w, h)
    x, y = (side - w) // 2, (side - h) // 2
    return (x * TILE / side, y * TILE / side, (x + w) * TILE / side, (y + h) * TILE / side)


def split_image(image_size: tuple, n: int) -> tuple[tuple, tuple, tuple]:
    """Step 1, ``split_image(image, n)``: n x n blocks of ``W // n`` x ``H // n`` pixels, row-major.

    The remainder (``W % n`` columns on the right, ``H % n`` rows at the bottom) is *dropped*. Returns the
    block boxes (x0, y0, x1, y1) in image pixels, their (row, col) and the kept part of the image (W, H).
    """
    w, h = image_size
    if w < n or h < n:
        raise ValueError(f"image_size={w}x{h} is too small to split into {n}x{n} blocks "
                         f"(each side must be >= {n})")
    bw, bh = w // n, h // n  # integer division: the last W % n columns and H % n rows are lost
    boxes = tuple((j * bw, i * bh, (j + 1) * bw, (i + 1) * bh) for i in range(n) for j in range(n))
    positions = tuple((i, j) for i in range(n) for j in range(n))
    return boxes, positions, (n * bw, n * bh)


def plan(image_size: tuple, opts: dict):
    """The blocks of :func:`split_image`, then the full image appended *last* (with n = 1 only the full image
    is used), every one to a 336 x 336 view; C x C tokens for the LLM.

    Geometry notes: ``tile_boxes`` here are the *blocks* in image coordinates (not t x t crops: each block is
    then scaled to t x t); ``canvas_size`` is the image minus the dropped remainder; ``tile_content_boxes``
    give where a block's pixels land inside its 336 x 336 view (floats, since the pad happens before the
    resize, :func:`view_content`).
    """
    w, h = image_size
    n, c = opts["resolution_ratio"], opts["compressor_size"]
    boxes, positions, canvas = split_image(image_size, n)
    bw, bh = canvas[0] // n, canvas[1] // n
    kind = "pad" if opts["view"] == "pad" else "crop"
    fill = MEAN_FILL if kind == "pad" else None
    views = (GlobalView(kind, (TILE, TILE), fill, view_content((w, h), kind)),) if n > 1 else ()
    n_images = len(boxes) + len(views)
    dropped = w * h - canvas[0] * canvas[1]
    source = (f"the {n}x{n} blocks stitched; the full image only feeds the pre-fusion" if views
              else "the one encoder image")
    formula = f"{c}x{c} compressed tokens = {c * c} (one resampler over {source})"
    return make_plan(
        method="llava_mini", image_size=image_size, options=opts, tile_size=TILE, grid=(n, n),
        canvas_size=canvas, resize_size=canvas, content_box=(0, 0) + canvas, fill=fill, tile_boxes=boxes,
        tile_positions=positions, tile_content_boxes=tuple(view_content((bw, bh), kind) for _ in boxes),
        global_views=views, global_position="after" if views else None, num_images=n_images,
        num_tokens=c * c, token_formula=formula,
        details={"block_size": (bw, bh), "dropped_pixels": dropped, "view": kind,
                 "encoder_tokens": n_images * (TILE // PATCH) ** 2},
    )


def _view(image, mode: str, fill):
    """LLaVA's process_images for one picture: (pad to square +) CLIP resize / centre crop to 336.

    Step 2, every image (block or full image) becomes a 336 x 336 view: ``view="pad"`` (default; LLaVA-1.5
    ``image_aspect_ratio="pad"``): ``expand2square`` on the CLIP mean colour ``int(x*255)`` = (122, 116, 104)
    (offset ``(side - w) // 2``), then the CLIP processor's BICUBIC resize to 336 x 336; ``view="crop"``: the
    CLIP processor alone (shortest side -> 336 with ``int(336 * long / short)``, BICUBIC, centre crop 336 with
    ``(long - 336) // 2``), which cuts off the sides of non-square blocks.
    """
    from PIL import Image

    w, h = image.size
    if mode == "pad":
        if w != h:
            side = max(w, h)
            sq = Image.new("RGB", (side, side), fill)
            sq.paste(image, ((side - w) // 2, (side - h) // 2))
            image = sq
        return image.resize((TILE, TILE), Image.BICUBIC)
    short, long = min(w, h), max(w, h)
    new_long = int(TILE * long / short)
    nw, nh = (TILE, new_long) if w <= h else (new_long, TILE)
    image = image.resize((nw, nh), Image.BICUBIC)
    left, top = (nw - TILE) // 2, (nh - TILE) // 2
    return image.crop((left, top, left + TILE, top + TILE))


def render(plan, image):
    """PIL pixels: the image minus the remainder as canvas, one 336 view per block, the full image last."""
    canvas = image.crop(plan.content_box)
    fill = MEAN_FILL
    tiles = [_view(image.crop(b), plan.details["view"], fill) for b in plan.tile_boxes]
    views = [_view(image, v.kind, fill) for v in plan.global_views]
    return canvas, tiles, views


def token_layout(plan) -> list[TokenBlock]:
    """One C x C block: the compressor's queries read the N x N blocks stitched into one map (the whole
    image when N = 1); the full image appended for N > 1 gets no tokens of its own (it feeds the pre-fusion
    only).

    Step 3, the tokens the LLM receives for the image: C*C compressed tokens - one compressor over the
    stitched blocks (the full image is never compressed: it only feeds the pre-fusion layers), taken from the
    pre-fusion layers' *output* (see ``llm.connectors.LlavaMiniConnector``). The defaults here
    (``resolution_ratio`` 2, ``compressor_size`` C = 1) pair the high-resolution split with LLaVA-Mini's one
    token. The paper's LLaVA-Mini is 336 px with C = 1 (1 token); its LLaVA-Mini-HD is the 2 x 2 split with
    C = 8 (64 tokens); the training script's argument defaults are 2 and 2. Pass the options to get either;
    `llava_mini` shows both.
    """
    c, n = plan.options["compressor_size"], plan.options["resolution_ratio"]
    source = "the whole image" if n == 1 else f"the {n}×{n} blocks stitched"
    return [TokenBlock(f"{c}×{c} compressed ({source})", np.full((c, c), GLOBAL))]


def score_table(plan) -> ScoreTable:
    """LLaVA-Mini compares no candidates: the split is always N×N blocks plus the full image."""
    n = plan.options["resolution_ratio"]
    return no_search(f"LLaVA-Mini does not search candidates: it always splits the image into {n}×{n} blocks"
                     f"{' plus the full image' if n > 1 else ''} (see the `llava_mini` notebook).")
