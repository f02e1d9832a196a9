"""Latencies of several model files side by side, by the one harness (:meth:`Engine.measure`).

Each pass times every model with the engine's harness, the order rotated by one model per pass,
so that a slow spell of a shared machine hits every model alike and no model always follows the
same one. A model's latency is the median of its pass medians.
"""

from __future__ import annotations

import os
import statistics
from collections.abc import Sequence
from dataclasses import dataclass

from hw_profiles.engines.base import Engine, Runner
from hw_profiles.harness import Stats

__all__ = ["Comparison", "compare_files"]


@dataclass(frozen=True)
class Comparison:
    """One model's latency over the passes (milliseconds)."""

    path: str
    median_ms: float  # median of the pass medians
    min_ms: float  # lowest pass median
    pass_medians_ms: tuple[float, ...]


def compare_files(engine: Engine, paths: Sequence[str | os.PathLike[str]], passes: int = 3) -> list[Comparison]:
    """Time each model file of ``paths`` on ``engine`` in ``passes`` rotating passes (see the
    module docstring); one :class:`Comparison` per path, in order."""
    if passes < 1:
        raise ValueError(f"passes must be >= 1, got {passes}")
    runners: list[Runner] = []
    try:
        for path in paths:
            runners.append(engine.load(path))
        stats: list[list[Stats]] = [[] for _ in runners]
        for p in range(passes):
            for i in range(len(runners)):
                k = (i + p) % len(runners)
                stats[k].append(engine.measure(runners[k]))
    finally:
        for runner in runners:
            runner.close()
    out = []
    for path, measured in zip(paths, stats):
        medians = tuple(s.median_ms for s in measured)
        out.append(Comparison(os.fspath(path), statistics.median(medians), min(medians), medians))
    return out
