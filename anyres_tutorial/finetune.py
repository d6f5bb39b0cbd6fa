"""A short real fine-tuning run on packed batches, the same run on padded batches, and token-dropping timing.

Taught in `training_with_packed_sequences`.

The task (:func:`crop_task`): tell which ``data/`` image a random crop comes from; every crop is resized
NaViT-style under a budget drawn per image, so one batch mixes many sizes and shapes.

:func:`finetune` trains a linear head on the CLS token plus the last block(s) and the final norm of the real
DINOv2 ViT-S/14, one optimiser step per batch, with the per-image loss of :mod:`anyres_tutorial.training`:

- ``mode="packed"``: the batch is packed into rows of ``max_len`` slots (first-fit decreasing);
- ``mode="padded"``: one image per row, every row padded to the longest image (pad-to-longest).

The two see the same samples from the same start, so their losses agree step by step; what differs is the
number of slots each run pays for (``FinetuneRun.slots`` vs ``FinetuneRun.tokens``).
:func:`time_drop_rates` times one training step (forward + backward + SGD step) at a fixed number of packed
rows at several NaViT token-dropping rates: a step runs every slot of its rows, so what dropping buys is room
for more images in the same step (:func:`fill_rows`), not a cheaper step.
"""

from __future__ import annotations

import math
import time
from dataclasses import dataclass, field

import numpy as np
import torch
import torch.nn.functional as F
from PIL import Image

from .checks import check_choice, check_lengths, check_number, check_positive_int
from .packing.batch import pack_images
from .packing.dropping import drop_tokens
from .packing.packer import pack
from .packing.sizing import native_size
from .training import (
    check_targets,
    make_head,
    packed_loss,
    pool,
    reduce_losses,
    restored,
    sgd_step,
    trainable,
)
from .types import PATCH, Size

CROP_CLASSES = ("chelsea", "coffee", "astronaut", "rocket", "camera", "hubble_deep_field")
MODES = ("packed", "padded")


@dataclass
class Sample:
    """One training example: a normalised (3, H, W) crop, its class, its size and its token budget."""

    image: torch.Tensor
    label: int
    size: Size
    budget: int


def _random_crop(img: Image.Image, rng: np.random.Generator) -> Image.Image:
    """A crop covering 25-100 % of the image area with an aspect ratio between 1:3 and 3:1 (when it fits)."""
    w, h = img.size
    area = rng.uniform(0.25, 1.0) * w * h
    aspect = math.exp(rng.uniform(math.log(1 / 3), math.log(3)))  # width / height
    cw = int(min(w, max(PATCH, round(math.sqrt(area * aspect)))))
    ch = int(min(h, max(PATCH, round(math.sqrt(area / aspect)))))
    x0, y0 = int(rng.integers(0, w - cw + 1)), int(rng.integers(0, h - ch + 1))
    return img.crop((x0, y0, x0 + cw, y0 + ch))


def crop_task(steps: int, batch_size: int, budget=(16, 96), classes=CROP_CLASSES, seed: int = 0) -> list:
    """``steps`` batches of ``batch_size`` :class:`Sample` (a list of lists), reproducible from ``seed``.

    Each sample: a class drawn uniformly from ``classes`` (names of ``data/`` images), a random crop of that
    image, a budget drawn uniformly from ``budget`` = (min, max) patch tokens, and the crop resized to
    ``packing.native_size(crop, "navit", max_tokens=budget, allow_upscale=True)``.
    """
    from .data import load_data_image
    from .encoder.vit import normalize

    steps, batch_size = check_positive_int("steps", steps), check_positive_int("batch_size", batch_size)
    if isinstance(budget, (str, bytes)) or not hasattr(budget, "__len__") or len(budget) != 2:
        raise TypeError(f"budget must be a (min, max) pair of patch-token counts, got {budget!r}")
    lo, hi = (check_positive_int("budget", b) for b in budget)
    if lo > hi:
        raise ValueError(f"budget must be (min, max) with min <= max, got {budget}")
    if isinstance(classes, (str, bytes)) or not len(classes):
        raise TypeError(f"classes must be a list of data/ image names, got {classes!r}")
    sources = [load_data_image(n).convert("RGB") for n in classes]
    rng = np.random.default_rng(seed)
    data = []
    for _ in range(steps):
        batch = []
        for _ in range(batch_size):
            label = int(rng.integers(len(sources)))
            crop = _random_crop(sources[label], rng)
            tokens = int(rng.integers(lo, hi + 1))
            size = native_size(crop.size, "navit", patch_size=PATCH, max_tokens=tokens, allow_upscale=True)
            batch.append(Sample(normalize(crop.resize(size, Image.BICUBIC)), label, size, tokens))
        data.append(batch)
    return data


