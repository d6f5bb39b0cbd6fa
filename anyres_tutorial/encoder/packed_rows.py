"""The ViT on a :class:`~anyres_tutorial.packing.PackedBatch`: B rows of ``max_len`` slots, padding included.

Taught in `training_with_packed_sequences` (packed training batches); the batch itself in `navit_packing`.

``model.forward_packed(batch)`` (``batch = packing.pack_images(images, 14, max_len, cls_token=True)``) comes
here. The batch already holds everything the model needs, so nothing is rebuilt:

- ``tokens`` (B, L, 3*14*14) are raw patch pixels in the layout of the patch-embedding ``Conv2d`` weight,
  so ``tokens @ W.reshape(D, -1).T + b`` is the patch embedding;
- ``is_cls`` marks the slot reserved in front of every image: it gets the learned CLS token;
- ``image_ids`` and ``patch_index`` pick, for every slot, the row of its own image's resized position table
  (``model.pos_embed_for(rows, cols)``, CLS first): positions restart per image and a kept token (token
  dropping) keeps its own position;
- ``segment_ids`` (B, L), -1 at padding, go to the attention backend's ``prepare`` unchanged: every backend
  handles the row dimension and keeps padding away from real tokens.

Padding slots start as exact zeros; they never reach a real token (no backend lets a real query see a
padding key), so real outputs equal each image run alone. ``loop`` runs each image alone from the same
embedded tokens.
"""

from __future__ import annotations

import torch

from ..packing.batch import PackedBatch
from ..types import PATCH


def check_batch(model, batch: PackedBatch) -> None:
    """A batch the ViT can run: patch pixels of 14 px patches, a CLS slot per image, on the model's device
    and dtype (ValueError / TypeError naming what to change otherwise)."""
    hint = "build it with packing.pack_images(images, 14, max_len, cls_token=True)"
    if batch.patch_size != PATCH or batch.tokens.shape[-1] != 3 * PATCH * PATCH:
        raise ValueError(f"the batch must hold {PATCH}x{PATCH} patch pixels (tokens (B, L, "
                         f"{3 * PATCH * PATCH})), got patch_size={batch.patch_size}, "
                         f"tokens {tuple(batch.tokens.shape)}: {hint}")
    if not batch.cls:
        raise ValueError(f"the batch has no CLS slot per image: {hint}")
    if batch.tokens.dtype != model.dtype:
        raise TypeError(f"batch tokens are {batch.tokens.dtype} but the model is {model.dtype}; build the "
                        f"batch from images cast with .to({model.dtype})")
    if batch.tokens.device != model.device:
        raise ValueError(f"batch is on device {batch.tokens.device} but the model is on {model.device}")


def embed_batch(model, batch: PackedBatch) -> torch.Tensor:
    """Patch embedding + CLS + each image's own position embedding for every slot: (B, L, D), padding zero."""
    check_batch(model, batch)
    weight = model.patch_embed.weight.reshape(model.dim, -1)  # (D, 3*p*p): the Conv2d as a matmul
    x = batch.tokens @ weight.T + model.patch_embed.bias  # (B, L, D)
    x = torch.where(batch.is_cls[..., None], model.cls_token.reshape(1, 1, -1), x)  # (B, L, D)
    tables = [model.pos_embed_for(g.rows, g.cols) for g in batch.grids]  # (1 + N_i, D), CLS first
    starts = torch.tensor([0] + [t.shape[0] for t in tables[:-1]], device=x.device).cumsum(0)  # (n,)
    index = starts[batch.image_ids.clamp(min=0)] + batch.patch_index + 1  # (B, L); CLS: row 0 of its table
    pos = torch.cat(tables)[index]  # (B, L, D)
    return torch.where(batch.padding[..., None], torch.zeros((), dtype=x.dtype, device=x.device), x + pos)


def forward_batch(model, batch: PackedBatch, backend) -> list[torch.Tensor]:
    """Run the packed rows through the blocks with ``backend`` (an attention registry entry) -> per-image
    outputs (1 + n_i, D) in image order (``n_i`` = kept patches)."""
    x = embed_batch(model, batch)  # (B, L, D)
    if backend.prepare is None:  # the reference: every image alone
        return [model._run(s[None])[0] for s in batch.split(x)]
    y = model._run(x, backend.prepare(batch.segment_ids), backend.token_chunk)  # (B, L, D)
    assert y.shape == x.shape, f"backend {backend.name!r} changed the batch shape"
    return batch.split(y)
