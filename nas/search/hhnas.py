"""HHNAS-AM: evolution over hierarchical templates with a mutation policy learned by Q-learning.

The space's decisions are grouped by *level* (how many ``Or`` branches enclose a decision: the
macro template is level 0, the micro decisions it opens are level 1, ...) and, within a level,
by the first path component under the innermost branch (``stage2``, ``act``; for a flat cell
space, each decision on its own). An *action* is such a (level, group); mutating with it changes
one random active decision of the group (decisions that become active get random values).

The policy is learned online: the state is the parent's macro context (the values of its
branch-opening decisions), the reward of a mutation is the child's utility minus the parent's
(rank-normalised over the history, so in [-1, 1]), and the Q-table is updated by
``Q(s, a) += lr * (r + gamma * max_a' Q(s', a') - Q(s, a))``. Actions are chosen
epsilon-greedily. Selection is aging evolution's tournament (see :mod:`nas.search.evolution`).
"""

from __future__ import annotations

from collections import defaultdict, deque
from collections.abc import Sequence
from typing import Any

from hwnas.errors import ConfigError, HwnasError
from nas.search._registry import register_searcher
from nas.search.base import Searcher, Trial
from nas.search.selection import objective_ranges, random_weights, tournament, utilities
from spaces.arch import Arch

__all__ = ["HHNASSearcher", "decision_groups"]


def _branch_scopes(space: Any) -> list[tuple[str, str]]:
    """(decision path, scope prefix) of every Or decision: branch ``b`` opens ``<scope>.b``."""
    out = []
    for d in space.decisions():
        if d.kind == "or":
            scope = d.path.rsplit(".", 1)[0] if "." in d.path else ""
            out.append((d.path, scope))
    return out


def decision_groups(space: Any) -> dict[str, tuple[int, str]]:
    """Map every decision path to its action ``(level, group)`` (see the module docstring)."""
    scopes = _branch_scopes(space)
    decisions = space.decisions()
    info: dict[str, tuple[int, str]] = {}
    for d in decisions:
        level, rel = 0, d.path
        for or_path, scope in scopes:
            if or_path == d.path:
                continue
            prefix = scope + "." if scope else ""
            if d.path.startswith(prefix):
                rest = d.path[len(prefix) :]
                head, _, tail = rest.partition(".")
                if tail and any(str(o) == head for o in space.decision(or_path).options):
                    level += 1
                    if len(tail) < len(rel):
                        rel = tail
        info[d.path] = (level, rel)
    # group by the first component of the relative path; split a level with a single group
    by_level: dict[int, set[str]] = defaultdict(set)
    for level, rel in info.values():
        by_level[level].add(rel.split(".", 1)[0])
    out = {}
    for path, (level, rel) in info.items():
        first = rel.split(".", 1)[0]
        out[path] = (level, rel if len(by_level[level]) == 1 else first)
    return out


