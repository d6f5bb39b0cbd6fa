"""What the benchmark compares and on what: the images, one typed :class:`Config` per configuration, the
inputs
each configuration feeds the encoder and what they cost besides time (FLOPs, mask and activation bytes).

Taught in `timing`. The workload (seeded) interleaves the curated images of ``data/`` with synthetic images
whose sizes follow :func:`synthetic_sizes` (smooth random colour fields). :func:`prepare_tiled` cuts every
image with a tiling method into ONE batch of equal tiles; :func:`prepare_packed` resizes every image to its
NaViT size under the budget of its reference-tiling tiles, for one packed sequence; :func:`prepare_rows`
packs those into rows of ``max_len`` slots as training packs them.
"""

from __future__ import annotations

import functools
import math
import re
from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import Literal

import numpy as np
import torch
import torch.nn.functional as F

from .. import tiling
from ..checks import check_int, check_positive_int
from ..encoder import attention
from ..encoder.arch import DIM, MLP_HIDDEN
from ..types import PATCH, Size
from .cli import Settings

# ----------------------------------------------------------------------------------------------------------
# configurations

KINDS = ("tiled", "packed")
TRAIN_PREFIX = "train"  # a training step: "train-" + the forward configuration's name
ROWS_TAG = "-rows"  # packed into rows: "packed-<backend>-rows<max_len>"
_ROWS = re.compile(r"^(?P<backend>.+)" + re.escape(ROWS_TAG) + r"(?P<max_len>[0-9]+)$")


@dataclass(frozen=True)
class Config:
    """One configuration: a tiled batch of one tiling ``method``, or packed images run with one attention
    ``backend`` as ONE unbounded sequence (``max_len=None``) or in rows of ``max_len`` slots; ``train=True``:
    one training step instead of one forward. Its ``name`` is what the JSON records carry (``tiled``,
    ``tiled-<method>``, ``packed-<backend>``, ``packed-<backend>-rows<L>``, ``train-`` in front); code reads
    the fields, never the name (:meth:`parse` reads a recorded name back)."""

    kind: Literal["tiled", "packed"]
    method: str | None = None  # the tiling method (tiled only)
    backend: str | None = None  # the attention backend (packed only)
    train: bool = False
    max_len: int | None = None  # packed only: rows of this many slots (None: one unbounded sequence)

    def __post_init__(self):
        if self.kind not in KINDS:
            raise ValueError(f"Config.kind must be one of {KINDS}, got {self.kind!r}")
        own, other = (self.method, self.backend) if self.kind == "tiled" else (self.backend, self.method)
        what = "method" if self.kind == "tiled" else "backend"
        if not isinstance(own, str) or not own:
            raise ValueError(f"a {self.kind} Config needs a {what} name, got {own!r}")
        if other is not None:
            raise ValueError(f"a {self.kind} Config takes only a {what}, got {self!r}")
        if not isinstance(self.train, bool):
            raise TypeError(f"Config.train must be True or False, got {self.train!r}")
        if self.max_len is not None:
            if self.kind != "packed":
                raise ValueError(f"only a packed Config has rows (max_len), got {self!r}")
            if isinstance(self.max_len, bool) or not isinstance(self.max_len, int) or self.max_len <= 0:
                raise ValueError(f"Config.max_len must be a positive int or None, got {self.max_len!r}")

    @classmethod
    def tiled(cls, method: str | None = None, train: bool = False) -> Config:
        """A tiled batch with ``method`` (default: the benchmark's reference tiling)."""
        return cls("tiled", method=method or tiling.DEFAULT_METHOD, train=train)

    @classmethod
    def packed(cls, backend: str, train: bool = False, max_len: int | None = None) -> Config:
        """Packed images run with attention ``backend``: one sequence, or rows of ``max_len`` slots."""
        return cls("packed", backend=backend, train=train, max_len=max_len)

    @property
    def rows(self) -> bool:
        return self.max_len is not None

    def single(self) -> Config:
        """The same configuration as one unbounded packed sequence."""
        return replace(self, max_len=None)

    @classmethod
    def parse(cls, name: str) -> Config:
        """The configuration a recorded name stands for (names are not checked against the registries, so
        old results stay readable)."""
        if not isinstance(name, str):
            raise TypeError(f"a configuration name is a string, got {type(name).__name__}")
        kind, sep, rest = name.partition("-")
        train = kind == TRAIN_PREFIX and bool(rest)
        if train:
            kind, sep, rest = rest.partition("-")
        if kind == "tiled" and (rest or not sep):
            return cls.tiled(rest or None, train)
        if kind == "packed" and rest:
            rows = _ROWS.match(rest)
            return cls.packed(rows["backend"], train, int(rows["max_len"])) if rows else \
                cls.packed(rest, train)
        raise ValueError(f"not a benchmark configuration name: {name!r} (expected 'tiled', "
                         "'tiled-<method>' or 'packed-<backend>', optionally after 'train-'; packed ones may "
                         "end in '-rows<L>')")

    @property
    def name(self) -> str:
        if self.kind == "packed":
            name = f"packed-{self.backend}" + (f"{ROWS_TAG}{self.max_len}" if self.rows else "")
        else:
            name = "tiled" if self.method == tiling.DEFAULT_METHOD else f"tiled-{self.method}"
        return f"{TRAIN_PREFIX}-{name}" if self.train else name

    def __str__(self) -> str:
        return self.name


