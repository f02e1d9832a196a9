"""ONNX graph tools for latency models (torch-free: needs only ``onnx``).

* :func:`strip_quant_io` turns a QDQ model with float input/output into one that takes and
  returns the *uint8 tensors* of its quantized input/output: what a block sees inside a
  whole INT8 network, where consecutive blocks pass quantized tensors to each other.
* :func:`channels_last_io` gives such a block NHWC inputs and outputs: the layout in which
  onnxruntime's CPU INT8 kernels pass tensors to each other inside a network.
* :func:`make_quantize_model` is the network's input quantization (float → uint8).
* :func:`make_merge_model` is a graph node's merge (a sum or a concatenation of several
  float inputs), exported as torch exports a network's merge.
* :func:`make_overhead_model` is a trivial model whose run time is the engine's fixed
  per-call overhead.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

from hwnas.opset import DEFAULT_OPSET

__all__ = [
    "channels_last_io",
    "make_merge_model",
    "make_overhead_model",
    "make_quantize_model",
    "model_io",
    "nhwc_average_pool",
    "strip_quant_io",
]


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
    DequantizeLinear read. Every graph input is stripped (a merge model has several).

    An input that also (or only) feeds float ops, as a block starting with a ReLU does (the
    quantizer leaves the ReLU's input in float), becomes a quantized input read through a
    ``DequantizeLinear``: what the network runs after the previous part's quantized output
    (with the quantization of the input's QuantizeLinear consumers, else ``scale`` 0.025 and the
    activations' default zero point). Raises ValueError when the model does not have that
    structure (an input feeding nothing, an output not made by a DequantizeLinear).
    """
    onnx = _onnx()
    from onnx import helper

    m = onnx.ModelProto()
    m.CopyFrom(model)
    g = m.graph
    if strip_input:
        inits = {i.name for i in g.initializer}
        for idx, inp in enumerate(list(g.input)):  # every graph input (a merge model has several)
            if inp.name in inits:
                continue
            consumers = [n for n in g.node if inp.name in n.input]
            if len(consumers) != 1 or consumers[0].op_type != "QuantizeLinear":
                _dequantize_input(g, idx, inp, consumers)
                continue
            q = consumers[0]
            zp = next((i for i in g.initializer if len(q.input) > 2 and i.name == q.input[2]), None)
            elem = zp.data_type if zp is not None else onnx.TensorProto.UINT8
            shape = [d.dim_value for d in inp.type.tensor_type.shape.dim]
            new_input = helper.make_tensor_value_info(q.output[0], elem, shape)
            g.node.remove(q)
            g.input.remove(inp)
            g.input.insert(idx, new_input)
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


def _dequantize_input(g: Any, idx: int, inp: Any, consumers: list[Any]) -> None:
    """Make the float graph input ``inp`` (at ``idx``) a quantized input: its QuantizeLinear
    consumers are removed (their readers read the input), its other consumers read it through a
    new DequantizeLinear with the same quantization (see :func:`strip_quant_io`)."""
    onnx = _onnx()
    from onnx import helper

    quants = [n for n in consumers if n.op_type == "QuantizeLinear"]
    others = [n for n in consumers if n.op_type != "QuantizeLinear"]
    if not others or not any(n.op_type == "QuantizeLinear" for n in g.node):  # not a QDQ block
        raise ValueError(
            f"input {inp.name!r} does not feed exactly one QuantizeLinear (consumers: {[n.op_type for n in consumers]})"
        )
    inits = {i.name: i for i in g.initializer}
    zp_type = next(
        (
            inits[n.input[2]].data_type
            for n in g.node
            if n.op_type == "QuantizeLinear" and len(n.input) > 2 and n.input[2] in inits
        ),
        onnx.TensorProto.UINT8,
    )
    if quants and len(quants[0].input) > 2:
        scale, zero_point = quants[0].input[1], quants[0].input[2]
    else:
        scale, zero_point = f"{inp.name}_input_scale", f"{inp.name}_input_zero_point"
        default_zp = 128 if zp_type == onnx.TensorProto.UINT8 else 0
        g.initializer.extend(
            [
                helper.make_tensor(scale, onnx.TensorProto.FLOAT, [], [0.025]),
                helper.make_tensor(zero_point, zp_type, [], [default_zp]),
            ]
        )
    quantized = f"{inp.name}_quantized"
    for q in quants:  # their readers read the quantized input
        for n in g.node:
            for i, x in enumerate(n.input):
                if x == q.output[0]:
                    n.input[i] = quantized
        g.node.remove(q)
    dequantized = f"{inp.name}_dequantized"
    for n in others:
        for i, x in enumerate(n.input):
            if x == inp.name:
                n.input[i] = dequantized
    g.node.insert(
        0,
        helper.make_node(
            "DequantizeLinear", [quantized, scale, zero_point], [dequantized], name=f"{inp.name}_DequantizeLinear"
        ),
    )
    shape = [d.dim_value for d in inp.type.tensor_type.shape.dim]
    g.input.remove(inp)
    g.input.insert(idx, helper.make_tensor_value_info(quantized, zp_type, shape))


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


