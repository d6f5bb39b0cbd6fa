"""What a tiling method is: the protocol every method object follows, and the small types it returns.

Every consumer (``tiling.plan`` / ``apply``, the pictures in ``viz``, the explorers, the benchmark) talks to a
method only through these attributes, so a new method is one object plus one ``tiling.register`` call.
Taught in `tiling_basics`; the explorers of `grid_explorer` draw what these attributes return.

A tiling method is any object (a module works) with:

==================  ==================================================================================
``TITLE``           display name, e.g. ``"LLaVA-NeXT AnyRes"``
``OPTIONS``         dict option name -> default (``tiling.plan`` accepts exactly these names)
``CONTROLS``        dict option name -> ``("choice", [(label, value), ...])`` or ``("int", lo, hi)``: the
                    explorer's control for that option (options not listed keep their default there)
``resolve(opts)``   the full option dict (defaults filled in) -> validated options (ValueError/TypeError)
``plan(size, opts)``  ``Size(width, height)`` and resolved options -> :class:`~.base.Plan` (pure geometry)
``render(plan, image)``  PIL pixels: ``(canvas, tiles, global_views)``, every tile/view t x t
``token_layout(plan)``   the LLM's visual tokens as labelled blocks (:class:`TokenBlock`), in sequence order;
                    their token count must equal ``plan.num_tokens``
``score_table(plan)``    the per-candidate numbers that decided the grid (:class:`ScoreTable`)
==================  ==================================================================================
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Any, NamedTuple, Protocol, runtime_checkable

import numpy as np

#: The attributes ``tiling.register`` requires of a method object.
REQUIRED = ("TITLE", "OPTIONS", "CONTROLS", "resolve", "plan", "render", "token_layout", "score_table")

# Codes of a token-layout array (``TokenBlock.codes``): -1 nothing drawn (layout filler), 0 a global view's
# token, 1 a newline token, 2 a separator / extra token, 10 + k a feature of local tile k.
EMPTY, GLOBAL, NEWLINE, EXTRA, TILE0 = -1, 0, 1, 2, 10


@runtime_checkable
class TilingMethod(Protocol):
    """The tiling-method protocol (see the module docstring for each attribute)."""

    TITLE: str
    OPTIONS: dict
    CONTROLS: dict

    def resolve(self, opts: dict) -> dict: ...

    def plan(self, image_size, opts: dict): ...

    def render(self, plan, image) -> tuple: ...

    def token_layout(self, plan) -> list: ...

    def score_table(self, plan) -> ScoreTable: ...


class TokenBlock(NamedTuple):
    """One block of the LLM's visual tokens: ``codes`` is a small 2-D int array read row-major (``EMPTY``
    cells skipped) giving the token sequence; ``label`` says what it is (e.g. "global view 24×24")."""

    label: str
    codes: np.ndarray

    @property
    def num_tokens(self) -> int:
        return int((self.codes != EMPTY).sum())


@dataclass(frozen=True)
class ScoreTable:
    """The per-candidate numbers that decided a plan's grid.

    ``kind``: what the numbers are ("resolution": effective / wasted resolution; "aspect": distance in aspect
    ratio; "template": log-aspect distance; "anchors": UReader's Srr / Sra; "none": the method does not
    search candidates) - pictures pick their drawing by kind, never by method name. ``rule``: the selection
    rule in one sentence. ``columns`` / ``rows``: the table to show (display cells, rows possibly a subset
    such as the best few); ``chosen``: per shown row, True for the winner. ``data``: one dict per candidate
    (all of them) with the raw numbers and a ``chosen`` flag.
    """

    kind: str
    rule: str
    columns: tuple = ()
    rows: tuple = ()
    chosen: tuple = ()
    data: tuple = ()

    def __post_init__(self):
        assert len(self.rows) == len(self.chosen), "one chosen flag per shown row"
        assert all(len(r) == len(self.columns) for r in self.rows), "every row has one cell per column"


def no_search(rule: str) -> ScoreTable:
    """The score table of a method that does not compare candidates (its grid follows from a fixed rule)."""
    return ScoreTable(kind="none", rule=rule)


# ----------------------------------------------------------------------------------------------------------
# building blocks for token layouts


def tile_map(plan, hw_per_tile: tuple[int, int]) -> np.ndarray:
    """(rows*h, cols*w) array: the local tile (TILE0 + k) that each position of the stitched map came from."""
    rows, cols = plan.grid
    h, w = hw_per_tile
    k = np.arange(rows * cols).reshape(rows, cols)
    return TILE0 + np.kron(k, np.ones((h, w), dtype=int))  # (rows*h, cols*w)


def with_newlines(a: np.ndarray) -> np.ndarray:
    """Append one NEWLINE token to every row of a layout array."""
    return np.concatenate([a, np.full((a.shape[0], 1), NEWLINE)], axis=1)


def encoder_order(plan) -> list[tuple[str, int]]:
    """The encoder images in the order the encoder sees them: ("global", i) and ("tile", k)."""
    views = [("global", i) for i in range(len(plan.global_views))]
    tiles = [("tile", k) for k in range(len(plan.tile_boxes))]
    return views + tiles if plan.global_position == "before" else tiles + views


def per_image_blocks(plan, block: np.ndarray) -> list[TokenBlock]:
    """One copy of ``block`` per encoder image, in encoder order; GLOBAL cells take the image's own code."""
    out = []
    for i, (kind, k) in enumerate(encoder_order(plan)):
        code = GLOBAL if kind == "global" else TILE0 + k
        label = f"#{i} global" if kind == "global" else \
            f"#{i} (r{plan.tile_positions[k][0]},c{plan.tile_positions[k][1]})"
        out.append(TokenBlock(label, np.where(block == GLOBAL, code, block)))
    return out


def uniform_layout(plan) -> list[TokenBlock]:
    """``num_tokens / num_images`` tokens per encoder image (a square block when that is a square number), in
    encoder order; one flat block when the tokens do not divide evenly (e.g. a compressor's few tokens)."""
    if plan.num_images and plan.num_tokens % plan.num_images == 0:
        per = plan.num_tokens // plan.num_images
        side = math.isqrt(per)
        block = np.full((side, side) if side * side == per else (1, per), GLOBAL)
        return per_image_blocks(plan, block)
    return [TokenBlock("all visual tokens", np.full((1, plan.num_tokens), GLOBAL))]


def check_method(name: str, method: Any) -> None:
    """TypeError naming every protocol attribute ``method`` lacks (or has in the wrong form)."""
    missing = [a for a in REQUIRED if not hasattr(method, a)]
    if missing:
        raise TypeError(f"tiling method {name!r} lacks {missing}; a method needs {list(REQUIRED)} "
                        f"(see anyres_tutorial.tiling.protocol)")
    for a in ("resolve", "plan", "render", "token_layout", "score_table"):
        if not callable(getattr(method, a)):
            raise TypeError(f"tiling method {name!r}: {a} must be callable")
    for a in ("OPTIONS", "CONTROLS"):
        if not isinstance(getattr(method, a), dict):
            raise TypeError(f"tiling method {name!r}: {a} must be a dict")
    unknown = set(method.CONTROLS) - set(method.OPTIONS)
    if unknown:
        raise TypeError(f"tiling method {name!r}: CONTROLS names options it does not have: {sorted(unknown)}")


__all__ = ["REQUIRED", "EMPTY", "GLOBAL", "NEWLINE", "EXTRA", "TILE0", "TilingMethod", "TokenBlock",
           "ScoreTable", "no_search", "tile_map", "with_newlines", "encoder_order", "per_image_blocks",
           "uniform_layout", "check_method"]
