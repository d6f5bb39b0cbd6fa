"""The curated images in ``data/``: names, paths, what each teaches, and the generator of the synthetic ones.

Taught in `setup_and_why_resolution` and used by every later notebook:

    from anyres_tutorial.data import list_images, load_data_image
    list_images()                       # ['astronaut', 'camera', ..., 'strip', 'text_page']
    img = load_data_image("text_page")  # RGB PIL image, 1700x2200, via images.load_image

Two kinds of file live in ``data/`` (``data/README.md`` has the full table with licences):

- real photos copied unchanged from scikit-image's data folder (public domain / CC0), and
- synthetic images that stress any-resolution handling: small print and one-pixel lines that downsampling to
  224 or 336 pixels destroys. They are drawn by :mod:`anyres_tutorial.synthetic` with PIL only (PIL's
  built-in font, never a system font), and the committed PNGs are exactly what ``render(name)`` draws.
  Regenerate them with::

      python -m anyres_tutorial.data            # writes data/<name>.png for every synthetic image
      python -m anyres_tutorial.data --check    # only compares the committed files with a fresh rendering

Sizes are (width, height) everywhere.
"""

from __future__ import annotations

import argparse
import sys
from dataclasses import dataclass
from pathlib import Path

import numpy as np
from PIL import Image

from . import DATA_DIR
from .images import load_image
from .synthetic import DRAW

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
    """Names of the curated images (sorted); ``kind`` = "photo" or "synthetic" filters. Taught in
    `setup_and_why_resolution`."""
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
    """Load a curated image as RGB with ``images.load_image`` (kwargs pass through). Taught in
    `setup_and_why_resolution`."""
    path = data_path(name)
    if not path.exists():
        hint = (
            " (run `python -m anyres_tutorial.data`)" if IMAGES[Path(path).stem].kind == "synthetic" else ""
        )
        raise FileNotFoundError(f"data image {name!r} is missing: {path}{hint}")
    return load_image(path, **kwargs)




def render(name: str) -> Image.Image:
    """Draw the synthetic image ``name`` in memory (deterministic: same pixels on every call); see
    `setup_and_why_resolution`."""
    d = _lookup(name)
    if d.kind != "synthetic":
        raise ValueError(f"{name!r} is a photo copied from scikit-image, not a synthetic image")
    im = DRAW[d.name]()
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
