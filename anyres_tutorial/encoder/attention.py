"""Attention backends for packed sequences: one registry entry per way of keeping images apart.

Taught in `navit_packing` (side by side on real weights), `training_with_packed_sequences` (which can train)
and `timing`. ``model.forward_packed`` runs the blocks over packed rows; an entry's ``prepare(seg)`` gets the
segment ids (B, N) once per forward (image index per slot, -1 at padding) and returns ``attend(q, k, v)``:
(B, H, N, hd) -> (B, H, N, hd), used by every block; ``prepare=None`` runs each image alone (``loop``, the
reference). The kernels are in :mod:`.attention_kernels`, the masks in :mod:`anyres_tutorial.packing.masks`.

``"auto"`` picks, among the available packed kernels, the one expected to be fastest for the batch on this
device: the cost model the benchmark measured for this kind of device (:mod:`.costs`), or else the entries'
``auto_rank`` (a preference for fused kernels). A new backend is one :func:`register` call::

    attention.register("mine", prepare=my_prepare, description="...")
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass

import torch

from ..checks import check_int, check_lengths
from ..registry import Registry
from . import attention_kernels as k
from . import costs
from .arch import PAIR_FLOPS, SLOT_FLOPS, count_flops


@dataclass(frozen=True)
class Backend:
    """One packed-attention backend: its kernel and what it needs, costs and can do."""

    name: str
    description: str
    prepare: Callable | None  # prepare(seg (B, N), -1 = padding) -> attend(q, k, v); None: each image alone
    unavailable: Callable[[torch.device, torch.dtype], str | None] = k.always_none  # why it cannot run there
    backward_unavailable: Callable[[torch.device], str | None] = k.always_none  # why it cannot train there
    memory: Callable[[list[int]], dict] = k.no_mask_memory  # lengths -> {"mask_bytes", "padded_tokens"}
    pairs: Callable[[list[int], int | None], int] = k.block_diagonal_pairs  # (lengths, row_len) -> pairs
    attends_all_pairs: bool = False  # every query meets all N keys of its row, masked afterwards (dense_mask)
    fused: bool = False  # ONE kernel call for all images that skips the masked-out pairs (flex, varlen)
    compiles: bool = False  # compiled per padded shape: the first use of a new shape costs a compile
    per_image_kernels: int = 0  # kernel launches per image per block (a Python loop over images)
    auto_rank: int | None = None  # "auto"'s preference where no cost model was measured (higher first)


#: Every registered backend, in registration order (``names()``, ``get``, ``in``, iteration).
BACKENDS = Registry("attention backend", also=("auto",))
#: The backend every other one is checked against: each image alone through the model (``prepare=None``).
REFERENCE = "loop"


def register(name: str, *, prepare, replace: bool = False, **fields) -> Backend:
    """Add a backend (the keyword fields of :class:`Backend`) and return its entry. A taken name raises
    ``ValueError`` unless ``replace=True``."""
    for what in ("prepare", "unavailable", "backward_unavailable", "memory", "pairs"):
        fn = prepare if what == "prepare" else fields.get(what)
        if fn is not None and not callable(fn):
            raise TypeError(f"{what} must be callable or None, got {type(fn).__name__}")
    fields = {f: v for f, v in fields.items() if v is not None or f == "auto_rank"}
    if fields.get("auto_rank") is not None:
        fields["auto_rank"] = check_int("auto_rank", fields["auto_rank"])
    if not isinstance(fields.setdefault("description", ""), str):
        raise TypeError(f"description must be a string, got {type(fields['description']).__name__}")
    return BACKENDS.register(name, Backend(name=name, prepare=prepare, **fields), replace=replace)


get = BACKENDS.get
unregister = BACKENDS.unregister


def _why_not(backend: Backend, device: torch.device, dtype: torch.dtype, backward: bool) -> str | None:
    why = backend.unavailable(device, dtype)
    return why if why is not None or not backward else backend.backward_unavailable(device)


def available(device=None, dtype: torch.dtype = torch.float32, backward: bool = False) -> list[str]:
    """The backends that can run on ``device`` (default CPU) for a model of ``dtype``, in registry order;
    ``backward=True``: only those that can also run a backward pass there (train)."""
    device = torch.device(device if device is not None else "cpu")
    return [b.name for b in BACKENDS.values() if _why_not(b, device, dtype, backward) is None]


def expected_seconds(name: str, rows, row_len: int | None = None, device=None,
                     dtype: torch.dtype = torch.float32) -> float | None:
    """The cost model's seconds for backend ``name`` on packed ``rows`` (image lengths per row) padded to
    ``row_len``, on this kind of device; None when no cost was measured for it there."""
    table = costs.load().get(costs.key(torch.device(device or "cpu"), dtype), {}).get("backends", {})
    coef = table.get(get(name).name)
    return None if coef is None else costs.predict(coef, costs.features(get(name), rows, row_len))


def resolve(name: str = "auto", device=None, dtype: torch.dtype = torch.float32, backward: bool = False,
            rows=None, row_len: int | None = None) -> str:
    """A backend name that runs here: ``"auto"`` becomes the packed kernel with the lowest expected seconds
    for ``rows`` (image lengths per row, padded to ``row_len``; default one row of 256-token images) where the
    cost model covers this device, else the one with the highest ``auto_rank``. Any other name is checked.

    An unknown name raises ``ValueError`` listing the registered backends; an unavailable one its reason and
    the available ones. ``backward=True`` (autograd is recording): only backends that can train here.
    """
    device = torch.device(device if device is not None else "cpu")
    if name != "auto":
        backend = get(name)
        why = backend.unavailable(device, dtype)
        if why is not None:
            raise ValueError(f"attention backend {name!r} is not available here ({why}); "
                             f"available: {available(device, dtype)}")
        why = backend.backward_unavailable(device) if backward else None
        if why is not None:
            raise ValueError(f"attention backend {name!r} cannot run backward (train) on {device} ({why}); "
                             f"backends that can train here: {available(device, dtype, backward=True)}, "
                             "or run it under torch.no_grad()")
        return name
    candidates = [b for b in BACKENDS.values()
                  if b.prepare is not None and _why_not(b, device, dtype, backward) is None]
    rows = [[256] * 8] if rows is None else rows
    timed = {b.name: expected_seconds(b.name, rows, row_len, device, dtype) for b in candidates}
    timed = {n: t for n, t in timed.items() if t is not None}
    if timed:
        return min(timed, key=timed.get)
    ranked = [b for b in candidates if b.auto_rank is not None]
    if not ranked:
        what = "that can train" if backward else "is available"
        raise ValueError(f"no packed attention backend {what} on {device} for {dtype}")
    return max(ranked, key=lambda b: b.auto_rank).name  # ties: the first registered


def executed_flops(name: str, lengths, row_len: int | None = None) -> int:
    """FLOPs backend ``name`` really computes for ONE packed row of images with ``lengths`` tokens, padded to
    ``row_len`` slots (default: no padding): the model's useful FLOPs (``count_flops``: Σ L_i² attention),
    plus every padding slot through the linear layers and every extra (query, key) pair its kernel computes
    (``pairs``: a dense mask's N², flex's partly masked tiles). A backend without ``prepare`` runs each image
    alone: exactly the useful FLOPs."""
    backend, lengths = get(name), check_lengths(lengths)
    flops = count_flops(lengths)
    if backend.prepare is None:
        return int(flops)
    pad = 0 if row_len is None else max(0, check_int("row_len", row_len) - sum(lengths))
    extra_pairs = backend.pairs(lengths, row_len) - sum(n * n for n in lengths)
    return int(flops + SLOT_FLOPS * pad + PAIR_FLOPS * extra_pairs)


# ----------------------------------------------------------------------------------------------------------
# The built-in backends (kernels in attention_kernels)

register("loop", prepare=None, per_image_kernels=15,
         description="one image at a time through the same blocks (the reference)")
register("dense_mask", prepare=k.dense_prepare, memory=k.dense_memory, pairs=k.dense_pairs,
         attends_all_pairs=True, auto_rank=0,
         description="SDPA with a boolean (N, N) block-diagonal mask (a padding slot attends to itself)")
register("flex", prepare=k.flex_prepare, unavailable=k.flex_unavailable, memory=k.flex_memory,
         pairs=k.flex_pairs, backward_unavailable=k.flex_backward_unavailable, fused=True, compiles=True,
         auto_rank=1,
         description="FlexAttention BlockMask from segment ids, compiled per padded-length bucket")
register("varlen", prepare=k.varlen_prepare, unavailable=k.varlen_unavailable, memory=k.varlen_memory,
         fused=True, auto_rank=2, description="varlen_attn (FlashAttention) with cu_seqlens: no mask at all")
register("sdpa_segments", prepare=k.segments_prepare, per_image_kernels=4,
         description="linear layers on the packed sequence, SDPA per image slice (Qwen2-VL without flash)")
register("nested", prepare=k.nested_prepare, unavailable=k.nested_unavailable, memory=k.nested_memory,
         backward_unavailable=k.nested_backward_unavailable,
         description="one SDPA call on torch.nested jagged q, k, v (n_images, H, j, hd)")

__all__ = ["BACKENDS", "REFERENCE", "Backend", "available", "executed_flops", "expected_seconds", "get",
           "register", "resolve", "unregister"]
