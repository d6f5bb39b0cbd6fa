"""The two little types every public function speaks: ``Size(width, height)`` and ``Grid(rows, cols)``.

Pixel sizes are always (width, height), as PIL's ``Image.size``; grids of tiles or patches are always
(rows, cols), as a tensor's (H, W) shape. Both are named tuples, so ``w, h = size`` and ``rows, cols = grid``
keep working, and printing one says which order it is in. Where a reference implementation stores the other
order internally (InternVL's ratios, the template's ``cols:rows``, DeepSeek-VL2's ``images_spatial_crop``),
the method converts at its boundary and says so in one comment.

``PATCH = 14`` is the patch size of every encoder in this tutorial (DINOv2 ViT-S/14, and the ViT-*/14 towers
of every tiling method), defined here once.
"""

from __future__ import annotations

from typing import NamedTuple

#: Patch side in pixels of every vision encoder in the tutorial (DINOv2 ViT-S/14, CLIP ViT-L/14, SigLIP/14,
#: InternViT/14).
PATCH = 14


class Size(NamedTuple):
    """A pixel size, (width, height)."""

    width: int
    height: int

    def __str__(self) -> str:
        return f"{self.width}×{self.height}"


class Grid(NamedTuple):
    """A grid of tiles or patches, (rows, cols)."""

    rows: int
    cols: int

    def __str__(self) -> str:
        return f"{self.rows}×{self.cols}"

    @property
    def count(self) -> int:
        """rows * cols."""
        return self.rows * self.cols


__all__ = ["PATCH", "Size", "Grid"]
