"""Batch-norm folding: ``BN(conv(x, W) + b)`` becomes ``conv(x, W·f) + (b - μ)·f + β`` with
``f = γ / sqrt(σ² + ε)``.

For a quantized conv the folding is exact on the integer grid: symmetric per-channel codes of
``W·f`` with step ``s·|f|`` are the codes of ``W`` with step ``s`` (times ``sign f``), so a
model trained with BN unfolded (QAT, supernets) exports with the very codes it was trained with.
"""

from __future__ import annotations

import copy

import torch
import torch.fx as fx
import torch.nn as nn

from quant._graph import module_of, symbolic_trace
from quant.fake_quant import QuantConv2d
from quant.functional import bn_fold_factors  # the pure maths; re-exported here

__all__ = ["bn_fold_factors", "fold_bn", "fold_bn_into_conv"]


@torch.no_grad()
def fold_bn_into_conv(conv: nn.Conv2d, bn: nn.BatchNorm2d) -> None:
    """Fold ``bn`` (which follows ``conv``) into ``conv`` in place; a conv without bias gains one.

    For a :class:`~quant.fake_quant.QuantConv2d` the weight step sizes are rescaled by ``|f|`` and
    the weight is snapped so that its codes are exactly the pre-folding codes (times ``sign f``).
    """
    f, shift = bn_fold_factors(bn)
    w = conv.weight
    if isinstance(conv, QuantConv2d) and conv.weight_quant.is_initialized:
        wq = conv.weight_quant
        s_old = wq.effective_scale().detach().clone()
        codes = torch.clamp(torch.round(w / s_old.view(-1, 1, 1, 1)), -wq.qmax, wq.qmax)
        codes = codes * torch.sign(f).view(-1, 1, 1, 1)
        s_new = s_old * f.abs()
        dead = s_new <= 1e-12
        if bool(dead.any()):
            fallback = s_new[~dead].mean() if bool((~dead).any()) else torch.tensor(1.0)
            s_new = torch.where(dead, fallback, s_new)
        wq.scale.data.copy_(s_new)
        w.copy_(codes * s_new.view(-1, 1, 1, 1))
    else:
        w.mul_(f.view(-1, 1, 1, 1).to(w.dtype))
    bias = conv.bias.float() if conv.bias is not None else torch.zeros_like(f)
    new_bias = bias * f + shift
    if isinstance(conv, QuantConv2d):
        conv.bind(conv.__dict__.get("_input_quant"), None)  # the batch norm is gone
    if conv.bias is None:
        conv.bias = nn.Parameter(new_bias.to(w.dtype))
    else:
        conv.bias.copy_(new_bias)


def fold_bn_graph(gm: fx.GraphModule) -> int:
    """Fold every ``BatchNorm2d`` that is the only user of a ``Conv2d`` in ``gm`` (in place).

    Returns the number of batch norms folded; the folded ones disappear from the graph.
    """
    modules = dict(gm.named_modules())
    folded = 0
    for node in list(gm.graph.nodes):
        bn = module_of(node, modules)
        if not isinstance(bn, nn.BatchNorm2d) or not node.args or not isinstance(node.args[0], fx.Node):
            continue
        src = node.args[0]
        conv = module_of(src, modules)
        if not isinstance(conv, nn.Conv2d) or len(src.users) != 1 or bn.running_mean is None:
            continue
        if bn.num_features != conv.out_channels:
            continue
        fold_bn_into_conv(conv, bn)
        node.replace_all_uses_with(src)
        gm.graph.erase_node(node)
        folded += 1
    if folded:
        gm.graph.lint()
        gm.delete_all_unused_submodules()
        gm.recompile()
    return folded


def fold_bn(model: nn.Module, *, inplace: bool = False) -> fx.GraphModule:
    """A copy of ``model`` (traced with torch.fx) in which every conv → BN pair is folded.

    The result computes what ``model.eval()`` computes; it is the FP32 model that is exported as
    the FP32 reference and the one a PTQ engine would see.
    """
    model = model if inplace else copy.deepcopy(model)
    was_training = model.training
    gm = symbolic_trace(model)
    fold_bn_graph(gm)
    gm.train(was_training)
    return gm
