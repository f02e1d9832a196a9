"""Quantization-aware training helpers (LSQ / LSQ+).

After :func:`quant.prepare` and :func:`quant.calibrate` (the LSQ+ initialisation), a prepared
model trains like any module: the step sizes (and LSQ+ zero points) are ``nn.Parameter`` s with
LSQ's gradient scale built into the forward. These helpers set up the optimiser groups and the
usual QAT switches.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import torch
import torch.nn as nn

from quant.fake_quant import ActFakeQuant, WeightFakeQuant

__all__ = [
    "STEP_SIZE_MIN_RATIO",
    "freeze_bn_stats",
    "qat_param_groups",
    "quant_parameters",
    "set_quant_learnable",
    "step_keeping_scales_positive",
    "step_size_parameters",
]

STEP_SIZE_MIN_RATIO = 0.5
"""No optimizer step may shrink a learned step size below this fraction of its previous value."""


def quant_parameters(model: nn.Module) -> list[nn.Parameter]:
    """The quantizers' learnable parameters (step sizes, LSQ+ zero points)."""
    out: list[nn.Parameter] = []
    for m in model.modules():
        if isinstance(m, ActFakeQuant):
            out.append(m.scale)
            if m.learn_zero_point:
                out.append(m.zero_point)
        elif isinstance(m, WeightFakeQuant):
            out.append(m.scale)
    return out


def step_size_parameters(model: nn.Module) -> list[nn.Parameter]:
    """The quantizers' learned step sizes (the parameters that must stay positive)."""
    return [m.scale for m in model.modules() if isinstance(m, (ActFakeQuant, WeightFakeQuant))]


def step_keeping_scales_positive(
    optimizer: torch.optim.Optimizer, scales: Sequence[torch.Tensor], min_ratio: float = STEP_SIZE_MIN_RATIO
) -> None:
    """``optimizer.step()``, then no step size in ``scales`` below ``min_ratio`` times its value
    before the step (a projection onto a trust region of the positive half-line).

    A step size is only meaningful when positive, but a plain SGD step on LSQ's gradient can
    carry it through zero, most easily early in QAT and where one step size covers few elements
    (a 1-channel stem's filters, an SE gate): the forward then clamps it to ``MIN_SCALE``, every
    value quantizes to zero, and the clamp's zero gradient keeps it there for good. Normal
    updates change a step size by far less than half, so they are untouched.
    """
    with torch.no_grad():
        before = [s.detach().clone() for s in scales]
    optimizer.step()
    with torch.no_grad():
        for s, b in zip(scales, before):
            s.copy_(torch.maximum(s, b * min_ratio))


def set_quant_learnable(model: nn.Module, learnable: bool) -> None:
    """Freeze (``False``) or unfreeze the quantizers' parameters."""
    for m in model.modules():
        if isinstance(m, ActFakeQuant):
            m.scale.requires_grad_(learnable)
            m.zero_point.requires_grad_(learnable and m.learn_zero_point)
        elif isinstance(m, WeightFakeQuant):
            m.scale.requires_grad_(learnable)


def qat_param_groups(
    model: nn.Module, lr: float, weight_decay: float = 0.0, quant_lr: float | None = None
) -> list[dict[str, Any]]:
    """Optimiser groups: weights (with decay; none on biases and norms) and quantizer parameters
    (no decay, learning rate ``quant_lr``, default ``lr``)."""
    qids = {id(p) for p in quant_parameters(model)}
    decay: list[nn.Parameter] = []
    no_decay: list[nn.Parameter] = []
    for p in model.parameters():
        if id(p) in qids or not p.requires_grad:
            continue
        (decay if p.dim() > 1 else no_decay).append(p)
    groups: list[dict[str, Any]] = [
        {"params": decay, "lr": lr, "weight_decay": weight_decay},
        {"params": no_decay, "lr": lr, "weight_decay": 0.0},
        {"params": [p for p in quant_parameters(model) if p.requires_grad], "lr": quant_lr or lr, "weight_decay": 0.0},
    ]
    return [g for g in groups if g["params"]]


def freeze_bn_stats(model: nn.Module) -> None:
    """Put every batch norm in evaluation mode (running statistics frozen, used in the forward).

    Common late in QAT so that the folded weights the exporter produces match training exactly.
    Call it after ``model.train()``, which would switch them back.
    """
    for m in model.modules():
        if isinstance(m, nn.modules.batchnorm._BatchNorm):
            m.eval()
