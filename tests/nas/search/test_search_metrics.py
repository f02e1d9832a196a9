"""Scoring definitions agree with nas/data/nb201/anchors.py (shipped beside the table)."""

from __future__ import annotations

import importlib.util
import math
import random

import pytest

from nas.search.metrics import (
    best_after,
    hypervolume_2d,
    hypervolume_fraction,
    mean_std,
    median_or_none,
    queries_to_optimum,
    relative_improvement,
)


@pytest.fixture(scope="module")
def anchors(nb201_csv):
    path = nb201_csv.parent / "anchors.py"
    if not path.is_file():
        pytest.skip("anchors.py not found next to the table")
    spec = importlib.util.spec_from_file_location("nb201_anchors", path)
    mod = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(mod)
    return mod


def test_hypervolume_matches_anchors(anchors):
    rng = random.Random(0)
    for _trial in range(30):
        pts = [(rng.uniform(80, 95), rng.uniform(1, 20)) for _ in range(rng.randrange(1, 40))]
        ref = (90.0, 10.0)
        assert hypervolume_2d(pts, ref) == pytest.approx(anchors.hypervolume(pts, ref), abs=1e-9)


def test_hypervolume_simple_cases():
    assert hypervolume_2d([(3, 1)], (0, 4)) == pytest.approx(9.0)
    assert hypervolume_2d([(3, 1), (2, 0)], (0, 4)) == pytest.approx(3 * 3 + 2 * 1)
    assert hypervolume_2d([(-1, 1), (3, 5)], (0, 4)) == 0.0  # worse than the reference: nothing
    assert hypervolume_2d([(1, 1)], (0, 0), ("maximize", "maximize")) == pytest.approx(1.0)
    assert hypervolume_fraction([(3, 1)], [(3, 1), (2, 0)], (0, 4)) == pytest.approx(9 / 11)


def test_best_after_and_queries_to_optimum():
    vals = [1.0, 3.0, 2.0, 5.0, 5.0]
    assert best_after(vals, 3) == 3.0 and best_after(vals) == 5.0
    assert best_after([4.0, 2.0], maximize=False) == 2.0
    assert math.isnan(best_after([], 3))
    assert queries_to_optimum(vals, 5.0) == 4
    assert queries_to_optimum(vals, 6.0) is None
    assert queries_to_optimum([3.0, 1.0], 1.0, maximize=False) == 2


def test_ri_mean_std_median():
    assert relative_improvement(94.29, 93.85) == pytest.approx(100 * 0.44 / 93.85)
    m, s = mean_std([1.0, 2.0, 3.0])
    assert m == 2.0 and s == pytest.approx(math.sqrt(2 / 3))  # population std, like numpy
    assert median_or_none([1, 3, None]) == 3
    assert median_or_none([1, None, None]) is None
    assert median_or_none([10, 20]) == 15
