"""Named presets of the benchmark: one set of options sized for one machine. Taught in `timing`.

``--preset gpu`` is THE GPU comparison, one command for one H100 or H200 (bf16, full resolution)::

    python -m anyres_tutorial.bench --preset gpu --out results/    # or: python3 dev.py bench --preset gpu
    python -m anyres_tutorial.bench --preset gpu --device cpu --dry-run   # the same code paths, tiny

It runs, in one process and in this order: the bf16 yardstick matmul (8192 x 8192 x 8192, timed at the start
and at the end); the main set (16 mixed images) for ``tiled`` and every registered attention backend
available on the device (``loop``, ``dense_mask``, ``flex``, ``varlen`` and any added to the registry, each
checked against ``loop`` before it is timed); the num_images sweep 1, 4, 16, 64 (every configuration); the
resolution sweep (16 images at 256, 1024, 2048, 4096 tokens each: N = 4112 -> 65552 tokens, one point at
32784), where a backend whose mask alone exceeds ``--max-mask-gib 2`` is skipped with the reason (the dense
(N, N) bool mask is 4.0 GiB at N = 65552; at 32784 it is 1.0 GiB and runs); the small-images sweep (1, 4, 16,
64 images of at most 256 tokens); planning throughput. CUDA events after the check run and 3 warm-ups, 10
timed runs, ``torch.cuda.max_memory_allocated`` per configuration. ``--time-budget-s 300`` stops starting
sweep points after 5 minutes (the rest lands in ``skipped``) and ``--on-check-failure skip`` records a
configuration that fails its check (in ``checks`` and ``errors``, not timed) instead of ending the run, so the
JSON of a one-shot GPU run is always written. The training
steps of the main set (``--train``, :data:`TRAIN_OPTION`, module ``train``; :func:`expand` adds it when the
parser has it) run right after the main set; :func:`estimate` does not count them yet.

Why it should fit in 6 minutes (an estimate from counts, not a measurement; :func:`estimate` recomputes it):

- work: every timed point runs 1 check + 3 warm-ups + 10 timed forwards. :func:`estimate` counts the executed
  FLOPs of every configuration at every point (``attention.executed_flops``; tiled: ``vit.count_flops`` of
  the tiles) over the ~60 timed points (with the five backends registered today): about 1.8 PFLOP in all,
  most of it the 64-image points and the dense mask's N^2 pairs at 32k tokens; with the rows of 4096 slots
  (main set) and the pipeline timing (16 images, every tiling method) ~2.4 PFLOP. At
  the H200's ~790 TFLOP/s bf16 matmul rate (an H100 SXM is of the same order) and an assumed 15 % of it for
  a narrow ViT-S, that is ~15-20 s of GPU time;
- launches: ``loop`` runs each image alone, 12 blocks x ~15 kernels per image, ``sdpa_segments`` ~4 per image
  per block (:data:`PER_IMAGE_KERNELS`); ~0.75 M launches at ~10 us: ~8 s;
- compiles: ``flex`` compiles once per padded-length bucket (``attention.flex_padded_length``); the preset's
  packed sequences fall into 11 buckets (14 compile shapes with the rows). Assumed ~40 s for the first
  compile (Inductor + Triton, cold cache on a bare machine) and ~10 s per further shape: ~2.8 minutes, the
  largest and least certain item;
- host work: loading and resampling the images (PIL, up to 2 MP each), ~0.05 s per image per set: ~25 s,
  and planning throughput (2000 sizes per tiling method): seconds.

- pipeline: 16 images x 8 pipelines x (1 + 3) passes of host work (decode, resize), ~25 s.

Total ~4 minutes (``estimate()["total_s"]`` ~ 250), under the 6-minute goal even if the compiles take twice
as long; ``tools/gpu_run.sh`` wraps it in ``timeout`` and the device call leaves room to run it twice inside
15 minutes.

``--dry-run``: the same options but tiny (tiles of 28 px, 4 images, sweeps of 1-2 images, budgets of 4 and 12
tokens so that every packed sequence fits one flex bucket of 256, a 128 x 128 matmul, a mask limit of 16 KiB
so that the memory skip happens, 1 warm-up and 1 timed run, 1 CPU thread: 2 threads of a shared 2-core machine
ran its tiny matmuls 8x slower) on the device given (``--device cpu`` in the tests, ~40 s); ``varlen`` is then
recorded as unavailable with the registry's reason.
"""

from __future__ import annotations

import argparse

#: The benchmark option of the training step; the gpu preset adds it as soon as the parser knows it.
TRAIN_OPTION = "--train"

GPU = ["--device", "cuda", "--dtype", "bfloat16", "--scale", "1", "--num-images", "16", "--repeats", "10",
       "--warmup", "3", "--sweep-images", "1,4,16,64", "--budgets", "256,1024,2048,4096",
       "--small-budget", "256", "--dense-max-tokens", "70000", "--max-mask-gib", "2", "--matmul-n", "8192",
       "--plan-sizes", "2000", "--time-budget-s", "300", "--on-check-failure", "skip", "--rows", "4096",
       "--pipeline-images", "16"]
