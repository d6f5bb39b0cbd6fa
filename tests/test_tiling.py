"""Tiling library: the issue's vectors per method, the references' quirks, and clear errors (issue 4)."""

from __future__ import annotations

import re

import numpy as np
import pytest
import torch
from PIL import Image, ImageOps

from anyres_tutorial import tiling
from anyres_tutorial.tiling import deepseek_vl2, internvl, llava_next, ureader


def rand_image(w, h, seed=0):
    rng = np.random.default_rng(seed)
    return Image.fromarray(rng.integers(0, 256, (h, w, 3), dtype=np.uint8), "RGB")


def formula_total(plan):
    return int(re.findall(r"= (\d+)", plan.token_formula)[-1])


# ------------------------------------------------------------------ API shape
def test_methods_and_options():
    want = ("template", "llava_next", "ureader", "deepseek_vl2", "internvl", "llava_mini")
    assert tiling.METHODS.names() == want
    assert set(tiling.method_options("llava_next")) == {"candidates", "unpad", "variant"}
    assert set(tiling.method_options("ureader")) == {"anchors", "score"}
    assert set(tiling.method_options("deepseek_vl2")) >= {"candidates", "images_in_prompt"}
    assert tiling.method_options("internvl") == {"max_num": 12, "min_num": 1}
    for m in tiling.METHODS:  # defaults are accepted as explicit options
        p = tiling.plan(m, (640, 480), **tiling.method_options(m))
        assert p == tiling.plan(m, (640, 480))


# ------------------------------------------------------------------ template
def test_template_example():
    p = tiling.plan("template", (500, 800))
    assert p.canvas_size == (384, 768) and p.grid == (2, 1)
    assert p.resize_size == (384, 614) and p.content_box == (0, 77, 384, 691)
    assert p.num_images == 3 and len(p.tile_boxes) == 2 and p.global_views[0].size == (384, 384)
    # equal-aspect templates: the smallest canvas holding the image, else the largest
    assert tiling.plan("template", (300, 300)).grid == (1, 1)
    assert tiling.plan("template", (700, 700)).grid == (2, 2)
    assert tiling.plan("template", (5000, 5000)).grid == (2, 2)


# ------------------------------------------------------------------ llava_next
@pytest.mark.parametrize("size, canvas, grid, images, tokens", [
    ((800, 600), (672, 672), (2, 2), 5, 2340),
    ((1000, 400), (1008, 336), (1, 3), 4, 2040),
    ((1920, 1080), (672, 672), (2, 2), 5, 1948),
    ((200, 336), (336, 672), (2, 1), 3, 1576),
])
def test_llava_next_vectors(size, canvas, grid, images, tokens):
    p = tiling.plan("llava_next", size)
    assert (p.canvas_size, p.grid, p.num_images, p.num_tokens) == (canvas, grid, images, tokens)
    assert formula_total(p) == tokens
    assert p.global_position == "before" and p.global_views[0].kind == "squash" and p.fill == (0, 0, 0)


def test_llava_next_tie_keeps_first_candidate():
    p = tiling.plan("llava_next", (200, 336))
    rows = p.details["candidates"]
    # (336, 672) and (672, 336) tie on both effective and wasted resolution; the first one wins
    assert rows[0]["effective_resolution"] == rows[1]["effective_resolution"] == 200 * 336
    assert rows[0]["wasted_resolution"] == rows[1]["wasted_resolution"]
    assert rows[0]["chosen"] and not rows[1]["chosen"]


def test_llava_next_unpad_keeps_extra_row_on_odd_padding():
    # 1920x1080 on a 48x48 map: int(1080 * 48/1920) = 27 rows of content, but the slice keeps 48 - 2*10 = 28
    un = tiling.plan("llava_next", (1920, 1080)).details["unpad"]
    assert un["new_length"] == 27 and un["padding"] == 10 and un["unpadded_hw"] == (28, 48)
    feat = torch.zeros(1, 48, 48)
    assert feat[:, un["padding"]:48 - un["padding"], :].shape[1] == 28


