"""Errors of :mod:`nas.export`; both derive from :class:`hwnas.errors.HwnasError` (one-line messages)."""

from __future__ import annotations

from hwnas.errors import ConfigError, HwnasError

__all__ = ["ExportConfigError", "ExportVerificationError", "FormatUnavailableError"]


class ExportConfigError(ConfigError):
    """A bad export request: unknown format, unwritable output folder, mismatched target or data."""


class ExportVerificationError(HwnasError):
    """An exported file does not run on its engine, or the model fell apart before export (a
    quantizer's step size collapsed in a fine-tune)."""


class FormatUnavailableError(HwnasError):
    """A requested format needs a library or hardware this machine lacks; ``reason`` says which."""

    def __init__(self, message: str, reason: str | None = None) -> None:
        super().__init__(message)
        self.reason = reason or message
