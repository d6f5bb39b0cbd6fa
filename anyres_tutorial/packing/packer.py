"""Packing variable-length token sequences into fixed-length rows (NaViT's "Patch n' Pack").

Taught in `navit_packing`; the padding numbers are compared with tiling in `tiling_vs_packing`.

- :func:`pack` assigns sequences (one per image) to rows of at most ``max_len`` tokens: ``"next_fit"`` is the
  greedy, order-preserving grouping of lucidrains' ``vit_pytorch.na_vit.group_images_by_max_seq_len`` (close
  the current row as soon as the next image does not fit); ``"ffd"`` is first-fit-decreasing bin packing.
- :func:`padding_report` counts the padding a row assignment wastes.
- :func:`bucket_by_resolution` is the other classic answer ("dynamic batching by resolution similarity"): no
  packing, but batches of similar-size images, so padding each batch to its longest member wastes little;
  :func:`bucketing_report` measures the padding that saves against batches in arrival order.
"""

from __future__ import annotations

import math

from ..checks import check_int, check_lengths, check_pair, check_positive_int

STRATEGIES = ("ffd", "next_fit")


def _check_max_len(max_len, lengths: list[int]) -> int:
    max_len = check_int("max_len", max_len)
    longest = max(lengths)
    if max_len < longest:
        i = lengths.index(longest)
        raise ValueError(f"max_len={max_len} is smaller than sequence {i} ({longest} tokens): "
                         "it can never fit")
    return max_len


def pack(lengths, max_len: int, strategy: str = "ffd") -> list[list[int]]:
    """Assign sequences of the given ``lengths`` to rows holding at most ``max_len`` tokens each.

    Returns a list of rows, each a list of indices into ``lengths`` in the order they sit in the row.

    - ``"next_fit"``: keep the input order; start a new row when the next sequence would overflow the current
      one (lucidrains' ``group_images_by_max_seq_len``).
    - ``"ffd"`` (first-fit decreasing): longest first (ties by index), each into the first row with room.

    >>> pack([400, 200, 300, 100], 512, "next_fit")
    [[0], [1, 2], [3]]
    >>> pack([400, 200, 300, 100], 512, "ffd")
    [[0, 3], [2, 1]]
    """
    if strategy not in STRATEGIES:
        raise ValueError(f"unknown packing strategy {strategy!r}; choose one of {STRATEGIES}")
    lengths = check_lengths(lengths)
    max_len = _check_max_len(max_len, lengths)
    rows: list[list[int]] = []
    if strategy == "next_fit":
        row, used = [], 0
        for i, n in enumerate(lengths):
            if used + n > max_len:
                rows.append(row)
                row, used = [], 0
            row.append(i)
            used += n
        if row:
            rows.append(row)
        return rows
    # first-fit decreasing
    free: list[int] = []  # room left in each row
    for i in sorted(range(len(lengths)), key=lambda j: (-lengths[j], j)):
        n = lengths[i]
        for r, room in enumerate(free):
            if n <= room:
                rows[r].append(i)
                free[r] -= n
                break
        else:
            rows.append([i])
            free.append(max_len - n)
    return rows


def check_rows(rows, n: int) -> list[list[int]]:
    """Every index 0..n-1 exactly once, no empty row."""
    rows = [list(r) for r in rows]
    if not rows:
        raise ValueError("rows is empty")
    seen = sorted(i for r in rows for i in r)
    if seen != list(range(n)):
        raise ValueError(f"rows must use every index 0..{n - 1} exactly once, got {rows}")
    if any(len(r) == 0 for r in rows):
        raise ValueError(f"rows contains an empty row: {rows}")
    return rows


def padding_report(rows, lengths, max_len: int | None = None) -> dict:
    """How much of a packed batch is padding.

    ``rows`` as returned by :func:`pack`; every row is padded to ``max_len`` (``None``: to the longest row, as
    a batch tensor would be). Returns ``rows``, ``tokens`` (real), ``slots`` (rows x row length), ``padding``,
    ``padding_fraction`` and ``fill`` (tokens per row / row length, one per row).
    """
    lengths = check_lengths(lengths)
    rows = check_rows(rows, len(lengths))
    used = [sum(lengths[i] for i in r) for r in rows]
    row_len = max(used) if max_len is None else _check_max_len(max_len, lengths)
    if max(used) > row_len:
        raise ValueError(f"a row holds {max(used)} tokens, more than max_len={row_len}")
    tokens, slots = sum(used), row_len * len(rows)
    return dict(rows=len(rows), row_len=row_len, tokens=tokens, slots=slots, padding=slots - tokens,
                padding_fraction=(slots - tokens) / slots, fill=[u / row_len for u in used])


