"""The LLM side: connectors, prompt layouts and positions (``anyres_tutorial.llm``)."""

from __future__ import annotations

import dataclasses
import types

import numpy as np
import pytest
import torch

from anyres_tutorial import data, llm, tiling
from anyres_tutorial.llm import connectors as C
from anyres_tutorial.packing import sizing
from anyres_tutorial.tiling import internvl, protocol

SIZES = {name: data.IMAGES[name].size for name in data.list_images()}
DIMS = {"vision_dim": 8, "llm_dim": 16}  # tiny widths: shapes are what is tested


# ------------------------------------------------------------------------------------------ connectors


@pytest.mark.parametrize("method", llm.methods())
def test_connector_output_length_is_the_plans_token_count_on_every_data_image(method):
    for name, size in SIZES.items():
        out, trace = llm.run_connector(method, size, **DIMS)
        assert out.shape == (llm.expected_tokens(method, size), DIMS["llm_dim"]), (method, name)
        assert trace[-1][1] == tuple(out.shape) and len(trace) >= 3
        if method in tiling.METHODS:
            assert out.shape[0] == tiling.plan(method, size).num_tokens


def test_packing_connectors_follow_the_sizing_rules():
    for size in SIZES.values():
        q = sizing.native_size_details(size, "qwen2_vl")
        out, trace = llm.run_connector("qwen2_vl", size, **DIMS)
        patches = trace[1][1][0]
        assert patches == 4 * q["tokens"] and out.shape[0] == patches // 4  # PatchMerger: patches / 4
        px = sizing.native_size_details(size, "pixtral")
        out, _ = llm.run_connector("pixtral", size, **DIMS)
        assert out.shape[0] == px["tokens"] + px["grid"].rows  # one [IMG_BREAK] / [IMG_END] per row


def test_connectors_put_the_special_vectors_where_the_layout_says():
    p = tiling.plan("llava_next", (800, 600))
    m = llm.connector("llava_next", (800, 600), **DIMS)
    out = m(C.encoder_features(p, DIMS["vision_dim"]), p)
    kinds = llm.layout("llava_next", [(800, 600)], "<image>").kinds()
    newline_rows = out[[k == "newline" for k in kinds]]
    assert torch.equal(newline_rows, m.image_newline.expand_as(newline_rows))
    p = tiling.plan("deepseek_vl2", (800, 600))
    m = llm.connector("deepseek_vl2", (800, 600), **DIMS)
    out = m(C.encoder_features(p, DIMS["vision_dim"]), p)
    kinds = llm.layout("deepseek_vl2", [(800, 600)], "<image>").kinds()
    assert kinds.index("separator") == 14 * 15 and torch.equal(out[14 * 15], m.view_seperator)
    p = tiling.plan("ureader", (800, 600))
    out = llm.connector("ureader", (800, 600), **DIMS)(C.encoder_features(p, 8, cls=True), p)
    assert out.shape[0] == 65 * p.num_images


def test_pixel_shuffle_and_patch_merger_group_2x2_neighbourhoods():
    x = torch.arange(4 * 4, dtype=torch.float32).view(1, 4, 4, 1)  # (N, H, W, C): value = 4*row + col
    y = C.pixel_shuffle(x, 0.5)
    assert y.shape == (1, 2, 2, 4) and y[0, 0, 1].tolist() == [2, 3, 6, 7]
    merger = C.Qwen2VLPatchMerger(1, 4)
    blocks = merger.block_order(torch.arange(16.0).view(16, 1), 4, 4).view(-1, 4)
    assert blocks[1].tolist() == [2, 3, 6, 7]
    with pytest.raises(ValueError, match="divisible"):
        merger.block_order(torch.zeros(15, 1), 3, 5)


def test_llava_mini_prefusion_returns_fused_text_and_c2_tokens():
    p = tiling.plan("llava_mini", (800, 600), compressor_size=2)
    m = llm.connector("llava_mini", (800, 600), compressor_size=2, **DIMS)
    text = torch.randn(7, DIMS["llm_dim"])
    comp, fused = m.fuse(C.encoder_features(p, DIMS["vision_dim"]), p, text)
    assert comp.shape == (4, 16) == (p.num_tokens, 16) and fused.shape == text.shape
    assert not torch.allclose(fused, text)  # the pre-fusion layers changed the text embeddings


