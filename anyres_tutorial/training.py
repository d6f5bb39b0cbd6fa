"""Training on packed sequences: a loss per image, two ways to reduce it, and the gradient check.

Taught in `training_with_packed_sequences`.

NaViT packs images to "remove the compute wasted on padding and make parallel training efficient"; the
split outputs then "need their loss computed per image". A packed batch
(:func:`~anyres_tutorial.packing.pack_images` with ``cls_token=True``) goes through
``model.forward_packed(batch)``, which returns one output per image; from there:

- :func:`pool` takes the CLS token (``"cls"``) or the mean of the patch tokens (``"mean"``) per image;
- a head and a loss give one loss ``l_i`` per image (:func:`image_losses`);
- :func:`reduce_losses` turns them into the scalar to differentiate, in one of :data:`REDUCTIONS`:
  ``"per_image"`` (every image weighs ``1 / n``) or ``"per_token"`` (every image weighs its token count, what
  naive code on a packed row computes).

:func:`per_image_backward` is the reference (each image alone through the model, ``l_i / n`` back-propagated
one image at a time) and :func:`compare_steps` checks that one optimiser step on a packed batch equals that
reference, parameter by parameter, for any backend that can train on the device.
"""

from __future__ import annotations

import contextlib
from dataclasses import dataclass

import torch
import torch.nn as nn
import torch.nn.functional as F

from .checks import check_choice, check_int, check_lengths, check_positive_int
from .packing.batch import PackedBatch, pack_images

REDUCTIONS = ("per_image", "per_token")
POOLS = ("cls", "mean")


def make_head(num_classes: int, seed: int = 0, dim: int = 384) -> nn.Linear:
    """A linear classification head ``dim -> num_classes`` with seeded (reproducible) initial weights."""
    num_classes, dim = check_int("num_classes", num_classes, 2), check_positive_int("dim", dim)
    seed = check_int("seed", seed, 0, 2**63 - 1)
    with torch.random.fork_rng(devices=[]):
        torch.manual_seed(seed)
        return nn.Linear(dim, num_classes)


def pool(outputs, how: str = "cls") -> torch.Tensor:
    """One vector per image from per-image outputs ``[(1 + n_i, D), ...]`` (CLS first): (num_images, D).

    ``"cls"`` takes the CLS token, ``"mean"`` averages the (kept) patch tokens (an image with no patch left
    falls back to its CLS token).
    """
    how = check_choice("pool", how, POOLS)
    if how == "cls":
        return torch.stack([o[0] for o in outputs])
    return torch.stack([o[1:].mean(0) if o.shape[0] > 1 else o[0] for o in outputs])


def image_weights(lengths, reduction: str = "per_image") -> torch.Tensor:
    """Weight of each image's loss in the reduced loss (they sum to 1): (num_images,) float64.

    ``per_image``: ``1 / n`` each. ``per_token``: ``L_i / sum(L)`` (``lengths`` = tokens per image in the
    packed rows, padding not counted): the bigger the image, the bigger its share of the gradient.
    """
    reduction = check_choice("reduction", reduction, REDUCTIONS)
    lengths = torch.tensor(check_lengths(lengths), dtype=torch.float64)
    if reduction == "per_image":
        return torch.full_like(lengths, 1.0 / len(lengths))
    return lengths / lengths.sum()


def reduce_losses(losses: torch.Tensor, lengths, reduction: str = "per_image") -> torch.Tensor:
    """The scalar training loss from per-image ``losses`` (n,) and token counts ``lengths`` (see
    :func:`image_weights`).

    * ``"per_image"``: ``mean_i l_i`` -- every image weighs ``1 / n``, exactly what per-image training does
      (a batch of images, each with its own loss, averaged);
    * ``"per_token"``: ``sum_i L_i l_i / sum_i L_i`` -- what naive code on a packed row computes when every
      token carries its image's loss and the mean runs over all real tokens of the rows (``L_i`` = tokens of
      image i): an image of 400 tokens weighs 4x one of 100 tokens.
    """
    _check_losses(losses)
    weights = image_weights(lengths, reduction)
    if weights.numel() != losses.numel():
        raise ValueError(f"{losses.numel()} losses but {weights.numel()} lengths")
    return (weights.to(losses.dtype).to(losses.device) * losses).sum()


