"""The operator catalog: what each op is called, which parameters it takes, and how it
changes the tensor shape. Torch-free, so that spaces can be validated, enumerated and
turned into latency-table keys on a machine without torch.

The torch implementation of each op lives in :mod:`spaces.ops`.
"""

from __future__ import annotations

import math
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from typing import Any

from hwnas.errors import SpaceDefinitionError, UnknownNameError

__all__ = [
    "ACTIVATIONS",
    "NB201_OPS",
    "OpDef",
    "ParamDef",
    "get_op",
    "list_ops",
    "register_op",
]

ACTIVATIONS: tuple[str, ...] = ("relu", "relu6", "hardswish", "swish")
NB201_OPS: tuple[str, ...] = ("none", "skip_connect", "nor_conv_1x1", "nor_conv_3x3", "avg_pool_3x3")
NB201_EDGES: tuple[str, ...] = ("e1_0", "e2_0", "e2_1", "e3_0", "e3_1", "e3_2")


@dataclass(frozen=True)
class ParamDef:
    """One parameter of an op: its type, default (``required`` when absent) and allowed values."""

    type: type
    required: bool = False
    default: Any = None
    allowed: tuple[Any, ...] | None = None
    minimum: float | None = None

    def check(self, value: Any) -> str | None:
        """Return why ``value`` is not acceptable, or ``None``."""
        t = self.type
        ok = isinstance(value, t) and not (t is int and isinstance(value, bool))
        if t is float and isinstance(value, int) and not isinstance(value, bool):
            ok = True
        if not ok:
            return f"expected {t.__name__}, got {type(value).__name__} {value!r}"
        if self.allowed is not None and value not in self.allowed:
            return f"{value!r} is not one of {list(self.allowed)}"
        if self.minimum is not None and value < self.minimum:
            return f"{value!r} is below the minimum {self.minimum}"
        return None


def _out_param(params: Mapping[str, Any], cin: int) -> int:
    return int(params["out"])


def _same_channels(params: Mapping[str, Any], cin: int) -> int:
    return cin


def _stride_param(params: Mapping[str, Any]) -> int:
    return int(params.get("stride", 1))


def _no_stride(params: Mapping[str, Any]) -> int:
    return 1


@dataclass(frozen=True)
class OpDef:
    """Metadata of an op: parameters, output channels, spatial stride, and kind.

    ``kind`` is ``"block"`` for ops that keep a feature map, ``"head"`` for ops that end
    the network with a ``[N, classes]`` tensor.
    """

    name: str
    params: Mapping[str, ParamDef]
    out_channels: Callable[[Mapping[str, Any], int], int] = _out_param
    stride: Callable[[Mapping[str, Any]], int] = _stride_param
    kind: str = "block"
    doc: str = ""
    extra_check: Callable[[Mapping[str, Any]], str | None] | None = field(default=None, repr=False)

    def complete(self, params: Mapping[str, Any], where: str = "") -> dict[str, Any]:
        """Fill defaults and check every parameter; raise SpaceDefinitionError naming ``where``."""
        prefix = f"{where}: " if where else ""
        unknown = sorted(set(params) - set(self.params))
        if unknown:
            raise SpaceDefinitionError(
                f"{prefix}op {self.name!r} has no parameter {unknown[0]!r} (parameters: {', '.join(self.params)})"
            )
        full: dict[str, Any] = {}
        for name, pdef in self.params.items():
            if name in params:
                value = params[name]
                problem = pdef.check(value)
                if problem:
                    raise SpaceDefinitionError(f"{prefix}{self.name}.{name}: {problem}")
                full[name] = float(value) if pdef.type is float else value
            elif pdef.required:
                raise SpaceDefinitionError(f"{prefix}op {self.name!r} needs parameter {name!r}")
            else:
                full[name] = pdef.default
        if self.extra_check is not None:
            problem = self.extra_check(full)
            if problem:
                raise SpaceDefinitionError(f"{prefix}{self.name}: {problem}")
        return full

    def output_hw(self, params: Mapping[str, Any], h: int, w: int) -> tuple[int, int]:
        if self.kind == "head":
            return 1, 1
        s = self.stride(params)
        return math.ceil(h / s), math.ceil(w / s)


_OPS: dict[str, OpDef] = {}


def register_op(opdef: OpDef, *, replace: bool = False) -> OpDef:
    """Add an op to the catalog (its torch builder is registered in :mod:`spaces.ops`)."""
    if opdef.name in _OPS and not replace:
        raise SpaceDefinitionError(f"op {opdef.name!r} is already registered")
    _OPS[opdef.name] = opdef
    return opdef


def get_op(name: str) -> OpDef:
    try:
        return _OPS[name]
    except KeyError:
        raise UnknownNameError(f"unknown op {name!r} (known ops: {', '.join(sorted(_OPS))})") from None


def list_ops() -> list[str]:
    return sorted(_OPS)


def _odd_kernel(params: Mapping[str, Any]) -> str | None:
    k = params.get("kernel")
    if k is not None and k % 2 == 0:
        return f"kernel must be odd, got {k}"
    return None


_ACT = ParamDef(str, default="relu", allowed=ACTIVATIONS)
_KERNEL = ParamDef(int, default=3, allowed=(1, 3, 5, 7, 9))
_STRIDE = ParamDef(int, default=1, allowed=(1, 2))
_OUT = ParamDef(int, required=True, minimum=1)
_SE = ParamDef(float, default=0.0, minimum=0.0)

