"""Aging (regularized) evolution, Real et al. 2019, over any DSL space.

The population is a queue: each new child enters, the *oldest* member leaves. A parent is the
fittest of ``sample_size`` random members (tournament); the child is ``space.mutate(parent)``,
or with probability ``crossover_prob`` ``space.mutate(space.crossover(p1, p2))`` of two
tournament winners. Fitness follows Deb's rules under constraints (feasible first, then lower
violation) and a random augmented-Chebyshev scalarisation per tournament with several objectives.
"""

from __future__ import annotations

from collections import deque
from collections.abc import Sequence
from typing import Any

from hwnas.errors import ConfigError
from nas.search._registry import register_searcher
from nas.search.base import Searcher, Trial
from nas.search.selection import objective_ranges, random_weights, tournament
from spaces.arch import Arch

__all__ = ["AgingEvolution"]


@register_searcher("evolution", aliases=("rea", "aging-evolution"))
class AgingEvolution(Searcher):
    """Regularized evolution: ``population_size`` random archs, then tournament + mutation."""

    name = "evolution"

    def __init__(
        self,
        space: Any,
        objectives: Sequence[Any] | Any = ("accuracy",),
        constraints: Sequence[Any] = (),
        seed: int | None = None,
        *,
        population_size: int = 20,
        sample_size: int = 5,
        crossover_prob: float = 0.0,
        mutations: int = 1,
    ) -> None:
        super().__init__(space, objectives, constraints, seed)
        if population_size < 2 or not 1 <= sample_size <= population_size:
            raise ConfigError(
                f"evolution needs population_size >= 2 and 1 <= sample_size <= population_size, "
                f"got {population_size}, {sample_size}"
            )
        if not 0.0 <= crossover_prob <= 1.0:
            raise ConfigError(f"crossover_prob must be in [0, 1], got {crossover_prob}")
        self.population_size = population_size
        self.sample_size = sample_size
        self.crossover_prob = crossover_prob
        self.mutations = mutations
        self.population: deque[Trial] = deque()
        self._asked = 0

    def ask(self) -> Arch:
        self._asked += 1
        if len(self.population) < self.population_size or self._asked <= self.population_size:
            return self.sample_unseen()
        multi = len(self.objectives) > 1
        weights = random_weights(self.rng, len(self.objectives)) if multi else None
        ranges = objective_ranges(self.objectives, self.history) if multi else None
        child: Arch | None = None
        for _ in range(50):
            parent = tournament(self.rng, self.objectives, self.population, self.sample_size, weights, ranges).arch
            if self.crossover_prob and self.rng.random() < self.crossover_prob:
                other = tournament(self.rng, self.objectives, self.population, self.sample_size, weights, ranges).arch
                if other != parent:
                    parent = self.space.crossover(parent, other, self.rng)
            child = self.space.mutate(parent, self.rng, n=self.mutations)
            if not self.is_told(child):
                return child
        assert child is not None
        return child

    def _after_tell(self, trial: Trial) -> None:
        self.population.append(trial)
        while len(self.population) > self.population_size:
            self.population.popleft()

    def _after_repeat(self, trial: Trial) -> None:
        self._after_tell(trial)  # a re-proposed arch re-enters the population (it ages again)

    def describe(self) -> dict[str, Any]:
        return {
            **super().describe(),
            "population_size": self.population_size,
            "sample_size": self.sample_size,
            "crossover_prob": self.crossover_prob,
        }
