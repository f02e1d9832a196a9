"""``prepare(model, scheme)``: turn an ordinary ``nn.Module`` into a fake-quantized one.

The model is traced with torch.fx. Every ``Conv2d`` / ``Linear`` becomes a
:class:`~quant.fake_quant.QuantConv2d` / :class:`~quant.fake_quant.QuantLinear` (weights quantized
per channel), and an :class:`~quant.fake_quant.ActFakeQuant` is inserted once on every tensor
that an integer kernel consumes: inputs of convs, linears, residual adds, SE multiplies,
concatenations and average pools. The quantizer sits at the *producer* (after a conv → BN → act
chain, not between its parts), so all consumers of a tensor share one scale, as in the engines.
Max pools and shape ops reuse their input's quantizer (they do not change the grid). For
activations the target does not fuse (``scheme.fused_activations``), the pre-activation tensor
is quantized too, so that the producing conv still runs as an integer kernel; so is a tensor that a
fused activation reads beside other readers (an engine fuses the activation into its producer
only when it is the producer's one reader).

Batch norms stay in the graph (QAT trains with them, supernets recalibrate them); the exporter
folds them exactly. Spatial means (``x.mean((2, 3), keepdim=True)``, as SE modules write them)
become ``adaptive_avg_pool2d`` so that they export as ``GlobalAveragePool`` (integer in ORT).
"""

from __future__ import annotations

import copy
import operator

import torch
import torch.fx as fx
import torch.nn as nn
import torch.nn.functional as F

from quant._graph import (
    NONNEGATIVE_ACTIVATIONS,
    activation_name,
    module_of,
    node_kind,
    non_tensor_nodes,
    symbolic_trace,
    tensor_args,
)
from quant.errors import UnsupportedModelError
from quant.fake_quant import ActFakeQuant, QuantConv2d, QuantLinear
from quant.scheme import ORT_CPU, QuantScheme, get_scheme

__all__ = ["QUANT_SCHEME_ATTR", "is_prepared", "prepare", "scheme_of"]

QUANT_SCHEME_ATTR = "_hwnas_quant_scheme"
_INT_CONSUMERS = {"add", "mul", "cat", "avgpool"}
_SAME_SCALE = {"maxpool", "pass"}
_INT_PRODUCERS = {"conv", "linear", "bn", "add", "mul", "cat", "avgpool"}


def is_prepared(model: nn.Module) -> bool:
    """Whether ``model`` holds fake-quant modules (was returned by :func:`prepare`)."""
    return any(isinstance(m, (ActFakeQuant, QuantConv2d, QuantLinear)) for m in model.modules())


def scheme_of(model: nn.Module) -> QuantScheme | None:
    """The scheme a prepared model was prepared with (``None`` if unknown)."""
    return getattr(model, QUANT_SCHEME_ATTR, None)


def prepare(
    model: nn.Module,
    scheme: QuantScheme | str = ORT_CPU,
    *,
    inplace: bool = False,
    quantize_output: bool = False,
) -> fx.GraphModule:
    """Return a fake-quantized copy of ``model`` for ``scheme`` (a preset name or a scheme).

    The copy is an ``fx.GraphModule``; its quantizers are uninitialized until
    :func:`quant.calibrate` (PTQ) or the first QAT batch. ``inplace=True`` reuses the model's
    modules instead of deep-copying them. ``quantize_output=True`` also quantizes the model's
    output, as a whole network does when the module is one of its blocks and an integer kernel
    reads what it returns (the latency table's block models).
    """
    scheme = get_scheme(scheme)
    if is_prepared(model):
        raise UnsupportedModelError(f"{type(model).__name__} is already prepared for quantization")
    src = model if inplace else copy.deepcopy(model)
    was_training = src.training
    gm = symbolic_trace(src)
    _disable_inplace(gm)
    _drop_identities(gm)
    _spatial_means_to_pools(gm)
    _swap_layers(gm, scheme)
    _insert_act_quantizers(gm, scheme, quantize_output)
    _bind_layers(gm)
    device = next((t.device for t in src.parameters()), None)
    if device is not None and device.type not in ("cpu", "meta"):
        gm.to(device)  # the new quantizers are created on the CPU; a meta model keeps them there
    gm.graph.lint()
    gm.recompile()
    setattr(gm, QUANT_SCHEME_ATTR, scheme)
    gm.train(was_training)
    return gm


