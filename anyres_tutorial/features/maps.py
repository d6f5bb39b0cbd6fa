"""Feature maps: input checks, the resolution experiments, similarity maps, and an image encoded whole or
tile by tile on the real DINOv2 (:class:`FeatureMap`). Part of :mod:`anyres_tutorial.features`."""

from __future__ import annotations

import math
from dataclasses import dataclass, field

import numpy as np
import torch
import torch.nn.functional as F
from PIL import Image

from ..checks import check_positive_int, check_size
from ..types import PATCH  # 14: DINOv2 ViT-S/14, our encoder

# ---------------------------------------------------------------------------------------------------------
# small validators


def check_pil(image, name: str = "image") -> Image.Image:
    if not isinstance(image, Image.Image):
        raise TypeError(f"{name} must be a PIL image (use anyres_tutorial.images.load_image), "
                        f"got {type(image).__name__}")
    return image.convert("RGB") if image.mode != "RGB" else image


def check_image_size(size, name: str = "size"):
    """A (width, height) pair of positive ints as a ``Size`` (no aspect-ratio limit here: the tiling methods
    apply theirs)."""
    return check_size(size, name, max_aspect=None)


def as_grid(features, name: str = "features") -> torch.Tensor:
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
    image = check_pil(image)
    side = check_positive_int("side", side)
    small = image.resize((side, side), resample)
    return small.resize(image.size, resample)


def psnr(a: Image.Image, b: Image.Image, box=None) -> float:
    """Peak signal-to-noise ratio (dB, 8-bit) between two same-size images, optionally inside ``box``
    (x0, y0, x1, y1). Higher = closer; ``inf`` when identical. Taught in
    `setup_and_why_resolution`."""
    a, b = check_pil(a, "a"), check_pil(b, "b")
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
    g = as_grid(grid, "grid")
    r, c = position
    if not (0 <= r < g.shape[0] and 0 <= c < g.shape[1]):
        raise ValueError(f"position (row, col) = {position} is outside the {g.shape[0]}x{g.shape[1]} grid")
    return cosine_map(g, g[r, c])


def cosine_map(features, vector) -> torch.Tensor:
    """Cosine similarity of a (D,) ``vector`` to every patch of ``features`` (rows, cols, D) -> (rows, cols).
    Taught in `patches_tokens_real_vit` and `llava_mini`."""
    g = as_grid(features)
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
    from ..encoder.vit import normalize

    if image.size != tuple(size):
        image = image.resize(tuple(size), Image.BICUBIC)
    x = normalize(image)
    if x.ndim == 4:
        x = x[0]
    return x  # (3, H, W)


def _run(model, batch: torch.Tensor) -> torch.Tensor:
    """Run ``model.forward_tiles`` without gradients -> (B, 1 + N, D)."""
    if not hasattr(model, "forward_tiles"):
        raise TypeError(f"model must have forward_tiles (use anyres_tutorial.encoder.vit.load_dinov2()), "
                        f"got {type(model).__name__}")
    with torch.no_grad():
        return model.forward_tiles(batch)


def encode_native(model, image: Image.Image, max_tokens: int | None = 1024, patch_size: int = PATCH,
                  rule: str = "navit") -> FeatureMap:
    """Encode ``image`` whole at (near) native resolution: aspect ratio kept, sides multiples of the patch,
    at most ``max_tokens`` patches (``packing.native_size`` with the given ``rule``; ``None`` = no budget).
    No tiles, so no seams: the reference beside the tiled encoding in `tiling_vs_packing`. -> FeatureMap."""
    from ..packing.sizing import native_size

    image = check_pil(image)
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
    from ..tiling import apply

    image = check_pil(image)
    p = check_positive_int("patch_size", patch_size)
    tiled = apply(plan, image)  # tiles: t x t PIL images in plan.tile_positions order
    _check_stitchable(plan, tiled.tiles, image.size)
    tw = th = int(plan.tile_size)  # square t x t tiles
    gw = gh = max(1, tw // p)  # patches per tile side
    rows, cols = plan.grid
    crops = [_to_model_input(t, (gw * p, gh * p)) for t in tiled.tiles]  # each (3, gh*p, gw*p)
    feats = []
    for i in range(0, len(crops), batch_size):
        feats.append(_run(model, torch.stack(crops[i:i + batch_size])))  # (b, 1 + gh*gw, D)
    out = torch.cat(feats)  # (T, 1 + gh*gw, D)
    d = out.shape[-1]
    grid = stitch_tiles(out, plan.tile_positions, plan.grid)  # (rows * gh, cols * gw, D)
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


def stitch_tiles(tile_tokens: torch.Tensor, tile_positions, grid) -> torch.Tensor:
    """Square tiles' outputs (T, 1 + g*g, D), CLS first, put back at their (row, col) of a (rows, cols) grid
    of tiles: ONE (rows * g, cols * g, D) patch map (float32). Taught in `llava_mini`."""
    rows, cols = grid
    n, d = tile_tokens.shape[1] - 1, tile_tokens.shape[-1]
    g = math.isqrt(n)
    if g * g != n or len(tile_positions) != tile_tokens.shape[0]:
        raise ValueError(f"tile_tokens {tuple(tile_tokens.shape)} must hold 1 + g*g tokens for each of the "
                         f"{len(tile_positions)} tile_positions")
    out = torch.zeros(rows * g, cols * g, d)  # (rows * g, cols * g, D)
    for (r, c), tok in zip(tile_positions, tile_tokens):  # tile (r, c) -> its g x g block of the map
        out[r * g:(r + 1) * g, c * g:(c + 1) * g] = tok[1:].reshape(g, g, d)  # CLS (tok[0]) left out
    return out


def _check_stitchable(plan, tiles: list, image_size) -> None:
    """:func:`encode_tiled`'s checks of the plan: it has tiles, each at a (row, col) inside its grid, and
    together they cover the grid (so the stitched feature map has no hole)."""
    if not tiles:
        raise ValueError(f"plan {plan.method!r} has no tiles for image size {image_size} (global view only)")
    rows, cols = plan.grid
    filled = torch.zeros(rows, cols, dtype=torch.bool)
    for (r, c), _ in zip(plan.tile_positions, tiles):
        if not (0 <= r < rows and 0 <= c < cols):
            raise ValueError(f"tile position {(r, c)} outside the plan's {rows}x{cols} grid")
        filled[r, c] = True
    if not bool(filled.all()):
        raise ValueError("the plan's tiles do not cover its grid; cannot stitch a feature map")


def _padding_mask(plan, g: int) -> torch.Tensor:
    """(rows * g, cols * g) bool: True where a tile's patch shows mostly padding, by the rule of the plan's
    token accounting (``tiling.base.content_patches``: less than half of the patch shows image content)."""
    from ..tiling.base import patch_coverage

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
