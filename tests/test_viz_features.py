"""viz.features: every picture runs and draws what it claims (panels, lines, bars, labels)."""

from __future__ import annotations

import matplotlib

matplotlib.use("Agg")

import matplotlib.pyplot as plt  # noqa: E402
import numpy as np  # noqa: E402
import pytest  # noqa: E402
import torch  # noqa: E402
from matplotlib.patches import Rectangle  # noqa: E402
from PIL import Image  # noqa: E402

from anyres_tutorial import features as fe  # noqa: E402
from anyres_tutorial import viz  # noqa: E402


@pytest.fixture(autouse=True)
def _close_figures():
    yield
    plt.close("all")


def _img(w=320, h=200):
    rng = np.random.default_rng(0)
    return Image.fromarray(rng.integers(0, 256, (h, w, 3), dtype=np.uint8))


def _tiled_and_native():
    """A 2x2-tile map (seams planted at the borders, one padding row) and a smooth native map."""
    g = torch.randn(1, 1, 16).repeat(20, 20, 1) + 0.05 * torch.randn(20, 20, 16)
    g[:10, 10:] += torch.randn(16)
    pad = torch.zeros(20, 20, dtype=torch.bool)
    pad[-1] = True
    tiled = fe.FeatureMap(features=g, cls=torch.randn(4, 16), encoded_size=(280, 280), patch_size=14,
                          label="toy 2x2", tile_rows=[10], tile_cols=[10], padding=pad,
                          tile_boxes_image=[(0, 0, 160, 100), (160, 0, 320, 100), (0, 100, 160, 200),
                                            (160, 100, 320, 200)])
    native = fe.FeatureMap(features=torch.randn(1, 1, 16).repeat(14, 22, 1) + 0.05 * torch.randn(14, 22, 16),
                           cls=torch.randn(1, 16), encoded_size=(308, 196), patch_size=14, label="native")
    return tiled, native


def test_all_names_exported():
    for name in viz.features.__all__:
        assert getattr(viz, name) is getattr(viz.features, name)


def test_downsample_comparison_panels_and_psnr_titles():
    fig = viz.downsample_comparison(_img(), (10, 10, 110, 70), sides=(32, 64, 128))
    assert len(fig.axes) == 5
    titles = [ax.get_title() for ax in fig.axes]
    assert sum("PSNR" in t for t in titles) == 3 and "32x32" in titles[2]
    assert any(isinstance(p, Rectangle) for p in fig.axes[0].patches)  # the crop box
    assert fig.axes[1].images[0].get_array().shape[:2] == (60, 100)
    with pytest.raises(ValueError, match="not inside"):
        viz.downsample_comparison(_img(), (0, 0, 400, 10))


def test_token_cost_curve_lines_and_marks():
    fig = viz.token_cost_curve(patch_sizes=(14, 16), marks=(224, 336))
    a1, a2 = fig.axes
    curves = [ln for ln in a1.get_lines() if len(ln.get_xdata()) > 1]
    assert len(curves) == 2
    labels = [t.get_text() for t in a1.texts]
    assert "224px: 256" in labels and "336px: 576" in labels
    assert a2.get_yscale() == "log"


def test_patch_grid_counts_tokens():
    fig = viz.patch_grid(_img(), size=(98, 56), patch_size=14, highlight=4)
    a1, a2 = fig.axes
    assert "7 x 4 = 28 tokens" in a1.get_title()
    assert len(a1.patches) == 4 and len(a2.images) == 4
    with pytest.raises(ValueError, match="multiple"):
        viz.patch_grid(_img(), size=(100, 56))


def test_pos_embed_resize_panels():
    a = torch.randn(37, 37, 8)
    b = torch.nn.functional.interpolate(a.permute(2, 0, 1)[None], size=(10, 20), mode="bicubic")
    b = b[0].permute(1, 2, 0)
    fig = viz.pos_embed_resize(a, b, channels=(0, 3))
    imgs = [ax for ax in fig.axes if ax.images]
    assert len(imgs) == 2 * (1 + 2)
    assert imgs[1].images[0].get_array().shape == (10, 20)
    with pytest.raises(ValueError, match="channels"):
        viz.pos_embed_resize(a, b, channels=(9,))


def test_pca_map_shape():
    tiled, _ = _tiled_and_native()
    fig = viz.pca_map(_img(), tiled)
    arr = fig.axes[1].images[0].get_array()
    assert arr.shape == (20, 20, 3)
    assert "400 patch features" in fig.axes[1].get_title()


def test_seams_comparison_draws_borders_and_edges():
    tiled, native = _tiled_and_native()
    fig = viz.seams_comparison(_img(), tiled, native)
    ax_img, ax_t, ax_n = fig.axes[:3]
    # image panel: one vertical + one horizontal red border at the tile boxes' inner edges
    xs = sorted(ln.get_xdata()[0] for ln in ax_img.get_lines() if ln.get_xdata()[0] == ln.get_xdata()[1])
    assert xs == [160]
    assert ax_t.images[0].get_array().shape == (20, 20, 3) and ax_n.images[0].get_array().shape == (14, 22, 3)
    assert "seam ratio" in ax_t.get_title()
    edge_axes = [ax for ax in fig.axes if "neighbour cosine distance" in ax.get_title()]
    assert len(edge_axes) == 2
    assert len(viz.seams_comparison(_img(), tiled, native, show_edges=False).axes) == 3
    with pytest.raises(TypeError, match="FeatureMap"):
        viz.seams_comparison(_img(), tiled.features, native)


def test_token_budget_bars_one_panel_per_image():
    rows = fe.token_budget({"a": (800, 300), "b": (300, 300)}, ["llava_next", "ureader", "packing"])
    fig = viz.token_budget_bars(rows)
    panels = [ax for ax in fig.axes if ax.patches]
    assert len(panels) == 2
    assert len(panels[0].patches) == 3 * 3  # 3 methods x (useful, padding, thumbnail)
    assert [t.get_text() for t in panels[0].get_xticklabels()] == ["llava_next", "ureader", "packing"]
    heights = [p.get_height() for p in panels[0].patches]
    assert sum(heights) == pytest.approx(sum(r["encoder_tokens"] for r in rows if r["image"] == "a"))
    with pytest.raises(ValueError, match="empty"):
        viz.token_budget_bars([])


def test_compression_map_panels():
    tiled, _ = _tiled_and_native()
    pool = fe.attention_pool(tiled, 4, "grid")
    fig = viz.compression_map(_img(), tiled, pool, cls=tiled.cls[0])
    maps = [ax for ax in fig.axes if ax.images and ax.images[0].get_array().shape[:2] == (20, 20)]
    assert len(maps) == 4 + 4 + 1  # 4 attention maps, 4 token similarity maps, 1 CLS map
    two = viz.compression_map(_img(), tiled, pool, max_queries=2)
    assert len([ax for ax in two.axes if ax.images]) == 1 + 2 + 2  # the image, 2 queries x 2 maps
    assert two.get_figwidth() <= 11  # at most four panels a row: legible at notebook width
    with pytest.raises(TypeError, match="PoolResult"):
        viz.compression_map(_img(), tiled, pool.pooled)
