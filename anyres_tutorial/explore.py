"""The numbers behind the grid explorer (`grid_explorer`): pure functions, no widgets, no pictures.

The widgets in :mod:`anyres_tutorial.widgets` only wire controls to these functions, so everything they show
can also be computed (and tested) without a browser:

    from anyres_tutorial import explore
    s = explore.tiling_summary((800, 600), tiling.DEFAULT_METHOD)
    s["grid"], s["encoder_images"], s["llm_tokens"], s["padding_fraction"]   # (2, 2), 5, 2340, 0.2
    s["useful_tokens"], s["padding_tokens"], s["thumbnail_tokens"]      # plan.encoder_tokens()
    s["score_table"].rule, s["scores"]                 # why this grid won, one dict per candidate
    explore.compare_methods((1920, 1080))            # one row per tiling method
    explore.packing_summary([(1920, 1080), (512, 512)], rule="navit", max_len=512, budget=256)
    explore.reading_summary("text_page", method)["text"]       # what a text reader reads of the tiles

Sizes are (width, height) everywhere. *Encoder tokens* are the patch tokens of the t x t images the ViT runs
(``Plan.encoder_tokens()``: useful / padding / duplicated); *LLM tokens* what the language model receives
(``Plan.num_tokens``); *packed tokens* those of an image resized by a native-resolution rule, in its own unit.
"""

from __future__ import annotations

import numbers
from typing import Any

import numpy as np

from . import tiling
from .packing import RULES, STRATEGIES, native_size_details, pack, padding_report


def option_controls(method: str) -> dict[str, dict]:
    """The explorer's controls for ``method``: name -> {"kind", "default", "choices" | "min"/"max"}.

    The controls are the method's own ``CONTROLS`` (``tiling.get(method).CONTROLS``: option name ->
    ``("choice", [(label, value), ...])`` or ``("int", min, max)``); a method without entries has no controls.
    Defaults are the library's (``tiling.method_options``); a default that is not among the listed choices
    is added as the first choice, so the control always starts on the library default.
    """
    defaults = tiling.method_options(method)
    out = {}
    for name, spec in tiling.get(method).CONTROLS.items():
        default = defaults[name]
        if spec[0] == "choice":
            choices = list(spec[1])
            if all(v != default for _, v in choices):
                choices.insert(0, (f"{default!r} (default)", default))
            out[name] = {"kind": "choice", "default": default, "choices": choices}
        elif spec[0] == "int":
            out[name] = {"kind": "int", "default": default, "min": spec[1], "max": spec[2]}
        else:
            raise ValueError(f"{method}.CONTROLS[{name!r}]: unknown control kind {spec[0]!r} "
                             f"(use 'choice' or 'int')")
    return out


# ----------------------------------------------------------------------------------------------------------
# tiling

_FILL_NAMES = {(0, 0, 0): "black", (255, 255, 255): "white", (127, 127, 127): "mid grey",
               (128, 128, 128): "mid grey"}


def fill_hex(fill: Any) -> str | None:
    """A plan's fill colour (RGB 0..255 triple, one grey level, or None) as '#rrggbb'; None for no fill."""
    if fill is None:
        return None
    if isinstance(fill, str):
        return fill
    vals = [int(v) for v in (fill if hasattr(fill, "__len__") else [fill] * 3)]
    vals = (vals * 3)[:3] if len(vals) == 1 else vals[:3]
    return "#{:02x}{:02x}{:02x}".format(*vals)


def fill_name(fill: Any) -> str:
    """Words for a fill colour: "black", "white", "mid grey" or "fill #rrggbb" (e.g. LLaVA-Mini's
    dataset-mean colour); "no fill" for None."""
    h = fill_hex(fill)
    if h is None:
        return "no fill"
    rgb = tuple(int(h[i:i + 2], 16) for i in (1, 3, 5)) if h.startswith("#") and len(h) == 7 else None
    return f"{_FILL_NAMES[rgb]} fill" if rgb in _FILL_NAMES else f"fill {h}"


