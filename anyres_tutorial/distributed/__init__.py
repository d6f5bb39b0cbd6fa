"""Data-parallel training on packed sequences with ``torch.distributed``. Taught in `data_parallel_training`.

- :mod:`.step`     the module DDP wraps, the three loss reductions (``REDUCTIONS``), one DDP step
- :mod:`.check`    the gradient check: DDP on uneven ranks vs per-image training on the union
- :mod:`.balance`  assigning images to ranks (naive vs longest-processing-time on FLOPs), per-rank step
                   times, ``bench_point`` for the benchmark
- :mod:`.launch`   ``run(fn_name, nprocs)``: spawned workers from Python; ``python -m
                   anyres_tutorial.distributed`` runs the same workers under ``torchrun``
"""

from __future__ import annotations

from .balance import ASSIGNMENTS, assign, bench_point, straggler_ratio
from .launch import BACKENDS, WORKERS, Context, WorkerError, check_backend, free_port, run
from .step import REDUCTIONS, MicroBatch, PackedClassifier, ddp_step, effective_weights, loss_scale

__all__ = ["ASSIGNMENTS", "BACKENDS", "Context", "MicroBatch", "PackedClassifier", "REDUCTIONS", "WORKERS",
           "WorkerError", "assign", "bench_point", "check_backend", "ddp_step", "effective_weights",
           "free_port", "loss_scale", "run", "straggler_ratio"]
