"""The synthetic documents: a dense text page with a table and a figure, and a line chart with small print.

Part of :mod:`anyres_tutorial.synthetic`; taught in `setup_and_why_resolution`.
"""

from __future__ import annotations

import math

import numpy as np
from PIL import Image, ImageDraw

from .common import (
    draw_paragraph,
    draw_text,
    rotated_text,
    text_width,
)

_LOREM = (
    "Vision encoders are trained at a fixed input size, typically 224 or 336 pixels on a side, while the "
    "images people care about are documents, receipts, charts and screenshots many times larger. Resizing "
    "such an image to the encoder's size removes exactly the information a question is about: the digits "
    "in a table cell, the label on an axis, the fine print under a price. Tiling methods cut the image "
    "into crops that each match the encoder, add a downsized global view, and concatenate the resulting "
    "tokens. Packing methods instead keep the native resolution, split the image into patches directly "
    "and pack patches of several images into one sequence with a block-diagonal attention mask. Both "
    "approaches trade sequence length for detail, and both must decide what to do with aspect ratios far "
    "from square. We measure the trade-off on documents, charts, panoramas and phone screenshots, "
    "reporting token counts, padding waste and accuracy at matched budgets. A grid that wastes a third of "
    "its tiles on padding spends a third of its compute on nothing; a grid that squashes a tall "
    "screenshot into a square makes every line of text illegible to the model. The best grid depends on "
    "the image, which is why modern systems choose it per image from a small set of candidates."
).split(". ")


def _sentences(rng: np.random.Generator, n: int) -> str:
    """``n`` sentences drawn (seeded) from the abstract-like pool above, so the page reads like real prose."""
    picks = rng.permutation(len(_LOREM))[:n]  # no sentence twice in one paragraph
    return " ".join(_LOREM[i].rstrip(".") + "." for i in picks)


def _draw_table(d, x, y, w, rng) -> int:
    cols = ["Method", "Grid", "Tokens", "Task A", "Task B", "Pad %"]
    rows = [
        ("Resize 336", "1x1", 576),
        ("Pad 336", "1x1", 576),
        ("AnyRes", "2x2+1", 2880),
        ("AnyRes", "1x4+1", 2880),
        ("UReader", "3x2+1", 1792),
        ("InternVL", "3x4+1", 3328),
        ("DeepSeek-VL2", "2x3+1", 1260),
        ("NaViT", "native", 2304),
        ("NaViT (packed)", "native", 2304),
    ]
    xs = [x, x + 0.30 * w, x + 0.45 * w, x + 0.60 * w, x + 0.75 * w, x + 0.90 * w, x + w]
    draw_text(
        d,
        (x, y),
        "Table 2: Scores on two imaginary tasks (random numbers). Best underlined.",
        12,
        (30, 30, 30),
    )
    y += 22
    d.line([(x, y), (x + w, y)], fill=(0, 0, 0), width=2)
    y += 5
    for i, c in enumerate(cols):
        draw_text(d, (round(xs[i]) + 4, y), c, 12, (0, 0, 0), bold=True)
    y += 20
    d.line([(x, y), (x + w, y)], fill=(0, 0, 0), width=1)
    scores = np.round(
        np.stack(
            [40 + 45 * rng.random(len(rows)), 30 + 50 * rng.random(len(rows)), 60 * rng.random(len(rows))],
            axis=1,
        ),
        1,
    )  # (rows, 3)
    for r, (m, g, t) in enumerate(rows):
        y += 4
        vals = [m, g, f"{t:,}"] + [f"{v:.1f}" for v in scores[r]]
        for i, v in enumerate(vals):
            draw_text(d, (round(xs[i]) + 4, y), v, 12, (25, 25, 25))
        for j in (0, 1):  # underline the best score of each task
            if scores[r, j] == scores[:, j].max():
                ux = round(xs[3 + j]) + 4
                d.line([(ux, y + 15), (ux + round(text_width(vals[3 + j], 12)), y + 15)], fill=(0, 0, 0))
        y += 17
        d.line([(x, y), (x + w, y)], fill=(170, 170, 170), width=1)  # hairline between rows
    for xv in xs[1:-1]:
        d.line([(round(xv), y - 17 * len(rows) - 4 * len(rows) - 20), (round(xv), y)], fill=(170, 170, 170))
    d.line([(x, y + 1), (x + w, y + 1)], fill=(0, 0, 0), width=2)
    return y + 10