@register_searcher("hhnas", aliases=("hhnas-am",))
class HHNASSearcher(Searcher):
    """Aging evolution whose mutation operator (level, group) is chosen by a learned Q-table."""

    name = "hhnas"

    def __init__(
        self,
        space: Any,
        objectives: Sequence[Any] | Any = ("accuracy",),
        constraints: Sequence[Any] = (),
        seed: int | None = None,
        *,
        population_size: int = 20,
        sample_size: int = 5,
        epsilon: float = 0.2,
        lr: float = 0.3,
        gamma: float = 0.5,
    ) -> None:
        super().__init__(space, objectives, constraints, seed)
        if population_size < 2 or not 1 <= sample_size <= population_size:
            raise ConfigError("hhnas needs population_size >= 2 and 1 <= sample_size <= population_size")
        if not 0.0 <= epsilon <= 1.0 or not 0.0 < lr <= 1.0 or not 0.0 <= gamma < 1.0:
            raise ConfigError("hhnas needs 0 <= epsilon <= 1, 0 < lr <= 1 and 0 <= gamma < 1")
        self.population_size = population_size
        self.sample_size = sample_size
        self.epsilon, self.lr, self.gamma = epsilon, lr, gamma
        self.groups = decision_groups(space)
        self._macro = [p for p, _ in _branch_scopes(space)]
        self.q: dict[tuple[Any, tuple[int, str]], float] = defaultdict(float)
        self.population: deque[Trial] = deque()
        self._asked = 0
        # arch -> (state, action, parent trial number) of the mutation that produced it
        self._origin: dict[Arch, tuple[Any, tuple[int, str], int]] = {}

    # -- policy ------------------------------------------------------------------------
    def state(self, arch: Arch) -> tuple[Any, ...]:
        """The macro context of ``arch``: the values of its branch-opening decisions."""
        return tuple((p, arch[p]) for p in self._macro if p in arch)

    def actions(self, arch: Arch) -> list[tuple[int, str]]:
        """The (level, group) actions with at least one mutable active decision in ``arch``."""
        acts: dict[tuple[int, str], None] = {}
        for d in self.space.active_decisions(arch):
            if len(d.options) > 1:
                acts[self.groups[d.path]] = None
        return list(acts)

    def _choose(self, state: Any, actions: list[tuple[int, str]]) -> tuple[int, str]:
        if self.rng.random() < self.epsilon:
            return actions[self.rng.randrange(len(actions))]
        best = max(self.q[(state, a)] for a in actions)
        top = [a for a in actions if self.q[(state, a)] >= best - 1e-12]
        return top[self.rng.randrange(len(top))]

    def _mutate_group(self, arch: Arch, action: tuple[int, str]) -> Arch:
        decisions = [
            d for d in self.space.active_decisions(arch) if len(d.options) > 1 and self.groups[d.path] == action
        ]
        d = decisions[self.rng.randrange(len(decisions))]
        others = [o for o in d.options if o != arch[d.path] or type(o) is not type(arch[d.path])]
        value = others[self.rng.randrange(len(others))]
        partial = {**arch, d.path: value}
        try:
            return self.space.complete(partial, self.rng)
        except HwnasError:  # the space's constraints reject this neighbourhood
            return self.space.mutate(arch, self.rng)

    # -- ask / tell --------------------------------------------------------------------
    def ask(self) -> Arch:
        self._asked += 1
        if len(self.population) < self.population_size or self._asked <= self.population_size:
            return self.sample_unseen()
        multi = len(self.objectives) > 1
        weights = random_weights(self.rng, len(self.objectives)) if multi else None
        ranges = objective_ranges(self.objectives, self.history) if multi else None
        child: Arch | None = None
        for _ in range(50):
            parent = tournament(self.rng, self.objectives, self.population, self.sample_size, weights, ranges)
            state = self.state(parent.arch)
            action = self._choose(state, self.actions(parent.arch))
            child = self._mutate_group(parent.arch, action)
            if not self.is_told(child) and child != parent.arch:
                self._origin[child] = (state, action, parent.number)
                return child
        assert child is not None
        return child

    def _after_tell(self, trial: Trial) -> None:
        self.population.append(trial)
        while len(self.population) > self.population_size:
            self.population.popleft()
        origin = self._origin.pop(trial.arch, None)
        if origin is None:
            return
        state, action, parent_number = origin
        util = utilities(self.rng, self.objectives, self.history)
        reward = float(util[trial.number] - util[parent_number])
        next_state = self.state(trial.arch)
        next_actions = self.actions(trial.arch)
        future = max((self.q[(next_state, a)] for a in next_actions), default=0.0)
        key = (state, action)
        self.q[key] += self.lr * (reward + self.gamma * future - self.q[key])

    def _after_repeat(self, trial: Trial) -> None:
        self._origin.pop(trial.arch, None)
        self.population.append(trial)
        while len(self.population) > self.population_size:
            self.population.popleft()

    def policy(self) -> dict[str, dict[str, float]]:
        """The learned Q-values, ``{state: {"level:group": q}}`` (for reports)."""
        out: dict[str, dict[str, float]] = defaultdict(dict)
        for (state, (level, group)), v in self.q.items():
            out[",".join(f"{p}={val}" for p, val in state) or "-"][f"{level}:{group}"] = round(v, 4)
        return dict(out)

    def describe(self) -> dict[str, Any]:
        return {
            **super().describe(),
            "population_size": self.population_size,
            "epsilon": self.epsilon,
            "lr": self.lr,
            "gamma": self.gamma,
            "actions": len(set(self.groups.values())),
        }
