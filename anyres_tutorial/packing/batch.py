"""The packed batch: many images of different sizes in fixed-length rows, and everything to undo it.

Taught in `navit_packing`; `positions`, `tiling_vs_packing` and `timing` use it.

:class:`PackedBatch` holds, for ``B`` rows of ``L`` slots, the tokens and the bookkeeping to undo the packing
(segment ids, image ids, positions inside each image, the row assignment; its docstring lists every field).
The three attention-mask forms all come from ``segment_ids`` through :mod:`anyres_tutorial.packing.masks`:
:meth:`PackedBatch.dense_mask`, :meth:`PackedBatch.block_mask` and :meth:`PackedBatch.cu_seqlens`.
"""

from __future__ import annotations

from dataclasses import dataclass

import torch

from ..checks import check_int
from ..types import Grid, Size
from . import masks
from .dropping import check_keep, pool_per_image
from .packer import check_rows, pack
from .patchify import check_grid, grid_coords, patchify, unpatchify


@dataclass
class PackedBatch:
    """Packed tokens of several images plus the bookkeeping to build masks and split results back.

    For ``B`` rows of ``L`` slots:

    - ``tokens``       (B, L, D) patch pixels (D = 3*p*p) or token embeddings; zeros at padding
    - ``segment_ids``  (B, L) which image of *its row* a slot belongs to (0, 1, ...), -1 for padding
    - ``image_ids``    (B, L) index of the image in the original list, -1 for padding
    - ``positions``    (B, L, 2) (row, col) of the patch *inside its own image*: restarts at (0, 0) per image
    - ``frac``         (B, L, 2) fractional (row / rows, col / cols) coordinates
    - ``patch_index``  (B, L) raster index of the patch in its image (differs from the slot when tokens were
      dropped), -1 for padding and for CLS slots
    - ``rows``, ``lengths``, ``grids`` and ``keep``: the row assignment from :func:`~.packer.pack`, sequence
      length per image (kept patches, plus 1 with a CLS token), patch ``Grid(rows, cols)`` per image and the
      kept indices (token dropping, validated by :func:`~.dropping.check_keep`) if any.
    - ``cls``          whether every image's segment starts with a CLS token (``build_batch(cls_token=...)``),
      as in the ViT's packed forward: ``[CLS_a, a's patches, CLS_b, b's patches, ..., padding]``.
    """

    tokens: torch.Tensor  # (B, L, D)
    segment_ids: torch.Tensor  # (B, L) long, -1 = padding
    image_ids: torch.Tensor  # (B, L) long, -1 = padding
    positions: torch.Tensor  # (B, L, 2) long (row, col) within the image
    frac: torch.Tensor  # (B, L, 2) float
    patch_index: torch.Tensor  # (B, L) long, -1 = padding
    rows: list[list[int]]  # image indices per row, in slot order
    lengths: list[int]  # tokens per image (after dropping), original image order
    grids: list[Grid]  # Grid(rows, cols) of patches per image
    patch_size: int | None = None
    keep: list[torch.Tensor] | None = None
    cls: bool = False

    # ----- shapes and simple views -------------------------------------------------------------------------
    @property
    def num_rows(self) -> int:
        return self.tokens.shape[0]

    @property
    def row_len(self) -> int:
        return self.tokens.shape[1]

    @property
    def num_images(self) -> int:
        return len(self.lengths)

    @property
    def padding(self) -> torch.Tensor:
        """(B, L) bool, True at padding slots."""
        return self.segment_ids < 0

    @property
    def is_cls(self) -> torch.Tensor:
        """(B, L) bool, True at CLS slots (none unless built with ``cls_token``)."""
        return (self.patch_index < 0) & (self.segment_ids >= 0)

    @property
    def image_sizes(self) -> list[Size]:
        """Size(width, height) in pixels of every image (needs ``patch_size``)."""
        if self.patch_size is None:
            raise ValueError("this batch was built without patch_size, so pixel sizes are unknown")
        return [Size(g.cols * self.patch_size, g.rows * self.patch_size) for g in self.grids]

    def row_lengths(self, b: int) -> list[int]:
        """Token counts of the images in row ``b``, in slot order."""
        return [self.lengths[i] for i in self.rows[b]]

    # ----- masks (all built by anyres_tutorial.packing.masks from segment ids) ---------------------------
    def dense_mask(self, padding_attends_self: bool = False) -> torch.Tensor:
        """(B, L, L) bool block-diagonal mask, True = may attend (:func:`~.masks.dense_mask`; see there for
        ``padding_attends_self``)."""
        return masks.dense_mask(self.segment_ids, padding_attends_self)

    def block_mask(self, block_size: int = 128, row: int | None = None, compile: bool = True):
        """FlexAttention ``BlockMask`` of every row (batch B), or of row ``row`` only (batch 1), built from a
        ``mask_mod`` on the segment ids without materialising L x L (``compile=False``: eager builder, fine
        for small L)."""
        seg = self.segment_ids
        if row is not None:
            seg = seg[check_int("row", row, 0, self.num_rows - 1)]
        return masks.flex_block_mask(seg, block_size=block_size, compile=compile)

    def cu_seqlens(self) -> tuple[torch.Tensor, int]:
        """``(cu_seqlens int32 (num_images + 1,), max_seqlen)`` for varlen kernels over :meth:`flat` — the
        batch with its padding squeezed out, images in row-then-slot order (:attr:`flat_order`)."""
        return masks.cu_seqlens([self.lengths[i] for i in self.flat_order])

    @property
    def flat_order(self) -> list[int]:
        """Image indices in the order they appear in :meth:`flat`."""
        return [i for r in self.rows for i in r]

    def flat(self, x: torch.Tensor | None = None) -> torch.Tensor:
        """(T, ...) the real tokens of ``x`` (default: ``tokens``) laid like the batch, padding removed."""
        x = self.tokens if x is None else x
        self._check_like(x)
        return x[~self.padding]  # row-major: same order as flat_order

    # ----- back to images ----------------------------------------------------------------------------------
    def _check_like(self, x: torch.Tensor) -> None:
        if tuple(x.shape[:2]) != (self.num_rows, self.row_len):
            raise ValueError(f"expected a tensor laid out like the batch (B, L, ...) = "
                             f"({self.num_rows}, {self.row_len}, ...), got {tuple(x.shape)}")

    def split(self, x: torch.Tensor | None = None) -> list[torch.Tensor]:
        """Per-image tensors ``(n_i, ...)`` from ``x`` (B, L, ...) (default: ``tokens``), in original image
        order."""
        x = self.tokens if x is None else x
        self._check_like(x)
        out: list[torch.Tensor | None] = [None] * self.num_images
        for b, row in enumerate(self.rows):
            start = 0
            for i in row:
                out[i] = x[b, start:start + self.lengths[i]]
                start += self.lengths[i]
        return out  # type: ignore[return-value]

    def unpack_images(self) -> list[torch.Tensor]:
        """Rebuild the (3, H, W) images from patch tokens; dropped patches come back as zeros."""
        if self.patch_size is None:
            raise ValueError("unpack_images needs patch tokens (batch built by pack_images)")
        p = self.patch_size
        images = []
        for i, toks in enumerate(self.split()):
            gh, gw = self.grids[i]
            if toks.shape[-1] % (p * p):
                raise ValueError(f"token width {toks.shape[-1]} is not C*{p}*{p}: these are not patch pixels")
            if self.cls:
                toks = toks[1:]  # (n_i, D) patches only
            full = toks.new_zeros(gh * gw, toks.shape[-1])
            idx = self.keep[i] if self.keep is not None else torch.arange(gh * gw)
            full[idx] = toks
            images.append(unpatchify(full, (gh, gw), p, channels=toks.shape[-1] // (p * p)))
        return images

    def pool(self, x: torch.Tensor | None = None) -> torch.Tensor:
        """(num_images, D) per-image mean of the *patch* tokens of ``x`` (B, L, D): padding, CLS slots and
        dropped tokens (absent from the sequence) are ignored."""
        x = self.tokens if x is None else x
        self._check_like(x)
        return pool_per_image(x, self.image_ids.masked_fill(self.is_cls, -1), self.num_images)


# ---------------------------------------------------------------------------------------------------------
# builders


def _check_token_sets(token_sets, grids) -> tuple[list[torch.Tensor], list[Grid], int]:
    """(N_i, D) token sets with one (rows, cols) grid each, rows * cols == N_i; returns them and D."""
    token_sets = list(token_sets)
    if not token_sets:
        raise ValueError("no images to pack (empty list)")
    grids = [check_grid(g, f"grids[{i}]") for i, g in enumerate(grids)]
    if len(grids) != len(token_sets):
        raise ValueError(f"{len(token_sets)} token sets but {len(grids)} grids")
    dims = {t.shape[-1] for t in token_sets}
    if any(t.ndim != 2 for t in token_sets) or len(dims) != 1:
        raise ValueError("every token set must be (N_i, D) with the same D")
    for i, (t, g) in enumerate(zip(token_sets, grids)):
        if t.shape[0] != g.count:
            raise ValueError(f"image {i}: {t.shape[0]} tokens do not fill its {g.rows}x{g.cols} grid")
    return token_sets, grids, dims.pop()


def _assign_rows(lengths: list[int], rows, max_len, strategy: str) -> tuple[list[list[int]], int]:
    """Rows (given, or from ``pack``; one row when ``max_len`` is None) and the row length ``L``."""
    if rows is None:
        rows = [list(range(len(lengths)))] if max_len is None else pack(lengths, max_len, strategy)
    rows = check_rows(rows, len(lengths))
    used = max(sum(lengths[i] for i in r) for r in rows)
    if max_len is None:
        return rows, used
    L = check_int("max_len", max_len)
    if used > L:
        raise ValueError(f"a row needs {used} tokens, more than max_len={L}")
    return rows, L


def build_batch(token_sets, grids, max_len: int | None = None, strategy: str = "ffd", rows=None, keep=None,
                patch_size: int | None = None, cls_token: torch.Tensor | None = None) -> PackedBatch:
    """Pack per-image token sets into a :class:`PackedBatch`.

    ``token_sets``: list of (N_i, D) tensors in raster order of their grid; ``grids``: list of (rows, cols)
    with ``rows * cols == N_i``; ``keep``: optional kept patch indices per image (token dropping, see
    :func:`~.dropping.drop_tokens`; the rule is :func:`~.dropping.check_keep`; an image may keep no patch
    only when ``cls_token`` gives it a CLS token). Rows come from ``rows`` if given, else from
    ``pack(lengths, max_len, strategy)``; ``max_len=None`` puts every image in one row. The row length ``L``
    is ``max_len`` (or the longest row when ``max_len`` is None). ``cls_token`` (D,): put a copy of it in
    front of every image's patches (the ViT's per-image CLS); it then counts in ``lengths``.
    """
    token_sets, grids, D = _check_token_sets(token_sets, grids)
    counts = [g.count for g in grids]
    n_cls = 0
    if cls_token is not None:
        if cls_token.shape != (D,):
            raise ValueError(f"cls_token must be ({D},), got {tuple(cls_token.shape)}")
        n_cls = 1
    keep = check_keep(keep, counts, min_kept=1 - n_cls)
    if keep is not None:  # None entries keep every patch
        keep = [torch.arange(n) if k is None else k for k, n in zip(keep, counts)]
    kept = [len(k) for k in keep] if keep is not None else counts
    lengths = [n_cls + n for n in kept]
    rows, L = _assign_rows(lengths, rows, max_len, strategy)

    B = len(rows)
    ref = token_sets[0]
    tokens = ref.new_zeros(B, L, D)  # (B, L, D)
    segment_ids = torch.stack([masks.segment_ids([lengths[i] for i in r], total=L) for r in rows]).long()
    image_ids = torch.full((B, L), -1, dtype=torch.long)
    positions = torch.zeros(B, L, 2, dtype=torch.long)
    frac = torch.zeros(B, L, 2, dtype=torch.float32)
    patch_index = torch.full((B, L), -1, dtype=torch.long)
    for b, row in enumerate(rows):
        start = 0
        for i in row:
            idx = keep[i] if keep is not None else torch.arange(counts[i])
            coords, fr = grid_coords(grids[i])  # positions restart for every image
            if n_cls:
                tokens[b, start] = cls_token  # CLS: position (0, 0), patch_index -1
                image_ids[b, start] = i
                start += 1
            n = idx.numel()
            tokens[b, start:start + n] = token_sets[i][idx.to(token_sets[i].device)]
            image_ids[b, start:start + n] = i
            positions[b, start:start + n] = coords[idx]
            frac[b, start:start + n] = fr[idx]
            patch_index[b, start:start + n] = idx
            start += n
    dev = ref.device
    return PackedBatch(tokens=tokens, segment_ids=segment_ids.to(dev), image_ids=image_ids.to(dev),
                       positions=positions.to(dev), frac=frac.to(dev), patch_index=patch_index.to(dev),
                       rows=rows, lengths=lengths, grids=grids, patch_size=patch_size, keep=keep,
                       cls=bool(n_cls))


def pack_images(images, patch_size: int = 14, max_len: int | None = None, strategy: str = "ffd", rows=None,
                keep=None, cls_token: bool = False) -> PackedBatch:
    """Patchify every (3, H, W) image (sides multiples of ``patch_size``) and pack the patches.

    ``tokens`` of the result are raw patch pixels (B, L, 3*p*p). See :func:`build_batch` for the rest.
    ``cls_token=True`` reserves one slot in front of every image for the ViT's CLS token (zeros in
    ``tokens``; it counts in ``lengths``): the layout ``model.forward_packed(batch)`` runs. Taught in
    `navit_packing` and `training_with_packed_sequences`.
    """
    if isinstance(images, torch.Tensor) and images.ndim == 3:
        images = [images]
    images = list(images)
    if not images:
        raise ValueError("no images to pack (empty list)")
    token_sets, grids = [], []
    for i, img in enumerate(images):
        if not isinstance(img, torch.Tensor):
            raise TypeError(f"images[{i}] must be a (3, H, W) tensor, got {type(img).__name__}")
        try:
            toks, _, _ = patchify(img, patch_size)
        except ValueError as e:
            raise ValueError(f"images[{i}]: {e}") from None
        token_sets.append(toks)
        grids.append(Grid(img.shape[1] // patch_size, img.shape[2] // patch_size))
    cls = token_sets[0].new_zeros(token_sets[0].shape[-1]) if cls_token else None  # (3*p*p,) placeholder
    return build_batch(token_sets, grids, max_len=max_len, strategy=strategy, rows=rows, keep=keep,
                       patch_size=patch_size, cls_token=cls)
