"""Drawing helpers shared by the synthetic images: the built-in font, text, word wrap, gradients, noise.

Part of :mod:`anyres_tutorial.synthetic`; taught in `setup_and_why_resolution`.
"""

from __future__ import annotations

import functools
import math

import numpy as np
from PIL import Image, ImageDraw, ImageFont, features


@functools.cache
def font(size: int) -> ImageFont.FreeTypeFont:
    """PIL's built-in Aileron font at ``size`` px: the same glyphs on every machine, no system fonts."""
    if not features.check("freetype2"):
        raise RuntimeError(
            "drawing the synthetic images needs Pillow built with FreeType (standard wheels are)"
        )
    return ImageFont.load_default(size=size)


def draw_text(
    d: ImageDraw.ImageDraw, xy, s: str, size: int, fill, bold: bool = False, anchor: str = "la"
) -> None:
    """Draw ``s`` at ``xy``; "bold" is faked with a 1-pixel stroke, since only one built-in face exists."""
    d.text(xy, s, font=font(size), fill=fill, anchor=anchor, stroke_width=1 if bold else 0, stroke_fill=fill)


def text_width(s: str, size: int) -> float:
    return font(size).getlength(s)


def wrap_words(text: str, size: int, width: float) -> list[list[str]]:
    """Greedy word wrap -> lines as lists of words."""
    lines, line = [], []
    for word in text.split():
        if line and text_width(" ".join(line + [word]), size) > width:
            lines.append(line)
            line = []
        line.append(word)
    if line:
        lines.append(line)
    return lines


def draw_paragraph(
    d, x, y, text, size, width, leading, fill=(20, 20, 20), justify=True, indent=0, max_y=None
) -> int:
    """Justified paragraph (last line ragged), cut at ``max_y``. Returns the y below it."""
    lines = wrap_words(text, size, width - indent)
    if max_y is not None:
        lines = lines[: max(0, (max_y - y) // leading)]
    for i, words in enumerate(lines):
        x0 = x + (indent if i == 0 else 0)
        avail = width - (indent if i == 0 else 0)
        if justify and i < len(lines) - 1 and len(words) > 1:
            gap = (avail - sum(text_width(w, size) for w in words)) / (len(words) - 1)
            cx = x0
            for w in words:
                draw_text(d, (round(cx), y), w, size, fill)
                cx += text_width(w, size) + gap
        else:
            draw_text(d, (x0, y), " ".join(words), size, fill)
        y += leading
    return y


def vertical_gradient(w: int, h: int, stops: list[tuple[float, tuple[int, int, int]]]) -> np.ndarray:
    """(h, w, 3) uint8 image blending colour ``stops`` [(t in 0..1, rgb), ...] from top to bottom."""
    t = np.linspace(0.0, 1.0, h)
    ts = [s[0] for s in stops]
    cols = np.array([s[1] for s in stops], np.float64)  # (S, 3)
    rgb = np.stack([np.interp(t, ts, cols[:, c]) for c in range(3)], axis=1)  # (h, 3)
    return np.repeat(np.rint(rgb)[:, None, :], w, axis=1).astype(np.uint8)


def rotated_text(s: str, size: int, fill, bg) -> Image.Image:
    """Text turned 90 degrees counter-clockwise (for a y-axis title)."""
    w, h = math.ceil(text_width(s, size)) + 4, size + 6
    im = Image.new("RGB", (w, h), bg)
    draw_text(ImageDraw.Draw(im), (2, 2), s, size, fill)
    return im.transpose(Image.Transpose.ROTATE_90)


# ============================================================================================ text page


def smooth_noise(rng, n: int, scale: int) -> np.ndarray:
    """1-D value noise: random values every ``scale`` samples, cosine-interpolated -> (n,) in [0, 1]."""
    knots = rng.random(n // scale + 2)
    t = np.arange(n) / scale
    i = t.astype(int)
    f = (1 - np.cos((t - i) * math.pi)) / 2
    return knots[i] * (1 - f) + knots[i + 1] * f
