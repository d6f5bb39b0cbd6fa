"""How visible tile borders are in a tiled encoding (seams), against the same image encoded whole.
Part of :mod:`anyres_tutorial.features`; taught in `tiling_vs_packing`."""

from __future__ import annotations

import torch
import torch.nn.functional as F

from .maps import FeatureMap, as_grid, check_image_size

# ---------------------------------------------------------------------------------------------------------
# seams


def neighbour_dissimilarity(features) -> tuple[torch.Tensor, torch.Tensor]:
    """Cosine distance (1 - cos) between horizontally and vertically adjacent patches of (rows, cols, D):
    returns (horizontal (rows, cols - 1), vertical (rows - 1, cols)); entry [i, j] of ``horizontal`` compares
    patch (i, j) with (i, j + 1). Tile borders in a tiled encoding show up as bright lines. Taught in
    `tiling_vs_packing`."""
    g = as_grid(features)
    horiz = 1 - F.cosine_similarity(g[:, :-1], g[:, 1:], dim=-1)  # (rows, cols - 1)
    vert = 1 - F.cosine_similarity(g[:-1], g[1:], dim=-1)  # (rows - 1, cols)
    return horiz, vert


def edge_map(features) -> torch.Tensor:
    """(rows, cols) map: at each patch the larger cosine distance to its right and lower neighbour (0 on the
    last column/row). A picture of where the features jump. Taught in `tiling_vs_packing`."""
    g = as_grid(features)
    h, v = neighbour_dissimilarity(g)
    out = torch.zeros(g.shape[:2])
    out[:, :-1] = h
    out[:-1, :] = torch.maximum(out[:-1, :], v)
    return out


def _check_seam_args(features, tile_rows, tile_cols, valid):
    """:func:`seam_contrast`'s argument checks -> (grid (rows, cols, D), valid mask (rows, cols) bool,
    tile_rows, tile_cols as lists of border positions inside the map)."""
    if valid is None and isinstance(features, FeatureMap):
        valid = features.valid
    g = as_grid(features)
    rows, cols = g.shape[:2]
    ok = torch.ones(rows, cols, dtype=torch.bool) if valid is None else torch.as_tensor(valid).bool()
    if ok.shape != (rows, cols):
        raise ValueError(f"valid has shape {tuple(ok.shape)}, expected {(rows, cols)}")
    tile_cols = list(tile_cols)
    for c in tile_cols:
        if not 0 < c < cols:
            raise ValueError(f"tile border column {c} outside 1..{cols - 1}")
    tile_rows = list(tile_rows)
    for r in tile_rows:
        if not 0 < r < rows:
            raise ValueError(f"tile border row {r} outside 1..{rows - 1}")
    return g, ok, tile_rows, tile_cols


def seam_contrast(features, tile_rows=(), tile_cols=(), valid=None) -> dict:
    """How much more the features jump across the given tile borders than between other neighbours.

    ``features``: a FeatureMap or (rows, cols, D). ``tile_rows`` / ``tile_cols``: border positions (a border
    between patch i-1 and i is i). Only pairs of two ``valid`` patches count ((rows, cols) bool; default: a
    FeatureMap's non-padding patches, else all), so padding does not inflate the numbers. Returns
    dict(border=mean cosine distance across borders, interior=mean over all other adjacent pairs,
    ratio=border / interior). A tiled encoding has ratio > 1 (seams); a native encoding evaluated at the same
    relative positions has ratio ~ 1. Taught in `tiling_vs_packing`."""
    g, ok, tile_rows, tile_cols = _check_seam_args(features, tile_rows, tile_cols, valid)
    h, v = neighbour_dissimilarity(g)  # (rows, cols - 1), (rows - 1, cols)
    h_ok = ok[:, :-1] & ok[:, 1:]  # (rows, cols - 1): both patches valid
    v_ok = ok[:-1] & ok[1:]  # (rows - 1, cols)
    h_border = torch.zeros_like(h_ok)
    v_border = torch.zeros_like(v_ok)
    for c in tile_cols:
        h_border[:, c - 1] = True  # the pair (c - 1, c) straddles the border
    for r in tile_rows:
        v_border[r - 1, :] = True
    border = torch.cat([h[h_border & h_ok], v[v_border & v_ok]])
    interior = torch.cat([h[~h_border & h_ok], v[~v_border & v_ok]])
    if border.numel() == 0 or interior.numel() == 0:
        raise ValueError("no border (or no interior) pair of valid neighbouring patches")
    b, i = float(border.mean()), float(interior.mean())
    return {"border": b, "interior": i, "ratio": b / i}


def borders_in_image(fmap: FeatureMap) -> tuple[list[float], list[float]]:
    """Interior tile borders of a tiled FeatureMap in original-image pixels: (xs, ys), sorted. See
    `tiling_vs_packing`."""
    if not isinstance(fmap, FeatureMap):
        raise TypeError(f"fmap must be a FeatureMap, got {type(fmap).__name__}")
    xs = sorted({round(b[0], 3) for b in fmap.tile_boxes_image if b[0] > 1e-6})
    ys = sorted({round(b[1], 3) for b in fmap.tile_boxes_image if b[1] > 1e-6})
    return xs, ys


def seams_at_image_borders(native: FeatureMap, tiled: FeatureMap, image_size) -> dict:
    """:func:`seam_contrast` of a NATIVE map at the places where ``tiled`` has its tile borders (mapped
    through original-image coordinates): the control for the tiled seam ratio. Taught in
    `tiling_vs_packing`."""
    w, h = check_image_size(image_size, "image_size")
    rows, cols = native.grid
    xs, ys = borders_in_image(tiled)
    cs = sorted({round(x / w * cols) for x in xs} - {0, cols})
    rs = sorted({round(y / h * rows) for y in ys} - {0, rows})
    if not cs and not rs:
        raise ValueError("the tiled map has no interior tile border")
    return seam_contrast(native, rs, cs)
