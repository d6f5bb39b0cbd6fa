"""PCA-RGB pictures of patch features: the first three principal components as colours.

Taught in `patches_tokens_real_vit`; used by the pictures of `tiling_basics` and `tiling_vs_packing` (through
:mod:`anyres_tutorial.viz.features`). Pure compute, no plotting; :mod:`anyres_tutorial.features` re-exports
:func:`pca_rgb` next to the other feature computations.
"""

from __future__ import annotations

import numpy as np
import torch


def _as_patch_grid(f, i: int) -> torch.Tensor:
    from .encoder.vit import ViTOutput

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

    ``features``: a (rows, cols, D) tensor or :class:`~anyres_tutorial.encoder.vit.ViTOutput` -> ndarray
    (rows, cols, 3); or a list of them -> a list of arrays, with ONE PCA fitted jointly on all patches, so
    colours are comparable across pictures (e.g. tiled vs packed feature maps of the same image).

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


__all__ = ["pca_rgb"]
