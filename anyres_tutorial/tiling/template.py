"""Template tiling: the generic recipe the other methods refine. Taught in `tiling_basics`.

Source: the textbook baseline that the other methods refine (no paper or reference code of its own).
Recipe, with tile t = 384 and templates 1:1, 1:2, 2:1, 2:2 (written cols:rows, i.e. width:height in tiles):

1. map the image to the closest template: smallest |log(W/H) - log(cols/rows)| (log, so that portrait and
   landscape are treated alike); among templates of equal aspect (1:1 and 2:2) take the smallest canvas that
   holds the image without downscaling, or the largest one if none does; remaining ties: list order;
2. resize keeping the aspect ratio so the image touches the canvas boundary (the binding side is exact, the
   other is ``round``-ed), centre it and pad the rest with ``fill`` (black by default);
3. split the canvas into row-major t x t tiles;
4. add a global t x t thumbnail of the whole image (aspect-preserving pad by default, or a squash);
5. concatenate tiles and thumbnail in the batch dimension (thumbnail after the tiles by default).

Example: 500x800 (W x H) -> template 1:2 -> canvas 384x768 (image 384x614 inside) -> 2 tiles + 1 thumbnail.
Tokens: every encoder image gives (t // patch_size)**2 tokens (no compression, no newline tokens).
Resampling: PIL BICUBIC. Limits (``resolve``, before any plan): at most ``base.MAX_TILES`` tiles per template
and ``base.MAX_TOKENS`` tokens per image for the largest template.
"""

from __future__ import annotations

import math

from .base import (
    MAX_TILES,
    MAX_TOKENS,
    GlobalView,
    check_choice,
    check_int,
    check_pair_list,
    check_rgb,
    grid_boxes,
    make_plan,
    pad_paste,
)
from .protocol import ScoreTable
from .protocol import uniform_layout as token_layout  # noqa: F401  (every image gives (t // patch)**2 tokens)

TITLE = "Template tiling (generic)"
# Templates are written (cols, rows) = width:height in tiles, as the recipe states them; the plan's grid is
# Grid(rows, cols): the conversion happens in plan() and score_table().
DEFAULT_TEMPLATES = ((1, 1), (1, 2), (2, 1), (2, 2))  # (cols, rows)
_TEMPLATES_3X3 = tuple((c, r) for r in (1, 2, 3) for c in (1, 2, 3))

OPTIONS = {
    "tile_size": 384,
    "templates": DEFAULT_TEMPLATES,
    "fill": (0, 0, 0),
    "thumbnail": "pad",
    "global_position": "after",
    "patch_size": 14,
}

CONTROLS = {
    "tile_size": ("choice", [("224", 224), ("336", 336), ("384 (default)", 384), ("448", 448)]),
    "templates": ("choice", [("1:1, 1:2, 2:1, 2:2 (default)", DEFAULT_TEMPLATES),
                             ("every grid up to 3x3", _TEMPLATES_3X3)]),
    "thumbnail": ("choice", [("pad (keep aspect)", "pad"), ("squash", "squash")]),
    "fill": ("choice", [("black", (0, 0, 0)), ("grey", (127, 127, 127)), ("white", (255, 255, 255))]),
    "global_position": ("choice", [("after the tiles", "after"), ("before the tiles", "before")]),
}


