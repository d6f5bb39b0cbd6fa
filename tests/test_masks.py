"""Block-diagonal masks for packed sequences: the dense, FlexAttention and cu_seqlens forms agree."""

from __future__ import annotations

import pytest
import torch
import torch.nn.functional as F
from torch.nn.attention.flex_attention import create_mask, flex_attention

from anyres_tutorial.packing.masks import (
    cu_seqlens,
    dense_mask,
    flex_block_mask,
    same_segment_mask_mod,
    segment_ids,
)


def test_segment_ids_and_cu_seqlens_small_example():
    seg = segment_ids([3, 5, 2])
    assert seg.dtype == torch.long
    assert seg.tolist() == [0, 0, 0, 1, 1, 1, 1, 1, 2, 2]
    cu, max_len = cu_seqlens([3, 5, 2])
    assert cu.dtype == torch.int32
    assert cu.tolist() == [0, 3, 8, 10]
    assert max_len == 5
    assert isinstance(max_len, int)


def test_segment_ids_padding_and_tensor_lengths():
    seg = segment_ids(torch.tensor([2, 1]), total=6)
    assert seg.tolist() == [0, 0, 1, -1, -1, -1]
    with pytest.raises(ValueError, match="smaller than"):
        segment_ids([2, 3], total=4)


@pytest.mark.parametrize("bad", [[], [3, 0], [2, -1]])
def test_bad_lengths_raise_value_error(bad):
    for fn in (segment_ids, cu_seqlens):
        with pytest.raises(ValueError):
            fn(bad)


@pytest.mark.parametrize("bad", [[1.5, 2], "abc", 5, torch.tensor([1.0, 2.0])])
def test_non_integer_lengths_raise_type_error(bad):
    with pytest.raises(TypeError):
        segment_ids(bad)


def test_dense_mask_is_block_diagonal_with_empty_padding():
    seg = segment_ids([3, 5, 2], total=12)
    m = dense_mask(seg)
    assert m.shape == (12, 12) and m.dtype == torch.bool
    # built independently from the cu_seqlens boundaries
    cu, _ = cu_seqlens([3, 5, 2])
    expected = torch.zeros(12, 12, dtype=torch.bool)
    for a, b in zip(cu[:-1].tolist(), cu[1:].tolist()):
        expected[a:b, a:b] = True
    assert torch.equal(m, expected)
    assert not m[10:].any() and not m[:, 10:].any()


def test_dense_mask_bad_input():
    with pytest.raises(TypeError):
        dense_mask([0, 0, 1])
    with pytest.raises(ValueError):
        dense_mask(torch.zeros(2, 2, 2, dtype=torch.long))  # rows (B, N) at most
    with pytest.raises(TypeError):
        dense_mask(torch.zeros(3))
    rows = torch.tensor([[0, 0, 1, -1], [0, 1, 1, 1]])
    assert torch.equal(dense_mask(rows), torch.stack([dense_mask(r) for r in rows]))  # one mask per row


@pytest.mark.parametrize("lengths, total", [([3, 5, 2], 10), ([1, 130, 7, 40], 256), ([200], 256)])
def test_mask_mod_matches_dense_mask(lengths, total):
    seg = segment_ids(lengths, total)
    materialised = create_mask(same_segment_mask_mod(seg), 1, 1, total, total, device="cpu")[0, 0]
    assert torch.equal(materialised, dense_mask(seg))


def _tile_reduce(m: torch.Tensor, bs: int, op) -> torch.Tensor:
    n = m.shape[0] // bs
    return op(m.view(n, bs, n, bs).permute(0, 2, 1, 3).reshape(n, n, -1), -1)


def test_block_mask_structure_matches_dense_mask():
    """Compiled (default) and eager builders agree, and every non-empty tile of the dense mask is listed."""
    lengths, bs = [1, 150, 60, 3, 200], 64
    total = 448  # 7 tiles of 64, last partly padding
    seg = segment_ids(lengths, total)
    dense = dense_mask(seg)
    any_tile = _tile_reduce(dense, bs, torch.any)  # tile has at least one allowed pair
    all_tile = _tile_reduce(dense, bs, torch.all)  # tile is entirely allowed
    for compile in (False, True):
        bm = flex_block_mask(seg, block_size=bs, compile=compile)
        assert bm.shape[-2:] == (total, total)
        assert torch.equal(bm.to_dense()[0, 0].bool(), any_tile), f"compile={compile}"
        full = torch.zeros_like(all_tile)
        nfull = bm.full_kv_num_blocks[0, 0]
        for q in range(full.shape[0]):
            full[q, bm.full_kv_indices[0, 0, q, : nfull[q]]] = True
        assert torch.equal(full, all_tile), f"compile={compile}"


@pytest.mark.filterwarnings("ignore:flex_attention called without torch.compile")
def test_three_forms_give_the_same_attention():
    """SDPA + dense mask == FlexAttention + BlockMask == per-segment attention from cu_seqlens."""
    g = torch.Generator().manual_seed(1)
    lengths = [5, 1, 70, 20]
    n = sum(lengths)
    total = 128
    q, k, v = (torch.randn(1, 2, total, 16, generator=g) for _ in range(3))
    seg = segment_ids(lengths, total)

    qn, kn, vn = q[:, :, :n], k[:, :, :n], v[:, :, :n]
    dense_out = F.scaled_dot_product_attention(qn, kn, vn, attn_mask=dense_mask(seg[:n]))
    bm = flex_block_mask(seg, block_size=32, compile=False)
    flex_out = flex_attention(q, k, v, block_mask=bm)[:, :, :n]  # eager reference path of flex_attention
    cu, max_len = cu_seqlens(lengths)
    pieces = [
        F.scaled_dot_product_attention(q[:, :, a:b], k[:, :, a:b], v[:, :, a:b])
        for a, b in zip(cu[:-1].tolist(), cu[1:].tolist())
    ]
    varlen_out = torch.cat(pieces, dim=2)
    assert max_len == 70
    assert torch.allclose(dense_out, varlen_out, atol=1e-5)
    assert torch.allclose(flex_out, varlen_out, atol=1e-5)


def test_flex_block_mask_bad_block_size():
    with pytest.raises(ValueError):
        flex_block_mask(segment_ids([3]), block_size=0)