def _disable_inplace(gm: fx.GraphModule) -> None:
    for m in gm.modules():
        if hasattr(m, "inplace") and isinstance(m.inplace, bool):
            m.inplace = False
    for n in gm.graph.nodes:
        if n.op == "call_function" and n.kwargs.get("inplace"):
            n.kwargs = {**n.kwargs, "inplace": False}
        if n.op == "call_function" and n.target in (operator.iadd, operator.imul):
            # fx records ``x += y`` on the value it returns; treat it out of place when x has no other reader
            x = n.args[0]
            if isinstance(x, fx.Node) and len(x.users) == 1:
                n.target = operator.add if n.target is operator.iadd else operator.mul


def _drop_identities(gm: fx.GraphModule) -> None:
    modules = dict(gm.named_modules())
    for n in list(gm.graph.nodes):
        if isinstance(module_of(n, modules), nn.Identity) and n.args and isinstance(n.args[0], fx.Node):
            n.replace_all_uses_with(n.args[0])
            gm.graph.erase_node(n)
    gm.delete_all_unused_submodules()


def _spatial_dims(node: fx.Node) -> tuple[bool, bool]:
    """``(is_spatial_mean, keepdim)`` for a ``mean`` over dims (2, 3) / (-2, -1)."""
    dims = node.args[1] if len(node.args) > 1 else node.kwargs.get("dim")
    keep = node.args[2] if len(node.args) > 2 else node.kwargs.get("keepdim", False)
    if isinstance(dims, (list, tuple)) and set(dims) in ({2, 3}, {-1, -2}) and not node.kwargs.get("dtype"):
        return True, bool(keep)
    return False, False


def _spatial_means_to_pools(gm: fx.GraphModule) -> None:
    for n in list(gm.graph.nodes):
        is_mean = (n.op == "call_method" and n.target == "mean") or (n.op == "call_function" and n.target is torch.mean)
        if not is_mean or not n.args or not isinstance(n.args[0], fx.Node):
            continue
        spatial, keep = _spatial_dims(n)
        if not spatial:
            continue
        with gm.graph.inserting_after(n):
            pool = gm.graph.call_function(F.adaptive_avg_pool2d, (n.args[0], 1))
            new: fx.Node = pool
            if not keep:
                with gm.graph.inserting_after(pool):
                    new = gm.graph.call_function(torch.flatten, (pool, -3))
        n.replace_all_uses_with(new)
        gm.graph.erase_node(n)


def _set_submodule(root: nn.Module, name: str, module: nn.Module) -> None:
    parent_name, _, attr = name.rpartition(".")
    parent = root.get_submodule(parent_name) if parent_name else root
    setattr(parent, attr, module)


_FUNCTIONAL_LAYERS = {F.conv1d: "conv1d", F.conv2d: "conv2d", F.conv3d: "conv3d", F.linear: "linear"}


def _swap_layers(gm: fx.GraphModule, scheme: QuantScheme) -> None:
    for n in gm.graph.nodes:
        if n.op == "call_function" and n.target in _FUNCTIONAL_LAYERS:
            raise UnsupportedModelError(
                f"functional {_FUNCTIONAL_LAYERS[n.target]} at {n.name!r} cannot be quantized: use nn.Conv2d / nn.Linear modules"
            )
    for name, m in list(gm.named_modules()):
        if type(m) is nn.Conv2d:
            if m.padding_mode != "zeros":
                raise UnsupportedModelError(f"{name}: Conv2d with padding_mode={m.padding_mode!r} is not supported")
            _set_submodule(gm, name, QuantConv2d.from_float(m, scheme))
        elif type(m) is nn.Linear:
            _set_submodule(gm, name, QuantLinear.from_float(m, scheme))
        elif isinstance(m, (nn.Conv2d, nn.Linear)) and not isinstance(m, (QuantConv2d, QuantLinear)):
            raise UnsupportedModelError(
                f"{name}: unsupported layer type {type(m).__name__} (only plain Conv2d / Linear)"
            )


