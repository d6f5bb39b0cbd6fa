"""The LLM side against the reference code: numbers from installed ``transformers`` functions where they
exist, otherwise from an independent formulation written here from reading the reference (cited per test)."""

from __future__ import annotations

import re
import types

import pytest
import torch

from anyres_tutorial import data, llm, tiling
from anyres_tutorial.llm import connectors as C
from anyres_tutorial.llm import prompt

DIMS = {"vision_dim": 8, "llm_dim": 16}
SIZES = {name: data.IMAGES[name].size for name in data.list_images()}


# ------------------------------------------------------------------------------------------ LLaVA-Mini

def _reference_fuse(m, feats, n, text, order="stitched"):
    """``encode_images_mini`` (ictnlp/LLaVA-Mini ``llavamini/model/llavamini_arch.py``) written out with the
    module's own sub-layers: the N*N block features become ONE (N*24)^2 map
    (``view(b, N, N, 24, 24, d).transpose(2, 3)``), i.e. map position (r, c) holds patch (r % 24, c % 24) of
    block (r // 24, c // 24); the compressor reads that map; the pre-fusion layers run over
    [map tokens, full image (N > 1), compressed, text] and the reference keeps ``x[-T-C2:-T]`` and ``x[-T:]``.
    ``order="blocks"`` feeds the blocks one after another instead (what the reference does *not* do)."""
    g = 24
    if order == "stitched":
        index = [((r // g) * n + c // g, (r % g) * g + c % g) for r in range(n * g) for c in range(n * g)]
    else:
        index = [(b, k) for b in range(n * n) for k in range(g * g)]
    hd = torch.stack([feats[b, k] for b, k in index])  # ((N*24)^2, Dv)
    comp = m.proj(m.attn(m.queries[None], hd[None], hd[None])[0][0])  # (C2, D)
    parts = [m.proj(hd)] + ([m.proj(feats[n * n])] if n > 1 else [])
    x = torch.cat([*parts, comp, text])
    for layer in m.prefusion:
        x = layer(x)
    t, c2 = text.shape[0], comp.shape[0]
    return x[-t - c2:-t], x[-t:], comp


@pytest.mark.parametrize("n,c", [(1, 1), (2, 1), (2, 2), (3, 2)])
def test_llava_mini_visual_tokens_are_the_prefusion_outputs_of_the_stitched_map(n, c):
    size = (700, 500)
    p = tiling.plan("llava_mini", size, resolution_ratio=n, compressor_size=c)
    m = llm.connector("llava_mini", size, resolution_ratio=n, compressor_size=c, **DIMS)
    feats = C.encoder_features(p, DIMS["vision_dim"])
    text = torch.randn(5, DIMS["llm_dim"], generator=torch.Generator().manual_seed(1))
    with torch.no_grad():
        visual, fused = m.fuse(feats, p, text)
        ref_visual, ref_text, ref_comp = _reference_fuse(m, feats, n, text)
        torch.testing.assert_close(visual, ref_visual)
        torch.testing.assert_close(fused, ref_text)
        assert visual.shape == (c * c, DIMS["llm_dim"]) == (p.num_tokens, DIMS["llm_dim"])
        # the compressor's output is the pre-fusion *input*; the LLM reads the layers' output
        torch.testing.assert_close(m.compress(feats, p), ref_comp)
        assert not torch.allclose(visual, ref_comp)
        if n > 1:  # the layers are causal: block-after-block order gives other visual tokens
            blocks_visual, _, _ = _reference_fuse(m, feats, n, text, order="blocks")
            assert not torch.allclose(visual, blocks_visual)
        # causal and before the text: the visual tokens never see the text
        other, _ = m.fuse(feats, p, torch.zeros(9, DIMS["llm_dim"]))
        torch.testing.assert_close(other, visual)


def test_llava_mini_connector_forward_returns_the_visual_slice_and_keeps_the_fused_text():
    p = tiling.plan("llava_mini", (800, 600), compressor_size=2)
    m = llm.connector("llava_mini", (800, 600), compressor_size=2, **DIMS)
    feats, text = C.encoder_features(p, DIMS["vision_dim"]), torch.randn(3, DIMS["llm_dim"])
    with torch.no_grad():
        out = m(feats, p, text)
        visual, fused = m.fuse(feats, p, text)
    assert torch.equal(out, visual) and torch.equal(m.fused_text, fused)
    with pytest.raises(ValueError, match=r"text must be \(T, 16\)"):
        m.fuse(feats, p, torch.zeros(3, 5))


@pytest.mark.parametrize("n", [1, 2, 3, 4])
@pytest.mark.parametrize("c", [1, 2, 5, 8])
def test_llava_mini_token_layout_is_one_compressor_over_the_stitched_blocks(n, c):
    # the reference runs ONE compressor over the stitched blocks; the full image is never compressed. Before,
    # when N*N + 1 divided C*C (N = 2, C = 5) the layout gave C*C/(N*N+1) tokens to every block and the image.
    p = tiling.plan("llava_mini", (900, 700), resolution_ratio=n, compressor_size=c)
    blocks = tiling.token_layout(p)
    assert len(blocks) == 1 and blocks[0].codes.shape == (c, c) and blocks[0].num_tokens == c * c
    assert llm.layout("llava_mini", [(900, 700)], "<image>", resolution_ratio=n,
                      compressor_size=c).counts(0) == {"image": c * c}


# ------------------------------------------------------------------------------------------ UReader

def test_ureader_crop_position_is_added_before_visual_fc_and_not_to_vit_eos():
    # release config ``patch_pos_embed_type: post`` (mplug_owl/modeling_mplug_owl.py, abstractor forward):
    # cut_patch_embedding_h / _w have cut_num = 15 rows at the abstractor width; (h[row] + w[col]) * 0.5 is
    # added to the query outputs, then visual_fc, then vit_eos is appended
    p = tiling.plan("ureader", (1000, 400))
    m = llm.connector("ureader", (1000, 400), **DIMS)
    assert m.cut_patch_embedding_h.weight.shape == (15, DIMS["vision_dim"])
    assert m.cut_patch_embedding_w.weight.shape == (15, DIMS["vision_dim"])
    feats = C.encoder_features(p, DIMS["vision_dim"], cls=True)
    with torch.no_grad():
        out = m(feats, p).view(p.num_images, 65, -1)
        h, w = m.cut_patch_embedding_h.weight.clone(), m.cut_patch_embedding_w.weight.clone()
        m.cut_patch_embedding_h.weight.zero_()
        m.cut_patch_embedding_w.weight.zero_()
        base = m(feats, p).view(p.num_images, 65, -1)
    pos = torch.tensor(p.details["crop_positions"])
    assert pos[0].tolist() == [11, 11] and p.grid == (2, 5)  # global view: anchor_max of the release anchors
    shift = ((h[pos[:, 0]] + w[pos[:, 1]]) * 0.5) @ m.visual_fc.weight.T  # (N, D): visual_fc is linear
    torch.testing.assert_close(out[:, :64] - base[:, :64], shift[:, None].expand(-1, 64, -1))
    assert torch.equal(out[:, 64], base[:, 64])  # the 65th token carries no position
    assert torch.equal(out[:, 64], m.vit_eos[0, 0].expand(p.num_images, -1))


def test_ureader_refuses_crop_positions_beyond_its_15_row_tables():
    assert tiling.plan("ureader", (8000, 600), anchors=30).details["anchor_max"] == 30
    with pytest.raises(ValueError, match="crop position tables have 15 rows.*reach 30"):
        llm.run_connector("ureader", (8000, 600), anchors=30, **DIMS)
    with pytest.raises(ValueError, match="15 rows"):
        llm.connector("ureader", (8000, 600), anchors=30)
    llm.run_connector("ureader", (8000, 600), anchors=[(1, 14), (1, 1)], **DIMS)  # 14: the last row that fits


# ------------------------------------------------------------------------------------------ Qwen2-VL

def _qwen_processor(setting):
    ip = pytest.importorskip("transformers.models.qwen2_vl.image_processing_pil_qwen2_vl")
    if setting == "transformers_default":
        return ip.Qwen2VLImageProcessorPil()  # the class defaults, whatever they are
    # the released checkpoints' preprocessor_config.json: 4 to 16,384 tokens of 28 x 28 px (model card)
    return ip.Qwen2VLImageProcessorPil(min_pixels=4 * 28 * 28, max_pixels=16384 * 28 * 28)


@pytest.mark.parametrize("setting", ["transformers_default", "released"])
def test_qwen2_vl_patches_grid_and_tokens_match_the_transformers_processor(setting):
    proc = _qwen_processor(setting)
    for name in ("chart", "phone_screenshot", "icon", "panorama"):
        img = data.load_data_image(name)
        ref = proc(images=[img], return_tensors="pt")
        pixels, (t, gh, gw) = ref["pixel_values"], ref["image_grid_thw"][0].tolist()
        out, trace = llm.run_connector("qwen2_vl", img.size, setting=setting, **DIMS)
        assert trace[0][1] == tuple(pixels.shape)  # (h*w, 3*2*14*14) = (h*w, 1176)
        assert pixels.shape[1] == 1176 and "3·2·14·14" in trace[0][0]
        assert t == 1 and out.shape[0] == gh * gw // 4
        assert out.shape[0] == llm.expected_tokens("qwen2_vl", img.size, setting=setting)
        frames = pixels.view(-1, 3, 2, 14, 14)  # a still image: both temporal frames equal
        assert torch.equal(frames[:, :, 0], frames[:, :, 1])
    assert proc.get_number_of_image_patches(1080, 1920, {}) // 4 == llm.expected_tokens(
        "qwen2_vl", (1920, 1080), setting=setting)


def test_qwen2_vl_settings_differ_on_a_large_image_and_explicit_options_win():
    default = llm.expected_tokens("qwen2_vl", (1920, 1080))
    released = llm.expected_tokens("qwen2_vl", (1920, 1080), setting="released")
    assert default == llm.expected_tokens("qwen2_vl", (1920, 1080), setting="transformers_default")
    assert (default, released) == (_qwen_processor("transformers_default").get_number_of_image_patches(
        1080, 1920, {}) // 4, _qwen_processor("released").get_number_of_image_patches(1080, 1920, {}) // 4)
    assert released > default
    assert llm.expected_tokens("qwen2_vl", (1920, 1080), setting="released", max_pixels=256 * 28 * 28) <= 256
    with pytest.raises(ValueError, match="setting must be one of"):
        llm.expected_tokens("qwen2_vl", (1920, 1080), setting="checkpoint")


# ------------------------------------------------------------------------------------------ InternVL

def _hf_pixel_shuffle(x):
    mod = pytest.importorskip("transformers.models.internvl.modeling_internvl")
    return mod.InternVLModel.pixel_shuffle(types.SimpleNamespace(), x, 0.5)


def _v1_by_hand(x):
    """OpenGVLab/InternVL ``pixel_shuffle`` with ps_version 'v1' (no final permute): output (N, W/2, H/2, 4C),
    out[n, j, i, (2*dy + dx)*C + c] = x[n, 2i + dy, 2j + dx, c]."""
    n, h, w, c = x.shape
    out = torch.empty(n, w // 2, h // 2, 4 * c)
    for i in range(h // 2):
        for j in range(w // 2):
            for dy in range(2):
                for dx in range(2):
                    k = 2 * dy + dx
                    out[:, j, i, k * c:(k + 1) * c] = x[:, 2 * i + dy, 2 * j + dx]
    return out


def test_pixel_shuffle_v2_equals_transformers_and_v1_is_the_transposed_reference():
    x = torch.randn(2, 8, 8, 3)
    torch.testing.assert_close(C.pixel_shuffle(x, 0.5, "v2"), _hf_pixel_shuffle(x), rtol=0, atol=0)
    torch.testing.assert_close(C.pixel_shuffle(x, 0.5, "v1"), _v1_by_hand(x), rtol=0, atol=0)
    assert not torch.equal(C.pixel_shuffle(x, 0.5, "v1"), C.pixel_shuffle(x, 0.5, "v2"))
    with pytest.raises(ValueError, match="ps_version must be one of"):
        C.pixel_shuffle(x, 0.5, "v3")


def test_internvl_connector_v1_reads_each_tile_column_by_column():
    p = tiling.plan("internvl", (800, 600))
    feats = C.encoder_features(p, DIMS["vision_dim"])
    torch.manual_seed(0)
    v2 = C.InternVLConnector(**DIMS).eval()
    v1 = C.InternVLConnector(**DIMS, ps_version="v1").eval()
    v1.load_state_dict(v2.state_dict())
    with torch.no_grad():
        a, b = v2(feats, p).view(p.num_images, 16, 16, -1), v1(feats, p).view(p.num_images, 16, 16, -1)
    torch.testing.assert_close(b, a.transpose(1, 2))


# ------------------------------------------------------------------------------------------ docstrings

def test_the_prompt_module_example_prints_what_the_code_gives():
    example = re.search(r"p = prompt\.layout\((.*?)\)\n\s+p\.num_tokens.*?# (\d+), (\d+), (\{.*?\})",
                        prompt.__doc__, re.S)
    assert example, "the example of llm/prompt.py"
    p = prompt.layout("llava_next", [(800, 600), (1000, 400)],
                      "USER: <image> <image> What differs between the two pictures? ASSISTANT:")
    assert "(800, 600), (1000, 400)" in example.group(1)
    assert (p.num_tokens, p.image_tokens(0), str(p.counts())) == (
        int(example.group(2)), int(example.group(3)), example.group(4))


def test_the_prefusion_stand_in_uses_llamas_rotary_embedding():
    mod = pytest.importorskip("transformers.models.llama.modeling_llama")
    from transformers import LlamaConfig

    x = torch.randn(1, 2, 11, 8)  # (B, H, S, head width)
    cos, sin = mod.LlamaRotaryEmbedding(LlamaConfig(hidden_size=16, num_attention_heads=2, head_dim=8))(
        x, torch.arange(11)[None])
    q, _ = mod.apply_rotary_pos_emb(x, x, cos, sin)
    torch.testing.assert_close(C.rope(x[0]), q[0])
