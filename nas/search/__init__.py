"""Searchers, evaluators and honest benchmarking over any DSL space.

Ask / tell in Optuna's style::

    from spaces import create_space
    from nas.search import create_searcher, TabularEvaluator, run_search

    space = create_space("nb201")
    searcher = create_searcher("bo", space, objectives=["cifar10_test_acc"], seed=0)
    result = run_search(searcher, TabularEvaluator(), budget=100)
    print(result.best.values)

Searchers (``list_searchers()``): ``random``, ``evolution`` (aging/regularized), ``mcts`` (UCT over
the DSL's ordered decisions), ``smbo`` (MCTS proposals scored by a surrogate), ``bo`` (GP
Bayesian optimisation with a decision-match kernel), ``tpe`` / ``tpe-default`` / ``nsga2``
(Optuna), ``hhnas`` (HHNAS-AM: Q-learned mutation policy) and ``darts`` (one-shot, any space with cells).
Everything is imported lazily: ``import nas.search`` does not import torch or optuna.
"""

from __future__ import annotations

from hwnas.lazy import lazy_exports
from nas.search._registry import create_searcher, get_searcher_class, list_searchers, register_searcher
from nas.search.base import Constraint, Objective, Searcher, SearchError, SearchExhausted, Trial

__all__ = [
    "AgingEvolution",
    "BayesOptSearcher",
    "CompositeEvaluator",
    "Constraint",
    "DartsConfig",
    "DartsSearcher",
    "Evaluator",
    "HHNASSearcher",
    "LutLatencyEvaluator",
    "MCTSSearcher",
    "Objective",
    "OptunaSearcher",
    "ProxyTrainingEvaluator",
    "RandomSearcher",
    "SMBOSearcher",
    "SearchError",
    "SearchExhausted",
    "SearchResult",
    "Searcher",
    "StudyWorker",
    "SupernetEvaluator",
    "TabularEvaluator",
    "Trial",
    "create_searcher",
    "get_searcher_class",
    "list_searchers",
    "nb201_benchmark",
    "register_searcher",
    "run_darts",
    "run_search",
    "run_study_worker",
]

_LAZY = {
    "AgingEvolution": "nas.search.evolution",
    "BayesOptSearcher": "nas.search.bayesopt",
    "CompositeEvaluator": "nas.search.evaluators",
    "DartsConfig": "nas.search.darts",
    "DartsSearcher": "nas.search.darts",
    "Evaluator": "nas.search.evaluators",
    "HHNASSearcher": "nas.search.hhnas",
    "LutLatencyEvaluator": "nas.search.evaluators",
    "MCTSSearcher": "nas.search.mcts",
    "OptunaSearcher": "nas.search.optuna_search",
    "ProxyTrainingEvaluator": "nas.search.evaluators",
    "RandomSearcher": "nas.search.random_search",
    "SMBOSearcher": "nas.search.mcts",
    "SearchResult": "nas.search.runner",
    "StudyWorker": "nas.search.study_worker",
    "SupernetEvaluator": "nas.search.evaluators",
    "TabularEvaluator": "nas.search.evaluators",
    "nb201_benchmark": "nas.search.bench",
    "run_darts": "nas.search.darts",
    "run_search": "nas.search.runner",
    "run_study_worker": "nas.search.study_worker",
}


__getattr__, __dir__ = lazy_exports(__name__, _LAZY)
