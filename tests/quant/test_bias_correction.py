"""Empirical bias correction: channel means of the fake-quant model move to the float ones,
through a conv's bias or the batch norm it feeds, and the INT8 export follows."""

from __future__ import annotations

import copy

import numpy as np
import pytest
import torch
import torch.nn as nn

import quant
from quant.calibrate import quantized_layers
from quant.errors import NotCalibratedError
from quant.training import accuracy, predict

from .quant_models import TinyNet, randomize_bn


def _channel_means(model: nn.Module, layer_name: str, x: torch.Tensor) -> torch.Tensor:
    layer = dict(model.named_modules())[layer_name]
    out = {}
    h = layer.register_forward_hook(lambda _m, _i, y: out.setdefault("y", y))
    with torch.no_grad():
        model(x)
    h.remove()
    y = out["y"]
    return y.mean(dim=[0, 2, 3]) if y.dim() == 4 else y.mean(dim=0)


def _calibrated(scheme: str = "ort_cpu_avx2", seed: int = 0) -> tuple[nn.Module, torch.Tensor]:
    torch.manual_seed(seed)
    model = randomize_bn(TinyNet(), seed)
    x = torch.randn(256, 1, 16, 16, generator=torch.Generator().manual_seed(seed))
    q = quant.prepare(model, scheme)
    quant.calibrate(q, x)
    return q, x


def _observed(q: nn.Module) -> dict[str, str]:
    """For each quantized layer, the module whose output the correction fixes: the batch norm
    the layer feeds, if any (the correction of a conv without bias goes there), else the layer."""
    names = {id(m): n for n, m in q.named_modules()}
    return {
        name: names[id(layer.__dict__["_bn"])] if layer.__dict__.get("_bn") is not None else name
        for name, layer in quantized_layers(q)
    }


def _float_means(q: nn.Module, x: torch.Tensor) -> dict[str, torch.Tensor]:
    quant.set_fake_quant(q, False)
    means = {name: _channel_means(q, out, x) for name, out in _observed(q).items()}
    quant.set_fake_quant(q, True)
    return means


def _mean_errors(q: nn.Module, x: torch.Tensor, ref: dict[str, torch.Tensor]) -> dict[str, float]:
    return {name: float((_channel_means(q, out, x) - ref[name]).abs().max()) for name, out in _observed(q).items()}


def test_quantized_channel_means_move_to_the_float_ones() -> None:
    q, x = _calibrated()
    ref = _float_means(q, x)  # the float model's means: the correction's aim
    before = _mean_errors(q, x, ref)
    shifts = quant.correct_bias(q, x, num_batches=None)
    after = _mean_errors(q, x, ref)
    assert list(shifts) == [n for n, _ in quantized_layers(q)]  # TinyNet runs its layers in module order
    assert sum(after.values()) < 0.1 * sum(before.values())
    # the logits: the last layer's means agree up to the int32 bias rounding
    assert after["fc"] < 0.3 * before["fc"]


def test_a_conv_without_bias_is_corrected_through_its_batch_norm() -> None:
    q, x = _calibrated()
    layers = dict(quantized_layers(q))
    name = next(n for n, layer in layers.items() if layer.bias is None and layer.__dict__.get("_bn") is not None)
    bn_bias = layers[name].__dict__["_bn"].bias.detach().clone()
    quant.correct_bias(q, x)
    assert layers[name].bias is None
    assert not torch.equal(layers[name].__dict__["_bn"].bias, bn_bias)


def test_correction_leaves_the_float_model_and_the_quantizer_states_alone() -> None:
    torch.manual_seed(0)
    model = randomize_bn(TinyNet(), 0)
    state = copy.deepcopy(model.state_dict())
    x = torch.randn(64, 1, 16, 16)
    q = quant.prepare(model, "ort_cpu")
    quant.calibrate(q, x)
    q.train()
    quant.correct_bias(q, x)
    assert q.training
    assert all(m.fake_quant_enabled for m in q.modules() if isinstance(m, (quant.ActFakeQuant, quant.WeightFakeQuant)))
    for k, v in model.state_dict().items():
        assert torch.equal(v, state[k]), k


def test_an_uncalibrated_model_is_a_clear_error() -> None:
    q = quant.prepare(randomize_bn(TinyNet()), "ort_cpu")
    with pytest.raises(NotCalibratedError, match="never calibrated"):
        quant.correct_bias(q, torch.randn(8, 1, 16, 16))


def test_onnxruntime_follows_the_corrected_model(tmp_path, trained_digits_net, digits) -> None:  # noqa: ANN001
    xtr, _, xte, yte = digits
    q = quant.prepare(trained_digits_net, "ort_cpu_avx2")
    quant.calibrate(q, xtr[:512])
    quant.correct_bias(q, xtr[:512])
    path = quant.export_onnx(q, tmp_path / "bc.int8.onnx", (1, *xte.shape[1:]))
    ort_logits = quant.ort_predict(path, xte)
    torch_logits = predict(q, xte)
    agree = float(np.mean(ort_logits.argmax(1) == torch_logits.argmax(1)))
    assert agree >= 0.995
    assert accuracy(ort_logits, yte) >= accuracy(predict(trained_digits_net, xte), yte) - 1.0


class _NoBias(nn.Module):
    def __init__(self) -> None:
        super().__init__()
        self.conv = nn.Conv2d(1, 8, 3, padding=1, bias=False)
        self.fc = nn.Linear(8 * 16 * 16, 10, bias=False)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.fc(torch.relu(self.conv(x)).flatten(1))


def test_a_layer_with_neither_bias_nor_batch_norm_gets_a_bias_that_exports(tmp_path) -> None:  # noqa: ANN001
    torch.manual_seed(0)
    x = torch.randn(128, 1, 16, 16)
    q = quant.prepare(_NoBias().eval(), "ort_cpu_avx2")
    quant.calibrate(q, x)
    ref = _float_means(q, x)
    before = _mean_errors(q, x, ref)
    quant.correct_bias(q, x)
    after = _mean_errors(q, x, ref)
    assert all(layer.bias is not None for _, layer in quantized_layers(q))
    assert after["fc"] < 0.3 * before["fc"]
    path = quant.export_onnx(q, tmp_path / "nobias.int8.onnx", (1, 1, 16, 16))
    ort_logits = quant.ort_predict(path, x.numpy())
    np.testing.assert_allclose(ort_logits, predict(q, x.numpy()), atol=0.05)
