"""Real-feature experiments: encode an image tiled vs whole, count tokens, compress to a few tokens.

The compute behind the feature pictures (``viz.features``); every function is pure (no plotting).

- :func:`roundtrip_resize`, :func:`psnr`: what a fixed low input resolution destroys
  (`setup_and_why_resolution`)
- :func:`tokens_for_side`: the quadratic token cost of resolution (`setup_and_why_resolution`,
  `patches_tokens_real_vit`)
- :func:`position_similarity`: cosine map of one position embedding (`patches_tokens_real_vit`)
- :func:`encode_native`, :func:`encode_tiled`: the same image encoded whole vs tile by tile
  (`tiling_vs_packing`, `llava_mini`)
- :func:`seam_contrast`, :func:`seams_at_image_borders`, :func:`edge_map`: how visible tile borders are
  (`tiling_vs_packing`)
- :func:`token_budget`, :func:`format_token_table`: useful / padding / duplicated tokens per method
  (`tiling_vs_packing`)
- :func:`attention_pool`, :func:`cosine_map`: training-free stand-in for LLaVA-Mini's compressor
  (`llava_mini`)

PCA-RGB pictures use :func:`pca_rgb` (one PCA fitted jointly on a list of maps). Feature maps are
:class:`FeatureMap` objects holding a ``(rows, cols, D)`` grid of patch features. Sizes are
``(width, height)`` unless a name says otherwise; boxes are ``(x0, y0, x1, y1)``.
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field

import numpy as np
import torch
import torch.nn.functional as F
from PIL import Image

from .checks import check_positive_int, check_size
from .pca import pca_rgb  # re-exported: the compute behind the PCA pictures
from .types import PATCH  # 14: DINOv2 ViT-S/14, our encoder

# ---------------------------------------------------------------------------------------------------------
# small validators


def _check_pil(image, name: str = "image") -> Image.Image:
    if not isinstance(image, Image.Image):
        raise TypeError(f"{name} must be a PIL image (use anyres_tutorial.images.load_image), "
                        f"got {type(image).__name__}")
    return image.convert("RGB") if image.mode != "RGB" else image


def _check_size(size, name: str = "size"):
    """A (width, height) pair of positive ints as a ``Size`` (no aspect-ratio limit here: the tiling methods
    apply theirs)."""
    return check_size(size, name, max_aspect=None)


def _as_grid(features, name: str = "features") -> torch.Tensor:
    """Accept a FeatureMap or a (rows, cols, D) tensor/array; return a float tensor (rows, cols, D)."""
    if isinstance(features, FeatureMap):
        features = features.features
    if isinstance(features, np.ndarray):
        features = torch.from_numpy(features)
    if not isinstance(features, torch.Tensor):
        raise TypeError(f"{name} must be a FeatureMap or a (rows, cols, D) tensor, "
                        f"got {type(features).__name__}")
    if features.ndim != 3 or min(features.shape) == 0:
        raise ValueError(f"{name} must have shape (rows, cols, D) with no empty side, "
                         f"got {tuple(features.shape)}")
    if not features.is_floating_point():
        raise TypeError(f"{name} must be floating point, got {features.dtype}")
    return features.float()


# ---------------------------------------------------------------------------------------------------------
# `setup_and_why_resolution`: what a low input resolution destroys, and what resolution costs


def roundtrip_resize(image: Image.Image, side: int, resample: int = Image.BICUBIC) -> Image.Image:
    """Resize the whole ``image`` to ``side x side`` (what a fixed-input ViT such as CLIP-336 sees, aspect
    ratio squashed) and back to its original (width, height), so the lost detail can be compared with the
    original pixel for pixel. Taught in `setup_and_why_resolution`."""
    image = _check_pil(image)
    side = check_positive_int("side", side)
    small = image.resize((side, side), resample)
    return small.resize(image.size, resample)


def psnr(a: Image.Image, b: Image.Image, box=None) -> float:
    """Peak signal-to-noise ratio (dB, 8-bit) between two same-size images, optionally inside ``box``
    (x0, y0, x1, y1). Higher = closer; ``inf`` when identical. Taught in
    `setup_and_why_resolution`."""
    a, b = _check_pil(a, "a"), _check_pil(b, "b")
    if a.size != b.size:
        raise ValueError(f"images differ in size: {a.size} vs {b.size} (width, height)")
    if box is not None:
        a, b = a.crop(tuple(box)), b.crop(tuple(box))
    x = np.asarray(a, dtype=np.float64)
    y = np.asarray(b, dtype=np.float64)
    if x.size == 0:
        raise ValueError(f"box {box!r} selects no pixels")
    mse = float(np.mean((x - y) ** 2))
    return math.inf if mse == 0 else 10.0 * math.log10(255.0**2 / mse)


def tokens_for_side(side, patch_size: int = PATCH) -> int | np.ndarray:
    """Patch tokens of a ``side x side`` square image: ``(side // patch_size) ** 2`` (no CLS). Works on an
    int or an integer array. Quadratic: doubling the side quadruples the tokens and multiplies the attention
    cost (N^2 pairs) by 16. Taught in `setup_and_why_resolution` and
    `patches_tokens_real_vit`."""
    p = check_positive_int("patch_size", patch_size)
    if isinstance(side, np.ndarray):
        if not np.issubdtype(side.dtype, np.integer) or (side <= 0).any():
            raise ValueError("side must hold positive integers")
        return (side // p) ** 2
    return (check_positive_int("side", side) // p) ** 2


# ---------------------------------------------------------------------------------------------------------
# `patches_tokens_real_vit`: position embeddings and PCA of features


def position_similarity(grid, position) -> torch.Tensor:
    """Cosine similarity of the embedding at ``position`` = (row, col) to every position of ``grid``
    (rows, cols, D) -> (rows, cols). A learned position embedding shows a bright blob around the position
    (neighbours are similar). `patches_tokens_real_vit` compares the 37x37 DINOv2 grid before and after
    resizing."""
    g = _as_grid(grid, "grid")
    r, c = position
    if not (0 <= r < g.shape[0] and 0 <= c < g.shape[1]):
        raise ValueError(f"position (row, col) = {position} is outside the {g.shape[0]}x{g.shape[1]} grid")
    return cosine_map(g, g[r, c])


def cosine_map(features, vector) -> torch.Tensor:
    """Cosine similarity of a (D,) ``vector`` to every patch of ``features`` (rows, cols, D) -> (rows, cols).
    Taught in `patches_tokens_real_vit` and `llava_mini`."""
    g = _as_grid(features)
    v = torch.as_tensor(vector, dtype=torch.float32).reshape(-1)
    if v.numel() != g.shape[-1]:
        raise ValueError(f"vector has {v.numel()} channels, features have {g.shape[-1]}")
    return F.cosine_similarity(g, v.view(1, 1, -1), dim=-1)  # (rows, cols)


# ---------------------------------------------------------------------------------------------------------
# `llava_mini` and `tiling_vs_packing`: encode an image whole (native) or tile by tile (tiled), on DINOv2


@dataclass
class FeatureMap:
    """Patch features laid out on the grid of the pixels that were encoded.

    ``features`` (rows, cols, D); ``cls`` (n_views, D): one CLS per encoded view (per tile for a tiled
    encoding, one for a native one); ``encoded_size`` (width, height) in pixels of everything encoded, laid
    out as the grid; ``tile_rows`` / ``tile_cols``: patch indices where a tile border lies (a border between
    patch i-1 and i is stored as i; empty for a native encoding); ``padding`` (rows, cols) bool, True where a
    patch shows mostly padding (fill colour) rather than image; ``tile_boxes_image``: each tile's box
    (x0, y0, x1, y1) in ORIGINAL image pixels (where the tile's content comes from); ``global_cls`` (D,) and
    ``global_features`` (rows', cols', D): the plan's global view (thumbnail) when there is one, else None.
    """

    features: torch.Tensor
    cls: torch.Tensor
    encoded_size: tuple[int, int]
    patch_size: int
    label: str = ""
    tile_rows: list[int] = field(default_factory=list)
    tile_cols: list[int] = field(default_factory=list)
    padding: torch.Tensor | None = None
    tile_boxes_image: list[tuple[float, float, float, float]] = field(default_factory=list)
    global_cls: torch.Tensor | None = None
    global_features: torch.Tensor | None = None

    @property
    def grid(self) -> tuple[int, int]:
        """(rows, cols) of the patch grid."""
        return int(self.features.shape[0]), int(self.features.shape[1])

    @property
    def num_tokens(self) -> int:
        """Patch tokens in the map (no CLS)."""
        return self.grid[0] * self.grid[1]

    @property
    def valid(self) -> torch.Tensor:
        """(rows, cols) bool: True where the patch shows image content (not padding)."""
        if self.padding is None:
            return torch.ones(self.grid, dtype=torch.bool)
        return ~self.padding


def _to_model_input(image: Image.Image, size: tuple[int, int]) -> torch.Tensor:
    """Resize to (width, height) with bicubic and normalise with ImageNet mean/std -> (3, H, W)."""
    from .vit import normalize

    if image.size != tuple(size):
        image = image.resize(tuple(size), Image.BICUBIC)
    x = normalize(image)
    if x.ndim == 4:
        x = x[0]
    return x  # (3, H, W)


def _run(model, batch: torch.Tensor) -> torch.Tensor:
    """Run ``model.forward_tiles`` without gradients -> (B, 1 + N, D)."""
    if not hasattr(model, "forward_tiles"):
        raise TypeError(f"model must have forward_tiles (use anyres_tutorial.vit.load_dinov2()), "
                        f"got {type(model).__name__}")
    with torch.no_grad():
        return model.forward_tiles(batch)


def encode_native(model, image: Image.Image, max_tokens: int | None = 1024, patch_size: int = PATCH,
                  rule: str = "navit") -> FeatureMap:
    """Encode ``image`` whole at (near) native resolution: aspect ratio kept, sides multiples of the patch,
    at most ``max_tokens`` patches (``packing.native_size`` with the given ``rule``; ``None`` = no budget).
    No tiles, so no seams: the reference beside the tiled encoding in `tiling_vs_packing`. -> FeatureMap."""
    from .packing.sizing import native_size

    image = _check_pil(image)
    p = check_positive_int("patch_size", patch_size)
    opts = {"patch_size": p, "max_tokens": max_tokens} if rule == "navit" else {}
    w, h = native_size(image.size, rule, **opts)
    x = _to_model_input(image, (w, h))  # (3, H, W)
    out = _run(model, x[None])[0]  # (1 + N, D)
    rows, cols = h // p, w // p
    if out.shape[0] != 1 + rows * cols:
        raise RuntimeError(f"model returned {out.shape[0]} tokens for a {rows}x{cols} grid (+CLS)")
    return FeatureMap(features=out[1:].reshape(rows, cols, -1), cls=out[:1], encoded_size=(w, h),
                      patch_size=p, label=f"native {w}x{h}",
                      padding=torch.zeros(rows, cols, dtype=torch.bool))


def encode_tiled(model, image: Image.Image, plan, patch_size: int = PATCH, batch_size: int = 8) -> FeatureMap:
    """Encode ``image`` the tiling way: apply ``plan`` (``tiling.plan(method, image.size)``), encode EACH tile
    alone (a tile never sees its neighbours), then stitch the tiles' patch features back into the canvas
    layout -> FeatureMap of shape (rows * g, cols * g, D) with g = patches per tile side, tile borders and the
    content box (padding excluded) in patch units. The global view (thumbnail), if the plan has one, is
    encoded too; its CLS goes to ``global_cls`` and its patch grid to ``global_features``.

    A tile whose side is not a multiple of ``patch_size`` (DeepSeek-VL2's 384 for a /14 model) is resized to
    the multiple below (384 -> 378, i.e. 27 patches, the same count as SigLIP/14 which drops the last 6
    pixels, and as ``plan.encoder_tokens()`` counts). ``padding`` marks the patches that the plan's token
    accounting counts as padding (less than half of the patch shows the image, ``tiling.base.patch_coverage``)
    so ``fm.padding.sum()`` is the tiles' share of ``plan.encoder_tokens().padding``.
    Taught in `tiling_vs_packing` and `llava_mini`.
    """
    from .tiling import apply

    image = _check_pil(image)
    p = check_positive_int("patch_size", patch_size)
    tw = th = int(plan.tile_size)  # square t x t tiles
    gw = gh = max(1, tw // p)  # patches per tile side
    tiled = apply(plan, image)  # tiles: t x t PIL images in plan.tile_positions order
    if not tiled.tiles:
        raise ValueError(f"plan {plan.method!r} has no tiles for image size {image.size} (global view only)")
    positions = list(plan.tile_positions)  # (row, col) per tile
    rows, cols = plan.grid
    crops = [_to_model_input(t, (gw * p, gh * p)) for t in tiled.tiles]  # each (3, gh*p, gw*p)
    feats = []
    for i in range(0, len(crops), batch_size):
        feats.append(_run(model, torch.stack(crops[i:i + batch_size])))  # (b, 1 + gh*gw, D)
    out = torch.cat(feats)  # (T, 1 + gh*gw, D)
    d = out.shape[-1]
    grid = torch.zeros(rows * gh, cols * gw, d)
    filled = torch.zeros(rows * gh, cols * gw, dtype=torch.bool)
    for (r, c), tok in zip(positions, out):
        if not (0 <= r < rows and 0 <= c < cols):
            raise ValueError(f"tile position {(r, c)} outside the plan's {rows}x{cols} grid")
        grid[r * gh:(r + 1) * gh, c * gw:(c + 1) * gw] = tok[1:].reshape(gh, gw, d)
        filled[r * gh:(r + 1) * gh, c * gw:(c + 1) * gw] = True
    if not bool(filled.all()):
        raise ValueError("the plan's tiles do not cover its grid; cannot stitch a feature map")
    padding = _padding_mask(plan, gw)  # (rows * g, cols * g)
    # Tile boxes in original-image pixels: canvas box -> image via the content box and the resize.
    cx0, cy0, cx1, cy1 = plan.content_box
    sx, sy = image.width / (cx1 - cx0), image.height / (cy1 - cy0)
    boxes_img = [((b[0] - cx0) * sx, (b[1] - cy0) * sy, (b[2] - cx0) * sx, (b[3] - cy0) * sy)
                 for b in plan.tile_boxes]
    global_cls = global_feats = None
    views = list(getattr(tiled, "global_views", []) or [])
    if views:
        gv = views[0]
        gv = gv if isinstance(gv, Image.Image) else _tensor_to_pil(gv)
        gsz = (max(1, round(gv.size[0] / p)) * p, max(1, round(gv.size[1] / p)) * p)
        go = _run(model, _to_model_input(gv, gsz)[None])[0]  # (1 + N, D)
        global_cls = go[0]
        global_feats = go[1:].reshape(gsz[1] // p, gsz[0] // p, d)
    return FeatureMap(features=grid, cls=out[:, 0], encoded_size=(cols * gw * p, rows * gh * p), patch_size=p,
                      label=f"{plan.method} {rows}x{cols} tiles of {tw}x{th}",
                      tile_rows=[r * gh for r in range(1, rows)], tile_cols=[c * gw for c in range(1, cols)],
                      padding=padding, tile_boxes_image=boxes_img, global_cls=global_cls,
                      global_features=global_feats)


def _padding_mask(plan, g: int) -> torch.Tensor:
    """(rows * g, cols * g) bool: True where a tile's patch shows mostly padding, by the rule of the plan's
    token accounting (``tiling.base.content_patches``: less than half of the patch shows image content)."""
    from .tiling.base import patch_coverage

    t = plan.tile_size
    rows, cols = plan.grid
    padding = torch.ones(rows * g, cols * g, dtype=torch.bool)
    for (r, c), cb in zip(plan.tile_positions, plan.tile_content_boxes):  # cb: content inside the t x t tile
        fx = torch.tensor(patch_coverage(cb[0], cb[2], t, g), dtype=torch.float64)  # (g,) per patch column
        fy = torch.tensor(patch_coverage(cb[1], cb[3], t, g), dtype=torch.float64)  # (g,) per patch row
        padding[r * g:(r + 1) * g, c * g:(c + 1) * g] = (fy[:, None] * fx[None, :]) < 0.5
    return padding


def _tensor_to_pil(x) -> Image.Image:
    """(3, H, W) tensor in [0, 1] -> PIL RGB."""
    x = torch.as_tensor(x).detach().float().clamp(0, 1)
    return Image.fromarray((x.permute(1, 2, 0).numpy() * 255).round().astype(np.uint8))


# ---------------------------------------------------------------------------------------------------------
# seams


def neighbour_dissimilarity(features) -> tuple[torch.Tensor, torch.Tensor]:
    """Cosine distance (1 - cos) between horizontally and vertically adjacent patches of (rows, cols, D):
    returns (horizontal (rows, cols - 1), vertical (rows - 1, cols)); entry [i, j] of ``horizontal`` compares
    patch (i, j) with (i, j + 1). Tile borders in a tiled encoding show up as bright lines. Taught in
    `tiling_vs_packing`."""
    g = _as_grid(features)
    horiz = 1 - F.cosine_similarity(g[:, :-1], g[:, 1:], dim=-1)  # (rows, cols - 1)
    vert = 1 - F.cosine_similarity(g[:-1], g[1:], dim=-1)  # (rows - 1, cols)
    return horiz, vert


def edge_map(features) -> torch.Tensor:
    """(rows, cols) map: at each patch the larger cosine distance to its right and lower neighbour (0 on the
    last column/row). A picture of where the features jump. Taught in `tiling_vs_packing`."""
    g = _as_grid(features)
    h, v = neighbour_dissimilarity(g)
    out = torch.zeros(g.shape[:2])
    out[:, :-1] = h
    out[:-1, :] = torch.maximum(out[:-1, :], v)
    return out


def seam_contrast(features, tile_rows=(), tile_cols=(), valid=None) -> dict:
    """How much more the features jump across the given tile borders than between other neighbours.

    ``features``: a FeatureMap or (rows, cols, D). ``tile_rows`` / ``tile_cols``: border positions (a border
    between patch i-1 and i is i). Only pairs of two ``valid`` patches count ((rows, cols) bool; default: a
    FeatureMap's non-padding patches, else all), so padding does not inflate the numbers. Returns
    dict(border=mean cosine distance across borders, interior=mean over all other adjacent pairs,
    ratio=border / interior). A tiled encoding has ratio > 1 (seams); a native encoding evaluated at the same
    relative positions has ratio ~ 1. Taught in `tiling_vs_packing`."""
    if valid is None and isinstance(features, FeatureMap):
        valid = features.valid
    g = _as_grid(features)
    rows, cols = g.shape[:2]
    h, v = neighbour_dissimilarity(g)
    ok = torch.ones(rows, cols, dtype=torch.bool) if valid is None else torch.as_tensor(valid).bool()
    if ok.shape != (rows, cols):
        raise ValueError(f"valid has shape {tuple(ok.shape)}, expected {(rows, cols)}")
    h_ok = ok[:, :-1] & ok[:, 1:]  # (rows, cols - 1)
    v_ok = ok[:-1] & ok[1:]  # (rows - 1, cols)
    h_border = torch.zeros_like(h_ok)
    v_border = torch.zeros_like(v_ok)
    for c in tile_cols:
        if not 0 < c < cols:
            raise ValueError(f"tile border column {c} outside 1..{cols - 1}")
        h_border[:, c - 1] = True
    for r in tile_rows:
        if not 0 < r < rows:
            raise ValueError(f"tile border row {r} outside 1..{rows - 1}")
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
    w, h = _check_size(image_size, "image_size")
    rows, cols = native.grid
    xs, ys = borders_in_image(tiled)
    cs = sorted({round(x / w * cols) for x in xs} - {0, cols})
    rs = sorted({round(y / h * rows) for y in ys} - {0, rows})
    if not cs and not rs:
        raise ValueError("the tiled map has no interior tile border")
    return seam_contrast(native, rs, cs)


# ---------------------------------------------------------------------------------------------------------
# token budget


def _size_of(item) -> tuple[int, int]:
    if isinstance(item, Image.Image):
        return item.size
    return _check_size(item, "image size")


def token_budget(images, methods, options: dict | None = None, packing_max_tokens: int | None = 1024,
                 packing_patch: int = PATCH) -> list[dict]:
    """Count, for every image and tiling method, the encoder tokens spent on real content (``useful``), on
    padding (``padding``) and on the duplicated global thumbnail (``duplicated``), plus the tokens the LLM
    receives (``llm_tokens`` = the plan's ``num_tokens``); and the same for NaViT-style packing at native
    resolution (method ``"packing"``: every token useful, no thumbnail, one LLM token per patch).

    ``images``: a dict name -> PIL image or (width, height), or a list of those (named ``image0``...).
    ``methods``: tiling method names (``tiling.METHODS``); ``options``: dict method -> plan options.
    The tiling numbers are the plan's own accounting, ``Plan.encoder_tokens()`` (a patch is padding when less
    than half of its area shows the image; global-view content is duplicated when the plan has tiles), so
    ``useful + padding + duplicated = encoder_tokens`` exactly (patch tokens, CLS not counted).
    Returns a list of row dicts: image, size, method, tiles, encoder_tokens, useful, padding, duplicated,
    llm_tokens. Taught in `tiling_vs_packing` (and `llava_mini`)."""
    from .packing.sizing import native_size
    from .tiling import plan as make_plan

    if isinstance(images, dict):
        items = list(images.items())
    elif isinstance(images, (list, tuple)):
        items = [(f"image{i}", im) for i, im in enumerate(images)]
    else:
        raise TypeError(f"images must be a dict name -> image/size or a list, got {type(images).__name__}")
    if not items:
        raise ValueError("images is empty")
    if isinstance(methods, str):
        methods = [methods]
    methods = list(methods)
    if not methods:
        raise ValueError("methods is empty: give tiling method names and/or 'packing'")
    options = options or {}
    rows = []
    for name, item in items:
        size = _size_of(item)
        for m in methods:
            if m == "packing":
                continue
            pl = make_plan(m, size, **options.get(m, {}))
            et = pl.encoder_tokens()
            rows.append(dict(image=name, size=size, method=m, tiles=pl.num_tiles, encoder_tokens=et.patches,
                             useful=et.useful, padding=et.padding, duplicated=et.duplicated,
                             llm_tokens=int(pl.num_tokens)))
        if "packing" in methods:
            w, h = native_size(size, "navit", patch_size=packing_patch, max_tokens=packing_max_tokens)
            n = (w // packing_patch) * (h // packing_patch)
            rows.append(dict(image=name, size=size, method="packing", tiles=0, encoder_tokens=n, useful=n,
                             padding=0, duplicated=0, llm_tokens=n))
    return rows


def format_token_table(rows: list[dict]) -> str:
    """Plain-text table of :func:`token_budget` rows (for printing in a notebook)."""
    head = f"{'image':<18}{'size (w x h)':>14}  {'method':<14}{'tiles':>6}{'useful':>8}{'padding':>8}" \
           f"{'thumb':>7}{'encoder':>9}{'LLM':>7}"
    lines = [head, "-" * len(head)]
    for r in rows:
        sz = f"{r['size'][0]}x{r['size'][1]}"
        lines.append(f"{r['image']:<18}{sz:>14}  {r['method']:<14}{r['tiles']:>6}{r['useful']:>8}"
                     f"{r['padding']:>8}"
                     f"{r['duplicated']:>7}{r['encoder_tokens']:>9}{r['llm_tokens']:>7}")
    return "\n".join(lines)


# ---------------------------------------------------------------------------------------------------------
# `llava_mini`: compressing many patch tokens into a few (training-free stand-in for LLaVA-Mini)


@dataclass
class PoolResult:
    """Output of :func:`attention_pool`: ``pooled`` (Q, D) compressed tokens, ``weights`` (Q, rows, cols)
    attention of each query over the patch grid (each sums to 1), ``queries`` (Q, D), ``kind``."""

    pooled: torch.Tensor
    weights: torch.Tensor
    queries: torch.Tensor
    kind: str


def _kmeans(x: torch.Tensor, k: int, iters: int = 20) -> torch.Tensor:
    """Deterministic k-means on the rows of x (N, D): init at evenly spaced ranks along the first principal
    direction; returns centroids (k, D)."""
    xc = x - x.mean(0, keepdim=True)
    _, _, vh = torch.linalg.svd(xc.double(), full_matrices=False)
    order = torch.argsort(xc.double() @ vh[0])
    idx = order[torch.linspace(0, x.shape[0] - 1, k).round().long()]
    cent = x[idx].clone()
    for _ in range(iters):
        assign = torch.cdist(x, cent).argmin(1)  # (N,)
        for j in range(k):
            members = x[assign == j]
            if members.numel():
                cent[j] = members.mean(0)
    return cent


def attention_pool(features, num_queries: int = 1, queries: str = "grid", cls=None,
                   temperature: float | None = None, valid=None) -> PoolResult:
    """Compress a (rows, cols, D) patch map into ``num_queries`` tokens by one cross-attention step:
    ``weights = softmax(q k^T / temperature)`` over the patches, ``pooled = weights @ v`` with k = v = the
    (layer-normed-free) patch features themselves.

    LLaVA-Mini (arXiv 2501.03895; code ``llavamini/model/llavamini_arch.py``, class ``Resampler``) does the
    same with C x C LEARNED queries (plus 2-D sin-cos position embeddings on queries and keys, LayerNorms and
    an 8-head ``nn.MultiheadAttention``), trained end to end with the LLM. We have no trained compressor, so
    the queries here are a documented training-free stand-in:

    - ``"grid"``:   C x C queries (``num_queries`` = C^2), each the mean feature of one cell of a C x C
                    split of the map -- a content-aware version of LLaVA-Mini's position-anchored queries;
    - ``"kmeans"``: the k-means centroids of the patch features (deterministic init) -- one query per
                    "kind of content";
    - ``"mean"``:   one query, the mean patch;
    - ``"cls"``:    one query, DINOv2's own CLS token (pass ``cls``) -- the ViT's built-in 1-token summary
                    used as a query.

    ``temperature`` defaults to sqrt(D) (scaled dot product). ``valid`` ((rows, cols) bool, optional): only
    these patches are keys/values (e.g. ``fmap.valid`` to leave padding out). The default attends over ALL
    patches, padding included, as LLaVA-Mini's code does (its compressor gets the stitched sub-image features
    with no mask). Taught in `llava_mini`.
    """
    g = _as_grid(features)
    rows, cols, d = g.shape
    q_n = check_positive_int("num_queries", num_queries)
    flat = g.reshape(-1, d)  # (N, D)
    if q_n > flat.shape[0]:
        raise ValueError(f"num_queries={q_n} exceeds the {flat.shape[0]} patches")
    ok = torch.ones(rows, cols, dtype=torch.bool) if valid is None else torch.as_tensor(valid).bool()
    if ok.shape != (rows, cols):
        raise ValueError(f"valid has shape {tuple(ok.shape)}, expected {(rows, cols)}")
    if not bool(ok.any()):
        raise ValueError("valid masks out every patch")
    okf = ok.reshape(-1)  # (N,)
    if queries == "grid":
        c = math.isqrt(q_n)
        if c * c != q_n:
            raise ValueError(f"queries='grid' needs a square num_queries (C x C), got {q_n}")
        if c > min(rows, cols):
            raise ValueError(f"a {c}x{c} query grid does not fit a {rows}x{cols} map")
        m = ok.float()[None, None]  # (1, 1, rows, cols): mean over the valid patches of each cell
        num = F.adaptive_avg_pool2d((g.permute(2, 0, 1)[None] * m), (c, c))[0]  # (D, c, c)
        den = F.adaptive_avg_pool2d(m, (c, c))[0].clamp_min(1e-12)  # (1, c, c)
        q = (num / den).permute(1, 2, 0).reshape(q_n, d)
    elif queries == "kmeans":
        if q_n > int(okf.sum()):
            raise ValueError(f"num_queries={q_n} exceeds the {int(okf.sum())} valid patches")
        q = _kmeans(flat[okf], q_n)
    elif queries == "mean":
        if q_n != 1:
            raise ValueError("queries='mean' gives exactly one query; use num_queries=1")
        q = flat[okf].mean(0, keepdim=True)
    elif queries == "cls":
        if cls is None:
            raise ValueError("queries='cls' needs the CLS token: pass cls=feature_map.cls[0]")
        if q_n != 1:
            raise ValueError("queries='cls' gives exactly one query; use num_queries=1")
        q = torch.as_tensor(cls, dtype=torch.float32).reshape(1, -1)
        if q.shape[1] != d:
            raise ValueError(f"cls has {q.shape[1]} channels, features have {d}")
    else:
        raise ValueError(f"unknown queries {queries!r}; choose 'grid', 'kmeans', 'mean' or 'cls'")
    t = math.sqrt(d) if temperature is None else float(temperature)
    if not t > 0:
        raise ValueError(f"temperature must be > 0, got {temperature!r}")
    logits = (q @ flat.T / t).masked_fill(~okf[None], float("-inf"))  # (Q, N); invalid patches get 0 weight
    w = torch.softmax(logits, dim=-1)  # (Q, N)
    pooled = w @ flat  # (Q, D)
    return PoolResult(pooled=pooled, weights=w.reshape(q_n, rows, cols), queries=q, kind=queries)


__all__ = [
    "FeatureMap", "PoolResult", "attention_pool", "borders_in_image", "cosine_map",
    "edge_map", "pca_rgb",
    "encode_native", "encode_tiled", "format_token_table", "neighbour_dissimilarity", "position_similarity",
    "psnr", "roundtrip_resize", "seam_contrast", "seams_at_image_borders", "token_budget", "tokens_for_side",
]