@dataclass
class FinetuneRun:
    """What one :func:`finetune` run recorded, one entry per step: loss, batch accuracy (before the step),
    real tokens, slots paid for (rows x row length) and seconds."""

    mode: str
    attention: str
    losses: list[float] = field(default_factory=list)
    accuracy: list[float] = field(default_factory=list)
    tokens: list[int] = field(default_factory=list)
    slots: list[int] = field(default_factory=list)
    seconds: list[float] = field(default_factory=list)

    @property
    def wasted(self) -> list[int]:
        """Padding slots per step."""
        return [s - t for s, t in zip(self.slots, self.tokens)]

    @property
    def padding_fraction(self) -> float:
        return sum(self.wasted) / sum(self.slots)


def _batch_of(samples, mode: str, max_len: int):
    images = [s.image for s in samples]
    if mode == "packed":
        return pack_images(images, PATCH, max_len=max_len, cls_token=True)
    return pack_images(images, PATCH, rows=[[i] for i in range(len(images))], cls_token=True)


def finetune(model, data, mode: str = "packed", *, max_len: int = 256, attention: str = "auto",
             train_blocks: int = 1, lr: float = 1e-3, backbone_lr: float = 1e-4, seed: int = 0,
             progress: bool = True) -> FinetuneRun:
    """Fine-tune a fresh head (seeded) + the last ``train_blocks`` blocks + the final norm on ``data`` (from
    :func:`crop_task`), AdamW, per-image loss, one step per batch; ``mode`` is ``"packed"`` or
    ``"padded"`` (see the module docstring). The model is left exactly as it was (weights and
    ``requires_grad``), so runs can be compared from the same start. ``progress``: a tqdm bar.
    """
    mode = check_choice("mode", mode, MODES)
    train_blocks = check_positive_int("train_blocks", train_blocks, len(model.blocks))
    lr = check_number("lr", lr, 0, min_inclusive=False)  # a negative rate would climb the loss
    backbone_lr = check_number("backbone_lr", backbone_lr, 0)
    if not data or not all(batch and all(isinstance(s, Sample) for s in batch) for batch in data):
        raise ValueError("data must be a non-empty list of non-empty batches of Sample (from crop_task)")
    classes = 1 + max(s.label for batch in data for s in batch)
    head = make_head(max(classes, 2), seed=seed, dim=model.dim)
    tuned = [*model.blocks[-train_blocks:], model.norm]
    run = FinetuneRun(mode=mode, attention=attention)
    with restored(model):  # the model is left exactly as it was (weights and requires_grad)
        model.requires_grad_(False)
        for m in tuned:
            m.requires_grad_(True)
        optimizer = torch.optim.AdamW([{"params": list(head.parameters()), "lr": lr},
                                       {"params": list(trainable(*tuned).values()), "lr": backbone_lr}])
        steps = _progress(data, progress, f"{mode} batches")
        for samples in steps:
            t0 = time.perf_counter()
            batch = _batch_of(samples, mode, max_len)
            targets = torch.tensor([s.label for s in samples], device=model.device)
            logits = head(pool(model.forward_packed(batch, attention=attention)))  # (n, classes)
            losses = F.cross_entropy(logits, targets, reduction="none")  # (n,) one loss per image
            loss = reduce_losses(losses, batch.lengths, "per_image")
            optimizer.zero_grad()
            loss.backward()
            optimizer.step()
            run.seconds.append(time.perf_counter() - t0)
            run.losses.append(float(loss.detach()))
            run.accuracy.append(float((logits.detach().argmax(-1) == targets).float().mean()))
            run.tokens.append(sum(batch.lengths))
            run.slots.append(batch.num_rows * batch.row_len)
            if hasattr(steps, "set_postfix"):
                steps.set_postfix(loss=f"{run.losses[-1]:.3f}")
    run.attention = model.last_attention
    return run


def _progress(items, show: bool, desc: str):
    if not show:
        return items
    from tqdm.auto import tqdm

    return tqdm(items, desc=desc, leave=True)


def fill_rows(lengths, max_len: int, rows: int) -> int:
    """How many images, taken in order, fit in ``rows`` rows of ``max_len`` slots: a sampler hands images over
    one by one and the step takes them (first-fit decreasing) while the next one still fits."""
    lengths = check_lengths(lengths)
    max_len, rows = check_positive_int("max_len", max_len), check_positive_int("rows", rows)
    n = 0
    while n < len(lengths) and lengths[n] <= max_len and len(pack(lengths[: n + 1], max_len)) <= rows:
        n += 1
    return n


