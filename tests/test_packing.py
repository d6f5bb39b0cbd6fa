"""Unit tests and reference vectors for anyres_tutorial.packing (issue 5)."""

from __future__ import annotations

import math
import random

import numpy as np
import pytest
import torch
import torch.nn.functional as F

from anyres_tutorial import packing as P
from anyres_tutorial.packing import masks
from anyres_tutorial.types import Grid, Size

# --------------------------------------------------------------------------------------------------------
# sizing: the vectors


def test_qwen2_vl_vectors():
    # (W, H) = (640, 480) -> (H, W) = (476, 644)
    assert P.native_size((640, 480), "qwen2_vl") == (644, 476)
    # (1920, 1080), max_pixels 1003520 -> (H, W) = (728, 1316)
    d = P.native_size_details((1920, 1080), "qwen2_vl", max_pixels=1003520)
    assert d["size"] == (1316, 728)
    assert d["branch"] == "max_pixels"


def test_qwen2_vl_rounds_half_to_even():
    # 70 / 28 = 2.5 -> round() gives 2 (not 3); 98 / 28 = 3.5 -> 4. Area 112*56 stays above min_pixels.
    d = P.native_size_details((98, 70), "qwen2_vl")
    assert d["rounded"] == (112, 56)
    assert d["size"] == (112, 56)


def test_qwen2_vl_min_pixels_branch_and_aspect_error():
    d = P.native_size_details((20, 20), "qwen2_vl")
    assert d["branch"] == "min_pixels" and d["size"] == (56, 56)
    with pytest.raises(ValueError, match="aspect ratio"):
        P.native_size((201 * 10, 10), "qwen2_vl")


def test_siglip2_naflex_vectors():
    d = P.native_size_details((640, 480), "siglip2_naflex")
    assert d["size"] == (288, 224) and d["tokens"] == 252
    assert P.native_size((1000, 400), "siglip2_naflex") == (400, 160)


def test_pixtral_vector():
    d = P.native_size_details((1920, 1080), "pixtral")
    assert d["size"] == (1024, 576) and d["grid"] == Grid(rows=36, cols=64)


def test_pixtral_small_image_not_upscaled_and_rounded_up():
    # 100 x 30 fits: no resize; sides rounded *up* to whole 16-px patches.
    assert P.native_size((100, 30), "pixtral") == (112, 32)


def _hf(module: str):
    pytest.importorskip("transformers")
    import importlib

    return importlib.import_module(f"transformers.models.{module}")


def test_sizing_rules_match_transformers_on_random_sizes():
    qwen = _hf("qwen2_vl.image_processing_pil_qwen2_vl").smart_resize
    sig = _hf("siglip2.image_processing_pil_siglip2").get_image_size_for_max_num_patches
    pix = _hf("pixtral.image_processing_pil_pixtral").get_resize_output_image_size
    rng = random.Random(0)
    for _ in range(150):
        w, h = rng.randint(1, 4000), rng.randint(1, 4000)
        if max(w, h) / min(w, h) <= 200:
            ref = qwen(h, w, factor=28, min_pixels=56 * 56, max_pixels=28 * 28 * 1280)
            assert P.native_size((w, h), "qwen2_vl") == (ref[1], ref[0])
        assert P.native_size((w, h), "siglip2_naflex") == tuple(reversed(sig(h, w, 16, 256)))
        img = np.zeros((h, w, 3), dtype=np.uint8)
        ref = pix(img, size=(1024, 1024), patch_size=(16, 16), input_data_format="channels_last")
        assert P.native_size((w, h), "pixtral") == (ref[1], ref[0])


def test_navit_rule():
    p = 14
    d = P.native_size_details((640, 480), "navit")  # 256-token budget, patch 14
    gh, gw = d["grid"]  # (rows, cols)
    assert d["size"] == (gw * p, gh * p) and gw * gh <= 256
    assert abs(gw / gh - 640 / 480) < 0.1
    assert P.native_size((100, 60), "navit") == (98, 56)  # under budget: floored to patches, no upscale
    up = P.native_size_details((100, 60), "navit", allow_upscale=True)
    assert up["tokens"] <= 256 and up["tokens"] > 200  # fills the budget
    assert P.native_size((5, 3), "navit") == (14, 14)  # at least one patch per side
    ext = P.native_size_details((10000, 10), "navit", max_tokens=64)
    assert ext["tokens"] <= 64 and ext["grid"].rows == 1
    assert P.native_size((1000, 1000), "navit", max_tokens=None, patch_size=10) == (1000, 1000)


