"""Time a workshop path by running it: ``python tools/workshop_times.py [--path 2h] [--json out.json]``.

The paths are the tables of ``notebooks/WORKSHOP.md`` (``PATHS`` below holds the same choices; a test keeps
them in step). For each notebook of a path the notebook is executed top to bottom on a fresh kernel at full
size (``ANYRES_FAST`` unset, as a learner runs it) and every code cell's wall time is measured and added to
the Step (``##`` heading) it belongs to. A presented Step then costs its measured run time plus its talk
time: the words of its text at ``WPM`` words per minute, its code at ``CODE_LPM`` lines per minute (walked
through on screen; a "the code" cell counts the library source it shows) and ``FIGURE_MIN`` per figure it
shows (pace assumptions, stated in the output); an exercise given in the room costs ``EXERCISE_MIN``
minutes; an app demo ``DEMO_MIN``. The machine's load average is printed with the numbers (a shared machine
runs slower).

``--self-study`` runs nothing: it prints the self-study table of WORKSHOP.md from the notebooks themselves
(words of their text, exercises, the run time their introduction states; study time = text at
``STUDY_WPM`` + ``STUDY_EXERCISE_MIN`` per exercise + run time).
"""

from __future__ import annotations

import argparse
import json
import os
import re
import sys
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
NOTEBOOKS = ROOT / "notebooks"
WPM = 110  # words per minute when presenting a Step's text (slower than reading aloud)
CODE_LPM = 12  # lines of code per minute, walked through on screen
FIGURE_MIN = 1.0  # minutes per figure shown and discussed
EXERCISE_MIN = 7  # an exercise done in the room, with the discussion of its solution
DEMO_MIN = 4  # one app demo
STUDY_WPM = 150  # self-study: words per minute when reading alone
STUDY_EXERCISE_MIN = 8  # self-study: minutes per exercise, solution included

#: path -> [(notebook stem, Steps presented (numbers as in the headings), exercises given in the room)],
#: then the app demos. The same choices as the tables of notebooks/WORKSHOP.md.
PATHS = {
    "2h": {
        "notebooks": [
            ("00_setup_and_why_resolution", ["2"], []),
            ("01_patches_tokens_real_vit", ["1"], []),
            ("02_tiling_basics", ["1", "2", "3"], []),
            ("03_llava_next_anyres", ["2", "3", "4"], []),
            ("04_ureader_shape_adaptive", ["2"], []),
            ("05_deepseek_vl2_and_internvl", ["1"], []),
            ("07_navit_packing", ["1", "3", "5", "7"], ["1"]),
            ("11_tiling_vs_packing", ["1"], []),
            ("13_what_the_language_model_receives", ["1"], []),
        ],
        "demos": ["text page: UReader vs InternVL", "packing explorer: budget and max_len"],
    },
    "3h": {
        "notebooks": [
            ("00_setup_and_why_resolution", ["1", "2", "3"], []),
            ("01_patches_tokens_real_vit", ["1", "2"], []),
            ("02_tiling_basics", ["1", "2", "3", "4", "6"], ["1"]),
            ("03_llava_next_anyres", ["1", "2", "3", "4", "5", "6"], []),
            ("04_ureader_shape_adaptive", ["2"], []),
            ("05_deepseek_vl2_and_internvl", ["1", "2"], []),
            ("06_llava_mini", ["1"], []),
            ("07_navit_packing", ["1", "3", "5", "7"], ["1"]),
            ("08_positions", ["5"], []),
            ("10_data_parallel_training", ["1", "2"], []),
            ("11_tiling_vs_packing", ["1"], []),
            ("13_what_the_language_model_receives", ["1"], []),
        ],
        "demos": ["text page: UReader vs InternVL", "packing explorer: budget and max_len"],
    },
}


def steps_of(nb) -> list[tuple[str, list[int]]]:
    """(heading, indices of its cells) for every ``##`` section of a notebook, in order ("" = the intro)."""
    out = [("", [])]
    for i, cell in enumerate(nb.cells):
        if cell.cell_type == "markdown":
            m = re.search(r"^##\s+(.+)$", cell.source, flags=re.M)
            if m:
                out.append((m.group(1).strip(), []))
        out[-1][1].append(i)
    return out