def resolve(opts: dict) -> dict:
    t = check_int("tile_size", opts["tile_size"], 14, 4096)
    templates = check_pair_list("templates", opts["templates"], max_len=64)
    for c, r in templates:
        if c * r > MAX_TILES:
            raise ValueError(f"templates: {c}:{r} has {c * r:,} tiles, more than the supported {MAX_TILES}")
    patch = check_int("patch_size", opts["patch_size"], 1, t)
    most = (max(c * r for c, r in templates) + 1) * (t // patch) ** 2  # largest template + thumbnail
    if most > MAX_TOKENS:
        raise ValueError(f"template tiling with tile_size={t}, patch_size={patch} and these templates can "
                         f"give {most:,} tokens per image, more than the supported {MAX_TOKENS:,}; choose a "
                         f"larger patch_size, a smaller tile_size or smaller templates")
    return {
        "tile_size": t,
        "templates": templates,
        "fill": check_rgb("fill", opts["fill"]),
        "thumbnail": check_choice("thumbnail", opts["thumbnail"], ("pad", "squash")),
        "global_position": check_choice("global_position", opts["global_position"], ("before", "after")),
        "patch_size": patch,
    }


def fit_inside(size: tuple, box: tuple) -> tuple[tuple, tuple]:
    """Aspect-preserving fit of ``size`` into ``box`` (both (W, H)): (resized size, centred offset)."""
    (w, h), (bw, bh) = size, box
    if bw / w <= bh / h:  # width binds
        nw, nh = bw, min(bh, max(1, round(h * bw / w)))
    else:  # height binds
        nw, nh = min(bw, max(1, round(w * bh / h))), bh
    return (nw, nh), ((bw - nw) // 2, (bh - nh) // 2)


def choose_template(image_size: tuple, templates: tuple, t: int) -> tuple[tuple, list]:
    """The closest template (cols, rows) and a per-template score list for pictures."""
    w, h = image_size
    log_ar = math.log(w / h)
    rows = [{"template": (c, r), "aspect": c / r, "log_distance": abs(log_ar - math.log(c / r)),
             "covers_image": c * t >= w and r * t >= h, "chosen": False} for c, r in templates]
    best_d = min(x["log_distance"] for x in rows)
    closest = [x for x in rows if x["log_distance"] == best_d]
    covering = [x for x in closest if x["covers_image"]]
    area = lambda x: x["template"][0] * x["template"][1]
    if covering:
        pick = min(covering, key=area)  # min() keeps the first of equal areas
    else:
        pick = max(closest, key=lambda x: (area(x), -rows.index(x)))
    pick["chosen"] = True
    return pick["template"], rows


def plan(image_size: tuple, opts: dict):
    t = opts["tile_size"]
    (cols, rows), scores = choose_template(image_size, opts["templates"], t)
    canvas = (cols * t, rows * t)
    resize, (ox, oy) = fit_inside(image_size, canvas)
    content = (ox, oy, ox + resize[0], oy + resize[1])
    boxes, positions = grid_boxes(rows, cols, t)
    if opts["thumbnail"] == "pad":
        (tw, th), (tx, ty) = fit_inside(image_size, (t, t))
        view = GlobalView("pad", (t, t), opts["fill"], (tx, ty, tx + tw, ty + th))
    else:
        view = GlobalView("squash", (t, t), None, (0, 0, t, t))
    n_images = len(boxes) + 1
    per = (t // opts["patch_size"]) ** 2
    formula = (f"{n_images} images ({len(boxes)} tiles + 1 thumbnail) x ({t}//{opts['patch_size']})^2 = "
               f"{n_images} x {per} = {n_images * per}")
    return make_plan(
        method="template", image_size=image_size, options=opts, tile_size=t, grid=(rows, cols),
        canvas_size=canvas, resize_size=resize, content_box=content, fill=opts["fill"], tile_boxes=boxes,
        tile_positions=positions, global_views=(view,), global_position=opts["global_position"],
        num_images=n_images, num_tokens=n_images * per, token_formula=formula,
        details={"templates": scores, "tokens_per_image": per}, patch_size=opts["patch_size"],
    )


def score_table(plan) -> ScoreTable:
    """The log-aspect distance of every template and whether it holds the image without downscaling."""
    data = tuple({"grid": (r["template"][1], r["template"][0]), "log_distance": float(r["log_distance"]),
                  "covers_image": bool(r["covers_image"]), "chosen": bool(r["chosen"])}
                 for r in plan.details["templates"])
    return ScoreTable(
        kind="template",
        rule="Closest template in log aspect ratio; equal aspect: the smallest that holds the image.",
        columns=("template (rows×cols)", "|log aspect distance|", "holds image unscaled"),
        rows=tuple((f"{d['grid'][0]}×{d['grid'][1]}", f"{d['log_distance']:.3f}",
                    "yes" if d["covers_image"] else "no") for d in data),
        chosen=tuple(d["chosen"] for d in data), data=data)


def render(plan, image):
    """PIL pixels for a template plan: (canvas, tiles, global views)."""
    from PIL import Image

    cl, ct = plan.content_box[:2]
    canvas = pad_paste(image, plan.canvas_size, plan.resize_size, (cl, ct), plan.fill, Image.BICUBIC)
    tiles = [canvas.crop(b) for b in plan.tile_boxes]
    view = plan.global_views[0]
    if view.kind == "pad":
        x0, y0, x1, y1 = view.content_box
        thumb = pad_paste(image, view.size, (x1 - x0, y1 - y0), (x0, y0), view.fill, Image.BICUBIC)
    else:
        thumb = image.resize(view.size, Image.BICUBIC)
    return canvas, tiles, [thumb]
