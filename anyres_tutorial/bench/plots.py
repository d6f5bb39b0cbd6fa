"""The benchmark's pictures, drawn from its JSON (or its workload). Taught in `timing`.

Colours come from the tutorial's one palette (``viz``): a packed configuration takes its attention backend's
colour (``viz.backend_color``), token categories their ``viz.token_color``; tiled configurations have their
own colours (:data:`TILED_COLOR` for the reference tiling).
"""

from __future__ import annotations

from pathlib import Path

import numpy as np

from .. import tiling
from ..encoder import attention
from .workload import Config, tile_px, tiled_token_counts

#: The reference tiling's colour; other tiling methods take TILED_PALETTE by ``tiling.METHODS`` order.
TILED_COLOR = "#7f7f7f"
TILED_PALETTE = ("#8c6d31", "#a55194", "#636363", "#ce6dbd", "#9c9ede", "#e7969c")
#: One colour per pipeline stage (``pipeline.STAGES`` order: decode, plan, resize, normalise, pack, vit).
STAGE_COLORS = ("#6baed6", "#fdae6b", "#74c476", "#9e9ac8", "#fd8d3c", "#08519c")


def config_color(config) -> str:
    """The colour of a configuration (a :class:`Config` or its recorded name): a packed one takes its
    backend's ``viz.backend_color``."""
    from ..viz import backend_color

    c = Config.parse(config) if isinstance(config, str) else config
    if c.kind == "packed":
        return backend_color(c.backend)
    if c == Config.tiled(train=c.train):  # the reference tiling
        return TILED_COLOR
    others = [Config.tiled(m, c.train) for m in tiling.METHODS]
    others.remove(Config.tiled(train=c.train))
    i = others.index(c) if c in others else len(others)
    return TILED_PALETTE[i % len(TILED_PALETTE)]


#: Every benchmark picture is drawn at most 11 inches wide (1100 px at the notebook's 100 dpi) with text of
#: at least 10 pt, so it reads at the width a notebook shows it.
STYLE = {"font.size": 10, "axes.titlesize": 11, "axes.labelsize": 10, "xtick.labelsize": 10,
         "ytick.labelsize": 10, "legend.fontsize": 10, "figure.titlesize": 11}


def _figure(nrows: int, ncols: int, figsize, **kw):
    import matplotlib.pyplot as plt

    with plt.rc_context(STYLE):
        fig, axes = plt.subplots(nrows, ncols, figsize=figsize, layout="constrained", **kw)
    plt.close(fig)  # shown once, as the cell's value; never accumulates in pyplot
    return fig, axes


def _hatches(rows) -> list[str]:
    """A hatch for every record packed into rows (same backend colour, told apart from one sequence)."""
    return ["//" if Config.parse(r["config"]).rows else "" for r in rows]


def _title(data: dict) -> str:
    m = data["meta"]
    return f"{m['device_name']} · {m['dtype']} · {m['threads']} threads · scale {m['scale']:.3g}"


def _time_panel(ax, rows) -> None:
    y = np.arange(len(rows))
    med = np.array([r["median_ms"] for r in rows])
    lo = med - np.array([r["min_ms"] for r in rows])
    hi = np.array([r["max_ms"] for r in rows]) - med
    ax.barh(y, med, xerr=[lo, hi], color=[config_color(r["config"]) for r in rows], capsize=3,
            hatch=_hatches(rows), edgecolor="white")
    for i, v in enumerate(med):
        ax.text(v + hi[i], i, f" {v:,.0f}", va="center", fontsize=10)
    ax.set_yticks(y, [r["config"] for r in rows])
    ax.invert_yaxis()
    ax.set_xlabel("median ms per forward (whiskers: min-max)")
    ax.set_title(f"{rows[0]['num_images']} mixed images: time")
    ax.set_xlim(0, (med + hi).max() * 1.3)


