"""QDQ ONNX export that carries the model's own (trained or calibrated) scales.

``export_onnx`` folds batch norms into the quantized convs (exactly, on the integer grid), snaps
every weight onto its grid, exports with torch's ONNX exporter (fake-quant ops become
``QuantizeLinear``/``DequantizeLinear``) and finishes the graph the way integer engines expect:

* weights are stored as int8 initializers feeding a per-channel ``DequantizeLinear``;
* conv / gemm biases are stored as int32 with scale ``input_scale · weight_scale`` (zero point 0);
* every activation ``QuantizeLinear`` holds the quantizer's own scale and zero point.

onnxruntime then fuses ``DQ → Conv → Q`` into ``QLinearConv`` (see
:func:`quant.ort.integer_op_report`); TensorRT and OpenVINO read the same explicit QDQ graph.
"""

from __future__ import annotations

import copy
import io
import os
import tempfile
import warnings
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import numpy as np
import onnx
import torch
import torch.fx as fx
import torch.nn as nn
from onnx import helper, numpy_helper

from hwnas.errors import first_line
from hwnas.opset import DEFAULT_OPSET
from quant._graph import symbolic_trace
from quant.calibrate import check_calibrated, quantized_layers
from quant.errors import ExportError, QuantError, UnsupportedModelError
from quant.fake_quant import ActFakeQuant, WeightFakeQuant
from quant.fold import fold_bn, fold_bn_graph
from quant.functional import quantize_weight
from quant.prepare import is_prepared

__all__ = ["DEFAULT_OPSET", "export_fp32_bytes", "export_fp32_onnx", "export_onnx", "finalize_qdq"]

_INT32_MAX = 2**31 - 1


def _example(model: nn.Module, example_input: torch.Tensor | Sequence[int] | None) -> torch.Tensor:
    if example_input is None:
        raise QuantError("export needs example_input: a tensor or an input shape such as (1, 3, 224, 224)")
    if isinstance(example_input, torch.Tensor):
        return example_input.detach().float().cpu()
    shape = tuple(int(d) for d in example_input)
    return torch.zeros(shape)


def _torch_export(
    model: nn.Module,
    x: torch.Tensor,
    path: Path | io.BytesIO,
    *,
    opset: int,
    dynamic_batch: bool,
    input_name: str,
    output_name: str,
) -> None:
    """torch's TorchScript-based exporter (``dynamo=False``): it maps torch's fake-quant ops to
    ``QuantizeLinear``/``DequantizeLinear``; the torch.export-based exporter of torch 2.14 does not.
    The one call of ``torch.onnx.export`` (to a file, or to ``path`` as a buffer)."""
    axes = {input_name: {0: "batch"}, output_name: {0: "batch"}} if dynamic_batch else None
    target: Any = str(path) if isinstance(path, Path) else path  # the TorchScript exporter writes to buffers too
    with warnings.catch_warnings(), torch.no_grad():
        warnings.simplefilter("ignore")
        try:
            torch.onnx.export(
                model,
                (x,),
                target,
                opset_version=opset,
                dynamo=False,
                input_names=[input_name],
                output_names=[output_name],
                dynamic_axes=axes,
                do_constant_folding=True,
            )
        except Exception as exc:  # noqa: BLE001 - report any exporter failure as one line
            raise ExportError(f"torch.onnx.export failed for {type(model).__name__}: {first_line(exc)}") from exc


def export_fp32_bytes(
    model: nn.Module,
    input_shape: Sequence[int],
    batch: int = 1,
    opset: int = DEFAULT_OPSET,
    dynamic_batch: bool = False,
) -> bytes:
    """The FP32 ONNX bytes of ``model`` (put in eval mode) as it is, for inputs
    ``[batch, *input_shape]``: no batch-norm folding of ours (the exporter's constant folding
    still fuses eval-mode batch norms). The per-block models of a latency table are made this way.
    Raises :class:`~quant.errors.ExportError` (one line) when the exporter fails."""
    buf = io.BytesIO()
    x = torch.zeros(batch, *input_shape)
    _torch_export(
        model.eval(), x, buf, opset=opset, dynamic_batch=dynamic_batch, input_name="input", output_name="output"
    )
    return buf.getvalue()


