"""Attention backends for packed sequences: one registry entry per way of keeping images apart.

Taught in `navit_packing` (the backends side by side on real weights) and timed in `timing`.

When ``model.forward_packed`` packs several images into ONE token sequence, attention must stay inside each
image. A backend says how, as a :class:`Backend` entry of this registry:

- ``prepare(seg)`` gets the segment ids ``seg`` (B, N) of the packed sequence (image index per token, -1 for
  padding) once per forward and returns ``attend(q, k, v)``, run in every block with q, k, v (B, H, N, hd)
  -> (B, H, N, hd). ``prepare=None`` means "run each image alone with plain full attention" (``loop``);
- ``unavailable(device, dtype)`` says why the backend cannot run there (a sentence), or None;
- ``memory(lengths)`` estimates what its mask costs for one packed sequence of images with ``lengths``
  tokens: ``{"mask_bytes": ..., "padded_tokens": ...}`` (padding slots added to q, k, v);
- ``attends_all_pairs`` marks a kernel that multiplies every query with all N keys and masks afterwards
  (``dense_mask``): :func:`executed_flops` then counts the masked-out pairs too;
- ``auto_rank``: ``"auto"`` picks the available backend with the highest rank.

Registered here, in this order:

- ``loop``: one image at a time through the same blocks (the reference);
- ``dense_mask``: SDPA with a boolean (N, N) block-diagonal mask (:func:`anyres_tutorial.packing.dense_mask`);
- ``flex``: FlexAttention with a ``BlockMask`` built from segment ids without an N x N matrix, compiled with
  ``torch.compile`` (``dynamic=False``: torch 2.13's dynamic-shape CPU kernel fails to compile when the
  length changes). Only q, k, v are padded, to :func:`flex_padded_length` (a few lengths per doubling), so
  each new bucket costs one compile (~3-20 s on a CPU, cached on disk by Inductor) and padding never enters
  the linear layers; padding query blocks are empty in the ``BlockMask`` and cost nothing;
- ``varlen``: ``torch.nn.attention.varlen.varlen_attn`` with ``cu_seqlens`` (FlashAttention; CUDA, float16
  or bfloat16 only).

``auto`` prefers varlen, then flex, then dense_mask. A new backend is one :func:`register` call::

    attention.register("mine", prepare=lambda seg: my_attend, description="...", auto_rank=None)
"""

from __future__ import annotations

import functools
import inspect
import os
import shutil
from collections.abc import Callable, KeysView
from dataclasses import dataclass

import torch
import torch.nn.functional as F

from .checks import check_int
from .packing.masks import check_lengths, cu_seqlens, flex_block_mask
from .packing.masks import dense_mask as _dense_mask
from .packing.memory import mask_memory

FLEX_BLOCK = 128  # FlexAttention tile size; packed sequences are padded to a multiple of it
FLEX_MIN_LEN = 256  # a single-tile sequence would make torch.compile specialise (and recompile)


@dataclass(frozen=True)
class Backend:
    """One packed-attention backend (see the module docstring for the meaning of each field)."""

    name: str
    description: str
    prepare: Callable | None  # prepare(seg (B, N) long, -1 = padding) -> attend(q, k, v); None = per image
    unavailable: Callable[[torch.device, torch.dtype], str | None]
    memory: Callable[[list[int]], dict]  # lengths -> {"mask_bytes": int, "padded_tokens": int}
    attends_all_pairs: bool = False
    auto_rank: int | None = None
    color: str | None = None


_REGISTRY: dict[str, Backend] = {}


class _Names(KeysView):
    """The registry's keys (a live, read-only, ordered view), also indexable like a tuple."""

    def __getitem__(self, i):
        return tuple(self)[i]

    def __repr__(self) -> str:
        return repr(tuple(self))


#: The registered backend names, in registration order (a live view: tests may register more).
BACKENDS = _Names(_REGISTRY)


def _no_reason(device: torch.device, dtype: torch.dtype) -> None:
    return None


def _no_memory(lengths) -> dict:
    check_lengths(lengths)
    return {"mask_bytes": 0, "padded_tokens": 0}