def _token_panel(ax, rows) -> None:
    from ..viz import token_color

    y = np.arange(len(rows))
    parts = [("useful_tokens", "useful", "useful"), ("cls_tokens", "CLS", "cls"),
             ("padding_tokens", "padding", "padding"),
             ("duplicated_tokens", "thumbnail", "duplicated")]
    left = np.zeros(len(rows))
    for key, label, category in parts:
        v = np.array([r[key] for r in rows], dtype=float)
        ax.barh(y, v, left=left, color=token_color(category), label=label)
        left += v
    pad = np.array([r.get("row_padding_slots") or 0 for r in rows], dtype=float)
    if pad.any():  # the empty slots at the end of packed rows
        ax.barh(y, pad, left=left, color="white", edgecolor=token_color("padding"), hatch="xx",
                label="row padding")
    ax.set_yticks(y, [""] * len(rows))  # the same rows as the time panel on its left
    ax.invert_yaxis()
    ax.set_xlabel("encoder tokens (slots)")
    ax.set_title("what the encoder processes")
    ax.legend(loc="upper center", bbox_to_anchor=(0.5, -0.13), ncol=3, frameon=False)


def _efficiency_panel(ax, rows, mm: dict) -> None:
    y = np.arange(len(rows))
    eff = np.array([r["efficiency"] for r in rows]) * 100
    ax.barh(y, eff, color=[config_color(r["config"]) for r in rows], hatch=_hatches(rows), edgecolor="white")
    for i, v in enumerate(eff):
        ax.text(v, i, f" {v:.0f}%", va="center", fontsize=10)
    ax.set_yticks(y, [r["config"] for r in rows])
    ax.invert_yaxis()
    ax.set_xlabel(f"% of a {mm['n']}² matmul ({mm['flops_per_s'] / 1e9:,.0f} GFLOP/s, same run)")
    ax.set_title("FLOP efficiency (useful FLOPs / time)")
    ax.set_xlim(0, max(100, eff.max() * 1.25))


def plot_summary(data: dict):
    """Main set: median time per configuration (min-max whiskers) beside the encoder tokens of each, split
    into useful / CLS / padding / thumbnail; under them the FLOP efficiency vs the same-run matmul. Taught in
    `timing`."""
    rows = [r for r in data["results"] if r["sweep"] == "main"]
    if not rows:
        raise ValueError("no main-set records in these results")
    import matplotlib.pyplot as plt

    h = 0.34 * len(rows) + 1.4
    with plt.rc_context(STYLE):
        fig, axes = plt.subplot_mosaic([["time", "tokens"], ["eff", "eff"]], figsize=(11, 2 * h + 1.2),
                                       layout="constrained")
    plt.close(fig)  # shown once, as the cell's value
    _time_panel(axes["time"], rows)
    _token_panel(axes["tokens"], rows)
    _efficiency_panel(axes["eff"], rows, data["matmul"])
    fig.suptitle(_title(data))
    return fig


def _series(data: dict, sweeps: tuple[str, ...]) -> dict[str, list]:
    out: dict[str, list] = {}
    for r in data["results"]:
        if r["sweep"] in sweeps:
            out.setdefault(r["config"], []).append(r)
    for v in out.values():
        v.sort(key=lambda r: r["point"])
    return out


def _log2_axes(axes, points, labels) -> None:
    for ax, lab in zip(axes, labels):
        ax.set_xscale("log", base=2)
        ax.set_xticks(points, [str(p) for p in points])
        ax.minorticks_off()
        ax.set_yscale("log")
        ax.set_xlabel("number of images in the batch / packed sequence")
        ax.set_ylabel(lab)
        ax.grid(True, which="both", alpha=0.3)


def _plain_log_labels(axis) -> None:
    """Tick labels of a log axis as plain numbers (25, 30, 40), not 2.5 x 10^1."""
    from matplotlib.ticker import FuncFormatter

    plain = FuncFormatter(lambda v, _: f"{v:,.3g}")
    axis.set_major_formatter(plain)
    axis.set_minor_formatter(plain)