def export_fp32_onnx(
    model: nn.Module,
    path: str | os.PathLike[str],
    example_input: torch.Tensor | Sequence[int] | None = None,
    *,
    opset: int = DEFAULT_OPSET,
    dynamic_batch: bool = True,
    input_name: str = "input",
    output_name: str = "output",
) -> Path:
    """Export the float model (batch norms folded), the reference for accuracy and latency."""
    if is_prepared(model):
        raise QuantError("export_fp32_onnx got a prepared (fake-quantized) model; pass the float model")
    x = _example(model, example_input)
    m: nn.Module
    try:
        m = fold_bn(model.cpu()).eval()
    except UnsupportedModelError:
        m = copy.deepcopy(model).cpu().eval()
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    _torch_export(m, x, path, opset=opset, dynamic_batch=dynamic_batch, input_name=input_name, output_name=output_name)
    return path


def export_onnx(
    model: nn.Module,
    path: str | os.PathLike[str],
    example_input: torch.Tensor | Sequence[int] | None = None,
    *,
    opset: int = DEFAULT_OPSET,
    dynamic_batch: bool = True,
    input_name: str = "input",
    output_name: str = "output",
) -> Path:
    """Export a prepared, calibrated (or QAT-trained) model as a QDQ ONNX file; returns the path.

    ``example_input`` is a tensor or a shape such as ``(1, 1, 28, 28)``; the batch dimension is
    dynamic unless ``dynamic_batch=False``. Raises :class:`~quant.errors.NotCalibratedError` when
    an activation quantizer has no range yet, and :class:`QuantError` for a float model.
    """
    if not is_prepared(model):
        raise QuantError(
            f"{type(model).__name__} has no quantizers: call quant.prepare and quant.calibrate first "
            "(export_fp32_onnx exports a float model)"
        )
    check_calibrated(model)
    x = _example(model, example_input)
    m = copy.deepcopy(model).cpu().eval()
    if not isinstance(m, fx.GraphModule):
        try:
            m = symbolic_trace(m)
        except UnsupportedModelError:
            pass  # export without folding: batch norms stay float ops
    if isinstance(m, fx.GraphModule):
        fold_bn_graph(m)
    with torch.no_grad():
        for _, layer in quantized_layers(m):
            wq = layer.weight_quant
            if not wq.fake_quant_enabled:
                continue
            if not wq.is_initialized:
                wq.init_from(layer.weight)
            if layer.weight.shape[0] != wq.scale.numel():
                raise ExportError(
                    f"{type(layer).__name__}: weight has {layer.weight.shape[0]} output channels, "
                    f"its quantizer {wq.scale.numel()} (extract the subnet before export)"
                )
            scale = wq.effective_scale().float()
            layer.weight.copy_(quantize_weight(layer.weight.float(), scale, wq.qmax))
            wq.scale.data = scale.clone()
    for mod in m.modules():
        if isinstance(mod, (ActFakeQuant, WeightFakeQuant)):
            mod.set_export_mode(True)
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    with tempfile.TemporaryDirectory() as tmp:
        raw = Path(tmp) / "raw.onnx"
        _torch_export(
            m, x, raw, opset=opset, dynamic_batch=dynamic_batch, input_name=input_name, output_name=output_name
        )
        proto = onnx.load(str(raw))
    proto = finalize_qdq(proto)
    onnx.save(proto, str(path))
    return path


# ----------------------------------------------------------------------------------------------
# ONNX post-processing
# ----------------------------------------------------------------------------------------------


def _constants_to_initializers(graph: onnx.GraphProto) -> None:
    keep = []
    for node in graph.node:
        if node.op_type == "Constant" and len(node.attribute) == 1 and node.attribute[0].name == "value":
            t = onnx.TensorProto()
            t.CopyFrom(node.attribute[0].t)
            t.name = node.output[0]
            graph.initializer.append(t)
        else:
            keep.append(node)
    del graph.node[:]
    graph.node.extend(keep)


