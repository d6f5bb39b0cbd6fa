"""Tiling vs packing at equal budgets (`features.equal_budget`, `features.legibility`, `viz.compare`)."""

from __future__ import annotations

import math

import numpy as np
import pytest
from PIL import Image

from anyres_tutorial import features, packing, tiling, viz
from anyres_tutorial.data import IMAGES, load_data_image
from anyres_tutorial.features import CAPPED, SAME_ENCODER, SAME_LLM, TILED

SIZES = {n: d.size for n, d in IMAGES.items()}


@pytest.fixture(scope="module")
def rows():
    return features.equal_budget(SIZES)


def _pick(rows, image, method, view):
    return next(r for r in rows if r["image"] == image and r["method"] == method and r["view"] == view)


def test_every_method_and_image_has_its_three_rows(rows):
    for name in SIZES:
        for m in tiling.METHODS:
            for v in (TILED, SAME_ENCODER, SAME_LLM):
                _pick(rows, name, m, v)
        assert sum(r["image"] == name and r["view"] == CAPPED for r in rows) == 1


def test_tiled_rows_are_the_plans_own_accounting(rows):
    for r in (r for r in rows if r["view"] == TILED):
        pl = tiling.plan(r["method"], r["size"])
        et = pl.encoder_tokens()
        assert (r["encoder_tokens"], r["useful"], r["padding"], r["duplicated"], r["cls"]) == (
            et.patches, et.useful, et.padding, et.duplicated, et.cls)
        assert r["llm_tokens"] == pl.num_tokens


