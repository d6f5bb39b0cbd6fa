"""A benchmark run's results: assembled and written (atomically), read back, labelled, tabled, read for their
goals, and turned into the cost model behind ``"auto"`` (fitted to the run's own packed timings).

Taught in `timing`. :func:`targets` reads the goals off the numbers (never asserted anywhere), each at the
largest point of its sweep the run has; ``met`` is None when the run does not reach the goal's size:

- ``packed_vs_loop_small``: the reference (each image alone) / the fastest fused kernel, small-images sweep,
  >= 2x at 64 images; ``packed_vs_dense``: the kernel that attends all pairs / the fastest fused kernel,
  resolution sweep, >= 5x at >= 32k tokens; ``vit_vs_matmul``: the best useful FLOP/s of the main set against
  the same-run matmul, >= 40 %; ``mask_memory``: log-log slope of a fused kernel's peak memory against N
  (CUDA), <= 1.25.
"""

from __future__ import annotations

import json
import math
import os
from pathlib import Path

from ..encoder import attention, costs
from .workload import Config, data_items, features_of

SMALL_IMAGES_GOAL = (64, 2.0)  # (images, speed-up over the reference)
DENSE_GOAL = (32768, 5.0)  # (tokens, speed-up over the all-pairs kernel)
EFFICIENCY_GOAL = 0.40
SLOPE_GOAL = 1.25


# ----------------------------------------------------------------------------------------------------------
# writing


def check_writable(out: Path) -> None:
    """Fail before any work when the result file cannot be written (a clear message, not a late OSError)."""
    try:
        out.parent.mkdir(parents=True, exist_ok=True)
        probe = out.with_name(f".{out.name}.probe")
        probe.write_text("")
        probe.unlink()
    except OSError as e:
        raise SystemExit(f"error: cannot write the results to {out} ({e.strerror or e}); pass a writable "
                         "--out FILE.json or folder") from None


def refuse_too_large(s) -> None:
    """Refuse, before any work, a main set whose inputs alone would not fit this machine's memory."""
    from .workload import make_workload, memory_estimate

    need = memory_estimate(make_workload(s.num_images, s.seed), s)
    try:
        have = os.sysconf("SC_PAGE_SIZE") * os.sysconf("SC_PHYS_PAGES")
    except (ValueError, OSError, AttributeError):
        return
    if need > 0.8 * have:
        raise SystemExit(f"error: --num-images {s.num_images} needs about {need / 2**30:.1f} GiB for its "
                         f"inputs and activations, more than this machine's {have / 2**30:.1f} GiB; use "
                         "fewer images or a smaller --scale")


def assemble(r, main_items, unavailable: list, planning: list, end_matmul: dict) -> dict:
    """The JSON's data from a finished runner ``r``: the yardstick is the faster of the two matmul timings
    (start and end of the run), so a busy moment of a shared machine does not inflate the efficiencies."""
    from .. import tiling

    peak = max(r.matmul["flops_per_s"], end_matmul["flops_per_s"])
    r.matmul = dict(n=end_matmul["n"], dtype=end_matmul["dtype"], flops_per_s=peak, start=r.matmul,
                    end=end_matmul)
    for rec in r.results:
        rec["matmul_flops"] = peak
        rec["efficiency"] = rec["achieved_flops"] / peak
        if rec["sweep"] == "main":  # the main set also belongs to the num_images sweep
            rec["point"] = rec["num_images"]
    data = dict(
        schema=1, meta=r.meta,
        workload=dict(
            description="data/ images interleaved with seeded synthetic sizes (aspect log-uniform in "
            "[1/3, 3], 1 in 8 at 1/8 or 8; area log-uniform in [0.03, 2.0] MP); packed budget = tokens of "
            f"the image's {tiling.DEFAULT_METHOD} local tiles at the run's scale",
            data_note=data_items()[1],
            main=[dict(name=it.name, source=it.source, size=list(it.size)) for it in main_items]),
        matmul=r.matmul, results=r.results, checks=r.checks, unavailable=unavailable, skipped=r.skipped,
        errors=r.errors, planning=planning, pipeline=r.pipeline, auto=r.auto, data_parallel=r.data_parallel,
        plots=[])
    data["targets"] = targets(data)
    data["costs"] = fit_costs(data)
    data["auto"] = auto_rows(data)
    return data


