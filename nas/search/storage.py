"""Optuna storages and shared studies: a URL becomes a storage, a study is created or joined.

:func:`make_storage` turns a URL into an Optuna storage: ``None`` / ``"memory"`` (in memory),
``sqlite:///file.db`` and ``postgresql://user@host:port/db`` (:class:`optuna.storages.RDBStorage`
with heartbeats, so that the trials of a killed worker are failed and retried), and
``journal:file.log`` (:class:`optuna.storages.JournalStorage`, one machine).

The loop that runs a searcher as one of several workers of a stored study is
:mod:`nas.search.study_worker`; this module knows no searcher.
"""

from __future__ import annotations

import datetime
import os
import time
from typing import Any

from hwnas.errors import ConfigError, first_line

__all__ = ["make_storage", "open_study", "requeue_params", "study_trials"]

#: user attribute of a trial queued again after its worker died: the number of the failed trial
RETRY_ATTR = "hwnas:retry_of"
#: user attribute naming the worker (``host:pid``) evaluating a trial, set once its arch is chosen in full
WORKER_ATTR = "hwnas:worker"
HEARTBEAT_S = 5
GRACE_S = 20


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
                f"journal {path}: cannot be opened as an Optuna journal ({type(exc).__name__}: {first_line(exc)})"
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
    raise ConfigError(f"cannot open storage {_redact(url)}: {first_line(last)}")


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


def requeue_params(trial: Any) -> dict[str, Any] | None:
    """The arch to queue again for a trial whose worker died, None when there is none: an arch chosen
    in full (its worker named itself on the trial), or the queued arch of a retry its worker took from
    the queue and died before naming itself on (Optuna holds it in ``fixed_params``). A worker killed
    while suggesting the decisions one by one left some of them, and queueing those would evaluate an
    arch completed at random, which no searcher proposed."""
    if trial.params and WORKER_ATTR in trial.user_attrs:
        return dict(trial.params)
    fixed = trial.system_attrs.get("fixed_params")
    if RETRY_ATTR in trial.user_attrs and isinstance(fixed, dict) and fixed:
        return dict(fixed)
    return None


def _requeue_stale_trial(study: Any, trial: Any) -> None:
    """Optuna's heartbeat-stale-trial callback: the arch of a trial whose worker died is queued again,
    once (the callback runs only in the worker whose storage update failed the trial)."""
    params = requeue_params(trial)
    if params is not None:
        study.enqueue_trial(params, user_attrs={RETRY_ATTR: trial.number})


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
            storage=storage,
            study_name=study_name,
            directions=[optuna.study.StudyDirection[d.upper()] for d in directions],
            sampler=sampler,
            load_if_exists=True,
        )
    except Exception as exc:
        raise ConfigError(f"cannot open study {study_name!r}: {first_line(exc)}") from None
    have = [d.name.lower() for d in study.directions]
    if have != directions:
        raise ConfigError(f"study {study_name!r} optimises {have}, not {directions}")
    return study


def study_trials(study: Any) -> list[Any]:
    """The study's finished (COMPLETE) trials, in number order."""
    import optuna

    return [t for t in study.get_trials(deepcopy=False, states=(optuna.trial.TrialState.COMPLETE,))]
