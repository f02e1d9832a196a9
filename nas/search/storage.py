"""Optuna storages and shared studies: several ``nas search`` workers, one study.

:func:`make_storage` turns a URL into an Optuna storage: ``None`` / ``"memory"`` (in memory),
``sqlite:///file.db`` and ``postgresql://user@host:port/db`` (:class:`optuna.storages.RDBStorage`
with heartbeats, so that the trials of a killed worker are failed and retried), and
``journal:file.log`` (:class:`optuna.storages.JournalStorage`, one machine).

:func:`run_study_worker` runs any searcher against a stored study: at start and before every trial
it fails the stale trials of dead workers and re-queues their archs (Optuna's heartbeat for RDB
storages, the worker's process id on this host), tells the searcher every finished trial of
the study (so a restarted worker resumes where the study is), then loops ask → evaluate → tell,
recording each trial in the study. Every trial a worker finishes is one row of the study,
numbered by the storage, so concurrent workers neither lose nor duplicate trials.
"""

from __future__ import annotations

import datetime
import math
import os
import socket
import threading
import time
from collections.abc import Callable, Mapping
from typing import Any

from hwnas.errors import ConfigError
from nas.search.base import Searcher
from nas.search.optuna_search import VALUES_ATTR, OptunaSearcher, record_constraints
from spaces.arch import Arch

__all__ = ["make_storage", "open_study", "run_study_worker", "study_trials"]

WORKER_ATTR = "hwnas:worker"
CACHED_ATTR = "hwnas:cached"
RETRY_ATTR = "hwnas:retry_of"
HEARTBEAT_S = 5
GRACE_S = 20
#: how often a worker whose budget waits on other workers' running trials looks again
_WAIT_S = 0.5


def make_storage(url: Any, *, heartbeat_interval: int | None = HEARTBEAT_S, grace_period: int | None = GRACE_S) -> Any:
    """An Optuna storage from a URL (see the module docstring); storages pass through."""
    if url is None or (isinstance(url, str) and url in ("", "memory", ":memory:", "inmemory")):
        return None
    if not isinstance(url, str):
        return url
    import optuna

    if url.startswith("journal:"):
        path = url[len("journal:") :]
        if path.startswith("//"):
            path = path[2:]
        if not path:
            raise ConfigError("journal storage needs a file: journal:PATH")
        _check_journal_file(path)
        from optuna.storages.journal import JournalFileBackend, JournalFileOpenLock

        _quiet_optuna()
        try:
            return optuna.storages.JournalStorage(JournalFileBackend(path, lock_obj=JournalFileOpenLock(path)))
        except (OSError, ValueError, KeyError, TypeError) as exc:  # a journal Optuna cannot replay
            raise ConfigError(
                f"journal {path}: cannot be opened as an Optuna journal ({type(exc).__name__}: {_first_line(exc)})"
            ) from None
    if url.endswith((".log", ".journal")) and "://" not in url:
        return make_storage("journal:" + url)
    if "://" not in url:
        raise ConfigError(f"storage {url!r}: expected sqlite:///FILE, postgresql://..., journal:FILE or memory")
    scheme = url.split("://", 1)[0]
    if scheme in ("postgres", "postgresql"):
        url = _postgres_driver_url(url)
        scheme = url.split("://", 1)[0]
    _quiet_optuna()
    last: Exception | None = None
    for attempt in range(5):  # workers starting together race to create the tables: retry
        try:
            return _heartbeat_storage_class()(
                url,
                heartbeat_interval=heartbeat_interval,
                grace_period=grace_period,
                heartbeat_stale_trial_callback=_requeue_stale_trial if heartbeat_interval else None,
                engine_kwargs={"pool_pre_ping": True} if not scheme.startswith("sqlite") else None,
            )
        except Exception as exc:  # sqlalchemy errors: bad URL, unreachable server, creation race
            last = exc
            text = str(exc)
            if not any(k in text for k in ("already exists", "UNIQUE", "unique", "duplicate key", "locked")):
                break
            time.sleep(0.2 * (attempt + 1))
    assert last is not None
    msg = str(last).strip().splitlines()[0] if str(last).strip() else type(last).__name__
    raise ConfigError(f"cannot open storage {_redact(url)}: {msg}")


def _first_line(exc: BaseException) -> str:
    text = str(exc).strip()
    return text.splitlines()[0] if text else type(exc).__name__