def tiles_text(plan: Any) -> str:
    """The grid in words, rows×cols first: "2×2 tiles of 336×336 px", or, when the tiles cut from the canvas
    are not encoder-sized (LLaVA-Mini cuts W/2×H/2 blocks and scales each), "2×2 blocks of 960×540 px, each
    scaled to 336×336". "no tiles" for a plan without tiles."""
    rows, cols = plan.grid
    if not plan.tile_boxes:
        return "no tiles (global view only)"
    x0, y0, x1, y1 = plan.tile_boxes[0]
    t = plan.tile_size
    if (x1 - x0, y1 - y0) == (t, t):
        return f"{rows}×{cols} tiles of {t}×{t} px"
    return f"{rows}×{cols} blocks of {x1 - x0}×{y1 - y0} px, each scaled to {t}×{t}"


def tiling_summary(image_size: Any, method: str, **options: Any) -> dict:
    """Everything the tiling explorer prints for one image size and method (pure; `grid_explorer`).

    ``image_size`` is (width, height); ``options`` go to ``tiling.plan``. Bad sizes, methods or options raise
    the library's ValueError / TypeError. Returns a dict with: ``plan`` (the Plan), ``method``, ``title``
    (the method's display name), ``image_size``, ``options`` (as given), ``grid`` (rows, cols),
    ``tile_size``, ``canvas_size``, ``encoder_images``, ``encoder_tokens`` (patch tokens of all encoder
    images, split into ``useful_tokens``, ``padding_tokens``, ``thumbnail_tokens``: ``plan.encoder_tokens()``,
    the accounting ``features.token_budget`` reports too), ``cls_tokens``, ``llm_tokens``, ``token_formula``,
    ``padding_fraction`` (share of encoder pixels that are padding), ``global_views`` (one short description
    each), ``score_table`` (``tiling.score_table(plan)``), ``score_kind`` (its ``kind``, e.g. "resolution",
    "anchors"; None when the method compares no candidates) and ``scores`` (the table's
    ``data``: one dict per candidate, ``chosen`` marks the winner).
    """
    tiling.get(method)  # an unknown name: ValueError naming the registered methods
    p = tiling.plan(method, image_size, **options)
    et = p.encoder_tokens()
    table = tiling.score_table(p)
    views = [f"{v.kind} {v.size[0]}×{v.size[1]}" + (f" on {fill_name(v.fill)}" if v.kind == "pad" else "")
             for v in p.global_views]
    return {
        "plan": p,
        "method": method,
        "title": tiling.title(method),
        "image_size": tuple(p.image_size),
        "options": dict(options),
        "grid": tuple(p.grid),
        "tile_size": p.tile_size,
        "canvas_size": tuple(p.canvas_size),
        "encoder_images": p.num_images,
        "encoder_tokens": et.patches,
        "useful_tokens": et.useful,
        "padding_tokens": et.padding,
        "thumbnail_tokens": et.duplicated,
        "cls_tokens": et.cls,
        "llm_tokens": p.num_tokens,
        "token_formula": p.token_formula,
        "padding_fraction": float(p.padding_fraction),
        "global_views": views,
        "global_view_fills": [fill_hex(v.fill) if v.kind == "pad" else None for v in p.global_views],
        "tiles_text": tiles_text(p),
        "global_position": p.global_position,
        "score_table": table,
        "score_kind": None if table.kind == "none" else table.kind,
        "scores": list(table.data),
    }


def compare_methods(image_size: Any, methods: Any = tiling.METHODS,
                    options: dict | None = None) -> list[dict]:
    """One row per method for the same image size: grid, canvas, encoder images / tokens, LLM tokens,
    padding fraction. ``options``: dict method -> plan options (default: each method's defaults).
    The side-by-side mode of the tiling explorer shows this table (`grid_explorer`)."""
    if isinstance(methods, str):
        methods = [methods]
    methods = list(methods)
    if not methods:
        raise ValueError("methods is empty: pick at least one tiling method")
    options = options or {}
    if not isinstance(options, dict):
        raise TypeError(f"options must be a dict method -> options, got {type(options).__name__}")
    rows = []
    for m in methods:
        s = tiling_summary(image_size, m, **options.get(m, {}))
        rows.append({k: s[k] for k in ("method", "grid", "tile_size", "canvas_size", "encoder_images",
                                       "encoder_tokens", "llm_tokens", "padding_fraction")})
    return rows


