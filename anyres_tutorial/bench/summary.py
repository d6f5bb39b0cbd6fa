"""What a benchmark run says about its goals, and a compact table for the console. Taught in `timing`.

:func:`targets` reads the goals off the recorded numbers (never asserted anywhere: speed is what the benchmark
measures, not what a test checks). Each goal is reported at the largest point of its sweep that the run has,
with that point; ``met`` is None when the run does not reach the point the goal is stated for (a dry run, a
CPU run), so a small run never claims a GPU result:

- ``packed_vs_loop_small``: ``loop`` time / the faster of ``flex`` and ``varlen`` (:data:`PACKED`; without
  them, the fastest block-sparse backend: one that neither runs images alone nor attends all pairs),
  small-images sweep; goal >= 2x at 64 images;
- ``packed_vs_dense``: ``dense_mask`` time / the same, resolution sweep; goal >= 5x at >= 32k tokens;
- ``vit_vs_matmul``: the best ``efficiency`` (useful FLOP/s / same-run matmul FLOP/s) of the main set; goal
  >= 40 %;
- ``mask_memory``: per block-sparse backend, the slope of log(mask bytes) (the registry's estimate) against
  log(N) over the resolution sweep (1 = O(N), the dense mask's is 2) and the same slope of the measured peak
  memory (CUDA only); goal: peak-memory slope <= 1.25 for every block-sparse backend.
"""

from __future__ import annotations

import math

from .config import Config

SMALL_IMAGES_GOAL = (64, 2.0)  # (images, speed-up over loop)
DENSE_GOAL = (32768, 5.0)  # (tokens, speed-up over dense_mask)
EFFICIENCY_GOAL = 0.40
SLOPE_GOAL = 1.25
PACKED = ("packed-flex", "packed-varlen")  # the packed kernels the speed goals are stated for


def _backend(config: str) -> str | None:
    try:
        c = Config.parse(config)
    except ValueError:  # not a configuration name
        return None
    return c.backend if c.kind == "packed" else None


def block_sparse(config: str) -> bool:
    """True for a packed backend that runs all images in one call and skips the masked-out pairs."""
    from ..encoder import attention

    name = _backend(config)
    if name is None:
        return False
    try:
        b = attention.get(name)
    except ValueError:  # recorded by a backend this checkout does not register
        return name in ("flex", "varlen")
    return b.prepare is not None and not b.attends_all_pairs


def _rows(data: dict, sweep: str) -> dict:
    """{point: {config: record}} of one sweep (the main set is the num_images point it has)."""
    out: dict = {}
    for r in data["results"]:
        if r["sweep"] == sweep or (sweep == "num_images" and r["sweep"] == "main"):
            out.setdefault(r.get("point", r["num_images"]), {})[r["config"]] = r
    return out


def _fastest_sparse(recs: dict):
    sparse = [r for c, r in recs.items() if c in PACKED] or [r for c, r in recs.items() if block_sparse(c)]
    return min(sparse, key=lambda r: r["median_ms"]) if sparse else None


def _speedup(name: str, rows: dict, against: str, goal_at: int, goal: float, what: str, unit: str) -> dict:
    """``against`` time / the fastest block-sparse time at the largest point where both ran."""
    rec = dict(name=name, goal=f">= {goal:g}x at >= {goal_at} {unit}", value=None, met=None, point=None,
               config=None, detail=None)
    both = [p for p in sorted(rows) if against in rows[p] and _fastest_sparse(rows[p])]
    if not both:
        rec["detail"] = f"no {what} point where {against} and a block-sparse backend both ran"
        return rec
    p = both[-1]
    best, ref = _fastest_sparse(rows[p]), rows[p][against]
    size = ref["num_images"] if unit == "images" else ref["tokens"]
    rec.update(value=ref["median_ms"] / best["median_ms"], point=p, config=best["config"], size=size)
    rec["met"] = rec["value"] >= goal if size >= goal_at else None
    if size < goal_at:
        rec["detail"] = f"largest point has {size} {unit} < {goal_at}: not the goal's size"
    return rec


def _slope(xs, ys) -> float | None:
    pts = [(math.log(x), math.log(y)) for x, y in zip(xs, ys) if x and y and x > 0 and y > 0]
    if len(pts) < 2 or pts[-1][0] == pts[0][0]:
        return None
    (x0, y0), (x1, y1) = pts[0], pts[-1]
    return (y1 - y0) / (x1 - x0)


def _memory(data: dict) -> dict:
    per = {}
    for _point, recs in sorted(_rows(data, "resolution").items()):
        for c, r in recs.items():
            if block_sparse(c) or c == "packed-dense_mask":
                per.setdefault(c, []).append(r)
    slopes = {}
    for c, rs in per.items():
        n = [r["tokens"] for r in rs]
        slopes[c] = dict(tokens=n, mask_slope=_slope(n, [r.get("mask_bytes") for r in rs]),
                         peak_slope=_slope(n, [r.get("peak_memory_bytes") for r in rs]))
    peak = {c: v["peak_slope"] for c, v in slopes.items() if block_sparse(c) and v["peak_slope"] is not None}
    worst = max(peak, key=peak.get) if peak else None
    return dict(name="mask_memory", goal=f"block-sparse peak memory O(N): log-log slope <= {SLOPE_GOAL}",
                value=peak[worst] if peak else None, config=worst, met=(peak[worst] <= SLOPE_GOAL) if peak
                else None, per_config=slopes,
                detail=None if peak else "no measured peak memory at two resolution points (CUDA only)")