def _check_journal_file(path: str) -> None:
    """One-line errors for a journal Optuna could not use: a missing or read-only folder, a path that is
    a folder, a file that is not a journal (not UTF-8, or lines that are not JSON objects) or one whose
    last write was interrupted (a partial last line: appending to it would corrupt the next record)."""
    import json
    from pathlib import Path

    p = Path(path)
    parent = p.parent if str(p.parent) else Path(".")
    if not parent.is_dir():
        raise ConfigError(f"journal {path}: no such folder {parent}")
    if p.is_dir():
        raise ConfigError(f"journal {path}: is a folder, not a journal file")
    if not os.access(parent, os.W_OK | os.X_OK) or (p.exists() and not os.access(p, os.R_OK | os.W_OK)):
        raise ConfigError(f"journal {path}: not writable here (permission denied)")
    if not p.exists():
        return
    try:
        data = p.read_bytes()
    except OSError as exc:
        raise ConfigError(f"journal {path}: cannot read ({exc.strerror})") from None
    if not data:
        return
    try:
        text = data.decode("utf-8")
    except UnicodeDecodeError as exc:
        raise ConfigError(f"journal {path}: not an Optuna journal (not UTF-8 text at byte {exc.start})") from None
    lines = text.split("\n")
    if lines[-1].strip():
        raise ConfigError(
            f"journal {path}: the last record (line {len(lines)}) is incomplete, a write was "
            f"interrupted; remove that partial line to continue the study"
        )
    for i, line in enumerate(lines[:-1], 1):
        if not line.strip():
            continue
        try:
            record = json.loads(line)
        except (json.JSONDecodeError, RecursionError, ValueError):
            raise ConfigError(f"journal {path}: not an Optuna journal (line {i} is not a JSON record)") from None
        if not isinstance(record, dict) or "op_code" not in record:
            raise ConfigError(f"journal {path}: not an Optuna journal (line {i} has no op_code)")


def _requeue_stale_trial(study: Any, trial: Any) -> None:
    """Optuna's heartbeat-stale-trial callback: the arch of a trial whose worker died is queued again,
    once (the callback runs only in the worker whose storage update failed the trial)."""
    if trial.params:
        study.enqueue_trial(dict(trial.params), user_attrs={RETRY_ATTR: trial.number})


_HEARTBEAT_CLASS: Any = None


def _heartbeat_storage_class() -> Any:
    """``RDBStorage`` whose heartbeat starts with the trial: Optuna records the first heartbeat only when
    its heartbeat thread starts, so a worker killed right after ``study.ask()`` left a RUNNING trial
    without one, which Optuna's ``fail_stale_trials`` never fails. Here every trial that becomes RUNNING
    gets a heartbeat at once, and a RUNNING trial without any is stale once it is older than the grace
    period (its worker died between creating it and the first beat)."""
    global _HEARTBEAT_CLASS
    if _HEARTBEAT_CLASS is not None:
        return _HEARTBEAT_CLASS
    import optuna
    from optuna.trial import TrialState

    class HeartbeatRDBStorage(optuna.storages.RDBStorage):
        def create_new_trial(self, study_id: int, template_trial: Any = None) -> int:
            trial_id = super().create_new_trial(study_id, template_trial)
            if self.heartbeat_interval and (template_trial is None or template_trial.state == TrialState.RUNNING):
                self.record_heartbeat(trial_id)
            return trial_id

        def set_trial_state_values(self, trial_id: int, state: Any, values: Any = None) -> bool:
            changed = super().set_trial_state_values(trial_id, state, values)
            if changed and state == TrialState.RUNNING and self.heartbeat_interval:
                self.record_heartbeat(trial_id)  # a queued trial (a retry) taken by a worker
            return changed

        def _get_stale_trial_ids(self, study_id: int) -> list[int]:
            stale = super()._get_stale_trial_ids(study_id)
            grace = self.grace_period if self.grace_period is not None else 2 * (self.heartbeat_interval or 0)
            from optuna.storages._rdb import models
            from optuna.storages._rdb.storage import _create_scoped_session

            now = datetime.datetime.now()  # the clock Optuna writes datetime_start with
            with _create_scoped_session(self.scoped_session) as session:
                running = (
                    session.query(models.TrialModel)
                    .filter(models.TrialModel.state == TrialState.RUNNING)
                    .filter(models.TrialModel.study_id == study_id)
                    .all()
                )
                for t in running:
                    if (
                        not t.heartbeats
                        and t.datetime_start is not None
                        and (now - t.datetime_start).total_seconds() > grace
                    ):
                        stale.append(t.trial_id)
            return sorted(set(stale))

    _HEARTBEAT_CLASS = HeartbeatRDBStorage
    return HeartbeatRDBStorage


