"""Every Jupyter kernel the test suite starts (nbmake's notebooks, the handout's build) checks each figure a
cell shows: overlapping labels, collapsed axes, text below 9 pt at the width the notebook shows it
(``anyres_tutorial.viz.shown``). The check is an IPython startup file in a fresh ``IPYTHONDIR``."""

from __future__ import annotations

import os
import shutil
import tempfile
from pathlib import Path

_STARTUP = "from anyres_tutorial.viz import shown\nshown.install()\n"
_DIRS: list[Path] = []


def pytest_configure(config):
    ipdir = Path(tempfile.mkdtemp(prefix="anyres-ipython-"))
    startup = ipdir / "profile_default" / "startup"
    startup.mkdir(parents=True)
    (startup / "00-anyres-figure-check.py").write_text(_STARTUP)
    os.environ["IPYTHONDIR"] = str(ipdir)
    _DIRS.append(ipdir)


def pytest_unconfigure(config):
    for d in _DIRS:
        shutil.rmtree(d, ignore_errors=True)
