"""The probe model of the quiet-machine gate: one small fixed convolution (torch-free).

The probe runs the same kind of arithmetic as the models it guards: a float convolution for
float targets, a QDQ-quantized one (int8 weights per channel, int8 or uint8 activations) for
INT8 targets. On shared hosts the disturbances differ by kind: one measured Intel Xeon host
had spells of tens of seconds in which every INT8 (VNNI) kernel ran 1.8x slower while a float
probe ran at its usual speed, so a float probe let INT8 measurements of those spells through.
"""

from __future__ import annotations

from hwnas.opset import DEFAULT_OPSET

__all__ = ["PROBE_PRECISIONS", "probe_model_bytes"]

#: ``fp32``; ``int8`` (uint8 activations, as onnxruntime's CPU kernels prefer); ``int8_sym``
#: (symmetric int8 activations, zero point 0, as TensorRT requires)
PROBE_PRECISIONS: tuple[str, ...] = ("fp32", "int8", "int8_sym")


def probe_model_bytes(channels: int = 16, size: int = 28, precision: str = "fp32") -> bytes:
    """A ``Conv 3×3 (channels→channels) + Relu`` on ``1×channels×size×size`` (about 0.05–0.3 ms
    on one CPU core) with fixed pseudo-random weights; ``precision`` (see :data:`PROBE_PRECISIONS`)
    quantizes it as QDQ with float input and output."""
    import numpy as np
    import onnx
    from onnx import TensorProto, helper, numpy_helper

    if precision not in PROBE_PRECISIONS:
        raise ValueError(f"probe precision {precision!r}: expected one of {', '.join(PROBE_PRECISIONS)}")
    rng = np.random.default_rng(1234)
    weight = (rng.standard_normal((channels, channels, 3, 3)) * 0.1).astype(np.float32)
    bias = np.zeros(channels, np.float32)
    inputs = [helper.make_tensor_value_info("input", TensorProto.FLOAT, [1, channels, size, size])]
    outputs = [helper.make_tensor_value_info("output", TensorProto.FLOAT, [1, channels, size, size])]
    if precision == "fp32":
        nodes = [
            helper.make_node("Conv", ["input", "w", "b"], ["c"], pads=[1, 1, 1, 1], kernel_shape=[3, 3]),
            helper.make_node("Relu", ["c"], ["output"]),
        ]
        inits = [numpy_helper.from_array(weight, "w"), numpy_helper.from_array(bias, "b")]
    else:
        unsigned = precision == "int8"
        act_type, act_zero = (np.uint8, 128) if unsigned else (np.int8, 0)
        w_scale = (np.abs(weight).reshape(channels, -1).max(axis=1) / 127.0).astype(np.float32)
        w_q = np.clip(np.round(weight / w_scale[:, None, None, None]), -127, 127).astype(np.int8)
        inits = [
            numpy_helper.from_array(w_q, "w_q"),
            numpy_helper.from_array(w_scale, "w_scale"),
            numpy_helper.from_array(np.zeros(channels, np.int8), "w_zero"),
            numpy_helper.from_array(np.array(1.0 / 64, np.float32), "x_scale"),
            numpy_helper.from_array(np.array(act_zero, act_type), "x_zero"),
            numpy_helper.from_array(np.array(1.0 / 32, np.float32), "y_scale"),
            numpy_helper.from_array(np.array(act_zero, act_type), "y_zero"),
            # int32 bias with scale x_scale * w_scale, as quantizers write it
            numpy_helper.from_array(np.zeros(channels, np.int32), "b_q"),
            numpy_helper.from_array((w_scale / 64).astype(np.float32), "b_scale"),
        ]
        nodes = [
            helper.make_node("QuantizeLinear", ["input", "x_scale", "x_zero"], ["xq"]),
            helper.make_node("DequantizeLinear", ["xq", "x_scale", "x_zero"], ["xd"]),
            helper.make_node("DequantizeLinear", ["w_q", "w_scale", "w_zero"], ["wd"], axis=0),
            helper.make_node("DequantizeLinear", ["b_q", "b_scale"], ["bd"], axis=0),
            helper.make_node("Conv", ["xd", "wd", "bd"], ["c"], pads=[1, 1, 1, 1], kernel_shape=[3, 3]),
            helper.make_node("Relu", ["c"], ["r"]),
            helper.make_node("QuantizeLinear", ["r", "y_scale", "y_zero"], ["yq"]),
            helper.make_node("DequantizeLinear", ["yq", "y_scale", "y_zero"], ["output"]),
        ]
    graph = helper.make_graph(nodes, f"probe_{precision}", inputs, outputs, initializer=inits)
    model = helper.make_model(graph, opset_imports=[helper.make_opsetid("", DEFAULT_OPSET)])
    model.ir_version = 8
    onnx.checker.check_model(model)
    return model.SerializeToString()
