from __future__ import annotations

import numpy as np
import pytest
import torch

from quant import (
    IntegerOpReport,
    QuantError,
    calibrate,
    export_fp32_onnx,
    export_onnx,
    integer_op_report,
    ort_predict,
    prepare,
)
from quant.ort import INTEGER_OPS
from quant.ort_baseline import ort_quantize_static

from .quant_models import TinyNet, randomize_bn


@pytest.fixture(scope="module")
def onnx_pair(tmp_path_factory):  # noqa: ANN001, ANN201
    torch.manual_seed(0)
    d = tmp_path_factory.mktemp("ort")
    m = randomize_bn(TinyNet())
    x = torch.randn(64, 1, 8, 8)
    fp32 = export_fp32_onnx(m, d / "fp32.onnx", (1, 1, 8, 8))
    int8 = export_onnx(calibrate(prepare(m), x), d / "int8.onnx", (1, 1, 8, 8))
    return fp32, int8, x.numpy(), d


def test_report_distinguishes_float_and_integer_graphs(onnx_pair) -> None:  # noqa: ANN001
    fp32, int8, _, _ = onnx_pair
    f, q = integer_op_report(fp32), integer_op_report(int8)
    assert f.integer_ops == 0 and not f.all_convs_integer
    assert q.all_convs_integer and q.integer_ops > q.integer_convs
    assert "QLinearConv" in INTEGER_OPS and "integer ops" in q.summary()
    assert IntegerOpReport({"Conv": 2, "QLinearConv": 1}).float_convs == 2


def test_missing_model_file(tmp_path) -> None:  # noqa: ANN001
    with pytest.raises(QuantError, match="no such ONNX file"):
        ort_predict(tmp_path / "nope.onnx", np.zeros((1, 1, 8, 8), np.float32))


def test_onnxruntime_quantize_static_baseline(onnx_pair) -> None:  # noqa: ANN001
    fp32, _, x, d = onnx_pair
    base = ort_quantize_static(fp32, d / "ort.onnx", x, batch_size=16)
    rep = integer_op_report(base)
    assert rep.all_convs_integer, rep.summary()
    assert ort_predict(base, x[:4]).shape == (4, 10)
    with pytest.raises(QuantError, match="unknown ORT calibration method"):
        ort_quantize_static(fp32, d / "x.onnx", x, method="kl")  # type: ignore[arg-type]
