"""Monte-Carlo tree search over the DSL's ordered decisions (DeepArchitect's MCTS), and SMBO.

One tree level per decision in the space's walk order (``space.next_decision`` gives the next
decision given the values taken so far, so conditional decisions appear only under the branch
that opens them). Each ask descends from the root choosing children by UCT,

    score = mean_value + c * sqrt(2 * ln(N_parent) / n_child),   unvisited children = +inf,

expands one unvisited child (chosen at random), completes the arch with a random rollout
(``space.complete``) and, when the arch is told, backs the reward up along the path. Rewards are
the trials' rank-normalised utilities in [0, 1] (feasible first under constraints; a random
scalarisation per ask with several objectives), recomputed at every ask so that node means
stay comparable as the history grows.

:class:`SMBOSearcher` (``"smbo"``) is the model-based variant: each ask draws many candidates
from the tree policy and at random, scores them with a surrogate trained on the queried archs
(the decision-match GP of :mod:`nas.search.surrogate`, expected improvement) and evaluates the
best one, backing up its path like MCTS.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from typing import Any

import numpy as np

from hwnas.errors import ConfigError
from nas.search._registry import register_searcher
from nas.search.base import Searcher, Trial
from nas.search.selection import utilities
from spaces.arch import Arch

__all__ = ["MCTSSearcher", "SMBOSearcher"]


def _key(value: Any) -> tuple[str, Any]:
    return (type(value).__name__, value)


class _Node:
    __slots__ = ("children", "visits", "trials")

    def __init__(self) -> None:
        self.children: dict[tuple[str, Any], _Node] = {}
        self.visits = 0
        self.trials: list[int] = []


@register_searcher("mcts")
class MCTSSearcher(Searcher):
    """MCTS with UCT (``c`` = exploration constant, DeepArchitect's default 1.0)."""

    name = "mcts"

    def __init__(
        self,
        space: Any,
        objectives: Sequence[Any] | Any = ("accuracy",),
        constraints: Sequence[Any] = (),
        seed: int | None = None,
        *,
        c: float = 1.0,
    ) -> None:
        super().__init__(space, objectives, constraints, seed)
        if c < 0:
            raise ConfigError(f"the UCT exploration constant c must be >= 0, got {c}")
        self.c = c
        self.root = _Node()
        self._pending: dict[Arch, list[_Node]] = {}
        self._util: np.ndarray = np.zeros(0)

    # -- tree policy ------------------------------------------------------------------
    def _mean(self, node: _Node) -> float:
        if not node.trials:
            return 0.5
        return float(self._util[node.trials].mean())

    def _descend(self, expand: bool) -> tuple[dict[str, Any], list[_Node]]:
        """Walk from the root by UCT; returns the partial assignment and the node path.

        With ``expand`` the first unvisited child is added to the tree (MCTS's expansion);
        without, the walk stops there without changing the tree (used to draw candidates).
        """
        partial: dict[str, Any] = {}
        node = self.root
        path = [node]
        while True:
            d = self.space.next_decision(partial)
            if d is None:
                return partial, path
            unvisited = [o for o in d.options if _key(o) not in node.children]
            if unvisited:
                value = unvisited[self.rng.randrange(len(unvisited))]
                partial[d.path] = value
                if expand:
                    child = _Node()
                    node.children[_key(value)] = child
                    path.append(child)
                return partial, path
            log_n = math.log(max(node.visits, 1))
            best_score, best = -math.inf, []
            for o in d.options:
                ch = node.children[_key(o)]
                score = self._mean(ch) + self.c * math.sqrt(2.0 * log_n / max(ch.visits, 1))
                if score > best_score + 1e-12:
                    best_score, best = score, [o]
                elif abs(score - best_score) <= 1e-12:
                    best.append(o)
            value = best[self.rng.randrange(len(best))]
            partial[d.path] = value
            node = node.children[_key(value)]
            path.append(node)

    def _path_for(self, arch: Arch, expand: bool) -> list[_Node]:
        """The tree nodes along ``arch``'s decisions (expanding at most one new node)."""
        partial: dict[str, Any] = {}
        node = self.root
        path = [node]
        while True:
            d = self.space.next_decision(partial)
            if d is None or d.path not in arch:
                return path
            value = arch[d.path]
            partial[d.path] = value
            child = node.children.get(_key(value))
            if child is None:
                if expand:
                    child = _Node()
                    node.children[_key(value)] = child
                    path.append(child)
                return path
            node = child
            path.append(node)

    def _refresh_utilities(self) -> None:
        self._util = utilities(self.rng, self.objectives, self.history)

    def ask(self) -> Arch:
        self._refresh_utilities()
        arch: Arch | None = None
        path: list[_Node] = []
        for _ in range(20):
            partial, path = self._descend(expand=True)
            arch = self.space.complete(partial, self.rng)
            if not self.is_told(arch) and arch not in self._pending:
                break
        assert arch is not None
        for n in path:
            n.visits += 1  # visits count at ask time (a virtual loss for asks not yet told)
        self._pending[arch] = path
        return arch

    def _after_tell(self, trial: Trial) -> None:
        path = self._pending.pop(trial.arch, None)
        if path is None:  # told without being asked (warm start, shared study)
            path = self._path_for(trial.arch, expand=True)
            for n in path:
                n.visits += 1
        for n in path:
            n.trials.append(trial.number)

    def describe(self) -> dict[str, Any]:
        return {**super().describe(), "c": self.c}


@register_searcher("smbo")
class SMBOSearcher(MCTSSearcher):
    """MCTS proposals scored by a surrogate: ``n_candidates`` tree-policy rollouts plus as many
    random samples per ask; the one with the highest expected improvement is evaluated."""

    name = "smbo"

    def __init__(
        self,
        space: Any,
        objectives: Sequence[Any] | Any = ("accuracy",),
        constraints: Sequence[Any] = (),
        seed: int | None = None,
        *,
        c: float = 1.0,
        n_candidates: int = 50,
        n_init: int = 10,
        order: int = 2,
        epsilon: float = 0.0,
    ) -> None:
        super().__init__(space, objectives, constraints, seed, c=c)
        if n_candidates < 1 or n_init < 1:
            raise ConfigError("n_candidates and n_init must be >= 1")
        from nas.search.surrogate import ArchModel

        self.n_candidates = n_candidates
        self.n_init = n_init
        self.epsilon = epsilon
        self.model = ArchModel(space, self.objectives, self.constraints, order=order)

    def ask(self) -> Arch:
        if self.n_trials < self.n_init or self.rng.random() < self.epsilon:
            return super().ask()
        self._refresh_utilities()
        candidates: dict[Arch, None] = {}
        for _ in range(self.n_candidates):
            partial, _ = self._descend(expand=False)
            a = self.space.complete(partial, self.rng)
            if not self.is_told(a) and a not in self._pending:
                candidates[a] = None
            b = self.space.sample(self.rng)
            if not self.is_told(b) and b not in self._pending:
                candidates[b] = None
        if not candidates:
            return super().ask()
        pool = list(candidates)
        scores = self.model.acquisition(self.history, pool, self.rng)
        arch = pool[int(np.argmax(scores))]
        path = self._path_for(arch, expand=True)
        for n in path:
            n.visits += 1
        self._pending[arch] = path
        return arch

    def describe(self) -> dict[str, Any]:
        return {**super().describe(), "n_candidates": self.n_candidates, "n_init": self.n_init}
