"""Tiling pictures (anyres_tutorial.viz.tiling, .scores, .methods): each runs and draws what it claims."""

from __future__ import annotations

import matplotlib

matplotlib.use("Agg")

import matplotlib.pyplot as plt
import numpy as np
import pytest
from matplotlib.colors import to_hex
from matplotlib.figure import Figure
from matplotlib.image import AxesImage
from matplotlib.patches import Rectangle
from PIL import Image

from anyres_tutorial import tiling, viz
from anyres_tutorial.viz import tiling as vt
from anyres_tutorial.viz.palette import GLOBAL_COLOR


@pytest.fixture(autouse=True)
def _close_figures():
    yield
    plt.close("all")


def _image(w, h):
    rng = np.random.default_rng(0)
    return Image.fromarray(rng.integers(0, 256, (h, w, 3), dtype=np.uint8), "RGB")


def _smooth(w, h):
    """A smooth picture (gradients): resampling it differently changes little."""
    y, x = np.mgrid[0:h, 0:w]
    rgb = np.stack([255 * x / w, 255 * y / h, 128 + 100 * np.sin(x / 40.0)], -1)
    return Image.fromarray(rgb.astype(np.uint8), "RGB")


def _texts(fig):
    return [t.get_text() for ax in fig.axes for t in ax.texts]


def test_reexported_from_viz_package():
    for name in vt.__all__:
        assert getattr(viz, name) is getattr(vt, name)


@pytest.mark.parametrize("method", tiling.METHODS)
def test_grid_overlay_numbers_every_encoder_image(method):
    p = tiling.plan(method, (800, 600))
    fig = vt.grid_overlay(p, _image(800, 600))
    assert isinstance(fig, Figure)
    ax = fig.axes[0]
    # one numbered label per encoder image (tiles and global views), numbered 0..N-1 in encoder order
    nums = sorted(int(t.split()[0].lstrip("#")) for t in _texts(fig) if t.startswith("#"))
    assert nums == list(range(p.num_images))
    drawn = {(r.get_x(), r.get_y(), r.get_x() + r.get_width(), r.get_y() + r.get_height())
             for r in ax.patches if isinstance(r, Rectangle) and not r.get_fill()}
    if vt.padded_views(p):  # each block drawn in its own padded view: the padding hatched inside each frame
        assert len([b for b in ax.patches if b.get_hatch() == "//"]) >= p.num_tiles
        return
    # the canvas image covers the whole canvas, at the canvas size or (a large canvas) at display size
    cw, ch = p.canvas_size
    (canvas,) = [im.get_array().shape for im in ax.get_images() if tuple(im.get_extent()) == (0, cw, ch, 0)]
    scale = min(1.0, vt.DISPLAY_SIDE / max(cw, ch))
    assert canvas == (round(ch * scale), round(cw * scale), 3)
    # one outlined box per tile, with the tile's colour
    assert set(p.tile_boxes) <= drawn


@pytest.mark.parametrize("method", tiling.METHODS)
def test_grid_overlay_pixels_are_the_canvas_the_method_cuts(method):
    """The overlay rebuilds the canvas from the plan's geometry (and from a display copy of the image): it
    shows what tiling.apply cuts, up to resampling."""
    img = _smooth(900, 500)
    p = tiling.plan(method, img.size)
    canvas = np.asarray(tiling.apply(p, img).canvas.convert("RGB"), dtype=float)
    drawn = np.asarray(vt.canvas_pixels(p, img), dtype=float)
    assert drawn.shape == canvas.shape
    assert np.abs(drawn - canvas).mean() < 6  # of 255: the same picture
    small = viz.display_copy(img, 300)
    assert max(small.size) == 300
    fig = vt.grid_overlay(p, small)  # the same boxes from a 300-px copy, pixels at most 300 px
    assert all(max(im.get_array().shape[:2]) <= 300 for im in fig.axes[0].get_images())
    with pytest.raises(ValueError, match="downscaled copy"):
        vt.grid_overlay(p, _image(300, 300))


def test_padded_blocks_are_shaded_in_the_overlay():
    """A plan whose blocks are each padded in their own view (LLaVA-Mini's expand2square) hatches that
    padding: its area, in block pixels, is the padding of the views the title reports."""
    p = tiling.plan("llava_mini", (600, 400))
    assert vt.padded_views(p) and round(p.padding_fraction, 3) == 0.333
    ax = vt.grid_overlay(p).axes[0]
    frames = [r for r in ax.patches if not r.get_fill() and r.get_linewidth() == 2.2
              and to_hex(r.get_edgecolor()) != to_hex(GLOBAL_COLOR)]
    assert len(frames) == 4
    views = sum(r.get_width() * r.get_height() for r in frames)
    bands = [b for b in ax.patches if b.get_hatch() == "//" and b.get_x() < 600]
    assert sum(b.get_width() * b.get_height() for b in bands) == pytest.approx(views / 3, rel=0.01)
    assert not vt.padded_views(tiling.plan("llava_mini", (600, 400), view="crop"))
    assert not vt.padded_views(tiling.plan("internvl", (600, 400)))


