"""The numbers behind the grid explorer (notebook 11): pure functions, no widgets, no pictures.

The widgets in :mod:`anyres_tutorial.widgets` only wire controls to these functions, so everything they show
can also be computed (and tested) without a browser:

    from anyres_tutorial import explore
    s = explore.tiling_summary((1920, 1080), "ureader", score="paper")
    s["grid"], s["encoder_images"], s["llm_tokens"], s["padding_fraction"]   # (3, 6), 19, 1235, 0.0
    explore.compare_methods((1920, 1080))            # one row per tiling method
    explore.packing_summary([(1920, 1080), (512, 512)], rule="navit", max_len=512, budget=256)

Sizes are (width, height) everywhere.

Token vocabulary used by every function here:

- *encoder images*: how many t x t images the vision encoder (ViT) runs on (tiles + global views);
- *encoder tokens*: the patch tokens of those images, ``(t // 14)**2`` per image (all the tutorial's
  encoders use 14-pixel patches; ``features.token_budget`` does this accounting, split into useful /
  padding / duplicated-thumbnail tokens);
- *LLM tokens*: what the language model receives, by each method's own accounting (``Plan.num_tokens``);
- *packed tokens*: the tokens of an image resized by a native-resolution rule (NaViT packing, 打包),
  in the rule's own unit (a 14- or 16-pixel patch, Qwen2-VL's 28-pixel merged patch).
"""

from __future__ import annotations

import numbers
from typing import Any

from . import tiling
from .features import token_budget
from .packing import RULES, STRATEGIES, native_size_details, pack, padding_report

# ----------------------------------------------------------------------------------------------------------
# the choices the explorer offers for each method option (names and defaults come from
# tiling.method_options; tests check that every choice listed here is accepted by tiling.plan)

_TEMPLATES_3X3 = tuple((c, r) for r in (1, 2, 3) for c in (1, 2, 3))

#: For every method, option name -> ("choice", [(label, value), ...]) or ("int", minimum, maximum).
#: Options not listed (e.g. template's ``patch_size``) keep their default in the explorer.
OPTION_CONTROLS: dict[str, dict[str, tuple]] = {
    "template": {
        "tile_size": ("choice", [("224", 224), ("336", 336), ("384 (default)", 384), ("448", 448)]),
        "templates": ("choice", [("1:1, 1:2, 2:1, 2:2 (default)", tiling.template.DEFAULT_TEMPLATES),
                                 ("every grid up to 3x3", _TEMPLATES_3X3)]),
        "thumbnail": ("choice", [("pad (keep aspect)", "pad"), ("squash", "squash")]),
        "fill": ("choice", [("black", (0, 0, 0)), ("grey", (127, 127, 127)), ("white", (255, 255, 255))]),
        "global_position": ("choice", [("after the tiles", "after"), ("before the tiles", "before")]),
    },
    "llava_next": {
        "candidates": ("choice", [("v1.6 pinpoints (released)", "v1.6"), ("paper grid set", "paper")]),
        "unpad": ("choice", [("original: int()", "original"), ("HF port: int(round(x, 7))", "hf")]),
    },
    "ureader": {
        "anchors": ("choice", [("release config (48)", "release"), ("class default (23)", "default")]
                    + [(f"Nc = {n}: nh·nw ≤ {n}", n) for n in (4, 6, 9, 12, 16, 20, 25)]),
        "score": ("choice", [("code: 100·Sra + Srr", "code"), ("paper: Sra + Srr", "paper")]),
    },
    "deepseek_vl2": {
        "images_in_prompt": ("int", 1, 5),
    },
    "internvl": {
        "max_num": ("int", 1, 40),
        "min_num": ("int", 1, 12),
    },
    "llava_mini": {
        "resolution_ratio": ("int", 1, 4),
        "compressor_size": ("int", 1, 8),
        "view": ("choice", [("pad (expand2square)", "pad"), ("crop (CLIP centre crop)", "crop")]),
    },
}


def _check_method(method: Any) -> str:
    if not isinstance(method, str) or method not in tiling.METHODS:
        raise ValueError(f"unknown tiling method {method!r}; choose one of {tiling.METHODS}")
    return method


