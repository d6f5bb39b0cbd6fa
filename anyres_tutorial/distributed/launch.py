"""Starting data-parallel workers: ``run(fn_name, nprocs=2, ...)`` from Python (a notebook), and the same
workers under ``torchrun`` (``python -m anyres_tutorial.distributed``). Taught in `data_parallel_training`.

``run`` spawns ``nprocs`` processes with ``torch.multiprocessing`` (start method ``"spawn"``: a fresh Python
in every worker, as CUDA requires), on a free localhost port (or ``port``), with ``torch.distributed``'s
``gloo`` backend on CPU or ``nccl`` with one GPU per rank (``backend="auto"`` picks). Every worker joins a
``TCPStore`` rendezvous that waits at most ``init_timeout`` for all ranks (a rank that never arrives ends the
job with an error, not a hang), calls ``init_process_group`` on it (its collectives wait at most ``timeout``),
runs the worker function ``fn(ctx, **kwargs)`` and sends back its result; ``run`` returns the results in rank
order.

Worker functions live in the library (:data:`WORKERS`, or any ``"package.module:function"``), never in a
notebook cell: a spawned process imports them by name. What can go wrong is reported, never hung on:

- a worker raises -> every other worker is ended and :class:`WorkerError` names the rank and the message;
- the job outlives ``timeout`` -> every worker is ended and ``TimeoutError`` is raised;
- a port in use, an unknown or missing backend, more NCCL ranks than GPUs -> ``ValueError`` before anything
  starts.
"""

from __future__ import annotations

import importlib
import os
import queue as queue_module
import socket
import time
import traceback
from dataclasses import dataclass
from datetime import timedelta

import torch
import torch.distributed as dist

from ..checks import check_choice, check_int, check_number, check_positive_int

BACKENDS = ("auto", "gloo", "nccl")
#: worker name -> "module:function" (imported in the worker process)
WORKERS = {
    "grad_check": "anyres_tutorial.distributed.check:grad_check",
    "image_counts": "anyres_tutorial.distributed.check:image_counts",
    "balance": "anyres_tutorial.distributed.balance:balance",
    "raise_on_rank": "anyres_tutorial.distributed.launch:raise_on_rank",
}


@dataclass
class Context:
    """What a worker function gets first: its rank, the world size, the backend and its device."""

    rank: int
    world_size: int
    backend: str
    device: torch.device


class WorkerError(RuntimeError):
    """A worker failed: ``rank``, its last error line ``message`` and the full ``traceback``."""

    def __init__(self, rank: int, world_size: int, fn_name: str, message: str, traceback: str = ""):
        self.rank, self.world_size, self.message, self.traceback = rank, world_size, message, traceback
        super().__init__(f"rank {rank} of {world_size} failed in worker {fn_name!r}: {message}"
                         + (f"\n\nworker traceback:\n{traceback}" if traceback else ""))


def resolve_worker(fn_name: str):
    """The worker function for ``fn_name``: a key of :data:`WORKERS` or ``"package.module:function"``."""
    if not isinstance(fn_name, str) or (fn_name not in WORKERS and ":" not in fn_name):
        raise ValueError(f"fn_name must be one of {tuple(WORKERS)} or 'package.module:function', "
                         f"got {fn_name!r}")
    module, _, name = WORKERS.get(fn_name, fn_name).partition(":")
    try:
        fn = getattr(importlib.import_module(module), name)
    except (ImportError, AttributeError) as e:
        raise ValueError(f"fn_name {fn_name!r}: cannot import {module}:{name} ({e})") from None
    if not callable(fn):
        raise ValueError(f"fn_name {fn_name!r} names {type(fn).__name__}, not a function")
    return fn


def check_backend(backend: str, nprocs: int) -> str:
    """``backend`` resolved (``auto``: ``nccl`` when there is one CUDA GPU per rank, else ``gloo``) and
    checked: built into this torch, and for ``nccl`` enough GPUs."""
    backend = check_choice("backend", backend, BACKENDS)
    gpus = torch.cuda.device_count() if torch.cuda.is_available() else 0
    if backend == "auto":
        backend = "nccl" if dist.is_nccl_available() and gpus >= nprocs else "gloo"
    built = [b for b in BACKENDS[1:] if dist.is_available() and dist.is_backend_available(b)]
    if backend not in built:
        raise ValueError(f"backend={backend!r} is not built into this torch {torch.__version__}; available: "
                         f"{built}")
    if backend == "nccl" and gpus < nprocs:
        raise ValueError(f"backend='nccl' needs one CUDA GPU per rank: nprocs={nprocs}, GPUs here: {gpus}")
    return backend


def free_port() -> int:
    """A TCP port on 127.0.0.1 that nothing listens on (the OS picks it)."""
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def check_port(port) -> int:
    """``port`` if it is free on 127.0.0.1, else ValueError (within milliseconds, before anything starts)."""
    port = check_int("port", port, 1, 65535)
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as s:
        try:
            s.bind(("127.0.0.1", port))
        except OSError as e:
            raise ValueError(f"port={port} is in use on 127.0.0.1 ({e.strerror}); pass another port, or "
                             f"port=None to let the OS pick a free one") from None
    return port


def device_for(backend: str, rank: int) -> torch.device:
    """``cuda:rank`` (one GPU per rank, made current) for ``nccl``, the CPU for ``gloo``."""
    if backend == "nccl":
        torch.cuda.set_device(rank)
        return torch.device("cuda", rank)
    return torch.device("cpu")