# ----------------------------------------------------------------------------------------------------------
# packing


def rule_budget_options(rule: str, budget: int | None) -> dict:
    """The options of ``packing.native_size`` that put a per-image token ``budget`` into effect for ``rule``.

    navit: ``max_tokens=budget`` (14-pixel patches); siglip2_naflex: ``max_num_patches=budget`` (16-pixel
    patches); qwen2_vl: ``max_pixels=budget * 28**2`` (at most ``budget`` merged 28-pixel tokens); pixtral has
    no token budget (only ``longest_edge``, default 1024), so it gets no option. ``budget=None``: defaults.
    """
    if rule not in RULES:
        raise ValueError(f"unknown sizing rule {rule!r}; choose one of {RULES}")
    if budget is None or rule == "pixtral":
        return {}
    if isinstance(budget, bool) or not isinstance(budget, numbers.Integral) or budget <= 0:
        raise ValueError(f"budget must be a positive integer (tokens per image), got {budget!r}")
    budget = int(budget)
    return {"navit": {"max_tokens": budget}, "siglip2_naflex": {"max_num_patches": budget},
            "qwen2_vl": {"max_pixels": budget * 28 * 28}}[rule]


_UNITS = {"navit": "14-px patch", "siglip2_naflex": "16-px patch", "pixtral": "16-px patch",
          "qwen2_vl": "28-px merged patch (2×2 ViT patches)"}


def _fed_as(size, fed) -> str:
    if tuple(fed) == tuple(size):
        return "native size"
    if all(abs(int(a) - int(b)) < 32 for a, b in zip(size, fed)):
        return "rounded to the patch grid"
    return "resized to budget"


def packing_images(sizes: Any, rule: str = "navit", budget: int | None = 256,
                   tiling_method: str = tiling.DEFAULT_METHOD, names: Any = None,
                   tiling_options: dict | None = None) -> list[dict]:
    """One dict per image, before any packing (`grid_explorer`): name, size, native_size (the size the rule
    feeds the encoder), ``resized`` (True when that is not the image's own size), ``fed_as`` (words for
    it: "native size", "rounded to the patch grid" when each side moved by less than two 16-px patches,
    else "resized to budget"), grid (rows, cols), tokens, tiling_images, tiling_encoder_tokens,
    tiling_llm_tokens. The explorer keeps showing this table when the images cannot be packed (an image
    longer than ``max_len``)."""
    if isinstance(sizes, (str, bytes)) or not hasattr(sizes, "__len__"):
        raise TypeError(f"sizes must be a list of (width, height) pairs, got {type(sizes).__name__}")
    sizes = [tiling.check_size(s, f"sizes[{i}]") for i, s in enumerate(sizes)]
    if not sizes:
        raise ValueError("sizes is empty: pick at least one image to pack")
    names = [f"image{i}" for i in range(len(sizes))] if names is None else [str(n) for n in names]
    if len(names) != len(sizes):
        raise ValueError(f"got {len(names)} names for {len(sizes)} images")
    tiling.get(tiling_method)
    ropts = rule_budget_options(rule, budget)
    topts = dict(tiling_options or {})
    images = []
    for name, size in zip(names, sizes):
        d = native_size_details(size, rule, **ropts)
        p = tiling.plan(tiling_method, size, **topts)
        images.append({"name": name, "size": size, "native_size": tuple(d["size"]),
                       "resized": tuple(d["size"]) != tuple(size), "fed_as": _fed_as(size, d["size"]),
                       "grid": tuple(d["grid"]),
                       "tokens": int(d["tokens"]), "tiling_images": p.num_images,
                       "tiling_encoder_tokens": p.encoder_tokens().patches,
                       "tiling_llm_tokens": p.num_tokens})
    return images


def _check_fits(images: list[dict], max_len, rule: str, budget) -> None:
    """ValueError naming the longest image if any image has more tokens than a row of ``max_len`` holds."""
    too_long = [r for r in images if isinstance(max_len, numbers.Integral) and r["tokens"] > max_len]
    if too_long:
        r = max(too_long, key=lambda x: x["tokens"])
        raise ValueError(
            f"max_len={max_len} is smaller than image {r['name']!r} ({r['size'][0]}×{r['size'][1]}), which "
            f"needs {r['tokens']} tokens under rule {rule!r} at budget {budget} ({len(too_long)} of "
            f"{len(images)} images are longer than a row): raise max_len to at least {r['tokens']} or lower "
            "the budget")


