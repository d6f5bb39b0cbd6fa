"""Benchmark: tiled batches vs packed sequences (four attention backends) on the real DINOv2 ViT-S/14.

Taught in notebook 10 (timing). Run it from a shell:

    python -m anyres_tutorial.bench --quick                 # a minute or two on a 2-core CPU (the tests)
    python -m anyres_tutorial.bench --out results/cpu.json  # the full run: JSON + PNG plots next to it
    python -m anyres_tutorial.bench --help

or from Python: ``data = anyres_tutorial.bench.run(["--quick", "--out", "results/tmp/q.json"])``.

What is compared (the same images, the same real weights, one forward pass of the encoder each):

- ``tiled``: every image gets a LLaVA-NeXT plan (``tiling.plan("llava_next", (W, H))``: 2-4 local 336 tiles +
  a squashed 336 thumbnail) and ``tiling.apply``; all tiles of all images form ONE batch (B, 3, 336, 336) of
  equal tiles (336 = 24 patches of 14) -> ``model.forward_tiles``. ``--tiling-methods internvl,ureader``
  adds ``tiled-<method>`` configurations (tiles resized to a multiple of 14 when needed, e.g. 384 -> 378).
- ``packed-<backend>``: every image is resized to its native size under a comparable budget
  (``packing.native_size((W, H), "navit", max_tokens=B)`` with B = the number of patch tokens of that image's
  LLaVA-NeXT *local tiles*, i.e. the same pixel budget as the tiled canvas, without padding and thumbnail;
  small images stay at their native size) and all images run as ONE packed sequence ->
  ``model.forward_packed(images, attention=backend)`` with backend ``loop`` (one image at a time, the
  reference), ``dense_mask`` (SDPA + a boolean N x N block-diagonal mask), ``flex`` (FlexAttention with a
  block-sparse BlockMask) and ``varlen`` (``varlen_attn`` with cu_seqlens; CUDA only). Backends that the
  machine lacks are listed in the JSON's ``unavailable`` with the model's own reason.

Workload (seeded, deterministic): the curated images of ``data/`` (real photos and generated documents,
panorama, screenshot, chart, icon, strip) interleaved with synthetic images whose sizes follow a seeded
distribution: aspect ratio W/H log-uniform in [1/3, 3] (one in eight drawn from the extremes 1/8 or 8
instead), area log-uniform in [0.03, 2.0] megapixels, sides rounded to integers; pixels are smooth random
colour fields (a seeded 8x8 random image, bicubic-upsampled). The first ``--num-images`` (default 16) form
the main set.

Scale: ``--scale s`` shrinks the *encoder resolution* of both paths by s (tiles are resampled from 336 to
round(336 s / 14) * 14 px, the packed budgets shrink by the same factor s^2, the images are scaled by s before
``native_size``). The plans themselves are made at full resolution, so every image keeps its LLaVA-NeXT grid.
Defaults: s = 1 on CUDA, 1/3 on CPU (LLaVA-NeXT tiles of 112 px; a 2-core CPU would need minutes per dense
forward at s = 1) and 1/4 with ``--quick`` (84 px). The JSON records s.

Sweeps (``--no-sweeps`` to skip): ``num_images`` (1 -> 64 mixed images, every configuration), ``resolution``
(16 images, every image resized to exactly B tokens for B in ``--budgets``, packed backends only: the dense
mask's N^2 growth against block-sparse flex/varlen) and ``small_images`` (N images of at most
``--small-budget`` tokens each, packed backends). The dense mask is skipped above ``--dense-max-tokens``
(recorded in ``skipped`` with the reason). Planning throughput (plans/s) is timed for every tiling method.

Checks before timing: every configuration's output is compared with a reference on the same inputs —
``packed-*`` with ``packed-loop``; ``packed-loop`` itself (main set) with ``forward_tiles`` of each image
alone; ``tiled`` with ``forward_packed(tiles, "loop")`` (each tile alone). The max abs diff and the tolerance
(fp32: 1e-4 + 1e-4 max|ref|; bf16: 5e-2 + 2e-2 max|ref|) are recorded; a failed check aborts the run.

Timing: the check run doubles as the first warm-up (it triggers torch.compile for flex), then ``--warmup``
more runs, then ``--repeats`` timed runs: CUDA events on GPU (bf16, peak memory from
``torch.cuda.max_memory_allocated``); ``torch.utils.benchmark.Timer.timeit(1)`` per run on CPU (fp32, with
``--threads`` threads, the mask and activation bytes estimated from formulas). Runs longer than 10 s are
timed twice only, without extra warm-up. Each record holds the median, IQR, min and max, images/s,
tokens/s, the model's FLOPs, the achieved FLOP/s and its fraction of a large square matmul (same dtype,
same device) timed at the start and at the end of the same run, the faster of the two (``efficiency``).
"""

from __future__ import annotations

import argparse
import datetime as _dt
import functools
import json
import math
import os
import platform
import socket
import subprocess
import sys
import time
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
import torch
import torch.nn.functional as F

__all__ = [
    "BACKENDS", "build_parser", "run", "main", "make_workload", "synthetic_sizes", "tiled_token_counts",
    "dense_executed_flops", "results_table", "load_results", "recorded_results", "plot_summary",
    "plot_num_images", "plot_resolution", "plot_planning", "plot_workload", "BenchCheckError",
]

PATCH = 14
BASE_TILE = 336  # LLaVA-NeXT tile = 24 x 14
BACKENDS = ("loop", "dense_mask", "flex", "varlen")
TOLERANCE = {"float32": (1e-4, 1e-4), "bfloat16": (5e-2, 2e-2)}  # (atol, rtol * max|ref|)
LONG_RUN_S = 10.0


class BenchCheckError(RuntimeError):
    """A configuration's output differs from its reference beyond the tolerance (raised before timing)."""


# ----------------------------------------------------------------------------------------------------------
# arguments


def _int_list(text: str) -> list[int]:
    try:
        vals = [int(v) for v in text.split(",") if v.strip()]
    except ValueError:
        raise argparse.ArgumentTypeError(f"expected comma-separated positive integers: {text!r}") from None
    if not vals or any(v <= 0 for v in vals):
        raise argparse.ArgumentTypeError(f"expected comma-separated positive integers, got {text!r}")
    return vals


def _int_at_least(lowest: int, what: str):
    """argparse type: an integer >= ``lowest`` (``what`` names it in the error)."""

    def parse(text: str) -> int:
        try:
            v = int(text)
        except ValueError:
            v = None
        if v is None or v < lowest:
            raise argparse.ArgumentTypeError(f"expected {what}, got {text!r}")
        return v

    return parse


_pos_int = _int_at_least(1, "a positive integer")
_nonneg_int = _int_at_least(0, "an integer >= 0")


def _scale(text: str) -> float:
    try:
        v = float(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"expected a number in (0, 1], got {text!r}") from None
    if not (0 < v <= 1):
        raise argparse.ArgumentTypeError(f"--scale must be in (0, 1], got {text!r}")
    return v


