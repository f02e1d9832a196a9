"""`nas bench nb201`, run as a real command: the JSON contract of the issue."""

from __future__ import annotations

import json

import pytest


def _bench(run_nas, *args):
    res = run_nas("bench", "nb201", *args, "--json", "--quiet")
    assert res.returncode == 0, res.stderr
    return json.loads(res.stdout)


def test_bench_single_objective(run_nas):
    out = _bench(run_nas, "--searcher", "random,evolution", "--budget", "30", "--seeds", "3")
    assert {k: out[k] for k in ("metric", "latency", "budget", "seeds")} == {
        "metric": "cifar10_test_acc",
        "latency": None,
        "budget": 30,
        "seeds": 3,
    }
    assert [r["searcher"] for r in out["results"]] == ["random", "evolution"]
    for r in out["results"]:
        assert {"searcher", "mean", "std", "ri", "median_queries_to_optimum"} <= set(r)
        assert 80 < r["mean"] <= 94.38 and r["std"] >= 0 and len(r["per_seed"]) == 3
    assert out["results"][0]["ri"] == 0.0
    rnd, evo = out["results"][0]["mean"], out["results"][1]["mean"]
    assert out["results"][1]["ri"] == pytest.approx(100 * (evo - rnd) / rnd)


def test_bench_any_column(run_nas):
    out = _bench(run_nas, "--searcher", "random", "--budget", "20", "--seeds", "2", "--metric", "cifar100_test_acc")
    assert out["metric"] == "cifar100_test_acc" and out["optimum"] == pytest.approx(73.51, abs=0.01)


def test_bench_multi_objective(run_nas):
    out = _bench(
        run_nas, "--searcher", "random,nsga2", "--budget", "40", "--seeds", "2", "--latency", "pixel3_latency_ms"
    )
    assert out["latency"] == "pixel3_latency_ms"
    assert out["reference_point"] == pytest.approx([90.0, 10.6756])
    for r in out["results"]:
        assert 0.0 <= r["hypervolume_fraction"] <= 1.0 and "median_queries_to_optimum" not in r


def test_bench_constrained(run_nas):
    out = _bench(
        run_nas,
        "--searcher",
        "random,hhnas",
        "--budget",
        "30",
        "--seeds",
        "2",
        "--latency",
        "pixel3_latency_ms",
        "--max-latency",
        "10",
    )
    assert out["optimum"] == pytest.approx(93.625)
    for r in out["results"]:
        assert r["infeasible_returned"] == 0 and r["mean"] <= 93.625 + 1e-9


def test_bench_human_table(run_nas):
    res = run_nas("bench", "nb201", "--searcher", "random", "--budget", "10", "--seeds", "2")
    assert res.returncode == 0, res.stderr
    assert "random" in res.stdout and "±" in res.stdout


@pytest.mark.parametrize(
    "args, message",
    [
        (["--searcher", "nope"], "unknown searcher"),
        (["--metric", "nope"], "unknown NAS-Bench-201 column"),
        (["--max-latency", "10"], "--max-latency needs --latency"),
        (["--ref", "1"], "--ref expects ACC,LAT"),
        (["--set", "x=1"], "SEARCHER.KEY=VALUE"),
    ],
)
def test_bench_errors(run_nas, args, message):
    res = run_nas("bench", "nb201", "--budget", "5", "--seeds", "1", *args)
    assert res.returncode == 2 and message in res.stderr and len(res.stderr.strip().splitlines()) == 1