def _entry(rank, world_size, backend, port, init_timeout, timeout, threads, fn_name, kwargs, results):
    """What every spawned process runs (``torch.multiprocessing`` calls it with its rank first)."""
    try:
        torch.set_num_threads(threads)
        fn = resolve_worker(fn_name)
        device = device_for(backend, rank)
        store = dist.TCPStore("127.0.0.1", port, world_size, is_master=rank == 0, wait_for_workers=True,
                              timeout=timedelta(seconds=init_timeout))  # every rank arrives, or an error
        dist.init_process_group(backend, store=store, rank=rank, world_size=world_size,
                                timeout=timedelta(seconds=timeout))
        value = fn(Context(rank, world_size, backend, device), **kwargs)
    except Exception:  # sent with its time: the first failure is the cause, later ones are its echoes
        results.put((rank, False, (time.time(), traceback.format_exc())))
        raise
    dist.destroy_process_group()
    results.put((rank, True, value))


def run(fn_name: str, nprocs: int = 2, *, backend: str = "auto", port: int | None = None,
        init_timeout: float = 60.0, timeout: float = 600.0, threads: int | None = None, **kwargs) -> list:
    """Run the worker ``fn_name`` on ``nprocs`` ranks and return its results, one per rank (rank order).

    ``backend``: ``"auto"``, ``"gloo"`` or ``"nccl"`` (:func:`check_backend`); ``port``: the rendezvous port
    on 127.0.0.1 (None: a free one); ``init_timeout``: seconds the rendezvous waits for every rank;
    ``timeout``: seconds the whole job may take (and the longest any collective waits); ``threads``: torch
    threads per worker (default: the CPU cores shared out, at least 1); ``kwargs`` go to the worker function
    (picklable). A script that calls ``run`` needs the ``if __name__ == "__main__":`` guard (spawned workers
    import the caller's main module); notebooks and pytest do not.
    Raises :class:`WorkerError` (the rank and message of the first worker that failed; the others are
    ended), ``TimeoutError`` or ``ValueError`` (see the module docstring).
    """
    import multiprocessing

    import torch.multiprocessing as mp

    resolve_worker(fn_name)  # a bad name fails here, not in every worker
    nprocs = check_positive_int("nprocs", nprocs, maximum=256)
    backend = check_backend(backend, nprocs)
    port = free_port() if port is None else check_port(port)
    init_timeout = check_number("init_timeout", init_timeout, minimum=1.0)
    timeout = check_number("timeout", timeout, minimum=1.0)
    threads = check_positive_int("threads", threads or max(1, (os.cpu_count() or 1) // nprocs))
    results = multiprocessing.get_context("spawn").SimpleQueue()
    args = (nprocs, backend, port, init_timeout, timeout, threads, fn_name, kwargs, results)
    procs = mp.start_processes(_entry, args=args, nprocs=nprocs, join=False, start_method="spawn")
    out, start = {}, time.monotonic()
    try:
        while True:
            _drain(results, out)
            try:
                if procs.join(timeout=0.2, grace_period=1.0):
                    break
            except (mp.ProcessRaisedException, mp.ProcessExitedException) as e:  # the others are ended
                raise _first_failure(e, _drain(results, out), nprocs, fn_name) from None
            if time.monotonic() - start > timeout:
                running = [r for r, p in enumerate(procs.processes) if p.is_alive()]
                raise TimeoutError(f"worker {fn_name!r} did not finish within timeout={timeout:g} s; ranks "
                                   f"still running: {running} (all ended)")
    finally:
        for p in procs.processes:  # nothing outlives run(): ended on error, timeout or KeyboardInterrupt
            if p.is_alive():
                p.kill()
                p.join()
    _drain(results, out)
    missing = [r for r in range(nprocs) if r not in out or not out[r][0]]
    if missing:
        raise RuntimeError(f"worker {fn_name!r}: ranks {missing} exited without a result")
    return [out[r][1] for r in range(nprocs)]


def _drain(results, out: dict) -> dict:
    """Move everything the workers sent into ``out`` (rank -> (ok, value)); returns ``out``."""
    while not results.empty():
        try:
            rank, ok, value = results.get()
        except (EOFError, queue_module.Empty):
            break
        out[rank] = (ok, value)
    return out


def _first_failure(e, out: dict, nprocs: int, fn_name: str) -> WorkerError:
    """The failure that came first (a rank's error; the ranks whose collectives then broke come later)."""
    failed = sorted((v[0], r, v[1]) for r, (ok, v) in out.items() if not ok)
    if not failed:  # died without a Python exception (a signal, os._exit)
        return WorkerError(e.error_index, nprocs, fn_name, str(e).strip())
    _, rank, tb = failed[0]
    others = [r for _, r, _ in failed[1:]]
    note = f" (then ranks {others} failed too)" if others else ""
    return WorkerError(rank, nprocs, fn_name, tb.strip().splitlines()[-1] + note, tb)


def raise_on_rank(ctx, rank: int = 1, message: str = "this rank failed on purpose") -> int:
    """Worker for trying the failure path: rank ``rank`` raises ``RuntimeError(message)`` while the other
    ranks wait in an all-reduce that can never complete (``run`` must end them)."""
    if ctx.rank == rank:
        raise RuntimeError(message)
    x = torch.ones(1, device=ctx.device)
    dist.all_reduce(x)
    return int(x)


__all__ = ["BACKENDS", "Context", "WORKERS", "WorkerError", "check_backend", "check_port", "device_for",
           "free_port", "raise_on_rank", "resolve_worker", "run"]
