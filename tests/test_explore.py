"""The pure functions behind the grid explorer (anyres_tutorial.explore, `grid_explorer`)."""

from __future__ import annotations

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from anyres_tutorial import explore, tiling
from anyres_tutorial.features import token_budget
from anyres_tutorial.packing import native_size_details

SIZES = [(1920, 1080), (800, 600), (600, 2400), (64, 48), (20, 2000), (3000, 600)]


# ------------------------------------------------------------------------------------------ option controls


@pytest.mark.parametrize("method", tiling.METHODS)
def test_option_controls_are_real_options_and_every_choice_plans(method):
    defaults = tiling.method_options(method)
    controls = explore.option_controls(method)
    assert set(controls) <= set(defaults), "a control for an option the method does not have"
    for name, spec in controls.items():
        assert spec["default"] == defaults[name]
        if spec["kind"] == "choice":
            values = [v for _, v in spec["choices"]]
            assert spec["default"] in values
            assert len({repr(v) for v in values}) == len(values), "duplicate choices"
        else:
            assert spec["min"] <= spec["default"] <= spec["max"]
            values = [spec["min"], spec["max"]]
        for v in values:  # the library accepts every value the explorer offers
            opts = {name: v}
            if method == "internvl" and name == "min_num":
                opts["max_num"] = max(v, defaults["max_num"])
            p = tiling.plan(method, (1920, 1080), **opts)
            assert p.num_tokens >= 1


def test_option_controls_unknown_method():
    with pytest.raises(ValueError, match="unknown tiling method"):
        explore.option_controls("llava")


# ------------------------------------------------------------------------------------------ tiling summary


@pytest.mark.parametrize("method", tiling.METHODS)
@pytest.mark.parametrize("size", SIZES, ids=str)
def test_tiling_summary_is_the_plans_accounting(method, size):
    s = explore.tiling_summary(size, method)
    p = tiling.plan(method, size)
    assert s["grid"] == p.grid and s["canvas_size"] == p.canvas_size and s["tile_size"] == p.tile_size
    assert s["encoder_images"] == p.num_images == len(p.tile_boxes) + len(p.global_views)
    assert s["llm_tokens"] == p.num_tokens and s["token_formula"] == p.token_formula
    assert s["padding_fraction"] == pytest.approx(p.padding_fraction)
    tb = token_budget({"x": size}, [method])[0]
    assert s["encoder_tokens"] == tb["encoder_tokens"]
    assert s["encoder_tokens"] == s["useful_tokens"] + s["padding_tokens"] + s["thumbnail_tokens"]
    assert len(s["global_views"]) == len(p.global_views)
    if s["score_kind"] is None:
        assert method == "llava_mini" and s["scores"] == []
    else:
        assert sum(r["chosen"] for r in s["scores"]) == 1, "exactly one winning candidate"


def test_llava_next_scores_follow_select_best_resolution():
    s = explore.tiling_summary((800, 600), "llava_next")
    assert (s["grid"], s["encoder_images"], s["llm_tokens"]) == ((2, 2), 5, 2340)  # issue 4's vector
    assert s["score_kind"] == "resolution"
    best, rows = tiling.select_best_resolution((800, 600), tiling.plan("llava_next", (800, 600)).options[
        "candidates"])
    assert [r["candidate"] for r in s["scores"]] == [tuple(r["candidate"]) for r in rows]
    chosen = next(r for r in s["scores"] if r["chosen"])
    assert chosen["candidate"] == tuple(best) == s["canvas_size"]
    # the winner has the largest effective resolution, then the least waste
    top = max(r["effective_resolution"] for r in s["scores"])
    assert chosen["effective_resolution"] == top
    assert chosen["wasted_resolution"] == min(r["wasted_resolution"] for r in s["scores"]
                                              if r["effective_resolution"] == top)
    paper = explore.tiling_summary((800, 600), "llava_next", candidates="paper")
    assert len(paper["scores"]) == 7 and len(s["scores"]) == 5


def test_ureader_table_has_both_scores_and_their_winners():
    code = explore.tiling_summary((1920, 1080), "ureader")
    paper = explore.tiling_summary((1920, 1080), "ureader", score="paper")
    assert code["grid"] == (3, 5) and paper["grid"] == (3, 6)  # issue 4's vectors
    for s in (code, paper):
        assert s["score_kind"] == "anchors" and len(s["scores"]) == 48
        best_code = [r["anchor"] for r in s["scores"] if r["best_code"]]
        best_paper = [r["anchor"] for r in s["scores"] if r["best_paper"]]
        assert best_code == [(3, 5)] and best_paper == [(3, 6)]
        for r in s["scores"]:
            assert 0 <= r["Srr"] <= 1 and 0 <= r["Sra"] <= 1
            assert r["score_paper"] == pytest.approx(r["Srr"] + r["Sra"], abs=1e-3)
            assert r["score_code"] == pytest.approx(100 * r["Sra"] + r["Srr"], rel=1e-5)
    assert [r["anchor"] for r in code["scores"] if r["chosen"]] == [(3, 5)]
    assert [r["anchor"] for r in paper["scores"] if r["chosen"]] == [(3, 6)]
    assert len(explore.tiling_summary((1920, 1080), "ureader", anchors=9)["scores"]) == len(
        tiling.plan("ureader", (10, 10), anchors=9).options["anchors"])