def step_number(heading: str) -> str | None:
    m = re.match(r"Step\s+(\w+)\s+·", heading)
    return m.group(1) if m else None


def code_lines(cell) -> int:
    """Non-empty lines a code cell puts on screen: its own, or for a "the code" cell (``at.show(...)``) the
    library source it shows (read from its output)."""
    own = len([ln for ln in cell.source.splitlines() if ln.strip()])
    if not re.fullmatch(r"at\.show\([^\n]+\)", cell.source.strip()):
        return own
    shown = "".join(o.get("data", {}).get("text/plain", "") for o in cell.get("outputs", []))
    return max(own, len([ln for ln in shown.splitlines()[1:] if ln.strip()]))  # [1:]: the "# name" title


def run_notebook(stem: str, timeout: int = 1800) -> tuple[object, dict[int, float], float]:
    """Execute a notebook at full size; return it, each code cell's wall seconds, and the total."""
    import nbformat
    from nbclient import NotebookClient

    path = NOTEBOOKS / f"{stem}.ipynb"
    nb = nbformat.read(path, as_version=4)
    seconds: dict[int, float] = {}
    started: dict[int, float] = {}

    def before(cell, cell_index, **_):
        started[cell_index] = time.perf_counter()

    def after(cell, cell_index, **_):
        seconds[cell_index] = time.perf_counter() - started.get(cell_index, time.perf_counter())

    env_fast = os.environ.pop("ANYRES_FAST", None)
    env_mpl = os.environ.pop("MPLBACKEND", None)
    try:
        client = NotebookClient(nb, timeout=timeout, kernel_name="python3", allow_errors=True,
                                resources={"metadata": {"path": str(path.parent)}},
                                on_cell_execute=before, on_cell_executed=after)
        t = time.perf_counter()
        client.execute()
        total = time.perf_counter() - t
    finally:
        if env_fast is not None:
            os.environ["ANYRES_FAST"] = env_fast
        if env_mpl is not None:
            os.environ["MPLBACKEND"] = env_mpl
    return nb, seconds, total


def time_path(name: str, log=print) -> dict:
    spec = PATHS[name]
    rows, total_min = [], 0.0
    for stem, steps, exercises in spec["notebooks"]:
        log(f"running {stem} ...")
        nb, seconds, run_total = run_notebook(stem)
        sections = steps_of(nb)
        found = {step_number(h): (h, cells) for h, cells in sections if step_number(h)}
        missing = [s for s in steps if s not in found]
        if missing:
            raise ValueError(f"{stem}: no Step {missing} (has {sorted(found)})")
        for s in steps:
            heading, cells = found[s]
            words = sum(len(nb.cells[i].source.split()) for i in cells if nb.cells[i].cell_type == "markdown")
            code = [nb.cells[i] for i in cells if nb.cells[i].cell_type == "code"]
            lines = sum(code_lines(c) for c in code)
            figures = sum(1 for c in code for o in c.get("outputs", []) if "image/png" in o.get("data", {}))
            run_s = sum(seconds.get(i, 0.0) for i in cells)
            minutes = words / WPM + lines / CODE_LPM + figures * FIGURE_MIN + run_s / 60
            total_min += minutes
            rows.append({"notebook": stem, "step": heading, "words": words, "code_lines": lines,
                         "figures": figures, "run_s": round(run_s, 1), "minutes": round(minutes, 1)})
        for e in exercises:
            total_min += EXERCISE_MIN
            rows.append({"notebook": stem, "step": f"Exercise {e} (in the room)", "words": 0, "code_lines": 0,
                         "figures": 0, "run_s": 0, "minutes": EXERCISE_MIN})
        rows.append({"notebook": stem, "step": "(whole notebook, run top to bottom)", "words": 0,
                     "code_lines": 0, "figures": 0, "run_s": round(run_total, 1), "minutes": None})
    for demo in spec["demos"]:
        total_min += DEMO_MIN
        rows.append({"notebook": "app", "step": demo, "words": 0, "code_lines": 0, "figures": 0, "run_s": 0,
                     "minutes": DEMO_MIN})
    load = os.getloadavg() if hasattr(os, "getloadavg") else None
    return {"path": name, "rows": rows, "total_min": round(total_min, 1), "wpm": WPM, "code_lpm": CODE_LPM,
            "figure_min": FIGURE_MIN,
            "exercise_min": EXERCISE_MIN, "demo_min": DEMO_MIN, "load_average": load,
            "cpus": os.cpu_count(), "python": sys.version.split()[0]}


