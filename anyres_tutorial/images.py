"""Safe image loading: any file, bytes or stream in, one RGB ``PIL.Image`` out, or one clear error.

Taught in notebook `setup_and_why_resolution`; every other notebook loads its pictures with it.

    img = load_image("data/chart.png")            # path (str or pathlib.Path)
    img = load_image(open("x.jpg", "rb"))         # binary file object (read from its current position)
    img = load_image(raw_bytes)                   # bytes / bytearray / memoryview

:func:`load_image` checks the header before it decodes anything (format, size, pixel and aspect limits), then
decodes the first frame, applies the EXIF orientation and converts every supported pixel mode to 8-bit RGB
(its docstring lists the steps and the rules); :func:`image_info` reads the header only.

Every refusal is an ``ImageLoadError`` (a ``ValueError``) whose message names the source (the path,
``<bytes>`` or ``<file object ...>``) and the reason; ``err.source`` and ``err.reason`` hold both parts.
A source of the wrong type (int, str-mode file, PIL image, array, ...) is a ``TypeError``.

Sizes are (width, height) everywhere.
"""

from __future__ import annotations

import io
import os
import struct
import warnings
from pathlib import Path
from typing import BinaryIO, NamedTuple

import numpy as np
from PIL import Image, ImageOps, UnidentifiedImageError

from .checks import MAX_ASPECT

DEFAULT_MAX_PIXELS = 50_000_000
DEFAULT_MAX_ASPECT = float(MAX_ASPECT)
DEFAULT_BACKGROUND = (255, 255, 255)
#: PIL format names ``load_image`` accepts (multi-picture JPEGs, "MPO", come in through "JPEG"). Restricting
#: the list stops lenient plugins (TGA, ...) from "recognising" random bytes as an image, and EPS from
#: running Ghostscript. Formats this PIL build lacks (e.g. WEBP) are skipped.
ALLOWED_FORMATS = ("PNG", "JPEG", "GIF", "BMP", "DIB", "TIFF", "WEBP", "PPM", "ICO")

_MODES_16BIT = ("I;16", "I;16L", "I;16B", "I;16N")
_MODES_ALPHA = ("RGBA", "LA", "PA", "RGBa", "La")
_MODES_PLAIN = ("1", "L", "P", "RGB", "RGBX", "CMYK", "YCbCr", "HSV")


class ImageLoadError(ValueError):
    """An image could not be loaded safely. ``source`` names the input, ``reason`` says why."""

    def __init__(self, source: str, reason: str):
        super().__init__(f"cannot load image {source}: {reason}")
        self.source = source
        self.reason = reason


class ImageInfo(NamedTuple):
    """What the header says, without decoding pixels (see ``image_info``)."""

    size: tuple[int, int]  # (width, height) as load_image returns it, EXIF orientation applied
    stored_size: tuple[int, int]  # (width, height) as stored in the file
    mode: str  # PIL mode of the stored pixels, e.g. "RGB", "P", "I;16"
    format: str  # PIL format name, e.g. "PNG"
    orientation: int  # EXIF orientation tag, 1 (upright) when absent


# --------------------------------------------------------------------------------------------- sources


def _describe(source) -> str:
    if isinstance(source, (str, os.PathLike)):
        return repr(str(source))
    if isinstance(source, (bytes, bytearray, memoryview)):
        return "<bytes>"
    name = getattr(source, "name", None)
    return f"<file object {name!r}>" if isinstance(name, str) else "<file object>"


def _open_stream(source) -> tuple[BinaryIO, bool]:
    """Source -> (binary stream positioned at the image, whether we must close it). Raises TypeError."""
    if isinstance(source, bool) or isinstance(source, int):
        raise TypeError(f"load_image: source must be a path, bytes or a binary file object, got {source!r}")
    if isinstance(source, (str, os.PathLike)):
        path = Path(source)
        if not path.exists():
            raise ImageLoadError(_describe(source), "file not found")
        if path.is_dir():
            raise ImageLoadError(_describe(source), "is a directory, not an image file")
        try:
            return open(path, "rb"), True
        except OSError as e:
            raise ImageLoadError(_describe(source), f"cannot open file ({e.strerror or e})") from e
    if isinstance(source, (bytes, bytearray, memoryview)):
        return io.BytesIO(bytes(source)), True
    if isinstance(source, io.TextIOBase):
        raise TypeError("load_image: the file object is in text mode; open it in binary mode ('rb')")
    if hasattr(source, "read"):
        try:
            at_start = hasattr(source, "seekable") and source.seekable() and source.tell() == 0
            # PIL seeks to 0: buffer a non-seekable stream (pipe, socket) or one not at its start
            data = None if at_start else source.read()
        except (OSError, ValueError) as e:  # e.g. a closed file object
            raise ImageLoadError(_describe(source), f"cannot read ({type(e).__name__}: {e})") from e
        if data is not None:
            if isinstance(data, str):
                raise TypeError("load_image: the file object returns str; open it in binary mode ('rb')")
            return io.BytesIO(data), True
        return source, False
    if isinstance(source, Image.Image):
        raise TypeError("load_image: got a PIL image; pass its path or bytes, or use image.convert('RGB')")
    raise TypeError(
        f"load_image: source must be a path (str / Path), bytes or a binary file object, "
        f"got {type(source).__name__}"
    )


