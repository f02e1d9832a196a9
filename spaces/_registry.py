"""A registry of space factories in the style of timm's ``register_model`` / ``create_model``.

The registry imports no space: the built-in spaces register themselves when the package face
(``spaces/__init__.py``) imports :mod:`spaces.builtin`, as timm's ``timm.models`` imports its
model modules, so they are registered before any ``spaces.*`` module can be used.
"""

from __future__ import annotations

import inspect
from collections.abc import Callable
from pathlib import Path
from typing import Any, TypeVar

from hwnas.errors import ConfigError, UnknownNameError
from spaces._space import Space

__all__ = ["create_space", "get_space_factory", "list_spaces", "register_space"]

SpaceFactory = Callable[..., Space]
F = TypeVar("F", bound=SpaceFactory)
_REGISTRY: dict[str, SpaceFactory] = {}


def register_space(fn: F | None = None, *, name: str | None = None) -> Any:
    """Register a space factory under its function name (or ``name``).

    Use as ``@register_space`` or ``@register_space(name="my_space")``. The factory takes
    keyword arguments (at least ``in_chans``, ``num_classes``, ``resolution``) and returns
    a :class:`~spaces.Space`.
    """

    def deco(f: F) -> F:
        key = name or f.__name__
        if key in _REGISTRY and _REGISTRY[key] is not f:
            raise ConfigError(f"space {key!r} is already registered")
        _REGISTRY[key] = f
        return f

    return deco(fn) if fn is not None else deco


def list_spaces() -> list[str]:
    """Names of the registered spaces, sorted."""
    return sorted(_REGISTRY)


def get_space_factory(name: str) -> SpaceFactory:
    try:
        return _REGISTRY[name]
    except KeyError:
        raise UnknownNameError(f"unknown space {name!r} (registered: {', '.join(sorted(_REGISTRY))})") from None


def create_space(name: str, **kwargs: Any) -> Space:
    """Create a registered space by name, or load one from a ``.yaml``/``.yml`` file.

    Unknown names and unknown keyword arguments raise one-line errors.
    """
    if name.endswith((".yaml", ".yml")):
        from spaces.yaml_io import load_space

        space = load_space(Path(name))
        if kwargs:
            raise ConfigError(f"{name}: a YAML space takes no keyword arguments (got {', '.join(kwargs)})")
        return space
    factory = get_space_factory(name)
    sig = inspect.signature(factory)
    accepts_any = any(p.kind is inspect.Parameter.VAR_KEYWORD for p in sig.parameters.values())
    if not accepts_any:
        unknown = sorted(set(kwargs) - set(sig.parameters))
        if unknown:
            raise ConfigError(
                f"space {name!r} takes no argument {unknown[0]!r} (arguments: {', '.join(sig.parameters)})"
            )
    space = factory(**kwargs)
    bound = sig.bind_partial(**kwargs)
    bound.apply_defaults()
    space.factory_kwargs = dict(bound.arguments)
    return space
