"""Errors raised by :mod:`latency_lut`; all derive from :class:`hwnas.errors.HwnasError`.

Messages are one line and name the LUT file, the block key or the target concerned.
"""

from __future__ import annotations

from hwnas.errors import ConfigError, HwnasError

__all__ = [
    "BlockExportError",
    "CorruptLUTError",
    "FingerprintMismatchError",
    "LUTError",
    "ManifestError",
    "MissingBlockError",
    "UnsupportedSpaceError",
]


class LUTError(HwnasError):
    """Root of the errors of :mod:`latency_lut`."""


class CorruptLUTError(LUTError):
    """The LUT file is not an SQLite database, is truncated or corrupt, or is not a hwnas LUT."""


class FingerprintMismatchError(LUTError):
    """The LUT holds no measurements for the fingerprint of the requested target."""


class MissingBlockError(LUTError):
    """An architecture contains a block the LUT has no measurement for."""


class ManifestError(LUTError, ConfigError):
    """An exported block folder (its ``manifest.json``) is missing, malformed or incomplete."""


class UnsupportedSpaceError(LUTError, ConfigError):
    """The space has no per-block latency table (e.g. ``nb201``, served by its tabular benchmark)."""


class BlockExportError(LUTError):
    """A block or network could not be exported to ONNX or quantized."""