def _header_size(head: bytes) -> tuple[int, int] | None:
    """(width, height) from a PNG / GIF / BMP header, to explain why PIL refused it. None if unknown."""
    if head[:8] == b"\x89PNG\r\n\x1a\n" and head[12:16] == b"IHDR" and len(head) >= 24:
        return struct.unpack(">II", head[16:24])
    if head[:6] in (b"GIF87a", b"GIF89a") and len(head) >= 10:
        return struct.unpack("<HH", head[6:10])
    if head[:2] == b"BM" and len(head) >= 26 and struct.unpack("<I", head[14:18])[0] >= 40:
        w, h = struct.unpack("<ii", head[18:26])
        return abs(w), abs(h)
    return None


# --------------------------------------------------------------------------------------------- checks


def _check_limits(size: tuple[int, int], name: str, max_pixels: int | None, max_aspect: float | None) -> None:
    w, h = size
    if w <= 0 or h <= 0:
        raise ImageLoadError(name, f"zero-sized image ({w}x{h})")
    if max_pixels is not None and w * h > max_pixels:
        raise ImageLoadError(
            name,
            f"{w}x{h} = {w * h:,} pixels is more than max_pixels={max_pixels:,} "
            f"(possible decompression bomb; pass a larger max_pixels if you trust the file)",
        )
    aspect = max(w, h) / min(w, h)
    if max_aspect is not None and aspect > max_aspect:
        raise ImageLoadError(
            name, f"aspect ratio {w}x{h} = 1:{aspect:.0f} is beyond max_aspect={max_aspect:g}"
        )


def _validate_args(background, max_pixels, max_aspect) -> tuple[int, int, int]:
    if (
        not isinstance(background, (tuple, list))
        or len(background) != 3
        or not all(isinstance(c, (int, np.integer)) and not isinstance(c, bool) for c in background)
    ):
        raise TypeError(f"background must be an (R, G, B) tuple of ints, got {background!r}")
    if not all(0 <= c <= 255 for c in background):
        raise ValueError(f"background values must be in [0, 255], got {background!r}")
    if max_pixels is not None and (isinstance(max_pixels, bool) or not max_pixels > 0):
        raise ValueError(f"max_pixels must be a positive number or None, got {max_pixels!r}")
    if max_aspect is not None and (isinstance(max_aspect, bool) or not max_aspect >= 1):
        raise ValueError(f"max_aspect must be a number >= 1 or None, got {max_aspect!r}")
    return tuple(int(c) for c in background)


def _open_checked(stream: BinaryIO, name: str, max_pixels, max_aspect) -> Image.Image:
    """Image.open (header only) + every check that needs no pixels."""
    try:
        start = stream.tell()
        head = stream.read(64)
        stream.seek(start)
    except (OSError, ValueError) as e:  # e.g. an I/O error, or a closed file object
        raise ImageLoadError(name, f"cannot read ({type(e).__name__}: {e})") from e
    if isinstance(head, str):
        raise TypeError("load_image: the file object returns str; open it in binary mode ('rb')")
    if not head:
        raise ImageLoadError(name, "empty file (0 bytes)")
    try:
        with warnings.catch_warnings():
            # PIL warns above MAX_IMAGE_PIXELS; our own max_pixels check below is the one that decides.
            warnings.simplefilter("ignore", Image.DecompressionBombWarning)
            Image.init()
            im = Image.open(stream, formats=[f for f in ALLOWED_FORMATS if f in Image.OPEN])
    except Image.DecompressionBombError as e:
        raise ImageLoadError(name, f"decompression bomb refused by PIL: {e}") from e
    except UnidentifiedImageError as e:
        size = _header_size(head)
        if size is not None and 0 in size:
            raise ImageLoadError(name, f"zero-sized image ({size[0]}x{size[1]})") from e
        if size is not None and max_pixels is not None and size[0] * size[1] > max_pixels:
            _check_limits(size, name, max_pixels, None)
        raise ImageLoadError(
            name, f"not an image, or not one of the formats {', '.join(ALLOWED_FORMATS)}, or a damaged header"
        ) from e
    except Exception as e:  # plugins raise assorted errors (SyntaxError, struct.error, ...) on bad headers
        raise ImageLoadError(name, f"unreadable image header ({type(e).__name__}: {e})") from e
    try:
        _check_limits(im.size, name, max_pixels, max_aspect)
    except ImageLoadError:
        im.close()
        raise
    return im