def test_connector_rejects_features_of_the_wrong_shape():
    p = tiling.plan("internvl", (800, 600))
    m = llm.connector("internvl", (800, 600), **DIMS)
    with pytest.raises(ValueError, match=r"expected \(13, 1024, D\) features"):
        m(torch.zeros(p.num_images, 100, 8), p)
    with pytest.raises(ValueError, match="expected"):
        m("features", p)
    with pytest.raises(ValueError, match=r"expected \(16, Dv\) packed patches for a 4x4 grid"):
        C.Qwen2VLPatchMerger(8, 16)(torch.zeros(15, 8), (4, 4))
    with pytest.raises(ValueError, match="scale must be 1/k"):
        C.pixel_shuffle(torch.zeros(1, 6, 6, 2), 0.3)
    with pytest.raises(ValueError, match=r"needs \(N, H, W, C\) features"):
        C.pixel_shuffle(torch.zeros(6, 6, 2))
    with pytest.raises(ValueError, match="dim must be >= 1"):
        C.encoder_features(p, dim=-1)


def _renamed(module, name):
    """A method object with ``module``'s protocol attributes whose plans carry ``name``."""
    attrs = {a: getattr(module, a) for a in protocol.REQUIRED}
    attrs["plan"] = lambda size, opts: dataclasses.replace(module.plan(size, opts), method=name)
    return types.SimpleNamespace(**attrs)


def test_a_registered_method_without_a_connector_gets_a_clear_error_and_a_generic_layout():
    tiling.register("internvl_copy", _renamed(internvl, "internvl_copy"))
    try:
        assert llm.get("internvl_copy") is llm.GENERIC
        with pytest.raises(ValueError, match="no connector is written for method 'internvl_copy'"):
            llm.connector("internvl_copy", (800, 600))
        p = llm.layout("internvl_copy", [(800, 600)], "look <image>")
        assert p.image_tokens(0) == tiling.plan("internvl_copy", (800, 600)).num_tokens
        assert {s.kind for s in p.segments} == {"text", "image"}  # no <img> markers: nobody said so
    finally:
        tiling.unregister("internvl_copy")
    with pytest.raises(ValueError, match="unknown method"):
        llm.layout("nope", [(10, 10)], "<image>")
    with pytest.raises(TypeError):
        llm.register("x", object())


# ------------------------------------------------------------------------------------------ prompt layout


@pytest.mark.parametrize("method", llm.methods())
def test_prompt_layout_counts_agree_with_the_plans(method):
    sizes = [SIZES["chart"], SIZES["icon"]]
    p = llm.layout(method, sizes, llm.conversation(2))
    opts = {"images_in_prompt": 2} if method == "deepseek_vl2" else {}
    for i, s in enumerate(sizes):
        if method in tiling.METHODS:
            assert p.image_tokens(i) == tiling.plan(method, s, **opts).num_tokens
        else:
            assert p.image_tokens(i) == llm.expected_tokens(method, s)
    text = sum(s.count for s in p.segments if s.kind == "text")
    markers = sum(s.count for s in p.segments if s.kind == "marker")
    assert text == len(llm.conversation(2).split()) - 2  # whitespace tokens minus the placeholders
    assert p.num_tokens == text + markers + p.image_tokens(0) + p.image_tokens(1)
    assert len(p.kinds()) == p.num_tokens


def test_prompt_layout_special_tokens_and_markers():
    p = llm.layout("llava_next", [(800, 600)], "<image> hi")
    assert p.counts(0) == {"image": 576 + 36 * 48, "newline": 36}
    p = llm.layout("internvl", [(800, 600)], "<image> hi")
    assert [s.token for s in p.segments if s.kind == "marker"] == ["<img>", "</img>"]
    assert {s.token for s in p.segments if s.kind == "image"} == {"<IMG_CONTEXT>"}
    p = llm.layout("pixtral", [(64, 48)], "<image>")
    assert [(s.kind, s.count) for s in p.segments] == [
        ("image", 4), ("break", 1), ("image", 4), ("break", 1), ("image", 4), ("end", 1)]
    p = llm.layout("ureader", [(800, 600)], "<image>")
    assert p.counts(0)["extra"] == tiling.plan("ureader", (800, 600)).num_images  # one vit_eos per crop
    p = llm.layout("llava_mini", [(800, 600)], "describe <image>")
    assert p.counts(0) == {"image": 1} and p.segments[1].view == "compressed"


