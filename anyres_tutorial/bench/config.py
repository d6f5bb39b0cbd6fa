"""What the benchmark compares: one typed :class:`Config` per tiled tiling method or packed attention backend.

A configuration's ``name`` is the string the JSON records carry (``tiled``, ``tiled-<method>``,
``packed-<backend>`` for one unbounded packed sequence, ``packed-<backend>-rows<L>`` for rows of at most ``L``
slots as training packs them; the training step of ``--train`` puts ``train-`` in front: ``train-tiled``,
``train-packed-<backend>``); :meth:`Config.parse` reads such a name back from recorded results. Code reads a
configuration's fields (``kind``, ``method``, ``backend``, ``max_len``, ``train``), never its name. Taught in
`timing`.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from typing import Literal

from .. import tiling

KINDS = ("tiled", "packed")
TRAIN_PREFIX = "train"  # the training-step configurations: "train-" + the forward configuration's name
ROWS_TAG = "-rows"  # packed into rows: "packed-<backend>-rows<max_len>"
_ROWS = re.compile(r"^(?P<backend>.+)" + re.escape(ROWS_TAG) + r"(?P<max_len>[0-9]+)$")


@dataclass(frozen=True)
class Config:
    """One configuration: a tiled batch of one tiling ``method``, or packed images run with one attention
    ``backend``: ONE unbounded sequence (``max_len=None``) or rows of ``max_len`` slots
    (``packing.pack_images(images, 14, max_len, cls_token=True)``, first-fit decreasing, padding at the end
    of each row; ``model.forward_packed`` runs the :class:`~anyres_tutorial.packing.PackedBatch`). Build with
    :meth:`tiled` / :meth:`packed`, read recorded names with :meth:`parse`. ``train=True``: one training step
    (forward + loss + backward + optimiser step) instead of one forward.
    """

    kind: Literal["tiled", "packed"]
    method: str | None = None  # the tiling method (tiled only)
    backend: str | None = None  # the attention backend (packed only)
    train: bool = False  # a training step (``--train``) rather than a forward
    max_len: int | None = None  # packed only: rows of this many slots (None: one unbounded sequence)

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
        if self.max_len is not None:
            if self.kind != "packed":
                raise ValueError(f"only a packed Config has rows (max_len), got {self!r}")
            if isinstance(self.max_len, bool) or not isinstance(self.max_len, int) or self.max_len <= 0:
                raise ValueError(f"Config.max_len must be a positive int or None, got {self.max_len!r}")

    @classmethod
    def tiled(cls, method: str | None = None, train: bool = False) -> Config:
        """A tiled batch with ``method`` (default: the benchmark's reference tiling)."""
        return cls("tiled", method=method or tiling.DEFAULT_METHOD, train=train)

    @classmethod
    def packed(cls, backend: str, train: bool = False, max_len: int | None = None) -> Config:
        """Packed images run with attention ``backend``: one sequence, or rows of ``max_len`` slots."""
        return cls("packed", backend=backend, train=train, max_len=max_len)

    @property
    def rows(self) -> bool:
        """True when the images are packed into rows of ``max_len`` slots."""
        return self.max_len is not None

    def single(self) -> Config:
        """The same configuration as one unbounded packed sequence (itself when it is one already)."""
        return Config(self.kind, self.method, self.backend, self.train)

    @classmethod
    def parse(cls, name: str) -> Config:
        """The configuration a recorded name stands for: ``"tiled"``, ``"tiled-<method>"`` or
        ``"packed-<backend>"``, each optionally after ``"train-"`` (names are not checked against the
        registries: old results stay readable); ``packed-<backend>-rows<L>`` has ``max_len=L``."""
        if not isinstance(name, str):
            raise TypeError(f"a configuration name is a string, got {type(name).__name__}")
        kind, sep, rest = name.partition("-")
        train = kind == TRAIN_PREFIX and bool(rest)
        if train:
            kind, sep, rest = rest.partition("-")
        if kind == "tiled" and not sep:
            return cls.tiled(train=train)
        if kind == "tiled" and rest:
            return cls.tiled(rest, train)
        if kind == "packed" and rest:
            rows = _ROWS.match(rest)
            if rows:
                return cls.packed(rows["backend"], train, int(rows["max_len"]))
            return cls.packed(rest, train)
        raise ValueError(f"not a benchmark configuration name: {name!r} "
                         "(expected 'tiled', 'tiled-<method>' or 'packed-<backend>', optionally after "
                         "'train-'; packed ones may end in '-rows<L>')")

    @property
    def name(self) -> str:
        """The recorded name: ``tiled`` for the reference tiling, ``tiled-<method>``, ``packed-<backend>``;
        ``-rows<L>`` after a packed one in rows of ``L`` slots; ``train-`` in front for a training step."""
        if self.kind == "packed":
            name = f"packed-{self.backend}" + (f"{ROWS_TAG}{self.max_len}" if self.rows else "")
        else:
            name = "tiled" if self.method == tiling.DEFAULT_METHOD else f"tiled-{self.method}"
        return f"{TRAIN_PREFIX}-{name}" if self.train else name

    def __str__(self) -> str:
        return self.name


#: The backend every packed check compares with: each image alone through the model (``prepare=None``).
REFERENCE_BACKEND = "loop"
