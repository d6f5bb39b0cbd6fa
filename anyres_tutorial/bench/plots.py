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
        ax.text(v + hi[i], i - 0.3, f" {v:,.0f} ms", va="center", fontsize=8)
    ax.set_yticks(y, [r["config"] for r in rows])
    ax.invert_yaxis()
    ax.set_xlabel("median time per forward (ms; whiskers min-max)")
    ax.set_title(f"{rows[0]['num_images']} mixed images: time")
    ax.set_xlim(0, (med + hi).max() * 1.3)


def _token_panel(ax, rows) -> None:
    from ..viz import token_color

    y = np.arange(len(rows))
    parts = [("useful_tokens", "useful", "useful"), ("cls_tokens", "CLS", "cls"),
             ("padding_tokens", "padding", "padding"),
             ("duplicated_tokens", "thumbnail (duplicated)", "duplicated")]
    left = np.zeros(len(rows))
    for key, label, category in parts:
        v = np.array([r[key] for r in rows], dtype=float)
        ax.barh(y, v, left=left, color=token_color(category), label=label)
        left += v
    pad = np.array([r.get("row_padding_slots") or 0 for r in rows], dtype=float)
    if pad.any():  # the empty slots at the end of packed rows
        ax.barh(y, pad, left=left, color="white", edgecolor=token_color("padding"), hatch="xx",
                label="row padding (empty slots)")
    ax.set_yticks(y, [r["config"] for r in rows])
    ax.invert_yaxis()
    ax.set_xlabel("encoder tokens (slots)")
    ax.set_title("what the encoder processes")
    ax.legend(fontsize=9, loc="upper center", bbox_to_anchor=(0.5, -0.16), ncol=3, frameon=False)


def _efficiency_panel(ax, rows, mm: dict) -> None:
    y = np.arange(len(rows))
    eff = np.array([r["efficiency"] for r in rows]) * 100
    ax.barh(y, eff, color=[config_color(r["config"]) for r in rows], hatch=_hatches(rows), edgecolor="white")
    for i, v in enumerate(eff):
        ax.text(v, i, f" {v:.0f}%", va="center", fontsize=8)
    ax.set_yticks(y, [r["config"] for r in rows])
    ax.invert_yaxis()
    ax.set_xlabel(f"% of a {mm['n']}² matmul ({mm['flops_per_s'] / 1e9:,.0f} GFLOP/s, same run)")
    ax.set_title("FLOP efficiency (useful FLOPs / time)")
    ax.set_xlim(0, max(100, eff.max() * 1.2))


def plot_summary(data: dict):
    """Main set: median time per configuration (with min-max whiskers), the encoder tokens of each split
    into useful / CLS / padding / thumbnail-duplicated, and the FLOP efficiency vs the same-run matmul.
    Taught in `timing`."""
    import matplotlib.pyplot as plt

    rows = [r for r in data["results"] if r["sweep"] == "main"]
    if not rows:
        raise ValueError("no main-set records in these results")
    fig, axes = plt.subplots(1, 3, figsize=(16, 1.5 + 0.42 * len(rows)))
    _time_panel(axes[0], rows)
    _token_panel(axes[1], rows)
    _efficiency_panel(axes[2], rows, data["matmul"])
    fig.suptitle(_title(data))
    fig.tight_layout()
    plt.close(fig)  # shown once, as the cell's value; never accumulates in pyplot
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


