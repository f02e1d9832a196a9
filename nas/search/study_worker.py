"""Study workers: any searcher as one of several workers of a shared Optuna study.

:class:`StudyWorker` (and :func:`run_study_worker`, its one-call form) runs a searcher against
a stored study (:mod:`nas.search.storage` opens the storage): at start and before every trial
it fails the stale trials of dead workers and re-queues their archs (Optuna's heartbeat for
RDB storages, the worker's process id on this host), tells the searcher every finished trial
of the study (so a restarted worker resumes where the study is), then loops ask → evaluate →
tell, recording each trial in the study. Every trial a worker finishes is one row of the
study, numbered by the storage, so concurrent workers neither lose nor duplicate trials.

How the worker asks and tells is the searcher's to say (:meth:`Searcher.join_study`): a
searcher that keeps its own Optuna study (the Optuna searchers) hands the worker a
:class:`~nas.search.base.StudyLink` onto it; for any other searcher the worker opens the study
itself and replays the searcher's proposals into it (:class:`ReplayLink`).
"""

from __future__ import annotations

import datetime
import os
import socket
import threading
import time
from collections.abc import Callable, Mapping
from typing import Any

from hwnas.errors import ConfigError
from nas.search.base import Searcher, StudyLink
from nas.search.optuna_search import VALUES_ATTR, tell_study
from nas.search.runner import SpaceSize
from nas.search.storage import (
    GRACE_S,
    RETRY_ATTR,
    WORKER_ATTR,
    make_storage,
    open_study,
    requeue_params,
    study_trials,
)
from spaces.arch import Arch

__all__ = ["ReplayLink", "StudyWorker", "run_study_worker"]

CACHED_ATTR = "hwnas:cached"
#: a trial closed unevaluated (failed): the budget was taken by trials started before it
SURPLUS_ATTR = "hwnas:surplus"
#: how often a worker whose budget waits on other workers' running trials looks again
_WAIT_S = 0.5
#: study system attribute ``hwnas:asking:HOST:PID``: true while that worker creates a trial and names
#: itself on it, so that a RUNNING trial that names no worker is known stale at once when every worker
#: that could be naming itself on it is dead (see :meth:`StudyWorker.recover_stale`)
ASKING_ATTR = "hwnas:asking:"


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


class ReplayLink:
    """The worker's own link for a searcher without an Optuna study: the study is opened with a
    sampler that replays the searcher's proposal; a retried trial dequeued instead of it keeps
    the proposal for the next ask."""

    def __init__(self, searcher: Searcher, storage: Any, study_name: str) -> None:
        self.searcher = searcher
        self.storage = make_storage(storage)
        self._sampler = _replay_sampler(searcher.seed)
        directions = [o.direction for o in searcher.objectives]
        self.study = open_study(self.storage, study_name, directions, sampler=self._sampler)
        self._carry: Arch | None = None

    def ask(self) -> tuple[Arch, Any]:
        import optuna

        proposal = self._carry if self._carry is not None else self.searcher.ask()
        self._sampler.next = proposal
        trial = self.study.ask()
        try:
            arch = self.searcher.space.suggest(trial)  # the proposal, unless a retried trial was dequeued
        except BaseException:
            self.study.tell(trial, state=optuna.trial.TrialState.FAIL)
            raise
        self._carry = proposal if arch != proposal else None
        return arch, trial

    def tell(self, arch: Arch, values: Mapping[str, float], trial: Any) -> None:
        tell_study(self.study, trial, self.searcher.tell(arch, values), self.searcher.constraints)

    def observe(self, arch: Arch, values: Mapping[str, float]) -> None:
        if not self.searcher.is_told(arch):
            self.searcher.tell(arch, values)


class _Heartbeat:
    """Records heartbeats of a running trial in a thread (RDB storages with heartbeats)."""

    def __init__(self, storage: Any, trial: Any) -> None:
        self.storage = storage
        self.trial_id = trial._trial_id  # Optuna has no public trial id; its heartbeat thread uses this one
        self.interval = storage.get_heartbeat_interval() if _heartbeat_enabled(storage) else None
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


def _local_dead(worker: str, host: str) -> bool:
    """Whether the worker ``HOST:PID`` ran on this host and its process is gone."""
    w_host, _, w_pid = worker.rpartition(":")
    return w_host == host and w_pid.isdigit() and not _pid_alive(int(w_pid))


def _heartbeat_enabled(storage: Any) -> bool:
    """Whether ``storage`` records heartbeats (``RDBStorage.get_heartbeat_interval``)."""
    interval = getattr(storage, "get_heartbeat_interval", None)
    return callable(interval) and interval() is not None


