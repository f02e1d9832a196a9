"""FP32 ONNX export of built networks and blocks (opset 17, TorchScript exporter)."""

from __future__ import annotations

import io
import os
import warnings
from collections.abc import Sequence
from pathlib import Path

import torch
import torch.nn as nn

from hwnas.errors import HwnasError

__all__ = ["DEFAULT_OPSET", "export_fp32", "export_fp32_bytes"]

DEFAULT_OPSET = 17


def export_fp32_bytes(
    model: nn.Module,
    input_shape: Sequence[int],
    batch: int = 1,
    opset: int = DEFAULT_OPSET,
    dynamic_batch: bool = False,
) -> bytes:
    """Export ``model`` (put in eval mode) for inputs ``[batch, *input_shape]``; returns the ONNX bytes."""
    model = model.eval()
    dummy = torch.zeros(batch, *input_shape)
    buf = io.BytesIO()
    dynamic_axes = {"input": {0: "batch"}, "output": {0: "batch"}} if dynamic_batch else None
    try:
        with warnings.catch_warnings(), torch.no_grad():
            warnings.simplefilter("ignore")
            torch.onnx.export(
                model,
                (dummy,),
                buf,
                input_names=["input"],
                output_names=["output"],
                opset_version=opset,
                dynamo=False,
                do_constant_folding=True,
                dynamic_axes=dynamic_axes,
            )
    except Exception as exc:  # the exporter raises many types; report one line
        raise HwnasError(
            f"ONNX export failed: {type(exc).__name__}: {str(exc).splitlines()[0] if str(exc) else ''}"
        ) from exc
    return buf.getvalue()


def export_fp32(
    model: nn.Module,
    input_shape: Sequence[int],
    path: str | os.PathLike[str],
    batch: int = 1,
    opset: int = DEFAULT_OPSET,
    dynamic_batch: bool = False,
) -> Path:
    """Export ``model`` to an FP32 ONNX file at ``path`` (parent folders are created)."""
    p = Path(path)
    p.parent.mkdir(parents=True, exist_ok=True)
    p.write_bytes(export_fp32_bytes(model, input_shape, batch, opset, dynamic_batch))
    return p