def plot_num_images(data: dict):
    """Time and images/s against the number of mixed images (1 -> 64), log axes; plus the small-images
    series (packed only) when present. Taught in `timing`."""
    import matplotlib.pyplot as plt

    mixed = _series(data, ("main", "num_images"))
    small = _series(data, ("small_images",))
    fig, axes = plt.subplots(1, 2, figsize=(13, 4.6))
    for cfg, rs in mixed.items():
        x, col = [r["num_images"] for r in rs], config_color(cfg)
        err = [[r["median_ms"] - r["min_ms"] for r in rs], [r["max_ms"] - r["median_ms"] for r in rs]]
        axes[0].errorbar(x, [r["median_ms"] for r in rs], yerr=err, marker="o", color=col, label=cfg,
                         capsize=2)
        axes[1].plot(x, [r["images_per_s"] for r in rs], marker="o", color=col, label=cfg)
    for cfg, rs in small.items():
        x, col = [r["num_images"] for r in rs], config_color(cfg)
        lab = f"{cfg} (small, ≤{rs[0].get('budget')} tok)"
        style = dict(marker="s", ls="--", color=col, alpha=0.7, label=lab)
        axes[0].plot(x, [r["median_ms"] for r in rs], **style)
        axes[1].plot(x, [r["images_per_s"] for r in rs], **style)
    points = sorted({r["num_images"] for rs in (*mixed.values(), *small.values()) for r in rs})
    _log2_axes(axes, points, ("median time per forward (ms)", "images per second"))
    axes[0].set_title("time vs number of images (solid: mixed set)")
    axes[1].set_title("throughput vs number of images")
    handles, labels = axes[0].get_legend_handles_labels()
    fig.legend(handles, labels, fontsize=8, loc="center left", bbox_to_anchor=(0.995, 0.5))
    fig.suptitle(_title(data))
    fig.tight_layout()
    plt.close(fig)  # shown once, as the cell's value; never accumulates in pyplot
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
    import matplotlib.pyplot as plt

    ser = _series(data, ("resolution",))
    if not ser:
        raise ValueError("no resolution-sweep records in these results (run with --sweeps)")
    fig, axes = plt.subplots(1, 2, figsize=(13, 4.6))
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
    axes[0].set_ylabel("median time per forward (ms)")
    _mask_memory_panel(axes[1], ser)
    for ax in axes:
        ax.set_xscale("log")
        ax.set_yscale("log")
        ax.set_xlabel("tokens in the packed sequence (N)")
        ax.grid(True, which="both", alpha=0.3)
        ax.legend(fontsize=8)
    fig.suptitle(_title(data))
    fig.tight_layout()
    plt.close(fig)  # shown once, as the cell's value; never accumulates in pyplot
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
        ax.annotate(",".join(nums), size, textcoords="offset points", xytext=(4, 4), fontsize=7)
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
    ax.set_title(f"the benchmark's {len(items)} mixed images (width, height)")
    ax.grid(True, which="both", alpha=0.3)
    ax.legend(fontsize=8, loc="lower right")


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
    import matplotlib.pyplot as plt

    if not items:
        raise ValueError("items is empty")
    fig, (ax, tx) = plt.subplots(1, 2, figsize=(11, 5), gridspec_kw=dict(width_ratios=[1.6, 1]))
    _workload_scatter(ax, items)
    tx.axis("off")
    tx.text(0, 1, "\n".join(_workload_lines(items, scale)), family="monospace", fontsize=7.5, va="top")
    tx.set_title(f"{tiling.DEFAULT_METHOD} grid (rows x cols + global views), tiled tokens at scale "
                 f"{scale:.3g}", fontsize=8)
    fig.tight_layout()
    plt.close(fig)  # shown once, as the cell's value; never accumulates in pyplot
    return fig


def plot_planning(data: dict):
    """Plans per second per tiling method (log axis) against the 10,000 plans/s target. Taught in `timing`."""
    import matplotlib.pyplot as plt

    rows = data.get("planning") or []
    if not rows:
        raise ValueError("no planning records in these results")
    fig, ax = plt.subplots(figsize=(7, 3.4))
    y = np.arange(len(rows))
    v = [r["plans_per_s"] for r in rows]
    ax.barh(y, v, color="#1f77b4")
    for i, val in enumerate(v):
        ax.text(val, i, f" {val:,.0f}", va="center", fontsize=8)
    ax.axvline(10_000, color="k", ls="--", lw=1, label="target 10,000 plans/s")
    ax.set_yticks(y, [r["method"] for r in rows])
    ax.invert_yaxis()
    ax.set_xscale("log")
    ax.set_xlim(min(v + [10_000]) / 3, max(v + [10_000]) * 5)
    ax.set_xlabel("plans per second (one thread, pure geometry)")
    ax.set_title(f"planning throughput · {data['meta']['cpu']}", fontsize=9)
    ax.legend(fontsize=8, loc="lower right")
    fig.tight_layout()
    plt.close(fig)  # shown once, as the cell's value; never accumulates in pyplot
    return fig


def plot_pipeline(data: dict):
    """Where the time of the whole path goes: per pipeline (every tiling method, packing as one sequence and
    in rows) one horizontal bar of median milliseconds stacked by stage (decode, plan, resize/pad/crop,
    normalise + copy to the device, pack, ViT), the total's min-max as a whisker. Taught in `timing`."""
    import matplotlib.pyplot as plt

    from .pipeline import STAGES

    rows = data.get("pipeline") or []
    if not rows:
        raise ValueError("no pipeline records in these results (run with --pipeline-images N > 0)")
    colors = dict(zip(STAGES, STAGE_COLORS))
    fig, ax = plt.subplots(figsize=(11, 0.55 * len(rows) + 1.8))
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
    ax.set_yticks(y, [r["config"] for r in rows], fontsize=10)
    ax.invert_yaxis()
    ax.set_xlim(0, (left + hi).max() * 1.45)
    ax.set_xlabel("median time of one pass (ms; stacked by stage, whisker: total min-max)", fontsize=10)
    ax.set_title(f"the whole path for {rows[0]['num_images']} images: file -> encoder outputs", fontsize=11)
    ax.legend(fontsize=10, loc="center left", bbox_to_anchor=(1.01, 0.5), frameon=False, title="stage")
    fig.suptitle(_title(data), fontsize=10)
    fig.tight_layout()
    plt.close(fig)  # shown once, as the cell's value; never accumulates in pyplot
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
