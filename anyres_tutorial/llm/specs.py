"""What each method puts into the language model's input: a registry of LLM-side descriptions.

Taught in `what_the_language_model_receives`. The tiling methods describe their visual tokens as a
``token_layout`` (see ``tiling.protocol``); this module adds what the language model side needs for each one -
the connector module, the names of its special tokens, the wrapper markers around an image - in one registry
keyed by method name, so ``prompt.layout`` and ``connectors`` never branch on a method's name.

Two kinds of entries:

- :class:`TilingSpec` for a ``tiling`` method: the image's LLM tokens are ``tiling.token_layout(plan)``,
  their count ``plan.num_tokens``;
- :class:`PackingSpec` for a native-resolution model (``qwen2_vl``, ``pixtral``): the token grid comes from
  ``packing.sizing.native_size_details``.

A tiling method registered with ``tiling.register`` but not here gets :data:`GENERIC` (its token layout, the
generic ``<image>`` placeholder, no markers) for prompt layouts, and a clear ``ValueError`` when a connector
is asked for. Add one with ``llm.register(name, TilingSpec(...))``.

Limits, checked before any work: at most :data:`MAX_IMAGE_TOKENS` LLM tokens per image; a connector run on
random features holds at most :data:`MAX_FEATURE_VALUES` numbers and :data:`MAX_PARAMETERS` weights.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

import numpy as np
import torch

from .. import tiling
from ..checks import check_choice, check_int, check_size
from ..packing.sizing import QWEN2_VL_MERGE, native_size_details
from ..registry import Registry
from ..tiling.protocol import EMPTY, EXTRA, GLOBAL, NEWLINE, TILE0
from ..types import Grid
from . import connectors as C

#: Most LLM tokens one image may take in a layout (far beyond any context window; the tiling methods' limit).
MAX_IMAGE_TOKENS = tiling.base.MAX_TOKENS
#: Most numbers (tokens x width) of the random encoder features a connector run may hold (256 MiB).
MAX_FEATURE_VALUES = 2 ** 26
#: Most weights a connector may have (1 GiB of float32).
MAX_PARAMETERS = 2 ** 28


@dataclass(frozen=True)
class Segment:
    """One run of the LLM's input: ``kind`` ("text", "marker", "image", "newline", "separator", "extra",
    "break", "end"), ``count`` tokens, the ``token`` they are (a special token's name, the image placeholder,
    or the words of a text run), ``image`` (index of the prompt's image, None for text), ``view`` ("global",
    "tile 3", ...) and, for Qwen2-VL image runs, the LLM token ``grid`` (rows, cols) its M-RoPE ids need."""

    kind: str
    count: int
    token: str
    image: int | None = None
    view: str | None = None
    grid: Grid | None = None


def _runs(codes: np.ndarray) -> list[tuple[int, int]]:
    """Run-length encoding [(code, length), ...] of a 1-D token-code array."""
    if codes.size == 0:
        return []
    starts = np.flatnonzero(np.r_[True, codes[1:] != codes[:-1]])  # first index of every run
    lengths = np.diff(np.r_[starts, codes.size])
    return [(int(codes[i]), int(n)) for i, n in zip(starts, lengths)]


def _check_image_tokens(method: str, n: int) -> None:
    if n > MAX_IMAGE_TOKENS:
        raise ValueError(f"{method}: one image would take {n:,} LLM tokens, more than the supported "
                         f"{MAX_IMAGE_TOKENS:,}; choose a smaller image or options that give fewer tokens")


def _check_run(method: str, rows: int, width: int) -> None:
    """Refuse a connector run whose random features would not fit (before allocating them)."""
    if rows * width > MAX_FEATURE_VALUES:
        raise ValueError(f"{method}: the connector would run on {rows:,} encoder tokens x width {width} = "
                         f"{rows * width:,} numbers, more than the supported {MAX_FEATURE_VALUES:,}; choose "
                         f"a smaller image, options that give fewer tokens, or a smaller vision_dim")


def _build(cls, method: str, vision_dim, llm_dim, seed, kwargs: dict) -> torch.nn.Module:
    """``cls(vision_dim, llm_dim, **kwargs)`` with random weights of seed ``seed``. Wider than 1024, it is
    first built on the meta device (nothing allocated) to check that its weights stay under MAX_PARAMETERS
    (the first meta build imports parts of torch, a second or two, so small widths skip it)."""
    check_int("seed", seed, 0, 2 ** 63 - 1)
    n = 0
    if isinstance(vision_dim, int) and isinstance(llm_dim, int) and max(vision_dim, llm_dim) > 1024:
        with torch.device("meta"):
            n = sum(p.numel() for p in cls(vision_dim, llm_dim, **kwargs).parameters())
    if n > MAX_PARAMETERS:
        raise ValueError(f"{method}: a connector with vision_dim={vision_dim}, llm_dim={llm_dim} has {n:,} "
                         f"weights, more than the supported {MAX_PARAMETERS:,}; choose smaller widths")
    torch.manual_seed(seed)  # random initialisation, reproducible
    return cls(vision_dim, llm_dim, **kwargs).eval()


@dataclass(frozen=True)
class TilingSpec:
    """The LLM side of a tiling method.

    ``connector``: the ``nn.Module`` class (None: no connector written); ``image_token``: the placeholder
    string each visual position holds in the tokenized prompt; ``tokens``: protocol code (NEWLINE / EXTRA)
    -> (segment kind, token name); ``before`` / ``after``: wrapper markers around every image (not in the
    plan's count); ``cls``: the connector reads the CLS token too; ``connector_kwargs(plan)``: constructor
    arguments that depend on the plan; ``prompt_options(n_images)``: plan options that depend on how many
    images the prompt holds (set from the prompt by ``layout``, refused there as arguments); ``view``: a fixed
    view label for every visual run (e.g. "compressed"). A connector class may define ``check_plan(plan)``,
    called before it is built (ValueError for plans it cannot take)."""

    title: str
    connector: type | None = None
    image_token: str = "<image>"
    tokens: dict = field(default_factory=lambda: {NEWLINE: ("newline", "newline"), EXTRA: ("extra", "extra")})
    before: tuple = ()
    after: tuple = ()
    cls: bool = False
    connector_kwargs: Callable[[Any], dict] | None = None
    prompt_options: Callable[[int], dict] | None = None
    view: str | None = None
    source: str = ""

    def plan(self, method: str, size, opts: dict, n_images: int | None = None):
        """The tiling plan of one image; ``n_images``: the prompt's image count (None: a lone image, and the
        prompt-dependent options may be passed in ``opts``)."""
        extra = self.prompt_options(1 if n_images is None else n_images) if self.prompt_options else {}
        clash = sorted(set(extra) & set(opts)) if n_images is not None else []
        if clash:
            raise ValueError(f"{clash[0]} is set from the prompt's <image> count ({n_images} here); do not "
                             f"pass it to llm.layout")
        return tiling.plan(method, size, **{**extra, **opts})

    def expected_tokens(self, method: str, size, opts: dict, n_images: int | None = None) -> int:
        return self.plan(method, size, opts, n_images).num_tokens

    def image_segments(self, method: str, size, opts: dict, image: int,
                       n_images: int | None = None) -> list[Segment]:
        p = self.plan(method, size, opts, n_images)
        _check_image_tokens(method, p.num_tokens)
        codes = np.concatenate([b.codes.ravel() for b in tiling.token_layout(p)])
        out = []
        for code, n in _runs(codes[codes != EMPTY]):
            if code in self.tokens:
                kind, name = self.tokens[code]
                out.append(Segment(kind, n, name, image))
            else:
                view = self.view or ("global" if code == GLOBAL else f"tile {code - TILE0}")
                out.append(Segment("image", n, self.image_token, image, view))
        return out

    def build(self, method: str, plan, vision_dim: int, llm_dim: int, seed: int = 0) -> torch.nn.Module:
        if self.connector is None:
            raise ValueError(f"no connector is written for method {method!r}; register one with "
                             f"anyres_tutorial.llm.register({method!r}, TilingSpec(..., connector=...))")
        if hasattr(self.connector, "check_plan"):
            self.connector.check_plan(plan)
        kw = self.connector_kwargs(plan) if self.connector_kwargs else {}
        return _build(self.connector, method, vision_dim, llm_dim, seed, kw)

    def run(self, method: str, size, opts: dict, vision_dim: int = C.VISION_DIM, llm_dim: int = C.LLM_DIM,
            seed: int = 0, trace: list | None = None) -> torch.Tensor:
        """The connector on random encoder features of ``size``: (L, D), L == plan.num_tokens."""
        p = self.plan(method, size, opts)
        module = self.build(method, p, vision_dim, llm_dim, seed)
        _check_run(method, p.num_images * ((p.tile_size // p.patch_size) ** 2 + 1), max(vision_dim, llm_dim))
        feats = C.encoder_features(p, vision_dim, cls=self.cls, seed=seed)
        if trace is not None:
            t = p.tile_size
            trace.append(("pixels → encoder images (N, 3, t, t)", (p.num_images, 3, t, t)))
        with torch.no_grad():
            return module(feats, p, trace=trace)


@dataclass(frozen=True)
class PackingSpec:
    """The LLM side of a native-resolution model: ``rule`` of ``packing.sizing``, ``merge`` patches per side
    merged into one LLM token (Qwen2-VL 2), ``row_tokens``: (after each row, after the last row) special
    tokens (Pixtral's ``[IMG_BREAK]`` / ``[IMG_END]``) or None; ``patch`` (pixels) and ``frames`` (a still
    image is repeated to this many frames before patchifying: Qwen2-VL's ``temporal_patch_size`` 2) give the
    patch vector 3·frames·patch² wide. ``options``: the sizing options one may pass; ``settings``: named
    option sets chosen with ``setting=`` (the first is the default), explicit options override them."""

    title: str
    rule: str
    connector: type
    merge: int = 1
    image_token: str = "<image>"
    before: tuple = ()
    after: tuple = ()
    row_tokens: tuple | None = None
    patch: int = 14
    frames: int = 1
    options: tuple = ()
    settings: dict = field(default_factory=dict)
    source: str = ""

    def resolve(self, method: str, opts: dict) -> dict:
        """The sizing options: the chosen setting's, overridden by explicit ones (TypeError/ValueError)."""
        opts = dict(opts)
        allowed = [*self.options, *(["setting"] if self.settings else [])]
        unknown = sorted(set(opts) - set(allowed))
        if unknown:
            raise TypeError(f"unknown option(s) {unknown} for method {method!r}; valid options: {allowed}")
        out = {}
        if self.settings:
            name = opts.pop("setting", next(iter(self.settings)))
            name = check_choice("setting", name, tuple(self.settings))
            out = dict(self.settings[name])
        out.update(opts)
        lo, hi = out.get("min_pixels"), out.get("max_pixels")
        if isinstance(lo, int) and isinstance(hi, int) and lo > hi:
            raise ValueError(f"min_pixels ({lo:,}) must be <= max_pixels ({hi:,})")
        return out

    def grid(self, size, opts: dict, method: str = "") -> tuple[Grid, Grid]:
        """(patch grid the ViT sees, LLM token grid) for an image of ``size``."""
        d = native_size_details(size, self.rule, **self.resolve(method or self.rule, opts))
        g = d["grid"]  # Qwen2-VL's factor 28 already counts merged tokens
        _check_image_tokens(method or self.rule, g.count + (g.rows if self.row_tokens else 0))
        return (Grid(g.rows * self.merge, g.cols * self.merge), g) if self.merge > 1 else (g, g)

    def expected_tokens(self, method: str, size, opts: dict, n_images: int | None = None) -> int:
        _, g = self.grid(size, opts, method)
        return g.count + (g.rows if self.row_tokens else 0)

    def build(self, method: str, vision_dim: int, llm_dim: int, seed: int = 0) -> torch.nn.Module:
        return _build(self.connector, method, vision_dim, llm_dim, seed, {})

    def image_segments(self, method: str, size, opts: dict, image: int,
                       n_images: int | None = None) -> list[Segment]:
        _, g = self.grid(size, opts, method)
        if not self.row_tokens:
            return [Segment("image", g.count, self.image_token, image, f"{g.rows}×{g.cols}", g)]
        brk, end = self.row_tokens
        out = []
        for r in range(g.rows):
            out.append(Segment("image", g.cols, self.image_token, image, f"row {r}"))
            last = r == g.rows - 1
            out.append(Segment("end" if last else "break", 1, end if last else brk, image))
        return out

    def run(self, method: str, size, opts: dict, vision_dim: int = C.VISION_DIM, llm_dim: int = C.LLM_DIM,
            seed: int = 0, trace: list | None = None) -> torch.Tensor:
        patch_grid, _ = self.grid(size, opts, method)
        module = self.build(method, vision_dim, llm_dim, seed)
        _check_run(method, patch_grid.count, max(vision_dim, llm_dim) * self.merge ** 2)
        gen = torch.Generator().manual_seed(seed)
        patches = torch.randn(patch_grid.count, vision_dim, generator=gen)  # (h*w, Dv) packed patches
        if trace is not None:
            f, p = self.frames, self.patch
            width = f"3·{f}·{p}·{p}" if f > 1 else f"3·{p}·{p}"
            step = f"pixels → patches, image repeated to {f} frames" if f > 1 else \
                "pixels → native-size patches"
            trace.append((f"{step} (h·w, {width})", (patch_grid.count, 3 * f * p * p)))
        with torch.no_grad():
            return module(patches, patch_grid, trace=trace)


#: The description a tiling method without its own entry gets (its token layout, no connector).
GENERIC = TilingSpec(title="generic: the method's token layout, no connector")
#: The LLM-side descriptions by method name (tiling methods without one get :data:`GENERIC`).
SPECS = Registry("LLM-side description")
unregister = SPECS.unregister


def register(name: str, spec: Any, *, replace: bool = False) -> Any:
    """Add the LLM-side description of method ``name`` (a :class:`TilingSpec` or :class:`PackingSpec`)."""
    if not isinstance(replace, bool):
        raise TypeError(f"replace must be True or False, got {replace!r}")
    if not isinstance(spec, (TilingSpec, PackingSpec)):
        raise TypeError(f"spec must be a TilingSpec or PackingSpec, got {type(spec).__name__}")
    return SPECS.register(name, spec, replace=replace)


def get(method: str) -> Any:
    """The LLM-side description of ``method``; :data:`GENERIC` for a tiling method without one."""
    if not isinstance(method, str):
        raise TypeError(f"method must be a string, one of {methods()}, got {method!r}")
    if method in SPECS:
        return SPECS.get(method)
    if method in tiling.METHODS:
        return GENERIC
    raise ValueError(f"unknown method {method!r}; choose one of {methods()}")


def methods() -> tuple:
    """Every method a prompt can be laid out for: the tiling methods, then the native-resolution models."""
    return tuple(tiling.METHODS) + tuple(m for m in SPECS if m not in tiling.METHODS)


def connector(method: str, image_size=None, vision_dim: int = C.VISION_DIM, llm_dim: int = C.LLM_DIM,
              seed: int = 0, **opts) -> torch.nn.Module:
    """A randomly initialised connector of ``method`` (for a tiling method sized by the plan of
    ``image_size``, None: 800x600); ValueError if the method has none."""
    spec = get(method)
    size = check_size((800, 600) if image_size is None else image_size, max_aspect=None)
    if isinstance(spec, PackingSpec):
        spec.grid(size, opts, method)  # checks the options
        return spec.build(method, vision_dim, llm_dim, seed)
    p = spec.plan(method, size, opts)
    return spec.build(method, p, vision_dim, llm_dim, seed)


def run_connector(method: str, image_size, vision_dim: int = C.VISION_DIM, llm_dim: int = C.LLM_DIM,
                  seed: int = 0, **opts) -> tuple[torch.Tensor, list]:
    """Run ``method``'s connector on random encoder features of one image: ((L, D) embeddings, trace of
    (step, shape)). L equals :func:`expected_tokens`."""
    trace: list = []
    out = get(method).run(method, image_size, opts, vision_dim, llm_dim, seed, trace)
    return out, trace


def expected_tokens(method: str, image_size, **opts) -> int:
    """LLM tokens of one image: ``tiling.plan(...).num_tokens``, or the packing rule's count (plus row
    tokens)."""
    return get(method).expected_tokens(method, image_size, opts)


#: Qwen2-VL's two processor settings (``setting=``): "transformers_default" = ``Qwen2VLImageProcessor()``'s
#: class defaults, 4 to 1,280 LLM tokens per image; "released" = the ``preprocessor_config.json`` of the
#: released Qwen2-VL-Instruct checkpoints, 4 to 16,384 tokens (the model card's "4-16384").
QWEN2_VL_SETTINGS = {
    "transformers_default": {"min_pixels": 56 * 56, "max_pixels": 28 * 28 * 1280},
    "released": {"min_pixels": 56 * 56, "max_pixels": 28 * 28 * 16384},
}

_TILING = {
    "template": TilingSpec(title="Template tiling + MLP", connector=C.MLPConnector),
    "llava_next": TilingSpec(
        title="LLaVA-NeXT: MLP + image_newline", connector=C.LlavaNextConnector,
        tokens={NEWLINE: ("newline", "image_newline")}, source="LLaVA-NeXT llava_arch.py"),
    "ureader": TilingSpec(
        title="UReader: visual abstractor + crop positions", connector=C.UReaderAbstractor, cls=True,
        tokens={EXTRA: ("extra", "vit_eos")},
        source="mPLUG-Owl visual abstractor, UReader crop position embedding (patch_pos_embed_type: post)"),
    "deepseek_vl2": TilingSpec(
        title="DeepSeek-VL2: 2×2 downsample + MLP", connector=C.DeepSeekVL2Connector,
        tokens={NEWLINE: ("newline", "image_newline"), EXTRA: ("separator", "view_seperator")},
        prompt_options=lambda n: {"images_in_prompt": n}, source="DeepSeek-VL2 modeling_deepseek_vl_v2.py"),
    "internvl": TilingSpec(
        title="InternVL: pixel shuffle + MLP", connector=C.InternVLConnector, image_token="<IMG_CONTEXT>",
        before=("<img>",), after=("</img>",), source="InternVL chat template, pixel_shuffle + mlp1"),
    "llava_mini": TilingSpec(
        title="LLaVA-Mini: compression + pre-fusion", connector=C.LlavaMiniConnector, view="compressed",
        connector_kwargs=lambda p: {"compressor_size": p.options["compressor_size"]},
        source="LLaVA-Mini llavamini_arch.py"),
}
_PACKING = {
    "qwen2_vl": PackingSpec(
        title="Qwen2-VL: packed patches, 2×2 PatchMerger", rule="qwen2_vl", connector=C.Qwen2VLPatchMerger,
        merge=QWEN2_VL_MERGE, image_token="<|image_pad|>", before=("<|vision_start|>",),
        after=("<|vision_end|>",), frames=2, options=("min_pixels", "max_pixels"), settings=QWEN2_VL_SETTINGS,
        source="transformers models/qwen2_vl"),
    "pixtral": PackingSpec(
        title="Pixtral: patches + [IMG_BREAK] rows", rule="pixtral", connector=C.PixtralConnector,
        image_token="[IMG]", row_tokens=("[IMG_BREAK]", "[IMG_END]"), patch=16, options=("longest_edge",),
        source="transformers models/pixtral"),
}
for _name, _spec in {**_TILING, **_PACKING}.items():
    register(_name, _spec)
del _name, _spec

__all__ = ["Segment", "TilingSpec", "PackingSpec", "GENERIC", "QWEN2_VL_SETTINGS", "MAX_IMAGE_TOKENS",
           "MAX_FEATURE_VALUES", "MAX_PARAMETERS", "register", "unregister", "get", "methods", "connector",
           "run_connector", "expected_tokens"]
