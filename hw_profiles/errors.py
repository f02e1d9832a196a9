"""Errors raised by :mod:`hw_profiles`; all derive from :class:`hwnas.errors.HwnasError`.

Messages are one line and name the target, file or key concerned.
"""

from __future__ import annotations

from hwnas.errors import ConfigError, HwnasError, UnknownNameError

__all__ = [
    "EngineUnavailableError",
    "HwProfileError",
    "MeasurementError",
    "TargetConfigError",
    "UnknownTargetError",
]


class HwProfileError(HwnasError):
    """Root of the errors of :mod:`hw_profiles`."""


class TargetConfigError(HwProfileError, ConfigError):
    """A target YAML file (or dict) is malformed: a missing, unknown or ill-typed key."""


class UnknownTargetError(HwProfileError, UnknownNameError):
    """No built-in target has this name and no YAML file exists at this path."""


class EngineUnavailableError(HwProfileError):
    """The target's engine (or the hardware it needs) is not present on this machine.

    ``reason`` is a short human sentence, also used by tests to say why they skip.
    """

    def __init__(self, message: str, reason: str | None = None) -> None:
        super().__init__(message)
        self.reason = reason or message


class MeasurementError(HwProfileError):
    """A model could not be loaded or run by the engine during measurement."""