def test_tile_badges_are_small_corner_labels():
    p = tiling.plan("internvl", (1920, 1080), max_num=40)
    ax = vt.grid_overlay(p).axes[0]
    badges = [t for t in ax.texts if t.get_text().startswith("#") and "global" not in t.get_text()]
    assert len(badges) == p.num_tiles
    for t, (x0, y0, x1, y1) in zip(badges, p.tile_boxes):
        assert t.get_fontsize() >= 10 and t.get_bbox_patch().get_alpha() <= 0.6
        x, y = t.get_position()
        assert (t.get_ha(), t.get_va()) == ("left", "top") and x0 <= x < x0 + 0.1 * (x1 - x0)
        assert y0 <= y < y0 + 0.1 * (y1 - y0)


def test_grid_overlay_shades_padding_only_when_there_is_some():
    padded = tiling.plan("llava_next", (800, 600))  # 672x672 canvas, image 672x504: bands top and bottom
    squashed = tiling.plan("internvl", (800, 600))  # distorting resize: no padding
    hatched = lambda fig: [p for p in fig.axes[0].patches if p.get_hatch() == "//"]
    bands = hatched(vt.grid_overlay(padded))
    assert len(bands) == 2
    assert sum(b.get_width() * b.get_height() for b in bands) == 672 * 672 - 672 * 504
    assert hatched(vt.grid_overlay(squashed)) == []


def test_grid_overlay_draws_into_a_given_axes():
    fig, axes = plt.subplots(1, 2)
    out = vt.grid_overlay(tiling.plan("ureader", (1000, 400)), ax=axes[1], show_global=False)
    assert out is fig
    assert len(axes[0].texts) == 0 and len(axes[1].texts) == 10  # 2x5 crops, global not drawn


@pytest.mark.parametrize("method", ["llava_next", "internvl", "ureader"])
def test_tile_montage_shows_the_batch_in_encoder_order(method):
    img = _image(900, 500)
    p = tiling.plan(method, img.size)
    tiled = tiling.apply(p, img)
    fig = vt.tile_montage(p, img)
    labels = [t for t in _texts(fig)]
    assert labels == [f"{i}: {lab}" for i, lab in enumerate(tiled.labels)]
    (mosaic,) = fig.axes[0].get_images()
    t = p.tile_size
    arr = mosaic.get_array()
    # the first cell of the mosaic is exactly the first row of the batch tensor
    first = tiled.tensor[0].permute(1, 2, 0).numpy()
    np.testing.assert_allclose(arr[:t, :t], first, atol=1e-6)


def test_tile_montage_needs_the_image_with_a_plan():
    with pytest.raises(ValueError, match="image"):
        vt.tile_montage(tiling.plan("internvl", (900, 500)))
    with pytest.raises(TypeError):
        vt.tile_montage("not tiles")


@pytest.mark.parametrize("method", tiling.METHODS)
@pytest.mark.parametrize("size", [(800, 600), (1000, 400), (200, 336), (600, 2400), (3000, 600)])
def test_token_layout_matches_the_plan(method, size):
    p = tiling.plan(method, size)
    blocks = vt.token_layout(p)
    seq = np.concatenate([b[b >= 0].ravel() for _, b in blocks])
    assert seq.size == p.num_tokens
    if method == "llava_next":
        hh, ww = p.details["unpad"]["unpadded_hw"]
        assert (seq == 1).sum() == hh  # one newline per unpadded row
        assert (seq == 0).sum() == 576
    if method == "deepseek_vl2":
        rows, _ = p.grid
        assert (seq == 1).sum() == 14 + 14 * rows and (seq == 2).sum() == 1
    if method == "ureader":
        assert (seq == 2).sum() == p.num_images  # the +1 token of every image


def test_token_strip_panels_and_given_axes():
    p = tiling.plan("deepseek_vl2", (1000, 400))
    fig = vt.token_strip(p)
    assert len(fig.axes) == 2
    seq_img = fig.axes[0].get_images()[0].get_array()
    assert seq_img.shape == (1, p.num_tokens)
    fig2, ax = plt.subplots()
    assert vt.token_strip(p, ax=ax) is fig2 and len(fig2.axes) == 1
    assert len(ax.get_images()) == 3  # global, separator, local


def test_ureader_scores_marks_code_and_paper_choices():
    fig = viz.ureader_scores(tiling.plan("ureader", (1920, 1080)))
    panels = [ax for ax in fig.axes if ax.get_xlabel().startswith("nw")]
    assert len(panels) == 4
    for ax in panels:
        marks = viz.pick_frames(ax)
        assert marks["code"] == (5, 3)  # code: 3 rows x 5 cols (nw on x, nh on y)
        assert marks["paper"] == (6, 3)  # paper: 3 x 6
        # the frames leave the cells' values readable: no marker drawn over them
        assert not [ln for ln in ax.lines if ln.get_marker() not in (None, "None", "")]
        grid = ax.get_images()[0].get_array()
        assert grid.shape == (11, 11) and grid.mask.sum() == 121 - 48  # 48 release anchors


