"""The arithmetic behind the ``gpu`` preset's time budget (``bench.estimate``): from token counts alone, no
model and no timing. Taught in `timing`."""

from __future__ import annotations

from .cli import parse_settings
from .pipeline import PIPELINE_ROUNDS, pipeline_work
from .preset import ASSUMED, PER_IMAGE_KERNELS, _packed_lengths, _row_segments, _sets, _tiled_lengths

#: A CPU run (``--device cpu`` without a preset) is sized with the rate an idle 2-core CPU ran the encoder at:
#: ``results/cpu-2026-11-25.json`` executed 113-188 GFLOP/s (``executed_flops`` / median time) in every
#: configuration and sweep point, ~150 on average; a compile of flex ~15 s; no kernel-launch cost.
CPU_ASSUMED = dict(matmul_flops_per_s=150e9, vit_share=1.0, launch_s=0.0, first_compile_s=15.0,
                   compile_s=15.0)


def estimate(argv: list[str] | None = None) -> dict:
    """The arithmetic behind the preset's time budget, from token counts alone (no model, no timing):
    executed FLOPs of every timed forward (the single sequence and, in the main set, the rows of ``--rows``
    slots), kernel launches of ``loop``, flex compile buckets, the pipeline timing's
    host work and encoder FLOPs, and seconds under :data:`ASSUMED` (a flex compile per distinct (rows, padded
    length) shape). ``argv`` as for the benchmark (default: ``--preset gpu --device cpu`` with the GPU sizes,
    so that it runs anywhere)."""
    from ..encoder import attention
    from ..encoder.arch import DEPTH, count_flops

    argv = ["--preset", "gpu", "--device", "cpu", "--dtype", "bfloat16"] if argv is None else argv
    s = parse_settings(argv)
    cpu_run = s.device.type == "cpu" and s.preset is None  # sized for this CPU, not a GPU preset
    runs = 1 + s.warmup + s.repeats  # the check run doubles as the first warm-up
    a = dict(ASSUMED, **CPU_ASSUMED) if cpu_run else ASSUMED
    backends = [b for b in s.backends if not cpu_run or b in attention.available(s.device, s.dtype)]
    flops = launches = host = 0.0
    buckets, points, skipped = set(), 0, 0
    for sweep, point, items in _sets(s):
        host += a["host_s_per_image"] * len(items) * 2
        lengths = _packed_lengths(s, sweep, point, items)
        if sweep in ("main", "num_images"):
            flops += runs * count_flops(_tiled_lengths(s, items))
            points += 1
        for b in backends:
            entry = attention.get(b)
            if (entry.prepare is not None and entry.memory(lengths)["mask_bytes"] > (s.max_mask_bytes or 1e30)
                    or entry.attends_all_pairs and sum(lengths) > s.dense_max_tokens):
                skipped += 1
                continue
            flops += runs * attention.executed_flops(b, lengths)
            points += 1
            launches += runs * len(lengths) * DEPTH * PER_IMAGE_KERNELS.get(b, 0)
            if b == "flex":
                buckets.add((1, attention.flex_padded_length(sum(lengths))))
            if s.rows and sweep == "main" and not (entry.attends_all_pairs
                                                                   and s.rows > s.dense_max_tokens):
                rows = _row_segments(lengths, s.rows)
                flops += runs * sum(attention.executed_flops(b, seg) for seg in rows)
                points += 1
                launches += runs * len(lengths) * DEPTH * PER_IMAGE_KERNELS.get(b, 0)
                if b == "flex":
                    buckets.add((len(rows), attention.flex_padded_length(s.rows)))
    if s.pipeline_images:  # every tiling method and packing (one sequence, rows): host work + the encoder
        n_pipes, pipe_flops = pipeline_work(s)
        passes = 1 + min(s.repeats, PIPELINE_ROUNDS)
        host += a["host_s_per_image"] * s.pipeline_images * n_pipes * passes
        flops += passes * pipe_flops
    gpu_s = flops / (a["matmul_flops_per_s"] * a["vit_share"])  # on a CPU: its whole forward rate
    compile_s = a["first_compile_s"] + a["compile_s"] * max(0, len(buckets) - 1) if buckets else 0.0
    total = gpu_s + launches * a["launch_s"] + compile_s + host
    return dict(points=points, skipped=skipped, executed_flops=flops, gpu_s=gpu_s, launches=int(launches),
                launch_s=launches * a["launch_s"], flex_buckets=sorted(buckets), compile_s=compile_s,
                host_s=host, total_s=total, assumed=dict(a))
