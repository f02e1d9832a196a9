"""``hhnas``: hierarchical templates (a macro template opens its micro decisions)."""

from __future__ import annotations

from spaces._nodes import Block, Choice, Node, Optional, Or, Ref, Repeat, Sequential
from spaces._registry import register_space
from spaces._space import Space
from spaces.builtin._common import first_stride, head, is_small, scaled, stem

__all__ = ["HHNAS_TEMPLATES", "hhnas"]

#: macro templates: per stage (family, base width, stride at 224 px, stride below 64 px)
HHNAS_TEMPLATES: dict[str, tuple[tuple[str, int, int, int], ...]] = {
    "mobile": (("mbconv", 24, 2, 2), ("mbconv", 40, 2, 2), ("mbconv", 80, 2, 1), ("mbconv", 160, 2, 2)),
    "residual": (
        ("resnet_basic", 32, 2, 1),
        ("resnet_basic", 64, 2, 2),
        ("resnet_basic", 128, 2, 2),
        ("resnet_basic", 256, 2, 2),
    ),
    "hybrid": (("fused_mbconv", 24, 2, 1), ("fused_mbconv", 48, 2, 2), ("mbconv", 96, 2, 2), ("mbconv", 192, 2, 2)),
    "plain": (("dwsep", 32, 2, 1), ("dwsep", 64, 2, 2), ("dwsep", 128, 2, 2), ("dwsep", 256, 2, 2)),
}


def _micro_block(family: str, stride: int) -> Block:
    s = first_stride(stride)
    act = Ref("act")
    if family == "mbconv":
        return Block(
            family,
            out=Ref("width"),
            kernel=Choice((3, 5, 7)),
            expand=Choice((3.0, 6.0)),
            stride=s,
            se=Choice((0.0, 0.25)),
            act=act,
        )
    if family == "fused_mbconv":
        return Block(family, out=Ref("width"), kernel=Choice((3, 5)), expand=Choice((2.0, 4.0)), stride=s, act=act)
    if family == "resnet_basic":
        return Block(family, out=Ref("width"), kernel=Choice((3, 5)), stride=s, act=act)
    return Block("dwsep", out=Ref("width"), kernel=Choice((3, 5, 7)), stride=s, act=act)


@register_space
def hhnas(in_chans: int = 3, num_classes: int = 1000, resolution: int = 224, scale: float | None = None) -> Space:
    """Macro level: ``macro.template`` picks which families the stages use; micro level
    (under ``macro.<template>``): a network-wide activation, per stage depth, width and an
    optional extra refinement block, per block kernel / expand / SE."""
    small = is_small(resolution)
    scale = scale if scale is not None else (0.5 if small else 1.0)
    templates = {}
    for name, stages in HHNAS_TEMPLATES.items():
        stage_nodes: dict[str, Node] = {}
        for i, (family, base, s_big, s_small) in enumerate(stages, start=1):
            widths = sorted({scaled(base * m, scale) for m in (0.75, 1.0)})
            body = Sequential(
                {
                    "blocks": Repeat(_micro_block(family, s_small if small else s_big), depth=Choice((1, 2, 3))),
                    "refine": Optional(Block("conv_bn_act", out=Ref("width"), kernel=1, act=Ref("act")), label="extra"),
                },
                params={"width": Choice(widths)},
            )
            stage_nodes[f"stage{i}"] = body
        templates[name] = Sequential(stage_nodes, params={"act": Choice(("relu", "hardswish"))})
    children: dict[str, Node] = {
        "stem": stem(scaled(16, scale), resolution),
        "macro": Or(templates, label="template"),
        "head": head(),
    }
    return Space(
        "hhnas",
        Sequential(children),
        in_chans=in_chans,
        num_classes=num_classes,
        resolution=resolution,
        description="HHNAS-style hierarchical templates: macro template, then micro decisions",
    )
