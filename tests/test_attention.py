"""The attention-backend registry: one entry per backend, and a backend registered from a test file (no
library edit) shows up in ``available()`` and runs in ``forward_packed`` like the built-in ones."""

from __future__ import annotations

import pytest
import torch
import torch.nn.functional as F
from PIL import Image

from anyres_tutorial.data import load_data_image
from anyres_tutorial.encoder import arch, attention, attention_kernels, costs, vit
from anyres_tutorial.packing import mask_memory

TOL = 1e-4
SIZES = [(14, 14), (56, 42), (28, 70)]  # (width, height): small real images keep the CPU forward fast


def _sdpa_per_segment(seg: torch.Tensor):
    """prepare(seg (B, N)) -> attend: split q, k, v by segment and run plain SDPA on each image alone."""

    def attend(q, k, v):  # (B, H, N, hd) -> (B, H, N, hd)
        out = torch.zeros_like(q)
        for b in range(seg.shape[0]):
            for s in seg[b].unique().tolist():
                if s < 0:
                    continue  # padding stays zero
                idx = (seg[b] == s).nonzero().flatten()  # this image's token slots
                out[b, :, idx] = F.scaled_dot_product_attention(q[b, :, idx], k[b, :, idx], v[b, :, idx])
        return out

    return attend


@pytest.fixture
def images():
    names = ["chelsea", "coffee", "astronaut"]
    return [vit.normalize(load_data_image(n).resize(s, Image.BICUBIC)) for n, s in zip(names, SIZES)]


@pytest.fixture
def no_cost_model(monkeypatch, tmp_path):
    """No measured cost model on this machine: "auto" falls back to the entries' ``auto_rank``."""
    monkeypatch.setattr(costs, "COSTS_FILE", tmp_path / "no-costs.json")


@pytest.fixture
def registered():
    """Register test backends by name; every one is unregistered afterwards, even when the test fails."""
    names = []

    def add(name, **kw):
        b = attention.register(name, **kw)
        names.append(name)
        return b

    yield add
    for n in names:
        if n in attention.BACKENDS:
            attention.unregister(n)


def test_built_in_backends_in_registration_order():
    assert tuple(attention.BACKENDS)[:4] == ("loop", "dense_mask", "flex", "varlen")
    assert attention.get("loop").prepare is None  # the per-image reference
    assert [b for b in attention.BACKENDS if attention.get(b).attends_all_pairs] == ["dense_mask"]
    ranks = {b: attention.get(b).auto_rank for b in ("loop", "dense_mask", "flex", "varlen")}
    assert ranks["loop"] is None and ranks["varlen"] > ranks["flex"] > ranks["dense_mask"]
    assert "varlen" not in attention.available("cpu")
    assert "CUDA" in attention.get("varlen").unavailable(torch.device("cpu"), torch.float32)


def test_a_backend_registered_here_runs_in_forward_packed(dinov2, images, registered):
    name = "sdpa_per_segment_test"
    b = registered(name, prepare=_sdpa_per_segment, description="SDPA on each segment alone (test)")
    assert b.name == name and name in attention.BACKENDS and attention.BACKENDS.names()[-1] == name
    assert name in attention.available("cpu")
    assert attention.resolve(name, "cpu") == name
    assert attention.resolve("auto", "cpu") != name  # no auto_rank and no measured cost: never 'auto'
    with torch.no_grad():
        ref = dinov2.forward_packed(images, attention="loop")
        out = dinov2.forward_packed(images, attention=name)
    assert dinov2.last_attention == name
    assert [o.shape for o in out] == [r.shape for r in ref]
    assert max((o - r).abs().max().item() for o, r in zip(out, ref)) <= TOL
    assert b.memory([3, 4]) == {"mask_bytes": 0, "padded_tokens": 0}  # default: no mask
    attention.unregister(name)
    assert name not in attention.BACKENDS and name not in attention.available("cpu")
    with pytest.raises(ValueError, match="unknown attention backend"):
        dinov2.forward_packed(images, attention=name)


def test_unknown_name_lists_the_registered_backends():
    with pytest.raises(ValueError, match="unknown attention backend") as e:
        attention.resolve("flash", "cpu")
    assert all(repr(b) in str(e.value) for b in attention.BACKENDS)
    with pytest.raises(ValueError, match="unknown attention backend"):
        attention.get("flash")
    with pytest.raises(ValueError, match="unknown attention backend"):
        attention.unregister("flash")


