"""How long the benchmark's GPU preset should take, from token counts alone (no model, no timing): the
arithmetic behind ``tools/gpu_run.sh``'s time limit and the device lease.

    python tools/gpu_estimate.py                     # --preset gpu, sized for one H100/H200
    python tools/gpu_estimate.py --device cpu        # a plain CPU run, at the rate an idle 2-core CPU ran

Every timed point runs 1 check + warm-ups + repeats forwards. Counted: the executed FLOPs of every
configuration at every point (``attention.executed_flops``: a dense mask's N² pairs, flex's partly masked
tiles; tiled: the tiles' FLOPs), kernel launches of the backends that loop over images
(``per_image_kernels``), one flex compile per distinct padded shape, host work (loading, resampling) and the
pipeline timing. The rates are assumptions (:data:`ASSUMED`), not measurements: an H200's ~790 TFLOP/s bf16
matmul rate with ~15 % of it reached by a narrow ViT-S, ~10 us per launch, ~40 s for the first compile and
~10 s for each further shape on a bare machine.
"""

from __future__ import annotations

import sys

from anyres_tutorial import tiling
from anyres_tutorial.bench.cli import parse_settings
from anyres_tutorial.bench.pipeline import PIPELINE_ROUNDS, pipelines
from anyres_tutorial.bench.workload import (
    make_workload,
    native_sizes,
    packed_budget,
    tile_px,
    tiled_token_counts,
)
from anyres_tutorial.encoder import attention
from anyres_tutorial.encoder.arch import DEPTH, count_flops
from anyres_tutorial.encoder.attention_kernels import flex_padded_length
from anyres_tutorial.packing import pack
from anyres_tutorial.types import PATCH

#: Assumptions for one H200 (an H100 SXM is of the same order): bf16 matmul rate, the share of it a ViT-S
#: forward reaches, seconds per kernel launch, per image per set of host work, per flex compile.
ASSUMED = dict(matmul_flops_per_s=790e12, vit_share=0.15, launch_s=10e-6, host_s_per_image=0.05,
               first_compile_s=40.0, compile_s=10.0)
#: A CPU run is sized with the rate an idle 2-core CPU ran the encoder at (results/cpu-2026-11-25.json:
#: 113-188 GFLOP/s executed in every configuration, ~150 on average), ~15 s per flex compile, no launch cost.
CPU_ASSUMED = dict(matmul_flops_per_s=150e9, vit_share=1.0, launch_s=0.0, first_compile_s=15.0,
                   compile_s=15.0)


def input_sets(s) -> list[tuple[str, int, list]]:
    """(sweep, point, items) of every input set a run makes, as the runner makes them."""
    main = make_workload(s.num_images, s.seed)
    sets = [("main", s.num_images, main)]
    if s.sweeps:
        sets += [("num_images", n, make_workload(n, s.seed)) for n in s.sweep_images if n != s.num_images]
        res = main[:16] if len(main) >= 16 else make_workload(16, s.seed)
        sets += [("resolution", b, res) for b in s.budgets]
        sets += [("small_images", n, make_workload(n, s.seed)) for n in s.sweep_images]
    return sets


