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
epsilon-greedily. The loop and the selection are aging evolution's
(:class:`nas.search.evolution.PopulationSearcher`); only the mutation policy differs.
"""

from __future__ import annotations

from collections import defaultdict
from collections.abc import Callable, Sequence
from typing import Any

from hwnas.errors import ConfigError, HwnasError
from nas.search._registry import register_searcher
from nas.search.base import Trial
from nas.search.evolution import PopulationSearcher
from nas.search.selection import utilities
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
class HHNASSearcher(PopulationSearcher):
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
        super().__init__(space, objectives, constraints, seed, population_size, sample_size)
        if not 0.0 <= epsilon <= 1.0 or not 0.0 < lr <= 1.0 or not 0.0 <= gamma < 1.0:
            raise ConfigError("hhnas needs 0 <= epsilon <= 1, 0 < lr <= 1 and 0 <= gamma < 1")
        self.epsilon, self.lr, self.gamma = epsilon, lr, gamma
        self.groups = decision_groups(space)
        self._macro = [p for p, _ in _branch_scopes(space)]
        self.q: dict[tuple[Any, tuple[int, str]], float] = defaultdict(float)
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

    # -- the mutation policy in aging evolution's loop -----------------------------------
    def offspring(self, select: Callable[[], Trial]) -> tuple[Arch, Any]:
        """A tournament winner mutated with the action the policy chooses in its state."""
        parent = select()
        state = self.state(parent.arch)
        action = self._choose(state, self.actions(parent.arch))
        return self._mutate_group(parent.arch, action), (state, action, parent)

    def is_new(self, child: Arch, how: Any) -> bool:
        return not self.is_told(child) and child != how[2].arch

    def proposed(self, child: Arch, how: Any) -> None:
        state, action, parent = how
        self._origin[child] = (state, action, parent.number)

    def _after_tell(self, trial: Trial) -> None:
        self._enter(trial)
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
        self._enter(trial)

    def policy(self) -> dict[str, dict[str, float]]:
        """The learned Q-values, ``{state: {"level:group": q}}`` (for reports)."""
        out: dict[str, dict[str, float]] = defaultdict(dict)
        for (state, (level, group)), v in self.q.items():
            out[",".join(f"{p}={val}" for p, val in state) or "-"][f"{level}:{group}"] = round(v, 4)
        return dict(out)

    def describe(self) -> dict[str, Any]:
        return {
            **super().describe(),
            "epsilon": self.epsilon,
            "lr": self.lr,
            "gamma": self.gamma,
            "actions": len(set(self.groups.values())),
        }