@pytest.mark.parametrize("bad", [(0, 10), (10, 0), (-3, 5), (10.5, 4), "640x480", (1, 2, 3), (True, 4)])
def test_sizing_bad_sizes(bad):
    with pytest.raises((ValueError, TypeError)):
        P.native_size(bad, "navit")


def test_sizing_unknown_rule_and_option():
    with pytest.raises(ValueError, match="unknown sizing rule"):
        P.native_size((10, 10), "llava")
    with pytest.raises(TypeError, match="qwen2_vl"):
        P.native_size((10, 10), "qwen2_vl", patch_size=14)
    with pytest.raises(ValueError, match="max_tokens"):
        P.native_size((10, 10), "navit", max_tokens=0)


# --------------------------------------------------------------------------------------------------------
# packing


def test_pack_vectors():
    assert P.pack([400, 200, 300, 100], 512, "next_fit") == [[0], [1, 2], [3]]
    rows = P.pack([400, 200, 300, 100], 512, "ffd")
    assert len(rows) == 2
    assert sorted(i for r in rows for i in r) == [0, 1, 2, 3]
    assert all(sum([400, 200, 300, 100][i] for i in r) <= 512 for r in rows)


def test_padding_report():
    lengths = [400, 200, 300, 100]
    rep = P.padding_report(P.pack(lengths, 512, "next_fit"), lengths, 512)
    assert rep["rows"] == 3 and rep["tokens"] == 1000 and rep["slots"] == 1536 and rep["padding"] == 536
    rep2 = P.padding_report(P.pack(lengths, 512, "ffd"), lengths, 512)
    assert rep2["padding"] == 24 and rep2["fill"] == [500 / 512, 500 / 512]
    assert P.padding_report([[0, 1]], [3, 5])["padding"] == 0  # max_len None: padded to the longest row


@pytest.mark.parametrize("lengths,max_len,err", [
    ([], 10, ValueError),
    ([3, 0], 10, ValueError),
    ([3, -1], 10, ValueError),
    ([3, 2.5], 10, TypeError),
    ([3, "4"], 10, TypeError),
    ([3, True], 10, TypeError),
    ([3, 11], 10, ValueError),  # max_len smaller than one image
    ([3], 2.0, TypeError),
    ("abc", 10, TypeError),
])
def test_pack_bad_input(lengths, max_len, err):
    from anyres_tutorial.packing import packer

    for strategy in P.STRATEGIES:
        with pytest.raises(err):
            P.pack(lengths, max_len, strategy)
    for fn in (packer.next_fit, packer.first_fit_decreasing):
        with pytest.raises(err):
            fn(lengths, max_len)


def test_pack_strategies_are_the_functions_the_notebook_shows():
    from anyres_tutorial.packing import packer

    rng = random.Random(3)
    for _ in range(200):
        lengths = [rng.randint(1, 300) for _ in range(rng.randint(1, 12))]
        max_len = rng.randint(max(lengths), 700)
        assert P.pack(lengths, max_len, "next_fit") == packer.next_fit(lengths, max_len)
        assert P.pack(lengths, max_len, "ffd") == packer.first_fit_decreasing(lengths, max_len)


def test_pack_unknown_strategy_and_numpy_ints():
    with pytest.raises(ValueError, match="strategy"):
        P.pack([1, 2], 4, "best_fit")
    assert P.pack(np.array([3, 2, 2]), 4, "next_fit") == [[0], [1, 2]]
    assert P.pack(torch.tensor([3, 2, 2]), 4, "next_fit") == [[0], [1, 2]]


