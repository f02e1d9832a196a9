"""QDQ graph surgery: uint8 block I/O, the input-quantize and overhead models; INT8 block models
made by the shipping exporter (:func:`latency_lut.quantize.quantize_module`)."""

from __future__ import annotations

import numpy as np
import onnx
import onnxruntime as ort
import pytest
import torch
from torch import nn

from latency_lut.onnx_models import channels_last_io, make_overhead_model, make_quantize_model, model_io, strip_quant_io
from latency_lut.quantize import quantize_module


def _conv_module(tail: nn.Module | None = None) -> nn.Module:
    torch.manual_seed(0)
    return nn.Sequential(nn.Conv2d(4, 8, 3, padding=1), nn.BatchNorm2d(8), tail or nn.ReLU())


def _conv_model(fmt: str = "int8", quantize_output: bool = True, tail: nn.Module | None = None):
    return quantize_module(_conv_module(tail), (4, 8, 8), fmt, quantize_output=quantize_output)


def _run(model, feed):
    sess = ort.InferenceSession(model.SerializeToString(), providers=["CPUExecutionProvider"])
    return sess.run(None, feed)


def test_strip_gives_uint8_io_and_runs():
    q = _conv_model()
    ops = [n.op_type for n in q.graph.node]
    assert "QuantizeLinear" in ops and "DequantizeLinear" in ops
    s = strip_quant_io(q)
    ((name, shape, elem),) = model_io(s)[0]
    ((_, oshape, oelem),) = model_io(s)[1]
    assert elem == oelem == onnx.TensorProto.UINT8 and shape == [1, 4, 8, 8] and oshape == [1, 8, 8, 8]
    (out,) = _run(s, {name: np.zeros(shape, np.uint8)})
    assert out.dtype == np.uint8


def test_strip_input_only_keeps_float_output():
    s = strip_quant_io(_conv_model(), strip_output=False)
    assert model_io(s)[1][0][2] == onnx.TensorProto.FLOAT


def test_symmetric_format_has_zero_points_of_zero():
    q = _conv_model("int8_sym")
    inits = {i.name: onnx.numpy_helper.to_array(i) for i in q.graph.initializer}
    zps = [inits[n.input[2]] for n in q.graph.node if n.op_type == "QuantizeLinear" and len(n.input) > 2]
    assert len(zps) == 2 and all(z.dtype == np.int8 and not z.any() for z in zps)  # input and output


def test_strip_refuses_a_float_model():
    from latency_lut.export import _fp32_bytes

    with pytest.raises(ValueError, match="QuantizeLinear"):
        strip_quant_io(onnx.load_from_string(_fp32_bytes(_conv_module(), (4, 8, 8), 1)))


def test_channels_last_io_computes_the_same_in_nhwc():
    s = strip_quant_io(_conv_model())
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


def _optimized_ops(model, tmp_path):
    so = ort.SessionOptions()
    so.optimized_model_filepath = str(tmp_path / "optimized.onnx")
    so.log_severity_level = 3
    ort.InferenceSession(model.SerializeToString(), so, providers=["CPUExecutionProvider"])
    return [n.op_type for n in onnx.load(so.optimized_model_filepath).graph.node]


@pytest.mark.parametrize("fmt", ["int8", "int8_sym"])
def test_quantize_output_ends_a_block_in_qdq(fmt):
    """A block ending in an activation that the scheme does not fuse (hardswish) still hands the
    next block a quantized tensor, as inside a whole network; without it the output stays float."""
    plain = _conv_model(fmt, quantize_output=False, tail=nn.Hardswish())
    assert next(n for n in plain.graph.node if "output" in n.output).op_type != "DequantizeLinear"
    q = _conv_model(fmt, tail=nn.Hardswish())
    assert next(n for n in q.graph.node if "output" in n.output).op_type == "DequantizeLinear"
    x = np.random.default_rng(0).standard_normal((1, 4, 8, 8)).astype(np.float32)
    (before,) = _run(plain, {"input": x})
    (out,) = _run(q, {"input": x})
    dq = next(n for n in q.graph.node if "output" in n.output)
    scale = float(onnx.numpy_helper.to_array(next(i for i in q.graph.initializer if i.name == dq.input[1])))
    assert np.abs(out - before).max() <= 2 * scale  # rounding to the output's grid (plus clipping)
    if fmt == "int8":
        s = strip_quant_io(q)  # the block's uint8 output, as a whole network hands it on
        assert model_io(s)[1][0][2] == onnx.TensorProto.UINT8


def test_every_convolution_runs_in_int8(tmp_path):
    torch.manual_seed(0)
    m = nn.Sequential(nn.Conv2d(16, 16, 3, padding=1), nn.ReLU(), nn.Conv2d(16, 16, 1), nn.ReLU())
    ops = _optimized_ops(quantize_module(m, (16, 8, 8), "int8", quantize_output=True), tmp_path)
    assert ops.count("QLinearConv") == 2 and "Conv" not in ops


def test_unknown_format_and_untraceable_module_are_one_line_errors():
    from latency_lut.errors import BlockExportError

    with pytest.raises(BlockExportError, match="unknown INT8 model format 'int4'"):
        quantize_module(_conv_module(), (4, 8, 8), "int4")

    class Branchy(nn.Module):
        def forward(self, x):
            return x if x.sum() > 0 else -x  # data-dependent control flow: not traceable

    with pytest.raises(BlockExportError, match="INT8 export"):
        quantize_module(Branchy(), (4, 8, 8), "int8")
