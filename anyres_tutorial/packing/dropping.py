"""NaViT token dropping and per-image pooling of packed outputs.

Taught in `navit_packing`.

- :func:`drop_tokens` keeps a random subset of each image's patch tokens (NaViT drops a random fraction per
  image; lucidrains keeps ``max(1, int(n * (1 - rate)))`` tokens). The kept *indices* (sorted, raster order)
  are returned, so each kept token keeps its own (row, col) position: that list is exactly the ``keep``
  argument of ``model.forward_packed(images, keep=...)`` and of :func:`~anyres_tutorial.packing.pack_images`.
- :func:`check_keep` validates such a ``keep`` list: the one rule shared by ``forward_packed`` and
  ``pack_images`` / ``build_batch``.
- :func:`pool_per_image` averages the tokens of each image of a packed batch, ignoring padding (and dropped
  tokens, which are simply not in the sequence).
"""

from __future__ import annotations

from collections.abc import Sequence

import torch

from ..checks import check_lengths, check_number


def num_kept(n: int, rate: float) -> int:
    """Tokens kept out of ``n`` at drop ``rate`` (lucidrains' na_vit: ``max(1, int(n * (1 - rate)))``)."""
    return max(1, int(n * (1 - rate)))


def drop_tokens(lengths, rate, seed: int | None = 0,
                generator: torch.Generator | None = None) -> list[torch.Tensor]:
    """Random token dropping, one independent draw per image.

    ``lengths``: patch tokens per image (e.g. ``[g_rows * g_cols, ...]``). ``rate``: fraction dropped, one
    float for every image or one per image, each in ``[0, 1)``. Randomness comes from ``generator`` if
    given, else from a fresh ``torch.Generator`` seeded with ``seed`` (same seed -> same kept tokens).
    Returns one sorted ``LongTensor`` of kept patch indices per image.
    """
    lengths = check_lengths(lengths)
    rates = list(rate) if isinstance(rate, (list, tuple)) else [rate] * len(lengths)
    if len(rates) != len(lengths):
        raise ValueError(f"got {len(rates)} drop rates for {len(lengths)} images")
    rates = [check_number("drop rate", r, 0.0, 1.0, max_inclusive=False) for r in rates]
    if generator is None:
        generator = torch.Generator().manual_seed(0 if seed is None else int(seed))
    keep = []
    for n, r in zip(lengths, rates):
        k = num_kept(int(n), float(r))
        idx = torch.randperm(int(n), generator=generator)[:k]  # a uniform random subset of size k
        keep.append(idx.sort().values)  # raster order: positions travel with their tokens
    return keep


def check_keep(keep, counts, *, min_kept: int = 0) -> list[torch.Tensor | None] | None:
    """Validate a token-dropping ``keep`` argument for images with ``counts`` patches each.

    ``keep`` is None (keep everything) or a list with ONE entry per image: None (keep all of that image's
    patches) or a 1-D integer tensor (int64 / int32; a list of ints is converted) of distinct kept patch
    indices in ``[0, count)``, raster order into the image's grid, in the order the kept tokens should take.
    At least ``min_kept`` indices per image (``forward_packed`` allows 0: the CLS token remains; a batch
    without CLS tokens needs 1).

    Returns None or the list with every tensor as a LongTensor (None entries stay None). Raises ValueError
    for a wrong count of entries, out-of-range, repeated or too few indices, TypeError for non-integer ones.
    """
    counts = check_lengths(counts)
    if keep is None:
        return None
    if isinstance(keep, (torch.Tensor, str, bytes)) or not isinstance(keep, Sequence) \
            or len(keep) != len(counts):
        raise ValueError(f"keep must be a list with one index tensor (or None) per image ({len(counts)})")
    out = []
    for i, (k, n) in enumerate(zip(keep, counts)):
        if k is None:
            out.append(None)
            continue
        if isinstance(k, (list, tuple)):
            k = torch.as_tensor(k) if len(k) else torch.zeros(0, dtype=torch.long)
        if not isinstance(k, torch.Tensor) or k.ndim != 1 or k.dtype not in (torch.int64, torch.int32):
            raise TypeError(f"keep[{i}] must be a 1-D LongTensor of patch indices")
        if k.numel() < min_kept:
            raise ValueError(f"keep[{i}] keeps {k.numel()} patches, at least {min_kept} needed")
        if k.numel() and (int(k.min()) < 0 or int(k.max()) >= n):
            raise ValueError(f"keep[{i}] has indices outside [0, {n}) for an image of {n} patches")
        if k.unique().numel() != k.numel():
            raise ValueError(f"keep[{i}] has repeated patch indices")
        out.append(k.long())
    return out


def pool_per_image(x: torch.Tensor, image_ids: torch.Tensor, num_images: int | None = None) -> torch.Tensor:
    """Mean of the tokens of each image in a packed batch.

    ``x`` (B, L, D) outputs, ``image_ids`` (B, L) long with the image index of each token and -1 for padding
    (``PackedBatch.image_ids``). Returns (num_images, D). Padding is ignored; dropped tokens are not in the
    sequence at all, so they are ignored too.
    """
    if x.ndim != 3 or image_ids.shape != x.shape[:2]:
        raise ValueError(f"x must be (B, L, D) and image_ids (B, L); got {tuple(x.shape)} and "
                         f"{tuple(image_ids.shape)}")
    ids = image_ids.reshape(-1)  # (B*L,)
    real = ids >= 0
    if num_images is None:
        num_images = int(ids.max().item()) + 1 if bool(real.any()) else 0
    flat = x.reshape(-1, x.shape[-1])[real]  # (T, D) real tokens only
    ids = ids[real]
    sums = torch.zeros(num_images, x.shape[-1], dtype=x.dtype, device=x.device).index_add_(0, ids, flat)
    counts = torch.bincount(ids, minlength=num_images).to(x.dtype)  # (num_images,)
    if bool((counts == 0).any()):
        raise ValueError(f"images {torch.nonzero(counts == 0).flatten().tolist()} have no token in the batch")
    return sums / counts[:, None]  # (num_images, D)
