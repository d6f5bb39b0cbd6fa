"""Balanced ranks: which images each rank gets, what the FLOP counter predicts, what each rank measured.
Taught in `data_parallel_training`; :func:`bench_point` is the benchmark's data-parallel point.

A DDP step ends with an all-reduce, so every rank waits for the slowest: the step takes the straggler's
time. Two ways to hand a step's images to ``W`` ranks (:data:`ASSIGNMENTS`):

- ``naive``: in sample order, equal image counts (rank 0 the first ``n / W`` images, ...);
- ``balanced``: greedy longest-processing-time (LPT): images by decreasing cost, each to the rank with the
  least cost so far. The cost of an image of ``L`` tokens is its training step's FLOPs
  (:func:`step_flops`, from ``encoder.arch.count_flops``): the linear layers grow with ``L`` and attention
  with ``L^2`` (:func:`cost_parts`).

Balanced ranks hold different numbers of images, which is why the step uses the ``global_per_image``
reduction. :func:`balance` (a worker for ``distributed.run``) times every rank's forward + backward with a
DDP communication hook (the default all-reduce, plus the time this rank's last gradient bucket was ready)
and the whole step; :func:`summarize` turns the records into straggler ratios (slowest rank / mean) and a
least-squares fit ``seconds = a * FLOPs + b`` that says how well the cost model predicted the times.
"""

from __future__ import annotations

import os
import time

import numpy as np
import torch
import torch.distributed as dist

from ..checks import check_choice, check_positive_int
from ..encoder.arch import DEPTH, DIM, count_flops, num_tokens
from ..training import sgd_step, trainable
from .step import MicroBatch, ddp_step, make_classifier

ASSIGNMENTS = ("naive", "balanced")


def cost_parts(lengths) -> list[tuple[int, int]]:
    """Forward FLOPs of each image (``L`` tokens, CLS included) split into (linear layers and patch
    embedding ~ L, attention ~ L^2): ``count_flops([L])`` and its ``depth * 4 * L^2 * D`` attention term."""
    out = []
    for L in lengths:
        attn = DEPTH * 4 * int(L) * int(L) * DIM
        out.append((count_flops([int(L)]) - attn, attn))
    return out


def step_flops(lengths, train_blocks: int = 1) -> list[int]:
    """FLOPs of each image's training step: the forward through every block, plus the backward (2x the
    forward) through the ``train_blocks`` trained blocks (the frozen ones below need none)."""
    train_blocks = check_positive_int("train_blocks", train_blocks, maximum=DEPTH)
    return [count_flops([L]) + 2 * (count_flops([L], depth=train_blocks) - count_flops([L], depth=0))
            for L in lengths]


def assign(costs, world_size: int, how: str = "balanced") -> list[list[int]]:
    """Image indices for each of ``world_size`` ranks: ``naive`` (sample order, counts differ by at most
    one) or ``balanced`` (LPT on ``costs``; ties go to the lower rank)."""
    how = check_choice("how", how, ASSIGNMENTS)
    world_size = check_positive_int("world_size", world_size)
    costs = [float(c) for c in costs]
    if how == "naive":
        return [[int(i) for i in a] for a in np.array_split(np.arange(len(costs)), world_size)]
    parts, loads = [[] for _ in range(world_size)], [0.0] * world_size
    for i in sorted(range(len(costs)), key=lambda i: -costs[i]):
        r = min(range(world_size), key=lambda r: loads[r])
        parts[r].append(i)
        loads[r] += costs[i]
    return [sorted(p) for p in parts]


def straggler_ratio(times) -> float:
    """Slowest / mean (1.0 = perfectly balanced; ``W`` = one rank does everything)."""
    t = np.asarray(list(times), dtype=float)
    if t.size == 0 or t.mean() <= 0:
        raise ValueError(f"times must hold at least one positive value, got {list(times)}")
    return float(t.max() / t.mean())


