"""The text recognizer (features.reader) and what it reads of each view (features.readability, viz.reading,
explore.reading_summary)."""

from __future__ import annotations

import importlib

import numpy as np
import pytest
from PIL import Image, ImageDraw

from anyres_tutorial import explore, features, tiling, viz
from anyres_tutorial.data import load_data_image
from anyres_tutorial.features import SOURCE, TILED, reader
from anyres_tutorial.features.readability import map_box
from anyres_tutorial.synthetic import font

LINE = "Packing keeps 1024 tokens at native resolution."


def _rendered(text: str = LINE, size: int = 20) -> tuple[Image.Image, dict]:
    """A line drawn with the synthetic images' font, and its piece (the truth) for features.read_piece."""
    im = Image.new("RGB", (round(font(size).getlength(text)) + 40, 3 * size), (253, 252, 248))
    d = ImageDraw.Draw(im)
    d.text((20, size), text, font=font(size), fill=(20, 20, 20))
    box = d.textbbox((20, size), text, font=font(size))
    return im, dict(size=size, text=text, box=box, x_src=features.x_height(size), line=0)


# ---------------------------------------------------------------------------------------------------------
# scores


def test_scores_by_hand():
    assert reader.edit_distance("kitten", "sitting") == 3
    assert reader.edit_distance("", "abc") == 3 and reader.edit_distance("abc", "") == 3
    assert features.char_accuracy("the cat", "thecat") == 1.0  # spaces are not counted
    assert features.char_accuracy("abcd", "abxd") == 0.75
    assert features.char_accuracy("ab", "abcdefgh") == 0.0  # never below zero
    assert features.words_correct("the quick brown fox", "the quik brownfox") == (3, 4)
    assert features.words_correct("one two", "") == (0, 2)
    a = features.alignment("ab cd", "abxcd")  # one insertion
    assert a["truth_ok"].all() and a["reading_ok"].tolist() == [True, True, False, True, True]
    assert a["inserted"].tolist() == [False, False, True, False, False]
    a = features.alignment("abcd", "abd")  # one character missed
    assert a["truth_ok"].tolist() == [True, True, False, True] and a["missed"].tolist() == [0, 0, 1, 0]
    with pytest.raises(ValueError, match="truth"):
        features.char_accuracy("  ", "x")


# ---------------------------------------------------------------------------------------------------------
# the model file


def test_missing_wheel_says_how_to_install(monkeypatch):
    real = importlib.util.find_spec
    monkeypatch.setattr(importlib.util, "find_spec",
                        lambda name, *a: None if name == reader.PACKAGE else real(name, *a))
    with pytest.raises(features.ReaderUnavailable, match="not installed") as e:
        reader.find_model()
    assert "pip install --no-deps --ignore-requires-python rapidocr_onnxruntime==1.4.4" in str(e.value)


def test_corrupt_model_file_is_refused(tmp_path, monkeypatch):
    folder = tmp_path / reader.PACKAGE / reader.ONNX_RELPATH[0]
    folder.mkdir(parents=True)
    (tmp_path / reader.PACKAGE / "__init__.py").write_text("raise ImportError('never imported')\n")
    (folder / reader.ONNX_RELPATH[1]).write_bytes(b"not an onnx file")
    monkeypatch.syspath_prepend(str(tmp_path))
    importlib.invalidate_caches()
    with pytest.raises(features.ReaderUnavailable, match="corrupt") as e:
        reader.find_model()
    assert "pip install --force-reinstall --no-deps --ignore-requires-python rapidocr_onnxruntime==1.4.4" \
        in str(e.value)


def test_the_installed_model_is_the_checked_one():
    path = reader.find_model()
    r = features.load_reader()
    assert r.path == path and len(r.characters) == 6625
    assert r.characters[-1] == " " and r.characters[1:5] != r.characters[-5:]


# ---------------------------------------------------------------------------------------------------------
# reading