def test_internvl_and_template_score_tables():
    s = explore.tiling_summary((1920, 1080), "internvl", max_num=6)
    assert s["grid"] == (1, 2) and s["encoder_images"] == 3  # issue 4's vector
    chosen = next(r for r in s["scores"] if r["chosen"])
    assert chosen["grid"] == (1, 2)
    assert chosen["aspect_diff"] == min(r["aspect_diff"] for r in s["scores"])
    t = explore.tiling_summary((500, 800), "template")
    assert t["grid"] == (2, 1) and [r["grid"] for r in t["scores"] if r["chosen"]] == [(2, 1)]


def test_tiling_summary_bad_input():
    with pytest.raises(ValueError, match="unknown tiling method"):
        explore.tiling_summary((100, 100), "navit")
    with pytest.raises(ValueError, match="aspect ratio"):
        explore.tiling_summary((10, 1200), "llava_next")
    with pytest.raises(ValueError):
        explore.tiling_summary((0, 100), "internvl")
    with pytest.raises(TypeError, match="unknown option"):
        explore.tiling_summary((100, 100), "internvl", score="paper")
    with pytest.raises(ValueError, match="score"):
        explore.tiling_summary((100, 100), "ureader", score="best")


@settings(max_examples=25, deadline=None)
@given(w=st.integers(16, 4000), h=st.integers(16, 4000), method=st.sampled_from(tiling.METHODS.names()))
def test_tiling_summary_properties(w, h, method):
    if max(w, h) > tiling.MAX_ASPECT * min(w, h):
        return
    s = explore.tiling_summary((w, h), method)
    if method != "llava_mini":  # LLaVA-Mini's blocks are the grid; the others cut the canvas into it
        assert s["encoder_images"] == s["grid"][0] * s["grid"][1] + len(s["global_views"])
    assert 0 <= s["padding_fraction"] < 1
    assert s["encoder_tokens"] == s["useful_tokens"] + s["padding_tokens"] + s["thumbnail_tokens"]
    assert s == {**explore.tiling_summary((w, h), method), "plan": s["plan"]}  # deterministic


# ------------------------------------------------------------------------------------------ compare


def test_compare_methods_one_row_per_method():
    rows = explore.compare_methods((1700, 2200))
    assert [r["method"] for r in rows] == list(tiling.METHODS)
    for r in rows:
        p = tiling.plan(r["method"], (1700, 2200))
        assert (r["grid"], r["encoder_images"], r["llm_tokens"]) == (p.grid, p.num_images, p.num_tokens)
    two = explore.compare_methods((1920, 1080), ["ureader", "internvl"],
                                  {"ureader": {"score": "paper"}, "internvl": {"max_num": 6}})
    assert [r["grid"] for r in two] == [(3, 6), (1, 2)]
    assert explore.compare_methods((1920, 1080), "internvl")[0]["method"] == "internvl"
    with pytest.raises(ValueError, match="empty"):
        explore.compare_methods((100, 100), [])
    with pytest.raises(TypeError, match="options"):
        explore.compare_methods((100, 100), ["internvl"], options=[("internvl", {})])


# ------------------------------------------------------------------------------------------ packing


def test_rule_budget_options():
    assert explore.rule_budget_options("navit", 100) == {"max_tokens": 100}
    assert explore.rule_budget_options("siglip2_naflex", 100) == {"max_num_patches": 100}
    assert explore.rule_budget_options("qwen2_vl", 100) == {"max_pixels": 100 * 28 * 28}
    assert explore.rule_budget_options("pixtral", 100) == {}
    assert explore.rule_budget_options("navit", None) == {}
    for bad in (0, -3, 2.5, True, "256"):
        with pytest.raises(ValueError, match="budget"):
            explore.rule_budget_options("navit", bad)
    with pytest.raises(ValueError, match="unknown sizing rule"):
        explore.rule_budget_options("llava", 100)


