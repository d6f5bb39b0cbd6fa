"""What a real text recognizer reads of each view: the lines it was given, and accuracy against x-height.

Used by `tiling_vs_packing`; the numbers come from ``features.readability`` / ``features.read_piece``.

- ``reading_strips(reads)``: a few text pieces as each view hands them to the reader (the 48-px line image),
  the reading underneath, characters read wrong in red
- ``reading_curve(reads, rule)``: character accuracy against x-height in patches (log scale), one colour per
  image, the binned monotone fit and its 50% / 90% points, optionally a scale sweep of one line
"""

from __future__ import annotations

import numpy as np
from matplotlib.figure import Figure
from matplotlib.lines import Line2D

from ..features.reader import alignment
from .palette import GLOBAL_COLOR, NEWLINE_COLOR, USEFUL, image_color, new_figure, subplots

_MONO = 0.602  # advance of one DejaVu Sans Mono character, in font sizes


def _reading_runs(truth: str, reading: str) -> list[tuple[str, bool]]:
    """The reading as it came (spaces kept) cut into runs of characters read right / wrong; a red "_" stands
    where the reader missed characters, "?" for a Chinese character (the reader knows 6,623 characters, the
    figure's font does not)."""
    a = alignment(truth, reading)
    marks, k = [], 0  # (char, ok)
    for ch in str(reading):
        if ch.isspace():
            marks.append((" ", True))
            continue
        marks += [("_", False)] * int(a["missed"][k] > 0)
        marks.append((ch if ord(ch) < 0x2000 else "?", bool(a["reading_ok"][k])))
        k += 1
    marks += [("_", False)] * int(a["missed"][k] > 0)
    runs: list[tuple[str, bool]] = []
    for ch, ok in marks:
        if runs and runs[-1][1] == ok:
            runs[-1] = (runs[-1][0] + ch, ok)
        else:
            runs.append((ch, ok))
    return runs


def _draw_reading(fig, x: float, y: float, d: dict, fontsize: float) -> None:
    """The reading at (x, y) (figure inches, text baseline), run by run in a monospaced font."""
    for text, ok in _reading_runs(d["text"], d["reading"]):
        fig.text(x / fig.get_figwidth(), y / fig.get_figheight(), text, fontsize=fontsize,
                 family="DejaVu Sans Mono", color=GLOBAL_COLOR if ok else NEWLINE_COLOR, va="baseline")
        x += len(text) * _MONO * fontsize / 72


def reading_strips(reads, title: str | None = None, line_height: float = 0.42) -> Figure:
    """Pieces of text as each view hands them to the reader: ``reads`` are ``features.read_piece(...,
    keep_image=True)`` dicts; one row per view (first-seen order of ``label``, named on the left), one column
    per piece (first-seen order of ``text``). Each cell: the x-height in patches and the share of characters
    read right, the 48-px line image the reader was given (drawn ``line_height`` inches high) and the
    reading below it (red: read wrong). Used by `tiling_vs_packing`."""
    reads = list(reads)
    if not reads or "line" not in reads[0]:
        raise ValueError("reads must be features.read_piece(..., keep_image=True) dicts (with 'line')")
    labels = list(dict.fromkeys(d["label"] for d in reads))
    texts = list(dict.fromkeys(d["text"] for d in reads))
    cell = {(d["label"], d["text"]): d for d in reads}
    fs, gap = 9.5, 0.25
    label_w = 0.35 + max(len(label) for label in labels) * 0.56 * (fs + 0.5) / 72  # DejaVu Sans, ~0.56 em
    widths = []  # inches per column: the widest line image or reading, at least the cell's title
    for t in texts:
        ds = [d for d in reads if d["text"] == t]
        img_w = max(line_height * d["line"].width / d["line"].height for d in ds)
        txt_w = max(len(d["reading"]) + 2 for d in ds) * _MONO * fs / 72
        widths.append(max(img_w, txt_w, 2.4))
    row_h = line_height + 0.55
    fig_w, fig_h = label_w + sum(widths) + gap * len(texts), row_h * len(labels) + 0.45
    fig = new_figure((fig_w, fig_h), layout=None)
    for i, label in enumerate(labels):
        top = fig_h - 0.45 - i * row_h  # inches from the bottom
        fig.text((label_w - 0.15) / fig_w, (top - 0.2 - line_height / 2) / fig_h, label, fontsize=fs + 0.5,
                 ha="right", va="center")
        x = label_w
        for t, w in zip(texts, widths):
            d = cell.get((label, t))
            if d is not None:
                fig.text(x / fig_w, (top - 0.05) / fig_h, f"x-height {d['x_patches']:.2f} patch, "
                         f"{d['accuracy']:.0%} read", fontsize=fs, va="top", color="#555555")
                iw = min(w, line_height * d["line"].width / d["line"].height)
                ax = fig.add_axes(((x) / fig_w, (top - 0.2 - line_height) / fig_h, iw / fig_w,
                                   line_height / fig_h))
                ax.imshow(np.asarray(d["line"]), interpolation="bilinear", aspect="auto")
                ax.axis("off")
                _draw_reading(fig, x, top - 0.2 - line_height - 0.2, d, fs)
            x += w + gap
    fig.suptitle(title or "What the reader is given, and what it reads (red: read wrong, _: missed)",
                 fontsize=12, y=1 - 0.12 / fig_h, va="top")
    return fig


