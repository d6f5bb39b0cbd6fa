"""The tiling contract: the method protocol, the registry, typed sizes/grids and the one token accounting."""

from __future__ import annotations

import types

import numpy as np
import pytest

from anyres_tutorial import tiling
from anyres_tutorial.tiling import llava_next, protocol
from anyres_tutorial.types import Grid, Size

SIZES = [(1920, 1080), (1000, 400), (500, 800), (64, 48), (600, 2400), (336, 336), (20, 2000), (3000, 2999)]


# ------------------------------------------------------------------ registry
def test_every_builtin_method_follows_the_protocol():
    for m in tiling.METHODS:
        obj = tiling.get(m)
        assert isinstance(obj, protocol.TilingMethod), m
        protocol.check_method(m, obj)
        assert isinstance(tiling.title(m), str) and tiling.title(m)


def test_register_refuses_incomplete_or_clashing_methods():
    incomplete = types.SimpleNamespace(TITLE="x", OPTIONS={}, CONTROLS={}, resolve=dict,
                                       plan=lambda s, o: None)
    with pytest.raises(TypeError, match=r"lacks \['render', 'token_layout', 'score_table'\]"):
        tiling.register("incomplete", incomplete)
    bad_controls = types.SimpleNamespace(**{**vars(llava_next_like()), "CONTROLS": {"nope": ("int", 1, 2)}})
    with pytest.raises(TypeError, match="CONTROLS names options it does not have"):
        tiling.register("bad_controls", bad_controls)
    with pytest.raises(ValueError, match="already registered"):
        tiling.register("llava_next", llava_next)
    with pytest.raises(ValueError, match="identifier"):
        tiling.register("not a name", llava_next)
    assert "incomplete" not in tiling.METHODS and "bad_controls" not in tiling.METHODS
    with pytest.raises(ValueError, match="unknown tiling method 'nope'"):
        tiling.get("nope")


def llava_next_like():
    """llava_next's protocol attributes in a namespace (a method object that is not a module)."""
    return types.SimpleNamespace(**{a: getattr(llava_next, a) for a in protocol.REQUIRED})


def test_methods_is_a_live_view_and_plan_checks_the_method_name():
    before = tuple(tiling.METHODS)
    tiling.register("alias_of_llava_next", llava_next_like())
    try:
        assert tuple(tiling.METHODS) == before + ("alias_of_llava_next",)
        assert "alias_of_llava_next" in tiling.METHODS and len(tiling.METHODS) == len(before) + 1
        # the method's own plan() says method="llava_next": the registry refuses a plan under another name
        with pytest.raises(TypeError, match="must return a Plan with method='alias_of_llava_next'"):
            tiling.plan("alias_of_llava_next", (800, 600))
    finally:
        tiling.unregister("alias_of_llava_next")
    assert tuple(tiling.METHODS) == before


# ------------------------------------------------------------------ typed sizes and grids
@pytest.mark.parametrize("method", tiling.METHODS)
def test_plans_return_size_and_grid(method):
    p = tiling.plan(method, (1000, 400))
    for v in (p.image_size, p.canvas_size, p.resize_size):
        assert isinstance(v, Size)
    assert isinstance(p.grid, Grid) and p.grid.rows * p.grid.cols == len(p.tile_boxes)
    assert p.image_size.width == 1000 and p.image_size.height == 400
    # rows x cols of tiles lay out the canvas: the last tile's box ends at the canvas' right/bottom edge
    if p.tile_boxes and method != "llava_mini":  # llava_mini's boxes are blocks of the image itself
        assert p.tile_boxes[-1][2:] == (p.canvas_size.width, p.canvas_size.height)


# ------------------------------------------------------------------ the one token accounting
def _raster_count(box, size, g):
    """Independent count: rasterise the content box at pixel level, then average over each patch."""
    w, h = size
    mask = np.zeros((h, w))
    x0, y0, x1, y1 = box
    mask[int(y0):int(y1), int(x0):int(x1)] = 1.0
    p = w // g
    assert p * g == w == h, "integer boxes on a square view whose side is a multiple of g"
    per_patch = mask.reshape(g, p, g, p).mean(axis=(1, 3))
    return int((per_patch >= 0.5).sum())


