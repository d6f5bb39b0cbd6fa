"""The curated images in ``data/``: names, paths, what each teaches, and the generator of the synthetic ones.

Taught in notebook 00 (why resolution matters) and used by every later notebook:

    from anyres_tutorial.data import list_images, load_data_image
    list_images()                       # ['astronaut', 'camera', ..., 'strip', 'text_page']
    img = load_data_image("text_page")  # RGB PIL image, 1700x2200, via images.load_image

Two kinds of file live in ``data/`` (``data/README.md`` has the full table with licences):

- real photos copied unchanged from scikit-image's data folder (public domain / CC0), and
- synthetic images that stress any-resolution handling: small print and one-pixel lines that downsampling to
  224 or 336 pixels destroys. They are drawn here with PIL only (numpy for gradients and seeded randomness,
  PIL's built-in font ``ImageFont.load_default(size=...)``, never a system font), and the committed PNGs are
  exactly what ``render(name)`` draws. Regenerate them with::

      python -m anyres_tutorial.data            # writes data/<name>.png for every synthetic image
      python -m anyres_tutorial.data --check    # only compares the committed files with a fresh rendering

Sizes are (width, height) everywhere.
"""

from __future__ import annotations

import argparse
import functools
import math
import sys
from dataclasses import dataclass
from pathlib import Path

import numpy as np
from PIL import Image, ImageDraw, ImageFont, features

from . import DATA_DIR
from .images import load_image

#: The library versions the committed synthetic PNGs were rendered with. FreeType's anti-aliasing can change
#: between versions, so ``tests/test_data.py`` demands pixel-identical output only when these match.
RENDERED_WITH = {"pillow": "13.0.0", "freetype2": "2.14.3"}


@dataclass(frozen=True)
class DataImage:
    """One file in ``data/``. ``size`` is (width, height)."""

    name: str
    filename: str
    size: tuple[int, int]
    kind: str  # "photo" (copied) or "synthetic" (drawn by render())
    source: str
    licence: str
    purpose: str


_SKIMAGE = "scikit-image `skimage/data/` (copied unchanged)"
_GENERATED_LICENCE = "MIT, like this repository"
IMAGES: dict[str, DataImage] = {
    d.name: d
    for d in [
        DataImage(
            "astronaut",
            "astronaut.png",
            (512, 512),
            "photo",
            _SKIMAGE + "; NASA photo of Eileen Collins",
            "public domain",
            "a square natural photo: the easy case every method handles",
        ),
        DataImage(
            "camera",
            "camera.png",
            (512, 512),
            "photo",
            _SKIMAGE + "; photo by Lav Varshney",
            "CC0",
            "a greyscale (mode L) photo: loading converts it to RGB",
        ),
        DataImage(
            "chelsea",
            "chelsea.png",
            (451, 300),
            "photo",
            _SKIMAGE + "; photo by Stefan van der Walt",
            "CC0",
            "a small 3:2 photo: upscaling and padding to a square",
        ),
        DataImage(
            "coffee",
            "coffee.png",
            (600, 400),
            "photo",
            _SKIMAGE + "; photo by Rachel Michetti",
            "CC0",
            "a 3:2 photo: aspect-ratio preserving grids vs. squashing",
        ),
        DataImage(
            "rocket",
            "rocket.jpg",
            (640, 427),
            "photo",
            _SKIMAGE + "; SpaceX photo of DSCOVR launch",
            "public domain",
            "a JPEG photo with a thin vertical subject",
        ),
        DataImage(
            "hubble_deep_field",
            "hubble_deep_field.jpg",
            (1000, 872),
            "photo",
            _SKIMAGE + "; NASA / Hubble eXtreme Deep Field",
            "public domain",
            "many tiny objects: what a single low-resolution view loses",
        ),
        DataImage(
            "text_page",
            "text_page.png",
            (1700, 2200),
            "synthetic",
            "drawn by `anyres_tutorial.data`",
            _GENERATED_LICENCE,
            "a dense page: small print, two columns, a thin-ruled table, footnotes",
        ),
        DataImage(
            "panorama",
            "panorama.png",
            (3000, 600),
            "synthetic",
            "drawn by `anyres_tutorial.data`",
            _GENERATED_LICENCE,
            "a 5:1 panorama: lit windows, cables, a small label; wide grids",
        ),
        DataImage(
            "phone_screenshot",
            "phone_screenshot.png",
            (600, 2400),
            "synthetic",
            "drawn by `anyres_tutorial.data`",
            _GENERATED_LICENCE,
            "a 1:4 scrolling chat screenshot: small text, icons; tall grids",
        ),
        DataImage(
            "chart",
            "chart.png",
            (1920, 1080),
            "synthetic",
            "drawn by `anyres_tutorial.data`",
            _GENERATED_LICENCE,
            "a 16:9 chart: tick labels, thin gridlines, legend, annotations",
        ),
        DataImage(
            "icon",
            "icon.png",
            (64, 48),
            "synthetic",
            "drawn by `anyres_tutorial.data`",
            _GENERATED_LICENCE,
            "a tiny RGBA icon: smaller than one tile, composited on white when loaded",
        ),
        DataImage(
            "strip",
            "strip.png",
            (20, 2000),
            "synthetic",
            "drawn by `anyres_tutorial.data`",
            _GENERATED_LICENCE,
            "a 1:100 ruler strip: the extreme aspect ratio every grid must survive",
        ),
    ]
}