def reading_curve(reads, rule: dict, sweep=None, title: str | None = None) -> Figure:
    """Character accuracy of every read piece against its x-height in patches (log scale), one colour per
    image; the binned accuracy (``rule`` = ``features.rule_of_thumb(reads)``) and its monotone fit, dashed
    lines at the fit's crossings; ``sweep`` (``features.scale_sweep`` dicts) as one more line. Used by
    `tiling_vs_packing`."""
    reads = list(reads)
    if not reads:
        raise ValueError("reads is empty: pass features.readability(...)")
    fig, ax = subplots(figsize=(9.0, 4.6))
    images = list(dict.fromkeys(d["image"] for d in reads))
    handles = []
    for k, name in enumerate(images):
        ds = [d for d in reads if d["image"] == name and d["x_patches"] > 0]
        x = np.array([d["x_patches"] for d in ds])
        y = np.array([d["accuracy"] for d in ds])
        jitter = 0.012 * np.sin(np.arange(len(y)) * 2.4)  # keeps stacked 0% / 100% points apart
        ax.scatter(x, np.clip(y + jitter, -0.03, 1.03), s=9, alpha=0.45, color=image_color(k), lw=0)
        handles.append(Line2D([], [], ls="", marker="o", color=image_color(k), label=f"{name} (pieces)"))
    ax.plot(rule["x"], rule["accuracy"], "o", color=GLOBAL_COLOR, ms=4.5, mfc="white")
    ax.plot(rule["x"], rule["fit"], "-", color=GLOBAL_COLOR, lw=2)
    handles.append(Line2D([], [], color=GLOBAL_COLOR, lw=2, marker="o", mfc="white",
                          label="binned mean (dots), monotone fit (line)"))
    if sweep:
        sw = sorted(sweep, key=lambda d: d["x_patches"])
        ax.plot([d["x_patches"] for d in sw], [d["accuracy"] for d in sw], "s--", color=USEFUL, ms=4,
                lw=1.2)
        handles.append(Line2D([], [], color=USEFUL, ls="--", marker="s", ms=4,
                              label="one line, scale sweep"))
    for lev, x in rule["crossings"].items():
        if x is None:
            continue
        ax.axvline(x, color=NEWLINE_COLOR, ls=":", lw=1.3)
        ax.annotate(f"{lev:.0%} at {x:.2f} patch", (x, lev), xytext=(6, -4), textcoords="offset points",
                    fontsize=10, color=NEWLINE_COLOR, va="top",
                    bbox=dict(fc="white", ec="none", alpha=0.85, pad=1.5))
    ax.set_xscale("log")
    ax.set_ylim(-0.05, 1.05)
    ax.set_xlabel("x-height of the text in encoder patches (log scale)", fontsize=10.5)
    ax.set_ylabel("characters read right", fontsize=10.5)
    ax.yaxis.set_major_formatter(lambda v, _: f"{v:.0%}")
    ax.tick_params(labelsize=10)
    ax.grid(True, which="both", alpha=0.25)
    ax.legend(handles=handles, fontsize=9.5, loc="upper left")
    ax.set_title(title or "How tall must text be, in patches, for a reader to read it?", fontsize=12)
    return fig


__all__ = ["reading_strips", "reading_curve"]
