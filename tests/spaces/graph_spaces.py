"""Small graph spaces shared by the graph-node tests."""

from __future__ import annotations

import functools
from pathlib import Path

from spaces import (
    Block,
    Cell,
    CellNode,
    Choice,
    Edge,
    Optional,
    Or,
    Parallel,
    Ref,
    Repeat,
    Residual,
    Sequential,
    Space,
    Switch,
    create_space,
)


def toy_space() -> Space:
    """Every graph node once, composed with Or, Repeat, Optional, Ref and a Choice of merges."""
    cell = Cell(
        {
            "a": CellNode([Edge(0, Block("conv_bn_act", out=8, kernel=Choice([3, 5])))]),
            "b": CellNode(
                [
                    Edge(
                        Choice([0, 1]),
                        Or({"conv": Block("conv_bn_act", out=8, kernel=3), "dw": Block("dwsep", out=8)}),
                    ),
                    Edge(1, None),
                ],
                merge="add",
            ),
        },
        output=["a", "b"],
        merge="concat",
    )
    stage = Sequential(
        {
            "res": Residual(cell),
            "par": Parallel(
                {
                    "p3": Block("conv_bn_act", out=Ref("w"), kernel=3),
                    "p1": Block("conv_bn_act", out=Ref("w"), kernel=1),
                },
                merge=Choice(["add", "concat"]),
            ),
            "extra": Optional(
                Residual(
                    Block("conv_bn_act", out=Ref("wide"), kernel=3),
                    shortcut=Block("conv_bn_act", out=Ref("wide"), kernel=1),
                )
            ),
            "sw": Switch(
                Ref("pool"), {"avg": Block("pool", kind="avg"), "max": Block("pool", kind="max"), "none": None}
            ),
            "proj": Block("conv_bn_act", out=16, kernel=1),
        },
        params={"w": 8, "wide": 24, "pool": Choice(["avg", "max", "none"])},
    )
    body = Sequential(
        {
            "stem": Block("conv_bn_act", out=16, kernel=3),
            "stage": Repeat(stage, depth=Choice([1, 2])),
            "head": Block("classifier", num_classes=Ref("num_classes")),
        }
    )
    return Space("toy_graph", body, in_chans=1, num_classes=10, resolution=12)


@functools.cache
def graph_space(name: str) -> Space:
    if name == "toy":
        return toy_space()
    if name == "nb201":
        return create_space("nb201", channels=4, cells=1)
    if name == "darts":
        return create_space("darts", in_chans=1, resolution=16, channels=4, cells=1)
    from spaces import load_space

    return load_space(Path(__file__).resolve().parents[2] / "docs" / "examples" / "residual_cell_space.yaml")


GRAPH_SPACES = ["toy", "nb201", "darts", "yaml"]
