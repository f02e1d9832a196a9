"""Wiring steps of a network *program*.

A walked arch is a program: a sequence of steps applied to one *current* tensor. A
:class:`~spaces.ResolvedBlock` step applies its op to the current tensor; a :class:`Wire` step
moves tensors between named registers and the current tensor, which is how graph nodes
(:mod:`spaces._graph`: cells, parallel branches, residuals) describe their topology. A chain
of blocks is a program without wires. Torch-free.
"""

from __future__ import annotations

from dataclasses import dataclass

__all__ = ["MERGES", "Wire"]

#: how the outputs of several branches or edges are combined
MERGES: tuple[str, ...] = ("add", "concat")


@dataclass(frozen=True)
class Wire:
    """One wiring step.

    ``save``: register ``slot`` := current; ``load``: current := register ``slot``;
    ``merge``: current := ``mode`` (``add`` or ``concat`` along channels) of the registers
    ``sources``, in order.
    """

    kind: str  # save | load | merge
    slot: str = ""
    sources: tuple[str, ...] = ()
    mode: str = ""

    def __str__(self) -> str:
        if self.kind == "merge":
            return f"{self.mode}({', '.join(self.sources)})"
        return f"{self.kind} {self.slot}"
