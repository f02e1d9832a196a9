"""Wiring steps of a network *program*.

A walked arch is a program: a sequence of steps applied to one *current* tensor. A
:class:`~spaces.ResolvedBlock` step applies its op to the current tensor; a :class:`Wire` step
moves tensors between named registers and the current tensor, which is how graph nodes
(:mod:`spaces._graph`: cells, parallel branches, residuals) describe their topology. A chain
of blocks is a program without wires. Torch-free.
"""

from __future__ import annotations

from dataclasses import dataclass, field

__all__ = ["MERGES", "ResolvedMerge", "Wire"]

#: how the outputs of several branches or edges are combined
MERGES: tuple[str, ...] = ("add", "concat")


@dataclass(frozen=True)
class ResolvedMerge:
    """One merge of a network with the shapes it reads: ``mode`` (``add`` or ``concat``) of
    ``inputs`` tensors, each ``(channels, height, width)``, at ``path`` (the merging node's scope
    and ``merge``, or ``residual`` for a residual's sum). What a latency table prices besides
    the blocks: a merge of a cell's edges, of a cell's output nodes, of parallel branches."""

    path: str
    mode: str
    inputs: tuple[tuple[int, int, int], ...]

    @property
    def h(self) -> int:
        return self.inputs[0][1]

    @property
    def w(self) -> int:
        return self.inputs[0][2]

    @property
    def channels(self) -> tuple[int, ...]:
        """The channels of each input, in order."""
        return tuple(c for c, _, _ in self.inputs)

    @property
    def cout(self) -> int:
        return sum(self.channels) if self.mode == "concat" else self.inputs[0][0]

    def signature(self) -> tuple[object, ...]:
        """Everything about the merge but its position: equal signatures cost the same."""
        return ("merge", self.mode, self.inputs)


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
    #: a merge's shapes and position (for latency tables; not part of the wiring's identity)
    part: ResolvedMerge | None = field(default=None, compare=False, repr=False)

    def __str__(self) -> str:
        if self.kind == "merge":
            return f"{self.mode}({', '.join(self.sources)})"
        return f"{self.kind} {self.slot}"