def targets(data: dict) -> list[dict]:
    """The run's goals as records (see the module docstring); nothing here is asserted."""
    out = [
        _speedup("packed_vs_loop_small", _rows(data, "small_images"), "packed-loop", *SMALL_IMAGES_GOAL,
                 "small_images", "images"),
        _speedup("packed_vs_dense", _rows(data, "resolution"), "packed-dense_mask", *DENSE_GOAL,
                 "resolution", "tokens"),
    ]
    main = [r for r in data["results"] if r["sweep"] == "main"]
    best = max(main, key=lambda r: r["efficiency"]) if main else None
    out.append(dict(name="vit_vs_matmul", goal=f">= {EFFICIENCY_GOAL:.0%} of the same-run matmul",
                    value=best["efficiency"] if best else None, config=best["config"] if best else None,
                    met=(best["efficiency"] >= EFFICIENCY_GOAL) if best and data["meta"]["device"] == "cuda"
                    else None, detail=None if best else "no main set"))
    out.append(_memory(data))
    return out


def _ms(rec) -> str:
    return f"{rec['median_ms']:.2f}" if rec else "-"


def summary_table(data: dict) -> str:
    """A compact console summary: the machine, the yardstick, one row per configuration (main set, largest
    num_images / small_images / resolution points, peak memory), the goals, skips and errors."""
    m, mm = data["meta"], data.get("matmul") or {}
    head = [f"{m['device_name']} · {m['device']} · driver {m.get('driver')} · CUDA {m.get('cuda_version')} · "
            f"torch {m['torch_version']} · {m['dtype']} · preset {m.get('preset')}"
            f"{' (dry run)' if m.get('dry_run') else ''} · {m.get('wall_s')} s"]
    if mm:
        head.append(f"matmul {mm['n']}^3 {mm['dtype']}: {mm['flops_per_s'] / 1e12:.3g} TFLOP/s")
    sweeps = {k: _rows(data, k) for k in ("num_images", "small_images", "resolution")}
    last = {k: (max(v), v[max(v)]) if v else (None, {}) for k, v in sweeps.items()}
    ran = [k for k in ("num_images", "small_images", "resolution") if last[k][0] is not None]  # sweeps run
    label = {"num_images": lambda p, recs: f"{p} img ms", "small_images": lambda p, recs: f"{p} small ms",
             "resolution": lambda p, recs: f"N={_tokens(recs)} ms"}
    cols = [f"{'config':<30}{'main ms':>9}", "min-max ms", *(label[k](*last[k]) for k in ran), "peak MiB",
            "row pad", "eff"]
    lines = head + ["".join([cols[0]] + [f"{c:>13}" for c in cols[1:]])]
    for r in (r for r in data["results"] if r["sweep"] == "main"):
        c = r["config"]
        peak = r.get("peak_memory_bytes")
        cells = [f"{r['min_ms']:.0f}-{r['max_ms']:.0f}"]
        cells += [_ms(last[k][1].get(c)) for k in ran]
        pad = r.get("row_padding_fraction")
        cells += ["-" if peak is None else f"{peak / 2**20:.0f}", "-" if pad is None else f"{pad:.1%}",
                  f"{r['efficiency']:.1%}"]
        lines.append(f"{c:<30}{r['median_ms']:>9.2f}" + "".join(f"{x:>13}" for x in cells))
    lines += pipeline_lines(data)
    for t in data.get("targets") or targets(data):
        val = "-" if t["value"] is None else f"{t['value']:.3g}"
        where = f" at {t['point']}" if t.get("point") is not None else ""
        who = f" ({t['config']})" if t.get("config") else ""
        lines.append(f"goal {t['name']:<21} {val:>8}{where}{who} goal {t['goal']}: "
                     f"{'met' if t['met'] else 'not met' if t['met'] is False else 'n/a'}"
                     + (f" [{t['detail']}]" if t.get("detail") else ""))
    for k in ("skipped", "unavailable", "errors"):
        for x in data.get(k, []):
            lines.append(f"{k}: {x['config']} {x.get('sweep', '')} {x.get('point', '')}: "
                         f"{x.get('reason') or x.get('error')}")
    return "\n".join(lines)


def pipeline_lines(data: dict) -> list[str]:
    """The pipeline table: per pipeline the median ms of every stage, the total (min-max) and the share of
    the total spent before the ViT; nothing when the run has no pipeline records."""
    rows = data.get("pipeline") or []
    if not rows:
        return []
    stages = list(rows[0]["stages"])
    out = [f"pipeline, {rows[0]['num_images']} images (median ms per stage)",
           f"{'pipeline':<30}" + "".join(f"{s:>10}" for s in stages) + f"{'total':>10}{'min-max':>14}"
           f"{'not ViT':>9}"]
    for r in rows:
        out.append(f"{r['config']:<30}" + "".join(f"{r['stages'][s]['median_ms']:>10.1f}" for s in stages)
                   + f"{r['median_ms']:>10.1f}{r['min_ms']:>7.0f}-{r['max_ms']:<6.0f}{r['cpu_share']:>9.0%}")
    return out


def _tokens(recs: dict):
    return max((r["tokens"] for r in recs.values()), default=None)