def test_bucketing_saves_padding():
    sizes = [(14, 14), (140, 140), (14, 14), (140, 140)]  # 1, 100, 1, 100 tokens
    rep = P.bucketing_report(sizes, batch_size=2, patch_size=14)
    assert rep["padding_in_order"] == 2 * 99 and rep["padding_bucketed"] == 0 and rep["saved"] == 198
    assert P.bucket_by_resolution(sizes, 2, 14) == [[1, 3], [0, 2]]
    with pytest.raises(ValueError, match="patch"):
        P.bucket_by_resolution([(0, 14)], 2, 14)
    with pytest.raises(ValueError):
        P.bucket_by_resolution([], 2)


# --------------------------------------------------------------------------------------------------------
# patchify


def test_patchify_matches_patch_embedding_conv():
    img = torch.randn(3, 28, 42)
    tokens, coords, frac = P.patchify(img, 14)
    assert tokens.shape == (6, 3 * 14 * 14)
    conv = torch.nn.Conv2d(3, 8, 14, 14)
    ref = conv(img[None]).flatten(2).transpose(1, 2)[0]  # (6, 8) raster order
    torch.testing.assert_close(tokens @ conv.weight.reshape(8, -1).T + conv.bias, ref, atol=1e-5, rtol=1e-5)
    assert coords.tolist() == [[0, 0], [0, 1], [0, 2], [1, 0], [1, 1], [1, 2]]
    assert frac[4].tolist() == pytest.approx([1 / 2, 1 / 3])
    assert torch.equal(P.unpatchify(tokens, (2, 3), 14), img)


@pytest.mark.parametrize("shape", [(3, 28, 30), (3, 0, 14), (28, 28), (1, 3, 14, 14)])
def test_patchify_bad_input(shape):
    with pytest.raises(ValueError):
        P.patchify(torch.zeros(shape), 14)


# --------------------------------------------------------------------------------------------------------
# the packed batch and its masks


def _images(sizes_hw, seed=0):
    g = torch.Generator().manual_seed(seed)
    return [torch.randn(3, h, w, generator=g) for h, w in sizes_hw]


def test_cu_seqlens_vector_from_batch():
    toks = [torch.randn(n, 4) for n in (3, 5, 2)]
    b = P.build_batch(toks, [(1, 3), (1, 5), (2, 1)])
    cu, mx = b.cu_seqlens()
    assert cu.dtype == torch.int32 and cu.tolist() == [0, 3, 8, 10] and mx == 5
    assert b.segment_ids.tolist() == [[0, 0, 0, 1, 1, 1, 1, 1, 2, 2]]


def test_packed_batch_positions_restart_and_split():
    imgs = _images([(28, 42), (14, 14), (56, 28), (14, 28)])
    b = P.pack_images(imgs, 14, max_len=9, strategy="ffd")
    assert b.lengths == [6, 1, 8, 2]
    assert b.rows == P.pack([6, 1, 8, 2], 9, "ffd")
    for i, img in enumerate(imgs):
        where = b.image_ids == i
        coords = b.positions[where]
        assert coords[0].tolist() == [0, 0]  # every image starts at its own (0, 0)
        _, ref, ref_frac = P.patchify(img, 14)
        assert torch.equal(coords, ref) and torch.equal(b.frac[where], ref_frac)
    assert bool((b.tokens[b.padding] == 0).all())
    assert all(torch.equal(a, P.patchify(c, 14)[0]) for a, c in zip(b.split(), imgs))
    assert all(torch.equal(a, c) for a, c in zip(b.unpack_images(), imgs))
    assert b.image_sizes == [(42, 28), (14, 14), (28, 56), (28, 14)]


def test_sizes_and_grids_are_typed():
    d = P.native_size_details((640, 480), "navit")
    assert isinstance(d["size"], Size) and isinstance(d["input"], Size) and isinstance(d["grid"], Grid)
    assert d["grid"].count == d["tokens"] and d["size"] == (d["grid"].cols * 14, d["grid"].rows * 14)
    for rule in P.RULES:
        out = P.native_size((1000, 400), rule)
        g = P.native_size_details((1000, 400), rule)["grid"]
        assert isinstance(out, Size) and out.width > out.height and g.cols > g.rows  # a wide image stays wide
    b = P.pack_images(_images([(28, 42)]), 14)
    assert b.grids == [Grid(rows=2, cols=3)] and isinstance(b.grids[0], Grid)
    assert b.image_sizes == [Size(width=42, height=28)] and isinstance(b.image_sizes[0], Size)


