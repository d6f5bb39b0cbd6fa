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
- ``auto_rank``: ``"auto"`` picks the available backend with the highest rank;
- ``backward_unavailable(device)`` says why the backend cannot run a backward pass (train) on ``device``, or
  None. ``forward_packed`` checks it whenever autograd is recording (a parameter or input requires grad):
  ``"auto"`` then picks among the backends that can train, and a named one that cannot raises ``ValueError``
  naming the ones that can (:func:`available` with ``backward=True``). Taught in
  `training_with_packed_sequences`;
- ``token_chunk``: the model runs its token-wise layers (LayerNorm, qkv / proj / MLP linear layers, GELU,
  LayerScale residuals) on this many tokens at a time, in place, whenever autograd is not recording
  (``DinoViT._run``); None (the default): on the whole packed sequence at once.

Every ``attend`` gets ALL rows of a packed batch at once (``seg`` (B, N)) and must keep padding slots
(``seg == -1``) finite and away from real tokens: ``model.forward_packed(PackedBatch)`` runs B rows of
``max_len`` slots through the blocks, with padding inside the rows.

Registered here, in this order:

- ``loop``: one image at a time through the same blocks (the reference);
- ``dense_mask``: SDPA with a boolean (N, N) block-diagonal mask (:func:`anyres_tutorial.packing.dense_mask`);
- ``flex``: FlexAttention with a ``BlockMask`` built from segment ids without an N x N matrix, compiled with
  ``torch.compile`` (``dynamic=False``: torch 2.13's dynamic-shape CPU kernel fails to compile when the
  length changes). Only q, k, v are padded, to :func:`flex_padded_length` (a few lengths per doubling), so
  each new bucket costs one compile (~3-20 s on a CPU, cached on disk by Inductor) and padding never enters
  the linear layers; padding query blocks are empty in the ``BlockMask`` and cost nothing;
- ``varlen``: ``torch.nn.attention.varlen.varlen_attn`` with ``cu_seqlens`` (FlashAttention; CUDA, float16
  or bfloat16 only);
- ``sdpa_segments``: the linear layers run on the whole packed sequence, attention runs per image: q, k, v are
  split at the segment boundaries and each image's slice goes through plain SDPA (Qwen2-VL's vision tower
  without FlashAttention). No mask at all, and it trains everywhere. The images' outputs are written into
  one (B, N, H, hd) buffer (no concatenation copies);
- ``nested``: ONE ``F.scaled_dot_product_attention`` call on ``torch.nested`` jagged tensors
  (``layout=torch.jagged``; q, k, v of all images as (n_images, H, j, hd), j ragged), as real systems batch
  variable-length sequences. On CUDA torch dispatches it to FlashAttention / memory-efficient attention with
  the offsets as cu_seqlens; on CPU to its math path (each image's (H, j, j) scores materialised: ~5x slower
  than ``loop`` there). Whether it runs (and trains) on a device is probed by running a tiny case (the error
  is the reason).

``token_chunk`` is for experiments (``tools/packed_speed.py --chunk 1024`` registers ``sdpa_segments`` with
it): the whole packed sequence's MLP activations (T x 1536 floats, 44 MB at 7k tokens) do not fit a CPU
cache and a chunk's do, yet on a 2-core CPU the chunked forward measured no faster than the whole-sequence
one (the matrix products and attention take ~90% of the time either way), so no built-in entry uses it.

Training: ``flex`` has no backward on CPU in torch 2.13 (``NotImplementedError: FlexAttention does not
support backward on CPU``); on CPU the packed backends that train are ``dense_mask``, ``sdpa_segments``,
``nested`` (``loop`` too, as the reference). ``flex`` and ``varlen`` train on CUDA.

``auto`` prefers varlen, then flex, then dense_mask. The ranks are kernel preferences that hold on every
device, not CPU timings, so ``sdpa_segments`` and ``nested`` get none: on a 2-core CPU ``sdpa_segments``
beats ``loop`` by a margin that moves with the machine's load (tools/packed_speed.py), and a rank above
``flex`` would make ``auto`` pick a Python loop over images on a GPU too. A new backend is one
:func:`register` call::

    attention.register("mine", prepare=lambda seg: my_attend, description="...", auto_rank=None)
