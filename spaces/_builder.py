"""Turn a list of resolved blocks into a ``torch.nn.Module``."""

from __future__ import annotations

from collections.abc import Sequence

import torch
import torch.nn as nn

from hwnas.errors import SpaceDefinitionError
from spaces._nodes import ResolvedBlock
from spaces.ops import build_op

__all__ = ["Network", "build_block", "build_network"]


def build_block(block: ResolvedBlock) -> nn.Module:
    """A freshly initialised module for one resolved block."""
    return build_op(block.op, block.cin, block.kwargs)


class Network(nn.Module):
    """A network made of blocks applied in order; ``block_paths[i]`` names block ``i``."""

    def __init__(self, blocks: Sequence[ResolvedBlock], input_shape: tuple[int, int, int]) -> None:
        super().__init__()
        if not blocks:
            raise SpaceDefinitionError("an arch resolved to no blocks: nothing to build")
        self.input_shape = tuple(input_shape)
        self.block_paths = [b.path for b in blocks]
        self.blocks = nn.Sequential(*(build_block(b) for b in blocks))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.blocks(x)


def build_network(blocks: Sequence[ResolvedBlock], input_shape: tuple[int, int, int]) -> Network:
    net = Network(blocks, input_shape)
    net.eval()
    return net
