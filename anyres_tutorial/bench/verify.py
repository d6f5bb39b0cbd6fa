"""The checks before timing: a configuration's outputs against its reference's, within the dtype's
tolerance (fp32: 1e-4 + 1e-4 max|ref|; bf16: 5e-2 + 2e-2 max|ref|). Taught in `timing`."""

from __future__ import annotations

import math

from . import timing
from .cli import Settings

TOLERANCE = {"float32": (1e-4, 1e-4), "bfloat16": (5e-2, 2e-2)}  # (atol, rtol * max|ref|)


class BenchCheckError(RuntimeError):
    """A configuration's output differs from its reference beyond the tolerance (raised before timing);
    ``record`` is the failed check's record when there is one."""

    def __init__(self, message: str, record: dict | None = None):
        super().__init__(message)
        self.record = record


def _max_diff(outs, refs) -> tuple[float, float]:
    if len(outs) != len(refs):
        raise BenchCheckError(f"{len(outs)} outputs for {len(refs)} reference outputs")
    diff = mag = 0.0
    for o, r in zip(outs, refs):
        if tuple(o.shape) != tuple(r.shape):
            raise BenchCheckError(f"output shape {tuple(o.shape)} differs from reference {tuple(r.shape)}")
        diff = max(diff, (o.float() - r.float()).abs().max().item())
        mag = max(mag, r.float().abs().max().item())
    return diff, mag


def check(name: str, outs, refs, ref_name: str, s: Settings, where: str) -> dict:
    """Compare the outputs of configuration ``name`` with its reference's; the check record, or
    :class:`BenchCheckError` beyond the tolerance of the run's dtype."""
    atol, rtol = TOLERANCE.get(timing.dtype_name(s.dtype), TOLERANCE["float32"])
    diff, mag = _max_diff(outs, refs)
    tol = atol + rtol * mag
    ok = bool(diff <= tol) and math.isfinite(diff)
    rec = dict(config=name, sweep=where, reference=ref_name, max_abs_diff=diff, max_abs_ref=mag,
               tolerance=tol, passed=ok)
    if not ok:
        raise BenchCheckError(
            f"correctness check failed before timing: {name} ({where}) differs from {ref_name} by max abs "
            f"{diff:.3g} > tolerance {tol:.3g} ({s.dtype}); nothing was timed. Fix the backend first.", rec)
    return rec
