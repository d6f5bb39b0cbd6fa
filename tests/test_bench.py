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

from anyres_tutorial import bench, tiling
from anyres_tutorial.bench import Config, runner, timing, workload
from anyres_tutorial.encoder import arch, attention, attention_kernels, vit

REQUIRED = ("config", "num_images", "tokens", "padding_tokens", "useful_tokens", "duplicated_tokens",
            "cls_tokens", "median_ms", "iqr_ms", "min_ms", "max_ms", "images_per_s", "tokens_per_s", "flops",
            "achieved_flops", "matmul_flops", "efficiency", "device", "dtype", "torch_version", "threads",
            "check_passed", "check_max_abs_diff")


@pytest.fixture(scope="module")
def quick(tmp_path_factory):
    out = tmp_path_factory.mktemp("bench") / "quick.json"
    # ~2 minutes on an idle 2-core CPU; the limit leaves room for a machine shared with other jobs
    proc = subprocess.run([sys.executable, "-m", "anyres_tutorial.bench", "--quick", "--no-progress",
                           "--out", str(out)], capture_output=True, text=True, timeout=1500)
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
    single = [f"packed-{b}" for b in attention.available("cpu")]
    expected = ["tiled"] + single + [f"{c}-rows{data['meta']['rows']}" for c in single]
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
    rows = [r for r in main if Config.parse(r["config"]).rows]
    assert rows and all(0 < r["row_padding_fraction"] < 1 and r["row_slots"] == r["rows"] * r["max_len"]
                        for r in rows)
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
    for b in attention.BACKENDS:
        if b not in attention.available("cpu"):
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
    assert names == {"summary.png", "num_images.png", "resolution.png", "planning.png", "pipeline.png"}
    assert [p["config"] for p in data["pipeline"]][: len(tiling.METHODS)] == [
        Config.tiled(m).name for m in tiling.METHODS]
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
    assert attention.executed_flops("dense_mask", [50]) == arch.count_flops([50])
    lengths = [10, 20, 30]
    extra = 4 * arch.DIM * arch.DEPTH * (60 * 60 - (100 + 400 + 900))
    assert attention.executed_flops("dense_mask", lengths) == arch.count_flops(lengths) + extra
    # a row of 64 slots: 4 padding slots through every linear layer, and 64 x 64 pairs
    slot = 2 * 3 * 14 * 14 * arch.DIM + arch.DEPTH * (8 * arch.DIM ** 2 + 4 * arch.DIM * arch.MLP_HIDDEN)
    extra64 = 4 * arch.DIM * arch.DEPTH * (64 * 64 - (100 + 400 + 900))
    want = arch.count_flops(lengths) + 4 * slot + extra64
    assert attention.executed_flops("dense_mask", lengths, 64) == want
    assert attention.executed_flops("loop", lengths, 64) == arch.count_flops(lengths)  # each image alone


