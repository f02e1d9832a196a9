"""Arch policies over a space: the largest / smallest subnet and structure sampling.

Everything is derived from the space's decisions, never hard-coded per space:

* a *numeric* decision (depth, width, kernel, expand ratio) takes its largest / smallest option;
* a boolean decision (``Optional``) is on for the largest subnet, off for the smallest;
* any other decision (an ``Or`` between block types, a width window, a string choice) is
  *structural*: it selects a sub-space rather than a size. It takes the value given in
  ``structure`` or its default. In a hyper-space such as ``spaceevo`` the trainer samples the
  structure each step and applies the sandwich rule inside it.
"""

from __future__ import annotations

import random
from collections.abc import Callable, Mapping
from typing import Any

from spaces import Arch, Decision, Space

__all__ = [
    "arch_size",
    "extreme_structure",
    "is_numeric",
    "is_structural",
    "largest_arch",
    "policy_arch",
    "sample_structure",
    "smallest_arch",
    "structure_of",
]


def is_numeric(d: Decision) -> bool:
    """A decision over numbers (not booleans): depth, width, kernel, expand ratio."""
    return bool(d.options) and all(isinstance(o, (int, float)) and not isinstance(o, bool) for o in d.options)


def _is_bool(d: Decision) -> bool:
    return all(isinstance(o, bool) for o in d.options)


def is_structural(d: Decision) -> bool:
    """A decision that picks a sub-space (``Or`` branch, string choice) rather than a size."""
    return d.kind == "or" or not (is_numeric(d) or _is_bool(d))


class _FirstOption(random.Random):
    """A stand-in generator for :meth:`Space.complete` that always picks the first option."""

    def randrange(self, start: int, stop: Any = None, step: int = 1) -> int:  # noqa: D102
        return 0 if stop is None else int(start)


def policy_arch(space: Space, choose: Callable[[Decision], Any], fixed: Mapping[str, Any] | None = None) -> Arch:
    """The arch whose every active decision is ``choose(decision)`` unless ``fixed`` sets it.

    Decisions that become active only after earlier answers (the blocks of a deeper stage, the
    decisions of a chosen branch) are resolved iteratively through the public space API.
    """
    values: dict[str, Any] = dict(fixed or {})
    for _ in range(len(space.decisions()) + 2):
        arch = space.complete(values, _FirstOption())
        new = [p for p in arch if p not in values]
        if not new:
            return space.validate({p: values[p] for p in arch})
        for p in new:
            values[p] = choose(space.decision(p))
    raise AssertionError("policy walk did not converge")  # pragma: no cover - bounded by the decision count


def _extreme(which: str, structure: Mapping[str, Any] | None) -> Callable[[Decision], Any]:
    def choose(d: Decision) -> Any:
        if structure and d.path in structure:
            return structure[d.path]
        if is_numeric(d):
            return max(d.options) if which == "largest" else min(d.options)
        if _is_bool(d):
            return which == "largest"
        return d.default

    return choose


def largest_arch(space: Space, structure: Mapping[str, Any] | None = None) -> Arch:
    """The largest subnet inside ``structure`` (structural decisions it leaves open take their
    defaults): every size decision at its maximum."""
    return policy_arch(space, _extreme("largest", structure), structure)


def smallest_arch(space: Space, structure: Mapping[str, Any] | None = None) -> Arch:
    """The smallest subnet inside ``structure``: every size decision at its minimum."""
    return policy_arch(space, _extreme("smallest", structure), structure)


def arch_size(space: Space, arch: Mapping[str, Any], cache: dict[Any, int] | None = None) -> int:
    """Number of parameters of ``arch`` (blocks built on the meta device: no memory, no init)."""
    import torch

    from spaces.ops import build_op

    cache = {} if cache is None else cache
    total = 0
    for rb in space.blocks(arch):
        k = (rb.op, rb.params, rb.cin)
        if k not in cache:
            with torch.device("meta"):
                cache[k] = sum(p.numel() for p in build_op(rb.op, rb.cin, rb.kwargs).parameters())
        total += cache[k]
    return total


def extreme_structure(space: Space, which: str, cache: dict[Any, int] | None = None) -> dict[str, Any]:
    """The structure (block types, width windows) whose largest (``which="largest"``) or
    smallest subnet has the most (fewest) parameters, by coordinate search over the structural
    decisions. ``{}`` for spaces without structural decisions."""
    if not any(is_structural(d) for d in space.decisions()):
        return {}
    pick = largest_arch if which == "largest" else smallest_arch
    better = (lambda a, b: a > b) if which == "largest" else (lambda a, b: a < b)
    cache = {} if cache is None else cache
    struct = structure_of(space, pick(space))
    best_size = arch_size(space, pick(space, struct), cache)
    for _ in range(3):
        changed = False
        for path in list(struct):
            for o in space.decision(path).options:
                if o == struct[path]:
                    continue
                cand = structure_of(space, pick(space, {**struct, path: o}))
                size = arch_size(space, pick(space, cand), cache)
                if better(size, best_size):
                    struct, best_size, changed = cand, size, True
        if not changed:
            break
    return struct


def structure_of(space: Space, arch: Mapping[str, Any]) -> dict[str, Any]:
    """The structural decisions of ``arch`` (empty for spaces without any)."""
    return {p: v for p, v in arch.items() if is_structural(space.decision(p))}


def sample_structure(space: Space, rng: random.Random) -> dict[str, Any]:
    """A random assignment of the structural decisions (``{}`` when the space has none)."""
    if not any(is_structural(d) for d in space.decisions()):
        return {}
    return structure_of(space, space.sample(rng))
