"""The tiling explorer (`grid_explorer`): pick an image and a tiling method; see its plan, tiles, tokens,
scores and a side-by-side comparison. Numbers from :mod:`anyres_tutorial.explore`, pictures from ``viz``."""

from __future__ import annotations

import html
from typing import Any

import ipywidgets as W

from .. import explore, tiling, viz
from ..images import ImageLoadError, load_image
from ..viz.palette import subplots, wh
from .common import (
    UPLOAD_LIMIT_MB,
    USER_ERRORS,
    Explorer,
    describe_error,
    error_html,
    explorer_columns,
    explorer_style,
    font_px,
    method_options,
    presentation_toggle,
    show_png,
    swatch,
    table_html,
)

# ----------------------------------------------------------------------------------------------------------
# tiling explorer

# longest side (px) of the image copy the pictures are drawn from: the overlay is shown some 700 px wide,
# a side-by-side panel some 230 px (twice that, so that presentation mode stays sharp)
OVERLAY_SIDE, PANEL_SIDE = 1400, 480


class TilingExplorer(Explorer):
    """Pick an image (from data/ or uploaded) and a tiling method with its options; see the grid, the
    encoder images, the LLM token layout, the per-candidate scores, and a side-by-side comparison.

    Every registered tiling method is offered (``tiling.METHODS``, labelled with ``tiling.title``), with the
    controls its ``CONTROLS`` lists; ``method`` defaults to ``tiling.DEFAULT_METHOD`` and ``compare`` (the
    side-by-side methods) to every registered method. Tabs render lazily (only the visible one).
    ``state``: image, image_size, method, options, tab, compare. ``last_result``:
    ``explore.tiling_summary(...)`` of the current choice; ``last_compare``: the rows of
    ``explore.compare_methods`` last shown in the side-by-side tab. ``presentation`` (a toggle) enlarges
    the card, the tables and the pictures' text. Used by `grid_explorer`.
    """

    TABS = ("Grid overlay", "Encoder images", "LLM tokens", "Candidate scores", "Side by side")

    def __init__(self, image: str | None = None, method: str = tiling.DEFAULT_METHOD,
                 compare: tuple | None = None):
        from .. import data

        self._data = data
        names = data.list_images()
        image = image if image is not None else ("chart" if "chart" in names else names[0])
        if image not in names:
            raise ValueError(f"unknown data image {image!r}; choose one of {names}")
        compare = tuple(tiling.METHODS) if compare is None else tuple(compare)
        for m in (method, *compare):
            tiling.get(m)  # an unknown name: ValueError naming the registered methods
        self._images: dict[str, Any] = {}  # name -> PIL image (data images loaded on first use, uploads)
        self._small: dict[tuple, Any] = {}  # (name, max side) -> display copy of the image (viz.display_copy)
        self._cache: dict[tuple, Any] = {}
        self._accepted_upload: tuple = ()
        self._restoring_upload = False
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
        self.presentation.observe(self._on_presentation, names="value")
        self._present_classes()  # the app may start presenting (dev.py app --present)
        self.update()

    def _build_controls(self, names: list[str], image: str, method: str) -> None:
        """The image, upload and method pickers, the options box and the numbers / message panes."""
        self.image_dd = W.Dropdown(options=names, value=image, description="Image",
                                   layout=W.Layout(width="300px"))
        self.upload = W.FileUpload(accept="image/*", multiple=False,
                                   description=f"Upload image (≤ {UPLOAD_LIMIT_MB} MB)",
                                   tooltip=f"an image file of at most {UPLOAD_LIMIT_MB} MB; the counter "
                                           "shows whether an uploaded image is in use",
                                   layout=W.Layout(width="300px"))
        self.upload.add_class("anyres-upload")
        self.method_dd = W.Dropdown(options=method_options(), value=method, description="Method",
                                    layout=W.Layout(width="300px"))
        self.method_dd.add_class("anyres-method")
        self.options_box = W.VBox(layout=W.Layout(width="340px"))
        self._option_widgets: dict[str, W.Widget] = {}
        self.message = W.HTML()
        self.message.add_class("anyres-message")
        self.numbers = W.HTML(layout=W.Layout(width="100%"))
        self.numbers.add_class("anyres-tiling-numbers")
        self.presentation = presentation_toggle()

    def _build_tabs(self, compare: tuple) -> None:
        """One picture per tab, the score table under the scores, the method picker of the comparison."""
        self.pictures = self._make_pictures()
        self.scores_html = W.HTML()
        self.compare_select = W.SelectMultiple(options=method_options(), value=compare,
                                               rows=len(method_options()), description="Compare",
                                               layout=W.Layout(width="260px"))
        self.compare_select.add_class("anyres-compare")
        self.compare_table = W.HTML()
        self.compare_table.add_class("anyres-compare-table")
        pages = [W.VBox([self.pictures[t]]) for t in self.TABS[:3]]
        pages.append(W.VBox([self.pictures["Candidate scores"], self.scores_html]))
        hint = W.HTML("<small>Ctrl/Cmd-click to pick several methods.</small>")
        pages.append(W.VBox([self.pictures["Side by side"],
                             W.HBox([W.VBox([self.compare_select, hint]), self.compare_table])]))
        self.tabs = W.Tab(children=pages)
        for i, t in enumerate(self.TABS):
            self.tabs.set_title(i, t)

    def _layout(self) -> W.HBox:
        """Controls and card on the left, the tabs with the picture on the right: a change and its picture
        fit one 1280×800 screen; in a narrower notebook the picture moves below the controls."""
        help_html = W.HTML('<div style="line-height:1.3"><small>Pick an image (or upload your own), '
                           "a tiling method and its options. Tabs: the cut canvas · what the ViT sees · "
                           "what the LLM receives · why this grid won · several methods side by side."
                           "</small></div>")
        left = W.VBox([self.image_dd, self.upload, self.method_dd, self.options_box, self.presentation,
                       self.message, self.numbers, help_html],
                      layout=W.Layout(width="340px", min_width="340px", margin="0 12px 0 0"))
        left.add_class("anyres-controls")
        row, column = explorer_columns()
        right = W.VBox([self.tabs], layout=column)
        box = W.HBox([explorer_style(), left, right], layout=row)
        box.add_class("anyres-tiling-explorer")
        box.add_class("anyres-explorer")
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

    @property
    def options(self):
        """The current method's option controls, name -> widget (read-only mapping); set ``.value`` to drive
        the explorer from code, e.g. ``tx.options["max_num"].value = 6``."""
        from types import MappingProxyType

        return MappingProxyType(self._option_widgets)

    def image(self):
        """The current image as an RGB PIL image (data images are loaded once)."""
        name = self.image_dd.value
        if name not in self._images:
            self._images[name] = self._data.load_data_image(name)
        return self._images[name]

    def display_image(self, max_side: int):
        """The current image downscaled once to ``max_side`` pixels (its longer side) for the pictures:
        every method of the side-by-side view draws from this copy instead of resizing the full image."""
        key = (self.image_dd.value, max_side)
        if key not in self._small:
            self._small[key] = viz.display_copy(self.image(), max_side)
        return self._small[key]

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

    def _on_presentation(self, change) -> None:
        self._present_classes()
        self.update()

    def _on_upload(self, change) -> None:
        files = change["new"]
        if not files or self._restoring_upload:
            return
        f = files[-1]
        name = f"upload: {f.get('name', 'image')}"
        try:
            img = load_image(bytes(f["content"]))
        except (ImageLoadError, TypeError) as e:
            reason = getattr(e, "reason", str(e))
            self.message.value = error_html(f"Upload refused ({f.get('name', 'file')}): {reason}. "
                                             f"The explorer keeps showing {self.image_dd.value!r}.")
            self._restoring_upload = True  # the button's counter shows accepted files only
            try:
                self.upload.value = self._accepted_upload
            finally:
                self._restoring_upload = False
            return
        self._accepted_upload = tuple(files)
        self._images[name] = img
        self._small = {k: v for k, v in self._small.items() if k[0] != name}
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
            res["reading"] = explore.reading_summary(s["image"], s["method"], s["options"], image=img)
        except USER_ERRORS as e:
            self.last_result = None
            self.message.value = error_html(f"{s['method']} on {s['image']}: {e}")
            self.numbers.value = ""
            for p in self.pictures.values():
                show_png(p, b"")
            self.scores_html.value = self.compare_table.value = ""
            return
        self.last_result = res
        self.message.value = ""
        self._render_tab()  # draw first, so the picture and the numbers change together
        self.numbers.value = self._numbers_html(res)

    def _numbers_html(self, r: dict) -> str:
        pad_tok = (f"{r['useful_tokens']} content + {r['padding_tokens']} padding + "
                   f"{r['thumbnail_tokens']} thumbnail")
        views = "".join(f"{swatch(c)}{html.escape(v)}<br>" for v, c in zip(r["global_views"],
                                                                          r["global_view_fills"]))
        where = f" ({r['global_position']} the tiles)" if r["global_position"] and views else ""
        lines = [
            ("image (W×H)", html.escape(wh(r["image_size"]))),
            ("grid (rows×cols)", html.escape(r["tiles_text"])),
            ("canvas (W×H)", html.escape(wh(r["canvas_size"]))),
            ("global view(s)", (views + html.escape(where)) if views else "none"),
            ("encoder images", f"{r['encoder_images']}"),
            ("encoder tokens", html.escape(f"{r['encoder_tokens']} = {pad_tok}")),
            ("LLM tokens", f"{r['llm_tokens']}"),
            ("padding fraction", f"{r['padding_fraction']:.1%} of encoder pixels"),
        ]
        if r.get("reading"):  # a synthetic image with text: what a text reader reads of the encoder input
            lines.append(("text reader", html.escape(r["reading"]["text"])))
        key_style = "padding:1px 8px 1px 0;color:#555;vertical-align:top;white-space:nowrap"
        body = "".join(f'<tr><td style="{key_style}">{html.escape(k)}</td>'
                       f'<td class="anyres-{k.split(" (")[0].replace(" ", "-")}"><b>{v}</b></td></tr>'
                       for k, v in lines)
        px = font_px(self.presentation.value)
        return (f'<div style="border:1px solid #ddd;border-radius:6px;padding:6px 10px;background:#fafafa;'
                f'font-size:{px}px"><b>{html.escape(r["method"])}</b> '
                f'<span style="color:#555">{html.escape(r["title"])}</span>'
                f'<table style="font-size:{px}px">{body}</table>'
                f'<small style="color:#555">LLM tokens = {html.escape(r["token_formula"])}</small></div>')

    def _render_tab(self) -> None:
        """Draw the visible tab for the current width; a drawing error is shown in the message pane (the
        numbers card still follows the dropdowns) and the picture is hidden."""
        if self.last_result is None:
            return
        tab = self.TABS[self.tabs.selected_index or 0]
        key = (*self._key(), tab, tuple(self.compare_select.value) if tab == "Side by side" else (),
               *self._size_key())
        try:
            if key not in self._cache:
                self._cache[key] = self._draw(tab)
        except Exception as e:  # a bug or an image no picture can show: say so where the learner looks
            self.message.value = describe_error(f"the {tab!r} tab", e)
            show_png(self.pictures[tab], b"")
            return
        png, report, extra = self._cache[key]
        show_png(self.pictures[tab], png, report)
        if tab == "Candidate scores":
            self.scores_html.value = extra
        elif tab == "Side by side":
            self.compare_table.value = extra

    def _draw(self, tab: str) -> tuple[bytes, str]:
        r = self.last_result
        plan, img = r["plan"], self.image()
        if tab == "Grid overlay":
            rows, cols = plan.grid  # a short title: the narrow picture box, and the card has the rest
            title = (f"{plan.method}: canvas {wh(plan.canvas_size)}, grid {rows}×{cols}\n"
                     f"{plan.num_images} images to the ViT, {plan.num_tokens} LLM tokens")
            return (*self._png(viz.grid_overlay(plan, self.display_image(OVERLAY_SIDE), title=title)), "")
        if tab == "Encoder images":
            return (*self._png(viz.tile_montage(tiling.apply(plan, img), plan=plan)), "")
        if tab == "LLM tokens":
            return (*self._png(viz.token_strip(plan, width_px=self.width)), "")
        if tab == "Candidate scores":
            return self._draw_scores(r)
        return self._draw_compare()

    def _draw_scores(self, r: dict) -> tuple[bytes, dict, str]:
        """The method's score table (``tiling.score_table``) and its picture (``viz.score_picture``)."""
        table = r["score_table"]
        fig = viz.score_picture(r["plan"])
        rows = table_html(list(table.columns), [list(x) for x in table.rows], list(table.chosen),
                          presentation=self.presentation.value) if table.rows else ""
        png, report = self._png(fig) if fig is not None else (b"", {})
        return png, report, f"<p><small>{html.escape(table.rule)}</small></p>{rows}"

    def _draw_compare(self) -> tuple[bytes, dict, str]:
        s = self.state
        methods = list(s["compare"]) or [s["method"]]
        opts = {s["method"]: s["options"]}
        img = self.image()
        small = self.display_image(PANEL_SIDE)  # the pixels of every panel; the numbers use img.size
        rows = explore.compare_methods(img.size, methods, opts)
        self.last_compare = rows
        n = len(rows)
        ncols = min(n, max(2, min(4, self.width // 220)))  # as many panels a row as the column has room for
        nrows = -(-n // ncols)
        fig, axes = subplots(nrows, ncols, figsize=(3.4 * ncols, 3.2 * nrows), squeeze=False)
        for ax in axes.ravel()[n:]:
            ax.axis("off")
        for ax, row in zip(axes.ravel(), rows):
            m = row["method"]
            plan = tiling.plan(m, img.size, **opts.get(m, {}))
            viz.grid_overlay(plan, small, ax=ax, badges=False,  # small panels: the table has the numbers
                             title=f"{m}: {row['grid'][0]}×{row['grid'][1]}\n{row['llm_tokens']} LLM tokens")
            ax.set_axis_off()  # no ticks to lay out: the panels only compare shapes
        mine = f"; {s['method']} with the options on the left" if s["method"] in methods else ""
        fig.suptitle(f"The same {wh(img.size)} image, cut by {n} methods (defaults{mine})")
        table = table_html(
            ["method", "grid (rows×cols)", "tile (W×H)", "canvas (W×H)", "encoder images", "encoder tokens",
             "LLM tokens", "padding"],
            [[r["method"], f"{r['grid'][0]}×{r['grid'][1]}", f"{r['tile_size']}×{r['tile_size']}",
              wh(r["canvas_size"]), r["encoder_images"], r["encoder_tokens"], r["llm_tokens"],
              f"{r['padding_fraction']:.1%}"] for r in rows], presentation=self.presentation.value)
        return (*self._png(fig), table)


def tiling_explorer(image: str | None = None, method: str = tiling.DEFAULT_METHOD,
                    compare: tuple | None = None) -> TilingExplorer:
    """The tiling explorer (`grid_explorer`); return it from a cell (or ``display`` it) to show it."""
    return TilingExplorer(image=image, method=method, compare=compare)
