from __future__ import annotations

import copy

import numpy as np
import onnx
import pytest
import torch
import torch.nn as nn
from onnx import numpy_helper

from hwnas.errors import HwnasError
from quant import (
    TENSORRT,
    NotCalibratedError,
    QuantError,
    calibrate,
    export_fp32_onnx,
    export_onnx,
    host_ort_scheme,
    integer_op_report,
    ort_predict,
    prepare,
)
from quant.calibrate import act_quantizers
from quant.training import TrainConfig, predict, qat_finetune

from .quant_models import ConvBnAct, TinyNet, randomize_bn


def _inits(path) -> dict[str, np.ndarray]:  # noqa: ANN001
    g = onnx.load(str(path)).graph
    return {i.name: numpy_helper.to_array(i) for i in g.initializer}


def _nodes(path, op: str) -> list[onnx.NodeProto]:  # noqa: ANN001
    return [n for n in onnx.load(str(path)).graph.node if n.op_type == op]


def _activation_qparams(path) -> set[tuple[float, int]]:  # noqa: ANN001
    inits = _inits(path)
    out = set()
    for n in _nodes(path, "QuantizeLinear"):
        out.add((float(inits[n.input[1]]), int(inits[n.input[2]])))
    return out


def _agreement(a: np.ndarray, b: np.ndarray) -> float:
    return float((a.argmax(1) == b.argmax(1)).mean() * 100)


def test_exporting_a_never_calibrated_model_is_a_clear_error(tmp_path) -> None:  # noqa: ANN001
    q = prepare(TinyNet())
    with pytest.raises(NotCalibratedError, match="was never calibrated: run quant.calibrate") as info:
        export_onnx(q, tmp_path / "m.onnx", (1, 1, 8, 8))
    assert isinstance(info.value, HwnasError) and "\n" not in str(info.value)
    assert not (tmp_path / "m.onnx").exists()


def test_exporting_a_float_model_points_to_prepare(tmp_path) -> None:  # noqa: ANN001
    with pytest.raises(QuantError, match="call quant.prepare"):
        export_onnx(TinyNet(), tmp_path / "m.onnx", (1, 1, 8, 8))
    with pytest.raises(QuantError, match="example_input"):
        export_onnx(calibrate(prepare(TinyNet()), torch.randn(4, 1, 8, 8)), tmp_path / "m.onnx")


def test_qdq_graph_has_int8_weights_int32_biases_and_the_models_own_scales(
    tmp_path, trained_digits_net, digits
) -> None:  # noqa: ANN001
    xtr, _, _, _ = digits
    q = calibrate(prepare(trained_digits_net), xtr[:256])
    path = export_onnx(q, tmp_path / "ptq.onnx", (1, 1, 8, 8))
    inits = _inits(path)
    dq_inputs = [n.input[0] for n in _nodes(path, "DequantizeLinear") if n.input[0] in inits]
    weights = [inits[i] for i in dq_inputs if inits[i].dtype == np.int8]
    biases = [inits[i] for i in dq_inputs if inits[i].dtype == np.int32]
    assert len(weights) == sum(1 for m in q.modules() if hasattr(m, "weight_quant"))
    assert all(np.abs(w).max() <= 127 for w in weights)
    assert len(biases) == len(weights)  # every conv / linear has a (folded) bias
    assert not _nodes(path, "BatchNormalization")
    expected = {q_.qparams() for _, q_ in act_quantizers(q)}
    exported = _activation_qparams(path)
    assert {(round(s, 7), z) for s, z in exported} == {(round(s, 7), z) for s, z in expected}


def test_exported_scales_are_the_qat_trained_ones(tmp_path, trained_digits_net, digits) -> None:  # noqa: ANN001
    xtr, ytr, _, _ = digits
    ptq = calibrate(prepare(trained_digits_net), xtr[:256])
    qat = copy.deepcopy(ptq)
    qat_finetune(qat, xtr[:256], ytr[:256], TrainConfig(epochs=1, lr=0.01, batch_size=64, weight_decay=0.0))
    before = {q_.qparams() for _, q_ in act_quantizers(ptq)}
    after = {q_.qparams() for _, q_ in act_quantizers(qat)}
    assert before != after
    path = export_onnx(qat, tmp_path / "qat.onnx", (1, 1, 8, 8))
    assert {(round(s, 7), z) for s, z in _activation_qparams(path)} == {(round(s, 7), z) for s, z in after}