# ---------------------------------------------------------------------------------------------------------
# bucketing by resolution (no packing: pad each batch to its longest image)


def _grid_tokens(sizes, patch_size: int) -> list[int]:
    patch_size = check_positive_int("patch_size", patch_size)
    sizes = list(sizes)
    if not sizes:
        raise ValueError("sizes is empty: nothing to bucket")
    out = []
    for i, s in enumerate(sizes):
        w, h = check_pair(f"sizes[{i}] (width, height)", s, minimum=None)
        if w < patch_size or h < patch_size:
            raise ValueError(f"sizes[{i}] = {s!r} is below one {patch_size}-pixel patch (zero-size image?)")
        out.append((w // patch_size) * (h // patch_size))
    return out


def bucket_by_resolution(sizes, batch_size: int, patch_size: int = 14) -> list[list[int]]:
    """Batches of ``batch_size`` images of similar resolution ("dynamic batching by resolution similarity").

    ``sizes`` are (width, height). Images are ordered by token count, largest first (ties: aspect ratio, then
    index), and cut into consecutive batches, so each batch's members need similar numbers of tokens. When
    ``batch_size`` does not divide the number of images, the one short batch is placed where it costs the
    least padding (contiguous batches of the sorted order are optimal, so this is the minimum padding over
    all ways to form batches of these sizes). Taught in `navit_packing`.
    """
    batch_size = check_positive_int("batch_size", batch_size)
    tokens = _grid_tokens(sizes, patch_size)
    sizes = list(sizes)
    order = sorted(range(len(sizes)), key=lambda i: (-tokens[i], sizes[i][0] / sizes[i][1], i))
    n, full = len(order), len(order) // batch_size
    short = n - full * batch_size
    if short == 0:
        return [order[k:k + batch_size] for k in range(0, n, batch_size)]
    best = None
    for pos in range(full + 1):  # the short batch comes after `pos` full batches
        cuts = [batch_size] * pos + [short] + [batch_size] * (full - pos)
        batches, start = [], 0
        for c in cuts:
            batches.append(order[start:start + c])
            start += c
        pad = sum(len(b) * tokens[b[0]] - sum(tokens[i] for i in b) for b in batches)  # b[0] is the longest
        if best is None or pad < best[0]:
            best = (pad, batches)
    return best[1]


def padded_batches_padding(batches, lengths) -> int:
    """Padding tokens when each batch is padded to its own longest sequence (no packing)."""
    lengths = check_lengths(lengths)
    batches = check_rows(batches, len(lengths))
    return sum(len(b) * max(lengths[i] for i in b) - sum(lengths[i] for i in b) for b in batches)


def bucketing_report(sizes, batch_size: int, patch_size: int = 14) -> dict:
    """Padding of plain batches in arrival order vs batches bucketed by resolution (same ``batch_size``).

    Returns ``tokens`` (real), ``padding_in_order``, ``padding_bucketed``, ``saved`` (tokens) and
    ``saved_fraction`` (of the in-order padding; 0 when there was none).
    """
    tokens = _grid_tokens(sizes, patch_size)
    n = len(tokens)
    in_order = [list(range(k, min(k + batch_size, n))) for k in range(0, n, batch_size)]
    bucketed = bucket_by_resolution(sizes, batch_size, patch_size)
    pad_a = padded_batches_padding(in_order, tokens)
    pad_b = padded_batches_padding(bucketed, tokens)
    return dict(tokens=sum(tokens), batches=math.ceil(n / batch_size), padding_in_order=pad_a,
                padding_bucketed=pad_b, saved=pad_a - pad_b,
                saved_fraction=(pad_a - pad_b) / pad_a if pad_a else 0.0)
