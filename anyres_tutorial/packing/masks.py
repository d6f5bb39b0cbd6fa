"""Block-diagonal attention masks for packed sequences, in the three forms the attention backends want.

Taught in `navit_packing` and timed in `timing`; the attention backends of
:mod:`anyres_tutorial.encoder.attention` use them in ``forward_packed``.

When several images are packed into one token sequence, a token may only attend to tokens of its own image.
The same rule "query and key belong to the same image" can be handed to an attention kernel in three ways:

- :func:`dense_mask` -- an explicit ``(N, N)`` boolean matrix (True = may attend) for
  ``F.scaled_dot_product_attention``. Simple, but memory grows as N².
- :func:`flex_block_mask` -- a FlexAttention ``BlockMask``: the rule is a tiny function (``mask_mod``) of the
  query and key indices, and ``create_block_mask`` records which ``block_size x block_size`` tiles of the
  attention matrix are empty (skipped), full, or partial. Built under ``torch.compile`` so the N×N matrix is
  never materialised.
- :func:`cu_seqlens` -- just the cumulative lengths ``[0, L0, L0+L1, ...]``: the varlen / FlashAttention
  interface, which needs no mask at all.

All three start from the per-token image index, :func:`segment_ids` (``-1`` marks padding).

Example (lengths 3, 5, 2)::

    segment_ids([3, 5, 2])      -> [0 0 0 1 1 1 1 1 2 2]
    cu_seqlens([3, 5, 2])       -> (tensor([0, 3, 8, 10], dtype=int32), 5)
"""

from __future__ import annotations

import functools

import torch

from ..checks import check_int, check_positive_int


def check_lengths(lengths) -> list[int]:
    """Positive integer lengths, at least one, as a list of ints (ValueError / TypeError otherwise).

    Accepts a sequence of ints (numpy / torch scalars too) or a 1-D integer tensor. Shared by the mask
    builders here and by :func:`anyres_tutorial.packing.pack`.
    """
    if isinstance(lengths, torch.Tensor):
        if lengths.ndim != 1:
            raise ValueError(f"lengths must be 1-D, got a tensor of shape {tuple(lengths.shape)}")
        if lengths.dtype.is_floating_point or lengths.dtype.is_complex or lengths.dtype == torch.bool:
            raise TypeError(f"lengths must be integers, got dtype {lengths.dtype}")
        lengths = lengths.tolist()
    if isinstance(lengths, (str, bytes)) or not hasattr(lengths, "__iter__"):
        raise TypeError(f"lengths must be a sequence of integers, got {type(lengths).__name__}")
    lengths = list(lengths)
    if len(lengths) == 0:
        raise ValueError("lengths is empty: need at least one sequence")
    out = []
    for i, n in enumerate(lengths):
        if hasattr(n, "item") and getattr(n, "ndim", 1) == 0:  # numpy / torch scalars
            n = n.item()
        n = check_int(f"lengths[{i}]", n)
        if n <= 0:
            raise ValueError(f"lengths[{i}] = {n}: every sequence needs a token (zero-size image?)")
        out.append(n)
    return out


def segment_ids(lengths, total: int | None = None, device=None) -> torch.Tensor:
    """Image index of every token of a packed sequence: LongTensor ``(total,)``.

    ``lengths`` are the per-image token counts (CLS included, all > 0). Tokens after ``sum(lengths)`` (padding
    up to ``total``, default no padding) get ``-1``.
    """
    lengths = check_lengths(lengths)
    n = sum(lengths)
    if total is None:
        total = n
    total = check_int("total", total)
    if total < n:
        raise ValueError(f"total={total} is smaller than sum(lengths)={n}")
    ids = torch.repeat_interleave(torch.arange(len(lengths)), torch.tensor(lengths))  # (n,)
    pad = torch.full((total - n,), -1, dtype=torch.long)
    return torch.cat([ids, pad]).to(device)  # (total,)


