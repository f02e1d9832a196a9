"""Selection helpers of the searchers: fitness, scalarisation, tournaments, utilities.

Free functions over a searcher's objectives and trials, kept apart from the :class:`Searcher`
interface (as Optuna keeps its multi-objective helpers apart from ``BaseSampler``). Objectives
are oriented so that larger is better (:func:`oriented`); infeasible trials always rank below
feasible ones (Deb's rules); several objectives are compared by augmented Chebyshev
scalarisation after min-max normalisation over the trials told so far.

    ranges = objective_ranges(searcher.objectives, searcher.history)
    parent = tournament(searcher.rng, searcher.objectives, population, 5, ranges=ranges)
"""

from __future__ import annotations

import math
import random
from collections.abc import Iterable, Sequence
from typing import TYPE_CHECKING

from nas.search.base import Objective, SearchError, Trial

if TYPE_CHECKING:  # pragma: no cover
    import numpy as np

__all__ = ["fitness", "objective_ranges", "oriented", "random_weights", "scalarise", "tournament", "utilities"]

Ranges = tuple[list[float], list[float]]


def oriented(objectives: Sequence[Objective], trial: Trial) -> tuple[float, ...]:
    """The trial's objectives, each signed so that larger is better."""
    return tuple(o.sign * v for o, v in zip(objectives, trial.objectives))


def objective_ranges(objectives: Sequence[Objective], trials: Iterable[Trial]) -> Ranges:
    """Per objective (oriented to maximisation), the lowest and highest finite value of ``trials``
    (``[0, ...], [1, ...]`` when there is none)."""
    pts = [oriented(objectives, t) for t in trials if all(math.isfinite(v) for v in t.objectives)]
    if not pts:
        k = len(objectives)
        return [0.0] * k, [1.0] * k
    return [min(c) for c in zip(*pts)], [max(c) for c in zip(*pts)]


def random_weights(rng: random.Random, k: int) -> list[float]:
    """``k`` weights drawn uniformly from the simplex (for multi-objective scalarisation)."""
    raw = [-math.log(1.0 - rng.random()) for _ in range(k)]
    s = sum(raw)
    return [r / s for r in raw]


def scalarise(
    objectives: Sequence[Objective], trial: Trial, ranges: Ranges, weights: Sequence[float] | None = None
) -> float:
    """Augmented Chebyshev scalarisation of the objectives normalised by ``ranges``
    (:func:`objective_ranges`); ``weights`` default to equal."""
    k = len(objectives)
    w = list(weights) if weights is not None else [1.0 / k] * k
    lo, hi = ranges
    z = [(v - a) / (b - a) if b > a else 0.0 for v, a, b in zip(oriented(objectives, trial), lo, hi)]
    return min(wi * zi for wi, zi in zip(w, z)) + 0.05 * sum(wi * zi for wi, zi in zip(w, z))


def fitness(
    objectives: Sequence[Objective],
    trial: Trial,
    weights: Sequence[float] | None = None,
    ranges: Ranges | None = None,
) -> tuple[float, float]:
    """A total order for selection: feasible first (Deb's rules), then the (scalarised) objective.

    With several objectives, ``ranges`` (:func:`objective_ranges` over the trials told so far)
    are needed and ``weights`` (default: equal) scalarise them (:func:`scalarise`).
    """
    if not trial.feasible:
        return (-trial.violation, -math.inf)
    if len(objectives) == 1:
        return (0.0, objectives[0].sign * trial.objectives[0])
    if ranges is None:
        raise SearchError("the fitness of several objectives needs their ranges (objective_ranges)")
    return (0.0, scalarise(objectives, trial, ranges, weights))


def tournament(
    rng: random.Random,
    objectives: Sequence[Objective],
    population: Sequence[Trial],
    size: int,
    weights: Sequence[float] | None = None,
    ranges: Ranges | None = None,
) -> Trial:
    """Tournament selection: the fittest (:func:`fitness`) of ``size`` members drawn with replacement."""
    members = list(population)
    picks = [members[rng.randrange(len(members))] for _ in range(size)]
    return max(picks, key=lambda t: fitness(objectives, t, weights, ranges))


def utilities(rng: random.Random, objectives: Sequence[Objective], trials: Sequence[Trial]) -> np.ndarray:
    """Each trial's utility in [0, 1]: its rank by :func:`fitness` (ties share a rank; infeasible
    trials lowest). With several objectives the weights are drawn at random from ``rng``."""
    import numpy as np

    if not trials:
        return np.zeros(0)
    multi = len(objectives) > 1
    weights = random_weights(rng, len(objectives)) if multi else None
    ranges = objective_ranges(objectives, trials) if multi else None
    keys = [fitness(objectives, t, weights, ranges) for t in trials]
    order = sorted(range(len(keys)), key=lambda i: keys[i])
    out = np.zeros(len(keys))
    rank = 0
    for pos, i in enumerate(order):
        if pos > 0 and keys[i] != keys[order[pos - 1]]:
            rank = pos
        out[i] = rank
    return out / max(len(keys) - 1, 1)
