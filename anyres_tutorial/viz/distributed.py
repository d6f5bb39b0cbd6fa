"""Pictures of data-parallel training: each rank's packed rows, the weight of every image under the three
loss reductions, the gradient check, per-rank step times and the cost model's fit.

Used by `data_parallel_training`. Ranks are coloured by :func:`~.palette.rank_color`, images by
:func:`~.palette.image_color` (their index in the step), padding in :data:`~.palette.PADDING`.
"""

from __future__ import annotations

import numpy as np
from matplotlib.patches import Patch, Rectangle

from .palette import PACKED_COLOR, PAD_EDGE, PADDING, image_color, rank_color, subplots

#: the reductions that weigh images like per-image / per-token training share those pictures' colours
_REDUCTION_COLORS = {"global_per_image": PACKED_COLOR, "rank_mean": "#8c564b", "global_per_token": "#d62728"}
_FONT = 9


def rank_rows(micro, lengths, max_len: int | None, title: str | None = None):
    """One panel per (micro-batch, rank): the rows that rank packs (first-fit decreasing, ``max_len``
    slots, padding hatched), each image in its own colour with its index; a rank without images says so.
    ``max_len=None``: every rank packs all its images into one row of its own length (no padding), drawn on
    one scale. ``micro[m][r]``: image indices; ``lengths``: tokens per image (CLS included)."""
    from ..distributed.step import check_micro
    from ..packing.packer import pack

    micro = check_micro(micro, len(lengths))
    parts = {(m, r): p for m, mb in enumerate(micro) for r, p in enumerate(mb)}
    one_row = max_len is None
    if one_row:
        max_len = max(sum(lengths[i] for i in p) for p in parts.values())
    packed = {k: ([sorted(p, key=lambda i: -lengths[i])] if one_row else
                  [[p[j] for j in row] for row in pack([lengths[i] for i in p], max_len)]) if p else []
              for k, p in parts.items()}
    most = max(1, *(len(v) for v in packed.values()))
    n_micro, world = len(micro), len(micro[0])
    fig, axes = subplots(n_micro, world, figsize=(5.2 * world, (0.5 * most + 1.0) * n_micro + 0.4),
                         squeeze=False)
    for (m, r), rows in packed.items():
        ax = axes[m][r]
        for b, row in enumerate(rows):
            x = 0
            for i in row:
                ax.add_patch(Rectangle((x, b - 0.4), lengths[i], 0.8, facecolor=image_color(i),
                                       edgecolor="white", lw=1.5))
                if lengths[i] >= 0.06 * max_len:
                    ax.text(x + lengths[i] / 2, b, f"#{i}", ha="center", va="center", fontsize=_FONT)
                x += lengths[i]
            if not one_row:
                ax.add_patch(Rectangle((x, b - 0.4), max_len - x, 0.8, facecolor=PADDING, edgecolor=PAD_EDGE,
                                       hatch="///", lw=0.8))
        if not rows:
            ax.text(max_len / 2, (most - 1) / 2, "no image: a zero-weight\nblank forward and backward",
                    ha="center", va="center", fontsize=_FONT)
        ax.set_xlim(0, max_len)
        ax.set_ylim(most - 0.5, -0.5)
        ax.set_yticks(range(len(rows)), [f"row {b}" for b in range(len(rows))], fontsize=_FONT)
        ax.tick_params(axis="x", labelsize=_FONT)
        ax.spines[["top", "right"]].set_visible(False)
        imgs = parts[m, r]
        where = f"rank {r}" + (f" · micro-batch {m}" if n_micro > 1 else "")
        ax.set_title(f"{where}: {len(imgs)} images, {sum(lengths[i] for i in imgs)} tokens",
                     fontsize=_FONT + 1, color=rank_color(r))
        if m == n_micro - 1:
            ax.set_xlabel("tokens (one row per rank, no padding)" if one_row else
                          f"token slot (rows of {max_len})", fontsize=_FONT)
    if title:
        fig.suptitle(title, fontsize=_FONT + 1)
    return fig