@pytest.mark.parametrize("method", list(tiling.METHODS))
@pytest.mark.parametrize("image", list(SIZES))
def test_same_encoder_budget_within_one_patch_row(rows, method, image):
    t = _pick(rows, image, method, TILED)
    p = _pick(rows, image, method, SAME_ENCODER)
    g = p["grid"]
    assert p["encoder_tokens"] == g.count == (p["encoder_size"][0] // 14) * (p["encoder_size"][1] // 14)
    assert p["encoder_tokens"] <= t["encoder_tokens"]
    assert t["encoder_tokens"] - p["encoder_tokens"] < g.cols, "more than one patch row short of the budget"
    assert p["useful"] == p["encoder_tokens"] and p["padding"] == p["duplicated"] == 0


@pytest.mark.parametrize("method", list(tiling.METHODS))
@pytest.mark.parametrize("image", list(SIZES))
def test_same_llm_budget_merges_2x2(rows, method, image):
    t = _pick(rows, image, method, TILED)
    p = _pick(rows, image, method, SAME_LLM)
    rows_, cols = p["grid"]
    assert rows_ % 2 == 0 and cols % 2 == 0, "the patch grid's sides are even (factor 28)"
    assert p["encoder_size"][0] % 28 == 0 and p["encoder_size"][1] % 28 == 0
    assert p["llm_tokens"] * 4 == p["encoder_tokens"] == rows_ * cols
    assert p["llm_tokens"] <= t["llm_tokens"]


def test_llm_view_fills_at_least_what_smart_resize_gives(rows):
    """Where Qwen2-VL's smart_resize has to shrink the image into max_pixels = budget * 28², it keeps NaViT's
    scale and floors; the equal-budget fit never spends fewer tokens, and never more than the budget. (At a
    budget of 1 token smart_resize's at-least-28-px sides overflow it: 2 tokens for the panorama.)"""
    checked = 0
    for r in (r for r in rows if r["view"] == SAME_LLM):
        budget = _pick(rows, r["image"], r["method"], TILED)["llm_tokens"]
        if max(r["size"]) / min(r["size"]) > 99:
            continue
        d = packing.qwen2_vl_size(r["size"], max_pixels=budget * 28 * 28, min_pixels=28 * 28)
        if d["branch"] == "max_pixels" and d["tokens"] <= budget:
            checked += 1
            assert d["tokens"] <= r["llm_tokens"] <= budget
    assert checked > 20


def test_effective_resolution_consistent_with_encoder_tokens(rows):
    for r in rows:
        if r["useful"] == 0:
            assert math.isinf(r["effective_resolution"])
            continue
        assert r["effective_resolution"] * r["useful"] == pytest.approx(r["pixels_seen"])
    for r in (r for r in rows if r["view"] == TILED and r["useful"]):
        w, h = r["size"]
        assert r["pixels_seen"] <= w * h + 1e-6
        # the tiles' content area in encoder pixels, in patches, is close to the plan's useful count
        if not r["tiles"]:
            continue
        sx, sy = r["scale"]
        area_patches = r["pixels_seen"] * sx * sy / r["patch_px"] ** 2
        per_side = 448 / r["patch_px"]  # patches along a tile's side, at most
        assert abs(area_patches - r["useful"]) <= 2 * r["tiles"] * per_side + 1, r["label"]


def test_scale_matches_the_canvas_resize():
    """Where tiles are 1:1 crops of the resized canvas, the tiles' scale is the canvas resize."""
    from anyres_tutorial.tiling.base import content_in_tiles

    checked = 0
    for name, size in SIZES.items():
        for m in tiling.METHODS:
            pl = tiling.plan(m, size)
            row = features.equal_budget({name: size}, [m], capped_tokens=None)[0]
            if pl.tile_boxes and pl.tile_content_boxes == content_in_tiles(pl.tile_boxes, pl.content_box):
                checked += 1
                resize = (pl.resize_size[0] / size[0], pl.resize_size[1] / size[1])
                assert row["scale"] == pytest.approx(resize)
            if pl.global_views:
                v = pl.global_views[0]
                view_h = v.content_box[3] - v.content_box[1]
                assert row["global_scale"][1] == pytest.approx(view_h / size[1])
    assert checked > 30


def test_fit_native_grid_rules():
    d = features.fit_native_grid((1700, 2200), 2880)
    assert d["tokens"] <= 2880 and 2880 - d["tokens"] < d["grid"].cols
    assert d["tokens"] >= d["navit_tokens"] - d["grid"].cols
    # aspect ratio close to the image's: within one patch on each side of the exact grid
    g = d["grid"]
    exact_cols = math.sqrt(d["tokens"] * 1700 / 2200)
    assert abs(g.cols - exact_cols) <= 1
    # small images are scaled up to spend the budget (packing at the same budget as a tiling)
    up = features.fit_native_grid((64, 48), 1000)
    assert up["scale"][0] > 1 and 1000 - up["tokens"] < up["grid"].cols


@pytest.mark.parametrize("name", ["text_page", "chart"])
def test_legibility_monotone_in_budget(name):
    info = features.print_sizes(name)
    size = SIZES[name]
    fitted, capped = [], []
    for budget in (64, 256, 1024, 2880, 7290, 13312):
        r = features.equal_budget({name: size}, capped_tokens=budget)[-1]
        assert r["view"] == CAPPED and r["encoder_tokens"] <= budget
        capped.append(features.legibility([r], info["x_smallest"])[0]["x_patches"])
        fit = features.fit_native_grid(size, budget)
        fitted.append(info["x_smallest"] * fit["scale"][1] / 14)
    assert fitted == sorted(fitted) and fitted[-1] > 4 * fitted[0]
    assert capped == sorted(capped) and capped[-1] > capped[0]
    # and across the table: a packed row with more patches never shows the print smaller
    rows_ = features.legibility([r for r in features.equal_budget({name: size}) if r["view"] != TILED],
                                info["x_smallest"])
    rows_.sort(key=lambda r: r["encoder_tokens"])
    xs = [r["x_patches"] for r in rows_]
    assert all(b >= a - 0.01 for a, b in zip(xs, xs[1:]))


def test_print_sizes_come_from_the_drawing_code():
    info = features.print_sizes("text_page")
    assert info["smallest"] == min(r["size"] for r in info["records"])
    assert info["x_smallest"] == features.x_height(info["smallest"]) < features.x_height(info["body"])
    assert info["body"] > info["smallest"]
    for b in info["smallest_boxes"]:
        assert 0 <= b[0] < b[2] <= 1700 and 0 <= b[1] < b[3] <= 2200
    # the recorded boxes hold ink in the committed image (the records are where the text really is)
    img = load_data_image("text_page").convert("L")
    b = info["smallest_boxes"][0]
    assert np.asarray(img.crop(b)).min() < 200
    with pytest.raises(ValueError, match="photo"):
        features.print_sizes("astronaut")


def test_encoder_crops_are_cut_at_encoder_resolution():
    name = "text_page"
    img = load_data_image(name)
    box = features.small_print_box(name)
    assert box[2] - box[0] == 240 and box[3] - box[1] == 96
    rows_ = features.equal_budget({name: img})
    info = features.print_sizes(name)
    crops = features.encoder_crops(img, box, rows_, x_src=info["x_smallest"])
    assert {c["part"] for c in crops} == {"tiles", "global view", "packed"}
    leg = {(r["method"], r["view"]): r for r in features.legibility(rows_, info["x_smallest"])}
    for c in crops:
        r = c["row"]
        w, h = c["crop"].size
        exp_h = (box[3] - box[1]) * c["scale"]
        assert abs(h - exp_h) <= 2, (c["label"], h, exp_h)
        if c["part"] != "global view":
            assert c["x_patches"] == pytest.approx(leg[(r["method"], r["view"])]["x_patches"], rel=1e-6)
        assert all(0 <= v < w for v in c["lines_x"]) and all(0 <= v < h for v in c["lines_y"])
    # a packed crop is exactly the crop of the resized image
    packed = next(c for c in crops if c["part"] == "packed")
    full = img.resize(tuple(packed["row"]["encoder_size"]), Image.BICUBIC)
    assert np.array_equal(np.asarray(full.crop(packed["box"])), np.asarray(packed["crop"]))


def test_bad_input():
    with pytest.raises(TypeError, match="images"):
        features.equal_budget(42)
    with pytest.raises(ValueError, match="empty"):
        features.equal_budget({})
    with pytest.raises(ValueError, match="unknown tiling method"):
        features.equal_budget(SIZES, ["nope"])
    with pytest.raises(ValueError, match="capped_tokens"):
        features.equal_budget(SIZES, capped_tokens=0)
    with pytest.raises(ValueError, match="budget"):
        features.fit_native_grid((100, 100), 0)
    with pytest.raises(TypeError, match="budget"):
        features.fit_native_grid((100, 100), 2.5)
    with pytest.raises(ValueError):
        features.fit_native_grid((0, 100), 10)
    img = Image.new("RGB", (100, 80))
    r = features.equal_budget({"x": img}, ["llava_next"])
    with pytest.raises(ValueError, match="box"):
        features.encoder_crops(img, (0, 0, 200, 10), r)
    with pytest.raises(ValueError, match="box"):
        features.encoder_crops(img, (10, 10, 5, 20), r)
    with pytest.raises(ValueError, match="size"):
        features.encoder_crops(Image.new("RGB", (50, 50)), (0, 0, 10, 10), r)
    with pytest.raises(ValueError, match="x_src"):
        features.legibility(r, 0)
    with pytest.raises(ValueError, match="rows"):
        viz.equal_encoder_bars([])
    with pytest.raises(ValueError, match="crops"):
        viz.legibility_crops([])


def test_pictures_draw_every_row(rows):
    sub = [r for r in rows if r["image"] in ("text_page", "strip")]
    fig = viz.equal_encoder_bars(sub)
    n_tiled = sum(r["view"] == TILED for r in sub)
    bars = sum(len(ax.patches) for ax in fig.axes)
    assert bars == 2 * 3 * n_tiled, "three stacked parts per tiled and per packed bar"
    fig = viz.effective_resolution_bars(sub)
    finite = sum(not math.isinf(r["effective_resolution"]) for r in sub if r["view"] != CAPPED)
    assert sum(len(ax.patches) for ax in fig.axes) == finite
    img = load_data_image("chart")
    crops = features.encoder_crops(img, features.small_print_box("chart"),
                                   features.equal_budget({"chart": img}), x_src=5)
    fig = viz.legibility_crops(crops, source=img.crop(features.small_print_box("chart")))
    assert sum(len(ax.images) for ax in fig.axes) == len(crops) + 1


def test_equal_llm_view_merges_as_qwen2_vl_does():
    """The equal-LLM-token view's merge is Qwen2-VL's: the packing spec's and its PatchMerger's."""
    import importlib

    from anyres_tutorial import llm

    EB = importlib.import_module("anyres_tutorial.features.equal_budget")  # (the name is also a function's)

    assert EB.MERGE == llm.get("qwen2_vl").merge == llm.connector("qwen2_vl", (280, 280)).merge


def test_explorers_reading_numbers_import_no_torch():
    """The explorers' equal-budget numbers (explore.reading_summary) stay torch-free (the app's kernels)."""
    import subprocess
    import sys

    code = ("import sys; from anyres_tutorial import explore; "
            "explore.reading_summary('chart', 'llava_next'); print('torch' in sys.modules)")
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True).stdout
    assert out.strip() == "False"
