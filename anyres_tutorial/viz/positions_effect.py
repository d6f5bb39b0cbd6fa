"""The picture of what wrong positions do to real features (``features.positions_effect``). Used by
`positions`."""

from __future__ import annotations

import numpy as np
from matplotlib.figure import Figure

from ..features.maps import check_pil
from ..features.positions_effect import PositionsEffect
from .palette import subplots

__all__ = ["continuing_rows_map"]


def continuing_rows_map(effect: PositionsEffect, image=None, title: str | None = None) -> Figure:
    """Per-patch cosine similarity between an image's features with its own positions and with continuing
    rows (:func:`~anyres_tutorial.features.positions_effect.continuing_rows_effect`), as a heat map over the
    patch grid, with the mean and the minimum in the title; ``image`` (PIL, optional) is drawn beside it as
    it was encoded. Used by `positions`."""
    if not isinstance(effect, PositionsEffect):
        raise TypeError("effect must be a PositionsEffect (from features.positions_effect."
                        f"continuing_rows_effect), got {type(effect).__name__}")
    rows, cols = effect.grid
    panels = 2 if image is not None else 1
    fig, axes = subplots(1, panels, figsize=(5.2 * panels + 1.2, 5.2 * rows / cols + 1.3), squeeze=False)
    axes = axes[0]
    if image is not None:
        ax = axes[0]
        ax.imshow(check_pil(image).resize((cols * 14, rows * 14)))
        ax.set_title(f"the image, {rows}×{cols} patches", fontsize=11)
        ax.set_axis_off()
    ax = axes[-1]
    cos = effect.cosine.detach().float().numpy()  # (rows, cols)
    im = ax.imshow(cos, cmap="viridis", vmin=float(np.min(cos)), vmax=1.0)
    ax.set_xticks([])
    ax.set_yticks([])
    ax.set_xlabel(f"{cols} patch columns", fontsize=10)
    ax.set_ylabel(f"{rows} patch rows", fontsize=10)
    cb = fig.colorbar(im, ax=ax)
    cb.ax.tick_params(labelsize=10)
    cb.set_label("cosine(own positions, continuing rows)", fontsize=10)
    ax.set_title(title or f"rows continued below {effect.rows_above} rows of another image:\n"
                          f"mean {effect.mean:.3f}, min {effect.min:.3f}", fontsize=11)
    return fig
