"""The whole path from an image file to encoder outputs, timed stage by stage. Taught in `timing`.

The main comparison times the encoder alone, on inputs prepared beforehand. A model serving images pays for
more: decoding the file, planning, resizing / padding / cropping, normalising (and moving to the device),
packing, and only then the ViT. On a GPU the encoder can take milliseconds while the CPU-side steps take
longer. :func:`run_pipelines` times every step for every registered tiling method (``tiling.METHODS``,
``tiling.plan`` and ``tiling.apply``: no method is named here) and for packing with the device's ``auto``
attention backend, as one sequence and in rows of ``--rows`` slots, on the first ``--pipeline-images`` images
of the main set:

- ``decode``: ``PIL.Image.open`` of the data/ file (synthetic images: of their PNG bytes, encoded once
  before timing) and ``convert("RGB")``, which forces the decode;
- ``plan``: ``tiling.plan(method, size)``; packing: the reference tiling's budget and
  ``packing.native_size``;
- ``resize``: ``tiling.apply`` (resize, pad, crop into tiles; resampled to the run's tile side when that is
  not the method's) or the resize to the native size, as (3, H, W) tensors in [0, 1];
- ``normalise``: ImageNet mean / std, cast and copy to the device;
- ``pack``: ``packing.pack_images`` into rows (``0`` when the images go as one sequence: ``forward_packed``
  concatenates them inside the ``vit`` step);
- ``vit``: the encoder (``forward_tiles`` / ``forward_packed``), the device synchronised after it.

Each stage ends with a device synchronisation. One untimed pass of every pipeline first (the flex compile),
then ``--repeats`` interleaved rounds (one pass of every pipeline per round); every stage gets its median
and min / max over the rounds, the total its median.
"""

from __future__ import annotations

import io
import time
from pathlib import Path

import numpy as np
import torch

from .. import tiling
from ..encoder import attention
from ..types import PATCH
from . import timing
from .config import Config
from .workload import _normalize, _tiles_at, _to_tensor01, packed_budget, tile_px

STAGES = ("decode", "plan", "resize", "normalise", "pack", "vit")
PIPELINE_ROUNDS = 3  # at most this many timed rounds: the pipeline's spread needs no more


def pipelines(s) -> list[Config]:
    """The pipelines a run times: every registered tiling method, then packing with the device's ``auto``
    backend as one sequence and (``--rows``) in rows."""
    backend = attention.resolve("auto", s.device, s.dtype)
    out = [Config.tiled(m) for m in tiling.METHODS] + [Config.packed(backend)]
    return out + ([Config.packed(backend, max_len=s.rows)] if s.rows else [])


