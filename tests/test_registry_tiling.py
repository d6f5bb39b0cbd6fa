"""A tiling method defined here, in the test, and registered with ``tiling.register``: every consumer
(planning, pixels, the token accounting, every generic picture, the explorer's pure functions and the
widgets) handles it without a library file knowing its name (`tiling_basics`, `grid_explorer`)."""

from __future__ import annotations

import io
import math

import matplotlib

matplotlib.use("Agg")

import matplotlib.pyplot as plt
import numpy as np
import pytest
import torch
import torch.nn.functional as F
from matplotlib.figure import Figure
from PIL import Image

from anyres_tutorial import explore, features, tiling, viz
from anyres_tutorial.tiling.base import GlobalView, check_int, grid_boxes, make_plan
from anyres_tutorial.tiling.protocol import ScoreTable, uniform_layout

TILE = 224
PER_IMAGE = (TILE // 14) ** 2  # 256 tokens per encoder image


class Halves:
    """Cut the image along its longer side into ``pieces`` tiles of 224 (a 1×n or n×1 grid; default 2, the
    halves), squashing it onto the canvas, plus a squashed 224×224 global view after the tiles."""

    TITLE = "Halves (a test method)"
    OPTIONS = {"pieces": 2}
    CONTROLS = {"pieces": ("int", 1, 3)}
    name = "halves"

    def resolve(self, opts: dict) -> dict:
        return {"pieces": check_int("pieces", opts["pieces"], 1, 3)}

    def _candidates(self, size, n: int) -> list[dict]:
        w, h = size
        grids = [(1, n), (n, 1)] if n > 1 else [(1, 1)]
        return [{"grid": g, "log_distance": abs(math.log(w / h) - math.log(g[1] / g[0]))} for g in grids]

    def plan(self, size, opts: dict):
        cands = self._candidates(size, opts["pieces"])
        rows, cols = min(cands, key=lambda c: c["log_distance"])["grid"]
        boxes, positions = grid_boxes(rows, cols, TILE)
        canvas = (cols * TILE, rows * TILE)
        n_images = len(boxes) + 1
        return make_plan(
            method=self.name, image_size=size, options=opts, tile_size=TILE, grid=(rows, cols),
            canvas_size=canvas, resize_size=canvas, content_box=(0, 0) + canvas, fill=None, tile_boxes=boxes,
            tile_positions=positions, global_position="after",
            global_views=(GlobalView("squash", (TILE, TILE), None, (0, 0, TILE, TILE)),),
            num_images=n_images, num_tokens=n_images * PER_IMAGE,
            token_formula=f"{n_images} images x {PER_IMAGE} = {n_images * PER_IMAGE}",
            details={"candidates": cands})

    def render(self, plan, image):
        canvas = image.resize(tuple(plan.canvas_size), Image.BICUBIC)
        return canvas, [canvas.crop(b) for b in plan.tile_boxes], [image.resize((TILE, TILE), Image.BICUBIC)]

    def token_layout(self, plan):
        return uniform_layout(plan)

    def score_table(self, plan) -> ScoreTable:
        cands = plan.details["candidates"]
        data = tuple({**c, "chosen": tuple(c["grid"]) == tuple(plan.grid)} for c in cands)
        rows = tuple((f"{d['grid'][0]}×{d['grid'][1]}", f"{d['log_distance']:.3f}") for d in data)
        return ScoreTable(kind="halves_split", rule="the split closest to the image's aspect ratio (log)",
                          columns=("grid (rows×cols)", "|log aspect distance|"), rows=rows,
                          chosen=tuple(d["chosen"] for d in data), data=data)


class PlainHalves(Halves):
    """The same method with no explorer controls at all."""

    TITLE = "Halves without controls"
    CONTROLS: dict = {}
    name = "halves_plain"


@pytest.fixture
def halves():
    tiling.register("halves", Halves())
    tiling.register("halves_plain", PlainHalves())
    try:
        yield "halves"
    finally:
        tiling.unregister("halves")
        tiling.unregister("halves_plain")
        plt.close("all")


def _image(w=900, h=500):
    rng = np.random.default_rng(0)
    return Image.fromarray(rng.integers(0, 256, (h, w, 3), dtype=np.uint8), "RGB")


class PatchMeanModel:
    def forward_tiles(self, x):  # (B, 3, H, W) -> (B, 1 + N, 3)
        tokens = F.avg_pool2d(x, 14).flatten(2).transpose(1, 2)
        return torch.cat([x.mean((2, 3))[:, None], tokens], 1)


def _is_png(b: bytes) -> bool:
    return b[:8] == b"\x89PNG\r\n\x1a\n" and min(Image.open(io.BytesIO(b)).size) > 50


def test_plan_apply_and_accounting(halves):
    assert "halves" in tiling.METHODS and tiling.title("halves") == Halves.TITLE
    p = tiling.plan(halves, (900, 500))
    assert p.grid == (1, 2) and p.num_images == 3 and p.num_tokens == 3 * PER_IMAGE
    assert tiling.plan(halves, (500, 900)).grid == (2, 1)
    assert tiling.replan(p, pieces=3).grid == (1, 3)
    batch = tiling.apply(p, _image())
    assert tuple(batch.tensor.shape) == (3, 3, TILE, TILE) and batch.labels == ["r0c0", "r0c1", "global"]
    et = p.encoder_tokens()
    assert (et.useful, et.padding, et.duplicated, et.cls) == (2 * PER_IMAGE, 0, PER_IMAGE, 3)
    assert sum(b.num_tokens for b in tiling.token_layout(p)) == p.num_tokens
    assert tiling.score_table(p).kind == "halves_split"
    fm = features.encode_tiled(PatchMeanModel(), _image(), p)
    assert fm.grid == (16, 32) and not bool(fm.padding.any())
    row = features.token_budget({"x": (900, 500)}, [halves])[0]
    assert (row["useful"], row["padding"], row["duplicated"]) == (et.useful, et.padding, et.duplicated)


def test_every_generic_picture_draws_it(halves, tmp_path):
    img = _image()
    p = tiling.plan(halves, img.size)
    figs = [viz.grid_overlay(p, img), viz.grid_overlay(p), viz.tile_montage(p, img),
            viz.tile_montage(tiling.apply(p, img)), viz.token_strip(p), viz.score_picture(p),
            viz.table_picture(p)]
    for i, fig in enumerate(figs):
        assert isinstance(fig, Figure)
        fig.savefig(tmp_path / f"{i}.png", dpi=40)
    score = figs[5]
    labels = [t.get_text() for t in score.axes[0].get_yticklabels()]
    assert sum("chosen" in lab for lab in labels) == 1 and any(lab.startswith("1×2") for lab in labels)
    assert "halves_split" in score.axes[0].get_title()
    blocks = viz.token_layout(p)
    assert [b.label for b in blocks] == ["#0 (r0,c0)", "#1 (r0,c1)", "#2 global"]
    # the pictures of one method's own step say what the plan lacks
    for picture, what in ((viz.candidate_scores, "resolution"), (viz.template_diagram, "template"),
                          (viz.ureader_scores, "anchors"), (viz.unpad_diagram, "unpad"),
                          (viz.crop_positions, "crop position")):
        with pytest.raises(ValueError, match=what):
            picture(p)


def test_score_picture_registry(halves):
    p = tiling.plan(halves, (900, 500))
    viz.register_score_picture("halves_split", lambda plan: viz.grid_overlay(plan))
    try:
        assert viz.score_picture(p).axes[0].get_xlabel() == "canvas x (px)"
        with pytest.raises(ValueError, match="already"):
            viz.register_score_picture("halves_split", viz.table_picture)
    finally:
        viz.SCORE_PICTURES.unregister("halves_split")
    assert viz.score_picture(tiling.plan("llava_mini", (900, 500))) is None  # kind "none": no picture


def test_explore_functions_know_it(halves):
    assert explore.option_controls(halves) == {"pieces": {"kind": "int", "default": 2, "min": 1, "max": 3}}
    assert explore.option_controls("halves_plain") == {}
    s = explore.tiling_summary((900, 500), halves, pieces=3)
    assert s["grid"] == (1, 3) and s["encoder_images"] == 4 and s["title"] == Halves.TITLE
    assert s["score_kind"] == "halves_split" and sum(r["chosen"] for r in s["scores"]) == 1
    rows = explore.compare_methods((900, 500), [halves, tiling.DEFAULT_METHOD])
    assert [r["method"] for r in rows] == [halves, tiling.DEFAULT_METHOD]
    assert halves in [r["method"] for r in explore.compare_methods((900, 500))]  # the default: every method
    ps = explore.packing_summary([(900, 500), (512, 512)], max_len=1024, tiling_method=halves)
    assert ps["tiling_llm_tokens"] == 3 * PER_IMAGE + tiling.plan(halves, (512, 512)).num_tokens


def test_the_tiling_explorer_shows_it(halves):
    from anyres_tutorial.widgets import TilingExplorer

    tx = TilingExplorer(image="chart", compare=(tiling.DEFAULT_METHOD, halves))
    assert halves in tx.method_dd.options
    tx.method_dd.value = halves
    assert set(tx.state["options"]) == {"pieces"} and tx.last_result["grid"] == (1, 2)
    tx._option_widgets["pieces"].value = 3
    assert tx.last_result["grid"] == (1, 3) and tx.message.value == ""
    for i, tab in enumerate(tx.TABS):
        tx.tabs.selected_index = i
        assert tx.message.value == "" and _is_png(tx.pictures[tab].value), tab
    assert "halves_split" not in tx.scores_html.value and "log aspect distance" in tx.scores_html.value
    assert [r["method"] for r in tx.last_compare] == [tiling.DEFAULT_METHOD, halves]
    tx.method_dd.value = "halves_plain"
    assert tx.state["options"] == {} and tx.message.value == "" and tx.last_result["grid"] == (1, 2)
    assert plt.get_fignums() == []


def test_the_benchmark_times_it(halves):
    """The bench's tiled path: ``--tiling-methods halves`` is accepted, its batch is prepared with the plan's
    accounting, checked against each tile alone and timed."""
    from anyres_tutorial import bench
    from anyres_tutorial.bench import workload
    from anyres_tutorial.bench.workload import Config

    s = bench.parse_settings(["--quick", "--tiling-methods", "halves", "--no-sweeps"])
    assert "halves" in s.tiling_methods
    items = workload.make_workload(3)
    pils = [it.load() for it in items]
    inp = workload.prepare_tiled(items, pils, "halves", s.scale, s.device, s.dtype)
    assert inp.config == Config.tiled("halves") and inp.config.name == "tiled-halves"
    px = inp.info["tile_px"]
    want = [tiling.plan("halves", it.size).encoder_tokens(tile_px=px) for it in items]
    assert inp.counts["tokens"] == sum(e.total for e in want) == inp.payload.shape[0] * (1 + (px // 14) ** 2)
    assert inp.counts["duplicated_tokens"] == sum(e.duplicated for e in want) > 0

    from anyres_tutorial.bench.runner import Runner
    from anyres_tutorial.encoder.vit import load_dinov2

    r = Runner(s, load_dinov2(), {"device_name": "cpu", "dtype": "float32"})
    r.matmul = {"flops_per_s": 1e9}
    r.run_set("main", {"point": 3}, items, pils, [Config.tiled("halves")])
    (chk,) = r.checks
    assert chk["config"] == "tiled-halves" and chk["passed"]
    (rec,) = r.results
    assert rec["config"] == "tiled-halves" and rec["median_ms"] > 0 and rec["tokens"] == inp.counts["tokens"]
