"""Aging (regularized) evolution, Real et al. 2019, over any DSL space.

The population is a queue: each new child enters, the *oldest* member leaves. A parent is the
fittest of ``sample_size`` random members (tournament); the child is ``space.mutate(parent)``,
or with probability ``crossover_prob`` ``space.mutate(space.crossover(p1, p2))`` of two
tournament winners. Fitness follows Deb's rules under constraints (feasible first, then lower
violation) and a random augmented-Chebyshev scalarisation per tournament with several objectives.

:class:`PopulationSearcher` is the loop (the aging queue, the random start, the tournaments and
the retries until a child is new); a searcher built on it gives its mutation policy
(:meth:`PopulationSearcher.offspring`): :class:`AgingEvolution` mutates at random,
:class:`nas.search.hhnas.HHNASSearcher` with a learned policy.
"""

from __future__ import annotations

from collections import deque
from collections.abc import Callable, Sequence
from typing import Any

from hwnas.errors import ConfigError
from nas.search._registry import register_searcher
from nas.search.base import Searcher, Trial
from nas.search.selection import objective_ranges, random_weights, tournament
from spaces.arch import Arch

__all__ = ["AgingEvolution", "PopulationSearcher"]

#: children drawn per :meth:`PopulationSearcher.ask` before a told one is proposed again
_TRIES = 50


class PopulationSearcher(Searcher):
    """Aging evolution's loop: ``population_size`` random archs, then a child of tournament
    winners (``sample_size`` members each) per ask, drawn again until it is new; each told trial
    enters the population and the oldest member leaves. Subclasses give the mutation policy."""

    def __init__(
        self,
        space: Any,
        objectives: Sequence[Any] | Any,
        constraints: Sequence[Any],
        seed: int | None,
        population_size: int,
        sample_size: int,
    ) -> None:
        super().__init__(space, objectives, constraints, seed)
        if population_size < 2 or not 1 <= sample_size <= population_size:
            raise ConfigError(
                f"{self.name} needs population_size >= 2 and 1 <= sample_size <= population_size, "
                f"got {population_size}, {sample_size}"
            )
        self.population_size = population_size
        self.sample_size = sample_size
        self.population: deque[Trial] = deque()
        self._asked = 0

    def offspring(self, select: Callable[[], Trial]) -> tuple[Arch, Any]:
        """One child, from parents that ``select()`` draws (a tournament each); returns the child
        and whatever :meth:`is_new` and :meth:`proposed` need to know of how it was made."""
        raise NotImplementedError

    def is_new(self, child: Arch, how: Any) -> bool:
        """Whether ``child`` may be proposed (default: it was not told yet)."""
        return not self.is_told(child)

    def proposed(self, child: Arch, how: Any) -> None:
        """``child`` is proposed (default: nothing)."""

    def ask(self) -> Arch:
        self._asked += 1
        if len(self.population) < self.population_size or self._asked <= self.population_size:
            return self.sample_unseen()
        multi = len(self.objectives) > 1
        weights = random_weights(self.rng, len(self.objectives)) if multi else None
        ranges = objective_ranges(self.objectives, self.history) if multi else None

        def select() -> Trial:
            return tournament(self.rng, self.objectives, self.population, self.sample_size, weights, ranges)

        child: Arch | None = None
        for _ in range(_TRIES):
            child, how = self.offspring(select)
            if self.is_new(child, how):
                self.proposed(child, how)
                return child
        assert child is not None
        return child

    def _enter(self, trial: Trial) -> None:
        """``trial`` joins the population; the oldest members leave beyond its size."""
        self.population.append(trial)
        while len(self.population) > self.population_size:
            self.population.popleft()

    def _after_tell(self, trial: Trial) -> None:
        self._enter(trial)

    def _after_repeat(self, trial: Trial) -> None:
        self._enter(trial)  # a re-proposed arch re-enters the population (it ages again)

    def describe(self) -> dict[str, Any]:
        return {**super().describe(), "population_size": self.population_size}


@register_searcher("evolution", aliases=("rea", "aging-evolution"))
class AgingEvolution(PopulationSearcher):
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
        super().__init__(space, objectives, constraints, seed, population_size, sample_size)
        if not 0.0 <= crossover_prob <= 1.0:
            raise ConfigError(f"crossover_prob must be in [0, 1], got {crossover_prob}")
        self.crossover_prob = crossover_prob
        self.mutations = mutations

    def offspring(self, select: Callable[[], Trial]) -> tuple[Arch, Any]:
        """``space.mutate`` of a tournament winner, or of the crossover of two winners."""
        parent = select().arch
        if self.crossover_prob and self.rng.random() < self.crossover_prob:
            other = select().arch
            if other != parent:
                parent = self.space.crossover(parent, other, self.rng)
        return self.space.mutate(parent, self.rng, n=self.mutations), None

    def describe(self) -> dict[str, Any]:
        return {**super().describe(), "sample_size": self.sample_size, "crossover_prob": self.crossover_prob}
