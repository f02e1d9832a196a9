"""The searcher interface: objectives, constraints, tell normalisation, best() and the front."""

from __future__ import annotations

import math

import pytest

from hwnas.errors import ConfigError, UnknownNameError
from nas.search import Constraint, Objective, create_searcher, list_searchers
from nas.search.base import dominates, non_dominated


def test_objective_and_constraint_parsing():
    assert Objective.parse("acc") == Objective("acc", "maximize")
    assert Objective.parse("lat:min") == Objective("lat", "minimize")
    assert Objective.parse(("x", "max")).direction == "maximize"
    assert Objective("lat", "min").sign == -1.0
    with pytest.raises(ConfigError):
        Objective("a", "sideways")
    c = Constraint.parse("pixel3_latency_ms<=10")
    assert (c.name, c.upper, c.lower) == ("pixel3_latency_ms", 10.0, None)
    assert c.violation({"pixel3_latency_ms": 9.0}) == 0.0
    assert c.violation({"pixel3_latency_ms": 12.5}) == pytest.approx(2.5)
    assert Constraint.parse("acc >= 90").violation({"acc": 89.0}) == pytest.approx(1.0)
    assert math.isinf(c.violation({"pixel3_latency_ms": math.nan}))
    with pytest.raises(ConfigError, match="METRIC<=VALUE"):
        Constraint.parse("latency < 10")
    with pytest.raises(ConfigError, match="missing"):
        c.violation({"other": 1.0})
    with pytest.raises(ConfigError):
        Constraint("x")


def test_tell_normalises_values_and_ignores_repeats(nb201_space):
    s = create_searcher("random", nb201_space, objectives=["acc", "lat:min"], constraints=["lat<=5"], seed=0)
    a, b = nb201_space.sample(1), nb201_space.sample(2)
    t = s.tell(a, [90.0, 4.0])
    assert t.values == {"acc": 90.0, "lat": 4.0} and t.feasible and t.number == 0
    again = s.tell(a, {"acc": 10.0, "lat": 1.0})
    assert again is t and s.n_trials == 1
    t2 = s.tell(b, {"acc": 95.0, "lat": 6.0, "extra": 1.0})
    assert not t2.feasible and t2.values["extra"] == 1.0
    assert s.best() is t  # the infeasible better one is never returned
    assert s.pareto_front() == [t]
    with pytest.raises(ConfigError, match="lack"):
        s.tell(nb201_space.sample(3), {"acc": 1.0})
    with pytest.raises(ConfigError):
        s.tell(nb201_space.sample(3), 1.0)


def test_single_objective_number_and_minimise(nb201_space):
    s = create_searcher("random", nb201_space, objectives="lat:min", seed=0)
    s.tell(nb201_space.sample(1), 3.0)
    best = s.tell(nb201_space.sample(2), 1.0)
    s.tell(nb201_space.sample(3), 2.0)
    assert s.best() is best


def test_nan_values_are_never_best(nb201_space):
    s = create_searcher("random", nb201_space, objectives=["acc"], seed=0)
    t = s.tell(nb201_space.sample(1), math.nan)
    assert not t.feasible and s.best() is None
    ok = s.tell(nb201_space.sample(2), 50.0)
    assert s.best() is ok


def test_dominance_helpers():
    assert dominates((2, 2), (1, 2)) and not dominates((1, 2), (1, 2))
    assert non_dominated([(1, 1), (2, 0), (0, 2), (2, 2)]) == [3]
    assert non_dominated([(1, 3), (3, 1), (2, 2)]) == [0, 1, 2]


def test_registry():
    names = list_searchers()
    for n in ("random", "evolution", "mcts", "smbo", "bo", "tpe", "nsga2", "hhnas", "darts"):
        assert n in names
    with pytest.raises(UnknownNameError, match="did you mean 'evolution'"):
        create_searcher("evolutoin", None)


def test_single_objective_searcher_refuses_two_objectives(nb201_space):
    with pytest.raises(ConfigError, match="single-objective"):
        create_searcher("darts", nb201_space, objectives=["a", "b:min"])
