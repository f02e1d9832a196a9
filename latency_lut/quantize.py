"""INT8 QDQ quantization of FP32 ONNX models for latency profiling (torch-free).

Uses onnxruntime's ``quantize_static`` in QDQ format: per-channel symmetric int8 weights,
per-tensor activations calibrated (MinMax) on random normal data. ``int8`` uses u8
asymmetric activations (what onnxruntime's CPU kernels prefer); ``int8_sym`` uses s8
symmetric activations (zero point 0, what TensorRT needs). This is independent of
:mod:`quant` (which exports QDQ models carrying *trained* scales): scale values do not
change latency, only the graph structure does, and that is the same.
"""
from __future__ import annotations

import os
import tempfile
from collections.abc import Sequence
from typing import Any

from latency_lut.errors import BlockExportError

__all__ = ["QUANTIZATION_NOTE", "quantize_model"]

QUANTIZATION_NOTE = {
    "tool": "onnxruntime.quantization.quantize_static",
    "format": "QDQ",
    "weights": "int8, symmetric, per output channel",
    "activations": {"int8": "uint8, asymmetric, per tensor", "int8_sym": "int8, symmetric (zero point 0), per tensor"},
    "calibration": "MinMax on random normal inputs",
    "note": "for latency profiling only: independent of hwnas.quant, whose exports carry trained scales; "
            "scale values do not change latency, the QDQ graph structure does",
}


class _RandomReader:
    """A calibration data reader yielding ``n`` random normal inputs."""

    def __init__(self, name: str, shape: Sequence[int], n: int, seed: int) -> None:
        import numpy as np

        rng = np.random.default_rng(seed)
        self._items = iter([{name: rng.standard_normal(tuple(shape)).astype(np.float32)} for _ in range(n)])

    def get_next(self) -> dict[str, Any] | None:
        return next(self._items, None)

    def rewind(self) -> None:  # pragma: no cover - some onnxruntime versions call it
        pass


def quantize_model(fp32: bytes | Any, fmt: str = "int8", calibration_samples: int = 4, seed: int = 0) -> Any:
    """Quantize an FP32 ONNX model (bytes or ModelProto) to QDQ; returns the ModelProto."""
    import onnx
    from onnxruntime.quantization import CalibrationDataReader, CalibrationMethod, QuantFormat, QuantType
    from onnxruntime.quantization import quantize_static
    from onnxruntime.quantization.shape_inference import quant_pre_process

    from latency_lut.onnx_models import model_io

    if fmt not in ("int8", "int8_sym"):
        raise BlockExportError(f"unknown INT8 model format {fmt!r} (formats: int8, int8_sym)")
    model = fp32 if isinstance(fp32, onnx.ModelProto) else onnx.load_from_string(fp32)
    (name, shape, _), = model_io(model)[0][:1] or [("input", [1], 1)]

    class Reader(_RandomReader, CalibrationDataReader):
        pass

    with tempfile.TemporaryDirectory(prefix="hwnas-quant-") as tmp:
        src = os.path.join(tmp, "fp32.onnx")
        pre = os.path.join(tmp, "pre.onnx")
        dst = os.path.join(tmp, "int8.onnx")
        onnx.save(model, src)
        try:
            quant_pre_process(src, pre, skip_symbolic_shape=True)
            quantize_static(
                pre, dst, Reader(name, shape, calibration_samples, seed),
                quant_format=QuantFormat.QDQ, per_channel=True, reduce_range=False,
                activation_type=QuantType.QUInt8 if fmt == "int8" else QuantType.QInt8,
                weight_type=QuantType.QInt8, calibrate_method=CalibrationMethod.MinMax,
                extra_options={"WeightSymmetric": True, "ActivationSymmetric": fmt == "int8_sym"},
            )
        except Exception as exc:
            msg = str(exc).strip().splitlines()[0] if str(exc).strip() else type(exc).__name__
            raise BlockExportError(f"onnxruntime quantize_static failed: {msg}") from None
        return onnx.load(dst)