GPU_DRY_RUN = ["--device", "auto", "--dtype", "auto", "--scale", "0.0834", "--num-images", "4", "--repeats",
               "1", "--warmup", "1", "--sweep-images", "1,2", "--budgets", "4,12", "--small-budget", "4",
               "--dense-max-tokens", "70000", "--max-mask-gib", "0.000015", "--matmul-n", "128",
               "--plan-sizes", "20", "--time-budget-s", "600", "--threads", "1", "--on-check-failure", "skip",
               "--rows", "256", "--pipeline-images", "2"]

#: preset name -> (options, options of its dry run)
PRESETS = {"gpu": (GPU, GPU_DRY_RUN)}

#: Assumptions of :func:`estimate` (not measurements): bf16 dense matmul rate of one H200, the share of it a
#: ViT-S forward reaches, seconds per kernel launch, per image per set of host work, per flex compile.
ASSUMED = dict(matmul_flops_per_s=790e12, vit_share=0.15, launch_s=10e-6, host_s_per_image=0.05,
               first_compile_s=40.0, compile_s=10.0)
#: Kernel launches per image per block of the backends that do per-image work (``loop``: the whole block;
#: ``sdpa_segments``: slices and one SDPA per image); the others launch per sequence, not per image. (This
#: knowledge belongs on the attention registry's entries; ``attention.py`` is not the benchmark's to change.)
PER_IMAGE_KERNELS = {"loop": 15, "sdpa_segments": 4}


def expand(argv: list[str], parser: argparse.ArgumentParser | None = None) -> list[str]:
    """``argv`` with the options of its ``--preset`` (and ``--dry-run``) put in front, so that options given
    on the command line still win; unchanged without a preset. The preset adds :data:`TRAIN_OPTION` when
    ``parser`` has it (the training step of the benchmark)."""
    pre = argparse.ArgumentParser(add_help=False)
    pre.add_argument("--preset", choices=sorted(PRESETS), default=None)
    pre.add_argument("--dry-run", action="store_true")
    known, _ = pre.parse_known_args(argv)
    if known.preset is None:
        return list(argv)
    full, dry = PRESETS[known.preset]
    extra = list(dry if known.dry_run else full)
    if parser is not None and TRAIN_OPTION in parser._option_string_actions:
        extra.append(TRAIN_OPTION)
    return extra + list(argv)


def _sets(s) -> list[tuple[str, int, list]]:
    """(sweep, point, items) of every input set the run makes, as ``runner`` makes them."""
    from .workload import make_workload

    main = make_workload(s.num_images, s.seed)
    sets = [("main", s.num_images, main)]
    if s.sweeps:
        sets += [("num_images", n, make_workload(n, s.seed)) for n in s.sweep_images if n != s.num_images]
        res = main[:16] if len(main) >= 16 else make_workload(16, s.seed)
        sets += [("resolution", b, res) for b in s.budgets]
        sets += [("small_images", n, make_workload(n, s.seed)) for n in s.sweep_images]
    return sets


def _packed_lengths(s, sweep: str, point: int, items) -> list[int]:
    from ..packing import native_size
    from ..types import PATCH
    from .workload import packed_budget

    scale = s.scale if sweep in ("main", "num_images") else 1.0
    out = []
    for it in items:
        b = {"resolution": point, "small_images": s.small_budget}.get(sweep) or packed_budget(it, s.scale)
        w0, h0 = max(1, round(it.size[0] * scale)), max(1, round(it.size[1] * scale))
        w, h = native_size((w0, h0), "navit", patch_size=PATCH, max_tokens=int(b),
                           allow_upscale=sweep == "resolution")
        out.append(1 + (w // PATCH) * (h // PATCH))
    return out


def _tiled_lengths(s, items) -> list[int]:
    from .. import tiling
    from .workload import tile_px, tiled_token_counts

    out = []
    for it in items:
        pl = tiling.plan(tiling.DEFAULT_METHOD, it.size)
        px = tile_px(pl.tile_size, s.scale)
        c = tiled_token_counts(pl, px)
        out += [c["tokens"] // c["images"]] * c["images"]
    return out


def _row_segments(lengths: list[int], max_len: int) -> list[list[int]]:
    """The images of ``lengths`` packed into rows of ``max_len`` slots as ``packing.pack_images`` packs them
    (first-fit decreasing), each row's padding as one more segment (it runs through the linear layers)."""
    from ..packing import pack

    rows = [[lengths[i] for i in r] for r in pack(list(lengths), max_len)]
    return [r + ([max_len - sum(r)] if sum(r) < max_len else []) for r in rows]
