"""One data-parallel optimiser step on packed sequences: the model DDP wraps, the three loss reductions, and
the step itself (gradient accumulation over micro-batches, a rank with no image). Taught in
`data_parallel_training`.

Every rank packs its own images (``packing.pack_images(..., cls_token=True)``) and computes one loss per image
(``training``). DistributedDataParallel then *averages* the ranks' gradients: ``g = (1/W) sum_r g_r``. So the
scalar each rank back-propagates decides how much each image weighs. :data:`REDUCTIONS`, with ``N`` images and
``T`` tokens on all ``W`` ranks over all ``M`` micro-batches of the optimiser step, and ``n``, ``t`` those of
one rank's micro-batch:

- ``global_per_image`` (the fix): ``(W / N) * sum(l_i)``: after DDP's average every image weighs ``1 / N``,
  exactly single-process per-image training on the union of the images. ``N`` and ``T`` come from ONE
  all-reduce per optimiser step, before the first micro-batch (:func:`step_totals`);
- ``rank_mean`` (the common mistake): ``mean(l_i) / M`` per micro-batch: an image weighs ``1 / (W M n)``, so
  an image on a rank (or in a micro-batch) with few images weighs more than one with many;
- ``global_per_token``: ``(W / T) * sum(L_i l_i)``: every image weighs ``L_i / T`` (its share of the tokens).

:func:`loss_scale` is that table; :func:`effective_weights` computes from it what each image weighs in the
averaged gradient. A rank with no image in a micro-batch still runs a zero-weight forward and backward on a
one-patch blank image, so that it joins DDP's gradient all-reduce and no rank waits forever.
"""

from __future__ import annotations

import contextlib
from dataclasses import dataclass

import torch
import torch.distributed as dist
import torch.nn as nn
import torch.nn.functional as F

from ..checks import check_choice, check_positive_int
from ..packing.batch import PackedBatch, pack_images
from ..training import image_weights, make_head, pool, reduce_losses, trainable
from ..types import PATCH

REDUCTIONS = ("global_per_image", "rank_mean", "global_per_token")
#: the training.reduce_losses reduction each rank applies before scaling (see loss_scale)
BASE = {"global_per_image": "per_image", "rank_mean": "per_image", "global_per_token": "per_token"}


class PackedClassifier(nn.Module):
    """The ViT and a linear head on every image's pooled token, as the one module DDP wraps:
    ``forward(batch)`` -> logits (num_images, classes) of a batch from ``pack_images(..., cls_token=True)``.
    """

    def __init__(self, model, head: nn.Module, attention: str = "auto", pool_how: str = "cls"):
        super().__init__()
        self.model, self.head, self.attention, self.pool_how = model, head, attention, pool_how

    def forward(self, batch: PackedBatch) -> torch.Tensor:
        return self.head(pool(self.model.forward_packed(batch, attention=self.attention), self.pool_how))


def make_classifier(classes: int, train_blocks: int = 1, attention: str = "auto", device=None,
                    seed: int = 0) -> PackedClassifier:
    """The real DINOv2 ViT-S/14 with, as `finetune` trains it, its last ``train_blocks`` blocks and final norm
    trainable, plus a seeded linear head (``training.make_head``); every rank builds the same one."""
    from ..encoder.vit import load_dinov2

    train_blocks = check_positive_int("train_blocks", train_blocks, maximum=12)
    model = load_dinov2(device=device).requires_grad_(False)
    for m in (*model.blocks[-train_blocks:], model.norm):
        m.requires_grad_(True)
    head = make_head(max(check_positive_int("classes", classes), 2), seed=seed, dim=model.dim)
    head = head.to(model.device)
    return PackedClassifier(model, head, attention)


# ---------------------------------------------------------------------------------------------------------
# the reductions


def loss_scale(reduction: str, *, images: int, tokens: int, total_images: int, total_tokens: int,
               micro_batches: int, world_size: int) -> tuple[str, float]:
    """What a rank back-propagates for one micro-batch: ``scale * training.reduce_losses(losses, lengths,
    base)``; returns ``(base, scale)``. ``images``/``tokens``: this rank's micro-batch; ``total_*``: all
    ranks, all micro-batches of the step (one all-reduce)."""
    reduction = check_choice("reduction", reduction, REDUCTIONS)
    if reduction == "global_per_image":
        return "per_image", images * world_size / total_images
    if reduction == "rank_mean":
        return "per_image", 1.0 / micro_batches
    return "per_token", tokens * world_size / total_tokens


def effective_weights(micro, lengths, reduction: str) -> torch.Tensor:
    """Weight of each image's loss in the gradient DDP averages: (num_images,) float64.

    ``micro[m][r]``: indices of the images rank ``r`` holds in micro-batch ``m`` (every image exactly once);
    ``lengths``: tokens per image (CLS included). The same :func:`loss_scale` the step uses, divided by the
    world size (DDP's average). ``global_per_image`` gives ``1 / N`` to every image.
    """
    micro = check_micro(micro, len(lengths))
    world, n_micro = len(micro[0]), len(micro)
    total_images = sum(len(p) for mb in micro for p in mb)
    total_tokens = sum(lengths[i] for mb in micro for p in mb for i in p)
    out = torch.zeros(len(lengths), dtype=torch.float64)
    for mb in micro:
        for part in mb:
            if not part:
                continue
            sub = [lengths[i] for i in part]
            base, scale = loss_scale(reduction, images=len(part), tokens=sum(sub), total_images=total_images,
                                     total_tokens=total_tokens, micro_batches=n_micro, world_size=world)
            out[part] = image_weights(sub, base) * scale / world
    return out