def reduction_weights(micro, lengths, title: str | None = None):
    """Bars: the weight of every image's loss in the averaged gradient under each reduction
    (``distributed.effective_weights``), with the per-image weight ``1 / N`` dashed. Each image is labelled
    with its index, rank (coloured), micro-batch and tokens."""
    from ..distributed.step import REDUCTIONS, check_micro, effective_weights

    micro = check_micro(micro, len(lengths))
    where = {i: (m, r) for m, mb in enumerate(micro) for r, p in enumerate(mb) for i in p}
    order = sorted(where, key=lambda i: (where[i], i))
    fig, ax = subplots(figsize=(max(7.0, 0.75 * len(order) + 1.5), 3.6))
    x = np.arange(len(order))
    width = 0.8 / len(REDUCTIONS)
    for j, red in enumerate(REDUCTIONS):
        w = effective_weights(micro, lengths, red).numpy()[order]
        ax.bar(x + (j - (len(REDUCTIONS) - 1) / 2) * width, w, width=width * 0.95,
               color=_REDUCTION_COLORS[red], label=red)
    ax.axhline(1 / len(order), color="black", ls="--", lw=1, label=f"1/N = 1/{len(order)}")
    multi = len(micro) > 1
    ax.set_xticks(x, [f"#{i}\nr{where[i][1]}" + (f" m{where[i][0]}" if multi else "") + f"\n{lengths[i]} tok"
                      for i in order], fontsize=_FONT)
    for tick, i in zip(ax.get_xticklabels(), order):
        tick.set_color(rank_color(where[i][1]))
    ax.set_ylabel("weight in the gradient", fontsize=_FONT)
    ax.tick_params(axis="y", labelsize=_FONT)
    key = "(r = rank, m = micro-batch)" if multi else "(r = rank)"
    ax.set_title(title or f"who drives the averaged gradient {key}", fontsize=_FONT + 1)
    ax.legend(fontsize=_FONT, frameon=False, ncols=4, loc="upper left")
    ax.margins(y=0.25)
    ax.spines[["top", "right"]].set_visible(False)
    return fig


def ddp_gradient_check(summary, tol: float = 1e-4, title: str | None = None):
    """Two panels, log scale, one group of bars per case, one bar per reduction: the largest relative
    gradient difference (over tensors) of the DDP step against single-process per-image training (left)
    and against the reduction's own weights (right); ``summary`` from ``distributed.check.summary``."""
    cases = list(dict.fromkeys(r["case"] for r in summary))
    reductions = list(dict.fromkeys(r["reduction"] for r in summary))
    fig, axes = subplots(1, 2, figsize=(10.8, 4.1), sharey=True)
    width = 0.8 / len(reductions)
    vals = [max(r[k], 1e-9) for r in summary for k in ("vs_per_image", "vs_own_weights")]
    for ax, key, head in zip(axes, ("vs_per_image", "vs_own_weights"),
                             ("vs per-image training on one process", "vs the reduction's own weights")):
        for j, red in enumerate(reductions):
            y = [next(max(r[key], 1e-9) for r in summary if r["case"] == c and r["reduction"] == red)
                 for c in cases]
            ax.bar(np.arange(len(cases)) + (j - (len(reductions) - 1) / 2) * width, y, width=width * 0.95,
                   color=_REDUCTION_COLORS.get(red, "#555555"), label=red)
        ax.axhline(tol, color="black", ls="--", lw=1, label=f"tolerance {tol:.0e}")
        ax.set_yscale("log")
        ax.set_ylim(min(vals + [tol]) / 5, max(vals + [tol]) * 8)
        ax.set_xticks(range(len(cases)), [c.replace(" + ", "\n+ ") for c in cases], fontsize=_FONT)
        ax.tick_params(axis="y", labelsize=_FONT)
        ax.set_title(head, fontsize=_FONT + 1)
    axes[0].set_ylabel("largest ‖g − g_ref‖ / ‖g_ref‖", fontsize=_FONT)
    handles, labels = axes[0].get_legend_handles_labels()
    fig.legend(handles, labels, fontsize=_FONT, frameon=False, loc="outside upper center", ncols=len(labels))
    if title:
        fig.suptitle(title, fontsize=_FONT + 1)
    return fig