def _check_losses(losses) -> None:
    if not isinstance(losses, torch.Tensor):
        raise TypeError(f"losses must be a (num_images,) float tensor, got {type(losses).__name__}")
    if not losses.dtype.is_floating_point:
        raise TypeError(f"losses must be floating point (one loss per image), got {losses.dtype}")
    if losses.ndim != 1:
        raise ValueError(f"losses must be (num_images,), got {tuple(losses.shape)}")


def check_targets(targets, n: int, num_classes: int) -> None:
    """Class targets for ``n`` images: an integer (n,) tensor with values in [0, num_classes)."""
    if not isinstance(targets, torch.Tensor):
        raise TypeError(f"targets must be an integer tensor of {n} class indices, got "
                        f"{type(targets).__name__}")
    if targets.dtype.is_floating_point or targets.dtype == torch.bool:
        raise TypeError(f"targets must hold integer class indices (torch.long), got {targets.dtype}")
    if tuple(targets.shape) != (n,):
        raise ValueError(f"targets must be ({n},) class indices, got {tuple(targets.shape)}")
    if n and (int(targets.min()) < 0 or int(targets.max()) >= num_classes):
        raise ValueError(f"targets must lie in [0, {num_classes}) for a head of {num_classes} classes, got "
                         f"{int(targets.min())}..{int(targets.max())}")


def image_losses(model, head, images, targets: torch.Tensor, attention: str = "auto",
                 pool_how: str = "cls", keep=None) -> tuple[torch.Tensor, list[int]]:
    """Cross-entropy of every image and its token count: ``(losses (n,), lengths)``.

    ``images``: a :class:`~anyres_tutorial.packing.PackedBatch` (run as packed, ``attention`` backend) or a
    list of normalised (3, H, W) tensors (run as one packed sequence, with token dropping ``keep``).
    """
    n = images.num_images if isinstance(images, PackedBatch) else len(images)
    check_targets(targets, n, head.out_features)
    outputs = model.forward_packed(images, attention=attention, keep=keep)
    logits = head(pool(outputs, pool_how))  # (n, classes)
    return F.cross_entropy(logits, targets.to(logits.device), reduction="none"), [o.shape[0] for o in outputs]


def packed_loss(model, head, batch: PackedBatch, targets: torch.Tensor, reduction: str = "per_image",
                attention: str = "auto", pool_how: str = "cls") -> torch.Tensor:
    """The training loss of a packed batch: per-image losses reduced by ``reduction``."""
    losses, lengths = image_losses(model, head, batch, targets, attention, pool_how)
    return reduce_losses(losses, lengths, reduction)


def per_image_backward(model, head, images, targets: torch.Tensor, keep=None, pool_how: str = "cls") -> float:
    """The reference: every image alone through the model (``loop``), ``l_i / n`` back-propagated one image
    at a time (gradients accumulate in ``.grad``). ``keep``: the same token dropping as the packed batch.
    Returns the mean loss."""
    keep = keep if keep is not None else [None] * len(images)
    if len(keep) != len(images) or targets.shape != (len(images),):
        raise ValueError(f"need one keep entry and one target per image ({len(images)})")
    total = 0.0
    for img, k, t in zip(images, keep, targets):
        loss, _ = image_losses(model, head, [img], t[None], "loop", pool_how, keep=[k])
        (loss[0] / len(images)).backward()
        total += float(loss[0].detach()) / len(images)
    return total


def trainable(*modules: nn.Module) -> dict[str, nn.Parameter]:
    """The parameters that require grad, by name (``"0.blocks.11.mlp.fc1.weight"``: module index first)."""
    return {f"{i}.{n}": p for i, m in enumerate(modules) for n, p in m.named_parameters() if p.requires_grad}


