"""A picture that tells the kernel how wide it may be (`grid_explorer`).

:class:`Picture` is a small ``anywidget``: the browser shows the PNG in ``value`` at its natural size and a
``ResizeObserver`` reports the width of the picture's column (``width``, CSS px) and the window's height
(``screen_height``) whenever they change, so the explorer redraws the figure *for* that width
(:func:`anyres_tutorial.viz.fit.figure_png`) instead of shrinking a fixed-size PNG. ``report`` holds the
layout check of the drawn figure (overlapping texts, collapsed axes), written into the page as ``data-*``
attributes for the browser test. Without a browser (tests, nbconvert) ``width`` keeps its default.
"""

from __future__ import annotations

import anywidget
import traitlets as T

DEFAULT_WIDTH = 640  # CSS px: the first drawing, and the handout's snapshot (no browser reports a width)

_ESM = r"""
function render({ model, el }) {
  el.classList.add("anyres-picture-box");
  el.style.width = "100%";
  el.style.minWidth = "0";
  const img = document.createElement("img");
  img.className = "anyres-picture";
  img.style.display = "none";
  img.style.maxWidth = "100%";
  el.appendChild(img);
  let url = null;
  function draw() {
    const v = model.get("value");
    if (url) { URL.revokeObjectURL(url); url = null; }
    const n = v ? (v.byteLength ?? v.length ?? 0) : 0;
    if (!n) { img.style.display = "none"; img.removeAttribute("src"); return; }
    url = URL.createObjectURL(new Blob([v], { type: "image/png" }));
    img.src = url;
    img.style.display = "block";
    const r = model.get("report") || {};
    img.dataset.overlaps = String((r.overlaps || []).length);
    img.dataset.outside = String((r.outside || []).length);
    img.dataset.collapsed = String((r.collapsed || []).length);
    img.dataset.small = String((r.small || []).length);
    img.dataset.drawnFor = String(r.drawn_for || 0);
    img.title = (r.overlaps || []).map(p => p.join(" / ")).join("; ");
  }
  model.on("change:value", draw);
  model.on("change:report", draw);
  draw();
  let timer = null;
  function report() {
    const w = Math.floor(el.getBoundingClientRect().width);
    const h = Math.floor(window.innerHeight);
    if (w <= 0) return;  // a hidden tab: keep the last width
    if (Math.abs(w - model.get("width")) < 4 && Math.abs(h - model.get("screen_height")) < 40) return;
    clearTimeout(timer);
    timer = setTimeout(() => {
      model.set("width", w);
      model.set("screen_height", h);
      model.save_changes();
    }, 120);
  }
  const ro = new ResizeObserver(report);
  ro.observe(el);
  window.addEventListener("resize", report);
  return () => {
    ro.disconnect();
    window.removeEventListener("resize", report);
    if (url) URL.revokeObjectURL(url);
  };
}
export default { render };
"""


class Picture(anywidget.AnyWidget):
    """A PNG shown at its natural size; ``width`` / ``screen_height``: what the browser has room for."""

    _esm = _ESM
    _anyres_picture = T.Bool(True).tag(sync=True)  # lets the handout find it in the saved widget state
    value = T.Bytes(b"").tag(sync=True)
    report = T.Dict().tag(sync=True)
    width = T.Int(DEFAULT_WIDTH).tag(sync=True)
    screen_height = T.Int(900).tag(sync=True)