# tiles that are a multiple of 14 (the template at 336 or 448, not 384), so patches are whole pixels
@pytest.mark.parametrize("method, opts", [("template", {"tile_size": 336}), ("template", {"tile_size": 448}),
                                          ("llava_next", {}), ("ureader", {}), ("internvl", {})])
@pytest.mark.parametrize("size", SIZES)
def test_encoder_tokens_match_a_pixel_raster(method, opts, size):
    p = tiling.plan(method, size, **opts)
    e = p.encoder_tokens()
    g = p.tile_size // p.patch_size
    assert g * p.patch_size == p.tile_size
    inside_tiles = sum(_raster_count(b, (p.tile_size,) * 2, g) for b in p.tile_content_boxes)
    inside_views = sum(_raster_count(v.content_box, v.size, g) for v in p.global_views)
    assert e.images == p.num_images and e.cls == p.num_images and e.per_image == g * g
    assert e.patches == p.num_images * g * g and e.total == e.patches + e.cls
    assert e.padding == p.num_images * g * g - inside_tiles - inside_views
    assert e.duplicated == (inside_views if p.tile_boxes else 0)
    assert e.useful == inside_tiles + (0 if p.tile_boxes else inside_views)


@pytest.mark.parametrize("method", tiling.METHODS)
@pytest.mark.parametrize("size", SIZES)
def test_encoder_tokens_invariants(method, size):
    p = tiling.plan(method, size)
    e = p.encoder_tokens()
    assert min(e.useful, e.padding, e.duplicated) >= 0
    if min(p.resize_size) >= 2 * p.patch_size:  # (a 20x2000 strip is 11 px wide on LLaVA-NeXT's canvas:
        assert e.useful > 0, "every plan shows some of the image"  # less than half of any patch)
    # distorting (squashing) methods never pad; fractions of padding pixels agree with padding tokens
    if p.padding_pixels == 0:
        assert e.padding == 0
    # a smaller encoder resolution keeps the shares roughly (within one patch row/col per image)
    small = p.encoder_tokens(tile_px=p.tile_size // 2 // p.patch_size * p.patch_size)
    g_small = small.per_image ** 0.5
    assert abs(small.padding / small.patches - e.padding / e.patches) <= 2 / g_small + 1e-9


def test_encoder_tokens_known_values():
    # 1920x1080 on LLaVA-NeXT: 2x2 tiles (48x48 patches) on a 672x672 canvas; the image is 672x378 at y=147,
    # black above and below; the global view is a squash (no padding) that repeats the tiles' content.
    p = tiling.plan("llava_next", (1920, 1080))
    e = p.encoder_tokens()
    assert (e.images, e.per_image, e.duplicated, e.cls) == (5, 576, 576, 5)
    content_rows = sum(1 for f in tiling.base.patch_coverage(147, 525, 672, 48) if f >= 0.5)
    assert e.useful == content_rows * 48 and e.padding == 4 * 576 - e.useful
    with pytest.raises(ValueError):
        p.encoder_tokens(tile_px=10)  # smaller than one patch
    with pytest.raises(TypeError):
        p.encoder_tokens(patch=14.0)


# ------------------------------------------------------------------ token layout and scores
@pytest.mark.parametrize("method", tiling.METHODS)
@pytest.mark.parametrize("size", SIZES)
def test_token_layout_adds_up_and_score_table_marks_one_winner(method, size):
    p = tiling.plan(method, size)
    blocks = tiling.token_layout(p)
    assert sum(b.num_tokens for b in blocks) == p.num_tokens
    for label, codes in blocks:  # blocks unpack as (label, codes)
        assert isinstance(label, str) and codes.ndim == 2
    t = tiling.score_table(p)
    if t.kind == "none":
        assert not t.rows and t.rule
    else:
        assert sum(d["chosen"] for d in t.data) == 1
        assert sum(t.chosen) == 1, "the winner is among the shown rows"


def test_replan_changes_one_option():
    p = tiling.plan("ureader", (1920, 1080))
    q = tiling.replan(p, score="paper")
    assert (p.grid, q.grid) == ((3, 5), (3, 6))  # the code's and the paper's score disagree here