def relative_differences(grads: dict, ref: dict) -> dict[str, float]:
    """Per parameter tensor: ``||g - g_ref|| / ||g_ref||`` (the absolute norm where ``g_ref`` is zero)."""
    if grads.keys() != ref.keys():
        raise ValueError("the two gradient sets name different parameters")
    out = {}
    for name, g in grads.items():
        r = ref[name]
        scale = float(r.norm())
        out[name] = float((g - r).norm()) / (scale if scale > 0 else 1.0)
    return out


@dataclass
class StepComparison:
    """One optimiser step, packed vs image by image: per-tensor relative gradient differences, the largest
    of them, the largest absolute difference of the updated weights, both losses, and whether tokens were
    dropped (the same on both sides)."""

    backend: str
    reduction: str
    grad_diff: dict[str, float]
    weight_diff: float
    loss: float
    ref_loss: float
    dropped: bool = False

    @property
    def max_grad_diff(self) -> float:
        """The largest relative difference; NaN when any difference is NaN (never hidden behind a number)."""
        return float(torch.tensor(list(self.grad_diff.values()), dtype=torch.float64).max())


@contextlib.contextmanager
def restored(*modules: nn.Module):
    """Inside the block the modules' parameters may change (values, ``requires_grad``, ``.grad``); on leaving
    it every parameter is put back as it was. Used to run several training steps from the same start."""
    params = [p for m in modules for p in m.parameters()]
    values = [p.detach().clone() for p in params]
    flags = [p.requires_grad for p in params]
    try:
        yield
    finally:
        with torch.no_grad():
            for p, value, flag in zip(params, values, flags):
                p.copy_(value)
                p.grad = None
                p.requires_grad_(flag)


def sgd_step(params: dict[str, torch.Tensor], lr: float) -> dict[str, torch.Tensor]:
    """One plain SGD step in place (``p -= lr * p.grad``, gradients cleared); returns the gradients it used
    (copies; zeros for a parameter that got none)."""
    grads = {n: torch.zeros_like(p) if p.grad is None else p.grad.detach().clone() for n, p in params.items()}
    with torch.no_grad():
        for n, p in params.items():
            p -= lr * grads[n]
            p.grad = None
    return grads


def compare_steps(model, head, images, targets: torch.Tensor, runs, max_len: int, keep=None,
                  lr: float = 0.1, pool_how: str = "cls") -> list[StepComparison]:
    """One SGD step on the packed batch ``pack_images(images, 14, max_len, keep=keep, cls_token=True)`` (FFD
    rows) for every ``(attention, reduction)`` in ``runs``, each compared with the same step done image by
    image (:func:`per_image_backward`, computed once); every step starts from the same weights and the
    model and head are left as they were.

    Both sides use the same kept tokens. With ``reduction="per_image"`` they must agree to float rounding;
    ``"per_token"`` shows how far the naive reduction is from per-image training.
    """
    params = trainable(model, head)
    if not params:
        raise ValueError("nothing to train: load_dinov2(trainable=True) or set requires_grad on the head")
    with restored(model, head):
        ref_loss = per_image_backward(model, head, images, targets, keep, pool_how)
        ref = sgd_step(params, lr)
        ref_weights = {n: p.detach().clone() for n, p in params.items()}
    batch = pack_images(images, 14, max_len=max_len, keep=keep, cls_token=True)
    out = []
    for attention, reduction in runs:
        with restored(model, head):
            loss = packed_loss(model, head, batch, targets, reduction, attention, pool_how)
            loss.backward()
            grads = sgd_step(params, lr)
            weight_diff = float(torch.stack([(p.detach() - ref_weights[n]).abs().max()  # NaN stays NaN
                                             for n, p in params.items()]).max())
        out.append(StepComparison(backend=model.last_attention, reduction=reduction,
                                  grad_diff=relative_differences(grads, ref), weight_diff=weight_diff,
                                  loss=float(loss.detach()), ref_loss=ref_loss, dropped=keep is not None))
    return out


__all__ = ["POOLS", "REDUCTIONS", "StepComparison", "compare_steps", "image_losses", "image_weights",
           "make_head", "packed_loss", "per_image_backward", "pool", "reduce_losses", "relative_differences",
           "restored", "sgd_step", "trainable"]