def rank_times(summary, title: str | None = None):
    """One panel per assignment: every rank's own forward + backward per step (bars, rank colours; each
    rank's image count under the step) and the whole step (black line: what every rank waits for); the
    measured and the FLOP-predicted straggler ratios in the title. ``summary`` from
    ``distributed.balance.summarize``."""
    hows = [k for k in summary if isinstance(summary[k], dict) and "compute_s" in summary[k]]
    fig, axes = subplots(1, len(hows), figsize=(5.4 * len(hows), 3.6), sharey=True, squeeze=False)
    top = max(max(s["step_s"]) for s in (summary[h] for h in hows))
    for ax, how in zip(axes[0], hows):
        s = summary[how]
        compute = np.asarray(s["compute_s"])  # (steps, world)
        steps, world = compute.shape
        width = 0.8 / world
        for r in range(world):
            xs = np.arange(steps) + (r - (world - 1) / 2) * width
            ax.bar(xs, compute[:, r], width=width * 0.95, color=rank_color(r), label=f"rank {r}")
        for k, t in enumerate(s["step_s"]):
            ax.hlines(t, k - 0.45, k + 0.45, color="black", lw=2, label="whole step" if k == 0 else None)
        counts = np.asarray(s["images"])  # (steps, world)
        ticks = [f"step {k}\nimages " + " · ".join(map(str, counts[k])) for k in range(steps)]
        ax.set_xticks(range(steps), ticks, fontsize=_FONT)
        ax.tick_params(axis="y", labelsize=_FONT)
        ax.set_ylim(0, top * 1.25)
        ax.set_title(f"{how}: straggler ratio {s['straggler_ratio']:.2f}\n(FLOPs predicted "
                     f"{s['predicted_straggler_ratio']:.2f})", fontsize=_FONT + 1)
        ax.spines[["top", "right"]].set_visible(False)
    axes[0][0].set_ylabel("seconds", fontsize=_FONT)
    axes[0][0].legend(fontsize=_FONT, frameon=False, loc="upper left", ncols=world + 1)
    if title:
        fig.suptitle(title, fontsize=_FONT + 1)
    return fig


def cost_fit(summary, title: str | None = None):
    """Measured forward + backward seconds of every (assignment, step, rank) against its FLOPs, with the
    least-squares line ``seconds = a * FLOPs + b`` and its R^2 (``distributed.balance.summarize``)."""
    hows = [k for k in summary if isinstance(summary[k], dict) and "compute_s" in summary[k]]
    fig, ax = subplots(figsize=(6.0, 3.8))
    markers = "os^Dv"
    xs = []
    for j, how in enumerate(hows):
        s = summary[how]
        f, c = np.asarray(s["flops"], dtype=float) / 1e9, np.asarray(s["compute_s"])
        xs.extend(f.ravel())
        for r in range(f.shape[1]):
            ax.scatter(f[:, r], c[:, r], marker=markers[j % len(markers)], color=rank_color(r), s=40,
                       edgecolor="black", lw=0.5)
    fit = summary["cost_model"]
    line = np.linspace(0, max(xs) * 1.05, 50)
    ax.plot(line, fit["seconds_per_gflop"] * line + fit["intercept_s"], color="black", lw=1, ls="--")
    handles = [Patch(color=rank_color(r), label=f"rank {r}") for r in range(f.shape[1])]
    handles += [ax.scatter([], [], marker=markers[j % len(markers)], color="white", edgecolor="black",
                           label=h) for j, h in enumerate(hows)]
    ax.legend(handles=handles, fontsize=_FONT, frameon=False, loc="upper left")
    ax.set_xlabel("training-step GFLOPs of the rank's images (cost model)", fontsize=_FONT)
    ax.set_ylabel("measured forward + backward (s)", fontsize=_FONT)
    ax.tick_params(labelsize=_FONT)
    ax.set_xlim(0, max(xs) * 1.05)
    ax.set_ylim(bottom=0)
    ax.set_title(title or f"cost model: R² = {fit['r2']:.2f}, mean |error| {fit['mean_abs_rel_error']:.0%}",
                 fontsize=_FONT + 1)
    ax.spines[["top", "right"]].set_visible(False)
    return fig


__all__ = ["cost_fit", "ddp_gradient_check", "rank_rows", "rank_times", "reduction_weights"]
