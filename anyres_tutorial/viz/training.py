"""Pictures of training on packed sequences: loss weights, gradient differences, loss curves, step times.

Used by `training_with_packed_sequences`. Colours come from the shared palette (:mod:`.palette`): packed
images by :func:`image_color`, attention backends by :func:`backend_color`, padding in :data:`PADDING`.
"""

from __future__ import annotations

import numpy as np

from .palette import PACKED_COLOR, PADDING, backend_color, image_color, subplots

_REDUCTION_COLORS = {"per_image": PACKED_COLOR, "per_token": "#d62728"}


def loss_weights(lengths, title: str | None = None, labels=None):
    """Bars: each image's share of the loss (and of the gradient) under the two reductions, with its token
    count. ``lengths``: tokens per image; ``labels``: the images' names (default "image 0", "image 1",
    ...)."""
    from ..training import image_weights

    lengths = list(lengths)
    if labels is not None and len(labels) != len(lengths):
        raise ValueError(f"got {len(labels)} labels for {len(lengths)} images")
    names = [str(n) for n in labels] if labels is not None else [f"image {i}" for i in range(len(lengths))]
    fig, ax = subplots(figsize=(6.4, 3.0))
    x = np.arange(len(lengths))
    for j, red in enumerate(("per_image", "per_token")):
        w = image_weights(lengths, red).numpy()
        bars = ax.bar(x + (j - 0.5) * 0.38, w, width=0.36, color=_REDUCTION_COLORS[red], label=red)
        ax.bar_label(bars, fmt="%.2f", fontsize=9)
    ax.set_xticks(x, [f"{name}\n{n} tokens" for name, n in zip(names, lengths)], fontsize=9)
    ax.set_ylabel("weight of the image's loss")
    ax.set_title(title or "who drives the gradient: per-image vs per-token mean", fontsize=10)
    ax.legend(fontsize=9, frameon=False)
    ax.margins(y=0.15)
    return fig


def gradient_differences(comparisons, tol: float = 1e-4, title: str | None = None):
    """Largest and median relative gradient difference (over parameter tensors) of each packed step vs the
    same step image by image; ``comparisons`` from :func:`anyres_tutorial.training.compare_steps`. Log
    scale, with the tolerance as a dashed line."""
    from matplotlib.patches import Patch

    fig, ax = subplots(figsize=(max(6.0, 1.1 * len(comparisons) + 1.5), 3.3))
    labels = [f"{c.backend}\n{c.reduction}" + ("\n+ dropping" if c.dropped else "") for c in comparisons]
    worst = [max(c.max_grad_diff, 1e-12) for c in comparisons]
    median = [max(float(np.median(list(c.grad_diff.values()))), 1e-12) for c in comparisons]
    x = np.arange(len(comparisons))
    colors = [backend_color(c.backend) if c.reduction == "per_image" else _REDUCTION_COLORS["per_token"]
              for c in comparisons]
    ax.bar(x - 0.2, worst, width=0.38, color=colors, label="largest over tensors")
    ax.bar(x + 0.2, median, width=0.38, color=colors, alpha=0.45, label="median over tensors")
    for xi, v in zip(x, worst):
        ax.text(xi - 0.2, v * 1.3, f"{v:.1e}", ha="center", fontsize=9)
    ax.axhline(tol, ls="--", color="k", lw=1)
    ax.text(-0.45, tol * 1.4, f"tolerance {tol:g}", ha="left", fontsize=9)
    ax.set_yscale("log")
    ax.set_ylim(min(median + [tol]) / 10, max(worst + [tol]) * 200)
    ax.set_xticks(x, labels, fontsize=9)
    ax.set_ylabel("‖g − g_per_image‖ / ‖g_per_image‖")
    ax.set_title(title or "one packed step vs the same step image by image", fontsize=10)
    ax.legend(handles=[Patch(color="#555555", label="largest over tensors"),
                       Patch(color="#555555", alpha=0.45, label="median over tensors")],
              fontsize=9, frameon=False, loc="upper left")
    return fig