def save(data: dict, s) -> dict:
    """Write the plots and the JSON (to a temporary file first, then renamed: a full disk never leaves a
    truncated result behind); with ``--save-costs`` also the fitted cost model for ``"auto"``."""
    from .plots import save_plots

    if s.plots:
        data["plots"] = save_plots(data, s.out)
    tmp = s.out.with_name(f".{s.out.name}.tmp")
    tmp.write_text(json.dumps(data, indent=1, default=str))
    tmp.replace(s.out)
    if s.save_costs and data["costs"].get("backends"):
        data["meta"]["costs_saved_to"] = str(costs.save(data["costs"]["key"], data["costs"]))
    return data


# ----------------------------------------------------------------------------------------------------------
# reading back


def load_results(path) -> dict:
    """Read a benchmark JSON file and check that it has the fields the notebook uses."""
    try:
        data = json.loads(Path(path).read_text())
    except json.JSONDecodeError as e:
        raise ValueError(f"{path}: not a benchmark result (invalid JSON: {e})") from e
    for key in ("meta", "results"):
        if key not in data:
            raise ValueError(f"{path}: not a benchmark result (no {key!r})")
    return data


def recorded_results(folder=None, problems: list | None = None) -> list[tuple[Path, dict]]:
    """Committed results under ``results/`` (not ``results/tmp``), each with its device in ``meta``; a file
    that is not a readable result is left out and named in ``problems`` (when given)."""
    from .. import ROOT

    folder = Path(folder) if folder is not None else ROOT / "results"
    out = []
    for p in sorted(folder.glob("*.json")):
        try:
            d = load_results(p)
        except (ValueError, OSError) as e:
            if problems is not None:
                problems.append(f"{p.name}: {e}")
            continue
        if d["meta"].get("device_name"):
            out.append((p, d))
    return out


def load_note(meta: dict) -> str:
    """The machine load of a run (1-minute load average at the start and the end against the CPU count)."""
    a, b = meta.get("load_start"), meta.get("load_end")
    if not a:
        return "load not recorded"
    end = f" -> {b[0]:g}" if b else ""
    return f"load {a[0]:g}{end} on {meta.get('cpu_count')} CPUs"


def describe(data: dict) -> str:
    """The label every recorded number is shown with: device, dtype, GPU driver and CUDA, torch, date, scale,
    machine load and the kind of run (quick / preset / dry run / full)."""
    m = data["meta"]
    kind = ("dry run of preset " + str(m.get("preset")) if m.get("dry_run") else f"preset {m['preset']}"
            if m.get("preset") else "quick" if m.get("quick") else "full")
    gpu = f", driver {m.get('driver')}, CUDA {m.get('cuda_version')}" if m.get("device") == "cuda" else ""
    return (f"measured on {m['device_name']} ({m['device']}, {m['dtype']}{gpu}, torch {m['torch_version']}, "
            f"{m['date']}, scale {m.get('scale', 1):.3g}, {load_note(m)}, {kind} run)")


# ----------------------------------------------------------------------------------------------------------
# the cost model behind "auto", and auto's choice against the fastest backend


def fit_costs(data: dict) -> dict:
    """The cost model (:mod:`anyres_tutorial.encoder.costs`) fitted to the run's forward timings of every
    registered packed backend (the minimum of its interleaved rounds, every set and sweep)."""
    samples: dict[str, list] = {}
    for r in data["results"]:
        c = Config.parse(r["config"])
        if c.kind == "packed" and not c.train and c.backend in attention.BACKENDS and r.get("info"):
            samples.setdefault(c.backend, []).append((features_of(r), r["min_ms"] / 1e3))
    m = data["meta"]
    return dict(key=costs.key(m.get("device", "cpu"), m.get("dtype", "float32")),
                source=dict(device_name=m.get("device_name"), date=m.get("date"), out=m.get("out"),
                            load=load_note(m), scale=m.get("scale")),
                backends={b: costs.fit(xs) for b, xs in samples.items() if len(xs) >= 2})


def _sets(data: dict, train: bool = False) -> dict:
    """{(sweep, point, max_len): {backend: record}} of the packed forward records."""
    out: dict = {}
    for r in data["results"]:
        c = Config.parse(r["config"])
        if c.kind == "packed" and c.train == train:
            out.setdefault((r["sweep"], r.get("point"), c.max_len), {})[c.backend] = r
    return out


