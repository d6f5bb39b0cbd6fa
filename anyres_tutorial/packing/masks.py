"""Block-diagonal attention for packed sequences: segment ids, and the three mask forms built from them.

Taught in `navit_packing`; the attention backends (:mod:`anyres_tutorial.encoder.attention`) build their masks
here and nowhere else.

A token may only attend to tokens of its own image. Everything starts from the per-token image index,
:func:`segment_ids` (``-1`` marks padding), and :func:`segment_runs` reads the images back out of it. The same
rule can then be handed to a kernel in three forms:

- :func:`dense_mask`: an explicit ``(N, N)`` boolean matrix for ``F.scaled_dot_product_attention``; memory N².
- :func:`flex_block_mask`: a FlexAttention ``BlockMask``, built from a ``mask_mod`` on the segment ids; it
  records which ``block_size x block_size`` tiles are empty (skipped), full or partial, without an N x N
  matrix.
- :func:`cu_seqlens`: the cumulative lengths ``[0, L0, L0+L1, ...]`` of varlen / FlashAttention kernels.

Example (lengths 3, 5, 2): ``segment_ids([3, 5, 2])`` is ``[0 0 0 1 1 1 1 1 2 2]`` and ``cu_seqlens([3, 5,
2])`` is ``(tensor([0, 3, 8, 10], dtype=int32), 5)``.
"""

from __future__ import annotations

import functools

import torch

from ..checks import check_int, check_lengths, check_positive_int

INT32_MAX = 2**31 - 1


def segment_ids(lengths, total: int | None = None, device=None) -> torch.Tensor:
    """Image index of every token of a packed sequence: LongTensor ``(total,)``.

    ``lengths`` are the per-image token counts (CLS included, all > 0). Tokens after ``sum(lengths)`` (padding
    up to ``total``, default no padding) get ``-1``.
    """
    lengths = check_lengths(lengths)
    n = sum(lengths)
    total = n if total is None else check_int("total", total)
    if total < n:
        raise ValueError(f"total={total} is smaller than sum(lengths)={n}")
    ids = torch.repeat_interleave(torch.arange(len(lengths)), torch.tensor(lengths))  # (n,)
    pad = torch.full((total - n,), -1, dtype=torch.long)
    return torch.cat([ids, pad]).to(device)  # (total,)


def _check_seg(seg) -> torch.Tensor:
    if not isinstance(seg, torch.Tensor):
        raise TypeError(f"seg must be a LongTensor from segment_ids(), got {type(seg).__name__}")
    if seg.ndim not in (1, 2) or seg.numel() == 0:
        raise ValueError(f"seg must be a non-empty (N,) or (B, N) tensor, got shape {tuple(seg.shape)}")
    if seg.dtype not in (torch.int64, torch.int32):
        raise TypeError(f"seg must be an integer tensor (int64), got {seg.dtype}")
    return seg


def segment_runs(seg: torch.Tensor) -> list[list[tuple[int, int]]]:
    """Per row of ``seg`` (B, N) or (N,): the ``(start, end)`` slot range of every image, padding left out.
    Each image must sit in one contiguous run (ValueError otherwise)."""
    seg = _check_seg(seg)
    runs = []
    for row in seg.reshape(-1, seg.shape[-1]):
        ids, counts = torch.unique_consecutive(row, return_counts=True)
        real = ids[ids >= 0]
        if real.unique().numel() != real.numel():
            raise ValueError("each image's tokens must be contiguous in its row")
        ends = counts.cumsum(0).tolist()
        runs.append([(s, e) for s, e, i in zip([0] + ends[:-1], ends, ids.tolist()) if i >= 0])
    return runs


def dense_mask(seg: torch.Tensor, padding_attends_self: bool = False) -> torch.Tensor:
    """Boolean block-diagonal mask: True where query i may attend to key j, i.e. ``seg[i] == seg[j] >= 0``.

    ``seg`` (N,) gives (N, N); ``seg`` (B, N) gives (B, N, N), one mask per packed row. Padding rows and
    columns are all False, and ``F.scaled_dot_product_attention`` turns an all-False row into NaN, which leaks
    into real tokens in the next layer through ``0 * NaN``: ``padding_attends_self=True`` lets each padding
    slot attend to itself only (real tokens still never see padding), which keeps SDPA finite on padded rows.
    """
    seg = _check_seg(seg)
    mask = (seg[..., :, None] == seg[..., None, :]) & (seg[..., :, None] >= 0)  # (..., N, N)
    if padding_attends_self:
        mask = mask | torch.diag_embed(seg < 0)
    return mask


def same_segment_mask_mod(seg: torch.Tensor):
    """The FlexAttention ``mask_mod`` for packed rows ``seg`` (B, N): ``(b, h, q_idx, kv_idx) -> bool``.

    It reads only ``seg[b, q_idx]`` and ``seg[b, kv_idx]``, so FlexAttention can evaluate it per tile.
    """
    seg = _check_seg(seg).reshape(-1, seg.shape[-1])  # (B, N)

    def mask_mod(b, h, q_idx, kv_idx):
        return (seg[b, q_idx] == seg[b, kv_idx]) & (seg[b, q_idx] >= 0)

    return mask_mod


@functools.cache
def _compiled_create_block_mask():
    # One compiled builder per process; dynamic=True so new sequence lengths reuse the same graph.
    from torch.nn.attention.flex_attention import create_block_mask

    return torch.compile(create_block_mask, dynamic=True)


def flex_block_mask(seg: torch.Tensor, block_size: int = 128, compile: bool = True):
    """FlexAttention ``BlockMask`` of the block-diagonal rule for packed rows ``seg`` (B, N) (or one row (N,),
    batch 1), without building an N x N matrix.

    ``create_block_mask`` evaluates :func:`same_segment_mask_mod` and keeps, per ``block_size`` tile, whether
    it is empty / partial / full. Eager ``create_block_mask`` materialises the dense mask internally, so by
    default it runs compiled (once per process, dynamic shapes); ``compile=False`` uses the eager builder
    (small N).
    """
    from torch.nn.attention.flex_attention import create_block_mask

    seg = _check_seg(seg).reshape(-1, seg.shape[-1])  # (B, N)
    block_size = check_positive_int("block_size", block_size)
    n = seg.shape[-1]
    builder = _compiled_create_block_mask() if compile else create_block_mask
    return builder(same_segment_mask_mod(seg), seg.shape[0], None, n, n, device=seg.device,
                   BLOCK_SIZE=block_size)


def cu_seqlens(lengths, device=None) -> tuple[torch.Tensor, int]:
    """Cumulative sequence boundaries for varlen attention: ``(IntTensor int32 (B+1,), max_seqlen)``.

    ``cu_seqlens([3, 5, 2]) == (tensor([0, 3, 8, 10], dtype=torch.int32), 5)``: image i owns tokens
    ``cu[i]:cu[i+1]``. More than 2**31 - 1 tokens in all cannot be addressed in int32 (ValueError).
    """
    lengths = check_lengths(lengths)
    if sum(lengths) > INT32_MAX:
        raise ValueError(f"{sum(lengths)} tokens do not fit the int32 offsets of cu_seqlens "
                         f"(at most {INT32_MAX})")
    cu = torch.zeros(len(lengths) + 1, dtype=torch.int32)
    cu[1:] = torch.cumsum(torch.tensor(lengths, dtype=torch.int64), 0).to(torch.int32)
    return cu.to(device), max(lengths)
