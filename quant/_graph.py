"""torch.fx helpers shared by :mod:`quant.prepare` and :mod:`quant.fold`: tracing and node kinds."""

from __future__ import annotations

import operator
from typing import Any

import torch
import torch.fx as fx
import torch.nn as nn
import torch.nn.functional as F

from quant.errors import UnsupportedModelError

__all__ = [
    "NONNEGATIVE_ACTIVATIONS",
    "activation_name",
    "module_of",
    "node_kind",
    "non_tensor_nodes",
    "symbolic_trace",
    "tensor_args",
]

_ACT_MODULES: dict[type[nn.Module], str] = {
    nn.ReLU: "relu",
    nn.ReLU6: "relu6",
    nn.Hardswish: "hardswish",
    nn.Hardsigmoid: "hardsigmoid",
    nn.SiLU: "silu",
    nn.Sigmoid: "sigmoid",
    nn.GELU: "gelu",
    nn.Tanh: "tanh",
    nn.LeakyReLU: "leaky_relu",
}
_ACT_FUNCTIONS: dict[Any, str] = {
    F.relu: "relu",
    torch.relu: "relu",
    F.relu6: "relu6",
    F.hardswish: "hardswish",
    F.hardsigmoid: "hardsigmoid",
    F.silu: "silu",
    torch.sigmoid: "sigmoid",
    F.sigmoid: "sigmoid",
    F.gelu: "gelu",
    torch.tanh: "tanh",
    F.tanh: "tanh",
    F.leaky_relu: "leaky_relu",
}
_ACT_METHODS = {"relu": "relu", "relu_": "relu", "sigmoid": "sigmoid", "tanh": "tanh"}

_ADD = {operator.add, operator.iadd, torch.add}
_MUL = {operator.mul, operator.imul, torch.mul}
_CAT = {torch.cat, torch.concat}
_AVGPOOL_MODULES = (nn.AvgPool2d, nn.AdaptiveAvgPool2d)
_AVGPOOL_FUNCTIONS = {F.avg_pool2d, F.adaptive_avg_pool2d}
_MAXPOOL_MODULES = (nn.MaxPool2d, nn.AdaptiveMaxPool2d)
_MAXPOOL_FUNCTIONS = {F.max_pool2d, F.adaptive_max_pool2d}
_PASS_MODULES = (nn.Flatten, nn.Dropout, nn.Identity, nn.Unflatten)
_PASS_FUNCTIONS = {torch.flatten, torch.reshape, torch.squeeze, torch.unsqueeze, F.dropout, operator.getitem}
_PASS_METHODS = {"flatten", "reshape", "view", "squeeze", "unsqueeze", "contiguous", "__getitem__"}
_NON_TENSOR_METHODS = {"size", "dim", "numel", "item", "tolist"}

NONNEGATIVE_ACTIVATIONS = frozenset({"relu", "relu6", "sigmoid", "hardsigmoid"})


def _leaf_activation_types() -> dict[type[nn.Module], str]:
    """timm's own activation modules, traced as leaves like torch's."""
    extra: dict[type[nn.Module], str] = {}
    try:
        from timm.layers import activations as ta
    except ImportError:  # pragma: no cover - timm is a dependency
        return extra
    for name, act in (
        ("Swish", "silu"),
        ("HardSwish", "hardswish"),
        ("HardSigmoid", "hardsigmoid"),
        ("Sigmoid", "sigmoid"),
        ("Tanh", "tanh"),
        ("GELU", "gelu"),
    ):
        cls = getattr(ta, name, None)
        if isinstance(cls, type) and issubclass(cls, nn.Module):
            extra[cls] = act
    return extra


_ACT_MODULES.update(_leaf_activation_types())


#: A module class that sets this class attribute true is a leaf of the tracer (called, not traced
#: through): the fake quantizers of :mod:`quant.fake_quant` do, so that this module need not import them.
FX_LEAF_ATTR = "fx_leaf"


class _Tracer(fx.Tracer):
    def is_leaf_module(self, m: nn.Module, module_qualified_name: str) -> bool:
        if type(m) in _ACT_MODULES or isinstance(m, (nn.Conv2d, nn.Linear)) or getattr(type(m), FX_LEAF_ATTR, False):
            return True  # conv / linear subclasses too: prepare must see them, not their functional body
        return super().is_leaf_module(m, module_qualified_name)


