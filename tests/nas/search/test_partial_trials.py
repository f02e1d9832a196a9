"""A worker killed while its arch's decisions were being suggested one by one leaves a RUNNING trial with
some of them: it is failed, and not queued again (a queued partial arch would be completed at random and
evaluated, an arch no searcher proposed). The kill campaign found such a rerun evaluating another set of
archs than the uninterrupted run."""

from __future__ import annotations

import os
import subprocess
import sys
import textwrap

from nas.search import create_searcher
from nas.search.storage import RETRY_ATTR, make_storage
from nas.search.study_worker import run_study_worker
from spaces import Block, Choice, Sequential, Space


def _space() -> Space:
    return Space(
        "tiny",
        Sequential(
            {
                "a": Block("conv_bn_act", out=Choice([8, 16, 24, 32])),
                "b": Block("conv_bn_act", out=Choice([8, 16, 24])),
                "c": Block("conv_bn_act", out=Choice([8, 16])),
            }
        ),
        resolution=8,
    )


def _score(arch) -> dict[str, float]:
    return {"accuracy": float(arch["a.out"] + 2 * arch["b.out"] + 3 * arch["c.out"])}


def _worker(url: str, budget: int) -> dict:
    searcher = create_searcher("random", _space(), objectives=["accuracy"], seed=0)
    storage = make_storage(url, heartbeat_interval=1, grace_period=1)
    return run_study_worker(searcher, _score, storage=storage, study_name="s", budget=budget)


def test_a_trial_killed_mid_suggest_is_failed_not_queued_again(tmp_path):
    import optuna

    url = f"sqlite:///{tmp_path / 'cut.db'}"
    script = textwrap.dedent(f"""
        import os
        import optuna
        from nas.search.storage import make_storage, open_study
        study = open_study(make_storage({url!r}, heartbeat_interval=1, grace_period=1), "s", ["maximize"])
        trial = study.ask()
        trial.suggest_categorical("a.out", [8, 16, 24, 32])  # one of the three decisions, then the kill
        os._exit(0)
    """)
    subprocess.run([sys.executable, "-c", script], check=True, cwd=tmp_path, env={**os.environ})
    out = _worker(url, budget=4)
    assert out["study_evaluated"] == 4

    trials = optuna.load_study(study_name="s", storage=make_storage(url)).trials
    assert trials[0].state.name == "FAIL" and list(trials[0].params) == ["a.out"]
    assert not any(t.user_attrs.get(RETRY_ATTR) is not None for t in trials)  # not queued again
    assert not any(t.state.name in ("RUNNING", "WAITING") for t in trials)

    reference = tmp_path / "ref.db"  # the same worker, never interrupted
    _worker(f"sqlite:///{reference}", budget=4)
    ref_trials = optuna.load_study(study_name="s", storage=make_storage(f"sqlite:///{reference}")).trials

    def evaluated(ts):
        return sorted(
            tuple(sorted(t.params.items()))
            for t in ts
            if t.state.name == "COMPLETE" and not t.user_attrs.get("hwnas:cached")
        )

    assert evaluated(trials) == evaluated(ref_trials)  # the archs an uninterrupted run evaluates
