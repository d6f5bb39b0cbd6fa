"""LLM-side position ids of a laid-out prompt. Taught in `what_the_language_model_receives`.

- :func:`positions_1d`: LLaVA-style models (and every tiling method here) give the LLM plain 1-D positions
  0, 1, 2, ... - image tokens included; the 2-D structure reaches the LLM only through the layout (newline
  / separator tokens) and whatever the connector mixed into the features.
- :func:`mrope`: Qwen2-VL's M-RoPE: three ids (t, h, w) per token. Text tokens get t = h = w = the running
  position; an image's tokens (LLM grid h x w after the 2x2 merge) get t = start, h = start + row,
  w = start + col, and the text after it resumes at start + max(h, w) - the same rule as transformers'
  ``Qwen2VLModel.get_rope_index`` for still images.
"""

from __future__ import annotations

import numpy as np

from .prompt import Prompt


def _check_prompt(p) -> Prompt:
    if not isinstance(p, Prompt):
        raise TypeError(f"p must be a Prompt from llm.layout(method, image_sizes, text), "
                        f"got {type(p).__name__}")
    return p


def positions_1d(p: Prompt) -> np.ndarray:
    """(L,) positions 0..L-1."""
    return np.arange(_check_prompt(p).num_tokens)


def mrope(p: Prompt) -> np.ndarray:
    """(3, L) M-RoPE ids (t, h, w). Every image segment must carry its LLM ``grid`` (Qwen2-VL layouts do);
    ValueError otherwise."""
    _check_prompt(p)
    out = np.zeros((3, p.num_tokens), dtype=np.int64)
    i = cur = 0
    for s in p.segments:
        if s.kind == "image":
            if s.grid is None or s.grid.count != s.count:
                raise ValueError(f"M-RoPE needs the image's token grid; {p.method} image runs carry none "
                                 f"(lay out the prompt with method='qwen2_vl')")
            rows, cols = s.grid
            r, c = np.divmod(np.arange(s.count), cols)  # row-major over the (rows, cols) token grid
            out[0, i:i + s.count] = cur
            out[1, i:i + s.count] = cur + r
            out[2, i:i + s.count] = cur + c
            cur += max(rows, cols)
        else:  # text, markers and any other token: one step each, equal in t, h and w
            out[:, i:i + s.count] = cur + np.arange(s.count)
            cur += s.count
        i += s.count
    return out


__all__ = ["positions_1d", "mrope"]
