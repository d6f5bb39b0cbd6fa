"""load_image: every accepted input and every refusal; each bad file is built here (memory or tmp_path)."""

from __future__ import annotations

import io
import struct
import zlib

import numpy as np
import pytest
from PIL import Image, ImageFile

from anyres_tutorial import checks
from anyres_tutorial.images import (
    DEFAULT_MAX_ASPECT,
    DEFAULT_MAX_PIXELS,
    ImageInfo,
    ImageLoadError,
    image_info,
    load_image,
)


def encode(im: Image.Image, fmt: str, **kw) -> bytes:
    buf = io.BytesIO()
    im.save(buf, fmt, **kw)
    return buf.getvalue()


def png_chunk(kind: bytes, data: bytes) -> bytes:
    return (
        struct.pack(">I", len(data)) + kind + data + struct.pack(">I", zlib.crc32(kind + data) & 0xFFFFFFFF)
    )


def png_header_only(width: int, height: int) -> bytes:
    """A PNG whose IHDR claims width x height RGB pixels, then a tiny IDAT: a decompression-bomb header."""
    ihdr = struct.pack(">IIBBBBB", width, height, 8, 2, 0, 0, 0)
    return (
        b"\x89PNG\r\n\x1a\n"
        + png_chunk(b"IHDR", ihdr)
        + png_chunk(b"IDAT", zlib.compress(b"\0" * 16))
        + png_chunk(b"IEND", b"")
    )


