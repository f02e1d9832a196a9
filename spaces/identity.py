"""A space's identity: the hash of its canonical declarative form.

Two spaces with the same hash describe the same decisions, blocks, input and head, so a LUT, a
supernet checkpoint or an exported model made for one is valid for the other. Name and factory
arguments are not part of it: a YAML file and the registered space it was written from agree.
"""
from __future__ import annotations

import hashlib
from typing import TYPE_CHECKING

if TYPE_CHECKING:  # pragma: no cover
    from spaces._space import Space

__all__ = ["space_hash"]


def space_hash(space: Space) -> str:
    """16 hex digits of the SHA-256 of the space's canonical JSON (``space.to_dict()``, sorted keys)."""
    from hwnas.io import canonical_json

    data = dict(space.to_dict())
    data.pop("name", None)  # a renamed copy is the same space
    return hashlib.sha256(canonical_json(data).encode()).hexdigest()[:16]