"""

from __future__ import annotations

import functools
import inspect
from collections.abc import Callable, KeysView
from dataclasses import dataclass

import torch

from ..checks import check_int
from ..packing.masks import check_lengths, cu_seqlens
from ..packing.memory import mask_memory
from . import attention_kernels as _k
from .arch import DEPTH, DIM, count_flops
from .attention_kernels import FLEX_BLOCK, FLEX_MIN_LEN, flat_attend, flex_padded_length, run_lengths


def _trains_everywhere(device: torch.device) -> None:
    return None


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
    backward_unavailable: Callable[[torch.device], str | None] = _trains_everywhere
    token_chunk: int | None = None  # the model's token-wise layers run on this many tokens at a time


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


_no_memory = _k.no_mask_memory


def register(name: str, *, prepare, unavailable=None, memory=None, description: str = "",
             attends_all_pairs: bool = False, auto_rank: int | None = None, color: str | None = None,
             backward_unavailable=None, token_chunk: int | None = None, replace: bool = False) -> Backend:
    """Add a backend to the registry and return its :class:`Backend`.

    ``prepare``: ``prepare(seg) -> attend`` (or None for the per-image reference); ``unavailable``: default
    "always available"; ``memory``: default "no mask" (zeros); ``backward_unavailable(device)``: default
    "trains wherever it runs"; ``token_chunk``: see the module docstring (default None: whole sequence).
    A name that is already registered raises ``ValueError`` unless ``replace=True``.
    """
    if not isinstance(name, str) or not name or name == "auto":
        raise ValueError(f"a backend name is a non-empty string other than 'auto', got {name!r}")
    if name in _REGISTRY and not replace:
        raise ValueError(f"attention backend {name!r} is already registered (pass replace=True)")
    for what, fn in (("prepare", prepare), ("unavailable", unavailable), ("memory", memory),
                     ("backward_unavailable", backward_unavailable)):
        if fn is not None and not callable(fn):
            raise TypeError(f"{what} must be callable or None, got {type(fn).__name__}")
    if auto_rank is not None:
        auto_rank = check_int("auto_rank", auto_rank)
    if token_chunk is not None:
        token_chunk = check_int("token_chunk", token_chunk, 1)
    if not isinstance(description, str):
        raise TypeError(f"description must be a string, got {type(description).__name__}")
    backend = Backend(name=name, description=description, prepare=prepare,
                      unavailable=unavailable or _no_reason, memory=memory or _no_memory,
                      attends_all_pairs=bool(attends_all_pairs), auto_rank=auto_rank, color=color,
                      backward_unavailable=backward_unavailable or _trains_everywhere,
                      token_chunk=token_chunk)
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


def _why_not(backend: Backend, device: torch.device, dtype: torch.dtype, backward: bool) -> str | None:
    why = backend.unavailable(device, dtype)
    if why is None and backward:
        why = backend.backward_unavailable(device)
    return why


def available(device=None, dtype: torch.dtype = torch.float32, backward: bool = False) -> list[str]:
    """The backends that can run on ``device`` (default CPU) for a model of ``dtype``, in registry order;
    ``backward=True``: only those that can also run a backward pass there (train)."""
    device = _device(device)
    return [b.name for b in _REGISTRY.values() if _why_not(b, device, dtype, backward) is None]


def resolve(name: str = "auto", device=None, dtype: torch.dtype = torch.float32,
            backward: bool = False) -> str:
    """Turn ``"auto"`` into the available backend with the highest ``auto_rank``; check any other name.

    An unknown name raises ``ValueError`` listing the registered backends; an unavailable one raises
    ``ValueError`` with its reason and the available ones. ``backward=True`` (autograd is recording): only
    backends that can train on ``device`` qualify, and the error names the ones that can.
    """
    device = _device(device)
    if name == "auto":
        ranked = [b for b in _REGISTRY.values() if b.auto_rank is not None
                  and _why_not(b, device, dtype, backward) is None]
        if not ranked:
            what = "that can train" if backward else "is available"
            raise ValueError(f"no attention backend with an auto_rank {what} on {device} for {dtype}")
        return max(ranked, key=lambda b: b.auto_rank).name  # ties: the first registered
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


def executed_flops(name: str, lengths) -> int:
    """FLOPs backend ``name`` really computes for ONE packed sequence of images with ``lengths`` tokens.

    The model's useful FLOPs (``vit.count_flops``: block-diagonal attention, Σ L_i²), plus, for a backend
    that ``attends_all_pairs`` (dense_mask), the masked-out pairs: every query still meets all N keys, so
    ``4 · D · depth · (N² - Σ L_i²)`` more.
    """

    backend = get(name)
    lengths = check_lengths(lengths)
    flops = count_flops(lengths)
    if backend.attends_all_pairs:
        n = sum(lengths)
        flops += 4 * DIM * DEPTH * (n * n - sum(v * v for v in lengths))
    return int(flops)


# ----------------------------------------------------------------------------------------------------------
# loop, dense_mask, flex (their kernels are in anyres_tutorial.encoder.attention_kernels)


register("loop", prepare=None, description="one image at a time through the same blocks (the reference)",
         color="#17becf")
register("dense_mask", prepare=_k.dense_prepare, memory=_k.dense_memory, attends_all_pairs=True, auto_rank=0,
         color="#8c564b",
         description="SDPA with a boolean (N, N) block-diagonal mask (a padding slot attends to itself)")
register("flex", prepare=_k.flex_prepare, unavailable=_k.flex_unavailable, memory=_k.flex_memory, auto_rank=1,
         color="#bcbd22", backward_unavailable=_k.flex_backward_unavailable,
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
    cu, max_len = cu_seqlens(run_lengths(seg), device=seg.device)  # over all rows, padding squeezed out
    call = _varlen_call()
    return flat_attend(seg, lambda q, k, v: call(q, k, v, cu, max_len))  # (T, H, hd) -> (T, H, hd)


def _varlen_memory(lengths) -> dict:
    return {"mask_bytes": mask_memory(lengths)["cu_seqlens"], "padded_tokens": 0}


register("varlen", prepare=_varlen_prepare, unavailable=_varlen_unavailable, memory=_varlen_memory,
         auto_rank=2, color="#393b79",
         description="varlen_attn (FlashAttention) with cu_seqlens: no mask at all")


# ----------------------------------------------------------------------------------------------------------
# sdpa_segments, nested


register("sdpa_segments", prepare=_k.segments_prepare, color="#637939",
         description="linear layers on the packed sequence, SDPA per image slice (Qwen2-VL without flash)")
register("nested", prepare=_k.nested_prepare, unavailable=_k.nested_unavailable, memory=_k.nested_memory,
         backward_unavailable=_k.nested_backward_unavailable, color="#e7969c",
         description="one SDPA call on torch.nested jagged q, k, v (n_images, H, j, hd)")

__all__ = ["Backend", "BACKENDS", "FLEX_BLOCK", "FLEX_MIN_LEN", "available", "executed_flops",
           "flex_padded_length", "get", "register", "resolve", "unregister", "varlen_caller"]
