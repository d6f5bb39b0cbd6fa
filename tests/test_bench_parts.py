"""The benchmark's parts without a full run: interleaved timing order, rows configurations checked against the
reference with their row padding, the pipeline timing of every registered tiling method, and the recorded
results of older runs read back."""

from __future__ import annotations

import pytest
from tqdm.auto import tqdm

from anyres_tutorial import ROOT, bench, tiling
from anyres_tutorial.bench import Config, pipeline, runner, timing, workload
from anyres_tutorial.encoder import attention

TINY = ["--quick", "--scale", "0.0834", "--repeats", "2", "--matmul-n", "128", "--plan-sizes", "20",
        "--no-plots", "--no-progress", "--device", "cpu"]


def _fake_stopwatch(calls):
    def stopwatch(fn, s, peak=None):
        def once():
            fn()
            calls.append("timed")
            return 0.001
        return once
    return stopwatch


def test_repetitions_are_interleaved_after_every_warm_up():
    calls = []
    fns = {n: (lambda n=n: calls.append(n)) for n in "ABC"}
    s = bench.parse_settings(["--quick", "--repeats", "3", "--warmup", "2"])
    times = timing.interleaved(fns, s, stopwatch=_fake_stopwatch(calls))
    warm, timed = calls[:6], [c for c in calls[6:] if c != "timed"]
    assert warm == ["A", "A", "B", "B", "C", "C"], "every warm-up comes before the first timed run"
    assert "timed" not in warm
    assert timed == ["A", "B", "C"] * 3, "rounds A B C A B C A B C"
    assert {n: len(v) for n, v in times.items()} == {"A": 3, "B": 3, "C": 3}
    calls.clear()
    timing.interleaved(fns, s, warmup={"A": 0, "B": 1, "C": 0}, stopwatch=_fake_stopwatch(calls))
    assert calls[:1] == ["B"] and [c for c in calls[1:] if c != "timed"] == ["A", "B", "C"] * 3


def test_a_long_run_leaves_the_rounds_after_two():
    s = bench.parse_settings(["--quick", "--repeats", "5", "--warmup", "0"])
    slow = {"n": 0}

    def stopwatch(fn, s, peak=None):
        return lambda: (fn(), timing.LONG_RUN_S + 1 if fn is fns["slow"] else 0.01)[1]

    fns = {"slow": lambda: slow.__setitem__("n", slow["n"] + 1), "fast": lambda: None}
    times = timing.interleaved(fns, s, stopwatch=stopwatch)
    assert len(times["slow"]) == 2 and slow["n"] == 2 and len(times["fast"]) == 5


def test_stats_report_the_spread():
    st = timing.stats([0.010, 0.012, 0.011, 0.020])
    assert st["min_ms"] == pytest.approx(10) and st["max_ms"] == pytest.approx(20)
    assert st["q1_ms"] <= st["median_ms"] <= st["q3_ms"]
    assert st["iqr_ms"] == pytest.approx(st["q3_ms"] - st["q1_ms"])
    assert st["spread"] == pytest.approx((20 - 10) / st["median_ms"]) and st["order"] == "interleaved"


def test_rows_are_a_config_field():
    c = Config.packed("flex", max_len=256)
    assert c.rows and c.max_len == 256 and c.name == "packed-flex-rows256"
    assert c.single() == Config.packed("flex")
    assert Config.parse("packed-flex-rows256") == c and Config.parse("train-packed-loop-rows64").train
    assert Config.parse("packed-flex").max_len is None and not Config.packed("flex").rows
    for bad in (0, -3, 2.5, True):
        with pytest.raises(ValueError, match="max_len"):
            Config.packed("flex", max_len=bad)
    with pytest.raises(ValueError, match="rows"):
        Config("tiled", method="llava_next", max_len=64)
    s = bench.parse_settings(["--quick", "--rows", "96", "--backends", "loop,dense_mask"])
    configs, _ = workload.configs(s)
    assert [c.name for c in configs] == ["tiled", "packed-loop", "packed-dense_mask", "packed-loop-rows96",
                                         "packed-dense_mask-rows96"]
    assert [c.name for c in workload.configs(bench.parse_settings(["--quick", "--rows", "0"]))[0]
            if c.rows] == []


def _packed_configs(s):
    return [c for c in workload.configs(s)[0] if c.kind == "packed"]


def _runner(s, model):
    r = runner.Runner(s, model, dict(device_name="cpu", dtype="float32"), tqdm(disable=True))
    r.matmul = dict(flops_per_s=1e9)
    return r


@pytest.fixture(scope="module")
def rows_run(dinov2):
    backends = [b for b in attention.available("cpu") if b != "flex"][:4]  # flex: a compile per shape
    s = bench.parse_settings(TINY + ["--rows", "40", "--backends", ",".join(backends)])
    r = _runner(s, dinov2)
    items = bench.make_workload(5)
    configs = _packed_configs(s)
    r.run_set("num_images", {"point": 5}, items, [it.load() for it in items], configs)
    return s, r, items, backends