def stated_run_s(nb) -> int:
    """The run time a notebook's introduction states (its first "measured N s" / "about N–M s" / "about N–M
    minutes" after "run time"; the upper end of a range), in seconds."""
    intro = nb.cells[0].source
    m = re.search(r"run time\W+(.{0,300}?)\b(?:measured|about)\s+(\d+)(?:–(\d+))?\s*(s|minutes)\b", intro,
                  flags=re.S | re.I)
    if not m:
        raise ValueError(f"{nb.metadata.get('name', 'notebook')}: no stated run time in its introduction")
    value = int(m.group(3) or m.group(2))
    return value * 60 if m.group(4) == "minutes" else value


def self_study() -> tuple[list[dict], dict]:
    """One row per notebook (stem, words, exercises, stated run seconds, study minutes) and the totals."""
    import nbformat

    rows = []
    for path in sorted(NOTEBOOKS.glob("[0-9][0-9]_*.ipynb")):
        nb = nbformat.read(path, as_version=4)
        words = sum(len(c.source.split()) for c in nb.cells if c.cell_type == "markdown")
        exercises = sum("raises-exception" in c.metadata.get("tags", []) for c in nb.cells)
        run_s = stated_run_s(nb)
        study = words / STUDY_WPM + STUDY_EXERCISE_MIN * exercises + run_s / 60
        rows.append({"notebook": path.stem, "words": words, "exercises": exercises, "run_s": run_s,
                     "study_min": round(study)})
    total = {"words": sum(r["words"] for r in rows), "exercises": sum(r["exercises"] for r in rows),
             "study_min": sum(r["study_min"] for r in rows)}
    return rows, total


def run_label(run_s: int) -> str:
    """The run-time column of the self-study table: "22 s", or whole minutes from 3 minutes up."""
    return f"{run_s} s" if run_s < 180 else f"{run_s // 60} min"


def print_self_study() -> None:
    rows, total = self_study()
    print("| notebook | words | exercises | run time | study (min) |\n|---|---|---|---|---|")
    for r in rows:
        run = run_label(r["run_s"])
        print(f"| `{r['notebook']}` | {r['words']:,} | {r['exercises']} | {run} | {r['study_min']} |")
    print(f"| **all** | {total['words']:,} | {total['exercises']} | | **{total['study_min']}** (about "
          f"{total['study_min'] / 60:.1f} hours) |")


def main(argv=None) -> None:
    fmt = argparse.RawDescriptionHelpFormatter
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=fmt)
    parser.add_argument("--path", choices=sorted(PATHS), default="2h")
    parser.add_argument("--json", type=Path, help="also write the result as JSON")
    parser.add_argument("--self-study", action="store_true",
                        help="print the self-study table (words, exercises, stated run time) and exit")
    args = parser.parse_args(argv)
    if args.self_study:
        print_self_study()
        return
    res = time_path(args.path)
    for r in res["rows"]:
        m = "" if r["minutes"] is None else f"{r['minutes']:5.1f} min"
        print(f"{r['notebook'][:28]:<28} {r['step'][:52]:<52} {r['words']:>4} w {r['code_lines']:>3} loc "
              f"{r['figures']:>2} fig {r['run_s']:>6.1f} s {m}")
    print(f"total {res['total_min']:.0f} min (text at {WPM} words/min, code at {CODE_LPM} lines/min, "
          f"{FIGURE_MIN:g} min per figure, measured run time, {EXERCISE_MIN} min per exercise, "
          f"{DEMO_MIN} min per demo); load average {res['load_average']}")
    if args.json:
        args.json.write_text(json.dumps(res, indent=1))


if __name__ == "__main__":
    main()