def packing_summary(sizes: Any, rule: str = "navit", max_len: int = 1024, strategy: str = "ffd",
                    budget: int | None = 256, tiling_method: str = tiling.DEFAULT_METHOD, names: Any = None,
                    tiling_options: dict | None = None) -> dict:
    """What the packing explorer shows for several images (pure; `grid_explorer`).

    Each image of ``sizes`` ((width, height) each) is resized by the native-resolution ``rule`` under the
    per-image ``budget`` (tokens per image, see :func:`rule_budget_options`); its token count becomes a
    sequence length, and the lengths are packed into rows of ``max_len`` tokens with ``strategy`` ("ffd" or
    "next_fit"). For comparison the same images are tiled with ``tiling_method`` (``tiling_options``; default
    ``tiling.DEFAULT_METHOD``), counted by ``plan.encoder_tokens()``.

    Returns a dict: ``images`` (:func:`packing_images`), ``lengths``, ``rows`` (image indices per row),
    ``report`` (``packing.padding_report``: rows, slots, padding, padding_fraction, fill),
    ``packed_tokens``, ``packed_slots``, ``tiling_encoder_tokens``, ``tiling_llm_tokens`` (totals),
    ``rule``, ``rule_options``, ``token_unit`` and the arguments. An image longer than ``max_len`` tokens
    raises ValueError naming it, its tokens, the budget and the two ways out.
    """
    if strategy not in STRATEGIES:
        raise ValueError(f"unknown packing strategy {strategy!r}; choose one of {STRATEGIES}")
    images = packing_images(sizes, rule, budget, tiling_method, names, tiling_options)
    lengths = [r["tokens"] for r in images]
    _check_fits(images, max_len, rule, budget)
    rows = pack(lengths, max_len, strategy)
    report = padding_report(rows, lengths, max_len)
    return {
        "images": images,
        "lengths": lengths,
        "rows": rows,
        "report": report,
        "packed_tokens": report["tokens"],
        "packed_slots": report["slots"],
        "tiling_encoder_tokens": sum(r["tiling_encoder_tokens"] for r in images),
        "tiling_llm_tokens": sum(r["tiling_llm_tokens"] for r in images),
        "rule": rule,
        "rule_options": rule_budget_options(rule, budget),
        "token_unit": _UNITS[rule],
        "max_len": int(max_len),
        "strategy": strategy,
        "budget": budget,
        "tiling_method": tiling_method,
    }


def row_segment_ids(summary: dict, row: int):
    """Segment ids (L,) of packed row ``row`` of a :func:`packing_summary`: 0, 1, ... for the images in slot
    order, -1 for padding up to ``max_len`` (what the block-diagonal mask is built from)."""
    from .packing import segment_ids

    rows = summary["rows"]
    if isinstance(row, bool) or not isinstance(row, numbers.Integral) or not 0 <= row < len(rows):
        raise ValueError(f"row must be an integer in [0, {len(rows) - 1}], got {row!r}")
    return segment_ids([summary["lengths"][i] for i in rows[row]], total=summary["max_len"])


