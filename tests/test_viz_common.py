"""The one palette of the pictures (anyres_tutorial.viz.palette), and pictures that know no method by name."""

from __future__ import annotations

import re
from pathlib import Path

import matplotlib

matplotlib.use("Agg")

import matplotlib.pyplot as plt
import pytest
from matplotlib.colors import to_hex
from matplotlib.patches import Rectangle

import anyres_tutorial
from anyres_tutorial import tiling, viz
from anyres_tutorial.viz import palette as C

CATEGORY_HEX = {to_hex(c) for c in C.TOKEN_COLORS.values()}


@pytest.fixture(autouse=True)
def _close_figures():
    yield
    plt.close("all")


@pytest.mark.parametrize("n", [1, 2, 5, 14, 15, 16, 20, 40, 64])
def test_tile_colors_never_repeat_and_avoid_the_layout_colours(n):
    hexes = [to_hex(c) for c in viz.tile_colors(n)]
    assert len(set(hexes)) == n
    layout = {to_hex(c) for c in (C.GLOBAL_COLOR, C.NEWLINE_COLOR, C.EXTRA_COLOR, C.PADDING)}
    assert not set(hexes) & layout
    assert [to_hex(viz.tile_color(k, n)) for k in range(n)] == hexes
    with pytest.raises(ValueError):
        viz.tile_color(n, n)


def test_sixteen_tiles_get_sixteen_colours_in_the_overlay():
    p = tiling.plan("internvl", (2048, 2048), max_num=16)
    assert p.num_tiles == 16
    ax = viz.grid_overlay(p).axes[0]
    frames = [to_hex(r.get_edgecolor()) for r in ax.patches
              if isinstance(r, Rectangle) and not r.get_fill() and r.get_linewidth() == 2.2
              and to_hex(r.get_edgecolor()) != to_hex(C.GLOBAL_COLOR)]
    assert len(frames) == 16 == len(set(frames))


def test_image_colour_is_stable_and_distinct():
    first = [to_hex(viz.image_color(k)) for k in range(38)]
    assert first == [to_hex(viz.image_color(k)) for k in range(38)]
    assert len(set(first)) == 38
    assert to_hex(C.PADDING) not in first
    with pytest.raises(ValueError):
        viz.image_color(-1)


def test_one_padding_colour_everywhere():
    from anyres_tutorial.viz import packing as vp

    assert to_hex(vp.PAD_COLOR) == to_hex(C.PADDING) == to_hex(viz.token_color("padding"))
    p = tiling.plan("llava_next", (800, 600))
    bands = [b for b in viz.grid_overlay(p).axes[0].patches if b.get_hatch() == "//"]
    assert bands and all(to_hex(b.get_facecolor()) == to_hex(C.PADDING) for b in bands)
    row = {"image": "x", "size": (800, 600), "method": "llava_next", "useful": 1728, "padding": 576,
           "duplicated": 576, "encoder_tokens": 2880, "llm_tokens": 2340}
    fig = viz.token_budget_bars([row])
    colours = {to_hex(r.get_facecolor()) for r in fig.axes[0].patches}
    assert {to_hex(C.USEFUL), to_hex(C.PADDING), to_hex(C.DUPLICATED)} <= colours
    with pytest.raises(ValueError, match="category"):
        viz.token_color("pixels")


@pytest.mark.parametrize("name", ["loop", "dense_mask", "flex", "varlen", "my_backend", "x"])
def test_backend_colours_differ_from_token_colours(name):
    c = viz.backend_color(name)
    assert c == viz.backend_color(name)  # stable
    assert to_hex(c) not in CATEGORY_HEX
    fixed = [to_hex(viz.backend_color(b)) for b in ("loop", "dense_mask", "flex", "varlen")]
    assert len(set(fixed)) == 4


def test_no_method_or_backend_names_in_pictures_explorers_widgets_and_the_benchmark():
    """viz, explore, widgets and bench talk to tiling methods and attention backends only through their
    registries: no method or backend name as a string (a score-table kind that happens to share a method's
    name, such as "template", is a kind, not a name)."""
    from anyres_tutorial.encoder import attention

    kinds = {tiling.score_table(tiling.plan(m, (800, 600))).kind for m in tiling.METHODS}
    names = [m for m in tiling.METHODS if m not in kinds] + list(attention.BACKENDS)
    root = Path(anyres_tutorial.__file__).parent
    files = [*sorted((root / "viz").glob("*.py")), root / "explore.py",
             *sorted((root / "widgets").glob("*.py")), *sorted((root / "bench").glob("*.py"))]
    for f in files:
        text = f.read_text(encoding="utf-8")
        for m in names:
            assert not re.search(rf"""["'](packed-|tiled-)?{m}["']""", text), f"{f.name} names {m!r}"
        literal = r"""\.(method|backend)\s*((==|!=)\s*["']|in\s*[(\[{]\s*["'])"""  # == "x", in ("x", ...)
        assert not re.search(literal, text), f"{f.name} branches on a name"


def test_totals_colours_are_no_image_tile_or_category_colour():
    """The packing explorer draws packed rows (image colours) and the packed / encoder / LLM totals in one
    explorer; tiles and token categories share pictures with them too."""
    totals = {to_hex(c) for c in (C.PACKED_COLOR, C.ENCODER_COLOR, C.LLM_COLOR)}
    assert len(totals) == 3
    images = {to_hex(viz.image_color(k)) for k in range(40)}
    tiles = {to_hex(c) for n in (14, 40) for c in viz.tile_colors(n)}
    assert not totals & images and not totals & tiles and not totals & CATEGORY_HEX


def test_every_registered_backend_has_its_own_non_category_colour():
    from anyres_tutorial.encoder import attention

    colours = [to_hex(viz.backend_color(name)) for name in attention.BACKENDS]
    assert not set(colours) & CATEGORY_HEX
    assert len(set(colours)) == len(colours)


def test_image_k_has_one_colour_in_packed_rows_and_in_its_row_mask():
    from matplotlib.colors import ListedColormap

    from anyres_tutorial.packing import masks, pack

    lengths = [30, 50, 20, 40]
    rows = pack(lengths, 64, "ffd")
    row = max(rows, key=len)
    assert len(row) >= 2 and row[0] != 0  # images 3 and 2: segments 0 and 1 of their row
    bars = viz.packed_rows(rows, lengths, 64).axes[0]
    bar_colour = {}
    for p in bars.patches:
        if p.get_label().startswith("image "):
            bar_colour[int(p.get_label().split()[1])] = to_hex(p.get_facecolor())
    seg = masks.segment_ids([lengths[i] for i in row], total=64)
    cmap = viz.mask_heatmap(seg, image_ids=row).axes[0].get_images()[0].get_cmap()
    assert isinstance(cmap, ListedColormap)
    mask_colour = [to_hex(c) for c in cmap.colors[2:]]  # 0 = masked, 1 = padding, 2 + segment
    assert mask_colour == [bar_colour[i] for i in row]
    with pytest.raises(ValueError, match="image_ids"):
        viz.mask_heatmap(seg, image_ids=[0, 1, 2])