def plot_num_images(data: dict):
    """Images per second against the number of images, log axes, few series per panel: left the mixed set
    (tiled, the reference ``loop`` and the fastest packed kernel at each point), right the small images
    (every packed backend). Taught in `timing`."""
    mixed = _series(data, ("main", "num_images"))
    small = _series(data, ("small_images",))
    fig, axes = _figure(1, 2, (11, 4.4))
    ref = Config.packed(attention.REFERENCE).name
    kernels = {c: rs for c, rs in mixed.items() if Config.parse(c).kind == "packed" and c != ref}
    best = {}
    for rs in kernels.values():
        for r in rs:
            if r["num_images"] not in best or r["images_per_s"] > best[r["num_images"]]["images_per_s"]:
                best[r["num_images"]] = r
    shown = {c: rs for c, rs in mixed.items() if c in (Config.tiled().name, ref)}
    for cfg, rs in shown.items():
        axes[0].plot([r["num_images"] for r in rs], [r["images_per_s"] for r in rs], marker="o",
                     color=config_color(cfg), label=cfg)
    if best:
        pts = [best[n] for n in sorted(best)]
        axes[0].plot([r["num_images"] for r in pts], [r["images_per_s"] for r in pts], marker="D", ls="--",
                     color="#444444", label="fastest packed kernel")
    for cfg, rs in small.items():
        axes[1].plot([r["num_images"] for r in rs], [r["images_per_s"] for r in rs], marker="s",
                     color=config_color(cfg), label=cfg.removeprefix("packed-"))
    budget = next((rs[0].get("budget") for rs in small.values()), None)
    for ax, what, series in ((axes[0], "mixed images", mixed), (axes[1], f"small images (≤ {budget} tokens "
                                                                          "each)", small)):
        pts = sorted({r["num_images"] for rs in series.values() for r in rs})
        ax.set_xscale("log", base=2)
        ax.set_xticks(pts, [str(n) for n in pts])
        ax.minorticks_off()
        ax.set_yscale("log")
        _plain_log_labels(ax.yaxis)
        ax.set_xlabel("images in the batch / packed sequence")
        ax.set_ylabel("images per second")
        ax.set_title(what)
        ax.grid(True, which="both", alpha=0.3)
        if ax.get_lines():
            ax.legend(loc="upper center", bbox_to_anchor=(0.5, -0.2), ncol=2, frameon=False)
    fig.suptitle(_title(data))
    return fig


