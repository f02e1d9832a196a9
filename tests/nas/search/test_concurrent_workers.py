"""Four ``nas search`` worker processes on one study, on SQLite, a journal file and PostgreSQL (issue 19):
every trial a worker reports is one COMPLETE row of the study (0 lost), no arch is evaluated twice
(0 duplicated), the study ends with exactly the trials asked (``--n-trials`` per worker) or the budget
of distinct archs (``--budget``), and no RUNNING or WAITING trial. The ``--n-trials`` checks are
tests/helpers.py's, as benchmarks/bench_concurrency.py runs them at a larger scale."""

from __future__ import annotations

import json
import subprocess
import sys
import warnings
from collections import Counter
from pathlib import Path

import pytest

from nas.search.storage import make_storage
from tests.helpers import finished, start_nas, study_problems

WORKERS = 4
BUDGET = 24


def _nas() -> list[str]:
    exe = Path(sys.executable).with_name("nas")
    return [str(exe)] if exe.exists() else [sys.executable, "-m", "nas.cli"]


def _four_workers(
    url: str, study: str, searcher: str, seeds: tuple[int, ...] = (0, 1, 2, 3), budget: int = BUDGET
) -> None:
    """``WORKERS`` workers, worker ``w`` with ``--seed seeds[w]``, on the budget ``budget``."""
    import optuna

    common = ["search", "--space", "nb201", "--searcher", searcher, "--storage", url, "--study", study]
    common += ["--budget", str(budget), "--delay", "0.2", "--quiet", "--json"]
    procs = [
        subprocess.Popen(
            [*_nas(), *common, "--seed", str(seeds[w])],
            stdout=subprocess.PIPE,
            stderr=subprocess.PIPE,
            text=True,
        )
        for w in range(WORKERS)
    ]
    reports = []
    for p in procs:
        out, err = p.communicate(timeout=900)
        assert p.returncode == 0, err
        reports.append(json.loads(out))
    optuna.logging.set_verbosity(optuna.logging.ERROR)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        trials = optuna.load_study(study_name=study, storage=make_storage(url)).trials
    states = Counter(t.state.name for t in trials)
    assert states["RUNNING"] == 0 and states["WAITING"] == 0, states
    complete = {t.number: t for t in trials if t.state.name == "COMPLETE"}
    reported = [n for r in reports for n in r["trials"]]
    assert len(reported) == len(set(reported))  # no trial reported by two workers
    assert set(reported) <= set(complete)  # 0 lost: every reported trial is a COMPLETE row
    evaluated = Counter(
        tuple(sorted(t.params.items())) for t in complete.values() if not t.user_attrs.get("hwnas:cached")
    )
    assert len(evaluated) == budget  # the budget, counted over the whole study
    assert max(evaluated.values()) == 1  # 0 duplicated: no arch evaluated twice
    assert sum(r["evaluated"] for r in reports) == budget
    assert all(r["study_evaluated"] == budget for r in reports)
    assert len({r["worker"] for r in reports}) == WORKERS


# random search on a budget: test_workers_sharing_a_seed_never_evaluate_an_arch_twice (two seeds, four workers)
@pytest.mark.slow
def test_four_workers_on_sqlite(tmp_path, nb201_csv):
    _four_workers(f"sqlite:///{tmp_path / 'study.db'}", "four", "tpe")


@pytest.mark.slow
def test_four_workers_on_a_journal(tmp_path, nb201_csv):
    _four_workers(f"journal:{tmp_path / 'study.log'}", "four", "tpe")


@pytest.mark.slow
@pytest.mark.postgres
@pytest.mark.parametrize("searcher", ["random", "tpe"])
def test_four_workers_on_postgres(postgres_url, nb201_csv, searcher):
    _four_workers(postgres_url, f"four-{searcher}", searcher)


