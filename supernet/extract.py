"""The quantization / extraction half of the supernet: standalone subnets with the shared weights
sliced in (:func:`extract_subnet`), and the switch to quantized-for-all training
(:func:`enable_quantization`) that creates the learned step sizes.

:class:`supernet.model.Supernet` keeps the shared storage and runs subnets; its
:meth:`~supernet.model.Supernet.subnet` and :meth:`~supernet.model.Supernet.enable_quantization`
call these functions. Tensor names of the built network (``blocks.<i>.<rest>``) are read by
:func:`supernet._layout.split_block_name` alone.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from typing import Any, Protocol

import torch
import torch.nn as nn

from quant.calibrate import calibrate
from quant.observers import weight_scales
from quant.prepare import prepare
from quant.scheme import QuantScheme, get_scheme
from quant.training import recalibrate_bn
from spaces import Arch, ResolvedBlock, Space
from supernet._layout import TensorSpec, split_block_name
from supernet._quant import AQ_TENSORS, act_quantizer_keys, aq_key, network_split
from supernet.errors import SupernetError, UntrainedQuantizerError

__all__ = ["enable_quantization", "extract_subnet"]


class Supernet(Protocol):
    """What these functions use of :class:`supernet.model.Supernet` (its storage and its archs)."""

    space: Space
    quant_scheme: Any
    _specs: dict[str, TensorSpec]
    _plans: dict[tuple[Any, ...], Any]

    def blocks(self, arch: Mapping[str, Any]) -> list[ResolvedBlock]: ...
    def validate(self, arch: Mapping[str, Any]) -> Arch: ...
    def largest(self, structure: Mapping[str, Any] | None = None) -> Arch: ...
    def smallest(self, structure: Mapping[str, Any] | None = None) -> Arch: ...
    def subnet(self, arch: Mapping[str, Any], *, quantized: bool | None = None) -> nn.Module: ...
    def has(self, key: str) -> bool: ...
    def tensor(self, key: str) -> torch.Tensor: ...
    def _slice(self, key: str, shape: tuple[int, ...]) -> torch.Tensor: ...
    def _device(self) -> torch.device: ...
    def _register(self, key: str, value: torch.Tensor, is_param: bool, requires_grad: bool = True) -> torch.Tensor: ...


def _block_tensor(name: str) -> tuple[int, str]:
    """``blocks.<i>.<rest>`` of a built network -> ``(i, rest)``; any other tensor is an error."""
    idx, rest = split_block_name(name)
    if idx is None or not rest:
        raise SupernetError(f"unexpected tensor {name!r} in a built network")
    return idx, rest


def extract_subnet(net: Supernet, arch: Mapping[str, Any], quantized: bool | None) -> nn.Module:
    """``space.build(arch)`` with the supernet's slices loaded, and, when ``quantized`` (default:
    whether the supernet trains quantized), ``quant.prepare`` of it with the learned quantizers;
    in evaluation mode, on the supernet's device."""
    blocks = net.blocks(arch)
    with torch.random.fork_rng(devices=[]):  # building initialises weights: keep the global RNG untouched
        model = net.space.build(net.validate(arch))
    state: dict[str, torch.Tensor] = {}
    for name, t in model.state_dict().items():
        idx, rest = _block_tensor(name)
        state[name] = net._slice(f"{blocks[idx].path}/{rest}", tuple(t.shape)).detach().clone()
    model.load_state_dict(state, strict=True)
    model.to(net._device())
    quantized = net.quant_scheme is not None if quantized is None else quantized
    if not quantized:
        return model.eval()
    if net.quant_scheme is None:
        raise SupernetError("the supernet was not trained with quantization (enable_quantization was never called)")
    return _quantized_subnet(net, model, blocks).eval()


def _quantized_subnet(net: Supernet, model: nn.Module, blocks: list[ResolvedBlock]) -> nn.Module:
    gm = prepare(model, net.quant_scheme)
    qkeys = act_quantizer_keys(gm, network_split)
    state: dict[str, torch.Tensor] = {}
    for name, t in gm.state_dict().items():
        head, _, local = name.partition(".")
        if head in qkeys:
            if local not in AQ_TENSORS:
                continue
            idx, rel = qkeys[head]
            key = aq_key(blocks[idx].path if idx is not None else "", rel, local)
        elif ".weight_quant." in name:
            idx, rest = _block_tensor(name)
            key = f"{blocks[idx].path}/{rest}"
        else:
            continue
        if not net.has(key):
            raise UntrainedQuantizerError(
                f"{key}: this quantizer was never trained (an arch outside the training distribution)"
            )
        state[name] = net._slice(key, tuple(t.shape)).detach().clone()
    gm.load_state_dict(state, strict=False)
    return gm


@torch.no_grad()
def enable_quantization(
    net: Supernet,
    scheme: QuantScheme | str,
    calibration: Iterable[torch.Tensor] | None = None,
    archs: Iterable[Mapping[str, Any]] | None = None,
) -> None:
    """See :meth:`supernet.model.Supernet.enable_quantization`."""
    scheme = get_scheme(scheme)
    device = net._device()
    for key, spec in list(net._specs.items()):
        if spec.role not in ("conv", "linear"):
            continue
        base = key[: -len(".weight")] if key.endswith(".weight") else key
        skey, ikey = f"{base}.weight_quant.scale", f"{base}.weight_quant.initialized"
        if net.has(skey):
            continue
        w = net.tensor(key).detach()
        net._register(skey, weight_scales(w, scheme.weight_qmax, scheme.weight_observer).to(device), True)
        net._register(ikey, torch.tensor(True, device=device), False)
    net.quant_scheme = scheme
    net._plans.clear()
    if calibration is None:
        return
    batches = [b.to(device) for b in calibration]
    todo = list(archs) if archs is not None else [net.largest(), net.smallest()]
    done: set[str] = set()
    for arch in todo:
        blocks = net.blocks(arch)
        model = net.subnet(arch, quantized=False)
        recalibrate_bn(model, batches)
        gm = prepare(model, scheme)
        qkeys = act_quantizer_keys(gm, network_split)
        wanted = {q: aq_key(blocks[i].path if i is not None else "", rel, "scale") for q, (i, rel) in qkeys.items()}
        if all(net.has(k) or k in done for k in wanted.values()):
            continue
        calibrate(gm, batches, weights=False)
        mods = dict(gm.named_modules())
        for q, skey in wanted.items():
            if net.has(skey):
                continue
            m = mods[q]
            base = skey[: -len(".scale")]
            net._register(skey, m.scale.detach().clone().to(device), True)
            net._register(
                f"{base}.zero_point", m.zero_point.detach().clone().to(device), True, bool(m.learn_zero_point)
            )
            net._register(f"{base}.initialized", m.initialized.detach().clone().to(device), False)
            done.add(skey)