def build_parser() -> argparse.ArgumentParser:
    """The command-line interface of ``python -m anyres_tutorial.bench`` (defaults depend on the device)."""
    p = argparse.ArgumentParser(
        prog="python -m anyres_tutorial.bench",
        description="Tiled batches (LLaVA-NeXT) vs packed sequences (loop / dense_mask / flex / varlen) on "
        "the real DINOv2 ViT-S/14. Writes a JSON file of results and PNG plots next to it.",
        formatter_class=argparse.ArgumentDefaultsHelpFormatter,
    )
    p.add_argument("--quick", action="store_true",
                   help="small sizes and few repeats (tests, notebook default)")
    p.add_argument("--out", type=Path, default=None,
                   help="JSON path (default results/<device>-<date>.json; "
                   "quick: results/tmp/quick-<device>.json)")
    p.add_argument("--device", default="auto", choices=("auto", "cpu", "cuda"),
                   help="auto = cuda if available")
    p.add_argument("--dtype", default="auto", choices=("auto", "float32", "bfloat16"),
                   help="auto = bfloat16 on CUDA, float32 on CPU")
    p.add_argument("--threads", type=_pos_int, default=None,
                   help="CPU threads (default: torch.get_num_threads())")
    p.add_argument("--num-images", type=_pos_int, default=16, help="images in the main mixed set")
    p.add_argument("--scale", type=_scale, default=None,
                   help="encoder resolution factor (default 1 on CUDA, 1/3 on CPU, 1/4 with --quick)")
    p.add_argument("--repeats", type=_pos_int, default=None,
                   help="timed runs per point (default CUDA 10, CPU 3)")
    p.add_argument("--warmup", type=_nonneg_int, default=None,
                   help="warm-up runs after the check run (default CUDA 2, CPU 1, quick CPU 0)")
    p.add_argument("--seed", type=int, default=0, help="seed of the synthetic image distribution")
    p.add_argument("--backends", default=",".join(BACKENDS),
                   help="comma-separated packed attention backends to try")
    p.add_argument("--tiling-methods", default="",
                   help="extra tiling methods to run as tiled-<method> (e.g. internvl,ureader)")
    p.add_argument("--sweeps", action=argparse.BooleanOptionalAction, default=True,
                   help="run the num_images / resolution / small_images sweeps")
    p.add_argument("--sweep-images", type=_int_list, default=None,
                   help="num_images sweep points (default CUDA 1,2,4,...,64; CPU 1,4,16,64; quick 1,4,16)")
    p.add_argument("--budgets", type=_int_list, default=None,
                   help="resolution sweep: tokens per image, 16 images (default CPU 64,256,1024; "
                   "CUDA 64,256,576,1024,2048; quick 16,64)")
    p.add_argument("--small-budget", type=_pos_int, default=None,
                   help="small_images sweep: max tokens per image (default CPU 64, CUDA 256, quick 16)")
    p.add_argument("--dense-max-tokens", type=_pos_int, default=None,
                   help="skip dense_mask above this many packed tokens (default CPU 16500, CUDA 70000)")
    p.add_argument("--plan-sizes", type=_pos_int, default=None,
                   help="distinct image sizes per planning-throughput timing (default 2000; quick 300)")
    p.add_argument("--no-plots", action="store_true", help="write the JSON only")
    p.add_argument("--no-progress", action="store_true", help="no progress bar")
    return p


@dataclass
class Settings:
    """Resolved run settings (every default filled in for the chosen device)."""

    quick: bool
    out: Path
    device: torch.device
    dtype: torch.dtype
    threads: int
    num_images: int
    scale: float
    repeats: int
    warmup: int
    seed: int
    backends: list[str]
    tiling_methods: list[str]
    sweeps: bool
    sweep_images: list[int]
    budgets: list[int]
    small_budget: int
    dense_max_tokens: int
    plan_sizes: int
    plots: bool
    progress: bool
    extra: dict = field(default_factory=dict)


def _resolve(args: argparse.Namespace, parser: argparse.ArgumentParser) -> Settings:
    if args.device == "auto":
        dev = torch.device("cuda" if torch.cuda.is_available() else "cpu")
    else:
        dev = torch.device(args.device)
        if dev.type == "cuda" and not torch.cuda.is_available():
            parser.error("--device cuda was requested but torch.cuda.is_available() is False on this machine")
    cuda = dev.type == "cuda"
    if args.dtype == "auto":
        dtype = torch.bfloat16 if cuda else torch.float32
    else:
        dtype = getattr(torch, args.dtype)
    backends = [b.strip() for b in args.backends.split(",") if b.strip()]
    bad = [b for b in backends if b not in BACKENDS]
    if bad or not backends:
        parser.error(f"--backends: unknown backend(s) {bad or backends}; choose from {', '.join(BACKENDS)}")
    if "loop" not in backends:
        backends.insert(0, "loop")  # the reference of every check
    from . import tiling

    methods = [m.strip() for m in args.tiling_methods.split(",") if m.strip()]
    bad = [m for m in methods if m not in tiling.METHODS]
    if bad:
        parser.error(f"--tiling-methods: unknown method(s) {bad}; choose from {', '.join(tiling.METHODS)}")
    methods = [m for m in dict.fromkeys(methods) if m != "llava_next"]
    q = args.quick
    sweep_images = args.sweep_images or ([1, 4, 16] if q else ([1, 2, 4, 8, 16, 32, 64] if cuda
                                                                else [1, 4, 16, 64]))
    budgets = args.budgets or ([16, 64] if q else ([64, 256, 576, 1024, 2048] if cuda else [64, 256, 1024]))
    date = _dt.date.today().isoformat()
    out = args.out
    if out is None:
        from . import ROOT

        out = ROOT / "results" / (f"tmp/quick-{dev.type}.json" if q else f"{dev.type}-{date}.json")
    out = Path(out)
    if out.suffix.lower() != ".json":
        parser.error(f"--out must name a .json file, got {str(out)!r}")
    return Settings(
        quick=q, out=out, device=dev, dtype=dtype,
        threads=args.threads or torch.get_num_threads(),
        num_images=args.num_images,
        scale=args.scale if args.scale is not None else (0.25 if q else (1.0 if cuda else 1 / 3)),
        repeats=args.repeats or (10 if cuda else 3),
        warmup=args.warmup if args.warmup is not None else (2 if cuda else (0 if q else 1)),
        seed=args.seed, backends=backends, tiling_methods=methods, sweeps=args.sweeps,
        sweep_images=sorted(set(sweep_images)), budgets=sorted(set(budgets)),
        small_budget=args.small_budget or (16 if q else (256 if cuda else 64)),
        dense_max_tokens=args.dense_max_tokens or (70000 if cuda else 16500),
        plan_sizes=args.plan_sizes or (300 if q else 2000),
        plots=not args.no_plots, progress=not args.no_progress,
    )


# ----------------------------------------------------------------------------------------------------------
# workload


def synthetic_sizes(n: int, seed: int = 0) -> list[tuple[int, int]]:
    """``n`` seeded (width, height) sizes: aspect W/H log-uniform in [1/3, 3] (1 in 8 at the extremes 1/8
    or 8), area log-uniform in [0.03, 2.0] megapixels. Deterministic for a given seed. Notebook 10."""
    if isinstance(n, bool) or not isinstance(n, int) or n < 0:
        raise ValueError(f"n must be an integer >= 0, got {n!r}")
    rng = np.random.default_rng(seed)
    out = []
    for _ in range(n):
        area = math.exp(rng.uniform(math.log(0.03e6), math.log(2.0e6)))
        if rng.uniform() < 1 / 8:
            aspect = 8.0 if rng.uniform() < 0.5 else 1 / 8
        else:
            aspect = math.exp(rng.uniform(math.log(1 / 3), math.log(3)))
        w = max(1, round(math.sqrt(area * aspect)))
        h = max(1, round(math.sqrt(area / aspect)))
        out.append((w, h))
    return out