register_op(
    OpDef(
        "conv_bn_act",
        {"out": _OUT, "kernel": _KERNEL, "stride": _STRIDE, "act": _ACT},
        doc="k×k convolution, batch norm, activation",
    )
)
register_op(
    OpDef(
        "dwsep",
        {"out": _OUT, "kernel": _KERNEL, "stride": _STRIDE, "act": _ACT, "se": _SE},
        doc="MobileNetV1 dual conv: depthwise k×k + BN + act, pointwise 1×1 + BN + act",
    )
)
register_op(
    OpDef(
        "mbconv",
        {
            "out": _OUT,
            "kernel": _KERNEL,
            "stride": _STRIDE,
            "expand": ParamDef(float, default=6.0, minimum=1.0),
            "se": _SE,
            "act": _ACT,
        },
        doc="inverted residual: 1×1 expand, depthwise k×k, optional SE, 1×1 project",
    )
)
register_op(
    OpDef(
        "fused_mbconv",
        {
            "out": _OUT,
            "kernel": _KERNEL,
            "stride": _STRIDE,
            "expand": ParamDef(float, default=4.0, minimum=1.0),
            "se": _SE,
            "act": _ACT,
        },
        doc="fused inverted residual: k×k expand conv, optional SE, 1×1 project",
    )
)
register_op(
    OpDef(
        "resnet_basic",
        {"out": _OUT, "kernel": _KERNEL, "stride": _STRIDE, "se": _SE, "act": _ACT},
        doc="ResNet basic block: two k×k convs, residual add",
    )
)
register_op(
    OpDef(
        "resnet_bottleneck",
        {
            "out": _OUT,
            "kernel": _KERNEL,
            "stride": _STRIDE,
            "expand": ParamDef(float, default=0.25, minimum=0.0625),
            "se": _SE,
            "act": _ACT,
        },
        doc="ResNet bottleneck: 1×1 reduce to out·expand, k×k, 1×1 expand, residual add",
    )
)
register_op(
    OpDef(
        "pool",
        {"kind": ParamDef(str, default="avg", allowed=("avg", "max")), "kernel": _KERNEL, "stride": _STRIDE},
        out_channels=_same_channels,
        doc="average or max pooling (same padding)",
    )
)
register_op(OpDef("skip", {}, out_channels=_same_channels, stride=_no_stride, doc="identity"))
register_op(OpDef("zero", {}, out_channels=_same_channels, stride=_no_stride, doc="outputs zeros"))
register_op(
    OpDef(
        "classifier",
        {
            "num_classes": ParamDef(int, required=True, minimum=1),
            "feature": ParamDef(int, default=0, minimum=0),
            "hidden": ParamDef(int, default=0, minimum=0),
            "act": _ACT,
            "dropout": ParamDef(float, default=0.0, minimum=0.0),
        },
        out_channels=lambda p, cin: int(p["num_classes"]),
        stride=_no_stride,
        kind="head",
        doc="optional 1×1 conv to `feature` channels, global average pool, optional "
        "hidden linear layer, linear classifier",
    )
)


# -- cell ops (NAS-Bench-201, DARTS): ``out`` 0 keeps the input's channels ------------------------
def _out_or_same(params: Mapping[str, Any], cin: int) -> int:
    return int(params["out"]) or cin


_SAME_OUT = ParamDef(int, default=0, minimum=0)
register_op(
    OpDef(
        "conv_bn",
        {"out": _OUT, "kernel": _KERNEL, "stride": _STRIDE},
        doc="k×k convolution and batch norm, no activation (the NAS-Bench-201 / DARTS stem)",
    )
)
register_op(
    OpDef(
        "relu_conv_bn",
        {"out": _SAME_OUT, "kernel": _KERNEL, "stride": _STRIDE},
        out_channels=_out_or_same,
        doc="pre-activation conv: ReLU, k×k convolution, batch norm (NAS-Bench-201's nor_conv); out 0 = cin",
    )
)
register_op(
    OpDef(
        "sep_conv",
        {"out": _SAME_OUT, "kernel": _KERNEL, "stride": _STRIDE},
        out_channels=_out_or_same,
        doc="DARTS separable conv: twice (ReLU, depthwise k×k, pointwise 1×1, BN); out 0 = cin",
    )
)
register_op(
    OpDef(
        "dil_conv",
        {"out": _SAME_OUT, "kernel": _KERNEL, "stride": _STRIDE},
        out_channels=_out_or_same,
        doc="DARTS dilated conv: ReLU, depthwise k×k with dilation 2, pointwise 1×1, BN; out 0 = cin",
    )
)
register_op(
    OpDef(
        "bn_act",
        {"act": _ACT},
        out_channels=_same_channels,
        stride=_no_stride,
        doc="batch norm and activation (NAS-Bench-201's last activation before the head)",
    )
)
register_op(
    OpDef(
        "nb201_reduction",
        {"out": _OUT},
        doc="NAS-Bench-201's residual reduction: ReLU-conv3×3/2-BN, ReLU-conv3×3-BN, plus a 2×2 average "
        "pool and 1×1 conv shortcut",
        stride=lambda p: 2,
    )
)

for _name in (
    "conv_bn_act",
    "conv_bn",
    "relu_conv_bn",
    "sep_conv",
    "dil_conv",
    "dwsep",
    "mbconv",
    "fused_mbconv",
    "resnet_basic",
    "resnet_bottleneck",
    "pool",
):
    object.__setattr__(_OPS[_name], "extra_check", _odd_kernel)