@dataclass
class Job:
    """A checked configuration waiting for its timed runs: its inputs, its check record and the function."""

    inp: Inputs
    check: dict
    fn: object


def configs(s: Settings, train: bool = False) -> tuple[list[Config], list[dict]]:
    """The configurations that run here (tiled first, then every backend as one sequence, then in rows of
    ``--rows`` slots) and the packed ones that cannot, with the registry's reason; ``train=True``: the
    training steps (one sequence only) of the backends that can run a backward pass here."""
    tiled = [Config.tiled(m, train=train) for m in (tiling.DEFAULT_METHOD, *s.tiling_methods)]
    packed, unavailable = [], []
    for b in s.backends:
        try:
            attention.resolve(b, s.device, s.dtype, backward=train)
            packed.append(Config.packed(b, train=train))
        except ValueError as e:  # the message names the reason and the available backends
            unavailable.append(dict(config=Config.packed(b, train=train).name, device=s.device.type,
                                    reason=str(e)))
    rows = [Config.packed(c.backend, max_len=s.rows) for c in packed] if s.rows and not train else []
    return tiled + packed + rows, unavailable


# ----------------------------------------------------------------------------------------------------------
# images


def synthetic_sizes(n: int, seed: int = 0) -> list[Size]:
    """``n`` seeded (width, height) sizes: aspect W/H log-uniform in [1/3, 3] (1 in 8 at the extremes 1/8
    or 8), area log-uniform in [0.03, 2.0] megapixels. Taught in `timing`."""
    n = check_int("n", n, 0)
    rng = np.random.default_rng(seed)
    out = []
    for _ in range(n):
        area = math.exp(rng.uniform(math.log(0.03e6), math.log(2.0e6)))
        if rng.uniform() < 1 / 8:
            aspect = 8.0 if rng.uniform() < 0.5 else 1 / 8
        else:
            aspect = math.exp(rng.uniform(math.log(1 / 3), math.log(3)))
        out.append(Size(max(1, round(math.sqrt(area * aspect))), max(1, round(math.sqrt(area / aspect)))))
    return out