def _mask_memory_panel(ax, ser: dict) -> None:
    """Bytes of every registered backend's mask (its ``memory``) at the sweep's token counts."""
    from ..viz import backend_color

    nimg = next(iter(ser.values()))[0]["num_images"]
    toks = sorted({r["tokens"] for v in ser.values() for r in v})
    for name in attention.BACKENDS:
        memory = attention.get(name).memory
        mask = [memory([int(t) // nimg] * nimg)["mask_bytes"] for t in toks]
        if any(mask):
            ax.plot(toks, mask, marker="o", color=backend_color(name), label=f"{name} mask")
    ax.set_title("mask memory vs packed tokens")
    ax.set_ylabel("bytes")


def plot_resolution(data: dict):
    """Packed backends against total tokens (16 images, budget per image swept), log-log: the dense mask's
    time and mask memory grow as N^2, block-sparse flex / varlen follow the per-image cost. Taught in
    `timing`."""

    ser = _series(data, ("resolution",))
    if not ser:
        raise ValueError("no resolution-sweep records in these results (run with --sweeps)")
    fig, axes = _figure(1, 2, (11, 4.6))
    for cfg, rs in ser.items():
        axes[0].plot([r["tokens"] for r in rs], [r["median_ms"] for r in rs], marker="o",
                     color=config_color(cfg), label=cfg)
    # reference slopes through the fastest point at the smallest N
    first = min((rs[0] for rs in ser.values()), key=lambda r: (r["tokens"], r["median_ms"]))
    x0, y0 = first["tokens"], first["median_ms"]
    xs = np.array([x0, max(r["tokens"] for rs in ser.values() for r in rs)])
    axes[0].plot(xs, y0 * (xs / x0), ":", color="k", lw=1, label="∝ N")
    axes[0].plot(xs, y0 * (xs / x0) ** 2, "--", color="k", lw=1, label="∝ N²")
    axes[0].set_title("time vs packed tokens (16 images)")
    for ln in axes[0].get_lines():
        ln.set_label(ln.get_label().removeprefix("packed-"))
    axes[0].set_ylabel("median time per forward (ms)")
    _plain_log_labels(axes[0].yaxis)
    _mask_memory_panel(axes[1], ser)
    for ax in axes:
        ax.set_xscale("log")
        ax.set_yscale("log")
        _plain_log_labels(ax.xaxis)
        ax.set_xlabel("tokens in the packed sequence (N)")
        ax.grid(True, which="both", alpha=0.3)
        ax.legend(loc="upper center", bbox_to_anchor=(0.5, -0.2), ncol=2, frameon=False)
    fig.suptitle(_title(data))
    return fig


_SOURCE_COLORS = {"data": "#1f77b4", "synthetic": "#ff7f0e"}


def _workload_scatter(ax, items) -> None:
    for it in items:
        ax.scatter(*it.size, c=_SOURCE_COLORS.get(it.source, "k"), marker="o" if it.source == "data" else "s",
                   s=36, zorder=3)
    at: dict[tuple, list[str]] = {}
    for i, it in enumerate(items, 1):  # identical sizes share one number label
        at.setdefault(tuple(it.size), []).append(str(i))
    for size, nums in at.items():
        ax.annotate(",".join(nums), size, textcoords="offset points", xytext=(4, 4), fontsize=9)
    for src, col in _SOURCE_COLORS.items():
        n = sum(it.source == src for it in items)
        ax.scatter([], [], c=col, marker="o" if src == "data" else "s", label=f"{src} ({n})")
    ax.plot([10, 6000], [10, 6000], ":", color="grey", lw=1, label="square (W = H)")
    ax.set_xscale("log")
    ax.set_yscale("log")
    ax.set_xlim(30, 6000)
    ax.set_ylim(30, 6000)
    ax.set_xlabel("width (px)")
    ax.set_ylabel("height (px)")
    ax.set_title(f"the benchmark's {len(items)} mixed images")
    ax.grid(True, which="both", alpha=0.3)
    ax.legend(loc="lower right")


def _workload_lines(items, scale: float) -> list[str]:
    lines = [f"{'#':>2} {'image':<18} {'W x H':<9} {'grid':<5} {'tok':>5}"]
    for i, it in enumerate(items, 1):
        pl = tiling.plan(tiling.DEFAULT_METHOD, it.size)
        tok = tiled_token_counts(pl, tile_px(pl.tile_size, scale))["tokens"]
        rows, cols = pl.grid
        grid = f"{rows}x{cols}+{len(pl.global_views)}"
        lines.append(f"{i:>2} {it.name:<18} {it.size[0]:>4}x{it.size[1]:<4} {grid:<5} {tok:>5}")
    return lines


def plot_workload(items, scale: float = 1.0):
    """The benchmark's images as numbered points (width, height) on log axes, coloured by source, and a list
    giving each its grid under the reference tiling (rows x cols + global views) and the tiled encoder tokens
    at ``scale``. Taught in `timing`."""

    if not items:
        raise ValueError("items is empty")
    fig, (ax, tx) = _figure(1, 2, (11, 5.6), gridspec_kw=dict(width_ratios=[1.1, 1]))
    _workload_scatter(ax, items)
    tx.axis("off")
    tx.text(0, 1, "\n".join(_workload_lines(items, scale)), family="monospace", fontsize=9.5, va="top",
            transform=tx.transAxes)
    tx.set_title(f"grid (rows x cols + global views),\ntiled tokens at scale {scale:.3g}")
    return fig


def plot_planning(data: dict):
    """Plans per second per tiling method (log axis): pure geometry, one thread. Taught in `timing`."""
    rows = data.get("planning") or []
    if not rows:
        raise ValueError("no planning records in these results")
    fig, ax = _figure(1, 1, (8, 0.45 * len(rows) + 1.6))
    y = np.arange(len(rows))
    v = [r["plans_per_s"] for r in rows]
    ax.barh(y, v, color="#1f77b4")
    for i, val in enumerate(v):
        ax.text(val, i, f" {val:,.0f}", va="center", fontsize=10)
    ax.set_yticks(y, [r["method"] for r in rows])
    ax.invert_yaxis()
    ax.set_xscale("log")
    lo, hi = 10 ** np.floor(np.log10(min(v))), 10 ** np.ceil(np.log10(max(v)) + 0.5)
    ax.set_xlim(lo, hi)
    ticks = [10.0 ** k for k in range(int(np.log10(lo)), int(np.log10(hi)) + 1)]
    ax.set_xticks(ticks, [f"{x:,.0f}" for x in ticks])
    ax.minorticks_off()
    ax.set_xlabel("plans per second (one thread, pure geometry)")
    ax.set_title("planning throughput")
    return fig


def plot_pipeline(data: dict):
    """Where the time of the whole path goes: per pipeline (every tiling method, packing as one sequence and
    in rows) one horizontal bar of median milliseconds stacked by stage (decode, plan, resize/pad/crop,
    normalise + copy to the device, pack, ViT), the total's min-max as a whisker. Taught in `timing`."""

    from .pipeline import STAGES

    rows = data.get("pipeline") or []
    if not rows:
        raise ValueError("no pipeline records in these results (run with --pipeline-images N > 0)")
    colors = dict(zip(STAGES, STAGE_COLORS))
    fig, ax = _figure(1, 1, (11, 0.5 * len(rows) + 2.4))
    y = np.arange(len(rows))
    left = np.zeros(len(rows))
    for st in STAGES:
        v = np.array([r["stages"][st]["median_ms"] for r in rows])
        ax.barh(y, v, left=left, color=colors[st], label=st, height=0.7)
        left += v
    lo = left - np.array([r["min_ms"] for r in rows]).clip(max=left)
    hi = (np.array([r["max_ms"] for r in rows]) - left).clip(min=0)
    ax.errorbar(left, y, xerr=[lo, hi], fmt="none", ecolor="k", capsize=3, lw=1)
    for i, r in enumerate(rows):
        ax.text(left[i] + hi[i], i, f" {left[i]:,.0f} ms, {r['cpu_share']:.0%} before the ViT",
                va="center", fontsize=10)
    ax.set_yticks(y, [r["config"] for r in rows])
    ax.invert_yaxis()
    ax.set_xlim(0, (left + hi).max() * 1.45)
    ax.set_xlabel("median ms of one pass, stacked by stage (whisker: total min-max)")
    ax.set_title(f"the whole path for {rows[0]['num_images']} images: file -> encoder outputs")
    ax.legend(loc="upper center", bbox_to_anchor=(0.5, -0.14), ncol=6, frameon=False)
    fig.suptitle(_title(data))
    return fig


def save_plots(data: dict, out: Path) -> list[str]:
    """Write the summary, num_images, resolution (when swept) and planning PNGs next to ``out``."""
    import matplotlib.pyplot as plt

    paths = []
    plots = [("summary", plot_summary), ("num_images", plot_num_images), ("planning", plot_planning)]
    if any(r["sweep"] == "resolution" for r in data["results"]):
        plots.insert(2, ("resolution", plot_resolution))
    if data.get("pipeline"):
        plots.append(("pipeline", plot_pipeline))
    for name, fn in plots:
        fig = fn(data)
        p = out.with_name(f"{out.stem}-{name}.png")
        fig.savefig(p, dpi=110, bbox_inches="tight")
        plt.close(fig)
        paths.append(str(p))
    return paths
