"""Property tests (hypothesis) for anyres_tutorial.packing: packing invariants, the three mask forms agree,
no token attends across images, and unpack(pack(x)) == x."""

from __future__ import annotations

import itertools
import math
import random

import torch
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from anyres_tutorial import packing as P
from anyres_tutorial.packing import masks

SETTINGS = settings(max_examples=60, deadline=None, suppress_health_check=[HealthCheck.too_slow])

lengths_st = st.lists(st.integers(1, 60), min_size=1, max_size=12)


@SETTINGS
@given(lengths=lengths_st, extra=st.integers(0, 40), strategy=st.sampled_from(P.STRATEGIES))
def test_pack_invariants(lengths, extra, strategy):
    max_len = max(lengths) + extra
    rows = P.pack(lengths, max_len, strategy)
    flat = [i for r in rows for i in r]
    assert sorted(flat) == list(range(len(lengths)))  # every image exactly once
    loads = [sum(lengths[i] for i in r) for r in rows]
    assert all(0 < load <= max_len for load in loads)
    assert len(rows) >= math.ceil(sum(lengths) / max_len)
    if strategy == "next_fit":
        assert flat == list(range(len(lengths)))  # order preserved
        for a, b in zip(rows, rows[1:]):  # a row is closed only when the next image did not fit
            assert sum(lengths[i] for i in a) + lengths[b[0]] > max_len
    else:
        # first fit: a later row's first image did not fit any earlier row, so any two rows overflow together
        for a, b in itertools.combinations(loads, 2):
            assert a + b > max_len
    rep = P.padding_report(rows, lengths, max_len)
    assert rep["padding"] == len(rows) * max_len - sum(lengths)


def _check_masks_agree(seg: torch.Tensor, lengths: list[int], block: int):
    """dense == cu_seqlens ranges == BlockMask (mask_mod and block tables) for one packed row."""
    N = seg.numel()
    dense = masks.dense_mask(seg)
    # no token attends across images, padding neither attends nor is attended
    i, j = torch.nonzero(dense, as_tuple=True)
    assert bool((seg[i] == seg[j]).all()) and bool((seg[i] >= 0).all())
    # from cu_seqlens
    cu, max_seqlen = masks.cu_seqlens(lengths)
    assert max_seqlen == max(lengths) and cu.dtype == torch.int32 and cu.numel() == len(lengths) + 1
    from_cu = torch.zeros(N, N, dtype=torch.bool)
    for a, b in zip(cu[:-1].tolist(), cu[1:].tolist()):
        from_cu[a:b, a:b] = True
    assert torch.equal(dense, from_cu)
    # BlockMask: its mask_mod, evaluated everywhere, is the dense mask; its tables mark exactly the tiles with
    # something to compute (partial) and the tiles that are entirely True (full)
    bm = masks.flex_block_mask(seg, block_size=block, compile=False)
    q = torch.arange(N)[:, None]
    kv = torch.arange(N)[None, :]
    zero = torch.tensor(0)
    assert torch.equal(bm.mask_mod(zero, zero, q, kv), dense)
    nb = math.ceil(N / block)

    def tiles(m):  # (N, N) -> (nb, nb, block * block), zero-padded to whole tiles
        padded = torch.zeros(nb * block, nb * block, dtype=torch.bool)
        padded[:N, :N] = m
        return padded.reshape(nb, block, nb, block).permute(0, 2, 1, 3).reshape(nb, nb, -1)

    vt = tiles(torch.ones(N, N, dtype=torch.bool))
    any_true = tiles(dense).any(-1)
    all_true = (tiles(dense) | ~vt).all(-1) & any_true  # full: every in-range entry True
    listed = torch.zeros(nb, nb, dtype=torch.bool)
    full = torch.zeros(nb, nb, dtype=torch.bool)
    for r in range(nb):
        listed[r, bm.kv_indices[0, 0, r, : bm.kv_num_blocks[0, 0, r]]] = True
        full[r, bm.full_kv_indices[0, 0, r, : bm.full_kv_num_blocks[0, 0, r]]] = True
    assert torch.equal(listed | full, any_true)
    assert not bool((listed & full).any())
    # a tile flagged full must be all True; an all-True tile may be kept partial only at the sequence edge
    assert bool((all_true | ~full).all())


@SETTINGS
@given(lengths=st.lists(st.integers(1, 40), min_size=1, max_size=6), pad=st.integers(0, 20),
       block=st.sampled_from([4, 8, 16, 128]))
def test_three_mask_forms_agree(lengths, pad, block):
    seg = masks.segment_ids(lengths, total=sum(lengths) + pad)
    _check_masks_agree(seg, lengths, block)
    mem = P.mask_memory(lengths, total=sum(lengths) + pad, block_size=block)
    assert mem["dense_bool"] == seg.numel() ** 2