def pipeline_work(s) -> tuple[int, int]:
    """(number of pipelines, executed encoder FLOPs of one pass of every pipeline) on the first
    ``s.pipeline_images`` main-set images, from token counts alone (for :func:`~.estimate.estimate`)."""
    from ..encoder.arch import count_flops
    from .preset import _packed_lengths, _row_segments
    from .workload import make_workload

    items = make_workload(s.num_images, s.seed)[: s.pipeline_images]
    flops = 0
    for config in pipelines(s):
        if config.kind == "tiled":
            for it in items:
                pl = tiling.plan(config.method, it.size)
                flops += count_flops([1 + (tile_px(pl.tile_size, s.scale) // PATCH) ** 2] * pl.num_images)
            continue
        lengths = _packed_lengths(s, "main", s.num_images, items)
        segs = _row_segments(lengths, config.max_len) if config.rows else [lengths]
        flops += sum(attention.executed_flops(config.backend, seg) for seg in segs)
    return len(pipelines(s)), flops


def sources(items) -> list[tuple[str, object]]:
    """What each image is decoded from: the data/ file's path, or the PNG bytes of a synthetic image."""
    from .. import data

    out = []
    for it in items:
        if it.source == "data":
            out.append(("file", Path(data.data_path(it.name))))
        else:
            buf = io.BytesIO()
            it.load().save(buf, format="PNG")
            out.append(("bytes", buf.getvalue()))
    return out


def decode(src: tuple[str, object]):
    """Decode one source into an RGB PIL image (``convert`` forces the pixels to be read)."""
    from PIL import Image

    kind, what = src
    return Image.open(io.BytesIO(what) if kind == "bytes" else what).convert("RGB")


class _Stopwatch:
    """Seconds between consecutive :meth:`lap` calls, the device synchronised before each."""

    def __init__(self, dev):
        self.dev, self.laps = dev, {}
        timing.sync(dev)
        self.t = time.perf_counter()

    def lap(self, stage: str) -> None:
        timing.sync(self.dev)
        now = time.perf_counter()
        self.laps[stage] = self.laps.get(stage, 0.0) + now - self.t
        self.t = now


def _tiled_pass(config: Config, srcs, model, s) -> tuple[dict, int]:
    w = _Stopwatch(s.device)
    pils = [decode(x) for x in srcs]
    w.lap("decode")
    plans = [tiling.plan(config.method, p.size) for p in pils]
    w.lap("plan")
    x = torch.cat([_tiles_at(pl, p, tile_px(pl.tile_size, s.scale)) for pl, p in zip(plans, pils)])
    w.lap("resize")  # (B, 3, t, t) in [0, 1]
    x = _normalize(x).to(s.device, s.dtype)
    w.lap("normalise")
    w.lap("pack")
    out = model.forward_tiles(x)  # (B, 1 + N, D)
    w.lap("vit")
    return w.laps, out.shape[0] * out.shape[1]


def _packed_pass(config: Config, srcs, model, s) -> tuple[dict, int]:
    from PIL import Image

    from ..packing import native_size, pack_images
    from .workload import Item

    w = _Stopwatch(s.device)
    pils = [decode(x) for x in srcs]
    w.lap("decode")
    sizes = []
    for p in pils:
        b = packed_budget(Item("", "", p.size), s.scale)
        scaled = (max(1, round(p.size[0] * s.scale)), max(1, round(p.size[1] * s.scale)))
        sizes.append(native_size(scaled, "navit", patch_size=PATCH, max_tokens=b))
    w.lap("plan")
    imgs = [_to_tensor01(p.resize(tuple(z), Image.BICUBIC)) for p, z in zip(pils, sizes)]  # (3, h, w)
    w.lap("resize")
    imgs = [_normalize(x).to(s.device, s.dtype) for x in imgs]
    w.lap("normalise")
    payload = pack_images(imgs, PATCH, config.max_len, cls_token=True) if config.rows else imgs
    w.lap("pack")
    out = model.forward_packed(payload, attention=config.backend)  # n x (1 + N_i, D)
    w.lap("vit")
    return w.laps, sum(o.shape[0] for o in out)


def one_pass(config: Config, srcs, model, s) -> tuple[dict, int]:
    """One timed pass of a pipeline -> ({stage: seconds}, encoder tokens out)."""
    with torch.inference_mode():
        return (_tiled_pass if config.kind == "tiled" else _packed_pass)(config, srcs, model, s)


def _summary(config: Config, laps: list[dict], tokens: int, n: int) -> dict:
    stages = {}
    for st in STAGES:
        v = np.array([lap[st] for lap in laps]) * 1e3
        stages[st] = dict(median_ms=float(np.median(v)), min_ms=float(v.min()), max_ms=float(v.max()))
    total = np.array([sum(lap.values()) for lap in laps]) * 1e3
    q1, med, q3 = np.percentile(total, [25, 50, 75])
    return dict(config=config.name, kind=config.kind, method=config.method, backend=config.backend,
                max_len=config.max_len, num_images=n, tokens=tokens, stages=stages, median_ms=float(med),
                iqr_ms=float(q3 - q1), min_ms=float(total.min()), max_ms=float(total.max()), reps=len(laps),
                order="interleaved",
                cpu_share=1 - stages["vit"]["median_ms"] / max(1e-9, sum(v["median_ms"]
                                                                          for v in stages.values())))


def run_pipelines(r, items) -> list[dict]:
    """Time every pipeline of :func:`pipelines` on ``items`` (see the module docstring) -> one record
    each, in ``r.skipped`` / ``r.errors`` instead when it cannot run."""
    s = r.s
    srcs = sources(items)
    passes = {}
    for config in pipelines(s):
        r._label("pipeline", {}, f"{config} warm-up")
        try:
            one_pass(config, srcs, r.model, s)  # untimed: compiles, caches
            passes[config] = []
        except ValueError as e:  # e.g. an image longer than a row
            r.skipped.append(dict(config=config.name, sweep="pipeline", tokens=None, reason=str(e)))
            r.bar.update(1)
    tokens = {}
    for _ in range(min(s.repeats, PIPELINE_ROUNDS)):  # interleaved: one pass of every pipeline per round
        for config, laps in passes.items():
            r._label("pipeline", {}, config)
            lap, tokens[config] = one_pass(config, srcs, r.model, s)
            laps.append(lap)
    out = [_summary(c, laps, tokens[c], len(items)) for c, laps in passes.items()]
    r.bar.update(len(out))
    return out
