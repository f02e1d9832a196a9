"""Pieces the built-in conv spaces share."""

from __future__ import annotations

from spaces._expr import make_divisible
from spaces._nodes import Block, Derived, Ref

__all__ = ["first_stride", "head", "is_small", "scaled", "stem"]


def is_small(resolution: int) -> bool:
    """Inputs below 64 px (Fashion-MNIST, CIFAR) keep more resolution early on."""
    return resolution < 64


def scaled(channels: float, scale: float) -> int:
    """``channels · scale`` rounded to a multiple of 8 (of 4 for scaled-down spaces)."""
    return make_divisible(channels * scale, 8 if scale >= 1 else 4)


def first_stride(stride: int) -> Derived | int:
    """Stride ``stride`` on a stage's first block, 1 on the others."""
    return Derived(f"{stride} if index == 0 else 1") if stride != 1 else 1


def stem(out: int, resolution: int, act: str = "relu") -> Block:
    return Block("conv_bn_act", out=out, kernel=3, stride=1 if is_small(resolution) else 2, act=act)


def head(feature: int = 0, hidden: int = 0, act: str = "relu", dropout: float = 0.0) -> Block:
    return Block("classifier", num_classes=Ref("num_classes"), feature=feature, hidden=hidden, act=act, dropout=dropout)
