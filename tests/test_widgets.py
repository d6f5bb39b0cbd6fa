"""The grid explorer widgets (`grid_explorer`), headless: set control values, assert on state and output.

A test fails if any widget callback raises or logs an exception (the ``no_callback_errors`` fixture captures
log records with exception info from every logger, and IPython's ``showtraceback``).
"""

from __future__ import annotations

import datetime
import io
import logging

import matplotlib.pyplot as plt
import pytest
from PIL import Image

from anyres_tutorial import explore, tiling
from anyres_tutorial.widgets import (
    PackingExplorer,
    TilingExplorer,
    figure_png,
    packing_explorer,
    tiling_explorer,
)

PNG_MAGIC = b"\x89PNG\r\n\x1a\n"


class _Collect(logging.Handler):
    def __init__(self):
        super().__init__(level=logging.WARNING)
        self.records = []

    def emit(self, record):
        if record.exc_info or "Traceback" in record.getMessage() or "Exception" in record.getMessage():
            self.records.append(record)


@pytest.fixture(autouse=True)
def no_callback_errors(monkeypatch):
    """Fail the test if a widget callback logs an exception (ipywidgets/traitlets/kernel loggers)."""
    handler = _Collect()
    loggers = [logging.getLogger(), logging.getLogger("traitlets"), logging.getLogger("ipywidgets")]
    for lg in loggers:
        lg.addHandler(handler)
    shown = []
    try:
        from IPython.core.interactiveshell import InteractiveShell

        monkeypatch.setattr(InteractiveShell, "showtraceback", lambda self, *a, **k: shown.append(a))
    except ImportError:  # pragma: no cover
        pass
    yield
    for lg in loggers:
        lg.removeHandler(handler)
    assert not handler.records, [r.getMessage() for r in handler.records]
    assert not shown, shown
    assert plt.get_fignums() == [], "the explorers must close every figure they draw"


def _png_size(b: bytes) -> tuple[int, int]:
    assert b[:8] == PNG_MAGIC, "picture is not a PNG"
    return Image.open(io.BytesIO(b)).size


def _upload(tx: TilingExplorer, name: str, content: bytes) -> None:
    tx.upload.value = ({"name": name, "type": "image/png", "size": len(content),
                        "content": memoryview(content),
                        "last_modified": datetime.datetime(2024, 1, 1, tzinfo=datetime.timezone.utc)},)


def _png_bytes(size, mode="RGB", color=(200, 30, 30)) -> bytes:
    buf = io.BytesIO()
    Image.new(mode, size, color if mode == "RGB" else 0).save(buf, "PNG")
    return buf.getvalue()


# ------------------------------------------------------------------------------------------ tiling explorer


def test_tiling_explorer_shows_what_explore_computes():
    tx = tiling_explorer(image="chart", method="llava_next")
    s = tx.state
    assert s["image"] == "chart" and s["image_size"] == (1920, 1080) and s["method"] == "llava_next"
    assert s["options"] == {"candidates": "v1.6", "unpad": "original", "variant": "original"}
    ref = explore.tiling_summary((1920, 1080), "llava_next")
    assert tx.last_result["llm_tokens"] == ref["llm_tokens"] == 1948
    assert "1948" in tx.numbers.value and "LLM tokens" in tx.numbers.value
    assert tx.message.value == ""
    w, h = _png_size(tx.pictures["Grid overlay"].value)
    assert w > 300 and h > 200
    assert tx.widget is not None and hasattr(tx, "_ipython_display_")


def test_changing_method_and_options_changes_numbers_and_picture():
    tx = TilingExplorer(image="chart", method="llava_next")
    numbers0, pic0 = tx.numbers.value, tx.pictures["Grid overlay"].value
    tx.method_dd.value = "ureader"
    assert set(tx.state["options"]) == {"anchors", "score"}  # controls rebuilt from method_options
    assert tx.last_result["grid"] == (3, 5) and tx.last_result["llm_tokens"] == 1040
    assert tx.numbers.value != numbers0 and "1040" in tx.numbers.value
    pic1 = tx.pictures["Grid overlay"].value
    assert pic1 != pic0
    tx._option_widgets["score"].value = "paper"
    assert tx.state["options"]["score"] == "paper"
    assert tx.last_result["grid"] == (3, 6) and tx.last_result["llm_tokens"] == 19 * 65
    assert tx.pictures["Grid overlay"].value != pic1
    tx.method_dd.value = "internvl"
    tx._option_widgets["max_num"].value = 6
    assert tx.last_result["grid"] == (1, 2) == tiling.plan("internvl", (1920, 1080), max_num=6).grid
    tx.method_dd.value = "deepseek_vl2"
    tx._option_widgets["images_in_prompt"].value = 3
    assert tx.last_result["grid"] == (1, 1) and tx.last_result["encoder_images"] == 2


