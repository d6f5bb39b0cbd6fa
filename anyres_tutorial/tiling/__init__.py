"""Every tiling method of the tutorial as an inspectable plan, behind one registry.

Taught in `tiling_basics`, `llava_next_anyres`, `ureader_shape_adaptive`, `deepseek_vl2_and_internvl` and
`llava_mini`; used by `tiling_vs_packing`, `timing` and `grid_explorer`.

    from anyres_tutorial import tiling
    p = tiling.plan("llava_next", (800, 600))          # pure geometry from (width, height)
    p.grid, p.canvas_size, p.num_images, p.num_tokens   # Grid(2, 2), Size(672, 672), 5, 2340
    p.encoder_tokens()                                  # useful / padding / duplicated / CLS encoder tokens
    batch = tiling.apply(p, pil_image)                  # batch.tensor: (N, 3, t, t) in [0, 1]

Methods (tutorial order): template, llava_next, ureader, deepseek_vl2, internvl, llava_mini - one file each,
each a module following the protocol of ``protocol.py``. ``base.py`` holds the shared ``Plan`` (with the one
token accounting, ``Plan.encoder_tokens``), ``GlobalView`` and LLaVA's select_best_resolution.

Adding a method: write one object (a module is fine) with the attributes listed in ``protocol.py`` and call
``tiling.register("name", obj)``; ``tiling.METHODS``, ``plan``, ``apply``, every tiling picture, the explorer
and the benchmark then know it. Sizes are (width, height) and grids (rows, cols) everywhere.
"""

from __future__ import annotations

from dataclasses import dataclass
from functools import cached_property
from typing import Any

from ..registry import Registry
from . import deepseek_vl2, internvl, llava_mini, llava_next, template, ureader
from .base import (
    MAX_ASPECT,
    MAX_SIDE,
    EncoderTokens,
    GlobalView,
    Plan,
    check_size,
    pil_to_tensor,
    select_best_resolution,
    to_rgb_image,
)
from .protocol import ScoreTable, TilingMethod, TokenBlock, check_method

#: The tiling method the benchmark and the comparison use as their reference (its budget sizes the packing).
DEFAULT_METHOD = "llava_next"

#: The registered tiling methods (``names()``, ``get``, ``in``, iteration over the names, in tutorial order).
METHODS = Registry("tiling method")
get = METHODS.get
unregister = METHODS.unregister


def register(name: str, method: Any, *, replace: bool = False) -> Any:
    """Add a tiling method under ``name``: any object with the protocol's attributes (``protocol.py``).

    TypeError names any missing attribute; registering a taken name needs ``replace=True``. Returns the
    method, so ``register`` can decorate a class instance."""
    check_method(name, method)
    return METHODS.register(name, method, replace=replace)


def method_options(method: str) -> dict:
    """Documented option names of ``method`` and their defaults (the widgets build their controls from it)."""
    return dict(get(method).OPTIONS)


def plan(method: str, image_size: Any, **options: Any) -> Plan:
    """Plan how ``method`` tiles an image of ``image_size = (width, height)``; pure geometry, no pixels.

    Unknown methods or bad option values raise ValueError, unknown option names TypeError, bad sizes
    ValueError/TypeError (see ``checks.check_size``: positive ints, aspect ratio at most 100:1).
    """
    m = get(method)
    size = check_size(image_size)
    unknown = set(options) - set(m.OPTIONS)
    if unknown:
        raise TypeError(f"unknown option(s) {sorted(unknown)} for method {method!r}; "
                        f"valid options: {sorted(m.OPTIONS)}")
    p = m.plan(size, m.resolve({**m.OPTIONS, **options}))
    if not isinstance(p, Plan) or p.method != method:
        raise TypeError(f"tiling method {method!r} must return a Plan with method={method!r}, got "
                        f"{type(p).__name__}{'' if not isinstance(p, Plan) else f' for {p.method!r}'}")
    return p


def replan(p: Plan, **options: Any) -> Plan:
    """The same image and method as ``p`` with some options changed (e.g. UReader's score rule)."""
    return plan(p.method, p.image_size, **{**p.options, **options})


def token_layout(p: Plan) -> list[TokenBlock]:
    """The LLM's visual tokens of ``p`` as labelled blocks (the method's ``token_layout``), checked to add up
    to ``p.num_tokens``. Drawn by ``viz.token_strip``."""
    blocks = get(p.method).token_layout(p)
    n = sum(b.num_tokens for b in blocks)
    if n != p.num_tokens:
        raise RuntimeError(f"token layout of {p.method} has {n} tokens but the plan says {p.num_tokens}")
    return blocks


def score_table(p: Plan) -> ScoreTable:
    """The per-candidate numbers that decided ``p``'s grid (the method's ``score_table``)."""
    table = get(p.method).score_table(p)
    if not isinstance(table, ScoreTable):
        raise TypeError(f"{p.method}.score_table must return a ScoreTable, got {type(table).__name__}")
    return table


def title(method: str) -> str:
    """Display name of a method (its ``TITLE``)."""
    return get(method).TITLE


@dataclass
class TiledImages:
    """The result of ``apply``: what the vision encoder sees, plus PIL images for pictures.

    images: the t x t PIL images in the order the encoder sees them (global views before/after the tiles as
    the method does); tensor: the same as (N, 3, t, t) float32 in [0, 1], *not* normalised (callers apply the
    ViT's normalize()), made on first use (pictures need no torch); labels: one string per image ("global" or
    "r{row}c{col}"); tiles / global_views: PIL images; canvas: the resized/padded canvas.
    """

    images: list
    tiles: list
    global_views: list
    canvas: Any
    labels: list

    @cached_property
    def tensor(self):
        return pil_to_tensor(self.images)  # (N, 3, t, t)


def apply(plan: Plan, image: Any) -> TiledImages:
    """Cut ``image`` (a PIL image or (H, W, 3) uint8 array of size ``plan.image_size``) as ``plan`` says."""
    if not isinstance(plan, Plan):
        raise TypeError(f"apply() needs a Plan from tiling.plan(), got {type(plan).__name__}")
    img = to_rgb_image(image)
    if img.size != tuple(plan.image_size):
        raise ValueError(f"image size {img.size} does not match the plan's image_size "
                         f"{tuple(plan.image_size)}")
    canvas, tiles, views = get(plan.method).render(plan, img)
    tile_labels = [f"r{r}c{c}" for r, c in plan.tile_positions]
    view_labels = ["global"] if len(views) == 1 else [f"global{i}" for i in range(len(views))]
    if plan.global_position == "before":
        ordered, labels = views + tiles, view_labels + tile_labels
    else:
        ordered, labels = tiles + views, tile_labels + view_labels
    t = plan.tile_size
    assert all(im.size == (t, t) for im in ordered), "every encoder image must be t x t"
    assert len(ordered) == plan.num_images, "one encoder image per tile and global view"
    return TiledImages(images=ordered, tiles=tiles, global_views=views, canvas=canvas, labels=labels)


for _name, _module in (("template", template), ("llava_next", llava_next), ("ureader", ureader),
                       ("deepseek_vl2", deepseek_vl2), ("internvl", internvl), ("llava_mini", llava_mini)):
    register(_name, _module)
del _name, _module

__all__ = ["METHODS", "DEFAULT_METHOD", "register", "unregister", "get", "plan", "replan", "apply",
           "token_layout", "score_table", "title", "method_options", "Plan", "GlobalView", "EncoderTokens",
           "TiledImages", "TilingMethod", "TokenBlock", "ScoreTable", "check_size", "select_best_resolution",
           "MAX_ASPECT", "MAX_SIDE"]
