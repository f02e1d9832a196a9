"""Lazy re-exports for package faces: ``import pkg`` stays cheap, ``pkg.Name`` imports on use.

A package face names where each lazily exported name lives and takes the module hooks of
:pep:`562` from :func:`lazy_exports`::

    from hwnas.lazy import lazy_exports

    __getattr__, __dir__ = lazy_exports(__name__, {"LatencyDB": "latency_lut.db"})
"""

from __future__ import annotations

import importlib
import sys
from collections.abc import Callable, Mapping
from typing import Any

__all__ = ["lazy_exports"]


def lazy_exports(package: str, names: Mapping[str, str]) -> tuple[Callable[[str], Any], Callable[[], list[str]]]:
    """``(__getattr__, __dir__)`` for the module ``package`` whose ``names`` (name → the module
    that defines it) are imported on first use.

    ``__getattr__`` raises :class:`AttributeError` for any other name, as a module does;
    ``__dir__`` lists the module's own names and the lazy ones.
    """
    table = dict(names)

    def __getattr__(name: str) -> Any:
        module = table.get(name)
        if module is None:
            raise AttributeError(f"module {package!r} has no attribute {name!r}")
        return getattr(importlib.import_module(module), name)

    def __dir__() -> list[str]:
        return sorted(set(vars(sys.modules[package])) | set(table))

    return __getattr__, __dir__