def list_images(kind: str | None = None) -> list[str]:
    """Names of the curated images (sorted); ``kind`` = "photo" or "synthetic" filters. Notebook 00."""
    if kind not in (None, "photo", "synthetic"):
        raise ValueError(f"kind must be None, 'photo' or 'synthetic', got {kind!r}")
    return sorted(n for n, d in IMAGES.items() if kind is None or d.kind == kind)


def _lookup(name: str) -> DataImage:
    if not isinstance(name, str):
        raise TypeError(f"image name must be a str, got {type(name).__name__}")
    key = Path(name).stem if name.endswith((".png", ".jpg")) else name
    if key not in IMAGES:
        raise ValueError(f"unknown data image {name!r}; available: {', '.join(list_images())}")
    return IMAGES[key]


def data_path(name: str, data_dir: str | Path | None = None) -> Path:
    """Path of a curated image (``name`` with or without extension) in ``data_dir`` (default ``DATA_DIR``)."""
    return Path(DATA_DIR if data_dir is None else data_dir) / _lookup(name).filename


def load_data_image(name: str, **kwargs) -> Image.Image:
    """Load a curated image as RGB with ``images.load_image`` (kwargs pass through). Notebook 00."""
    path = data_path(name)
    if not path.exists():
        hint = (
            " (run `python -m anyres_tutorial.data`)" if IMAGES[Path(path).stem].kind == "synthetic" else ""
        )
        raise FileNotFoundError(f"data image {name!r} is missing: {path}{hint}")
    return load_image(path, **kwargs)


# ============================================================================================ drawing helpers


@functools.cache
def font(size: int) -> ImageFont.FreeTypeFont:
    """PIL's built-in Aileron font at ``size`` px: the same glyphs on every machine, no system fonts."""
    if not features.check("freetype2"):
        raise RuntimeError(
            "drawing the synthetic images needs Pillow built with FreeType (standard wheels are)"
        )
    return ImageFont.load_default(size=size)


def _text(
    d: ImageDraw.ImageDraw, xy, s: str, size: int, fill, bold: bool = False, anchor: str = "la"
) -> None:
    """Draw ``s`` at ``xy``; "bold" is faked with a 1-pixel stroke, since only one built-in face exists."""
    d.text(xy, s, font=font(size), fill=fill, anchor=anchor, stroke_width=1 if bold else 0, stroke_fill=fill)


def _width(s: str, size: int) -> float:
    return font(size).getlength(s)


def _wrap(text: str, size: int, width: float) -> list[list[str]]:
    """Greedy word wrap -> lines as lists of words."""
    lines, line = [], []
    for word in text.split():
        if line and _width(" ".join(line + [word]), size) > width:
            lines.append(line)
            line = []
        line.append(word)
    if line:
        lines.append(line)
    return lines


