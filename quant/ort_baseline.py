"""onnxruntime's own post-training quantizer, as the baseline our PTQ is compared against."""

from __future__ import annotations

import os
import tempfile
from collections.abc import Iterator
from pathlib import Path
from typing import Literal

import numpy as np

from quant.errors import QuantError

__all__ = ["ort_quantize_static"]


class _Reader:
    """``CalibrationDataReader`` over an in-memory array, in batches."""

    def __init__(self, input_name: str, data: np.ndarray, batch_size: int) -> None:
        self.input_name = input_name
        self.data = np.ascontiguousarray(data, dtype=np.float32)
        self.batch_size = batch_size
        self._it: Iterator[dict[str, np.ndarray]] | None = None

    def _batches(self) -> Iterator[dict[str, np.ndarray]]:
        for i in range(0, len(self.data), self.batch_size):
            yield {self.input_name: self.data[i : i + self.batch_size]}

    def get_next(self) -> dict[str, np.ndarray] | None:
        if self._it is None:
            self._it = self._batches()
        return next(self._it, None)

    def rewind(self) -> None:
        self._it = None


def ort_quantize_static(
    fp32_path: str | os.PathLike[str],
    out_path: str | os.PathLike[str],
    calibration_data: np.ndarray,
    *,
    per_channel: bool = True,
    reduce_range: bool = False,
    method: Literal["minmax", "entropy", "percentile"] = "minmax",
    symmetric_activations: bool = False,
    batch_size: int = 64,
    preprocess: bool = True,
) -> Path:
    """Quantize an FP32 ONNX model with ``onnxruntime.quantization.quantize_static`` (QDQ format).

    Uses the recommended recipe: model pre-processing (shape inference, graph optimisation),
    u8 activations (s8 with ``symmetric_activations``), s8 per-channel weights, and the same
    calibration data our PTQ sees.
    """
    from onnxruntime.quantization import CalibrationMethod, QuantFormat, QuantType, quantize_static

    fp32_path = Path(fp32_path)
    if not fp32_path.is_file():
        raise QuantError(f"{fp32_path}: no such ONNX file")
    methods = {
        "minmax": CalibrationMethod.MinMax,
        "entropy": CalibrationMethod.Entropy,
        "percentile": CalibrationMethod.Percentile,
    }
    if method not in methods:
        raise QuantError(f"unknown ORT calibration method {method!r} (known: {', '.join(methods)})")
    import onnx

    out_path = Path(out_path)
    out_path.parent.mkdir(parents=True, exist_ok=True)
    input_name = onnx.load(str(fp32_path), load_external_data=False).graph.input[0].name
    with tempfile.TemporaryDirectory() as tmp:
        src = fp32_path
        if preprocess:
            from onnxruntime.quantization.shape_inference import quant_pre_process

            src = Path(tmp) / "preprocessed.onnx"
            quant_pre_process(str(fp32_path), str(src), skip_symbolic_shape=True)
        quantize_static(
            str(src),
            str(out_path),
            _Reader(input_name, calibration_data, batch_size),
            quant_format=QuantFormat.QDQ,
            per_channel=per_channel,
            reduce_range=reduce_range,
            activation_type=QuantType.QInt8 if symmetric_activations else QuantType.QUInt8,
            weight_type=QuantType.QInt8,
            calibrate_method=methods[method],
            extra_options={"ActivationSymmetric": symmetric_activations, "WeightSymmetric": True},
        )
    return out_path
