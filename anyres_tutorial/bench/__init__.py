"""Benchmark: tiled batches vs packed sequences (every registered attention backend) on the real DINOv2
ViT-S/14. Taught in `timing`. Run it from a shell:

    python -m anyres_tutorial.bench --quick                 # about 2 minutes on a 2-core CPU (the tests)
    python -m anyres_tutorial.bench --out results/          # the full run at full resolution (~13-15 min on
                                                            # an idle 2-core CPU): JSON + PNG plots
    python -m anyres_tutorial.bench --preset gpu --out results/  # one H100/H200, <= 6 minutes (``preset``)
    python -m anyres_tutorial.bench --help

or from Python: ``data = anyres_tutorial.bench.run(["--quick", "--out", "results/tmp/q.json"])``.

What is compared (the same images, the same real weights, one forward pass of the encoder each); each
configuration is a :class:`Config`, recorded under its ``name``:

- ``tiled``: every image gets a plan of the reference tiling (``tiling.plan(tiling.DEFAULT_METHOD, (W, H))``,
  LLaVA-NeXT: 2-4 local 336 tiles + a squashed 336 thumbnail) and ``tiling.apply``; all tiles of all images
  form ONE batch (B, 3, 336, 336) of equal tiles (336 = 24 patches of 14) -> ``model.forward_tiles``.
  ``--tiling-methods internvl,ureader`` adds ``tiled-<method>`` configurations (tiles resized to a multiple
  of 14 when needed, e.g. 384 -> 378).
- ``packed-<backend>``: every image is resized to its native size under a comparable budget
  (``packing.native_size((W, H), "navit", max_tokens=B)`` with B = the number of patch tokens of that image's
  reference-tiling *local tiles*, i.e. the same pixel budget as the tiled canvas, without padding and
  thumbnail; small images stay at their native size) and all images run as ONE packed sequence ->
  ``model.forward_packed(images, attention=backend)``, for every backend of ``attention.BACKENDS`` (or
  ``--backends``): ``loop`` (one image at a time, the reference), ``dense_mask`` (SDPA + a boolean N x N
  block-diagonal mask), ``flex`` (FlexAttention with a block-sparse BlockMask), ``varlen`` (``varlen_attn``
  with cu_seqlens; CUDA only) and any backend registered with ``attention.register``. Backends that the
  machine lacks are listed in the JSON's ``unavailable`` with the registry's own reason.
- ``packed-<backend>-rows<L>`` (``--rows L``, main set): the same images packed first-fit decreasing into rows
  of ``L`` slots as training packs them (``packing.pack_images(images, 14, L, cls_token=True)`` ->
  ``PackedBatch`` -> ``model.forward_packed``), checked against the same ``loop`` outputs; the record adds
  ``rows``, ``max_len``, ``row_slots``, ``row_padding_slots`` and ``row_padding_fraction``
  (``Config.max_len``; module ``workload.prepare_rows``).

Workload (``workload``): the curated images of ``data/`` interleaved with seeded synthetic sizes (aspect W/H
log-uniform in [1/3, 3], one in eight at 1/8 or 8; area log-uniform in [0.03, 2.0] megapixels). The first
``--num-images`` (default 16) form the main set.

Scale: ``--scale s`` shrinks the *encoder resolution* of both paths by s (tiles are resampled from 336 to
round(336 s / 14) * 14 px, the packed budgets shrink by the same factor s^2, the images are scaled by s before
``native_size``). The plans themselves are made at full resolution, so every image keeps its grid. Defaults:
s = 1 (336 px tiles) on every device, 1/4 with ``--quick`` (84 px). The JSON records s.

Sizing of the default CPU run (``estimate(["--device", "cpu"])``, from counted FLOPs at the ~150 GFLOP/s an
idle 2-core CPU executed in ``results/cpu-2026-11-25.json``): the main set at s = 1 is ~18.9k packed tokens,
so ``dense_mask`` on one sequence (49 s per forward) is skipped above ``--dense-max-tokens 8500`` and runs in
rows of 4096 slots instead; repeats 3 after the check run (no extra warm-up); num_images 1, 4, 16; resolution
64-1024 tokens per image (N up to 16k); 2 pipeline images. ~92 TFLOP executed + ~11 flex compiles: ~13
minutes.

Pipeline (``--pipeline-images N``, module ``pipeline``): decode (the data/ file or PNG bytes) -> plan ->
resize/pad/crop -> normalise (+ copy to the device) -> pack -> ViT, timed stage by stage for every registered
tiling method and for packing with the device's ``auto`` backend (one sequence and rows), in interleaved
rounds; the JSON's ``pipeline`` list, the table under the summary and ``plot_pipeline``.

Sweeps (``--no-sweeps`` to skip): ``num_images`` (1 -> 64 mixed images, every configuration), ``resolution``
(16 images, every image resized to exactly B tokens for B in ``--budgets``, packed backends only: the dense
mask's N^2 growth against block-sparse flex/varlen) and ``small_images`` (N images of at most
``--small-budget`` tokens each, packed backends). A backend that attends all pairs (``attends_all_pairs``,
dense_mask) is skipped above ``--dense-max-tokens`` (recorded in ``skipped`` with the reason). Planning
throughput (plans/s) is timed for every tiling method.

Checks before timing (``runner``, ``verify``): every configuration's output is compared with a reference on
the same inputs; a failed check aborts the run. Timing (``timing``): the check run doubles as the first warm-
up (it triggers torch.compile for flex), then ``--warmup`` more runs of each configuration, all before the
first timed run; then ``--repeats`` INTERLEAVED rounds over the configurations of the set (A B C A B C ...:
``timing.interleaved``), so that machine noise hits them alike: CUDA events on GPU (bf16, peak memory from
``torch.cuda.max_memory_allocated``, reset before each run); ``time.perf_counter`` around exactly one run on
CPU (fp32, with ``--threads`` threads, the mask bytes from the backend's ``memory`` and the activation bytes
from formulas, module ``cost``). Runs longer than 10 s are timed twice only, without extra warm-up. Each
record holds the median, IQR (q1, q3), min, max and ``spread`` ((max - min) / median), images/s, tokens/s, the
model's FLOPs, the FLOPs the kernel executes (``attention.executed_flops``), the achieved FLOP/s and its
fraction of a large square matmul (same dtype, same device) timed at the start and at the end of the same run,
the faster of the two (``efficiency``).

Training steps (``--train``, module ``train``): ``train-tiled`` and ``train-packed-<backend>`` time one
forward + per-image loss + backward + SGD step (lr = 0) on the main set, for every backend that can run
backward on the device, each with its parameter gradients checked against ``loop`` before it is timed.

Presets (``preset``): ``--preset gpu`` is the GPU comparison sized for one H100/H200 in 6 minutes, with a
CPU ``--dry-run`` of the same code paths; ``--weights`` (or ``ANYRES_WEIGHTS``) loads an exported weights
file, and the JSON's ``targets`` (``summary``) read the goals off the numbers.

Modules: ``config`` (:class:`Config`), ``cli`` (arguments, :class:`Settings`, ``main``), ``preset``,
``estimate``, ``workload`` (images, sizes, inputs), ``timing``, ``verify`` (the checks), ``cost`` (FLOPs and
bytes), ``runner`` (the run loop), ``pipeline``, ``train`` (the training steps), ``report`` (JSON, tables,
``side_by_side``), ``summary`` (goals, the compact table) and ``plots``.
"""

from __future__ import annotations

from ..encoder import attention
from .cli import Settings, build_parser, parse_settings
from .config import Config
from .entry import main
from .estimate import estimate
from .plots import (
    config_color,
    plot_num_images,
    plot_pipeline,
    plot_planning,
    plot_resolution,
    plot_summary,
    plot_workload,
)
from .preset import PRESETS
from .report import describe, load_results, recorded_results, result_plots, results_table, side_by_side
from .runner import BenchCheckError, dense_executed_flops, run
from .summary import summary_table, targets
from .workload import make_workload, synthetic_sizes, tiled_token_counts

#: The attention backends the benchmark can run: the registry's live view (``attention.BACKENDS``).
BACKENDS = attention.BACKENDS

__all__ = [
    "BACKENDS", "build_parser", "run", "main", "make_workload", "synthetic_sizes", "tiled_token_counts",
    "dense_executed_flops", "results_table", "load_results", "recorded_results", "plot_summary",
    "plot_num_images", "plot_resolution", "plot_planning", "plot_workload", "BenchCheckError",
    "Config", "Settings", "parse_settings", "config_color", "PRESETS", "estimate", "summary_table", "targets",
    "describe", "result_plots", "plot_pipeline", "side_by_side",
]