def _paragraph(
    d, x, y, text, size, width, leading, fill=(20, 20, 20), justify=True, indent=0, max_y=None
) -> int:
    """Justified paragraph (last line ragged), cut at ``max_y``. Returns the y below it."""
    lines = _wrap(text, size, width - indent)
    if max_y is not None:
        lines = lines[: max(0, (max_y - y) // leading)]
    for i, words in enumerate(lines):
        x0 = x + (indent if i == 0 else 0)
        avail = width - (indent if i == 0 else 0)
        if justify and i < len(lines) - 1 and len(words) > 1:
            gap = (avail - sum(_width(w, size) for w in words)) / (len(words) - 1)
            cx = x0
            for w in words:
                _text(d, (round(cx), y), w, size, fill)
                cx += _width(w, size) + gap
        else:
            _text(d, (x0, y), " ".join(words), size, fill)
        y += leading
    return y


def _vertical_gradient(w: int, h: int, stops: list[tuple[float, tuple[int, int, int]]]) -> np.ndarray:
    """(h, w, 3) uint8 image blending colour ``stops`` [(t in 0..1, rgb), ...] from top to bottom."""
    t = np.linspace(0.0, 1.0, h)
    ts = [s[0] for s in stops]
    cols = np.array([s[1] for s in stops], np.float64)  # (S, 3)
    rgb = np.stack([np.interp(t, ts, cols[:, c]) for c in range(3)], axis=1)  # (h, 3)
    return np.repeat(np.rint(rgb)[:, None, :], w, axis=1).astype(np.uint8)


def _rotated_text(s: str, size: int, fill, bg) -> Image.Image:
    """Text turned 90 degrees counter-clockwise (for a y-axis title)."""
    w, h = math.ceil(_width(s, size)) + 4, size + 6
    im = Image.new("RGB", (w, h), bg)
    _text(ImageDraw.Draw(im), (2, 2), s, size, fill)
    return im.transpose(Image.Transpose.ROTATE_90)


# ============================================================================================ text page

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
    _text(
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
        _text(d, (round(xs[i]) + 4, y), c, 12, (0, 0, 0), bold=True)
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
            _text(d, (round(xs[i]) + 4, y), v, 12, (25, 25, 25))
        for j in (0, 1):  # underline the best score of each task
            if scores[r, j] == scores[:, j].max():
                ux = round(xs[3 + j]) + 4
                d.line([(ux, y + 15), (ux + round(_width(vals[3 + j], 12)), y + 15)], fill=(0, 0, 0))
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
        _text(d, (cx, cy), f"tile {k + 1}", 11, (40, 70, 120))
    tx = gx + gw + 60
    d.line([(gx + gw + 8, gy + gh // 2), (tx - 8, gy + gh // 2)], fill=(80, 80, 80), width=1)
    d.polygon(
        [(tx - 8, gy + gh // 2 - 4), (tx - 8, gy + gh // 2 + 4), (tx - 2, gy + gh // 2)], fill=(80, 80, 80)
    )
    d.rectangle([tx, gy + 40, tx + 110, gy + 120], fill=(248, 230, 214), outline=(150, 80, 30), width=2)
    _text(d, (tx + 8, gy + 46), "global view", 11, (150, 80, 30))
    _text(d, (tx + 8, gy + 62), "336 x 336", 10, (150, 80, 30))
    cap = "Figure 1: A 3x2 grid of 336-pixel tiles plus one downsized global view (7 crops, 4,032 tokens)."
    return _paragraph(d, x, y + h + 8, cap, 12, w, 16, fill=(40, 40, 40), justify=False)


def draw_text_page() -> Image.Image:
    """1700x2200 page of small print: two columns, line numbers, a hairline table, a figure, footnotes."""
    rng = np.random.default_rng(20240501)
    W, H, M = 1700, 2200, 120
    im = Image.new("RGB", (W, H), (253, 252, 248))
    d = ImageDraw.Draw(im)
    grey = (110, 110, 110)
    _text(
        d, (M, 60), "Proceedings of the Workshop on Any-Resolution Vision, Vol. 3 (2024), pp. 17-29", 13, grey
    )
    _text(d, (W - M, 60), "17", 13, grey, anchor="ra")
    d.line([(M, 82), (W - M, 82)], fill=grey, width=1)
    _text(d, (W // 2, 120), "Tiles or Patches? Feeding Any-Resolution Images", 40, (10, 10, 10), True, "ma")
    _text(d, (W // 2, 172), "to Fixed-Size Vision Transformers", 40, (10, 10, 10), True, "ma")
    _text(
        d, (W // 2, 236), "A. Example(1),  B. Sample(1,2),  C. Placeholder(2)", 18, (30, 30, 30), anchor="ma"
    )
    _text(
        d,
        (W // 2, 262),
        "(1) Institute of Imaginary Vision   (2) Department of Synthetic Data",
        13,
        grey,
        anchor="ma",
    )
    y = 312
    _text(d, (W // 2, y), "Abstract", 17, (10, 10, 10), True, "ma")
    y = _paragraph(d, M + 80, y + 30, _sentences(rng, 6), 15, W - 2 * M - 160, 21)
    colw, gutter = (W - 2 * M - 40) // 2, 40
    top = y + 24
    # line numbers in the left margin: the smallest print on the page
    for i, ly in enumerate(range(top, H - 260, 19)):
        if i % 5 == 4:
            _text(d, (M - 14, ly + 2), str(i + 1), 9, (150, 150, 150), anchor="ra")
    footnote_y = H - 250
    for c in range(2):
        x = M + c * (colw + gutter)
        y = top
        sections = (
            ["1  Introduction", "2  Tiling and packing"] if c == 0 else ["3  Experiments", "4  Discussion"]
        )
        for s_i, head in enumerate(sections):
            _text(d, (x, y), head, 17, (10, 10, 10), bold=True)
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
                y = _paragraph(d, x, y, text, 14, colw, 19, indent=18 if p else 0, max_y=footnote_y - 30) + 6
            y += 12
    d.line([(M, footnote_y), (M + 300, footnote_y)], fill=(60, 60, 60), width=1)
    notes = [
        "(1) Token counts assume a 14-pixel patch and no token merging; a 2x2 pixel-shuffle divides by 4.",
        "(2) Padding waste is measured in pixels of the canvas that carry no image content, see Appendix B.",
        "Code and data: every image in this paper was generated deterministically; seeds are in Table 5.",
    ]
    for i, note in enumerate(notes):
        y = _paragraph(
            d, M, footnote_y + 12 + i * 22, note, 11, W - 2 * M, 15, fill=(50, 50, 50), justify=False
        )
    _text(d, (W // 2, H - 90), "- 17 -", 13, grey, anchor="ma")
    _text(d, (W - M, H - 60), "Preprint. Under review. Do not distribute.", 10, (160, 160, 160), anchor="ra")
    return im


# ============================================================================================ panorama


def _smooth_noise(rng, n: int, scale: int) -> np.ndarray:
    """1-D value noise: random values every ``scale`` samples, cosine-interpolated -> (n,) in [0, 1]."""
    knots = rng.random(n // scale + 2)
    t = np.arange(n) / scale
    i = t.astype(int)
    f = (1 - np.cos((t - i) * math.pi)) / 2
    return knots[i] * (1 - f) + knots[i + 1] * f


def draw_panorama() -> Image.Image:
    """3000x600 harbour at dusk: mountains, a skyline with tiny windows, a suspension bridge, a label."""
    rng = np.random.default_rng(3000600)
    W, H, horizon = 3000, 600, 470
    sky = _vertical_gradient(
        W, horizon, [(0, (22, 36, 82)), (0.55, (92, 88, 150)), (0.85, (236, 150, 110)), (1, (250, 196, 130))]
    )
    water = _vertical_gradient(W, H - horizon, [(0, (70, 70, 110)), (1, (16, 22, 48))])
    im = Image.fromarray(np.concatenate([sky, water], axis=0))
    d = ImageDraw.Draw(im)
    d.ellipse([2330, 150, 2410, 230], fill=(255, 214, 150))  # low sun, half behind the mountains
    for _ in range(60):  # a few stars high up
        x, y = int(rng.integers(0, W)), int(rng.integers(0, 120))
        d.point((x, y), fill=(230, 230, 255))
    # two mountain ranges, far (hazy) and near
    xs = np.arange(W)
    for base, amp, scale, col in [(330, 150, 260, (120, 110, 160)), (380, 110, 140, (80, 76, 120))]:
        ridge = base - amp * (0.6 * _smooth_noise(rng, W, scale) + 0.4 * _smooth_noise(rng, W, scale // 4))
        d.polygon(
            [(0, horizon)] + [(int(x), int(r)) for x, r in zip(xs[::4], ridge[::4])] + [(W - 1, horizon)],
            fill=col,
        )
    # the skyline: buildings with grids of tiny windows, antennas, a crane
    x = 40
    while x < 1900:
        bw = int(rng.integers(30, 90))
        bh = int(rng.integers(60, 260 if 600 < x < 1300 else 160))
        top = horizon - bh
        shade = int(rng.integers(28, 52))
        d.rectangle([x, top, x + bw, horizon], fill=(shade, shade, shade + 18))
        for wy in range(top + 6, horizon - 6, 7):
            for wx in range(x + 4, x + bw - 4, 6):
                if rng.random() < 0.42:
                    d.rectangle(
                        [wx, wy, wx + 2, wy + 3],
                        fill=(255, 220, 140) if rng.random() < 0.8 else (180, 220, 255),
                    )
        if rng.random() < 0.3:
            ax = x + bw // 2
            d.line([(ax, top), (ax, top - int(rng.integers(15, 60)))], fill=(30, 30, 40), width=1)
            d.point((ax, top - 1), fill=(255, 60, 60))
        x += bw + int(rng.integers(2, 14))
    # a lattice crane
    cx, ctop = 1480, 150
    d.line([(cx, horizon), (cx, ctop - 30)], fill=(240, 170, 40), width=3)
    d.line([(cx - 80, ctop + 10), (cx + 260, ctop + 10)], fill=(240, 170, 40), width=2)
    d.line([(cx - 80, ctop + 18), (cx + 260, ctop + 18)], fill=(240, 170, 40), width=1)
    for k in range(-80, 260, 10):
        d.line([(cx + k, ctop + 10), (cx + k + 5, ctop + 18)], fill=(240, 170, 40), width=1)
    d.line([(cx, ctop - 30), (cx + 260, ctop + 10)], fill=(60, 60, 60), width=1)
    d.line([(cx + 200, ctop + 18), (cx + 200, ctop + 120)], fill=(60, 60, 60), width=1)
    # a hotel sign: tiny text on a building
    d.rectangle([905, horizon - 300, 1005, horizon], fill=(46, 46, 66))
    for wy in range(horizon - 270, horizon - 8, 9):
        for wx in range(911, 998, 7):
            if rng.random() < 0.5:
                d.rectangle([wx, wy, wx + 3, wy + 4], fill=(255, 236, 190))
    d.rectangle([912, horizon - 296, 998, horizon - 282], fill=(20, 20, 30))
    _text(d, (955, horizon - 295), "HOTEL MARINA", 10, (255, 90, 120), anchor="ma")
    # a suspension bridge: two towers, catenary main cables and 1-pixel hangers every 8 pixels
    deck_y, t1, t2 = horizon - 40, 2000, 2700
    d.rectangle([1900, deck_y, W, deck_y + 6], fill=(50, 50, 64))
    for tx in (t1, t2):
        d.rectangle([tx - 6, deck_y - 170, tx + 6, horizon + 30], fill=(150, 60, 50))
        d.line([(tx - 6, deck_y - 120), (tx + 6, deck_y - 120)], fill=(90, 40, 40), width=2)

    def cable(x0, x1, sag):
        pts = []
        for xx in range(x0, x1 + 1, 4):
            u = (xx - x0) / (x1 - x0)
            pts.append((xx, deck_y - 170 + sag * 4 * u * (1 - u)))
        return pts

    main = cable(t1, t2, 150)
    d.line(main, fill=(200, 90, 70), width=2)
    d.line([(1900, deck_y - 20), (t1, deck_y - 170)], fill=(200, 90, 70), width=2)  # side spans
    d.line([(t2, deck_y - 170), (W - 1, deck_y - 30)], fill=(200, 90, 70), width=2)
    for xx, yy in main[::2]:
        if yy < deck_y - 3:
            d.line([(xx, yy + 1), (xx, deck_y)], fill=(170, 90, 80), width=1)
    # reflections: broken horizontal streaks under lit areas
    arr = np.asarray(im).copy()
    for y in range(horizon + 4, H, 3):
        src = arr[2 * horizon - y - 1] if 2 * horizon - y - 1 > 0 else arr[0]
        mask = (src.astype(int).sum(axis=1) > 500) & (rng.random(W) < 0.35)
        arr[y, mask] = (arr[y, mask].astype(int) * 0.4 + src[mask].astype(int) * 0.6).astype(np.uint8)
    im = Image.fromarray(arr)
    d = ImageDraw.Draw(im)
    for _ in range(14):  # gulls: tiny 1-pixel "v"s
        bx, by = 2300 + int(rng.integers(0, 500)), 120 + int(rng.integers(0, 120))
        d.line([(bx - 3, by - 2), (bx, by), (bx + 3, by - 2)], fill=(40, 40, 60), width=1)
    # a small boat with a name on its hull
    d.polygon([(560, 520), (680, 520), (665, 540), (575, 540)], fill=(230, 230, 235))
    d.line([(610, 520), (610, 470)], fill=(220, 220, 220), width=1)
    d.polygon([(612, 472), (612, 516), (650, 516)], fill=(240, 240, 245))
    _text(d, (620, 527), "ASTRID", 9, (30, 40, 90), anchor="ma")
    # the label, bottom right
    label = "Harbour at dusk  |  synthetic panorama 3000 x 600  |  anyres_tutorial"
    lw = math.ceil(_width(label, 12))
    d.rectangle([W - lw - 30, H - 32, W - 10, H - 10], fill=(10, 14, 30))
    _text(d, (W - lw - 20, H - 28), label, 12, (235, 235, 235))
    return im


# ======================================================================================== phone screenshot

_CHAT = [
    ("day", "Tuesday 14 May"),
    ("in", "Hey! Are you still coming to the any-resolution workshop tomorrow?"),
    ("out", "Yes, just booked the train. It leaves at 14:07 from platform 3B."),
    ("in", "Great. Room is B-214, second floor, left after the coffee machine."),
    ("out", "Do I need a badge?"),
    ("in", "Registration code is XK-4471-QZ. Show it at the desk, they print the badge."),
    ("out", "Perfect, thanks. Slides: tiling vs packing, 25 min + 5 min questions."),
    ("link", "Programme, rooms and timings (PDF, 2.4 MB)|anyres-workshop.example.org/schedule"),
    ("in", "Can you bring the receipt for the hotel? Finance wants it by Friday."),
    (
        "receipt",
        "Hotel Marina, Harbour St. 3|2 nights x 89.00;178.00|City tax 2 x 2.50;5.00|Total EUR;183.00",
    ),
    ("out", "Here it is. Invoice no. 2024-05-0193."),
    ("day", "Wednesday 15 May"),
    ("in", "Morning! The Wi-Fi password is on the whiteboard: tiles&patches_336"),
    ("out", "Ha, of course it is."),
    ("in", "Projector takes HDMI or USB-C. Adapter is in drawer 4, the key is taped under it."),
    ("out", "My laptop says 3024 x 1964, will the slides fit?"),
    ("in", "It's 1920 x 1080. Same problem as your talk: resize, pad or tile :)"),
    ("out", "I'll pad. Never squash a chart."),
    ("in", "Dinner after? The place on Harbour St. 12 has a table for 6 at 19:30."),
    ("out", "Count me in. I'm vegetarian, can you tell them?"),
    ("in", "Done. Their menu: soup 6.50, risotto 14.00, tart 5.80."),
    ("day", "Today 09:12"),
    ("in", "Thanks for the talk! Can you share the notebook? Someone asked about the 20 x 2000 strip."),
    ("out", "Sure, it's in the repo. The strip needs a 1 x 8 grid, not 3 x 3."),
    ("in", "And the token counts? 2,880 vs 3,328 was the number on slide 17?"),
    ("out", "Yes. 2x2 + global for AnyRes, 12 tiles + thumbnail for the dynamic one."),
    ("in", "Got it. Train back is 17:52, coach 6, seat 45."),
    ("out", "See you at the station!"),
    ("in", "Safe travels! Send me the QR code."),
]


def _status_bar(d, W) -> None:
    _text(d, (28, 10), "9:41", 16, (0, 0, 0), bold=True)
    _text(d, (462, 12), "87%", 11, (0, 0, 0), anchor="ra")
    for i in range(4):  # signal bars
        h = 4 + 3 * i
        d.rectangle([470 + 6 * i, 24 - h, 473 + 6 * i, 24], fill=(0, 0, 0))
    for r in (4, 8, 12):  # wifi arcs
        d.arc([510 - r, 25 - r, 510 + r, 25 + r], 225, 315, fill=(0, 0, 0), width=2)
    d.rounded_rectangle([530, 11, 566, 25], radius=4, outline=(0, 0, 0), width=1)  # battery
    d.rectangle([532, 13, 561, 23], fill=(0, 0, 0))
    d.rectangle([567, 15, 569, 21], fill=(0, 0, 0))


def draw_phone_screenshot() -> Image.Image:
    """600x2400 scrolling chat screenshot: status bar, header, bubbles of small text, a receipt, input bar."""
    W, H = 600, 2400
    im = Image.new("RGB", (W, H), (255, 255, 255))
    d = ImageDraw.Draw(im)
    _status_bar(d, W)
    # header
    d.rectangle([0, 36, W, 108], fill=(247, 247, 249))
    d.line([(0, 108), (W, 108)], fill=(210, 210, 215))
    d.line([(22, 72), (32, 62)], fill=(10, 132, 255), width=3)
    d.line([(22, 72), (32, 82)], fill=(10, 132, 255), width=3)
    d.ellipse([52, 48, 100, 96], fill=(160, 120, 220))
    _text(d, (76, 72), "MK", 16, (255, 255, 255), True, "mm")
    _text(d, (114, 52), "Maya Kowalski", 18, (0, 0, 0), bold=True)
    _text(d, (114, 78), "online", 12, (52, 168, 83))
    d.rounded_rectangle([470, 60, 500, 82], radius=4, outline=(10, 132, 255), width=2)  # video icon
    d.polygon([(502, 71), (512, 63), (512, 79)], fill=(10, 132, 255))
    d.ellipse([540, 58, 566, 84], outline=(10, 132, 255), width=2)  # info icon
    _text(d, (553, 71), "i", 15, (10, 132, 255), True, "mm")
    y, minute, bottom = 128, 9 * 60 + 2, H - 100
    pad, maxw, size, lead = 12, 380, 15, 20
    for k, (who, text) in enumerate(_CHAT):
        minute += 3 + (k * 7) % 11
        if who == "day":
            lw = _width(text, 11)
            d.rounded_rectangle(
                [W / 2 - lw / 2 - 10, y, W / 2 + lw / 2 + 10, y + 20], radius=10, fill=(235, 235, 240)
            )
            _text(d, (W // 2, y + 4), text, 11, (110, 110, 115), anchor="ma")
            y, minute = y + 34, (9 * 60 + 9 if text.startswith("Today") else 8 * 60 + 40 + k % 20)
            continue
        if who == "link":  # a link preview card with a thumbnail
            title, url = text.split("|")
            x0 = W - 16 - maxw
            if y + 150 > bottom:
                break
            d.rounded_rectangle([x0, y, W - 16, y + 150], radius=14, fill=(233, 233, 235))
            thumb = _vertical_gradient(maxw - 2, 80, [(0, (120, 170, 230)), (1, (30, 80, 160))])
            im.paste(Image.fromarray(thumb), (x0 + 1, y + 1))
            for gx in range(x0 + 20, W - 30, 24):  # a tiny grid drawn on the preview image
                d.line([(gx, y + 12), (gx, y + 70)], fill=(200, 220, 250), width=1)
            _text(d, (x0 + 12, y + 90), title, 13, (0, 0, 0), bold=True)
            _text(d, (x0 + 12, y + 112), url, 11, (100, 100, 105))
            y += 150 + 18
            continue
        if who == "receipt":  # a photographed receipt: the smallest digits in the screenshot
            head, *items = text.split("|")
            x0, bw, bh = 16, maxw, 48 + 18 * len(items)
            if y + bh > bottom:
                break
            d.rounded_rectangle([x0, y, x0 + bw, y + bh], radius=14, fill=(233, 233, 235))
            d.rectangle(
                [x0 + 12, y + 12, x0 + bw - 12, y + bh - 12], fill=(255, 255, 255), outline=(190, 190, 190)
            )
            _text(d, (x0 + bw // 2, y + 16), head, 11, (40, 40, 40), bold=True, anchor="ma")
            for i, item in enumerate(items):
                left, right = item.split(";")
                iy = y + 34 + 18 * i
                last = i == len(items) - 1
                if last:
                    d.line([(x0 + 20, iy - 2), (x0 + bw - 20, iy - 2)], fill=(120, 120, 120))
                _text(d, (x0 + 20, iy), left, 11, (40, 40, 40), bold=last)
                _text(d, (x0 + bw - 20, iy), right, 11, (40, 40, 40), bold=last, anchor="ra")
            y += bh + 18
            continue
        lines = _wrap(text, size, maxw - 2 * pad)
        bw = max(_width(" ".join(ln), size) for ln in lines) + 2 * pad
        bh = len(lines) * lead + 2 * pad - 4
        if y + bh + 20 > bottom:
            break
        out = who == "out"
        x0 = W - 16 - bw if out else 16
        d.rounded_rectangle(
            [x0, y, x0 + bw, y + bh], radius=16, fill=(10, 132, 255) if out else (233, 233, 235)
        )
        for i, ln in enumerate(lines):
            _text(
                d,
                (x0 + pad, y + pad - 2 + i * lead),
                " ".join(ln),
                size,
                (255, 255, 255) if out else (0, 0, 0),
            )
        stamp = f"{minute // 60 % 24:02d}:{minute % 60:02d}" + ("  Read" if out and k % 3 == 0 else "")
        _text(
            d,
            (x0 + bw if out else x0 + 4, y + bh + 3),
            stamp,
            10,
            (140, 140, 145),
            anchor="ra" if out else "la",
        )
        y += bh + 22
    # input bar and home indicator
    d.rectangle([0, H - 84, W, H], fill=(247, 247, 249))
    d.line([(0, H - 84), (W, H - 84)], fill=(210, 210, 215))
    d.ellipse([14, H - 70, 44, H - 40], fill=(225, 225, 230))
    _text(d, (29, H - 55), "+", 20, (110, 110, 115), anchor="mm")
    d.rounded_rectangle([56, H - 72, W - 60, H - 38], radius=17, outline=(200, 200, 205), width=1)
    _text(d, (72, H - 63), "iMessage", 14, (160, 160, 165))
    d.rounded_rectangle([W - 46, H - 68, W - 34, H - 50], radius=6, outline=(110, 110, 115), width=2)  # mic
    d.line([(W - 40, H - 50), (W - 40, H - 43)], fill=(110, 110, 115), width=2)
    d.rounded_rectangle([W // 2 - 70, H - 14, W // 2 + 70, H - 9], radius=3, fill=(0, 0, 0))
    return im


# ============================================================================================ chart

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


def draw_chart() -> Image.Image:
    """1920x1080 line chart: 13-px tick labels, 1-px gridlines, a legend, small annotations and a footnote."""
    W, H = 1920, 1080
    im = Image.new("RGB", (W, H), (255, 255, 255))
    d = ImageDraw.Draw(im)
    _text(d, (80, 36), "Vision tokens per image vs. input resolution", 30, (20, 20, 20), bold=True)
    _text(
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
            _text(d, (round(X(v)), py1 + 12), str(v), 13, (60, 60, 60), anchor="ma")
    for v in range(0, ymax + 1, 2500):
        d.line([(px0 - 8, round(Y(v))), (px0, round(Y(v)))], fill=(40, 40, 40))
        _text(d, (px0 - 12, round(Y(v))), f"{v:,}", 13, (60, 60, 60), anchor="rm")
    _text(d, ((px0 + px1) // 2, py1 + 44), "image side length (pixels)", 17, (30, 30, 30), anchor="ma")
    ytitle = _rotated_text("vision tokens per image", 17, (30, 30, 30), (255, 255, 255))
    im.paste(ytitle, (px0 - 120, (py0 + py1) // 2 - ytitle.height // 2))
    sides = list(range(224, xmax + 1, 112))
    for _name, colour, marker, fn in _SERIES:
        pts = [(round(X(s)), round(Y(min(fn(s), ymax)))) for s in sides]
        d.line(pts, fill=colour, width=2, joint="curve")
        for x, y in pts:
            _marker(d, x, y, marker, colour)
    # annotations with thin leader lines
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
        tw = _width(text, 12)
        d.rectangle([tx - 4, ty - 3, tx + tw + 4, ty + 15], fill=(255, 255, 240), outline=(190, 190, 150))
        _text(d, (tx, ty), text, 12, (50, 50, 50))
    # legend
    lx, ly = 1520, 150
    d.rectangle(
        [lx, ly, lx + 370, ly + 34 + 30 * len(_SERIES)], outline=(180, 180, 180), fill=(252, 252, 252)
    )
    _text(d, (lx + 14, ly + 10), "Strategy", 14, (30, 30, 30), bold=True)
    for i, (name, colour, marker, _) in enumerate(_SERIES):
        yy = ly + 44 + 30 * i
        d.line([(lx + 14, yy), (lx + 54, yy)], fill=colour, width=2)
        _marker(d, lx + 34, yy, marker, colour)
        _text(d, (lx + 64, yy), name, 13, (40, 40, 40), anchor="lm")
    # a small data table under the legend: the exact values at a few sizes
    ty = ly + 34 + 30 * len(_SERIES) + 40
    _text(d, (lx, ty), "Tokens at selected sizes", 13, (30, 30, 30), bold=True)
    ty += 24
    cols = [224, 672, 1344, 2016]
    for j, c in enumerate(cols):
        _text(d, (lx + 150 + 56 * j, ty), str(c), 11, (90, 90, 90), anchor="ra")
    d.line([(lx, ty + 16), (lx + 370, ty + 16)], fill=(200, 200, 200))
    for i, (name, colour, _, fn) in enumerate(_SERIES):
        yy = ty + 22 + 18 * i
        _text(d, (lx, yy), name.split(" (")[0].split(",")[0], 11, colour)
        for j, c in enumerate(cols):
            _text(d, (lx + 150 + 56 * j + 30, yy), f"{fn(c):,}", 11, (40, 40, 40), anchor="ra")
    foot = (
        "Token counts are computed from simple formulas for square images (patch 14, 576 tokens per 336-px "
        "tile, 256 per 448-px tile after pixel shuffle); real systems differ in details. Values above 21,000 "
        "are clipped."
    )
    _paragraph(d, 80, 1000, foot, 12, 1400, 17, fill=(120, 120, 120), justify=False)
    _text(
        d,
        (W - 30, H - 24),
        "Source: anyres_tutorial.data (synthetic chart)",
        10,
        (160, 160, 160),
        anchor="ra",
    )
    return im


# ============================================================================================ icon and strip


def draw_icon() -> Image.Image:
    """64x48 RGBA 'photo' icon with transparent rounded corners and 1-pixel details."""
    W, H = 64, 48
    body = _vertical_gradient(W, H, [(0, (90, 170, 250)), (1, (30, 90, 200))])
    rgba = np.dstack([body, np.zeros((H, W), np.uint8)])
    mask = Image.new("L", (W, H), 0)
    ImageDraw.Draw(mask).rounded_rectangle([0, 0, W - 1, H - 1], radius=9, fill=255)
    rgba[..., 3] = np.asarray(mask)
    im = Image.fromarray(rgba)  # (H, W, 4) -> RGBA
    d = ImageDraw.Draw(im)
    d.rounded_rectangle([8, 8, W - 9, H - 9], radius=3, fill=(245, 248, 255, 255), outline=(20, 50, 120, 255))
    d.polygon([(10, 37), (24, 20), (33, 30), (40, 24), (54, 37)], fill=(60, 150, 90, 255))  # hills
    d.polygon([(24, 20), (27, 24), (21, 24)], fill=(255, 255, 255, 255))  # snow cap
    d.ellipse([44, 12, 51, 19], fill=(255, 190, 40, 255))  # sun
    d.rectangle([W - 15, 2, W - 5, 6], fill=(255, 255, 255, 200))  # a tiny shutter button
    return im


def draw_strip() -> Image.Image:
    """20x2000 ruler: a colour ramp, 1-pixel ticks every 10 px and tiny labels every 100 px."""
    W, H = 20, 2000
    stops = [
        (0, (68, 1, 84)),
        (0.25, (59, 82, 139)),
        (0.5, (33, 145, 140)),
        (0.75, (94, 201, 98)),
        (1, (253, 231, 37)),
    ]  # viridis-like ramp
    arr = np.full((H, W, 3), 255, np.uint8)
    arr[:, :6] = _vertical_gradient(6, H, stops)
    im = Image.fromarray(arr)
    d = ImageDraw.Draw(im)
    for y in range(0, H, 10):
        length = 12 if y % 100 == 0 else (7 if y % 50 == 0 else 3)
        d.line([(6, y), (6 + length, y)], fill=(0, 0, 0))
    for y in range(100, H, 100):
        _text(d, (19, y + 2), str(y // 100), 9, (0, 0, 0), anchor="ra")
    d.line([(W - 1, 0), (W - 1, H - 1)], fill=(120, 120, 120))
    return im


_DRAW = {
    "text_page": draw_text_page,
    "panorama": draw_panorama,
    "phone_screenshot": draw_phone_screenshot,
    "chart": draw_chart,
    "icon": draw_icon,
    "strip": draw_strip,
}


def render(name: str) -> Image.Image:
    """Draw the synthetic image ``name`` in memory (deterministic: same pixels on every call). Notebook 00."""
    d = _lookup(name)
    if d.kind != "synthetic":
        raise ValueError(f"{name!r} is a photo copied from scikit-image, not a synthetic image")
    im = _DRAW[d.name]()
    assert im.size == d.size, (name, im.size, d.size)
    return im


def generate(out_dir: str | Path | None = None, names: list[str] | None = None) -> list[Path]:
    """Render the synthetic images as PNGs in ``out_dir`` (default ``DATA_DIR``); returns the paths."""
    out = Path(DATA_DIR if out_dir is None else out_dir)
    out.mkdir(parents=True, exist_ok=True)
    paths = []
    for name in names or list_images("synthetic"):
        path = out / _lookup(name).filename
        render(name).save(path, "PNG", optimize=True)
        paths.append(path)
    return paths


def check(data_dir: str | Path | None = None, names: list[str] | None = None) -> list[str]:
    """Names of synthetic images whose file is missing or differs (in pixels) from a fresh ``render``."""
    bad = []
    for name in names or list_images("synthetic"):
        path = data_path(name, data_dir)
        if not path.exists():
            bad.append(name)
            continue
        with Image.open(path) as f:
            ref = f.convert(f.mode)
        new = render(name)
        if ref.mode != new.mode or not np.array_equal(np.asarray(ref), np.asarray(new)):
            bad.append(name)
    return bad


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(prog="python -m anyres_tutorial.data", description=__doc__.split("\n")[0])
    p.add_argument("--out", default=None, help="output folder (default: the package's data/ folder)")
    p.add_argument("--check", action="store_true", help="only compare committed files with a fresh rendering")
    args = p.parse_args(argv)
    if args.check:
        bad = check(args.out)
        print("all synthetic images match" if not bad else f"differ from a fresh rendering: {', '.join(bad)}")
        return 1 if bad else 0
    for path in generate(args.out):
        print(f"wrote {path} ({path.stat().st_size / 1e3:.0f} kB)")
    return 0


if __name__ == "__main__":
    sys.exit(main())
