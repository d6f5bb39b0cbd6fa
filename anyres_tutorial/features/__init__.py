"""Real-feature experiments: encode an image tiled vs whole, count tokens, compress to a few tokens.

The compute behind the feature pictures (``viz.features``); every function is pure (no plotting).

- :func:`roundtrip_resize`, :func:`psnr`: what a fixed low input resolution destroys
  (`setup_and_why_resolution`)
- :func:`tokens_for_side`: the quadratic token cost of resolution (`setup_and_why_resolution`,
  `patches_tokens_real_vit`)
- :func:`position_similarity`: cosine map of one position embedding (`patches_tokens_real_vit`)
- :func:`encode_native`, :func:`encode_tiled`: the same image encoded whole vs tile by tile
  (`tiling_vs_packing`, `llava_mini`)
- :func:`seam_contrast`, :func:`seams_at_image_borders`, :func:`edge_map`: how visible tile borders are
  (`tiling_vs_packing`)
- :func:`token_budget`, :func:`format_token_table`: useful / padding / duplicated tokens per method
  (`tiling_vs_packing`)
- :func:`equal_budget`, :func:`format_equal_budget`, :func:`fit_native_grid`: each tiling method next to
  packing at the same encoder tokens and at the same LLM tokens; scale and effective resolution
  (`tiling_vs_packing`)
- :func:`print_sizes`, :func:`legibility`, :func:`format_legibility`, :func:`small_print_box`,
  :func:`encoder_crops`: the small print's x-height in encoder patches, and what the encoder gets of a
  small-print region (`tiling_vs_packing`)
- :func:`attention_pool`, :func:`cosine_map`: training-free stand-in for LLaVA-Mini's compressor
  (`llava_mini`)

PCA-RGB pictures use :func:`pca_rgb` (one PCA fitted jointly on a list of maps). Feature maps are
:class:`FeatureMap` objects holding a ``(rows, cols, D)`` grid of patch features. Sizes are
``(width, height)`` unless a name says otherwise; boxes are ``(x0, y0, x1, y1)``.
"""

from __future__ import annotations

from .budget import format_token_table, token_budget
from .equal_budget import (
    CAPPED,
    SAME_ENCODER,
    SAME_LLM,
    TILED,
    VIEWS,
    effective_resolution,
    equal_budget,
    find_row,
    fit_native_grid,
    format_equal_budget,
    plan_views,
)
from .legibility import (
    encoder_crops,
    format_legibility,
    legibility,
    print_sizes,
    small_print_box,
    x_height,
)

# the parts that need torch are imported on first use (the explorers' pictures need none of them)
_LAZY = {
    "..pca": ("pca_rgb",),  # re-exported: the compute behind the PCA pictures
    ".compression": ("PoolResult", "attention_pool"),
    ".maps": ("FeatureMap", "cosine_map", "encode_native", "encode_tiled", "position_similarity", "psnr",
              "roundtrip_resize", "tokens_for_side"),
    ".seams": ("borders_in_image", "edge_map", "neighbour_dissimilarity", "seam_contrast",
               "seams_at_image_borders"),
}
_WHERE = {name: module for module, names in _LAZY.items() for name in names}


def __getattr__(name: str):
    if name in _WHERE:
        import importlib

        value = getattr(importlib.import_module(_WHERE[name], __name__), name)
        globals()[name] = value
        return value
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")


__all__ = [
    "CAPPED", "SAME_ENCODER", "SAME_LLM", "TILED", "VIEWS", "effective_resolution", "encoder_crops",
    "equal_budget", "find_row", "fit_native_grid", "format_equal_budget", "format_legibility", "legibility",
    "plan_views", "print_sizes", "small_print_box", "x_height",
    "FeatureMap", "PoolResult", "attention_pool", "borders_in_image", "cosine_map",
    "edge_map", "pca_rgb",
    "encode_native", "encode_tiled", "format_token_table", "neighbour_dissimilarity", "position_similarity",
    "psnr", "roundtrip_resize", "seam_contrast", "seams_at_image_borders", "token_budget", "tokens_for_side",
]
