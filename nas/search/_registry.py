"""Searcher registry: ``@register_searcher`` and ``create_searcher(name, space, **kw)``."""

from __future__ import annotations

import difflib
import importlib
from collections.abc import Callable
from typing import TYPE_CHECKING, Any, TypeVar

from hwnas.errors import UnknownNameError

if TYPE_CHECKING:  # pragma: no cover
    from nas.search.base import Searcher
    from spaces import Space

__all__ = ["create_searcher", "get_searcher_class", "list_searchers", "register_searcher"]

_SEARCHERS: dict[str, Callable[..., Searcher]] = {}
_ALIASES: dict[str, str] = {}
# modules that register the built-in searchers (imported on first registry use)
_BUILTIN_MODULES = (
    "nas.search.random_search",
    "nas.search.evolution",
    "nas.search.mcts",
    "nas.search.bayesopt",
    "nas.search.optuna_search",
    "nas.search.hhnas",
    "nas.search.darts",
)
_loaded = False

T = TypeVar("T")


def register_searcher(name: str | None = None, *, aliases: tuple[str, ...] = ()) -> Callable[[T], T]:
    """Class (or factory) decorator registering a searcher under ``name`` (default: its ``name``)."""

    def deco(obj: T) -> T:
        key = name or getattr(obj, "name", None) or obj.__name__  # type: ignore[attr-defined]
        _SEARCHERS[key] = obj  # type: ignore[assignment]
        for alias in aliases:
            _ALIASES[alias] = key
        return obj

    return deco


def _load_builtins() -> None:
    global _loaded
    if not _loaded:
        _loaded = True
        for module in _BUILTIN_MODULES:
            importlib.import_module(module)


def list_searchers() -> list[str]:
    """Names of the registered searchers, sorted."""
    _load_builtins()
    return sorted(_SEARCHERS)


def get_searcher_class(name: str) -> Callable[..., Searcher]:
    """The class (or factory) registered as ``name``; UnknownNameError with a suggestion otherwise."""
    _load_builtins()
    key = _ALIASES.get(name, name)
    if key not in _SEARCHERS:
        close = difflib.get_close_matches(name, list(_SEARCHERS) + list(_ALIASES), n=1)
        hint = f" (did you mean {close[0]!r}?)" if close else ""
        raise UnknownNameError(f"unknown searcher {name!r}{hint}; known: {', '.join(sorted(_SEARCHERS))}")
    return _SEARCHERS[key]


def create_searcher(name: str, space: Space, **kwargs: Any) -> Searcher:
    """Create the searcher registered as ``name`` on ``space`` (keyword arguments go to it).

    Common keywords: ``objectives`` (``["acc", "latency:min"]``), ``constraints``
    (``["latency<=10"]``), ``seed``.
    """
    return get_searcher_class(name)(space, **kwargs)