def option_controls(method: str) -> dict[str, dict]:
    """The explorer's controls for ``method``: name -> {"kind", "default", "choices" | "min"/"max"}.

    Defaults are the library's (``tiling.method_options``); a default that is not among the listed choices
    is added as the first choice, so the control always starts on the library default.
    """
    defaults = tiling.method_options(_check_method(method))
    out = {}
    for name, spec in OPTION_CONTROLS[method].items():
        default = defaults[name]
        if spec[0] == "choice":
            choices = list(spec[1])
            if all(v != default for _, v in choices):
                choices.insert(0, (f"{default!r} (default)", default))
            out[name] = {"kind": "choice", "default": default, "choices": choices}
        else:
            out[name] = {"kind": "int", "default": default, "min": spec[1], "max": spec[2]}
    return out


# ----------------------------------------------------------------------------------------------------------
# tiling


def _score_table(plan) -> tuple[str | None, list[dict]]:
    """(kind, rows) of the per-candidate scores that decided ``plan``'s grid, one dict per candidate."""
    d = plan.details or {}
    if plan.method == "ureader":
        from .tiling import ureader

        anchors = plan.options["anchors"]
        srr, sra, code, _, best_code = ureader.score_anchors(plan.image_size, anchors, "code")
        _, _, paper, _, best_paper = ureader.score_anchors(plan.image_size, anchors, "paper")
        rows = [{"anchor": tuple(a), "Srr": float(srr[i]), "Sra": float(sra[i]), "score_code": float(code[i]),
                 "score_paper": float(paper[i]), "best_code": i == best_code, "best_paper": i == best_paper,
                 "chosen": bool(row["chosen"])}
                for i, (a, row) in enumerate(zip(anchors, d["anchors"]))]
        return "ureader", rows
    if plan.method in ("llava_next", "deepseek_vl2") and d.get("candidates"):
        rows = [{"candidate": tuple(r["candidate"]), "effective_resolution": int(r["effective_resolution"]),
                 "wasted_resolution": int(r["wasted_resolution"]), "chosen": bool(r["chosen"])}
                for r in d["candidates"]]
        return "resolution", rows
    if plan.method == "internvl":
        rows = [{"grid": (r["ratio"][1], r["ratio"][0]), "aspect_diff": float(r["aspect_diff"]),
                 "event": r["event"], "chosen": bool(r["chosen"])} for r in d["candidates"]]
        return "aspect", rows
    if plan.method == "template":
        rows = [{"grid": (r["template"][1], r["template"][0]), "log_distance": float(r["log_distance"]),
                 "covers_image": bool(r["covers_image"]), "chosen": bool(r["chosen"])}
                for r in d["templates"]]
        return "template", rows
    return None, []


def tiling_summary(image_size: Any, method: str, **options: Any) -> dict:
    """Everything the tiling explorer prints for one image size and method (pure; notebook 11).

    ``image_size`` is (width, height); ``options`` go to ``tiling.plan``. Bad sizes, methods or options raise
    the library's ValueError / TypeError. Returns a dict with: ``plan`` (the Plan), ``method``,
    ``image_size``, ``options`` (as given), ``grid`` (rows, cols), ``tile_size``, ``canvas_size``,
    ``encoder_images``, ``encoder_tokens`` (patch tokens of all encoder images, split into ``useful_tokens``,
    ``padding_tokens``, ``thumbnail_tokens`` as ``features.token_budget`` counts them), ``llm_tokens``,
    ``token_formula``, ``padding_fraction`` (share of encoder pixels that are padding), ``global_views``
    (one short description each), ``score_kind`` ("resolution" for LLaVA-NeXT / DeepSeek-VL2's effective /
    wasted resolution, "ureader" for Srr / Sra, "aspect" for InternVL, "template", or None) and ``scores``
    (one dict per candidate, ``chosen`` marks the winner; UReader rows carry both the code's and the paper's
    score, ``best_code`` / ``best_paper`` mark each rule's winner).
    """
    method = _check_method(method)
    p = tiling.plan(method, image_size, **options)
    budget = token_budget({"image": p.image_size}, [method], options={method: dict(options)})[0]
    kind, rows = _score_table(p)
    views = [f"{v.kind} {v.size[0]}x{v.size[1]}" + (f" on fill {v.fill}" if v.kind == "pad" else "")
             for v in p.global_views]
    return {
        "plan": p,
        "method": method,
        "image_size": tuple(p.image_size),
        "options": dict(options),
        "grid": tuple(p.grid),
        "tile_size": p.tile_size,
        "canvas_size": tuple(p.canvas_size),
        "encoder_images": p.num_images,
        "encoder_tokens": budget["encoder_tokens"],
        "useful_tokens": budget["useful"],
        "padding_tokens": budget["padding"],
        "thumbnail_tokens": budget["duplicated"],
        "llm_tokens": p.num_tokens,
        "token_formula": p.token_formula,
        "padding_fraction": float(p.padding_fraction),
        "global_views": views,
        "global_position": p.global_position,
        "score_kind": kind,
        "scores": rows,
    }


