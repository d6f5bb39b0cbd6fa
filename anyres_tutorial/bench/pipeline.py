"""The whole path from an image file to encoder outputs, timed stage by stage. Taught in `timing`.

The main comparison times the encoder alone. Serving images also pays for decoding, planning, resizing /
padding / cropping, normalising (and the copy to the device) and packing. :func:`run_pipelines` times every
stage for every registered tiling method and for packing with the device's ``auto`` backend (one sequence,
and rows of ``--rows`` slots), on the first ``--pipeline-images`` images of the main set: one untimed pass of
each (compiles), then interleaved rounds; each stage ends with a device synchronisation.
"""

from __future__ import annotations

import io
import time
from pathlib import Path

import numpy as np
import torch

from .. import tiling
from ..encoder import attention
from ..encoder.vit import normalize
from ..packing import pack_images
from ..types import PATCH
from . import timing
from .workload import Config, Item, native_sizes, packed_budget, tile_px, tiles_at, to_tensor01

STAGES = ("decode", "plan", "resize", "normalise", "pack", "vit")
PIPELINE_ROUNDS = 3  # at most this many timed rounds: the pipeline's spread needs no more


def pipelines(s) -> list[Config]:
    """The pipelines a run times: every registered tiling method, then packing with the device's ``auto``
    backend as one sequence and (``--rows``) in rows."""
    backend = attention.resolve("auto", s.device, s.dtype)
    out = [Config.tiled(m) for m in tiling.METHODS] + [Config.packed(backend)]
    return out + ([Config.packed(backend, max_len=s.rows)] if s.rows else [])


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
    x = torch.cat([tiles_at(pl, p, tile_px(pl.tile_size, s.scale)) for pl, p in zip(plans, pils)])
    w.lap("resize")  # (B, 3, t, t) in [0, 1]
    x = normalize(x).to(s.device, s.dtype)
    w.lap("normalise")
    w.lap("pack")
    out = model.forward_tiles(x)  # (B, 1 + N, D)
    w.lap("vit")
    return w.laps, out.shape[0] * out.shape[1]


def _packed_pass(config: Config, srcs, model, s) -> tuple[dict, int]:
    from PIL import Image

    w = _Stopwatch(s.device)
    pils = [decode(x) for x in srcs]
    w.lap("decode")
    items = [Item("", "", p.size) for p in pils]
    sizes = native_sizes(items, [packed_budget(it, s.scale) for it in items], s.scale)
    w.lap("plan")
    imgs = [to_tensor01(p.resize(tuple(z), Image.BICUBIC)) for p, z in zip(pils, sizes)]  # (3, h, w)
    w.lap("resize")
    imgs = [normalize(x).to(s.device, s.dtype) for x in imgs]
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
        r.label("pipeline", {}, f"{config} warm-up")
        try:
            one_pass(config, srcs, r.model, s)  # untimed: compiles, caches
            passes[config] = []
        except ValueError as e:  # e.g. an image longer than a row
            r.skipped.append(dict(config=config.name, sweep="pipeline", tokens=None, reason=str(e)))
            r.bar.update(1)
    tokens = {}
    for _ in range(min(s.repeats, PIPELINE_ROUNDS)):  # interleaved: one pass of every pipeline per round
        for config, laps in passes.items():
            r.label("pipeline", {}, config)
            lap, tokens[config] = one_pass(config, srcs, r.model, s)
            laps.append(lap)
    out = [_summary(c, laps, tokens[c], len(items)) for c, laps in passes.items()]
    r.bar.update(len(out))
    return out