def auto_rows(data: dict) -> list[dict]:
    """Per input set: the backend ``"auto"`` picked (with the cost model of the checkout that ran), the
    fastest packed kernel measured (minimum of interleaved rounds; the reference is shown, never picked) and
    auto's time over the fastest one's."""
    picks = {(a["sweep"], a.get("point"), a.get("max_len")): a["auto"] for a in data.get("auto") or []}
    rows = []
    for (sweep, point, max_len), recs in _sets(data).items():
        kernels = {b: r for b, r in recs.items() if b != attention.REFERENCE}
        if not kernels:
            continue
        fastest = min(kernels, key=lambda b: kernels[b]["min_ms"])
        auto = picks.get((sweep, point if sweep != "main" else None, max_len))
        ref = recs.get(attention.REFERENCE)
        got = kernels.get(auto)
        best = kernels[fastest]["min_ms"]
        tokens = next(iter(recs.values()))["tokens"]
        rows.append(dict(sweep=sweep, point=point, max_len=max_len, tokens=tokens, auto=auto,
                         auto_ms=got["min_ms"] if got else None, fastest=fastest, fastest_ms=best,
                         ratio=got["min_ms"] / best if got else None,
                         reference_ms=ref["min_ms"] if ref else None))
    return rows


def auto_table(data: dict) -> str:
    """``"auto"``'s choice next to the fastest packed backend in every set (minimum of interleaved rounds)."""
    rows = data.get("auto") if data.get("auto") and "fastest" in data["auto"][0] else auto_rows(data)
    lines = [f"{'set':<24}{'tokens':>8}{'auto':>16}{'ms':>10}{'fastest':>16}{'ms':>10}{'auto/fastest':>14}"
             f"{'reference ms':>14}"]
    for a in rows:
        where = f"{a['sweep']} {a['point'] or ''}" + (f" rows{a['max_len']}" if a["max_len"] else "")
        f = lambda v, spec: "-" if v is None else format(v, spec)  # noqa: E731
        lines.append(f"{where:<24}{a['tokens']:>8}{str(a['auto']):>16}{f(a['auto_ms'], ',.1f'):>10}"
                     f"{a['fastest']:>16}{a['fastest_ms']:>10,.1f}{f(a['ratio'], '.3f'):>14}"
                     f"{f(a['reference_ms'], ',.1f'):>14}")
    return "\n".join(lines)


# ----------------------------------------------------------------------------------------------------------
# goals


def _entry(backend: str):
    return attention.get(backend) if backend in attention.BACKENDS else None


def _fused(recs: dict):
    fused = [r for b, r in recs.items() if _entry(b) is not None and _entry(b).fused]
    return min(fused, key=lambda r: r["median_ms"]) if fused else None


def _speedup(name: str, sets: dict, against, goal_at: int, goal: float, unit: str) -> dict:
    """``against(recs)``'s time / the fastest fused kernel's at the largest point where both ran."""
    rec = dict(name=name, goal=f">= {goal:g}x at >= {goal_at} {unit}", value=None, met=None, point=None,
               config=None, detail=None)
    both = [p for p in sorted(sets) if against(sets[p]) and _fused(sets[p])]
    if not both:
        rec["detail"] = "no point where both ran"
        return rec
    p = both[-1]
    best, ref = _fused(sets[p]), against(sets[p])
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


