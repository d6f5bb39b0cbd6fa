"""The figure check every notebook kernel of the test suite runs (``viz.shown``): it names the figure and the
problem, and passes a readable figure."""

from __future__ import annotations

import matplotlib

matplotlib.use("Agg")

import matplotlib.pyplot as plt  # noqa: E402
import pytest  # noqa: E402

from anyres_tutorial.viz import fit, shown  # noqa: E402


def _fig(figsize=(6, 3), size=10, overlap=False, title="a title"):
    fig, ax = plt.subplots(figsize=figsize, layout="constrained")
    ax.plot([0, 1], [0, 1])
    ax.set_title(title, fontsize=size)
    ax.text(0.2, 0.5, "first label", fontsize=size)
    ax.text(0.25 if overlap else 0.7, 0.5, "second label", fontsize=size)
    ax.tick_params(labelsize=size)
    ax.xaxis.label.set_fontsize(size)
    plt.close(fig)
    return fig


def test_a_readable_figure_passes():
    rep = shown.check_figure(_fig())
    assert rep["overlaps"] == [] and rep["small"] == [] and rep["collapsed"] == [] and rep["scale"] == 1


def test_overlapping_labels_are_named_with_the_figure():
    with pytest.raises(shown.FigureLayoutError, match=r"(?s)'a title'.*'first label' / 'second label'"):
        shown.check_figure(_fig(overlap=True))


def test_small_text_is_measured_at_the_width_shown():
    with pytest.raises(shown.FigureLayoutError, match="below 9 pt"):
        shown.check_figure(_fig(size=7))
    # 10-pt text at 100 dpi reads 10.4 pt; a figure 2.5x the column is shown at 40 %: 4.2 pt
    rep = shown.shown_report(_fig(figsize=(27.5, 3)))
    assert rep["scale"] < 0.45 and rep["small"] and max(pt for _, pt in rep["small"]) < 4.5
    assert shown.shown_report(_fig(figsize=(27.5, 3)), column_px=3000)["small"] == []


def test_collapsed_axes():
    fig, axes = plt.subplots(12, 1, figsize=(4, 1.5), layout="constrained")
    for ax in axes:
        ax.set_ylabel("y", fontsize=10)
    plt.close(fig)
    with pytest.raises(shown.FigureLayoutError, match="collapsed"):
        shown.check_figure(fig)


def test_installed_in_a_shell_a_cell_with_a_bad_figure_fails():
    from IPython.core.interactiveshell import InteractiveShell
    from traitlets.config import Config

    config = Config()
    config.HistoryManager.hist_file = ":memory:"
    ip = InteractiveShell.instance(config=config)
    shown.install(ip)
    ip.user_ns["make"] = _fig
    ok = ip.run_cell("make()")  # a readable figure as the cell's value
    assert ok.success and ok.result is not None
    for cell in ("make(overlap=True)", "from IPython.display import display\ndisplay(make(size=6))",
                 "import matplotlib.pyplot as plt\nfig, ax = plt.subplots(figsize=(3, 2))\n"
                 "ax.set_title('open figure', fontsize=5)\nx = 1"):
        res = ip.run_cell(cell)
        assert isinstance(res.error_in_exec, shown.FigureLayoutError), cell
    plt.close("all")


def test_nbmake_kernels_run_the_check(tmp_path):
    """The root conftest.py gives every kernel of the session the check: a notebook showing an unreadable
    figure fails under nbmake, naming the figure; the same notebook with readable text passes."""
    import os
    import subprocess
    import sys
    from pathlib import Path

    import nbformat

    startup = Path(os.environ["IPYTHONDIR"]) / "profile_default" / "startup" / "00-anyres-figure-check.py"
    assert "shown.install()" in startup.read_text()
    results = {}
    for size in (5, 11):
        nb = nbformat.v4.new_notebook(cells=[nbformat.v4.new_code_cell(
            "import matplotlib.pyplot as plt\nfig, ax = plt.subplots(figsize=(4, 3))\n"
            f"ax.set_title('tiny title', fontsize={size})\nax.tick_params(labelsize={size})\nfig")])
        path = tmp_path / f"fig{size}.ipynb"
        nbformat.write(nb, path)
        run = subprocess.run([sys.executable, "-m", "pytest", "--nbmake", str(path), "-p", "no:cacheprovider",
                              "-q"], capture_output=True, text=True, cwd=tmp_path, timeout=300)
        results[size] = (run.returncode, run.stdout)
    assert results[5][0] != 0 and "FigureLayoutError" in results[5][1] and "tiny title" in results[5][1]
    assert results[11][0] == 0, results[11][1][-2000:]


def test_slanted_labels_count_as_drawn():
    """Tick labels at 45 degrees whose upright boxes overlap but whose letters do not pass; labels that
    really run into each other do not."""
    names = ["template", "llava_next", "ureader", "deepseek_vl2", "internvl", "llava_mini"]
    for width, clash in ((4.6, False), (1.6, True)):
        fig, ax = plt.subplots(figsize=(width, 3), layout="constrained")
        ax.bar(range(6), range(1, 7))
        ax.set_xticks(range(6), names, rotation=45, ha="right", fontsize=10)
        plt.close(fig)
        rep = shown.shown_report(fig)
        assert bool(rep["overlaps"]) == clash, (width, rep["overlaps"])
        if not clash:  # the upright boxes of 'ureader' and 'deepseek_vl2' do overlap at this width
            assert fit.layout_problems(fig)["overlaps"]
