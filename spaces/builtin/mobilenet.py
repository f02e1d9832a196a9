"""``mobilenet``: an OFA / MobileNetV3-style stage space."""

from __future__ import annotations

from collections.abc import Sequence

from spaces._nodes import Block, Choice, Node, Ref, Repeat, Sequential
from spaces._registry import register_space
from spaces._space import Space
from spaces.builtin._common import first_stride, head, is_small, scaled, stem

__all__ = ["MOBILENET_STAGES", "mobilenet"]

# (base width, stride at 224 px, stride below 64 px, activation, SE ratio), as in MobileNetV3-Large.
MOBILENET_STAGES: tuple[tuple[int, int, int, str, float], ...] = (
    (24, 2, 2, "relu", 0.0),
    (40, 2, 2, "relu", 0.25),
    (80, 2, 1, "hardswish", 0.0),
    (112, 1, 1, "hardswish", 0.25),
    (160, 2, 2, "hardswish", 0.25),
)


@register_space
def mobilenet(
    in_chans: int = 3,
    num_classes: int = 1000,
    resolution: int = 224,
    depths: Sequence[int] = (2, 3, 4),
    kernels: Sequence[int] = (3, 5, 7),
    expands: Sequence[float] = (3.0, 4.0, 6.0),
    width_mults: Sequence[float] = (0.75, 1.0, 1.25),
    stages: int = 5,
    scale: float | None = None,
) -> Space:
    """Per stage: depth and width (``stageN.depth``, ``stageN.width``); per block: kernel and
    expand ratio (``stageN.bI.kernel``, ``stageN.bI.expand``). Activations and SE follow
    MobileNetV3-Large. Below 64 px the stem keeps the resolution and widths are halved
    (``scale``) so that 28×28 inputs train quickly."""
    small = is_small(resolution)
    scale = scale if scale is not None else (0.5 if small else 1.0)
    children: dict[str, Node] = {
        "stem": stem(scaled(16, scale), resolution, "hardswish"),
        "first": Block("mbconv", out=scaled(16, scale), kernel=3, stride=1, expand=1.0, act="relu"),
    }
    for i, (base, s_big, s_small, act, se) in enumerate(MOBILENET_STAGES[:stages], start=1):
        widths = sorted({scaled(base * m, scale) for m in width_mults})
        block = Block(
            "mbconv",
            out=Ref("width"),
            kernel=Choice(kernels),
            expand=Choice(tuple(float(e) for e in expands)),
            stride=first_stride(s_small if small else s_big),
            se=se,
            act=act,
        )
        children[f"stage{i}"] = Repeat(block, depth=Choice(depths), params={"width": Choice(widths)})
    last = scaled(MOBILENET_STAGES[stages - 1][0], scale)
    children["head"] = head(feature=scaled(last * 6, 1.0), hidden=0 if small else 1280, act="hardswish")
    return Space(
        "mobilenet",
        Sequential(children),
        in_chans=in_chans,
        num_classes=num_classes,
        resolution=resolution,
        description="OFA/MobileNetV3-style space: per-stage depth and width, per-block kernel and expand",
    )
