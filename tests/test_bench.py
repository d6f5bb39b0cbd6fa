"""The benchmark (``python -m anyres_tutorial.bench``): CLI, the JSON it writes, its plots, its helpers.

One ``--quick`` run through the real command line (module-scoped, the slow part of this file) feeds most
checks. No timing is asserted: speed is what the benchmark measures, not what the tests check.
"""

from __future__ import annotations

import json
import math
import subprocess
import sys

import pytest
import torch

from anyres_tutorial import bench, tiling, vit

REQUIRED = ("config", "num_images", "tokens", "padding_tokens", "useful_tokens", "duplicated_tokens",
            "cls_tokens", "median_ms", "iqr_ms", "min_ms", "max_ms", "images_per_s", "tokens_per_s", "flops",
            "achieved_flops", "matmul_flops", "efficiency", "device", "dtype", "torch_version", "threads",
            "check_passed", "check_max_abs_diff")


@pytest.fixture(scope="module")
def quick(tmp_path_factory):
    out = tmp_path_factory.mktemp("bench") / "quick.json"
    proc = subprocess.run([sys.executable, "-m", "anyres_tutorial.bench", "--quick", "--no-progress",
                           "--out", str(out)], capture_output=True, text=True, timeout=600)
    assert proc.returncode == 0, f"bench --quick failed:\n{proc.stdout[-3000:]}\n{proc.stderr[-3000:]}"
    return out, json.loads(out.read_text()), proc.stdout


def test_help_lists_the_options():
    proc = subprocess.run([sys.executable, "-m", "anyres_tutorial.bench", "--help"], capture_output=True,
                          text=True, timeout=120)
    assert proc.returncode == 0, proc.stderr
    for opt in ("--quick", "--out", "--device", "--threads", "--sweeps", "--no-sweeps", "--tiling-methods",
                "--backends", "--scale"):
        assert opt in proc.stdout, f"--help does not mention {opt}"


@pytest.mark.parametrize("argv, words", [
    (["--num-images", "0"], "positive integer"),
    (["--scale", "2"], "--scale"),
    (["--scale", "abc"], "number"),
    (["--backends", "loop,magic"], "magic"),
    (["--tiling-methods", "llava_next,nope"], "nope"),
    (["--sweep-images", "1,-4"], "positive integers"),
    (["--out", "result.txt"], ".json"),
    (["--device", "tpu"], "invalid choice"),
])
def test_bad_arguments_give_a_clear_error(argv, words, capsys):
    with pytest.raises(SystemExit) as e:
        bench.run(argv)
    assert e.value.code == 2
    assert words in capsys.readouterr().err


@pytest.mark.skipif(torch.cuda.is_available(), reason="this machine has CUDA")
def test_cuda_requested_without_cuda_is_a_clear_error(capsys):
    with pytest.raises(SystemExit):
        bench.run(["--device", "cuda", "--quick"])
    assert "cuda" in capsys.readouterr().err.lower()


def test_quick_run_covers_every_available_configuration(quick):
    _, data, _ = quick
    expected = ["tiled"] + [f"packed-{b}" for b in vit.available_attention("cpu")]
    main = [r for r in data["results"] if r["sweep"] == "main"]
    assert sorted(r["config"] for r in main) == sorted(expected)
    for r in main:
        missing = [k for k in REQUIRED if k not in r]
        assert not missing, f"{r['config']}: missing {missing}"
        assert r["num_images"] == 16
        assert r["dtype"] == "float32" and r["device_type"] == "cpu"
        assert r["torch_version"] == torch.__version__
        assert r["min_ms"] <= r["median_ms"] <= r["max_ms"] and r["reps"] >= 1
        assert math.isclose(r["efficiency"], r["achieved_flops"] / r["matmul_flops"], rel_tol=1e-9)
        assert math.isclose(r["achieved_flops"], r["flops"] / (r["median_ms"] / 1e3), rel_tol=1e-9)
        parts = r["useful_tokens"] + r["padding_tokens"] + r["duplicated_tokens"] + r["cls_tokens"]
        assert r["tokens"] == parts
        assert r["check_passed"] is True
        assert r["mask_bytes"] >= 0 and r["activation_bytes"] > 0
    tiled = next(r for r in main if r["config"] == "tiled")
    assert tiled["duplicated_tokens"] > 0, "every LLaVA-NeXT plan has a thumbnail"
    assert tiled["padding_tokens"] > 0, "a mixed set of aspect ratios must leave padding on the canvas"
    for r in main:
        if r["config"].startswith("packed"):
            assert r["padding_tokens"] == 0 and r["duplicated_tokens"] == 0
            assert r["cls_tokens"] == 16
    dense = next((r for r in main if r["config"] == "packed-dense_mask"), None)
    if dense is not None:
        assert dense["executed_flops"] > dense["flops"], "a dense mask computes the masked-out pairs too"
        assert dense["mask_bytes"] == (dense["tokens"]) ** 2
    sources = {w["source"] for w in data["workload"]["main"]}
    assert sources == {"data", "synthetic"}, "the main set mixes data/ images and synthetic sizes"