def register(name: str, *, prepare, unavailable=None, memory=None, description: str = "",
             attends_all_pairs: bool = False, auto_rank: int | None = None, color: str | None = None,
             replace: bool = False) -> Backend:
    """Add a backend to the registry and return its :class:`Backend`.

    ``prepare``: ``prepare(seg) -> attend`` (or None for the per-image reference); ``unavailable``: default
    "always available"; ``memory``: default "no mask" (zeros). A name that is already registered raises
    ``ValueError`` unless ``replace=True``.
    """
    if not isinstance(name, str) or not name or name == "auto":
        raise ValueError(f"a backend name is a non-empty string other than 'auto', got {name!r}")
    if name in _REGISTRY and not replace:
        raise ValueError(f"attention backend {name!r} is already registered (pass replace=True)")
    for what, fn in (("prepare", prepare), ("unavailable", unavailable), ("memory", memory)):
        if fn is not None and not callable(fn):
            raise TypeError(f"{what} must be callable or None, got {type(fn).__name__}")
    if auto_rank is not None:
        auto_rank = check_int("auto_rank", auto_rank)
    if not isinstance(description, str):
        raise TypeError(f"description must be a string, got {type(description).__name__}")
    backend = Backend(name=name, description=description, prepare=prepare,
                      unavailable=unavailable or _no_reason, memory=memory or _no_memory,
                      attends_all_pairs=bool(attends_all_pairs), auto_rank=auto_rank, color=color)
    _REGISTRY[name] = backend
    return backend


def unregister(name: str) -> None:
    """Remove a backend (for tests that register their own); an unknown name raises like :func:`get`."""
    del _REGISTRY[get(name).name]


def get(name: str) -> Backend:
    """The registered :class:`Backend` called ``name``; ValueError naming the registered ones otherwise."""
    backend = _REGISTRY.get(name) if isinstance(name, str) else None
    if backend is None:
        raise ValueError(f"unknown attention backend {name!r}; choose 'auto' or one of {tuple(_REGISTRY)}")
    return backend


def _device(device) -> torch.device:
    return torch.device(device if device is not None else "cpu")


def available(device=None, dtype: torch.dtype = torch.float32) -> list[str]:
    """The backends that can run on ``device`` (default CPU) for a model of ``dtype``, in registry order."""
    device = _device(device)
    return [b.name for b in _REGISTRY.values() if b.unavailable(device, dtype) is None]


def resolve(name: str = "auto", device=None, dtype: torch.dtype = torch.float32) -> str:
    """Turn ``"auto"`` into the available backend with the highest ``auto_rank``; check any other name.

    An unknown name raises ``ValueError`` listing the registered backends; an unavailable one raises
    ``ValueError`` with its reason and the available ones.
    """
    device = _device(device)
    if name == "auto":
        ranked = [b for b in _REGISTRY.values() if b.auto_rank is not None
                  and b.unavailable(device, dtype) is None]
        if not ranked:
            raise ValueError(f"no attention backend with an auto_rank is available on {device} for {dtype}")
        return max(ranked, key=lambda b: b.auto_rank).name  # ties: the first registered
    why = get(name).unavailable(device, dtype)
    if why is not None:
        raise ValueError(f"attention backend {name!r} is not available here ({why}); "
                         f"available: {available(device, dtype)}")
    return name


def executed_flops(name: str, lengths) -> int:
    """FLOPs backend ``name`` really computes for ONE packed sequence of images with ``lengths`` tokens.

    The model's useful FLOPs (``vit.count_flops``: block-diagonal attention, Σ L_i²), plus, for a backend
    that ``attends_all_pairs`` (dense_mask), the masked-out pairs: every query still meets all N keys, so
    ``4 · D · depth · (N² - Σ L_i²)`` more.
    """
    from .vit import DEPTH, DIM, count_flops

    backend = get(name)
    lengths = check_lengths(lengths)
    flops = count_flops(lengths)
    if backend.attends_all_pairs:
        n = sum(lengths)
        flops += 4 * DIM * DEPTH * (n * n - sum(v * v for v in lengths))
    return int(flops)


# ----------------------------------------------------------------------------------------------------------
# loop


register("loop", prepare=None, description="one image at a time through the same blocks (the reference)",
         color="#17becf")