@dataclass
class Item:
    """One workload image: its name, source ("data" or "synthetic") and (width, height)."""

    name: str
    source: str
    size: Size
    seed: int = 0

    def load(self):
        """The image as a PIL image of ``size``."""
        from PIL import Image

        if self.source != "synthetic":
            from .. import data

            return data.load_data_image(self.name)
        rng = np.random.default_rng(self.seed)
        small = Image.fromarray(rng.integers(0, 256, (8, 8, 3), dtype=np.uint8), "RGB")
        return small.resize(tuple(self.size), Image.BICUBIC)


def data_items() -> tuple[list[Item], str | None]:
    """The curated images of data/ (in ``data.list_images()`` order) or an empty list and the reason."""
    from .. import DATA_DIR

    found, note = _data_sizes(str(DATA_DIR))
    return [Item(name=n, source="data", size=sz) for n, sz in found], note


@functools.lru_cache(maxsize=4)
def _data_sizes(folder: str) -> tuple[tuple, str | None]:
    try:
        from .. import data

        out = []
        for e in data.list_images():
            name = getattr(e, "name", e)
            name = Path(name).name if isinstance(name, (str, Path)) else str(name)
            out.append((name, Size(*data.load_data_image(name).size)))
    except Exception as e:  # data/ missing or broken: the workload falls back to synthetic images
        return (), f"data/ images unavailable ({folder}): {type(e).__name__}: {e}"
    return tuple(out), None


def make_workload(n: int, seed: int = 0, include_data: bool = True) -> list[Item]:
    """The first ``n`` images of the mixed workload: data/ images interleaved with synthetic ones. The list
    for ``n`` is a prefix of the list for any larger ``n``. Taught in `timing`."""
    n = check_positive_int("n", n)
    real = data_items()[0] if include_data else []
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


# ----------------------------------------------------------------------------------------------------------
# inputs


def tile_px(tile_size: int, scale: float) -> int:
    """The encoder side of a ``tile_size`` tile at ``scale``: a multiple of 14, at least one patch."""
    return max(PATCH, round(tile_size * scale / PATCH) * PATCH)


def tiled_token_counts(plan, tile_px: int) -> dict:
    """Encoder tokens of a tiling plan fed at ``tile_px`` (a multiple of 14) pixels, as the JSON records
    them (from ``plan.encoder_tokens``): ``images``, ``tokens``, ``cls_tokens``, ``padding_tokens``,
    ``duplicated_tokens`` and ``useful_tokens``. Taught in `timing`."""
    tile_px = check_positive_int("tile_px", tile_px)
    if tile_px % PATCH:
        raise ValueError(f"tile_px must be a multiple of {PATCH}, got {tile_px}")
    e = plan.encoder_tokens(tile_px=tile_px)
    return dict(images=e.images, tokens=e.total, cls_tokens=e.cls, padding_tokens=e.padding,
                duplicated_tokens=e.duplicated, useful_tokens=e.useful)


TOKEN_KEYS = ("tokens", "cls_tokens", "padding_tokens", "duplicated_tokens", "useful_tokens")


def to_tensor01(pil) -> torch.Tensor:
    """A PIL image as a float (3, H, W) tensor in [0, 1]."""
    arr = np.asarray(pil.convert("RGB"), dtype=np.float32) / 255.0
    return torch.from_numpy(arr).permute(2, 0, 1).contiguous()  # (3, H, W)


def tiles_at(plan, pil, px: int) -> torch.Tensor:
    """The plan's encoder images of ``pil`` resampled to ``px`` pixels: (n, 3, px, px) in [0, 1]."""
    x = tiling.apply(plan, pil).tensor  # (n, 3, t, t) in [0, 1]
    if x.shape[-1] != px:
        x = F.interpolate(x, size=(px, px), mode="bilinear", antialias=True, align_corners=False).clamp(0, 1)
    return x


def native_sizes(items, budgets, scale: float, upscale: bool = False) -> list[Size]:
    """Every image scaled by ``scale`` and sized NaViT-style under its budget (``packing.native_size``)."""
    from ..packing import native_size

    out = []
    for it, b in zip(items, budgets):
        w0, h0 = max(1, round(it.size[0] * scale)), max(1, round(it.size[1] * scale))
        out.append(native_size((w0, h0), "navit", patch_size=PATCH, max_tokens=int(b), allow_upscale=upscale))
    return out


