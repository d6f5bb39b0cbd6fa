"""InternVL dynamic high resolution (InternVL 1.5 / 2 / 2.5). Taught in `deepseek_vl2_and_internvl`.

Paper: Chen et al., "How Far Are We to GPT-4V? Closing the Gap to Commercial Multimodal Models with
Open-Source Suites" (InternVL 1.5, arXiv:2404.16821), Section 3.3 "Dynamic High-Resolution".
Reference code: OpenGVLab/InternVL ``internvl_chat/internvl/train/dataset.py`` (``dynamic_preprocess``,
``find_closest_aspect_ratio``); the model cards' ``load_image`` use the same functions with max_num=12.

Steps (tile t = 448, InternViT/14 + pixel shuffle -> 256 tokens per tile), each described where it is
computed: 1. the candidate grids (:func:`target_ratios`); 2. the closest aspect ratio, with an area tie-break
(:func:`closest_aspect_ratio`); 3.-4. a distorting resize, row-major crops and a squashed thumbnail, last and
only when there is more than one tile (:func:`render`); 5. tokens: 256 per image.

Paper vs code: the paper says "the aspect ratio closest" and shows max 12 tiles; the area tie-break rule and
the thumbnail-only-when-tiled rule exist only in the code.
"""

from __future__ import annotations

from functools import lru_cache

from .base import GlobalView, check_int, grid_boxes, make_plan
from .protocol import ScoreTable
from .protocol import uniform_layout as token_layout  # noqa: F401  (256 = 16×16 tokens per image)

TITLE = "InternVL dynamic high resolution"
# The reference's ratios are (i, j) = (cols, rows); the plan's grid is Grid(rows, cols): converted in plan()
# and score_table().
TILE = 448
TOKENS_PER_IMAGE = 256
MAX_TILES = 64

OPTIONS = {"max_num": 12, "min_num": 1}
CONTROLS = {"max_num": ("int", 1, 40), "min_num": ("int", 1, 12)}


def resolve(opts: dict) -> dict:
    lo = check_int("min_num", opts["min_num"], 1, MAX_TILES)
    hi = check_int("max_num", opts["max_num"], 1, MAX_TILES)
    if lo > hi:
        raise ValueError(f"min_num ({lo}) must be <= max_num ({hi})")
    return {"max_num": hi, "min_num": lo}


@lru_cache(maxsize=256)
def target_ratios(min_num: int, max_num: int) -> tuple:
    """Candidate (cols, rows) grids in the reference's order (a set, sorted by tile count).

    Step 1: grid candidates (i, j) = (cols, rows) with min_num <= i*j <= max_num, built as the code does: a
    Python ``set`` filled by ``for n in range(min_num, max_num+1): for i in 1..n: for j in 1..n``, then
    ``sorted(..., key=i*j)``. Within one product the order is the set's iteration order (deterministic in
    CPython for small int tuples); it is reproduced by building the same set.
    """
    grids = {(i, j) for n in range(min_num, max_num + 1) for i in range(1, n + 1) for j in range(1, n + 1)
             if min_num <= i * j <= max_num}
    return tuple(sorted(grids, key=lambda g: g[0] * g[1]))


def closest_aspect_ratio(image_size: tuple, ratios: tuple) -> tuple[tuple, list]:
    """``find_closest_aspect_ratio`` with the area tie-break: (cols, rows) and a per-candidate list.

    Step 2: smallest |W/H - i/j| wins (strict ``<``); on an *exact* tie the later (larger) grid replaces the
    current best only if the image area W*H > 0.5 * 448**2 * i * j - so 896x896 goes 2x2, but 448x448 stays
    1x1.
    """
    w, h = image_size
    aspect, area = w / h, w * h
    best, best_diff = (1, 1), float("inf")
    rows = []
    for i, j in ratios:
        diff = abs(aspect - i / j)
        if diff < best_diff:
            best, best_diff, event = (i, j), diff, "better"
        elif diff == best_diff:
            if area > 0.5 * TILE * TILE * i * j:
                best, event = (i, j), "tie: replaces (area large enough)"
            else:
                event = "tie: kept previous (area too small)"
        else:
            event = ""
        rows.append({"ratio": (i, j), "aspect": i / j, "aspect_diff": diff, "event": event, "chosen": False})
    for r in rows:
        r["chosen"] = r["ratio"] == best
    return best, rows


def plan(image_size: tuple, opts: dict):
    (cols, rows), scores = closest_aspect_ratio(image_size, target_ratios(opts["min_num"], opts["max_num"]))
    canvas = (cols * TILE, rows * TILE)
    boxes, positions = grid_boxes(rows, cols, TILE)
    views = (GlobalView("squash", (TILE, TILE), None, (0, 0, TILE, TILE)),) if len(boxes) != 1 else ()
    n_images = len(boxes) + len(views)
    thumb = " + 1 thumbnail" if views else " (no thumbnail for a single tile)"
    formula = (f"{n_images} images ({rows}x{cols} tiles{thumb}) x {TOKENS_PER_IMAGE} = "
               f"{n_images * TOKENS_PER_IMAGE}")
    return make_plan(
        method="internvl", image_size=image_size, options=opts, tile_size=TILE, grid=(rows, cols),
        canvas_size=canvas, resize_size=canvas, content_box=(0, 0) + canvas, fill=None, tile_boxes=boxes,
        tile_positions=positions, global_views=views, global_position="after" if views else None,
        num_images=n_images, num_tokens=n_images * TOKENS_PER_IMAGE, token_formula=formula,
        details={"candidates": scores, "target_ratios": target_ratios(opts["min_num"], opts["max_num"])},
    )


def render(plan, image):
    """PIL pixels: distorting BICUBIC resize, row-major crops, squashed thumbnail if more than one tile.

    Step 3: distorting resize to (448*i, 448*j) with PIL's default filter (``image.resize(size)`` -> BICUBIC
    for RGB); the later ``T.Resize((448, 448), BICUBIC)`` is a no-op on the 448 crops. Step 4: row-major
    crops; the thumbnail (whole image squashed to 448 x 448, PIL default BICUBIC) is appended *last*, and only
    if there is more than one tile (``use_thumbnail and len(tiles) != 1``).
    """
    from PIL import Image

    canvas = image.resize(plan.canvas_size, Image.BICUBIC)
    tiles = [canvas.crop(b) for b in plan.tile_boxes]
    views = [image.resize((TILE, TILE), Image.BICUBIC) for _ in plan.global_views]
    return canvas, tiles, views


def score_table(plan) -> ScoreTable:
    """|W/H − cols/rows| for every candidate grid, with the tie events of the area rule."""
    data = tuple({"grid": (r["ratio"][1], r["ratio"][0]), "aspect_diff": float(r["aspect_diff"]),
                  "event": r["event"], "chosen": bool(r["chosen"])} for r in plan.details["candidates"])
    return ScoreTable(
        kind="aspect",
        rule="find_closest_aspect_ratio: smallest |W/H − cols/rows|; exact ties go by image area.",
        columns=("grid (rows×cols)", "|W/H − cols/rows|", "event"),
        rows=tuple((f"{d['grid'][0]}×{d['grid'][1]}", f"{d['aspect_diff']:.4f}", d["event"]) for d in data),
        chosen=tuple(d["chosen"] for d in data), data=data)