def time_drop_rates(model, head, images, targets: torch.Tensor, rates=(0.0, 0.25, 0.5, 0.75), backends=None,
                    max_len: int = 256, repeats: int = 3, seed: int = 0, lr: float = 1e-4, *, rows: int = 2,
                    train_blocks: int | None = None, progress: bool = True) -> list[dict]:
    """One training step at a FIXED compute budget -- ``rows`` packed rows of ``max_len`` slots, every slot
    run, padding included -- at every NaViT token-drop rate: ``images`` (normalised (3, H, W) tensors in the
    order a sampler hands them over, one class in ``targets`` each) enter the step while they still fit
    (:func:`fill_rows`, after dropping), so the higher the rate, the more images one step trains on.

    ``backends``: default every packed backend that can train on the model's device (not ``loop``).
    ``train_blocks``: None trains every parameter that requires grad; k trains the last k blocks, the final
    norm and the head (as :func:`finetune`). Timing: one warm-up step per backend, then ``repeats`` rounds
    over every (rate, backend), interleaved so that a change of the machine's load hits every configuration
    alike; the minimum over the rounds is reported. Model and head are restored afterwards. ``progress``: a
    tqdm bar.

    Returns one dict per (rate, backend): ``backend, rate, images, tokens, slots, rows, seconds`` (minimum),
    ``times`` (every round), ``images_per_s``.
    """
    from .encoder import attention as registry

    if backends is None:
        backends = [b for b in registry.available(model.device, model.dtype, backward=True)
                    if registry.get(b).prepare is not None]
    if isinstance(backends, (str, bytes)):
        raise TypeError(f"backends must be a list of backend names, got the string {backends!r}: "
                        f"write [{backends!r}]")
    backends = list(backends)
    if not backends:
        raise ValueError("backends is empty: name at least one packed attention backend")
    rates = [check_number("rates", r, 0.0, 1.0, max_inclusive=False) for r in rates]
    if not rates:
        raise ValueError("rates is empty: give at least one drop rate in [0, 1)")
    lr = check_number("lr", lr, 0)
    repeats = check_positive_int("repeats", repeats)
    max_len, rows = check_positive_int("max_len", max_len), check_positive_int("rows", rows)
    if train_blocks is not None:
        train_blocks = check_positive_int("train_blocks", train_blocks, len(model.blocks))
    images = list(images)
    check_targets(targets, len(images), head.out_features)
    counts = [(im.shape[1] // PATCH) * (im.shape[2] // PATCH) for im in images]
    batches = []
    for rate in rates:  # every batch is built (and the stream checked) before the first timed step
        keep = drop_tokens(counts, rate, seed=seed) if rate > 0 else [None] * len(images)
        lengths = [1 + (c if k is None else len(k)) for c, k in zip(counts, keep)]  # CLS included
        n = fill_rows(lengths, max_len, rows)
        if n == len(images) and len(pack(lengths, max_len)) < rows:
            raise ValueError(f"images: all {len(images)} images fill only {len(pack(lengths, max_len))} of "
                             f"{rows} rows of {max_len} slots at drop rate {rate}; pass more images (or "
                             "fewer rows)")
        if n == 0:
            raise ValueError(f"images: the first image needs {lengths[0]} slots (CLS included), more than "
                             f"max_len={max_len}")
        keep_n = None if rate == 0 else keep[:n]
        batches.append((rate, pack_images(images[:n], PATCH, max_len=max_len, keep=keep_n, cls_token=True),
                        targets[:n]))
    configs = [(rate, batch, tg, name) for rate, batch, tg in batches for name in backends]
    times: dict[int, list[float]] = {k: [] for k in range(len(configs))}
    with restored(model, head):
        if train_blocks is not None:
            model.requires_grad_(False)
            for m in (*model.blocks[-train_blocks:], model.norm):
                m.requires_grad_(True)
            head.requires_grad_(True)
        params = trainable(model, head)
        if not params:
            raise ValueError("nothing requires grad: load_dinov2(trainable=True), train the head or give "
                             "train_blocks")
        bar = _bar(len(backends) + repeats * len(configs), progress, "training steps timed")
        for name in backends:  # warm-up: first use of a backend and of the shapes
            _timed_step(model, head, batches[0][1], batches[0][2], name, params, lr)
            bar.update(1)
        for _ in range(repeats):  # interleaved rounds: every configuration once per round
            for k, (rate, batch, tg, name) in enumerate(configs):
                bar.set_postfix_str(f"{name}, rate {rate:.2f}")
                times[k].append(_timed_step(model, head, batch, tg, name, params, lr))
                bar.update(1)
        bar.close()
    results = []
    for k, (rate, batch, _, name) in enumerate(configs):
        best = min(times[k])
        results.append(dict(backend=name, rate=float(rate), images=batch.num_images,
                            tokens=sum(batch.lengths), slots=batch.num_rows * batch.row_len,
                            rows=batch.num_rows, seconds=best, times=times[k],
                            images_per_s=batch.num_images / best))
    return results


class _NoBar:
    def update(self, n=1):
        pass

    def set_postfix_str(self, s):
        pass

    def close(self):
        pass


def _bar(total: int, show: bool, desc: str):
    if not show:
        return _NoBar()
    from tqdm.auto import tqdm

    return tqdm(total=total, desc=desc, leave=True)


def _timed_step(model, head, batch, targets, attention, params, lr) -> float:
    t0 = time.perf_counter()
    packed_loss(model, head, batch, targets, "per_image", attention).backward()
    sgd_step(params, lr)
    return time.perf_counter() - t0


__all__ = ["CROP_CLASSES", "MODES", "FinetuneRun", "Sample", "crop_task", "fill_rows", "finetune",
           "time_drop_rates"]