def test_one_keep_rule_for_batches_and_the_model():
    """check_keep is the rule of build_batch / pack_images and of forward_packed: one index tensor or None
    per image; an image may keep no patch only when it still has a CLS token."""
    assert P.check_keep(None, [4, 2]) is None
    kept = P.check_keep([torch.tensor([3, 0], dtype=torch.int32), None], [4, 2])
    assert kept[0].dtype == torch.long and kept[0].tolist() == [3, 0] and kept[1] is None
    assert P.check_keep([[1]], [2])[0].tolist() == [1]  # a list of ints is converted
    for bad, err, msg in [([torch.tensor([0])], ValueError, "one index tensor"),
                          (torch.tensor([0, 1]), ValueError, "one index tensor"),
                          ([torch.tensor([4]), None], ValueError, "outside"),
                          ([torch.tensor([1, 1]), None], ValueError, "repeated"),
                          ([torch.tensor([0.0]), None], TypeError, "LongTensor"),
                          ([torch.zeros(1, 1, dtype=torch.long), None], TypeError, "1-D")]:
        with pytest.raises(err, match=msg):
            P.check_keep(bad, [4, 2])
    with pytest.raises(ValueError, match="at least 1"):
        P.check_keep([torch.tensor([], dtype=torch.long)], [4], min_kept=1)
    imgs = _images([(14, 28), (28, 28)])
    b = P.pack_images(imgs, 14, keep=[None, torch.tensor([3, 1])])  # None keeps every patch
    assert b.lengths == [2, 2] and b.keep[0].tolist() == [0, 1]
    assert torch.equal(b.unpack_images()[0], imgs[0])
    with pytest.raises(ValueError, match="at least 1"):  # no CLS token: an image needs a patch
        P.pack_images(imgs, 14, keep=[torch.tensor([], dtype=torch.long), None])
    embeds = [P.patchify(im, 14)[0] for im in imgs]
    cls_b = P.build_batch(embeds, [(1, 2), (2, 2)], keep=[torch.tensor([], dtype=torch.long), None],
                          cls_token=torch.zeros(embeds[0].shape[-1]))
    assert cls_b.lengths == [1, 5]  # CLS only, then CLS + 4 patches


def test_dense_mask_block_diagonal_and_padding():
    b = P.build_batch([torch.randn(n, 2) for n in (2, 3)], [(1, 2), (1, 3)], max_len=7, strategy="next_fit")
    assert b.rows == [[0, 1]]
    m = b.dense_mask()[0]
    want = torch.zeros(7, 7, dtype=torch.bool)
    want[:2, :2] = True
    want[2:5, 2:5] = True
    assert torch.equal(m, want)


@pytest.mark.filterwarnings("ignore:flex_attention called without torch.compile")
def test_flex_attention_on_packed_batch_equals_per_image():
    from torch.nn.attention.flex_attention import flex_attention

    lengths = [5, 9, 1, 7]
    b = P.build_batch([torch.randn(n, 16) for n in lengths], [(1, n) for n in lengths], max_len=32,
                      strategy="next_fit")
    q, k, v = (torch.randn(1, 2, 32, 8) for _ in range(3))
    out = flex_attention(q, k, v, block_mask=b.block_mask(block_size=16, compile=False))
    dense = F.scaled_dot_product_attention(q, k, v, attn_mask=b.dense_mask()[:, None])
    start = 0
    for n in lengths:
        s = slice(start, start + n)
        ref = F.scaled_dot_product_attention(q[:, :, s], k[:, :, s], v[:, :, s])
        torch.testing.assert_close(out[:, :, s], ref, atol=1e-5, rtol=1e-5)
        torch.testing.assert_close(dense[:, :, s], ref, atol=1e-5, rtol=1e-5)
        start += n