def _draw_tile_figure(d, x, y, w) -> int:
    """A small figure: an image split into a 3x2 grid of tiles plus a global thumbnail."""
    h = 200
    d.rectangle([x, y, x + w, y + h], outline=(120, 120, 120))
    gx, gy, gw, gh = x + 20, y + 20, 330, 160
    d.rectangle([gx, gy, gx + gw, gy + gh], fill=(225, 236, 248), outline=(40, 70, 120), width=2)
    for i in range(1, 3):
        d.line([(gx + i * gw // 3, gy), (gx + i * gw // 3, gy + gh)], fill=(40, 70, 120), width=1)
    d.line([(gx, gy + gh // 2), (gx + gw, gy + gh // 2)], fill=(40, 70, 120), width=1)
    for k in range(6):
        cx, cy = gx + (k % 3) * gw // 3 + 8, gy + (k // 3) * gh // 2 + 6
        draw_text(d, (cx, cy), f"tile {k + 1}", 11, (40, 70, 120))
    tx = gx + gw + 60
    d.line([(gx + gw + 8, gy + gh // 2), (tx - 8, gy + gh // 2)], fill=(80, 80, 80), width=1)
    d.polygon(
        [(tx - 8, gy + gh // 2 - 4), (tx - 8, gy + gh // 2 + 4), (tx - 2, gy + gh // 2)], fill=(80, 80, 80)
    )
    d.rectangle([tx, gy + 40, tx + 110, gy + 120], fill=(248, 230, 214), outline=(150, 80, 30), width=2)
    draw_text(d, (tx + 8, gy + 46), "global view", 11, (150, 80, 30))
    draw_text(d, (tx + 8, gy + 62), "336 x 336", 10, (150, 80, 30))
    cap = "Figure 1: A 3x2 grid of 336-pixel tiles plus one downsized global view (7 crops, 4,032 tokens)."
    return draw_paragraph(d, x, y + h + 8, cap, 12, w, 16, fill=(40, 40, 40), justify=False)


def draw_text_page() -> Image.Image:
    """1700x2200 page of small print: two columns, line numbers, a hairline table, a figure, footnotes."""
    rng = np.random.default_rng(20240501)
    W, H, M = 1700, 2200, 120
    im = Image.new("RGB", (W, H), (253, 252, 248))
    d = ImageDraw.Draw(im)
    grey = (110, 110, 110)
    draw_text(
        d, (M, 60), "Proceedings of the Workshop on Any-Resolution Vision, Vol. 3 (2024), pp. 17-29", 13, grey
    )
    draw_text(d, (W - M, 60), "17", 13, grey, anchor="ra")
    d.line([(M, 82), (W - M, 82)], fill=grey, width=1)
    title = "Tiles or Patches? Feeding Any-Resolution Images"
    draw_text(d, (W // 2, 120), title, 40, (10, 10, 10), True, "ma")
    draw_text(d, (W // 2, 172), "to Fixed-Size Vision Transformers", 40, (10, 10, 10), True, "ma")
    draw_text(
        d, (W // 2, 236), "A. Example(1),  B. Sample(1,2),  C. Placeholder(2)", 18, (30, 30, 30), anchor="ma"
    )
    draw_text(
        d,
        (W // 2, 262),
        "(1) Institute of Imaginary Vision   (2) Department of Synthetic Data",
        13,
        grey,
        anchor="ma",
    )
    y = 312
    draw_text(d, (W // 2, y), "Abstract", 17, (10, 10, 10), True, "ma")
    y = draw_paragraph(d, M + 80, y + 30, _sentences(rng, 6), 15, W - 2 * M - 160, 21)
    colw, gutter = (W - 2 * M - 40) // 2, 40
    top = y + 24
    # line numbers in the left margin: the smallest print on the page
    for i, ly in enumerate(range(top, H - 260, 19)):
        if i % 5 == 4:
            draw_text(d, (M - 14, ly + 2), str(i + 1), 9, (150, 150, 150), anchor="ra")
    footnote_y = H - 250
    for c in range(2):
        x = M + c * (colw + gutter)
        y = top
        sections = (
            ["1  Introduction", "2  Tiling and packing"] if c == 0 else ["3  Experiments", "4  Discussion"]
        )
        for s_i, head in enumerate(sections):
            draw_text(d, (x, y), head, 17, (10, 10, 10), bold=True)
            y += 30
            n_par = (
                3 if (c == 1 and s_i == 0) else (4 if s_i == 0 else 12)
            )  # the last section fills the column
            for p in range(n_par):
                if c == 0 and s_i == 1 and p == 1:
                    y = _draw_tile_figure(d, x, y + 6, colw) + 12
                if c == 1 and s_i == 0 and p == 1:
                    y = _draw_table(d, x, y + 6, colw, rng) + 14
                text = _sentences(rng, int(rng.integers(3, 6)))
                if c == 0 and s_i == 0 and p == 0:
                    text = text.replace(".", ".(1)", 1)
                if c == 1 and s_i == 1 and p == 0:
                    text = text.replace(".", ".(2)", 1)
                if y > footnote_y - 60:
                    break
                y = draw_paragraph(d, x, y, text, 14, colw, 19, indent=18 if p else 0,
                                   max_y=footnote_y - 30) + 6
            y += 12
    d.line([(M, footnote_y), (M + 300, footnote_y)], fill=(60, 60, 60), width=1)
    notes = [
        "(1) Token counts assume a 14-pixel patch and no token merging; a 2x2 pixel-shuffle divides by 4.",
        "(2) Padding waste is measured in pixels of the canvas that carry no image content, see Appendix B.",
        "Code and data: every image in this paper was generated deterministically; seeds are in Table 5.",
    ]
    for i, note in enumerate(notes):
        y = draw_paragraph(
            d, M, footnote_y + 12 + i * 22, note, 11, W - 2 * M, 15, fill=(50, 50, 50), justify=False
        )
    draw_text(d, (W // 2, H - 90), "- 17 -", 13, grey, anchor="ma")
    note = "Preprint. Under review. Do not distribute."
    draw_text(d, (W - M, H - 60), note, 10, (160, 160, 160), anchor="ra")
    return im


# ============================================================================================ panorama


_SERIES = [
    # name, colour, marker, tokens(side) for a square image of side `s` pixels (illustrative formulas)
    ("Fixed 336 (LLaVA-1.5 style)", (31, 119, 180), "o", lambda s: 576),
    (
        "AnyRes, up to 2x2 + global",
        (255, 127, 14),
        "s",
        lambda s: 576 * (1 + min(math.ceil(s / 336), 2) ** 2),
    ),
    # at most 12 tiles, but a square image keeps a square grid: 3x3 = 9 tiles, plus a thumbnail when tiled
    (
        "Dynamic 448 tiles (max 12) + thumbnail",
        (44, 160, 44),
        "^",
        lambda s: 256 * (min(math.ceil(s / 448), 3) ** 2 + (1 if s > 448 else 0)),
    ),
    ("Native patches (NaViT style, p=14)", (214, 39, 40), "d", lambda s: (s // 14) ** 2),
]


def _marker(d, x, y, kind, colour) -> None:
    r = 5
    if kind == "o":
        d.ellipse([x - r, y - r, x + r, y + r], fill=colour, outline=(255, 255, 255))
    elif kind == "s":
        d.rectangle([x - r + 1, y - r + 1, x + r - 1, y + r - 1], fill=colour, outline=(255, 255, 255))
    elif kind == "^":
        d.polygon(
            [(x, y - r - 1), (x - r, y + r - 1), (x + r, y + r - 1)], fill=colour, outline=(255, 255, 255)
        )
    else:
        d.polygon(
            [(x, y - r - 1), (x + r, y), (x, y + r + 1), (x - r, y)], fill=colour, outline=(255, 255, 255)
        )


def _chart_axes(im, d, X, Y, box, limits) -> None:
    """Gridlines, axes, ticks with 13-px labels and both axis titles."""
    px0, py0, px1, py1 = box
    xmin, xmax, ymin, ymax = limits
    for v in range(224, xmax + 1, 56):  # minor vertical gridlines
        d.line([(round(X(v)), py0), (round(X(v)), py1)], fill=(242, 242, 242) if v % 224 else (215, 215, 215))
    for v in range(0, ymax + 1, 500):
        d.line(
            [(px0, round(Y(v))), (px1, round(Y(v)))], fill=(242, 242, 242) if v % 2500 else (215, 215, 215)
        )
    d.line([(px0, py1), (px1, py1)], fill=(40, 40, 40), width=2)
    d.line([(px0, py0), (px0, py1)], fill=(40, 40, 40), width=2)
    for v in range(224, xmax + 1, 112):
        major = v % 224 == 0
        d.line([(round(X(v)), py1), (round(X(v)), py1 + (8 if major else 4))], fill=(40, 40, 40))
        if major:
            draw_text(d, (round(X(v)), py1 + 12), str(v), 13, (60, 60, 60), anchor="ma")
    for v in range(0, ymax + 1, 2500):
        d.line([(px0 - 8, round(Y(v))), (px0, round(Y(v)))], fill=(40, 40, 40))
        draw_text(d, (px0 - 12, round(Y(v))), f"{v:,}", 13, (60, 60, 60), anchor="rm")
    draw_text(d, ((px0 + px1) // 2, py1 + 44), "image side length (pixels)", 17, (30, 30, 30), anchor="ma")
    ytitle = rotated_text("vision tokens per image", 17, (30, 30, 30), (255, 255, 255))
    im.paste(ytitle, (px0 - 120, (py0 + py1) // 2 - ytitle.height // 2))


def _chart_notes(d, X, Y) -> None:
    """Annotations with thin leader lines."""
    notes = [
        (336, 576, (-10, -110), "336 px: one CLIP tile = 576 tokens"),
        (1456, 2560, (-60, -190), "square image: 3x3 tiles (12 would not be square) + thumbnail = 2,560"),
        (1008, 2880, (-80, -120), "AnyRes saturates at 2x2 tiles + global = 2,880"),
        (1680, 14400, (-330, -60), "(1680/14)^2 = 14,400 patches"),
    ]
    for sx, sy, (dx, dy), text in notes:
        x, y = round(X(sx)), round(Y(sy))
        tx, ty = x + dx, y + dy
        d.line([(x, y), (tx, ty)], fill=(90, 90, 90), width=1)
        d.ellipse([x - 3, y - 3, x + 3, y + 3], outline=(90, 90, 90))
        tw = text_width(text, 12)
        d.rectangle([tx - 4, ty - 3, tx + tw + 4, ty + 15], fill=(255, 255, 240), outline=(190, 190, 150))
        draw_text(d, (tx, ty), text, 12, (50, 50, 50))


def _chart_legend(d) -> None:
    """The legend, and under it a small table of the exact values at a few sizes."""
    lx, ly = 1520, 150
    d.rectangle(
        [lx, ly, lx + 370, ly + 34 + 30 * len(_SERIES)], outline=(180, 180, 180), fill=(252, 252, 252)
    )
    draw_text(d, (lx + 14, ly + 10), "Strategy", 14, (30, 30, 30), bold=True)
    for i, (name, colour, marker, _) in enumerate(_SERIES):
        yy = ly + 44 + 30 * i
        d.line([(lx + 14, yy), (lx + 54, yy)], fill=colour, width=2)
        _marker(d, lx + 34, yy, marker, colour)
        draw_text(d, (lx + 64, yy), name, 13, (40, 40, 40), anchor="lm")
    ty = ly + 34 + 30 * len(_SERIES) + 40
    draw_text(d, (lx, ty), "Tokens at selected sizes", 13, (30, 30, 30), bold=True)
    ty += 24
    cols = [224, 672, 1344, 2016]
    for j, c in enumerate(cols):
        draw_text(d, (lx + 150 + 56 * j, ty), str(c), 11, (90, 90, 90), anchor="ra")
    d.line([(lx, ty + 16), (lx + 370, ty + 16)], fill=(200, 200, 200))
    for i, (name, colour, _, fn) in enumerate(_SERIES):
        yy = ty + 22 + 18 * i
        draw_text(d, (lx, yy), name.split(" (")[0].split(",")[0], 11, colour)
        for j, c in enumerate(cols):
            draw_text(d, (lx + 150 + 56 * j + 30, yy), f"{fn(c):,}", 11, (40, 40, 40), anchor="ra")


def draw_chart() -> Image.Image:
    """1920x1080 line chart: 13-px tick labels, 1-px gridlines, a legend, small annotations and a footnote."""
    W, H = 1920, 1080
    im = Image.new("RGB", (W, H), (255, 255, 255))
    d = ImageDraw.Draw(im)
    draw_text(d, (80, 36), "Vision tokens per image vs. input resolution", 30, (20, 20, 20), bold=True)
    draw_text(
        d,
        (80, 80),
        "Square images; how many tokens each strategy sends to the language model (illustrative)",
        16,
        (100, 100, 100),
    )
    px0, py0, px1, py1 = 160, 140, 1480, 920  # plot area
    xmin, xmax, ymin, ymax = 112, 2016, 0, 21000
    X = lambda v: px0 + (v - xmin) / (xmax - xmin) * (px1 - px0)
    Y = lambda v: py1 - (v - ymin) / (ymax - ymin) * (py1 - py0)
    _chart_axes(im, d, X, Y, (px0, py0, px1, py1), (xmin, xmax, ymin, ymax))
    sides = list(range(224, xmax + 1, 112))
    for _name, colour, marker, fn in _SERIES:
        pts = [(round(X(s)), round(Y(min(fn(s), ymax)))) for s in sides]
        d.line(pts, fill=colour, width=2, joint="curve")
        for x, y in pts:
            _marker(d, x, y, marker, colour)
    _chart_notes(d, X, Y)
    _chart_legend(d)
    foot = (
        "Token counts are computed from simple formulas for square images (patch 14, 576 tokens per 336-px "
        "tile, 256 per 448-px tile after pixel shuffle); real systems differ in details. Values above 21,000 "
        "are clipped."
    )
    draw_paragraph(d, 80, 1000, foot, 12, 1400, 17, fill=(120, 120, 120), justify=False)
    draw_text(
        d,
        (W - 30, H - 24),
        "Source: anyres_tutorial.data (synthetic chart)",
        10,
        (160, 160, 160),
        anchor="ra",
    )
    return im


# ============================================================================================ icon and strip
