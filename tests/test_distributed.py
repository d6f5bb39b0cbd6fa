"""Data-parallel training on packed sequences (anyres_tutorial.distributed, `data_parallel_training`).

Real processes, real DDP (gloo, 2 ranks) on the real DINOv2 weights: the DDP gradient with
``global_per_image`` equals single-process per-image training on the union of the ranks' images (relative
difference <= 1e-4 per tensor, fp32) with uneven ranks, with gradient accumulation over 2 micro-batches of
different image counts, with token dropping, and with a rank that holds no image; ``rank_mean`` is off by more
than RANK_MEAN_MIN. World size 1 equals one process; a worker's exception reaches the caller with its rank;
a rank that never arrives ends the rendezvous after init_timeout; a port in use or a missing backend fails at
once; the same worker runs under torchrun. The pure parts (the
weights of each reduction, LPT, the cost model, the summaries, the pictures) are tested without processes.
"""

from __future__ import annotations

import json
import os
import shutil
import socket
import subprocess
import sys
import time
from pathlib import Path

import matplotlib

matplotlib.use("Agg")

import matplotlib.pyplot as plt
import pytest
import torch

from anyres_tutorial import distributed, viz
from anyres_tutorial.distributed import balance, check
from anyres_tutorial.encoder.arch import count_flops

ROOT = Path(__file__).resolve().parent.parent
GRAD_TOL = 1e-4  # the tolerance of the packed gradient check (test_training)
RANK_MEAN_MIN = 0.1  # rank_mean must differ from per-image training by more than this (measured 0.26-0.55)


@pytest.fixture(autouse=True)
def _close_figures():
    yield
    plt.close("all")


@pytest.fixture(scope="module")
def two_ranks():
    """One launch: every case x reduction on 2 gloo ranks -> (all rows of all ranks, rank 0's summary)."""
    results = distributed.run("grad_check", nprocs=2, backend="gloo", timeout=300)
    rows = [r for rank in results for r in rank]
    return rows, check.summary(rows)


# ---------------------------------------------------------------------------------------------------------
# with processes


@pytest.mark.slow
def test_global_per_image_equals_per_image_training_in_every_case(two_ranks):
    rows, summary = two_ranks
    assert {r["case"] for r in summary} == set(check.CASES)
    for r in summary:
        assert r["ranks_agree"], r  # DDP left the same averaged gradient on both ranks
        if r["reduction"] == "global_per_image":
            assert r["vs_per_image"] <= GRAD_TOL, r
        # every reduction computes exactly the weights effective_weights says (the picture is the truth)
        assert r["vs_own_weights"] <= GRAD_TOL, r


@pytest.mark.slow
def test_rank_mean_and_per_token_differ_from_per_image_training(two_ranks):
    _, summary = two_ranks
    for r in summary:
        if r["reduction"] != "global_per_image":
            assert r["vs_per_image"] > RANK_MEAN_MIN, r


@pytest.mark.slow
def test_the_image_count_is_all_reduced_over_ranks_and_micro_batches(two_ranks):
    rows, _ = two_ranks
    acc = [r for r in rows if r["case"] == "accumulation" and r["reduction"] == "global_per_image"]
    assert sorted(r["images"] for r in acc) == [4, 6] and {r["total_images"] for r in acc} == {10}
    empty = [r for r in rows if r["case"] == "empty rank" and r["rank"] == 1]
    assert empty and all(r["images"] == 0 and r["total_images"] == 10 for r in empty)
    # the ranks' shares of the loss add up to the mean loss over the 10 images (global_per_image)
    for case in check.CASES:
        shares = [r["loss"] for r in rows if r["case"] == case and r["reduction"] == "global_per_image"]
        assert len(shares) == 2 and all(s >= 0 for s in shares)


@pytest.mark.slow
def test_world_size_one_equals_one_process():
    results = distributed.run("grad_check", nprocs=1, backend="gloo", timeout=300, threads=1,
                              cases=("accumulation + dropping",))
    summary = check.summary(results[0])
    assert len(summary) == 3
    for r in summary:  # one rank, two micro-batches of 5 images: rank_mean is per-image training too
        assert (r["vs_per_image"] <= GRAD_TOL) == (r["reduction"] != "global_per_token"), r