def _quiet_optuna() -> None:
    """Heartbeats are experimental in Optuna and meant for ``Study.optimize``: we drive them ourselves."""
    import warnings

    import optuna

    optuna.logging.set_verbosity(optuna.logging.WARNING)
    warnings.filterwarnings("ignore", category=optuna.exceptions.ExperimentalWarning)
    warnings.filterwarnings("ignore", message="Heartbeat of storage is supposed to be used with Study.optimize")


def _postgres_driver_url(url: str) -> str:
    """Name an installed PostgreSQL driver in the URL (SQLAlchemy 2.1 defaults to psycopg 3)."""
    import importlib.util

    rest = url.split("://", 1)[1]
    for module, driver in (("psycopg2", "psycopg2"), ("psycopg", "psycopg")):
        if importlib.util.find_spec(module) is not None:
            return f"postgresql+{driver}://{rest}"
    raise ConfigError("PostgreSQL storage needs a driver: pip install psycopg2-binary (or psycopg)")


def _redact(url: str) -> str:
    if "@" in url and "://" in url:
        scheme, rest = url.split("://", 1)
        cred, host = rest.rsplit("@", 1)
        user = cred.split(":", 1)[0]
        return f"{scheme}://{user}:***@{host}" if ":" in cred else url
    return url


def open_study(storage: Any, study_name: str, directions: list[str], sampler: Any = None) -> Any:
    """Create or join the study ``study_name`` (its directions must match)."""
    import optuna

    optuna.logging.set_verbosity(optuna.logging.WARNING)
    try:
        study = optuna.create_study(
            storage=storage, study_name=study_name, directions=directions, sampler=sampler, load_if_exists=True
        )
    except Exception as exc:
        raise ConfigError(f"cannot open study {study_name!r}: {str(exc).splitlines()[0]}") from None
    have = [d.name.lower() for d in study.directions]
    if have != directions:
        raise ConfigError(f"study {study_name!r} optimises {have}, not {directions}")
    return study


def study_trials(study: Any) -> list[Any]:
    """The study's finished (COMPLETE) trials, in number order."""
    import optuna

    return [t for t in study.get_trials(deepcopy=False, states=(optuna.trial.TrialState.COMPLETE,))]


def _replay_sampler(seed: int | None) -> Any:
    """An Optuna sampler that proposes the arch a non-Optuna searcher chose (set ``sampler.next``)."""
    import random

    import optuna

    class ReplaySampler(optuna.samplers.BaseSampler):
        def __init__(self) -> None:
            self.next: Mapping[str, Any] = {}
            self._rng = random.Random(seed)

        def infer_relative_search_space(self, study: Any, trial: Any) -> dict[str, Any]:
            return {}

        def sample_relative(self, study: Any, trial: Any, search_space: Any) -> dict[str, Any]:
            return {}

        def sample_independent(self, study: Any, trial: Any, param_name: str, param_distribution: Any) -> Any:
            choices = param_distribution.choices
            if param_name in self.next:
                want = self.next[param_name]
                for c in choices:
                    if c == want and type(c) is type(want):
                        return c
            return choices[self._rng.randrange(len(choices))]

    return ReplaySampler()


class _Heartbeat:
    """Records heartbeats of a running trial in a thread (RDB storages with heartbeats)."""

    def __init__(self, storage: Any, trial_id: int) -> None:
        self.storage = storage
        self.trial_id = trial_id
        self.interval = getattr(storage, "heartbeat_interval", None)
        self._stop = threading.Event()
        self._thread: threading.Thread | None = None

    def __enter__(self) -> _Heartbeat:
        if self.interval:
            self.storage.record_heartbeat(self.trial_id)
            self._thread = threading.Thread(target=self._run, daemon=True)
            self._thread.start()
        return self

    def _run(self) -> None:
        while not self._stop.wait(self.interval):
            try:
                self.storage.record_heartbeat(self.trial_id)
            except Exception:  # pragma: no cover - a transient storage error: try again next beat
                pass

    def __exit__(self, *exc: Any) -> None:
        self._stop.set()
        if self._thread is not None:
            self._thread.join()


def _pid_alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    return True


