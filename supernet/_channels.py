"""Channel importance ordering (OFA's re-organisation of the middle channels).

An elastic expand ratio keeps the *leading* channels of a block's hidden (expanded) layer. With
the sandwich rule the leading channels are the ones every subnet trains, so importance builds up
there by itself; :func:`reorder_middle_channels` makes it explicit, as OFA does before training
smaller expand ratios: it sorts the hidden channels of every block by the L1 norm of the weights
that read them (the next conv's input slices), largest first, and permutes every tensor indexed
by those channels (the producing conv, its batch norm and quantizer step sizes, the depthwise
conv, SE, the consuming conv) and the optimizer's momentum with them. The largest subnet
computes exactly the same function afterwards; smaller ones keep the most important channels.
"""

from __future__ import annotations

from typing import Any

import torch

__all__ = ["MIDDLE_GROUPS", "reorder_middle_channels"]

_BN = ("weight", "bias", "running_mean", "running_var")


def _bn(prefix: str) -> list[tuple[str, int]]:
    return [(f"{prefix}.{n}", 0) for n in _BN]


def _conv_out(prefix: str) -> list[tuple[str, int]]:
    return [(f"{prefix}.conv.weight", 0), (f"{prefix}.conv.weight_quant.scale", 0), *_bn(f"{prefix}.bn")]


_SE = [("se.fc1.weight", 1), ("se.fc2.weight", 0), ("se.fc2.bias", 0), ("se.fc2.weight_quant.scale", 0)]

#: op -> list of (hidden-channel group: tensors indexed by it, tensor whose input slices rank them)
MIDDLE_GROUPS: dict[str, list[tuple[list[tuple[str, int]], str]]] = {
    "mbconv": [(_conv_out("expand") + _conv_out("dw") + _SE + [("project.conv.weight", 1)], "project.conv.weight")],
    "fused_mbconv": [(_conv_out("conv") + _SE + [("project.conv.weight", 1)], "project.conv.weight")],
    "resnet_basic": [(_conv_out("conv1") + [("conv2.conv.weight", 1)], "conv2.conv.weight")],
    "resnet_bottleneck": [
        (_conv_out("conv1") + [("conv2.conv.weight", 1)], "conv2.conv.weight"),
        (_conv_out("conv2") + [("conv3.conv.weight", 1)], "conv3.conv.weight"),
    ],
}


@torch.no_grad()
def reorder_middle_channels(net: Any, optimizer: torch.optim.Optimizer | None = None) -> int:
    """Sort the hidden channels of every block of ``net`` (a :class:`~supernet.Supernet`) by
    importance, in place; returns the number of channel groups reordered."""
    done = 0
    for path in net.layout.paths:
        op = net.layout.ops[path]
        groups = MIDDLE_GROUPS.get(op)
        if not groups:
            continue
        if op == "mbconv" and any(
            float(rb.kwargs.get("expand", 1.0)) == 1.0 for rb in net.layout.variants[path].values()
        ):
            continue  # without an expand conv the hidden channels are the block input: not reordered here
        for members, ranker in groups:
            rkey = f"{path}/{ranker}"
            if not net.has(rkey):
                continue
            w = net.tensor(rkey)
            importance = w.abs().sum(dim=tuple(d for d in range(w.dim()) if d != 1))
            order = torch.sort(importance, descending=True, stable=True).indices
            n = order.numel()
            for name, dim in members:
                key = f"{path}/{name}"
                if not net.has(key):
                    continue
                t = net.tensor(key)
                if t.shape[dim] != n:
                    continue
                t.copy_(t.index_select(dim, order.to(t.device)))
                if optimizer is not None and net.is_param(key):
                    st = optimizer.state.get(t)
                    for v in (st or {}).values():
                        if isinstance(v, torch.Tensor) and v.shape == t.shape:
                            v.copy_(v.index_select(dim, order.to(v.device)))
            done += 1
    return done
