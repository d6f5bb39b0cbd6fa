"""Reading benchmark results back: JSON loading, the committed results and the console table.

Taught in `timing`.
"""

from __future__ import annotations

import json
from pathlib import Path


def load_results(path) -> dict:
    """Read a benchmark JSON file and check that it has the fields the notebook uses."""
    data = json.loads(Path(path).read_text())
    for key in ("meta", "results"):
        if key not in data:
            raise ValueError(f"{path}: not a benchmark result (no {key!r})")
    return data


def recorded_results(folder=None) -> list[tuple[Path, dict]]:
    """Committed results under ``results/`` (not ``results/tmp``), each with its device in ``meta``."""
    from .. import ROOT

    folder = Path(folder) if folder is not None else ROOT / "results"
    out = []
    for p in sorted(folder.glob("*.json")):
        try:
            d = load_results(p)
        except (ValueError, json.JSONDecodeError):
            continue
        if d["meta"].get("device_name"):
            out.append((p, d))
    return out


def results_table(data: dict, sweep: str = "main") -> str:
    """A plain-text table of one sweep's records (the main set by default): the median, IQR and min-max of
    every configuration's timed runs. Row padding (packed into rows) is in :func:`summary.summary_table`."""
    rows = [r for r in data["results"] if r["sweep"] == sweep]
    head = (f"{'config':<30}{'imgs':>5}{'tokens':>8}{'pad':>7}{'dup':>7}{'median ms':>11}{'IQR':>8}"
            f"{'min-max':>14}{'img/s':>8}{'tok/s':>9}{'GFLOP/s':>9}{'eff':>6}{'maxdiff':>9}")
    m = data["meta"]
    lines = [f"{m['device_name']} · {m['dtype']} · {m['threads']} threads · torch {m['torch_version']} · "
             f"scale {m['scale']:.3g} · sweep {sweep}", head]
    for r in rows:
        spread = f"{r['min_ms']:.0f}-{r['max_ms']:.0f}"
        lines.append(f"{r['config']:<30}{r['num_images']:>5}{r['tokens']:>8}{r['padding_tokens']:>7}"
                     f"{r['duplicated_tokens']:>7}{r['median_ms']:>11.1f}{r['iqr_ms']:>8.1f}{spread:>14}"
                     f"{r['images_per_s']:>8.1f}{r['tokens_per_s']:>9.0f}{r['achieved_flops'] / 1e9:>9.1f}"
                     f"{r['efficiency']:>6.0%}{r['check_max_abs_diff']:>9.1e}")
    mm = data.get("matmul")
    if mm:
        lines.append(f"matmul {mm['n']}x{mm['n']} {mm['dtype']}: {mm['flops_per_s'] / 1e9:.1f} GFLOP/s")
    return "\n".join(lines)


def load_note(meta: dict) -> str:
    """The machine load of a run as its JSON recorded it (1-minute load average at the start and the end
    against the CPU count), or that the file does not record it (files written before it was)."""
    a, b = meta.get("load_start"), meta.get("load_end")
    if not a:
        return "load not recorded"
    end = f" -> {b[0]:g}" if b else ""
    return f"load {a[0]:g}{end} on {meta.get('cpu_count')} CPUs"


def describe(data: dict) -> str:
    """The label every recorded number is shown with: device, dtype, GPU driver and CUDA (when CUDA), torch,
    date, encoder scale, machine load and the kind of run (quick / preset / dry run / full)."""
    m = data["meta"]
    kind = ("dry run of preset " + str(m.get("preset")) if m.get("dry_run") else f"preset {m['preset']}"
            if m.get("preset") else "quick" if m.get("quick") else "full")
    gpu = f", driver {m.get('driver')}, CUDA {m.get('cuda_version')}" if m.get("device") == "cuda" else ""
    return (f"measured on {m['device_name']} ({m['device']}, {m['dtype']}{gpu}, torch {m['torch_version']}, "
            f"{m['date']}, scale {m.get('scale', 1):.3g}, {load_note(m)}, {kind} run)")


def result_plots(path) -> list[Path]:
    """The PNG plots written next to a result JSON (``<stem>-<plot>.png``), sorted."""
    path = Path(path)
    return sorted(path.parent.glob(f"{path.stem}-*.png"))


def side_by_side(runs: list[tuple[str, dict]], sweep: str = "main") -> str:
    """One table of several runs' ``sweep`` records (the main set by default): per configuration each run's
    median ms and its ratio to that run's ``packed-loop`` (the reference), ``-`` where a run has no such
    configuration; under it each run's label. ``runs``: (label, data) pairs, e.g. this run and
    :func:`recorded_results`. Taught in `timing`."""
    recs = [{r["config"]: r for r in d["results"] if r["sweep"] == sweep} for _, d in runs]
    names = list(dict.fromkeys(c for rec in recs for c in rec))
    width = 22
    lines = [f"{'config':<30}" + "".join(f"{f'[{i}] ms (x loop)':>{width}}" for i in range(len(runs)))]
    for c in names:
        cells = []
        for rec in recs:
            r, ref = rec.get(c), rec.get("packed-loop")
            cell = "-" if r is None else f"{r['median_ms']:,.0f}" + (
                f" ({r['median_ms'] / ref['median_ms']:.2f}x)" if ref else "")
            cells.append(f"{cell:>{width}}")
        lines.append(f"{c:<30}" + "".join(cells))
    lines += [f"[{i}] {label}" for i, (label, _) in enumerate(runs)]
    return "\n".join(lines)