@pytest.mark.slow
def test_a_worker_exception_reaches_the_caller_with_its_rank():
    t0 = time.monotonic()
    with pytest.raises(distributed.WorkerError, match="rank 1 of 2") as e:
        distributed.run("raise_on_rank", nprocs=2, rank=1, message="bad input on this rank")
    assert e.value.rank == 1 and "bad input on this rank" in e.value.message
    assert "RuntimeError" in e.value.traceback
    assert time.monotonic() - t0 < 60  # the rank left waiting in its all-reduce was ended, not waited for


def test_a_port_in_use_or_a_missing_backend_fails_at_once():
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        s.listen()
        t0 = time.monotonic()
        with pytest.raises(ValueError, match="in use"):
            distributed.run("image_counts", nprocs=2, port=s.getsockname()[1])
    for backend, match in (("mpi", "backend must be one of"), ("nccl", "nccl")):
        if backend == "nccl" and torch.cuda.device_count() >= 2:
            continue
        with pytest.raises(ValueError, match=match):
            distributed.run("image_counts", nprocs=2, backend=backend)
    with pytest.raises(ValueError, match="fn_name"):
        distributed.run("no_such_worker", nprocs=2)
    assert time.monotonic() - t0 < 5


@pytest.mark.slow
def test_the_same_worker_runs_under_torchrun():
    exe = shutil.which("torchrun", path=str(Path(sys.executable).parent)) or shutil.which("torchrun")
    cmd = ([exe] if exe else [sys.executable, "-m", "torch.distributed.run"]) + [
        "--nproc-per-node", "2", "-m", "anyres_tutorial.distributed", "image_counts", "case=accumulation"]
    env = {**os.environ, "PYTHONPATH": str(ROOT)}
    out = subprocess.run(cmd, capture_output=True, text=True, timeout=120, env=env, cwd=ROOT)
    assert out.returncode == 0, out.stderr[-2000:]
    ranks = json.loads(out.stdout.strip().splitlines()[-1])
    assert [r["images"] for r in ranks] == [[3, 1], [2, 4]]
    assert {r["total_images"] for r in ranks} == {10} and {r["total_tokens"] for r in ranks} == {115}


@pytest.mark.slow
def test_bench_point_times_every_rank_for_both_assignments():
    point = balance.bench_point(2, backend="gloo", steps=1, images=4, budget=(16, 48), repeats=1, timeout=300)
    assert point["world_size"] == 2 and point["backend"] == "gloo" and point["device"].startswith("CPU")
    for how in balance.ASSIGNMENTS:
        s = point[how]
        assert len(s["compute_s"]) == 1 and len(s["compute_s"][0]) == 2
        assert all(t > 0 for t in s["compute_s"][0])
        assert s["step_s"][0] >= max(s["compute_s"][0])  # the step waits for the slowest rank
        assert s["straggler_ratio"] >= 1 and sum(s["images"][0]) == 4
    assert point["balanced"]["predicted_straggler_ratio"] <= point["naive"]["predicted_straggler_ratio"]
    assert set(point["cost_model"]) >= {"r2", "mean_abs_rel_error", "seconds_per_gflop"}


# ---------------------------------------------------------------------------------------------------------
# pure


MICRO = [[[0, 1, 2], [3, 4]], [[5], [6, 7, 8, 9]]]  # the accumulation case
LENGTHS = [2, 3, 3, 13, 21, 11, 10, 13, 22, 17]


def test_effective_weights_of_the_three_reductions():
    n = len(LENGTHS)
    assert torch.allclose(distributed.effective_weights(MICRO, LENGTHS, "global_per_image"),
                          torch.full((n,), 1 / n, dtype=torch.float64))
    tok = distributed.effective_weights(MICRO, LENGTHS, "global_per_token")
    assert torch.allclose(tok, torch.tensor(LENGTHS, dtype=torch.float64) / sum(LENGTHS))
    mean = distributed.effective_weights(MICRO, LENGTHS, "rank_mean")  # 1 / (W M n_rm)
    expected = [1 / 12] * 3 + [1 / 8] * 2 + [1 / 4] + [1 / 16] * 4
    assert torch.allclose(mean, torch.tensor(expected, dtype=torch.float64))
    # a rank without images: its share of rank_mean is lost, the global reductions still sum to 1
    empty = [[list(range(n)), []]]
    assert float(distributed.effective_weights(empty, LENGTHS, "rank_mean").sum()) == pytest.approx(0.5)
    assert float(distributed.effective_weights(empty, LENGTHS, "global_per_image").sum()) == pytest.approx(1)


