"""A module imported on first use: ``torch = lazy_module("torch")`` at the top of a file keeps ``import
anyres_tutorial.viz`` (and with it the explorers of `grid_explorer`, which only do geometry) from importing
torch (about 1.6 s and most of a kernel's memory) until a function really needs it."""

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
