"""The packing pictures (anyres_tutorial.viz.packing) run and draw what they claim."""

from __future__ import annotations

import matplotlib

matplotlib.use("Agg")

import matplotlib.pyplot as plt  # noqa: E402
import numpy as np  # noqa: E402
import pytest  # noqa: E402
import torch  # noqa: E402
from matplotlib.patches import Rectangle  # noqa: E402
from PIL import Image  # noqa: E402

from anyres_tutorial import packing as P  # noqa: E402
from anyres_tutorial.viz import packing as V  # noqa: E402
from anyres_tutorial.viz import sizes as S  # noqa: E402


@pytest.fixture(autouse=True)
def _close_figures():
    yield
    plt.close("all")


def _texts(ax):
    return [t.get_text() for t in ax.texts]


def test_packed_rows_one_segment_per_image_and_hatched_padding():
    lengths = [400, 200, 300, 100]
    rows = P.pack(lengths, 512, "next_fit")
    assert rows == [[0], [1, 2], [3]]
    fig = V.packed_rows(rows, lengths, 512)
    ax = fig.axes[0]
    rects = [p for p in ax.patches if isinstance(p, Rectangle)]
    segs = [p for p in rects if not p.get_hatch()]
    pads = [p for p in rects if p.get_hatch()]
    assert len(segs) == 4  # one per image
    assert sorted(p.get_width() for p in segs) == sorted(lengths)
    assert len(pads) == 3  # every row has room left
    assert sorted(p.get_width() for p in pads) == sorted([112, 12, 412])
    rep = P.padding_report(rows, lengths, 512)
    assert f"{100 * rep['padding_fraction']:.1f}%" in ax.get_title()
    assert "pad 80.5%" in _texts(ax)  # the last row: 412 of 512


def test_packed_rows_full_row_has_no_padding_patch_and_bad_labels_raise():
    fig = V.packed_rows([[0, 1]], [3, 5], 8)
    assert not [p for p in fig.axes[0].patches if p.get_hatch()]
    with pytest.raises(ValueError, match="labels"):
        V.packed_rows([[0, 1]], [3, 5], 8, labels=["a"])
    with pytest.raises(ValueError):
        V.packed_rows([[0]], [3, 5], 8)  # image 1 missing from the rows


def test_packing_comparison_side_by_side_with_padding():
    lengths = [400, 200, 300, 100]
    fig = V.packing_comparison(lengths, 512)
    assert len(fig.axes) == 2
    titles = [ax.get_title() for ax in fig.axes]
    assert "3 rows" in titles[0] and "next-fit" in titles[0]
    assert "2 rows" in titles[1] and "first-fit" in titles[1]  # FFD needs 2 rows (issue 5 vector)
    for ax, s in zip(fig.axes, ("next_fit", "ffd")):
        rep = P.padding_report(P.pack(lengths, 512, s), lengths, 512)
        assert f"({100 * rep['padding_fraction']:.1f}%)" in ax.get_title()


def test_mask_heatmap_cells_match_dense_mask_with_padding():
    seg = P.segment_ids([3, 5, 2], total=12)
    fig = V.mask_heatmap(seg)
    code = np.asarray(fig.axes[0].images[0].get_array())
    assert code.shape == (12, 12)
    dense = P.dense_mask(seg).numpy()
    assert ((code >= 2) == dense).all()  # coloured exactly where attention is allowed
    assert (code[10:, :] == 1).all() and (code[:, 10:] == 1).all()  # padding rows/cols shaded
    assert code[0, 0] == 2 and code[3, 3] == 3 and code[9, 9] == 4  # coloured by image
    assert "pad\n(2)" in [t.get_text() for t in fig.axes[0].get_xticklabels()]
    assert f"{int(dense.sum())} of 144" in fig.axes[0].get_title()


def test_mask_heatmap_from_batch_and_errors():
    imgs = [torch.rand(3, 28, 42), torch.rand(3, 14, 28)]  # 2x3 and 1x2 patches
    batch = P.pack_images(imgs, 14)
    fig = V.mask_heatmap(batch)
    code = np.asarray(fig.axes[0].images[0].get_array())
    assert code.shape == (8, 8) and int((code >= 2).sum()) == 6 * 6 + 2 * 2
    with pytest.raises(ValueError, match="too many"):
        V.mask_heatmap([400, 400])
    with pytest.raises(TypeError):
        V.mask_heatmap("abc")
    with pytest.raises(ValueError, match="row"):
        V.mask_heatmap(batch, row=3)


def test_block_mask_view_classifies_blocks_like_the_dense_mask():
    lengths, bs = [5, 9, 2], 4  # N = 16: 4 x 4 blocks
    fig = V.block_mask_view(lengths, block_size=bs)
    code = np.asarray(fig.axes[0].images[0].get_array())
    dense = P.dense_mask(P.segment_ids(lengths)).numpy().reshape(4, bs, 4, bs).transpose(0, 2, 1, 3)
    expect = np.where(dense.all(axis=(2, 3)), 2, np.where(dense.any(axis=(2, 3)), 1, 0))
    assert (code == expect).all()
    nf, npart = int((expect == 2).sum()), int((expect == 1).sum())
    assert f"full {nf}, partial {npart}" in fig.axes[0].get_title()


