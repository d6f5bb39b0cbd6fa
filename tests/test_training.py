"""Training on packed sequences, on the real DINOv2 weights: packed rows == each image alone (forward), one
optimiser step on a packed batch == the same step image by image (fp32: relative gradient difference <= 1e-4
per parameter tensor, updated weights <= 1e-5) for every backend that trains here, with and without token
dropping; the two loss reductions; a clear error when a backend cannot train."""

from __future__ import annotations

import pytest
import torch
import torch.nn.functional as F
from PIL import Image

from anyres_tutorial import finetune, training
from anyres_tutorial import packing as P
from anyres_tutorial.data import load_data_image
from anyres_tutorial.encoder import attention, vit

TOL = 1e-4
# float rounding only: relative gradient difference, and the updated weights (lr 0.1: |g| up to ~2 x 1e-4)
GRAD_TOL, WEIGHT_TOL = 1e-4, 2e-5
SIZES = {"chelsea": (56, 42), "coffee": (28, 70), "astronaut": (70, 56), "rocket": (42, 42),
         "camera": (14, 14)}  # (width, height)
MAX_LEN = 32  # lengths with CLS 13, 11, 21, 10, 2: FFD gives two rows with padding
DROP_LEN = 16  # the same after dropping half the patches


@pytest.fixture(scope="module")
def images():
    return [vit.normalize(load_data_image(n).resize(s, Image.BICUBIC)) for n, s in SIZES.items()]


