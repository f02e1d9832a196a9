"""Errors raised by :mod:`quant`. All derive from :class:`hwnas.errors.HwnasError`; messages are one line."""

from __future__ import annotations

from hwnas.errors import HwnasError

__all__ = ["ExportError", "NotCalibratedError", "QuantError", "UnsupportedModelError"]


class QuantError(HwnasError):
    """Root of the quantization errors."""


class NotCalibratedError(QuantError):
    """A quantizer has no scale yet: the model was neither calibrated nor QAT-trained."""


class UnsupportedModelError(QuantError):
    """The model contains something :func:`quant.prepare` cannot trace or quantize."""


class ExportError(QuantError):
    """The QDQ ONNX export failed or would not be faithful to the torch model."""
