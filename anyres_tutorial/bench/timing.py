"""The stopwatch and the checks of the benchmark: interleaved timed runs and their statistics, the same-run
matmul yardstick, planning throughput, the machine's description, and every configuration's output compared
with its reference before it is timed. Taught in `timing`.

CUDA events on GPU; ``time.perf_counter`` around exactly one run on CPU (:func:`clock`). :func:`interleaved`
times the configurations of one input set in rounds (A B C A B C ...), after every warm-up, so a busy moment
of a shared machine hits them alike; a run longer than :data:`LONG_RUN_S` is timed twice only.
"""

from __future__ import annotations

import dataclasses
import datetime as _dt
import math
import os
import platform
import socket
import subprocess
import sys
import time
from pathlib import Path

import numpy as np
import torch

from .. import tiling, training
from .cli import Settings
from .workload import synthetic_sizes

TOLERANCE = {"float32": (1e-4, 1e-4), "bfloat16": (5e-2, 2e-2)}  # (atol, rtol * max|ref|)

LONG_RUN_S = 10.0


def sync(dev: torch.device) -> None:
    """Wait for the device's queued work (CUDA); nothing on CPU."""
    if dev.type == "cuda":
        torch.cuda.synchronize(dev)


def clock(fn, s: Settings, peak: dict | None = None):
    """A stopwatch for ``fn``: a callable giving the seconds of exactly one run (CUDA events on GPU;
    ``time.perf_counter`` around the call on CPU, with the run's thread count; no hidden warm-up runs, unlike
    ``torch.utils.benchmark.Timer.timeit``, which runs the statement twice more before each measurement). On
    CUDA ``peak["bytes"]`` keeps the largest
    ``torch.cuda.max_memory_allocated`` of its runs (reset before each)."""
    if s.device.type == "cuda":
        peak = {} if peak is None else peak

        def once() -> float:
            torch.cuda.reset_peak_memory_stats(s.device)
            a, b = torch.cuda.Event(enable_timing=True), torch.cuda.Event(enable_timing=True)
            a.record()
            fn()
            b.record()
            torch.cuda.synchronize(s.device)
            peak["bytes"] = max(peak.get("bytes", 0), int(torch.cuda.max_memory_allocated(s.device)))
            return a.elapsed_time(b) / 1e3

        return once

    def once() -> float:
        if torch.get_num_threads() != s.threads:
            torch.set_num_threads(s.threads)
        t0 = time.perf_counter()
        fn()
        return time.perf_counter() - t0

    return once


def interleaved(fns: dict, s: Settings, warmup: dict | None = None, stopwatch=clock,
                peaks: dict | None = None) -> dict[str, list[float]]:
    """Time every ``fns[name]`` (a callable) in interleaved rounds -> ``{name: seconds per run}``.

    First ``warmup[name]`` untimed runs of each (default ``s.warmup``), all before the first timed run; then
    ``s.repeats`` rounds, each running every function once in the order of ``fns`` (A B C A B C ...). A
    function whose timed run took longer than :data:`LONG_RUN_S` leaves the rounds after its second run.
    ``stopwatch(fn, s, peak)`` makes the per-run timer (:func:`clock`; tests pass a fake one); ``peaks[name]``
    receives each function's peak memory record (CUDA)."""
    warmup = {} if warmup is None else warmup
    for name, fn in fns.items():
        for _ in range(warmup.get(name, s.warmup)):
            fn()
    sync(s.device)
    peaks = {} if peaks is None else peaks
    clocks = {name: stopwatch(fn, s, peaks.setdefault(name, {})) for name, fn in fns.items()}
    times: dict[str, list[float]] = {name: [] for name in fns}
    for _ in range(s.repeats):
        live = [n for n in fns if not (len(times[n]) >= 2 and times[n][-1] > LONG_RUN_S)]
        if not live:
            break
        for name in live:
            times[name].append(clocks[name]())
    return times


def stats(times: list[float], order: str = "interleaved") -> dict:
    """Median, IQR (q1, q3), min and max in milliseconds, the number of runs, every time and how the runs
    were ordered (``interleaved`` with the set's other configurations, or ``consecutive``)."""
    t = np.asarray(times) * 1e3
    q1, med, q3 = np.percentile(t, [25, 50, 75])
    return dict(median_ms=float(med), iqr_ms=float(q3 - q1), q1_ms=float(q1), q3_ms=float(q3),
                min_ms=float(t.min()), max_ms=float(t.max()), spread=float((t.max() - t.min()) / med),
                reps=len(times), times_ms=[round(float(v), 4) for v in t], order=order)