class _ReadyTimer:
    """DDP communication hook: the default all-reduce (``allreduce_hook``), and the time at which this
    rank's last gradient bucket was ready, i.e. its own forward + backward was done."""

    def __init__(self, device: torch.device):
        self.device, self.ready = device, 0.0

    def hook(self, state, bucket):
        from torch.distributed.algorithms.ddp_comm_hooks.default_hooks import allreduce_hook

        if self.device.type == "cuda":
            torch.cuda.synchronize(self.device)
        self.ready = max(self.ready, time.perf_counter())
        return allreduce_hook(None, bucket)


def stream(steps: int = 3, images: int = 8, budget=(16, 256), seed: int = 0, warmup: int = 1) -> list:
    """The batches :func:`balance` trains on (``finetune.crop_task``: random crops of the ``data/`` images at
    random NaViT token budgets), warm-up batches first; the same on every rank and in the caller."""
    from ..finetune import crop_task

    steps, images = check_positive_int("steps", steps), check_positive_int("images", images)
    return crop_task(int(warmup) + steps, images, budget=tuple(budget), seed=seed)


def stream_lengths(steps: int = 3, images: int = 8, budget=(16, 256), seed: int = 0, warmup: int = 1) -> list:
    """Tokens per image (CLS included) of every measured batch of :func:`stream` (warm-up left out)."""
    batches = stream(steps, images, budget, seed, warmup)[warmup:]
    return [[num_tokens(x.size) for x in batch] for batch in batches]


def balance(ctx, steps: int = 3, images: int = 8, budget=(16, 256), seed: int = 0,
            attention: str = "sdpa_segments", train_blocks: int = 1, repeats: int = 2, warmup: int = 1,
            assignments=ASSIGNMENTS) -> list[dict]:
    """Worker: ``warmup + steps`` batches of ``images`` random crops of the ``data/`` images at random NaViT
    token budgets (``finetune.crop_task``, the same on every rank); for each assignment and batch, every rank
    packs its images into one row and runs a DDP training step (``global_per_image``, SGD with lr 0: the
    same weights every time), ``repeats`` times. One record per (assignment, step, rank), the best of the
    repeats: ``compute_s`` (its own forward + backward), ``step_s`` (the whole step, waiting included),
    ``flops`` and the images and tokens it held. Warm-up steps are not recorded."""
    from torch.nn.parallel import DistributedDataParallel as DDP

    from ..finetune import CROP_CLASSES

    repeats = check_positive_int("repeats", repeats)
    data = stream(steps, images, budget, seed, warmup)
    module = make_classifier(len(CROP_CLASSES), train_blocks, attention, device=ctx.device)
    ddp = DDP(module, device_ids=[ctx.device.index] if ctx.device.type == "cuda" else None)
    timer = _ReadyTimer(ctx.device)
    ddp.register_comm_hook(None, timer.hook)
    params = trainable(module)
    records = []
    for how in assignments:
        for s, samples in enumerate(data):
            lengths = [num_tokens(x.size) for x in samples]
            flops = step_flops(lengths, train_blocks)
            mine = assign(flops, ctx.world_size, how)[ctx.rank]
            micro = [MicroBatch([samples[i].image for i in mine], [samples[i].label for i in mine])]
            best = None
            for _ in range(1 if s < warmup else repeats):
                dist.barrier()
                _sync(ctx.device)
                t0 = timer.ready = time.perf_counter()
                ddp_step(ddp, micro, "global_per_image")
                sgd_step(params, 0.0)
                _sync(ctx.device)
                t = (timer.ready - t0, time.perf_counter() - t0)
                best = t if best is None or t[0] < best[0] else best
            if s >= warmup:
                records.append(dict(assignment=how, step=s - warmup, rank=ctx.rank, images=len(mine),
                                    tokens=sum(lengths[i] for i in mine), flops=sum(flops[i] for i in mine),
                                    compute_s=best[0], step_s=best[1]))
    return records


