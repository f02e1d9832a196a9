"""INT8 QDQ models of blocks and networks for latency profiling, made by the exporter that ships.

The latency table must time the graph that ``nas export`` ships. So every INT8 block model and
every calibration network is made by :mod:`quant`, the exporter behind ``nas export``:
``prepare`` → ``calibrate`` → ``export_onnx``. Calibration runs on random normal inputs; scale
values do not change latency, the graph structure does, and this is the shipped structure. Batch
norms first take their statistics from that input (as a trained network's batch norms normalise
its activations), so that a deep random network's activations do not fade to ranges (1e-8) that
an integer kernel refuses.

``int8`` uses the ``ort_cpu`` scheme: u8 asymmetric activations and s8 per-channel weights (what
onnxruntime's CPU kernels prefer). ``int8_sym`` uses ``tensorrt``: s8 symmetric everywhere, zero
point 0. Inside a network, a block's output feeds the next block's integer kernels, so the
exported block also quantizes its output. The classifier, whose output is the network's, does not.

Host side: needs torch and :mod:`quant`. Measuring the exported files needs only onnx and the engine.
"""

from __future__ import annotations

import tempfile
from collections.abc import Sequence
from pathlib import Path
from typing import Any

from hwnas.errors import HwnasError, first_line
from latency_lut.errors import BlockExportError

__all__ = ["QUANTIZATION_NOTE", "QUANT_SCHEMES", "quantize_merge_model", "quantize_module", "settle_batch_norms"]

#: the :mod:`quant` scheme of each INT8 model format
QUANT_SCHEMES: dict[str, str] = {"int8": "ort_cpu", "int8_sym": "tensorrt"}

QUANTIZATION_NOTE = {
    "tool": "hwnas.quant (prepare, calibrate, export_onnx): the exporter of `nas export`",
    "format": "QDQ",
    "weights": "int8, symmetric, per output channel",
    "activations": {"int8": "uint8, asymmetric, per tensor", "int8_sym": "int8, symmetric (zero point 0), per tensor"},
    "schemes": QUANT_SCHEMES,
    "calibration": "batch norms set to, and min-max (the scheme's observer) on, random normal inputs",
    "note": "the graph that `nas export` ships; scale values (random here, trained there) do not change latency",
}


def settle_batch_norms(module: Any, x: Any) -> None:
    """Set every batch norm's running statistics of ``module`` to those of its input on ``x`` (one
    forward pass in training mode, no gradients); the module is left in evaluation mode."""
    import torch

    norms = [m for m in module.modules() if isinstance(m, torch.nn.modules.batchnorm._BatchNorm)]
    if norms and x.shape[0] > 1:
        saved = [m.momentum for m in norms]
        for m in norms:
            m.reset_running_stats()
            m.momentum = None  # a cumulative average: exactly this batch's statistics
        module.train()
        with torch.no_grad():
            module(x)
        for m, mom in zip(norms, saved):
            m.momentum = mom
    module.eval()


def quantize_module(
    module: Any,
    input_shape: Sequence[int],
    fmt: str = "int8",
    *,
    batch: int = 1,
    calibration_samples: int = 4,
    seed: int = 0,
    quantize_output: bool = False,
) -> Any:
    """The INT8 QDQ ONNX model (a ModelProto, float input and output) of ``module`` for inputs
    ``[batch, *input_shape]``, as :mod:`quant` exports it with the scheme of ``fmt``.

    ``quantize_output``: the model's output is quantized too (a block whose output a whole
    network feeds to an integer kernel). Raises :class:`BlockExportError` (one line)."""
    import onnx
    import torch

    from quant import calibrate, export_onnx, prepare

    if fmt not in QUANT_SCHEMES:
        raise BlockExportError(f"unknown INT8 model format {fmt!r} (formats: {', '.join(QUANT_SCHEMES)})")
    gen = torch.Generator().manual_seed(seed)
    data = [torch.randn(calibration_samples, *input_shape, generator=gen)]
    try:
        settle_batch_norms(module, data[0])
        qmodel = prepare(module.eval(), QUANT_SCHEMES[fmt], quantize_output=quantize_output)
        with torch.no_grad():
            calibrate(qmodel, data)
        with tempfile.TemporaryDirectory(prefix="hwnas-quant-") as tmp:
            path = export_onnx(qmodel, Path(tmp) / "int8.onnx", (batch, *input_shape), dynamic_batch=False)
            return onnx.load(str(path))
    except HwnasError as exc:
        raise BlockExportError(f"INT8 export ({QUANT_SCHEMES[fmt]} scheme) failed: {first_line(exc)}") from None
    except Exception as exc:  # noqa: BLE001 - anything torch raises on a module it cannot trace or run
        raise BlockExportError(
            f"INT8 export ({QUANT_SCHEMES[fmt]} scheme) failed for {type(module).__name__}: {first_line(exc)}"
        ) from None


def quantize_merge_model(model: Any, fmt: str = "int8") -> Any:
    """The INT8 QDQ model of a merge (``Add`` chains and ``Concat``: no weights, nothing to trace
    or calibrate), with the quantization :mod:`quant` gives a merge inside a network: every merged
    tensor, every partial sum and the result pass through QuantizeLinear → DequantizeLinear (an
    add or a concatenation is an integer kernel that reads and writes quantized tensors). Float
    input and output; returns a new ModelProto."""
    import numpy as np
    import onnx
    from onnx import helper, numpy_helper

    if fmt not in QUANT_SCHEMES:
        raise BlockExportError(f"unknown INT8 model format {fmt!r} (formats: {', '.join(QUANT_SCHEMES)})")
    m = onnx.ModelProto()
    m.CopyFrom(model)
    g = m.graph
    zero = np.array(128, np.uint8) if fmt == "int8" else np.array(0, np.int8)
    g.initializer.extend(
        [numpy_helper.from_array(np.array(0.05, np.float32), "qscale"), numpy_helper.from_array(zero, "qzero")]
    )
    outputs = {o.name for o in g.output}
    tensors = [i.name for i in g.input] + [o for n in g.node for o in n.output]
    qdq = []
    for t in tensors:
        inner = f"{t}_float" if t in outputs else t
        if t in outputs:  # the producer writes ``inner``; the graph output keeps its name
            for n in g.node:
                n.output[:] = [inner if o == t else o for o in n.output]
        dq = t if t in outputs else f"{t}_dq"
        if t not in outputs:
            for n in g.node:
                n.input[:] = [dq if i == t else i for i in n.input]
        qdq += [
            helper.make_node("QuantizeLinear", [inner, "qscale", "qzero"], [f"{t}_q"], name=f"{t}_QuantizeLinear"),
            helper.make_node("DequantizeLinear", [f"{t}_q", "qscale", "qzero"], [dq], name=f"{t}_DequantizeLinear"),
        ]
    nodes = list(g.node)
    del g.node[:]
    g.node.extend(qdq + nodes)
    return _toposorted(m)


def _toposorted(model: Any) -> Any:
    """``model`` with its nodes in an order where each node follows the producers of its inputs."""
    g = model.graph
    ready = {i.name for i in g.input} | {i.name for i in g.initializer} | {""}
    pending = list(g.node)
    ordered = []
    while pending:
        rest = []
        for n in pending:
            if all(i in ready for i in n.input):
                ordered.append(n)
                ready.update(n.output)
            else:
                rest.append(n)
        if len(rest) == len(pending):
            raise BlockExportError(
                f"merge model {g.name!r}: inputs no node produces: {sorted({i for n in rest for i in n.input} - ready)}"
            )
        pending = rest
    del g.node[:]
    g.node.extend(ordered)
    return model