def _attr(node: onnx.NodeProto, name: str, default: int) -> int:
    for a in node.attribute:
        if a.name == name:
            return int(a.i)
    return default


def _bcast(v: np.ndarray, ndim: int, axis: int) -> np.ndarray:
    if v.ndim == 0 or v.size == 1:
        return v.reshape(())
    shape = [1] * ndim
    shape[axis] = -1
    return v.reshape(shape)


def _unique(graph: onnx.GraphProto, base: str) -> str:
    names = {i.name for i in graph.initializer} | {o for n in graph.node for o in n.output}
    name, k = base, 0
    while name in names:
        k += 1
        name = f"{base}_{k}"
    return name


_FOLDABLE = frozenset(
    {
        "QuantizeLinear",
        "Identity",
        "Cast",
        "Clip",
        "Reshape",
        "Unsqueeze",
        "Squeeze",
        "Transpose",
        "Mul",
        "Div",
        "Add",
        "Sub",
        "Neg",
        "Abs",
        "Max",
        "Min",
        "Round",
        "Floor",
        "Ceil",
    }
)


def _fold_constants(model: onnx.ModelProto) -> None:
    """Evaluate simple nodes whose inputs are all initializers into initializers.

    This turns ``QuantizeLinear(float weight)`` into the int8 weight itself. ``DequantizeLinear``
    is never folded: the engines need it to see a quantized weight.
    """
    from onnx.reference import ReferenceEvaluator

    graph = model.graph
    opset = next((o.version for o in model.opset_import if o.domain in ("", "ai.onnx")), DEFAULT_OPSET)
    inits = {i.name: i for i in graph.initializer}
    changed = True
    while changed:
        changed = False
        keep = []
        for node in graph.node:
            ins = [i for i in node.input if i]
            if node.op_type in _FOLDABLE and node.domain in ("", "ai.onnx") and ins and all(i in inits for i in ins):
                tiny = helper.make_model(
                    helper.make_graph(
                        [node],
                        "fold",
                        [],
                        [helper.make_tensor_value_info(o, onnx.TensorProto.UNDEFINED, None) for o in node.output],
                        [inits[i] for i in ins],
                    ),
                    opset_imports=[helper.make_opsetid("", opset)],
                )
                values = ReferenceEvaluator(tiny).run(None, {})
                for name, v in zip(node.output, values):
                    t = numpy_helper.from_array(np.asarray(v), name)
                    graph.initializer.append(t)
                    inits[name] = t
                changed = True
            else:
                keep.append(node)
        del graph.node[:]
        graph.node.extend(keep)