def test_llava_next_int_vs_round7():
    # int() truncates 29.999..., the HF port's round(x, 7) gives 30: different token counts
    a = tiling.plan("llava_next", (55, 176))
    b = tiling.plan("llava_next", (55, 176), unpad="hf")
    assert a.grid == b.grid and (a.num_tokens, b.num_tokens) == (1296, 1392)


def test_llava_next_hf_unpad_matches_transformers():
    proc = pytest.importorskip("transformers.models.llava_next.processing_llava_next")
    from transformers.image_processing_utils import select_best_resolution as hf_select

    pins = [[h, w] for w, h in llava_next.V16_PINPOINTS]  # HF reads pinpoints as (height, width)
    rng = np.random.default_rng(1)
    sizes = [(55, 176), (88, 55), (800, 600), (1920, 1080)] + [
        (int(w), int(h)) for w, h in rng.integers(20, 3000, (300, 2))]
    for w, h in sizes:
        ph, pw = hf_select([h, w], pins)
        unpad = proc.LlavaNextProcessor._get_unpadded_features  # self is unused
        unpadded, newlines = unpad(None, h, w, 24, 24, ph // 336, pw // 336)
        p = tiling.plan("llava_next", (w, h), unpad="hf")
        assert p.canvas_size == (pw, ph)
        assert p.num_tokens == 576 + unpadded + newlines, (w, h)


def test_llava_next_paper_candidates():
    p = tiling.plan("llava_next", (2000, 500), candidates="paper")
    assert p.canvas_size == (1344, 336) and p.grid == (1, 4)
    with pytest.raises(ValueError, match="multiple of the tile size"):
        tiling.plan("llava_next", (100, 100), candidates=[(300, 336)])


@pytest.mark.parametrize("size", [(800, 600), (1000, 400), (1337, 517)])
def test_llava_next_pixels_match_transformers(size):
    """Images larger than the canvas: bit-exact against HF's LLaVA-NeXT image processor (no normalisation)."""
    tf = pytest.importorskip("transformers")
    try:
        ip = tf.LlavaNextImageProcessor(
            image_grid_pinpoints=[list(p)[::-1] for p in llava_next.V16_PINPOINTS],
            size={"shortest_edge": 336}, crop_size={"height": 336, "width": 336}, do_normalize=False)
    except Exception as e:  # pragma: no cover - depends on the transformers build
        pytest.skip(f"LlavaNextImageProcessor unavailable: {e}")
    img = rand_image(*size)
    ref = ip(img, return_tensors="pt")["pixel_values"][0]
    got = tiling.apply(tiling.plan("llava_next", size), img).tensor
    assert got.shape == ref.shape
    assert torch.allclose(got, ref, atol=1e-6)


# ------------------------------------------------------------------ ureader
@pytest.mark.parametrize("size, grid, tokens", [
    ((224, 224), (1, 1), 130), ((448, 224), (1, 2), 195), ((1000, 400), (2, 5), 715),
])
def test_ureader_vectors(size, grid, tokens):
    p = tiling.plan("ureader", size)
    assert p.grid == grid and p.num_tokens == tokens == 65 * p.num_images
    assert p.global_position == "before" and p.global_views[0].kind == "squash"


def test_ureader_code_vs_paper():
    assert tiling.plan("ureader", (1920, 1080)).grid == (3, 5)
    assert tiling.plan("ureader", (1920, 1080), score="paper").grid == (3, 6)
    rows = tiling.plan("ureader", (1920, 1080)).details["anchors"]
    assert len(rows) == 48 and sum(r["chosen"] for r in rows) == 1
    assert {"Srr", "Sra", "score"} <= set(rows[0])


def test_ureader_anchor_sets_and_positions():
    assert len(ureader.RELEASE_ANCHORS) == 48 and max(a * b for a, b in ureader.RELEASE_ANCHORS) == 20
    assert len(ureader.DEFAULT_ANCHORS) == 23
    assert set(ureader.DEFAULT_ANCHORS) == {(a, b) for a in range(1, 10) for b in range(1, 10) if a * b <= 9}
    nine = tiling.plan("ureader", (500, 500), anchors=9).options["anchors"]
    assert set(nine) == set(ureader.DEFAULT_ANCHORS)
    p = tiling.plan("ureader", (1000, 400))
    assert p.details["crop_positions"][0] == (11, 11)  # global view: (anchor_max, anchor_max)
    row_major = tuple((r, c) for r in range(2) for c in range(5))
    assert p.details["crop_positions"][1:] == p.tile_positions == row_major
    assert tiling.plan("ureader", (1000, 400), anchors="default").details["crop_positions"][0] == (9, 9)


def _torch_ureader_scores(w, h, anchors):
    """UReader's anchor_rank written independently in torch (int64 boxes, float32 IoU with +1e-5)."""
    boxes = torch.tensor([[0, 0, nw * 224, nh * 224] for nh, nw in anchors])
    shape_boxes = boxes.clone()
    shape_boxes[:, 3] = h / w * boxes[:, 2]  # float32 product written into int64: truncation

    def iou(a, b):
        inter = (torch.minimum(a[:, 2], b[:, 2]) * torch.minimum(a[:, 3], b[:, 3])).clamp(min=0)
        union = a[:, 2] * a[:, 3] + b[:, 2] * b[:, 3] - inter
        return inter / (union + 1e-5)

    img = torch.tensor([[0, 0, w, h]]).expand(len(anchors), 4)
    return iou(boxes, shape_boxes) * 100 + iou(boxes, img)


def test_ureader_float32_scores_match_torch():
    rng = np.random.default_rng(2)
    sizes = [(1920, 1080), (300, 700)] + [tuple(int(x) for x in s) for s in rng.integers(30, 6000, (300, 2))]
    for w, h in sizes:
        if max(w, h) > 100 * min(w, h):
            continue
        ref = _torch_ureader_scores(w, h, ureader.RELEASE_ANCHORS)
        _, _, total, _, best = ureader.score_anchors((w, h), ureader.RELEASE_ANCHORS, "code")
        assert np.array_equal(total, ref.numpy()), (w, h)
        assert best == int(torch.argmax(ref))


# ------------------------------------------------------------------ deepseek_vl2
@pytest.mark.parametrize("size, canvas, grid, tokens", [
    ((384, 384), (384, 384), (1, 1), 421), ((640, 480), (768, 768), (2, 2), 1023),
    ((1000, 400), (1152, 768), (2, 3), 1415),
])
def test_deepseek_vectors(size, canvas, grid, tokens):
    p = tiling.plan("deepseek_vl2", size)
    assert (p.canvas_size, p.grid, p.num_tokens) == (canvas, grid, tokens)
    assert p.num_tokens == 14 * 15 + 1 + 14 * grid[0] * (14 * grid[1] + 1) == formula_total(p)
    assert p.fill == (127, 127, 127) and p.global_position == "before"


def test_deepseek_candidates_and_no_cropping():
    assert len(deepseek_vl2.CANDIDATES) == 23
    assert set(deepseek_vl2.CANDIDATES) == {(m * 384, n * 384) for m in range(1, 10) for n in range(1, 10)
                                            if m * n <= 9}
    p = tiling.plan("deepseek_vl2", (1000, 400), images_in_prompt=3)
    assert p.grid == (1, 1) and p.num_images == 2 and p.num_tokens == 421 and not p.details["cropping"]
    assert tiling.plan("deepseek_vl2", (1000, 400), images_in_prompt=2).grid == (2, 3)


@pytest.mark.parametrize("size", [(1000, 400), (333, 777), (640, 480), (101, 100)])
def test_deepseek_pixels_match_imageops_pad(size):
    img = rand_image(*size, seed=3)
    p = tiling.plan("deepseek_vl2", size)
    out = tiling.apply(p, img)
    ref_canvas = ImageOps.pad(img, p.canvas_size, color=(127, 127, 127))
    ref_global = ImageOps.pad(img, (384, 384), color=(127, 127, 127))
    assert np.array_equal(np.asarray(out.canvas), np.asarray(ref_canvas))
    assert np.array_equal(np.asarray(out.global_views[0]), np.asarray(ref_global))
    assert out.labels[0] == "global"


# ------------------------------------------------------------------ internvl
@pytest.mark.parametrize("size, opts, grid, images", [
    ((448, 448), {}, (1, 1), 1), ((896, 896), {}, (2, 2), 5), ((1920, 1080), {}, (2, 4), 9),
    ((1920, 1080), {"max_num": 6}, (1, 2), 3),
])
def test_internvl_vectors(size, opts, grid, images):
    p = tiling.plan("internvl", size, **opts)
    assert p.grid == grid and p.num_images == images and p.num_tokens == 256 * images


def test_internvl_tie_rule_and_thumbnail():
    p = tiling.plan("internvl", (1920, 1080))
    events = {tuple(r["ratio"]): r["event"] for r in p.details["candidates"]}
    assert events[(4, 2)].startswith("tie: replaces")  # 2:1 and 4:2 tie exactly; the image is large enough
    small = {tuple(r["ratio"]): r["event"] for r in tiling.plan("internvl", (448, 448)).details["candidates"]}
    assert small[(2, 2)].startswith("tie: kept")  # 448*448 <= 0.5 * 448**2 * 4: 1x1 stays
    assert tiling.plan("internvl", (896, 896)).global_position == "after"
    single = tiling.plan("internvl", (448, 448))
    assert single.global_views == () and single.global_position is None
    assert internvl.target_ratios(1, 12)[0] == (1, 1)
    out = tiling.apply(tiling.plan("internvl", (900, 500)), rand_image(900, 500))
    assert out.labels[-1] == "global" and out.labels[0] == "r0c0"


# ------------------------------------------------------------------ llava_mini
def test_llava_mini_split_drops_remainder():
    p = tiling.plan("llava_mini", (1001, 777))
    assert p.details["block_size"] == (500, 388) and p.canvas_size == (1000, 776)
    assert p.tile_boxes == ((0, 0, 500, 388), (500, 0, 1000, 388), (0, 388, 500, 776), (500, 388, 1000, 776))
    assert p.num_images == 5 and p.num_tokens == 1 and p.global_position == "after"
    assert p.details["dropped_pixels"] == 1001 * 777 - 1000 * 776
    assert tiling.plan("llava_mini", (1001, 777), compressor_size=2).num_tokens == 4
    one = tiling.plan("llava_mini", (640, 480), resolution_ratio=1)
    assert one.num_images == 1 and one.global_views == ()


@pytest.mark.parametrize("view", ["pad", "crop"])
def test_llava_mini_views(view):
    img = rand_image(701, 301)
    out = tiling.apply(tiling.plan("llava_mini", (701, 301), view=view), img)
    assert out.tensor.shape == (5, 3, 336, 336) and out.labels[-1] == "global"
    # the first block is the top-left 350x150 of the image
    block = img.crop((0, 0, 350, 150))
    if view == "pad":
        sq = Image.new("RGB", (350, 350), (122, 116, 104))
        sq.paste(block, (0, 100))
        ref = sq.resize((336, 336), Image.BICUBIC)
    else:
        ref = block.resize((int(336 * 350 / 150), 336), Image.BICUBIC)
        left = (ref.size[0] - 336) // 2
        ref = ref.crop((left, 0, left + 336, 336))
    assert np.array_equal(np.asarray(out.tiles[0]), np.asarray(ref))


# ------------------------------------------------------------------ accounting
def test_padding_fraction_by_hand():
    p = tiling.plan("llava_next", (800, 600))  # content 672x504 on a 672x672 canvas, squashed global view
    assert p.resize_size == (672, 504)
    assert p.padding_pixels == 672 * 168 and p.pixels_used == 5 * 336 * 336
    assert p.padding_fraction == pytest.approx(672 * 168 / (5 * 336 * 336))
    assert p.useful_pixels == p.pixels_used - p.padding_pixels
    assert p.duplicated_pixels == 336 * 336
    assert tiling.plan("internvl", (1920, 1080)).padding_fraction == 0
    s = p.summary()
    assert s["tokens"] == 2340 and s["images"] == 5


def test_apply_tensor_order_and_range():
    img = rand_image(800, 600)
    out = tiling.apply(tiling.plan("llava_next", (800, 600)), img)
    assert out.tensor.shape == (5, 3, 336, 336) and out.tensor.dtype == torch.float32
    assert out.labels == ["global", "r0c0", "r0c1", "r1c0", "r1c1"]
    assert 0 <= float(out.tensor.min()) and float(out.tensor.max()) <= 1
    ref_tile = torch.from_numpy(np.array(out.tiles[3])).permute(2, 0, 1).float() / 255
    assert torch.equal(out.tensor[4], ref_tile)
    arr = np.asarray(img)  # numpy input gives the same batch
    assert torch.equal(tiling.apply(tiling.plan("llava_next", (800, 600)), arr).tensor, out.tensor)


# ------------------------------------------------------------------ errors
@pytest.mark.parametrize("size, exc, msg", [
    ((0, 10), ValueError, ">= 1"), ((-5, 10), ValueError, ">= 1"), ((10.0, 10), TypeError, "integer"),
    ((True, 10), TypeError, "integer"), ((10, 10, 3), ValueError, "exactly 2"),
    ((10,), ValueError, "exactly 2"),
    ("640x480", TypeError, "pair"), (None, TypeError, "pair"), ((1, 200), ValueError, "aspect ratio"),
    ((70000, 70000), ValueError, "<= 65536"),
])
def test_bad_sizes(size, exc, msg):
    for m in tiling.METHODS:
        with pytest.raises(exc, match=msg):
            tiling.plan(m, size)


@pytest.mark.parametrize("method, opts, exc", [
    ("nope", {}, ValueError), ("llava_next", {"foo": 1}, TypeError),
    ("llava_next", {"unpad": "x"}, ValueError),
    ("llava_next", {"candidates": []}, ValueError), ("ureader", {"score": "both"}, ValueError),
    ("ureader", {"anchors": 0}, ValueError), ("ureader", {"anchors": [(1, 2, 3)]}, ValueError),
    ("internvl", {"max_num": 0}, ValueError), ("internvl", {"min_num": 5, "max_num": 2}, ValueError),
    ("internvl", {"max_num": 2.5}, TypeError), ("deepseek_vl2", {"images_in_prompt": 0}, ValueError),
    ("llava_mini", {"view": "squash"}, ValueError), ("template", {"fill": (0, 0)}, ValueError),
])
def test_bad_methods_and_options(method, opts, exc):
    with pytest.raises(exc):
        tiling.plan(method, (640, 480), **opts)


def test_bad_apply_inputs():
    p = tiling.plan("internvl", (640, 480))
    with pytest.raises(ValueError, match="does not match"):
        tiling.apply(p, rand_image(480, 640))
    with pytest.raises(TypeError):
        tiling.apply(p, "image.png")
    with pytest.raises(TypeError):
        tiling.apply({"grid": (1, 1)}, rand_image(640, 480))
    with pytest.raises(ValueError, match="too small"):
        tiling.plan("llava_mini", (1, 50))
