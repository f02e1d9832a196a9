"""Errors raised by :mod:`supernet`. All derive from :class:`hwnas.errors.HwnasError`; messages are one line."""

from __future__ import annotations

from hwnas.errors import ConfigError, HwnasError

__all__ = ["CheckpointError", "SupernetError", "TrainingConfigError", "UntrainedQuantizerError"]


class SupernetError(HwnasError):
    """Root of the supernet errors (an arch the supernet cannot serve, a misuse of its API)."""


class CheckpointError(SupernetError):
    """A checkpoint is missing, unreadable, corrupt, or belongs to another supernet."""


class TrainingConfigError(SupernetError, ConfigError):
    """A training configuration is inconsistent (batch not divisible by the world size, ...)."""


class UntrainedQuantizerError(SupernetError):
    """A quantized subnet needs a quantizer no training step created (an arch whose structure, e.g.
    an identity shortcut, no trained subnet had); :meth:`supernet.Supernet.subnet` calibrates it
    when given batches."""