@pytest.mark.parametrize("rule", ["navit", "siglip2_naflex", "qwen2_vl", "pixtral"])
@pytest.mark.parametrize("strategy", ["ffd", "next_fit"])
def test_packing_summary_partitions_and_counts(rule, strategy):
    sizes = [(512, 512), (1920, 1080), (3000, 600), (600, 2400), (64, 48)]
    s = explore.packing_summary(sizes, rule, max_len=4096, strategy=strategy, budget=256, names=list("abcde"))
    assert sorted(i for r in s["rows"] for i in r) == list(range(len(sizes)))
    assert all(sum(s["lengths"][i] for i in r) <= 4096 for r in s["rows"])
    ropts = explore.rule_budget_options(rule, 256)
    expected = [native_size_details(sz, rule, **ropts)["tokens"] for sz in sizes]
    assert s["lengths"] == expected == [im["tokens"] for im in s["images"]]
    if rule in ("navit", "siglip2_naflex", "qwen2_vl"):
        assert max(s["lengths"]) <= 256
    assert s["packed_tokens"] == sum(s["lengths"])
    assert s["packed_slots"] == len(s["rows"]) * 4096 == s["report"]["slots"]
    assert s["report"]["padding"] == s["packed_slots"] - s["packed_tokens"]
    assert [im["name"] for im in s["images"]] == list("abcde")
    assert s["tiling_llm_tokens"] == sum(tiling.plan("llava_next", sz).num_tokens for sz in sizes)
    assert s["tiling_encoder_tokens"] == sum(r["encoder_tokens"] for r in token_budget(
        {str(i): sz for i, sz in enumerate(sizes)}, ["llava_next"]))


def test_packing_summary_strategies_differ_as_documented():
    # lengths 256, 252, 245, 217, 12 (navit, budget 256); max_len 512
    sizes = [(512, 512), (1920, 1080), (3000, 600), (600, 2400), (64, 48)]
    nf = explore.packing_summary(sizes, max_len=512, strategy="next_fit")
    ffd = explore.packing_summary(sizes, max_len=512, strategy="ffd")
    assert nf["lengths"] == [256, 252, 245, 217, 12]
    assert nf["rows"] == [[0, 1], [2, 3, 4]]
    assert len(ffd["rows"]) <= len(nf["rows"])
    assert explore.packing_summary(sizes, max_len=512, tiling_method="internvl")["tiling_llm_tokens"] == sum(
        tiling.plan("internvl", sz).num_tokens for sz in sizes)


def test_packing_summary_bad_input():
    with pytest.raises(ValueError, match=r"max_len=64 is smaller than image 'image0' \(512×512\), which "
                       r"needs 256 tokens under rule 'navit' at budget 256 .*raise max_len to at least 256"):
        explore.packing_summary([(512, 512)], max_len=64, budget=256)
    with pytest.raises(ValueError, match="empty"):
        explore.packing_summary([], max_len=512)
    with pytest.raises(ValueError, match="names"):
        explore.packing_summary([(512, 512)], names=["a", "b"])
    with pytest.raises(ValueError, match="strategy"):
        explore.packing_summary([(512, 512)], strategy="best_fit")
    with pytest.raises(ValueError, match="unknown tiling method"):
        explore.packing_summary([(512, 512)], tiling_method="navit")
    with pytest.raises(TypeError):
        explore.packing_summary("512x512")
    with pytest.raises(ValueError):
        explore.packing_summary([(0, 512)])


def test_budget_above_max_len_names_the_image_that_cannot_fit():
    """grid_explorer's Exercise 2 searches budgets at max_len 1024: past the largest budget that fits, the
    error names the image, its tokens and the way out (it used to be packing.pack's bare message)."""
    from anyres_tutorial import data

    names = ["astronaut", "chart", "panorama", "phone_screenshot", "icon"]
    sizes = [data.IMAGES[n].size for n in names]
    fits = explore.packing_summary(sizes, "navit", 1024, "ffd", 1024, names=names)
    assert max(fits["lengths"]) <= 1024
    with pytest.raises(ValueError, match=r"image 'phone_screenshot' \(600×2400\), which needs 1040 tokens "
                                         r"under rule 'navit' at budget 1088 \(2 of 5 images"):
        explore.packing_summary(sizes, "navit", 1024, "ffd", 1088, names=names)
    with pytest.raises(ValueError, match=r"image 'astronaut'.*1225 tokens .*\(4 of 5 images"):
        explore.packing_summary(sizes, "navit", 1024, "ffd", 1280, names=names)