@pytest.mark.parametrize("method", tiling.METHODS)
def test_every_tab_renders_for_every_method(method):
    tx = TilingExplorer(image="astronaut", method=method)
    for i, tab in enumerate(tx.TABS[:4]):
        tx.tabs.selected_index = i
        assert tx.state["tab"] == tab
        pic = tx.pictures[tab].value
        if tab == "Candidate scores" and method == "llava_mini":
            assert pic == b"" and "does not search candidates" in tx.scores_html.value
        else:
            _png_size(pic)
    if method == "ureader":
        assert "Srr" in tx.scores_html.value and "Sra" in tx.scores_html.value
    if method in ("llava_next", "deepseek_vl2"):
        assert "effective resolution" in tx.scores_html.value


def test_side_by_side_mode_compares_methods():
    tx = TilingExplorer(image="text_page", method="ureader", compare=("llava_next", "ureader"))
    tx._option_widgets["score"].value = "paper"
    tx.tabs.selected_index = tx.TABS.index("Side by side")
    assert [r["method"] for r in tx.last_compare] == ["llava_next", "ureader"]
    paper = explore.tiling_summary((1700, 2200), "ureader", score="paper")
    assert tx.last_compare[1]["llm_tokens"] == paper["llm_tokens"]  # the current method keeps its options
    pic2 = tx.pictures["Side by side"].value
    _png_size(pic2)
    tx.compare_select.value = ("template", "deepseek_vl2", "internvl", "llava_mini")
    assert [r["method"] for r in tx.last_compare] == ["template", "deepseek_vl2", "internvl", "llava_mini"]
    for m in tx.compare_select.value:
        assert f">{m}<" in tx.compare_table.value
    assert tx.pictures["Side by side"].value != pic2


def test_upload_valid_image():
    tx = TilingExplorer(image="chart", method="internvl")
    _upload(tx, "mine.png", _png_bytes((900, 300)))
    assert tx.message.value == ""
    assert tx.state["image"] == "upload: mine.png" and tx.state["image_size"] == (900, 300)
    assert tx.last_result["image_size"] == (900, 300)
    assert tx.last_result["grid"] == tiling.plan("internvl", (900, 300)).grid
    assert "upload: mine.png" in tx.image_dd.options


