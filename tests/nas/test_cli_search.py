"""`nas search`, run as a real command."""

from __future__ import annotations

import json

import pytest


def test_search_nb201_json(run_nas):
    res = run_nas(
        "search", "--space", "nb201", "--searcher", "evolution", "--budget", "25", "--seed", "0", "--json", "--quiet"
    )
    assert res.returncode == 0, res.stderr
    out = json.loads(res.stdout)
    assert out["searcher"] == "evolution" and out["queries"] == 25 and out["budget"] == 25
    assert out["objectives"] == ["cifar10_test_acc:max"]
    assert set(out["best"]["arch"]) == {f"stages.cell.n{i}.e{j}.op" for i in range(1, 4) for j in range(i)}
    again = json.loads(
        run_nas(
            "search",
            "--space",
            "nb201",
            "--searcher",
            "evolution",
            "--budget",
            "25",
            "--seed",
            "0",
            "--json",
            "--quiet",
        ).stdout
    )
    assert again["best"] == out["best"]  # seeded: reproducible


def test_search_constrained_multi_objective(run_nas):
    res = run_nas(
        "search",
        "--space",
        "nb201",
        "--searcher",
        "tpe",
        "--budget",
        "30",
        "--seed",
        "1",
        "--objective",
        "cifar10_test_acc",
        "--objective",
        "pixel3_latency_ms:min",
        "--constraint",
        "pixel3_latency_ms<=12",
        "--json",
        "--quiet",
    )
    assert res.returncode == 0, res.stderr
    out = json.loads(res.stdout)
    assert out["constraints"] == ["pixel3_latency_ms<=12"]
    assert out["pareto_front"] and all(t["values"]["pixel3_latency_ms"] <= 12 for t in out["pareto_front"])


def test_search_human_output_and_progress(run_nas):
    res = run_nas("search", "--space", "nb201", "--searcher", "random", "--budget", "5", "--seed", "2")
    assert res.returncode == 0, res.stderr
    assert "random on nb201: 5 queries" in res.stdout and "best: |" in res.stdout
    assert res.stderr.count("trial ") == 5


def test_search_option_passthrough(run_nas):
    res = run_nas(
        "search",
        "--space",
        "nb201",
        "--searcher",
        "evolution",
        "--budget",
        "12",
        "--seed",
        "0",
        "--set",
        "population_size=4",
        "--set",
        "sample_size=2",
        "--json",
        "--quiet",
    )
    assert res.returncode == 0, res.stderr
    assert json.loads(res.stdout)["queries"] == 12


def test_search_set_reaches_the_searcher(run_nas):
    """``--set`` values arrive at the searcher, parsed: values it refuses are refused in its words,
    naming the values given."""
    base = ["search", "--space", "nb201", "--budget", "5", "--seed", "0", "--json", "--quiet"]
    res = run_nas(*base, "--searcher", "evolution", "--set", "population_size=3", "--set", "sample_size=4")
    assert res.returncode == 2 and "sample_size <= population_size, got 3, 4" in res.stderr, res.stderr
    res = run_nas(*base, "--searcher", "hhnas", "--set", "epsilon=1.5")
    assert res.returncode == 2 and "hhnas needs 0 <= epsilon <= 1" in res.stderr, res.stderr


@pytest.mark.parametrize(
    "args, message",
    [
        (["--space", "nb201", "--searcher", "evolutoin"], "did you mean 'evolution'"),
        (["--space", "nb201", "--constraint", "lat<5"], "METRIC<=VALUE"),
        (["--space", "nb201", "--storage", "sqlite:///x.db"], "--storage needs --study"),
        (["--space", "nb201", "--study", "s"], "--study needs --storage"),
        (["--space", "nb201", "--objective", "no_such_column"], "does not provide no_such_column"),
        (["--space", "nb201", "--set", "bogus=1"], "searcher 'random'"),
        (["--space", "mobilenet", "--evaluator", "nb201"], "needs the nb201 space"),
        (["--space", "nb201", "--budget", "0"], "argument --budget: must be an integer >= 1, got 0"),
    ],
)
def test_search_errors_are_one_line(run_nas, args, message):
    res = run_nas("search", *args)
    assert res.returncode == 2
    lines = res.stderr.strip().splitlines()
    assert len(lines) == 1 and message in lines[0], res.stderr


def test_search_missing_table_is_one_line(run_nas, tmp_path):
    res = run_nas("search", "--space", "nb201", "--table", str(tmp_path / "none.csv.gz"))
    assert res.returncode == 2
    assert "NAS-Bench-201 table not found" in res.stderr and len(res.stderr.strip().splitlines()) == 1
    res = run_nas("search", "--space", "nb201", env={"HWNAS_NB201_CSV": str(tmp_path / "none.csv.gz")})
    assert res.returncode == 2 and "HWNAS_NB201_CSV" in res.stderr


def test_search_resumes_a_sqlite_study(run_nas, tmp_path):
    url = f"sqlite:///{tmp_path / 'study.db'}"
    first = run_nas(
        "search",
        "--space",
        "nb201",
        "--searcher",
        "tpe",
        "--storage",
        url,
        "--study",
        "s",
        "--n-trials",
        "6",
        "--seed",
        "0",
        "--json",
        "--quiet",
    )
    assert first.returncode == 0, first.stderr
    assert json.loads(first.stdout)["trials"] == list(range(6))
    second = run_nas(
        "search",
        "--space",
        "nb201",
        "--searcher",
        "tpe",
        "--storage",
        url,
        "--study",
        "s",
        "--budget",
        "10",
        "--seed",
        "1",
        "--json",
        "--quiet",
    )
    assert second.returncode == 0, second.stderr
    out = json.loads(second.stdout)
    assert out["study_evaluated"] == 10 and out["trials"][0] == 6


@pytest.mark.slow
def test_search_darts_tiny(run_nas):
    res = run_nas(
        "search",
        "--space",
        "nb201",
        "--searcher",
        "darts",
        "--seed",
        "0",
        "--set",
        "train_size=128",
        "--set",
        "batch_size=32",
        "--set",
        "epochs=1",
        "--set",
        "channels=4",
        "--set",
        "threads=1",
        "--json",
        "--quiet",
    )
    assert res.returncode == 0, res.stderr
    out = json.loads(res.stdout)
    assert out["queries"] == 1 and out["stopped"] == "exhausted"
    assert 0 < out["best"]["values"]["cifar10_test_acc"] <= 100