def row_block_codes(summary: dict, row: int, block_size: int = 128):
    """What a FlexAttention ``BlockMask`` stores for packed row ``row``, computed from the segment ids alone
    (numpy, no torch compile): an (n, n) int array over ``block_size``-token blocks, 0 = empty (skipped),
    1 = partial (mask applied per element), 2 = full (no mask needed). Query block i meets key block j when
    they share an image; full when both blocks hold only that one image. The same table as
    ``packing.masks.flex_block_mask`` (tested), drawn by the packing explorer for long rows."""
    import numpy as np

    seg = np.asarray(row_segment_ids(summary, row))  # (L,)
    n = -(-len(seg) // block_size)
    seg = np.concatenate([seg, np.full(n * block_size - len(seg), -1)]).reshape(n, block_size)  # (n, bs)
    ids = sorted(int(v) for v in np.unique(seg) if v >= 0)
    has = np.stack([(seg == k).any(1) for k in ids], 1) if ids else np.zeros((n, 0), bool)  # (n, images)
    only = np.stack([(seg == k).all(1) for k in ids], 1) if ids else np.zeros((n, 0), bool)
    meet = (has.astype(int) @ has.T.astype(int)) > 0  # (n, n) some image in both blocks
    full = (only.astype(int) @ only.T.astype(int)) > 0  # (n, n) both blocks wholly one image
    return np.where(full, 2, np.where(meet, 1, 0))


# ----------------------------------------------------------------------------------------------------------
# reading: what a real text recognizer reads of the encoder's pixels

READ_CHARS, READ_PIECES = 48, 6  # per choice, of the body text and of the smallest print: at most this many
# characters in at most this many pieces (about 8 short reads, 0.2 s on an idle 2-core CPU)
_READINGS: dict = {}


def reading_summary(name: str, method: str, options: dict | None = None, image: Any = None) -> dict | None:
    """What the text recognizer (``features.read_line``) reads of a synthetic data image's body text and
    smallest print (``features.print_sizes``) in the pixels ``method`` with ``options`` gives its encoder:
    its tiles, or its global view when it has no tiles (`grid_explorer`, `tiling_vs_packing`). ``image``: the
    image's pixels when already loaded (default: ``data.load_data_image(name)``).

    None for an image that draws no text (a photo, an upload). Else a dict: part ("tiles" or "global view"),
    body / small (share of characters read right, at most ``READ_CHARS`` characters in ``READ_PIECES`` pieces
    of each sampled), body_x /
    small_x (their x-height in patches) and text (one line for the explorer's card); when the recognizer is
    not installed body and small are None and text says how to install it. Cached per choice."""
    from . import data, features

    if name not in data.IMAGES or data.IMAGES[name].kind != "synthetic":
        return None
    try:
        info = features.print_sizes(name)
    except ValueError:  # draws no text
        return None
    tiling.get(method)
    options = dict(options or {})
    key = (name, method, tuple(sorted((k, repr(v)) for k, v in options.items())))
    if key in _READINGS:
        return _READINGS[key]
    problem = features.reader_problem()
    if problem is not None:
        first = problem.splitlines()[-1].strip()
        return {"part": None, "body": None, "small": None, "body_x": None, "small_x": None,
                "text": f"reader not installed: {first}"}
    image = data.load_data_image(name) if image is None else image
    rows = features.equal_budget({name: image}, methods=method, options={method: options}, capped_tokens=None)
    views = features.encoder_views(image, [r for r in rows if r["view"] == features.TILED], source=False)
    view = next((v for v in views if v["part"] == "tiles"), views[0])
    pieces = features.sample_pieces(name, READ_CHARS)
    picked = []
    for size in dict.fromkeys(p["size"] for p in pieces):  # at most READ_PIECES per size, spread evenly
        same = [p for p in pieces if p["size"] == size]
        picked += [same[round(k)] for k in np.linspace(0, len(same) - 1, min(READ_PIECES, len(same)))]
    reads = [features.read_piece(view, p) for p in picked]
    out = {"part": view["part"]}
    for key_, size in (("body", info["body"]), ("small", info["smallest"])):
        ds = [d for d in reads if d["size"] == size]
        out[key_] = sum(d["accuracy"] * d["chars"] for d in ds) / sum(d["chars"] for d in ds)
        out[f"{key_}_x"] = ds[0]["x_patches"]
    if info["body"] == info["smallest"]:  # one print size only
        out["text"] = f"text {out['body']:.0%} (x-height {out['body_x']:.2f} patch), in the {view['part']}"
    else:
        out["text"] = (f"body text {out['body']:.0%} (x-height {out['body_x']:.2f} patch), small print "
                       f"{out['small']:.0%} ({out['small_x']:.2f} patch), in the {view['part']}")
    if len(_READINGS) > 64:
        _READINGS.clear()
    _READINGS[key] = out
    return out


__all__ = ["option_controls", "fill_hex", "fill_name", "tiles_text", "tiling_summary", "compare_methods",
           "rule_budget_options", "packing_images", "packing_summary", "row_segment_ids", "row_block_codes",
           "reading_summary"]
