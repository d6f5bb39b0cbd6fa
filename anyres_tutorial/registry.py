"""One small registry shape for the pluggable parts: tiling methods, attention backends, score pictures.

``register`` / ``unregister`` / ``get`` / ``names``, iteration over the names in registration order, ``in``
and ``len``, and one error for an unknown name ("unknown X 'y'; choose one of (...)"). Adding a part is one
``register`` call; everything that lists the parts reads the registry, so it knows the new one at once.
"""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any


class Registry:
    """Named entries of one ``kind`` (e.g. ``"tiling method"``), in registration order. ``also`` names the
    choices a caller accepts besides the entries (e.g. ``"auto"``): they appear in the error message."""

    def __init__(self, kind: str, also: tuple[str, ...] = ()):
        self.kind, self.also = kind, tuple(also)
        self._entries: dict[str, Any] = {}

    def register(self, name: str, entry: Any, *, replace: bool = False) -> Any:
        """Add ``entry`` under ``name`` and return it; a taken name raises unless ``replace=True``."""
        if not isinstance(name, str) or not name.isidentifier() or name in self.also:
            other = f" other than {', '.join(map(repr, self.also))}" if self.also else ""
            raise ValueError(f"a {self.kind} name must be an identifier-like string{other}, got {name!r}")
        if name in self._entries and not replace:
            raise ValueError(f"{self.kind} {name!r} is already registered (pass replace=True to replace it)")
        self._entries[name] = entry
        return entry

    def unregister(self, name: str) -> None:
        """Remove ``name`` (an unknown one raises like :meth:`get`)."""
        self.get(name)
        del self._entries[name]

    def get(self, name: str) -> Any:
        """The entry registered as ``name``; ValueError naming the registered ones otherwise."""
        if not isinstance(name, str) or name not in self._entries:
            choices = " or ".join([*map(repr, self.also), f"one of {self.names()}"])
            raise ValueError(f"unknown {self.kind} {name!r}; choose {choices}")
        return self._entries[name]

    def names(self) -> tuple[str, ...]:
        """The registered names, in registration order."""
        return tuple(self._entries)

    def values(self) -> list[Any]:
        """The registered entries, in registration order."""
        return list(self._entries.values())

    def __iter__(self) -> Iterator[str]:
        return iter(self.names())

    def __len__(self) -> int:
        return len(self._entries)

    def __contains__(self, name: object) -> bool:
        return name in self._entries

    def __repr__(self) -> str:
        return f"{self.kind}s {self.names()}"