def _heartbeat_enabled(study: Any) -> bool:
    from optuna.storages._heartbeat import is_heartbeat_enabled

    return is_heartbeat_enabled(study._storage)


def _recover_stale(study: Any) -> list[int]:
    """Fail the RUNNING trials of dead workers and re-queue their archs; returns their numbers.

    A worker is dead when it ran on this host and its process is gone, or, for storages with
    heartbeats (RDB: SQLite, PostgreSQL), when Optuna's heartbeat of its trial has been silent for
    the grace period (:func:`optuna.storages.fail_stale_trials`, whose callback re-queues the arch);
    a journal has no heartbeats: there a trial that never got a worker name (its worker was killed
    right after creating it) is stale once it is older than the grace period. Called before every
    trial, so a worker restarted at once still reclaims what the dead one left.
    """
    import optuna

    states = optuna.trial.TrialState
    running = {t.number: t for t in study.get_trials(deepcopy=False, states=(states.RUNNING,))}
    if not running:
        return []
    heartbeat = _heartbeat_enabled(study)
    failed: list[int] = []
    host = socket.gethostname()
    now = datetime.datetime.now()
    for t in running.values():
        w_host, _, w_pid = str(t.user_attrs.get(WORKER_ATTR, "")).rpartition(":")
        local_dead = w_host == host and w_pid.isdigit() and not _pid_alive(int(w_pid))
        anonymous_old = (
            not heartbeat
            and WORKER_ATTR not in t.user_attrs
            and t.datetime_start is not None
            and (now - t.datetime_start).total_seconds() > GRACE_S
        )
        if local_dead or anonymous_old:
            try:
                if study._storage.set_trial_state_values(t._trial_id, state=states.FAIL):
                    failed.append(t.number)
                    if t.params:
                        study.enqueue_trial(dict(t.params), user_attrs={RETRY_ATTR: t.number})
            except Exception:  # another worker failed it first (and queued it again)
                pass
    if heartbeat:
        optuna.storages.fail_stale_trials(study)  # its callback (make_storage's) queues the archs again
        still = {t.number for t in study.get_trials(deepcopy=False, states=(states.RUNNING,))}
        failed += [
            n
            for n in running
            if n not in still
            and n not in failed
            and study._storage.get_trial(running[n]._trial_id).state == states.FAIL
        ]
    return sorted(failed)


def _reclaimable(study: Any, trial: Any) -> bool:
    """Whether a RUNNING trial would be failed here if its worker died (so waiting for it ends)."""
    if _heartbeat_enabled(study):
        return True
    w_host, _, w_pid = str(trial.user_attrs.get(WORKER_ATTR, "")).rpartition(":")
    return WORKER_ATTR not in trial.user_attrs or (w_host == socket.gethostname() and w_pid.isdigit())


def _trial_arch_values(frozen: Any) -> tuple[Arch, dict[str, float]]:
    values = dict(frozen.user_attrs.get(VALUES_ATTR, {}))
    return Arch(dict(frozen.params)), {k: float(v) for k, v in values.items()}