def test_position_map_strips_restart_per_image_and_show_the_wrong_version():
    imgs = [torch.rand(3, 42, 56), torch.rand(3, 28, 70), torch.rand(3, 56, 28)]  # grids 3x4, 2x5, 4x2
    batch = P.pack_images(imgs, 14)
    fig = V.position_map(batch)
    assert len(fig.axes) == 5
    data = [np.ma.getdata(ax.images[0].get_array())[0] for ax in fig.axes]
    assert (data[0] == batch.image_ids[0].numpy()).all()
    assert (data[1] == batch.positions[0, :, 0].numpy()).all()
    assert (data[2] == batch.positions[0, :, 1].numpy()).all()
    assert data[1][12] == 0 and data[1][22] == 0  # rows restart at each image
    assert (data[3] == np.arange(30)).all()  # wrong: 1-D index keeps counting
    assert data[4][12] == 3 and data[4][22] == 5  # wrong: rows continue after 3 and 3 + 2 rows
    assert "WRONG" in fig.axes[3].get_yticklabels()[0].get_text()
    assert len(V.position_map(batch, show_wrong=False).axes) == 3
    padded = P.pack_images(imgs, 14, max_len=20, strategy="ffd")  # rows [[0, 2], [1]]: row 1 is half padding
    strip = V.position_map(padded, row=1).axes[1].images[0].get_array()
    assert int(np.ma.getmaskarray(strip).sum()) == 10 == int(padded.padding[1].sum())
    with pytest.raises(TypeError):
        V.position_map([1, 2, 3])


def test_position_similarity_cosine_and_rope():
    coords, _ = P.grid_coords((6, 8))
    rot = P.apply_rope_2d(torch.ones(48, 16), coords).reshape(6, 8, 16)
    fig = V.position_similarity(rot, (2, 3), metric="dot")
    sims = np.asarray(fig.axes[0].images[0].get_array())
    assert sims.shape == (6, 8)
    assert np.unravel_index(sims.argmax(), sims.shape) == (2, 3)  # RoPE: most similar to itself
    fig = V.position_similarity(torch.randn(4, 5, 8), (1, 1))
    sims = np.asarray(fig.axes[0].images[0].get_array())
    assert sims[1, 1] == pytest.approx(1.0, abs=1e-5) and sims.max() <= 1 + 1e-6
    with pytest.raises(ValueError, match="outside"):
        V.position_similarity(torch.randn(4, 5, 8), (4, 0))
    with pytest.raises(ValueError, match="metric"):
        V.position_similarity(torch.randn(4, 5, 8), (0, 0), metric="l2")


@pytest.mark.parametrize("rule", ["navit", "qwen2_vl", "siglip2_naflex", "pixtral"])
def test_native_sizes_draws_each_image_at_its_native_size(rule):
    sizes = [(640, 480), (300, 1200), (64, 48)]
    ims = [Image.new("RGB", s, (200, 30, 30)) for s in sizes]
    fig = S.native_sizes(ims, rule, names=["a", "b", "c"])
    assert len(fig.axes) == 3
    for ax, s in zip(fig.axes, sizes):
        W, H = P.native_size(s, rule)
        arr = ax.images[0].get_array()
        assert arr.shape[:2] == (H, W)
        d = P.native_size_details(s, rule)
        assert f"{d['tokens']} tok" in ax.get_title(loc="left")
        assert f"{s[0]}×{s[1]}" in ax.get_title(loc="left")
        gh, gw = d["grid"]  # (rows, cols)
        assert len(ax.lines) == (gw - 1) + (gh - 1)  # the patch grid
    with pytest.raises(TypeError):
        S.native_sizes([np.zeros((4, 4, 3))], rule)


def test_mask_memory_plot_lines_are_the_library_numbers():
    sizes = [256, 1024, 4096]
    fig = S.mask_memory_plot(num_images=4, sizes=sizes)
    ax = fig.axes[0]
    lines = {ln.get_label(): ln for ln in ax.get_lines() if not ln.get_label().startswith("_")}
    assert len(lines) == 4
    dense = next(v for k, v in lines.items() if k.startswith("dense bool"))
    assert list(dense.get_ydata()) == [n * n for n in sizes]
    cu = next(v for k, v in lines.items() if k.startswith("cu_seqlens"))
    assert list(cu.get_ydata()) == [P.mask_memory([n // 4] * 4)["cu_seqlens"] for n in sizes]
    assert ax.get_xscale() == "log" and ax.get_yscale() == "log"
    with pytest.raises(ValueError):
        S.mask_memory_plot(num_images=0)