def test_block_mask_of_every_row_or_of_one():
    b = P.pack_images(_images([(14, 28), (28, 28)]), 14, max_len=4)
    assert b.num_rows == 2
    every = b.block_mask(block_size=4, compile=False)
    assert every.kv_num_blocks.shape[0] == 2 and every.seq_lengths == (4, 4)  # batch B = 2 rows
    one = b.block_mask(block_size=4, row=1, compile=False)
    assert one.kv_num_blocks.shape[0] == 1 and torch.equal(one.kv_num_blocks[0], every.kv_num_blocks[1])
    with pytest.raises(ValueError, match="row"):
        b.block_mask(row=2, compile=False)


def test_build_batch_bad_input():
    with pytest.raises(ValueError, match="empty"):
        P.pack_images([], 14)
    with pytest.raises(ValueError, match="zero-size"):
        P.pack_images([torch.zeros(3, 0, 14)], 14)
    with pytest.raises(ValueError, match="multiple"):
        P.pack_images([torch.zeros(3, 15, 14)], 14)
    with pytest.raises(ValueError, match="smaller"):
        P.pack_images(_images([(28, 28)]), 14, max_len=3)
    with pytest.raises(ValueError, match="exactly once"):
        P.pack_images(_images([(14, 14), (14, 14)]), 14, rows=[[0, 0]])
    with pytest.raises(TypeError):
        P.pack_images(["not an image"], 14)
    with pytest.raises(ValueError, match="grid"):
        P.build_batch([torch.randn(5, 2)], [(2, 2)])
    with pytest.raises(ValueError, match="keep"):
        P.pack_images(_images([(14, 28)]), 14, keep=[torch.tensor([0, 5])])


# --------------------------------------------------------------------------------------------------------
# mask memory: formulas vs real objects


@pytest.mark.parametrize("lengths,block", [([3, 5, 2], 128), ([100, 37, 300], 64), ([257], 128)])
def test_mask_memory_matches_real_objects(lengths, block):
    mem = P.mask_memory(lengths, block_size=block)
    seg = masks.segment_ids(lengths)
    dense = masks.dense_mask(seg)
    assert mem["dense_bool"] == dense.numel() * dense.element_size()
    bm = masks.flex_block_mask(seg, block_size=block, compile=False)
    names = ["kv_num_blocks", "kv_indices", "full_kv_num_blocks", "full_kv_indices",
             "q_num_blocks", "q_indices", "full_q_num_blocks", "full_q_indices"]
    tables = [getattr(bm, n) for n in names]
    assert mem["block_mask"] == sum(t.numel() * t.element_size() for t in tables if t is not None)
    assert mem["block_segment_ids"] == seg.numel() * seg.element_size()
    cu, _ = masks.cu_seqlens(lengths)
    assert mem["cu_seqlens"] == cu.numel() * cu.element_size()
    assert mem["dense_float32"] == dense.float().numel() * 4
    assert mem["blocks"] == math.ceil(sum(lengths) / block)


def test_mask_memory_bad_input():
    with pytest.raises(ValueError):
        P.mask_memory([])
    with pytest.raises(ValueError):
        P.mask_memory([3, 0])
    with pytest.raises(ValueError):
        P.mask_memory([3, 4], total=5)


# --------------------------------------------------------------------------------------------------------
# token dropping and pooling


def test_drop_tokens_seeded_sorted_and_counts():
    keep = P.drop_tokens([100, 7, 1], 0.5, seed=3)
    assert [len(k) for k in keep] == [50, 3, 1]  # max(1, int(n * (1 - rate)))
    assert all(torch.equal(k, k.sort().values) and k.unique().numel() == k.numel() for k in keep)
    again = P.drop_tokens([100, 7, 1], 0.5, seed=3)
    assert all(torch.equal(a, b) for a, b in zip(keep, again))
    other = P.drop_tokens([100, 7, 1], 0.5, seed=4)
    assert not torch.equal(keep[0], other[0])
    assert [len(k) for k in P.drop_tokens([10, 10], [0.0, 0.9])] == [10, 1]
    for bad in (1.0, -0.1, [0.1]):
        with pytest.raises(ValueError):
            P.drop_tokens([10, 10], bad)
    with pytest.raises(ValueError):
        P.drop_tokens([], 0.5)