def run_study_worker(
    searcher: Searcher,
    evaluate: Callable[[Arch], Mapping[str, float]],
    *,
    storage: Any,
    study_name: str,
    n_trials: int | None = None,
    budget: int | None = None,
    max_asks: int | None = None,
    on_trial: Callable[[dict[str, Any]], None] | None = None,
) -> dict[str, Any]:
    """Run ``searcher`` as one worker of the stored study ``study_name``.

    Stops after ``n_trials`` trials of this worker, or when the study holds ``budget`` distinct
    evaluated archs (finished or being evaluated by live workers), whichever comes first.
    Returns a summary: this worker's trial numbers, the study's size, the best trial.
    """
    import optuna

    if n_trials is None and budget is None:
        raise ConfigError("a study worker needs --n-trials or --budget")
    worker = f"{socket.gethostname()}:{os.getpid()}"
    directions = [o.direction for o in searcher.objectives]
    if isinstance(searcher, OptunaSearcher):
        study = searcher.study
        if study.study_name != study_name:
            raise ConfigError("the Optuna searcher was opened on another study")
        searcher.forward_external = False
        replay = None
    else:
        replay = _replay_sampler(searcher.seed)
        study = open_study(make_storage(storage), study_name, directions, sampler=replay)
    retried = _recover_stale(study)

    known: dict[Arch, dict[str, float]] = {}

    def sync() -> int:
        """Tell the searcher the study's finished trials it has not seen; returns #distinct evaluated."""
        evaluated: set[Arch] = set()
        for ft in study_trials(study):
            arch, vals = _trial_arch_values(ft)
            if not ft.user_attrs.get(CACHED_ATTR):
                evaluated.add(arch)
            if arch not in known and vals:
                known[arch] = vals
                if not searcher.is_told(arch):
                    searcher.tell(arch, vals)
        return len(evaluated)

    def running_others() -> list[Any]:
        return [
            t
            for t in study.get_trials(deepcopy=False, states=(optuna.trial.TrialState.RUNNING,))
            if t.user_attrs.get(WORKER_ATTR) != worker
        ]

    from nas.search.runner import SpaceSize

    size = SpaceSize(searcher.space)
    mine: list[int] = []
    evaluated_by_me = 0
    asks = 0
    max_asks = max_asks if max_asks is not None else 50 * (n_trials or budget or 1) + 100
    current: Any = None
    carry: Arch | None = None
    stopped = "budget"
    repeats = 0
    try:
        while True:
            if n_trials is not None and len(mine) >= n_trials:
                break
            if mine or asks:
                retried += _recover_stale(study)  # dead workers' trials, whenever they died
            n_eval = sync()
            if size.exhausted(len(known)) or (repeats >= 200 and size.exhausted(len(known), exact=True)):
                stopped = "exhausted"
                break
            if budget is not None:
                if n_eval >= budget:
                    break
                others = running_others()
                if n_eval + len(others) >= budget:
                    # the budget is met if the running trials finish: wait for them, unless one could
                    # belong to a dead worker this storage cannot detect (then leave it to its worker)
                    if not all(_reclaimable(study, t) for t in others):
                        break
                    time.sleep(_WAIT_S)
                    continue
            if asks >= max_asks:
                stopped = "max_asks"
                break
            asks += 1
            beat = None
            if replay is not None:
                proposal = carry if carry is not None else searcher.ask()
                replay.next = proposal
                current = study.ask()
                beat = _Heartbeat(study._storage, current._trial_id).__enter__()  # beats until the trial is told
                arch = searcher.space.suggest(current)  # the proposal, unless a retried trial was dequeued
                carry = proposal if arch != proposal else None
            else:
                arch, current = searcher.ask_trial()  # type: ignore[union-attr]
                beat = _Heartbeat(study._storage, current._trial_id).__enter__()
            try:
                current.set_user_attr(WORKER_ATTR, worker)
                cached = known.get(arch)
                if cached is not None:
                    vals = cached
                    current.set_user_attr(CACHED_ATTR, True)
                    repeats += 1
                else:
                    vals = dict(evaluate(arch))
                    known[arch] = vals
                    evaluated_by_me += 1
                    repeats = 0
                if replay is not None:
                    trial = searcher.tell(arch, vals)
                    current.set_user_attr(VALUES_ATTR, dict(vals))
                    if searcher.constraints:
                        record_constraints(current, searcher.constraints, vals)
                    if any(math.isnan(v) for v in trial.objectives):
                        study.tell(current, state=optuna.trial.TrialState.FAIL)
                    else:
                        study.tell(current, [float(vals[o.name]) for o in searcher.objectives])
                else:
                    searcher.tell(arch, vals)  # the Optuna searcher tells its trial
            finally:
                beat.__exit__(None, None, None)
            mine.append(current.number)
            if on_trial is not None:
                on_trial(
                    {"number": current.number, "arch": arch.to_dict(), "values": vals, "cached": cached is not None}
                )
            current = None
    except BaseException:
        if current is not None:  # an interrupted evaluation: fail the trial and queue its arch again
            try:
                study.tell(current, state=optuna.trial.TrialState.FAIL)
                if current.params:
                    study.enqueue_trial(dict(current.params), user_attrs={RETRY_ATTR: current.number})
            except Exception:  # pragma: no cover - storage unreachable: the heartbeat will fail it
                pass
        raise
    n_eval = sync()
    best = searcher.best()
    return {
        "study": study_name,
        "worker": worker,
        "trials": mine,
        "evaluated": evaluated_by_me,
        "recovered": sorted(set(retried)),
        "stopped": stopped,
        "study_trials": len(study_trials(study)),
        "study_evaluated": n_eval,
        "best": None if best is None else {"arch": best.arch.to_dict(), "values": dict(best.values)},
    }
