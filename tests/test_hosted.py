"""The hosted-notebook install (Colab, Binder) works: ``binder/postBuild``, whose commands are also the first
cell that ``notebooks/WORKSHOP.md`` gives for Colab-like services, is run into a fresh virtual environment.

Offline: the fresh environment sees this environment's packages through a ``.pth`` file (a hosted service
comes with torch, numpy, Jupyter; pip finds the rest already there), pip may not use an index
(``PIP_NO_INDEX``), and the check at the end must say READY.
"""

from __future__ import annotations

import os
import re
import site
import subprocess
import sys
import venv
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parent.parent
POSTBUILD = ROOT / "binder" / "postBuild"
WORKSHOP = ROOT / "notebooks" / "WORKSHOP.md"


def _commands(text: str) -> list[str]:
    return [ln.strip() for ln in text.splitlines() if ln.strip().startswith("python3 dev.py")]


def test_the_colab_cell_runs_the_postbuild_commands():
    cell = WORKSHOP.read_text().split("<!-- hosted-cell -->", 2)[1]
    colab = [re.sub(r"^!(cd \S+ && )?", "", ln.strip()) for ln in cell.splitlines() if "dev.py" in ln]
    assert colab and colab == _commands(POSTBUILD.read_text()), colab


@pytest.mark.slow
def test_hosted_install_into_a_fresh_environment(tmp_path):
    env_dir = tmp_path / "hosted"
    venv.EnvBuilder(with_pip=False).create(env_dir)
    py = env_dir / "bin" / "python"
    purelib = subprocess.run([str(py), "-c", "import sysconfig; print(sysconfig.get_paths()['purelib'])"],
                             capture_output=True, text=True, check=True).stdout.strip()
    # the packages of a hosted image: this environment's, pip included
    Path(purelib, "hosted_image.pth").write_text("\n".join(site.getsitepackages()) + "\n")
    # ... and its Jupyter data files (the lab extensions the explorers need)
    jupyter_data = os.path.join(sys.prefix, "share", "jupyter")
    env = dict(os.environ, PATH=f"{env_dir / 'bin'}{os.pathsep}{os.environ['PATH']}", PIP_NO_INDEX="1",
               PIP_NO_BUILD_ISOLATION="0", PYTHONNOUSERSITE="1", MPLBACKEND="Agg", JUPYTER_PATH=jupyter_data)
    env.pop("PYTHONPATH", None)
    env.pop("VIRTUAL_ENV", None)
    r = subprocess.run(["bash", str(POSTBUILD)], cwd=ROOT, env=env, capture_output=True, text=True,
                       timeout=900)
    out = r.stdout + r.stderr
    assert r.returncode == 0, out[-4000:]
    assert "READY" in out, out[-4000:]
    assert str(env_dir) in out  # it installed into the hosted Python, not into .venv/
    assert (env_dir / ".anyres-setup-stamp").exists()
    assert f"at {env_dir}" in out  # the check ran in the hosted Python
