"""Torch implementations of the catalog's ops, built from timm's layers.

Every conv layer is a :class:`ConvBnAct` with ``.conv`` (``nn.Conv2d`` from timm's
``create_conv2d``, no bias), ``.bn`` (``nn.BatchNorm2d``) and ``.act``: the structure that
quantization (BN folding, fake-quant) and weight-sharing supernets rely on. Residual adds
are plain ``+`` inside block forwards. Every op exports to ONNX (opset 17).
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import torch
import torch.nn as nn
from timm.layers import SEModule, create_conv2d, get_act_layer, make_divisible

from hwnas.errors import SpaceDefinitionError, UnknownNameError
from spaces.catalog import get_op

__all__ = [
    "BnAct",
    "Classifier",
    "ConvBn",
    "ConvBnAct",
    "DilConv",
    "DepthwiseSeparable",
    "FusedMBConv",
    "MBConv",
    "NB201Reduction",
    "Pool",
    "ReLUConvBN",
    "ResNetBasic",
    "ResNetBottleneck",
    "SepConv",
    "Skip",
    "Zero",
    "act_layer",
    "build_op",
    "nb201_op",
    "register_op_builder",
]

_ACT_NAMES = {"relu": "relu", "relu6": "relu6", "hardswish": "hard_swish", "swish": "swish"}


def act_layer(name: str) -> type[nn.Module]:
    """The activation class for a catalog activation name (via timm's ``get_act_layer``)."""
    try:
        return get_act_layer(_ACT_NAMES[name])
    except KeyError:
        raise UnknownNameError(f"unknown activation {name!r} (known: {', '.join(_ACT_NAMES)})") from None


class ConvBnAct(nn.Module):
    """k×k conv (no bias) → BatchNorm → activation (``act=None`` for none)."""

    def __init__(
        self, cin: int, cout: int, kernel: int = 3, stride: int = 1, act: str | None = "relu", groups: int = 1
    ) -> None:
        super().__init__()
        self.conv = create_conv2d(cin, cout, kernel, stride=stride, groups=groups, bias=False)
        self.bn = nn.BatchNorm2d(cout)
        self.act = act_layer(act)(inplace=True) if act else nn.Identity()

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.act(self.bn(self.conv(x)))


def _se(channels: int, ratio: float, base: int) -> nn.Module:
    """Squeeze-excitation sized from the block input (MobileNetV3 / EfficientNet style)."""
    if ratio <= 0:
        return nn.Identity()
    rd = make_divisible(base * ratio, 8)
    return SEModule(channels, rd_channels=rd, act_layer=nn.ReLU, gate_layer="hard_sigmoid")


class DepthwiseSeparable(nn.Module):
    """MobileNetV1 dual conv: depthwise k×k + BN + act, pointwise 1×1 + BN + act."""

    def __init__(
        self, cin: int, out: int, kernel: int = 3, stride: int = 1, act: str = "relu", se: float = 0.0
    ) -> None:
        super().__init__()
        self.dw = ConvBnAct(cin, cin, kernel, stride, act, groups=cin)
        self.se = _se(cin, se, cin)
        self.pw = ConvBnAct(cin, out, 1, 1, act)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.pw(self.se(self.dw(x)))


class MBConv(nn.Module):
    """Inverted residual: 1×1 expand (skipped when expand = 1), depthwise k×k, SE, 1×1 project."""

    def __init__(
        self,
        cin: int,
        out: int,
        kernel: int = 3,
        stride: int = 1,
        expand: float = 6.0,
        se: float = 0.0,
        act: str = "relu",
    ) -> None:
        super().__init__()
        mid = make_divisible(cin * expand, 8) if expand != 1 else cin
        self.expand = ConvBnAct(cin, mid, 1, 1, act) if expand != 1 else nn.Identity()
        self.dw = ConvBnAct(mid, mid, kernel, stride, act, groups=mid)
        self.se = _se(mid, se, cin)
        self.project = ConvBnAct(mid, out, 1, 1, None)
        self.has_residual = stride == 1 and cin == out

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        y = self.project(self.se(self.dw(self.expand(x))))
        return x + y if self.has_residual else y


class FusedMBConv(nn.Module):
    """Fused inverted residual (EdgeResidual): k×k expand conv, SE, 1×1 project."""

    def __init__(
        self,
        cin: int,
        out: int,
        kernel: int = 3,
        stride: int = 1,
        expand: float = 4.0,
        se: float = 0.0,
        act: str = "relu",
    ) -> None:
        super().__init__()
        mid = make_divisible(cin * expand, 8)
        self.conv = ConvBnAct(cin, mid, kernel, stride, act)
        self.se = _se(mid, se, cin)
        self.project = ConvBnAct(mid, out, 1, 1, None)
        self.has_residual = stride == 1 and cin == out

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        y = self.project(self.se(self.conv(x)))
        return x + y if self.has_residual else y


def _shortcut(cin: int, out: int, stride: int) -> nn.Module:
    if stride == 1 and cin == out:
        return nn.Identity()
    return ConvBnAct(cin, out, 1, stride, None)


class ResNetBasic(nn.Module):
    """ResNet basic block: k×k conv-BN-act, k×k conv-BN, optional SE, add shortcut, act."""

    def __init__(
        self, cin: int, out: int, kernel: int = 3, stride: int = 1, se: float = 0.0, act: str = "relu"
    ) -> None:
        super().__init__()
        self.conv1 = ConvBnAct(cin, out, kernel, stride, act)
        self.conv2 = ConvBnAct(out, out, kernel, 1, None)
        self.se = _se(out, se, out)
        self.shortcut = _shortcut(cin, out, stride)
        self.act = act_layer(act)(inplace=True)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.act(self.se(self.conv2(self.conv1(x))) + self.shortcut(x))


class ResNetBottleneck(nn.Module):
    """ResNet bottleneck: 1×1 to ``out·expand``, k×k (stride), 1×1 to ``out``, SE, add, act."""

    def __init__(
        self,
        cin: int,
        out: int,
        kernel: int = 3,
        stride: int = 1,
        expand: float = 0.25,
        se: float = 0.0,
        act: str = "relu",
    ) -> None:
        super().__init__()
        mid = make_divisible(out * expand, 8)
        self.conv1 = ConvBnAct(cin, mid, 1, 1, act)
        self.conv2 = ConvBnAct(mid, mid, kernel, stride, act)
        self.conv3 = ConvBnAct(mid, out, 1, 1, None)
        self.se = _se(out, se, mid)
        self.shortcut = _shortcut(cin, out, stride)
        self.act = act_layer(act)(inplace=True)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.act(self.se(self.conv3(self.conv2(self.conv1(x)))) + self.shortcut(x))


class Pool(nn.Module):
    """Average (not counting padding) or max pooling with same padding."""

    def __init__(self, cin: int, kind: str = "avg", kernel: int = 3, stride: int = 1) -> None:
        super().__init__()
        if kind == "avg":
            self.pool: nn.Module = nn.AvgPool2d(kernel, stride, kernel // 2, count_include_pad=False)
        else:
            self.pool = nn.MaxPool2d(kernel, stride, kernel // 2)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.pool(x)


class Skip(nn.Identity):
    """Identity."""


class Zero(nn.Module):
    """Outputs zeros shaped like the input (``stride`` 2 halves the spatial size)."""

    def __init__(self, stride: int = 1) -> None:
        super().__init__()
        self.stride = stride

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        if self.stride > 1:
            x = x[:, :, :: self.stride, :: self.stride]
        return x * 0.0


class Classifier(nn.Module):
    """Head: optional 1×1 ConvBnAct to ``feature`` channels, global average pool,
    optional hidden linear + act (MobileNetV3), dropout, linear to ``num_classes``."""

    def __init__(
        self, cin: int, num_classes: int, feature: int = 0, hidden: int = 0, act: str = "relu", dropout: float = 0.0
    ) -> None:
        super().__init__()
        self.conv = ConvBnAct(cin, feature, 1, 1, act) if feature else nn.Identity()
        width = feature or cin
        self.pool = nn.AdaptiveAvgPool2d(1)
        self.flatten = nn.Flatten(1)
        if hidden:
            self.hidden: nn.Module = nn.Sequential(nn.Linear(width, hidden), act_layer(act)(inplace=True))
            width = hidden
        else:
            self.hidden = nn.Identity()
        self.dropout = nn.Dropout(dropout) if dropout > 0 else nn.Identity()
        self.fc = nn.Linear(width, num_classes)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.fc(self.dropout(self.hidden(self.flatten(self.pool(self.conv(x))))))


class ConvBn(nn.Module):
    """k×k conv (no bias, padding k // 2) → BatchNorm (the NAS-Bench-201 / DARTS stem)."""

    def __init__(self, cin: int, out: int, kernel: int = 3, stride: int = 1) -> None:
        super().__init__()
        self.conv = nn.Conv2d(cin, out, kernel, stride, kernel // 2, bias=False)
        self.bn = nn.BatchNorm2d(out)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.bn(self.conv(x))


class ReLUConvBN(nn.Module):
    """Pre-activation conv: ReLU → k×k conv (no bias, padding k // 2) → BatchNorm."""

    def __init__(self, cin: int, out: int = 0, kernel: int = 3, stride: int = 1) -> None:
        super().__init__()
        self.act = nn.ReLU(inplace=False)
        self.conv = nn.Conv2d(cin, out or cin, kernel, stride, kernel // 2, bias=False)
        self.bn = nn.BatchNorm2d(out or cin)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.bn(self.conv(self.act(x)))


class DilConv(nn.Module):
    """DARTS: ReLU → depthwise k×k (dilation ``dilation``) → pointwise 1×1 → BatchNorm."""

    def __init__(self, cin: int, out: int = 0, kernel: int = 3, stride: int = 1, dilation: int = 2) -> None:
        super().__init__()
        out = out or cin
        self.act = nn.ReLU(inplace=False)
        pad = dilation * (kernel - 1) // 2
        self.dw = nn.Conv2d(cin, cin, kernel, stride, pad, dilation=dilation, groups=cin, bias=False)
        self.pw = nn.Conv2d(cin, out, 1, bias=False)
        self.bn = nn.BatchNorm2d(out)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.bn(self.pw(self.dw(self.act(x))))


class SepConv(nn.Module):
    """DARTS separable conv: (ReLU, depthwise k×k, pointwise, BN) with the stride, then again at stride 1."""

    def __init__(self, cin: int, out: int = 0, kernel: int = 3, stride: int = 1) -> None:
        super().__init__()
        out = out or cin
        self.first = DilConv(cin, cin, kernel, stride, dilation=1)
        self.second = DilConv(cin, out, kernel, 1, dilation=1)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.second(self.first(x))


class BnAct(nn.Module):
    """BatchNorm → activation."""

    def __init__(self, cin: int, act: str = "relu") -> None:
        super().__init__()
        self.bn = nn.BatchNorm2d(cin)
        self.act = act_layer(act)(inplace=False)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.act(self.bn(x))


class NB201Reduction(nn.Module):
    """NAS-Bench-201's residual reduction (a ResNet basic block at stride 2, pre-activation)."""

    def __init__(self, cin: int, out: int) -> None:
        super().__init__()
        self.conv_a = ReLUConvBN(cin, out, 3, 2)
        self.conv_b = ReLUConvBN(out, out, 3, 1)
        self.downsample = nn.Sequential(nn.AvgPool2d(2, 2), nn.Conv2d(cin, out, 1, bias=False))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.conv_b(self.conv_a(x)) + self.downsample(x)


def nb201_op(name: str, channels: int) -> nn.Module:
    """One NAS-Bench-201 edge op on ``channels`` channels (stride 1), as the ``nb201`` space builds it."""
    if name == "none":
        return Zero()
    if name == "skip_connect":
        return Skip()
    if name == "nor_conv_1x1":
        return ReLUConvBN(channels, channels, 1)
    if name == "nor_conv_3x3":
        return ReLUConvBN(channels, channels, 3)
    if name == "avg_pool_3x3":
        return Pool(channels, "avg", 3, 1)
    raise UnknownNameError(
        f"unknown NAS-Bench-201 op {name!r} (ops: none, skip_connect, nor_conv_1x1, nor_conv_3x3, avg_pool_3x3)"
    )


OpBuilder = Callable[..., nn.Module]
_BUILDERS: dict[str, OpBuilder] = {}


def register_op_builder(name: str, builder: OpBuilder, *, replace: bool = False) -> None:
    """Register the torch constructor ``builder(cin, **params)`` of catalog op ``name``."""
    get_op(name)
    if name in _BUILDERS and not replace:
        raise SpaceDefinitionError(f"op {name!r} already has a builder")
    _BUILDERS[name] = builder


def build_op(name: str, cin: int, params: dict[str, Any]) -> nn.Module:
    """Instantiate op ``name`` for ``cin`` input channels with complete ``params``."""
    try:
        builder = _BUILDERS[name]
    except KeyError:
        raise UnknownNameError(f"op {name!r} has no torch builder (known: {', '.join(sorted(_BUILDERS))})") from None
    return builder(cin, **params)


register_op_builder("conv_bn_act", lambda cin, out, kernel, stride, act: ConvBnAct(cin, out, kernel, stride, act))
register_op_builder("dwsep", DepthwiseSeparable)
register_op_builder("mbconv", MBConv)
register_op_builder("fused_mbconv", FusedMBConv)
register_op_builder("resnet_basic", ResNetBasic)
register_op_builder("resnet_bottleneck", ResNetBottleneck)
register_op_builder("pool", Pool)
register_op_builder("skip", lambda cin: Skip())
register_op_builder("zero", lambda cin: Zero())
register_op_builder("classifier", Classifier)
register_op_builder("conv_bn", ConvBn)
register_op_builder("relu_conv_bn", ReLUConvBN)
register_op_builder("sep_conv", SepConv)
register_op_builder("dil_conv", DilConv)
register_op_builder("bn_act", BnAct)
register_op_builder("nb201_reduction", NB201Reduction)
