"""data/: README vs. files vs. metadata; each image loads at its documented size; regeneration is exact."""

from __future__ import annotations

import re
import shutil

import numpy as np
import pytest
from PIL import Image, features

import anyres_tutorial
from anyres_tutorial import data
from anyres_tutorial.images import DEFAULT_MAX_ASPECT, image_info, load_image

DATA = anyres_tutorial.DATA_DIR
ROW = re.compile(r"^\|\s*`([^`]+)`\s*\|\s*(\d+)\s*[×x]\s*(\d+)\s*\|([^|]+)\|([^|]+)\|([^|]+)\|\s*$")


def readme_rows() -> dict[str, dict]:
    rows = {}
    for line in (DATA / "README.md").read_text(encoding="utf-8").splitlines():
        m = ROW.match(line)
        if m:
            name, w, h, source, licence, purpose = m.groups()
            assert name not in rows, f"{name} listed twice in data/README.md"
            rows[name] = dict(
                size=(int(w), int(h)), source=source.strip(), licence=licence.strip(), purpose=purpose.strip()
            )
    return rows


def image_files() -> set[str]:
    return {p.name for p in DATA.iterdir() if p.is_file() and p.name != "README.md"}


def same_versions() -> bool:
    import PIL

    return data.RENDERED_WITH == {"pillow": PIL.__version__, "freetype2": features.version("freetype2")}


def test_readme_lists_exactly_the_files_and_the_metadata():
    rows = readme_rows()
    assert len(rows) >= 12
    assert set(rows) == image_files(), "data/README.md and the files in data/ disagree"
    assert set(rows) == {d.filename for d in data.IMAGES.values()}, "data/README.md and data.IMAGES disagree"
    for d in data.IMAGES.values():
        row = rows[d.filename]
        assert row["size"] == d.size, d.name
        assert row["licence"] == d.licence and row["purpose"] == d.purpose and row["source"] == d.source, (
            d.name
        )
        assert all(row[k] for k in ("source", "licence", "purpose")), d.name


@pytest.mark.parametrize("name", data.list_images())
def test_every_image_loads_at_its_documented_size(name):
    d = data.IMAGES[name]
    img = load_image(DATA / d.filename)
    assert img.mode == "RGB" and img.size == d.size
    assert data.load_data_image(name).size == d.size
    assert data.load_data_image(d.filename).size == d.size  # the file name works too
    assert np.asarray(img).std() > 5, "an image that is (almost) one flat colour"


def test_the_set_covers_what_the_tutorial_needs():
    sizes = {n: data.IMAGES[n].size for n in data.list_images()}
    assert data.list_images("synthetic") == [
        "chart",
        "icon",
        "panorama",
        "phone_screenshot",
        "strip",
        "text_page",
    ]
    assert len(data.list_images("photo")) >= 5
    w, h = sizes["strip"]
    assert h / w == 100 and h / w <= DEFAULT_MAX_ASPECT  # extreme, but it must still load
    assert sizes["panorama"][0] / sizes["panorama"][1] >= 4 and sizes["phone_screenshot"][1] / 600 >= 4
    assert max(sizes["icon"]) < 224  # smaller than any encoder tile
    assert image_info(DATA / "icon.png").mode == "RGBA"  # the alpha path of load_image gets used
    assert image_info(DATA / "camera.png").mode == "L"  # and the greyscale path


def test_icon_transparent_corner_is_composited_on_white():
    raw = np.asarray(Image.open(DATA / "icon.png"))
    assert raw[0, 0, 3] == 0  # the rounded corner is transparent in the file
    assert data.load_data_image("icon").getpixel((0, 0)) == (255, 255, 255)
    assert data.load_data_image("icon", background=(0, 0, 0)).getpixel((0, 0)) == (0, 0, 0)


def test_total_size_is_small():
    total = sum((DATA / f).stat().st_size for f in image_files())
    assert total < 8e6, f"data/ holds {total / 1e6:.1f} MB"


@pytest.mark.parametrize("name", data.list_images("synthetic"))
def test_regeneration_reproduces_the_committed_pixels(name):
    with Image.open(DATA / data.IMAGES[name].filename) as f:
        committed = np.asarray(f.convert(f.mode))
        mode = f.mode
    fresh = data.render(name)
    assert fresh.mode == mode and fresh.size == data.IMAGES[name].size
    fresh = np.asarray(fresh)
    np.testing.assert_array_equal(fresh, np.asarray(data.render(name)))  # deterministic within a process
    if same_versions():
        np.testing.assert_array_equal(fresh, committed)
    else:  # another FreeType may anti-alias glyph edges differently; everything else must still match
        diff = np.abs(fresh.astype(int) - committed.astype(int))
        assert diff.mean() < 2 and (diff == 0).mean() > 0.95, f"{name}: mean diff {diff.mean():.2f}"


def test_check_and_generate_detect_and_repair_a_changed_file(tmp_path):
    for d in data.IMAGES.values():
        if d.kind == "synthetic":
            shutil.copy(DATA / d.filename, tmp_path / d.filename)
    if same_versions():
        assert data.check(tmp_path) == []
    arr = np.asarray(Image.open(tmp_path / "strip.png")).copy()
    arr[5, 5] = 255 - arr[5, 5]
    Image.fromarray(arr).save(tmp_path / "strip.png")
    (tmp_path / "icon.png").unlink()
    assert data.check(tmp_path, names=["strip", "icon"]) == ["strip", "icon"]
    written = data.generate(tmp_path, names=["strip", "icon"])
    assert [p.name for p in written] == ["strip.png", "icon.png"]
    assert data.check(tmp_path, names=["strip", "icon"]) == []


def test_bad_names():
    with pytest.raises(ValueError, match="available"):
        data.load_data_image("no_such_image")
    with pytest.raises(TypeError):
        data.data_path(3)
    with pytest.raises(ValueError, match="photo"):
        data.render("astronaut")
    with pytest.raises(ValueError):
        data.list_images("video")