def test_ureader_scores_default_anchor_set():
    fig = viz.ureader_scores(tiling.plan("ureader", (448, 224), anchors="default"))
    ax = [a for a in fig.axes if a.get_xlabel().startswith("nw")][0]
    assert ax.get_images()[0].get_array().mask.sum() == 81 - 23
    assert viz.pick_frames(ax)["code"] == (2, 1)


def test_template_diagram_picks_the_closest_template():
    fig = viz.template_diagram(tiling.plan("template", (500, 800)))
    stars = [ln for ln in fig.axes[0].lines if ln.get_marker() == "*"]
    assert len(stars) == 1 and stars[0].get_xdata()[0] == pytest.approx(0.5)  # 1:2 = cols/rows
    assert "384×768" in fig.axes[0].get_title()
    # four template canvases drawn, the chosen one framed thickly
    frames = [r for r in fig.axes[1].patches if not r.get_fill() and r.get_linewidth() == 4]
    assert len(frames) == 1 and (frames[0].get_width(), frames[0].get_height()) == (384, 768)


def test_candidate_scores_shows_every_candidate_and_the_tie():
    p = tiling.plan("llava_next", (200, 336))
    fig = viz.candidate_scores(p)
    ax = fig.axes[0]
    assert len(ax.patches) >= 2 * 5  # effective + wasted bar per candidate (legend handles aside)
    labels = [t.get_text() for t in ax.get_yticklabels()]
    assert labels[0].startswith("336×672") and "chosen" in labels[0]
    assert "tie" in labels[1] and labels[1].startswith("672×336")
    assert sum("tie" in lab for lab in labels) == 1


def test_candidate_scores_internvl_and_bad_method():
    fig = viz.candidate_scores(tiling.plan("internvl", (896, 896)))
    labels = [t.get_text() for t in fig.axes[0].get_yticklabels()]
    assert sum("chosen" in lab for lab in labels) == 1
    assert any("2×2" in lab and "chosen" in lab for lab in labels)
    assert any("area" in t for t in _texts(fig))  # the tie-break events are written
    with pytest.raises(ValueError, match="candidate"):
        viz.candidate_scores(tiling.plan("ureader", (896, 896)))


def test_unpad_diagram_shows_original_vs_hf_rounding():
    # 396 * 48 / 704 = 27 exactly in maths but 26.999... in floats: int() gives 26, round(., 7) gives 27,
    # then the [pad : 48 - pad] slice keeps 28 rows (odd difference)
    fig = viz.unpad_diagram(tiling.plan("llava_next", (704, 396)))
    orig, hf = fig.axes[:2]
    assert "new = 26" in orig.get_title() and "kept 26×48" in orig.get_title()
    assert "new = 27" in hf.get_title() and "kept 28×48" in hf.get_title()
    kept = [r for r in hf.patches if not r.get_fill() and r.get_linewidth() == 2.5]
    assert len(kept) == 1 and kept[0].get_height() == 28
    with pytest.raises(ValueError, match="unpad"):
        viz.unpad_diagram(tiling.plan("internvl", (704, 396)))


def test_crop_positions_lists_every_crop_and_the_global_id():
    p = tiling.plan("ureader", (1000, 400))
    fig = viz.crop_positions(p)
    texts = _texts(fig)
    assert len(texts) == p.num_images
    assert sum("global" in t and f"({p.details['anchor_max']}, {p.details['anchor_max']})" in t
               for t in texts) == 1
    assert {t.split("\n")[1] for t in texts if "global" not in t} == {
        f"(row {r}, col {c})" for r, c in p.tile_positions}
    with pytest.raises(ValueError):
        viz.crop_positions(tiling.plan("internvl", (1000, 400)))


def test_figures_render_to_png(tmp_path):
    p = tiling.plan("llava_next", (800, 600))
    for i, fig in enumerate([vt.grid_overlay(p), vt.token_strip(p), viz.candidate_scores(p),
                             viz.unpad_diagram(p)]):
        fig.savefig(tmp_path / f"{i}.png", dpi=40)
        assert (tmp_path / f"{i}.png").stat().st_size > 1000
    assert any(isinstance(a, AxesImage) for a in fig.axes[0].get_images())


def test_long_candidate_lists_show_the_chosen_the_search_steps_and_the_closest():
    from anyres_tutorial.viz.scores import MAX_BARS

    p = tiling.plan("internvl", (1920, 1080), max_num=40)
    data = tiling.score_table(p).data
    assert len(data) > MAX_BARS
    shown = viz.shown_candidates(data)
    assert len(shown) == MAX_BARS and shown == sorted(shown)
    assert all(i in shown for i, d in enumerate(data) if d["chosen"] or d["event"])
    worst_shown = max(data[i]["aspect_diff"] for i in shown if not data[i]["event"])
    assert all(d["aspect_diff"] >= worst_shown for i, d in enumerate(data) if i not in shown)
    labels = [t.get_text() for t in viz.candidate_scores(p).axes[0].get_yticklabels()]
    assert len(labels) == MAX_BARS and sum("chosen" in lab for lab in labels) == 1
    assert viz.shown_candidates(data[:10]) == list(range(10))
