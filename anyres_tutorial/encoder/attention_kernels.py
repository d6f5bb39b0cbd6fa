"""The kernels behind the attention backends of :mod:`anyres_tutorial.encoder.attention` (registered there).

Taught in `navit_packing` and timed in `timing`. Every ``*_prepare(seg)`` takes the segment ids (B, N) of a
packed batch (image index per token, -1 for padding) and returns ``attend(q, k, v)``: (B, H, N, hd) ->
(B, H, N, hd) with attention inside each image only and padding slots finite (zero or attending to
themselves).

- :func:`dense_prepare`: SDPA with a boolean (B, 1, N, N) block-diagonal mask;
- :func:`flex_prepare`: FlexAttention with a ``BlockMask``, compiled per padded length;
- :func:`segments_prepare`: plain SDPA on each image's slice of q, k, v, written into one output buffer;
- :func:`nested_prepare`: ONE SDPA call on nested jagged tensors (``torch.nested``, ``layout=torch.jagged``):
  q, k, v of all images as a (n_images, H, j, hd) tensor whose length ``j`` differs per image;
- :func:`flat_attend`: the layout plumbing shared by kernels that take the real tokens as (T, H, hd) with
  offsets (``nested`` here, ``varlen`` in :mod:`anyres_tutorial.encoder.attention`).
"""

from __future__ import annotations

import functools
import logging
import os
import shutil
import warnings
from collections.abc import Callable

import torch
import torch.nn.functional as F

from ..packing.masks import check_lengths, flex_block_mask
from ..packing.masks import dense_mask as _dense_mask
from ..packing.memory import mask_memory

FLEX_BLOCK = 128  # FlexAttention tile size; packed sequences are padded to a multiple of it
FLEX_MIN_LEN = 256  # a single-tile sequence would make torch.compile specialise (and recompile)


# ----------------------------------------------------------------------------------------------------------
# shared plumbing


def run_lengths(seg: torch.Tensor) -> list[int]:
    """Token counts of the images of every row of ``seg`` (B, N), row by row, padding left out."""
    lengths = []
    for row in seg:
        ids, counts = torch.unique_consecutive(row[row >= 0], return_counts=True)
        assert ids.unique().numel() == ids.numel(), "each image's tokens must be contiguous in its row"
        lengths += counts.tolist()
    return lengths


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


def no_mask_memory(lengths) -> dict:
    check_lengths(lengths)
    return {"mask_bytes": 0, "padded_tokens": 0}


# ----------------------------------------------------------------------------------------------------------
# dense_mask


def dense_prepare(seg: torch.Tensor):
    mask = torch.stack([_dense_mask(s) for s in seg])  # (B, N, N) bool, True = may attend
    if bool((seg < 0).any()):  # a padding slot attends to itself only: SDPA gives NaN for an empty row
        mask = mask | torch.diag_embed(seg < 0)
    mask = mask[:, None]  # (B, 1, N, N)

    def attend(q, k, v):  # (B, H, N, hd) -> (B, H, N, hd)
        return F.scaled_dot_product_attention(q, k, v, attn_mask=mask)

    return attend


def dense_memory(lengths) -> dict:
    return {"mask_bytes": mask_memory(lengths)["dense_bool"], "padded_tokens": 0}


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


def flex_backward_unavailable(device: torch.device) -> str | None:
    if device.type == "cpu":
        return f"FlexAttention does not support backward on CPU (torch {torch.__version__})"
    return None


def flex_prepare(seg: torch.Tensor):
    T = seg.shape[1]
    # pad q, k, v (not x) to a bucketed length: few distinct shapes to compile, no wasted MLP work
    total = flex_padded_length(T)
    padded = F.pad(seg, (0, total - T), value=-1)  # (B, total)
    block_mask = flex_block_mask(padded[0] if seg.shape[0] == 1 else padded, FLEX_BLOCK)  # batch B
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


# ----------------------------------------------------------------------------------------------------------
# sdpa_segments


def segment_runs(seg: torch.Tensor) -> list[list[tuple[int, int]]]:
    """Per row of ``seg`` (B, N): the (start, end) slot range of every image, padding left out."""
    runs = []
    for row in seg:
        ids, counts = torch.unique_consecutive(row, return_counts=True)
        real = ids[ids >= 0]
        assert real.unique().numel() == real.numel(), "each image's tokens must be contiguous in its row"
        ends = counts.cumsum(0).tolist()
        runs.append([(s, e) for s, e, i in zip([0] + ends[:-1], ends, ids.tolist()) if i >= 0])
    return runs


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
    lengths = run_lengths(seg)
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
