"""Turn a network program (resolved blocks and wiring steps) into a ``torch.nn.Module``."""

from __future__ import annotations

import itertools
from collections.abc import Sequence

import torch
import torch.nn as nn

from hwnas.errors import SpaceDefinitionError
from spaces._nodes import ResolvedBlock
from spaces._program import Wire
from spaces.ops import build_op

__all__ = ["Network", "build_block", "build_network"]


def build_block(block: ResolvedBlock) -> nn.Module:
    """A freshly initialised module for one resolved block."""
    return build_op(block.op, block.cin, block.kwargs)


class Network(nn.Module):
    """A network made of blocks; ``block_paths[i]`` names block ``i`` (``blocks[i]``).

    A chain (no :class:`~spaces._program.Wire` in the program) applies ``blocks`` in order; a
    graph network runs its program: blocks transform the current tensor, wires save it to and
    load it from named registers and merge registers (sum, or concatenation along channels).
    """

    def __init__(self, program: Sequence[ResolvedBlock | Wire], input_shape: tuple[int, int, int]) -> None:
        super().__init__()
        blocks = [b for b in program if isinstance(b, ResolvedBlock)]
        if not blocks:
            raise SpaceDefinitionError("an arch resolved to no blocks: nothing to build")
        self.input_shape = tuple(input_shape)
        self.block_paths = [b.path for b in blocks]
        self.blocks = nn.Sequential(*(build_block(b) for b in blocks))
        steps: list[int | Wire] = []
        count = itertools.count()
        for step in program:
            steps.append(next(count) if isinstance(step, ResolvedBlock) else step)
        self.steps: tuple[int | Wire, ...] | None = tuple(steps) if any(isinstance(s, Wire) for s in program) else None

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        if self.steps is None:
            return self.blocks(x)
        regs: dict[str, torch.Tensor] = {}
        for step in self.steps:
            if isinstance(step, int):
                x = self.blocks[step](x)
            elif step.kind == "save":
                regs[step.slot] = x
            elif step.kind == "load":
                x = regs[step.slot]
            else:
                x = self.merge(step, [regs[s] for s in step.sources])
        return x

    def merge(self, wire: Wire, tensors: list[torch.Tensor]) -> torch.Tensor:
        """What a ``merge`` wire computes from its registers' tensors: their sum or their
        concatenation along channels. A subclass may weight them (DARTS' mixed ops)."""
        if wire.mode == "add":
            x = tensors[0]
            for t in tensors[1:]:
                x = x + t
            return x
        return torch.cat(tensors, dim=1)


def build_network(program: Sequence[ResolvedBlock | Wire], input_shape: tuple[int, int, int]) -> Network:
    net = Network(program, input_shape)
    net.eval()
    return net