def _trial_arch_values(frozen: Any) -> tuple[Arch, dict[str, float]]:
    values = dict(frozen.user_attrs.get(VALUES_ATTR, {}))
    return Arch(dict(frozen.params)), {k: float(v) for k, v in values.items()}


class StudyWorker:
    """One worker of the stored study ``study_name``, searching with ``searcher``.

    :meth:`run` stops after ``n_trials`` trials of this worker, or when the study holds
    ``budget`` distinct evaluated archs (finished or being evaluated by live workers),
    whichever comes first, or after ``max_asks`` asks; it returns a summary.

    Trial numbers order the workers' claims: a trial whose arch another worker's earlier trial is
    evaluating waits for that one's values instead of evaluating it again (workers started with one
    seed propose the same archs), and a trial started when earlier ones already hold the whole
    budget is closed unevaluated (:meth:`over_budget`), so that concurrent workers evaluate each
    arch once and the budget exactly.
    """

    def __init__(
        self,
        searcher: Searcher,
        evaluate: Callable[[Arch], Mapping[str, float]],
        *,
        storage: Any,
        study_name: str,
        n_trials: int | None = None,
        budget: int | None = None,
        max_asks: int | None = None,
        on_trial: Callable[[dict[str, Any]], None] | None = None,
    ) -> None:
        if n_trials is None and budget is None:
            raise ConfigError("a study worker needs --n-trials or --budget")
        self.searcher = searcher
        self.evaluate = evaluate
        self.study_name = study_name
        self.n_trials = n_trials
        self.budget = budget
        self.max_asks = max_asks if max_asks is not None else 50 * (n_trials or budget or 1) + 100
        self.on_trial = on_trial
        self.worker = f"{socket.gethostname()}:{os.getpid()}"
        link: StudyLink | None = searcher.join_study(study_name)
        self.link: StudyLink = link if link is not None else ReplayLink(searcher, storage, study_name)
        self.study = self.link.study
        self.storage = self.link.storage
        self.heartbeat = _heartbeat_enabled(self.storage)
        self.known: dict[Arch, dict[str, float]] = {}
        self.mine: list[int] = []
        self.evaluated = 0
        self.recovered: list[int] = []

    # -- the study's state --------------------------------------------------------------
    def trials(self, *states: Any) -> list[Any]:
        """The study's trials in ``states``, read from the storage itself: Optuna's cache of an RDB
        storage can miss other workers' trials for a while (a RUNNING twin unseen is an arch
        evaluated twice, a finished trial unseen one evaluated beyond the budget)."""
        storage = self.storage
        if storage is not None and hasattr(storage, "get_all_trials"):
            trials = storage.get_all_trials(self.study._study_id, deepcopy=False, states=states)
            return sorted(trials, key=lambda t: t.number)
        return self.study.get_trials(deepcopy=False, states=states)

    def sync(self) -> int:
        """Tell the searcher the study's finished trials it has not seen; returns #distinct evaluated."""
        import optuna

        evaluated: set[Arch] = set()
        for ft in self.trials(optuna.trial.TrialState.COMPLETE):
            arch, vals = _trial_arch_values(ft)
            if not ft.user_attrs.get(CACHED_ATTR):
                evaluated.add(arch)
            if arch not in self.known and vals:
                self.known[arch] = vals
                self.link.observe(arch, vals)
        return len(evaluated)

    def _running(self) -> list[Any]:
        import optuna

        return self.trials(optuna.trial.TrialState.RUNNING)

    def running_others(self) -> list[Any]:
        return [t for t in self._running() if t.user_attrs.get(WORKER_ATTR) != self.worker]

    def recover_stale(self) -> list[int]:
        """Fail the RUNNING trials of dead workers and re-queue their archs; returns their numbers.

        A trial names its worker (``host:pid``) as soon as its arch is chosen; a worker is dead when it
        ran on this host and its process is gone. A trial that names no worker yet was created by a
        worker that died before naming itself on it, or by one that is naming itself right now: every
        worker marks the study while it does so (:data:`ASKING_ATTR`), so the trial is stale at once
        when no worker holding that mark is alive (on this host), whenever the dead one died and
        however soon this worker started. Workers on other hosts cannot be checked by their process:
        for storages with heartbeats (RDB: SQLite, PostgreSQL) Optuna's heartbeat of a trial silent
        for the grace period fails it (:func:`optuna.storages.fail_stale_trials`, whose callback
        re-queues the arch); a journal has no heartbeats: there an unnamed trial older than the grace
        period is stale. Called before every trial.
        """
        import optuna

        states = optuna.trial.TrialState
        running = {t.number: t for t in self._running()}
        if not running:
            return []
        failed: list[int] = []
        host = socket.gethostname()
        now = datetime.datetime.now()
        for t in running.values():
            worker = str(t.user_attrs.get(WORKER_ATTR, ""))
            if worker:
                stale = _local_dead(worker, host)
            else:
                known = self._unnamed_stale(t, host)
                stale = (
                    known
                    if known is not None
                    else (
                        not self.heartbeat
                        and t.datetime_start is not None
                        and (now - t.datetime_start).total_seconds() > GRACE_S
                    )
                )
            if not stale:
                continue
            try:
                self.study.tell(t.number, state=states.FAIL)
            except Exception:  # another worker failed it first (and queued it again)
                continue
            failed.append(t.number)
            params = requeue_params(t)
            if params is not None:
                self.study.enqueue_trial(params, user_attrs={RETRY_ATTR: t.number})
        if self.heartbeat:
            optuna.storages.fail_stale_trials(self.study)  # its callback (make_storage's) queues the archs again
            now_failed = {t.number for t in self.trials(states.FAIL)}
            failed += [n for n in running if n in now_failed and n not in failed]
        return sorted(failed)

    # -- the mark of a worker naming itself on a new trial --------------------------------
    def _set_asking(self, on: bool) -> None:
        self.study._storage.set_study_system_attr(self.study._study_id, ASKING_ATTR + self.worker, on)

    def askers(self) -> list[str]:
        """The workers (``host:pid``) that hold the mark: creating a trial and naming themselves on it."""
        attrs = self.study._storage.get_study_system_attrs(self.study._study_id)
        return [k[len(ASKING_ATTR) :] for k, v in attrs.items() if k.startswith(ASKING_ATTR) and v]

    def _unnamed_stale(self, trial: Any, host: str) -> bool | None:
        """Whether the unnamed RUNNING ``trial`` is a dead worker's: True when no other worker holds the
        mark but dead ones on this host and the trial is still unnamed after the marks were read (a
        worker marks the study before it creates its trial and unmarks it after naming itself on it,
        so a live worker that created ``trial`` held the mark when it was read); False when a worker on
        this host that holds the mark is alive; None (unknown) when only workers on other hosts hold it."""
        others = [a for a in self.askers() if a != self.worker and not _local_dead(a, host)]
        if any(a.rpartition(":")[0] == host for a in others):
            return False
        if others:
            return None
        import optuna

        try:
            fresh = (self.storage or self.study._storage).get_trial(trial._trial_id)  # not Optuna's cache
        except Exception:  # pragma: no cover - gone meanwhile
            return False
        return fresh.state == optuna.trial.TrialState.RUNNING and WORKER_ATTR not in fresh.user_attrs

    def reclaimable(self, trial: Any) -> bool:
        """Whether a RUNNING trial would be failed here if its worker died (so waiting for it ends)."""
        if self.heartbeat:
            return True
        w_host, _, w_pid = str(trial.user_attrs.get(WORKER_ATTR, "")).rpartition(":")
        return WORKER_ATTR not in trial.user_attrs or (w_host == socket.gethostname() and w_pid.isdigit())

    # -- claims: trial numbers order the workers --------------------------------------
    def over_budget(self, arch: Arch, current: Any) -> bool:
        """Whether the new trial ``current`` would evaluate ``arch`` beyond the budget: the study's
        evaluated archs and those other workers' trials started before it hold (the storage numbers
        trials in the order they were created, so of two workers that asked at once for the budget's
        last place the later one gives way)."""
        if self.budget is None or arch in self.known:
            return False
        import optuna

        states = optuna.trial.TrialState
        claims: set[Arch] = set()
        for t in self.trials(states.COMPLETE, states.RUNNING):
            if t.state == states.COMPLETE and not t.user_attrs.get(CACHED_ATTR):
                claims.add(Arch(dict(t.params)))
            elif t.state == states.RUNNING and t.number < current.number:
                claims.add(Arch(dict(t.params)))
        return len(claims) >= self.budget

    def give_up(self, arch: Arch, current: Any) -> None:
        """Close the trial ``current`` of ``arch`` unevaluated (failed), as its searcher expects."""
        import optuna

        current.set_user_attr(SURPLUS_ATTR, True)
        current.set_user_attr(WORKER_ATTR, self.worker)
        self._set_asking(False)
        fail = getattr(self.searcher, "fail", None)
        if not isinstance(self.link, ReplayLink) and callable(fail):
            fail(arch)  # an Optuna searcher fails its own pending trial
        else:
            self.study.tell(current, state=optuna.trial.TrialState.FAIL)

    def twin_values(self, arch: Arch, current: Any) -> dict[str, float] | None:
        """Wait while other workers' trials started before ``current`` evaluate the same arch (or are
        still choosing theirs); the values the study holds for ``arch`` then (another worker may also
        have finished it since this worker last looked), else None (evaluate here). Workers with the
        same searcher and seed propose the same archs: one evaluates, the others wait."""
        import optuna

        mine = dict(current.params)
        while True:
            twins = [
                t.number
                for t in self._running()
                if t.number < current.number
                and t.user_attrs.get(WORKER_ATTR) != self.worker
                and all(mine.get(k) == v for k, v in t.params.items())
            ]
            if not twins:
                break
            time.sleep(_WAIT_S)
            self.recovered += self.recover_stale()  # a twin of a dead worker is failed (and evaluated here)
        for t in self.trials(optuna.trial.TrialState.COMPLETE):
            if t.params == mine:
                done, vals = _trial_arch_values(t)
                if done == arch and vals:
                    return vals
        return None

    # -- one trial ------------------------------------------------------------------
    def _trial(self, arch: Arch, current: Any) -> tuple[dict[str, float], bool]:
        """Evaluate (or look up) ``arch`` for the running trial ``current`` and tell the link."""
        current.set_user_attr(WORKER_ATTR, self.worker)
        self._set_asking(False)  # named: the trial is this worker's now
        cached = self.known.get(arch)
        if cached is None:
            cached = self.twin_values(arch, current)
            if cached is not None:
                self.known[arch] = cached
        if cached is not None:
            vals = cached
            current.set_user_attr(CACHED_ATTR, True)
        else:
            vals = dict(self.evaluate(arch))
            self.known[arch] = vals
            self.evaluated += 1
        self.link.tell(arch, vals, current)
        return vals, cached is not None

    def run(self) -> dict[str, Any]:
        """Work until a stop condition holds (see the class docstring); returns the summary."""
        import optuna

        self.recovered = self.recover_stale()
        size = SpaceSize(self.searcher.space)
        asks = 0
        current: Any = None
        stopped = "budget"
        repeats = 0
        try:
            while True:
                if self.n_trials is not None and len(self.mine) >= self.n_trials:
                    break
                if self.mine or asks:
                    self.recovered += self.recover_stale()  # dead workers' trials, whenever they died
                n_eval = self.sync()
                if size.exhausted(len(self.known)) or (repeats >= 200 and size.exhausted(len(self.known), exact=True)):
                    stopped = "exhausted"
                    break
                if self.budget is not None:
                    if n_eval >= self.budget:
                        break
                    others = self.running_others()
                    if n_eval + len(others) >= self.budget:
                        # the budget is met if the running trials finish: wait for them, unless one could
                        # belong to a dead worker this storage cannot detect (then leave it to its worker)
                        if not all(self.reclaimable(t) for t in others):
                            break
                        time.sleep(_WAIT_S)
                        continue
                if asks >= self.max_asks:
                    stopped = "max_asks"
                    break
                asks += 1
                self._set_asking(True)  # until this worker has named itself on the trial it creates
                arch, current = self.link.ask()
                if self.over_budget(arch, current):  # another worker took the budget's last place meanwhile
                    self.give_up(arch, current)
                    current = None
                    continue
                with _Heartbeat(self.storage, current):  # beats until the trial is told
                    vals, cached = self._trial(arch, current)
                repeats = repeats + 1 if cached else 0
                self.mine.append(current.number)
                if self.on_trial is not None:
                    self.on_trial({"number": current.number, "arch": arch.to_dict(), "values": vals, "cached": cached})
                current = None
        except BaseException:
            try:
                if current is not None:  # an interrupted evaluation: fail the trial and queue its arch again
                    self.study.tell(current, state=optuna.trial.TrialState.FAIL)
                    if current.params:
                        self.study.enqueue_trial(dict(current.params), user_attrs={RETRY_ATTR: current.number})
                self._set_asking(False)
            except Exception:  # pragma: no cover - storage unreachable: the next worker fails it
                pass
            raise
        return self.summary(stopped)

    def summary(self, stopped: str) -> dict[str, Any]:
        n_eval = self.sync()
        best = self.searcher.best()
        return {
            "study": self.study_name,
            "worker": self.worker,
            "trials": self.mine,
            "evaluated": self.evaluated,
            "recovered": sorted(set(self.recovered)),
            "stopped": stopped,
            "study_trials": len(study_trials(self.study)),
            "study_evaluated": n_eval,
            "best": None if best is None else {"arch": best.arch.to_dict(), "values": dict(best.values)},
        }


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
    """Run ``searcher`` as one worker of the stored study ``study_name`` (:class:`StudyWorker`).

    Stops after ``n_trials`` trials of this worker, or when the study holds ``budget`` distinct
    evaluated archs (finished or being evaluated by live workers), whichever comes first.
    Returns a summary: this worker's trial numbers, the study's size, the best trial.
    """
    return StudyWorker(
        searcher,
        evaluate,
        storage=storage,
        study_name=study_name,
        n_trials=n_trials,
        budget=budget,
        max_asks=max_asks,
        on_trial=on_trial,
    ).run()
