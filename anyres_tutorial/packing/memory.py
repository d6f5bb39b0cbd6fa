"""How much memory each attention-mask form needs for a packed sequence (the N^2 blow-up, in bytes).

Taught in `navit_packing` and `timing`. Computed from formulas; the tests compare
them with the sizes of real objects from :mod:`anyres_tutorial.packing.masks`.

For one packed sequence of ``N = sum(lengths)`` tokens (or ``total`` slots with padding) holding ``k`` images:

- dense boolean mask: ``N * N`` bytes (``torch.bool`` is one byte); as an additive float32 mask ``4 N^2``;
- FlexAttention ``BlockMask`` with ``n = ceil(N / block_size)`` blocks per side: eight int32 tables —
  ``kv_num_blocks`` (n), ``kv_indices`` (n, n), their ``full_`` twins, and the transposed ``q_`` versions —
  ``4 * (4 n + 4 n^2) = 16 n (n + 1)`` bytes; still quadratic, but in blocks, not tokens; plus the int64
  segment ids its ``mask_mod`` reads (``8 N``);
- ``cu_seqlens``: ``k + 1`` int32 = ``4 (k + 1)`` bytes (plus nothing quadratic at all).
"""

from __future__ import annotations

import math

from ..checks import check_int, check_lengths, check_positive_int


def mask_memory(lengths, total: int | None = None, block_size: int = 128) -> dict:
    """Bytes needed by each mask form for one packed sequence of images with ``lengths`` tokens.

    ``total`` is the padded sequence length (default ``sum(lengths)``). Returns a dict with ``N``,
    ``num_images``, ``dense_bool``, ``dense_float32``, ``block_mask`` (the block tables),
    ``block_segment_ids`` (the int64 segment ids read by the mask_mod),
    ``cu_seqlens`` and ``blocks`` (blocks per side).
    """
    lengths = check_lengths(lengths)
    block_size = check_positive_int("block_size", block_size)
    n_tok = sum(lengths)
    N = n_tok if total is None else check_int("total", total)
    if N < n_tok:
        raise ValueError(f"total={total} is smaller than sum(lengths)={n_tok}")
    nb = math.ceil(N / block_size)
    return dict(
        N=N,
        num_images=len(lengths),
        dense_bool=N * N,
        dense_float32=4 * N * N,
        blocks=nb,
        block_mask=16 * nb * (nb + 1),
        block_segment_ids=8 * N,
        cu_seqlens=4 * (len(lengths) + 1),
    )
