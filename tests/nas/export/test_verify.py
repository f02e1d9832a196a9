"""Verification failures are one-line errors: an exported file that its engine cannot run, and a
QAT fine-tune that collapsed a quantizer's step size."""

from __future__ import annotations

import numpy as np
import onnx
import pytest
from onnx import TensorProto, helper

from nas.export import ExportVerificationError


def _model_that_fails_at_run_time(path):
    # a Reshape of N x 4 elements to 1 x 7: a valid graph, refused by onnxruntime when run
    x = helper.make_tensor_value_info("x", TensorProto.FLOAT, ["N", 4])
    y = helper.make_tensor_value_info("y", TensorProto.FLOAT, None)
    shape = helper.make_tensor("shape", TensorProto.INT64, [2], [1, 7])
    graph = helper.make_graph([helper.make_node("Reshape", ["x", "shape"], ["y"])], "g", [x], [y], [shape])
    model = helper.make_model(graph, opset_imports=[helper.make_opsetid("", 17)])
    model.ir_version = 8
    onnx.save(model, str(path))


def test_an_onnxruntime_failure_is_one_line_naming_the_file(tmp_path):
    from nas.export.verify import onnxruntime_logits

    path = tmp_path / "model.int8.onnx"
    _model_that_fails_at_run_time(path)
    with pytest.raises(ExportVerificationError) as info:
        onnxruntime_logits(path, np.zeros((2, 4), np.float32))
    msg = str(info.value)
    assert msg.startswith(f"{path}: onnxruntime cannot run it: ") and "\n" not in msg


def test_a_collapsed_step_size_is_refused_with_the_quantizer_and_the_learning_rate():
    from nas.export.exporter import _check_no_collapsed_step

    before = {"act_quant_84": 0.027, "act_quant_85": 0.0112, "dead": 1e-8}
    _check_no_collapsed_step(before, {"act_quant_84": 0.031, "act_quant_85": 0.0009, "dead": 1e-8}, 0.02)
    with pytest.raises(
        ExportVerificationError, match=r"quantizer act_quant_85 from 0.0112 to 1e-08 \(learning rate 0.05"
    ):
        _check_no_collapsed_step(before, {"act_quant_84": 0.03, "act_quant_85": 1e-8, "dead": 1e-8}, 0.05)


def test_the_fp32_file_of_a_fine_tuned_export_holds_the_fine_tuned_weights():
    import torch
    from torch import nn

    from nas.export.exporter import _with_tuned_weights
    from quant import prepare

    torch.manual_seed(0)
    fp32 = nn.Sequential(nn.Conv2d(1, 4, 3), nn.BatchNorm2d(4), nn.ReLU(), nn.Flatten(), nn.Linear(4 * 6 * 6, 3)).eval()
    qmodel = prepare(fp32)
    with torch.no_grad():  # what a fine-tune does: the float weights move
        for p in qmodel.parameters():
            p.add_(0.5)
    tuned = _with_tuned_weights(fp32, qmodel)
    assert torch.equal(tuned[0].weight, qmodel.state_dict()["0.weight"])
    assert torch.equal(tuned[4].bias, qmodel.state_dict()["4.bias"])
    assert not torch.equal(tuned[0].weight, fp32[0].weight)  # the extracted model itself is untouched
    assert not tuned.training
