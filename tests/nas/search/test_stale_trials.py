"""A worker SIGKILLed right after ``study.ask()`` leaves no trial RUNNING once a worker resumes, even at
once (Optuna's heartbeat, started with the trial); journal files that cannot work are one-line errors."""

from __future__ import annotations

import os
import signal
import socket
import subprocess
import sys
import textwrap
import time

import pytest

from hwnas.errors import ConfigError
from nas.search import create_searcher
from nas.search.storage import make_storage
from nas.search.study_worker import run_study_worker
from spaces import Block, Choice, Sequential, Space


def _space() -> Space:
    return Space(
        "tiny",
        Sequential(
            {"a": Block("conv_bn_act", out=Choice([8, 16, 24, 32])), "b": Block("conv_bn_act", out=Choice([8, 16, 24]))}
        ),
        resolution=8,
    )


def _kill_after_ask(url: str, tmp_path) -> None:
    """A worker process that creates its trial and dies before naming itself on it."""
    script = textwrap.dedent(f"""
        import sys, time
        from nas.search.storage import make_storage, open_study
        study = open_study(make_storage({url!r}, heartbeat_interval=1, grace_period=2), "s", ["maximize"])
        study.ask()
        print("asked", flush=True)
        time.sleep(120)
    """)
    proc = subprocess.Popen([sys.executable, "-c", script], stdout=subprocess.PIPE, text=True, cwd=tmp_path)
    try:
        assert proc.stdout.readline().strip() == "asked"
    finally:
        os.kill(proc.pid, signal.SIGKILL)
        proc.wait(timeout=30)


def test_trial_of_a_worker_killed_after_ask_is_reclaimed_on_an_immediate_resume(tmp_path):
    import optuna

    url = f"sqlite:///{tmp_path / 's.db'}"
    _kill_after_ask(url, tmp_path)
    storage = make_storage(url, heartbeat_interval=1, grace_period=2)
    study = optuna.load_study(study_name="s", storage=storage)
    assert [t.state.name for t in study.trials] == ["RUNNING"]  # restarted at once: not yet stale
    searcher = create_searcher("random", _space(), objectives=["accuracy"], seed=0)
    out = run_study_worker(
        searcher, lambda a: {"accuracy": float(a["a.out"] + a["b.out"])}, storage=storage, study_name="s", budget=5
    )
    study = optuna.load_study(study_name="s", storage=storage)
    states = [t.state.name for t in study.trials]
    assert states.count("RUNNING") == 0 and states.count("COMPLETE") == 5
    assert out["study_evaluated"] == 5 and out["recovered"] == [0]


def test_a_trial_without_any_heartbeat_is_stale_after_the_grace_period(tmp_path):
    """The window between creating a trial and its first heartbeat: a plain RDB storage makes such a trial."""
    import optuna

    url = f"sqlite:///{tmp_path / 'h.db'}"
    storage = make_storage(url, heartbeat_interval=1, grace_period=1)
    optuna.create_study(study_name="h", storage=storage, direction="maximize")
    plain = optuna.storages.RDBStorage(url)  # no heartbeat recorded by this one
    optuna.load_study(study_name="h", storage=plain).ask()
    study = optuna.load_study(study_name="h", storage=storage)
    assert storage._get_stale_trial_ids(study._study_id) == []
    time.sleep(1.5)
    assert storage._get_stale_trial_ids(study._study_id) == [study.trials[0]._trial_id]


def test_heartbeat_is_recorded_when_a_trial_starts(tmp_path):
    import optuna

    storage = make_storage(f"sqlite:///{tmp_path / 'b.db'}", heartbeat_interval=1, grace_period=1)
    study = optuna.create_study(study_name="b", storage=storage, direction="maximize")
    trial = study.ask()
    time.sleep(1.5)
    assert storage._get_stale_trial_ids(study._study_id) == [trial._trial_id]  # silent since it started
    storage.record_heartbeat(trial._trial_id)
    assert storage._get_stale_trial_ids(study._study_id) == []


def _journal(tmp_path, name: str, content: bytes | None) -> str:
    p = tmp_path / name
    if content is not None:
        p.write_bytes(content)
    return str(p)


@pytest.mark.parametrize(
    "make, message",
    [
        (lambda t: str(t / "missing" / "j.log"), "no such folder"),
        (lambda t: str(t), "is a folder"),
        (lambda t: _journal(t, "g.log", b"garbage\n"), "line 1 is not a JSON record"),
        (lambda t: _journal(t, "n.log", b"[1, 2]\n"), "line 1 has no op_code"),
        (lambda t: _journal(t, "b.log", b"\xff\xfe\x00\n"), "not UTF-8"),
        (
            lambda t: _journal(
                t,
                "h.log",
                b'{"op_code": 0, "worker_id": "w", "study_name": "s", "directions": [1]}\n{"op_code": 4, "wor',
            ),
            "incomplete",
        ),
    ],
)
def test_bad_journal_files_are_one_line_errors(tmp_path, make, message):
    path = make(tmp_path)
    with pytest.raises(ConfigError, match=message) as err:
        make_storage(f"journal:{path}")
    assert len(str(err.value).splitlines()) == 1


