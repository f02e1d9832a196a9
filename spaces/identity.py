"""A space's identity: the hash of its canonical declarative form.

Two spaces with the same hash describe the same decisions, blocks, input and head, so a LUT, a
supernet checkpoint or an exported model made for one is valid for the other. Name and factory
arguments are not part of it: a YAML file and the registered space it was written from agree.

Artifacts record a space as ``{"name", "kwargs", "yaml", "hash"}`` (:func:`space_identity`
gives the last three): the canonical YAML rebuilds exactly that space
(:func:`space_from_identity`), the hash compares it with another without rebuilding.
Records written before the YAML was stored hold only ``name`` and ``kwargs``; they are rebuilt
with the registered factory.
"""

from __future__ import annotations

import hashlib
from collections.abc import Mapping
from typing import TYPE_CHECKING, Any

from hwnas.errors import ConfigError, HwnasError, SpaceDefinitionError

if TYPE_CHECKING:  # pragma: no cover
    from spaces._space import Space

__all__ = [
    "SpaceMismatchError",
    "check_same_space",
    "space_from_identity",
    "space_hash",
    "space_identity",
    "space_label",
]


class SpaceMismatchError(ConfigError):
    """A LUT, checkpoint or exported model was made for another space than the one given."""


def space_hash(space: Space) -> str:
    """16 hex digits of the SHA-256 of the space's canonical JSON (``space.to_dict()``, sorted keys).

    Raises :class:`~hwnas.errors.SpaceDefinitionError` for a space without a declarative form
    (a Python-callable constraint or formatter)."""
    from hwnas.io import canonical_json

    data = dict(space.to_dict())
    data.pop("name", None)  # a renamed copy is the same space
    return hashlib.sha256(canonical_json(data).encode()).hexdigest()[:16]


def space_identity(space: Space) -> dict[str, Any]:
    """``{"name", "kwargs", "yaml", "hash"}`` of ``space``: what a LUT or checkpoint records.

    ``kwargs`` are the factory arguments (JSON-able; empty for a YAML space); ``yaml`` and
    ``hash`` are ``None`` for a space without a declarative form (only its name and arguments
    identify it then)."""
    import json

    kwargs = json.loads(json.dumps(dict(getattr(space, "factory_kwargs", {}) or {}), sort_keys=True, default=str))
    try:
        text: str | None = space.to_yaml()
        digest: str | None = space_hash(space)
    except SpaceDefinitionError:
        text = digest = None
    return {"name": space.name, "kwargs": kwargs, "yaml": text, "hash": digest}


def space_from_identity(record: Mapping[str, Any], where: str = "<space record>") -> Space:
    """Rebuild the space of a record: from its YAML when it has one, else ``create_space(name,
    **kwargs)`` (records written before the YAML was stored). One-line errors name ``where``."""
    from spaces._registry import create_space
    from spaces.yaml_io import space_from_yaml

    if not isinstance(record, Mapping):
        raise ConfigError(f"{where}: the space record is not a mapping")
    text = record.get("yaml")
    if text:
        return space_from_yaml(str(text), source=f"{where}: space")
    name, kwargs = record.get("name"), record.get("kwargs") or {}
    if not isinstance(name, str) or not isinstance(kwargs, Mapping):
        raise ConfigError(f"{where}: the space record has neither YAML nor a space name and arguments")
    try:
        return create_space(name, **dict(kwargs))
    except HwnasError as exc:
        raise ConfigError(f"{where}: cannot rebuild space {name!r}: {exc}") from None


def space_label(name: str | None, digest: str | None) -> str:
    """``name (hash 0123abcd...)`` for messages."""
    return f"{name or '?'} (hash {digest or 'unrecorded'})"


def check_same_space(expected: Space, given: Space, *, what: str, given_as: str = "the given space") -> None:
    """Raise :class:`SpaceMismatchError` (one line, both hashes) unless ``given`` is the space
    ``what`` (e.g. ``"checkpoint run/checkpoint.safetensors"``) was made for."""
    h_exp, h_giv = _hash_or_none(expected), _hash_or_none(given)
    if h_exp is not None and h_giv is not None:
        same = h_exp == h_giv
    else:  # no declarative form: compare name, arguments and input
        same = (expected.name, expected.factory_kwargs, expected.input_shape, expected.num_classes) == (
            given.name,
            given.factory_kwargs,
            given.input_shape,
            given.num_classes,
        )
    if not same:
        raise SpaceMismatchError(
            f"{what} was made for space {space_label(expected.name, h_exp)}; {given_as} is space "
            f"{space_label(given.name, h_giv)}"
        )


def _hash_or_none(space: Space) -> str | None:
    try:
        return space_hash(space)
    except SpaceDefinitionError:
        return None
