"""Time packed attention backends against ``loop`` on the benchmark's mixed workload, interleaved.

    PYTHONPATH=. python tools/packed_speed.py                      # 16 images at scale 0.62 (~7.2k tokens)
    PYTHONPATH=. python tools/packed_speed.py --scale 0.333 --backends sdpa_chunked --repeats 7
    PYTHONPATH=. python tools/packed_speed.py --clock cpu --threads 1   # CPU seconds: steadier when busy
    PYTHONPATH=. python tools/packed_speed.py --profile             # torch.profiler: top ops per backend
    PYTHONPATH=. python tools/packed_speed.py --images 32 --budget 64    # 32 images of at most 64 tokens

Every round runs ``loop`` then each backend once (loop, A, B, loop, A, B, ...), after ``--warmup`` untimed
rounds (a compiled backend compiles there), under ``torch.inference_mode`` as the benchmark does. Printed per
backend: the median time, and the ratio loop / backend of each round (median, min..max): above 1 means
packing is faster. The load average is printed before and after: on a shared machine only the ratios of one
interleaved run mean anything. The backend ``"auto"`` picks for these images (the cost model of this checkout)
is printed beside the fastest. A tool, not a test: no speed is asserted anywhere.
"""

from __future__ import annotations

import argparse
import statistics
import time

import torch

from anyres_tutorial.bench.workload import Config, make_workload, packed_budget, prepare_packed
from anyres_tutorial.encoder import attention
from anyres_tutorial.encoder.vit import load_dinov2


def _load() -> str:
    with open("/proc/loadavg") as f:
        return " ".join(f.read().split()[:3])


def workload(n: int, scale: float, budget: int | None = None) -> list[torch.Tensor]:
    """The benchmark's first ``n`` images at their packed (NaViT) size: the reference budget at ``scale``, or
    at
    most ``budget`` tokens each."""
    items = make_workload(n, 0)
    pils = [it.load() for it in items]
    budgets = [budget or packed_budget(it, scale) for it in items]
    return prepare_packed(Config.packed(attention.REFERENCE), items, pils, budgets, 1.0 if budget else scale,
                          torch.device("cpu"), torch.float32).payload


def profile(model, imgs, names, rows: int) -> None:
    from torch.profiler import profile as torch_profile

    for name in names:
        model.forward_packed(imgs, attention=name)
        with torch_profile() as p:
            model.forward_packed(imgs, attention=name)
        print(f"==== {name}")
        print(p.key_averages().table(sort_by="self_cpu_time_total", row_limit=rows))


def main(argv=None) -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--images", type=int, default=16)
    ap.add_argument("--scale", type=float, default=0.62)
    ap.add_argument("--backends", default="sdpa_segments,nested")
    ap.add_argument("--repeats", type=int, default=5)
    ap.add_argument("--warmup", type=int, default=1)
    ap.add_argument("--threads", type=int, default=2)
    ap.add_argument("--clock", choices=("wall", "cpu"), default="wall",
                    help="wall: perf_counter; cpu: process CPU seconds (use with --threads 1)")
    ap.add_argument("--profile", action="store_true", help="print torch.profiler's top ops instead of timing")
    ap.add_argument("--budget", type=int, default=None, help="at most this many tokens per image")
    args = ap.parse_args(argv)
    torch.set_num_threads(args.threads)
    clock = time.perf_counter if args.clock == "wall" else time.process_time
    names = ["loop"] + [b for b in args.backends.split(",") if b and b != "loop"]
    for b in names:
        attention.resolve(b, "cpu")  # unavailable here: the registry's reason
    model = load_dinov2()
    imgs = workload(args.images, args.scale, args.budget)
    lengths = [1 + (im.shape[1] // 14) * (im.shape[2] // 14) for im in imgs]
    print(f"{len(imgs)} images, {sum(lengths)} tokens (max {max(lengths)}), threads {args.threads}, "
          f"clock {args.clock}, torch {torch.__version__}; load before {_load()}", flush=True)
    with torch.inference_mode():
        if args.profile:
            return profile(model, imgs, names, 14)
        ref = model.forward_packed(imgs, attention="loop")
        for b in names[1:]:
            out = model.forward_packed(imgs, attention=b)
            err = max((o - r).abs().max().item() for o, r in zip(out, ref))
            print(f"  {b}: max abs diff vs loop {err:.2e}", flush=True)
        for _ in range(args.warmup - 1):
            for b in names:
                model.forward_packed(imgs, attention=b)
        times = {b: [] for b in names}
        for _ in range(args.repeats):
            for b in names:
                t = clock()
                model.forward_packed(imgs, attention=b)
                times[b].append(clock() - t)
    print(f"load after {_load()}; auto picks {attention.resolve('auto', 'cpu', rows=[lengths])} here")
    for b in names:
        ratios = [a / t for a, t in zip(times["loop"], times[b])]
        print(f"  {b:14s} median {statistics.median(times[b]):7.3f} s   loop/{b}: median "
              f"{statistics.median(ratios):.3f} (min {min(ratios):.3f}, max {max(ratios):.3f}, "
              f"{len(ratios)} rounds)")


if __name__ == "__main__":
    main()