def _synthetic_image(size: tuple[int, int], seed: int):
    from PIL import Image

    rng = np.random.default_rng(seed)
    small = Image.fromarray(rng.integers(0, 256, (8, 8, 3), dtype=np.uint8), "RGB")
    return small.resize(size, Image.BICUBIC)


@dataclass
class Item:
    """One workload image: its name, source ("data" or "synthetic") and (width, height)."""

    name: str
    source: str
    size: tuple[int, int]
    seed: int = 0

    def load(self):
        if self.source == "synthetic":
            return _synthetic_image(self.size, self.seed)
        from . import data

        return data.load_data_image(self.name)


def _data_items() -> tuple[list[Item], str | None]:
    """The curated images of data/ (in ``data.list_images()`` order) or an empty list and the reason."""
    from . import DATA_DIR

    found, note = _data_sizes(str(DATA_DIR))
    return [Item(name=n, source="data", size=sz) for n, sz in found], note


@functools.lru_cache(maxsize=4)
def _data_sizes(folder: str) -> tuple[tuple, str | None]:
    try:
        from . import data

        entries = data.list_images()
        out = []
        for e in entries:
            name = getattr(e, "name", e)
            name = Path(name).name if isinstance(name, (str, Path)) else str(name)
            out.append((name, tuple(data.load_data_image(name).size)))
    except Exception as e:  # data/ missing or broken: the workload falls back to synthetic images
        return (), f"data/ images unavailable ({folder}): {type(e).__name__}: {e}"
    return tuple(out), None


def make_workload(n: int, seed: int = 0, include_data: bool = True) -> list[Item]:
    """The first ``n`` images of the mixed workload: data/ images interleaved with synthetic ones (see the
    module docstring). The list for ``n`` is a prefix of the list for any larger ``n``. Notebook 10."""
    if isinstance(n, bool) or not isinstance(n, int) or n <= 0:
        raise ValueError(f"n must be a positive integer, got {n!r}")
    real = _data_items()[0] if include_data else []
    synth = [Item(f"synthetic-{i:03d}", "synthetic", s, seed=seed * 100003 + i)
             for i, s in enumerate(synthetic_sizes(n, seed))]
    out: list[Item] = []
    ri = si = 0
    while len(out) < n:
        if ri < len(real) and (len(out) % 2 == 0 or si >= len(synth)):
            out.append(real[ri])
            ri += 1
        else:
            out.append(synth[si])
            si += 1
    return out


def _tile_px(tile_size: int, scale: float) -> int:
    return max(PATCH, round(tile_size * scale / PATCH) * PATCH)


def _patch_span(lo: float, hi: float, extent: float, g: int) -> int:
    """Number of the g patches (of an axis of length ``extent``) that intersect [lo, hi)."""
    if hi <= lo:
        return 0
    a = math.floor(lo * g / extent + 1e-9)
    b = math.ceil(hi * g / extent - 1e-9)
    return max(0, min(g, b) - max(0, a))


def tiled_token_counts(plan, tile_px: int) -> dict:
    """Encoder tokens of a tiling plan whose tiles are fed at ``tile_px`` (a multiple of 14) pixels: total
    (with one CLS per tile), CLS, padding (patches that show only padding), duplicated (thumbnail patches
    showing content the tiles already show) and useful. Notebook 10."""
    if tile_px % PATCH:
        raise ValueError(f"tile_px must be a multiple of {PATCH}, got {tile_px}")
    g = tile_px // PATCH
    per = 1 + g * g
    pad = dup = 0
    t = plan.tile_size
    for (left, top, right, bottom) in plan.tile_content_boxes:
        inside = _patch_span(left, right, t, g) * _patch_span(top, bottom, t, g)
        pad += g * g - inside
    for v in plan.global_views:
        vw, vh = v.size
        cl, ct, cr, cb = v.content_box
        inside = _patch_span(cl, cr, vw, g) * _patch_span(ct, cb, vh, g)
        pad += g * g - inside
        if plan.tile_boxes:
            dup += inside
    n = plan.num_images
    return dict(images=n, tokens=n * per, cls_tokens=n, padding_tokens=pad, duplicated_tokens=dup,
                useful_tokens=n * per - n - pad - dup)


# ----------------------------------------------------------------------------------------------------------
# model glue


def _model_flops(model, lengths) -> int:
    """Useful FLOPs of one forward (block-diagonal attention): ``model.flops`` = ``vit.count_flops``."""
    return int(model.flops(list(lengths)))


def dense_executed_flops(lengths) -> int:
    """FLOPs a dense-mask kernel really computes for ONE packed sequence of images with ``lengths`` tokens:
    ``vit.count_flops(lengths)`` plus the masked-out attention pairs (every query still meets all N keys).
    Notebook 10."""
    from .vit import DEPTH, DIM, count_flops

    n = sum(int(v) for v in lengths)
    return int(count_flops(lengths) + 4 * DIM * DEPTH * (n * n - sum(int(v) ** 2 for v in lengths)))


def _to_tensor01(pil) -> torch.Tensor:
    arr = np.asarray(pil.convert("RGB"), dtype=np.float32) / 255.0
    return torch.from_numpy(arr).permute(2, 0, 1).contiguous()  # (3, H, W)


def _normalize(x: torch.Tensor) -> torch.Tensor:
    from . import vit

    return vit.normalize(x)  # (3, H, W) or (B, 3, H, W), ImageNet mean/std


@dataclass
class Inputs:
    """One prepared input set for one configuration (already on the device, in the run dtype)."""

    config: str
    images: int
    lengths: list[int]  # tokens per encoder sequence (CLS included)
    counts: dict
    payload: object  # (B, 3, t, t) tensor for tiled; list of (3, H_i, W_i) for packed
    info: dict = field(default_factory=dict)