@pytest.fixture(scope="module")
def keep(images):
    return P.drop_tokens([(im.shape[1] // 14) * (im.shape[2] // 14) for im in images], 0.5, seed=3)


@pytest.fixture(scope="module")
def model():
    return vit.load_dinov2(trainable=True)


@pytest.fixture
def head():
    return training.make_head(3, seed=0)


TARGETS = torch.tensor([0, 1, 2, 1, 0])


def test_load_dinov2_trainable(model, dinov2):
    assert all(p.requires_grad for p in model.parameters()) and model.training
    assert not any(p.requires_grad for p in dinov2.parameters()) and not dinov2.training
    with pytest.raises(TypeError):
        vit.load_dinov2(trainable="yes")


def test_flex_has_no_backward_on_cpu_and_the_registry_says_so():
    """Tried, not assumed: torch's FlexAttention refuses inputs that require grad on CPU."""
    flex_attention = pytest.importorskip("torch.nn.attention.flex_attention").flex_attention
    q, k, v = (torch.randn(1, 1, 128, 16, requires_grad=True) for _ in range(3))
    with pytest.raises(NotImplementedError, match="backward on CPU"):
        flex_attention(q, k, v).sum().backward()
    cpu = torch.device("cpu")
    assert "backward on CPU" in attention.get("flex").backward_unavailable(cpu)
    assert attention.get("flex").backward_unavailable(torch.device("cuda")) is None
    assert attention.get("varlen").backward_unavailable(torch.device("cuda")) is None
    trains = attention.available("cpu", backward=True)
    assert {"loop", "dense_mask", "sdpa_segments"} <= set(trains) and "flex" not in trains
    assert "varlen" not in trains


def test_a_backend_that_cannot_train_says_which_can(model, dinov2, images):
    with pytest.raises(ValueError, match="cannot run backward") as e:
        model.forward_packed(images, attention="flex")  # checked before anything is compiled
    assert "dense_mask" in str(e.value) and "sdpa_segments" in str(e.value)
    assert attention.resolve("flex", "cpu") == "flex"  # without gradients it still runs
    name = "no_backward_test"
    attention.register(name, prepare=attention.get("dense_mask").prepare,
                       backward_unavailable=lambda device: "this test says so")
    try:
        with pytest.raises(ValueError, match="this test says so"):
            model.forward_packed(images, attention=name)
        with torch.no_grad():
            assert len(model.forward_packed(images, attention=name)) == len(images)
        img = images[0].clone().requires_grad_(True)  # an input that requires grad counts too
        with pytest.raises(ValueError, match="cannot run backward"):
            dinov2.forward_packed([img], attention=name)
    finally:
        attention.unregister(name)
    model.forward_packed(images[:1])  # 'auto' under autograd: the best backend that trains here
    assert model.last_attention in attention.available("cpu", backward=True)


def test_pack_images_reserves_a_cls_slot(images, keep):
    b = P.pack_images(images, 14, max_len=MAX_LEN, keep=keep, cls_token=True)
    assert b.cls and b.lengths == [1 + len(k) for k in keep]
    starts = [(r, sum(b.lengths[j] for j in row[:row.index(i)])) for r, row in enumerate(b.rows) for i in row]
    assert int(b.is_cls.sum()) == len(images) and all(bool(b.is_cls[r, s]) for r, s in starts)
    assert (b.tokens[b.is_cls] == 0).all()
    for img, back, k in zip(images, b.unpack_images(), keep):
        kept = torch.zeros(img.shape[1] // 14 * (img.shape[2] // 14), dtype=torch.bool)
        kept[k] = True
        mask = kept.reshape(img.shape[1] // 14, img.shape[2] // 14).repeat_interleave(14, 0)
        mask = mask.repeat_interleave(14, 1)
        assert torch.equal(back[:, mask], img[:, mask])


@pytest.mark.parametrize("drop", [False, True], ids=["all-tokens", "dropping"])
def test_packed_rows_forward_equals_each_image_alone(dinov2, images, keep, drop):
    """forward_packed(PackedBatch of several rows with padding) == each image alone, every backend here."""
    k = keep if drop else None
    batch = P.pack_images(images, 14, max_len=DROP_LEN if drop else MAX_LEN, keep=k, cls_token=True)
    assert batch.num_rows > 1 and bool(batch.padding.any())
    with torch.no_grad():
        ref = dinov2.forward_packed(images, attention="loop", keep=k)
        for name in attention.available("cpu"):
            out = dinov2.forward_packed(batch, attention=name)
            assert dinov2.last_attention == name
            assert [o.shape for o in out] == [r.shape for r in ref], name
            err = max((o - r).abs().max().item() for o, r in zip(out, ref))
            assert err <= TOL, f"{name}: max abs diff {err:.2e}"
    with pytest.raises(ValueError, match="its own keep"):
        dinov2.forward_packed(batch, keep=k or keep)
    with pytest.raises(ValueError, match="cls_token=True"):
        dinov2.forward_packed(P.pack_images(images, 14, max_len=MAX_LEN))


@pytest.mark.parametrize("drop", [False, True], ids=["all-tokens", "dropping"])
def test_packed_step_equals_the_step_image_by_image(model, head, images, keep, drop):
    trains = attention.available("cpu", backward=True)
    assert "dense_mask" in trains and "sdpa_segments" in trains
    runs = [(b, "per_image") for b in trains]
    max_len = DROP_LEN if drop else MAX_LEN
    k = keep if drop else None
    out = training.compare_steps(model, head, images, TARGETS, runs, max_len=max_len, keep=k)
    for c, (name, _) in zip(out, runs):
        assert c.backend == name
        assert len(c.grad_diff) == len(list(model.parameters())) + 2  # every ViT tensor + head weight, bias
        assert c.max_grad_diff <= GRAD_TOL, f"{name}: relative gradient difference {c.max_grad_diff:.2e}"
        assert c.weight_diff <= WEIGHT_TOL, f"{name}: updated weights differ by {c.weight_diff:.2e}"
        assert abs(c.loss - c.ref_loss) <= 1e-5
    start = [p.detach().clone() for p in model.parameters()]
    training.compare_steps(model, head, images, TARGETS, runs[:1], max_len=MAX_LEN)
    assert all(torch.equal(a, p) for a, p in zip(start, model.parameters()))  # restored


def test_the_two_reductions(model, head, images):
    assert training.image_weights([100, 400], "per_image").tolist() == [0.5, 0.5]
    assert training.image_weights([100, 400], "per_token").tolist() == [0.2, 0.8]
    losses = torch.tensor([1.0, 3.0])
    assert float(training.reduce_losses(losses, [100, 400], "per_image")) == pytest.approx(2.0)
    assert float(training.reduce_losses(losses, [100, 400], "per_token")) == pytest.approx(2.6)
    with pytest.raises(ValueError):
        training.reduce_losses(losses, [100, 400], "per_pixel")
    with pytest.raises(ValueError):
        training.reduce_losses(losses, [100], "per_image")
    # a mixed batch: the per-token mean is far from per-image training, the per-image one matches it
    runs = [("dense_mask", "per_token")]
    mixed = training.compare_steps(model, head, images, TARGETS, runs, max_len=MAX_LEN)
    assert mixed[0].max_grad_diff > 0.1
    # equal lengths: both reductions are the same loss
    same = images[:1] * 3
    runs = [("sdpa_segments", "per_image"), ("sdpa_segments", "per_token")]
    eq = training.compare_steps(model, head, same, TARGETS[:3], runs, max_len=MAX_LEN)
    assert max(c.max_grad_diff for c in eq) <= GRAD_TOL


def test_pool_and_losses_per_image(dinov2, images):
    with torch.no_grad():
        outs = dinov2.forward_packed(images, attention="dense_mask")
    assert torch.equal(training.pool(outs, "cls"), torch.stack([o[0] for o in outs]))
    assert torch.allclose(training.pool(outs, "mean")[0], outs[0][1:].mean(0))
    head = training.make_head(3, seed=0)
    assert torch.equal(head.weight, training.make_head(3, seed=0).weight)
    batch = P.pack_images(images, 14, max_len=MAX_LEN, cls_token=True)
    with torch.no_grad():
        losses, lengths = training.image_losses(dinov2, head, batch, TARGETS, "dense_mask")
        ref = F.cross_entropy(head(training.pool(outs)), TARGETS, reduction="none")
    assert lengths == batch.lengths and torch.allclose(losses, ref, atol=1e-4)
    with pytest.raises(ValueError):
        training.pool(outs, "max")


def test_sdpa_segments_and_varlen_rows_keep_images_apart():
    g = torch.Generator().manual_seed(0)
    seg = torch.tensor([[0, 0, 1, 1, 1, -1], [0, 1, 1, 2, -1, -1]])
    q, k, v = (torch.randn(2, 3, 6, 8, generator=g) for _ in range(3))
    out = attention.get("sdpa_segments").prepare(seg)(q, k, v)
    for b in range(2):
        for s in range(3):
            idx = (seg[b] == s).nonzero().flatten()
            if idx.numel():
                qb, kb, vb = (t[b:b + 1, :, idx] for t in (q, k, v))
                ref = F.scaled_dot_product_attention(qb, kb, vb)
                assert torch.allclose(out[b:b + 1, :, idx], ref, atol=1e-6)
    assert (out[seg[:, None, :, None].expand_as(out) < 0] == 0).all()  # padding stays zero
    dense = attention.get("dense_mask").prepare(seg)(q, k, v)
    assert torch.isfinite(dense).all()  # padding attends to itself: no NaN
    real = (seg >= 0)[:, None, :, None].expand_as(out)
    assert torch.allclose(dense[real], out[real], atol=1e-5)
    with pytest.raises(ValueError, match="contiguous"):
        attention.get("sdpa_segments").prepare(torch.tensor([[0, 1, 0]]))


def test_finetune_packed_and_padded_agree_step_by_step(dinov2):
    data = finetune.crop_task(steps=2, batch_size=4, budget=(4, 24), seed=1)
    again = finetune.crop_task(steps=2, batch_size=4, budget=(4, 24), seed=1)
    assert [s.size for b in data for s in b] == [s.size for b in again for s in b]
    assert all(s.budget >= (s.size[0] // 14) * (s.size[1] // 14) for b in data for s in b)
    before = [p.detach().clone() for p in dinov2.parameters()]
    runs = [finetune.finetune(dinov2, data, mode, max_len=64, attention="dense_mask", progress=False)
            for mode in finetune.MODES]
    assert all(torch.equal(a, p) for a, p in zip(before, dinov2.parameters()))  # the model is left as it was
    assert not any(p.requires_grad for p in dinov2.parameters())
    packed, padded = runs
    assert packed.tokens == padded.tokens and len(packed.losses) == 2
    assert max(abs(a - b) for a, b in zip(packed.losses, padded.losses)) <= 1e-4
    assert all(w >= 0 for r in runs for w in r.wasted)


def test_fill_rows_takes_images_in_order_while_the_next_one_fits():
    assert finetune.fill_rows([13, 11, 21, 10, 2], 32, 2) == 5
    assert finetune.fill_rows([13, 11, 21, 10, 2], 32, 1) == 2  # 13 + 11 fit, 21 no longer does
    assert finetune.fill_rows([20, 20, 5], 32, 1) == 1  # in order: the 5 behind the second 20 never enters
    assert finetune.fill_rows([40, 5], 32, 3) == 0  # the first image alone is longer than a row
    assert finetune.fill_rows([16] * 9, 32, 4) == 8


def test_time_drop_rates_fills_the_same_rows_with_more_images(model, head, images):
    before = [p.detach().clone() for p in model.parameters()]
    res = finetune.time_drop_rates(model, head, images, TARGETS, rates=(0.0, 0.5), backends=["sdpa_segments"],
                                   max_len=MAX_LEN, rows=1, repeats=2, train_blocks=1, progress=False)
    assert [(r["backend"], r["rate"]) for r in res] == [("sdpa_segments", 0.0), ("sdpa_segments", 0.5)]
    # lengths with CLS 13, 11, 21, ... -> 2 images in one row of 32; halved (7, 6, 11, 5, 2) -> all 5
    assert [r["images"] for r in res] == [2, 5] and [r["tokens"] for r in res] == [24, 31]
    assert all(r["slots"] == MAX_LEN and r["rows"] == 1 for r in res)
    assert all(len(r["times"]) == 2 and r["seconds"] == min(r["times"]) > 0 for r in res)
    assert all(abs(r["images_per_s"] - r["images"] / r["seconds"]) < 1e-9 for r in res)
    # the model is left as it was: weights and requires_grad (train_blocks froze the rest only inside)
    assert all(torch.equal(a, p) for a, p in zip(before, model.parameters()))
    assert all(p.requires_grad for p in model.parameters())