@pytest.mark.parametrize("kind", ["not_an_image", "truncated", "bomb", "empty"])
def test_bad_upload_shows_a_message_and_the_explorer_keeps_working(kind):
    tx = TilingExplorer(image="chart", method="llava_next")
    before = tx.last_result["llm_tokens"]
    good = _png_bytes((800, 600))
    content = {
        "not_an_image": b"%PDF-1.4 this is not an image at all" * 10,
        "truncated": good[: len(good) // 2],
        "bomb": _png_bytes((10_000, 10_000), mode="1"),  # 100 Mpx in a few kB: refused from the header
        "empty": b"",
    }[kind]
    _upload(tx, f"{kind}.png", content)
    msg = tx.message.value
    assert "Upload refused" in msg and f"{kind}.png" in msg
    expected = {"not_an_image": "not an image", "truncated": "truncated", "bomb": "decompression bomb",
                "empty": "empty"}[kind]
    assert expected in msg
    assert "Traceback" not in msg
    assert tx.state["image"] == "chart" and tx.last_result["llm_tokens"] == before
    # still works: the next change updates and clears the message
    tx.method_dd.value = "ureader"
    assert tx.message.value == "" and tx.last_result["method"] == "ureader"
    _upload(tx, "ok.png", good)
    assert tx.state["image_size"] == (800, 600) and tx.message.value == ""


def test_image_the_methods_refuse_is_a_message_not_a_crash():
    tx = TilingExplorer(image="chart", method="llava_next")
    _upload(tx, "needle.png", _png_bytes((10, 1200)))  # 1:120: beyond the one aspect limit (100:1)
    assert "aspect ratio" in tx.message.value and "keeps showing" in tx.message.value
    assert tx.last_result["image_size"] == (1920, 1080)  # the explorer kept its image
    tx.image_dd.value = "strip"  # 20x2000 = 100:1 is still allowed
    assert tx.message.value == "" and tx.last_result["image_size"] == (20, 2000)
    _upload(tx, "dot.png", _png_bytes((1, 1)))  # loads, but LLaVA-Mini cannot split 1 pixel into 2x2 blocks
    tx.method_dd.value = "llava_mini"
    assert "too small to split" in tx.message.value and tx.last_result is None
    assert tx.numbers.value == "" and tx.pictures["Grid overlay"].value == b""


def test_tiling_explorer_bad_arguments():
    with pytest.raises(ValueError, match="unknown data image"):
        TilingExplorer(image="nope")
    with pytest.raises(ValueError, match="unknown tiling method"):
        TilingExplorer(method="navit")
    with pytest.raises(ValueError, match="unknown tiling method"):
        TilingExplorer(compare=("llava_next", "qwen"))


# ------------------------------------------------------------------------------------------ packing explorer


def test_packing_explorer_shows_rows_padding_and_tiling_tokens():
    px = packing_explorer(images=("astronaut", "chart", "panorama", "phone_screenshot", "icon"), max_len=512)
    r = px.last_result
    assert r["lengths"] == [256, 252, 245, 217, 12] and px.state["strategy"] == "ffd"
    ref = explore.packing_summary([(512, 512), (1920, 1080), (3000, 600), (600, 2400), (64, 48)], max_len=512)
    assert r["rows"] == ref["rows"] and r["tiling_llm_tokens"] == ref["tiling_llm_tokens"]
    assert f"{r['report']['padding_fraction']:.1%}" in px.numbers.value
    assert str(r["tiling_encoder_tokens"]) in px.numbers.value
    pic0, numbers0 = px.pictures["Packed rows"].value, px.numbers.value
    _png_size(pic0)
    px.strategy.value = "next_fit"
    assert px.last_result["rows"] == [[0, 1], [2, 3, 4]]
    assert px.numbers.value != numbers0 and px.pictures["Packed rows"].value != pic0
    px.tiling_dd.value = "internvl"
    assert px.last_result["tiling_llm_tokens"] == sum(
        tiling.plan("internvl", s).num_tokens for s in [(512, 512), (1920, 1080), (3000, 600), (600, 2400),
                                                        (64, 48)])
    px.tabs.selected_index = 2
    _png_size(px.pictures["Packing vs tiling"].value)


def test_packing_mask_tab_dense_and_block_views():
    px = PackingExplorer(images=("astronaut", "chart", "icon"), max_len=512, strategy="next_fit")
    px.tabs.selected_index = px.TABS.index("Mask of one row")
    m0 = px.pictures["Mask of one row"].value
    _png_size(m0)
    assert px.row.max == len(px.last_result["rows"]) - 1 == 1
    px.row.value = 1
    m1 = px.pictures["Mask of one row"].value
    assert m1 != m0
    px.max_len.value = 1024  # > 512 tokens: the FlexAttention block view
    assert px.row.max == 0 and px.row.value == 0
    _png_size(px.pictures["Mask of one row"].value)
    assert px.pictures["Mask of one row"].value not in (m0, m1)


def test_packing_errors_are_messages():
    px = PackingExplorer(images=("astronaut", "chart"), max_len=512, budget=256)
    px.max_len.value = 64  # below the 256-token images
    assert "longer than a row" in px.message.value and px.last_result is None
    assert px.pictures["Packed rows"].value == b""
    px.max_len.value = 512
    assert px.message.value == "" and px.last_result["max_len"] == 512
    px.images_sel.value = ()
    assert "empty" in px.message.value
    px.images_sel.value = ("coffee",)
    assert px.message.value == "" and px.last_result["images"][0]["name"] == "coffee"
    for rule in ("qwen2_vl", "siglip2_naflex", "pixtral"):
        px.rule_dd.value = rule
        px.max_len.value = 8192
        assert px.last_result["rule"] == rule and px.message.value == ""


def test_figure_png_closes_the_figure():
    fig, ax = plt.subplots()
    ax.plot([0, 1])
    b = figure_png(fig)
    _png_size(b)
    assert not plt.fignum_exists(fig.number)


# ------------------------------------------------------------------------------------------ for a projector


def test_refused_upload_leaves_the_counter_on_accepted_files():
    tx = TilingExplorer(image="chart", method="llava_next")
    assert "100 MB" in tx.upload.description
    _upload(tx, "bad.png", b"not an image")
    assert "Upload refused" in tx.message.value and tx.upload.value == ()
    _upload(tx, "ok.png", _png_bytes((800, 600)))
    assert len(tx.upload.value) == 1 and tx.state["image"] == "upload: ok.png"
    _upload(tx, "bad2.png", b"still not an image")
    assert [f["name"] for f in tx.upload.value] == ["ok.png"]


def test_error_states_hide_the_picture_and_keep_the_table():
    px = PackingExplorer(images=("astronaut", "chart", "icon"), max_len=512)
    px.rule_dd.value = "pixtral"  # no token budget: the big images exceed max_len 512
    assert px.last_result is None and "longer than a row" in px.message.value
    assert px.pictures["Packed rows"].layout.display == "none"
    assert "does not fit" in px.numbers.value and "icon" in px.numbers.value
    px.max_len.value = 8192
    assert px.message.value == "" and px.pictures["Packed rows"].layout.display is None
    tx = TilingExplorer(image="chart")
    _upload(tx, "dot.png", _png_bytes((1, 1)))
    tx.method_dd.value = "llava_mini"
    assert tx.pictures["Grid overlay"].layout.display == "none"


def test_pictures_are_drawn_for_the_reported_width_and_presentation_mode_enlarges():
    tx = TilingExplorer(image="chart", method="llava_mini")
    assert "blocks of 960×540 px, each scaled to 336×336" in tx.numbers.value
    assert "(122, 116, 104)" not in tx.numbers.value and "#7a7468" in tx.numbers.value
    pic = tx.pictures["Grid overlay"]
    for width in (420, 900, 1500):
        pic.width = width  # what the browser's ResizeObserver reports
        w, _ = _png_size(pic.value)
        assert width * 0.6 <= w <= width, (width, w)  # drawn for the column, never wider
        assert pic.report["drawn_for"] == width
        assert not (pic.report["overlaps"] or pic.report["collapsed"] or pic.report["small"]), pic.report
    assert tx.pictures["LLM tokens"].width == 1500 or tx.width == 1500  # one width for every tab
    assert "font-size:13px" in tx.numbers.value
    tx.presentation.value = True
    try:
        assert "font-size:18px" in tx.numbers.value and "anyres-present" in tx.widget._dom_classes
        px = PackingExplorer(images=("astronaut", "chart"))  # one preset: a new explorer starts presenting
        assert px.presentation.value and "anyres-present" in px.widget._dom_classes
    finally:
        tx.presentation.value = False
    assert not px.presentation.value  # ... and follows the switch of any other explorer
    assert set(tx.options) == set(tx.state["options"])
    assert px.images_sel.rows == len(px.images_sel.options)  # every selected image visible
    assert "Ctrl/Cmd-click" in px.widget.children[1].children[1].value


@pytest.mark.parametrize("width", [400, 560, 900, 1500])
def test_every_tab_of_both_explorers_is_laid_out_without_overlaps(width):
    """The layout check of each drawn picture: no two texts overlap, no text cut off, no collapsed axes,
    every text >= 10 pt, the picture at least 60% of the column and never wider."""
    for ex in (TilingExplorer(image="chart", method="llava_next"), PackingExplorer()):
        ex.pictures[ex.TABS[0]].width = width
        for i, tab in enumerate(ex.TABS):
            ex.tabs.selected_index = i
            pic = ex.pictures[tab]
            r = pic.report
            assert pic.value and not ex.message.value, (tab, ex.message.value)
            problems = {k: r[k] for k in ("overlaps", "outside", "collapsed", "small") if r[k]}
            assert not problems, (width, tab, problems)
            w, _ = _png_size(pic.value)
            assert w <= width and (w >= 0.6 * width or tab in ("Mask of one row",)), (width, tab, w)


def test_fit_figure_finds_overlaps_and_makes_room():
    from anyres_tutorial.viz import fit

    fig, ax = plt.subplots(figsize=(6, 1.2))
    ax.set_yticks(range(12), [f"label {i}" for i in range(12)])  # twelve rows in 1.2 inches: stacked
    fig.canvas.draw()
    assert fit.layout_problems(fig)["overlaps"]
    report = fit.fit_figure(fig, 400)
    assert not report["overlaps"] and report["size"][0] == 400 and report["size"][1] > 1.2 * 96
    plt.close(fig)
    fig, ax = plt.subplots(figsize=(9, 6))
    ax.text(0.5, 0.5, "small", fontsize=7)
    report = fit.fit_figure(fig, 500)
    assert min(t.get_fontsize() for t in fit.texts(fig)) >= 10 and not report["small"]
    plt.close(fig)


def test_packing_explorer_bad_values_are_clear_errors():
    for kw, word in [({"budget": 5}, "budget"), ({"max_len": 10**6}, "max_len"), ({"rule": "nope"}, "rule"),
                     ({"strategy": "best"}, "strategy"), ({"images": "chart"}, "images"),
                     ({"images": ("nope",)}, "images"), ({"tiling_method": "nope"}, "nope"),
                     ({"budget": 1.5}, "budget")]:
        with pytest.raises(ValueError, match=word):
            PackingExplorer(**kw)


def _all_tabs(ex) -> None:
    for i, tab in enumerate(ex.TABS):
        ex.tabs.selected_index = i
        assert not ex.message.value, (ex.state, tab, ex.message.value)
        assert ex.pictures[tab].value or tab == "Candidate scores", (ex.state, tab)


def test_every_data_image_on_every_tab_of_both_explorers():
    from anyres_tutorial import data

    tx = TilingExplorer(compare=("template", "llava_next", "ureader"))
    for name in data.list_images():
        tx.image_dd.value = name
        _all_tabs(tx)
    px = PackingExplorer()
    for name in data.list_images():
        px.images_sel.value = (name,)
        _all_tabs(px)


@pytest.mark.parametrize("size", [(401, 2000), (20, 2000)])
def test_tall_uploads_work_on_every_tab_and_the_dropdown_follows_the_card(size):
    tx = TilingExplorer(image="chart")
    _upload(tx, "tall.png", _png_bytes(size))
    assert tx.image_dd.value == "upload: tall.png"
    assert f"{size[0]}×{size[1]}" in tx.numbers.value  # the card shows the image the dropdown names
    _all_tabs(tx)


def test_strip_side_by_side():
    tx = TilingExplorer(image="strip")  # a tall data image: the side-by-side panels draw a 5-px-wide copy
    tx.tabs.selected_index = tx.TABS.index("Side by side")
    assert not tx.message.value and tx.pictures["Side by side"].value


def test_a_drawing_error_is_shown_in_the_message_pane(monkeypatch):
    from anyres_tutorial import viz

    tx = TilingExplorer(image="chart")

    def broken(*a, **k):
        raise RuntimeError("the picture broke")

    monkeypatch.setattr(viz, "token_strip", broken)
    tx.tabs.selected_index = tx.TABS.index("LLM tokens")
    assert "the picture broke" in tx.message.value and "RuntimeError" in tx.message.value
    assert not tx.pictures["LLM tokens"].value  # hidden, no stale picture
    tx.method_dd.value = "ureader"  # the card still follows the dropdown
    assert "ureader" in tx.numbers.value
    px = PackingExplorer()
    monkeypatch.setattr(viz, "packed_rows", broken)
    px.budget.value = 128
    assert "the picture broke" in px.message.value


def test_picture_moves_below_the_controls_rather_than_shrinking():
    """In a notebook narrower than controls + picture the row wraps, and the picture column takes the
    width left: the picture is drawn for it (text >= 10 pt), never shrunk."""
    from anyres_tutorial.widgets.common import MIN_PICTURE_PX

    for ex in (TilingExplorer(image="chart"), PackingExplorer(images=("astronaut", "chart"))):
        assert "wrap" in ex.widget.layout.flex_flow
        column = ex.widget.children[-1].layout
        assert int(column.flex.split()[-1].removesuffix("px")) >= MIN_PICTURE_PX
        assert column.max_width == "100%"


def test_presentation_text_grows_with_the_column():
    from anyres_tutorial.widgets.common import (
        MIN_FONT_PT,
        MIN_PICTURE_PX,
        PRESENT_FULL_PX,
        PRESENTATION_FONT_PT,
        picture_font_pt,
    )

    assert picture_font_pt(1500, False) == MIN_FONT_PT == picture_font_pt(MIN_PICTURE_PX, True)
    assert picture_font_pt(PRESENT_FULL_PX, True) == PRESENTATION_FONT_PT == picture_font_pt(1900, True)
    sizes = [picture_font_pt(w, True) for w in range(MIN_PICTURE_PX, PRESENT_FULL_PX + 1, 20)]
    assert sizes == sorted(sizes)
