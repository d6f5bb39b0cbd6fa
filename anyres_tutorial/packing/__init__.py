"""NaViT "Patch n' Pack": native sizes, packing, the packed batch, masks in three forms, positions.

Taught in `navit_packing` and `positions`; used by `tiling_vs_packing`, `timing` and `grid_explorer`. Sizes
are ``Size(width, height)`` and patch grids ``Grid(rows, cols)`` (:mod:`anyres_tutorial.types`).

- :mod:`.sizing`    ``native_size(image_size, rule, **options)`` -> Size; rules ``navit``,
                    ``qwen2_vl``, ``siglip2_naflex``, ``pixtral``; ``native_size_details`` shows the steps
- :mod:`.patchify`  ``patchify(image, patch)`` -> tokens, (row, col) coords, fractional coords; ``unpatchify``
- :mod:`.packer`    ``pack(lengths, max_len, strategy="ffd" | "next_fit")``, ``padding_report``,
                    ``bucket_by_resolution``, ``bucketing_report``
- :mod:`.batch`     ``PackedBatch`` and its builders ``pack_images`` / ``build_batch``
- :mod:`.masks`     ``segment_ids``, ``dense_mask``, ``flex_block_mask``, ``cu_seqlens``
- :mod:`.memory`    ``mask_memory(lengths)``: bytes of each mask form
- :mod:`.positions` learned grid per image, NaViT factorised (absolute / fractional), 2-D RoPE
- :mod:`.dropping`  ``drop_tokens`` (NaViT token dropping), ``check_keep`` (the ``keep`` rule),
                    ``pool_per_image``
"""

from __future__ import annotations

from ..lazy import lazy_attributes
from .packer import (
    STRATEGIES,
    bucket_by_resolution,
    bucketing_report,
    pack,
    padded_batches_padding,
    padding_report,
)
from .patchify import grid_coords, patchify, unpatchify  # (its name is also the submodule's: bound here)
from .sizing import (
    RULES,
    native_size,
    native_size_details,
    navit_size,
    pixtral_size,
    qwen2_vl_size,
    siglip2_naflex_size,
)

# the parts that need torch are imported on first use (the explorers only need sizes and packing)
_LAZY = {
    ".batch": ("PackedBatch", "build_batch", "pack_images"),
    ".dropping": ("check_keep", "drop_tokens", "num_kept", "pool_per_image"),
    ".masks": ("cu_seqlens", "dense_mask", "flex_block_mask", "segment_ids"),
    ".memory": ("mask_memory",),
    ".positions": ("FactorizedPositionEmbedding", "apply_rope_2d", "learned_grid", "packed_learned_grid",
                  "rope_2d"),
}
__getattr__ = lazy_attributes(__name__, _LAZY, globals())


__all__ = [
    "PackedBatch", "build_batch", "pack_images",
    "check_keep", "drop_tokens", "num_kept", "pool_per_image",
    "cu_seqlens", "dense_mask", "flex_block_mask", "segment_ids",
    "mask_memory",
    "STRATEGIES", "bucket_by_resolution", "bucketing_report", "pack", "padded_batches_padding",
    "padding_report",
    "grid_coords", "patchify", "unpatchify",
    "FactorizedPositionEmbedding", "apply_rope_2d", "learned_grid", "packed_learned_grid", "rope_2d",
    "RULES", "native_size", "native_size_details", "navit_size", "pixtral_size", "qwen2_vl_size",
    "siglip2_naflex_size",
]