@pytest.mark.slow
@pytest.mark.parametrize("storage", ["sqlite", "journal"])
def test_workers_sharing_a_seed_never_evaluate_an_arch_twice(tmp_path, nb201_csv, storage):
    """Random search, two workers per --seed (seeds 0, 0, 1, 1): a pair proposes the same archs, each
    evaluated once (one worker evaluates, the other waits for its values), the pairs propose
    different archs, and the budget (``BUDGET``, counted over the study) is met exactly. (One test
    for what were two runs: four seeds of their own, and one seed on every worker.)"""
    url = f"sqlite:///{tmp_path / 'study.db'}" if storage == "sqlite" else f"journal:{tmp_path / 'study.log'}"
    _four_workers(url, "same-seed", "random", seeds=(0, 0, 1, 1))


def _four_workers_own_trials(url: str, study: str, searcher: str, n_trials: int, same_seed: bool) -> dict:
    args = ["search", "--space", "nb201", "--searcher", searcher, "--storage", url, "--study", study]
    args += ["--n-trials", str(n_trials), "--delay", "0.05", "--quiet", "--json"]
    runs = finished([start_nas([*args, "--seed", str(0 if same_seed else w)]) for w in range(WORKERS)], timeout=600)
    for rc, _, err in runs:
        assert rc == 0 and "Traceback" not in err, err
    problems, counts = study_problems(url, study, [json.loads(out) for _, out, _ in runs], WORKERS * n_trials)
    assert problems == [] and counts["lost"] == counts["duplicated"] == 0
    return counts


# one seed: the workers propose the same archs, so one evaluates each and the others reuse its values
# (the dedupe at work); tpe: Optuna's own sampler on the shared study
OWN_TRIALS = [("random", True), ("tpe", False)]


@pytest.mark.parametrize("searcher,same_seed", OWN_TRIALS, ids=["random-one-seed", "tpe"])
@pytest.mark.parametrize("storage", ["sqlite", "journal"])
def test_four_workers_with_their_own_trials(tmp_path, nb201_csv, storage, searcher, same_seed):
    """Four workers each asking ``--n-trials 6`` at once: 24 COMPLETE trials numbered 0..23, each
    reported by one worker, none RUNNING, WAITING or failed, no arch evaluated twice."""
    url = f"sqlite:///{tmp_path / 'study.db'}" if storage == "sqlite" else f"journal:{tmp_path / 'study.log'}"
    counts = _four_workers_own_trials(url, "own", searcher, 6, same_seed)
    if same_seed:
        assert counts["cached"] > 0  # the same proposals: reused, not evaluated again


@pytest.mark.postgres
@pytest.mark.parametrize("searcher,same_seed", OWN_TRIALS, ids=["random-one-seed", "tpe"])
def test_four_workers_with_their_own_trials_on_postgres(postgres_url, nb201_csv, searcher, same_seed):
    _four_workers_own_trials(postgres_url, f"own-{searcher}", searcher, 6, same_seed)


def test_the_study_checks_find_lost_and_duplicated_trials(tmp_path):
    """study_problems names an arch evaluated twice, a trial two workers report, one no worker
    reports, one left RUNNING, and fewer COMPLETE trials than asked."""
    import optuna

    url = f"sqlite:///{tmp_path / 's.db'}"
    optuna.logging.set_verbosity(optuna.logging.ERROR)
    study = optuna.create_study(study_name="s", storage=make_storage(url))
    dist = {"a": optuna.distributions.CategoricalDistribution([0, 1, 2])}
    for a in (0, 1, 1):
        study.add_trial(optuna.trial.create_trial(params={"a": a}, distributions=dist, value=1.0))
    study.ask()  # left RUNNING
    reports = [{"trials": [0, 1], "evaluated": 2, "worker": "h:1"}, {"trials": [1], "evaluated": 1, "worker": "h:2"}]
    problems, counts = study_problems(url, "s", reports, asked=4)
    assert counts["lost"] == 1 and counts["duplicated"] == 2  # one missing of 4; arch 1 twice, trial 1 twice
    text = "\n".join(problems)
    assert "3 COMPLETE trials, the workers asked for 4" in text and "{'RUNNING': 1}" in text
    assert "1 trial(s) reported by two workers" in text and "missing [2]" in text
    assert "1 arch(s) evaluated twice" in text
