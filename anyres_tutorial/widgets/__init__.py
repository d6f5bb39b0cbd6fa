"""The grid explorer (`grid_explorer`): interactive tiling and packing explorers built from ipywidgets.

    from anyres_tutorial.widgets import tiling_explorer, packing_explorer
    tiling_explorer()      # last expression of a cell: the explorer shows itself
    packing_explorer()

The widgets hold no logic: every number comes from the pure functions of :mod:`anyres_tutorial.explore` and
every picture from :mod:`anyres_tutorial.viz`; controls are wired to them with ``.observe``. Pictures are
rendered to PNG (``ipywidgets.Image``) and the matplotlib figure is closed right away, so figures never pile
up and the same code works in JupyterLab, in a headless test and in nbconvert.

Errors the user can cause (a bad upload, an image the methods refuse, ``max_len`` below an image's tokens)
are shown as a message inside the explorer, which keeps working; anything else is a bug and propagates.
Each explorer exposes ``.widget`` (display it), ``.state`` (the current choices), ``.last_result`` (what the
pure functions returned) and ``.message`` (the HTML widget with the last error, empty when all is well).
Sizes are (width, height) everywhere.
"""

from __future__ import annotations

from .common import figure_png
from .packing_explorer import PackingExplorer, packing_explorer
from .tiling_explorer import TilingExplorer, tiling_explorer

__all__ = ["TilingExplorer", "PackingExplorer", "tiling_explorer", "packing_explorer", "figure_png"]