def loss_curves(runs, title: str | None = None):
    """Left: loss per step of each :class:`~anyres_tutorial.finetune.FinetuneRun` (markers for the second so
    equal curves stay visible). Right: slots paid per step, real tokens vs padding."""
    fig, (ax, bx) = subplots(1, 2, figsize=(10.5, 3.4), gridspec_kw=dict(width_ratios=[3, 2]))
    styles = [dict(lw=2.2), dict(lw=0, marker="o", ms=3.5)]
    for k, (run, style) in enumerate(zip(runs, styles * len(runs))):
        ax.plot(np.arange(1, len(run.losses) + 1), run.losses, color=image_color(k), label=run.mode, **style)
    ax.set_xlabel("step")
    ax.set_ylabel("loss (per-image mean)")
    ax.set_title(title or "fine-tuning: packed and padded batches, step by step", fontsize=10)
    ax.legend(fontsize=9, frameon=False)
    x = np.arange(len(runs))
    real = [sum(r.tokens) for r in runs]
    wasted = [sum(r.wasted) for r in runs]
    bx.bar(x, real, color=[image_color(k) for k in range(len(runs))], label="real tokens")
    bx.bar(x, wasted, bottom=real, color=PADDING, hatch="//", edgecolor="#7f7f7f", label="padding slots")
    for xi, r, w in zip(x, real, wasted):
        bx.text(xi, r + w, f"{w / (r + w):.0%} padding", ha="center", va="bottom", fontsize=9)
    bx.set_xticks(x, [r.mode for r in runs])
    bx.set_ylabel("slots over the whole run")
    bx.set_ylim(0, max(r + w for r, w in zip(real, wasted)) * 1.4)
    bx.legend(fontsize=9, frameon=False, loc="upper center", ncol=2)
    return fig


def drop_rate_times(results, title: str | None = None):
    """Token dropping at a fixed number of rows, per drop rate. Left: what one step holds -- its slots (rows x
    row length) split into real tokens and padding, with the number of images on top. Middle: seconds per
    step per backend (the minimum over the repeats as a line, every repeat as a dot). Right: images per
    second. ``results`` from :func:`anyres_tutorial.finetune.time_drop_rates`."""
    from matplotlib.patches import Patch

    results = list(results)
    if not results or not {"rate", "slots", "tokens", "images", "times"} <= set(results[0]):
        raise ValueError("results must come from finetune.time_drop_rates")
    fig, (ax, bx, cx) = subplots(1, 3, figsize=(11.0, 3.6))
    per_rate = {r["rate"]: r for r in results}  # what a step holds does not depend on the backend
    rates = sorted(per_rate)
    x = np.arange(len(rates))
    tokens = np.array([per_rate[r]["tokens"] for r in rates])
    slots = np.array([per_rate[r]["slots"] for r in rates])
    ax.bar(x, tokens, 0.6, color=PACKED_COLOR)
    ax.bar(x, slots - tokens, 0.6, bottom=tokens, color=PADDING, hatch="//", edgecolor="#7f7f7f")
    for xi, r in zip(x, rates):
        ax.text(xi, per_rate[r]["slots"], f"{per_rate[r]['images']} img", ha="center", va="bottom",
                fontsize=9)
    ax.set_xticks(x, [f"{r:g}" for r in rates])
    ax.set_xlabel("token-drop rate")
    ax.set_ylabel("slots in one step")
    ax.set_ylim(0, slots.max() * 1.4)
    first = per_rate[rates[0]]
    ax.set_title(f"one step: {first['rows']} rows x {first['slots'] // first['rows']} slots", fontsize=10)
    ax.legend(handles=[Patch(color=PACKED_COLOR, label="real tokens"),
                       Patch(facecolor=PADDING, hatch="//", edgecolor="#7f7f7f", label="padding")],
              fontsize=9, frameon=False, loc="upper center", ncol=2)
    repeats = max(len(r["times"]) for r in results)
    for name in dict.fromkeys(r["backend"] for r in results):
        rows = sorted((r for r in results if r["backend"] == name), key=lambda r: r["rate"])
        xs = [rates.index(r["rate"]) for r in rows]
        color = backend_color(name)
        bx.plot(xs, [r["seconds"] for r in rows], marker="o", color=color, label=name)
        for xi, r in zip(xs, rows):
            bx.plot([xi] * len(r["times"]), r["times"], ls="none", marker=".", ms=5, color=color, alpha=0.45)
        cx.plot(xs, [r["images_per_s"] for r in rows], marker="o", color=color, label=name)
    for a in (bx, cx):
        a.set_xticks(x, [f"{r:g}" for r in rates])
        a.set_xlabel("token-drop rate")
        a.set_ylim(bottom=0)
    bx.set_ylim(top=max(t for r in results for t in r["times"]) * 1.15)
    bx.set_ylabel("seconds per step")
    bx.set_title(f"time per step (line: min of {repeats}, dots: each)", fontsize=10)
    cx.set_ylabel("images per second")
    cx.set_title("images trained per second (min time)", fontsize=10)
    cx.legend(fontsize=9, frameon=False, loc="lower right")
    if title:
        fig.suptitle(title, fontsize=11)
    return fig


__all__ = ["drop_rate_times", "gradient_differences", "loss_curves", "loss_weights"]