def test_reads_a_line_rendered_here():
    im, piece = _rendered()
    b, m = piece["box"], 0.25 * piece["size"]  # a tight crop, as a text detector gives
    line = im.crop((b[0] - m, b[1] - m, b[2] + m, b[3] + m))
    got = features.read_line(line)
    assert features.char_accuracy(LINE, got) >= 0.95, got
    big = features.read_line(line.resize((line.width * 3, line.height * 3)))  # any height: resized to 48
    assert features.char_accuracy(LINE, big) >= 0.95, big
    blank = features.read_line(Image.new("RGB", (200, 40), (255, 255, 255)))
    assert features.char_accuracy(LINE, blank) < 0.1


def test_accuracy_falls_with_a_downscale_sweep():
    im, piece = _rendered(size=16)
    scales = [1.0, 0.7, 0.5, 0.35, 0.25, 0.18, 0.12]
    sweep = features.scale_sweep(im, piece, scales)
    acc = [d["accuracy"] for d in sweep]
    assert acc[0] >= 0.9 and acc[-1] <= 0.2, acc
    assert all(b <= a + 0.1 for a, b in zip(acc, acc[1:])), f"not monotone within noise: {acc}"
    xs = [d["x_patches"] for d in sweep]
    assert xs == sorted(xs, reverse=True)
    assert xs[0] == pytest.approx(features.x_height(16) / 14)


@pytest.mark.slow
def test_honest_baseline_body_text_of_the_text_page():
    """At source resolution the reader gets >= 95% of every body-text piece of the text page right (all of
    them, not a sample)."""
    image = load_data_image("text_page")
    info = features.print_sizes("text_page")
    rows = features.equal_budget({"text_page": image}, methods="internvl", capped_tokens=None)
    source = features.encoder_views(image, rows)[0]
    assert source["part"] == SOURCE
    body = [p for p in features.text_pieces("text_page") if p["size"] == info["body"]]
    reads = [features.read_piece(source, p) for p in body]
    chars = sum(d["chars"] for d in reads)
    assert chars >= 0.95 * info["chars"][info["body"]] - len(body)  # every body character is in a piece
    acc = sum(d["accuracy"] * d["chars"] for d in reads) / chars
    assert acc >= 0.95, f"body text read {acc:.1%} at source resolution"


# ---------------------------------------------------------------------------------------------------------
# the views


def test_lines_and_pieces_hold_the_drawn_text():
    info = features.print_sizes("text_page")
    lines = features.text_lines("text_page")
    words = sorted(w for r in info["records"] for w in r["text"].split())
    assert sorted(w for ln in lines for w in ln["text"].split()) == words
    body = [ln for ln in lines if ln["size"] == info["body"]]
    assert max(ln["box"][2] - ln["box"][0] for ln in body) < 1700 / 2, "a body line never spans both columns"
    pieces = features.text_pieces("text_page", piece_chars=24)
    assert sorted(w for p in pieces for w in p["text"].split()) == words
    sample = features.sample_pieces("text_page", max_chars=60)
    assert {p["size"] for p in sample} == {info["body"], info["smallest"]}
    with pytest.raises(ValueError, match="max_chars"):
        features.sample_pieces("text_page", max_chars=0)


def test_table_views_match_equal_budget_rows():
    images = {n: load_data_image(n) for n in ("text_page", "panorama")}
    rows = features.equal_budget(images, capped_tokens=1024)
    reads = features.readability(images, rows, max_chars=1)
    for name in images:
        own = [r for r in rows if r["image"] == name]
        got = {(d["method"], d["view"], d["part"]) for d in reads if d["image"] == name}
        want = {(None, SOURCE, SOURCE)}
        for r in own:
            if r["view"] != TILED:
                want.add((r["method"], r["view"], "packed"))
                continue
            pl = tiling.plan(r["method"], r["size"], **r["options"])
            if pl.tile_boxes:
                want.add((r["method"], TILED, "tiles"))
            for k in range(len(pl.global_views)):
                want.add((r["method"], TILED, "global view" if len(pl.global_views) == 1
                          else f"global view {k + 1}"))
        assert got == want
        for d in reads:  # the packed x-heights are the geometry of features.legibility
            if d["image"] == name and d["part"] == "packed":
                row = next(r for r in own if r["label"] == d["label"])
                leg = features.legibility([row], d["x_src"])[0]
                assert d["x_patches"] == pytest.approx(leg["x_patches"], rel=1e-9)
    summ = features.summarise(reads)
    assert {(s["image"], s["label"]) for s in summ} == {(d["image"], d["label"]) for d in reads}
    text = features.format_readability(reads, "text_page")
    assert all(d["label"] in text for d in reads if d["image"] == "text_page")


