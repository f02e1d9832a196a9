"""Post-training calibration and quantizer bookkeeping."""

from __future__ import annotations

from collections.abc import Iterable, Iterator
from typing import Any

import numpy as np
import torch
import torch.nn as nn

from quant.errors import NotCalibratedError, QuantError
from quant.fake_quant import ActFakeQuant, QuantConv2d, QuantLinear, WeightFakeQuant

__all__ = [
    "act_quantizers",
    "calibrate",
    "check_calibrated",
    "init_weight_scales",
    "iter_batches",
    "quantized_layers",
    "set_fake_quant",
]


def act_quantizers(model: nn.Module) -> Iterator[tuple[str, ActFakeQuant]]:
    """``(name, quantizer)`` for every activation quantizer of ``model``."""
    for name, m in model.named_modules():
        if isinstance(m, ActFakeQuant):
            yield name, m


def quantized_layers(model: nn.Module) -> Iterator[tuple[str, QuantConv2d | QuantLinear]]:
    """``(name, layer)`` for every layer with a weight quantizer."""
    for name, m in model.named_modules():
        if isinstance(m, (QuantConv2d, QuantLinear)):
            yield name, m


def set_fake_quant(model: nn.Module, enabled: bool) -> None:
    """Switch every quantizer of ``model`` between fake quantization and float pass-through."""
    for m in model.modules():
        if isinstance(m, (ActFakeQuant, WeightFakeQuant)):
            m.fake_quant_enabled = enabled


def init_weight_scales(model: nn.Module) -> None:
    """(Re)compute every weight quantizer's step sizes from the current weights."""
    for _, layer in quantized_layers(model):
        layer.weight_quant.init_from(layer.weight)


def iter_batches(data: Any, batch_size: int = 256) -> Iterator[torch.Tensor]:
    """Input batches from a tensor / array (split into batches), or an iterable of batches.

    An iterable may yield tensors, arrays, or ``(inputs, targets, ...)`` tuples (a DataLoader).
    """
    if isinstance(data, np.ndarray):
        data = torch.from_numpy(data)
    if isinstance(data, torch.Tensor):
        for i in range(0, data.shape[0], batch_size):
            yield data[i : i + batch_size].float()
        return
    if not isinstance(data, Iterable):
        raise QuantError(
            f"calibration data must be a tensor, an array or an iterable of batches, got {type(data).__name__}"
        )
    for batch in data:
        if isinstance(batch, (tuple, list)):
            batch = batch[0]
        if isinstance(batch, np.ndarray):
            batch = torch.from_numpy(batch)
        if not isinstance(batch, torch.Tensor):
            raise QuantError(
                f"calibration batches must be tensors or (inputs, targets) pairs, got {type(batch).__name__}"
            )
        yield batch.float()


@torch.no_grad()
def calibrate(
    model: nn.Module,
    data: Any,
    *,
    num_batches: int | None = None,
    batch_size: int = 256,
    weights: bool = True,
) -> nn.Module:
    """Post-training calibration of a prepared model; returns the model (calibrated in place).

    Runs ``data`` through the model in evaluation mode with every activation quantizer observing
    float values (quantization off, batch norms on running statistics), then sets each
    quantizer's step size and zero point from its observer (min-max, percentile or MSE, as the
    scheme says). With ``weights=True`` the weight step sizes are recomputed from the weights.
    """
    quantizers = [q for _, q in act_quantizers(model)]
    if not quantizers and not any(True for _ in quantized_layers(model)):
        raise QuantError(f"{type(model).__name__} has no quantizers: call quant.prepare(model, scheme) first")
    was_training = model.training
    model.eval()
    for q in quantizers:
        q.observer.reset()
        q.observing = True
    seen = 0
    try:
        for i, x in enumerate(iter_batches(data, batch_size)):
            if num_batches is not None and i >= num_batches:
                break
            device = next((p.device for p in model.parameters()), torch.device("cpu"))
            model(x.to(device))
            seen += 1
    finally:
        for q in quantizers:
            q.observing = False
        model.train(was_training)
    if seen == 0:
        raise QuantError("calibration data is empty")
    for q in quantizers:
        q.compute_qparams()
    if weights:
        init_weight_scales(model)
    return model


def check_calibrated(model: nn.Module) -> None:
    """Raise :class:`NotCalibratedError` naming the first quantizer that has no range yet."""
    for name, q in act_quantizers(model):
        if not q.is_initialized:
            raise NotCalibratedError(
                f"activation quantizer {name!r} was never calibrated: run quant.calibrate(model, data) or QAT before export"
            )
