"""The data-parallel workers under ``torchrun`` (taught in `data_parallel_training`)::

    torchrun --nproc-per-node 2 -m anyres_tutorial.distributed grad_check
    torchrun --nproc-per-node 2 -m anyres_tutorial.distributed balance steps=3 images=8
    torchrun --nproc-per-node 4 -m anyres_tutorial.distributed balance --backend nccl   # one GPU per rank

torchrun starts the processes and sets ``RANK``, ``WORLD_SIZE``, ``LOCAL_RANK``, ``MASTER_ADDR`` and
``MASTER_PORT``; every process joins the group (``env://``; ``--timeout`` bounds the rendezvous and every
collective), runs the same worker function as ``distributed.run`` would, and rank 0 gathers the results and
prints them as JSON (the gradient check's summary, the balance summary, or the raw results). ``key=value``
arguments go to the worker (values read as JSON when they parse, e.g. ``budget=[16,144]``, else as strings).
"""

from __future__ import annotations

import argparse
import json
import os
import sys
from datetime import timedelta

import torch
import torch.distributed as dist

from .launch import WORKERS, Context, check_backend, device_for, resolve_worker


def _options(pairs) -> dict:
    out = {}
    for p in pairs:
        key, sep, value = p.partition("=")
        if not sep or not key.isidentifier():
            raise SystemExit(f"worker options must be key=value, got {p!r}")
        try:
            out[key] = json.loads(value)
        except json.JSONDecodeError:
            out[key] = value
    return out


def report(fn_name: str, results: list):
    """What rank 0 prints: the gradient check's summary, the balance summary, or the results as they are."""
    if fn_name == "grad_check":
        from .check import summary

        return summary([row for rank in results for row in rank])
    if fn_name == "balance":
        from .balance import summarize

        return summarize(results)
    return results


def main(argv=None) -> int:
    p = argparse.ArgumentParser(prog="torchrun --nproc-per-node N -m anyres_tutorial.distributed",
                                description="Run a data-parallel worker on every rank started by torchrun.")
    p.add_argument("worker", choices=tuple(WORKERS))
    p.add_argument("options", nargs="*", help="key=value arguments for the worker function")
    p.add_argument("--backend", default="auto", help="auto (nccl with a GPU per local rank, else gloo), gloo "
                   "or nccl")
    p.add_argument("--timeout", type=float, default=600.0, help="seconds the rendezvous and any collective "
                   "wait for the other ranks")
    p.add_argument("--threads", type=int, default=None, help="torch threads per rank")
    args = p.parse_args(argv)
    if "RANK" not in os.environ or "WORLD_SIZE" not in os.environ:
        print(f"no RANK / WORLD_SIZE in the environment: start me with torchrun, e.g.\n  torchrun "
              f"--nproc-per-node 2 -m anyres_tutorial.distributed {args.worker}\nor from Python: "
              f"anyres_tutorial.distributed.run({args.worker!r}, nprocs=2)", file=sys.stderr)
        return 2
    rank, world = int(os.environ["RANK"]), int(os.environ["WORLD_SIZE"])
    local_rank = int(os.environ.get("LOCAL_RANK", rank))
    local_world = int(os.environ.get("LOCAL_WORLD_SIZE", world))
    backend = check_backend(args.backend, local_world)
    torch.set_num_threads(args.threads or max(1, (os.cpu_count() or 1) // local_world))
    fn = resolve_worker(args.worker)
    device = device_for(backend, local_rank)
    dist.init_process_group(backend, timeout=timedelta(seconds=args.timeout))
    value = fn(Context(rank, world, backend, device), **_options(args.options))
    gathered = [None] * world if rank == 0 else None
    dist.gather_object(value, gathered, dst=0)
    if rank == 0:
        print(json.dumps(report(args.worker, gathered), default=str))
    dist.destroy_process_group()
    return 0


if __name__ == "__main__":
    sys.exit(main())