def test_row_segment_ids():
    s = explore.packing_summary([(512, 512), (1920, 1080), (64, 48)], max_len=512, strategy="next_fit")
    for r, row in enumerate(s["rows"]):
        seg = explore.row_segment_ids(s, r)
        assert seg.shape == (512,)
        for k, i in enumerate(row):
            assert int((seg == k).sum()) == s["lengths"][i]
        assert int((seg == -1).sum()) == 512 - sum(s["lengths"][i] for i in row)
        assert bool((seg[:-1] <= seg[1:]).logical_or(seg[1:] == -1).all())  # images contiguous, padding last
    for bad in (-1, len(s["rows"]), 0.5, True):
        with pytest.raises(ValueError, match="row"):
            explore.row_segment_ids(s, bad)


# ------------------------------------------------------------------------------------- the notebook's text


def test_things_to_try_in_grid_explorer_hold():
    """Every number that `grid_explorer`'s "Things to try" states, recomputed by the pure functions."""
    from anyres_tutorial import data

    size = lambda n: data.IMAGES[n].size  # noqa: E731
    pano = [explore.tiling_summary(size("panorama"), "llava_next", candidates=c) for c in ("v1.6", "paper")]
    assert [(s["grid"], s["llm_tokens"]) for s in pano] == [((1, 3), 1598), ((1, 4), 2516)]
    chart = [explore.tiling_summary(size("chart"), "llava_next", candidates=c)["grid"]
             for c in ("v1.6", "paper")]
    assert chart == [(2, 2), (2, 2)]
    for n in data.list_images():  # unpad: the HF rounding changes no token count on the data images
        assert (explore.tiling_summary(size(n), "llava_next")["llm_tokens"]
                == explore.tiling_summary(size(n), "llava_next", unpad="hf")["llm_tokens"])
    assert explore.tiling_summary(size("chart"), "ureader", score="paper")["grid"] == (3, 6)
    ds = [explore.tiling_summary(size("chart"), "deepseek_vl2", images_in_prompt=k) for k in (1, 3)]
    assert [(s["grid"], s["encoder_images"], s["llm_tokens"]) for s in ds] == [((2, 4), 9, 1807),
                                                                                ((1, 1), 2, 421)]
    iv = [explore.tiling_summary(size("chart"), "internvl", max_num=k)["grid"] for k in (12, 6)]
    assert iv == [(2, 4), (1, 2)]
    icon = explore.tiling_summary(size("icon"), "internvl")
    assert (icon["grid"], icon["encoder_images"], icon["llm_tokens"]) == ((3, 4), 13, 3328)


def test_labels_fill_names_and_tiles_text():
    assert explore.fill_name((0, 0, 0)) == "black fill" and explore.fill_name(None) == "no fill"
    assert explore.fill_name((127, 127, 127)) == "mid grey fill"
    assert explore.fill_name((122, 116, 104)) == "fill #7a7468" and explore.fill_hex(0) == "#000000"
    mini = explore.tiling_summary((1920, 1080), "llava_mini")
    assert mini["tiles_text"] == "2×2 blocks of 960×540 px, each scaled to 336×336"
    assert explore.tiling_summary((1920, 1080), "llava_next")["tiles_text"] == "2×2 tiles of 336×336 px"
    for m in tiling.METHODS:
        s = explore.tiling_summary((800, 600), m)
        assert all("x" not in v.split()[1] for v in s["global_views"]), s["global_views"]
        assert not any("(" in v for v in s["global_views"]), "fills as names, not tuples"


def test_packing_images_and_block_codes():
    from anyres_tutorial.packing import masks
    from anyres_tutorial.viz.packing import _kv_table

    sizes = [(512, 512), (1920, 1080), (64, 48)]
    ims = explore.packing_images(sizes, "navit", 256)
    assert [r["resized"] for r in ims] == [True, True, True]
    assert [r["fed_as"] for r in ims] == ["resized to budget", "resized to budget",
                                          "rounded to the patch grid"]
    assert explore.packing_images([(224, 224)], "navit", 256)[0]["fed_as"] == "native size"
    assert ims == explore.packing_summary(sizes, max_len=1024)["images"]
    ims = explore.packing_images(sizes, "pixtral", None)  # usable when nothing can be packed at 512
    assert max(r["tokens"] for r in ims) > 512
    s = explore.packing_summary(sizes * 3, max_len=2048, strategy="next_fit")
    for row in range(len(s["rows"])):
        codes = explore.row_block_codes(s, row, 128)
        bm = masks.flex_block_mask(explore.row_segment_ids(s, row), block_size=128, compile=False)
        n = codes.shape[0]
        part = _kv_table(bm.kv_num_blocks, bm.kv_indices, n)
        full = _kv_table(bm.full_kv_num_blocks, bm.full_kv_indices, n)
        assert (codes == np.where(full, 2, np.where(part, 1, 0))[:n, :n]).all()