def _orientation(im: Image.Image, name: str, header_only: bool = False) -> int:
    if header_only and im.format == "PNG" and "exif" not in im.info:
        return 1  # PIL would decode all pixels to look for an eXIf chunk after the image data
    try:
        value = im.getexif().get(0x0112, 1)  # 0x0112 = Orientation
    except Exception as e:
        why = f"unreadable EXIF data, orientation unknown ({type(e).__name__}: {e})"
        raise ImageLoadError(name, why) from e
    return value if isinstance(value, int) and 1 <= value <= 8 else 1


def _decode(im: Image.Image, name: str) -> None:
    """Decode frame 0's pixels now, so truncation and corruption surface here (never later, never padded)."""
    stored = im.size
    try:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore", Image.DecompressionBombWarning)
            im.load()
    except Image.DecompressionBombError as e:
        raise ImageLoadError(name, f"decompression bomb refused by PIL: {e}") from e
    except MemoryError as e:
        raise ImageLoadError(name, f"out of memory decoding {stored[0]}x{stored[1]} pixels") from e
    except Exception as e:  # OSError("image file is truncated"), SyntaxError, zlib.error, EOFError, ...
        truncated = "truncat" in str(e).lower() or isinstance(e, EOFError)
        why = "truncated file" if truncated else "corrupt data"
        raise ImageLoadError(name, f"{why}: pixels could not be decoded ({type(e).__name__}: {e})") from e
    if im.size != stored:
        raise ImageLoadError(name, f"decoded size {im.size} differs from header size {stored}")


# --------------------------------------------------------------------------------------------- conversion