def test_unavailable_backend_says_why(dinov2, images, registered):
    reason = "needs a machine this test does not have"
    registered("never_here_test", prepare=_sdpa_per_segment, unavailable=lambda device, dtype: reason,
               auto_rank=10_000)
    assert "never_here_test" not in attention.available("cpu")
    with pytest.raises(ValueError, match=reason):
        attention.resolve("never_here_test", "cpu")
    with pytest.raises(ValueError, match=reason):
        dinov2.forward_packed(images, attention="never_here_test")
    assert attention.resolve("auto", "cpu") != "never_here_test"  # the highest rank, but not available


def test_without_a_cost_model_auto_picks_the_highest_available_rank(registered, no_cost_model):
    before = attention.resolve("auto", "cpu")
    assert before == ("flex" if "flex" in attention.available("cpu") else "dense_mask")
    registered("ranked_test", prepare=_sdpa_per_segment, auto_rank=50)
    registered("ranked_higher_test", prepare=_sdpa_per_segment, auto_rank=60)
    registered("ranked_unavailable_test", prepare=_sdpa_per_segment, auto_rank=70,
               unavailable=lambda device, dtype: "not here")
    assert attention.resolve("auto", "cpu") == "ranked_higher_test"
    attention.unregister("ranked_higher_test")
    assert attention.resolve("auto", "cpu") == "ranked_test"
    attention.unregister("ranked_test")
    assert attention.resolve("auto", "cpu") == before


def test_register_rejects_duplicates_and_bad_entries(registered):
    registered("dup_test", prepare=_sdpa_per_segment)
    with pytest.raises(ValueError, match="already registered"):
        attention.register("dup_test", prepare=_sdpa_per_segment)
    with pytest.raises(ValueError, match="already registered"):
        attention.register("loop", prepare=None)
    replaced = attention.register("dup_test", prepare=None, description="now per image", replace=True)
    assert attention.get("dup_test") is replaced and replaced.prepare is None
    assert list(attention.BACKENDS).count("dup_test") == 1
    with pytest.raises(TypeError, match="prepare"):
        attention.register("bad_prepare_test", prepare="not callable")
    with pytest.raises(TypeError, match="unavailable"):
        attention.register("bad_unavailable_test", prepare=None, unavailable="never")
    with pytest.raises(TypeError, match="memory"):
        attention.register("bad_memory_test", prepare=None, memory=42)
    with pytest.raises(ValueError, match="auto"):
        attention.register("auto", prepare=None)
    with pytest.raises(ValueError):
        attention.register("", prepare=None)
    assert not any(n.startswith("bad_") for n in attention.BACKENDS)


def test_memory_estimates_of_the_built_in_backends():
    lengths = [100, 400, 900]
    n = sum(lengths)
    mm = mask_memory(lengths)
    assert attention.get("loop").memory(lengths) == {"mask_bytes": 0, "padded_tokens": 0}
    assert attention.get("dense_mask").memory(lengths) == {"mask_bytes": n * n, "padded_tokens": 0}
    assert attention.get("varlen").memory(lengths) == {"mask_bytes": mm["cu_seqlens"], "padded_tokens": 0}
    flex = attention.get("flex").memory(lengths)
    total = attention_kernels.flex_padded_length(n)
    fm = mask_memory(lengths, total=total, block_size=attention_kernels.FLEX_BLOCK)
    assert flex == {"mask_bytes": fm["block_mask"] + fm["block_segment_ids"], "padded_tokens": total - n}
    for b in attention.BACKENDS:
        with pytest.raises(ValueError):
            attention.get(b).memory([3, 0])


def test_executed_flops_count_the_pairs_each_kernel_computes():
    lengths = [100, 400, 900]
    useful = arch.count_flops(lengths)
    extra = 4 * arch.DIM * arch.DEPTH * (1400 * 1400 - (100**2 + 400**2 + 900**2))
    assert attention.executed_flops("dense_mask", lengths) == useful + extra
    for b in ("loop", "varlen", "sdpa_segments", "nested"):
        assert attention.executed_flops(b, lengths) == useful
    flex_extra = attention_kernels.flex_pairs(lengths) - (100**2 + 400**2 + 900**2)
    assert flex_extra > 0  # tiles cut by an image boundary are computed whole
    assert attention.executed_flops("flex", lengths) == useful + 4 * arch.DIM * arch.DEPTH * flex_extra
    assert attention.executed_flops("dense_mask", [50]) == arch.count_flops([50])  # one image: no waste
    with pytest.raises(ValueError):
        attention.executed_flops("flash", lengths)


def test_dense_mask_prepare_takes_several_rows():
    """prepare(seg) gets (B, N) segment ids; dense_mask builds one block-diagonal mask per row."""
    g = torch.Generator().manual_seed(0)
    seg = torch.tensor([[0, 0, 1, 1, 1], [0, 1, 1, 2, 2]])
    q, k, v = (torch.randn(2, 3, 5, 8, generator=g) for _ in range(3))
    out = attention.get("dense_mask").prepare(seg)(q, k, v)
    ref = _sdpa_per_segment(seg)(q, k, v)
    assert out.shape == (2, 3, 5, 8) and (out - ref).abs().max().item() <= 1e-5


