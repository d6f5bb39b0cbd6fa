"""Tiling vs packing at equal budgets: what each way of feeding an image sees for the same number of tokens.

Part of :mod:`anyres_tutorial.features`; taught in `tiling_vs_packing`.

For every registered tiling method (``tiling.METHODS``) and image, :func:`equal_budget` gives one row for the
method itself and one for packing (NaViT-style, at native aspect ratio) at each of two equal budgets:

- **same encoder tokens**: packing gets as many patches as the method's encoder sees
  (``Plan.encoder_tokens().patches``: useful + padding + duplicated), filled to within one patch row;
- **same LLM tokens**: packing with Qwen2-VL's 2x2 ``PatchMerger`` (the ``qwen2_vl`` spec of :mod:`..llm`), so
  a packed image sends ``patches / 4`` tokens to the LLM; the budget is the method's ``plan.num_tokens``.

One more row per image keeps the old fixed budget, clearly labelled ("packing capped at N tokens").

Every row says how many source pixels the encoder sees, the **scale** (encoder pixels per source pixel, per
side; for tiling the resize of the image into its tiles, with the global view's scale reported apart) and the
**effective resolution**: source pixels per useful encoder patch (smaller = finer detail). Sizes are
``Size(width, height)``, grids ``Grid(rows, cols)``.
"""

from __future__ import annotations

import math

from PIL import Image

from ..checks import check_positive_int, check_size
from ..packing.sizing import QWEN2_VL_MERGE
from ..types import PATCH, Grid, Size
from .budget import named_items

#: The ``view`` of a row: the method itself, packing at its encoder budget, at its LLM budget, or capped.
TILED, SAME_ENCODER, SAME_LLM, CAPPED = "tiled", "packed, same encoder tokens", "packed, same LLM tokens", \
    "packed, capped"
VIEWS = (TILED, SAME_ENCODER, SAME_LLM, CAPPED)
#: Patches per side merged into one LLM token in the equal-LLM-token view: Qwen2-VL's 2x2 PatchMerger (the
#: ``merge`` of its ``llm`` packing spec; a test checks they agree).
MERGE = QWEN2_VL_MERGE


# ---------------------------------------------------------------------------------------------------------
# packing at a given budget