def test_rows_configs_match_the_reference_and_report_their_padding(rows_run):
    s, r, items, backends = rows_run
    recs = {x["config"]: x for x in r.results}
    checks = {c["config"]: c for c in r.checks}
    assert set(recs) == {f"packed-{b}" for b in backends} | {f"packed-{b}-rows40" for b in backends}
    lengths = recs["packed-loop"]["info"]["sizes"]
    lengths = [1 + (w // 14) * (h // 14) for w, h in lengths]
    for b in backends:
        rec = recs[f"packed-{b}-rows40"]
        assert rec["check_passed"] and checks[rec["config"]]["passed"]
        assert checks[rec["config"]]["reference"] == "packed-loop" or b == "loop"
        rows = rec["info"]["row_lengths"]
        assert sorted(x for row in rows for x in row) == sorted(lengths) and all(sum(x) <= 40 for x in rows)
        assert rec["rows"] == len(rows) and rec["max_len"] == 40 and rec["row_slots"] == 40 * len(rows)
        assert rec["row_padding_slots"] == 40 * len(rows) - sum(lengths) > 0
        assert rec["row_padding_fraction"] == pytest.approx(rec["row_padding_slots"] / rec["row_slots"])
        assert rec["tokens"] == recs[f"packed-{b}"]["tokens"] and rec["padding_tokens"] == 0
        assert rec["min_ms"] <= rec["median_ms"] <= rec["max_ms"] and rec["reps"] == 2
    for rec in recs.values():
        assert rec["order"] == "interleaved"
    if "dense_mask" in backends:  # rows of 40 slots: every row attends 40 x 40, not N x N
        d, dr = recs["packed-dense_mask"], recs["packed-dense_mask-rows40"]
        assert dr["mask_bytes"] == 40 * 40 * dr["rows"] and d["mask_bytes"] == d["tokens"] ** 2
        assert dr["executed_flops"] > dr["flops"]


def test_a_rows_config_that_is_wrong_fails_its_check(dinov2):
    attention.register("bench_rows_wrong", prepare=lambda seg: (lambda q, k, v: v.flip(-2)),
                       description="test backend: wrong across rows")
    try:
        s = bench.parse_settings(TINY + ["--rows", "40", "--backends", "bench_rows_wrong",
                                         "--on-check-failure", "skip"])
        r = _runner(s, dinov2)
        items = bench.make_workload(3)
        configs = _packed_configs(s)
        r.run_set("num_images", {"point": 3}, items, [it.load() for it in items], configs)
        failed = {c["config"] for c in r.checks if not c["passed"]}
        assert failed == {"packed-bench_rows_wrong", "packed-bench_rows_wrong-rows40"}
        assert {x["config"] for x in r.results} == {"packed-loop", "packed-loop-rows40"}
    finally:
        attention.unregister("bench_rows_wrong")


def test_an_image_longer_than_a_row_is_skipped_with_the_reason(dinov2):
    s = bench.parse_settings(TINY + ["--rows", "3", "--backends", "loop"])
    r = _runner(s, dinov2)
    items = bench.make_workload(2)
    r.run_set("main", {}, items, [it.load() for it in items], _packed_configs(s))
    (skip,) = r.skipped
    assert skip["config"] == "packed-loop-rows3" and "max_len=3" in skip["reason"]


def test_pipeline_timing_records_every_registered_method(dinov2):
    s = bench.parse_settings(TINY + ["--rows", "64", "--repeats", "1"])
    r = _runner(s, dinov2)
    items = bench.make_workload(2)
    assert {it.source for it in items} == {"data", "synthetic"}  # a file and encoded bytes are decoded
    recs = pipeline.run_pipelines(r, items)
    auto = attention.resolve("auto", s.device, s.dtype)
    want = [Config.tiled(m).name for m in tiling.METHODS] + [f"packed-{auto}", f"packed-{auto}-rows64"]
    assert [x["config"] for x in recs] == want
    for x in recs:
        assert list(x["stages"]) == list(pipeline.STAGES) and x["reps"] == 1 and x["num_images"] == 2
        total = sum(v["median_ms"] for v in x["stages"].values())
        assert x["min_ms"] <= x["median_ms"] <= x["max_ms"] and 0 < total
        assert all(v["median_ms"] >= 0 for v in x["stages"].values()) and 0 <= x["cpu_share"] <= 1
        if x["kind"] == "tiled":  # the encoder saw every encoder image the method plans
            n = sum(tiling.plan(x["method"], it.size).num_images for it in items)
            px = [workload.tile_px(tiling.plan(x["method"], it.size).tile_size, s.scale) for it in items]
            assert x["tokens"] == n * (1 + (px[0] // 14) ** 2)
    data = dict(meta=dict(device_name="cpu", dtype="float32", threads=1, scale=s.scale), pipeline=recs)
    fig = bench.plot_pipeline(data)
    assert len(fig.axes[0].patches) == len(pipeline.STAGES) * len(recs)
    assert "pipeline" in "\n".join(bench.pipeline_lines(data))


OLD = sorted((ROOT / "results").glob("cpu-2026-11-25*.json"))


@pytest.mark.parametrize("path", OLD, ids=[p.name for p in OLD])
def test_older_results_still_load_and_describe(path):
    import matplotlib.pyplot as plt

    d = bench.load_results(path)
    assert bench.describe(d).startswith("measured on ") and "load not recorded" in bench.describe(d)
    assert "packed-loop" in bench.results_table(d) and "packed-loop" in bench.summary_table(d)
    assert path in [p for p, _ in bench.recorded_results()]
    for plot in (bench.plot_summary, bench.plot_num_images, bench.plot_resolution):
        plt.close(plot(d))
    for r in d["results"]:
        assert Config.parse(r["config"]).max_len is None