def test_failed_check_aborts_with_a_clear_message():
    s = bench.parse_settings(["--quick"])
    ref = [torch.zeros(5, 384), torch.ones(3, 384)]
    ok = timing.check("packed-flex", [r.clone() for r in ref], ref, "packed-loop", s, "main")
    assert ok["passed"] and ok["max_abs_diff"] == 0
    bad = [ref[0], ref[1] + 1e-2]
    with pytest.raises(bench.BenchCheckError, match="packed-flex.*packed-loop.*nothing was timed"):
        timing.check("packed-flex", bad, ref, "packed-loop", s, "main")
    with pytest.raises(bench.BenchCheckError, match="shape"):
        timing.check("packed-flex", [ref[0][:4], ref[1]], ref, "packed-loop", s, "main")
    nan = [ref[0], ref[1] * float("nan")]  # a NaN output never passes, whatever its place
    with pytest.raises(bench.BenchCheckError, match="nan"):
        timing.check("packed-flex", nan, ref, "packed-loop", s, "main")
    with pytest.raises(bench.BenchCheckError, match="nan"):
        timing.check("packed-flex", nan[::-1], ref[::-1], "packed-loop", s, "main")


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
        inp = workload.prepare_tiled(items, pils, method, 0.25, torch.device("cpu"), torch.float32)
        assert inp.config.name == f"tiled-{method}"
        t = inp.info["tile_px"]
        assert t % 14 == 0
        assert tuple(inp.payload.shape[1:]) == (3, t, t)
        assert inp.payload.shape[0] == sum(tiling.plan(method, it.size).num_images for it in items)
        assert inp.counts["tokens"] == inp.payload.shape[0] * (1 + (t // 14) ** 2)


# ----------------------------------------------------------------------------------------------------------
# typed configurations and the attention registry


def test_config_names_round_trip_and_bad_names_are_refused():
    assert Config.tiled().name == "tiled" and Config.tiled().method == tiling.DEFAULT_METHOD
    assert Config.tiled("ureader").name == "tiled-ureader"
    assert Config.packed("dense_mask").name == "packed-dense_mask"
    for name in ("tiled", "tiled-ureader", "tiled-deepseek_vl2", "packed-loop", "packed-flex", "packed-x"):
        c = Config.parse(name)
        assert c.name == name and str(c) == name and Config.parse(c.name) == c
    assert Config.parse("packed-dense_mask") == Config("packed", backend="dense_mask")
    for bad in ("", "tiled-", "packed", "packed-", "loop", "mixed-flex"):
        with pytest.raises(ValueError, match="configuration name"):
            Config.parse(bad)
    with pytest.raises(TypeError):
        Config.parse(None)
    with pytest.raises(ValueError):
        Config("packed", method="llava_next", backend="flex")
    with pytest.raises(ValueError):
        Config("tiled")


def test_recorded_results_parse_as_configurations():
    recorded = bench.recorded_results()
    assert recorded, "results/ holds committed benchmark runs"
    for _, d in recorded:
        for r in d["results"]:
            c = Config.parse(r["config"])
            assert c.name == r["config"]
            if c.kind == "packed":
                assert r["padding_tokens"] == 0 and r["duplicated_tokens"] == 0
            else:
                assert c.method in tiling.METHODS


def test_the_bench_reads_configurations_through_config():
    from pathlib import Path

    for p in Path(bench.__file__).parent.glob("*.py"):
        text = p.read_text()
        for bad in ('split("-")', "split('-')", 'startswith("tiled', 'startswith("packed'):
            assert bad not in text, f"{p.name} parses configuration names by hand: {bad}"


def _fake_memory(lengths):
    return dict(mask_bytes=7 * sum(lengths), padded_tokens=10)


@pytest.fixture
def fake_backend():
    """A registered backend the bench has never heard of: SDPA with a block-diagonal mask from the ids."""
    import torch.nn.functional as F

    def prepare(seg):  # (B, N) segment ids -> attend(q, k, v) on (B, H, N, hd)
        mask = seg[:, None, :, None] == seg[:, None, None, :]  # (B, 1, N, N)
        return lambda q, k, v: F.scaled_dot_product_attention(q, k, v, attn_mask=mask)

    attention.register("bench_test_fake", prepare=prepare, memory=_fake_memory, attends_all_pairs=True,
                       pairs=lambda lengths, row_len=None: (row_len or sum(lengths)) ** 2,
                       description="test backend")
    try:
        yield "bench_test_fake"
    finally:
        attention.unregister("bench_test_fake")


def test_backends_option_validates_against_the_registry(fake_backend, capsys):
    s = bench.parse_settings(["--quick", "--backends", fake_backend])
    assert s.backends == ["loop", fake_backend]  # the reference is always added first
    assert fake_backend in bench.build_parser().get_default("backends").split(",")
    with pytest.raises(SystemExit):
        bench.parse_settings(["--quick", "--backends", f"{fake_backend},bench_test_never"])
    err = capsys.readouterr().err
    assert "bench_test_never" in err and fake_backend in err  # the error names the registered ones


def _packed(backend, lengths, max_len=None):
    """Packed inputs of images with these token lengths (no pixels: the cost model needs lengths only)."""
    cfg = Config.packed(backend, max_len=max_len)
    info = {}
    if max_len:
        from anyres_tutorial.packing import pack

        rows = pack(lengths, max_len)
        info = dict(max_len=max_len, row_lengths=[[lengths[i] for i in r] for r in rows])
    return workload.Inputs(cfg, len(lengths), list(lengths), {}, None, info=info)


def test_memory_flops_and_colours_come_from_the_backend(fake_backend):
    lengths = [10, 20, 30]
    mem = workload.memory(_packed(fake_backend, lengths))
    assert mem["mask_bytes"] == 7 * 60
    loop = workload.memory(_packed("loop", lengths))
    dense = workload.memory(_packed("dense_mask", lengths))
    assert loop["activation_bytes"] < dense["activation_bytes"], "loop holds one image at a time"
    assert mem["activation_bytes"] == dense["activation_bytes"] + 4 * 3 * arch.DIM * 10  # padded q, k, v
    assert dense["mask_bytes"] == 60 * 60
    flex = workload.memory(_packed("flex", lengths))  # flex pads q, k, v to a bucketed length
    assert flex["activation_bytes"] == dense["activation_bytes"] + 4 * 3 * arch.DIM * (
        attention_kernels.flex_padded_length(60) - 60)
    tiled = workload.Inputs(Config.tiled(), 1, lengths, {}, None)
    assert workload.memory(tiled)["mask_bytes"] == 0
    assert attention.executed_flops(fake_backend, lengths) == attention.executed_flops("dense_mask", lengths)
    # rows of 32 slots: [30] [20, 10] -> two 32 x 32 masks, padding slots 2 and 2 run the linear layers
    rows = _packed("dense_mask", lengths, 32)
    assert workload.memory(rows)["mask_bytes"] == 2 * 32 * 32
    assert workload.executed_flops(rows) == (attention.executed_flops("dense_mask", [30], 32)
                                             + attention.executed_flops("dense_mask", [20, 10], 32))
    assert workload.executed_flops(_packed("loop", lengths, 32)) == arch.count_flops(lengths)
    from anyres_tutorial import viz

    assert bench.config_color(f"packed-{fake_backend}") == viz.backend_color(fake_backend)  # the palette's
    packed = {viz.backend_color(b) for b in attention.BACKENDS}
    assert {bench.config_color(Config.packed(b)) for b in attention.BACKENDS} == packed
    assert len({bench.config_color(f"packed-{b}") for b in ("loop", "dense_mask", "flex", "varlen")}) == 4
    tiled = {bench.config_color(Config.tiled(m)) for m in tiling.METHODS}
    assert len(tiled) == len(tiling.METHODS) and not tiled & packed, "tiled colours are their own"
    assert bench.config_color("tiled") == bench.plots.TILED_COLOR


def test_unavailable_and_skipped_backends_give_the_registrys_reason(fake_backend):
    attention.register("bench_test_absent", prepare=None, unavailable=lambda device, dtype: "no such chip")
    try:
        s = bench.parse_settings(["--quick", "--backends", f"bench_test_absent,{fake_backend}",
                                  "--dense-max-tokens", "50", "--rows", "0"])
        configs, unavailable = workload.configs(s)
        assert [c.name for c in configs] == ["tiled", "packed-loop", f"packed-{fake_backend}"]
        assert unavailable[0]["config"] == "packed-bench_test_absent"
        assert "no such chip" in unavailable[0]["reason"]
        r = runner.Runner(s, None)

        def inp(backend, lengths, max_len=None):
            x = _packed(backend, lengths, max_len)
            x.counts["tokens"] = sum(lengths)
            return x

        why = r.skip_reason(inp(fake_backend, [30, 30]))
        assert why and "60 tokens" in why and "--dense-max-tokens 50" in why
        assert r.skip_reason(inp(fake_backend, [20, 30])) is None
        assert r.skip_reason(inp("loop", [300, 300])) is None
        assert r.skip_reason(inp(fake_backend, [30, 30], 40)) is None  # rows of 40 slots: 40 keys each
        assert "rows of 64 slots" in r.skip_reason(inp(fake_backend, [30, 30], 64))
    finally:
        attention.unregister("bench_test_absent")


def test_any_registered_backend_runs_through_the_bench(fake_backend, tmp_path):
    from tqdm.auto import tqdm

    assert fake_backend in attention.available("cpu")
    s = bench.parse_settings(["--quick", "--repeats", "1", "--backends", fake_backend, "--rows", "0",
                              "--out", str(tmp_path / "x.json")])
    model = vit.load_dinov2()
    r = runner.Runner(s, model, dict(device_name="cpu", dtype="float32"), tqdm(disable=True))
    r.matmul = dict(flops_per_s=1e9)
    items = bench.make_workload(2)
    configs = [c for c in workload.configs(s)[0] if c.kind == "packed"]
    r.run_set("main", {}, items, [it.load() for it in items], configs)
    rec = {x["config"]: x for x in r.results}
    fake = rec[f"packed-{fake_backend}"]
    assert fake["check_passed"] and fake["mask_bytes"] == 7 * fake["tokens"]
    lengths = [1 + (w // 14) * (h // 14) for w, h in fake["info"]["sizes"]]
    assert fake["executed_flops"] == attention.executed_flops(fake_backend, lengths)
    assert {c["config"] for c in r.checks} == {"packed-loop", f"packed-{fake_backend}"}


def test_training_step_names_round_trip():
    for name in ("train-tiled", "train-tiled-ureader", "train-packed-loop", "train-packed-dense_mask",
                 "train-packed-sdpa_segments", "train-packed-flex", "train-packed-varlen"):
        c = Config.parse(name)
        assert c.train and c.name == name and Config.parse(c.name) == c
    assert Config.tiled(train=True).name == "train-tiled"
    assert Config.packed("flex", train=True) != Config.packed("flex")
    assert not Config.parse("packed-flex").train
    for bad in ("train", "train-", "train-packed", "train-train-tiled", "train-tiled-", "train-loop"):
        with pytest.raises(ValueError, match="configuration name"):
            Config.parse(bad)
    assert bench.config_color("train-packed-dense_mask") == bench.config_color("packed-dense_mask")
    s = bench.parse_settings(["--quick", "--train", "--device", "cpu"])
    configs, unavailable = workload.configs(s, train=True)
    names = [c.name for c in configs]
    assert names[0] == "train-tiled" and "train-packed-loop" in names
    assert {f"train-packed-{b}" for b in attention.available(s.device, s.dtype, backward=True)} <= set(names)
    for u in unavailable:  # e.g. flex on CPU: the registry's own reason
        b = Config.parse(u["config"]).backend
        assert b not in attention.available(s.device, s.dtype, backward=True) and u["reason"]


def test_gradient_check_fails_before_timing():
    s = bench.parse_settings(["--quick", "--device", "cpu"])
    ref = {"w": torch.ones(3), "b": torch.zeros(2)}
    ok = timing.grad_check("train-packed-x", {"w": torch.ones(3), "b": torch.zeros(2)}, ref, "loop", s)
    assert ok["passed"] and ok["max_rel_grad_diff"] == 0.0
    assert ok["tolerance"] == timing.GRAD_TOLERANCE["float32"]
    with pytest.raises(bench.BenchCheckError, match="gradient check failed before timing") as e:
        timing.grad_check("train-packed-x", {"w": torch.ones(3) * 1.01, "b": torch.zeros(2)}, ref, "loop", s)
    assert e.value.record["worst_parameter"] == "w" and not e.value.record["passed"]


def test_quick_train_run_checks_gradients_then_times_each_step(tmp_path):
    backends = [b for b in ("loop", "dense_mask", "sdpa_segments") if b in attention.BACKENDS]
    data = bench.run(["--quick", "--train", "--no-sweeps", "--num-images", "2", "--repeats", "1",
                      "--warmup", "0", "--scale", "0.0834", "--matmul-n", "128", "--plan-sizes", "20",
                      "--no-plots", "--no-progress", "--device", "cpu", "--backends", ",".join(backends),
                      "--pipeline-images", "0",
                      "--out", str(tmp_path / "train.json")])
    recs = {r["config"]: r for r in data["results"] if r["sweep"] == "train"}
    assert set(recs) == {"train-tiled", *(f"train-packed-{b}" for b in backends)}
    checks = {c["config"]: c for c in data["checks"] if c["sweep"] == "train"}
    assert set(checks) == set(recs) and all(c["passed"] for c in checks.values())
    for name, c in checks.items():
        if name != "train-packed-loop":
            assert c["check"] == "gradients" and c["max_rel_grad_diff"] <= c["tolerance"] == 1e-4
            assert "loop" in c["reference"] and c["parameters"] > 100  # the encoder's and the head's
    for name, r in recs.items():
        assert all(k in r for k in REQUIRED) and r["check_passed"] and Config.parse(name).train
        assert r["train"]["lr"] == 0.0 and math.isfinite(r["train"]["loss"]) and r["flops"] > 0
    assert not data["errors"]
    assert "train" in bench.results_table(data, "train") and bench.summary_table(data)
    model = vit.load_dinov2()
    assert not any(p.requires_grad for p in model.parameters())
