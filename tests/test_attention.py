"""The attention-backend registry: one entry per backend, and a backend registered from a test file (no
library edit) shows up in ``available()`` and runs in ``forward_packed`` like the built-in ones."""

from __future__ import annotations

import pytest
import torch
import torch.nn.functional as F
from PIL import Image

from anyres_tutorial.data import load_data_image
from anyres_tutorial.encoder import attention, vit
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
    assert vit.BACKENDS is attention.BACKENDS
    assert attention.get("loop").prepare is None  # the per-image reference
    assert [b for b in attention.BACKENDS if attention.get(b).attends_all_pairs] == ["dense_mask"]
    ranks = {b: attention.get(b).auto_rank for b in ("loop", "dense_mask", "flex", "varlen")}
    assert ranks["loop"] is None and ranks["varlen"] > ranks["flex"] > ranks["dense_mask"]
    assert "varlen" not in attention.available("cpu")
    assert "CUDA" in attention.get("varlen").unavailable(torch.device("cpu"), torch.float32)


def test_a_backend_registered_here_runs_in_forward_packed(dinov2, images, registered):
    name = "sdpa_per_segment_test"
    b = registered(name, prepare=_sdpa_per_segment, description="SDPA on each segment alone (test)")
    assert b.name == name and name in attention.BACKENDS and attention.BACKENDS[-1] == name
    assert name in attention.available("cpu") and name in vit.available_attention("cpu")
    assert attention.resolve(name, "cpu") == name
    assert attention.resolve("auto", "cpu") != name  # no auto_rank: never picked by 'auto'
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


def test_auto_picks_the_highest_available_rank(registered):
    before = attention.resolve("auto", "cpu")
    assert before == ("flex" if "flex" in attention.available("cpu") else "dense_mask")
    registered("ranked_test", prepare=_sdpa_per_segment, auto_rank=50)
    registered("ranked_higher_test", prepare=_sdpa_per_segment, auto_rank=60)
    registered("ranked_unavailable_test", prepare=_sdpa_per_segment, auto_rank=70,
               unavailable=lambda device, dtype: "not here")
    assert attention.resolve("auto", "cpu") == "ranked_higher_test" == vit.resolve_attention("auto", "cpu")
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
    total = attention.flex_padded_length(n)
    fm = mask_memory(lengths, total=total, block_size=attention.FLEX_BLOCK)
    assert flex == {"mask_bytes": fm["block_mask"] + fm["block_segment_ids"], "padded_tokens": total - n}
    for b in attention.BACKENDS:
        with pytest.raises(ValueError):
            attention.get(b).memory([3, 0])


def test_executed_flops_count_masked_pairs_only_for_dense():
    lengths = [100, 400, 900]
    useful = vit.count_flops(lengths)
    extra = 4 * vit.DIM * vit.DEPTH * (1400 * 1400 - (100**2 + 400**2 + 900**2))
    assert attention.executed_flops("dense_mask", lengths) == useful + extra
    for b in ("loop", "flex", "varlen"):
        assert attention.executed_flops(b, lengths) == useful
    assert attention.executed_flops("dense_mask", [50]) == vit.count_flops([50])  # one image: no waste
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