def test_bad_reductions_and_layouts_are_refused():
    with pytest.raises(ValueError, match="reduction must be one of"):
        distributed.effective_weights(MICRO, LENGTHS, "mean")
    with pytest.raises(ValueError, match="exactly once"):
        distributed.effective_weights([[[0, 1], [1, 2]]], [2, 2, 2], "rank_mean")
    with pytest.raises(ValueError, match="same number"):
        distributed.effective_weights([[[0], [1]], [[2]]], [2, 2, 2], "rank_mean")
    with pytest.raises(ValueError, match="case must be one of"):
        check.workload("nope")


def test_lpt_and_naive_assignments():
    costs = [9, 7, 6, 5, 4, 3]
    naive = balance.assign(costs, 2, "naive")
    lpt = balance.assign(costs, 2, "balanced")
    assert naive == [[0, 1, 2], [3, 4, 5]]
    assert sorted(i for p in lpt for i in p) == list(range(6))
    assert [sum(costs[i] for i in p) for p in lpt] == [17, 17]
    assert balance.straggler_ratio([22, 12]) == pytest.approx(22 / 17)
    assert balance.assign([5], 3, "balanced") == [[0], [], []]  # a rank may get nothing
    with pytest.raises(ValueError, match="how must be one of"):
        balance.assign(costs, 2, "random")
    with pytest.raises(ValueError):
        balance.straggler_ratio([])


def test_the_cost_model_comes_from_the_flop_counter():
    for L in (2, 50, 577):
        linear, attention = balance.cost_parts([L])[0]
        assert linear + attention == count_flops([L])
    small, big = balance.cost_parts([100, 400])
    assert big[1] == 16 * small[1]  # attention ~ L^2
    assert 3.9 < big[0] / small[0] < 4.1  # linear layers ~ L
    flops = balance.step_flops([100, 400], train_blocks=1)
    assert all(f > count_flops([L]) for f, L in zip(flops, (100, 400)))


def test_summarize_and_the_pictures():
    records = [dict(assignment=how, step=s, rank=r, images=2 + r, tokens=100, flops=(1 + r + s) * 1e10,
                    compute_s=(1 + r + s) * 0.2 + 0.01 * (how == "naive"), step_s=(2 + s) * 0.2 + 0.05)
               for how in balance.ASSIGNMENTS for s in range(2) for r in range(2)]
    summary = balance.summarize([records[::2], records[1::2]])  # as run() returns them: one list per rank
    assert summary["naive"]["compute_s"][1] == pytest.approx([0.41, 0.61])
    assert summary["cost_model"]["r2"] > 0.99
    for fig in (viz.rank_times(summary), viz.cost_fit(summary),
                viz.rank_rows(MICRO, LENGTHS, 32), viz.rank_rows([[list(range(10)), []]], LENGTHS, 32),
                viz.reduction_weights(MICRO, LENGTHS)):
        texts = [t for ax in fig.axes for t in [*ax.texts, ax.title, *ax.get_xticklabels()] if t.get_text()]
        assert texts and min(t.get_fontsize() for t in texts) >= 9
    fake = [dict(case=c, reduction=red, vs_per_image=v, vs_own_weights=3e-6, ranks_agree=True)
            for c in ("uneven", "accumulation") for red, v in zip(distributed.REDUCTIONS, (3e-6, 0.4, 0.45))]
    assert len(viz.ddp_gradient_check(fake).axes) == 2


def test_a_rank_that_never_arrives_ends_the_rendezvous_with_an_error():
    """Rank 0 of 2 alone: the worker entry gives up after init_timeout and reports the error (no hang)."""
    import queue

    from anyres_tutorial.distributed import launch

    results, threads, t0 = queue.SimpleQueue(), torch.get_num_threads(), time.monotonic()
    try:
        with pytest.raises(Exception, match="(?i)timed out"):
            launch._entry(0, 2, "gloo", distributed.free_port(), 2.0, 60.0, 1, "image_counts", {}, results)
    finally:
        torch.set_num_threads(threads)
    assert time.monotonic() - t0 < 20
    rank, ok, (_, tb) = results.get()
    assert rank == 0 and not ok and tb
