"""``spaceevo``: the SpaceEvo hyper-space (block type and width window per stage)."""

from __future__ import annotations

from collections.abc import Sequence

from spaces._nodes import Block, Choice, Node, Or, Ref, Repeat, Sequential
from spaces._registry import register_space
from spaces._space import Space
from spaces.builtin._common import first_stride, head, is_small, scaled, stem

__all__ = ["SPACEEVO_BLOCK_TYPES", "SPACEEVO_STAGES", "spaceevo", "width_windows"]

# (width candidates at 224 px, stride at 224 px, stride below 64 px, depth options). Below 64 px
# the stage resolutions are those of the ``mobilenet`` space (28 px: 14, 7, 7, 7, 4), so that a
# ``mobilenet`` supernet can be the block-wise distillation teacher and the two spaces compete at
# equal stage resolutions.
SPACEEVO_STAGES: tuple[tuple[tuple[int, ...], int, int, tuple[int, ...]], ...] = (
    ((24, 32, 40, 48), 2, 2, (1, 2)),
    ((32, 40, 48, 56, 64), 2, 2, (1, 2, 3)),
    ((64, 80, 96, 112, 128), 2, 1, (1, 2, 3)),
    ((112, 128, 144, 160, 176), 1, 1, (1, 2, 3)),
    ((192, 224, 256, 288, 320), 2, 2, (1, 2, 3)),
)

#: The six block families of SpaceEvo's hyper-space.
SPACEEVO_BLOCK_TYPES: tuple[str, ...] = ("mbv1", "mbv2", "mbv3", "resnet", "resnet_se", "fused")


def width_windows(widths: Sequence[int], size: int) -> list[tuple[int, ...]]:
    """Every contiguous window of ``size`` widths (all widths if fewer)."""
    widths = tuple(widths)
    if len(widths) <= size:
        return [widths]
    return [widths[i : i + size] for i in range(len(widths) - size + 1)]


def _family(kind: str, stride: int, kernels: Sequence[int], expands: Sequence[float]) -> Block:
    s = first_stride(stride)
    k = Choice(tuple(kernels))
    e = Choice(tuple(float(x) for x in expands))
    if kind == "mbv1":
        return Block("dwsep", out=Ref("width"), kernel=k, stride=s, act="relu")
    if kind == "mbv2":
        return Block("mbconv", out=Ref("width"), kernel=k, expand=e, stride=s, act="relu")
    if kind == "mbv3":
        return Block("mbconv", out=Ref("width"), kernel=k, expand=e, stride=s, se=0.25, act="hardswish")
    if kind == "resnet":
        return Block(
            "resnet_bottleneck",
            out=Ref("width"),
            kernel=Choice((3, 5)),
            expand=Choice((0.25, 0.5)),
            stride=s,
            act="relu",
        )
    if kind == "resnet_se":
        return Block(
            "resnet_bottleneck",
            out=Ref("width"),
            kernel=Choice((3, 5)),
            expand=Choice((0.25, 0.5)),
            stride=s,
            se=0.25,
            act="relu",
        )
    if kind == "fused":
        return Block(
            "fused_mbconv", out=Ref("width"), kernel=Choice((3, 5)), expand=Choice((2.0, 4.0)), stride=s, act="relu"
        )
    raise ValueError(kind)


@register_space
def spaceevo(
    in_chans: int = 3,
    num_classes: int = 1000,
    resolution: int = 224,
    block_types: Sequence[str] = SPACEEVO_BLOCK_TYPES,
    window: int = 3,
    kernels: Sequence[int] = (3, 5, 7),
    expands: Sequence[float] = (3.0, 4.0, 6.0),
    scale: float | None = None,
) -> Space:
    """Per searchable stage ``stageN``: a block type (``stageN.block``) and a contiguous width
    window (``stageN.window``) — SpaceEvo's space-level decisions — and the sub-space they
    open: depth (``stageN.<type>.depth``), per-block kernel / expand
    (``stageN.<type>.bI.kernel``) and the width inside the window (``stageN.wJ.width``)."""
    small = is_small(resolution)
    scale = scale if scale is not None else (0.5 if small else 1.0)
    unknown = sorted(set(block_types) - set(SPACEEVO_BLOCK_TYPES))
    if unknown:
        from hwnas.errors import ConfigError

        raise ConfigError(f"spaceevo: unknown block type {unknown[0]!r} (types: {', '.join(SPACEEVO_BLOCK_TYPES)})")
    children: dict[str, Node] = {"stem": stem(scaled(16, scale), resolution, "relu")}
    for i, (widths, s_big, s_small, depths) in enumerate(SPACEEVO_STAGES, start=1):
        stride = s_small if small else s_big
        cands = tuple(dict.fromkeys(scaled(w, scale) for w in widths))
        windows = {f"w{j}": Choice(win, label="width") for j, win in enumerate(width_windows(cands, window))}
        families = {kind: Repeat(_family(kind, stride, kernels, expands), depth=Choice(depths)) for kind in block_types}
        children[f"stage{i}"] = Or(families, label="block", params={"width": Or(windows, label="window")})
    last = scaled(SPACEEVO_STAGES[-1][0][-1], scale)
    children["head"] = head(feature=scaled(last * 4, 1.0), act="relu")
    return Space(
        "spaceevo",
        Sequential(children),
        in_chans=in_chans,
        num_classes=num_classes,
        resolution=resolution,
        description="SpaceEvo hyper-space: per-stage block type and width window, with their sub-spaces",
    )