def test_dropping_keeps_positions_and_pooling_ignores_padding():
    imgs = _images([(42, 56), (28, 28)])
    keep = P.drop_tokens([12, 4], 0.5, seed=0)
    b = P.pack_images(imgs, 14, max_len=16, keep=keep)
    assert b.lengths == [6, 2]
    for i, img in enumerate(imgs):
        toks, coords, _ = P.patchify(img, 14)
        where = b.image_ids == i
        assert torch.equal(b.positions[where], coords[keep[i]])  # kept tokens keep their own positions
        assert torch.equal(b.tokens[where], toks[keep[i]])
        assert torch.equal(b.patch_index[where], keep[i])
    rebuilt = b.unpack_images()[0]
    dropped = sorted(set(range(12)) - set(keep[0].tolist()))
    assert bool((P.patchify(rebuilt, 14)[0][dropped] == 0).all())
    x = torch.randn(b.num_rows, b.row_len, 5)
    x[b.padding] = 1e6  # padding must not leak into the means
    pooled = b.pool(x)
    ref = torch.stack([t.mean(0) for t in b.split(x)])
    torch.testing.assert_close(pooled, ref)


# --------------------------------------------------------------------------------------------------------
# positions: every image gets its own, independent positions


def _two_image_batch():
    return P.pack_images(_images([(28, 42), (42, 28)]), 14)  # one row, 6 + 6 tokens


def test_factorized_absolute_positions_independent_per_image():
    emb = P.FactorizedPositionEmbedding(8, size=16)
    b = _two_image_batch()
    packed = emb(b.positions[0])  # (12, 8)
    for i, (gh, gw) in enumerate(b.grids):
        coords, _ = P.grid_coords((gh, gw))
        torch.testing.assert_close(packed[b.image_ids[0] == i], emb(coords))  # as if the image were alone
    # phi_row(r) + phi_col(c): the (0, 0) token of both images gets the same vector
    torch.testing.assert_close(packed[0], packed[6])
    torch.testing.assert_close(packed[4], emb.row[1] + emb.col[1])
    with pytest.raises(ValueError):
        emb(torch.tensor([[16, 0]]))
    with pytest.raises(TypeError):
        emb(b.frac[0])


def test_factorized_fractional_positions():
    emb = P.FactorizedPositionEmbedding(8, size=4, fractional=True)
    b = P.pack_images(_images([(28, 28), (56, 56)]), 14)  # 2x2 and 4x4 grids
    out = emb(b.frac[0])
    small, big = out[:4], out[4:]
    # the fractional coordinate of a 2x2 cell equals that of the matching 4x4 cell at twice the index
    torch.testing.assert_close(small[3], big[2 * 4 + 2])  # (1, 1) of 2x2 == (2, 2) of 4x4
    torch.testing.assert_close(big, emb(P.grid_coords((4, 4))[1]))  # independent of what precedes it
    with pytest.raises(TypeError):
        emb(b.positions[0])


def test_rope_2d_independent_per_image_and_relative():
    b = _two_image_batch()
    x = torch.randn(12, 16)
    out = P.apply_rope_2d(x, b.positions[0])
    for i, (gh, gw) in enumerate(b.grids):
        where = b.image_ids[0] == i
        torch.testing.assert_close(out[where], P.apply_rope_2d(x[where], P.grid_coords((gh, gw))[0]))
    # scores depend only on the (row, col) offset: shift every position, scores unchanged
    q, k = torch.randn(12, 16), torch.randn(12, 16)
    pos = b.positions[0]
    s0 = P.apply_rope_2d(q, pos) @ P.apply_rope_2d(k, pos).T
    s1 = P.apply_rope_2d(q, pos + torch.tensor([3, 5])) @ P.apply_rope_2d(k, pos + torch.tensor([3, 5])).T
    torch.testing.assert_close(s0, s1, atol=1e-4, rtol=1e-4)
    # the row half rotates with the row only
    a = P.apply_rope_2d(x[:1], torch.tensor([[0, 0]]))
    c = P.apply_rope_2d(x[:1], torch.tensor([[0, 7]]))
    torch.testing.assert_close(a[:, :8], c[:, :8])
    assert not torch.allclose(a[:, 8:], c[:, 8:])
    with pytest.raises(ValueError, match="divisible by 4"):
        P.apply_rope_2d(torch.randn(3, 6), torch.zeros(3, 2))
