"""The error hierarchy. Every error hwnas raises on purpose derives from :class:`HwnasError`.

Messages are one line and say what is wrong and where (a decision path, a YAML path,
a file name), so that the CLI can print them as they are, without a traceback.
"""

from __future__ import annotations

__all__ = [
    "ConfigError",
    "HwnasError",
    "InvalidArchError",
    "SpaceDefinitionError",
    "UnknownNameError",
]


class HwnasError(Exception):
    """Root of every error hwnas raises deliberately."""


class ConfigError(HwnasError, ValueError):
    """A user-supplied configuration (YAML, CLI argument, file) is malformed."""


class UnknownNameError(HwnasError, KeyError):
    """A registry lookup (space, op, target, searcher, ...) found no such name."""

    def __str__(self) -> str:  # KeyError quotes its message; keep it a plain line
        return str(self.args[0]) if self.args else ""


class SpaceDefinitionError(ConfigError):
    """A search space is defined wrongly (bad op, bad option, clashing decision paths)."""


class InvalidArchError(HwnasError, ValueError):
    """An architecture does not belong to its search space."""
