"""The benchmark harness in-process: modes, RI, honesty of the scoring."""

from __future__ import annotations

import pytest

from hwnas.errors import ConfigError
from nas.search.bench import nb201_benchmark, resolve_searchers


def test_resolve_searchers():
    assert resolve_searchers("all", "single")[0] == "random"
    assert "nsga2" in resolve_searchers("all", "multi") and "nsga2" not in resolve_searchers("all", "single")
    assert resolve_searchers("evolution,random", "single") == ["random", "evolution"]
    with pytest.raises(ConfigError):
        resolve_searchers("", "single")


def test_single_objective_scoring(nb201_csv):
    out = nb201_benchmark("random,evolution", budget=30, seeds=2, table=str(nb201_csv))
    assert out["mode"] == "single" and out["optimum"] == pytest.approx(94.3733)
    rnd = out["results"][0]
    assert rnd["searcher"] == "random" and rnd["ri"] == 0.0
    assert len(rnd["per_seed"]) == 2 and rnd["mean"] == pytest.approx(sum(rnd["per_seed"]) / 2)


def test_horizon_measures_queries_past_the_budget(nb201_csv):
    out = nb201_benchmark("hhnas", budget=20, seeds=2, horizon=150, table=str(nb201_csv))
    r = out["results"][1]
    assert out["horizon"] == 150
    for q, best in zip(r["per_seed_queries_to_optimum"], r["per_seed"]):
        assert q is None or q > 20 or best == pytest.approx(94.3733)


def test_constrained_and_multi(nb201_csv):
    out = nb201_benchmark("mcts", budget=25, seeds=2, latency="pixel3_latency_ms", max_latency=10, table=str(nb201_csv))
    assert out["optimum"] == pytest.approx(93.625)
    assert all(r["infeasible_returned"] == 0 for r in out["results"])
    out = nb201_benchmark(
        "random", budget=25, seeds=2, latency="pixel3_latency_ms", ref=(85.0, 20.0), table=str(nb201_csv)
    )
    assert out["reference_point"] == [85.0, 20.0]
    assert 0 < out["results"][0]["hypervolume_fraction"] < 1
    with pytest.raises(ConfigError):
        nb201_benchmark("random", max_latency=3.0, table=str(nb201_csv))
