"""Token tables: useful / padding / duplicated encoder tokens per tiling method and for packing, all from
``Plan.encoder_tokens``. Part of :mod:`anyres_tutorial.features`; taught in `tiling_vs_packing`."""

from __future__ import annotations

from PIL import Image

from ..types import PATCH

# ---------------------------------------------------------------------------------------------------------
# token budget


def _size_of(item) -> tuple[int, int]:
    if isinstance(item, Image.Image):
        return item.size
    from .maps import check_image_size  # maps needs torch: imported only for a PIL-less item

    return check_image_size(item, "image size")


def named_items(images) -> list[tuple]:
    """``images`` (a dict name -> image/size, or a list named ``image0``...) as (name, item) pairs; TypeError
    for anything else, ValueError when empty. Shared by :func:`token_budget` and ``equal_budget``."""
    if isinstance(images, dict):
        items = list(images.items())
    elif isinstance(images, (list, tuple)):
        items = [(f"image{i}", im) for i, im in enumerate(images)]
    else:
        raise TypeError(f"images must be a dict name -> image/size or a list, got {type(images).__name__}")
    if not items:
        raise ValueError("images is empty")
    return items


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
    from ..packing.sizing import native_size
    from ..tiling import plan as make_plan

    items = named_items(images)
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
