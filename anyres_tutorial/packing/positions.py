"""Position encodings for packed tokens: every image gets its own positions, restarting at (0, 0).

Taught in `positions`; `navit_packing` uses the learned grid.

All three take the per-token ``(row, col)`` coordinates of a :class:`~.batch.PackedBatch` (``positions``, or
``frac`` for the fractional variant), so a token's encoding depends only on where it sits *in its own image*,
never on where its image sits in the packed sequence.

- :func:`learned_grid` / :func:`packed_learned_grid` -- the learned position table of a ViT trained at one
  size (DINOv2: 37 x 37), bicubically resized to each image's grid (what the real weights use). The resize
  itself is the ViT's own function (:mod:`anyres_tutorial.encoder.vit`), not a second copy.
- :class:`FactorizedPositionEmbedding` -- NaViT's factorised ``phi_row(row) + phi_col(col)`` with learned
  tables (as lucidrains' ``na_vit``), indexed either by absolute patch index or by fractional coordinate
  ``row / rows`` (bucketed into the table, so every image spans the whole table).
- :func:`rope_2d` / :func:`apply_rope_2d` -- axial 2-D rotary embedding: the first half of the channels rotate
  with the row, the second half with the column; attention scores then depend only on the (row, col) offset.
"""

from __future__ import annotations

import torch
from torch import nn

from ..checks import check_positive_int
from .patchify import check_grid


def _check_coords(coords: torch.Tensor) -> torch.Tensor:
    if not isinstance(coords, torch.Tensor) or coords.ndim < 1 or coords.shape[-1] != 2:
        raise ValueError(f"coords must be a (..., 2) tensor of (row, col), got "
                         f"{getattr(coords, 'shape', type(coords).__name__)}")
    return coords


# ---------------------------------------------------------------------------------------------------------
# learned grid, resized per image (DINOv2)


def learned_grid(model, grid_hw) -> torch.Tensor:
    """The ViT's learned position embeddings resized to a ``(rows, cols)`` grid: (1 + rows*cols, D), the CLS
    position first, then the patches in raster order. This is ``model.pos_embed_for(rows, cols)`` of
    :class:`~anyres_tutorial.encoder.vit.DinoViT` (a bicubic resize of the 37 x 37 table)."""
    gh, gw = check_grid(grid_hw)
    return model.pos_embed_for(gh, gw)  # (1 + rows*cols, D)


def packed_learned_grid(model, batch) -> torch.Tensor:
    """(B, L, D) learned-grid position embedding for every slot of a packed batch (zeros at padding): each
    image's table is resized to its own grid and indexed by that image's patch index (the CLS position for
    CLS slots), so a dropped-token image keeps its kept tokens' own positions."""
    out = None
    for i, g in enumerate(batch.grids):
        table = learned_grid(model, g)  # (1 + rows*cols, D)
        if out is None:
            out = table.new_zeros(*batch.segment_ids.shape, table.shape[-1])  # (B, L, D)
        where = batch.image_ids == i  # (B, L)
        out[where] = table[batch.patch_index[where] + 1]  # patch_index -1 (CLS) -> row 0
    return out


# ---------------------------------------------------------------------------------------------------------
# NaViT factorised phi_row + phi_col


class FactorizedPositionEmbedding(nn.Module):
    """NaViT factorised learned position embedding ``phi_row[r] + phi_col[c]`` (two (size, dim) tables).

    ``fractional=False``: ``r`` and ``c`` are the absolute patch indices (``PackedBatch.positions``); a grid
    side may not exceed ``size``. ``fractional=True``: the input is the fractional coordinate
    ``(row / rows, col / cols)`` in [0, 1) (``PackedBatch.frac``), bucketed as ``floor(frac * size)``, so
    every image spans the whole table whatever its resolution.
    """

    def __init__(self, dim: int, size: int = 64, fractional: bool = False):
        super().__init__()
        dim, size = check_positive_int("dim", dim), check_positive_int("size", size)
        self.size, self.fractional = size, fractional
        self.row = nn.Parameter(torch.randn(size, dim) * 0.02)  # phi_row
        self.col = nn.Parameter(torch.randn(size, dim) * 0.02)  # phi_col

    def indices(self, coords: torch.Tensor) -> torch.Tensor:
        """(..., 2) long table indices for the given coordinates."""
        coords = _check_coords(coords)
        if self.fractional:
            if not coords.is_floating_point():
                raise TypeError("fractional embedding takes float coordinates in [0, 1) (PackedBatch.frac)")
            if bool(((coords < 0) | (coords > 1)).any()):
                raise ValueError("fractional coordinates must lie in [0, 1]")
            return (coords * self.size).floor().long().clamp(max=self.size - 1)
        if coords.is_floating_point():
            raise TypeError("absolute embedding takes integer (row, col) coordinates (PackedBatch.positions)")
        if bool((coords < 0).any()) or int(coords.max()) >= self.size:
            raise ValueError(f"patch coordinates must lie in [0, {self.size}); got max {int(coords.max())}")
        return coords.long()

    def forward(self, coords: torch.Tensor) -> torch.Tensor:
        idx = self.indices(coords)  # (..., 2)
        return self.row[idx[..., 0]] + self.col[idx[..., 1]]  # (..., dim)


# ---------------------------------------------------------------------------------------------------------
# 2-D rotary embedding (axial)


def rope_2d(coords: torch.Tensor, dim: int, base: float = 100.0) -> tuple[torch.Tensor, torch.Tensor]:
    """Rotation angles of axial 2-D RoPE for (row, col) ``coords`` (..., 2): returns ``(cos, sin)``, each
    (..., dim // 2), one angle per channel pair. Pairs ``0 .. dim/4 - 1`` rotate with the row at frequencies
    ``base ** (-k / (dim/4))``, the next ``dim/4`` pairs with the column at the same frequencies."""
    coords = _check_coords(coords)
    if dim <= 0 or dim % 4:
        raise ValueError(f"2-D RoPE needs a head dim divisible by 4, got {dim}")
    q = dim // 4
    freqs = base ** (-torch.arange(q, dtype=torch.float32, device=coords.device) / q)  # (dim/4,)
    c = coords.to(torch.float32)
    ang = torch.cat([c[..., :1] * freqs, c[..., 1:] * freqs], dim=-1)  # (..., dim/2): row half, col half
    return ang.cos(), ang.sin()


def apply_rope_2d(x: torch.Tensor, coords: torch.Tensor, base: float = 100.0) -> torch.Tensor:
    """Rotate queries or keys ``x`` (..., N, dim) by their tokens' (row, col) ``coords`` (N, 2) (or
    broadcastable (..., N, 2)). Channel pairs are (2j, 2j+1); the first ``dim/2`` channels follow the row,
    the rest the column. Positions in a packed batch restart per image, so each image is rotated
    independently."""
    dim = x.shape[-1]
    cos, sin = rope_2d(coords, dim, base)  # (..., N, dim/2)
    cos, sin = cos.to(x.dtype), sin.to(x.dtype)
    x1, x2 = x[..., 0::2], x[..., 1::2]  # (..., N, dim/2)
    out = torch.stack([x1 * cos - x2 * sin, x1 * sin + x2 * cos], dim=-1)  # (..., N, dim/2, 2)
    return out.flatten(-2)
