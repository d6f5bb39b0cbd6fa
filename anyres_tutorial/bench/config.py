"""What the benchmark compares: one typed :class:`Config` per tiled tiling method or packed attention backend.

A configuration's ``name`` is the string the JSON records carry (``tiled``, ``tiled-<method>``,
``packed-<backend>``; the training step of ``--train`` puts ``train-`` in front: ``train-tiled``,
``train-packed-<backend>``); :meth:`Config.parse` reads such a name back from recorded results. Taught in
`timing`.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Literal

from .. import tiling

KINDS = ("tiled", "packed")
TRAIN_PREFIX = "train"  # the training-step configurations: "train-" + the forward configuration's name


@dataclass(frozen=True)
class Config:
    """One configuration: a tiled batch of one tiling ``method``, or one packed sequence run with one
    attention ``backend``. Build with :meth:`tiled` / :meth:`packed`, read recorded names with :meth:`parse`.
    ``train=True``: one training step (forward + loss + backward + optimiser step) instead of one forward.
    """

    kind: Literal["tiled", "packed"]
    method: str | None = None  # the tiling method (tiled only)
    backend: str | None = None  # the attention backend (packed only)
    train: bool = False  # a training step (``--train``) rather than a forward

    def __post_init__(self):
        if self.kind not in KINDS:
            raise ValueError(f"Config.kind must be one of {KINDS}, got {self.kind!r}")
        own, other = (self.method, self.backend) if self.kind == "tiled" else (self.backend, self.method)
        what = "method" if self.kind == "tiled" else "backend"
        if not isinstance(own, str) or not own:
            raise ValueError(f"a {self.kind} Config needs a {what} name, got {own!r}")
        if other is not None:
            raise ValueError(f"a {self.kind} Config takes only a {what}, got {self!r}")
        if not isinstance(self.train, bool):
            raise TypeError(f"Config.train must be True or False, got {self.train!r}")

    @classmethod
    def tiled(cls, method: str | None = None, train: bool = False) -> Config:
        """A tiled batch with ``method`` (default: the benchmark's reference tiling)."""
        return cls("tiled", method=method or tiling.DEFAULT_METHOD, train=train)

    @classmethod
    def packed(cls, backend: str, train: bool = False) -> Config:
        """One packed sequence run with attention ``backend``."""
        return cls("packed", backend=backend, train=train)

    @classmethod
    def parse(cls, name: str) -> Config:
        """The configuration a recorded name stands for: ``"tiled"``, ``"tiled-<method>"`` or
        ``"packed-<backend>"``, each optionally after ``"train-"`` (names are not checked against the
        registries: old results stay readable)."""
        if not isinstance(name, str):
            raise TypeError(f"a configuration name is a string, got {type(name).__name__}")
        kind, sep, rest = name.partition("-")
        train = kind == TRAIN_PREFIX and bool(rest)
        if train:
            kind, sep, rest = rest.partition("-")
        if kind == "tiled" and not sep:
            return cls.tiled(train=train)
        if kind in KINDS and rest:
            return cls.tiled(rest, train) if kind == "tiled" else cls.packed(rest, train)
        raise ValueError(f"not a benchmark configuration name: {name!r} "
                         "(expected 'tiled', 'tiled-<method>' or 'packed-<backend>', optionally after "
                         "'train-')")

    @property
    def name(self) -> str:
        """The recorded name: ``tiled`` for the reference tiling, ``tiled-<method>``, ``packed-<backend>``;
        ``train-`` in front for a training step."""
        if self.kind == "packed":
            name = f"packed-{self.backend}"
        else:
            name = "tiled" if self.method == tiling.DEFAULT_METHOD else f"tiled-{self.method}"
        return f"{TRAIN_PREFIX}-{name}" if self.train else name

    def __str__(self) -> str:
        return self.name


#: The backend every packed check compares with: each image alone through the model (``prepare=None``).
REFERENCE_BACKEND = "loop"
