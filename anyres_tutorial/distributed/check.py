"""The data-parallel gradient check: one DDP step on ranks with uneven work vs single-process per-image
training on the union of their images. Taught in `data_parallel_training`.

The images (:data:`IMAGES`): 3 small and 7 mixed-size crops of ``data/`` images, class ``i % 3``. The cases
(:data:`CASES`) say which rank holds which image in which micro-batch (``micro[m][r]``) and whether half of
each image's patches are dropped (NaViT token dropping, the same kept tokens on both sides):

- ``uneven``: rank 0 holds the 3 small images, rank 1 the 7 others;
- ``accumulation``: 2 micro-batches with different image counts per rank (3 + 1 and 2 + 4);
- ``dropping`` / ``accumulation + dropping``: the same with 50 % of the patches dropped;
- ``empty rank``: rank 1 holds no image at all (it still joins the all-reduce).

With world size 1 every micro-batch's images go to the one rank. :func:`grad_check` (a worker for
``distributed.run``) runs the DDP step of every reduction and compares the gradient with the reference built
from each image's own gradient ``g_i`` (the image alone through the model, ``loop``): per-image training is
``sum_i g_i / N``, and a reduction's own objective is ``sum_i w_i g_i`` (``step.effective_weights``).
"""

from __future__ import annotations

from dataclasses import dataclass

import torch
from PIL import Image

from ..checks import check_choice, check_positive_int
from ..training import image_losses, relative_differences, restored
from .step import (
    REDUCTIONS,
    MicroBatch,
    check_micro,
    ddp_step,
    effective_weights,
    gradients,
    make_classifier,
)

#: (data image, (width, height) at scale 1): 3 small images, then 7 of mixed sizes and shapes
IMAGES = (("camera", (14, 14)), ("rocket", (28, 14)), ("coffee", (14, 28)),
          ("chelsea", (56, 42)), ("astronaut", (70, 56)), ("coffee", (28, 70)), ("rocket", (42, 42)),
          ("hubble_deep_field", (84, 28)), ("chart", (42, 98)), ("camera", (56, 56)))
CLASSES = 3
DROP_RATE, DROP_SEED = 0.5, 3
_UNEVEN = [[[0, 1, 2], [3, 4, 5, 6, 7, 8, 9]]]
_ACCUMULATION = [[[0, 1, 2], [3, 4]], [[5], [6, 7, 8, 9]]]
#: name -> (micro[m][r] for 2 ranks, token-drop rate)
CASES = {"uneven": (_UNEVEN, 0.0), "accumulation": (_ACCUMULATION, 0.0), "dropping": (_UNEVEN, DROP_RATE),
         "accumulation + dropping": (_ACCUMULATION, DROP_RATE), "empty rank": ([[list(range(10)), []]], 0.0)}


@dataclass
class Workload:
    """Everything every rank (and the reference) needs: images, targets, kept tokens, tokens per image (CLS
    included), ``micro[m][r]`` and the row length the ranks pack to."""

    name: str
    images: list
    targets: list
    keep: list | None
    lengths: list
    micro: list
    max_len: int

    def rank_part(self, rank: int) -> list[MicroBatch]:
        """Rank ``rank``'s micro-batches."""
        return [MicroBatch([self.images[i] for i in mb[rank]], [self.targets[i] for i in mb[rank]],
                           None if self.keep is None else [self.keep[i] for i in mb[rank]])
                for mb in self.micro]