@st.composite
def image_sets(draw):
    n = draw(st.integers(1, 5))
    grids = [(draw(st.integers(1, 4)), draw(st.integers(1, 4))) for _ in range(n)]
    return grids


@SETTINGS
@given(grids=image_sets(), extra=st.integers(0, 10), strategy=st.sampled_from(P.STRATEGIES),
       drop=st.booleans(), seed=st.integers(0, 1000))
def test_unpack_of_pack_is_identity(grids, extra, strategy, drop, seed):
    p = 2
    g = torch.Generator().manual_seed(seed)
    images = [torch.randn(3, gh * p, gw * p, generator=g) for gh, gw in grids]
    counts = [gh * gw for gh, gw in grids]
    keep = P.drop_tokens(counts, 0.5, seed=seed) if drop else None
    lengths = [len(k) for k in keep] if drop else counts
    max_len = max(lengths) + extra
    b = P.pack_images(images, p, max_len=max_len, strategy=strategy, keep=keep)
    assert b.rows == P.pack(lengths, max_len, strategy)
    assert b.tokens.shape == (len(b.rows), max_len, 3 * p * p)
    # split returns each image's (kept) patch tokens; unpack_images rebuilds the pixels
    for i, (img, toks) in enumerate(zip(images, b.split())):
        ref = P.patchify(img, p)[0]
        if keep is not None:
            ref = ref[keep[i]]
        assert torch.equal(toks, ref)
    rebuilt = b.unpack_images()
    for i, (img, out) in enumerate(zip(images, rebuilt)):
        if keep is None:
            assert torch.equal(out, img)
        else:
            assert torch.equal(P.patchify(out, p)[0][keep[i]], P.patchify(img, p)[0][keep[i]])
    # positions restart per image and never exceed that image's grid
    for i, (gh, gw) in enumerate(grids):
        pos = b.positions[b.image_ids == i]
        assert int(pos[:, 0].max()) < gh and int(pos[:, 1].max()) < gw
        assert bool((b.frac[b.image_ids == i] < 1).all())
    # flat + cu_seqlens agree with split
    cu, _ = b.cu_seqlens()
    flat = b.flat()
    per_image = b.split()
    for k, i in enumerate(b.flat_order):
        assert torch.equal(flat[cu[k]:cu[k + 1]], per_image[i])
    # every row's masks agree, and the batch-level dense mask matches the row-level builder
    dense = b.dense_mask()
    for r in range(b.num_rows):
        assert torch.equal(dense[r], masks.dense_mask(b.segment_ids[r]))
        _check_masks_agree(b.segment_ids[r], b.row_lengths(r), 4)
    # pooling == mean of each image's tokens
    x = torch.randn(b.num_rows, b.row_len, 3, generator=g)
    pooled = b.pool(x)
    torch.testing.assert_close(pooled, torch.stack([t.mean(0) for t in b.split(x)]))


@SETTINGS
@given(sizes=st.lists(st.tuples(st.integers(14, 400), st.integers(14, 400)), min_size=1, max_size=12),
       batch_size=st.integers(1, 5), seed=st.integers(0, 100))
def test_bucketing_never_pads_more_than_arrival_order(sizes, batch_size, seed):
    rep = P.bucketing_report(sizes, batch_size, 14)
    assert 0 <= rep["padding_bucketed"] <= rep["padding_in_order"]
    # nor more than any other arrival order
    shuffled = list(sizes)
    random.Random(seed).shuffle(shuffled)
    assert rep["padding_bucketed"] <= P.bucketing_report(shuffled, batch_size, 14)["padding_in_order"]
    batches = P.bucket_by_resolution(sizes, batch_size, 14)
    assert sorted(i for b in batches for i in b) == list(range(len(sizes)))
    assert sorted(len(b) for b in batches)[1:] == [batch_size] * (len(batches) - 1)  # at most one short batch


@SETTINGS
@given(grids=image_sets(), data=st.data())
def test_positions_independent_of_packing_order(grids, data):
    """Every position encoding gives an image the same vectors wherever it sits in the packed sequence."""
    toks = [torch.randn(gh * gw, 4) for gh, gw in grids]
    order = data.draw(st.permutations(range(len(grids))))
    b = P.build_batch(toks, grids, rows=[list(order)])
    emb_abs = P.FactorizedPositionEmbedding(8, size=4)
    emb_frac = P.FactorizedPositionEmbedding(8, size=3, fractional=True)
    x = torch.randn(b.row_len, 8)
    rope = P.apply_rope_2d(x, b.positions[0])
    for i, g in enumerate(grids):
        where = b.image_ids[0] == i
        coords, frac = P.grid_coords(g)
        torch.testing.assert_close(emb_abs(b.positions[0][where]), emb_abs(coords))
        torch.testing.assert_close(emb_frac(b.frac[0][where]), emb_frac(frac))
        torch.testing.assert_close(rope[where], P.apply_rope_2d(x[where], coords))