def targets(data: dict) -> list[dict]:
    """The run's goals as records (see the module docstring); nothing here is asserted."""
    sets = _sets(data)
    sweep = lambda name: {p: recs for (sw, p, ml), recs in sets.items() if sw == name and ml is None}  # noqa: E731
    all_pairs = lambda recs: next((r for b, r in recs.items()  # noqa: E731
                                   if _entry(b) is not None and _entry(b).attends_all_pairs), None)
    out = [_speedup("packed_vs_loop_small", sweep("small_images"), lambda recs: recs.get(attention.REFERENCE),
                    *SMALL_IMAGES_GOAL, "images"),
           _speedup("packed_vs_dense", sweep("resolution"), all_pairs, *DENSE_GOAL, "tokens")]
    main = [r for r in data["results"] if r["sweep"] == "main"]
    best = max(main, key=lambda r: r["efficiency"]) if main else None
    out.append(dict(name="vit_vs_matmul", goal=f">= {EFFICIENCY_GOAL:.0%} of the same-run matmul",
                    value=best["efficiency"] if best else None, config=best["config"] if best else None,
                    met=(best["efficiency"] >= EFFICIENCY_GOAL) if best and data["meta"]["device"] == "cuda"
                    else None, detail=None if best else "no main set"))
    per: dict = {}
    for _p, recs in sorted(sweep("resolution").items()):
        for b, r in recs.items():
            if _entry(b) is not None and (_entry(b).fused or _entry(b).attends_all_pairs):
                per.setdefault(r["config"], []).append(r)
    slopes = {c: dict(tokens=[r["tokens"] for r in rs],
                      mask_slope=_slope([r["tokens"] for r in rs], [r.get("mask_bytes") for r in rs]),
                      peak_slope=_slope([r["tokens"] for r in rs], [r.get("peak_memory_bytes") for r in rs]))
              for c, rs in per.items()}
    peak = {c: v["peak_slope"] for c, v in slopes.items()
            if _entry(Config.parse(c).backend).fused and v["peak_slope"] is not None}
    worst = max(peak, key=peak.get) if peak else None
    out.append(dict(name="mask_memory",
                    goal=f"fused kernels' peak memory O(N): log-log slope <= {SLOPE_GOAL}",
                    value=peak[worst] if peak else None, config=worst,
                    met=(peak[worst] <= SLOPE_GOAL) if peak else None, per_config=slopes,
                    detail=None if peak else "no measured peak memory at two resolution points (CUDA only)"))
    return out


# ----------------------------------------------------------------------------------------------------------
# tables


def results_table(data: dict, sweep: str = "main") -> str:
    """A plain-text table of one sweep's records: median, IQR and min-max of every configuration's runs."""
    m = data["meta"]
    lines = [f"{m['device_name']} · {m['dtype']} · {m['threads']} threads · torch {m['torch_version']} · "
             f"scale {m['scale']:.3g} · sweep {sweep}",
             f"{'config':<30}{'imgs':>5}{'tokens':>8}{'pad':>7}{'dup':>7}{'median ms':>11}{'IQR':>8}"
             f"{'min-max':>14}{'img/s':>8}{'tok/s':>9}{'GFLOP/s':>9}{'eff':>6}{'maxdiff':>9}"]
    for r in (r for r in data["results"] if r["sweep"] == sweep):
        spread = f"{r['min_ms']:.0f}-{r['max_ms']:.0f}"
        lines.append(f"{r['config']:<30}{r['num_images']:>5}{r['tokens']:>8}{r['padding_tokens']:>7}"
                     f"{r['duplicated_tokens']:>7}{r['median_ms']:>11.1f}{r['iqr_ms']:>8.1f}{spread:>14}"
                     f"{r['images_per_s']:>8.1f}{r['tokens_per_s']:>9.0f}{r['achieved_flops'] / 1e9:>9.1f}"
                     f"{r['efficiency']:>6.0%}{r['check_max_abs_diff']:>9.1e}")
    mm = data.get("matmul")
    if mm:
        lines.append(f"matmul {mm['n']}x{mm['n']} {mm['dtype']}: {mm['flops_per_s'] / 1e9:.1f} GFLOP/s")
    return "\n".join(lines)


def side_by_side(runs: list[tuple[str, dict]], sweep: str = "main") -> str:
    """One table of several runs' ``sweep`` records: per configuration each run's median ms and its ratio to
    that run's reference (each image alone), ``-`` where a run lacks it; each run's label under it."""
    ref_name = Config.packed(attention.REFERENCE).name
    recs = [{r["config"]: r for r in d["results"] if r["sweep"] == sweep} for _, d in runs]
    width = 22
    lines = [f"{'config':<30}" + "".join(f"{f'[{i}] ms (x loop)':>{width}}" for i in range(len(runs)))]
    for c in dict.fromkeys(c for rec in recs for c in rec):
        cells = []
        for rec in recs:
            r, ref = rec.get(c), rec.get(ref_name)
            cell = "-" if r is None else f"{r['median_ms']:,.0f}" + (
                f" ({r['median_ms'] / ref['median_ms']:.2f}x)" if ref else "")
            cells.append(f"{cell:>{width}}")
        lines.append(f"{c:<30}" + "".join(cells))
    return "\n".join(lines + [f"[{i}] {label}" for i, (label, _) in enumerate(runs)])


