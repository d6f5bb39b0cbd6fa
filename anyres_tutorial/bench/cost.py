"""What a configuration costs besides its time: the FLOPs its kernel executes and the bytes of its mask and
activations (estimates from the attention registry and formulas), and the :class:`Job` the run loop times.
Taught in `timing`."""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass

from ..encoder import attention
from ..encoder.vit import DIM, MLP_HIDDEN
from .workload import Inputs


def dense_executed_flops(lengths) -> int:
    """FLOPs a dense-mask kernel really computes for ONE packed sequence of images with ``lengths`` tokens:
    ``vit.count_flops(lengths)`` plus the masked-out attention pairs (every query still meets all N keys).
    Taught in `timing`."""
    return attention.executed_flops("dense_mask", lengths)


def _segments(inp: Inputs) -> list[list[int]]:
    """The token lengths each attention call of ``inp`` sees: one list for one packed sequence, one per row
    for rows (the row's padding slots as one more segment: they run through the linear layers too)."""
    if not inp.config.rows:
        return [list(inp.lengths)]
    pad = [inp.info["max_len"] - sum(r) for r in inp.info["row_lengths"]]
    return [list(r) + ([p] if p else []) for r, p in zip(inp.info["row_lengths"], pad)]


def executed_flops(inp: Inputs) -> int:
    """FLOPs the packed configuration of ``inp`` really computes (``attention.executed_flops`` of each
    sequence or row; a backend without ``prepare`` runs the images alone, padding never)."""
    backend = attention.get(inp.config.backend)
    if backend.prepare is None:
        return attention.executed_flops(backend.name, inp.lengths)
    return sum(attention.executed_flops(backend.name, seg) for seg in _segments(inp))


def cpu_memory(inp: Inputs) -> dict:
    """Estimated bytes of the attention mask (the backend's own ``memory``, summed over rows) and of one
    block's largest activations (x, qkv, MLP hidden) at fp32 on CPU. A backend without ``prepare`` holds one
    image at a time; one that pads q, k, v (``padded_tokens`` slots) also holds them; rows hold their
    padding slots."""
    per_token = 4 * (4 * DIM + MLP_HIDDEN)
    config, lengths = inp.config, inp.lengths
    n_tok = sum(lengths)
    if config.kind == "tiled":
        return dict(mask_bytes=0, activation_bytes=per_token * n_tok)
    backend = attention.get(config.backend)
    mems = [backend.memory(seg) for seg in _segments(inp)]
    if backend.prepare is None:  # each image alone through the model
        act = per_token * max(lengths)
    else:
        slots = sum(map(sum, _segments(inp)))
        act = per_token * slots + 4 * 3 * DIM * sum(int(m["padded_tokens"]) for m in mems)
    return dict(mask_bytes=sum(int(m["mask_bytes"]) for m in mems), activation_bytes=act)


@dataclass
class Job:
    """A checked configuration waiting for its timed runs: its inputs, check record and the function."""

    inp: Inputs
    check: dict
    fn: Callable
