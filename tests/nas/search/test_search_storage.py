"""Shared Optuna studies: storages, resuming, concurrent workers (SQLite, journal, PostgreSQL)."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time
import warnings
from collections import Counter
from pathlib import Path

import pytest

from hwnas.errors import ConfigError
from nas.search import create_searcher
from nas.search.storage import make_storage
from nas.search.study_worker import run_study_worker


def _load(storage, name):
    import optuna

    optuna.logging.set_verbosity(optuna.logging.ERROR)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        return optuna.load_study(study_name=name, storage=storage)


def test_make_storage_urls(tmp_path):
    import optuna

    assert make_storage(None) is None and make_storage("memory") is None
    assert isinstance(make_storage(f"sqlite:///{tmp_path / 'a.db'}"), optuna.storages.RDBStorage)
    assert isinstance(make_storage(f"journal:{tmp_path / 'a.log'}"), optuna.storages.JournalStorage)
    assert isinstance(make_storage(str(tmp_path / "b.log")), optuna.storages.JournalStorage)
    with pytest.raises(ConfigError, match="expected sqlite"):
        make_storage("nowhere")
    with pytest.raises(ConfigError, match="cannot open storage"):
        make_storage("postgresql://nobody@127.0.0.1:1/none")


@pytest.mark.parametrize("kind", ["sqlite", "journal"])
@pytest.mark.parametrize("name", ["evolution", "tpe"])
def test_worker_resumes_a_study(kind, name, tmp_path, nb201_space, table):
    url = f"sqlite:///{tmp_path / 's.db'}" if kind == "sqlite" else f"journal:{tmp_path / 's.log'}"

    def worker(seed, **kw):
        extra = {"storage": make_storage(url), "study_name": "st"} if name == "tpe" else {}
        s = create_searcher(name, nb201_space, objectives=["cifar10_test_acc"], seed=seed, **extra)
        return s, run_study_worker(s, table.evaluate, storage=url, study_name="st", **kw)

    _, first = worker(0, n_trials=8)
    assert first["trials"] == list(range(8))
    s2, second = worker(1, budget=14)
    # the second worker starts from the study: it knows the 8 trials and stops at 14 evaluated archs
    assert s2.n_trials == 14 and second["study_evaluated"] == 14
    assert second["trials"] == list(range(8, 8 + len(second["trials"])))
    study = _load(make_storage(url), "st")
    assert Counter(t.state.name for t in study.trials) == {"COMPLETE": len(study.trials)}
    assert second["best"]["values"]["cifar10_test_acc"] == max(t.values[0] for t in study.trials)


def test_directions_must_match(tmp_path, nb201_space, table):
    url = f"sqlite:///{tmp_path / 'd.db'}"
    s = create_searcher("random", nb201_space, objectives=["cifar10_test_acc"], seed=0)
    run_study_worker(s, table.evaluate, storage=url, study_name="d", n_trials=2)
    s2 = create_searcher("random", nb201_space, objectives=["pixel3_latency_ms:min"], seed=0)
    with pytest.raises(ConfigError, match="optimises"):
        run_study_worker(s2, table.evaluate, storage=url, study_name="d", n_trials=2)


def test_constrained_study_records_constraints(tmp_path, nb201_space, table):
    url = f"sqlite:///{tmp_path / 'c.db'}"
    s = create_searcher(
        "tpe",
        nb201_space,
        objectives=["cifar10_test_acc"],
        constraints=["pixel3_latency_ms<=8"],
        seed=0,
        storage=make_storage(url),
        study_name="c",
    )
    out = run_study_worker(s, table.evaluate, storage=url, study_name="c", n_trials=12)
    assert out["best"] is None or out["best"]["values"]["pixel3_latency_ms"] <= 8
    study = _load(make_storage(url), "c")
    for t in study.trials:
        assert t.user_attrs["hwnas:constraints"][0] == pytest.approx(
            t.user_attrs["hwnas:values"]["pixel3_latency_ms"] - 8
        )


# -- real processes ---------------------------------------------------------------------------
def _nas(run_nas_cmd, *args, **kw):
    return subprocess.Popen([*run_nas_cmd, *args], stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, **kw)


@pytest.fixture
def nas_cmd():
    exe = Path(sys.executable).with_name("nas")
    return [str(exe)] if exe.exists() else [sys.executable, "-m", "nas.cli"]


def _two_workers_then_resume(url, nas_cmd, tmp_path, searcher):
    """Two concurrent workers, then a worker killed mid-evaluation, then a resume."""
    common = ["search", "--space", "nb201", "--searcher", searcher, "--storage", url, "--quiet", "--json"]
    procs = [_nas(nas_cmd, *common, "--study", "shared", "--n-trials", "12", "--seed", str(w)) for w in (1, 2)]
    outs = []
    for p in procs:
        out, err = p.communicate(timeout=300)
        assert p.returncode == 0, err
        outs.append(json.loads(out))
    storage = make_storage(url)
    study = _load(storage, "shared")
    numbers = [t.number for t in study.trials]
    mine = outs[0]["trials"] + outs[1]["trials"]
    # no lost and no duplicated trials: every worker trial is one COMPLETE row, numbers unique
    assert len(mine) == 24 and len(set(mine)) == 24
    assert sorted(mine) == sorted(numbers) == list(range(24))
    assert all(t.state.name == "COMPLETE" for t in study.trials)

    # a worker killed during an evaluation; the study resumes
    p = _nas(nas_cmd, *common, "--study", "resume", "--n-trials", "50", "--seed", "3", "--delay", "3")
    deadline = time.time() + 240  # each evaluation sleeps 3 s: a wide window to kill it in, even under load
    while time.time() < deadline:
        try:
            st = _load(storage, "resume")
            if sum(t.state.name == "COMPLETE" for t in st.trials) >= 3 and any(
                t.state.name == "RUNNING" and "hwnas:worker" in t.user_attrs for t in st.trials
            ):
                time.sleep(0.1)  # inside the evaluation
                break
        except KeyError:
            pass
        time.sleep(0.2)
    os.kill(p.pid, signal.SIGKILL)
    p.communicate(timeout=60)
    st = _load(storage, "resume")
    running = [t.number for t in st.trials if t.state.name == "RUNNING"]
    done = sum(t.state.name == "COMPLETE" for t in st.trials)
    res = subprocess.run(
        [*nas_cmd, *common, "--study", "resume", "--budget", str(done + 4), "--seed", "4"],
        capture_output=True,
        text=True,
        timeout=300,
    )
    assert res.returncode == 0, res.stderr
    out = json.loads(res.stdout)
    assert running and out["recovered"] == running  # the killed worker's trial was failed ...
    st = _load(storage, "resume")
    states = Counter(t.state.name for t in st.trials)
    assert states["RUNNING"] == 0 and states["COMPLETE"] == done + 4
    retried = [t for t in st.trials if t.user_attrs.get("hwnas:retry_of") is not None]
    assert [t.user_attrs["hwnas:retry_of"] for t in retried] == running  # ... and its arch evaluated again
    archs = [tuple(sorted(t.params.items())) for t in st.trials if t.state.name == "COMPLETE"]
    assert len(set(archs)) == len(archs)


def test_sqlite_workers_processes(tmp_path, nas_cmd, nb201_csv):
    _two_workers_then_resume(f"sqlite:///{tmp_path / 'w.db'}", nas_cmd, tmp_path, "evolution")


@pytest.mark.postgres
@pytest.mark.parametrize("searcher", ["tpe", pytest.param("random", marks=pytest.mark.slow)])
def test_postgres_workers_share_a_study(postgres_url, tmp_path, nas_cmd, nb201_csv, searcher):
    import optuna

    # a fresh study namespace per test: delete the studies of a previous parametrisation
    storage = make_storage(postgres_url)
    for name in ("shared", "resume"):
        try:
            optuna.delete_study(study_name=name, storage=storage)
        except KeyError:
            pass
    _two_workers_then_resume(postgres_url, nas_cmd, tmp_path, searcher)


def test_interrupted_evaluation_is_failed_and_requeued(tmp_path, nb201_space, table):
    url = f"sqlite:///{tmp_path / 'i.db'}"
    calls = []

    def flaky(arch):
        calls.append(arch)
        if len(calls) == 3:
            raise KeyboardInterrupt  # Ctrl-C during the third evaluation
        return table.evaluate(arch)

    s = create_searcher("mcts", nb201_space, objectives=["cifar10_test_acc"], seed=0)
    with pytest.raises(KeyboardInterrupt):
        run_study_worker(s, flaky, storage=url, study_name="i", n_trials=10)
    study = _load(make_storage(url), "i")
    states = [t.state.name for t in study.trials]
    assert states == ["COMPLETE", "COMPLETE", "FAIL", "WAITING"]
    s2 = create_searcher("mcts", nb201_space, objectives=["cifar10_test_acc"], seed=1)
    out = run_study_worker(s2, table.evaluate, storage=url, study_name="i", budget=5)
    assert out["study_evaluated"] == 5 and out["trials"][0] == 3  # the queued arch was evaluated first
    study = _load(make_storage(url), "i")
    assert study.trials[3].state.name == "COMPLETE" and study.trials[3].user_attrs["hwnas:retry_of"] == 2
    assert study.trials[3].params == study.trials[2].params
