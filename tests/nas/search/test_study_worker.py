"""The study worker asks the searcher how to join a study (``Searcher.join_study``), no isinstance."""

from __future__ import annotations

from nas.search import StudyWorker, create_searcher, run_study_worker
from nas.search.study_worker import ReplayLink
from spaces import Block, Choice, Sequential, Space


def _space() -> Space:
    body = Sequential(
        {"a": Block("conv_bn_act", out=Choice([8, 16, 24, 32])), "b": Block("conv_bn_act", out=Choice([8, 16, 24]))}
    )
    return Space("tiny", body, resolution=8)


def _evaluate(arch):
    return {"accuracy": float(arch["a.out"] + arch["b.out"])}


class _Recording(ReplayLink):
    def __init__(self, *args, **kwargs):
        super().__init__(*args, **kwargs)
        self.calls: list[str] = []

    def ask(self):
        self.calls.append("ask")
        return super().ask()

    def tell(self, arch, values, trial):
        self.calls.append("tell")
        super().tell(arch, values, trial)


def test_the_worker_asks_and_tells_through_the_searchers_link(tmp_path):
    url = f"journal:{tmp_path / 'w.log'}"
    searcher = create_searcher("random", _space(), objectives=["accuracy"], seed=0)
    links = []

    def join_study(study_name):
        links.append(_Recording(searcher, url, study_name))
        return links[-1]

    searcher.join_study = join_study
    out = StudyWorker(searcher, _evaluate, storage="unused: the link has the storage", study_name="s", n_trials=3).run()
    assert out["trials"] == [0, 1, 2] and links[0].calls == ["ask", "tell"] * 3


def test_default_hook_replays_and_optuna_searchers_bring_their_study(tmp_path):
    url = f"journal:{tmp_path / 'o.log'}"
    space = _space()
    random_searcher = create_searcher("random", space, objectives=["accuracy"], seed=0)
    assert random_searcher.join_study("s") is None
    first = run_study_worker(random_searcher, _evaluate, storage=url, study_name="s", n_trials=4)
    from nas.search.storage import make_storage

    tpe = create_searcher("tpe", space, objectives=["accuracy"], seed=1, storage=make_storage(url), study_name="s")
    link = tpe.join_study("s")
    assert link.study is tpe.study
    second = run_study_worker(tpe, _evaluate, storage=url, study_name="s", n_trials=3)
    # the TPE searcher was told the 4 earlier trials without adding them to the study again
    assert second["trials"] == [4, 5, 6] and second["study_trials"] == 7 == first["study_trials"] + 3
    assert tpe.n_trials >= 4  # it knows the first worker's archs


def test_a_long_evaluation_keeps_its_trial_alive(tmp_path):
    """The worker's heartbeat thread beats while it evaluates, so another worker's stale-trial sweep
    (Optuna's ``fail_stale_trials``) leaves a trial that runs longer than the grace period alone."""
    import time

    import optuna

    from nas.search.storage import make_storage

    url = f"sqlite:///{tmp_path / 'h.db'}"

    def slow(arch):
        time.sleep(7)  # longer than the grace period
        other = optuna.load_study(study_name="h", storage=make_storage(url, heartbeat_interval=1, grace_period=5))
        optuna.storages.fail_stale_trials(other)  # another worker's sweep, mid-evaluation
        return _evaluate(arch)

    searcher = create_searcher("random", _space(), objectives=["accuracy"], seed=0)
    storage = make_storage(url, heartbeat_interval=1, grace_period=5)
    out = run_study_worker(searcher, slow, storage=storage, study_name="h", n_trials=1)
    study = optuna.load_study(study_name="h", storage=make_storage(url))
    assert [t.state.name for t in study.trials] == ["COMPLETE"] and out["recovered"] == []
