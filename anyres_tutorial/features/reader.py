"""A real text-line recognizer, offline: PP-OCRv4 recognition (ONNX) from the rapidocr wheel, and its scores.

Part of :mod:`anyres_tutorial.features`; taught in `tiling_vs_packing`.

The PyPI wheel ``rapidocr_onnxruntime==1.4.4`` (Apache-2.0) ships ``models/ch_PP-OCRv4_rec_infer.onnx``:
PaddleOCR's PP-OCRv4 line recognizer (Chinese + English). Install it **without its dependencies** (they pull
OpenCV) and without its Python bound (< 3.13, for its own code): the package is never imported, only this file
is found (``importlib.util.find_spec``), checked against its sha256 and run with onnxruntime::

    pip install --no-deps --ignore-requires-python rapidocr_onnxruntime==1.4.4   # or: python3 dev.py setup

What one read does, as rapidocr's ``TextRecognizer`` with a batch of one line: the line image (RGB, fed as
BGR like OpenCV) is resized to height 48 keeping its aspect ratio (bilinear), scaled to [-1, 1], padded with
zeros to at least 320 columns, and run; the output is one probability vector per 8 input columns over 6,625
classes (CTC blank, the 6,623 characters stored in the ONNX metadata ``character``, a space). Greedy CTC
decoding keeps the most likely class per column, merges repeats and drops blanks.

:func:`char_accuracy` (1 - edit distance / length) and :func:`words_correct` score a reading against the text
that was drawn; spaces are not counted (the reader often drops the space between tightly set words).
"""

from __future__ import annotations

import functools
import hashlib
import importlib.util
from pathlib import Path

import numpy as np
from PIL import Image

WHEEL = "rapidocr_onnxruntime==1.4.4"
PACKAGE = "rapidocr_onnxruntime"
# --ignore-requires-python: the wheel declares Python < 3.13 for its own code, which is never imported
INSTALL_HINT = f"pip install --no-deps --ignore-requires-python {WHEEL}   (or: python3 dev.py setup)"
REINSTALL_HINT = f"pip install --force-reinstall --no-deps --ignore-requires-python {WHEEL}"
ONNX_RELPATH = ("models", "ch_PP-OCRv4_rec_infer.onnx")
#: sha256 of rapidocr_onnxruntime/models/ch_PP-OCRv4_rec_infer.onnx in rapidocr_onnxruntime 1.4.4.
ONNX_SHA256 = "48fc40f24f6d2a207a2b1091d3437eb3cc3eb6b676dc3ef9c37384005483683b"
LINE_HEIGHT = 48  # the recognizer's input height (rapidocr's rec_img_shape [3, 48, 320])
MIN_WIDTH = 320  # lines are padded to at least this many columns (its max_wh_ratio starts at 320 / 48)


class ReaderUnavailable(RuntimeError):
    """The recognizer's model file is missing or corrupt, or onnxruntime is missing; the message says what to
    install."""


def find_model() -> Path:
    """Path of the recognizer's ONNX file inside the installed rapidocr wheel, after checking its sha256
    (the package is not imported). ReaderUnavailable when the wheel is missing or the file is corrupt."""
    try:
        spec = importlib.util.find_spec(PACKAGE)
    except (ImportError, ValueError):
        spec = None
    if spec is None or not spec.submodule_search_locations:
        raise ReaderUnavailable(f"The text recognizer comes from the {PACKAGE} wheel, which is not "
                                f"installed. Install it with:\n    {INSTALL_HINT}")
    for folder in spec.submodule_search_locations:
        path = Path(folder).joinpath(*ONNX_RELPATH)
        if path.is_file():
            break
    else:
        raise ReaderUnavailable(f"{'/'.join(ONNX_RELPATH)} is missing from the installed {PACKAGE}; "
                                f"reinstall it with:\n    {REINSTALL_HINT}")
    st = path.stat()
    if _sha256(str(path), st.st_size, st.st_mtime_ns) != ONNX_SHA256:
        raise ReaderUnavailable(f"{path} is corrupt (its sha256 is not the one of {WHEEL}); reinstall "
                                f"it with:\n    {REINSTALL_HINT}")
    return path