def dtype_name(dtype: torch.dtype) -> str:
    return str(dtype).replace("torch.", "")


def matmul(s: Settings) -> dict:
    """FLOP/s of a large square matmul (``--matmul-n``: 8192 on CUDA, 2048 on CPU) in the run's dtype on the
    run's device (same timing method)."""
    n = s.matmul_n
    a = torch.randn(n, n, device=s.device, dtype=s.dtype)
    b = torch.randn(n, n, device=s.device, dtype=s.dtype)
    times = interleaved({"matmul": lambda: torch.mm(a, b)}, dataclasses.replace(s, repeats=max(5, s.repeats)),
                        warmup={"matmul": 2})["matmul"]
    st = stats(times, "consecutive")
    flops = 2 * n ** 3
    return dict(n=n, dtype=dtype_name(s.dtype), flops=flops, **st,
                flops_per_s=flops / (st["median_ms"] / 1e3))


def _seconds(fn) -> float:
    t0 = time.perf_counter()
    fn()
    return time.perf_counter() - t0


def planning(s: Settings, bar) -> list[dict]:
    """Plans per second for every tiling method over ``s.plan_sizes`` distinct seeded sizes (pure Python
    geometry: one thread)."""
    sizes = list(dict.fromkeys(synthetic_sizes(s.plan_sizes * 2, seed=s.seed + 7)))[: s.plan_sizes]
    out = []
    for method in tiling.METHODS:
        bar.set_postfix_str(f"planning {method}")
        ok = []
        for sz in sizes:
            try:
                tiling.plan(method, sz)
                ok.append(sz)
            except ValueError:
                pass
        fn = lambda m=method, z=ok: [tiling.plan(m, x) for x in z]
        fn()  # warm-up
        st = stats([_seconds(fn) for _ in range(3 if s.quick else 5)], "consecutive")
        out.append(dict(method=method, sizes=len(ok), refused=len(sizes) - len(ok), **st,
                        plans_per_s=len(ok) / (st["median_ms"] / 1e3), threads=1))
        bar.update(1)
    return out


def load_average() -> list[float] | None:
    """The machine's 1, 5 and 15 minute load averages (``os.getloadavg``; None where there is none): how
    many processes wanted a CPU, to set against ``cpu_count``."""
    try:
        return [round(v, 2) for v in os.getloadavg()]
    except (AttributeError, OSError):
        return None


def _cpu_name() -> str:
    cpu = platform.processor() or platform.machine()
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                return line.split(":", 1)[1].strip()
    except OSError:
        pass
    return cpu


def _gpu_meta(dev: torch.device) -> dict:
    props = torch.cuda.get_device_properties(dev)
    m = dict(device_name=props.name, gpu=props.name, gpu_memory_bytes=props.total_memory,
             cuda_version=torch.version.cuda, driver=None)
    try:
        r = subprocess.run(["nvidia-smi", "--query-gpu=driver_version", "--format=csv,noheader"],
                           capture_output=True, text=True, timeout=20)
        m["driver"] = r.stdout.strip().splitlines()[0] if r.returncode == 0 and r.stdout.strip() else None
    except (OSError, subprocess.SubprocessError):
        pass
    return m


def machine_meta(s: Settings) -> dict:
    """The JSON's ``meta``: date, host, CPU (GPU, driver, CUDA), torch, dtype, threads and the settings."""
    cpu = _cpu_name()
    m = dict(date=_dt.datetime.now(_dt.timezone.utc).isoformat(timespec="seconds"),
             host=socket.gethostname(), cpu=cpu, cpu_count=os.cpu_count(), platform=platform.platform(),
             python=platform.python_version(),
             torch_version=torch.__version__, device=s.device.type, dtype=dtype_name(s.dtype),
             threads=s.threads, quick=s.quick, scale=s.scale, repeats=s.repeats, warmup=s.warmup, seed=s.seed,
             num_images=s.num_images, dense_max_tokens=s.dense_max_tokens, max_mask_bytes=s.max_mask_bytes,
             time_budget_s=s.time_budget_s, preset=s.preset, dry_run=s.dry_run, rows=s.rows,
             pipeline_images=s.pipeline_images, order="interleaved", load_start=load_average(),
             command=" ".join(sys.argv))
    m.update(_gpu_meta(s.device) if s.device.type == "cuda"
             else dict(device_name=cpu, gpu=None, gpu_memory_bytes=None, cuda_version=None, driver=None))
    return m


