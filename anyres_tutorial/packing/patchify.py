"""Cut one image into patch tokens with their (row, col) coordinates, and put it back together.

Taught in `navit_packing`; `patches_tokens_real_vit` shows the same cut on a fixed-size image.

A token is one ``p x p`` patch flattened in ``(channel, y, x)`` order, i.e. exactly the layout of a ViT
patch-embedding ``Conv2d`` weight ``(D, 3, p, p)``: ``tokens @ conv.weight.reshape(D, -1).T + conv.bias``
equals the convolution. Tokens are in row-major (raster) order.
"""

from __future__ import annotations

from ..checks import check_pair, check_positive_int
from ..lazy import lazy_module
from ..types import Grid

torch = lazy_module("torch")  # imported on first use (``packing`` is imported by the explorers)


def check_grid(grid_hw, name: str = "grid") -> Grid:
    """A patch grid ``(rows, cols)`` of positive integers, as a :class:`~anyres_tutorial.types.Grid`."""
    return Grid(*check_pair(f"{name} (rows, cols)", grid_hw, minimum=1))


def grid_coords(grid_hw) -> tuple[torch.Tensor, torch.Tensor]:
    """Coordinates of a ``(rows, cols)`` patch grid in raster order.

    Returns ``coords`` (N, 2) long ``(row, col)`` and ``frac`` (N, 2) float ``(row / rows, col / cols)`` in
    [0, 1): the NaViT "fractional" coordinates, the same for every image size.
    """
    gh, gw = check_grid(grid_hw)
    rows = torch.arange(gh).repeat_interleave(gw)  # (N,)
    cols = torch.arange(gw).repeat(gh)  # (N,)
    coords = torch.stack([rows, cols], dim=1)  # (N, 2)
    frac = torch.stack([rows / gh, cols / gw], dim=1).float()  # (N, 2)
    return coords, frac


def patchify(image: torch.Tensor, patch: int) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
    """Split a ``(3, H, W)`` image (``H`` and ``W`` multiples of ``patch``) into patch tokens.

    Returns ``tokens`` (N, 3*p*p), ``coords`` (N, 2) long ``(row, col)`` and ``frac`` (N, 2) float fractional
    coordinates, with ``N = (H / p) * (W / p)`` in raster order.
    """
    p = check_positive_int("patch", patch)
    if not isinstance(image, torch.Tensor):
        raise TypeError(f"image must be a torch.Tensor (3, H, W), got {type(image).__name__}")
    if image.ndim != 3:
        raise ValueError(f"image must be (C, H, W), got shape {tuple(image.shape)}")
    c, h, w = image.shape
    if h == 0 or w == 0:
        raise ValueError(f"zero-size image: shape {tuple(image.shape)}")
    if h % p or w % p:
        raise ValueError(f"image (H, W) = ({h}, {w}) is not a multiple of the patch size {p}; "
                         "resize it first (see packing.native_size)")
    gh, gw = h // p, w // p
    x = image.reshape(c, gh, p, gw, p)  # (C, gh, p, gw, p)
    x = x.permute(1, 3, 0, 2, 4)  # (gh, gw, C, p, p)
    tokens = x.reshape(gh * gw, c * p * p)  # (N, C*p*p)
    coords, frac = grid_coords((gh, gw))
    return tokens, coords, frac


def unpatchify(tokens: torch.Tensor, grid_hw, patch: int, channels: int = 3) -> torch.Tensor:
    """Inverse of :func:`patchify`: ``tokens`` (N, C*p*p) in raster order of a ``(rows, cols)`` grid ->
    image (C, rows*p, cols*p)."""
    p = check_positive_int("patch", patch)
    gh, gw = check_grid(grid_hw)
    if tokens.ndim != 2 or tokens.shape[0] != gh * gw or tokens.shape[1] != channels * p * p:
        raise ValueError(f"tokens of shape {tuple(tokens.shape)} do not match a {gh}x{gw} grid of "
                         f"{channels}x{p}x{p} patches")
    x = tokens.reshape(gh, gw, channels, p, p).permute(2, 0, 3, 1, 4)  # (C, gh, p, gw, p)
    return x.reshape(channels, gh * p, gw * p)
