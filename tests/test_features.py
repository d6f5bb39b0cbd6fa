"""anyres_tutorial.features: tiled vs native encoding, seams, token budgets, training-free compression.

Stitching is checked exactly with a stand-in "model" whose patch feature is the patch's mean pixel (so the
stitched tile map must equal the patch means of the canvas); the real DINOv2 then shows real seams.
"""

from __future__ import annotations

import math

import numpy as np
import pytest
import torch
import torch.nn.functional as F
from PIL import Image

from anyres_tutorial import features as fe


class PatchMeanModel:
    """forward_tiles(x (B, 3, H, W)) -> (B, 1 + N, 3): CLS = image mean, patch token = patch mean."""

    def forward_tiles(self, x):
        pm = F.avg_pool2d(x, 14)  # (B, 3, H/14, W/14)
        tokens = pm.flatten(2).transpose(1, 2)  # (B, N, 3)
        return torch.cat([x.mean((2, 3))[:, None], tokens], 1)


def _photo(w=300, h=200, seed=0):
    rng = np.random.default_rng(seed)
    base = rng.integers(0, 256, (h // 10 + 1, w // 10 + 1, 3), dtype=np.uint8)
    return Image.fromarray(base).resize((w, h), Image.BICUBIC)


# ---------------------------------------------------------------------------------------------------------
# `setup_and_why_resolution` helpers


def test_roundtrip_resize_keeps_size_and_loses_detail():
    checker = (np.indices((200, 300)).sum(0) % 2 * 255).astype(np.uint8)
    img = Image.fromarray(checker).convert("RGB")
    out = fe.roundtrip_resize(img, 64)
    assert out.size == img.size
    assert fe.psnr(img, out) < 10  # a 1-px checkerboard cannot survive 64 px
    assert fe.psnr(img, img) == math.inf
    smooth = _photo()
    hi, lo = fe.roundtrip_resize(smooth, 448), fe.roundtrip_resize(smooth, 64)
    assert fe.psnr(smooth, hi) > fe.psnr(smooth, lo)


def test_roundtrip_and_psnr_errors():
    with pytest.raises(TypeError, match="PIL"):
        fe.roundtrip_resize(np.zeros((4, 4, 3)), 8)
    with pytest.raises(ValueError, match="side"):
        fe.roundtrip_resize(_photo(), 0)
    with pytest.raises(ValueError, match="differ in size"):
        fe.psnr(_photo(100, 100), _photo(100, 90))


def test_tokens_for_side():
    assert fe.tokens_for_side(224) == 256
    assert fe.tokens_for_side(336) == 576
    assert fe.tokens_for_side(518) == 37 * 37
    assert fe.tokens_for_side(224, 16) == 196
    assert fe.tokens_for_side(13) == 0
    arr = fe.tokens_for_side(np.array([224, 448]))
    assert arr.tolist() == [256, 1024]
    with pytest.raises(ValueError):
        fe.tokens_for_side(-5)


# ---------------------------------------------------------------------------------------------------------
# similarity


def test_position_similarity_and_cosine_map():
    g = torch.randn(5, 7, 8)
    s = fe.position_similarity(g, (2, 3))
    assert s.shape == (5, 7)
    assert s[2, 3] == pytest.approx(1.0, abs=1e-5)
    assert s.max() <= 1 + 1e-5
    with pytest.raises(ValueError, match="outside"):
        fe.position_similarity(g, (5, 0))
    with pytest.raises(ValueError, match="channels"):
        fe.cosine_map(g, torch.zeros(3))


# ---------------------------------------------------------------------------------------------------------
# seams


def test_seam_contrast_finds_planted_border_and_respects_valid():
    torch.manual_seed(0)
    g = torch.randn(1, 1, 32).repeat(8, 12, 1) + 0.05 * torch.randn(8, 12, 32)
    g[:, 6:] += torch.randn(32)  # a feature jump between columns 5 and 6
    st = fe.seam_contrast(g, [], [6])
    assert st["ratio"] > 5
    # the same border claimed elsewhere finds nothing special
    assert fe.seam_contrast(g, [], [3])["ratio"] < 1.5
    h, v = fe.neighbour_dissimilarity(g)
    assert h.shape == (8, 11) and v.shape == (7, 12)
    assert int(fe.edge_map(g).argmax() % 12) == 5
    with pytest.raises(ValueError, match="border column"):
        fe.seam_contrast(g, [], [12])
    # pairs touching invalid (padding) patches are ignored: hide the jump -> no border pair left
    valid = torch.ones(8, 12, dtype=torch.bool)
    valid[:, 6] = False
    with pytest.raises(ValueError, match="no border"):
        fe.seam_contrast(g, [], [6], valid=valid)


# ---------------------------------------------------------------------------------------------------------
# attention pooling


def test_attention_pool_weights_sum_to_one_and_grid_shapes():
    g = torch.randn(6, 8, 16)
    for kind, q in (("grid", 4), ("kmeans", 3), ("mean", 1)):
        out = fe.attention_pool(g, q, kind)
        assert out.pooled.shape == (q, 16) and out.weights.shape == (q, 6, 8)
        assert torch.allclose(out.weights.sum((1, 2)), torch.ones(q), atol=1e-5)
        # pooled = weights-averaged patches
        assert torch.allclose(out.pooled, out.weights.reshape(q, -1) @ g.reshape(-1, 16), atol=1e-5)


def test_attention_pool_follows_the_query():
    """A query equal to one region's feature attends (almost) only to that region."""
    g = torch.zeros(4, 4, 8)
    g[:2, :2] = torch.tensor([5.0] + [0.0] * 7)
    g[2:, 2:] = torch.tensor([0.0, 5.0] + [0.0] * 6)
    out = fe.attention_pool(g, 1, "cls", cls=torch.tensor([5.0] + [0.0] * 7), temperature=1.0)
    assert out.weights[0, :2, :2].sum() > 0.99
    assert torch.allclose(out.pooled[0], g[0, 0], atol=1e-2)
    # huge temperature -> uniform weights -> the mean patch
    flat = fe.attention_pool(g, 1, "mean", temperature=1e9)
    assert torch.allclose(flat.pooled[0], g.reshape(-1, 8).mean(0), atol=1e-5)


def test_attention_pool_valid_mask_gives_padding_no_weight():
    g = torch.randn(4, 6, 8)
    valid = torch.ones(4, 6, dtype=torch.bool)
    valid[0] = False  # a padding row
    for kind, q in (("grid", 4), ("kmeans", 2), ("mean", 1)):
        out = fe.attention_pool(g, q, kind, valid=valid)
        assert float(out.weights[:, 0].abs().max()) == 0.0
        assert torch.allclose(out.weights.sum((1, 2)), torch.ones(q), atol=1e-5)
    mean_q = fe.attention_pool(g, 1, "mean", valid=valid).queries[0]
    assert torch.allclose(mean_q, g[1:].reshape(-1, 8).mean(0), atol=1e-5)
    with pytest.raises(ValueError, match="every patch"):
        fe.attention_pool(g, 1, "mean", valid=torch.zeros(4, 6, dtype=torch.bool))


def test_kmeans_queries_find_clusters():
    g = torch.zeros(4, 6, 3)
    g[:, :3] = torch.tensor([1.0, 0, 0])
    g[:, 3:] = torch.tensor([0, 1.0, 0])
    out = fe.attention_pool(g, 2, "kmeans", temperature=0.05)
    centres = sorted(tuple(round(v, 3) for v in q.tolist()) for q in out.queries)
    assert centres == [(0.0, 1.0, 0.0), (1.0, 0.0, 0.0)]


def test_attention_pool_errors():
    g = torch.randn(4, 4, 8)
    with pytest.raises(ValueError, match="square"):
        fe.attention_pool(g, 3, "grid")
    with pytest.raises(ValueError, match="cls"):
        fe.attention_pool(g, 1, "cls")
    with pytest.raises(ValueError, match="unknown queries"):
        fe.attention_pool(g, 1, "learned")
    with pytest.raises(ValueError, match="exceeds"):
        fe.attention_pool(g, 17, "kmeans")
    with pytest.raises(ValueError, match="temperature"):
        fe.attention_pool(g, 1, "mean", temperature=0)
    with pytest.raises(TypeError, match="FeatureMap"):
        fe.attention_pool([1, 2, 3], 1)


# ---------------------------------------------------------------------------------------------------------
# encoding: stitching checked exactly with the patch-mean stand-in model


def test_encode_native_grid_matches_patch_means():
    from anyres_tutorial.encoder.vit import normalize

    img = _photo(300, 200)
    fm = fe.encode_native(PatchMeanModel(), img, max_tokens=None)
    w, h = fm.encoded_size
    assert (w, h) == (294, 196) and fm.grid == (14, 21)
    x = normalize(img.resize((w, h), Image.BICUBIC))
    x = x[0] if x.ndim == 4 else x
    ref = F.avg_pool2d(x[None], 14)[0].permute(1, 2, 0)
    assert torch.allclose(fm.features, ref, atol=1e-5)
    assert fm.tile_rows == [] and fm.tile_cols == []
    small = fe.encode_native(PatchMeanModel(), img, max_tokens=64)
    assert small.num_tokens <= 64


@pytest.mark.parametrize("method", ["llava_next", "internvl", "ureader"])
def test_encode_tiled_stitches_tiles_in_canvas_order(method):
    """Tiles are 1:1 crops of the canvas with sides multiple of 14: the stitched map of patch means must equal
    the patch means of the whole canvas -- every tile in its place."""
    from anyres_tutorial import tiling
    from anyres_tutorial.encoder.vit import normalize

    img = _photo(500, 260, seed=1)
    plan = tiling.plan(method, img.size)
    assert plan.tile_size % 14 == 0
    fm = fe.encode_tiled(PatchMeanModel(), img, plan)
    rows, cols = plan.grid
    g = plan.tile_size // 14
    assert fm.grid == (rows * g, cols * g)
    assert fm.tile_rows == [g * r for r in range(1, rows)] and fm.tile_cols == [g * c for c in range(1, cols)]
    canvas = tiling.apply(plan, img).canvas
    x = normalize(canvas)
    x = x[0] if x.ndim == 4 else x
    ref = F.avg_pool2d(x[None], 14)[0].permute(1, 2, 0)  # (rows*g, cols*g, 3)
    assert torch.allclose(fm.features, ref, atol=1e-5)
    assert fm.cls.shape == (len(plan.tile_boxes), 3)
    # padding mask: patches whose pixels are the canvas fill colour (the image was pasted at content_box)
    cx0, cy0, cx1, cy1 = plan.content_box
    centres_y = (torch.arange(fm.grid[0]) + 0.5) * 14
    centres_x = (torch.arange(fm.grid[1]) + 0.5) * 14
    in_y = (centres_y >= cy0) & (centres_y < cy1)
    in_x = (centres_x >= cx0) & (centres_x < cx1)
    inside = in_y[:, None] & in_x[None]
    assert torch.equal(fm.padding, ~inside)
    if plan.global_views:
        assert fm.global_cls is not None and fm.global_cls.shape == (3,)


def test_encode_tiled_places_each_tile_llava_mini():
    """LLaVA-Mini pads each 2x2 block to a square tile: check each stitched block against its own tile."""
    from anyres_tutorial import tiling
    from anyres_tutorial.encoder.vit import normalize

    img = _photo(500, 260, seed=2)
    plan = tiling.plan("llava_mini", img.size)
    fm = fe.encode_tiled(PatchMeanModel(), img, plan)
    assert fm.grid == (48, 48) and fm.tile_rows == [24] and fm.tile_cols == [24]
    tiles = tiling.apply(plan, img).tiles
    for (r, c), tile in zip(plan.tile_positions, tiles):
        ref = F.avg_pool2d(normalize(tile)[None], 14)[0].permute(1, 2, 0)
        assert torch.allclose(fm.features[r * 24:(r + 1) * 24, c * 24:(c + 1) * 24], ref, atol=1e-5)
    # each wide block is padded top and bottom: padding rows at the top and bottom of every tile
    assert bool(fm.padding[0].all()) and bool(fm.padding[24].all()) and not bool(fm.padding[12].any())
    assert fe.borders_in_image(fm) == ([250.0], [130.0])


def test_encode_tiled_resizes_tiles_that_are_not_multiples_of_14():
    from anyres_tutorial import tiling

    plan = tiling.plan("deepseek_vl2", (900, 400))  # 384 px tiles -> 378 px = 27 patches (SigLIP/14 count)
    fm = fe.encode_tiled(PatchMeanModel(), _photo(900, 400), plan)
    rows, cols = plan.grid
    assert plan.tile_size == 384 and fm.grid == (rows * 27, cols * 27)
    assert fm.tile_cols == [27 * c for c in range(1, cols)]


def test_encode_errors():
    with pytest.raises(TypeError, match="forward_tiles"):
        fe.encode_native(object(), _photo())
    with pytest.raises(TypeError, match="PIL"):
        fe.encode_native(PatchMeanModel(), np.zeros((10, 10, 3)))


# ---------------------------------------------------------------------------------------------------------
# token budget


def test_token_budget_adds_up():
    from anyres_tutorial import tiling

    methods = [m for m in ("llava_next", "ureader", "internvl", "template") if m in tiling.METHODS]
    methods += ["packing"]
    rows = fe.token_budget({"wide": (1600, 400), "square": (700, 700)}, methods)
    assert len(rows) == 2 * len(methods)
    for r in rows:
        assert r["useful"] + r["padding"] + r["duplicated"] == r["encoder_tokens"]
        assert min(r["useful"], r["padding"], r["duplicated"]) >= 0
    pk = [r for r in rows if r["method"] == "packing"]
    assert all(r["padding"] == 0 and r["duplicated"] == 0 and r["encoder_tokens"] <= 1024 for r in pk)
    ln = next(r for r in rows if r["method"] == "llava_next" and r["image"] == "wide")
    plan = tiling.plan("llava_next", (1600, 400))
    assert ln["tiles"] == len(plan.tile_boxes)
    assert ln["encoder_tokens"] == (len(plan.tile_boxes) + len(plan.global_views)) * 576
    assert ln["duplicated"] == 576  # the squashed 336x336 thumbnail: no padding, all duplicated
    assert ln["llm_tokens"] == plan.num_tokens
    assert "llava_next" in fe.format_token_table(rows)


def test_token_budget_errors():
    with pytest.raises(ValueError, match="empty"):
        fe.token_budget({}, ["packing"])
    with pytest.raises(ValueError, match="methods is empty"):
        fe.token_budget({"a": (100, 100)}, [])
    with pytest.raises(TypeError):
        fe.token_budget("a.png", ["packing"])
    with pytest.raises(ValueError):
        fe.token_budget({"a": (0, 100)}, ["packing"])


# ---------------------------------------------------------------------------------------------------------
# the real DINOv2: seams are real


@pytest.mark.slow
def test_real_dinov2_tiled_has_seams_native_does_not(dinov2):
    from anyres_tutorial import tiling
    from anyres_tutorial.data import load_data_image

    img = load_data_image("astronaut").resize((672, 448), Image.BICUBIC)

    plan = tiling.plan("llava_next", img.size)
    tiled = fe.encode_tiled(dinov2, img, plan)
    native = fe.encode_native(dinov2, img, max_tokens=tiled.num_tokens)
    assert tiled.features.shape[-1] == 384 and native.features.shape[-1] == 384
    st = fe.seam_contrast(tiled, tiled.tile_rows, tiled.tile_cols)
    sn = fe.seams_at_image_borders(native, tiled, img.size)
    assert st["ratio"] > 1.3, st
    assert st["ratio"] > sn["ratio"] + 0.2, (st, sn)


def test_stitch_tiles_puts_each_tile_at_its_row_and_col():
    from anyres_tutorial.features import maps

    g, d = 2, 3
    tokens = torch.arange(4 * (1 + g * g) * d, dtype=torch.float32).reshape(4, 1 + g * g, d)  # (T, 1+g*g, D)
    positions = [(0, 0), (0, 1), (1, 0), (1, 1)]
    out = maps.stitch_tiles(tokens, positions, (2, 2))
    assert out.shape == (2 * g, 2 * g, d)
    for t, (r, c) in enumerate(positions):
        assert torch.equal(out[r * g:(r + 1) * g, c * g:(c + 1) * g], tokens[t, 1:].reshape(g, g, d))
    with pytest.raises(ValueError, match="tile_positions"):
        maps.stitch_tiles(tokens, positions[:3], (2, 2))
    with pytest.raises(ValueError, match="1 \\+ g\\*g"):
        maps.stitch_tiles(tokens[:, :4], positions, (2, 2))