def compare_methods(image_size: Any, methods: Any = tiling.METHODS,
                    options: dict | None = None) -> list[dict]:
    """One row per method for the same image size: grid, canvas, encoder images / tokens, LLM tokens,
    padding fraction. ``options``: dict method -> plan options (default: each method's defaults).
    The side-by-side mode of the tiling explorer shows this table (notebook 11)."""
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


def packing_summary(sizes: Any, rule: str = "navit", max_len: int = 1024, strategy: str = "ffd",
                    budget: int | None = 256, tiling_method: str = "llava_next", names: Any = None,
                    tiling_options: dict | None = None) -> dict:
    """What the packing explorer shows for several images (pure; notebook 11).

    Each image of ``sizes`` ((width, height) each) is resized by the native-resolution ``rule`` under the
    per-image ``budget`` (see :func:`rule_budget_options`); its token count becomes a sequence length, and
    the lengths are packed into rows of ``max_len`` tokens with ``strategy`` ("ffd" or "next_fit"). For
    comparison the same images are tiled with ``tiling_method`` (``tiling_options``).

    Returns a dict: ``images`` (one dict per image: name, size, native_size, grid (rows, cols), tokens,
    tiling_images, tiling_encoder_tokens, tiling_llm_tokens), ``lengths``, ``rows`` (image indices per row),
    ``report`` (``packing.padding_report``: rows, slots, padding, padding_fraction, fill),
    ``packed_tokens``, ``packed_slots``, ``tiling_encoder_tokens``, ``tiling_llm_tokens`` (totals),
    ``rule``, ``rule_options``, ``token_unit`` and the arguments. ``max_len`` smaller than an image's
    tokens raises ValueError (from ``packing.pack``).
    """
    if isinstance(sizes, (str, bytes)) or not hasattr(sizes, "__len__"):
        raise TypeError(f"sizes must be a list of (width, height) pairs, got {type(sizes).__name__}")
    sizes = [tiling.check_size(s, f"sizes[{i}]") for i, s in enumerate(sizes)]
    if not sizes:
        raise ValueError("sizes is empty: pick at least one image to pack")
    names = [f"image{i}" for i in range(len(sizes))] if names is None else [str(n) for n in names]
    if len(names) != len(sizes):
        raise ValueError(f"got {len(names)} names for {len(sizes)} images")
    if strategy not in STRATEGIES:
        raise ValueError(f"unknown packing strategy {strategy!r}; choose one of {STRATEGIES}")
    _check_method(tiling_method)
    ropts = rule_budget_options(rule, budget)
    details = [native_size_details(s, rule, **ropts) for s in sizes]
    lengths = [int(d["tokens"]) for d in details]
    rows = pack(lengths, max_len, strategy)
    report = padding_report(rows, lengths, max_len)
    topts = {tiling_method: dict(tiling_options or {})}
    images = []
    for name, size, d in zip(names, sizes, details):
        p = tiling.plan(tiling_method, size, **topts[tiling_method])
        tb = token_budget({name: size}, [tiling_method], options=topts)[0]
        images.append({"name": name, "size": size, "native_size": tuple(d["size"]), "grid": tuple(d["grid"]),
                       "tokens": int(d["tokens"]), "tiling_images": p.num_images,
                       "tiling_encoder_tokens": tb["encoder_tokens"], "tiling_llm_tokens": p.num_tokens})
    unit = {"navit": "14-px patch", "siglip2_naflex": "16-px patch", "pixtral": "16-px patch",
            "qwen2_vl": "28-px merged patch (2x2 ViT patches)"}[rule]
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
        "rule_options": ropts,
        "token_unit": unit,
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


__all__ = ["OPTION_CONTROLS", "option_controls", "tiling_summary", "compare_methods", "rule_budget_options",
           "packing_summary", "row_segment_ids"]
