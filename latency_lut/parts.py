"""The parts a latency table prices a network by (torch-free).

A chain network is its blocks. A graph network (cells, parallel branches, residuals; see
:mod:`spaces._graph`) is its blocks (each edge's or node's op, at its input shape) and its
merges (:class:`spaces.ResolvedMerge`: a sum of ``k`` tensors, a concatenation), the wiring
between them being free. A cell space then needs a bounded set of measurements, not one per
cell variant: nb201's 15,625 cells take 20 blocks and 6 merges at 32 px, one free (``skip``,
an identity the engine removes) per resolution.

Two ops of no weights (:data:`~latency_lut.keys.SHARED_OPS`: pooling, ``zero``) applied to one
tensor, as two edges of a cell reading one node, are one op in the engine's graph (onnxruntime
eliminates common subexpressions): they are priced once.

* :func:`network_parts` — the priced parts of one arch, in program order;
* :func:`space_parts` — every distinct priced part the space can contain (or those of sampled
  archs), what ``nas profile`` measures.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from latency_lut.keys import is_free, is_shared
from spaces._program import Wire

__all__ = ["add_parts", "network_parts", "sampled_parts", "space_parts"]


def network_parts(space: Any, arch: Mapping[str, Any]) -> list[Any]:
    """The parts of ``arch`` a LUT sums, in program order: its blocks (but the free ones) and
    the merges of its graph nodes."""
    out: list[Any] = []
    regs: dict[str, Any] = {}
    current: Any = "input"  # which tensor the program's current tensor is
    computed: dict[tuple[Any, ...], Any] = {}  # (input tensor, signature) -> output of a shared op
    for i, step in enumerate(space.program(arch)):
        if isinstance(step, Wire):
            if step.kind == "save":
                regs[step.slot] = current
            elif step.kind == "load":
                current = regs[step.slot]
            else:
                if step.part is not None:
                    out.append(step.part)
                current = i
        elif is_free(step):
            continue  # an identity: the same tensor
        elif is_shared(step):
            key = (current, step.signature())
            if key not in computed:  # the engine computes it once per input tensor
                computed[key] = i
                out.append(step)
            current = computed[key]
        else:
            out.append(step)
            current = i
    return out


def _signature(part: Any) -> tuple[Any, ...]:
    return tuple(part.signature())


def space_parts(space: Any) -> list[Any]:
    """Every distinct priced part of ``space``: :meth:`~spaces.Space.enumerate_blocks` (but the
    free ones) and :meth:`~spaces.Space.enumerate_merges`. A space whose walk resolves too many
    variants is refused (:class:`hwnas.errors.SpaceTooLargeError`, one line)."""
    merges = space.enumerate_merges() if hasattr(space, "enumerate_merges") else []
    return [b for b in space.enumerate_blocks() if not is_free(b)] + list(merges)


def sampled_parts(space: Any, archs: int, seed: int = 0) -> list[Any]:
    """The distinct priced parts of ``archs`` archs ``space.sample(seed + i)``."""
    seen: dict[tuple[Any, ...], Any] = {}
    for i in range(archs):
        for part in network_parts(space, space.sample(seed + i)):
            seen.setdefault(_signature(part), part)
    return list(seen.values())


def add_parts(parts: list[Any], more: Any) -> list[Any]:
    """``parts`` with those of ``more`` it lacks appended (by signature), in order."""
    seen = {_signature(p) for p in parts}
    for p in more:
        sig = _signature(p)
        if sig not in seen:
            seen.add(sig)
            parts.append(p)
    return parts