def workload(case: str, world_size: int = 2, scale: int = 1) -> Workload:
    """The case's images (sides x ``scale``) laid out for ``world_size`` (1 or 2) ranks; rows of
    ``32 * scale**2`` slots."""
    from ..data import load_data_image
    from ..encoder.vit import normalize
    from ..packing.dropping import drop_tokens

    case = check_choice("case", case, tuple(CASES))
    world_size = check_positive_int("world_size", world_size, maximum=2)
    scale = check_positive_int("scale", scale, maximum=4)
    micro, rate = CASES[case]
    if world_size == 1:
        micro = [[[i for part in mb for i in part]] for mb in micro]
    images = [normalize(load_data_image(n).convert("RGB").resize((w * scale, h * scale), Image.BICUBIC))
              for n, (w, h) in IMAGES]
    counts = [(w * scale // 14) * (h * scale // 14) for _, (w, h) in IMAGES]
    keep = drop_tokens(counts, rate, seed=DROP_SEED) if rate else None
    lengths = [1 + n for n in ([len(k) for k in keep] if keep else counts)]  # CLS + kept patches
    return Workload(case, images, [i % CLASSES for i in range(len(IMAGES))], keep, lengths,
                    check_micro(micro, len(IMAGES)), 32 * scale * scale)


def image_gradients(module, w: Workload) -> list[dict[str, torch.Tensor]]:
    """Each image alone through the model (``loop``, its own kept tokens): the gradient of its loss ``g_i``
    for every trainable tensor. The module is left as it was."""
    out = []
    with restored(module):
        for i, img in enumerate(w.images):
            keep = None if w.keep is None else [w.keep[i]]
            losses, _ = image_losses(module.model, module.head, [img.to(module.head.weight.device)],
                                     torch.tensor([w.targets[i]]), "loop", module.pool_how, keep=keep)
            losses[0].backward()
            out.append(gradients(module))
            module.zero_grad(set_to_none=True)
    return out


def combine(per_image: list[dict], weights: torch.Tensor) -> dict[str, torch.Tensor]:
    """``sum_i w_i g_i`` per tensor (float64 sums, returned in the gradients' dtype)."""
    return {n: sum(float(w) * g[n].double() for w, g in zip(weights, per_image)).to(per_image[0][n].dtype)
            for n in per_image[0]}


def grad_check(ctx, cases=tuple(CASES), reductions=REDUCTIONS, scale: int = 1, train_blocks: int = 1,
               attention: str = "auto") -> list[dict]:
    """Worker (``distributed.run("grad_check", nprocs=2)``): for every case and reduction one DDP step from
    the same weights. Every rank returns one row per (case, reduction) with its ``checksum`` of the averaged
    gradient (equal on all ranks); rank 0 adds ``vs_per_image`` and ``vs_own_weights`` (relative difference
    per tensor against single-process per-image training and against the reduction's own weights), the
    images and tokens per rank and micro-batch, and the effective weight of every image."""
    from torch.nn.parallel import DistributedDataParallel as DDP

    module = make_classifier(CLASSES, train_blocks, attention, device=ctx.device)
    ddp = DDP(module, device_ids=[ctx.device.index] if ctx.device.type == "cuda" else None)
    rows, per_image_of = [], {}  # the reference gradients g_i depend on the images' kept tokens only
    for case in cases:
        w = workload(case, ctx.world_size, scale)
        mine = w.rank_part(ctx.rank)
        grads = {}
        for reduction in reductions:
            with restored(module):
                info = ddp_step(ddp, mine, reduction, w.max_len)
                grads[reduction] = gradients(module)
            checksum = float(sum(g.double().sum() for g in grads[reduction].values()))
            rows.append(dict(case=case, reduction=reduction, rank=ctx.rank, checksum=checksum, **info))
        if ctx.rank == 0:
            if CASES[case][1] not in per_image_of:
                per_image_of[CASES[case][1]] = image_gradients(module, w)
            per_image = per_image_of[CASES[case][1]]
            ref = combine(per_image, torch.full((len(w.images),), 1.0 / len(w.images), dtype=torch.float64))
            for row in rows[-len(reductions):]:
                weights = effective_weights(w.micro, w.lengths, row["reduction"])
                own = combine(per_image, weights)
                g = {n: t.cpu() for n, t in grads[row["reduction"]].items()}
                row.update(vs_per_image=relative_differences(g, {n: t.cpu() for n, t in ref.items()}),
                           vs_own_weights=relative_differences(g, {n: t.cpu() for n, t in own.items()}),
                           weights=weights.tolist(), lengths=list(w.lengths), micro=w.micro)
    return rows


def image_counts(ctx, case: str = "accumulation") -> dict:
    """Worker: the step's one bookkeeping all-reduce alone (no model): this rank's images and tokens, and the
    totals over all ranks and micro-batches."""
    from .step import step_totals

    w = workload(case, ctx.world_size)
    batches = [mb.pack(w.max_len, ctx.device) for mb in w.rank_part(ctx.rank)]
    total_images, total_tokens = step_totals(batches, ctx.device)
    return dict(rank=ctx.rank, images=[0 if b is None else b.num_images for b in batches],
                tokens=[0 if b is None else sum(b.lengths) for b in batches], total_images=total_images,
                total_tokens=total_tokens)


def summary(rows: list[dict]) -> list[dict]:
    """Rank 0's rows in short: case, reduction, largest relative difference vs per-image training and vs the
    reduction's own weights, and whether every rank ended with the same gradient."""
    out = []
    for r in (r for r in rows if "vs_per_image" in r):
        same = {x["checksum"] for x in rows if x["case"] == r["case"] and x["reduction"] == r["reduction"]}
        worst = {k: float(torch.tensor(list(r[k].values()), dtype=torch.float64).max())  # NaN stays NaN
                 for k in ("vs_per_image", "vs_own_weights")}
        out.append(dict(case=r["case"], reduction=r["reduction"], **worst, ranks_agree=len(same) == 1))
    return out


__all__ = ["CASES", "CLASSES", "IMAGES", "Workload", "combine", "grad_check", "image_counts",
           "image_gradients", "summary", "workload"]