@pytest.mark.skipif(os.geteuid() == 0, reason="root writes anywhere")
def test_read_only_journal_folder_is_a_one_line_error(tmp_path):
    ro = tmp_path / "ro"
    ro.mkdir()
    ro.chmod(0o555)
    try:
        with pytest.raises(ConfigError, match="not writable"):
            make_storage(f"journal:{ro / 'j.log'}")
    finally:
        ro.chmod(0o755)


def test_good_journal_still_opens(tmp_path):
    import optuna

    url = f"journal:{tmp_path / 'ok.log'}"
    study = optuna.create_study(study_name="s", storage=make_storage(url), direction="maximize")
    study.tell(study.ask(), 1.0)
    again = optuna.load_study(study_name="s", storage=make_storage(url))
    assert [t.state.name for t in again.trials] == ["COMPLETE"]


# ------------------------------------------------------------------------------------------------
# recovery that does not wait on a clock: a worker marks the study while it names itself on its trial
# ------------------------------------------------------------------------------------------------
_WORKER_SCRIPT = """
import sys, time
from nas.search import create_searcher
from nas.search.study_worker import StudyWorker
from spaces import Block, Choice, Sequential, Space

space = Space("tiny", Sequential({{"a": Block("conv_bn_act", out=Choice([8, 16, 24, 32])),
                                  "b": Block("conv_bn_act", out=Choice([8, 16, 24]))}}), resolution=8)
w = StudyWorker(create_searcher("random", space, objectives=["accuracy"], seed=0), lambda a: {{}},
                storage={url!r}, study_name="s", budget=5)
if {retry!r}:
    w.study.enqueue_trial({{"a.out": 32, "b.out": 24}}, user_attrs={{"hwnas:retry_of": 99}})
w._set_asking(True)
w.link.ask()
print("asked", flush=True)
time.sleep(120)
"""


def _worker_in_its_window(url: str, tmp_path, retry: bool = False) -> subprocess.Popen:
    """A real study worker (default heartbeat and grace period) stopped after creating its trial and
    before naming itself on it; the caller kills it or leaves it alive."""
    script = _WORKER_SCRIPT.format(url=url, retry=retry)
    proc = subprocess.Popen([sys.executable, "-c", script], stdout=subprocess.PIPE, text=True, cwd=tmp_path)
    assert proc.stdout.readline().strip() == "asked"
    return proc


def _kill(proc: subprocess.Popen) -> None:
    os.kill(proc.pid, signal.SIGKILL)
    proc.wait(timeout=30)  # reaped: its process id is gone


def _score(a) -> dict[str, float]:
    return {"accuracy": float(a["a.out"] + a["b.out"])}


@pytest.mark.parametrize("kind", ["sqlite", "journal"])
def test_unnamed_trial_of_a_dead_worker_is_reclaimed_at_once_without_waiting(tmp_path, kind):
    """No grace period to wait out: one trial of a worker restarted at once ends with nothing RUNNING."""
    import optuna

    url = f"sqlite:///{tmp_path / 's.db'}" if kind == "sqlite" else f"journal:{tmp_path / 's.log'}"
    _kill(_worker_in_its_window(url, tmp_path))
    start = time.monotonic()
    searcher = create_searcher("random", _space(), objectives=["accuracy"], seed=0)
    out = run_study_worker(searcher, _score, storage=url, study_name="s", n_trials=1)
    assert time.monotonic() - start < 15  # the grace period is 20 s
    assert out["recovered"] == [0]
    states = [t.state.name for t in optuna.load_study(study_name="s", storage=make_storage(url)).trials]
    assert states == ["FAIL", "COMPLETE"]


def test_retry_taken_by_a_dead_worker_is_queued_again(tmp_path):
    import optuna

    url = f"journal:{tmp_path / 'r.log'}"
    _kill(_worker_in_its_window(url, tmp_path, retry=True))
    searcher = create_searcher("random", _space(), objectives=["accuracy"], seed=0)
    out = run_study_worker(searcher, _score, storage=url, study_name="s", n_trials=1)
    assert out["recovered"] == [0]
    trials = optuna.load_study(study_name="s", storage=make_storage(url)).trials
    assert [t.state.name for t in trials] == ["FAIL", "COMPLETE"]
    assert trials[1].params == {"a.out": 32, "b.out": 24}  # the queued arch, not lost with its worker
    assert trials[1].user_attrs["hwnas:retry_of"] == 0


@pytest.mark.parametrize("kind", ["sqlite", "journal"])
def test_unnamed_trial_of_a_live_worker_is_left_alone(tmp_path, kind, monkeypatch):
    """Even past the grace period: its worker is alive on this host, naming itself on it."""
    import nas.search.study_worker as sw

    url = f"sqlite:///{tmp_path / 'l.db'}" if kind == "sqlite" else f"journal:{tmp_path / 'l.log'}"
    proc = _worker_in_its_window(url, tmp_path)
    try:
        monkeypatch.setattr(sw, "GRACE_S", 0)
        searcher = create_searcher("random", _space(), objectives=["accuracy"], seed=0)
        worker = sw.StudyWorker(searcher, _score, storage=url, study_name="s", n_trials=1)
        assert worker.askers() == [f"{socket.gethostname()}:{proc.pid}"]
        time.sleep(0.1)
        assert worker.recover_stale() == []
        assert [t.state.name for t in worker.study.trials] == ["RUNNING"]
    finally:
        _kill(proc)
    assert worker.recover_stale() == [0]  # dead now: reclaimed at once