def fit_native_grid(image_size, budget: int, unit: int = PATCH) -> dict:
    """The native-resolution patch grid of an image of ``image_size`` = (width, height) that spends a budget
    of ``budget`` units (``unit``-pixel squares: 14 = one ViT patch, 28 = one 2x2-merged Qwen2-VL token) as
    fully as whole patches allow, aspect ratio kept.

    1. NaViT's rule (``packing.navit_size``, upscaling allowed): scale ``s = sqrt(budget * unit^2 / (W*H))``,
       each side ``floor(side * s / unit)`` -> ``navit_grid`` (cols c, rows r). Flooring both sides can leave
       up to a row and a column of the budget unused.
    2. Fill: keep c or c + 1 columns and add rows while they fit (``budget // cols`` rows), or keep r or
       r + 1 rows and add columns; of these grids, those with at least NaViT's tokens and less than one row
       (``cols`` patches) short of the budget, keep the one whose aspect ratio is closest to the image's.
       NaViT's grid filled with rows always qualifies, so ``tokens <= budget`` and ``budget - tokens < cols``.

    Returns dict: grid (Grid), tokens, size (Size, pixels), scale (packed px / source px per side),
    navit_grid, navit_tokens, unit, budget. Taught in `tiling_vs_packing`."""
    from ..packing.sizing import navit_size

    w, h = check_size(image_size, max_aspect=None)
    budget = check_positive_int("budget", budget)
    unit = check_positive_int("unit", unit)
    nav = navit_size((w, h), patch_size=unit, max_tokens=budget, allow_upscale=True)
    target = math.log(w / h)
    c0, r0 = nav["grid"].cols, nav["grid"].rows
    cands = [Grid(budget // c, c) for c in (c0, c0 + 1)] + [Grid(r, budget // r) for r in (r0, r0 + 1)]
    ok = [g for g in cands if g.rows >= 1 and g.cols >= 1 and nav["tokens"] <= g.count <= budget
          and budget - g.count < g.cols]
    grid = min(ok, key=lambda g: abs(math.log(g.cols / g.rows) - target))
    size = Size(grid.cols * unit, grid.rows * unit)
    assert grid.count <= budget and budget - grid.count < grid.cols, "fill within one row of the budget"
    return dict(grid=grid, tokens=grid.count, size=size, scale=(size.width / w, size.height / h),
                navit_grid=nav["grid"], navit_tokens=nav["tokens"], unit=unit, budget=budget)


# ---------------------------------------------------------------------------------------------------------
# what a tiling plan shows: source region and scale of each tile and view


def tile_regions(plan) -> list[tuple[tuple, tuple]]:
    """Per local tile that shows content: (source box in image pixels, content box inside the t x t tile,
    tile index) with float boxes (left, top, right, bottom). The source box is the tile's crop box clipped
    to the image's place on the canvas, mapped back to image pixels (as ``features.encode_tiled`` does)."""
    cx0, cy0, cx1, cy1 = plan.content_box
    w, h = plan.image_size
    sx, sy = w / (cx1 - cx0), h / (cy1 - cy0)
    out = []
    for k, (b, c) in enumerate(zip(plan.tile_boxes, plan.tile_content_boxes)):
        l2, t2, r2, b2 = max(b[0], cx0), max(b[1], cy0), min(b[2], cx1), min(b[3], cy1)
        if r2 <= l2 or b2 <= t2 or c[2] <= c[0] or c[3] <= c[1]:
            continue
        src = ((l2 - cx0) * sx, (t2 - cy0) * sy, (r2 - cx0) * sx, (b2 - cy0) * sy)
        out.append((src, tuple(float(v) for v in c), k))
    return out


def box_scale(src, enc) -> tuple[float, float]:
    """(x, y) scale of a box mapped onto another: encoder px per source px."""
    return (enc[2] - enc[0]) / (src[2] - src[0]), (enc[3] - enc[1]) / (src[3] - src[1])


def patch_pitch(plan) -> float:
    """Encoder pixels per patch side of a plan's t x t images: t / (t // patch) (DeepSeek-VL2's 384-px tile
    gives 27 patches of 14.2 px, as ``Plan.encoder_tokens`` counts)."""
    t = plan.tile_size
    return t / (t // plan.patch_size)


def plan_views(plan) -> dict:
    """What a plan's encoder sees of the image: ``tiles_scale`` (encoder px per source px, (x, y), from the
    tile showing the most content; None without tiles), ``global_scale`` (the first global view's, or None),
    ``pixels_seen`` (source pixels shown by the tiles, or by the global view when there are no tiles) and
    ``patch_px`` (encoder px per patch side)."""
    regions = tile_regions(plan)
    w, h = plan.image_size
    tiles_scale = global_scale = None
    if regions:
        src, enc, _ = max(regions, key=lambda r: (r[1][2] - r[1][0]) * (r[1][3] - r[1][1]))
        tiles_scale = box_scale(src, enc)
    seen = sum((s[2] - s[0]) * (s[3] - s[1]) for s, _, _ in regions)
    if plan.global_views:
        v = plan.global_views[0]
        global_scale = box_scale((0, 0, w, h), v.content_box)
        if not regions:
            seen = w * h
    return dict(tiles_scale=tiles_scale, global_scale=global_scale, pixels_seen=float(seen),
                patch_px=patch_pitch(plan))


def effective_resolution(pixels_seen: float, useful: int) -> float:
    """Source pixels per useful encoder patch (``inf`` when no patch shows content)."""
    return pixels_seen / useful if useful > 0 else math.inf


# ---------------------------------------------------------------------------------------------------------
# the table


def _packed_row(name, size, method, view, label, fit, merge: int) -> dict:
    w, h = size
    patches = fit["tokens"] * merge * merge
    grid = Grid(fit["grid"].rows * merge, fit["grid"].cols * merge)
    return dict(image=name, size=Size(w, h), method=method, view=view, label=label, tiles=0, images=1,
                encoder_tokens=patches, useful=patches, padding=0, duplicated=0, cls=1,
                llm_tokens=patches // (merge * merge), budget=fit["budget"], grid=grid,
                encoder_size=fit["size"], scale=fit["scale"], global_scale=None, patch_px=float(PATCH),
                pixels_seen=float(w * h), effective_resolution=effective_resolution(w * h, patches),
                options={})


def _tiled_row(name, size, method, options) -> dict:
    from .. import tiling

    pl = tiling.plan(method, size, **options)
    et = pl.encoder_tokens()
    pv = plan_views(pl)
    scale = pv["tiles_scale"] or pv["global_scale"]
    enc = Size(round(size[0] * scale[0]), round(size[1] * scale[1]))
    return dict(image=name, size=Size(*size), method=method, view=TILED, label=f"{method} (tiled)",
                tiles=pl.num_tiles, images=pl.num_images, encoder_tokens=et.patches, useful=et.useful,
                padding=et.padding, duplicated=et.duplicated, cls=et.cls, llm_tokens=int(pl.num_tokens),
                budget=None, grid=pl.grid, encoder_size=enc, scale=scale, global_scale=pv["global_scale"],
                patch_px=pv["patch_px"], pixels_seen=pv["pixels_seen"],
                effective_resolution=effective_resolution(pv["pixels_seen"], et.useful),
                options=dict(pl.options))


def _items(images) -> list[tuple[str, tuple]]:
    return [(str(n), im.size if isinstance(im, Image.Image) else check_size(im, "image size"))
            for n, im in named_items(images)]


def equal_budget(images, methods=None, options: dict | None = None, capped_tokens: int | None = 1024
                 ) -> list[dict]:
    """For every image and tiling method (default: every registered one, ``tiling.METHODS``): the method's
    row (``view`` = ``TILED``) and packing at its encoder budget (``SAME_ENCODER``) and at its LLM budget
    with the 2x2 merge (``SAME_LLM``); plus, per image, packing capped at ``capped_tokens`` patches
    (``CAPPED``, NaViT's rule without upscaling, ``method`` None; ``capped_tokens=None`` leaves it out).

    ``images``: dict name -> PIL image or (width, height), or a list of those. ``options``: dict method ->
    plan options. Row keys: image, size, method (whose budget), view, label, tiles, images (encoder images),
    encoder_tokens (patches, CLS not counted), useful, padding, duplicated, cls, llm_tokens, budget (packed
    rows: the budget in tokens of its unit), grid (tiles, or the packed patch grid), encoder_size (the
    image's size in encoder pixels), scale ((x, y) encoder px per source px), global_scale (tiled rows with
    a global view), patch_px, pixels_seen, effective_resolution (pixels_seen / useful), options.
    Taught in `tiling_vs_packing`."""
    from .. import tiling
    from ..packing.sizing import navit_size

    items = _items(images)
    methods = list(tiling.METHODS) if methods is None else ([methods] if isinstance(methods, str)
                                                             else list(methods))
    if not methods:
        raise ValueError("methods is empty: give tiling method names (tiling.METHODS)")
    for m in methods:
        tiling.get(m)  # ValueError naming the registered methods
    options = options or {}
    if not isinstance(options, dict):
        raise TypeError(f"options must be a dict method -> plan options, got {type(options).__name__}")
    if capped_tokens is not None:
        capped_tokens = check_positive_int("capped_tokens", capped_tokens)
    merge = MERGE
    rows = []
    for name, size in items:
        for m in methods:
            t = _tiled_row(name, size, m, options.get(m, {}))
            enc = fit_native_grid(size, t["encoder_tokens"])
            llm_fit = fit_native_grid(size, t["llm_tokens"], PATCH * merge)
            rows += [t, _packed_row(name, size, m, SAME_ENCODER, f"packed at {m}'s encoder tokens", enc, 1),
                     _packed_row(name, size, m, SAME_LLM, f"packed 2×2-merged at {m}'s LLM tokens",
                                 llm_fit, merge)]
        if capped_tokens is not None:
            nav = navit_size(size, patch_size=PATCH, max_tokens=capped_tokens)
            fit = dict(grid=nav["grid"], tokens=nav["tokens"], size=nav["size"], budget=capped_tokens,
                       scale=(nav["size"].width / size[0], nav["size"].height / size[1]))
            rows.append(_packed_row(name, size, None, CAPPED, f"packing capped at {capped_tokens} tokens",
                                    fit, 1))
    return rows


def find_row(rows: list[dict], image: str, method: str | None, view: str = TILED) -> dict:
    """The row of :func:`equal_budget` for ``image``, ``method`` (None for the capped row) and ``view``;
    ValueError when there is none."""
    for r in rows:
        if r["image"] == image and r["method"] == method and r["view"] == view:
            return r
    raise ValueError(f"no row for image={image!r}, method={method!r}, view={view!r}")


def format_equal_budget(rows: list[dict]) -> str:
    """Plain-text table of :func:`equal_budget` rows (for printing in a notebook)."""
    head = (f"{'image':<17}{'budget of':<14}{'view':<29}{'encoder':>8}{'useful':>7}{'pad':>6}{'dup':>6}"
            f"{'LLM':>7}  {'encoder size':>12}{'scale x/y':>12}{'src px/patch':>13}")
    lines = [head, "-" * len(head)]
    for r in rows:
        es = f"{r['encoder_size'][0]}x{r['encoder_size'][1]}"
        eff = r["effective_resolution"]
        eff_s = "no content" if math.isinf(eff) else f"{eff:,.0f}"
        lines.append(f"{r['image']:<17}{r['method'] or '-':<14}{r['view']:<29}{r['encoder_tokens']:>8}"
                     f"{r['useful']:>7}{r['padding']:>6}{r['duplicated']:>6}{r['llm_tokens']:>7}  {es:>12}"
                     f"{r['scale'][0]:>6.3f}/{r['scale'][1]:<5.3f}{eff_s:>13}")
    return "\n".join(lines)


__all__ = ["TILED", "SAME_ENCODER", "SAME_LLM", "CAPPED", "VIEWS", "MERGE", "fit_native_grid",
           "box_scale", "tile_regions", "patch_pitch", "plan_views", "effective_resolution",
           "equal_budget", "find_row", "format_equal_budget"]
