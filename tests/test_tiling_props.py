"""Property tests for every tiling method (hypothesis): geometry invariants that must hold for any size."""

from __future__ import annotations

import math
import re

import numpy as np
from hypothesis import given, settings
from hypothesis import strategies as st
from PIL import Image

from anyres_tutorial import tiling
from anyres_tutorial.tiling.base import MAX_ASPECT


@st.composite
def sizes(draw, max_side=6000):
    w = draw(st.integers(1, max_side))
    lo, hi = max(1, math.ceil(w / MAX_ASPECT)), min(max_side, w * MAX_ASPECT)
    return w, draw(st.integers(lo, hi))


methods = st.sampled_from(tiling.METHODS.names())


def _plan(method, size):
    if method == "llava_mini" and min(size) < 2:
        size = (max(size[0], 2), max(size[1], 2))
    return tiling.plan(method, size)


@settings(max_examples=300, deadline=None)
@given(methods, sizes())
def test_tiles_partition_the_canvas(method, size):
    p = _plan(method, size)
    cw, ch = p.canvas_size
    area = 0
    for left, top, right, bottom in p.tile_boxes:
        assert 0 <= left < right <= cw and 0 <= top < bottom <= ch
        area += (right - left) * (bottom - top)
    assert area == cw * ch  # inside the canvas + total area == canvas area ...
    boxes = sorted(p.tile_boxes)
    for i, a in enumerate(boxes):  # ... + pairwise disjoint == exact cover
        for b in boxes[i + 1:]:
            assert min(a[2], b[2]) <= max(a[0], b[0]) or min(a[3], b[3]) <= max(a[1], b[1])
    rows, cols = p.grid
    assert len(p.tile_boxes) == rows * cols == len(set(p.tile_positions))
    if method != "llava_mini":  # 1:1 crops of t x t
        assert all(x1 - x0 == p.tile_size and y1 - y0 == p.tile_size for x0, y0, x1, y1 in p.tile_boxes)


@settings(max_examples=300, deadline=None)
@given(methods, sizes())
def test_content_inside_canvas_and_views(method, size):
    p = _plan(method, size)
    x0, y0, x1, y1 = p.content_box
    assert 0 <= x0 < x1 <= p.canvas_size[0] and 0 <= y0 < y1 <= p.canvas_size[1]
    assert (x1 - x0, y1 - y0) == p.resize_size
    for v in p.global_views:
        vl, vt, vr, vb = v.content_box
        assert 0 <= vl < vr <= v.size[0] and 0 <= vt < vb <= v.size[1]
    assert 0 <= p.padding_fraction < 1
    assert p.num_images == len(p.tile_boxes) + len(p.global_views)
    assert len(p.tile_content_boxes) == len(p.tile_boxes)
    assert p.useful_pixels > 0 and p.pixels_used == p.num_images * p.tile_size ** 2


def expected_tokens(p):
    """Each method's accounting, recomputed from the plan's grid / views."""
    rows, cols = p.grid
    if p.method == "llava_next":
        hh, ww = p.details["unpad"]["unpadded_hw"]
        fh, fw = p.details["unpad"]["feature_map_hw"]
        assert (fh, fw) == (24 * rows, 24 * cols) and hh <= fh and ww <= fw
        return 576 + hh * ww + hh
    if p.method == "deepseek_vl2":
        return 14 * 15 + 1 + 14 * rows * (14 * cols + 1)
    if p.method == "ureader":
        return 65 * (rows * cols + 1)
    if p.method == "internvl":
        return 256 * (rows * cols + (rows * cols > 1))
    if p.method == "llava_mini":
        return p.options["compressor_size"] ** 2
    return p.num_images * (p.tile_size // p.options["patch_size"]) ** 2


@settings(max_examples=300, deadline=None)
@given(methods, sizes())
def test_token_formula_agrees(method, size):
    p = _plan(method, size)
    assert p.num_tokens == expected_tokens(p)
    assert int(re.findall(r"= (\d+)", p.token_formula)[-1]) == p.num_tokens


@settings(max_examples=100, deadline=None)
@given(methods, sizes())
def test_deterministic(method, size):
    assert _plan(method, size) == _plan(method, size)


@settings(max_examples=200, deadline=None)
@given(sizes())
def test_selection_rules_are_optimal(size):
    # llava_next / deepseek: no candidate beats the chosen one on (effective, -waste)
    for method in ("llava_next", "deepseek_vl2"):
        rows = tiling.plan(method, size).details["candidates"]
        best = next(r for r in rows if r["chosen"])
        key = lambda r: (r["effective_resolution"], -r["wasted_resolution"])
        assert all(key(r) <= key(best) for r in rows)
        assert all(key(r) < key(best) for r in rows[:rows.index(best)])  # ties go to the first
    # internvl: the chosen grid has the smallest aspect difference
    rows = tiling.plan("internvl", size).details["candidates"]
    best = next(r for r in rows if r["chosen"])
    assert best["aspect_diff"] == min(r["aspect_diff"] for r in rows)


@settings(max_examples=24, deadline=None)
@given(methods, sizes(max_side=900))
def test_apply_shapes(method, size):
    p = _plan(method, size)
    w, h = p.image_size
    img = Image.fromarray(np.full((h, w, 3), 200, dtype=np.uint8), "RGB")
    out = tiling.apply(p, img)
    t = p.tile_size
    assert tuple(out.tensor.shape) == (p.num_images, 3, t, t)
    assert len(out.labels) == p.num_images and len(out.tiles) == len(p.tile_boxes)
    assert out.canvas.size == p.canvas_size
    first_is_global = out.labels[0].startswith("global")
    assert first_is_global == (p.global_position == "before")
