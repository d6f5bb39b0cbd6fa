"""One token accounting everywhere: every table, explorer and feature map reports ``Plan.encoder_tokens()``.

For every registered tiling method and every image size of ``data/`` (read from the file header), the
numbers of ``features.token_budget``, ``explore.tiling_summary`` / ``compare_methods`` / ``packing_summary``
and the padding mask of ``features.encode_tiled`` are the plan's own accounting (taught in
`tiling_vs_packing`). The benchmark's tiled path joins this check where the benchmark provides it.
"""

from __future__ import annotations

import dataclasses

import pytest
import torch
import torch.nn.functional as F
from PIL import Image

from anyres_tutorial import bench, data, explore, features, tiling


def _data_sizes() -> dict[str, tuple[int, int]]:
    sizes = {}
    for name in data.list_images():
        with Image.open(data.data_path(name)) as im:  # the header only: no pixels decoded
            sizes[name] = im.size
    return sizes


SIZES = _data_sizes()


class PatchMeanModel:
    """A stand-in for the ViT: forward_tiles(x (B, 3, H, W)) -> (B, 1 + N, 3), patch token = patch mean."""

    def forward_tiles(self, x):
        tokens = F.avg_pool2d(x, 14).flatten(2).transpose(1, 2)  # (B, N, 3)
        return torch.cat([x.mean((2, 3))[:, None], tokens], 1)


def _numbers(et) -> tuple[int, int, int, int]:
    return et.useful, et.padding, et.duplicated, et.patches


@pytest.mark.parametrize("method", tiling.METHODS)
@pytest.mark.parametrize("name", sorted(SIZES))
def test_every_report_is_the_plans_accounting(method, name):
    size = SIZES[name]
    p = tiling.plan(method, size)
    et = p.encoder_tokens()
    assert et.patches == et.useful + et.padding + et.duplicated and et.total == et.patches + et.cls
    assert et.cls == et.images == p.num_images and min(et.useful, et.padding, et.duplicated) >= 0

    row = features.token_budget({name: size}, [method])[0]
    assert (row["useful"], row["padding"], row["duplicated"], row["encoder_tokens"]) == _numbers(et)

    s = explore.tiling_summary(size, method)
    shown = (s["useful_tokens"], s["padding_tokens"], s["thumbnail_tokens"], s["encoder_tokens"])
    assert shown == _numbers(et)
    assert s["cls_tokens"] == et.cls

    (cmp,) = explore.compare_methods(size, [method])
    assert cmp["encoder_tokens"] == et.patches
    ps = explore.packing_summary([size], max_len=4096, budget=256, tiling_method=method)
    assert ps["images"][0]["tiling_encoder_tokens"] == ps["tiling_encoder_tokens"] == et.patches

    # the benchmark, at full resolution and at the CPU's reduced tile size
    for px in (p.tile_size // 14 * 14, bench.workload.tile_px(p.tile_size, 1 / 3)):
        e = p.encoder_tokens(tile_px=px)
        b = bench.tiled_token_counts(p, px)
        keys = ("useful_tokens", "padding_tokens", "duplicated_tokens", "cls_tokens", "tokens")
        assert tuple(b[k] for k in keys) == (e.useful, e.padding, e.duplicated, e.cls, e.total)


def test_the_accounting_by_hand():
    """LLaVA-NeXT, 800x600: canvas 672x672 with the image at y 84..588, four 336 tiles of 24x24 patches. The
    top tiles show content from y = 84 (patch row 6) and the bottom ones down to y = 252 (patch row 18): 6
    padding rows of 24 per tile; the squashed 336x336 global view is all content, duplicated."""
    et = tiling.plan("llava_next", (800, 600)).encoder_tokens()
    assert (et.useful, et.padding, et.duplicated, et.cls) == (4 * 18 * 24, 4 * 6 * 24, 576, 5)
    rows = features.token_budget({"x": (800, 600)}, ["llava_next"])
    assert (rows[0]["useful"], rows[0]["padding"], rows[0]["duplicated"]) == (1728, 576, 576)


def _tiles_only(plan):
    """The same plan without its global views: its encoder_tokens() are the tiles' share."""
    return dataclasses.replace(plan, global_views=(), global_position=None, num_images=plan.num_tiles)


@pytest.mark.parametrize("method", tiling.METHODS)
@pytest.mark.parametrize("name", sorted(SIZES))
def test_encode_tiled_padding_mask_is_the_accountings_padding(method, name):
    p = tiling.plan(method, SIZES[name])
    if not p.tile_boxes:
        pytest.skip("no tiles: encode_tiled needs at least one")
    image = Image.new("RGB", tuple(p.image_size), (90, 140, 200))  # the mask depends on the plan only
    fm = features.encode_tiled(PatchMeanModel(), image, p)
    tiles = _tiles_only(p).encoder_tokens()
    assert int(fm.padding.sum()) == tiles.padding
    assert int((~fm.padding).sum()) == tiles.useful
    assert fm.num_tokens == p.num_tiles * tiles.per_image
