"""The ONNX opset of every model hwnas writes: torch exports (:mod:`quant.export`), latency-table
blocks and the small graphs built by hand on the device side (:mod:`latency_lut.onnx_models`).

It lives at the bottom layer because the device side, which must not import torch (nor
:mod:`quant`), builds models at the same opset as the exporter.
"""

from __future__ import annotations

__all__ = ["DEFAULT_OPSET"]

DEFAULT_OPSET = 17
