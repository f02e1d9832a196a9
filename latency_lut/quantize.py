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

from hwnas.errors import first_line
from latency_lut.errors import BlockExportError

__all__ = ["QUANTIZATION_NOTE", "fold_constant_identities", "quantize_model"]

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
    """A calibration data reader yielding ``n`` random normal feeds of the inputs ``inputs``
    (``(name, shape)`` each: a block has one, a merge several)."""

    def __init__(self, inputs: Sequence[tuple[str, Sequence[int]]], n: int, seed: int) -> None:
        import numpy as np

        rng = np.random.default_rng(seed)
        self._items = iter(
            [{name: rng.standard_normal(tuple(shape)).astype(np.float32) for name, shape in inputs} for _ in range(n)]
        )

    def get_next(self) -> dict[str, Any] | None:
        return next(self._items, None)

    def rewind(self) -> None:  # pragma: no cover - some onnxruntime versions call it
        pass


def fold_constant_identities(model: Any) -> Any:
    """Give each ``Identity`` that only forwards an initializer its own copy of that initializer.

    torch's exporter shares equal constants (often two convolutions' biases) through such
    Identity nodes. onnxruntime's quantizer before 1.32 then finds a bias that is not an
    initializer ("Expected bias ... to be an initializer"), leaves it in float, and the Conv is
    not fused into ``QLinearConv``: it runs in FP32 between a DequantizeLinear and a
    QuantizeLinear, and the "INT8" model times a float convolution. Returns a new ModelProto.
    """
    import onnx

    m = onnx.ModelProto()
    m.CopyFrom(model)
    g = m.graph
    inits = {i.name: i for i in g.initializer}
    outputs = {o.name for o in g.output}
    keep = []
    for node in g.node:
        if node.op_type == "Identity" and node.input[0] in inits and node.output[0] not in outputs:
            copy = onnx.TensorProto()
            copy.CopyFrom(inits[node.input[0]])
            copy.name = node.output[0]
            g.initializer.append(copy)
        else:
            keep.append(node)
    if len(keep) != len(g.node):
        del g.node[:]
        g.node.extend(keep)
        used = {i for n in g.node for i in n.input} | outputs
        unused = [i for i in g.initializer if i.name not in used]
        for i in unused:
            g.initializer.remove(i)
    return m


def _quantize_float_outputs(model: Any, fp32: Any, reader_args: tuple, fmt: str) -> Any:
    """Append QuantizeLinear -> DequantizeLinear to every graph output that is not produced by a
    DequantizeLinear, with the scale and zero point of that output's range on the calibration
    inputs (computed with the FP32 model). onnxruntime's quantizer before 1.32 leaves some ops'
    outputs (HardSwish) in float; inside a whole network the next block quantizes that tensor
    before its first convolution, so a block must end with that quantization, like newer
    quantizers make it."""
    import numpy as np
    import onnx
    import onnxruntime as ort
    from onnx import helper, numpy_helper

    g = model.graph
    producer = {o: n for n in g.node for o in n.output}
    float_outputs = [
        o.name for o in g.output if producer.get(o.name) is None or producer[o.name].op_type != "DequantizeLinear"
    ]
    if not float_outputs:
        return model
    so = ort.SessionOptions()
    so.log_severity_level = 3
    sess = ort.InferenceSession(fp32.SerializeToString(), so, providers=["CPUExecutionProvider"])
    reader = _RandomReader(*reader_args)
    lo = {name: 0.0 for name in float_outputs}
    hi = {name: 0.0 for name in float_outputs}
    while (feed := reader.get_next()) is not None:
        for name, value in zip(float_outputs, sess.run(float_outputs, feed)):
            lo[name], hi[name] = min(lo[name], float(np.min(value))), max(hi[name], float(np.max(value)))
    m = onnx.ModelProto()
    m.CopyFrom(model)
    g = m.graph
    for name in float_outputs:
        if fmt == "int8":
            scale = max(hi[name] - lo[name], 1e-8) / 255.0
            zp = np.array(int(round(-lo[name] / scale)), dtype=np.uint8)
        else:
            scale = max(abs(lo[name]), abs(hi[name]), 1e-8) / 127.0
            zp = np.array(0, dtype=np.int8)
        inner = f"{name}_before_output_quantization"
        for node in g.node:  # the producer now writes ``inner``; the graph output keeps its name
            for i, o in enumerate(node.output):
                if o == name:
                    node.output[i] = inner
            for i, x in enumerate(node.input):
                if x == name:
                    node.input[i] = inner
        g.initializer.extend(
            [
                numpy_helper.from_array(np.array(scale, dtype=np.float32), f"{name}_out_scale"),
                numpy_helper.from_array(zp, f"{name}_out_zero_point"),
            ]
        )
        g.node.extend(
            [
                helper.make_node(
                    "QuantizeLinear",
                    [inner, f"{name}_out_scale", f"{name}_out_zero_point"],
                    [f"{name}_out_quantized"],
                    name=f"{name}_OutputQuantizeLinear",
                ),
                helper.make_node(
                    "DequantizeLinear",
                    [f"{name}_out_quantized", f"{name}_out_scale", f"{name}_out_zero_point"],
                    [name],
                    name=f"{name}_OutputDequantizeLinear",
                ),
            ]
        )
    return m


def quantize_model(
    fp32: bytes | Any, fmt: str = "int8", calibration_samples: int = 4, seed: int = 0, quantize_outputs: bool = False
) -> Any:
    """Quantize an FP32 ONNX model (bytes or ModelProto) to QDQ; returns the ModelProto.

    ``quantize_outputs``: every graph output ends in QuantizeLinear -> DequantizeLinear (a
    block whose output a whole network quantizes), also where this onnxruntime's quantizer
    leaves the last op in float."""
    import onnx
    from onnxruntime.quantization import (
        CalibrationDataReader,
        CalibrationMethod,
        QuantFormat,
        QuantType,
        quantize_static,
    )
    from onnxruntime.quantization.shape_inference import quant_pre_process

    from latency_lut.onnx_models import model_io

    if fmt not in ("int8", "int8_sym"):
        raise BlockExportError(f"unknown INT8 model format {fmt!r} (formats: int8, int8_sym)")
    model = fp32 if isinstance(fp32, onnx.ModelProto) else onnx.load_from_string(fp32)
    model = fold_constant_identities(model)
    inputs = [(name, shape) for name, shape, _ in model_io(model)[0]] or [("input", [1])]

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
                pre,
                dst,
                Reader(inputs, calibration_samples, seed),
                quant_format=QuantFormat.QDQ,
                per_channel=True,
                reduce_range=False,
                activation_type=QuantType.QUInt8 if fmt == "int8" else QuantType.QInt8,
                weight_type=QuantType.QInt8,
                calibrate_method=CalibrationMethod.MinMax,
                extra_options={"WeightSymmetric": True, "ActivationSymmetric": fmt == "int8_sym"},
            )
        except Exception as exc:
            msg = first_line(exc)
            raise BlockExportError(f"onnxruntime quantize_static failed: {msg}") from None
        quantized = onnx.load(dst)
    if quantize_outputs:
        quantized = _quantize_float_outputs(quantized, model, (inputs, calibration_samples, seed), fmt)
    return quantized