def weights_meta(model) -> dict:
    """Where the model's weights came from: the file (or hub repo), its dtype and payload hash when it is a
    verified safetensors file (the offline cache or an exported file)."""
    origin = getattr(model, "weights_origin", None)
    m = dict(origin=origin, dtype=None, payload_sha256=None)
    if origin and Path(origin).is_file():
        try:
            from safetensors import safe_open

            with safe_open(origin, framework="pt") as f:
                meta = f.metadata() or {}
            m.update(dtype=meta.get("dtype", "float32"), payload_sha256=meta.get("payload_sha256"))
        except Exception:  # not a safetensors file: the origin alone
            pass
    return m


# ----------------------------------------------------------------------------------------------------------
# checks before timing


class BenchCheckError(RuntimeError):
    """A configuration's output differs from its reference beyond the tolerance (raised before timing);
    ``record`` is the failed check's record when there is one."""

    def __init__(self, message: str, record: dict | None = None):
        super().__init__(message)
        self.record = record


def check(name: str, outs, refs, ref_name: str, s: Settings, where: str) -> dict:
    """Compare the outputs of configuration ``name`` with its reference's within the dtype's tolerance
    (fp32: 1e-4 + 1e-4 max|ref|; bf16: 5e-2 + 2e-2 max|ref|); the check record, or
    :class:`BenchCheckError`."""
    if len(outs) != len(refs):
        raise BenchCheckError(f"{name}: {len(outs)} outputs for {len(refs)} reference outputs")
    atol, rtol = TOLERANCE.get(dtype_name(s.dtype), TOLERANCE["float32"])
    diff = mag = 0.0
    for o, r in zip(outs, refs):
        if tuple(o.shape) != tuple(r.shape):
            raise BenchCheckError(f"{name}: output shape {tuple(o.shape)} differs from reference "
                                  f"{tuple(r.shape)}")
        d = (o.float() - r.float()).abs().max().item()  # a NaN or inf output makes d NaN or inf
        if not math.isfinite(d):
            diff = float("nan")
            break
        diff, mag = max(diff, d), max(mag, r.float().abs().max().item())
    tol = atol + rtol * mag
    ok = math.isfinite(diff) and diff <= tol
    rec = dict(config=name, sweep=where, reference=ref_name, max_abs_diff=diff, max_abs_ref=mag,
               tolerance=tol, passed=bool(ok))
    if not ok:
        raise BenchCheckError(
            f"correctness check failed before timing: {name} ({where}) differs from {ref_name} by max abs "
            f"{diff:.3g} > tolerance {tol:.3g} ({s.dtype}); nothing was timed. Fix the backend first.", rec)
    return rec


GRAD_TOLERANCE = {dtype: atol for dtype, (atol, _) in TOLERANCE.items()}  # max relative gradient difference


def grad_check(name: str, grads: dict, ref: dict, ref_name: str, s: Settings) -> dict:
    """A step's parameter gradients against the reference step's: the largest relative difference per tensor
    within :data:`GRAD_TOLERANCE`; the check record, or :class:`BenchCheckError`."""
    tol = GRAD_TOLERANCE.get(dtype_name(s.dtype), GRAD_TOLERANCE["float32"])
    rel = training.relative_differences(grads, ref)
    worst = max(rel, key=lambda n: math.inf if math.isnan(rel[n]) else rel[n])
    abs_diff = float(torch.stack([(g - ref[n]).abs().max() for n, g in grads.items()]).max())
    ok = math.isfinite(rel[worst]) and rel[worst] <= tol
    rec = dict(config=name, sweep="train", reference=ref_name, check="gradients",
               max_rel_grad_diff=rel[worst], worst_parameter=worst, max_abs_diff=abs_diff, max_abs_ref=None,
               tolerance=tol, parameters=len(rel), passed=bool(ok))
    if not ok:
        raise BenchCheckError(
            f"gradient check failed before timing: {name} differs from {ref_name} by a relative gradient "
            f"difference of {rel[worst]:.3g} ({worst}) > tolerance {tol:.3g} ({s.dtype}); nothing was timed.",
            rec)
    return rec
