"""``resnet``: a ResNet-like stage space."""

from __future__ import annotations

from collections.abc import Sequence

from spaces._nodes import Block, Choice, Node, Or, Ref, Repeat, Sequential
from spaces._registry import register_space
from spaces._space import Space
from spaces.builtin._common import first_stride, head, is_small, scaled, stem

__all__ = ["resnet"]


@register_space
def resnet(
    in_chans: int = 3,
    num_classes: int = 1000,
    resolution: int = 224,
    depths: Sequence[int] = (1, 2, 3),
    kernels: Sequence[int] = (3, 5),
    width_mults: Sequence[float] = (0.5, 0.75, 1.0),
    base_widths: Sequence[int] | None = None,
) -> Space:
    """Four stages; per stage a block family (``stageN.block``: basic or bottleneck), depth
    and width; per block the kernel (and the bottleneck ratio for bottlenecks)."""
    small = is_small(resolution)
    bases = tuple(base_widths) if base_widths else ((32, 64, 128, 256) if small else (64, 128, 256, 512))
    children: dict[str, Node] = {"stem": stem(scaled(bases[0] / 2, 1.0), resolution)}
    for i, base in enumerate(bases, start=1):
        stride = 1 if (i == 1 and small) else 2
        widths = sorted({scaled(base * m, 1.0) for m in width_mults})
        basic = Block("resnet_basic", out=Ref("width"), kernel=Choice(kernels), stride=first_stride(stride))
        bottleneck = Block(
            "resnet_bottleneck",
            out=Ref("width"),
            kernel=Choice(kernels),
            expand=Choice((0.25, 0.5)),
            stride=first_stride(stride),
        )
        children[f"stage{i}"] = Or(
            {"basic": Repeat(basic, depth=Choice(depths)), "bottleneck": Repeat(bottleneck, depth=Choice(depths))},
            label="block",
            params={"width": Choice(widths)},
        )
    children["head"] = head()
    return Space(
        "resnet",
        Sequential(children),
        in_chans=in_chans,
        num_classes=num_classes,
        resolution=resolution,
        description="ResNet-like space: per-stage block family, depth and width; per-block kernel",
    )