@functools.lru_cache(maxsize=4)
def _sha256(path: str, size: int, mtime_ns: int) -> str:  # size and mtime: a changed file is hashed again
    h = hashlib.sha256()
    with open(path, "rb") as f:
        for block in iter(lambda: f.read(1 << 20), b""):
            h.update(block)
    return h.hexdigest()


class Reader:
    """The PP-OCRv4 line recognizer on onnxruntime (CPU). ``read(image)`` -> the text of one line image;
    ``characters``: the CTC classes (blank first, space last)."""

    def __init__(self, path: Path, threads: int | None = None):
        try:
            import onnxruntime as ort
        except ImportError as e:
            raise ReaderUnavailable("the text recognizer runs on onnxruntime, which is not installed: "
                                    "pip install onnxruntime   (or: python3 dev.py setup)") from e
        opts = ort.SessionOptions()
        if threads:
            opts.intra_op_num_threads = int(threads)
        opts.log_severity_level = 3
        opts.add_session_config_entry("session.intra_op.allow_spinning", "0")  # polite on a shared CPU
        self.session = ort.InferenceSession(str(path), opts, providers=["CPUExecutionProvider"])
        self.input_name = self.session.get_inputs()[0].name
        chars = self.session.get_modelmeta().custom_metadata_map.get("character", "").splitlines()
        if not chars:
            raise ReaderUnavailable(f"{path} has no character list in its metadata; reinstall it with:\n"
                                    f"    {REINSTALL_HINT}")
        self.characters = ["<blank>", *chars, " "]
        self.path = path

    def prepare(self, image) -> np.ndarray:
        """A line image -> the (3, 48, W) float32 input: height 48 (bilinear, aspect kept), BGR, [-1, 1],
        zero-padded to at least 320 columns."""
        im = image if isinstance(image, Image.Image) else Image.fromarray(np.asarray(image, np.uint8))
        im = im.convert("RGB")
        if im.height != LINE_HEIGHT:
            w = max(1, int(np.ceil(LINE_HEIGHT * im.width / im.height)))
            im = im.resize((w, LINE_HEIGHT), Image.BILINEAR)
        a = np.asarray(im, np.float32)[:, :, ::-1].transpose(2, 0, 1) / 127.5 - 1.0  # (3, 48, w) BGR
        out = np.zeros((3, LINE_HEIGHT, max(MIN_WIDTH, a.shape[2])), np.float32)
        out[:, :, : a.shape[2]] = a
        return out

    def decode(self, probs: np.ndarray) -> str:
        """Greedy CTC decoding of (T, classes) probabilities: best class per step, repeats merged, blanks
        dropped."""
        best = probs.argmax(-1)  # (T,)
        keep = np.ones(len(best), bool)
        keep[1:] = best[1:] != best[:-1]
        keep &= best != 0
        return "".join(self.characters[i] for i in best[keep])

    def read(self, image) -> str:
        """The text the recognizer reads in one line image (PIL image or (H, W, 3) uint8 array)."""
        x = self.prepare(image)[None]  # (1, 3, 48, W)
        probs = self.session.run(None, {self.input_name: x})[0]  # (1, W / 8, classes)
        return self.decode(probs[0])


@functools.cache
def load_reader(threads: int | None = None) -> Reader:
    """The recognizer (loaded once): ReaderUnavailable with the install command when it cannot be loaded.
    Taught in `tiling_vs_packing`."""
    return Reader(find_model(), threads)


def reader_problem() -> str | None:
    """None when the recognizer loads, else the message saying what to install (for a notebook that goes on
    without it)."""
    try:
        load_reader()
    except ReaderUnavailable as e:
        return str(e)
    return None


def read_line(image) -> str:
    """Read one line of text: the image is resized to height 48 keeping its aspect ratio, normalised, run
    through PP-OCRv4 recognition and greedily CTC-decoded. Give it a tight crop of the line, as a text
    detector would (a quarter of the font size around the ink): with wide margins the text shrinks in the 48
    rows and gets too few output columns per character. Taught in `tiling_vs_packing`."""
    return load_reader().read(image)


