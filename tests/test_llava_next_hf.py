"""``llava_next`` with ``variant="hf"`` against the Hugging Face port (transformers, a test-only dependency).

The port reads the image size and the pinpoints as (height, width); on full ties (every image that fits in
336 x 336) it therefore picks 1 row x 2 cols where the original picks 2 rows x 1 col.
"""

from __future__ import annotations

import numpy as np
import pytest
import torch

from anyres_tutorial import tiling
from anyres_tutorial.tiling import llava_next

hf_model = pytest.importorskip("transformers.models.llava_next.modeling_llava_next")
hf_proc = pytest.importorskip("transformers.models.llava_next.processing_llava_next")


def _sizes() -> list[tuple[int, int]]:
    """(W, H): the tie cases, tiny and degenerate sizes, then random ones (seeded)."""
    rng = np.random.default_rng(5)
    fixed = [(64, 48), (200, 336), (336, 336), (1, 1), (5, 400), (400, 5), (14, 14), (336, 337), (337, 336),
             (55, 176), (704, 396), (800, 600), (1000, 400), (1920, 1080)]
    small = [(int(w), int(h)) for w, h in rng.integers(1, 337, (100, 2))]
    large = [(int(w), int(h)) for w, h in rng.integers(20, 1100, (110, 2))]
    return [s for s in fixed + small + large if max(s) <= 100 * min(s)]  # the tutorial's aspect limit


def _hf_processor():
    from transformers import LlavaNextImageProcessor

    # the llava-v1.6 checkpoints' processor settings: 336-px CLIP tiles, the five v1.6 pinpoints (H, W)
    return LlavaNextImageProcessor(size={"shortest_edge": 336}, crop_size={"height": 336, "width": 336},
                                   image_grid_pinpoints=[[336, 672], [672, 336], [672, 672], [1008, 336],
                                                         [336, 1008]])


def _hf_tokens(image_hw, pinpoints) -> tuple[tuple[int, int], int]:
    """HF's (rows, cols) and LLM token count: the model's grid helper and ``unpad_image`` on a feature map,
    cross-checked with the processor's own ``_get_unpadded_features``."""
    rows, cols = hf_model.get_anyres_image_grid_shape(list(image_hw), pinpoints, 336)
    feat = torch.zeros(1, rows * 24, cols * 24)  # (C, H, W) stitched tile features
    hh, ww = hf_model.unpad_image(feat, list(image_hw)).shape[1:]
    count = hf_proc.LlavaNextProcessor._get_unpadded_features  # self is unused
    unpadded, newlines = count(None, *image_hw, 24, 24, rows, cols)
    assert (unpadded, newlines) == (hh * ww, hh)
    return (rows, cols), 576 + hh * ww + hh


def test_hf_variant_matches_the_processor_and_the_model_on_many_sizes():
    proc = _hf_processor()
    sizes = _sizes()
    assert len(sizes) >= 200
    for w, h in sizes:
        out = proc(np.zeros((h, w, 3), np.uint8), return_tensors="pt", input_data_format="channels_last")
        image_hw = [int(v) for v in out["image_sizes"][0]]
        assert image_hw == [h, w]
        grid, tokens = _hf_tokens(image_hw, proc.image_grid_pinpoints)
        p = tiling.plan("llava_next", (w, h), variant="hf")
        assert p.grid == grid, (w, h)
        assert out["pixel_values"].shape[1] == p.num_images == grid[0] * grid[1] + 1, (w, h)
        assert p.num_tokens == tokens, (w, h)
        assert tiling.token_layout(p)  # the layout still adds up to num_tokens


def test_ties_differ_between_original_and_hf():
    for size, (orig, hf) in {(64, 48): (1026, 1368), (200, 336): (1576, 936)}.items():
        a = tiling.plan("llava_next", size)
        b = tiling.plan("llava_next", size, variant="hf")
        assert (a.grid, b.grid) == ((2, 1), (1, 2)), size
        assert (a.num_tokens, b.num_tokens) == (orig, hf), size


def test_hf_variant_is_the_swapped_candidate_order_plus_hf_rounding():
    assert llava_next.hf_candidates(((336, 672), (672, 336))) == ((672, 336), (336, 672))
    b = tiling.plan("llava_next", (55, 176), variant="hf")
    assert b.options["unpad"] == "hf" and b.details["variant"] == "hf"
    # where the scores decide (no tie) the grid is the same and only the rounding can differ
    for size in [(1920, 1080), (800, 600), (704, 396), (1000, 400)]:
        hf, rounding_only = (tiling.plan("llava_next", size, variant="hf"),
                             tiling.plan("llava_next", size, unpad="hf"))
        assert (hf.grid, hf.num_tokens) == (rounding_only.grid, rounding_only.num_tokens), size
    with pytest.raises(ValueError):
        tiling.plan("llava_next", (100, 100), variant="HF")


def test_default_is_unchanged():
    p = tiling.plan("llava_next", (800, 600))
    assert (p.grid, p.num_tokens, p.options["variant"]) == ((2, 2), 2340, "original")
