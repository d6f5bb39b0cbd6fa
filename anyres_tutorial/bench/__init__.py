"""Benchmark: tiled batches vs packed sequences (every registered attention backend) on the real DINOv2
ViT-S/14. Taught in `timing`; ``python -m anyres_tutorial.bench --help``, or ``bench.run([...])``.

- ``cli``       the options, the presets (``--preset gpu`` and its ``--dry-run``) and the resolved
  ``Settings``
- ``workload``  the images, one :class:`Config` per configuration, what each feeds the encoder and costs
- ``timing``    the stopwatch (interleaved rounds), the yardstick matmul, the checks before timing
- ``runner``    :class:`Runner` checks then times every configuration on every set; :class:`TrainRunner`
                (``--train``) does the same for training steps; :func:`run`
- ``pipeline``  decode -> plan -> resize -> normalise -> pack -> ViT, stage by stage
- ``results``   the JSON written and read back, labels, tables, goals, and the cost model behind ``"auto"``
- ``plots``     the PNG pictures
"""

from __future__ import annotations

from .cli import PRESETS, Settings, build_parser, parse_settings
from .plots import (
    config_color,
    plot_num_images,
    plot_pipeline,
    plot_planning,
    plot_resolution,
    plot_summary,
    plot_workload,
)
from .results import (
    auto_table,
    describe,
    load_results,
    pipeline_lines,
    recorded_results,
    results_table,
    side_by_side,
    summary_table,
    targets,
)
from .runner import Runner, TrainRunner, run
from .timing import BenchCheckError
from .workload import Config, make_workload, synthetic_sizes, tiled_token_counts

__all__ = [
    "BenchCheckError", "Config", "PRESETS", "Runner", "Settings", "TrainRunner", "auto_table", "build_parser",
    "config_color", "describe", "load_results", "make_workload", "parse_settings", "pipeline_lines",
    "plot_num_images", "plot_pipeline", "plot_planning", "plot_resolution", "plot_summary", "plot_workload",
    "recorded_results", "results_table", "run", "side_by_side", "summary_table",
    "synthetic_sizes", "targets", "tiled_token_counts",
]
