"""The benchmark's images and the inputs each configuration feeds the encoder. Taught in `timing`.

The workload (seeded, deterministic) interleaves the curated images of ``data/`` with synthetic images whose
sizes follow :func:`synthetic_sizes`; their pixels are smooth random colour fields (a seeded 8x8 random image,
bicubic-upsampled). :func:`prepare_tiled` turns a list of images into ONE batch of equal tiles,
:func:`prepare_packed` into native-size images for one packed sequence.
"""

from __future__ import annotations

import functools
import math
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
import torch
import torch.nn.functional as F

from .. import tiling
from ..checks import check_int, check_positive_int
from ..types import PATCH, Size
from .config import Config


def synthetic_sizes(n: int, seed: int = 0) -> list[Size]:
    """``n`` seeded (width, height) sizes: aspect W/H log-uniform in [1/3, 3] (1 in 8 at the extremes 1/8
    or 8), area log-uniform in [0.03, 2.0] megapixels. Deterministic for a given seed. Taught in `timing`."""
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


def _synthetic_image(size: Size, seed: int):
    from PIL import Image

    rng = np.random.default_rng(seed)
    small = Image.fromarray(rng.integers(0, 256, (8, 8, 3), dtype=np.uint8), "RGB")
    return small.resize(tuple(size), Image.BICUBIC)


@dataclass
class Item:
    """One workload image: its name, source ("data" or "synthetic") and (width, height)."""

    name: str
    source: str
    size: Size
    seed: int = 0

    def load(self):
        """The image as a PIL image of ``size``."""
        if self.source == "synthetic":
            return _synthetic_image(self.size, self.seed)
        from .. import data

        return data.load_data_image(self.name)


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
    """The first ``n`` images of the mixed workload: data/ images interleaved with synthetic ones (see the
    module docstring). The list for ``n`` is a prefix of the list for any larger ``n``. Taught in `timing`."""
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


def tile_px(tile_size: int, scale: float) -> int:
    """The encoder side of a ``tile_size`` tile at ``scale``: a multiple of 14, at least one patch."""
    return max(PATCH, round(tile_size * scale / PATCH) * PATCH)


def tiled_token_counts(plan, tile_px: int) -> dict:
    """Encoder tokens of a tiling plan whose encoder images are fed at ``tile_px`` (a multiple of 14) pixels,
    as the JSON records them, from ``plan.encoder_tokens``: ``tokens`` (all, one CLS per encoder image),
    ``cls_tokens``, ``padding_tokens`` (patches less than half covered by image content),
    ``duplicated_tokens`` (global-view content patches when the plan also has tiles) and ``useful_tokens``.
    Taught in `timing`."""
    tile_px = check_positive_int("tile_px", tile_px)
    if tile_px % PATCH:
        raise ValueError(f"tile_px must be a multiple of {PATCH}, got {tile_px}")
    e = plan.encoder_tokens(tile_px=tile_px)
    return dict(images=e.images, tokens=e.total, cls_tokens=e.cls, padding_tokens=e.padding,
                duplicated_tokens=e.duplicated, useful_tokens=e.useful)


TOKEN_KEYS = ("tokens", "cls_tokens", "padding_tokens", "duplicated_tokens", "useful_tokens")


def _to_tensor01(pil) -> torch.Tensor:
    arr = np.asarray(pil.convert("RGB"), dtype=np.float32) / 255.0
    return torch.from_numpy(arr).permute(2, 0, 1).contiguous()  # (3, H, W)


def _normalize(x: torch.Tensor) -> torch.Tensor:
    from ..encoder import vit

    return vit.normalize(x)  # (3, H, W) or (B, 3, H, W), ImageNet mean/std


@dataclass
class Inputs:
    """One prepared input set for one configuration (already on the device, in the run dtype)."""

    config: Config
    images: int
    lengths: list[int]  # tokens per encoder sequence (CLS included)
    counts: dict  # the TOKEN_KEYS of the JSON records
    payload: object  # (B, 3, t, t) tensor for tiled; list of (3, H_i, W_i) for packed
    info: dict = field(default_factory=dict)


