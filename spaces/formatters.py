"""Arch formatters by name: how a space writes an arch compactly (:meth:`Space.describe`).

A space made with a registered formatter keeps it through YAML (``formatter: <name>``); one
made with an unregistered callable has no declarative form. A leaf module: spaces register
their formatters here, and the YAML code looks them up by name without importing any space.

    from spaces import register_formatter

    @register_formatter("cell")
    def cell_string(space, arch):
        return "|".join(str(v) for v in arch.values())
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any, TypeVar

from hwnas.errors import ConfigError, UnknownNameError

__all__ = ["formatter_name", "get_formatter", "list_formatters", "register_formatter"]

#: ``formatter(space, arch) -> str``
Formatter = Callable[[Any, Any], str]
F = TypeVar("F", bound=Formatter)
_FORMATTERS: dict[str, Formatter] = {}


def register_formatter(name: str) -> Callable[[F], F]:
    """Register an arch formatter under ``name`` (a decorator)."""

    def deco(fn: F) -> F:
        if _FORMATTERS.get(name, fn) is not fn:
            raise ConfigError(f"formatter {name!r} is already registered")
        _FORMATTERS[name] = fn
        return fn

    return deco


def list_formatters() -> list[str]:
    """Names of the registered formatters, sorted."""
    return sorted(_FORMATTERS)


def get_formatter(name: str) -> Formatter:
    """The formatter registered as ``name``; :class:`~hwnas.errors.UnknownNameError` otherwise."""
    try:
        return _FORMATTERS[name]
    except KeyError:
        raise UnknownNameError(f"unknown formatter {name!r} (known: {', '.join(list_formatters())})") from None


def formatter_name(fn: Formatter) -> str | None:
    """The name ``fn`` is registered under, or ``None``."""
    return next((name for name, f in _FORMATTERS.items() if f is fn), None)
