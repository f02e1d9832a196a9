"""The probe model of the quiet-machine gate: one small fixed convolution (torch-free)."""
from __future__ import annotations

__all__ = ["probe_model_bytes"]


def probe_model_bytes(channels: int = 16, size: int = 28) -> bytes:
    """A float ``Conv 3×3 (channels→channels) + Relu`` on ``1×channels×size×size`` (about
    0.1–0.3 ms on one CPU core), with fixed pseudo-random weights."""
    import numpy as np
    import onnx
    from onnx import TensorProto, helper, numpy_helper

    rng = np.random.default_rng(1234)
    w = numpy_helper.from_array((rng.standard_normal((channels, channels, 3, 3)) * 0.1).astype(np.float32), "w")
    b = numpy_helper.from_array(np.zeros(channels, np.float32), "b")
    graph = helper.make_graph(
        [helper.make_node("Conv", ["input", "w", "b"], ["c"], pads=[1, 1, 1, 1], kernel_shape=[3, 3]),
         helper.make_node("Relu", ["c"], ["output"])],
        "probe",
        [helper.make_tensor_value_info("input", TensorProto.FLOAT, [1, channels, size, size])],
        [helper.make_tensor_value_info("output", TensorProto.FLOAT, [1, channels, size, size])],
        initializer=[w, b],
    )
    model = helper.make_model(graph, opset_imports=[helper.make_opsetid("", 17)])
    model.ir_version = 8
    onnx.checker.check_model(model)
    return model.SerializeToString()