def test_quick_run_records_checks_unavailable_backends_and_metadata(quick):
    _, data, _ = quick
    assert data["checks"] and all(c["passed"] for c in data["checks"])
    checked = {c["config"] for c in data["checks"] if c["sweep"] == "main"}
    assert checked == {r["config"] for r in data["results"] if r["sweep"] == "main"}
    for c in data["checks"]:
        if c["config"] != "packed-loop" or c["sweep"] == "main":
            assert c["max_abs_diff"] <= c["tolerance"] <= 1e-2
    unavailable = {u["config"]: u["reason"] for u in data["unavailable"]}
    for b in vit.BACKENDS:
        if b not in vit.available_attention("cpu"):
            assert f"packed-{b}" in unavailable and unavailable[f"packed-{b}"]
    if not torch.cuda.is_available():
        assert "CUDA" in unavailable["packed-varlen"]
    meta = data["meta"]
    for key in ("date", "host", "cpu", "device_name", "torch_version", "threads", "dtype", "scale"):
        assert meta.get(key) not in (None, ""), key
    assert data["matmul"]["flops_per_s"] > 0 and data["matmul"]["dtype"] == "float32"
    assert [p["method"] for p in data["planning"]] == list(tiling.METHODS)
    assert all(p["plans_per_s"] > 0 and p["sizes"] > 0 for p in data["planning"])


def test_quick_run_has_sweeps_and_plots(quick):
    out, data, stdout = quick
    sweeps = {r["sweep"] for r in data["results"]}
    assert {"main", "num_images", "resolution", "small_images"} <= sweeps
    res = [r for r in data["results"] if r["sweep"] == "resolution" and r["config"] == "packed-loop"]
    assert [r["tokens"] for r in res] == sorted(r["tokens"] for r in res) and len(res) >= 2
    names = {p.rsplit("-", 1)[-1] for p in data["plots"]}
    assert names == {"summary.png", "num_images.png", "resolution.png", "planning.png"}
    for p in data["plots"]:
        with open(p, "rb") as f:
            assert f.read(8) == b"\x89PNG\r\n\x1a\n", p
    assert str(out) in stdout and "packed-loop" in stdout  # the console table and where the files went


def test_plot_functions_draw_from_the_json(quick):
    import matplotlib.pyplot as plt

    _, data, _ = quick
    fig = bench.plot_summary(data)
    assert len(fig.axes) == 3
    n_main = sum(r["sweep"] == "main" for r in data["results"])
    assert len(fig.axes[0].patches) == n_main  # one time bar per configuration
    fig2 = bench.plot_resolution(data)
    assert all(ax.get_xscale() == "log" for ax in fig2.axes)
    fig3 = bench.plot_num_images(data)
    assert fig3.axes[0].get_xscale() == "log"
    fig4 = bench.plot_planning(data)
    assert len(fig4.axes[0].patches) == len(tiling.METHODS)
    for f in (fig, fig2, fig3, fig4):
        plt.close(f)
    table = bench.results_table(data)
    for r in data["results"]:
        if r["sweep"] == "main":
            assert r["config"] in table