# ----------------------------------------------------------------------------------------------------------
# dense_mask


def _dense_prepare(seg: torch.Tensor):
    mask = torch.stack([_dense_mask(s) for s in seg])[:, None]  # (B, 1, N, N) bool, True = may attend

    def attend(q, k, v):  # (B, H, N, hd) -> (B, H, N, hd)
        return F.scaled_dot_product_attention(q, k, v, attn_mask=mask)

    return attend


def _dense_memory(lengths) -> dict:
    return {"mask_bytes": mask_memory(lengths)["dense_bool"], "padded_tokens": 0}


register("dense_mask", prepare=_dense_prepare, memory=_dense_memory, attends_all_pairs=True, auto_rank=0,
         color="#8c564b",
         description="SDPA with a boolean (N, N) block-diagonal mask (no padding: its rows would give NaN)")


# ----------------------------------------------------------------------------------------------------------
# flex


def _has_cpp_compiler() -> bool:
    return any(shutil.which(c) for c in (os.environ.get("CXX", ""), "g++", "c++", "clang++") if c)


def _flex_unavailable(device: torch.device, dtype: torch.dtype) -> str | None:
    """None if FlexAttention can run (compiled) on ``device``, else why not."""
    try:
        import torch.nn.attention.flex_attention  # noqa: F401
    except ImportError:
        return f"torch {torch.__version__} has no torch.nn.attention.flex_attention"
    if device.type == "cpu":
        if not _has_cpp_compiler():
            return "torch.compile on CPU needs a C++ compiler (g++/clang++) in PATH"
        return None
    if device.type == "cuda":
        try:
            import triton  # noqa: F401
        except ImportError:
            return "torch.compile on CUDA needs triton"
        return None
    return f"flex attention is not supported on {device.type}"


