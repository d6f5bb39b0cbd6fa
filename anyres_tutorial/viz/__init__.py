"""Pictures for the notebooks, one module per family (each function says which notebook uses it).

- ``viz.tiling``    grid overlays, tile montages, token-layout strips, UReader score maps, template diagram
- ``viz.packing``   packed-sequence bars, block-diagonal mask heat-maps, position-id maps, memory plots
- ``viz.features``  PCA-RGB maps of real DINOv2 features, downsampling comparisons, token/padding bar charts

Every function returns a matplotlib ``Figure`` (it never calls ``plt.show()``), so that notebooks, widgets and
tests can all use it. Everything is re-exported here:
``from anyres_tutorial import viz; viz.grid_overlay(...)``.
"""

from __future__ import annotations

from .features import *  # noqa: F403
from .features import __all__ as _features_all
from .packing import *  # noqa: F403
from .packing import __all__ as _packing_all
from .tiling import *  # noqa: F403
from .tiling import __all__ as _tiling_all

__all__ = [*_tiling_all, *_packing_all, *_features_all]