def test_tiles_are_stitched_back_like_the_canvas():
    """LLaVA-NeXT cuts its canvas into tiles: pasted back at their grid places they are the canvas, and a
    line crossing a tile border maps into it by the canvas's own scale."""
    image = load_data_image("text_page")
    rows = features.equal_budget({"text_page": image}, methods="llava_next", capped_tokens=None)
    tiles = next(v for v in features.encoder_views(image, rows) if v["part"] == "tiles")
    pl = tiling.plan("llava_next", image.size)
    canvas = tiling.apply(pl, image).canvas
    assert np.array_equal(np.asarray(tiles["pixels"]), np.asarray(canvas))
    cx0, cy0, cx1, cy1 = pl.content_box
    s = (cy1 - cy0) / image.height
    border_y = pl.tile_boxes[0][3]  # the first row of tiles ends here (canvas px)
    y = (border_y - cy0) / s  # the same place in the source
    box = (300, y - 8, 600, y + 8)
    mapped, sy = map_box(tiles, box)
    sx = (cx1 - cx0) / image.width
    want = (cx0 + box[0] * sx, cy0 + box[1] * s, cx0 + box[2] * sx, cy0 + box[3] * s)
    assert mapped == pytest.approx(want) and sy == pytest.approx(s)


def test_rule_of_thumb_finds_the_crossings():
    xs = np.geomspace(0.02, 1.0, 200)
    reads = [dict(x_patches=float(x), accuracy=float(x >= 0.2), chars=10) for x in xs]
    rule = features.rule_of_thumb(reads, levels=(0.5, 0.9), bins=40)
    assert np.all(np.diff(rule["fit"]) >= 0)
    assert 0.17 < rule["crossings"][0.5] < 0.23 and 0.17 < rule["crossings"][0.9] < 0.23
    assert features.rule_of_thumb(reads, levels=(0.99,))["crossings"][0.99] is not None
    low = [dict(d, accuracy=0.1) for d in reads]
    assert features.rule_of_thumb(low)["crossings"][0.5] is None
    with pytest.raises(ValueError, match="two readings"):
        features.rule_of_thumb(reads[:1])


def test_pictures():
    image = load_data_image("chart")
    rows = features.equal_budget({"chart": image}, methods="llava_next", capped_tokens=None)
    views = features.encoder_views(image, rows)
    pieces = features.sample_pieces("chart", max_chars=1)
    shown = [features.read_piece(v, p, keep_image=True) for v in views for p in pieces]
    fig = viz.reading_strips(shown)
    assert len(fig.axes) == len(shown)
    assert min(t.get_fontsize() for t in fig.texts) >= 9
    reads = [dict(d, line=None) for d in shown]
    rule = features.rule_of_thumb(reads, bins=4)
    fig = viz.reading_curve(reads, rule)
    assert fig.axes[0].get_xscale() == "log"
    with pytest.raises(ValueError, match="keep_image"):
        viz.reading_strips(reads[:0])


# ---------------------------------------------------------------------------------------------------------
# the explorer's card line


def test_reading_summary_for_the_explorer(monkeypatch):
    s = explore.reading_summary("text_page", "internvl")
    assert s["part"] == "tiles" and s["body"] >= 0.9 and "body text" in s["text"]
    assert s["body_x"] > s["small_x"] > 0
    assert explore.reading_summary("astronaut", "internvl") is None
    assert explore.reading_summary("icon", "internvl") is None  # draws no text
    with pytest.raises(ValueError, match="tiling method"):
        explore.reading_summary("text_page", "no_such_method")
    monkeypatch.setattr(features, "reader_problem", lambda: "missing; install it with:\n  pip install x")
    s = explore.reading_summary("chart", "ureader", {"score": "paper"})
    assert s["body"] is None and "pip install x" in s["text"]
