"""What the benchmark compares: one typed :class:`Config` per tiled tiling method or packed attention backend.

A configuration's ``name`` is the string the JSON records carry (``tiled``, ``tiled-<method>``,
``packed-<backend>``); :meth:`Config.parse` reads such a name back from recorded results. Taught in `timing`.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Literal

from .. import tiling

KINDS = ("tiled", "packed")


@dataclass(frozen=True)
class Config:
    """One configuration: a tiled batch of one tiling ``method``, or one packed sequence run with one
    attention ``backend``. Build with :meth:`tiled` / :meth:`packed`, read recorded names with :meth:`parse`.
    """

    kind: Literal["tiled", "packed"]
    method: str | None = None  # the tiling method (tiled only)
    backend: str | None = None  # the attention backend (packed only)

    def __post_init__(self):
        if self.kind not in KINDS:
            raise ValueError(f"Config.kind must be one of {KINDS}, got {self.kind!r}")
        own, other = (self.method, self.backend) if self.kind == "tiled" else (self.backend, self.method)
        what = "method" if self.kind == "tiled" else "backend"
        if not isinstance(own, str) or not own:
            raise ValueError(f"a {self.kind} Config needs a {what} name, got {own!r}")
        if other is not None:
            raise ValueError(f"a {self.kind} Config takes only a {what}, got {self!r}")

    @classmethod
    def tiled(cls, method: str | None = None) -> Config:
        """A tiled batch with ``method`` (default: the benchmark's reference tiling)."""
        return cls("tiled", method=method or tiling.DEFAULT_METHOD)

    @classmethod
    def packed(cls, backend: str) -> Config:
        """One packed sequence run with attention ``backend``."""
        return cls("packed", backend=backend)

    @classmethod
    def parse(cls, name: str) -> Config:
        """The configuration a recorded name stands for: ``"tiled"``, ``"tiled-<method>"`` or
        ``"packed-<backend>"`` (names are not checked against the registries: old results stay readable)."""
        if not isinstance(name, str):
            raise TypeError(f"a configuration name is a string, got {type(name).__name__}")
        kind, sep, rest = name.partition("-")
        if kind == "tiled" and not sep:
            return cls.tiled()
        if kind in KINDS and rest:
            return cls.tiled(rest) if kind == "tiled" else cls.packed(rest)
        raise ValueError(f"not a benchmark configuration name: {name!r} "
                         "(expected 'tiled', 'tiled-<method>' or 'packed-<backend>')")

    @property
    def name(self) -> str:
        """The recorded name: ``tiled`` for the reference tiling, ``tiled-<method>``, ``packed-<backend>``."""
        if self.kind == "packed":
            return f"packed-{self.backend}"
        return "tiled" if self.method == tiling.DEFAULT_METHOD else f"tiled-{self.method}"

    def __str__(self) -> str:
        return self.name


#: The backend every packed check compares with: each image alone through the model (``prepare=None``).
REFERENCE_BACKEND = "loop"
