"""Batch-norm recalibration.

The running statistics a weight-sharing supernet keeps are a blend over every subnet it
trained; a subnet must re-estimate its own before it is evaluated or deployed. This resets the
statistics of every batch norm and re-accumulates them as exact averages (``momentum=None``)
over a few training batches, everything else in evaluation mode (dropout off, quantizers
frozen), without gradients.

There is one implementation, :func:`quant.training.recalibrate_bn` (it also serves the training
harness of :mod:`quant`); this module names it where the supernet code looks for it.
"""

from __future__ import annotations

from quant.training import recalibrate_bn

__all__ = ["recalibrate_bn"]
