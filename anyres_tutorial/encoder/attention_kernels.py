"""The kernels behind the attention backends of :mod:`.attention` (registered there).

Taught in `navit_packing`, timed in `timing`. Every ``*_prepare(seg)`` takes the segment ids (B, N) of packed
rows (image index per slot, -1 at padding) and returns ``attend(q, k, v)``: (B, H, N, hd) -> (B, H, N, hd),
attention inside each image only, padding slots finite. The masks come from
:mod:`anyres_tutorial.packing.masks`. ``*_unavailable`` say why a kernel cannot run on a device (or None),
``*_memory(lengths)`` what its mask costs for one packed row, ``*_pairs(lengths, row_len)`` how many
(query, key) pairs it computes for one row.
"""

from __future__ import annotations

import functools
import inspect
import logging
import os
import shutil
import warnings
from collections.abc import Callable

import torch
import torch.nn.functional as F

from ..checks import check_lengths
from ..packing.masks import cu_seqlens, dense_mask, flex_block_mask, segment_runs
from ..packing.memory import mask_memory

FLEX_BLOCK = 128  # FlexAttention tile size; packed sequences are padded to a multiple of it
FLEX_MIN_LEN = 256  # a single-tile sequence would make torch.compile specialise (and recompile)


# ----------------------------------------------------------------------------------------------------------
# shared plumbing


def always_none(*_args) -> None:
    """The default of every ``unavailable`` / ``backward_unavailable``: runs (and trains) everywhere."""
    return None


def no_mask_memory(lengths) -> dict:
    check_lengths(lengths)
    return {"mask_bytes": 0, "padded_tokens": 0}


def block_diagonal_pairs(lengths, row_len: int | None = None) -> int:
    """(query, key) pairs of exact block-diagonal attention: Σ L_i² (padding slots attend nothing)."""
    return sum(n * n for n in check_lengths(lengths))


def _lengths(seg: torch.Tensor) -> list[int]:
    """Token counts of the images of every row of ``seg``, row by row."""
    return [e - s for row in segment_runs(seg) for s, e in row]


def flat_attend(seg: torch.Tensor, kernel: Callable) -> Callable:
    """``attend(q, k, v)`` (B, H, N, hd) -> (B, H, N, hd) around ``kernel(q, k, v)`` that takes the real
    tokens of all rows as contiguous (T, H, hd) (padding squeezed out, rows one after the other) and returns
    (T, H, hd). Padding slots of the output are zero. One row without padding needs no gather or scatter."""
    real = seg >= 0  # (B, N)
    if bool(real.all()) and seg.shape[0] == 1:
        def attend(q, k, v):  # (1, H, T, hd) <-> (T, H, hd)
            q, k, v = (t[0].transpose(0, 1).contiguous() for t in (q, k, v))
            return kernel(q, k, v).transpose(0, 1)[None]

        return attend

    def attend_rows(q, k, v):  # (B, H, N, hd) -> real tokens (T, H, hd) -> (B, H, N, hd), padding zero
        flat = [t.transpose(1, 2)[real].contiguous() for t in (q, k, v)]  # 3 x (T, H, hd)
        out = q.new_zeros(q.shape[0], q.shape[2], q.shape[1], q.shape[3])  # (B, N, H, hd)
        out[real] = kernel(*flat)
        return out.transpose(1, 2)

    return attend_rows


# ----------------------------------------------------------------------------------------------------------
# dense_mask


def dense_prepare(seg: torch.Tensor):
    mask = dense_mask(seg, padding_attends_self=bool((seg < 0).any()))[:, None]  # (B, 1, N, N) bool

    def attend(q, k, v):  # (B, H, N, hd) -> (B, H, N, hd)
        return F.scaled_dot_product_attention(q, k, v, attn_mask=mask)

    return attend


def dense_memory(lengths) -> dict:
    return {"mask_bytes": mask_memory(lengths)["dense_bool"], "padded_tokens": 0}


def dense_pairs(lengths, row_len: int | None = None) -> int:
    """Every query meets every key of its row: row_len² (default: no padding)."""
    n = sum(check_lengths(lengths))
    return (n if row_len is None else max(n, int(row_len))) ** 2


# ----------------------------------------------------------------------------------------------------------
# flex


def _has_cpp_compiler() -> bool:
    return any(shutil.which(c) for c in (os.environ.get("CXX", ""), "g++", "c++", "clang++") if c)


def flex_unavailable(device: torch.device, dtype: torch.dtype) -> str | None:
    """None if FlexAttention can run (compiled) on ``device``, else why not."""
    try:
        import torch.nn.attention.flex_attention  # noqa: F401
    except ImportError:
        return f"torch {torch.__version__} has no torch.nn.attention.flex_attention"
    if device.type == "cpu":
        return None if _has_cpp_compiler() else \
            "torch.compile on CPU needs a C++ compiler (g++/clang++) in PATH"
    if device.type == "cuda":
        try:
            import triton  # noqa: F401
        except ImportError:
            return "torch.compile on CUDA needs triton"
        return None
    return f"flex attention is not supported on {device.type}"


