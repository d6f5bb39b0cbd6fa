"""Packing on the real-weight DINOv2 ViT-S/14: packed forward == per-image forward (fp32, max abs diff
<= 1e-4) for every available attention backend, with and without NaViT token dropping, and the library's
own PackedBatch (several rows, padding, CLS, learned grid per image) driving the real blocks with each mask
form."""

from __future__ import annotations

import pytest
import torch
import torch.nn.functional as F
from PIL import Image

from anyres_tutorial import packing as P

TOL = 1e-4
BACKENDS = ["loop", "dense_mask", "flex", "varlen"]


@pytest.fixture(scope="module")
def images():
    """Real images at NaViT native sizes under a small budget, plus a one-patch image; normalised."""
    from anyres_tutorial.data import load_data_image
    from anyres_tutorial.encoder.vit import normalize

    out = []
    for name, budget in [("chelsea", 30), ("coffee", 16), ("astronaut", 10)]:
        img = load_data_image(name)
        w, h = P.native_size(img.size, "navit", patch_size=14, max_tokens=budget)
        out.append(normalize(img.resize((w, h), Image.BICUBIC)))
    out.append(normalize(load_data_image("rocket").resize((14, 14), Image.BICUBIC)))  # one patch
    return out


@pytest.fixture(scope="module")
def keep(images):
    """One seeded NaViT token-dropping draw (40 % per image), shared by every dropping test."""
    return P.drop_tokens([(im.shape[1] // 14) * (im.shape[2] // 14) for im in images], 0.4, seed=1)


@pytest.fixture(scope="module")
def refs(dinov2, images, keep):
    """Per-image reference outputs, computed once: {False: without dropping, True: with ``keep``}."""
    with torch.no_grad():
        return {False: [_reference(dinov2, im) for im in images],
                True: [_reference(dinov2, im, k) for im, k in zip(images, keep)]}


def _reference(model, img, keep=None):
    """One image alone through the real blocks: [CLS, (kept) patches] + its own position embedding."""
    tokens = model.embed(img[None])[0]  # (1 + N, D)
    if keep is not None:
        tokens = torch.cat([tokens[:1], tokens[1:][keep]])
    x = tokens[None]
    for blk in model.blocks:
        x = blk(x)
    return model.norm(x)[0]  # (1 + n, D)


def _backend(name):
    from anyres_tutorial.encoder.attention import available

    if name not in available("cpu"):
        pytest.skip(f"attention backend {name!r} not available on this machine")
    return name


def test_reference_is_the_per_image_forward(dinov2, images, refs):
    with torch.no_grad():
        for img, ref in zip(images, refs[False]):
            assert (dinov2.forward_tiles(img[None])[0] - ref).abs().max().item() <= TOL


@pytest.mark.parametrize("attention", BACKENDS)
def test_packed_forward_equals_per_image(dinov2, images, keep, refs, attention):
    """model.forward_packed == each image alone, without and with token dropping (same kept tokens)."""
    attention = _backend(attention)
    with torch.no_grad():
        for drop in (False, True):
            outs = dinov2.forward_packed(images, attention=attention, keep=keep if drop else None)
            assert len(outs) == len(images)
            for out, ref in zip(outs, refs[drop]):
                assert out.shape == ref.shape
                assert (out - ref).abs().max().item() <= TOL


def _run_rows(model, batch, attend_for_row):
    """Run the real blocks over each row of a PackedBatch of patch embeddings (+ CLS) with a row's mask."""
    x = batch.tokens + P.packed_learned_grid(model, batch)  # (B, L, D)
    rows = []
    for r in range(batch.num_rows):
        attend = attend_for_row(r)
        h = x[r:r + 1]
        for blk in model.blocks:
            h = blk(h, attend)
        rows.append(model.norm(h))
    return torch.cat(rows)  # (B, L, D)


@pytest.mark.filterwarnings("ignore:flex_attention called without torch.compile")
@pytest.mark.parametrize("form,drop", [("dense", False), ("dense", True), ("block_mask", True),
                                       ("cu_seqlens", False), ("cu_seqlens", True)])
def test_library_packed_batch_on_real_vit(dinov2, images, keep, refs, form, drop):
    from torch.nn.attention.flex_attention import flex_attention

    model = dinov2
    grids = [(im.shape[1] // 14, im.shape[2] // 14) for im in images]
    keep = keep if drop else None
    with torch.no_grad():
        embeds = [model.patch_embed(im[None]).flatten(2).transpose(1, 2)[0] for im in images]  # (N_i, D)
        lengths = [1 + (len(keep[i]) if drop else gh * gw) for i, (gh, gw) in enumerate(grids)]
        max_len = max(lengths) + 7  # several rows, each with padding
        batch = P.build_batch(embeds, grids, max_len=max_len, keep=keep, cls_token=model.cls_token[0, 0])
        assert batch.num_rows >= 2 and bool(batch.padding.any())

        if form == "dense":
            mask = batch.dense_mask(padding_attends_self=True)  # (B, L, L)

            def attend_for_row(r):
                return lambda q, k, v: F.scaled_dot_product_attention(q, k, v, attn_mask=mask[r])

            out = _run_rows(model, batch, attend_for_row)
        elif form == "block_mask":
            bms = [batch.block_mask(block_size=16, row=r, compile=False) for r in range(batch.num_rows)]

            def attend_for_row(r):
                return lambda q, k, v: flex_attention(q, k, v, block_mask=bms[r])

            out = _run_rows(model, batch, attend_for_row)
        else:  # varlen through cu_seqlens, emulated with one SDPA call per segment of the flat sequence
            cu, _ = batch.cu_seqlens()
            bounds = list(zip(cu[:-1].tolist(), cu[1:].tolist()))

            def varlen(q, k, v):  # (1, H, T, hd)
                return torch.cat([F.scaled_dot_product_attention(q[:, :, a:b], k[:, :, a:b], v[:, :, a:b])
                                  for a, b in bounds], dim=2)

            x = batch.flat(batch.tokens + P.packed_learned_grid(model, batch))[None]  # (1, T, D)
            for blk in model.blocks:
                x = blk(x, varlen)
            flat = model.norm(x)[0]  # (T, D)
            per = torch.split(flat, [batch.lengths[i] for i in batch.flat_order])
            outs = [None] * batch.num_images
            for i, t in zip(batch.flat_order, per):
                outs[i] = t
        if form != "cu_seqlens":
            assert torch.isfinite(out[~batch.padding]).all()
            outs = batch.split(out)
        for out_i, ref in zip(outs, refs[drop]):
            assert (out_i - ref).abs().max().item() <= TOL
        if form == "dense":  # per-image pooling of patch features ignores CLS, padding and dropped tokens
            pooled = batch.pool(out)
            want = torch.stack([ref[1:].mean(0) for ref in refs[drop]])
            assert (pooled - want).abs().max().item() <= TOL


def test_learned_grid_is_what_the_model_adds(dinov2, images):
    """The packed learned grid gives every image exactly the position embedding the ViT adds to it alone,
    wherever the image sits in the packed row."""
    grids = [(im.shape[1] // 14, im.shape[2] // 14) for im in images]
    toks = [torch.zeros(gh * gw, 384) for gh, gw in grids]
    with torch.no_grad():
        b = P.build_batch(toks, grids, rows=[[3, 1, 0, 2]], cls_token=torch.zeros(384))
        pos = P.packed_learned_grid(dinov2, b)
        assert bool((pos[b.padding] == 0).all())
        for img, t in zip(images, b.split(pos)):
            raw = dinov2.patch_embed(img[None]).flatten(2).transpose(1, 2)[0]  # (N, D)
            added = dinov2.embed(img[None])[0] - torch.cat([dinov2.cls_token[0], raw])  # (1 + N, D)
            torch.testing.assert_close(t, added, atol=1e-5, rtol=1e-5)
