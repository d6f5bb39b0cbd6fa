"""Native-resolution sizing: how big should an image be when it is fed to a ViT *without* tiling?

Taught in `navit_packing` and used by `tiling_vs_packing` and `grid_explorer`.

Every packing system keeps (roughly) the image's aspect ratio and makes each side a multiple of the patch
size; they differ in how they enforce a token budget. Four rules are implemented, each in its own small
function that returns every intermediate number (so the notebook can print them):

- ``"navit"``          NaViT-style: keep aspect, sides multiples of the patch, scale down only when the
                       image is over ``max_tokens`` (``allow_upscale=True`` also scales small images up).
- ``"qwen2_vl"``       Qwen2-VL ``smart_resize`` (Hugging Face transformers): round each side to a multiple
                       of ``factor`` with Python's round-half-to-even, then fix the area into
                       ``[min_pixels, max_pixels]`` with floor / ceil.
- ``"siglip2_naflex"`` SigLIP2 NaFlex ``get_image_size_for_max_num_patches``: binary search for the largest
                       scale whose patch count (sides rounded *up* to the patch) fits ``max_num_patches``.
- ``"pixtral"``        Pixtral ``get_resize_output_image_size``: shrink (floor) so the longest edge fits
                       ``longest_edge``, then round each side up to whole patches.

Sizes are :class:`~anyres_tutorial.types.Size` ``(width, height)`` in and out (the Hugging Face functions
themselves speak ``(height, width)``); patch grids are :class:`~anyres_tutorial.types.Grid` ``(rows, cols)``.
"""

from __future__ import annotations

import math

from ..checks import MAX_SIDE, check_number, check_positive_int, check_size
from ..types import Grid, Size

RULES = ("navit", "qwen2_vl", "siglip2_naflex", "pixtral")


def _check_size(image_size) -> Size:
    """A (width, height) pair of positive integers (no aspect limit here: each rule states its own)."""
    return check_size(image_size, max_aspect=None)


# ---------------------------------------------------------------------------------------------------------
# NaViT


