"""Repository-level checks: the README's commands, CI, environment.yml, notebooks stripped and well-formed."""

from __future__ import annotations

import json
import re
from pathlib import Path

import pytest

try:
    import tomllib
except ModuleNotFoundError:  # Python 3.10
    import tomli as tomllib

ROOT = Path(__file__).resolve().parent.parent
NOTEBOOKS = sorted((ROOT / "notebooks").glob("*.ipynb"))


def _readme_commands() -> list[str]:
    text = (ROOT / "README.md").read_text()
    quick = text.split("## Quick start", 1)[1].split("\n## ", 1)[0]
    blocks = re.findall(r"```(?:bash|sh)?\n(.*?)```", quick, flags=re.S)
    lines = [line.strip() for b in blocks for line in b.splitlines()]
    return [line for line in lines if line and not line.startswith("#")]


def test_readme_quick_start_has_exactly_two_commands():
    cmds = _readme_commands()
    assert len(cmds) == 2, f"Quick start must hold exactly two commands, found {cmds}"
    assert any(c.endswith(" lab") for c in cmds), cmds
    assert any(c.endswith(" test") for c in cmds), cmds


def test_ci_runs_the_readme_test_command():
    test_cmd = next(c for c in _readme_commands() if c.endswith(" test"))
    ci_lines = [ln.strip() for ln in (ROOT / ".ci" / "run").read_text().splitlines()]
    assert test_cmd in ci_lines, f".ci/run must run exactly {test_cmd!r}"


def test_environment_yml_installs_the_package_from_pyproject():
    import yaml

    env = yaml.safe_load((ROOT / "environment.yml").read_text())
    assert env["name"] == "anyres-tutorial"
    deps = env["dependencies"]
    pip_sections = [d["pip"] for d in deps if isinstance(d, dict) and "pip" in d]
    assert pip_sections == [["-e ."]], "environment.yml must install the package itself (learner install)"
    # It must not repeat the dependency list of pyproject.toml.
    project = tomllib.loads((ROOT / "pyproject.toml").read_text())["project"]
    names = {re.split(r"[<>=\[ ]", d)[0].lower() for d in project["dependencies"]}
    conda_names = {re.split(r"[<>= ]", d)[0].lower() for d in deps if isinstance(d, str)}
    assert conda_names <= {"python", "pip"}, f"environment.yml repeats dependencies: {conda_names & names}"
    assert project["name"] == "anyres-tutorial"


def test_readme_lists_every_notebook():
    text = (ROOT / "README.md").read_text()
    missing = [nb.name for nb in NOTEBOOKS if nb.name not in text]
    assert not missing, f"README does not list {missing}"


@pytest.mark.parametrize("nb", NOTEBOOKS, ids=lambda p: p.name)
def test_notebook_committed_without_outputs(nb):
    data = json.loads(nb.read_text())
    dirty = [i for i, c in enumerate(data["cells"]) if c["cell_type"] == "code"
             and (c.get("outputs") or c.get("execution_count") is not None)]
    assert not dirty, f"{nb.name}: cells {dirty} have outputs; run `python -m nbstripout {nb}`"


@pytest.mark.parametrize("nb", NOTEBOOKS, ids=lambda p: p.name)
def test_notebook_skeleton(nb):
    """Every notebook: learning goals + run time, check yourself, exercises with solutions, summary, next."""
    data = json.loads(nb.read_text())
    md = "\n".join("".join(c["source"]) for c in data["cells"] if c["cell_type"] == "markdown").lower()
    code = "\n".join("".join(c["source"]) for c in data["cells"] if c["cell_type"] == "code")
    for needle in ("learning goals", "run time", "check yourself", "exercise", "solution", "summary"):
        assert needle in md, f"{nb.name} lacks a '{needle}' section"
    imports = "import anyres_tutorial" in code or "from anyres_tutorial" in code
    assert imports, f"{nb.name} must import the library"
    # Library code is imported, never pasted: no class definitions in notebooks, and no long function bodies.
    assert not re.search(r"^class ", code, flags=re.M), f"{nb.name} defines a class: move it to the library"
    raising = [c for c in data["cells"] if c["cell_type"] == "code"
               and "NotImplementedError" in "".join(c["source"])]
    for c in raising:
        assert "raises-exception" in c.get("metadata", {}).get("tags", []), (
            f"{nb.name}: an exercise stub raising NotImplementedError must be tagged raises-exception")


@pytest.mark.parametrize("nb", NOTEBOOKS, ids=lambda p: p.name)
def test_notebook_intro_says_stubs_raise_on_purpose(nb):
    """A notebook with exercise stubs (cells tagged raises-exception) says so once, in its first cell."""
    data = json.loads(nb.read_text())
    stubs = [c for c in data["cells"] if "raises-exception" in c.get("metadata", {}).get("tags", [])]
    if not stubs:
        pytest.skip("no exercise stubs")
    intro = "".join(data["cells"][0]["source"])
    assert "on purpose" in intro and "raises-exception" in intro, (
        f"{nb.name}: the first cell must say that the exercise stubs raise on purpose")
    for c in stubs:
        assert "NotImplementedError" in "".join(c["source"]), f"{nb.name}: a stub raises NotImplementedError"


@pytest.mark.parametrize("nb", [p for p in NOTEBOOKS if re.match(r"\d\d_", p.name)], ids=lambda p: p.name)
def test_notebook_shows_the_code_it_teaches(nb):
    """At least one "the code" cell: a code cell whose only line is ``at.show(...)``, after prose that says
    what to look at."""
    cells = json.loads(nb.read_text())["cells"]
    shows = [i for i, c in enumerate(cells) if c["cell_type"] == "code"
             and re.fullmatch(r"at\.show\([^\n]+\)", "".join(c["source"]).strip())]
    assert shows, f"{nb.name} has no 'the code' cell (a cell whose only line is at.show(...))"
    for i in shows:
        assert i > 0 and cells[i - 1]["cell_type"] == "markdown", f"{nb.name}: no prose before cell {i}"


def test_no_private_name_is_imported_across_library_files():
    """A name starting with ``_`` stays in its file: shared helpers get public names."""
    import ast

    bad = []
    for path in sorted((ROOT / "anyres_tutorial").rglob("*.py")):
        for node in ast.walk(ast.parse(path.read_text())):
            if isinstance(node, ast.ImportFrom) and (node.level or (node.module or "").startswith("anyres")):
                bad += [f"{path.relative_to(ROOT)}: {a.name} from {node.module}" for a in node.names
                        if a.name.startswith("_") and not a.name.startswith("__")]
    assert not bad, bad
