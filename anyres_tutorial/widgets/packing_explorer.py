"""The packing explorer (`grid_explorer`): several images resized by a native-resolution rule and packed
into rows, beside what a tiling method would spend on them. Numbers from :mod:`anyres_tutorial.explore`."""

from __future__ import annotations

import html

import ipywidgets as W

from .. import explore, tiling, viz
from ..viz.fit import OPTIONAL
from ..viz.palette import ENCODER_COLOR, LLM_COLOR, PACKED_COLOR, subplots, wh
from .common import (
    USER_ERRORS,
    Explorer,
    describe_error,
    error_html,
    explorer_columns,
    explorer_style,
    font_px,
    presentation_toggle,
    show_png,
    table_html,
)

# ----------------------------------------------------------------------------------------------------------
# packing explorer


def _tokens_bars(summary: dict):
    """Grouped bars per image: packed tokens vs the tiling method's encoder and LLM tokens (minimal picture
    owned by the explorer; numbers from ``explore.packing_summary``)."""
    import numpy as np

    ims = summary["images"]
    y = np.arange(len(ims))
    fig, ax = subplots(figsize=(7, 0.7 * len(ims) + 1.6))
    h = 0.27
    series = [("packed (native resolution)", [r["tokens"] for r in ims], PACKED_COLOR),
              (f"{summary['tiling_method']}: encoder tokens", [r["tiling_encoder_tokens"] for r in ims],
               ENCODER_COLOR),
              (f"{summary['tiling_method']}: LLM tokens", [r["tiling_llm_tokens"] for r in ims], LLM_COLOR)]
    for k, (label, vals, color) in enumerate(series):
        ax.barh(y + (k - 1) * h, vals, height=h, color=color, label=label)
        for yi, v in zip(y, vals):
            ax.text(v, yi + (k - 1) * h, f" {v}", va="center", fontsize=8, gid=OPTIONAL)  # the table has it
    ax.set_yticks(y, [f"{r['name']}\n{wh(r['size'])}" for r in ims], fontsize=8)
    ax.invert_yaxis()
    ax.set_xlabel("tokens per image")
    ax.set_xlim(0, 1.15 * max(max(v) for _, v, _ in series))  # room for the value labels
    ax.legend(fontsize=8, loc="upper left", bbox_to_anchor=(0, -0.25))  # below the bars, never over them
    ax.spines[["top", "right"]].set_visible(False)
    s = summary
    ax.set_title(f"Packing ({s['rule']}, budget {s['budget']} tokens per image) vs tiling "
                 f"({s['tiling_method']}): {s['packed_tokens']} packed tokens vs "
                 f"{s['tiling_encoder_tokens']} encoder / {s['tiling_llm_tokens']} LLM tokens", fontsize=10)
    return fig


def _block_codes_picture(codes, block_size: int, title: str):
    """The FlexAttention block table of one row (``explore.row_block_codes``): cheap to draw for any
    max_len; same colours and meaning as ``viz.block_mask_view``."""
    from matplotlib.colors import ListedColormap
    from matplotlib.patches import Patch

    from ..viz.packing import BLOCK_COLORS

    n = codes.shape[0]
    fig, ax = subplots(figsize=(5.6, 5.2))
    names = ("empty", "partial", "full")
    ax.imshow(codes, cmap=ListedColormap([BLOCK_COLORS[k] for k in names]), vmin=-0.5, vmax=2.5,
              interpolation="nearest")
    ax.set_xlabel(f"key block ({block_size} tokens each)")
    ax.set_ylabel(f"query block ({block_size} tokens each)")
    computed = int((codes > 0).sum())
    ax.set_title(f"{title}\n{n}×{n} blocks: full {int((codes == 2).sum())}, partial {int((codes == 1).sum())}"
                 f", empty {int((codes == 0).sum())}: computes {computed} of {codes.size}", fontsize=10)
    ax.legend(handles=[Patch(facecolor=BLOCK_COLORS[k], edgecolor="#888888", label=k)
                       for k in reversed(names)], loc="upper left", bbox_to_anchor=(1.02, 1), fontsize=8)
    return fig


BUDGET_RANGE, MAX_LEN_RANGE = (16, 2048), (64, 8192)  # the sliders' ends


def _check_arguments(names, images, rule, budget, max_len, strategy, tiling_method) -> None:
    """A clear ValueError (naming the argument and what it may be) instead of a widget's TraitError or a
    value the slider would silently clamp."""
    from ..packing import RULES, STRATEGIES

    if isinstance(images, str):
        raise ValueError(f"images must be a sequence of image names, not the string {images!r}; "
                         f"e.g. images=({images!r},)")
    unknown = [n for n in images if n not in names]
    if unknown or not images:
        raise ValueError(f"images must name at least one data image; unknown {unknown}; choose from {names}")
    if rule not in RULES:
        raise ValueError(f"unknown rule {rule!r}; choose one of {list(RULES)}")
    if strategy not in STRATEGIES:
        raise ValueError(f"unknown strategy {strategy!r}; choose one of {list(STRATEGIES)}")
    for arg, value, (lo, hi) in (("budget", budget, BUDGET_RANGE), ("max_len", max_len, MAX_LEN_RANGE)):
        if isinstance(value, bool) or not isinstance(value, int) or not lo <= value <= hi:
            raise ValueError(f"{arg} must be an integer from {lo} to {hi}, got {value!r}")
    tiling.get(tiling_method)  # an unknown name: ValueError naming the registered methods


