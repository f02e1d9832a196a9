"""`Arch`: one architecture of a space, an immutable mapping from decision path to value."""

from __future__ import annotations

import hashlib
import json
import math
from collections.abc import Iterator, Mapping
from typing import Any

from hwnas.errors import InvalidArchError, first_line
from hwnas.io import canonical_json

__all__ = ["Arch", "Value"]

Value = int | float | str | bool
_VALUE_TYPES = (int, float, str, bool)


class Arch(Mapping[str, Value]):
    """An assignment of values to the *active* decisions of a space.

    Keys are dotted decision paths (``stage2.b0.kernel``); the mapping is immutable and
    hashable, its canonical JSON has sorted keys, and :attr:`id` is a stable short hash
    of that JSON. An ``Arch`` alone is not checked against a space: use
    ``space.validate(arch)`` for that.
    """

    __slots__ = ("_data", "_json", "_hash")

    def __init__(self, values: Mapping[str, Value] | None = None, **kwargs: Value) -> None:
        data = dict(values or {})
        data.update(kwargs)
        for key, value in data.items():
            if not isinstance(key, str) or not key:
                raise InvalidArchError(f"decision path must be a non-empty string, got {key!r}")
            if not isinstance(value, _VALUE_TYPES):
                raise InvalidArchError(f"{key}: value must be int, float, str or bool, got {type(value).__name__}")
            if isinstance(value, float) and not math.isfinite(value):
                raise InvalidArchError(f"{key}: value must be a finite number, got {value}")
        self._data: dict[str, Value] = dict(sorted(data.items()))
        self._json = canonical_json(self._data)
        self._hash = hash(self._json)

    # Mapping protocol ---------------------------------------------------------------
    def __getitem__(self, key: str) -> Value:
        return self._data[key]

    def __iter__(self) -> Iterator[str]:
        return iter(self._data)

    def __len__(self) -> int:
        return len(self._data)

    def __hash__(self) -> int:
        return self._hash

    def __eq__(self, other: object) -> bool:
        if isinstance(other, Arch):
            return self._json == other._json
        if isinstance(other, Mapping):
            try:
                return self._json == canonical_json(dict(other))
            except TypeError:
                return False
        return NotImplemented

    def __repr__(self) -> str:
        return f"Arch({self._json})"

    # Serialisation --------------------------------------------------------------------
    def to_json(self) -> str:
        """Canonical JSON: sorted keys, no whitespace."""
        return self._json

    def to_dict(self) -> dict[str, Value]:
        return dict(self._data)

    @classmethod
    def from_json(cls, text: str) -> Arch:
        """Parse canonical (or any) JSON of a flat object of decision values."""
        if isinstance(text, (bytes, bytearray)):
            try:
                text = text.decode("utf-8")
            except UnicodeDecodeError as exc:
                raise InvalidArchError(f"arch JSON is not UTF-8 text (byte {exc.start})") from None
        if not isinstance(text, str):
            raise InvalidArchError(f"arch JSON must be text, got {type(text).__name__}")
        try:
            data = json.loads(text)
        except json.JSONDecodeError as exc:
            raise InvalidArchError(f"arch JSON is invalid at column {exc.colno}: {exc.msg}") from None
        except RecursionError:
            raise InvalidArchError("arch JSON is nested too deeply") from None
        except ValueError as exc:  # e.g. an integer of more than 4,300 digits
            raise InvalidArchError(f"arch JSON is invalid: {first_line(exc)}") from None
        if not isinstance(data, dict):
            raise InvalidArchError(f"arch JSON must be an object of decision values, got {type(data).__name__}")
        return cls(data)

    @property
    def id(self) -> str:
        """Stable 12-hex-digit id: the SHA-256 of the canonical JSON."""
        return hashlib.sha256(self._json.encode("utf-8")).hexdigest()[:12]

    def replace(self, **changes: Any) -> Arch:
        """A copy with some values changed (keys given as ``path=value`` via a dict)."""
        data = dict(self._data)
        data.update(changes)
        return Arch(data)

    def with_values(self, changes: Mapping[str, Value]) -> Arch:
        """A copy with the given paths set (paths are dotted, so pass a mapping)."""
        data = dict(self._data)
        data.update(changes)
        return Arch(data)
