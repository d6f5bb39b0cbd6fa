"""The grid explorer (`grid_explorer`): interactive tiling and packing explorers built from ipywidgets.

    from anyres_tutorial.widgets import tiling_explorer, packing_explorer
    tiling_explorer()      # last expression of a cell: the explorer shows itself
    packing_explorer()

The widgets hold no logic: every number comes from the pure functions of :mod:`anyres_tutorial.explore` and
every picture from :mod:`anyres_tutorial.viz`; controls are wired to them with ``.observe``. Pictures are
rendered to PNG (``ipywidgets.Image``) and the matplotlib figure is closed right away, so figures never pile
up and the same code works in JupyterLab, in a headless test and in nbconvert.

Errors the user can cause (a bad upload, an image the methods refuse, ``max_len`` below an image's tokens)
are shown as a message inside the explorer, which keeps working; anything else is a bug and propagates.
Each explorer exposes ``.widget`` (display it), ``.state`` (the current choices), ``.last_result`` (what the
pure functions returned) and ``.message`` (the HTML widget with the last error, empty when all is well).
Sizes are (width, height) everywhere.
"""

from __future__ import annotations

import html
import io
from typing import Any

import ipywidgets as W
import matplotlib.pyplot as plt

from . import explore, tiling, viz
from .images import ImageLoadError, load_image
from .viz._common import ENCODER_COLOR, LLM_COLOR, PACKED_COLOR, subplots, wh

__all__ = ["TilingExplorer", "PackingExplorer", "tiling_explorer", "packing_explorer", "figure_png"]

DPI = 80
_USER_ERRORS = (ValueError, TypeError)  # documented bad-input errors of the library: shown as a message


def figure_png(fig, dpi: int = DPI) -> bytes:
    """PNG bytes of a matplotlib figure; the figure is closed afterwards (so figures do not pile up)."""
    try:
        buf = io.BytesIO()
        fig.savefig(buf, format="png", dpi=dpi, bbox_inches="tight")
        return buf.getvalue()
    finally:
        plt.close(fig)


def _image_widget() -> W.Image:
    return W.Image(format="png", layout=W.Layout(max_width="100%", height="auto"))


def _error_html(text: str) -> str:
    return (f'<div style="color:#b00020;background:#fdecea;border:1px solid #f5c2c7;padding:6px 10px;'
            f'border-radius:4px;"><b>⚠</b> {html.escape(text)}</div>')


def _table_html(headers: list[str], rows: list[list[Any]], highlight: list[bool] | None = None) -> str:
    th = "".join(f'<th style="padding:2px 8px;text-align:right">{html.escape(h)}</th>' for h in headers)
    body = []
    for i, r in enumerate(rows):
        style = ' style="background:#e6f4ea;font-weight:bold"' if highlight and highlight[i] else ""
        tds = "".join(f'<td style="padding:2px 8px;text-align:right">{html.escape(str(c))}</td>' for c in r)
        body.append(f"<tr{style}>{tds}</tr>")
    return (f'<table style="border-collapse:collapse;font-size:12px"><thead><tr>{th}</tr></thead>'
            f'<tbody>{"".join(body)}</tbody></table>')


def _method_options() -> list[str]:
    """The registered tiling methods' names (the numbers card shows each one's display name)."""
    return list(tiling.METHODS)


# ----------------------------------------------------------------------------------------------------------
# tiling explorer


