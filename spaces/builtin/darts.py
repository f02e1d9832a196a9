"""``darts``: a DARTS-style cell space (8 ops, 4 intermediate nodes of 2 edges each) in the DSL."""

from __future__ import annotations

from spaces._graph import Cell, CellNode, Edge, Switch
from spaces._nodes import Block, Choice, Derived, Or, Ref, Repeat, Sequential
from spaces._registry import register_space
from spaces._space import Space

__all__ = ["DARTS_OPS", "darts", "darts_cell"]

#: the eight candidate ops of the DARTS paper, in its order
DARTS_OPS: tuple[str, ...] = (
    "none",
    "max_pool_3x3",
    "avg_pool_3x3",
    "skip_connect",
    "sep_conv_3x3",
    "sep_conv_5x5",
    "dil_conv_3x3",
    "dil_conv_5x5",
)


def _ops() -> Or:
    return Or(
        {
            "none": Block("zero"),
            "max_pool_3x3": Block("pool", kind="max", kernel=3),
            "avg_pool_3x3": Block("pool", kind="avg", kernel=3),
            "skip_connect": Block("skip"),
            "sep_conv_3x3": Block("sep_conv", kernel=3),
            "sep_conv_5x5": Block("sep_conv", kernel=5),
            "dil_conv_3x3": Block("dil_conv", kernel=3),
            "dil_conv_5x5": Block("dil_conv", kernel=5),
        }
    )


def darts_cell(width: object = None) -> Cell:
    """The DARTS normal cell over one input: ``pre`` (ReLU-conv1×1-BN to ``width`` channels, a
    ``Ref`` by default), then nodes ``n1`` .. ``n4``; each sums two edges, each an op of
    :data:`DARTS_OPS` (decision ``n{i}.e{k}.op``) applied to an earlier node chosen among ``pre``
    and the nodes before (decision ``n{i}.e{k}.input``: 1 = ``pre``, 2 = ``n1``, ...); the cell
    concatenates ``n1`` .. ``n4`` (4 × ``width`` channels).

    Unlike DARTS, whose cells read the two previous cells' outputs, a cell reads one: its
    ``pre`` node plays both input nodes' part."""
    nodes: dict[str, CellNode] = {
        "pre": CellNode([Edge(0, Block("relu_conv_bn", out=Ref("width") if width is None else width, kernel=1))])
    }
    for i in range(1, 5):
        inputs = list(range(1, i + 1))  # pre is node 1, n1 is node 2, ...
        edge_input = inputs[0] if len(inputs) == 1 else None
        nodes[f"n{i}"] = CellNode(
            [Edge(edge_input if edge_input is not None else Choice(inputs), _ops()) for _ in range(2)]
        )
    return Cell(nodes, output=["n1", "n2", "n3", "n4"], merge="concat")


@register_space
def darts(in_chans: int = 3, num_classes: int = 10, resolution: int = 32, channels: int = 16, cells: int = 2) -> Space:
    """A DARTS-style network: a 3×3 conv-BN stem to ``channels``, three stages of ``cells`` cells
    (width ``channels``, ×2, ×4; a NAS-Bench-201 residual reduction before the second and third),
    global pooling and a linear classifier. All cells share one cell's decisions
    (``stages.cell.n{i}.e{k}.input`` / ``.op``): the stages and their cells are shared repeats."""
    reduce = Switch(Derived("index > 0"), {False: None, True: Block("nb201_reduction", out=Ref("width"))})
    stage = Sequential(
        {"reduce": reduce, "cell": Repeat(darts_cell(), cells, shared=True)},
        params={"width": Derived("channels * 2 ** index")},
    )
    body = Sequential(
        {
            "stem": Block("conv_bn", out=Ref("channels"), kernel=3),
            "stages": Repeat(stage, 3, shared=True),
            "head": Block("classifier", num_classes=Ref("num_classes")),
        },
        params={"channels": channels},
    )
    return Space(
        "darts",
        body,
        in_chans=in_chans,
        num_classes=num_classes,
        resolution=resolution,
        description="DARTS-style cell space (8 ops, 4 intermediate nodes with 2 chosen inputs each)",
    )
