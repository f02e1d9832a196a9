"""ONNX graph tools for latency models (torch-free: needs only ``onnx``).

* :func:`strip_quant_io` turns a QDQ model with float input/output into one that takes and
  returns the *uint8 tensors* of its quantized input/output: what a block sees inside a
  whole INT8 network, where consecutive blocks pass quantized tensors to each other.
* :func:`channels_last_io` gives such a block NHWC inputs and outputs: the layout in which
  onnxruntime's CPU INT8 kernels pass tensors to each other inside a network.
* :func:`make_quantize_model` is the network's input quantization (float → uint8).
* :func:`make_overhead_model` is a trivial model whose run time is the engine's fixed
  per-call overhead.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

from hwnas.opset import DEFAULT_OPSET

__all__ = ["channels_last_io", "make_overhead_model", "make_quantize_model", "model_io", "strip_quant_io"]


def _onnx() -> Any:
    import onnx

    return onnx


def _make_model(graph: Any) -> Any:
    """A model of ``graph`` at :data:`hwnas.opset.DEFAULT_OPSET` (the exporter's opset) with the
    lowest IR version that opset allows.

    ``helper.make_model`` stamps the IR version of the installed ``onnx``, which an older
    onnxruntime on the device refuses ("Unsupported model IR version") although it runs the
    opset; the torch and onnxruntime-quantized models of a folder carry the opset's IR already.
    """
    from onnx import helper

    opsets = [helper.make_opsetid("", DEFAULT_OPSET)]
    return helper.make_model(graph, opset_imports=opsets, ir_version=helper.find_min_ir_version_for(opsets))


def model_io(model: Any) -> tuple[list[tuple[str, list[int], int]], list[tuple[str, list[int], int]]]:
    """``(inputs, outputs)`` as ``(name, shape, onnx elem type)`` lists."""

    def info(v: Any) -> tuple[str, list[int], int]:
        t = v.type.tensor_type
        return v.name, [d.dim_value for d in t.shape.dim], t.elem_type

    inits = {i.name for i in model.graph.initializer}
    return [info(v) for v in model.graph.input if v.name not in inits], [info(v) for v in model.graph.output]


def strip_quant_io(model: Any, strip_input: bool = True, strip_output: bool = True) -> Any:
    """Remove the input ``QuantizeLinear`` and/or the output ``DequantizeLinear`` of a QDQ model.

    The graph input then is the quantized tensor (uint8/int8) that fed the removed
    QuantizeLinear's consumers, and the graph output is the quantized tensor the removed
    DequantizeLinear read. Raises ValueError when the model does not have that structure.
    """
    onnx = _onnx()
    from onnx import helper

    m = onnx.ModelProto()
    m.CopyFrom(model)
    g = m.graph
    if strip_input:
        inp = g.input[0]
        consumers = [n for n in g.node if inp.name in n.input]
        if len(consumers) != 1 or consumers[0].op_type != "QuantizeLinear":
            raise ValueError(
                f"input {inp.name!r} does not feed exactly one QuantizeLinear "
                f"(consumers: {[n.op_type for n in consumers]})"
            )
        q = consumers[0]
        zp = next((i for i in g.initializer if len(q.input) > 2 and i.name == q.input[2]), None)
        elem = zp.data_type if zp is not None else onnx.TensorProto.UINT8
        shape = [d.dim_value for d in inp.type.tensor_type.shape.dim]
        new_input = helper.make_tensor_value_info(q.output[0], elem, shape)
        g.node.remove(q)
        g.input.remove(inp)
        g.input.insert(0, new_input)
    if strip_output:
        for idx in range(len(g.output)):
            out = g.output[idx]
            producers = [n for n in g.node if out.name in n.output]
            if len(producers) != 1 or producers[0].op_type != "DequantizeLinear":
                raise ValueError(
                    f"output {out.name!r} is not produced by a DequantizeLinear "
                    f"(producer: {[n.op_type for n in producers]})"
                )
            dq = producers[0]
            if any(dq.input[0] == o.name for o in g.output) or any(
                dq.input[0] in n.input for n in g.node if n is not dq
            ):
                raise ValueError(f"output {out.name!r}: its quantized tensor has other consumers")
            qprod = [n for n in g.node if dq.input[0] in n.output]
            zp = next((i for i in g.initializer if len(dq.input) > 2 and i.name == dq.input[2]), None)
            elem = zp.data_type if zp is not None else onnx.TensorProto.UINT8
            shape = [d.dim_value for d in out.type.tensor_type.shape.dim]
            if not qprod:
                raise ValueError(f"output {out.name!r}: no QuantizeLinear before its DequantizeLinear")
            g.node.remove(dq)
            g.output.remove(out)
            g.output.insert(idx, helper.make_tensor_value_info(dq.input[0], elem, shape))
    # drop initializers nothing reads any more (the removed nodes' scales and zero points)
    used = {name for n in g.node for name in n.input}
    for init in [i for i in g.initializer if i.name not in used]:
        g.initializer.remove(init)
    del g.value_info[:]
    onnx.checker.check_model(m)
    return m


def make_quantize_model(
    shape: Sequence[int], scale: float = 0.025, zero_point: int = 128, channels_last: bool = False
) -> Any:
    """``QuantizeLinear`` of a float tensor of ``shape`` to uint8 (the network input's).

    ``channels_last``: the uint8 output is transposed to NHWC, as onnxruntime's CPU INT8
    network does before its first QLinearConv (the ``int8_nhwc`` format)."""
    onnx = _onnx()
    from onnx import TensorProto, helper

    shape = list(shape)
    nodes = [
        helper.make_node(
            "QuantizeLinear", ["input", "scale", "zero_point"], ["quantized" if channels_last else "output"]
        )
    ]
    out_shape = shape
    if channels_last:
        if len(shape) != 4:
            raise ValueError(f"channels_last needs a 4-D input shape, got {shape}")
        nodes.append(helper.make_node("Transpose", ["quantized"], ["output"], perm=[0, 2, 3, 1]))
        out_shape = [shape[0], shape[2], shape[3], shape[1]]
    graph = helper.make_graph(
        nodes,
        "quantize_input",
        [helper.make_tensor_value_info("input", TensorProto.FLOAT, shape)],
        [helper.make_tensor_value_info("output", TensorProto.UINT8, out_shape)],
        initializer=[
            helper.make_tensor("scale", TensorProto.FLOAT, [], [scale]),
            helper.make_tensor("zero_point", TensorProto.UINT8, [], [zero_point]),
        ],
    )
    model = _make_model(graph)
    onnx.checker.check_model(model)
    return model


def channels_last_io(model: Any) -> Any:
    """A copy of ``model`` whose 4-D graph inputs and outputs are NHWC instead of NCHW.

    An explicit ``Transpose`` converts each NHWC input to the NCHW tensor the graph reads, and
    each NCHW output to NHWC. onnxruntime's CPU provider runs its QLinear kernels channels-last
    and inserts the opposite transposes around them; its transpose optimizer cancels the
    pairs, so the block runs exactly as it does inside a whole INT8 network, with no layout
    conversion at its boundaries. Inputs and outputs of other ranks are left alone.
    """
    onnx = _onnx()
    from onnx import helper

    m = onnx.ModelProto()
    m.CopyFrom(model)
    g = m.graph
    inits = {i.name for i in g.initializer}

    def nhwc(value: Any, suffix: str) -> Any | None:
        t = value.type.tensor_type
        dims = [d.dim_value for d in t.shape.dim]
        if len(dims) != 4:
            return None
        return helper.make_tensor_value_info(
            f"{value.name}_{suffix}", t.elem_type, [dims[0], dims[2], dims[3], dims[1]]
        )

    for idx, inp in enumerate(list(g.input)):
        new = None if inp.name in inits else nhwc(inp, "nhwc")
        if new is None:
            continue
        g.node.insert(
            0, helper.make_node("Transpose", [new.name], [inp.name], perm=[0, 3, 1, 2], name=f"{inp.name}_to_nchw")
        )
        g.input.remove(inp)
        g.input.insert(idx, new)
    for idx, out in enumerate(list(g.output)):
        new = nhwc(out, "nhwc")
        if new is None:
            continue
        g.node.append(
            helper.make_node("Transpose", [out.name], [new.name], perm=[0, 2, 3, 1], name=f"{out.name}_to_nhwc")
        )
        g.output.remove(out)
        g.output.insert(idx, new)
    onnx.checker.check_model(m)
    return m


def make_overhead_model(elem_type: str = "uint8") -> Any:
    """A one-element ``Identity``: its latency is the engine's per-call overhead."""
    onnx = _onnx()
    from onnx import TensorProto, helper

    t = {"uint8": TensorProto.UINT8, "int8": TensorProto.INT8, "float32": TensorProto.FLOAT}[elem_type]
    graph = helper.make_graph(
        [helper.make_node("Identity", ["input"], ["output"])],
        "overhead",
        [helper.make_tensor_value_info("input", t, [1])],
        [helper.make_tensor_value_info("output", t, [1])],
    )
    model = _make_model(graph)
    onnx.checker.check_model(model)
    return model
