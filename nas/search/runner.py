"""The budget loop: ask, evaluate each *distinct* arch once, tell.

Convention (the same for every searcher): a query is the first evaluation of an arch. When a
searcher proposes an arch it was already told, the runner tells it the known values again at no
cost (Optuna samplers do propose repeats); ``max_asks`` bounds the total number of proposals so
that a searcher that only repeats itself cannot loop forever.
"""
from __future__ import annotations

import math
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from typing import Any

from nas.search.base import Searcher, SearchExhausted, Trial
from nas.search.evaluators import Evaluator
from spaces.arch import Arch

__all__ = ["SearchResult", "run_search"]


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

        return {"searcher": self.searcher, "seed": self.seed, "queries": len(self.trials), "asks": self.asks,
                "stopped": self.stopped, "best": trial(self.best), "pareto_front": [trial(t) for t in self.front],
                **self.info}


def run_search(searcher: Searcher, evaluator: Evaluator | Callable[[Arch], Mapping[str, float]] | Any, budget: int, *,
               max_asks: int | None = None, callback: Callable[[Trial], None] | None = None,
               stop: Callable[[Trial], bool] | None = None) -> SearchResult:
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
    stopped = "budget"
    while len(queries) < budget:
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
            continue
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
