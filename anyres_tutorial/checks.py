"""One place for argument checks: every public function validates its inputs with these.

Each check returns the cleaned value or raises ``TypeError`` (wrong kind of value) / ``ValueError``
(right kind, wrong value) with a message that names the argument and says what was expected. Nothing
here imports torch, numpy or PIL, so the pure-geometry modules (``tiling``, ``packing.sizing``) can use it.

Image limits, stated once for the whole package (``images.load_image`` and every tiling method use them):
``MAX_SIDE`` = 65536 pixels per side and ``MAX_ASPECT`` = 100, the largest long-side / short-side ratio (the
data set's 20×2000 strip is exactly 1:100; beyond it tiles of a few pixels, or none, would hold the image).
"""

from __future__ import annotations

import numbers
from typing import Any

from .types import Size

#: Largest accepted aspect ratio max(W, H) / min(W, H), for loading and for every tiling/sizing rule.
MAX_ASPECT = 100
#: Largest accepted side in pixels (a 65536-pixel side is already far beyond any VLM's input).
MAX_SIDE = 65536


def check_int(name: str, value: Any, minimum: int | None = None, maximum: int | None = None) -> int:
    """``value`` as an int: bools, floats and strings raise TypeError, out-of-range values ValueError."""
    if isinstance(value, bool) or not isinstance(value, numbers.Integral):
        raise TypeError(f"{name} must be an integer, got {value!r} ({type(value).__name__})")
    value = int(value)
    if minimum is not None and value < minimum:
        raise ValueError(f"{name} must be >= {minimum}, got {value}")
    if maximum is not None and value > maximum:
        raise ValueError(f"{name} must be <= {maximum}, got {value}")
    return value


def check_positive_int(name: str, value: Any, maximum: int | None = None) -> int:
    """An integer >= 1 (see :func:`check_int`)."""
    return check_int(name, value, 1, maximum)


def check_number(name: str, value: Any, minimum: float | None = None, maximum: float | None = None,
                 *, min_inclusive: bool = True, max_inclusive: bool = True) -> float:
    """A real number (bools refused; NaN refused) within the given bounds, as a float."""
    if isinstance(value, bool) or not isinstance(value, numbers.Real):
        raise TypeError(f"{name} must be a number, got {value!r} ({type(value).__name__})")
    x = float(value)
    if x != x:
        raise ValueError(f"{name} must not be NaN")
    if minimum is not None and (x < minimum or (x == minimum and not min_inclusive)):
        raise ValueError(f"{name} must be {'>=' if min_inclusive else '>'} {minimum}, got {value!r}")
    if maximum is not None and (x > maximum or (x == maximum and not max_inclusive)):
        raise ValueError(f"{name} must be {'<=' if max_inclusive else '<'} {maximum}, got {value!r}")
    return x


def check_lengths(lengths: Any) -> list[int]:
    """Sequence lengths (tokens per image, each >= 1, at least one) as a list of ints.

    Accepts a sequence of ints (numpy / torch integer scalars too) or a 1-D integer array / tensor; a
    string, a float or bool entry, an empty or nested sequence raise with the offending index named.
    """
    if hasattr(lengths, "ndim") and hasattr(lengths, "tolist"):  # a numpy array or torch tensor
        if lengths.ndim != 1:
            raise ValueError(f"lengths must be 1-D, got an array of shape {tuple(lengths.shape)}")
        kind = getattr(lengths.dtype, "kind", None)  # numpy; torch dtypes have is_floating_point instead
        if kind in ("f", "c", "b") or getattr(lengths.dtype, "is_floating_point", False) \
                or getattr(lengths.dtype, "is_complex", False) or str(lengths.dtype) == "torch.bool":
            raise TypeError(f"lengths must be integers, got dtype {lengths.dtype}")
        lengths = lengths.tolist()
    if isinstance(lengths, (str, bytes)) or not hasattr(lengths, "__iter__"):
        raise TypeError(f"lengths must be a sequence of integers, got {type(lengths).__name__}")
    lengths = list(lengths)
    if not lengths:
        raise ValueError("lengths is empty: need at least one sequence")
    out = []
    for i, n in enumerate(lengths):
        if hasattr(n, "item") and getattr(n, "ndim", 1) == 0:  # numpy / torch scalars
            n = n.item()
        n = check_int(f"lengths[{i}]", n)
        if n <= 0:
            raise ValueError(f"lengths[{i}] = {n}: every sequence needs a token (zero-size image?)")
        out.append(n)
    return out