def pipeline_lines(data: dict) -> list[str]:
    """The pipeline table: per pipeline the median ms of every stage, the total (min-max) and the share of the
    total spent before the ViT; nothing when the run has no pipeline records."""
    rows = data.get("pipeline") or []
    if not rows:
        return []
    stages = list(rows[0]["stages"])
    out = [f"pipeline, {rows[0]['num_images']} images (median ms per stage)",
           f"{'pipeline':<30}" + "".join(f"{s:>10}" for s in stages)
           + f"{'total':>10}{'min-max':>14}{'not ViT':>9}"]
    for r in rows:
        out.append(f"{r['config']:<30}" + "".join(f"{r['stages'][s]['median_ms']:>10.1f}" for s in stages)
                   + f"{r['median_ms']:>10.1f}{r['min_ms']:>7.0f}-{r['max_ms']:<6.0f}{r['cpu_share']:>9.0%}")
    return out


def data_parallel_lines(data: dict) -> list[str]:
    """The data-parallel point: per assignment the straggler ratio (slowest rank / mean) measured and
    predicted by the FLOP cost model, and the mean step time; nothing when the run has none."""
    dp = data.get("data_parallel")
    if not dp:
        return []
    out = [f"data-parallel training, {dp['world_size']} ranks ({dp['backend']}, {dp['device']}), "
           f"{dp['images']} images a step"]
    for how in ("naive", "balanced"):
        a = dp[how]
        out.append(f"  {how:<9} straggler {a['straggler_ratio']:.2f} (predicted "
                   f"{a['predicted_straggler_ratio']:.2f}), step {sum(a['step_s']) / len(a['step_s']):.2f} s")
    return out


def summary_table(data: dict) -> str:
    """A compact console summary: machine and yardstick, one row per main-set configuration (with the largest
    point of every sweep), the pipeline, auto's choices, the goals, skips and errors."""
    m, mm = data["meta"], data.get("matmul") or {}
    head = [f"{m['device_name']} · {m['device']} · driver {m.get('driver')} · CUDA {m.get('cuda_version')} · "
            f"torch {m['torch_version']} · {m['dtype']} · preset {m.get('preset')}"
            f"{' (dry run)' if m.get('dry_run') else ''} · {m.get('wall_s')} s"]
    if mm:
        head.append(f"matmul {mm['n']}^3 {mm['dtype']}: {mm['flops_per_s'] / 1e12:.3g} TFLOP/s")
    last = {}
    for k in ("num_images", "small_images", "resolution"):
        pts = {}
        for r in data["results"]:
            if r["sweep"] == k or (k == "num_images" and r["sweep"] == "main"):
                pts.setdefault(r.get("point", r["num_images"]), {})[r["config"]] = r
        if pts:
            last[k] = (max(pts), pts[max(pts)])
    label = {"num_images": lambda p, recs: f"{p} img ms", "small_images": lambda p, recs: f"{p} small ms",
             "resolution": lambda p, recs: f"N={max(r['tokens'] for r in recs.values())} ms"}
    cols = [f"{'config':<30}{'main ms':>9}", "min-max ms", *(label[k](*v) for k, v in last.items()),
            "peak MiB", "row pad", "eff"]
    lines = head + ["".join([cols[0]] + [f"{c:>13}" for c in cols[1:]])]
    for r in (r for r in data["results"] if r["sweep"] == "main"):
        peak, pad = r.get("peak_memory_bytes"), r.get("row_padding_fraction")
        cells = [f"{r['min_ms']:.0f}-{r['max_ms']:.0f}"]
        cells += [f"{recs[r['config']]['median_ms']:.2f}" if r["config"] in recs else "-"
                  for _, recs in last.values()]
        cells += ["-" if peak is None else f"{peak / 2**20:.0f}", "-" if pad is None else f"{pad:.1%}",
                  f"{r['efficiency']:.1%}"]
        lines.append(f"{r['config']:<30}{r['median_ms']:>9.2f}" + "".join(f"{x:>13}" for x in cells))
    lines += pipeline_lines(data)
    if data.get("auto") or _sets(data):
        lines += ["auto's choice per set (minimum of interleaved rounds)", auto_table(data)]
    lines += data_parallel_lines(data)
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