def flex_backward_unavailable(device: torch.device) -> str | None:
    if device.type == "cpu":
        return f"FlexAttention does not support backward on CPU (torch {torch.__version__})"
    return None


def flex_padded_length(n: int) -> int:
    """Length the ``flex`` backend pads q, k, v of an ``n``-slot row to: a multiple of ``max(128,
    2**(bit_length(n - 1) - 3))`` and at least 256, so a handful of compiled shapes serve each doubling of n.
    Padding slots have segment id -1: their query blocks are empty in the ``BlockMask`` and cost nothing."""
    n = max(int(n), FLEX_MIN_LEN)
    step = max(FLEX_BLOCK, 2 ** ((n - 1).bit_length() - 3))
    return -(-n // step) * step


@functools.cache
def _compiled_flex_attention():
    import torch._dynamo.config as dynamo_config
    from torch.nn.attention.flex_attention import flex_attention

    # One compiled kernel per padded length (see flex_padded_length), static shapes (torch 2.13's
    # dynamic-shape CPU kernel fails on a second length); allow enough of them before dynamo falls back to
    # eager, which materialises the N x N scores.
    dynamo_config.recompile_limit = max(dynamo_config.recompile_limit, 128)
    return torch.compile(flex_attention, dynamic=False)


def flex_prepare(seg: torch.Tensor):
    T = seg.shape[1]
    total = flex_padded_length(T)  # pad q, k, v (not x): few shapes to compile, no wasted MLP work
    block_mask = flex_block_mask(F.pad(seg, (0, total - T), value=-1), FLEX_BLOCK)  # batch B
    flex = _compiled_flex_attention()

    def attend(q, k, v):  # (B, H, T, hd) -> pad to (B, H, total, hd) -> attend -> (B, H, T, hd)
        q, k, v = (F.pad(t, (0, 0, 0, total - T)) for t in (q, k, v))
        return flex(q, k, v, block_mask=block_mask)[:, :, :T]

    return attend


def flex_memory(lengths) -> dict:
    n = sum(check_lengths(lengths))
    total = flex_padded_length(n)
    mm = mask_memory(lengths, total=total, block_size=FLEX_BLOCK)
    return {"mask_bytes": mm["block_mask"] + mm["block_segment_ids"], "padded_tokens": total - n}


def flex_pairs(lengths, row_len: int | None = None) -> int:
    """Pairs FlexAttention computes for one row: every non-empty 128 x 128 tile in full (a tile that holds
    a segment boundary is computed whole and masked), so a little more than Σ L_i²."""
    lengths = check_lengths(lengths)
    n = sum(lengths)
    total = flex_padded_length(n if row_len is None else max(n, int(row_len)))
    bounds, start = [], 0
    for length in lengths:
        bounds.append((start, start + length))
        start += length
    tiles, first = 0, 0
    for q0 in range(0, min(n, total), FLEX_BLOCK):  # query tiles that hold real tokens
        q1 = min(q0 + FLEX_BLOCK, n)
        while bounds[first][1] <= q0:
            first += 1
        last = first
        while last + 1 < len(bounds) and bounds[last + 1][0] < q1:
            last += 1
        k0, k1 = bounds[first][0], bounds[last][1]  # keys of the images in this query tile
        tiles += -(-k1 // FLEX_BLOCK) - k0 // FLEX_BLOCK
    return tiles * FLEX_BLOCK * FLEX_BLOCK


# ----------------------------------------------------------------------------------------------------------
# sdpa_segments


def segments_prepare(seg: torch.Tensor):
    runs = segment_runs(seg)
    full = all(row and row[0][0] == 0 and row[-1][1] == seg.shape[1] for row in runs)  # no padding at all

    def attend(q, k, v):  # (B, H, N, hd) -> (B, H, N, hd): SDPA on each image's slice, padding zero
        B, H, N, hd = q.shape
        # every image's result goes into one (B, N, H, hd) buffer (no torch.cat copy), and the caller's
        # transpose(1, 2).reshape back to (B, N, D) is then free; autograd records the slice copies
        out = q.new_empty(B, N, H, hd) if full else q.new_zeros(B, N, H, hd)
        for b, row in enumerate(runs):
            for s, e in row:  # 4-D input: SDPA's fused CPU kernel (a 3-D one falls back to the math path)
                out[b:b + 1, s:e] = F.scaled_dot_product_attention(
                    q[b:b + 1, :, s:e], k[b:b + 1, :, s:e], v[b:b + 1, :, s:e]).transpose(1, 2)
        return out.transpose(1, 2)  # (B, H, N, hd)

    return attend


# ----------------------------------------------------------------------------------------------------------
# nested (torch.nested jagged tensors + SDPA)


class _DropFxTracingNote(logging.Filter):
    """torch's nested-tensor constructor logs a one-time note meant for FX tracing authors; drop it."""

    def filter(self, record: logging.LogRecord) -> bool:
        return not str(record.msg).startswith("is_fx_tracing will return true")


logging.getLogger("torch.fx._symbolic_trace").addFilter(_DropFxTracingNote())


def _jagged(t: torch.Tensor, offsets: torch.Tensor, lengths: list[int]) -> torch.Tensor:
    """(T, H, hd) -> nested jagged (n, H, j, hd): image i is rows offsets[i]:offsets[i+1] of ``t``."""
    if torch.is_inference_mode_enabled() and not t.is_inference():  # a view of it cannot be made here
        nt = torch.nested.as_nested_tensor(list(t.split(lengths)), layout=torch.jagged)
    else:  # no copy: a jagged view of the packed buffer
        nt = torch.nested.nested_tensor_from_jagged(t, offsets, min_seqlen=min(lengths),
                                                    max_seqlen=max(lengths))
    return nt.transpose(1, 2)  # (n, {j}, H, hd) -> (n, H, {j}, hd)


def _nested_sdpa(offsets: torch.Tensor, lengths: list[int], q, k, v) -> torch.Tensor:
    """(T, H, hd) x 3 -> (T, H, hd): one SDPA call on the jagged batch of all images."""
    nq, nk, nv = (_jagged(t, offsets, lengths) for t in (q, k, v))  # (n, H, {j}, hd)
    with warnings.catch_warnings():  # the CPU (math) path builds a strided nested tensor: prototype note
        warnings.filterwarnings("ignore", message="The PyTorch API of nested tensors is in prototype stage")
        out = F.scaled_dot_product_attention(nq, nk, nv)  # (n, H, {j}, hd)
    return out.transpose(1, 2).values()  # (T, H, hd)


def nested_prepare(seg: torch.Tensor):
    lengths = _lengths(seg)
    offsets = torch.tensor([0] + lengths, device=seg.device).cumsum(0)  # (n + 1,) int64
    return flat_attend(seg, functools.partial(_nested_sdpa, offsets, lengths))


@functools.cache
def _nested_probe(device: torch.device, dtype: torch.dtype, backward: bool) -> str | None:
    """Run a tiny jagged SDPA (and its backward) on ``device`` in ``dtype``: None, or the error it raised."""
    try:
        with torch.inference_mode(False), torch.enable_grad():
            seg = torch.tensor([[0, 0, 0, 1, 1]], device=device)
            q = torch.randn(1, 2, 5, 8, device=device, dtype=dtype, requires_grad=backward)  # (B, H, N, hd)
            out = nested_prepare(seg)(q, q, q)
            if backward:
                out.sum().backward()
    except Exception as e:  # the probe's whole point: any failure is the reason
        first = (str(e).strip().splitlines() or [""])[0][:200]
        return f"torch {torch.__version__}: jagged nested SDPA failed on {device} for {dtype}: " \
               f"{type(e).__name__}: {first}"
    return None


def nested_unavailable(device: torch.device, dtype: torch.dtype) -> str | None:
    """None if SDPA on jagged nested tensors runs on ``device`` for ``dtype`` (probed once by running it)."""
    if device.type == "cuda" and not torch.cuda.is_available():
        return "CUDA is not available"
    return _nested_probe(device, dtype, False)


def nested_backward_unavailable(device: torch.device) -> str | None:
    """None if jagged nested SDPA also runs backward on ``device`` (probed once in float32)."""
    return nested_unavailable(device, torch.float32) or _nested_probe(device, torch.float32, True)


def nested_memory(lengths) -> dict:
    """The jagged offsets (int64, one per image plus one) are the whole mask."""
    return {"mask_bytes": 8 * (len(check_lengths(lengths)) + 1), "padded_tokens": 0}


# ----------------------------------------------------------------------------------------------------------
# varlen (FlashAttention with cu_seqlens)


def varlen_unavailable(device: torch.device, dtype: torch.dtype) -> str | None:
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
        return f"varlen (FlashAttention) needs float16/bfloat16, the model is {dtype}: " \
               "load_dinov2(dtype=torch.bfloat16)"
    if torch.cuda.get_device_capability(device) < (8, 0):
        return "FlashAttention needs a GPU of compute capability >= 8.0"
    return None


VARLEN_KEYWORDS = ("cu_seq_q", "cu_seq_k", "max_q", "max_k")


def varlen_caller(varlen_attn) -> Callable:
    """``call(q, k, v, cu, max_len)`` for one ``varlen_attn`` function (the same cu_seqlens and max length
    for queries and keys, no causal mask). Its signature changed across torch versions (2.10 takes
    ``max_k`` and what follows positionally, 2.12+ makes what follows ``max_k`` keyword-only); both accept
    the names of ``VARLEN_KEYWORDS`` by keyword, so they are passed by keyword when the signature has them,
    positionally otherwise."""
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
    from torch.nn.attention.varlen import varlen_attn

    return varlen_caller(varlen_attn)


def varlen_prepare(seg: torch.Tensor):
    cu, max_len = cu_seqlens(_lengths(seg), device=seg.device)  # over all rows, padding squeezed out
    call = _varlen_call()
    return flat_attend(seg, lambda q, k, v: call(q, k, v, cu, max_len))  # (T, H, hd) -> (T, H, hd)


def varlen_memory(lengths) -> dict:
    return {"mask_bytes": mask_memory(lengths)["cu_seqlens"], "padded_tokens": 0}
