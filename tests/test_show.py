"""``at.show(fn)``: the library's own source, docstrings cut to their first sentence, highlighted in HTML."""

from __future__ import annotations

import inspect

import pytest

import anyres_tutorial as at
from anyres_tutorial.encoder import vit
from anyres_tutorial.tiling import base


def test_show_gives_the_library_source_with_short_docstrings():
    s = at.show(vit.DinoViT.forward_packed)
    full = inspect.getsource(vit.DinoViT.forward_packed)
    assert "batch.split(y)" in s.text and "def forward_packed" in s.text
    assert s.text.count("\n") < full.count("\n")  # the long docstring is cut
    assert '"""Several images of different sizes as packed rows' in s.text and "(...)" in s.text
    assert s.title == "anyres_tutorial.encoder.vit.DinoViT.forward_packed"
    body = [line for line in full.splitlines() if "return" in line]
    assert all(line.strip() in s.text for line in body)  # no line of code is dropped
    html = s._repr_html_()
    assert "<span" in html and "select_best_resolution" not in html
    assert at.show(base.select_best_resolution, full_docstring=True).text.strip() == \
        inspect.getsource(base.select_best_resolution).strip()


def test_show_wraps_a_long_first_sentence_to_the_line_length():
    from anyres_tutorial.features import maps

    s = at.show(maps.roundtrip_resize)  # its first sentence runs over three source lines
    assert max(len(line) for line in s.text.splitlines()) <= 110
    assert "pixel for pixel. (...)" in s.text and "small.resize(image.size, resample)" in s.text


def test_show_refuses_what_has_no_source():
    with pytest.raises(TypeError, match="function, method or class"):
        at.show(42)
    with pytest.raises(TypeError, match="function, method or class"):
        at.show(len)
