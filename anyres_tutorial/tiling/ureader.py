"""UReader shape-adaptive cropping (mPLUG-DocOwl). Taught in `ureader_shape_adaptive`.

Paper: Ye et al., "UReader: Universal OCR-free Visually-situated Language Understanding with Multimodal Large
Language Model" (EMNLP Findings 2023, arXiv:2310.05126), Section 3.2 "Shape-Adaptive Cropping Module".
Reference code: X-PLUG/mPLUG-DocOwl ``UReader/pipeline/data_utils/processors/doc_processor.py``
(``anchor_rank``, ``box_iou``, ``AnchorResize``, ``DocNewMultiScaleSFTProcessor``) and the release config
``UReader/configs/sft/release.yaml`` (its 48 anchors).

Anchors are grids (nh, nw) of 224 x 224 cells (the sets: :func:`resolve`). Each is scored by how well it fits
the image's resolution (Srr) and shape (Sra) (:func:`score_anchors`); the image is resized, distorted, to the
best anchor, cut into row-major 224 crops and preceded by a squashed global view (:func:`plan`,
:func:`render`); each image becomes 65 visual tokens after mPLUG-Owl's visual abstractor (64 queries + 1,
:func:`token_layout`).

Paper vs code: the paper scores Sra + Srr; the code weighs Sra 100x and truncates the Sra box height, so shape
dominates: e.g. 1920x1080 gives 3x5 with the code and 3x6 with the paper's score.
"""

from __future__ import annotations

from functools import lru_cache

import numpy as np

from .base import GlobalView, check_choice, check_int, check_pair_list, grid_boxes, make_plan
from .protocol import EMPTY, EXTRA, GLOBAL, ScoreTable, TokenBlock, per_image_blocks

TITLE = "UReader shape-adaptive cropping"
TILE = 224
TOKENS_PER_IMAGE = 65
# (nh, nw), in the order of UReader/configs/sft/release.yaml
RELEASE_ANCHORS = (
    (1, 1), (1, 2), (2, 1), (1, 3), (3, 1), (1, 4), (2, 2), (4, 1), (1, 5), (5, 1), (1, 6), (2, 3), (3, 2),
    (6, 1), (1, 7), (7, 1), (1, 8), (2, 4), (4, 2), (8, 1), (1, 9), (3, 3), (9, 1), (1, 10), (2, 5), (5, 2),
    (10, 1), (1, 11), (11, 1), (2, 6), (3, 4), (4, 3), (6, 2), (2, 7), (7, 2), (3, 5), (5, 3), (2, 8), (4, 4),
    (8, 2), (2, 9), (3, 6), (6, 3), (9, 2), (2, 10), (4, 5), (5, 4), (10, 2),
)
# (nh, nw), the DocPretrainProcessor class default
DEFAULT_ANCHORS = (
    (1, 1), (1, 2), (2, 1), (1, 3), (3, 1), (2, 2), (1, 4), (4, 1), (1, 5), (5, 1), (1, 6), (6, 1), (2, 3),
    (3, 2), (1, 7), (7, 1), (4, 2), (2, 4), (1, 8), (8, 1), (3, 3), (1, 9), (9, 1),
)

OPTIONS = {"anchors": "release", "score": "code"}
CONTROLS = {
    "anchors": ("choice", [("release config (48)", "release"), ("class default (23)", "default")]
                + [(f"Nc = {n}: nh·nw ≤ {n}", n) for n in (4, 6, 9, 12, 16, 20, 25)]),
    "score": ("choice", [("code: 100·Sra + Srr", "code"), ("paper: Sra + Srr", "paper")]),
}
#: Rows of the explorer's score table: the best anchors by the code's score (plus both rules' winners).
TABLE_ROWS = 8


