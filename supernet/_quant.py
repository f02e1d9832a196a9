"""Fake quantization inside the supernet, through :mod:`quant`'s public API.

Training runs each block of a subnet as its own fake-quantized module: the standalone block
wrapped in a probe (``block`` then a dummy consumer) and prepared by :func:`quant.prepare`.
The probe makes ``prepare`` place the quantizer of the block's output where it would place it in
a whole network (at the producer, with the producer's flags: non-negative after ReLU, capped
after ReLU6); the quantizer of the block input is dropped (the previous block's output quantizer
covers it), except for the first block, whose input is the network input. Chaining the blocks
therefore computes exactly what ``quant.prepare(space.build(arch))`` computes.

Activation quantizers are keyed by the tensor they quantize, named inside the block
(``dw.act``, ``project.bn``, ``:add#0`` for the residual add, ``se:mul#0``, ...), so that
the same tensor of the same path shares one learned step size (and LSQ+ zero point) in every
subnet; the extracted network is mapped back with the same names.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass

import torch
import torch.fx as fx
import torch.nn as nn

from quant.fake_quant import ActFakeQuant
from quant.prepare import prepare
from quant.scheme import QuantScheme
from supernet._layout import split_block_name

__all__ = [
    "AQ_TENSORS",
    "INPUT_KEY",
    "PreparedBlock",
    "act_quantizer_keys",
    "aq_key",
    "network_split",
    "prepare_block",
    "probe_split",
]

INPUT_KEY = "@input"
AQ_TENSORS = ("scale", "zero_point", "initialized")
"""The tensors of an activation quantizer that the supernet stores (observer statistics only
serve calibration of extracted subnets)."""
Split = Callable[[str], "tuple[int | None, str]"]


class _Probe(nn.Module):
    def __init__(self, block: nn.Module, sink: bool) -> None:
        super().__init__()
        self.block = block
        self.has_sink = sink
        if sink:
            self.sink = nn.Conv2d(1, 1, 1, device="meta")

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        y = self.block(x)
        return self.sink(y) if self.has_sink else y


def probe_split(name: str) -> tuple[int | None, str]:
    """Split a module name of a prepared probe: ``block.dw.act`` -> ``(0, "dw.act")``."""
    if name == "block":
        return 0, ""
    if name.startswith("block."):
        return 0, name[len("block.") :]
    return None, name


network_split = split_block_name
"""Split a module name of a prepared network: ``blocks.6.dw.act`` -> ``(6, "dw.act")``."""


def aq_key(path: str, rel: str, local: str) -> str:
    """The supernet's storage key of tensor ``local`` of the activation quantizer of ``rel`` (the
    quantized tensor inside the block at ``path``; the network input is shared by every path)."""
    if rel == INPUT_KEY:
        return f"@net/aq[{INPUT_KEY}].{local}"
    return f"{path}/aq[{rel}].{local}"


def _fname(node: fx.Node) -> str:
    t = node.target
    return t if isinstance(t, str) else getattr(t, "__name__", str(t))


def act_quantizer_keys(gm: fx.GraphModule, split: Split) -> dict[str, tuple[int | None, str]]:
    """``act_quant_N -> (block index, name of the quantized tensor inside the block)``.

    The network input is ``(None, "@input")``.
    """
    modules = dict(gm.named_modules())
    ordinal: dict[tuple[int | None, str, str], int] = {}
    fn_names: dict[fx.Node, tuple[int | None, str]] = {}
    for n in gm.graph.nodes:
        if n.op in ("call_function", "call_method"):
            stack = n.meta.get("nn_module_stack")
            if stack:
                idx, scope = split(list(stack.keys())[-1])
                k = (idx, scope, _fname(n))
                i = ordinal.get(k, 0)
                ordinal[k] = i + 1
                fn_names[n] = (idx, f"{scope}:{_fname(n)}#{i}")

    def describe(node: fx.Node) -> tuple[int | None, str]:
        if node.op == "placeholder":
            return None, INPUT_KEY
        if node.op == "call_module":
            if isinstance(modules.get(str(node.target)), ActFakeQuant):
                return describe(node.args[0])  # type: ignore[arg-type]
            return split(str(node.target))
        if node in fn_names:
            return fn_names[node]
        first = next((a for a in node.args if isinstance(a, fx.Node)), None)
        if first is None:
            return None, _fname(node)
        idx, inner = describe(first)
        return idx, f"{_fname(node)}({inner})"

    out: dict[str, tuple[int | None, str]] = {}
    for n in gm.graph.nodes:
        if n.op == "call_module" and isinstance(modules.get(str(n.target)), ActFakeQuant):
            out[str(n.target)] = describe(n.args[0])
    return out


@dataclass(frozen=True)
class PreparedBlock:
    """One block prepared by :func:`prepare_block`."""

    module: fx.GraphModule
    #: the dropped quantizers of the block's input: uncalled submodules, which the supernet feeds
    #: with the tensors of the quantizer that produced the input
    input_quants: tuple[str, ...]
    #: the quantizer of the block's output (None: the block's output is not quantized)
    output_quant: str | None


def prepare_block(block: nn.Module, scheme: QuantScheme, *, first: bool, last: bool) -> PreparedBlock:
    """The fake-quantized form of one block as it sits in a network (see the module docstring)."""
    gm = prepare(_Probe(block, sink=not last), scheme, inplace=True)
    modules = dict(gm.named_modules())
    graph = gm.graph
    for n in list(graph.nodes):
        if n.op == "call_module" and n.target == "sink":
            n.replace_all_uses_with(n.args[0])
            graph.erase_node(n)
    dropped: list[str] = []
    if not first:
        for n in list(graph.nodes):
            if (
                n.op == "call_module"
                and isinstance(modules.get(str(n.target)), ActFakeQuant)
                and n.args
                and getattr(n.args[0], "op", None) == "placeholder"
            ):
                dropped.append(str(n.target))
                n.replace_all_uses_with(n.args[0])
                graph.erase_node(n)
    graph.lint()
    gm.delete_all_unused_submodules()
    # The dropped input quantizers stay as (uncalled) submodules: the block's first layers are
    # bound to them for the deployed-bias emulation, and the supernet gives them, call by call,
    # the tensors of the quantizer that produced the block's input (the previous block's output).
    for name in dropped:
        gm.add_submodule(name, modules[name])
    out = next(n for n in graph.nodes if n.op == "output").args[0]
    output_quant = (
        str(out.target)
        if isinstance(out, fx.Node)
        and out.op == "call_module"
        and isinstance(modules.get(str(out.target)), ActFakeQuant)
        else None
    )
    gm.recompile()
    return PreparedBlock(gm, tuple(dropped), output_quant)
