"""Empirical bias correction after post-training calibration.

Quantizing a layer's weights shifts the mean of its output channels (the rounding errors of a
channel's weights do not cancel on average), and the shifts of earlier layers add up. The
empirical correction of Nagel et al. (2019, "Data-Free Quantization Through Weight
Equalization and Bias Correction", section 4.2) measures, on calibration data, each output
channel's mean in the fake-quant model and in the float model and moves the layer's bias by
the difference. Layers are corrected in execution order, each seeing the corrected layers
before it, so that a layer also absorbs the shift that arrives from upstream.

The corrected bias is an ordinary float bias: the exported model carries it as its int32 bias,
so onnxruntime computes what the corrected fake-quant model computes.
"""

from __future__ import annotations

from itertools import islice
from typing import Any

import torch
import torch.nn as nn

from quant.calibrate import check_calibrated, iter_batches, quantized_layers, set_fake_quant
from quant.errors import QuantError
from quant.fake_quant import ActFakeQuant, QuantConv2d, QuantLinear, WeightFakeQuant

__all__ = ["correct_bias"]


def _channel_sum(y: torch.Tensor, conv: bool) -> tuple[torch.Tensor, int]:
    """Per-channel sum and the count of values summed (channels: dim 1 of a conv output, the
    last dim of a linear one)."""
    y = y.detach().double()
    if conv:
        return y.sum(dim=[d for d in range(y.dim()) if d != 1]), y.numel() // y.shape[1]
    return y.reshape(-1, y.shape[-1]).sum(dim=0), y.numel() // y.shape[-1]


class _MeanRecorder:
    """Forward hooks that accumulate the per-channel output means of chosen layers."""

    def __init__(self, layers: dict[str, QuantConv2d | QuantLinear]) -> None:
        self.sums: dict[str, torch.Tensor] = {}
        self.counts: dict[str, int] = {}
        self.order: list[str] = []  # execution order of the first call of each layer
        self.handles = [
            layer.register_forward_hook(self._hook(name, isinstance(layer, QuantConv2d)))
            for name, layer in layers.items()
        ]

    def _hook(self, name: str, conv: bool) -> Any:
        def hook(_module: nn.Module, _inputs: Any, output: torch.Tensor) -> None:
            s, n = _channel_sum(output, conv)
            if name not in self.sums:
                self.order.append(name)
                self.sums[name], self.counts[name] = s, 0
            else:
                self.sums[name] = self.sums[name] + s
            self.counts[name] += n

        return hook

    def mean(self, name: str) -> torch.Tensor:
        return self.sums[name] / max(self.counts[name], 1)

    def close(self) -> None:
        for h in self.handles:
            h.remove()


def _run(model: nn.Module, batches: list[torch.Tensor]) -> None:
    device = next((p.device for p in model.parameters()), torch.device("cpu"))
    for x in batches:
        model(x.to(device))


def _shift_bias(layer: QuantConv2d | QuantLinear, delta: torch.Tensor) -> None:
    """Lower the layer's output mean by ``delta`` (per channel): through its own bias, else
    through the batch norm it feeds (``bn(z - d) = bn(z) - f·d``), else through a new bias."""
    delta = delta.to(layer.weight.dtype).to(layer.weight.device)
    if layer.bias is not None:
        layer.bias.data.sub_(delta)
        return
    bn = layer.__dict__.get("_bn")
    if bn is not None and bn.bias is not None:
        from quant.functional import bn_fold_factors

        f, _ = bn_fold_factors(bn)
        bn.bias.data.sub_(f.detach() * delta)
        return
    layer.bias = nn.Parameter(-delta.clone())


@torch.no_grad()
def correct_bias(
    model: nn.Module, data: Any, *, num_batches: int | None = 4, batch_size: int = 256
) -> dict[str, float]:
    """Empirical bias correction of a calibrated, prepared model (in place).

    ``data`` is calibration data as for :func:`quant.calibrate` (the first ``num_batches``
    batches of ``batch_size`` are used; ``None``: all). Returns, per corrected layer in execution
    order, the largest absolute shift applied to one of its output channels, relative to the
    largest absolute channel mean of its float output.
    """
    check_calibrated(model)
    layers = dict(quantized_layers(model))
    if not layers:
        raise QuantError(f"{type(model).__name__} has no quantized layers: call quant.prepare(model, scheme) first")
    batches = list(islice(iter_batches(data, batch_size), num_batches))
    if not batches:
        raise QuantError("bias correction data is empty")
    was_training = model.training
    enabled = {m: m.fake_quant_enabled for m in model.modules() if isinstance(m, (ActFakeQuant, WeightFakeQuant))}
    model.eval()
    shifts: dict[str, float] = {}
    try:
        float_means = _MeanRecorder(layers)
        try:
            set_fake_quant(model, False)
            _run(model, batches)
        finally:
            float_means.close()
            for m, on in enabled.items():  # the quantized passes: the quantizers as the caller set them
                m.fake_quant_enabled = on
        for name in float_means.order:
            quant_means = _MeanRecorder({name: layers[name]})
            try:
                _run(model, batches)
            finally:
                quant_means.close()
            ref = float_means.mean(name)
            delta = quant_means.mean(name) - ref
            _shift_bias(layers[name], delta)
            shifts[name] = float(delta.abs().max() / ref.abs().max().clamp_min(1e-12))
    finally:
        model.train(was_training)
    return shifts
