"""What one packed forward is expected to cost with each attention backend: the model behind ``"auto"``.

Taught in `timing`. For a packed batch (rows of image lengths, padded to ``row_len``) a backend's time is
modelled as

    seconds ≈ c_slots · slots + c_pairs · pairs + c_images · images + c_call

``slots``: tokens through the linear layers (padding slots too; every image alone for a backend without
``prepare``); ``pairs``: the (query, key) pairs its kernel computes (the entry's ``pairs``: Σ L², a dense
row's row_len², flex's non-empty tiles); ``images``: per-image work (launches, slicing); ``call``: one
forward. The benchmark fits the four coefficients per backend to its own timings (:func:`fit`, non-negative,
relative error) and stores them with its results; ``costs.json`` beside this file holds the ones this
checkout uses, per device type and dtype, with the run they came from (``python -m anyres_tutorial.bench
--save-costs``).
"""

from __future__ import annotations

import itertools
import json
from pathlib import Path

import numpy as np

FEATURES = ("slots", "pairs", "images", "call")
COSTS_FILE = Path(__file__).with_name("costs.json")


def key(device, dtype) -> str:
    """The cost table a device uses: ``"cpu/float32"``, ``"cuda/bfloat16"``, ..."""
    return f"{getattr(device, 'type', device)}/{str(dtype).replace('torch.', '')}"


def features(backend, rows: list[list[int]], row_len: int | None = None) -> dict[str, float]:
    """The model's inputs for ``backend`` (a registry entry) on packed ``rows`` (image lengths per row)
    padded to ``row_len`` slots each (None: each row as long as its images)."""
    rows = [list(map(int, r)) for r in rows]
    lengths = [n for r in rows for n in r]
    if backend.prepare is None:  # every image alone: no padding, plain full attention per image
        slots, pairs = sum(lengths), sum(n * n for n in lengths)
    else:
        slots = sum(max(sum(r), row_len or 0) for r in rows)
        pairs = sum(backend.pairs(r, row_len) for r in rows)
    return dict(slots=float(slots), pairs=float(pairs), images=float(len(lengths)), call=1.0)


def predict(coef: dict, feats: dict) -> float:
    """Expected seconds from a backend's coefficients and :func:`features`."""
    return float(sum(coef.get(f, 0.0) * feats[f] for f in FEATURES))


def fit(samples: list[tuple[dict, float]]) -> dict:
    """Non-negative coefficients minimising the relative error over ``samples`` = [(features, seconds)]:
    every subset of :data:`FEATURES` is solved by least squares and the best all-non-negative solution kept
    (four features: 15 subsets). Returns ``{feature: coefficient, ..., "rel_error": median |pred/t - 1|,
    "points": n}``."""
    if not samples:
        raise ValueError("no timings to fit a cost model to")
    X = np.array([[s[f] for f in FEATURES] for s, _ in samples])  # (n, 4)
    t = np.array([sec for _, sec in samples], dtype=float)  # (n,)
    if not (t > 0).all():
        raise ValueError("every timing must be > 0 seconds")
    A, b = X / t[:, None], np.ones_like(t)  # relative error: (X c) / t - 1
    best = None
    for k in range(1, len(FEATURES) + 1):
        for cols in itertools.combinations(range(len(FEATURES)), k):
            scale = np.abs(A[:, cols]).max(0)
            if (scale == 0).any():
                continue
            c, *_ = np.linalg.lstsq(A[:, cols] / scale, b, rcond=None)
            c = c / scale
            if (c < 0).any():
                continue
            res = float(((A[:, cols] @ c - 1) ** 2).sum())
            if best is None or res < best[0]:
                best = (res, cols, c)
    coef = dict.fromkeys(FEATURES, 0.0)
    for i, v in zip(best[1], best[2]):
        coef[FEATURES[i]] = float(v)
    rel = np.abs(X @ np.array([coef[f] for f in FEATURES]) / t - 1)
    return dict(coef, rel_error=float(np.median(rel)), max_rel_error=float(rel.max()), points=len(samples))


def load(path: Path | str | None = None) -> dict:
    """The stored cost tables: ``{key: {"source": ..., "backends": {name: coefficients}}}``; empty when the
    file is missing (then ``"auto"`` falls back to the entries' ``auto_rank``)."""
    path = Path(path) if path is not None else COSTS_FILE
    if not path.exists():
        return {}
    stamp = (str(path), path.stat().st_mtime_ns)
    if stamp not in _LOADED:  # read once per version of the file: "auto" asks on every forward
        _LOADED.clear()
        _LOADED[stamp] = _read(path)
    return _LOADED[stamp]


_LOADED: dict = {}


def _read(path: Path) -> dict:
    try:
        return json.loads(path.read_text())
    except json.JSONDecodeError as e:
        raise ValueError(f"{path} is not valid JSON ({e}); delete it or rewrite it with "
                         "python -m anyres_tutorial.bench --save-costs") from e


def save(table_key: str, entry: dict, path: Path | str | None = None) -> Path:
    """Store (replace) one device's cost table in the cost file; returns the path."""
    path = Path(path) if path is not None else COSTS_FILE
    tables = load(path)
    tables[table_key] = entry
    tmp = path.with_suffix(".tmp")
    tmp.write_text(json.dumps(tables, indent=1, sort_keys=True) + "\n")
    tmp.replace(path)
    return path