def _insert_act_quantizers(gm: fx.GraphModule, scheme: QuantScheme, quantize_output: bool = False) -> None:
    graph = gm.graph
    modules = dict(gm.named_modules())
    non_tensor = non_tensor_nodes(graph)
    nodes = list(graph.nodes)
    kinds = {n: node_kind(n, modules, non_tensor) for n in nodes}

    def wants_quantized_input(user: fx.Node, producer: fx.Node, need: dict[fx.Node, bool]) -> bool:
        k = kinds[user]
        if k == "output":
            return quantize_output
        if k in ("conv", "linear"):
            return bool(user.args) and user.args[0] is producer
        if k in _INT_CONSUMERS:
            return True
        if k == "act":
            if kinds[producer] not in _INT_PRODUCERS:
                return False
            # a fused activation folds into its producer only as that producer's one reader; a tensor
            # read by several (a graph cell's node feeding two edges) must be quantized where it is
            # made, or the engine runs the producer in float
            return activation_name(user, modules) not in scheme.fused_activations or len(producer.users) > 1
        if k in _SAME_SCALE:
            return bool(user.args) and user.args[0] is producer and need.get(user, False)
        # a float op (a cell's ``none`` edge, x · 0) reading an integer kernel's output: quantize that
        # output, or the kernel runs in float for this reader's sake (not a classifier's logits: an
        # integer GEMM may give float outputs, and a softmax after it keeps its float logits)
        return k == "other" and user not in non_tensor and kinds[producer] in _INT_PRODUCERS - {"linear"}

    need: dict[fx.Node, bool] = {}
    for n in reversed(nodes):
        if n in non_tensor:
            need[n] = False
            continue
        need[n] = any(wants_quantized_input(u, n, need) for u in n.users)

    quantizer_of: dict[fx.Node, str] = {}
    nonneg: dict[fx.Node, bool] = {}
    count = 0
    for n in nodes:
        k = kinds[n]
        act = activation_name(n, modules) if k == "act" else None
        ins = tensor_args(n)
        if act is not None:
            nonneg[n] = act in NONNEGATIVE_ACTIVATIONS
        elif k in _SAME_SCALE | {"avgpool"} and ins:
            nonneg[n] = nonneg.get(ins[0], False)
        elif k == "cat":
            nonneg[n] = bool(ins) and all(nonneg.get(a, False) for a in ins)
        else:
            nonneg[n] = False
        if not need.get(n) or k == "output":
            continue
        if k in _SAME_SCALE and ins and ins[0] in quantizer_of:
            target = quantizer_of[ins[0]]
        else:
            target = f"act_quant_{count}"
            count += 1
            q = ActFakeQuant(scheme, nonnegative=nonneg[n], max_value=6.0 if act == "relu6" else None)
            gm.add_submodule(target, q)
        with graph.inserting_after(n):
            qnode = graph.call_module(target, (n,))
        n.replace_all_uses_with(qnode, delete_user_cb=lambda u, q=qnode: u is not q)
        quantizer_of[n] = quantizer_of[qnode] = target
        nonneg[qnode] = nonneg[n]


def _bind_layers(gm: fx.GraphModule) -> None:
    """Tell every quantized layer its input quantizer and following batch norm (deployed bias)."""
    modules = dict(gm.named_modules())
    for n in gm.graph.nodes:
        layer = module_of(n, modules)
        if not isinstance(layer, (QuantConv2d, QuantLinear)) or not n.args or not isinstance(n.args[0], fx.Node):
            continue
        aq = module_of(n.args[0], modules)
        users = list(n.users)
        bn = module_of(users[0], modules) if len(users) == 1 else None
        layer.bind(
            aq if isinstance(aq, ActFakeQuant) else None,
            bn if isinstance(layer, QuantConv2d) and isinstance(bn, nn.BatchNorm2d) else None,
        )
