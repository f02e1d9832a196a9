"""QDQ graph surgery: uint8 block I/O, the input-quantize and overhead models."""

from __future__ import annotations

import numpy as np
import onnx
import onnxruntime as ort
import pytest

from latency_lut.onnx_models import channels_last_io, make_overhead_model, make_quantize_model, model_io, strip_quant_io
from latency_lut.quantize import quantize_model


def _conv_model():
    from onnx import TensorProto, helper, numpy_helper

    w = numpy_helper.from_array(np.random.default_rng(0).standard_normal((8, 4, 3, 3)).astype(np.float32), "w")
    g = helper.make_graph(
        [
            helper.make_node("Conv", ["input", "w"], ["c"], pads=[1, 1, 1, 1]),
            helper.make_node("Relu", ["c"], ["output"]),
        ],
        "conv",
        [helper.make_tensor_value_info("input", TensorProto.FLOAT, [1, 4, 8, 8])],
        [helper.make_tensor_value_info("output", TensorProto.FLOAT, [1, 8, 8, 8])],
        initializer=[w],
    )
    m = helper.make_model(g, opset_imports=[helper.make_opsetid("", 17)])
    m.ir_version = 8
    return m


def _run(model, feed):
    sess = ort.InferenceSession(model.SerializeToString(), providers=["CPUExecutionProvider"])
    return sess.run(None, feed)


def test_strip_gives_uint8_io_and_runs():
    q = quantize_model(_conv_model(), "int8")
    ops = [n.op_type for n in q.graph.node]
    assert "QuantizeLinear" in ops and "DequantizeLinear" in ops
    s = strip_quant_io(q)
    ((name, shape, elem),) = model_io(s)[0]
    ((_, oshape, oelem),) = model_io(s)[1]
    assert elem == oelem == onnx.TensorProto.UINT8 and shape == [1, 4, 8, 8] and oshape == [1, 8, 8, 8]
    (out,) = _run(s, {name: np.zeros(shape, np.uint8)})
    assert out.dtype == np.uint8


def test_strip_input_only_keeps_float_output():
    s = strip_quant_io(quantize_model(_conv_model(), "int8"), strip_output=False)
    assert model_io(s)[1][0][2] == onnx.TensorProto.FLOAT


def test_symmetric_format_has_zero_points_of_zero():
    q = quantize_model(_conv_model(), "int8_sym")
    zps = [onnx.numpy_helper.to_array(i) for i in q.graph.initializer if i.name.endswith("zero_point")]
    assert zps and all(z.dtype == np.int8 and not z.any() for z in zps)


def test_strip_refuses_a_float_model():
    with pytest.raises(ValueError, match="QuantizeLinear"):
        strip_quant_io(_conv_model())


def test_channels_last_io_computes_the_same_in_nhwc():
    s = strip_quant_io(quantize_model(_conv_model(), "int8"))
    cl = channels_last_io(s)
    ((name, shape, _),) = model_io(s)[0]
    ((cl_name, cl_shape, _),) = model_io(cl)[0]
    assert cl_shape == [1, 8, 8, 4] and model_io(cl)[1][0][1] == [1, 8, 8, 8]
    x = np.random.default_rng(1).integers(0, 255, shape, dtype=np.uint8)
    (out,) = _run(s, {name: x})
    (out_cl,) = _run(cl, {cl_name: np.ascontiguousarray(x.transpose(0, 2, 3, 1))})
    np.testing.assert_array_equal(out_cl, out.transpose(0, 2, 3, 1))


def test_channels_last_io_leaves_other_ranks_alone():
    m = make_overhead_model("uint8")  # 1-D input and output
    assert model_io(channels_last_io(m)) == model_io(m)


def test_pseudo_models_run():
    (out,) = _run(make_quantize_model((1, 3, 4, 4)), {"input": np.zeros((1, 3, 4, 4), np.float32)})
    assert out.dtype == np.uint8
    x = np.random.default_rng(0).standard_normal((1, 3, 4, 5)).astype(np.float32)
    (out_cl,) = _run(make_quantize_model((1, 3, 4, 5), channels_last=True), {"input": x})
    (out,) = _run(make_quantize_model((1, 3, 4, 5)), {"input": x})
    np.testing.assert_array_equal(out_cl, out.transpose(0, 2, 3, 1))
    (out,) = _run(make_overhead_model("uint8"), {"input": np.zeros(1, np.uint8)})
    assert out.shape == (1,)