# onnxruntime's x86 kernels without VNNI saturate int16 pair sums with ±127 weights, so the exactness
# check uses the host's preset (±63 weights there); TensorRT does not saturate, but ORT runs its model here.
_HOST = host_ort_scheme()
_TRT_ON_ORT = TENSORRT.replace(weight_qmax=_HOST.weight_qmax)


@pytest.mark.parametrize("scheme", [_HOST, _TRT_ON_ORT], ids=["ort_cpu", "tensorrt"])
def test_onnxruntime_int8_agrees_with_torch_fake_quant(tmp_path, trained_digits_net, digits, scheme) -> None:  # noqa: ANN001
    xtr, _, xte, yte = digits
    q = calibrate(prepare(trained_digits_net, scheme), xtr[:512])
    path = export_onnx(q, tmp_path / f"{scheme.name}.onnx", (1, 1, 8, 8))
    torch_logits, ort_logits = predict(q, xte), ort_predict(path, xte)
    assert _agreement(torch_logits, ort_logits) >= 99.5
    if scheme.activation_symmetric:
        zps = {z for _, z in _activation_qparams(path)}
        assert zps == {0}
        assert all(numpy_helper.to_array(i).dtype != np.uint8 for i in onnx.load(str(path)).graph.initializer)


def test_ort_runs_integer_kernels_for_convs_adds_and_pools(tmp_path, trained_digits_net, digits) -> None:  # noqa: ANN001
    xtr, _, _, _ = digits
    q = calibrate(prepare(trained_digits_net), xtr[:256])
    rep = integer_op_report(export_onnx(q, tmp_path / "m.onnx", (1, 1, 8, 8)))
    assert rep.all_convs_integer, rep.summary()
    assert rep.integer_convs == sum(1 for m in q.modules() if isinstance(m, nn.Conv2d))
    for op in ("QLinearAdd", "QLinearMul", "QLinearGlobalAveragePool"):
        assert rep.op_counts.get(op, 0) >= 1, rep.summary()
    assert rep.float_gemms == 0, rep.summary()
    fp32 = integer_op_report(export_fp32_onnx(trained_digits_net, tmp_path / "f.onnx", (1, 1, 8, 8)))
    assert fp32.integer_ops == 0 and fp32.float_convs > 0


def _check_ort_matches(q: nn.Module, x: torch.Tensor, path) -> None:  # noqa: ANN001
    ours = predict(q, x)
    theirs = ort_predict(path, x.numpy())
    assert np.isfinite(theirs).all()
    out_scale = max(float(np.abs(ours).max()), 1e-3) / 50
    assert np.abs(ours - theirs).max() <= out_scale


@pytest.mark.parametrize("bias", [False, True])
def test_zero_range_weights_and_dead_channels(tmp_path, bias: bool) -> None:  # noqa: ANN001
    m = randomize_bn(
        nn.Sequential(ConvBnAct(2, 6, 3, bias=bias), ConvBnAct(6, 6, 3, bias=bias), ConvBnAct(6, 4, 1, bias=bias))
    )
    with torch.no_grad():
        m[0].conv.weight[2] = 0.0  # one dead channel (its BN shift still gives it a value)
        m[1].conv.weight.fill_(0.05)  # zero-range layer: every weight equal
        m[2].conv.weight.zero_()  # an all-zero layer
    q = calibrate(prepare(m, _HOST), torch.randn(32, 2, 6, 6))
    path = export_onnx(q, tmp_path / "z.onnx", (1, 2, 6, 6))
    scales = [v for k, v in _inits(path).items() if v.dtype == np.float32 and v.ndim == 1]
    assert all(np.isfinite(s).all() and (s > 0).all() for s in scales)
    _check_ort_matches(q, torch.randn(8, 2, 6, 6), path)