class TilingExplorer:
    """Pick an image (from data/ or uploaded) and a tiling method with its options; see the grid, the
    encoder images, the LLM token layout, the per-candidate scores, and a side-by-side comparison.

    Every registered tiling method is offered (``tiling.METHODS``, labelled with ``tiling.title``), with the
    controls its ``CONTROLS`` lists; ``method`` defaults to ``tiling.DEFAULT_METHOD`` and ``compare`` (the
    side-by-side methods) to every registered method. Tabs render lazily (only the visible one).
    ``state``: image, image_size, method, options, tab, compare. ``last_result``:
    ``explore.tiling_summary(...)`` of the current choice; ``last_compare``: the rows of
    ``explore.compare_methods`` last shown in the side-by-side tab. Used by `grid_explorer`.
    """

    TABS = ("Grid overlay", "Encoder images", "LLM tokens", "Candidate scores", "Side by side")

    def __init__(self, image: str | None = None, method: str = tiling.DEFAULT_METHOD,
                 compare: tuple | None = None):
        from . import data

        self._data = data
        names = data.list_images()
        image = image if image is not None else ("chart" if "chart" in names else names[0])
        if image not in names:
            raise ValueError(f"unknown data image {image!r}; choose one of {names}")
        compare = tuple(tiling.METHODS) if compare is None else tuple(compare)
        for m in (method, *compare):
            explore._check_method(m)
        self._images: dict[str, Any] = {}  # name -> PIL image (data images loaded on first use, uploads)
        self._cache: dict[tuple, Any] = {}
        self.last_result: dict | None = None
        self.last_compare: list[dict] | None = None
        self._build_controls(names, image, method)
        self._build_tabs(compare)
        self.widget = self._layout()
        self._build_options()
        self.image_dd.observe(self._on_change, names="value")
        self.method_dd.observe(self._on_method, names="value")
        self.upload.observe(self._on_upload, names="value")
        self.tabs.observe(self._on_tab, names="selected_index")
        self.compare_select.observe(self._on_change, names="value")
        self.update()

    def _build_controls(self, names: list[str], image: str, method: str) -> None:
        """The image, upload and method pickers, the options box and the numbers / message panes."""
        self.image_dd = W.Dropdown(options=names, value=image, description="Image",
                                   layout=W.Layout(width="300px"))
        self.upload = W.FileUpload(accept="image/*", multiple=False, description="Upload image",
                                   layout=W.Layout(width="300px"))
        self.method_dd = W.Dropdown(options=_method_options(), value=method, description="Method",
                                    layout=W.Layout(width="300px"))
        self.method_dd.add_class("anyres-method")
        self.options_box = W.VBox(layout=W.Layout(width="340px"))
        self._option_widgets: dict[str, W.Widget] = {}
        self.message = W.HTML()
        self.message.add_class("anyres-message")
        self.numbers = W.HTML(layout=W.Layout(min_width="360px", max_width="560px"))
        self.numbers.add_class("anyres-tiling-numbers")

    def _build_tabs(self, compare: tuple) -> None:
        """One picture per tab, the score table under the scores, the method picker of the comparison."""
        self.pictures = {t: _image_widget() for t in self.TABS}
        self.scores_html = W.HTML()
        self.compare_select = W.SelectMultiple(options=_method_options(), value=compare, rows=6,
                                               description="Compare", layout=W.Layout(width="300px"))
        self.compare_table = W.HTML()
        self.compare_table.add_class("anyres-compare-table")
        pages = [W.VBox([self.pictures[t]]) for t in self.TABS[:3]]
        pages.append(W.VBox([self.pictures["Candidate scores"], self.scores_html]))
        pages.append(W.VBox([W.HBox([self.compare_select, self.compare_table]),
                             self.pictures["Side by side"]]))
        self.tabs = W.Tab(children=pages)
        for i, t in enumerate(self.TABS):
            self.tabs.set_title(i, t)

    def _layout(self) -> W.VBox:
        help_html = W.HTML('<div style="line-height:1.4"><small>Pick an image (or upload your own), '
                           "a tiling method and its options. Tabs: "
                           "the cut canvas · what the ViT sees · what the LLM receives · why this grid won · "
                           "several methods side by side.</small></div>")
        controls = W.VBox([self.image_dd, self.upload, self.method_dd, self.options_box],
                          layout=W.Layout(width="350px", margin="0 16px 0 0"))
        box = W.VBox([help_html, W.HBox([controls, self.numbers], layout=W.Layout(flex_flow="row wrap")),
                      self.message, self.tabs])
        box.add_class("anyres-tiling-explorer")
        return box

    # --- plumbing ------------------------------------------------------------------------------------
    def _ipython_display_(self):
        from IPython.display import display

        display(self.widget)

    def _build_options(self) -> None:
        """One control per entry of the current method's ``CONTROLS`` (``explore.option_controls``)."""
        for w in self._option_widgets.values():
            w.unobserve(self._on_change, names="value")
        self._option_widgets = {}
        style = {"description_width": "130px"}
        for name, spec in explore.option_controls(self.method_dd.value).items():
            if spec["kind"] == "choice":
                w = W.Dropdown(options=spec["choices"], value=spec["default"], description=name, style=style,
                               layout=W.Layout(width="330px"))
            else:
                w = W.BoundedIntText(value=spec["default"], min=spec["min"], max=spec["max"], step=1,
                                     description=name, style=style, layout=W.Layout(width="220px"))
            w.add_class(f"anyres-opt-{name}")
            w.observe(self._on_change, names="value")
            self._option_widgets[name] = w
        self.options_box.children = list(self._option_widgets.values())

    def image(self):
        """The current image as an RGB PIL image (data images are loaded once)."""
        name = self.image_dd.value
        if name not in self._images:
            self._images[name] = self._data.load_data_image(name)
        return self._images[name]

    @property
    def state(self) -> dict:
        img = self._images.get(self.image_dd.value)
        size = tuple(img.size) if img is not None else tuple(self._data.IMAGES[self.image_dd.value].size)
        return {"image": self.image_dd.value, "image_size": size, "method": self.method_dd.value,
                "options": {k: w.value for k, w in self._option_widgets.items()},
                "tab": self.TABS[self.tabs.selected_index or 0], "compare": tuple(self.compare_select.value)}

    def _key(self) -> tuple:
        s = self.state
        return (s["image"], s["method"], tuple(sorted((k, repr(v)) for k, v in s["options"].items())))

    # --- callbacks -----------------------------------------------------------------------------------
    def _on_method(self, change) -> None:
        self._build_options()
        self.update()

    def _on_change(self, change) -> None:
        self.update()

    def _on_tab(self, change) -> None:
        self._render_tab()

    def _on_upload(self, change) -> None:
        files = change["new"]
        if not files:
            return
        f = files[-1]
        name = f"upload: {f.get('name', 'image')}"
        try:
            img = load_image(bytes(f["content"]))
        except (ImageLoadError, TypeError) as e:
            reason = getattr(e, "reason", str(e))
            self.message.value = _error_html(f"Upload refused ({f.get('name', 'file')}): {reason}. "
                                             f"The explorer keeps showing {self.image_dd.value!r}.")
            return
        self._images[name] = img
        if name not in self.image_dd.options:
            self.image_dd.options = [*self.image_dd.options, name]
        if self.image_dd.value == name:
            self._cache.clear()
            self.update()
        else:
            self.image_dd.value = name  # triggers update()

    # --- computing and drawing -----------------------------------------------------------------------
    def update(self) -> None:
        """Recompute the numbers for the current choice and redraw the visible tab."""
        s = self.state
        try:
            img = self.image()
            res = explore.tiling_summary(img.size, s["method"], **s["options"])
        except _USER_ERRORS as e:
            self.last_result = None
            self.message.value = _error_html(f"{s['method']} on {s['image']}: {e}")
            self.numbers.value = ""
            for p in self.pictures.values():
                p.value = b""
            return
        self.last_result = res
        self._render_tab()  # draw first, so the picture and the numbers change together
        self.message.value = ""
        self.numbers.value = self._numbers_html(res)

    def _numbers_html(self, r: dict) -> str:
        rows, cols = r["grid"]
        pad_tok = (f"{r['useful_tokens']} content + {r['padding_tokens']} padding + "
                   f"{r['thumbnail_tokens']} thumbnail")
        lines = [
            ("image (W×H)", wh(r["image_size"])),
            ("grid (rows×cols)",
             f"{rows}×{cols} tiles of {r['tile_size']} px, canvas {wh(r['canvas_size'])}"),
            ("global view(s)", ", ".join(r["global_views"]) + (f" ({r['global_position']} the tiles)"
                                                                 if r["global_position"] else "") or "none"),
            ("encoder images", f"{r['encoder_images']}"),
            ("encoder tokens", f"{r['encoder_tokens']} = {pad_tok}"),
            ("LLM tokens", f"{r['llm_tokens']}"),
            ("padding fraction", f"{r['padding_fraction']:.1%} of encoder pixels"),
        ]
        body = "".join(f'<tr><td style="padding:1px 8px 1px 0;color:#555">{html.escape(k)}</td>'
                       f'<td class="anyres-{k.split(" (")[0].replace(" ", "-")}">'
                       f"<b>{html.escape(v)}</b></td></tr>" for k, v in lines)
        return (f'<div style="border:1px solid #ddd;border-radius:6px;padding:6px 10px;background:#fafafa">'
                f'<b>{html.escape(r["method"])}</b> <span style="color:#555">{html.escape(r["title"])}</span>'
                f'<table style="font-size:13px">{body}</table>'
                f'<small style="color:#555">LLM tokens = {html.escape(r["token_formula"])}</small></div>')

    def _render_tab(self) -> None:
        if self.last_result is None:
            return
        tab = self.TABS[self.tabs.selected_index or 0]
        key = (*self._key(), tab, tuple(self.compare_select.value) if tab == "Side by side" else ())
        if key not in self._cache:
            self._cache[key] = self._draw(tab)
        png, extra = self._cache[key]
        self.pictures[tab].value = png
        if tab == "Candidate scores":
            self.scores_html.value = extra
        elif tab == "Side by side":
            self.compare_table.value = extra

    def _draw(self, tab: str) -> tuple[bytes, str]:
        r = self.last_result
        plan, img = r["plan"], self.image()
        if tab == "Grid overlay":
            return figure_png(viz.grid_overlay(plan, img)), ""
        if tab == "Encoder images":
            return figure_png(viz.tile_montage(tiling.apply(plan, img), plan=plan)), ""
        if tab == "LLM tokens":
            return figure_png(viz.token_strip(plan)), ""
        if tab == "Candidate scores":
            return self._draw_scores(r)
        return self._draw_compare()

    def _draw_scores(self, r: dict) -> tuple[bytes, str]:
        """The method's score table (``tiling.score_table``) and its picture (``viz.score_picture``)."""
        table = r["score_table"]
        fig = viz.score_picture(r["plan"])
        rows = _table_html(list(table.columns), [list(x) for x in table.rows], list(table.chosen)) \
            if table.rows else ""
        png = figure_png(fig) if fig is not None else b""
        return png, f"<p><small>{html.escape(table.rule)}</small></p>{rows}"

    def _draw_compare(self) -> tuple[bytes, str]:
        s = self.state
        methods = list(s["compare"]) or [s["method"]]
        opts = {s["method"]: s["options"]}
        img = self.image()
        rows = explore.compare_methods(img.size, methods, opts)
        self.last_compare = rows
        n = len(rows)
        ncols = min(3, n)
        nrows = -(-n // ncols)
        fig, axes = subplots(nrows, ncols, figsize=(5.2 * ncols, 4.4 * nrows), squeeze=False)
        for ax in axes.ravel()[n:]:
            ax.axis("off")
        for ax, row in zip(axes.ravel(), rows):
            m = row["method"]
            plan = tiling.plan(m, img.size, **opts.get(m, {}))
            viz.grid_overlay(plan, img, ax=ax, title=(
                f"{m}: {row['grid'][0]}×{row['grid'][1]} tiles of {row['tile_size']} px\n"
                f"{row['encoder_images']} encoder images, {row['llm_tokens']} LLM tokens, "
                f"padding {row['padding_fraction']:.0%}"))
        fig.suptitle(f"The same {wh(img.size)} image, cut by {n} methods (each with its default options"
                     f"{'; ' + s['method'] + ' with the options above' if s['method'] in methods else ''})",
                     fontsize=11)
        table = _table_html(
            ["method", "grid (rows×cols)", "tile", "canvas (W×H)", "encoder images", "encoder tokens",
             "LLM tokens", "padding"],
            [[r["method"], f"{r['grid'][0]}×{r['grid'][1]}", r["tile_size"], wh(r["canvas_size"]),
              r["encoder_images"], r["encoder_tokens"], r["llm_tokens"], f"{r['padding_fraction']:.1%}"]
             for r in rows])
        return figure_png(fig), table


def tiling_explorer(image: str | None = None, method: str = tiling.DEFAULT_METHOD,
                    compare: tuple | None = None) -> TilingExplorer:
    """The tiling explorer (`grid_explorer`); return it from a cell (or ``display`` it) to show it."""
    return TilingExplorer(image=image, method=method, compare=compare)


# ----------------------------------------------------------------------------------------------------------
# packing explorer


def _tokens_bars(summary: dict):
    """Grouped bars per image: packed tokens vs the tiling method's encoder and LLM tokens (minimal picture
    owned by the explorer; numbers from ``explore.packing_summary``)."""
    import numpy as np

    ims = summary["images"]
    y = np.arange(len(ims))
    fig, ax = subplots(figsize=(9, 0.75 * len(ims) + 1.6))
    h = 0.27
    series = [("packed (native resolution)", [r["tokens"] for r in ims], PACKED_COLOR),
              (f"{summary['tiling_method']}: encoder tokens", [r["tiling_encoder_tokens"] for r in ims],
               ENCODER_COLOR),
              (f"{summary['tiling_method']}: LLM tokens", [r["tiling_llm_tokens"] for r in ims], LLM_COLOR)]
    for k, (label, vals, color) in enumerate(series):
        ax.barh(y + (k - 1) * h, vals, height=h, color=color, label=label)
        for yi, v in zip(y, vals):
            ax.text(v, yi + (k - 1) * h, f" {v}", va="center", fontsize=7)
    ax.set_yticks(y, [f"{r['name']}\n{wh(r['size'])}" for r in ims], fontsize=8)
    ax.invert_yaxis()
    ax.set_xlabel("tokens per image")
    ax.legend(fontsize=8, loc="lower right")
    ax.spines[["top", "right"]].set_visible(False)
    s = summary
    ax.set_title(f"Packing ({s['rule']}, budget {s['budget']}) vs tiling ({s['tiling_method']}): "
                 f"{s['packed_tokens']} packed tokens vs {s['tiling_encoder_tokens']} encoder / "
                 f"{s['tiling_llm_tokens']} LLM tokens", fontsize=10)
    return fig


class PackingExplorer:
    """Pick several images, a native-resolution rule, a per-image token budget, max_len and a packing
    strategy; see the packed rows with their padding, the block-diagonal mask of one row, and how many tokens
    a tiling method would spend on the same images (``tiling_method``, default ``tiling.DEFAULT_METHOD``).
    ``last_result``: ``explore.packing_summary(...)``. Used by `grid_explorer`.
    """

    TABS = ("Packed rows", "Mask of one row", "Packing vs tiling")

    def __init__(self, images: tuple | None = None, rule: str = "navit", budget: int = 256,
                 max_len: int = 512, strategy: str = "ffd", tiling_method: str = tiling.DEFAULT_METHOD):
        from . import data
        from .packing import RULES, STRATEGIES

        self._data = data
        names = data.list_images()
        images = tuple(images) if images is not None else tuple(
            n for n in ("astronaut", "chart", "panorama", "phone_screenshot", "icon") if n in names)
        self.last_result: dict | None = None
        self._cache: dict[tuple, bytes] = {}
        self.images_sel = W.SelectMultiple(options=names, value=images, rows=7, description="Images",
                                           layout=W.Layout(width="300px"))
        self.images_sel.add_class("anyres-pack-images")
        style = {"description_width": "110px"}
        self.rule_dd = W.Dropdown(options=list(RULES), value=rule, description="sizing rule", style=style,
                                  layout=W.Layout(width="300px"))
        self.budget = W.IntSlider(value=budget, min=16, max=2048, step=16, description="tokens/image",
                                  style=style, continuous_update=False, layout=W.Layout(width="420px"))
        self.max_len = W.IntSlider(value=max_len, min=64, max=8192, step=64, description="max_len",
                                   style=style, continuous_update=False, layout=W.Layout(width="420px"))
        self.max_len.add_class("anyres-pack-maxlen")
        self.strategy = W.ToggleButtons(options=list(STRATEGIES), value=strategy, description="strategy",
                                        style=style)
        self.tiling_dd = W.Dropdown(options=list(tiling.METHODS), value=tiling_method,
                                    description="compare with", style=style, layout=W.Layout(width="300px"))
        self.row = W.BoundedIntText(value=0, min=0, max=0, description="mask of row", style=style,
                                    layout=W.Layout(width="200px"))
        self.message = W.HTML()
        self.message.add_class("anyres-message")
        self.numbers = W.HTML()
        self.numbers.add_class("anyres-packing-numbers")
        self.pictures = {t: _image_widget() for t in self.TABS}
        self.tabs = W.Tab(children=[W.VBox([self.pictures["Packed rows"]]),
                                    W.VBox([self.row, self.pictures["Mask of one row"]]),
                                    W.VBox([self.pictures["Packing vs tiling"]])])
        for i, t in enumerate(self.TABS):
            self.tabs.set_title(i, t)
        note = W.HTML('<div style="line-height:1.4"><small>Ctrl/Shift-click to pick several images. '
                      "Budget: NaViT max_tokens, SigLIP2 "
                      "max_num_patches, Qwen2-VL max_pixels = budget·28² (pixtral has none: longest edge "
                      "1024).</small></div>", layout=W.Layout(width="300px"))
        controls = W.HBox([W.VBox([self.images_sel, note], layout=W.Layout(margin="0 16px 0 0")),
                           W.VBox([self.rule_dd, self.budget, self.max_len, self.strategy, self.tiling_dd])],
                          layout=W.Layout(flex_flow="row wrap"))
        self.widget = W.VBox([controls, self.message, self.numbers, self.tabs])
        self.widget.add_class("anyres-packing-explorer")
        for w in (self.images_sel, self.rule_dd, self.budget, self.max_len, self.strategy, self.tiling_dd):
            w.observe(self._on_change, names="value")
        self.row.observe(self._on_tab, names="value")
        self.tabs.observe(self._on_tab, names="selected_index")
        self.update()

    def _ipython_display_(self):
        from IPython.display import display

        display(self.widget)

    @property
    def state(self) -> dict:
        return {"images": tuple(self.images_sel.value), "rule": self.rule_dd.value,
                "budget": self.budget.value,
                "max_len": self.max_len.value, "strategy": self.strategy.value,
                "tiling_method": self.tiling_dd.value, "row": self.row.value,
                "tab": self.TABS[self.tabs.selected_index or 0]}

    def _on_change(self, change) -> None:
        self.update()

    def _on_tab(self, change) -> None:
        self._render_tab()

    def update(self) -> None:
        s = self.state
        sizes = [tuple(self._data.IMAGES[n].size) for n in s["images"]]
        try:
            res = explore.packing_summary(sizes, s["rule"], s["max_len"], s["strategy"], s["budget"],
                                          s["tiling_method"], names=s["images"])
        except _USER_ERRORS as e:
            self.last_result = None
            self.message.value = _error_html(str(e))
            self.numbers.value = ""
            for p in self.pictures.values():
                p.value = b""
            return
        self.last_result = res
        self.row.max = len(res["rows"]) - 1  # clamps .value (may fire _on_tab)
        self._render_tab()  # draw first, so the picture and the numbers change together
        self.message.value = ""
        self.numbers.value = self._numbers_html(res)

    def _numbers_html(self, r: dict) -> str:
        rep = r["report"]
        table = _table_html(
            ["image", "size (W×H)", "native size (W×H)", f"packed tokens ({r['token_unit']})",
             f"{r['tiling_method']} images", "encoder tokens", "LLM tokens"],
            [[x["name"], wh(x["size"]), wh(x["native_size"]), x["tokens"], x["tiling_images"],
              x["tiling_encoder_tokens"], x["tiling_llm_tokens"]] for x in r["images"]]
            + [["total", "", "", r["packed_tokens"], sum(x["tiling_images"] for x in r["images"]),
                r["tiling_encoder_tokens"], r["tiling_llm_tokens"]]])
        head = (f'<div class="anyres-pack-summary" style="line-height:1.4;margin:4px 0">'
                f'<b>{rep["rows"]} rows × max_len {r["max_len"]} = '
                f'{rep["slots"]} slots</b>: {rep["tokens"]} tokens + {rep["padding"]} padding '
                f'(<b>{rep["padding_fraction"]:.1%} padding</b>, strategy {html.escape(r["strategy"])}). '
                f'Tiling with {html.escape(r["tiling_method"])} would run the encoder on '
                f'<b>{r["tiling_encoder_tokens"]}</b> tokens and give the LLM '
                f'<b>{r["tiling_llm_tokens"]}</b>.</div>')
        return head + table

    def _render_tab(self) -> None:
        r = self.last_result
        if r is None:
            return
        s = self.state
        tab = s["tab"]
        key = (s["images"], s["rule"], s["budget"], s["max_len"], s["strategy"], s["tiling_method"], tab,
               s["row"] if tab == "Mask of one row" else None)
        if key not in self._cache:
            if tab == "Packed rows":
                fig = viz.packed_rows(r["rows"], r["lengths"], r["max_len"],
                                      labels=[x["name"] for x in r["images"]],
                                      title=f"{r['strategy']} packing of {len(r['lengths'])} images")
            elif tab == "Mask of one row":
                row = min(s["row"], len(r["rows"]) - 1)
                seg = explore.row_segment_ids(r, row)
                names = ", ".join(f"img {k} = {r['images'][i]['name']}" for k, i in enumerate(r["rows"][row]))
                if r["max_len"] <= 512:
                    fig = viz.mask_heatmap(seg, title=f"Row {row}: {names}")
                else:
                    fig = viz.block_mask_view(seg, title=f"Row {row}: {names} (FlexAttention blocks; the "
                                                         f"dense picture needs max_len ≤ 512)")
            else:
                fig = _tokens_bars(r)
            self._cache[key] = figure_png(fig)
        self.pictures[tab].value = self._cache[key]


def packing_explorer(images: tuple | None = None, rule: str = "navit", budget: int = 256, max_len: int = 512,
                     strategy: str = "ffd", tiling_method: str = tiling.DEFAULT_METHOD) -> PackingExplorer:
    """The packing explorer (`grid_explorer`); return it from a cell (or ``display`` it) to show it."""
    return PackingExplorer(images=images, rule=rule, budget=budget, max_len=max_len, strategy=strategy,
                           tiling_method=tiling_method)