class PackingExplorer(Explorer):
    """Pick several images, a native-resolution rule, a per-image token budget, max_len and a packing
    strategy; see the packed rows with their padding, the block-diagonal mask of one row, and how many tokens
    a tiling method would spend on the same images (``tiling_method``, default ``tiling.DEFAULT_METHOD``).
    ``last_result``: ``explore.packing_summary(...)``; when the images cannot be packed (an image longer
    than ``max_len``) it is None and the table (``explore.packing_images``) stays, marking what does not
    fit. ``presentation`` (a toggle) enlarges the numbers and the pictures' text. Used by `grid_explorer`.
    """

    TABS = ("Packed rows", "Mask of one row", "Packing vs tiling")

    def __init__(self, images: tuple | None = None, rule: str = "navit", budget: int = 256,
                 max_len: int = 512, strategy: str = "ffd", tiling_method: str = tiling.DEFAULT_METHOD):
        from .. import data
        from ..packing import RULES, STRATEGIES

        self._data = data
        names = data.list_images()
        images = tuple(images) if images is not None else tuple(
            n for n in ("astronaut", "chart", "panorama", "phone_screenshot", "icon") if n in names)
        _check_arguments(names, images, rule, budget, max_len, strategy, tiling_method)
        self.last_result: dict | None = None
        self._cache: dict[tuple, bytes] = {}
        self.images_sel = W.SelectMultiple(options=names, value=images, rows=len(names), description="Images",
                                           layout=W.Layout(width="300px"))
        self.images_sel.add_class("anyres-pack-images")
        style = {"description_width": "110px"}
        self.rule_dd = W.Dropdown(options=list(RULES), value=rule, description="sizing rule", style=style,
                                  layout=W.Layout(width="300px"))
        self.budget = W.IntSlider(value=budget, min=BUDGET_RANGE[0], max=BUDGET_RANGE[1], step=16,
                                  description="budget",
                                  tooltip="budget: tokens per image", style=style, continuous_update=False,
                                  layout=W.Layout(width="350px"))
        self.budget.add_class("anyres-pack-budget")
        self.max_len = W.IntSlider(value=max_len, min=MAX_LEN_RANGE[0], max=MAX_LEN_RANGE[1], step=64,
                                   description="max_len",
                                   style=style, continuous_update=False, layout=W.Layout(width="350px"))
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
        self.presentation = presentation_toggle()
        self.pictures = self._make_pictures()
        self.tabs = W.Tab(children=[W.VBox([self.pictures["Packed rows"]]),
                                    W.VBox([self.row, self.pictures["Mask of one row"]]),
                                    W.VBox([self.pictures["Packing vs tiling"]])])
        for i, t in enumerate(self.TABS):
            self.tabs.set_title(i, t)
        note = W.HTML('<div style="line-height:1.3"><small>Ctrl/Cmd-click (Shift-click for a range) to pick '
                      "several images. Budget = tokens per image: NaViT max_tokens, SigLIP2 "
                      "max_num_patches, Qwen2-VL max_pixels = budget·28² (pixtral has none: longest edge "
                      "1024).</small></div>", layout=W.Layout(width="340px"))
        left = W.VBox([self.images_sel, note, self.rule_dd, self.budget, self.max_len, self.strategy,
                       self.tiling_dd, self.presentation],
                      layout=W.Layout(width="340px", min_width="340px", margin="0 12px 0 0"))
        left.add_class("anyres-controls")
        row, column = explorer_columns()
        right = W.VBox([self.message, self.tabs, self.numbers], layout=column)
        self.widget = W.HBox([explorer_style(), left, right], layout=row)
        self.widget.add_class("anyres-packing-explorer")
        self.widget.add_class("anyres-explorer")
        for w in (self.images_sel, self.rule_dd, self.budget, self.max_len, self.strategy, self.tiling_dd,
                  self.presentation):
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
                "tab": self.TABS[self.tabs.selected_index or 0], "presentation": self.presentation.value}

    def _on_change(self, change) -> None:
        self.update()

    def _on_tab(self, change) -> None:
        self._render_tab()

    def update(self) -> None:
        s = self.state
        self._present_classes()
        sizes = [tuple(self._data.IMAGES[n].size) for n in s["images"]]
        try:
            res = explore.packing_summary(sizes, s["rule"], s["max_len"], s["strategy"], s["budget"],
                                          s["tiling_method"], names=s["images"])
        except USER_ERRORS as e:
            self.last_result = None
            self.message.value = error_html(str(e))
            for p in self.pictures.values():
                show_png(p, b"")
            self.numbers.value = self._images_table(sizes, s)
            return
        self.last_result = res
        self.message.value = ""
        self.row.max = len(res["rows"]) - 1  # clamps .value (may fire _on_tab)
        self._render_tab()  # draw first, so the picture and the numbers change together
        self.numbers.value = self._summary_html(res) + self._table_html(res["images"], res, s["max_len"])

    def _images_table(self, sizes: list, s: dict) -> str:
        """The per-image table without packing (the images cannot be packed), or "" if even that fails."""
        try:
            ims = explore.packing_images(sizes, s["rule"], s["budget"], s["tiling_method"], s["images"])
        except USER_ERRORS:
            return ""
        return self._table_html(ims, {"tiling_method": s["tiling_method"]}, s["max_len"])

    def _table_html(self, ims: list[dict], r: dict, max_len: int) -> str:
        """One row per image: size, the size the rule feeds the encoder, packed tokens (marked red when
        longer than ``max_len``: it does not fit any row) and what the tiling method spends."""
        unit = f" ({r['token_unit']})" if r.get("token_unit") else ""
        fed = [f"{wh(x['native_size'])} ({x['fed_as']})" for x in ims]
        fits = [x["tokens"] <= max_len for x in ims]
        tokens = [x["tokens"] if ok else f"{x['tokens']} > max_len {max_len}: does not fit"
                  for x, ok in zip(ims, fits)]
        table = table_html(
            ["image", "size (W×H)", "fed to the encoder (W×H)", f"packed tokens{unit}",
             f"{r['tiling_method']} images", "encoder tokens", "LLM tokens"],
            [[x["name"], wh(x["size"]), f, t, x["tiling_images"], x["tiling_encoder_tokens"],
              x["tiling_llm_tokens"]] for x, f, t in zip(ims, fed, tokens)]
            + [["total", "", "", sum(x["tokens"] for x in ims), sum(x["tiling_images"] for x in ims),
                sum(x["tiling_encoder_tokens"] for x in ims), sum(x["tiling_llm_tokens"] for x in ims)]],
            presentation=self.presentation.value, marked=[not ok for ok in fits] + [False])
        return table

    def _summary_html(self, r: dict) -> str:
        rep = r["report"]
        return (f'<div class="anyres-pack-summary" style="line-height:1.4;margin:4px 0;'
                f'font-size:{font_px(self.presentation.value)}px">'
                f'<b>{rep["rows"]} rows × max_len {r["max_len"]} = '
                f'{rep["slots"]} slots</b>: {rep["tokens"]} tokens + {rep["padding"]} padding '
                f'(<b>{rep["padding_fraction"]:.1%} padding</b>, strategy {html.escape(r["strategy"])}). '
                f'Tiling with {html.escape(r["tiling_method"])} would run the encoder on '
                f'<b>{r["tiling_encoder_tokens"]}</b> tokens and give the LLM '
                f'<b>{r["tiling_llm_tokens"]}</b>.</div>')

    def _render_tab(self) -> None:
        """Draw the visible tab for the current width; a drawing error goes to the message pane."""
        r = self.last_result
        if r is None:
            return
        s = self.state
        tab = s["tab"]
        key = (s["images"], s["rule"], s["budget"], s["max_len"], s["strategy"], s["tiling_method"], tab,
               s["row"] if tab == "Mask of one row" else None, *self._size_key())
        try:
            if key not in self._cache:
                self._cache[key] = self._png(self._figure(r, s, tab))
        except Exception as e:  # a bug: shown where the learner looks, not only in a log console
            self.message.value = describe_error(f"the {tab!r} tab", e)
            show_png(self.pictures[tab], b"")
            return
        show_png(self.pictures[tab], *self._cache[key])

    def _figure(self, r: dict, s: dict, tab: str):
        if tab == "Packed rows":
            return viz.packed_rows(r["rows"], r["lengths"], r["max_len"],
                                   labels=[x["name"] for x in r["images"]],
                                   title=f"{r['strategy']} packing of {len(r['lengths'])} images")
        if tab == "Mask of one row":
            row = min(s["row"], len(r["rows"]) - 1)
            names = ", ".join(f"img {i} = {r['images'][i]['name']}" for i in r["rows"][row])
            if r["max_len"] <= 512:  # image k keeps its colour of the packed rows
                return viz.mask_heatmap(explore.row_segment_ids(r, row), title=f"Row {row}: {names}",
                                        image_ids=r["rows"][row])
            return _block_codes_picture(explore.row_block_codes(r, row, 128), 128,
                                        f"Row {row}: {names} (FlexAttention blocks; the dense "
                                        f"picture needs max_len ≤ 512)")
        return _tokens_bars(r)


def packing_explorer(images: tuple | None = None, rule: str = "navit", budget: int = 256, max_len: int = 512,
                     strategy: str = "ffd", tiling_method: str = tiling.DEFAULT_METHOD) -> PackingExplorer:
    """The packing explorer (`grid_explorer`); return it from a cell (or ``display`` it) to show it."""
    return PackingExplorer(images=images, rule=rule, budget=budget, max_len=max_len, strategy=strategy,
                           tiling_method=tiling_method)