# ---------------------------------------------------------------------------------------------------------
# scores


def _squeeze(s: str) -> str:
    return "".join(str(s).split())


def _edit_table(a: str, b: str) -> np.ndarray:
    """Levenshtein table (len(a)+1, len(b)+1), one numpy row at a time (insertions by a running minimum)."""
    bb = np.array([ord(c) for c in b], np.int64)
    d = np.zeros((len(a) + 1, len(b) + 1), np.int64)
    d[0] = np.arange(len(b) + 1)
    j = np.arange(len(b) + 1)
    for i, ca in enumerate(a, 1):
        prev = d[i - 1]
        row = np.empty(len(b) + 1, np.int64)
        row[0] = i
        row[1:] = np.minimum(prev[1:] + 1, prev[:-1] + (bb != ord(ca)))  # deletion, substitution / match
        d[i] = np.minimum.accumulate(row - j) + j  # insertion: row[j] = min over k <= j of row[k] + j - k
    return d


def edit_distance(a: str, b: str) -> int:
    """Levenshtein distance between two strings (insertions, deletions, substitutions)."""
    return int(_edit_table(a, b)[-1, -1])


def char_accuracy(truth: str, reading: str) -> float:
    """1 - edit distance / length of the truth, spaces not counted, at least 0 (1 = every character read,
    0 = nothing). Taught in `tiling_vs_packing`."""
    t, r = _squeeze(truth), _squeeze(reading)
    if not t:
        raise ValueError("truth has no characters to read")
    return max(0.0, 1.0 - edit_distance(t, r) / len(t))


def alignment(truth: str, reading: str) -> dict:
    """One optimal alignment (least edits) of the two texts, spaces not counted. Returns dict: ``truth`` /
    ``reading`` (the squeezed texts), ``truth_ok`` / ``reading_ok`` (bool per character: matched exactly),
    ``inserted`` (bool per gap of the truth, len + 1: the reading has extra characters there) and ``missed``
    (per gap of the reading, len + 1: how many truth characters the reading lacks there)."""
    t, r = _squeeze(truth), _squeeze(reading)
    d = _edit_table(t, r)
    t_ok, r_ok = np.zeros(len(t), bool), np.zeros(len(r), bool)
    inserted, missed = np.zeros(len(t) + 1, bool), np.zeros(len(r) + 1, int)
    i, j = len(t), len(r)
    while i > 0 or j > 0:
        if i > 0 and j > 0 and d[i, j] == d[i - 1, j - 1] + (t[i - 1] != r[j - 1]):
            t_ok[i - 1] = r_ok[j - 1] = t[i - 1] == r[j - 1]
            i, j = i - 1, j - 1
        elif i > 0 and d[i, j] == d[i - 1, j] + 1:
            missed[j] += 1
            i -= 1
        else:
            inserted[i] = True
            j -= 1
    return dict(truth=t, reading=r, truth_ok=t_ok, reading_ok=r_ok, inserted=inserted, missed=missed)


def words_correct(truth: str, reading: str) -> tuple[int, int]:
    """(words read right, words) of the truth: a word is right when an optimal alignment of the two texts
    (spaces not counted, :func:`alignment`) matches every one of its characters with nothing inserted inside
    it. Taught in `tiling_vs_packing`."""
    words = str(truth).split()
    if not words:
        raise ValueError("truth has no words")
    a = alignment(truth, reading)
    right, start = 0, 0
    for w in words:
        end = start + len(w)
        right += bool(a["truth_ok"][start:end].all() and not a["inserted"][start + 1:end].any())
        start = end
    return right, len(words)


__all__ = ["WHEEL", "INSTALL_HINT", "ONNX_SHA256", "LINE_HEIGHT", "ReaderUnavailable", "Reader", "find_model",
           "load_reader", "reader_problem", "read_line", "edit_distance", "char_accuracy", "alignment",
           "words_correct"]
