"""What wrong positions do to real features: an image encoded with the learned position embeddings of another
place. Part of :mod:`anyres_tutorial.features`; taught in `positions`.

In a packed sequence every image's positions restart at (0, 0). If instead the rows *continued* from the image
packed above it, an image of ``rows x cols`` patches would get the learned embeddings of rows
``rows_above .. rows_above + rows - 1`` of a taller ``(rows_above + rows) x cols`` grid (the lower part of
that table, bicubically resized from DINOv2's 37 x 37). :func:`continuing_rows_effect` encodes the same
pixels both ways and compares the two outputs patch by patch.
"""

from __future__ import annotations

from dataclasses import dataclass

import torch
import torch.nn.functional as F

from ..checks import check_int
from ..packing.patchify import check_grid
from ..types import PATCH, Grid
from .maps import check_pil


@dataclass
class PositionsEffect:
    """Output of :func:`continuing_rows_effect`: ``cosine`` (rows, cols) cosine similarity per patch between
    ``right`` and ``wrong`` (both (rows, cols, D) patch features after the final LayerNorm), the ``grid`` and
    ``rows_above`` used."""

    cosine: torch.Tensor
    right: torch.Tensor
    wrong: torch.Tensor
    grid: Grid
    rows_above: int

    @property
    def mean(self) -> float:
        """The mean of ``cosine`` over all patches."""
        return float(self.cosine.mean())

    @property
    def min(self) -> float:
        """The lowest per-patch cosine."""
        return float(self.cosine.min())


def continuing_rows_pos_embed(model, grid_hw, rows_above: int) -> torch.Tensor:
    """(1 + rows*cols, D): the CLS position, then the learned embeddings of the bottom ``rows`` rows of a
    ``(rows_above + rows) x cols`` grid -- the positions an image gets when its rows continue below
    ``rows_above`` rows of another image, instead of restarting at 0."""
    rows, cols = check_grid(grid_hw)
    above = check_int("rows_above", rows_above, minimum=0)
    tall = model.pos_embed_for(above + rows, cols)  # (1 + (above + rows) * cols, D), CLS first
    return torch.cat([tall[:1], tall[1 + above * cols:]])  # (1 + rows * cols, D)


@torch.no_grad()
def continuing_rows_effect(model, image, grid_hw, rows_above: int) -> PositionsEffect:
    """Encode ``image`` (PIL) resized to ``grid_hw`` = (rows, cols) patches twice on ``model`` (a DINOv2
    ``DinoViT``): with its own positions (0, 0) .. (rows-1, cols-1), and with the positions of
    :func:`continuing_rows_pos_embed`. Same pixels, same weights; only the position embedding differs."""
    from ..encoder.vit import normalize  # deferred, as in features.maps

    image = check_pil(image)
    rows, cols = check_grid(grid_hw)
    above = check_int("rows_above", rows_above, minimum=1)
    x = normalize(image.resize((cols * PATCH, rows * PATCH)))[None]  # (1, 3, H, W)
    right = model.forward_tiles(x)[0, 1:].reshape(rows, cols, -1)  # (rows, cols, D), CLS dropped
    wrong_pe = continuing_rows_pos_embed(model, (rows, cols), above)
    wrong = model.forward_tiles(x, pos_embed=wrong_pe)[0, 1:].reshape(rows, cols, -1)  # (rows, cols, D)
    cos = F.cosine_similarity(wrong, right, dim=-1)  # (rows, cols)
    return PositionsEffect(cosine=cos, right=right, wrong=wrong, grid=Grid(rows, cols), rows_above=above)
