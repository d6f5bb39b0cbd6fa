"""Every tiling method of the tutorial as an inspectable plan. Taught in notebooks 02-06, used by 09-11.

    from anyres_tutorial import tiling
    p = tiling.plan("llava_next", (800, 600))          # pure geometry from (width, height)
    p.grid, p.canvas_size, p.num_images, p.num_tokens   # (2, 2), (672, 672), 5, 2340
    batch = tiling.apply(p, pil_image)                  # batch.tensor: (N, 3, t, t) in [0, 1]

Methods (tutorial order): template, llava_next, ureader, deepseek_vl2, internvl, llava_mini. One file per
method; ``base.py`` holds the shared ``Plan``/``GlobalView``, size checks and LLaVA's select_best_resolution.
Sizes are (width, height) everywhere.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from . import deepseek_vl2, internvl, llava_mini, llava_next, template, ureader
from .base import MAX_ASPECT, MAX_SIDE, GlobalView, Plan, check_size, select_best_resolution, to_rgb_image

METHODS = ("template", "llava_next", "ureader", "deepseek_vl2", "internvl", "llava_mini")
_MODULES = {
    "template": template,
    "llava_next": llava_next,
    "ureader": ureader,
    "deepseek_vl2": deepseek_vl2,
    "internvl": internvl,
    "llava_mini": llava_mini,
}


def _module(method: Any):
    if not isinstance(method, str) or method not in _MODULES:
        raise ValueError(f"unknown tiling method {method!r}; choose one of {METHODS}")
    return _MODULES[method]


def method_options(method: str) -> dict:
    """Documented option names of ``method`` and their defaults (the widgets build their controls from it)."""
    return dict(_module(method).OPTIONS)


def plan(method: str, image_size: Any, **options: Any) -> Plan:
    """Plan how ``method`` tiles an image of ``image_size = (width, height)``; pure geometry, no pixels.

    Unknown methods or bad option values raise ValueError, unknown option names TypeError, bad sizes
    ValueError/TypeError (see ``base.check_size``: positive ints, aspect ratio at most 100:1).
    """
    mod = _module(method)
    size = check_size(image_size)
    unknown = set(options) - set(mod.OPTIONS)
    if unknown:
        raise TypeError(f"unknown option(s) {sorted(unknown)} for method {method!r}; "
                        f"valid options: {sorted(mod.OPTIONS)}")
    opts = mod.resolve({**mod.OPTIONS, **options})
    return mod.plan(size, opts)


@dataclass
class TiledImages:
    """The result of ``apply``: what the vision encoder sees, plus PIL images for pictures.

    tensor: (N, 3, t, t) float32 in [0, 1], *not* normalised (callers apply the ViT's normalize()), in the
    order the encoder sees them (global views before/after the tiles as the method does); labels: one string
    per row ("global" or "r{row}c{col}"); tiles / global_views: PIL images; canvas: the resized/padded canvas.
    """

    tensor: Any
    tiles: list
    global_views: list
    canvas: Any
    labels: list


def apply(plan: Plan, image: Any) -> TiledImages:
    """Cut ``image`` (a PIL image or (H, W, 3) uint8 array of size ``plan.image_size``) as ``plan`` says."""
    from .base import pil_to_tensor

    if not isinstance(plan, Plan):
        raise TypeError(f"apply() needs a Plan from tiling.plan(), got {type(plan).__name__}")
    img = to_rgb_image(image)
    if img.size != tuple(plan.image_size):
        raise ValueError(f"image size {img.size} does not match the plan's image_size {plan.image_size}")
    canvas, tiles, views = _module(plan.method).render(plan, img)
    tile_labels = [f"r{r}c{c}" for r, c in plan.tile_positions]
    view_labels = ["global"] if len(views) == 1 else [f"global{i}" for i in range(len(views))]
    if plan.global_position == "before":
        ordered, labels = views + tiles, view_labels + tile_labels
    else:
        ordered, labels = tiles + views, tile_labels + view_labels
    t = plan.tile_size
    assert all(im.size == (t, t) for im in ordered), "every encoder image must be t x t"
    tensor = pil_to_tensor(ordered)  # (N, 3, t, t)
    assert tensor.shape[0] == plan.num_images
    return TiledImages(tensor=tensor, tiles=tiles, global_views=views, canvas=canvas, labels=labels)


__all__ = ["METHODS", "plan", "apply", "method_options", "Plan", "GlobalView", "TiledImages", "check_size",
           "select_best_resolution", "MAX_ASPECT", "MAX_SIDE"]