def flex_padded_length(n: int) -> int:
    """Length the ``flex`` backend pads q, k, v of an ``n``-token packed sequence to.

    A multiple of ``max(128, 2**(bit_length(n - 1) - 3))`` and at least 256: a handful of buckets per doubling
    of ``n``, so a compiled kernel is reused by many lengths. Padding tokens have segment id -1: their query
    blocks are empty in the ``BlockMask`` (skipped) and their keys are masked out.
    """
    n = max(int(n), FLEX_MIN_LEN)
    step = max(FLEX_BLOCK, 2 ** ((n - 1).bit_length() - 3))
    return -(-n // step) * step


@functools.cache
def _compiled_flex_attention():
    import torch._dynamo.config as dynamo_config
    from torch.nn.attention.flex_attention import flex_attention

    # One compiled kernel per padded length (see flex_padded_length); allow enough of them before dynamo
    # would fall back to eager (which materialises the N x N scores).
    dynamo_config.recompile_limit = max(dynamo_config.recompile_limit, 128)
    return torch.compile(flex_attention, dynamic=False)


def _flex_prepare(seg: torch.Tensor):
    assert seg.shape[0] == 1, f"the flex backend runs one packed row at a time, got seg {tuple(seg.shape)}"
    T = seg.shape[1]
    # pad q, k, v (not x) to a bucketed length: few distinct shapes to compile, no wasted MLP work
    total = flex_padded_length(T)
    padded = F.pad(seg[0], (0, total - T), value=-1)  # (total,)
    block_mask = flex_block_mask(padded, FLEX_BLOCK)
    flex = _compiled_flex_attention()

    def attend(q, k, v):  # (1, H, T, hd) -> pad to (1, H, total, hd) -> attend -> (1, H, T, hd)
        q, k, v = (F.pad(t, (0, 0, 0, total - T)) for t in (q, k, v))
        return flex(q, k, v, block_mask=block_mask)[:, :, :T]

    return attend


def _flex_memory(lengths) -> dict:
    n = sum(check_lengths(lengths))
    total = flex_padded_length(n)
    mm = mask_memory(lengths, total=total, block_size=FLEX_BLOCK)
    return {"mask_bytes": mm["block_mask"] + mm["block_segment_ids"], "padded_tokens": total - n}


register("flex", prepare=_flex_prepare, unavailable=_flex_unavailable, memory=_flex_memory, auto_rank=1,
         color="#bcbd22",
         description="FlexAttention BlockMask from segment ids, compiled per padded-length bucket")


# ----------------------------------------------------------------------------------------------------------
# varlen


def _varlen_unavailable(device: torch.device, dtype: torch.dtype) -> str | None:
    """None if varlen_attn (FlashAttention) can run on ``device`` with ``dtype``, else why not."""
    if device.type != "cuda":
        return "varlen attention needs a CUDA device"
    try:
        import torch.nn.attention.varlen  # noqa: F401
    except ImportError:
        return f"torch {torch.__version__} has no torch.nn.attention.varlen"
    if not torch.cuda.is_available():
        return "CUDA is not available"
    if dtype not in (torch.float16, torch.bfloat16):
        return (
            f"varlen (FlashAttention) needs float16/bfloat16, the model is {dtype}: "
            "load_dinov2(dtype=torch.bfloat16)"
        )
    if torch.cuda.get_device_capability(device) < (8, 0):
        return "FlashAttention needs a GPU of compute capability >= 8.0"
    return None


VARLEN_KEYWORDS = ("cu_seq_q", "cu_seq_k", "max_q", "max_k")


def varlen_caller(varlen_attn) -> Callable:
    """``call(q, k, v, cu, max_len)`` for one ``varlen_attn`` function (same cu_seqlens and max length for
    queries and keys, no causal mask).

    Its signature changed across torch versions: the first releases (the 2.10 documentation) take
    ``(query, key, value, cu_seq_q, cu_seq_k, max_q, max_k, is_causal=False, return_aux=None)``, later ones
    (2.12, 2.13) make everything after ``max_k`` keyword-only (``*, return_aux, scale, window_size, ...``);
    torch 2.11 has one of the two. Both accept the names of ``VARLEN_KEYWORDS`` by keyword, so they are
    passed by keyword whenever the signature has them; a function without those names (or without an
    introspectable signature) gets them positionally."""
    try:
        params = inspect.signature(varlen_attn).parameters
        by_keyword = all(n in params for n in VARLEN_KEYWORDS)
    except (TypeError, ValueError):  # no introspectable signature
        by_keyword = False
    if by_keyword:
        return lambda q, k, v, cu, max_len: varlen_attn(q, k, v, cu_seq_q=cu, cu_seq_k=cu, max_q=max_len,
                                                        max_k=max_len)
    return lambda q, k, v, cu, max_len: varlen_attn(q, k, v, cu, cu, max_len, max_len)


@functools.cache
def _varlen_call():
    """:func:`varlen_caller` for this torch's ``torch.nn.attention.varlen.varlen_attn``."""
    from torch.nn.attention.varlen import varlen_attn

    return varlen_caller(varlen_attn)


def _varlen_prepare(seg: torch.Tensor):
    assert seg.shape[0] == 1, f"the varlen backend runs one packed row at a time, got seg {tuple(seg.shape)}"
    assert bool((seg >= 0).all()), "the varlen backend takes a sequence without padding"
    lengths = torch.unique_consecutive(seg[0], return_counts=True)[1].tolist()  # tokens per image
    cu, max_len = cu_seqlens(lengths, device=seg.device)
    call = _varlen_call()

    def attend(q, k, v):  # (1, H, T, hd) <-> (T, H, hd)
        q, k, v = (t[0].transpose(0, 1).contiguous() for t in (q, k, v))
        return call(q, k, v, cu, max_len).transpose(0, 1)[None]

    return attend


def _varlen_memory(lengths) -> dict:
    return {"mask_bytes": mask_memory(lengths)["cu_seqlens"], "padded_tokens": 0}


register("varlen", prepare=_varlen_prepare, unavailable=_varlen_unavailable, memory=_varlen_memory,
         auto_rank=2, color="#393b79",
         description="varlen_attn (FlashAttention) with cu_seqlens: no mask at all")


__all__ = ["Backend", "BACKENDS", "FLEX_BLOCK", "FLEX_MIN_LEN", "available", "executed_flops",
           "flex_padded_length", "get", "register", "resolve", "unregister", "varlen_caller"]