def navit_size(image_size, patch_size: int = 14, max_tokens: int | None = 256,
               allow_upscale: bool = False) -> dict:
    """NaViT-style native size: aspect ratio kept, sides multiples of ``patch_size``, at most ``max_tokens``.

    The scale is ``s = sqrt(max_tokens * p^2 / (W * H))`` (the scale whose area exactly fills the budget),
    capped at 1 unless ``allow_upscale``; each side becomes ``floor(side * s / p)`` patches (at least 1). An
    extremely elongated image can still overflow the budget through that "at least 1" clamp, so the long side
    is then cut to ``max_tokens // short_side``. ``max_tokens=None`` means no budget (native size, floored
    to whole patches). Defaults: patch 14 (our DINOv2 ViT-S/14) and a 256-token budget.
    """
    w, h = _check_size(image_size)
    p = check_positive_int("patch_size", patch_size)
    if max_tokens is not None:
        max_tokens = check_positive_int("max_tokens", max_tokens)
    if max_tokens is None:
        scale = 1.0
    else:
        scale = math.sqrt(max_tokens * p * p / (w * h))
        if not allow_upscale:
            scale = min(scale, 1.0)
    gw = max(1, math.floor(w * scale / p))  # patches across
    gh = max(1, math.floor(h * scale / p))  # patches down
    clamped = False
    if max_tokens is not None and gw * gh > max_tokens:  # only through the "at least 1 patch" clamp
        clamped = True
        if gw >= gh:
            gw = max(1, max_tokens // gh)
        else:
            gh = max(1, max_tokens // gw)
    if max(gw, gh) * p > MAX_SIDE:  # only through allow_upscale with a budget far beyond the image
        raise ValueError(f"max_tokens={max_tokens} with allow_upscale would make a side of "
                         f"{max(gw, gh) * p} px, over the {MAX_SIDE}-px limit; use a smaller budget")
    return dict(rule="navit", input=Size(w, h), scale=scale, grid=Grid(gh, gw), tokens=gw * gh,
                clamped=clamped, size=Size(gw * p, gh * p))


# ---------------------------------------------------------------------------------------------------------
# Qwen2-VL

#: Patches per side Qwen2-VL's PatchMerger merges into one LLM token (``spatial_merge_size``); its sizing
#: factor 28 is one merged token's side, 14 * 2.
QWEN2_VL_MERGE = 2


def qwen2_vl_size(image_size, factor: int = 28, min_pixels: int = 56 * 56,
                  max_pixels: int = 28 * 28 * 1280) -> dict:
    """Qwen2-VL ``smart_resize`` (transformers ``models/qwen2_vl/image_processing_qwen2_vl.py``), (w, h) API.

    1. aspect ratio over 200 -> ``ValueError`` (as the reference);
    2. ``h_bar = round(h / factor) * factor`` (Python ``round``: half to even), same for the width;
    3. over ``max_pixels``: ``beta = sqrt(h * w / max_pixels)``, sides
       ``floor(side / beta / factor) * factor`` (at least ``factor``); under ``min_pixels``:
       ``beta = sqrt(min_pixels / (h * w))``, sides ``ceil(side * beta / factor) * factor``.
    """
    w, h = _check_size(image_size)
    factor = check_positive_int("factor", factor)
    min_pixels = check_positive_int("min_pixels", min_pixels)
    max_pixels = check_positive_int("max_pixels", max_pixels)
    if min_pixels > max_pixels:
        raise ValueError(f"min_pixels ({min_pixels:,}) must be <= max_pixels ({max_pixels:,})")
    if max(h, w) / min(h, w) > 200:
        raise ValueError(f"absolute aspect ratio must be smaller than 200, got {max(h, w) / min(h, w)}")
    h_round = round(h / factor) * factor
    w_round = round(w / factor) * factor
    h_bar, w_bar, branch, beta = h_round, w_round, "round", None
    if h_bar * w_bar > max_pixels:
        branch = "max_pixels"
        beta = math.sqrt(h * w / max_pixels)
        h_bar = max(factor, math.floor(h / beta / factor) * factor)
        w_bar = max(factor, math.floor(w / beta / factor) * factor)
    elif h_bar * w_bar < min_pixels:
        branch = "min_pixels"
        beta = math.sqrt(min_pixels / (h * w))
        h_bar = math.ceil(h * beta / factor) * factor
        w_bar = math.ceil(w * beta / factor) * factor
    return dict(rule="qwen2_vl", input=Size(w, h), rounded=Size(w_round, h_round), branch=branch, beta=beta,
                grid=Grid(h_bar // factor, w_bar // factor), tokens=(w_bar // factor) * (h_bar // factor),
                size=Size(w_bar, h_bar))


# ---------------------------------------------------------------------------------------------------------
# SigLIP2 NaFlex


def siglip2_naflex_size(image_size, patch_size: int = 16, max_num_patches: int = 256,
                        eps: float = 1e-5) -> dict:
    """SigLIP2 NaFlex ``get_image_size_for_max_num_patches`` (transformers ``models/siglip2``), (w, h) API.

    Bisect the scale on ``[eps / 10, 100]`` until the interval is narrower than ``eps``; a side at scale ``s``
    is ``max(p, ceil(side * s / p) * p)``; keep the largest scale whose patch count fits the budget.
    """
    w, h = _check_size(image_size)
    p = check_positive_int("patch_size", patch_size)
    max_num_patches = check_positive_int("max_num_patches", max_num_patches)
    eps = check_number("eps", eps, 0.0, min_inclusive=False)

    def side(scale: float, n: int) -> int:
        return max(p, math.ceil(n * scale / p) * p)

    lo, hi, steps = eps / 10, 100.0, 0
    while hi - lo >= eps:
        mid = (lo + hi) / 2
        if (side(mid, h) / p) * (side(mid, w) / p) <= max_num_patches:
            lo = mid
        else:
            hi = mid
        steps += 1
    th, tw = side(lo, h), side(lo, w)
    return dict(rule="siglip2_naflex", input=Size(w, h), scale=lo, search_steps=steps,
                grid=Grid(th // p, tw // p), tokens=(tw // p) * (th // p), size=Size(tw, th))


# ---------------------------------------------------------------------------------------------------------
# Pixtral


def pixtral_size(image_size, longest_edge: int = 1024, patch_size: int = 16) -> dict:
    """Pixtral ``get_resize_output_image_size`` (transformers ``models/pixtral``), (w, h) API.

    ``ratio = max(h, w) / longest_edge``; if above 1 both sides are divided by it and *floored* (the HF code
    floors on purpose so the result never exceeds the edge); then each side becomes whole patches,
    ``(side - 1) // p + 1`` (i.e. rounded up), times ``p``. Small images are never upscaled.
    """
    w, h = _check_size(image_size)
    longest_edge = check_positive_int("longest_edge", longest_edge)
    p = check_positive_int("patch_size", patch_size)
    ratio = max(h / longest_edge, w / longest_edge)
    sw, sh = w, h
    if ratio > 1:
        sh = int(math.floor(h / ratio))
        sw = int(math.floor(w / ratio))
    gh = (sh - 1) // p + 1
    gw = (sw - 1) // p + 1
    return dict(rule="pixtral", input=Size(w, h), ratio=ratio, scaled=Size(sw, sh), grid=Grid(gh, gw),
                tokens=gw * gh, size=Size(gw * p, gh * p))


_RULE_FUNCS = {
    "navit": navit_size,
    "qwen2_vl": qwen2_vl_size,
    "siglip2_naflex": siglip2_naflex_size,
    "pixtral": pixtral_size,
}


def native_size_details(image_size, rule: str = "navit", **options) -> dict:
    """Like :func:`native_size` but returns the dict of intermediate numbers (scale, rounded sides, branch
    taken, ``grid`` as Grid(rows, cols), ``tokens``, final ``size`` as Size(width, height)). Used by
    `navit_packing` and `grid_explorer`."""
    if rule not in _RULE_FUNCS:
        raise ValueError(f"unknown sizing rule {rule!r}; choose one of {RULES}")
    try:
        return _RULE_FUNCS[rule](image_size, **options)
    except TypeError as e:
        if "unexpected keyword" in str(e):
            raise TypeError(f"rule {rule!r}: {e}") from None
        raise


def native_size(image_size, rule: str = "navit", **options) -> Size:
    """The (width, height) an image of ``image_size`` = (width, height) is resized to under ``rule``.

    ``rule`` is one of ``"navit"`` (``patch_size=14, max_tokens=256, allow_upscale=False``), ``"qwen2_vl"``
    (``factor=28, min_pixels=3136, max_pixels=1003520``), ``"siglip2_naflex"`` (``patch_size=16,
    max_num_patches=256``) or ``"pixtral"`` (``longest_edge=1024, patch_size=16``). Taught in
    `navit_packing`.

    >>> native_size((640, 480), "qwen2_vl")
    Size(width=644, height=476)
    """
    return native_size_details(image_size, rule, **options)["size"]