def test_tiled_token_counts_by_hand():
    # (1000, 400) -> LLaVA-NeXT canvas 1008 x 336 (1 row x 3 cols); the image is resized to 840 x 336 and
    # centred: content x in [84, 924). Tile 0 shows content from x = 84 (6 of 24 patch columns are padding),
    # tile 2 up to x = 924 - 672 = 252 (again 6 padding columns); the thumbnail is squashed (no padding).
    p = tiling.plan("llava_next", (1000, 400))
    assert p.grid == (1, 3) and tuple(p.canvas_size) == (1008, 336)
    c = bench.tiled_token_counts(p, 336)
    assert c["tokens"] == 4 * 577 and c["cls_tokens"] == 4
    assert c["padding_tokens"] == 2 * 6 * 24
    assert c["duplicated_tokens"] == 576
    assert c["useful_tokens"] == 4 * 577 - 4 - 288 - 576
    # at 112 px per tile (8 x 8 patches) the padding is 2 of 8 columns in tiles 0 and 2
    c = bench.tiled_token_counts(p, 112)
    assert c["padding_tokens"] == 2 * 2 * 8 and c["tokens"] == 4 * 65
    with pytest.raises(ValueError, match="multiple of 14"):
        bench.tiled_token_counts(p, 100)


def test_workload_is_seeded_and_prefix_stable():
    a = bench.make_workload(20, seed=3)
    b = bench.make_workload(8, seed=3)
    assert [(i.name, i.size) for i in a[:8]] == [(i.name, i.size) for i in b]
    assert [(i.name, i.size) for i in bench.make_workload(20, seed=3)] == [(i.name, i.size) for i in a]
    sizes = bench.synthetic_sizes(400, seed=1)
    assert sizes == bench.synthetic_sizes(400, seed=1) and sizes != bench.synthetic_sizes(400, seed=2)
    for w, h in sizes:
        assert 0.03e6 * 0.98 <= w * h <= 2.0e6 * 1.02
        assert 1 / 8.1 <= w / h <= 8.1
    im = a[1].load()
    assert im.size == a[1].size
    with pytest.raises(ValueError):
        bench.make_workload(0)
    with pytest.raises(ValueError):
        bench.synthetic_sizes(-1)


def test_dense_flops_count_the_masked_pairs():
    assert bench.dense_executed_flops([50]) == vit.count_flops([50])
    lengths = [10, 20, 30]
    extra = 4 * vit.DIM * vit.DEPTH * (60 * 60 - (100 + 400 + 900))
    assert bench.dense_executed_flops(lengths) == vit.count_flops(lengths) + extra


def test_failed_check_aborts_with_a_clear_message():
    s = bench._resolve(bench.build_parser().parse_args(["--quick"]), bench.build_parser())
    ref = [torch.zeros(5, 384), torch.ones(3, 384)]
    ok = bench._check("packed-flex", [r.clone() for r in ref], ref, "packed-loop", s, "main")
    assert ok["passed"] and ok["max_abs_diff"] == 0
    bad = [ref[0], ref[1] + 1e-2]
    with pytest.raises(bench.BenchCheckError, match="packed-flex.*packed-loop.*nothing was timed"):
        bench._check("packed-flex", bad, ref, "packed-loop", s, "main")
    with pytest.raises(bench.BenchCheckError, match="shape"):
        bench._check("packed-flex", [ref[0][:4], ref[1]], ref, "packed-loop", s, "main")


def test_load_results_refuses_other_json(tmp_path):
    p = tmp_path / "x.json"
    p.write_text(json.dumps({"hello": 1}))
    with pytest.raises(ValueError, match="not a benchmark result"):
        bench.load_results(p)
    assert bench.recorded_results(tmp_path) == []


def test_other_tiling_methods_give_one_batch_of_equal_tiles():
    items = bench.make_workload(3)
    pils = [it.load() for it in items]
    for method in ("internvl", "deepseek_vl2", "ureader"):
        inp = bench._prep_tiled(items, pils, method, 0.25, torch.device("cpu"), torch.float32)
        assert inp.config == f"tiled-{method}"
        t = inp.info["tile_px"]
        assert t % 14 == 0
        assert tuple(inp.payload.shape[1:]) == (3, t, t)
        assert inp.payload.shape[0] == sum(tiling.plan(method, it.size).num_images for it in items)
        assert inp.counts["tokens"] == inp.payload.shape[0] * (1 + (t // 14) ** 2)