def _prep_tiled(items, pils, method: str, scale: float, dev, dtype, options=None) -> Inputs:
    from . import tiling

    options = options or {}
    tiles, counts, grids = [], dict(tokens=0, cls_tokens=0, padding_tokens=0, duplicated_tokens=0,
                                    useful_tokens=0), []
    tpx = None
    for it, pil in zip(items, pils):
        pl = tiling.plan(method, it.size, **options)
        tpx = _tile_px(pl.tile_size, scale)
        x = tiling.apply(pl, pil).tensor  # (n, 3, t, t) in [0, 1]
        if x.shape[-1] != tpx:
            x = F.interpolate(x, size=(tpx, tpx), mode="bilinear", antialias=True, align_corners=False)
            x = x.clamp(0, 1)
        tiles.append(x)
        c = tiled_token_counts(pl, tpx)
        for k in counts:
            counts[k] += c[k]
        grids.append(list(pl.grid))
    x = _normalize(torch.cat(tiles)).to(dev, dtype)  # (B, 3, t, t)
    per = 1 + (tpx // PATCH) ** 2
    name = "tiled" if method == "llava_next" else f"tiled-{method}"
    return Inputs(name, len(items), [per] * x.shape[0], counts, x,
                  info=dict(method=method, tile_px=tpx, batch=x.shape[0], grids=grids))


def _llava_budget(item: Item, scale: float) -> int:
    """Patch tokens of the image's LLaVA-NeXT local tiles at the given scale (the packed budget)."""
    from . import tiling

    pl = tiling.plan("llava_next", item.size)
    g = _tile_px(pl.tile_size, scale) // PATCH
    return len(pl.tile_boxes) * g * g


def _prep_packed(items, pils, budgets, scale: float, dev, dtype, upscale: bool = False) -> tuple[list, dict]:
    from PIL import Image

    from .packing import native_size

    imgs, sizes = [], []
    for it, pil, b in zip(items, pils, budgets):
        w0, h0 = max(1, round(it.size[0] * scale)), max(1, round(it.size[1] * scale))
        w, h = native_size((w0, h0), "navit", patch_size=PATCH, max_tokens=int(b), allow_upscale=upscale)
        imgs.append(_normalize(_to_tensor01(pil.resize((w, h), Image.BICUBIC))).to(dev, dtype))  # (3, h, w)
        sizes.append((w, h))
    patches = [(w // PATCH) * (h // PATCH) for w, h in sizes]
    counts = dict(tokens=sum(patches) + len(patches), cls_tokens=len(patches), padding_tokens=0,
                  duplicated_tokens=0, useful_tokens=sum(patches))
    return imgs, dict(counts=counts, sizes=sizes, lengths=[p + 1 for p in patches])


# ----------------------------------------------------------------------------------------------------------
# timing


def _sync(dev):
    if dev.type == "cuda":
        torch.cuda.synchronize(dev)


def _time(fn, s: Settings) -> list[float]:
    """Seconds per run for ``s.repeats`` runs (fewer when one run is longer than LONG_RUN_S)."""
    times: list[float] = []
    if s.device.type == "cuda":
        for _ in range(s.repeats):
            a, b = torch.cuda.Event(enable_timing=True), torch.cuda.Event(enable_timing=True)
            a.record()
            fn()
            b.record()
            torch.cuda.synchronize(s.device)
            times.append(a.elapsed_time(b) / 1e3)
            if times[-1] > LONG_RUN_S and len(times) >= 2:
                break
    else:
        from torch.utils.benchmark import Timer

        timer = Timer(stmt="fn()", globals={"fn": fn}, num_threads=s.threads)
        for _ in range(s.repeats):
            times.append(timer.timeit(1).median)
            if times[-1] > LONG_RUN_S and len(times) >= 2:
                break
    return times


def _stats(times: list[float]) -> dict:
    t = np.asarray(times) * 1e3
    q1, med, q3 = np.percentile(t, [25, 50, 75])
    return dict(median_ms=float(med), iqr_ms=float(q3 - q1), min_ms=float(t.min()), max_ms=float(t.max()),
                reps=len(times), times_ms=[round(float(v), 4) for v in t])


def _matmul(s: Settings) -> dict:
    """FLOP/s of a large square matmul in the run's dtype on the run's device (same timing method)."""
    n = 8192 if s.device.type == "cuda" else 2048
    a = torch.randn(n, n, device=s.device, dtype=s.dtype)
    b = torch.randn(n, n, device=s.device, dtype=s.dtype)
    fn = lambda: torch.mm(a, b)
    for _ in range(2):
        fn()
    _sync(s.device)
    sub = Settings(**{**s.__dict__, "repeats": max(5, s.repeats)})
    st = _stats(_time(fn, sub))
    flops = 2 * n ** 3
    return dict(n=n, dtype=str(s.dtype).replace("torch.", ""), flops=flops, **st,
                flops_per_s=flops / (st["median_ms"] / 1e3))


def _max_diff(outs, refs) -> tuple[float, float]:
    if len(outs) != len(refs):
        raise BenchCheckError(f"{len(outs)} outputs for {len(refs)} reference outputs")
    diff = mag = 0.0
    for o, r in zip(outs, refs):
        if tuple(o.shape) != tuple(r.shape):
            raise BenchCheckError(f"output shape {tuple(o.shape)} differs from reference {tuple(r.shape)}")
        diff = max(diff, (o.float() - r.float()).abs().max().item())
        mag = max(mag, r.float().abs().max().item())
    return diff, mag


def _check(name: str, outs, refs, ref_name: str, s: Settings, where: str) -> dict:
    atol, rtol = TOLERANCE.get(str(s.dtype).replace("torch.", ""), TOLERANCE["float32"])
    diff, mag = _max_diff(outs, refs)
    tol = atol + rtol * mag
    ok = bool(diff <= tol) and math.isfinite(diff)
    rec = dict(config=name, sweep=where, reference=ref_name, max_abs_diff=diff, max_abs_ref=mag,
               tolerance=tol, passed=ok)
    if not ok:
        raise BenchCheckError(
            f"correctness check failed before timing: {name} ({where}) differs from {ref_name} by max abs "
            f"{diff:.3g} > tolerance {tol:.3g} ({s.dtype}); nothing was timed. Fix the backend first.")
    return rec


# ----------------------------------------------------------------------------------------------------------
# the run


def _meta(s: Settings) -> dict:
    cpu = platform.processor() or platform.machine()
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                cpu = line.split(":", 1)[1].strip()
                break
    except OSError:
        pass
    m = dict(date=_dt.datetime.now(_dt.timezone.utc).isoformat(timespec="seconds"),
             host=socket.gethostname(), cpu=cpu, cpu_count=os.cpu_count(), platform=platform.platform(),
             python=platform.python_version(),
             torch_version=torch.__version__, device=s.device.type, dtype=str(s.dtype).replace("torch.", ""),
             threads=s.threads, quick=s.quick, scale=s.scale, repeats=s.repeats, warmup=s.warmup, seed=s.seed,
             num_images=s.num_images, dense_max_tokens=s.dense_max_tokens, command=" ".join(sys.argv))
    if s.device.type == "cuda":
        props = torch.cuda.get_device_properties(s.device)
        m.update(device_name=props.name, gpu=props.name, gpu_memory_bytes=props.total_memory,
                 cuda_version=torch.version.cuda, driver=None)
        try:
            r = subprocess.run(["nvidia-smi", "--query-gpu=driver_version", "--format=csv,noheader"],
                               capture_output=True, text=True, timeout=20)
            m["driver"] = r.stdout.strip().splitlines()[0] if r.returncode == 0 and r.stdout.strip() else None
        except (OSError, subprocess.SubprocessError):
            pass
    else:
        m.update(device_name=cpu, gpu=None, driver=None)
    return m


def _cpu_memory(cfg: str, lengths: list[int]) -> dict:
    """Estimated bytes of the attention mask and of one block's largest activations (x, qkv, MLP hidden) at
    fp32 on CPU. ``loop`` holds one image at a time; flex pads q, k, v to ``vit.flex_padded_length``."""
    from .packing import mask_memory
    from .vit import DIM, FLEX_BLOCK, MLP_HIDDEN, flex_padded_length

    per_token = 4 * (4 * DIM + MLP_HIDDEN)
    n_tok = sum(lengths)
    if cfg == "packed-loop":
        return dict(mask_bytes=0, activation_bytes=per_token * max(lengths))
    if cfg.startswith("tiled"):
        return dict(mask_bytes=0, activation_bytes=per_token * n_tok)
    if cfg == "packed-flex":
        total = flex_padded_length(n_tok)
        mm = mask_memory(lengths, total=total, block_size=FLEX_BLOCK)
        return dict(mask_bytes=mm["block_mask"] + mm["block_segment_ids"],
                    activation_bytes=per_token * n_tok + 4 * 3 * DIM * (total - n_tok))
    mm = mask_memory(lengths)
    mask = mm["dense_bool"] if cfg == "packed-dense_mask" else mm["cu_seqlens"]
    return dict(mask_bytes=mask, activation_bytes=per_token * n_tok)


class _Runner:
    def __init__(self, s: Settings, model, meta: dict, bar):
        self.s, self.model, self.meta, self.bar = s, model, meta, bar
        self.results, self.checks, self.skipped, self.errors = [], [], [], []
        self.matmul = None

    def forward(self, cfg: str, inp: Inputs):
        m = self.model
        if cfg.startswith("tiled"):
            return lambda: m.forward_tiles(inp.payload)
        backend = cfg.split("-", 1)[1]
        return lambda: m.forward_packed(inp.payload, attention=backend)

    def measure(self, cfg: str, inp: Inputs, sweep: str, point: dict, check: dict):
        s = self.s
        fn = self.forward(cfg, inp)
        with torch.inference_mode():
            for _ in range(s.warmup if check.get("seconds", 0) < LONG_RUN_S else 0):
                fn()
            _sync(s.device)
            if s.device.type == "cuda":
                torch.cuda.reset_peak_memory_stats(s.device)
            times = _time(fn, s)
        st = _stats(times)
        sec = st["median_ms"] / 1e3
        flops = _model_flops(self.model, inp.lengths)
        executed = dense_executed_flops(inp.lengths) if cfg == "packed-dense_mask" else flops
        mm = self.matmul["flops_per_s"]
        rec = dict(config=cfg, sweep=sweep, **point, num_images=inp.images, sequences=len(inp.lengths),
                   max_sequence=max(inp.lengths), **inp.counts, **st,
                   images_per_s=inp.images / sec, tokens_per_s=inp.counts["tokens"] / sec,
                   flops=flops, executed_flops=executed, achieved_flops=flops / sec, matmul_flops=mm,
                   efficiency=flops / sec / mm, device=self.meta["device_name"], device_type=s.device.type,
                   dtype=self.meta["dtype"], torch_version=torch.__version__, threads=s.threads,
                   check_passed=check["passed"], check_max_abs_diff=check["max_abs_diff"],
                   info={k: v for k, v in inp.info.items() if k != "grids"})
        if s.device.type == "cuda":
            rec["peak_memory_bytes"] = int(torch.cuda.max_memory_allocated(s.device))
        else:
            rec["peak_memory_bytes"] = None
            rec.update(_cpu_memory(cfg, inp.lengths))
        self.results.append(rec)
        return rec

    def run_set(self, sweep: str, point: dict, items, pils, configs, tiled_methods, budgets=None,
                packed_scale=None, upscale=False):
        """Check, then time, every configuration on one input set (``point`` labels the sweep position)."""
        s, m = self.s, self.model
        with torch.inference_mode():
            # tiled: the reference is each tile alone through forward_packed(..., "loop")
            for method in tiled_methods:
                inp = _prep_tiled(items, pils, method, s.scale, s.device, s.dtype)
                self.bar.set_postfix_str(f"{sweep} {point.get('point', '')} {inp.config} check")
                t0 = time.perf_counter()
                out = m.forward_tiles(inp.payload)  # (B, 1 + N, D); also the first warm-up run
                _sync(s.device)
                sec = time.perf_counter() - t0
                ref = m.forward_packed(list(inp.payload), attention="loop")
                chk = _check(inp.config, list(out), ref, "forward_packed(each tile alone, 'loop')", s, sweep)
                chk["seconds"] = sec
                self.checks.append(chk)
                del out, ref
                self.bar.set_postfix_str(f"{sweep} {point.get('point', '')} {inp.config}")
                self.measure(inp.config, inp, sweep, point, chk)
                self.bar.update(1)
            if not configs:
                return
            if budgets is None:
                budgets = [_llava_budget(it, s.scale) for it in items]
            scale = s.scale if packed_scale is None else packed_scale
            imgs, pk = _prep_packed(items, pils, budgets, scale, s.device, s.dtype, upscale)
            n_tok = pk["counts"]["tokens"]
            self.bar.set_postfix_str(f"{sweep} {point.get('point', '')} packed-loop check")
            t0 = time.perf_counter()
            ref = m.forward_packed(imgs, attention="loop")  # the reference of every packed backend
            _sync(s.device)
            loop_sec = time.perf_counter() - t0
            if sweep == "main":  # the reference itself against the batched path, one image at a time
                alone = [m.forward_tiles(x[None])[0] for x in imgs]
                loop_chk = _check("packed-loop", ref, alone, "forward_tiles(each image alone)", s, sweep)
                del alone
            else:
                loop_chk = dict(config="packed-loop", sweep=sweep, max_abs_diff=0.0, max_abs_ref=None,
                                reference="(the reference; checked in main)", tolerance=None, passed=True)
            loop_chk["seconds"] = loop_sec
            self.checks.append(loop_chk)
            for cfg in configs:
                backend = cfg.split("-", 1)[1]
                if backend == "dense_mask" and n_tok > s.dense_max_tokens:
                    self.skipped.append(dict(
                        config=cfg, sweep=sweep, **point, tokens=n_tok,
                        reason=f"{n_tok} tokens > --dense-max-tokens {s.dense_max_tokens}: the N x N boolean "
                        f"mask alone is {n_tok * n_tok / 2**30:.2f} GiB and every query meets all N keys"))
                    self.bar.update(1)
                    continue
                chk = loop_chk
                try:
                    if backend != "loop":
                        self.bar.set_postfix_str(f"{sweep} {point.get('point', '')} {cfg} check")
                        t0 = time.perf_counter()
                        out = m.forward_packed(imgs, attention=backend)  # 1st warm-up (compiles flex)
                        _sync(s.device)
                        sec = time.perf_counter() - t0
                        chk = _check(cfg, out, ref, "packed-loop", s, sweep)
                        chk["seconds"] = sec
                        self.checks.append(chk)
                        del out
                    self.bar.set_postfix_str(f"{sweep} {point.get('point', '')} {cfg}")
                    inp = Inputs(cfg, len(items), pk["lengths"], pk["counts"], imgs,
                                 info=dict(sizes=pk["sizes"]))
                    self.measure(cfg, inp, sweep, point, chk)
                except BenchCheckError:
                    raise
                except Exception as e:  # a crash (not a wrong number): fatal in main, recorded in sweeps
                    first = (str(e).strip().splitlines() or [""])[0][:300]
                    msg = f"{type(e).__name__}: {first}"
                    if sweep == "main":
                        raise BenchCheckError(f"{cfg} crashed on the main set before timing: {msg}") from e
                    self.errors.append(dict(config=cfg, sweep=sweep, **point, tokens=n_tok, error=msg))
                self.bar.update(1)


def _available_configs(s: Settings) -> tuple[list[str], list[dict]]:
    """Packed configurations that run here, and the others with the model's own reason."""
    from . import vit

    configs, unavailable = [], []
    for b in s.backends:
        try:
            vit.resolve_attention(b, s.device, s.dtype)
            configs.append(f"packed-{b}")
        except ValueError as e:  # the message names the reason and the available backends
            unavailable.append(dict(config=f"packed-{b}", device=s.device.type, reason=str(e)))
    return configs, unavailable


def _planning(s: Settings, bar) -> list[dict]:
    """Plans per second for every tiling method over ``s.plan_sizes`` distinct seeded sizes."""
    from torch.utils.benchmark import Timer

    from . import tiling

    sizes = list(dict.fromkeys(synthetic_sizes(s.plan_sizes * 2, seed=s.seed + 7)))[: s.plan_sizes]
    out = []
    for method in tiling.METHODS:
        bar.set_postfix_str(f"planning {method}")
        ok = []
        for sz in sizes:
            try:
                tiling.plan(method, sz)
                ok.append(sz)
            except ValueError:
                pass
        fn = lambda m=method, z=ok: [tiling.plan(m, x) for x in z]
        timer = Timer(stmt="fn()", globals={"fn": fn}, num_threads=1)
        times = [timer.timeit(1).median for _ in range(3 if s.quick else 5)]
        st = _stats(times)
        out.append(dict(method=method, sizes=len(ok), refused=len(sizes) - len(ok), **st,
                        plans_per_s=len(ok) / (st["median_ms"] / 1e3), threads=1))
        bar.update(1)
    return out


def run(argv: list[str] | None = None) -> dict:
    """Run the benchmark with command-line style arguments; write the JSON (and plots); return the data.

    Raises :class:`BenchCheckError` when a configuration disagrees with its reference. Notebook 10.
    """
    from tqdm.auto import tqdm

    from . import tiling, vit

    parser = build_parser()
    s = _resolve(parser.parse_args(argv), parser)
    torch.manual_seed(s.seed)
    if s.device.type == "cpu":
        torch.set_num_threads(s.threads)
    meta = _meta(s)
    t0 = time.perf_counter()
    model = vit.load_dinov2(device=s.device, dtype=s.dtype)
    configs, unavailable = _available_configs(s)
    tiled_methods = ["llava_next", *s.tiling_methods]

    main_items = make_workload(s.num_images, s.seed)
    data_note = _data_items()[1]
    n_main = len(tiled_methods) + len(configs)
    jobs = n_main + len(tiling.METHODS) + 2
    if s.sweeps:
        jobs += (n_main * len([n for n in s.sweep_images if n != s.num_images])
                 + len(configs) * (len(s.budgets) + len(s.sweep_images)))
    bar = tqdm(total=jobs, desc="bench", disable=not s.progress, file=sys.stderr)
    r = _Runner(s, model, meta, bar)
    bar.set_postfix_str("matmul")
    r.matmul = _matmul(s)
    bar.update(1)

    def pils_of(items):
        return [it.load() for it in items]

    pils = pils_of(main_items)
    r.run_set("main", {}, main_items, pils, configs, tiled_methods)
    if s.sweeps:
        for n in s.sweep_images:
            if n == s.num_images:
                continue
            items = make_workload(n, s.seed)
            r.run_set("num_images", {"point": n}, items, pils_of(items), configs, tiled_methods)
        res_items = main_items[:16] if len(main_items) >= 16 else make_workload(16, s.seed)
        res_pils = pils if res_items is main_items or len(main_items) >= 16 else pils_of(res_items)
        for b in s.budgets:
            r.run_set("resolution", {"point": b, "budget": b}, res_items, res_pils[: len(res_items)], configs,
                      [], budgets=[b] * len(res_items), packed_scale=1.0, upscale=True)
        for n in s.sweep_images:
            items = make_workload(n, s.seed)
            r.run_set("small_images", {"point": n, "budget": s.small_budget}, items, pils_of(items), configs,
                      [], budgets=[s.small_budget] * n, packed_scale=1.0)
    planning = _planning(s, bar)
    bar.set_postfix_str("matmul again")
    end = _matmul(s)
    bar.update(1)
    bar.close()
    # The reference peak is the faster of the two matmul timings (start and end of the run): on a shared
    # machine a busy moment must not inflate the efficiencies.
    peak = max(r.matmul["flops_per_s"], end["flops_per_s"])
    r.matmul = dict(n=end["n"], dtype=end["dtype"], flops_per_s=peak, start=r.matmul, end=end)
    for rec in r.results:
        rec["matmul_flops"] = r.matmul["flops_per_s"]
        rec["efficiency"] = rec["achieved_flops"] / rec["matmul_flops"]
    for rec in r.results:  # the main set also belongs to the num_images sweep
        if rec["sweep"] == "main":
            rec["point"] = rec["num_images"]
    meta["wall_s"] = round(time.perf_counter() - t0, 1)
    meta["out"] = str(s.out)
    data = dict(
        schema=1, meta=meta,
        workload=dict(
            description="data/ images interleaved with seeded synthetic sizes (aspect log-uniform in "
            "[1/3, 3], 1 in 8 at 1/8 or 8; area log-uniform in [0.03, 2.0] MP); packed budget = tokens of "
            "the image's LLaVA-NeXT local tiles at the run's scale",
            data_note=data_note,
            main=[dict(name=it.name, source=it.source, size=list(it.size)) for it in main_items]),
        matmul=r.matmul, results=r.results, checks=r.checks, unavailable=unavailable, skipped=r.skipped,
        errors=r.errors,
        planning=planning, plots=[])
    s.out.parent.mkdir(parents=True, exist_ok=True)
    if s.plots:
        data["plots"] = _save_plots(data, s.out)
    s.out.write_text(json.dumps(data, indent=1, default=str))
    return data


def main(argv: list[str] | None = None) -> int:
    """Console entry point: run, print a table and where the files went. Exit 1 when a check fails."""
    try:
        data = run(argv)
    except BenchCheckError as e:
        print(f"error: {e}", file=sys.stderr)
        return 1
    print(results_table(data))
    for u in data["unavailable"]:
        print(f"unavailable: {u['config']}: {u['reason']}")
    for p in data["planning"]:
        print(f"planning {p['method']:>13}: {p['plans_per_s']:>10,.0f} plans/s")
    out = data["plots"]
    print("wrote", data["meta"]["out"], *out, sep="\n  ")
    return 0


# ----------------------------------------------------------------------------------------------------------
# reading results, tables and plots


def load_results(path) -> dict:
    """Read a benchmark JSON file and check that it has the fields the notebook uses."""
    data = json.loads(Path(path).read_text())
    for key in ("meta", "results"):
        if key not in data:
            raise ValueError(f"{path}: not a benchmark result (no {key!r})")
    return data


def recorded_results(folder=None) -> list[tuple[Path, dict]]:
    """Committed results under ``results/`` (not ``results/tmp``), each with its device in ``meta``."""
    from . import ROOT

    folder = Path(folder) if folder is not None else ROOT / "results"
    out = []
    for p in sorted(folder.glob("*.json")):
        try:
            d = load_results(p)
        except (ValueError, json.JSONDecodeError):
            continue
        if d["meta"].get("device_name"):
            out.append((p, d))
    return out


def results_table(data: dict, sweep: str = "main") -> str:
    """A plain-text table of one sweep's records (the main set by default)."""
    rows = [r for r in data["results"] if r["sweep"] == sweep]
    head = (f"{'config':<18}{'imgs':>5}{'tokens':>8}{'pad':>7}{'dup':>7}{'median ms':>11}{'IQR':>8}"
            f"{'img/s':>8}{'tok/s':>9}{'GFLOP/s':>9}{'eff':>6}{'maxdiff':>9}")
    m = data["meta"]
    lines = [f"{m['device_name']} · {m['dtype']} · {m['threads']} threads · torch {m['torch_version']} · "
             f"scale {m['scale']:.3g} · sweep {sweep}", head]
    for r in rows:
        lines.append(f"{r['config']:<18}{r['num_images']:>5}{r['tokens']:>8}{r['padding_tokens']:>7}"
                     f"{r['duplicated_tokens']:>7}{r['median_ms']:>11.1f}{r['iqr_ms']:>8.1f}"
                     f"{r['images_per_s']:>8.1f}{r['tokens_per_s']:>9.0f}{r['achieved_flops'] / 1e9:>9.1f}"
                     f"{r['efficiency']:>6.0%}{r['check_max_abs_diff']:>9.1e}")
    mm = data.get("matmul")
    if mm:
        lines.append(f"matmul {mm['n']}x{mm['n']} {mm['dtype']}: {mm['flops_per_s'] / 1e9:.1f} GFLOP/s")
    return "\n".join(lines)


COLORS = {"tiled": "#7f7f7f", "packed-loop": "#1f77b4", "packed-dense_mask": "#d62728",
          "packed-flex": "#2ca02c", "packed-varlen": "#9467bd"}


def _color(cfg: str) -> str:
    return COLORS.get(cfg, "#ff7f0e")


def _title(data: dict) -> str:
    m = data["meta"]
    return f"{m['device_name']} · {m['dtype']} · {m['threads']} threads · scale {m['scale']:.3g}"


def plot_summary(data: dict):
    """Main set: median time per configuration (with min-max whiskers), the encoder tokens of each split
    into useful / CLS / padding / thumbnail-duplicated, and the FLOP efficiency vs the same-run matmul.
    Notebook 10."""
    import matplotlib.pyplot as plt

    rows = [r for r in data["results"] if r["sweep"] == "main"]
    if not rows:
        raise ValueError("no main-set records in these results")
    names = [r["config"] for r in rows]
    fig, axes = plt.subplots(1, 3, figsize=(15, 4.4))
    y = np.arange(len(rows))
    ax = axes[0]
    med = np.array([r["median_ms"] for r in rows])
    lo = med - np.array([r["min_ms"] for r in rows])
    hi = np.array([r["max_ms"] for r in rows]) - med
    ax.barh(y, med, xerr=[lo, hi], color=[_color(n) for n in names], capsize=3)
    for i, v in enumerate(med):
        ax.text(v + hi[i], i - 0.3, f" {v:,.0f} ms", va="center", fontsize=8)
    ax.set_yticks(y, names)
    ax.invert_yaxis()
    ax.set_xlabel("median time per forward (ms; whiskers min-max)")
    ax.set_title(f"{rows[0]['num_images']} mixed images: time")
    ax.set_xlim(0, (med + hi).max() * 1.3)
    ax = axes[1]
    parts = [("useful_tokens", "useful", "#2ca02c"), ("cls_tokens", "CLS", "#1f77b4"),
             ("padding_tokens", "padding", "#d62728"),
             ("duplicated_tokens", "thumbnail (duplicated)", "#ff7f0e")]
    left = np.zeros(len(rows))
    for key, label, col in parts:
        v = np.array([r[key] for r in rows], dtype=float)
        ax.barh(y, v, left=left, color=col, label=label)
        left += v
    ax.set_yticks(y, names)
    ax.invert_yaxis()
    ax.set_xlabel("encoder tokens")
    ax.set_title("what the encoder processes")
    ax.legend(fontsize=8, loc="lower right")
    ax = axes[2]
    eff = np.array([r["efficiency"] for r in rows]) * 100
    ax.barh(y, eff, color=[_color(n) for n in names])
    for i, v in enumerate(eff):
        ax.text(v, i, f" {v:.0f}%", va="center", fontsize=8)
    ax.set_yticks(y, names)
    ax.invert_yaxis()
    mm = data["matmul"]
    ax.set_xlabel(f"% of a {mm['n']}² matmul ({mm['flops_per_s'] / 1e9:,.0f} GFLOP/s, same run)")
    ax.set_title("FLOP efficiency (useful FLOPs / time)")
    ax.set_xlim(0, max(100, eff.max() * 1.2))
    fig.suptitle(_title(data))
    fig.tight_layout()
    plt.close(fig)  # shown once, as the cell's value; never accumulates in pyplot
    return fig


def _series(data: dict, sweeps: tuple[str, ...]):
    out: dict[str, list] = {}
    for r in data["results"]:
        if r["sweep"] in sweeps:
            out.setdefault(r["config"], []).append(r)
    for v in out.values():
        v.sort(key=lambda r: r["point"])
    return out


def plot_num_images(data: dict):
    """Time and images/s against the number of mixed images (1 -> 64), log axes; plus the small-images
    series (packed only) when present. Notebook 10."""
    import matplotlib.pyplot as plt

    mixed = _series(data, ("main", "num_images"))
    small = _series(data, ("small_images",))
    fig, axes = plt.subplots(1, 2, figsize=(13, 4.6))
    for cfg, rs in mixed.items():
        x = [r["num_images"] for r in rs]
        err = [[r["median_ms"] - r["min_ms"] for r in rs], [r["max_ms"] - r["median_ms"] for r in rs]]
        axes[0].errorbar(x, [r["median_ms"] for r in rs], yerr=err, marker="o", color=_color(cfg), label=cfg,
                         capsize=2)
        axes[1].plot(x, [r["images_per_s"] for r in rs], marker="o", color=_color(cfg), label=cfg)
    for cfg, rs in small.items():
        x = [r["num_images"] for r in rs]
        lab = f"{cfg} (small, ≤{rs[0].get('budget')} tok)"
        axes[0].plot(x, [r["median_ms"] for r in rs], marker="s", ls="--", color=_color(cfg), alpha=0.7,
                     label=lab)
        axes[1].plot(x, [r["images_per_s"] for r in rs], marker="s", ls="--", color=_color(cfg), alpha=0.7,
                     label=lab)
    points = sorted({r["num_images"] for rs in (*mixed.values(), *small.values()) for r in rs})
    for ax, lab in zip(axes, ("median time per forward (ms)", "images per second")):
        ax.set_xscale("log", base=2)
        ax.set_xticks(points, [str(p) for p in points])
        ax.minorticks_off()
        ax.set_yscale("log")
        ax.set_xlabel("number of images in the batch / packed sequence")
        ax.set_ylabel(lab)
        ax.grid(True, which="both", alpha=0.3)
    axes[0].set_title("time vs number of images (solid: mixed set)")
    axes[1].set_title("throughput vs number of images")
    handles, labels = axes[0].get_legend_handles_labels()
    fig.legend(handles, labels, fontsize=8, loc="center left", bbox_to_anchor=(0.995, 0.5))
    fig.suptitle(_title(data))
    fig.tight_layout()
    plt.close(fig)  # shown once, as the cell's value; never accumulates in pyplot
    return fig


def plot_resolution(data: dict):
    """Packed backends against total tokens (16 images, budget per image swept), log-log: the dense mask's
    time and mask memory grow as N^2, block-sparse flex / varlen follow the per-image cost. Notebook 10."""
    import matplotlib.pyplot as plt

    from .packing import mask_memory

    ser = _series(data, ("resolution",))
    if not ser:
        raise ValueError("no resolution-sweep records in these results (run with --sweeps)")
    fig, axes = plt.subplots(1, 2, figsize=(13, 4.6))
    for cfg, rs in ser.items():
        x = [r["tokens"] for r in rs]
        axes[0].plot(x, [r["median_ms"] for r in rs], marker="o", color=_color(cfg), label=cfg)
    # reference slopes through the fastest point at the smallest N
    first = min((rs[0] for rs in ser.values()), key=lambda r: (r["tokens"], r["median_ms"]))
    if first:
        x0, y0 = first["tokens"], first["median_ms"]
        xs = np.array([x0, max(r["tokens"] for rs in ser.values() for r in rs)])
        axes[0].plot(xs, y0 * (xs / x0), ":", color="k", lw=1, label="∝ N")
        axes[0].plot(xs, y0 * (xs / x0) ** 2, "--", color="k", lw=1, label="∝ N²")
    axes[0].set_title("time vs packed tokens (16 images)")
    axes[0].set_ylabel("median time per forward (ms)")
    rs = next(iter(ser.values()))
    nimg = rs[0]["num_images"]
    toks = np.array(sorted({r["tokens"] for v in ser.values() for r in v}))
    mems = [mask_memory([int(t) // nimg] * nimg) for t in toks]
    axes[1].plot(toks, [m["dense_bool"] for m in mems], marker="o", color=_color("packed-dense_mask"),
                 label="dense bool mask (N²)")
    axes[1].plot(toks, [m["block_mask"] + m["block_segment_ids"] for m in mems], marker="o",
                 color=_color("packed-flex"), label="flex BlockMask (blocks² + ids)")
    axes[1].plot(toks, [m["cu_seqlens"] for m in mems], marker="o", color=_color("packed-varlen"),
                 label="cu_seqlens (k+1)")
    axes[1].set_title("mask memory vs packed tokens")
    axes[1].set_ylabel("bytes")
    for ax in axes:
        ax.set_xscale("log")
        ax.set_yscale("log")
        ax.set_xlabel("tokens in the packed sequence (N)")
        ax.grid(True, which="both", alpha=0.3)
        ax.legend(fontsize=8)
    fig.suptitle(_title(data))
    fig.tight_layout()
    plt.close(fig)  # shown once, as the cell's value; never accumulates in pyplot
    return fig


def plot_workload(items, scale: float = 1.0):
    """The benchmark's images as numbered points (width, height) on log axes, coloured by source, and a list
    giving each its LLaVA-NeXT grid (rows x cols + thumbnail) and the tiled encoder tokens at ``scale``.
    Notebook 10."""
    import matplotlib.pyplot as plt

    from . import tiling

    if not items:
        raise ValueError("items is empty")
    fig, (ax, tx) = plt.subplots(1, 2, figsize=(11, 5), gridspec_kw=dict(width_ratios=[1.6, 1]))
    colors = {"data": "#1f77b4", "synthetic": "#ff7f0e"}
    lines = []
    for i, it in enumerate(items, 1):
        ax.scatter(*it.size, c=colors.get(it.source, "k"), marker="o" if it.source == "data" else "s", s=36,
                   zorder=3)
        pl = tiling.plan("llava_next", it.size)
        tok = tiled_token_counts(pl, _tile_px(pl.tile_size, scale))["tokens"]
        grid = f"{pl.grid[0]}x{pl.grid[1]}+1"
        lines.append(f"{i:>2} {it.name:<18} {it.size[0]:>4}x{it.size[1]:<4} {grid:<5} {tok:>5}")
    at: dict[tuple, list[str]] = {}
    for i, it in enumerate(items, 1):  # identical sizes share one number label
        at.setdefault(tuple(it.size), []).append(str(i))
    for size, nums in at.items():
        ax.annotate(",".join(nums), size, textcoords="offset points", xytext=(4, 4), fontsize=7)
    for src, col in colors.items():
        n = sum(it.source == src for it in items)
        ax.scatter([], [], c=col, marker="o" if src == "data" else "s", label=f"{src} ({n})")
    ax.plot([10, 6000], [10, 6000], ":", color="grey", lw=1, label="square (W = H)")
    ax.set_xscale("log")
    ax.set_yscale("log")
    ax.set_xlim(30, 6000)
    ax.set_ylim(30, 6000)
    ax.set_xlabel("width (px)")
    ax.set_ylabel("height (px)")
    ax.set_title(f"the benchmark's {len(items)} mixed images (width, height)")
    ax.grid(True, which="both", alpha=0.3)
    ax.legend(fontsize=8, loc="lower right")
    tx.axis("off")
    head = f"{'#':>2} {'image':<18} {'W x H':<9} {'grid':<5} {'tok':>5}"
    tx.text(0, 1, "\n".join([head, *lines]), family="monospace", fontsize=7.5, va="top")
    tx.set_title(f"LLaVA-NeXT grid (rows x cols + thumbnail), tiled tokens at scale {scale:.3g}", fontsize=8)
    fig.tight_layout()
    plt.close(fig)  # shown once, as the cell's value; never accumulates in pyplot
    return fig


def plot_planning(data: dict):
    """Plans per second per tiling method (log axis) against the 10,000 plans/s target. Notebook 10."""
    import matplotlib.pyplot as plt

    rows = data.get("planning") or []
    if not rows:
        raise ValueError("no planning records in these results")
    fig, ax = plt.subplots(figsize=(7, 3.4))
    y = np.arange(len(rows))
    v = [r["plans_per_s"] for r in rows]
    ax.barh(y, v, color="#1f77b4")
    for i, val in enumerate(v):
        ax.text(val, i, f" {val:,.0f}", va="center", fontsize=8)
    ax.axvline(10_000, color="k", ls="--", lw=1, label="target 10,000 plans/s")
    ax.set_yticks(y, [r["method"] for r in rows])
    ax.invert_yaxis()
    ax.set_xscale("log")
    ax.set_xlim(min(v + [10_000]) / 3, max(v + [10_000]) * 5)
    ax.set_xlabel("plans per second (one thread, pure geometry)")
    ax.set_title(f"planning throughput · {data['meta']['cpu']}", fontsize=9)
    ax.legend(fontsize=8, loc="lower right")
    fig.tight_layout()
    plt.close(fig)  # shown once, as the cell's value; never accumulates in pyplot
    return fig


def _save_plots(data: dict, out: Path) -> list[str]:
    import matplotlib.pyplot as plt

    paths = []
    plots = [("summary", plot_summary), ("num_images", plot_num_images), ("planning", plot_planning)]
    if any(r["sweep"] == "resolution" for r in data["results"]):
        plots.insert(2, ("resolution", plot_resolution))
    for name, fn in plots:
        fig = fn(data)
        p = out.with_name(f"{out.stem}-{name}.png")
        fig.savefig(p, dpi=110, bbox_inches="tight")
        plt.close(fig)
        paths.append(str(p))
    return paths


if __name__ == "__main__":
    sys.exit(main())