def _to_uint8(arr: np.ndarray, mode: str, name: str) -> np.ndarray:
    """Single-channel integer / float pixels -> uint8, by the documented value-range rules."""
    if mode in _MODES_16BIT:
        return ((arr.astype(np.uint32) * 255 + 32767) // 65535).astype(np.uint8)
    if mode == "F" and not np.isfinite(arr).all():
        raise ImageLoadError(name, "float image contains NaN or infinity")
    lo, hi = float(arr.min()), float(arr.max())
    if lo < 0:
        raise ImageLoadError(name, f"mode {mode} with negative values (min {lo:g}) is not supported")
    if mode == "F" and hi <= 1.0:
        return np.rint(arr * 255.0).astype(np.uint8)
    if hi <= 255:
        return np.rint(arr).astype(np.uint8)
    if hi <= 65535:
        return np.rint(arr.astype(np.float64) * (255.0 / 65535.0)).astype(np.uint8)
    raise ImageLoadError(name, f"mode {mode} with values up to {hi:g} is not supported (max 65535)")


def _to_rgb(im: Image.Image, background: tuple[int, int, int], name: str) -> Image.Image:
    mode = im.mode
    if mode in _MODES_16BIT or mode in ("I", "F"):
        arr = np.asarray(im)  # (H, W) uint16 / int32 / float32
        rgb = np.repeat(_to_uint8(arr, mode, name)[:, :, None], 3, axis=2)  # (H, W, 3)
        key = im.info.get("transparency")
        if isinstance(key, (int, float)):  # a 16-bit grey PNG's tRNS colour key: those pixels are transparent
            rgb[arr == key] = background
        return Image.fromarray(rgb)  # (H, W, 3) uint8 -> mode "RGB"
    if mode in _MODES_ALPHA or "transparency" in im.info:
        rgba = im.convert("RGBA")  # un-premultiplies RGBa / La, applies P / L / RGB transparency keys
        out = Image.new("RGB", rgba.size, background)
        out.paste(rgba.convert("RGB"), (0, 0), rgba.getchannel("A"))
        return out
    if mode not in _MODES_PLAIN:  # e.g. LAB: PIL's convert("RGB") gives wrong colours, so refuse
        raise ImageLoadError(name, f"unsupported pixel mode {mode!r}")
    return im.convert("RGB")  # always a copy, so the result never shares the source's file


# --------------------------------------------------------------------------------------------- public API


def load_image(
    source,
    *,
    background: tuple[int, int, int] = DEFAULT_BACKGROUND,
    max_pixels: int | None = DEFAULT_MAX_PIXELS,
    max_aspect: float | None = DEFAULT_MAX_ASPECT,
) -> Image.Image:
    """Load ``source`` (path, binary file object or bytes) as an upright 8-bit RGB ``PIL.Image``.

    ``background`` is the (R, G, B) colour transparent pixels are composited onto. ``max_pixels`` and
    ``max_aspect`` are the limits below (None disables one of ours; PIL's own hard pixel limit still applies).
    Raises ``ImageLoadError`` (a ``ValueError``) naming the source and the reason, or ``TypeError`` for a
    source of the wrong type. Taught in notebook `setup_and_why_resolution`.

    What it does, in order:

    1. Reads only the header and checks it (nothing is decoded yet): the file is not empty, is one of the
       ``ALLOWED_FORMATS``, has no zero side, has at most ``max_pixels`` pixels (so a decompression bomb never
       allocates its pixels) and an aspect ratio (long side / short side) of at most ``max_aspect``.
    2. Decodes the pixels of the first frame (animated GIF / PNG / WebP and multi-page TIFF: frame 0 only).
       A truncated or corrupt file fails here; ``PIL.ImageFile.LOAD_TRUNCATED_IMAGES`` is never set. (If *you*
       set it to True elsewhere, PIL pads truncated files with grey and this check cannot see it.)
    3. Applies the EXIF orientation tag (``ImageOps.exif_transpose``), so the image is upright as viewers show
       it.
    4. Converts to mode ``"RGB"`` (8 bits per channel):

       - transparency (RGBA, LA, PA, RGBa, La, P or L/RGB with a ``transparency`` key) is composited onto
         ``background`` (default white ``(255, 255, 255)``);
       - ``I;16`` / ``I;16B`` / ``I;16L`` / ``I;16N`` (16-bit) are scaled to 8 bits with rounding,
         ``v * 255 / 65535`` (PIL's own ``convert("L")`` clips everything above 255 to white instead);
       - ``I`` (32-bit int) and ``F`` (32-bit float) are mapped by their value range: values in [0, 255] are
         kept, values in [0, 65535] are scaled like 16-bit, ``F`` values in [0, 1] are scaled by 255; anything
         else (negative, larger, NaN) is refused rather than guessed;
       - CMYK, YCbCr, HSV, RGBX, L, 1 and P go through PIL's ``convert("RGB")``. ICC profiles are ignored.
         Other modes (e.g. LAB, whose PIL conversion gives wrong colours) are refused.

    Limits (keyword arguments, defaults are module constants):

    - ``DEFAULT_MAX_PIXELS = 50_000_000`` (about 150 MB once decoded as RGB; an 8000x6000 camera photo fits).
      PIL's own hard limit, ``2 * PIL.Image.MAX_IMAGE_PIXELS`` (about 179 million pixels), applies on top.
    - ``DEFAULT_MAX_ASPECT = checks.MAX_ASPECT`` (100, the one aspect limit of the whole package, which every
      tiling method applies too): a 1:100 strip (the data set's 20x2000 ``strip.png``) loads, 1:101 is
      refused.
    """
    bg = _validate_args(background, max_pixels, max_aspect)
    name = _describe(source)
    stream, owned = _open_stream(source)
    try:
        im = _open_checked(stream, name, max_pixels, max_aspect)
        with im:
            stored = im.size
            _decode(im, name)
            orientation = _orientation(im, name)
            upright = ImageOps.exif_transpose(im) if orientation != 1 else im
            out = _to_rgb(upright, bg, name)
    finally:
        if owned:
            stream.close()
    expected = stored if orientation in (1, 2, 3, 4) else stored[::-1]
    assert out.mode == "RGB" and out.size == expected, (out.mode, out.size, expected)
    return out


def image_info(
    source, *, max_pixels: int | None = DEFAULT_MAX_PIXELS, max_aspect: float | None = DEFAULT_MAX_ASPECT
) -> ImageInfo:
    """Size, mode, format and EXIF orientation from the header only (no pixels are decoded).

    Applies the same header checks as ``load_image`` (empty, not an image, zero size, pixel and aspect limits)
    and raises the same errors; a truncated file is only detected by ``load_image``. A PNG whose EXIF chunk
    comes after the pixel data reports orientation 1 here (``load_image`` still applies it). Taught in
    notebook `setup_and_why_resolution`.
    """
    _validate_args(DEFAULT_BACKGROUND, max_pixels, max_aspect)
    name = _describe(source)
    stream, owned = _open_stream(source)
    try:
        with _open_checked(stream, name, max_pixels, max_aspect) as im:
            orientation = _orientation(im, name, header_only=True)
            stored = im.size
            size = stored if orientation in (1, 2, 3, 4) else stored[::-1]
            return ImageInfo(
                size=size, stored_size=stored, mode=im.mode, format=im.format or "?", orientation=orientation
            )
    finally:
        if owned:
            stream.close()


__all__ = [
    "ALLOWED_FORMATS",
    "DEFAULT_BACKGROUND",
    "DEFAULT_MAX_ASPECT",
    "DEFAULT_MAX_PIXELS",
    "ImageInfo",
    "ImageLoadError",
    "image_info",
    "load_image",
]