def test_deepseek_stops_tiling_with_more_than_two_images():
    two = llm.layout("deepseek_vl2", [(800, 600)] * 2, "<image> <image>")
    three = llm.layout("deepseek_vl2", [(800, 600)] * 3, "<image> <image> <image>")
    assert two.image_tokens(0) == tiling.plan("deepseek_vl2", (800, 600)).num_tokens
    assert three.image_tokens(0) == 14 * 15 + 1 + 14 * 15  # one 384 tile
    assert three.counts(0)["separator"] == 1


def test_prompt_layout_rejects_mismatched_placeholders():
    with pytest.raises(ValueError, match="2 <image> placeholder"):
        llm.layout("llava_next", [(800, 600)], "<image> <image>")
    assert llm.tokenize("a  b\nc") == ["a", "b", "c"]


def test_hf_variant_reaches_the_prompt():
    a = llm.layout("llava_next", [(64, 48)], "<image>")
    b = llm.layout("llava_next", [(64, 48)], "<image>", variant="hf")
    assert (a.image_tokens(0), b.image_tokens(0)) == (1026, 1368)


# ------------------------------------------------------------------------------------------ positions


def _hf_rope_index(p):
    """transformers' ``Qwen2VLModel.get_rope_index`` (no weights: a stand-in ``self`` with the config)."""
    mod = pytest.importorskip("transformers.models.qwen2_vl.modeling_qwen2_vl")
    stub = types.SimpleNamespace(config=types.SimpleNamespace(
        vision_config=types.SimpleNamespace(spatial_merge_size=2)))
    stub.get_vision_position_ids = types.MethodType(mod.Qwen2VLModel.get_vision_position_ids, stub)
    kinds = p.kinds()
    types_ = torch.tensor([[1 if k == "image" else 0 for k in kinds]])
    grids = torch.tensor([[1, 2 * s.grid.rows, 2 * s.grid.cols] for s in p.segments if s.kind == "image"])
    ids, _ = mod.Qwen2VLModel.get_rope_index(stub, torch.zeros_like(types_), types_, image_grid_thw=grids)
    return ids[:, 0].numpy()  # (3, L)


def test_mrope_matches_transformers_get_rope_index_on_a_two_image_prompt():
    p = llm.layout("qwen2_vl", [(640, 480), (300, 900)], llm.conversation(2))
    ids = llm.mrope(p)
    assert ids.shape == (3, p.num_tokens)
    np.testing.assert_array_equal(ids, _hf_rope_index(p))


def test_mrope_hand_computed_case():
    # 112x56 -> 2x4 LLM tokens (4x8 patches of 14 px, merged 2x2)
    p = llm.layout("qwen2_vl", [(112, 56)], "a <image> b")
    assert [s.grid for s in p.segments if s.kind == "image"] == [(2, 4)]
    # a, <|vision_start|>, 8 image tokens from start 2 (t = 2, h = 2 + row, w = 2 + col),
    # <|vision_end|> at 2 + max(2, 4) = 6, b
    np.testing.assert_array_equal(llm.mrope(p), [[0, 1, 2, 2, 2, 2, 2, 2, 2, 2, 6, 7],
                                                 [0, 1, 2, 2, 2, 2, 3, 3, 3, 3, 6, 7],
                                                 [0, 1, 2, 3, 4, 5, 2, 3, 4, 5, 6, 7]])
    assert llm.positions_1d(p).tolist() == list(range(12))
    with pytest.raises(ValueError, match="M-RoPE needs"):
        llm.mrope(llm.layout("llava_next", [(800, 600)], "<image>"))
