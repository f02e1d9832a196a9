"""``nb201``: the NAS-Bench-201 cell space (6 edges × 5 ops = 15,625 cells)."""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from hwnas.errors import InvalidArchError
from spaces._graph import Cell, CellNode, Edge, Switch
from spaces._nodes import Block, Derived, Or, Ref, Repeat, Sequential
from spaces._registry import register_space
from spaces._space import Space
from spaces.arch import Arch
from spaces.catalog import NB201_EDGES, NB201_OPS
from spaces.formatters import register_formatter

__all__ = [
    "NB201_PATHS",
    "arch_str_from_edges",
    "edges_from_arch_str",
    "nb201",
    "nb201_arch_from_str",
    "nb201_arch_str",
]


def arch_str_from_edges(edges: dict[str, str]) -> str:
    """``{'e1_0': 'nor_conv_3x3', ...}`` → ``|nor_conv_3x3~0|+|...~0|...~1|+|...|``."""
    nodes = []
    for i in range(1, 4):
        nodes.append("|" + "|".join(f"{edges[f'e{i}_{j}']}~{j}" for j in range(i)) + "|")
    return "+".join(nodes)


def edges_from_arch_str(arch_str: str) -> dict[str, str]:
    """Parse the benchmark's ``arch_str`` into edge ops; raises ValueError on bad input."""
    text = arch_str.strip()
    parts = text.split("+")
    if len(parts) != 3:
        raise InvalidArchError(f"arch_str {arch_str!r}: expected 3 nodes separated by '+', got {len(parts)}")
    edges: dict[str, str] = {}
    for i, part in enumerate(parts, start=1):
        if not (part.startswith("|") and part.endswith("|")):
            raise InvalidArchError(f"arch_str {arch_str!r}: node {i} must be written |op~j|...|")
        items = [x for x in part[1:-1].split("|")]
        if len(items) != i:
            raise InvalidArchError(f"arch_str {arch_str!r}: node {i} needs {i} inputs, got {len(items)}")
        for item in items:
            op, sep, j = item.partition("~")
            if not sep or not j.isdigit() or int(j) >= i:
                raise InvalidArchError(f"arch_str {arch_str!r}: bad edge {item!r} into node {i}")
            if op not in NB201_OPS:
                raise InvalidArchError(f"arch_str {arch_str!r}: unknown op {op!r} (ops: {', '.join(NB201_OPS)})")
            key = f"e{i}_{j}"
            if key in edges:
                raise InvalidArchError(f"arch_str {arch_str!r}: edge {j}->{i} given twice")
            edges[key] = op
    return edges


#: the decision path of each benchmark edge ``e{i}_{j}`` (node i from node j) in the ``nb201`` space
NB201_PATHS: dict[str, str] = {e: f"stages.cell.n{e[1]}.e{e[3]}.op" for e in NB201_EDGES}


def nb201_arch_str(arch: Mapping[str, Any]) -> str:
    """The benchmark's ``arch_str`` of an ``nb201`` arch."""
    return arch_str_from_edges({e: str(arch[p]) for e, p in NB201_PATHS.items()})


def nb201_arch_from_str(arch_str: str) -> Arch:
    """The ``nb201`` arch of a benchmark ``arch_str``."""
    return Arch({NB201_PATHS[e]: op for e, op in edges_from_arch_str(arch_str).items()})


@register_formatter("nb201")
def _format(space: Space, arch: Arch) -> str:
    return nb201_arch_str(arch)


def nb201_cell() -> Cell:
    """The NAS-Bench-201 cell in the DSL: node ``n{i}`` sums an op (an :class:`~spaces.Or` over the
    five ops, labelled ``op``) of every earlier node ``j`` (edge ``e{j}``); it outputs node 3."""

    def ops() -> Or:
        return Or(
            {
                "none": Block("zero"),
                "skip_connect": Block("skip"),
                "nor_conv_1x1": Block("relu_conv_bn", kernel=1),
                "nor_conv_3x3": Block("relu_conv_bn", kernel=3),
                "avg_pool_3x3": Block("pool", kind="avg", kernel=3),
            }
        )

    return Cell({f"n{i}": CellNode({f"e{j}": Edge(j, ops()) for j in range(i)}) for i in (1, 2, 3)})


@register_space
def nb201(in_chans: int = 3, num_classes: int = 10, resolution: int = 32, channels: int = 16, cells: int = 5) -> Space:
    """NAS-Bench-201: one cell (edge ``j -> i`` is the decision ``stages.cell.n{i}.e{j}.op``) in
    the benchmark's network of ``3 × cells`` cells starting at ``channels`` channels: a 3×3 conv-BN
    stem, three stages of cells with a residual reduction (channels doubled) before the second and
    third, BN-ReLU, global pooling and a linear classifier. Every cell shares the decisions: the
    stages and the cells of a stage are shared repeats."""
    reduce = Switch(
        Derived("index > 0"),
        {False: None, True: Block("nb201_reduction", out=Derived("2 * channels * 2 ** (index - 1)"))},
    )
    stage = Sequential({"reduce": reduce, "cell": Repeat(nb201_cell(), cells, shared=True)})
    body = Sequential(
        {
            "stem": Block("conv_bn", out=Ref("channels"), kernel=3),
            "stages": Repeat(stage, 3, shared=True),
            "lastact": Block("bn_act"),
            "head": Block("classifier", num_classes=Ref("num_classes")),
        },
        params={"channels": channels},
    )
    return Space(
        "nb201",
        body,
        in_chans=in_chans,
        num_classes=num_classes,
        resolution=resolution,
        description="NAS-Bench-201 cell space (DARTS-style cell, 6 edges x 5 ops)",
        formatter=_format,
    )