def _check_seg(seg, rows: bool = False) -> torch.Tensor:
    if not isinstance(seg, torch.Tensor):
        raise TypeError(f"seg must be a LongTensor from segment_ids(), got {type(seg).__name__}")
    if seg.ndim not in ((1, 2) if rows else (1,)) or seg.numel() == 0:
        what = "1-D (N,) or 2-D (B, N)" if rows else "1-D"
        raise ValueError(f"seg must be a non-empty {what} tensor, got shape {tuple(seg.shape)}")
    if seg.dtype not in (torch.int64, torch.int32):
        raise TypeError(f"seg must be an integer tensor (int64), got {seg.dtype}")
    return seg


def dense_mask(seg: torch.Tensor) -> torch.Tensor:
    """Boolean ``(N, N)`` block-diagonal mask: True where query i may attend to key j.

    True iff ``seg[i] == seg[j] >= 0``; padding rows and columns (``seg == -1``) are all False. Note that
    ``F.scaled_dot_product_attention`` returns NaN for a row with no True entry, so do not feed padding rows
    to SDPA (``forward_packed`` never pads for this backend).
    """
    seg = _check_seg(seg)
    return (seg[:, None] == seg[None, :]) & (seg[:, None] >= 0)  # (N, N)


def same_segment_mask_mod(seg: torch.Tensor):
    """The FlexAttention ``mask_mod`` for a packed sequence: ``(b, h, q_idx, kv_idx) -> bool``.

    It reads only ``seg[q_idx]`` and ``seg[kv_idx]``, so FlexAttention can evaluate it per tile. ``seg``
    (B, N): one packed row per batch index ``b`` (``seg[b, q_idx]``, ``seg[b, kv_idx]``).
    """
    seg = _check_seg(seg, rows=True)
    if seg.ndim == 2:
        def row_mask_mod(b, h, q_idx, kv_idx):
            return (seg[b, q_idx] == seg[b, kv_idx]) & (seg[b, q_idx] >= 0)

        return row_mask_mod

    def mask_mod(b, h, q_idx, kv_idx):
        return (seg[q_idx] == seg[kv_idx]) & (seg[q_idx] >= 0)

    return mask_mod


@functools.cache
def _compiled_create_block_mask():
    # One compiled builder per process; dynamic=True so new sequence lengths reuse the same graph.
    from torch.nn.attention.flex_attention import create_block_mask

    return torch.compile(create_block_mask, dynamic=True)


def flex_block_mask(seg: torch.Tensor, block_size: int = 128, compile: bool = True):
    """FlexAttention ``BlockMask`` for the block-diagonal rule, without building the N×N matrix.

    ``create_block_mask`` evaluates :func:`same_segment_mask_mod` and keeps, per ``block_size`` tile,
    whether it is empty / partial / full. Eager ``create_block_mask`` does materialise the dense mask
    internally, so by default it runs under ``torch.compile`` (compiled once per process, dynamic shapes),
    which fuses the mask evaluation into the block reduction. ``compile=False`` uses the eager builder
    (fine for small N, tests). Pad the sequence to a multiple of ``block_size`` (padding ``seg == -1``) so
    that new lengths rarely need a new compiled kernel. ``seg`` (B, N) gives a mask with batch ``B``: one
    packed row each (``model.forward_packed(PackedBatch)``).
    """
    from torch.nn.attention.flex_attention import create_block_mask

    seg = _check_seg(seg, rows=True)
    block_size = check_positive_int("block_size", block_size)
    n = seg.shape[-1]
    batch = seg.shape[0] if seg.ndim == 2 else None
    builder = _compiled_create_block_mask() if compile else create_block_mask
    mask_mod = same_segment_mask_mod(seg)
    return builder(mask_mod, batch, None, n, n, device=seg.device, BLOCK_SIZE=block_size)


def cu_seqlens(lengths, device=None) -> tuple[torch.Tensor, int]:
    """Cumulative sequence boundaries for varlen attention: ``(IntTensor int32 (B+1,), max_seqlen)``.

    ``cu_seqlens([3, 5, 2]) == (tensor([0, 3, 8, 10], dtype=torch.int32), 5)``: image i owns tokens
    ``cu[i]:cu[i+1]``.
    """
    lengths = check_lengths(lengths)
    cu = torch.zeros(len(lengths) + 1, dtype=torch.int32)
    cu[1:] = torch.cumsum(torch.tensor(lengths, dtype=torch.int64), 0).to(torch.int32)
    return cu.to(device), max(lengths)