def quadrants(w: int = 48, h: int = 32) -> np.ndarray:
    """(H, W, 3) uint8: top-left red, top-right green, bottom-left blue, bottom-right white."""
    arr = np.zeros((h, w, 3), np.uint8)
    arr[: h // 2, : w // 2] = (255, 0, 0)
    arr[: h // 2, w // 2 :] = (0, 255, 0)
    arr[h // 2 :, : w // 2] = (0, 0, 255)
    arr[h // 2 :, w // 2 :] = (255, 255, 255)
    return arr


def with_orientation(im: Image.Image, fmt: str, orientation: int, **kw) -> bytes:
    exif = Image.Exif()
    exif[0x0112] = orientation
    return encode(im, fmt, exif=exif, **kw)


def noisy(w: int, h: int) -> Image.Image:
    """Incompressible pixels, so a file cut in half really misses pixel data."""
    rng = np.random.default_rng(0)
    return Image.fromarray(rng.integers(0, 256, (h, w, 3), dtype=np.uint8))


@pytest.fixture
def no_pixel_decoding(monkeypatch):
    """Make any pixel decoding fail loudly: proves a refusal happened from the header alone."""

    def forbidden(self, *a, **k):
        raise AssertionError("pixels were decoded")

    monkeypatch.setattr(ImageFile.ImageFile, "load", forbidden)


def refusal(source, **kw) -> ImageLoadError:
    with pytest.raises(ImageLoadError) as info:
        load_image(source, **kw)
    return info.value


# ------------------------------------------------------------------------------------------- inputs


def test_path_str_bytes_bytearray_memoryview_and_file_objects_agree(tmp_path):
    arr = quadrants()
    data = encode(Image.fromarray(arr), "PNG")
    path = tmp_path / "q.png"
    path.write_bytes(data)
    with open(path, "rb") as f:
        from_file = load_image(f)
        assert not f.closed  # a caller's file object is not closed for them
    sources = [path, str(path), data, bytearray(data), memoryview(data), io.BytesIO(data)]
    for img in [load_image(s) for s in sources] + [from_file]:
        assert img.mode == "RGB" and img.size == (48, 32)
        np.testing.assert_array_equal(np.asarray(img), arr)


def test_file_object_is_read_from_its_current_position():
    data = encode(Image.fromarray(quadrants()), "PNG")
    f = io.BytesIO(b"JUNKJUNK" + data)
    f.seek(8)
    np.testing.assert_array_equal(np.asarray(load_image(f)), quadrants())


def test_non_seekable_stream_is_buffered():
    class Pipe(io.RawIOBase):
        def __init__(self, data):
            self._buf = io.BytesIO(data)

        def readable(self):
            return True

        def seekable(self):
            return False

        def readinto(self, b):
            chunk = self._buf.read(len(b))
            b[: len(chunk)] = chunk
            return len(chunk)

    data = encode(Image.fromarray(quadrants()), "PNG")
    np.testing.assert_array_equal(np.asarray(load_image(Pipe(data))), quadrants())


def test_returned_image_is_independent_of_the_file(tmp_path):
    path = tmp_path / "q.png"
    path.write_bytes(encode(Image.fromarray(quadrants()), "PNG"))
    img = load_image(path)
    path.unlink()  # the pixels are already in memory
    assert img.getpixel((0, 0)) == (255, 0, 0)


def test_closed_file_object_is_refused_clearly(tmp_path):
    path = tmp_path / "q.png"
    path.write_bytes(encode(Image.new("RGB", (4, 4)), "PNG"))
    with open(path, "rb") as f:
        pass
    err = refusal(f)
    assert "q.png" in err.source and "cannot read" in err.reason


@pytest.mark.parametrize("bad", [42, True, None, 3.5, ["a.png"], np.zeros((4, 4, 3), np.uint8)])
def test_wrong_source_type_is_type_error(bad):
    with pytest.raises(TypeError, match="source must be"):
        load_image(bad)


def test_pil_image_and_text_mode_file_are_type_errors(tmp_path):
    with pytest.raises(TypeError, match="PIL image"):
        load_image(Image.new("RGB", (4, 4)))
    path = tmp_path / "t.png"
    path.write_bytes(encode(Image.new("RGB", (4, 4)), "PNG"))
    with open(path, encoding="latin-1") as f, pytest.raises(TypeError, match="binary"):
        load_image(f)


@pytest.mark.parametrize(
    "kw, exc",
    [
        ({"background": (255, 255)}, TypeError),
        ({"background": "white"}, TypeError),
        ({"background": (0, 0, 256)}, ValueError),
        ({"max_pixels": 0}, ValueError),
        ({"max_aspect": 0.5}, ValueError),
    ],
)
def test_bad_arguments(kw, exc):
    data = encode(Image.new("RGB", (4, 4)), "PNG")
    with pytest.raises(exc):
        load_image(data, **kw)


# ------------------------------------------------------------------------------------------- orientation


def test_exif_rotated_jpeg_is_upright_by_its_pixels():
    """Orientation 6 = the camera was turned 90 degrees clockwise: the stored left edge is the top."""
    data = with_orientation(Image.fromarray(quadrants(48, 32)), "JPEG", 6, quality=95)
    img = load_image(data)
    assert img.size == (32, 48)
    px = np.asarray(img).astype(int)  # (H, W, 3)
    # Stored TL red / TR green / BL blue / BR white -> displayed TL blue, TR red, BL white, BR green.
    expected = {(8, 12): (0, 0, 255), (24, 12): (255, 0, 0), (8, 36): (255, 255, 255), (24, 36): (0, 255, 0)}
    for (x, y), colour in expected.items():
        assert np.abs(px[y, x] - colour).max() < 30, ((x, y), px[y, x], colour)


@pytest.mark.parametrize("orientation", range(1, 9))
def test_all_eight_exif_orientations_exact(orientation):
    """Lossless PNG with an eXIf chunk: the result must equal the EXIF-defined transform, pixel for pixel."""
    arr = np.arange(5 * 3 * 3, dtype=np.uint8).reshape(3, 5, 3) * 5  # (H=3, W=5, 3), every pixel distinct
    expected = {
        1: arr,
        2: arr[:, ::-1],  # mirror left-right
        3: arr[::-1, ::-1],  # rotate 180
        4: arr[::-1, :],  # mirror top-bottom
        5: arr.transpose(1, 0, 2),  # transpose
        6: np.rot90(arr, k=-1),  # rotate 90 clockwise
        7: arr[::-1, ::-1].transpose(1, 0, 2),  # transverse
        8: np.rot90(arr, k=1),  # rotate 90 counter-clockwise
    }[orientation]
    data = with_orientation(Image.fromarray(arr), "PNG", orientation)
    np.testing.assert_array_equal(np.asarray(load_image(data)), expected)
    info = image_info(data)
    assert info.orientation == orientation and info.size == (expected.shape[1], expected.shape[0])


# ------------------------------------------------------------------------------------------- modes


def test_rgba_composited_onto_background():
    arr = np.zeros((2, 3, 4), np.uint8)
    arr[0, 0] = (200, 100, 50, 255)  # opaque: unchanged
    arr[0, 1] = (200, 100, 50, 0)  # transparent: the background
    arr[0, 2] = (200, 100, 50, 128)  # half: a blend
    data = encode(Image.fromarray(arr), "PNG")
    white = np.asarray(load_image(data)).astype(int)
    assert tuple(white[0, 0]) == (200, 100, 50)
    assert tuple(white[0, 1]) == (255, 255, 255)
    blend = np.array([200, 100, 50]) * 128 / 255 + 255 * 127 / 255
    assert np.abs(white[0, 2] - blend).max() <= 1
    green = np.asarray(load_image(data, background=(0, 255, 0)))
    assert tuple(green[0, 1]) == (0, 255, 0)


@pytest.mark.parametrize("fmt", ["PNG", "GIF"])
def test_palette_with_transparency(fmt):
    im = Image.new("P", (4, 1))
    im.putpalette([10, 20, 30, 250, 0, 0] + [0] * 762)
    im.putdata([0, 1, 1, 0])
    data = encode(im, fmt, transparency=0)
    px = np.asarray(load_image(data, background=(0, 128, 255)))
    assert [tuple(p) for p in px[0]] == [(0, 128, 255), (250, 0, 0), (250, 0, 0), (0, 128, 255)]


def test_palette_without_transparency_keeps_colours():
    im = Image.new("P", (2, 1))
    im.putpalette([10, 20, 30, 250, 0, 0] + [0] * 762)
    im.putdata([0, 1])
    px = np.asarray(load_image(encode(im, "PNG")))
    assert [tuple(p) for p in px[0]] == [(10, 20, 30), (250, 0, 0)]


def test_la_and_pa():
    la = Image.fromarray(np.array([[[100, 255], [100, 0]]], np.uint8), mode="LA")
    px = np.asarray(load_image(encode(la, "PNG"), background=(0, 0, 0)))
    assert [tuple(p) for p in px[0]] == [(100, 100, 100), (0, 0, 0)]
    pa = Image.new("PA", (2, 1))
    pa.putpalette([10, 20, 30] + [0] * 765)
    pa.putpixel((0, 0), (0, 255))
    pa.putpixel((1, 0), (0, 0))
    px = np.asarray(load_image(encode(pa, "TIFF"), background=(9, 9, 9)))
    assert [tuple(p) for p in px[0]] == [(10, 20, 30), (9, 9, 9)]


def test_premultiplied_alpha_tiff():
    """TIFF with associated (premultiplied) alpha: over black, the result is the stored premultiplied RGB."""
    raw = encode(Image.new("RGBA", (2, 2), (100, 50, 0, 128)), "TIFF")
    extra_samples_unassoc = struct.pack("<HHII", 338, 3, 1, 2)[:10]  # tag 338 ExtraSamples = 2 (unassociated)
    assert raw.count(extra_samples_unassoc) == 1
    raw = raw.replace(extra_samples_unassoc, struct.pack("<HHII", 338, 3, 1, 1)[:10])  # -> 1 (associated)
    px = np.asarray(load_image(raw, background=(0, 0, 0))).astype(int)
    assert np.abs(px[0, 0] - (100, 50, 0)).max() <= 1


def test_cmyk():
    cmyk = Image.new("CMYK", (3, 1))
    cmyk.putdata([(0, 0, 0, 0), (255, 0, 0, 0), (0, 0, 0, 255)])  # white, cyan, black
    for fmt in ["TIFF", "JPEG"]:
        px = np.asarray(load_image(encode(cmyk, fmt, **({"quality": 100} if fmt == "JPEG" else {})))).astype(
            int
        )
        for got, want in zip(px[0], [(255, 255, 255), (0, 255, 255), (0, 0, 0)]):
            assert np.abs(got - want).max() <= 8, (fmt, got, want)


@pytest.mark.parametrize("fmt, mode", [("PNG", "I;16"), ("TIFF", "I;16"), ("TIFF", "I;16B")])
def test_16bit_scaled_not_clipped(fmt, mode):
    values = np.array([[0, 257, 32896, 65535, 1000]], np.uint16)  # 1000 would clip to 255 in PIL's convert
    im = Image.frombytes(mode, (5, 1), values.astype(">u2" if mode == "I;16B" else "<u2").tobytes())
    assert image_info(encode(im, fmt)).mode.startswith("I;16")
    px = np.asarray(load_image(encode(im, fmt)))
    assert px.shape == (1, 5, 3)
    np.testing.assert_array_equal(px[0, :, 0], [0, 1, 128, 255, 4])  # round(v * 255 / 65535)
    assert (px[..., 0] == px[..., 2]).all()


def test_16bit_grey_png_transparency_key():
    im = Image.fromarray(np.array([[0, 65535]], np.uint16))
    data = encode(im, "PNG", transparency=0)
    assert [tuple(p) for p in np.asarray(load_image(data, background=(1, 2, 3)))[0]] == [
        (1, 2, 3),
        (255,) * 3,
    ]


def test_32bit_int_and_float_value_ranges():
    as_i = lambda a: encode(Image.fromarray(np.array([a], np.int32)), "TIFF")
    as_f = lambda a: encode(Image.fromarray(np.array([a], np.float32)), "TIFF")
    assert list(np.asarray(load_image(as_i([0, 7, 255])))[0, :, 0]) == [0, 7, 255]  # 8-bit range kept
    assert list(np.asarray(load_image(as_i([0, 65535, 32896])))[0, :, 0]) == [0, 255, 128]  # 16-bit range
    assert list(np.asarray(load_image(as_f([0.0, 0.5, 1.0])))[0, :, 0]) == [0, 128, 255]  # [0, 1] floats
    assert list(np.asarray(load_image(as_f([0.0, 100.0, 255.0])))[0, :, 0]) == [0, 100, 255]
    assert "negative" in refusal(as_i([-5, 10])).reason
    assert "65535" in refusal(as_i([0, 70000])).reason
    assert "NaN" in refusal(as_f([0.0, float("nan")])).reason


def test_one_bit_grey_and_ycbcr():
    bits = Image.new("1", (2, 1))
    bits.putpixel((1, 0), 1)
    assert [tuple(p) for p in np.asarray(load_image(encode(bits, "PNG")))[0]] == [(0, 0, 0), (255, 255, 255)]
    grey = Image.fromarray(np.array([[0, 77, 255]], np.uint8))
    assert [tuple(p) for p in np.asarray(load_image(encode(grey, "PNG")))[0]] == [
        (0,) * 3,
        (77,) * 3,
        (255,) * 3,
    ]
    ycc = Image.new("YCbCr", (2, 2), (128, 128, 128))  # mid grey
    assert load_image(encode(ycc, "TIFF")).getpixel((0, 0)) == (128, 128, 128)


def test_lab_is_refused_not_miscoloured():
    assert "LAB" in refusal(encode(Image.new("LAB", (2, 2), (50, 0, 0)), "TIFF")).reason


@pytest.mark.parametrize("fmt", ["GIF", "PNG", "TIFF"])
def test_animated_or_multipage_gives_first_frame(fmt):
    frames = [Image.new("RGB", (8, 6), c) for c in [(255, 0, 0), (0, 255, 0), (0, 0, 255)]]
    buf = io.BytesIO()
    frames[0].save(buf, fmt, save_all=True, append_images=frames[1:], duration=100)
    assert getattr(Image.open(io.BytesIO(buf.getvalue())), "n_frames", 1) == 3
    img = load_image(buf.getvalue())
    assert img.size == (8, 6)
    assert np.abs(np.asarray(img).astype(int) - (255, 0, 0)).max() <= 2


# ------------------------------------------------------------------------------------------- refusals


def test_missing_file_and_directory(tmp_path):
    err = refusal(tmp_path / "nope.png")
    assert "nope.png" in str(err) and "not found" in err.reason
    assert "directory" in refusal(tmp_path).reason


def test_empty_path_bytes_and_file_object(tmp_path):
    empty = tmp_path / "empty.png"
    empty.write_bytes(b"")
    err = refusal(empty)
    assert str(empty) in str(err) and "empty" in err.reason
    err = refusal(b"")
    assert err.source == "<bytes>" and "empty" in err.reason and "<bytes>" in str(err)
    err = refusal(io.BytesIO(b""))
    assert err.source.startswith("<file object") and "empty" in err.reason


def test_not_an_image(tmp_path):
    rng = np.random.default_rng(0)
    for junk in [rng.integers(0, 256, 4096, dtype=np.uint8).tobytes(), b"hello, I am text\n" * 20]:
        assert "not an image" in refusal(junk).reason
    path = tmp_path / "notes.jpg"
    path.write_text("not really a jpeg")
    err = refusal(path)
    assert "notes.jpg" in str(err) and "not an image" in err.reason


@pytest.mark.filterwarnings("ignore:Corrupt EXIF data")  # PIL's TIFF parser complains about the junk first
def test_random_bytes_never_load():
    """Many seeded random buffers (some with real magic numbers in front): all refused, none 'loads'."""
    rng = np.random.default_rng(1)
    magics = [b"", b"\x89PNG\r\n\x1a\n", b"\xff\xd8\xff", b"GIF89a", b"BM", b"II*\x00", b"P6\n"]
    for i in range(200):
        junk = (
            magics[i % len(magics)]
            + rng.integers(0, 256, int(rng.integers(1, 3000)), dtype=np.uint8).tobytes()
        )
        with pytest.raises(ImageLoadError):
            load_image(junk)


@pytest.mark.parametrize("fmt", ["PNG", "JPEG"])
def test_truncated_file(fmt, tmp_path):
    data = encode(noisy(200, 150), fmt, **({"quality": 90} if fmt == "JPEG" else {}))
    assert np.asarray(load_image(data)).shape == (150, 200, 3)  # the whole file loads
    assert image_info(data[: len(data) // 2]).size == (200, 150)  # the header alone looks fine ...
    err = refusal(data[: len(data) // 2])  # ... but the pixels are missing
    assert "truncated" in err.reason
    path = tmp_path / f"cut.{fmt.lower()}"
    path.write_bytes(data[: len(data) // 3])
    assert "cut." in str(refusal(path))


def test_corrupt_png_data_is_refused():
    data = bytearray(encode(noisy(64, 64), "PNG"))
    idat = data.index(b"IDAT")
    data[idat + 40 : idat + 60] = b"\x00" * 20  # smash compressed data (CRC now wrong too)
    with pytest.raises(ImageLoadError):
        load_image(bytes(data))


@pytest.mark.parametrize(
    "header",
    [
        png_header_only(0, 10),
        png_header_only(10, 0),
        b"GIF89a" + struct.pack("<HHBBB", 0, 7, 0, 0, 0) + b"\x3b",
        b"BM"
        + struct.pack("<IHHI", 54, 0, 0, 54)
        + struct.pack("<IiiHHIIiiII", 40, 0, 10, 1, 24, 0, 0, 0, 0, 0, 0),
    ],
    ids=["png-w0", "png-h0", "gif-w0", "bmp-w0"],
)
def test_zero_sized(header):
    assert "zero-sized" in refusal(header).reason


def test_bomb_header_refused_before_any_decoding(no_pixel_decoding):
    """10000x8000 = 80 MP claimed by a ~100-byte file: over DEFAULT_MAX_PIXELS, under PIL's own limit."""
    data = png_header_only(10_000, 8_000)
    assert len(data) < 200 and 10_000 * 8_000 > DEFAULT_MAX_PIXELS
    err = refusal(data)
    assert "max_pixels" in err.reason and "80,000,000" in err.reason
    assert "max_pixels" in str(pytest.raises(ImageLoadError, image_info, data).value)


def test_huge_bomb_refused_by_pil_limit_too(no_pixel_decoding):
    data = png_header_only(100_000, 100_000)  # 10 gigapixels
    assert "bomb" in refusal(data).reason
    assert "bomb" in refusal(data, max_pixels=None).reason  # PIL's own hard limit still applies


def test_max_pixels_is_a_parameter():
    data = encode(Image.new("RGB", (100, 100), (1, 2, 3)), "PNG")
    assert "max_pixels" in refusal(data, max_pixels=9_999).reason
    assert load_image(data, max_pixels=10_000).size == (100, 100)


def test_extreme_aspect():
    strip = encode(Image.new("RGB", (20, 2000)), "PNG")  # 1:100 like data/strip.png: loads
    assert load_image(strip).size == (20, 2000)
    for w, h in [(10, 2000), (2000, 10), (1, 200)]:  # 1:200
        err = refusal(encode(Image.new("RGB", (w, h)), "PNG"))
        assert "aspect" in err.reason and "1:200" in err.reason
    assert DEFAULT_MAX_ASPECT == checks.MAX_ASPECT == 100  # one limit for loading and tiling
    assert "aspect" in refusal(encode(Image.new("RGB", (20, 2020)), "PNG")).reason  # 1:101
    assert "aspect" in refusal(strip, max_aspect=50).reason
    assert load_image(encode(Image.new("RGB", (1, 200)), "PNG"), max_aspect=None).size == (1, 200)


def test_error_type_and_message():
    err = refusal(b"", max_pixels=10)
    assert isinstance(err, ValueError)
    assert str(err) == "cannot load image <bytes>: empty file (0 bytes)"


# ------------------------------------------------------------------------------------------- image_info


def test_image_info_reads_header_only(no_pixel_decoding):
    info = image_info(encode(Image.new("RGB", (30, 20)), "PNG"))
    assert info == ImageInfo(size=(30, 20), stored_size=(30, 20), mode="RGB", format="PNG", orientation=1)
    rotated = with_orientation(Image.new("RGB", (30, 20)), "JPEG", 8)
    assert image_info(rotated).size == (20, 30) and image_info(rotated).stored_size == (30, 20)
