"""The former hard-coded NAS-Bench-201 network (``spaces/nb201_net.py`` until the ``nb201`` space
was written in the DSL), kept as the test oracle of the DSL network: stem, three stages of
identical cells, residual reductions.

Follows the benchmark's topology: a cell has 4 nodes; node ``i`` sums one op applied to
every earlier node ``j`` (edge ``e{i}_{j}``); the cell outputs node 3. Ops are ``none``
(zeros), ``skip_connect``, ``nor_conv_1x1`` / ``nor_conv_3x3`` (ReLU → conv → BN) and
``avg_pool_3x3``. Between stages a ResNet basic block halves the resolution and doubles
the channels.
"""

from __future__ import annotations

from collections.abc import Sequence

import torch
import torch.nn as nn

NB201_OPS = ("none", "skip_connect", "nor_conv_1x1", "nor_conv_3x3", "avg_pool_3x3")
NB201_EDGES = ("e1_0", "e2_0", "e2_1", "e3_0", "e3_1", "e3_2")

__all__ = ["NB201Cell", "NB201Network", "ReLUConvBN", "nb201_op"]


class ReLUConvBN(nn.Module):
    """Pre-activation conv: ReLU → k×k conv (no bias) → BatchNorm."""

    def __init__(self, cin: int, cout: int, kernel: int, stride: int = 1) -> None:
        super().__init__()
        self.act = nn.ReLU(inplace=False)
        self.conv = nn.Conv2d(cin, cout, kernel, stride, kernel // 2, bias=False)
        self.bn = nn.BatchNorm2d(cout)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.bn(self.conv(self.act(x)))


class _Zero(nn.Module):
    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return x * 0.0


def nb201_op(name: str, channels: int) -> nn.Module:
    """One NAS-Bench-201 edge op on ``channels`` channels (stride 1)."""
    if name == "none":
        return _Zero()
    if name == "skip_connect":
        return nn.Identity()
    if name == "nor_conv_1x1":
        return ReLUConvBN(channels, channels, 1)
    if name == "nor_conv_3x3":
        return ReLUConvBN(channels, channels, 3)
    if name == "avg_pool_3x3":
        return nn.AvgPool2d(3, 1, 1, count_include_pad=False)
    raise ValueError(f"unknown NAS-Bench-201 op {name!r} (ops: {', '.join(NB201_OPS)})")


class NB201Cell(nn.Module):
    """A cell with the six edges given in ``NB201_EDGES`` order."""

    def __init__(self, channels: int, edges: Sequence[str]) -> None:
        super().__init__()
        self.edge_names = tuple(NB201_EDGES)
        self.ops = nn.ModuleList(nb201_op(op, channels) for op in edges)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        nodes = [x]
        k = 0
        for i in range(1, 4):
            total = None
            for _j in range(i):
                y = self.ops[k](nodes[_j])
                total = y if total is None else total + y
                k += 1
            assert total is not None  # node i sums the edges from nodes 0 .. i-1
            nodes.append(total)
        return nodes[3]


class _ResidualReduction(nn.Module):
    def __init__(self, cin: int, cout: int) -> None:
        super().__init__()
        self.conv_a = ReLUConvBN(cin, cout, 3, 2)
        self.conv_b = ReLUConvBN(cout, cout, 3, 1)
        self.downsample = nn.Sequential(nn.AvgPool2d(2, 2), nn.Conv2d(cin, cout, 1, bias=False))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.conv_b(self.conv_a(x)) + self.downsample(x)


class NB201Network(nn.Module):
    """The benchmark's macro network (defaults: C=16, N=5 cells per stage)."""

    def __init__(
        self, in_chans: int, num_classes: int, edges: Sequence[str], channels: int = 16, cells: int = 5
    ) -> None:
        super().__init__()
        self.stem = nn.Sequential(nn.Conv2d(in_chans, channels, 3, padding=1, bias=False), nn.BatchNorm2d(channels))
        layers: list[nn.Module] = []
        c = channels
        for stage in range(3):
            if stage > 0:
                layers.append(_ResidualReduction(c, c * 2))
                c *= 2
            layers.extend(NB201Cell(c, edges) for _ in range(cells))
        self.cells = nn.Sequential(*layers)
        self.lastact = nn.Sequential(nn.BatchNorm2d(c), nn.ReLU(inplace=False))
        self.pool = nn.AdaptiveAvgPool2d(1)
        self.classifier = nn.Linear(c, num_classes)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        x = self.lastact(self.cells(self.stem(x)))
        return self.classifier(torch.flatten(self.pool(x), 1))
