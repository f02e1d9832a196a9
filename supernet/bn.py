"""Batch-norm recalibration.

The running statistics a weight-sharing supernet keeps are a blend over every subnet it
trained; a subnet must re-estimate its own before it is evaluated or deployed. This resets the
statistics of every batch norm and re-accumulates them as exact averages (``momentum=None``)
over a few training batches, everything else in evaluation mode (dropout off, quantizers
frozen), without gradients.
"""
from __future__ import annotations

from collections.abc import Iterable

import torch
import torch.nn as nn

__all__ = ["recalibrate_bn"]


@torch.no_grad()
def recalibrate_bn(model: nn.Module, batches: Iterable[torch.Tensor], *, max_batches: int | None = None) -> nn.Module:
    """Re-estimate the running statistics of every batch norm of ``model`` on ``batches``.

    ``batches`` yields input tensors (or ``(inputs, targets)`` pairs). Returns ``model``, left
    in the mode it was in.
    """
    bns = [m for m in model.modules() if isinstance(m, nn.modules.batchnorm._BatchNorm)]
    if not bns:
        return model
    was_training = model.training
    saved = [(m, m.momentum) for m in bns]
    model.eval()
    device = next((t.device for t in model.parameters()), torch.device("cpu"))
    for m in bns:
        m.reset_running_stats()
        m.momentum = None
        m.train()
    try:
        for i, batch in enumerate(batches):
            if max_batches is not None and i >= max_batches:
                break
            x = batch[0] if isinstance(batch, (tuple, list)) else batch
            model(x.to(device))
    finally:
        for m, momentum in saved:
            m.momentum = momentum
        model.train(was_training)
    return model