def check_micro(micro, num_images: int) -> list[list[list[int]]]:
    """``micro[m][r]`` lists of image indices: the same number of ranks in every micro-batch, every image
    ``0..num_images-1`` exactly once in the step."""
    if not isinstance(micro, (list, tuple)) or not micro:
        raise ValueError("micro must be a non-empty list of micro-batches, each a list of per-rank index "
                         "lists")
    micro = [[[int(i) for i in part] for part in mb] for mb in micro]
    worlds = {len(mb) for mb in micro}
    if len(worlds) != 1 or 0 in worlds:
        raise ValueError(f"every micro-batch must list the same number (>= 1) of ranks, got {sorted(worlds)}")
    seen = sorted(i for mb in micro for part in mb for i in part)
    if seen != list(range(num_images)):
        raise ValueError(f"micro must hold every image 0..{num_images - 1} exactly once, got {seen}")
    return micro


# ---------------------------------------------------------------------------------------------------------
# the step


@dataclass
class MicroBatch:
    """One rank's share of one micro-batch: normalised (3, H, W) images, class targets, kept patch indices
    (token dropping) or None."""

    images: list
    targets: list
    keep: list | None = None

    def pack(self, max_len: int | None, device) -> PackedBatch | None:
        """The packed rows (FFD, rows of ``max_len``; None: one row) or None when the rank holds no image."""
        if not self.images:
            return None
        imgs = [im.to(device) for im in self.images]
        return pack_images(imgs, PATCH, max_len=max_len, keep=self.keep, cls_token=True)


def step_totals(batches: list, device) -> tuple[int, int]:
    """The ONE collective of a step's bookkeeping: images and tokens on all ranks over all micro-batches."""
    local = torch.tensor([sum(b.num_images for b in batches if b is not None),
                          sum(sum(b.lengths) for b in batches if b is not None)], dtype=torch.float64,
                         device=device)
    if dist.is_initialized():
        dist.all_reduce(local)
    return int(local[0]), int(local[1])


def blank_batch(device, dtype=torch.float32) -> PackedBatch:
    """A one-patch blank image (CLS + 1 token) for a rank without images: it touches every trainable
    parameter, so its zero-weight backward joins DDP's all-reduce."""
    return pack_images([torch.zeros(3, PATCH, PATCH, device=device, dtype=dtype)], PATCH, cls_token=True)


def ddp_step(ddp, micro: list[MicroBatch], reduction: str, max_len: int | None = None) -> dict:
    """Forward + backward of one optimiser step (no update: read ``.grad``, then step) on this rank's
    micro-batches; ``ddp``: a ``DistributedDataParallel`` around a :class:`PackedClassifier` (or the bare
    module when there is no process group). Gradients accumulate locally under ``no_sync`` and DDP averages
    them once, in the last micro-batch's backward.

    Returns ``loss`` (this rank's share of the step's loss: the ranks' shares add up to it), ``images`` /
    ``tokens`` (this rank), ``total_images`` / ``total_tokens`` (all ranks).
    """
    reduction = check_choice("reduction", reduction, REDUCTIONS)
    if not micro:
        raise ValueError("micro must hold at least one micro-batch (an empty MicroBatch if the rank has "
                         "none)")
    module = ddp.module if hasattr(ddp, "module") else ddp
    device = module.head.weight.device
    world = dist.get_world_size() if dist.is_initialized() else 1
    batches = [mb.pack(max_len, device) for mb in micro]
    total_images, total_tokens = step_totals(batches, device)
    if total_images == 0:
        raise ValueError("no rank holds an image in this step: nothing to train on")
    loss_sum = 0.0
    for m, (mb, batch) in enumerate(zip(micro, batches)):
        last = m == len(micro) - 1
        with contextlib.nullcontext() if last or not hasattr(ddp, "no_sync") else ddp.no_sync():
            if batch is None:  # joins the all-reduce with zero gradients
                loss = ddp(blank_batch(device)).sum() * 0.0
            else:
                logits = ddp(batch)  # (n, classes)
                targets = torch.as_tensor(mb.targets, device=device)
                losses = F.cross_entropy(logits, targets, reduction="none")  # (n,) one loss per image
                base, scale = loss_scale(reduction, images=batch.num_images, tokens=sum(batch.lengths),
                                         total_images=total_images, total_tokens=total_tokens,
                                         micro_batches=len(micro), world_size=world)
                loss = reduce_losses(losses, batch.lengths, base) * scale
            loss.backward()
        loss_sum += float(loss.detach()) / world  # this rank's share of the step's (averaged) loss
    return dict(loss=loss_sum, images=sum(b.num_images for b in batches if b is not None),
                tokens=sum(sum(b.lengths) for b in batches if b is not None), total_images=total_images,
                total_tokens=total_tokens)


def gradients(module: nn.Module) -> dict[str, torch.Tensor]:
    """Copies of the trainable parameters' gradients (zeros where none), by ``training.trainable`` name."""
    return {n: torch.zeros_like(p) if p.grad is None else p.grad.detach().clone()
            for n, p in trainable(module).items()}


__all__ = ["BASE", "MicroBatch", "PackedClassifier", "REDUCTIONS", "blank_batch", "check_micro", "ddp_step",
           "effective_weights", "gradients", "loss_scale", "make_classifier", "step_totals"]