def anchors_up_to(nc: int) -> tuple:
    """Every anchor (nh, nw) with nh * nw <= nc, ordered by nh * nw then nh."""
    pairs = [(nh, nw) for nh in range(1, nc + 1) for nw in range(1, nc // nh + 1)]
    return tuple(sorted(pairs, key=lambda p: (p[0] * p[1], p[0])))


def resolve(opts: dict) -> dict:
    """Anchor sets: ``anchors="release"`` (default, the 48 anchors of the release config, all with
    nh*nw <= 20), ``"default"`` (the processor class default: the 23 anchors with nh*nw <= 9), an int Nc
    (every (nh, nw) with nh*nw <= Nc, ordered by nh*nw then nh), or an explicit sequence of (nh, nw)."""
    a = opts["anchors"]
    if isinstance(a, str):
        a = {"release": RELEASE_ANCHORS, "default": DEFAULT_ANCHORS}[
            check_choice("anchors", a, ("release", "default"))]
    elif isinstance(a, int) and not isinstance(a, bool):
        a = anchors_up_to(check_int("anchors", a, 1, 64))
    else:
        a = check_pair_list("anchors", a, max_len=512)
        if max(max(p) for p in a) > 64:
            raise ValueError("anchors: nh and nw must be <= 64")
    return {"anchors": a, "score": check_choice("score", opts["score"], ("code", "paper"))}


@lru_cache(maxsize=64)
def _anchor_arrays(anchors: tuple):
    nh = np.array([p[0] for p in anchors], dtype=np.int64)
    nw = np.array([p[1] for p in anchors], dtype=np.int64)
    aw, ah = nw * TILE, nh * TILE  # anchor box [0, 0, aw, ah]
    return aw, ah, aw * ah, aw.astype(np.float32)


def _iou32(inter, union):
    """The reference's ``inter / (union + 1e-5)`` in float32 (int64 tensors promoted to float32)."""
    return inter.astype(np.float32) / (union.astype(np.float32) + np.float32(1e-5))


def score_anchors(image_size: tuple, anchors: tuple, score: str = "code"):
    """Per-anchor (Srr, Sra, score) arrays and the chosen index, computed as the code or the paper does.

    An anchor box is [0, 0, nw*224, nh*224]. For an image W x H:

    - Srr (resolution-related) = IoU(anchor box, image box [0, 0, W, H]);
    - Sra (resolution-agnostic, shape) = IoU(anchor box, [0, 0, nw*224, (H/W)*nw*224]): the image rescaled to
      the anchor's width;
    - code (``score="code"``, default): ``argmax(100 * Sra + Srr)``, everything in torch float32 as the
      reference does: the anchor tensor is int64, so the Sra box height ``float32(H/W) * float32(nw*224)`` is
      *truncated* to an integer when written back, the IoU is ``inter / (union + 1e-5)`` in float32, and
      ``argmax`` keeps the first maximum (list order breaks ties);
    - paper (``score="paper"``): ``argmax(Sra + Srr)`` with exact (float64) boxes.
    """
    w, h = image_size
    aw, ah, area, aw32 = _anchor_arrays(anchors)
    if score == "code":
        # Sra box height: float32(H/W) * float32(aw), truncated toward zero into the int64 anchor tensor
        y3 = (np.float32(h / w) * aw32).astype(np.int64)
        inter_rr = np.minimum(aw, w) * np.minimum(ah, h)
        srr = _iou32(inter_rr, area + w * h - inter_rr)
        inter_ra = aw * np.minimum(ah, y3)
        sra = _iou32(inter_ra, area + aw * y3 - inter_ra)
        total = sra * np.float32(100) + srr  # float32
    else:
        y3 = (h / w) * aw.astype(np.float64)
        inter_rr = (np.minimum(aw, w) * np.minimum(ah, h)).astype(np.float64)
        srr = inter_rr / (area + w * h - inter_rr)
        inter_ra = aw * np.minimum(ah, y3)
        sra = inter_ra / (area + aw * y3 - inter_ra)
        total = sra + srr
    return srr, sra, total, y3, int(np.argmax(total))  # argmax: first maximum


def plan(image_size: tuple, opts: dict):
    """The best anchor's grid of 224 crops plus the global view, first. Every crop carries its (row, col) for
    UReader's 2-D crop position embedding; the global view gets (anchor_max, anchor_max) with anchor_max =
    the largest nh or nw among the anchors (``details["crop_positions"]``); the model's position tables have
    15 rows, so its connector (``llm.connectors.UReaderAbstractor``) takes anchors whose sides are at most 14.
    """
    anchors = opts["anchors"]
    srr, sra, total, y3, best = score_anchors(image_size, anchors, opts["score"])
    rows, cols = anchors[best]
    boxes, positions = grid_boxes(rows, cols, TILE)
    canvas = (cols * TILE, rows * TILE)
    anchor_max = max(max(p) for p in anchors)
    n_images = len(boxes) + 1
    table = [{"anchor": a, "Srr": s1, "Sra": s2, "score": sc, "sra_box_height": y, "chosen": i == best}
             for i, (a, s1, s2, sc, y) in enumerate(zip(anchors, srr.tolist(), sra.tolist(), total.tolist(),
                                                        y3.tolist()))]
    formula = (f"{n_images} images (1 global + {rows}x{cols} crops) x {TOKENS_PER_IMAGE} = "
               f"{n_images * TOKENS_PER_IMAGE}")
    return make_plan(
        method="ureader", image_size=image_size, options=opts, tile_size=TILE, grid=(rows, cols),
        canvas_size=canvas, resize_size=canvas, content_box=(0, 0) + canvas, fill=None, tile_boxes=boxes,
        tile_positions=positions,
        global_views=(GlobalView("squash", (TILE, TILE), None, (0, 0, TILE, TILE)),),
        global_position="before", num_images=n_images, num_tokens=n_images * TOKENS_PER_IMAGE,
        token_formula=formula,
        details={"anchors": table, "score_rule": opts["score"], "anchor_max": anchor_max,
                 "crop_positions": ((anchor_max, anchor_max),) + positions},
    )


def render(plan, image):
    """PIL pixels: distorting BICUBIC resize to the anchor canvas, row-major crops, squashed global view.

    The resize goes to (nw*224, nh*224) (torchvision ``F.resize`` on a PIL image with BICUBIC, i.e. PIL
    BICUBIC), then row-major 224 crops; the global view is the whole image squashed to 224 x 224 (BICUBIC),
    placed *first*.
    """
    from PIL import Image

    canvas = image.resize(plan.canvas_size, Image.BICUBIC)
    tiles = [canvas.crop(b) for b in plan.tile_boxes]
    return canvas, tiles, [image.resize((TILE, TILE), Image.BICUBIC)]


def token_layout(plan) -> list[TokenBlock]:
    """Per encoder image (global first) the visual abstractor's 64 query tokens (drawn 8×8), then the one
    extra token mPLUG-Owl's abstractor appends after them (``vit_eos``, drawn as a ninth row): 65 each."""
    block = np.full((9, 8), EMPTY)
    block[:8, :] = GLOBAL
    block[8, 0] = EXTRA
    return per_image_blocks(plan, block)


def score_table(plan) -> ScoreTable:
    """Srr, Sra and both rules' scores (the code's 100·Sra + Srr and the paper's Sra + Srr) for every anchor;
    the table shows the best few by the code's score, always including both rules' winners."""
    anchors = plan.options["anchors"]
    srr, sra, code, _, best_code = score_anchors(plan.image_size, anchors, "code")
    _, _, paper, _, best_paper = score_anchors(plan.image_size, anchors, "paper")
    data = tuple({"anchor": tuple(a), "Srr": float(srr[i]), "Sra": float(sra[i]),
                  "score_code": float(code[i]), "score_paper": float(paper[i]), "best_code": i == best_code,
                  "best_paper": i == best_paper, "chosen": bool(row["chosen"])}
                 for i, (a, row) in enumerate(zip(anchors, plan.details["anchors"])))
    top = sorted(range(len(data)), key=lambda i: -data[i]["score_code"])[:TABLE_ROWS]
    shown = [data[i] for i in dict.fromkeys(top + [best_code, best_paper])]

    def winner(d):
        return " ".join(n for n, b in (("code", d["best_code"]), ("paper", d["best_paper"])) if b)

    rule = "100·Sra + Srr (the code)" if plan.options["score"] == "code" else "Sra + Srr (the paper)"
    return ScoreTable(
        kind="anchors",
        rule=f"argmax of {rule}; listed: the best anchors by the code's score and both rules' winners.",
        columns=("anchor (nh×nw)", "Srr", "Sra", "code 100·Sra+Srr", "paper Sra+Srr", "winner"),
        rows=tuple((f"{d['anchor'][0]}×{d['anchor'][1]}", f"{d['Srr']:.3f}", f"{d['Sra']:.3f}",
                    f"{d['score_code']:.2f}", f"{d['score_paper']:.3f}", winner(d)) for d in shown),
        chosen=tuple(d["chosen"] for d in shown), data=data)