def _is_pair_like(value: Any) -> bool:
    return not isinstance(value, (str, bytes)) and hasattr(value, "__len__") and hasattr(value, "__getitem__")


def check_pair(name: str, value: Any, minimum: int = 1, maximum: int | None = None) -> tuple[int, int]:
    """A pair of integers such as a size ``(width, height)`` or a grid; clear errors otherwise."""
    if not _is_pair_like(value):
        raise TypeError(f"{name} must be a pair of integers like (width, height), got {value!r}")
    if len(value) != 2:
        raise ValueError(f"{name} must have exactly 2 entries, got {len(value)}: {value!r}")
    a = check_int(f"{name}[0]", value[0], minimum, maximum)
    return a, check_int(f"{name}[1]", value[1], minimum, maximum)


def check_size(image_size: Any, name: str = "image_size", max_aspect: float | None = MAX_ASPECT) -> Size:
    """Validate an image size ``(width, height)`` and return it as a :class:`Size`.

    Rules: exactly two integers (bools and floats are refused), each in [1, MAX_SIDE], and an aspect ratio
    max/min of at most ``max_aspect`` (default ``MAX_ASPECT`` = 100:1; None: no aspect limit). Raises
    TypeError (wrong types) or ValueError (wrong values).
    """
    w, h = check_pair(name, image_size, minimum=1, maximum=MAX_SIDE)
    if max_aspect is not None and max(w, h) > max_aspect * min(w, h):
        raise ValueError(
            f"{name}={w}x{h} has aspect ratio {max(w, h) / min(w, h):.1f}:1, beyond the supported "
            f"limit of {max_aspect:g}:1"
        )
    return Size(w, h)


def check_choice(name: str, value: Any, choices: tuple) -> Any:
    """``value`` if it is one of ``choices`` (strings), else ValueError listing them."""
    if not isinstance(value, str) or value not in choices:
        raise ValueError(f"{name} must be one of {tuple(choices)}, got {value!r}")
    return value


def check_rgb(name: str, value: Any) -> tuple[int, int, int]:
    """An (R, G, B) colour of three integers in [0, 255]."""
    if not _is_pair_like(value) or len(value) != 3:
        raise ValueError(f"{name} must be an (R, G, B) tuple of 3 integers in [0, 255], got {value!r}")
    return tuple(check_int(f"{name}[{i}]", v, 0, 255) for i, v in enumerate(value))


def check_pair_list(name: str, value: Any, multiple_of: int | None = None, max_len: int = 256) -> tuple:
    """A non-empty sequence of integer pairs (e.g. candidate canvases or anchors), as a tuple of tuples."""
    if isinstance(value, (str, bytes)) or not hasattr(value, "__len__"):
        raise TypeError(f"{name} must be a sequence of integer pairs, got {value!r}")
    if len(value) == 0:
        raise ValueError(f"{name} must not be empty")
    if len(value) > max_len:
        raise ValueError(f"{name} has {len(value)} entries, more than the supported {max_len}")
    pairs = tuple(check_pair(f"{name}[{i}]", p, minimum=1, maximum=MAX_SIDE) for i, p in enumerate(value))
    if multiple_of is not None:
        for p in pairs:
            if p[0] % multiple_of or p[1] % multiple_of:
                raise ValueError(f"{name}: every entry must be a multiple of the tile size {multiple_of}, "
                                 f"got {p}")
    return pairs


def check_int_list(name: str, value: Any, minimum: int = 1, allow_empty: bool = False) -> list[int]:
    """A sequence of integers >= ``minimum`` (e.g. token lengths), as a list of ints."""
    if isinstance(value, (str, bytes)) or not hasattr(value, "__iter__"):
        raise TypeError(f"{name} must be a sequence of integers, got {type(value).__name__}")
    try:
        items = list(value)
    except TypeError as e:  # e.g. a 0-d tensor
        raise TypeError(f"{name} must be a sequence of integers, got {value!r}") from e
    if not items and not allow_empty:
        raise ValueError(f"{name} must not be empty")
    out = []
    for i, v in enumerate(items):
        if hasattr(v, "item") and not isinstance(v, numbers.Integral):  # 0-d tensors / numpy scalars
            v = v.item()
        out.append(check_int(f"{name}[{i}]", v, minimum))
    return out


__all__ = ["MAX_ASPECT", "MAX_SIDE", "check_int", "check_positive_int", "check_number", "check_pair",
           "check_size", "check_choice", "check_rgb", "check_pair_list", "check_int_list", "check_lengths"]
