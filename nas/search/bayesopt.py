"""Bayesian optimisation over DSL archs with the decision-match GP (``"bo"``).

After ``n_init`` random archs, every ask fits the surrogates of :class:`~nas.search.surrogate.ArchModel`
on the told trials only and evaluates the candidate with the highest acquisition (expected
improvement; times the probability of feasibility under constraints; hypervolume improvement
with two objectives). Candidates are the whole space when it has at most ``pool_limit`` archs
(the space is enumerated through the DSL; nothing about the archs' values is known), otherwise
``n_random`` random samples plus mutants and crossovers of the best trials so far.

With two objectives, ``ref_point`` (one value per objective, in the metrics' own units) is the
hypervolume reference point of the user's region of interest, as multi-objective BO libraries
ask for; without it the reference is set from the observed values.
"""

from __future__ import annotations

import weakref
from collections.abc import Sequence
from typing import Any

import numpy as np

from hwnas.errors import ConfigError, HwnasError
from nas.search._registry import register_searcher
from nas.search.base import Searcher, Trial
from nas.search.selection import fitness, objective_ranges
from nas.search.surrogate import ArchModel, one_hot, one_hot_slots
from spaces.arch import Arch

__all__ = ["BayesOptSearcher"]

_ENUM_CACHE: weakref.WeakKeyDictionary[Any, tuple[list[Arch], dict[Arch, int], np.ndarray]] = (
    weakref.WeakKeyDictionary()
)


def _enumerated(space: Any, limit: int) -> tuple[list[Arch], dict[Arch, int], np.ndarray] | None:
    """Every arch of ``space`` with its one-hot code, if the space has at most ``limit`` archs."""
    cached = _ENUM_CACHE.get(space)
    if cached is not None:
        return cached
    try:
        if space.size(ignore_constraints=True) > limit:
            return None
        archs = list(space.enumerate(limit=limit))
    except HwnasError:
        return None
    slots = one_hot_slots(space)
    codes = np.stack([one_hot(space, a, slots) for a in archs])  # the space's own archs: no re-validation
    out = (archs, {a: i for i, a in enumerate(archs)}, codes)
    _ENUM_CACHE[space] = out
    return out


@register_searcher("bo", aliases=("bayesopt", "gp-bo"))
class BayesOptSearcher(Searcher):
    """GP Bayesian optimisation with the decision-match kernel (see the module docstring)."""

    name = "bo"

    def __init__(
        self,
        space: Any,
        objectives: Sequence[Any] | Any = ("accuracy",),
        constraints: Sequence[Any] = (),
        seed: int | None = None,
        *,
        n_init: int = 5,
        order: int = 3,
        beta: float = 1.0,
        pool_limit: int = 50_000,
        n_random: int = 500,
        n_mutants: int = 20,
        top_k: int = 10,
        ref_point: Sequence[float] | None = None,
    ) -> None:
        super().__init__(space, objectives, constraints, seed)
        if n_init < 1:
            raise ConfigError(f"n_init must be >= 1, got {n_init}")
        self.n_init = n_init
        self.pool_limit = pool_limit
        self.n_random = n_random
        self.n_mutants = n_mutants
        self.top_k = top_k
        self.model = ArchModel(space, self.objectives, self.constraints, order=order, beta=beta, ref_point=ref_point)
        self._pending: set[Arch] = set()
        self._full = _enumerated(space, pool_limit) if pool_limit > 0 else None
        if self._full is not None:
            self._mask = np.ones(len(self._full[0]), dtype=bool)
            self.model.set_codes(self._full[0], self._full[2])

    def _exclude(self, arch: Arch) -> None:
        if self._full is not None:
            i = self._full[1].get(arch)
            if i is not None:
                self._mask[i] = False

    def _pool(self) -> tuple[list[Arch], np.ndarray | None]:
        if self._full is not None:
            archs, _, codes = self._full
            idx = np.flatnonzero(self._mask)
            return [archs[i] for i in idx], codes[idx]
        cands: dict[Arch, None] = {}
        for _ in range(self.n_random):
            cands[self.space.sample(self.rng)] = None
        ranges = objective_ranges(self.objectives, self.history) if len(self.objectives) > 1 else None
        ranked = sorted(self.history, key=lambda t: fitness(self.objectives, t, None, ranges), reverse=True)[
            : self.top_k
        ]
        try:
            for t in ranked:
                for j in range(self.n_mutants):
                    cands[self.space.mutate(t.arch, self.rng, n=1 + j % 2)] = None
            for i in range(len(ranked)):
                for j in range(i + 1, len(ranked)):
                    cands[self.space.crossover(ranked[i].arch, ranked[j].arch, self.rng)] = None
        except HwnasError:  # a space without neighbours (a single arch): the random samples must do
            pass
        pool = [a for a in cands if not self.is_told(a) and a not in self._pending]
        return pool, None

    def ask(self) -> Arch:
        if self.n_trials + len(self._pending) < self.n_init or self.n_trials < 2:
            arch = self.sample_unseen()
            if arch in self._pending:
                arch = self.sample_unseen()
        else:
            pool, codes = self._pool()
            if not pool:
                arch = self.sample_unseen()
            else:
                scores = self.model.acquisition(self.history, pool, self.rng, pool_codes=codes)
                top = np.flatnonzero(scores >= scores.max() - 1e-12 * max(1.0, abs(scores.max())))
                arch = pool[int(top[self.rng.randrange(len(top))])]
        self._pending.add(arch)
        self._exclude(arch)
        return arch

    def _after_tell(self, trial: Trial) -> None:
        self._pending.discard(trial.arch)
        self._exclude(trial.arch)

    def describe(self) -> dict[str, Any]:
        return {
            **super().describe(),
            "n_init": self.n_init,
            "order": self.model.order,
            "pool": "whole space" if self._full is not None else f"{self.n_random} random + mutants",
        }