def test_all_zero_input_tensor(tmp_path) -> None:  # noqa: ANN001
    class Dead(nn.Module):
        def __init__(self) -> None:
            super().__init__()
            self.a = ConvBnAct(1, 4, 3)
            self.b = nn.Conv2d(4, 4, 1)

        def forward(self, x: torch.Tensor) -> torch.Tensor:
            return self.b(self.a(x) * 0.0)

    q = calibrate(prepare(randomize_bn(Dead()), _HOST), torch.randn(8, 1, 5, 5))
    _check_ort_matches(q, torch.randn(4, 1, 5, 5), export_onnx(q, tmp_path / "d.onnx", (1, 1, 5, 5)))


def test_depthwise_and_biased_conv_bn(tmp_path) -> None:  # noqa: ANN001
    m = randomize_bn(
        nn.Sequential(
            ConvBnAct(1, 16, 3, bias=True),
            ConvBnAct(16, 16, 3, groups=16),
            ConvBnAct(16, 16, 5, groups=16, bias=True),
            ConvBnAct(16, 8, 1),
        )
    )
    q = calibrate(prepare(m, _HOST), torch.randn(16, 1, 9, 9))
    path = export_onnx(q, tmp_path / "dw.onnx", (1, 1, 9, 9))
    rep = integer_op_report(path)
    assert rep.integer_convs == 3 and rep.float_convs == 1  # the last conv feeds the float output
    _check_ort_matches(q, torch.randn(4, 1, 9, 9), path)


def test_static_batch_export(tmp_path) -> None:  # noqa: ANN001
    q = calibrate(prepare(TinyNet()), torch.randn(8, 1, 8, 8))
    path = export_onnx(
        q, tmp_path / "s.onnx", torch.randn(2, 1, 8, 8), dynamic_batch=False, input_name="x", output_name="y"
    )
    g = onnx.load(str(path)).graph
    assert g.input[0].name == "x" and g.output[0].name == "y"
    assert g.input[0].type.tensor_type.shape.dim[0].dim_value == 2


class _SupernetStyle(nn.Module):
    """Quantizers placed by hand (as a weight-sharing supernet does), no ``prepare``: still exports."""

    def __init__(self) -> None:
        super().__init__()
        from quant import ActFakeQuant, QuantConv2d

        s = _HOST
        self.qin = ActFakeQuant(s)
        self.conv = QuantConv2d.from_float(nn.Conv2d(1, 8, 3, padding=1, bias=False), s)
        self.bn = nn.BatchNorm2d(8)
        self.act = nn.ReLU()
        self.q1 = ActFakeQuant(s, nonnegative=True)
        self.head = QuantConv2d.from_float(nn.Conv2d(8, 4, 1), s)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.head(self.q1(self.act(self.bn(self.conv(self.qin(x))))))


def test_hand_placed_quantizers_export_with_bn_folded(tmp_path) -> None:  # noqa: ANN001
    m = randomize_bn(_SupernetStyle())
    x = torch.randn(16, 1, 8, 8)
    calibrate(m, x)
    path = export_onnx(m, tmp_path / "s.onnx", (1, 1, 8, 8))
    rep = integer_op_report(path)
    assert rep.integer_convs == 1 and not _nodes(path, "BatchNormalization")
    _check_ort_matches(m, x, path)


def test_a_prepared_model_reloaded_from_a_state_dict_exports_the_same_scales(
    tmp_path, trained_digits_net, digits
) -> None:  # noqa: ANN001
    xtr, _, _, _ = digits
    q = calibrate(prepare(trained_digits_net, _HOST), xtr[:128])
    fresh = prepare(trained_digits_net, _HOST)
    with pytest.raises(NotCalibratedError):
        export_onnx(fresh, tmp_path / "f.onnx", (1, 1, 8, 8))
    fresh.load_state_dict(q.state_dict())
    a = export_onnx(q, tmp_path / "a.onnx", (1, 1, 8, 8))
    b = export_onnx(fresh, tmp_path / "b.onnx", (1, 1, 8, 8))
    assert _activation_qparams(a) == _activation_qparams(b)