@pytest.mark.parametrize("lengths, row_len", [([100, 400, 900], None), ([3, 5, 2], None), ([130, 126], 300),
                                              ([1] * 300, None), ([256, 256, 17], 1024), ([700], None)])
def test_flex_pairs_count_the_non_empty_tiles_of_the_real_block_mask(lengths, row_len):
    """flex_pairs (arithmetic on the lengths) against the BlockMask FlexAttention really uses."""
    from anyres_tutorial.packing import masks

    n = sum(lengths)
    total = attention_kernels.flex_padded_length(row_len or n)
    seg = masks.segment_ids(lengths, total=total)[None]  # (1, total), padding -1
    bm = masks.flex_block_mask(seg, attention_kernels.FLEX_BLOCK, compile=False)
    tiles = int(bm.kv_num_blocks.sum() + bm.full_kv_num_blocks.sum())  # partial + full tiles
    assert attention_kernels.flex_pairs(lengths, row_len) == tiles * attention_kernels.FLEX_BLOCK ** 2
    assert attention_kernels.flex_pairs(lengths, row_len) >= sum(x * x for x in lengths)


def test_the_cost_model_fit_recovers_known_coefficients():
    truth = dict(slots=2e-5, pairs=3e-9, images=4e-3, call=0.05)
    samples = []
    for rows, row_len in [([[100] * 4], None), ([[500, 300]], None), ([[64] * 32], None), ([[2000]], None),
                          ([[30, 40], [50]], 128), ([[900] * 3], None), ([[10] * 100], None)]:
        f = costs.features(attention.get("sdpa_segments"), rows, row_len)
        samples.append((f, costs.predict(truth, f)))
    fit = costs.fit(samples)
    for k, v in truth.items():
        assert fit[k] == pytest.approx(v, rel=1e-6), k
    assert fit["rel_error"] < 1e-9 and fit["points"] == 7
    noisy = [(f, sec * (1.1 if i % 2 else 0.9)) for i, (f, sec) in enumerate(samples)]
    assert all(costs.fit(noisy)[k] >= 0 for k in costs.FEATURES)  # never a negative cost
    with pytest.raises(ValueError, match="no timings"):
        costs.fit([])


def test_features_follow_each_backend(registered):
    rows = [[100, 200], [50]]  # two rows of 300 slots
    loop = costs.features(attention.get("loop"), rows, 300)
    dense = costs.features(attention.get("dense_mask"), rows, 300)
    seg = costs.features(attention.get("sdpa_segments"), rows, 300)
    assert loop == dict(slots=350.0, pairs=100**2 + 200**2 + 50**2, images=3.0, call=1.0)  # alone: no padding
    assert dense["slots"] == seg["slots"] == 600 and dense["pairs"] == 2 * 300**2
    assert seg["pairs"] == loop["pairs"]


def test_auto_follows_the_measured_cost_model(monkeypatch, tmp_path, registered):
    """With a cost table for this device, "auto" picks the kernel with the lowest expected seconds for the
    batch: a per-image backend for few large images, one that batches small images for many small ones."""
    registered("per_image_test", prepare=_sdpa_per_segment)
    registered("batched_test", prepare=_sdpa_per_segment)
    monkeypatch.setattr(costs, "COSTS_FILE", tmp_path / "costs.json")
    table = {"per_image_test": dict(slots=1e-5, pairs=0.0, images=5e-3, call=0.0),
             "batched_test": dict(slots=1e-5, pairs=2e-8, images=0.0, call=0.0)}
    costs.save(costs.key(torch.device("cpu"), torch.float32), dict(backends=table))
    few_large, many_small = [[1000, 1000]], [[16] * 64]
    assert attention.resolve("auto", "cpu", rows=few_large) == "per_image_test"
    assert attention.resolve("auto", "cpu", rows=many_small) == "batched_test"
    assert attention.expected_seconds("batched_test", few_large) == pytest.approx(2000e-5 + 2e-8 * 2e6)
    assert attention.expected_seconds("dense_mask", few_large) is None  # no measured cost
    assert attention.resolve("auto", "cpu", dtype=torch.float64, rows=few_large) == \
        ("flex" if "flex" in attention.available("cpu") else "dense_mask")  # no table for float64: the ranks
    with torch.no_grad():
        model_rows = [[5, 13, 21]]
        assert attention.resolve("auto", "cpu", rows=model_rows) in table