def symbolic_trace(model: nn.Module) -> fx.GraphModule:
    """Trace ``model`` with torch.fx, turning a failure into a one-line :class:`UnsupportedModelError`."""
    if isinstance(model, fx.GraphModule):
        return model
    try:
        graph = _Tracer().trace(model)
    except Exception as exc:  # noqa: BLE001 - any tracing failure means "cannot quantize this model"
        first = str(exc).strip().splitlines()[0] if str(exc).strip() else type(exc).__name__
        raise UnsupportedModelError(
            f"cannot trace {type(model).__name__} with torch.fx (data-dependent control flow?): {first}"
        ) from None
    return fx.GraphModule(model, graph, type(model).__name__)


def module_of(node: fx.Node, modules: dict[str, nn.Module]) -> nn.Module | None:
    """The module a ``call_module`` node calls, else ``None``."""
    if node.op == "call_module":
        return modules.get(str(node.target))
    return None


def activation_name(node: fx.Node, modules: dict[str, nn.Module]) -> str | None:
    """The activation a node applies (``"relu"``, ``"hardswish"``...), or ``None``."""
    m = module_of(node, modules)
    if m is not None:
        name = _ACT_MODULES.get(type(m))
        if name == "relu6" or (isinstance(m, nn.Hardtanh) and (m.min_val, m.max_val) == (0.0, 6.0)):
            return "relu6"
        return name
    if node.op == "call_function":
        return _ACT_FUNCTIONS.get(node.target)
    if node.op == "call_method":
        return _ACT_METHODS.get(str(node.target))
    return None


def tensor_args(node: fx.Node) -> list[fx.Node]:
    """The fx-node arguments of ``node`` (flattening a list argument, as ``torch.cat`` takes)."""
    out: list[fx.Node] = []
    for a in node.args:
        if isinstance(a, fx.Node):
            out.append(a)
        elif isinstance(a, (list, tuple)):
            out.extend(x for x in a if isinstance(x, fx.Node))
    return out


def node_kind(node: fx.Node, modules: dict[str, nn.Module], non_tensor: set[fx.Node]) -> str:
    """Classify a node for quantizer placement.

    ``conv`` / ``linear`` / ``bn`` / ``act`` / ``add`` / ``mul`` / ``cat`` / ``avgpool``: ops whose
    tensor inputs the engines quantize; ``maxpool`` and ``pass`` (shape ops, dropout): ops whose
    output keeps the input's quantization; ``other``: everything else (stays float).
    """
    if node.op == "placeholder":
        return "input"
    if node.op == "output":
        return "output"
    if node in non_tensor:
        return "other"
    m = module_of(node, modules)
    if m is not None:
        if isinstance(m, nn.Conv2d):
            return "conv"
        if isinstance(m, nn.Linear):
            return "linear"
        if isinstance(m, nn.BatchNorm2d):
            return "bn"
        if activation_name(node, modules) is not None:
            return "act"
        if isinstance(m, _AVGPOOL_MODULES):
            return "avgpool"
        if isinstance(m, _MAXPOOL_MODULES):
            return "maxpool"
        if isinstance(m, _PASS_MODULES):
            return "pass"
        return "other"
    if activation_name(node, modules) is not None:
        return "act"
    target = node.target
    if node.op == "call_function":
        binary = [a for a in node.args[:2] if isinstance(a, fx.Node) and a not in non_tensor]
        if target in _ADD and len(binary) == 2 and not node.kwargs.get("alpha"):
            return "add"
        if target in _MUL and len(binary) == 2:
            return "mul"
        if target in _CAT:
            return "cat"
        if target in _AVGPOOL_FUNCTIONS:
            return "avgpool"
        if target in _MAXPOOL_FUNCTIONS:
            return "maxpool"
        if target in _PASS_FUNCTIONS and node.args and isinstance(node.args[0], fx.Node):
            return "pass"
    if node.op == "call_method":
        binary = [a for a in node.args[:2] if isinstance(a, fx.Node) and a not in non_tensor]
        if target in ("add", "add_", "__add__") and len(binary) == 2:
            return "add"
        if target in ("mul", "mul_", "__mul__") and len(binary) == 2:
            return "mul"
        if target in _PASS_METHODS:
            return "pass"
    return "other"


def non_tensor_nodes(graph: fx.Graph) -> set[fx.Node]:
    """Nodes that (most likely) hold Python values, not tensors: sizes, shapes and arithmetic on them."""
    out: set[fx.Node] = set()
    for n in graph.nodes:
        if n.op == "call_method" and n.target in _NON_TENSOR_METHODS:
            out.add(n)
        elif (
            n.op == "call_function"
            and n.target is getattr
            and len(n.args) > 1
            and n.args[1] in ("shape", "ndim", "dtype", "device")
        ):
            out.add(n)
        elif (
            n.op in ("call_function", "call_method")
            and any(a in out for a in tensor_args(n))
            and not any(a not in out for a in tensor_args(n))
        ):
            out.add(n)
    return out
