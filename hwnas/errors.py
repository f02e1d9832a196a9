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
    "first_line",
    "one_line",
    "os_reason",
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


class SpaceTooLargeError(SpaceDefinitionError):
    """A walk over every decision of a search space would resolve more blocks than its bound allows."""


class InvalidArchError(HwnasError, ValueError):
    """An architecture does not belong to its search space."""


# -- one-line messages from other libraries' exceptions ---------------------------------------------


def first_line(exc: BaseException) -> str:
    """The first line of ``exc``'s message (a traceback or a long explanation from a library cut
    off), or its type's name when the message is empty."""
    text = str(exc).strip()
    return text.splitlines()[0] if text else type(exc).__name__


def one_line(exc: object) -> str:
    """``exc``'s whole message folded onto one line (runs of white space, newlines included,
    become one space); for an exception with an empty message its type's name. ``exc`` may also be
    a plain message (a string), which is folded alike."""
    text = " ".join(str(exc).split())
    return text or (type(exc).__name__ if isinstance(exc, BaseException) else "")


def os_reason(exc: OSError) -> str:
    """Why an OS call failed, lower case: ``no such file or directory``, ``permission denied``."""
    return (exc.strerror or one_line(exc)).lower()