def packed_budget(item: Item, scale: float) -> int:
    """Patch tokens of the image's local tiles under the reference tiling at ``scale`` (its packed budget)."""
    pl = tiling.plan(tiling.DEFAULT_METHOD, item.size)
    g = tile_px(pl.tile_size, scale) // PATCH
    return len(pl.tile_boxes) * g * g


@dataclass
class Inputs:
    """One prepared input set for one configuration (on the device, in the run's dtype)."""

    config: Config
    images: int
    lengths: list[int]  # tokens per encoder image (CLS included)
    counts: dict  # the TOKEN_KEYS of the JSON records
    payload: object  # (B, 3, t, t) tensor for tiled; list of (3, H_i, W_i) or a PackedBatch for packed
    info: dict = field(default_factory=dict)

    @property
    def rows(self) -> list[list[int]]:
        """The image lengths of every packed row (one row for one unbounded sequence)."""
        return self.info.get("row_lengths") or [list(self.lengths)]

    @property
    def row_len(self) -> int | None:
        return self.info.get("max_len")


def prepare_tiled(items, pils, method: str, scale: float, dev, dtype, options=None) -> Inputs:
    """Every image planned with ``method`` and cut; all tiles of all images as ONE batch (B, 3, t, t) with
    t = :func:`tile_px` of the method's tile at ``scale``. Taught in `timing`."""
    from ..encoder.vit import normalize

    tiles, grids = [], []
    counts = dict.fromkeys(TOKEN_KEYS, 0)
    px = None
    for it, pil in zip(items, pils):
        pl = tiling.plan(method, it.size, **(options or {}))
        px = tile_px(pl.tile_size, scale)
        tiles.append(tiles_at(pl, pil, px))
        c = tiled_token_counts(pl, px)
        for k in counts:
            counts[k] += c[k]
        grids.append(list(pl.grid))
    x = normalize(torch.cat(tiles)).to(dev, dtype)  # (B, 3, t, t)
    per = 1 + (px // PATCH) ** 2
    return Inputs(Config.tiled(method), len(items), [per] * x.shape[0], counts, x,
                  info=dict(method=method, tile_px=px, batch=x.shape[0], grids=grids))


def prepare_packed(config: Config, items, pils, budgets, scale: float, dev, dtype,
                   upscale: bool = False) -> Inputs:
    """Every image scaled by ``scale`` and resized to its NaViT native size under its budget: the list of
    normalised (3, h_i, w_i) images of one packed sequence. Taught in `timing`."""
    from PIL import Image

    from ..encoder.vit import normalize

    sizes = native_sizes(items, budgets, scale, upscale)
    imgs = [normalize(to_tensor01(pil.resize(tuple(z), Image.BICUBIC))).to(dev, dtype)  # (3, h, w)
            for pil, z in zip(pils, sizes)]
    patches = [(w // PATCH) * (h // PATCH) for w, h in sizes]
    counts = dict(tokens=sum(patches) + len(patches), cls_tokens=len(patches), padding_tokens=0,
                  duplicated_tokens=0, useful_tokens=sum(patches))
    return Inputs(config.single(), len(items), [p + 1 for p in patches], counts, imgs,
                  info=dict(sizes=[list(z) for z in sizes]))


def prepare_rows(config: Config, packed: Inputs) -> Inputs:
    """The images of a :func:`prepare_packed` input packed into rows of ``config.max_len`` slots as training
    packs them (``packing.pack_images(images, 14, max_len, cls_token=True)``: first-fit decreasing, a CLS slot
    per image, padding at the end of each row). ValueError when an image is longer than a row."""
    from ..packing import pack_images, padding_report

    batch = pack_images(packed.payload, PATCH, config.max_len, cls_token=True)  # (B, L, 3*14*14) pixels
    rep = padding_report(batch.rows, batch.lengths, config.max_len)
    info = dict(packed.info, rows=rep["rows"], max_len=rep["row_len"], slots=rep["slots"],
                padding_slots=rep["padding"], padding_fraction=rep["padding_fraction"],
                row_lengths=[batch.row_lengths(b) for b in range(batch.num_rows)])
    return replace(packed, config=config, payload=batch, info=info)


def packed_inputs(configs: list[Config], inp: Inputs) -> list[Inputs | ValueError]:
    """Every packed configuration's inputs: the one sequence, or its images packed into rows (shared by
    the configurations of one ``max_len``; a ValueError where an image is longer than a row)."""
    rows: dict = {}
    out = []
    for config in configs:
        if not config.rows:
            out.append(replace(inp, config=config))
            continue
        if config.max_len not in rows:
            try:
                rows[config.max_len] = prepare_rows(config, inp)
            except ValueError as e:
                rows[config.max_len] = e
        got = rows[config.max_len]
        out.append(got if isinstance(got, ValueError) else replace(got, config=config))
    return out


# ----------------------------------------------------------------------------------------------------------
# what a configuration costs besides time


def executed_flops(inp: Inputs) -> int:
    """FLOPs the packed configuration of ``inp`` really computes: ``attention.executed_flops`` of each row
    (its padding slots and the pairs its kernel computes included)."""
    return sum(attention.executed_flops(inp.config.backend, row, inp.row_len) for row in inp.rows)


def memory(inp: Inputs) -> dict:
    """Estimated bytes of the attention mask (the backend's own ``memory``, summed over rows) and of one
    block's largest activations (x, qkv, MLP hidden) at 4 bytes per value. A backend without ``prepare`` holds
    one image at a time; one that pads q, k, v (``padded_tokens``) also holds those; rows hold their
    padding."""
    per_token = 4 * (4 * DIM + MLP_HIDDEN)
    if inp.config.kind == "tiled":
        return dict(mask_bytes=0, activation_bytes=per_token * sum(inp.lengths))
    backend = attention.get(inp.config.backend)
    row_len = inp.row_len
    mems = [backend.memory(row + ([row_len - sum(row)] if row_len and row_len > sum(row) else []))
            for row in inp.rows]
    if backend.prepare is None:  # each image alone through the model
        act = per_token * max(inp.lengths)
    else:
        slots = sum(max(sum(row), row_len or 0) for row in inp.rows)
        act = per_token * slots + 4 * 3 * DIM * sum(int(m["padded_tokens"]) for m in mems)
    return dict(mask_bytes=sum(int(m["mask_bytes"]) for m in mems), activation_bytes=act)


def features_of(record: dict) -> dict:
    """The cost-model features (:func:`anyres_tutorial.encoder.costs.features`) of a recorded packed run."""
    from ..encoder import costs

    info = record["info"]
    rows = info.get("row_lengths") or [[1 + (w // PATCH) * (h // PATCH) for w, h in info["sizes"]]]
    return costs.features(attention.get(Config.parse(record["config"]).backend), rows, info.get("max_len"))


def memory_estimate(items, s) -> int:
    """Bytes the main set needs at least: its decoded images, and the tiled batch's pixels and one block's
    activations (the largest forward of the run), from the sizes alone."""
    per_token = 4 * (4 * DIM + MLP_HIDDEN)
    need = 0
    for it in items:
        pl = tiling.plan(tiling.DEFAULT_METHOD, it.size)
        px = tile_px(pl.tile_size, s.scale)
        tile = 3 * px * px * 4 + (1 + (px // PATCH) ** 2) * per_token  # pixels + activations of one tile
        need += 3 * it.size[0] * it.size[1] + pl.num_images * tile
    return need
