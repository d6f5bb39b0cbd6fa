"""Real-feature experiments: encode an image tiled vs whole, count tokens, compress to a few tokens.

The compute behind the feature pictures (``viz.features``); every function is pure (no plotting). By notebook:

- `setup_and_why_resolution`: what a fixed low input resolution destroys (:func:`roundtrip_resize`,
  :func:`psnr`) and the quadratic token cost of resolution (:func:`tokens_for_side`, also in
  `patches_tokens_real_vit`, which shows :func:`position_similarity`: cosine map of one position embedding);
- `tiling_vs_packing`: the same image encoded whole vs tile by tile (:func:`encode_native`,
  :func:`encode_tiled`, also in `llava_mini`); how visible tile borders are (:func:`seam_contrast`,
  :func:`seams_at_image_borders`, :func:`edge_map`); useful / padding / duplicated tokens per method
  (:func:`token_budget`, :func:`format_token_table`); each tiling method next to packing at the same encoder
  tokens and at the same LLM tokens, scale and effective resolution (:func:`equal_budget`,
  :func:`format_equal_budget`, :func:`fit_native_grid`); the small print's x-height in encoder patches and
  what the encoder gets of a small-print region (:func:`print_sizes`, :func:`legibility`,
  :func:`format_legibility`, :func:`small_print_box`, :func:`encoder_crops`); what a real text-line recognizer
  (PP-OCRv4, offline; :mod:`.reader`, :mod:`.readability`) reads of each view's pixels (:func:`read_line`,
  :func:`char_accuracy`, :func:`words_correct`, :func:`readability`, :func:`format_readability`,
  :func:`rule_of_thumb`, :func:`scale_sweep`);
- `llava_mini`: :func:`attention_pool`, :func:`cosine_map`: training-free stand-in for LLaVA-Mini's compressor

PCA-RGB pictures use :func:`pca_rgb` (one PCA fitted jointly on a list of maps); :class:`FeatureMap` holds a
``(rows, cols, D)`` grid of patch features. Sizes are ``(width, height)`` unless a name says otherwise; boxes
are ``(x0, y0, x1, y1)``.
"""

from __future__ import annotations

from ..lazy import lazy_attributes
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
from .readability import (
    SOURCE,
    encoder_views,
    format_readability,
    line_image,
    packed_view,
    read_piece,
    readability,
    rule_of_thumb,
    sample_pieces,
    scale_sweep,
    summarise,
    text_lines,
    text_pieces,
)
from .reader import (
    ReaderUnavailable,
    alignment,
    char_accuracy,
    load_reader,
    read_line,
    reader_problem,
    words_correct,
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
__getattr__ = lazy_attributes(__name__, _LAZY, globals())


__all__ = [
    "CAPPED", "SAME_ENCODER", "SAME_LLM", "TILED", "VIEWS", "effective_resolution", "encoder_crops",
    "equal_budget", "find_row", "fit_native_grid", "format_equal_budget", "format_legibility", "legibility",
    "plan_views", "print_sizes", "small_print_box", "x_height",
    "SOURCE", "ReaderUnavailable", "alignment", "char_accuracy", "encoder_views", "format_readability",
    "line_image", "load_reader", "packed_view", "read_line", "read_piece", "readability", "reader_problem",
    "rule_of_thumb", "sample_pieces", "scale_sweep", "summarise", "text_lines", "text_pieces",
    "words_correct",
    "FeatureMap", "PoolResult", "attention_pool", "borders_in_image", "cosine_map",
    "edge_map", "pca_rgb",
    "encode_native", "encode_tiled", "format_token_table", "neighbour_dissimilarity", "position_similarity",
    "psnr", "roundtrip_resize", "seam_contrast", "seams_at_image_borders", "token_budget", "tokens_for_side",
]
