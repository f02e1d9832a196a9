"""Selection helpers as free functions (nas.search.selection)."""

from __future__ import annotations

import math
import random

import pytest

from nas.search.base import Objective, SearchError, Trial
from nas.search.selection import (
    fitness,
    objective_ranges,
    oriented,
    random_weights,
    scalarise,
    tournament,
    utilities,
)
from spaces.arch import Arch

ACC, LAT = Objective("acc"), Objective("lat", "minimize")


def _t(n, acc, lat, violation=0.0):
    return Trial(n, Arch({"x": n}), {"acc": acc, "lat": lat}, (acc, lat), violation)


def test_feasible_first_then_the_objective():
    good, better, infeasible = _t(0, 0.5, 2.0), _t(1, 0.9, 3.0), _t(2, 1.0, 1.0, violation=0.1)
    assert fitness([ACC], better) > fitness([ACC], good) > fitness([ACC], infeasible)
    assert oriented([ACC, LAT], good) == (0.5, -2.0)


def test_several_objectives_need_ranges():
    trials = [_t(0, 0.5, 2.0), _t(1, 0.9, 3.0), _t(2, math.nan, 1.0)]
    ranges = objective_ranges([ACC, LAT], trials)
    assert ranges == ([0.5, -3.0], [0.9, -2.0])  # the NaN trial is left out
    assert 0.0 <= scalarise([ACC, LAT], trials[0], ranges) <= 1.05
    with pytest.raises(SearchError, match="ranges"):
        fitness([ACC, LAT], trials[0])


def test_tournament_weights_and_utilities_are_reproducible():
    trials = [_t(i, i / 10, 10 - i) for i in range(6)]
    w = random_weights(random.Random(0), 2)
    assert w == random_weights(random.Random(0), 2) and sum(w) == pytest.approx(1.0)
    draws = random.Random(1)
    assert tournament(random.Random(1), [ACC], trials, size=6).number == max(draws.randrange(6) for _ in range(6))
    u = utilities(random.Random(0), [ACC], trials)
    assert list(u) == pytest.approx([i / 5 for i in range(6)])
    assert len(utilities(random.Random(0), [ACC], [])) == 0
