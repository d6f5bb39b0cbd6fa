"""The instructor's kit (notebooks/WORKSHOP.md) matches the notebooks and the timing tool: every Step a path
presents exists, the 2-hour table presents the Steps that tools/workshop_times.py timed, and the self-study
table's words and exercises are the notebooks' own counts."""

from __future__ import annotations

import importlib.util
import re

import nbformat
import pytest

from anyres_tutorial import ROOT

_spec = importlib.util.spec_from_file_location("workshop_times", ROOT / "tools" / "workshop_times.py")
wt = importlib.util.module_from_spec(_spec)
_spec.loader.exec_module(wt)
TEXT = (ROOT / "notebooks" / "WORKSHOP.md").read_text()


def _nb(stem: str):
    return nbformat.read(ROOT / "notebooks" / f"{stem}.ipynb", as_version=4)


@pytest.mark.parametrize("path", sorted(wt.PATHS))
def test_every_step_of_a_path_exists(path):
    for stem, steps, exercises in wt.PATHS[path]["notebooks"]:
        nb = _nb(stem)
        found = {wt.step_number(h) for h, _ in wt.steps_of(nb)} - {None}
        assert set(steps) <= found, (stem, sorted(set(steps) - found))
        n_ex = sum("raises-exception" in c.metadata.get("tags", []) for c in nb.cells)
        assert all(1 <= int(e) <= n_ex for e in exercises), (stem, exercises)
        assert f"`{stem}`" in TEXT, f"WORKSHOP.md does not name {stem}"


def test_the_two_hour_table_presents_the_timed_steps():
    section = TEXT.split("## The 2-hour path", 1)[1].split("\n## ", 1)[0]
    table = {}
    for row in re.findall(r"^\|(.+)\|\s*$", section, flags=re.M):
        cols = [c.strip() for c in row.split("|")]
        names = re.findall(r"`(\d\d_\w+)`", cols[2]) if len(cols) > 3 else []
        if len(names) == 1:
            table[names[0]] = re.findall(r"\d+b?", cols[3].split("Exercise")[0])
    timed = {stem: steps for stem, steps, _ in wt.PATHS["2h"]["notebooks"]}
    for stem, steps in table.items():
        assert steps == timed[stem], (stem, steps, timed[stem])
    assert len(table) >= 6


def test_self_study_table_counts_are_the_notebooks():
    section = TEXT.split("## Self-study path", 1)[1].split("\n## ", 1)[0]
    rows = re.findall(r"^\| `(\d\d_\w+)` \| ([\d,]+) \| (\d+) \| (\d+ (?:s|min)) \| (\d+) \|", section,
                      flags=re.M)
    stems = sorted(p.stem for p in (ROOT / "notebooks").glob("[0-9][0-9]_*.ipynb"))
    assert [r[0] for r in rows] == stems
    for stem, words, exercises, run, _ in rows:
        nb = _nb(stem)
        n_words = sum(len(c.source.split()) for c in nb.cells if c.cell_type == "markdown")
        n_ex = sum("raises-exception" in c.metadata.get("tags", []) for c in nb.cells)
        assert (int(words.replace(",", "")), int(exercises)) == (n_words, n_ex), stem
        assert run == wt.run_label(wt.stated_run_s(nb)), stem  # the run time its introduction states
    computed = {r["notebook"]: r["study_min"] for r in wt.self_study()[0]}
    assert {r[0]: int(r[4]) for r in rows} == computed
    total = re.search(r"^\| \*\*all\*\* \| ([\d,]+) \| (\d+) \| \| \*\*(\d+)\*\*", section, flags=re.M)
    counts = tuple(int(g.replace(",", "")) for g in total.groups()) if total else None
    assert counts == tuple(wt.self_study()[1].values())


def test_stated_run_time_is_read_from_the_introduction():
    nb = nbformat.v4.new_notebook(cells=[nbformat.v4.new_markdown_cell(
        "**Expected run time:** the benchmark stops after 150 s, so the notebook takes about 3–4 minutes")])
    assert wt.stated_run_s(nb) == 240
    nb.cells[0].source = "**Expected run time:** measured 18–22 s on a shared CPU (15 s fast)"
    assert wt.stated_run_s(nb) == 22
    nb.cells[0].source = "no time here"
    with pytest.raises(ValueError, match="run time"):
        wt.stated_run_s(nb)


def test_a_code_cell_counts_the_source_it_shows():
    show = nbformat.v4.new_code_cell("at.show(packing.pack)")
    shown = "# anyres_tutorial.packing.pack\ndef pack(lengths):\n    rows = []\n\n    return rows\n"
    show.outputs = [nbformat.v4.new_output("execute_result", data={"text/plain": shown})]
    assert wt.code_lines(show) == 3  # the three non-empty lines of the shown function, not the call
    assert wt.code_lines(nbformat.v4.new_code_cell("x = 1\n\ny = 2\n")) == 2