def finalize_qdq(model: onnx.ModelProto) -> onnx.ModelProto:
    """Turn a raw exported QDQ graph into the deployable form (int8 weights, int32 biases)."""
    graph = model.graph
    _constants_to_initializers(graph)
    _fold_constants(model)
    # weights: constant folding turned Q(float initializer) into int8 initializers feeding DQ
    inits = {i.name: i for i in graph.initializer}
    producers = {o: n for n in graph.node for o in n.output}

    # biases of Conv / Gemm fed by DQ inputs and DQ int8 weights -> int32 + DQ
    new_nodes: list[onnx.NodeProto] = []
    for node in graph.node:
        if node.op_type not in ("Conv", "Gemm") or len(node.input) < 3 or node.input[2] not in inits:
            continue
        xdq, wdq = producers.get(node.input[0]), producers.get(node.input[1])
        if xdq is None or wdq is None or xdq.op_type != "DequantizeLinear" or wdq.op_type != "DequantizeLinear":
            continue
        if wdq.input[0] not in inits or xdq.input[1] not in inits or wdq.input[1] not in inits:
            continue
        if node.op_type == "Gemm" and (_attr(node, "transB", 0) != 1 or _attr(node, "transA", 0) != 0):
            continue
        bias = numpy_helper.to_array(inits[node.input[2]]).astype(np.float32)
        if bias.ndim != 1:
            continue
        sx = numpy_helper.to_array(inits[xdq.input[1]]).astype(np.float32).reshape(())
        sw = numpy_helper.to_array(inits[wdq.input[1]]).astype(np.float32).reshape(-1)
        codes = numpy_helper.to_array(inits[wdq.input[0]])
        if sw.size == bias.size and codes.shape[0] == bias.size:
            # A channel whose codes are all zero outputs its bias alone; its weight step size is
            # free, so choose it to make the int32 bias exact to ~1e-6 (instead of ±input_scale/2).
            dead = ~np.any(codes.reshape(codes.shape[0], -1) != 0, axis=1) & (bias != 0)
            if np.any(dead):
                sw = sw.copy()
                sw[dead] = np.abs(bias[dead]) / (float(sx) * 2.0**20)
                name = _unique(graph, wdq.input[1] + "_dead_channels")
                graph.initializer.append(
                    numpy_helper.from_array(sw.reshape(numpy_helper.to_array(inits[wdq.input[1]]).shape), name)
                )
                inits[name] = graph.initializer[-1]
                wdq.input[1] = name
        sb = (sx * sw).astype(np.float32)
        if sb.size == 1:
            sb = np.full(bias.shape, float(sb[0]), np.float32)
        q = np.rint(bias / sb)
        over = np.abs(q) > _INT32_MAX
        if np.any(over) and sw.size == bias.size and codes.shape[0] == bias.size and codes.dtype == np.int8:
            # A per-channel weight step so small that the bias overflows int32 at input·weight
            # (a channel whose weights are negligible beside its bias): widen that channel's step
            # until its bias fits, and requantize its weight codes at the wider step (onnxruntime's
            # quantizer adjusts such weight scales the same way).
            old_sw, sw = sw, sw.copy()
            sw[over] = np.abs(bias[over]) / (float(sx) * (_INT32_MAX / 2.0))
            flat = codes.reshape(codes.shape[0], -1).astype(np.float64)
            flat[over] = np.clip(np.rint(flat[over] * (old_sw[over] / sw[over])[:, None]), -127, 127)
            for arr, idx, suffix in (
                (flat.astype(np.int8).reshape(codes.shape), 0, "_bias_fit"),
                (sw.reshape(numpy_helper.to_array(inits[wdq.input[1]]).shape), 1, "_bias_fit"),
            ):
                name = _unique(graph, wdq.input[idx] + suffix)
                graph.initializer.append(numpy_helper.from_array(arr, name))
                inits[name] = graph.initializer[-1]
                wdq.input[idx] = name
            sb = (sx * sw).astype(np.float32)
            q = np.rint(bias / sb)
        if np.any(np.abs(q) > _INT32_MAX):
            raise ExportError(
                f"{node.name or node.op_type}: bias does not fit int32 at scale input·weight; recalibrate"
            )
        bname = _unique(graph, node.input[2] + "_int32")
        sname = _unique(graph, node.input[2] + "_scale")
        zname = _unique(graph, node.input[2] + "_zero_point")
        graph.initializer.extend(
            [
                numpy_helper.from_array(q.astype(np.int32), bname),
                numpy_helper.from_array(sb, sname),
                numpy_helper.from_array(np.zeros(bias.shape, np.int32), zname),
            ]
        )
        inits.update({bname: graph.initializer[-3], sname: graph.initializer[-2], zname: graph.initializer[-1]})
        out = _unique(graph, node.input[2] + "_dequantized")
        new_nodes.append(helper.make_node("DequantizeLinear", [bname, sname, zname], [out], name=out, axis=0))
        node.input[2] = out
    if new_nodes:
        nodes = new_nodes + list(graph.node)
        del graph.node[:]
        graph.node.extend(nodes)

    # drop initializers nobody reads
    used = {i for n in graph.node for i in n.input} | {o.name for o in graph.output}
    keep_inits = [i for i in graph.initializer if i.name in used]
    del graph.initializer[:]
    graph.initializer.extend(keep_inits)
    try:
        onnx.checker.check_model(model)
    except onnx.checker.ValidationError as exc:
        raise ExportError(f"exported QDQ model is invalid: {first_line(exc)}") from None
    return model
