"""features.positions_effect and viz.positions_effect: an image encoded with continuing-rows positions."""

from __future__ import annotations

import pytest
import torch
from matplotlib.figure import Figure
from PIL import Image

from anyres_tutorial.encoder import vit
from anyres_tutorial.features import positions_effect as PE
from anyres_tutorial.viz.positions_effect import continuing_rows_map


def _image(w=98, h=70, seed=0):
    g = torch.Generator().manual_seed(seed)
    arr = (torch.rand(h, w, 3, generator=g) * 255).to(torch.uint8).numpy()
    return Image.fromarray(arr)


def test_continuing_rows_table_is_the_lower_part_of_the_taller_grid(dinov2):
    grid, above = (3, 5), 4
    pe = PE.continuing_rows_pos_embed(dinov2, grid, above)
    tall = dinov2.pos_embed_for(above + grid[0], grid[1])
    assert pe.shape == (1 + 3 * 5, 384)
    assert torch.equal(pe[0], dinov2.pos_embed[0, 0])  # the CLS position is kept
    assert torch.equal(pe[1:], tall[1 + above * grid[1]:])  # patch rows above .. above + rows - 1
    assert torch.equal(PE.continuing_rows_pos_embed(dinov2, grid, 0), dinov2.pos_embed_for(*grid))


def test_continuing_rows_effect_changes_the_features_of_the_same_pixels(dinov2):
    img = _image()
    eff = PE.continuing_rows_effect(dinov2, img, (5, 7), rows_above=6)
    assert eff.cosine.shape == (5, 7) and eff.grid == (5, 7) and eff.rows_above == 6
    # the "right" features are the model's ordinary output for that image
    x = vit.normalize(img.resize((7 * 14, 5 * 14)))
    ref = dinov2.features(x).patches
    assert torch.allclose(eff.right, ref, atol=1e-4)
    # the "wrong" ones are the output with the continuing-rows table, recomputed here
    with torch.no_grad():
        wrong = dinov2.forward_tiles(x[None], pos_embed=PE.continuing_rows_pos_embed(dinov2, (5, 7), 6))
    assert torch.allclose(eff.wrong, wrong[0, 1:].reshape(5, 7, -1), atol=1e-4)
    assert torch.allclose(eff.cosine, torch.nn.functional.cosine_similarity(eff.wrong, eff.right, dim=-1))
    assert eff.mean < 0.999 and eff.min <= eff.mean <= 1.0


def test_bad_inputs_are_refused_clearly(dinov2):
    with pytest.raises(TypeError, match="PIL image"):
        PE.continuing_rows_effect(dinov2, torch.zeros(3, 70, 98), (5, 7), 2)
    with pytest.raises(ValueError, match="rows_above"):
        PE.continuing_rows_effect(dinov2, _image(), (5, 7), 0)
    with pytest.raises(ValueError, match="grid"):
        PE.continuing_rows_pos_embed(dinov2, (0, 7), 2)
    with pytest.raises(ValueError, match="rows_above"):
        PE.continuing_rows_pos_embed(dinov2, (5, 7), -1)


def test_continuing_rows_map_draws_the_effect(dinov2):
    eff = PE.continuing_rows_effect(dinov2, _image(), (4, 6), rows_above=3)
    fig = continuing_rows_map(eff, _image())
    assert isinstance(fig, Figure) and len(fig.axes) == 3  # image, heat map, colour bar
    assert f"mean {eff.mean:.3f}" in fig.axes[1].get_title()
    assert len(continuing_rows_map(eff).axes) == 2
    with pytest.raises(TypeError, match="PositionsEffect"):
        continuing_rows_map(eff.cosine)
