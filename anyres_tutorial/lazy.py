"""A module imported on first use: ``torch = lazy_module("torch")`` at the top of a file keeps ``import
anyres_tutorial.viz`` (and with it the explorers of `grid_explorer`, which only do geometry) from importing
torch (about 1.6 s and most of a kernel's memory) until a function really needs it; ``lazy_attributes``
does the same for the names a package (``packing``, ``features``) re-exports from its torch-using parts."""

from __future__ import annotations

import importlib
import types


class _LazyModule(types.ModuleType):
    def __getattr__(self, attr: str):
        module = importlib.import_module(self.__name__)
        return getattr(module, attr)


def lazy_module(name: str) -> types.ModuleType:
    """A stand-in for ``import name`` that imports the module when one of its attributes is first read."""
    return _LazyModule(name)


def lazy_attributes(package: str, table: dict[str, tuple[str, ...]], namespace: dict):
    """A package's module ``__getattr__`` (PEP 562): each name of ``table`` ({".submodule": (names, ...)})
    is imported from its submodule when first read, and ``package.submodule`` itself works too."""
    where = {name: module for module, names in table.items() for name in names}

    def __getattr__(name: str):
        if name in where:
            value = getattr(importlib.import_module(where[name], package), name)
            namespace[name] = value
            return value
        if f".{name}" in table:  # the submodule itself, e.g. ``features.maps.stitch_tiles``
            return importlib.import_module(f".{name}", package)
        raise AttributeError(f"module {package!r} has no attribute {name!r}")

    return __getattr__
