"""The ``nested`` backend (torch.nested jagged tensors + SDPA) on the real DINOv2 weights: equal to ``loop``
for a list of images and for PackedBatch rows with padding and token dropping; its availability is probed, not
assumed."""

from __future__ import annotations

import pytest
import torch
from PIL import Image

from anyres_tutorial import packing as P
from anyres_tutorial.data import load_data_image
from anyres_tutorial.encoder import attention, attention_kernels, vit

TOL = 1e-4
NEW = ("nested",)


SIZES = {"chelsea": (56, 42), "coffee": (28, 70), "astronaut": (70, 56), "camera": (14, 14)}  # (w, h)


@pytest.fixture(scope="module")
def images():
    return [vit.normalize(load_data_image(n).resize(s, Image.BICUBIC)) for n, s in SIZES.items()]


@pytest.fixture(scope="module")
def keep(images):
    n = [(im.shape[1] // 14) * (im.shape[2] // 14) for im in images]
    keep = P.drop_tokens(n, 0.5, seed=1)
    keep[3] = torch.tensor([], dtype=torch.long)  # an image left with its CLS token only (length 1)
    return keep


def _max_diff(out, ref) -> float:
    assert [o.shape for o in out] == [r.shape for r in ref]
    return max((o - r).abs().max().item() for o, r in zip(out, ref))


def test_registered_after_the_built_in_ones_without_auto_rank():
    names = tuple(attention.BACKENDS)
    assert names[:6] == ("loop", "dense_mask", "flex", "varlen", "sdpa_segments", "nested")
    for name in NEW:
        b = attention.get(name)
        assert b.auto_rank is None and not b.attends_all_pairs and b.prepare is not None
        assert name in attention.available("cpu") and name in attention.available("cpu", backward=True)
    assert attention.get("nested").memory([3, 4, 5]) == {"mask_bytes": 8 * 4, "padded_tokens": 0}


@pytest.mark.parametrize("drop", [False, True], ids=["all-tokens", "dropping"])
@pytest.mark.parametrize("name", NEW + ("sdpa_segments",))
def test_list_of_images_equals_loop(dinov2, images, keep, name, drop):
    k = keep if drop else None
    with torch.inference_mode():
        ref = dinov2.forward_packed(images, attention="loop", keep=k)
        out = dinov2.forward_packed(images, attention=name, keep=k)
    assert dinov2.last_attention == name
    assert _max_diff(out, ref) <= TOL


@pytest.mark.parametrize("drop", [False, True], ids=["all-tokens", "dropping"])
@pytest.mark.parametrize("name", NEW)
def test_packed_rows_with_padding_equal_loop(dinov2, images, keep, name, drop):
    k = keep if drop else None
    batch = P.pack_images(images, 14, max_len=16 if drop else 32, keep=k, cls_token=True)
    assert batch.num_rows > 1 and bool(batch.padding.any())
    with torch.no_grad():
        ref = dinov2.forward_packed(images, attention="loop", keep=k)
        out = dinov2.forward_packed(batch, attention=name)
    assert _max_diff(out, ref) <= TOL


def test_nested_attend_keeps_rows_and_padding_apart():
    """Two rows with padding, on random q, k, v: each image attends to itself only, padding stays zero."""
    seg = torch.tensor([[0] * 4 + [1] * 3 + [-1] * 2, [0] * 6 + [-1] * 3])  # (2, 9)
    q, k, v = torch.randn(3, 2, 6, 9, 8).unbind(0)  # (B, H, N, hd) each
    out = attention.get("nested").prepare(seg)(q, k, v)
    ref = attention.get("dense_mask").prepare(seg)(q, k, v)
    real = (seg >= 0)[:, None, :, None]
    assert out.shape == q.shape and torch.allclose(out * real, ref * real, atol=1e-5)
    assert torch.equal(out[~real.expand_as(out)], torch.zeros(int((~real).sum()) * 6 * 8))


def test_nested_reason_comes_from_running_torch(monkeypatch):
    """unavailable() runs a tiny jagged SDPA: when torch raises, that error is the reason."""
    probe = attention_kernels._nested_probe
    probe.cache_clear()

    def broken(*args, **kwargs):
        raise RuntimeError("no jagged SDPA kernel in this build")

    monkeypatch.setattr(attention_kernels, "_nested_sdpa", broken)
    try:
        why = attention.get("nested").unavailable(torch.device("cpu"), torch.float32)
        assert "no jagged SDPA kernel in this build" in why and "RuntimeError" in why
        assert "nested" not in attention.available("cpu")
        with pytest.raises(ValueError, match="no jagged SDPA kernel"):
            attention.resolve("nested", "cpu")
    finally:
        monkeypatch.undo()
        probe.cache_clear()
    assert attention.get("nested").unavailable(torch.device("cpu"), torch.float32) is None
    if not torch.cuda.is_available():
        assert "CUDA" in attention.get("nested").unavailable(torch.device("cuda"), torch.float32)
        assert "CUDA" in attention.get("nested").backward_unavailable(torch.device("cuda"))
