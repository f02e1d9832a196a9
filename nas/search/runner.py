"""The budget loop: ask, evaluate each *distinct* arch once, tell.

Convention (the same for every searcher): a query is the first evaluation of an arch. When a
searcher proposes an arch it was already told, the runner tells it the known values again at no
cost (Optuna samplers do propose repeats); ``max_asks`` bounds the total number of proposals so
that a searcher that only repeats itself cannot loop forever. A budget larger than the space ends
once every arch of the space is known (``stopped == "exhausted"``), with what was found.
"""

from __future__ import annotations

import math
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from typing import Any

from nas.search.base import Searcher, SearchExhausted, Trial
from nas.search.evaluators import Evaluator
from spaces.arch import Arch

__all__ = ["SearchResult", "SpaceSize", "run_search"]

#: consecutive repeated proposals after which a constrained space's archs are counted exactly
_COUNT_AFTER_REPEATS = 200
#: the largest constrained space counted exactly to detect that a search exhausted it
_EXACT_COUNT_LIMIT = 200_000


class SpaceSize:
    """How many archs a space holds, to stop a search that has evaluated all of them.

    Without constraints the structural count is exact and free. With constraints it is only an upper
    bound; ``exhausted(n, exact=True)`` then counts the archs by enumeration once (spaces of at most
    200,000 archs before constraints), which a runner asks for only when the searcher keeps
    proposing known archs."""

    def __init__(self, space: Any) -> None:
        self.space = space
        try:
            self.bound: int | None = int(space.size(ignore_constraints=True))
        except Exception:  # a space without an exact count: never exhausted by this test
            self.bound = None
        self.exact: int | None = self.bound if not getattr(space, "constraints", None) else None
        self._counted = False

    def exhausted(self, known: int, exact: bool = False) -> bool:
        if self.exact is not None:
            return known >= self.exact
        if exact and not self._counted:
            self._counted = True
            if self.bound is not None and self.bound <= _EXACT_COUNT_LIMIT:
                try:
                    self.exact = int(self.space.size(enumerate_limit=_EXACT_COUNT_LIMIT))
                except Exception:
                    self.exact = None
            return self.exact is not None and known >= self.exact
        return False


@dataclass
class SearchResult:
    """What one run produced: its distinct queries in order, and the searcher's answer."""

    searcher: str
    seed: int | None
    trials: list[Trial]
    asks: int
    best: Trial | None
    front: list[Trial]
    stopped: str = "budget"
    info: dict[str, Any] = field(default_factory=dict)

    def values(self, metric: str) -> list[float]:
        """``metric`` of every query, in query order."""
        return [float(t.values.get(metric, math.nan)) for t in self.trials]

    def to_dict(self) -> dict[str, Any]:
        """JSON-ready summary (archs as decision dicts)."""

        def trial(t: Trial | None) -> dict[str, Any] | None:
            if t is None:
                return None
            return {"number": t.number, "arch": t.arch.to_dict(), "values": dict(t.values), "feasible": t.feasible}

        return {
            "searcher": self.searcher,
            "seed": self.seed,
            "queries": len(self.trials),
            "asks": self.asks,
            "stopped": self.stopped,
            "best": trial(self.best),
            "pareto_front": [trial(t) for t in self.front],
            **self.info,
        }


def run_search(
    searcher: Searcher,
    evaluator: Evaluator | Callable[[Arch], Mapping[str, float]] | Any,
    budget: int,
    *,
    max_asks: int | None = None,
    callback: Callable[[Trial], None] | None = None,
    stop: Callable[[Trial], bool] | None = None,
) -> SearchResult:
    """Run ``searcher`` until ``budget`` distinct archs were evaluated.

    ``evaluator`` maps an arch to its values (an :class:`Evaluator`, any object with
    ``evaluate(arch)``, or a callable); ``callback`` sees every new query's trial;
    ``stop(trial)`` may end the run early (e.g. once a known optimum is reached).
    Archs the searcher was told before the run (a warm start) are known and cost nothing.
    """
    if budget < 0:
        raise ValueError(f"budget must be >= 0, got {budget}")
    evaluate = evaluator.evaluate if hasattr(evaluator, "evaluate") else evaluator
    known: dict[Arch, Mapping[str, float]] = {t.arch: t.values for t in searcher.history}
    queries: list[Trial] = []
    max_asks = max_asks if max_asks is not None else max(50 * budget, 1000)
    asks = 0
    repeats = 0
    size = SpaceSize(searcher.space)
    stopped = "budget"
    while len(queries) < budget:
        if size.exhausted(len(known)):  # every arch of the space is known: nothing is left to propose
            stopped = "exhausted"
            break
        if asks >= max_asks:
            stopped = "max_asks"
            break
        try:
            arch = searcher.ask()
        except SearchExhausted:
            stopped = "exhausted"
            break
        asks += 1
        cached = known.get(arch)
        if cached is not None:
            searcher.tell(arch, cached)
            repeats += 1
            if repeats % _COUNT_AFTER_REPEATS == 0 and size.exhausted(len(known), exact=True):
                stopped = "exhausted"
                break
            continue
        repeats = 0
        values = dict(evaluate(arch))
        known[arch] = values
        trial = searcher.tell(arch, values)
        queries.append(trial)
        if callback is not None:
            callback(trial)
        if stop is not None and stop(trial):
            stopped = "stop"
            break
    return SearchResult(searcher.name, searcher.seed, queries, asks, searcher.best(), searcher.pareto_front(), stopped)