def _shared_bias_model():
    """Two convolutions whose equal biases torch's exporter shares through an Identity node."""
    from onnx import TensorProto, helper, numpy_helper

    rng = np.random.default_rng(0)
    w1 = numpy_helper.from_array(rng.standard_normal((16, 16, 3, 3)).astype(np.float32), "w1")
    w2 = numpy_helper.from_array(rng.standard_normal((16, 16, 1, 1)).astype(np.float32), "w2")
    b = numpy_helper.from_array(rng.standard_normal(16).astype(np.float32), "b")
    g = helper.make_graph(
        [
            helper.make_node("Conv", ["input", "w1", "b"], ["c1"], pads=[1, 1, 1, 1]),
            helper.make_node("Relu", ["c1"], ["r1"]),
            helper.make_node("Identity", ["b"], ["b_shared"]),
            helper.make_node("Conv", ["r1", "w2", "b_shared"], ["c2"]),
            helper.make_node("Relu", ["c2"], ["output"]),
        ],
        "shared",
        [helper.make_tensor_value_info("input", TensorProto.FLOAT, [1, 16, 8, 8])],
        [helper.make_tensor_value_info("output", TensorProto.FLOAT, [1, 16, 8, 8])],
        initializer=[w1, w2, b],
    )
    m = helper.make_model(g, opset_imports=[helper.make_opsetid("", 17)])
    m.ir_version = 8
    return m


def _optimized_ops(model, tmp_path):
    so = ort.SessionOptions()
    so.optimized_model_filepath = str(tmp_path / "optimized.onnx")
    so.log_severity_level = 3
    ort.InferenceSession(model.SerializeToString(), so, providers=["CPUExecutionProvider"])
    return [n.op_type for n in onnx.load(so.optimized_model_filepath).graph.node]


def test_fold_constant_identities_gives_each_bias_an_initializer():
    from latency_lut.quantize import fold_constant_identities

    m = _shared_bias_model()
    f = fold_constant_identities(m)
    assert "Identity" not in [n.op_type for n in f.graph.node]
    inits = {i.name for i in f.graph.initializer}
    assert all(n.input[2] in inits for n in f.graph.node if n.op_type == "Conv")
    x = np.random.default_rng(1).standard_normal((1, 16, 8, 8)).astype(np.float32)
    np.testing.assert_array_equal(_run(f, {"input": x})[0], _run(m, {"input": x})[0])


def test_shared_bias_convolutions_all_run_in_int8(tmp_path):
    """Before the fold, onnxruntime < 1.32 left the second Conv in float (it ran in FP32)."""
    ops = _optimized_ops(quantize_model(_shared_bias_model(), "int8"), tmp_path)
    assert ops.count("QLinearConv") == 2 and "Conv" not in ops


def _float_tail_model():
    """A convolution followed by an op onnxruntime's quantizer leaves in float (Sin)."""
    from onnx import helper

    m = _conv_model()
    relu = next(n for n in m.graph.node if n.op_type == "Relu")
    relu.output[0] = "r"
    m.graph.node.append(helper.make_node("Sin", ["r"], ["output"]))
    return m


@pytest.mark.parametrize("fmt", ["int8", "int8_sym"])
def test_quantize_outputs_ends_a_float_tail_in_qdq(fmt):
    m = _float_tail_model()
    plain = quantize_model(m, fmt)
    assert next(n for n in plain.graph.node if "output" in n.output).op_type != "DequantizeLinear"
    q = quantize_model(m, fmt, quantize_outputs=True)
    assert next(n for n in q.graph.node if "output" in n.output).op_type == "DequantizeLinear"
    x = np.random.default_rng(0).standard_normal((1, 4, 8, 8)).astype(np.float32)  # the first calibration input
    (before,) = _run(plain, {"input": x})
    (out,) = _run(q, {"input": x})
    scale = onnx.numpy_helper.to_array(next(i for i in q.graph.initializer if i.name == "output_out_scale"))
    assert 0 < scale < 2 / 127
    assert np.abs(out - before).max() <= scale  # rounding to the output's grid, at most a step of clipping
    if fmt == "int8":
        s = strip_quant_io(q)  # the block's uint8 output, as a whole network hands it on
        assert model_io(s)[1][0][2] == onnx.TensorProto.UINT8