def _sync(device: torch.device) -> None:
    if device.type == "cuda":
        torch.cuda.synchronize(device)


def summarize(records) -> dict:
    """Per assignment: ``compute_s[step][rank]``, ``step_s[step]`` (slowest rank's whole step),
    ``flops``/``images`` per step and rank, the measured ``straggler_ratio`` (mean over steps of slowest /
    mean compute) and the one the FLOPs predict; ``cost_model``: the fit ``seconds = a * FLOPs + b`` over
    every (assignment, step, rank), its R^2 and mean |relative error|."""
    records = [r for rank in records for r in rank] if records and isinstance(records[0], list) else records
    out = {}
    for how in dict.fromkeys(r["assignment"] for r in records):
        mine = [r for r in records if r["assignment"] == how]
        steps, world = 1 + max(r["step"] for r in mine), 1 + max(r["rank"] for r in mine)
        grid = {(r["step"], r["rank"]): r for r in mine}

        def table(key, grid=grid, steps=steps, world=world):
            return [[grid[s, r][key] for r in range(world)] for s in range(steps)]

        compute, flops = table("compute_s"), table("flops")
        out[how] = dict(compute_s=compute, step_s=[max(row) for row in table("step_s")], flops=flops,
                        images=table("images"), tokens=table("tokens"),
                        straggler_ratio=float(np.mean([straggler_ratio(c) for c in compute])),
                        predicted_straggler_ratio=float(np.mean([straggler_ratio(f) for f in flops])))
    x = np.array([r["flops"] for r in records], dtype=float)
    y = np.array([r["compute_s"] for r in records], dtype=float)
    a, b = np.polyfit(x, y, 1) if len(set(x)) > 1 else (y.mean() / x.mean(), 0.0)
    pred = a * x + b
    ss = float(((y - y.mean()) ** 2).sum())
    out["cost_model"] = dict(seconds_per_gflop=float(a * 1e9), intercept_s=float(b),
                             r2=1 - float(((y - pred) ** 2).sum()) / ss if ss > 0 else float("nan"),
                             mean_abs_rel_error=float(np.mean(np.abs(pred - y) / y)))
    return out


def bench_point(nprocs: int = 2, *, backend: str = "auto", steps: int = 3, images: int = 8, budget=(16, 256),
                seed: int = 0, attention: str = "sdpa_segments", train_blocks: int = 1, repeats: int = 2,
                threads: int | None = None, timeout: float = 600.0) -> dict:
    """The benchmark's data-parallel point: :func:`balance` on ``nprocs`` ranks (``backend="auto"``: NCCL
    with one GPU per rank when there are enough GPUs, else gloo on the CPU) and its :func:`summarize`, with
    what ran where: ``world_size``, ``backend``, ``device``, ``threads`` per rank, ``load_average`` (1, 5,
    15 min, before and after) and the arguments."""
    from .launch import check_backend, run

    backend = check_backend(backend, check_positive_int("nprocs", nprocs))
    threads = threads or max(1, (os.cpu_count() or 1) // nprocs)
    load = os.getloadavg()
    records = run("balance", nprocs, backend=backend, threads=threads, timeout=timeout, steps=steps,
                  images=images, budget=tuple(budget), seed=seed, attention=attention,
                  train_blocks=train_blocks, repeats=repeats)
    device = (f"{nprocs} x {torch.cuda.get_device_name(0)}" if backend == "nccl"
              else f"CPU, {os.cpu_count()} cores")
    return dict(world_size=nprocs, backend=backend, device=device, threads=threads, attention=attention,
                steps=steps, images=images, budget=list(budget), train_blocks=train_blocks, repeats=repeats,
                load_average=dict(before=list(load), after=list(os.getloadavg())), **summarize(records))


__all__ = ["ASSIGNMENTS", "assign", "balance", "bench_point", "cost_parts", "step_flops", "straggler_ratio",
           "stream", "stream_lengths", "summarize"]
