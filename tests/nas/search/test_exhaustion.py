"""A budget larger than the space ends once every arch is known, with what was found (issue 19)."""

from __future__ import annotations

import time

import pytest

from hwnas.errors import ConfigError
from nas.search import create_searcher
from nas.search.runner import run_search
from spaces import Block, Choice, Constraint, Sequential, Space


def _tiny(constrained: bool = False) -> Space:
    body = Sequential(
        {"a": Block("conv_bn_act", out=Choice([8, 16, 24])), "b": Block("conv_bn_act", out=Choice([8, 16]))}
    )
    return Space("tiny", body, resolution=8, constraints=[Constraint("b.out <= a.out")] if constrained else None)


def _score(arch):
    return {"accuracy": float(arch["a.out"] + arch["b.out"])}


@pytest.mark.parametrize("name", ["random", "evolution", "mcts", "smbo", "hhnas", "tpe"])
def test_budget_beyond_the_space_stops_exhausted(name):
    space = _tiny()
    searcher = create_searcher(name, space, objectives=["accuracy"], seed=0)
    start = time.perf_counter()
    res = run_search(searcher, _score, budget=1000)
    assert time.perf_counter() - start < 30
    assert res.stopped == "exhausted" and len(res.trials) == space.size() == 6
    assert len({t.arch for t in res.trials}) == 6 and res.best.values["accuracy"] == 40


def test_constrained_space_is_counted_when_the_searcher_repeats_itself():
    space = _tiny(constrained=True)
    assert space.size() == 5
    res = run_search(create_searcher("random", space, objectives=["accuracy"], seed=1), _score, budget=50)
    assert res.stopped == "exhausted" and len(res.trials) == 5


def test_budget_within_the_space_is_unchanged():
    res = run_search(create_searcher("random", _tiny(), objectives=["accuracy"], seed=0), _score, budget=4)
    assert res.stopped == "budget" and len(res.trials) == 4


def test_cli_search_says_the_space_is_exhausted(tmp_path, capsys):
    from nas.cli import main

    path = tmp_path / "tiny.yaml"
    path.write_text(_tiny().to_yaml())
    import nas.cli.commands.search as search_cmd

    class Fake:  # the proxy evaluator trains; the exhaustion logic does not need it
        metrics = ("proxy_acc",)

        def __init__(self, *a, **k):
            pass

        def require(self, metrics):
            pass

        def evaluate(self, arch):
            return {"proxy_acc": float(arch["a.out"])}

    orig = search_cmd._make_evaluator
    search_cmd._make_evaluator = lambda *a, **k: Fake()
    try:
        assert main(["search", "--space", str(path), "--budget", "100", "--seed", "0", "--json", "--quiet"]) == 0
    finally:
        search_cmd._make_evaluator = orig
    captured = capsys.readouterr()
    assert '"stopped": "exhausted"' in captured.out and '"queries": 6' in captured.out
    assert len(captured.err.strip().splitlines()) == 1 and "has only 6 archs" in captured.err


def test_bench_budget_beyond_the_table_finishes(table, monkeypatch):
    from nas.search import bench

    # a 2-arch table: the same code path as nb201's 15,625 archs, in a second
    monkeypatch.setattr(bench.TabularEvaluator, "column", lambda self, m: __import__("numpy").array([1.0, 2.0]))
    monkeypatch.setattr("nas.search.runner.SpaceSize.exhausted", lambda self, known, exact=False: known >= 2)
    out = bench.nb201_benchmark("random", budget=5, seeds=1, table=str(table.path))
    assert out["exhausted_runs"] == 1 and out["results"][0]["per_seed"]


@pytest.mark.parametrize(
    "kwargs, message",
    [
        (dict(budget=5, horizon=2), "--horizon 2 is below --budget 5"),
        (dict(budget=5, horizon=10, latency="pixel3_latency_ms"), "--horizon applies to single-objective"),
        (dict(budget=5, latency="pixel3_latency_ms", ref=(float("nan"), float("nan"))), "two finite numbers"),
        (dict(budget=5, latency="pixel3_latency_ms", ref=(100.0, 0.0)), "dominated by no arch"),
    ],
)
def test_bench_refuses_what_it_used_to_change_silently(kwargs, message, nb201_csv):
    from nas.search.bench import nb201_benchmark

    with pytest.raises(ConfigError, match=message):
        nb201_benchmark("random", seeds=1, table=str(nb201_csv), **kwargs)
