"""Pictures for the notebooks, one module per family (each function names the notebook that uses it).

- ``viz.tiling``    grid overlays, tile montages, LLM token strips: every tiling method, drawn alike
- ``viz.scores``    why a grid won: ``score_picture(plan)`` picks the picture by the score table's kind
- ``viz.methods``   one method's own step: template matching, UReader anchors and crop ids, LLaVA-NeXT unpad
- ``viz.packing``   packed-sequence bars, block-diagonal mask heat-maps, position-id maps
- ``viz.sizes``     native sizes per rule, the memory of each mask form
- ``viz.prompt``    what the LLM receives: whole-prompt strips, connector shape flows, 1-D vs M-RoPE ids
- ``viz.training``  loss weights of the two reductions, gradient differences, loss curves, step times
- ``viz.distributed`` data-parallel ranks: packed rows per rank, image weights per reduction, the DDP
                    gradient check, per-rank step times and the cost model's fit
- ``viz.compare``   tiling vs packing at equal budgets: token bars, effective resolution, small-print crops
- ``viz.reading``   a real text recognizer on each view's pixels: line strips with readings, accuracy curve
- ``viz.features``  PCA-RGB maps of real DINOv2 features, downsampling comparisons, token/padding bar charts
- ``viz.palette``   the one palette (token categories, tiles, packed images, attention backends) and the
                    figure helpers every module uses

Every function returns a matplotlib ``Figure`` (it never calls ``plt.show()``), so that notebooks, widgets and
tests can all use it. Everything is re-exported here:
``from anyres_tutorial import viz; viz.grid_overlay(...)``.
"""

from __future__ import annotations

from .compare import *  # noqa: F403
from .compare import __all__ as _compare_all
from .distributed import *  # noqa: F403
from .distributed import __all__ as _distributed_all
from .features import *  # noqa: F403
from .features import __all__ as _features_all
from .methods import *  # noqa: F403
from .methods import __all__ as _methods_all
from .packing import *  # noqa: F403
from .packing import __all__ as _packing_all
from .palette import (  # noqa: F401  (the palette, re-exported)
    TOKEN_COLORS,
    backend_color,
    image_color,
    rank_color,
    tile_color,
    tile_colors,
    token_color,
)
from .prompt import *  # noqa: F403
from .prompt import __all__ as _prompt_all
from .reading import *  # noqa: F403
from .reading import __all__ as _reading_all
from .scores import *  # noqa: F403
from .scores import __all__ as _scores_all
from .sizes import *  # noqa: F403
from .sizes import __all__ as _sizes_all
from .tiling import *  # noqa: F403
from .tiling import __all__ as _tiling_all
from .training import *  # noqa: F403
from .training import __all__ as _training_all

_palette_all = ["TOKEN_COLORS", "token_color", "tile_colors", "tile_color", "image_color", "backend_color",
                "rank_color"]
__all__ = [*_tiling_all, *_scores_all, *_methods_all, *_packing_all, *_sizes_all, *_prompt_all,
           *_features_all, *_training_all, *_distributed_all, *_compare_all, *_reading_all,
           *_palette_all]