def make_merge_model(mode: str, inputs: Sequence[Sequence[int]], batch: int = 1) -> Any:
    """The FP32 model of a merge of ``inputs`` (``(channels, height, width)`` each): ``add`` is a
    chain of binary ``Add`` nodes (``((x0 + x1) + x2) ...``, as torch exports a sum of several
    tensors), ``concat`` one ``Concat`` along channels. Inputs ``input0..``, output ``output``."""
    onnx = _onnx()
    from onnx import TensorProto, helper

    shapes = [[int(batch), *map(int, s)] for s in inputs]
    if mode not in ("add", "concat") or len(shapes) < 2:
        raise ValueError(f"a merge is add or concat of at least two inputs, got {mode!r} of {len(shapes)}")
    names = [f"input{i}" for i in range(len(shapes))]
    nodes = []
    if mode == "add":
        current = names[0]
        for i, name in enumerate(names[1:], start=1):
            out = "output" if i == len(names) - 1 else f"sum{i}"
            nodes.append(helper.make_node("Add", [current, name], [out], name=f"add{i}"))
            current = out
        out_shape = shapes[0]
    else:
        nodes.append(helper.make_node("Concat", names, ["output"], axis=1, name="concat"))
        out_shape = [shapes[0][0], sum(s[1] for s in shapes), *shapes[0][2:]]
    graph = helper.make_graph(
        nodes,
        f"merge_{mode}",
        [helper.make_tensor_value_info(n, TensorProto.FLOAT, s) for n, s in zip(names, shapes)],
        [helper.make_tensor_value_info("output", TensorProto.FLOAT, out_shape)],
    )
    model = _make_model(graph)
    onnx.checker.check_model(model)
    return model


def nhwc_average_pool(model: Any) -> Any:
    """An ``int8_nhwc`` block that is one quantized average pool, as the NHWC kernel
    onnxruntime's CPU network runs (``com.microsoft.QLinearAveragePool``, ``channels_last=1``).

    Inside a whole INT8 network onnxruntime runs a pool whose input comes from an NHWC kernel
    channels-last; alone, between the transposes of :func:`channels_last_io`, its layout
    transformer leaves it NCHW and the block would time two transposes and the NCHW kernel
    (about twice the network's pool at 16×32×32 on an AVX-512 VNNI Xeon). A model of any other
    structure is returned unchanged.
    """
    onnx = _onnx()
    from onnx import helper

    g = model.graph
    ops = [n.op_type for n in g.node]
    if ops != ["Transpose", "DequantizeLinear", "AveragePool", "QuantizeLinear", "Transpose"]:
        return model
    t_in, dq, pool, q, t_out = g.node
    if [n.input[0] for n in (dq, pool, q, t_out)] != [t_in.output[0], dq.output[0], pool.output[0], q.output[0]]:
        return model
    attrs = {a.name: helper.get_attribute_value(a) for a in pool.attribute}
    node = helper.make_node(
        "QLinearAveragePool",
        [t_in.input[0], dq.input[1], dq.input[2], q.input[1], q.input[2]],
        [t_out.output[0]],
        name=f"{pool.name or 'pool'}_nhwc",
        domain="com.microsoft",
        channels_last=1,
        **{
            k: v for k, v in attrs.items() if k in ("kernel_shape", "pads", "strides", "count_include_pad", "ceil_mode")
        },
    )
    m = onnx.ModelProto()
    m.CopyFrom(model)
    del m.graph.node[:]
    m.graph.node.extend([node])
    if not any(o.domain == "com.microsoft" for o in m.opset_import):
        m.opset_import.extend([helper.make_opsetid("com.microsoft", 1)])
    return m