def packed_lengths(s, sweep: str, point: int, items) -> list[int]:
    """Tokens per image (CLS included) of one set's packed sequence."""
    budgets = [{"resolution": point, "small_images": s.small_budget}.get(sweep) or packed_budget(it, s.scale)
               for it in items]
    scale = s.scale if sweep in ("main", "num_images") else 1.0
    sizes = native_sizes(items, budgets, scale, upscale=sweep == "resolution")
    return [1 + (w // PATCH) * (h // PATCH) for w, h in sizes]


def tiled_lengths(s, items, method: str = tiling.DEFAULT_METHOD) -> list[int]:
    """Tokens per encoder image of the tiled batch."""
    out = []
    for it in items:
        pl = tiling.plan(method, it.size)
        c = tiled_token_counts(pl, tile_px(pl.tile_size, s.scale))
        out += [c["tokens"] // c["images"]] * c["images"]
    return out


def row_segments(lengths: list[int], max_len: int) -> list[list[int]]:
    """The images packed into rows of ``max_len`` slots as ``packing.pack_images`` packs them (FFD)."""
    return [[lengths[i] for i in r] for r in pack(list(lengths), max_len)]


def pipeline_work(s) -> tuple[int, int]:
    """(number of pipelines, executed encoder FLOPs of one pass of all of them) on the pipeline images."""
    items = make_workload(s.num_images, s.seed)[: s.pipeline_images]
    flops = 0
    for config in pipelines(s):
        if config.kind == "tiled":
            flops += count_flops(tiled_lengths(s, items, config.method))
            continue
        lengths = packed_lengths(s, "main", s.num_images, items)
        rows = row_segments(lengths, config.max_len) if config.rows else [lengths]
        flops += sum(attention.executed_flops(config.backend, r, config.max_len) for r in rows)
    return len(pipelines(s)), flops


def estimate(argv: list[str] | None = None) -> dict:
    """The estimate for the benchmark arguments ``argv`` (default ``--preset gpu --device cpu --dtype
    bfloat16``: the GPU sizes, computable anywhere)."""
    argv = ["--preset", "gpu", "--device", "cpu", "--dtype", "bfloat16"] if argv is None else argv
    s = parse_settings(argv)
    cpu_run = s.device.type == "cpu" and s.preset is None  # sized for this CPU, not a GPU preset
    runs = 1 + s.warmup + s.repeats  # the check run doubles as the first warm-up
    a = dict(ASSUMED, **CPU_ASSUMED) if cpu_run else ASSUMED
    backends = [b for b in s.backends if not cpu_run or b in attention.available(s.device, s.dtype)]
    flops = launches = host = 0.0
    shapes, points, skipped = set(), 0, 0
    for sweep, point, items in input_sets(s):
        host += a["host_s_per_image"] * len(items) * 2
        lengths = packed_lengths(s, sweep, point, items)
        if sweep in ("main", "num_images"):
            flops += runs * count_flops(tiled_lengths(s, items))
            points += 1
        for b in backends:
            entry = attention.get(b)
            variants = [([lengths], None)]
            if s.rows and sweep == "main":
                variants.append((row_segments(lengths, s.rows), s.rows))
            for rows, row_len in variants:
                n = row_len or sum(lengths)
                padded = [r + ([row_len - sum(r)] if row_len and row_len > sum(r) else []) for r in rows]
                mask = sum(entry.memory(r)["mask_bytes"] for r in padded)
                if mask > (s.max_mask_bytes or 1e30) or entry.attends_all_pairs and n > s.dense_max_tokens:
                    skipped += 1
                    continue
                flops += runs * sum(attention.executed_flops(b, r, row_len) for r in rows)
                launches += runs * len(lengths) * DEPTH * entry.per_image_kernels
                points += 1
                if entry.compiles:  # one compile per distinct padded shape
                    shapes.add((len(rows), flex_padded_length(n)))
    if s.pipeline_images:
        n_pipes, pipe_flops = pipeline_work(s)
        passes = 1 + min(s.repeats, PIPELINE_ROUNDS)
        host += a["host_s_per_image"] * s.pipeline_images * n_pipes * passes
        flops += passes * pipe_flops
    gpu_s = flops / (a["matmul_flops_per_s"] * a["vit_share"])
    compile_s = a["first_compile_s"] + a["compile_s"] * max(0, len(shapes) - 1) if shapes else 0.0
    total = gpu_s + launches * a["launch_s"] + compile_s + host
    return dict(points=points, skipped=skipped, executed_flops=flops, gpu_s=gpu_s, launches=int(launches),
                launch_s=launches * a["launch_s"], flex_buckets=sorted(shapes), compile_s=compile_s,
                host_s=host, total_s=total, assumed=dict(a))


if __name__ == "__main__":
    e = estimate(sys.argv[1:] or None)
    print(f"{e['points']} timed points ({e['skipped']} skipped), {e['executed_flops'] / 1e12:.1f} TFLOP "
          f"executed = {e['gpu_s']:.0f} s, {e['launches']:,} launches = {e['launch_s']:.0f} s, "
          f"{len(e['flex_buckets'])} compiled shapes = {e['compile_s']:.0f} s, host {e['host_s']:.0f} s: "
          f"about {e['total_s'] / 60:.1f} minutes")