def _tiles_at(plan, pil, px: int) -> torch.Tensor:
    """The plan's encoder images of ``pil`` resampled to ``px`` pixels: (n, 3, px, px) in [0, 1]."""
    x = tiling.apply(plan, pil).tensor  # (n, 3, t, t) in [0, 1]
    if x.shape[-1] != px:
        x = F.interpolate(x, size=(px, px), mode="bilinear", antialias=True, align_corners=False).clamp(0, 1)
    return x


def prepare_tiled(items, pils, method: str, scale: float, dev, dtype, options=None) -> Inputs:
    """Every image planned with ``method`` and cut; all tiles of all images as ONE batch (B, 3, t, t) with
    t = :func:`tile_px` of the method's tile at ``scale``. Taught in `timing`."""
    tiles, grids = [], []
    counts = dict.fromkeys(TOKEN_KEYS, 0)
    px = None
    for it, pil in zip(items, pils):
        pl = tiling.plan(method, it.size, **(options or {}))
        px = tile_px(pl.tile_size, scale)
        tiles.append(_tiles_at(pl, pil, px))
        c = tiled_token_counts(pl, px)
        for k in counts:
            counts[k] += c[k]
        grids.append(list(pl.grid))
    x = _normalize(torch.cat(tiles)).to(dev, dtype)  # (B, 3, t, t)
    per = 1 + (px // PATCH) ** 2
    return Inputs(Config.tiled(method), len(items), [per] * x.shape[0], counts, x,
                  info=dict(method=method, tile_px=px, batch=x.shape[0], grids=grids))


def packed_budget(item: Item, scale: float) -> int:
    """Patch tokens of the image's local tiles under the reference tiling at ``scale`` (its packed budget)."""
    pl = tiling.plan(tiling.DEFAULT_METHOD, item.size)
    g = tile_px(pl.tile_size, scale) // PATCH
    return len(pl.tile_boxes) * g * g


def prepare_packed(items, pils, budgets, scale: float, dev, dtype,
                   upscale: bool = False) -> tuple[list, dict]:
    """Every image scaled by ``scale`` and resized to its NaViT native size under its budget -> the list of
    normalised (3, h_i, w_i) images and dict(counts, sizes, lengths). Taught in `timing`."""
    from PIL import Image

    from ..packing import native_size

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


def row_layout(batch) -> dict:
    """How a :class:`~anyres_tutorial.packing.PackedBatch` fills its rows: ``rows`` (B), ``max_len`` (L),
    ``slots`` (B * L), ``padding_slots``, ``padding_fraction`` (padding / slots) and ``row_lengths`` (the
    images' token counts per row, in slot order). Taught in `timing`."""
    lengths = [[batch.lengths[i] for i in r] for r in batch.rows]
    slots = batch.num_rows * batch.row_len
    pad = slots - sum(map(sum, lengths))
    return dict(rows=batch.num_rows, max_len=batch.row_len, slots=slots, padding_slots=pad,
                padding_fraction=pad / slots, row_lengths=lengths)


def prepare_rows(config: Config, imgs, pk: dict) -> Inputs:
    """The packed images of :func:`prepare_packed` (``imgs``, its dict ``pk``) packed into rows of
    ``config.max_len`` slots as training packs them (``packing.pack_images(imgs, 14, max_len,
    cls_token=True)``: first-fit decreasing, a CLS slot per image, padding at the end of each row). ValueError
    when an image is longer than a row. Taught in `timing`."""
    from ..packing import pack_images

    assert config.rows, f"{config} is not packed into rows"
    longest = max(pk["lengths"])
    if longest > config.max_len:
        raise ValueError(f"an image of {longest} tokens does not fit a row of max_len={config.max_len}")
    batch = pack_images(imgs, PATCH, config.max_len, cls_token=True)  # (B, L, 3*14*14) patch pixels
    layout = row_layout(batch)
    return Inputs(config, len(imgs), list(pk["lengths"]), pk["counts"], batch,
                  info=dict(sizes=pk["sizes"], **layout))
