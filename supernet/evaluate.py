"""Accuracy of a subnet: FP32 in torch, INT8 as an exported QDQ ONNX model run by onnxruntime."""

from __future__ import annotations

import os
import tempfile
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any

import numpy as np
import torch
import torch.nn as nn

from supernet.data import TensorData
from supernet.model import Supernet

__all__ = ["evaluate_arch", "onnx_accuracy", "torch_accuracy"]


@torch.no_grad()
def torch_accuracy(model: nn.Module, data: TensorData, batch_size: int = 500) -> float:
    """Top-1 accuracy (percent) of ``model`` (evaluation mode) on ``data``."""
    was = model.training
    model.eval()
    device = next((t.device for t in model.parameters()), torch.device("cpu"))
    correct = 0
    try:
        for x, y in data.batches(batch_size):
            correct += int((model(x.to(device)).argmax(1).cpu() == y).sum())
    finally:
        model.train(was)
    return 100.0 * correct / max(1, len(data))


def onnx_accuracy(path: str | os.PathLike[str], data: TensorData, batch_size: int = 500, threads: int = 1) -> float:
    """Top-1 accuracy (percent) of an ONNX model run by onnxruntime (CPU) on ``data``."""
    from quant.ort import ort_predict, ort_session

    sess = ort_session(path, threads=threads)
    correct = 0
    for x, y in data.batches(batch_size):  # streamed data are decoded batch by batch
        logits = ort_predict(sess, x.numpy(), batch_size=batch_size)
        correct += int((np.asarray(logits).argmax(1) == y.numpy()).sum())
    return 100.0 * correct / max(1, len(data))


def evaluate_arch(
    supernet: Supernet,
    arch: Mapping[str, Any],
    test: TensorData,
    calibration: Sequence[torch.Tensor],
    *,
    precision: str = "fp32",
    onnx_path: str | os.PathLike[str] | None = None,
    threads: int = 1,
    batch_size: int = 500,
) -> dict[str, Any]:
    """Extract ``arch``, recalibrate its batch norms on ``calibration`` batches, and measure
    its test accuracy.

    ``precision="fp32"``: the float subnet in torch. ``"int8"``: the subnet with the supernet's
    learned quantization parameters (or, for a supernet trained without quantization, PTQ
    calibration on the same batches), exported by ``quant.export_onnx`` and run by onnxruntime.
    ``"fakequant"``: the fake-quantized subnet in torch (no export). ``batch_size``: images per
    forward pass of the accuracy measurement.
    """
    arch = supernet.validate(arch)
    out: dict[str, Any] = {
        "arch_id": arch.id,
        "precision": precision,
        "num_test": len(test),
        "bn_calibration_images": int(sum(len(b) for b in calibration)),
    }
    if precision == "fp32":
        model = supernet.subnet(arch, quantized=False, bn_batches=calibration)  # batch norms recalibrated
        out["accuracy"] = torch_accuracy(model, test, batch_size)
        out["params"] = sum(p.numel() for p in model.parameters())
        return out
    if precision not in ("int8", "fakequant"):
        raise ValueError(f"unknown precision {precision!r}")
    if supernet.quant_scheme is not None:
        # a quantizer no training step reached (an arch unlike every trained one) is calibrated on
        # the same batches (Supernet.subnet); batch norms are recalibrated
        model = supernet.subnet(arch, quantized=True, bn_batches=calibration)
        out["quantization"] = "qat"
    else:
        from quant.calibrate import calibrate
        from quant.prepare import prepare

        model = prepare(supernet.subnet(arch, quantized=False, bn_batches=calibration), "ort_cpu")
        calibrate(model, list(calibration))
        out["quantization"] = "ptq"
    out["params"] = sum(p.numel() for n, p in model.named_parameters() if "quant" not in n)
    if precision == "fakequant":
        out["accuracy"] = torch_accuracy(model, test, batch_size)
        return out
    from quant.export import export_onnx

    shape = (1, *test.input_shape)
    if onnx_path is not None:
        path = export_onnx(model.cpu(), onnx_path, shape)
        out["accuracy"] = onnx_accuracy(path, test, batch_size, threads=threads)
        out["onnx"] = str(path)
    else:
        with tempfile.TemporaryDirectory() as tmp:
            path = export_onnx(model.cpu(), Path(tmp) / "subnet.int8.onnx", shape)
            out["accuracy"] = onnx_accuracy(path, test, batch_size, threads=threads)
    return out
