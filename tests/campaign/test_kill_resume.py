"""The kill campaign (issue 19) at test scale: every long-running command is stopped a few times at
seeded random moments (SIGKILL, SIGTERM or SIGINT), rerun, and must end as its uninterrupted run
ends: no finished unit lost or redone, no half-written file, nothing left in ``$TMPDIR`` or the
outputs, no trial left RUNNING. The full campaign (>= 20 kills per command, a table per command) is
``benchmarks/bench_kill_campaign.py``; this runs its rounds with ``KILLS`` kills per command at the
campaign's seeded random moments, one a SIGKILL and one a graceful stop (SIGTERM or SIGINT, by
command: ``GRACEFUL``), so that every command is both cut off and asked to stop (slow: about half a
minute per command)::

    PYTHONPATH=. python -m pytest -q -p no:cacheprovider tests/campaign/test_kill_resume.py -k run
"""

from __future__ import annotations

import importlib.util
import signal
import sys
from pathlib import Path

import pytest

BENCH = Path(__file__).resolve().parents[2] / "benchmarks" / "bench_kill_campaign.py"
#: kills per command: a SIGKILL, then (the rerun after it, or a later round's) a graceful stop; the
#: benchmark's 20 kills per command are the real campaign
KILLS = 2
#: each command's graceful stop: SIGTERM or SIGINT, both signals among the commands
GRACEFUL = {
    "profile": signal.SIGTERM,
    "train-supernet": signal.SIGINT,
    "search": signal.SIGTERM,
    "search-shared": signal.SIGINT,
    "run": signal.SIGTERM,
    "spaceevo-quality": signal.SIGINT,
    "evolve-space": signal.SIGTERM,
    "export": signal.SIGINT,
}


@pytest.fixture(scope="module")
def bench():
    spec = importlib.util.spec_from_file_location("bench_kill_campaign", BENCH)
    module = importlib.util.module_from_spec(spec)
    sys.modules[spec.name] = module  # its dataclasses look their module up
    spec.loader.exec_module(module)
    return module


def test_the_campaign_covers_every_long_running_command(bench):
    assert (
        set(bench.COMMANDS)
        == set(bench.REGISTRY)
        >= {
            "profile",
            "train-supernet",
            "search",
            "search-shared",
            "run",
            "spaceevo-quality",
            "evolve-space",
            "export",
        }
    )


def test_readers_see_half_written_files(bench, tmp_path):
    """The campaign's own checks: a cut JSON-lines file, cut JSON and a damaged SQLite file are caught."""
    import sqlite3

    lines = tmp_path / "m.jsonl"
    lines.write_text('{"epoch": 1}\n{"epo')
    assert "cut off" in bench.json_problem(lines, lines=True)
    whole = tmp_path / "w.json"
    whole.write_text('{"a": [1, 2')
    assert "not whole JSON" in bench.json_problem(whole)
    db = tmp_path / "d.db"
    con = sqlite3.connect(db)
    con.execute("CREATE TABLE t (x)")
    con.executemany("INSERT INTO t VALUES (?)", [(i,) for i in range(2000)])
    con.commit()
    con.close()
    assert bench.sqlite_problem(db) is None
    data = bytearray(db.read_bytes())
    data[4096 : 4096 + 12] = b"\xff" * 12  # the header of the table's first B-tree page
    db.write_bytes(bytes(data))
    assert bench.sqlite_problem(db) is not None
    ignored = "Exception ignored in: <function cb>\nTraceback (most recent call last):\nKeyboardInterrupt:\n"
    assert not bench.has_traceback(ignored)  # CPython's report of an interrupt it swallowed
    assert bench.has_traceback("x\nTraceback (most recent call last):\n  File ...\nValueError: no\n")
    startup = 'Traceback (most recent call last):\n  File "<frozen site>", line 616, in <module>\nKeyboardInterrupt\n'
    assert not bench.has_traceback(startup)  # Ctrl-C while the interpreter starts: before any hwnas code
    own = f'Traceback (most recent call last):\n  File "{bench.REPO}/nas/cli/main.py", line 1, in main\nKeyboardInterrupt\n'
    assert bench.has_traceback(own)
    (tmp_path / "out").mkdir()
    (tmp_path / "out" / ".model.json.abc.tmp").write_text("x")
    assert bench.temp_files(tmp_path / "out") == ["out/.model.json.abc.tmp"]


def _signal_plan(bench, graceful: signal.Signals):
    """The campaign's Bench, its kill moments drawn as the benchmark draws them (same seed, same
    draws), its signals not: the first kill sent is a SIGKILL, every later one ``graceful``."""

    class OneOfEach(bench.Bench):
        sent = 0

        def kill_plan(self, cmd, out, total, workers=1):
            units, delay, _ = super().kill_plan(cmd, out, total, workers)
            return units, delay, signal.SIGKILL if self.sent == 0 else graceful

        def _note_exit(self, tally, res, where):
            super()._note_exit(tally, res, where)
            self.sent = sum(tally.kills.values())

    return OneOfEach


def test_the_signal_plan_sends_a_sigkill_then_the_graceful_signal(bench, tmp_path):
    plan = _signal_plan(bench, signal.SIGINT)(tmp_path, seed=19, kills=2, max_per_round=2, grace_s=1, timeout_s=1)
    cmd = bench.REGISTRY["profile"](plan)
    plan.est["profile"] = {"startup": 1.0, "unit": 0.1, "tail": 0.1}
    tally = bench.Tally("profile", "block", True)
    assert [plan.kill_plan(cmd, tmp_path, 10)[2] for _ in range(2)] == [signal.SIGKILL] * 2  # none sent yet
    plan._note_exit(tally, bench.Outcome(True, "SIGKILL", -9, 1.0), "a")
    assert plan.kill_plan(cmd, tmp_path, 10)[2] == signal.SIGINT
    plan._note_exit(tally, bench.Outcome(False, None, 0, 1.0), "b")  # an attempt the kill missed
    assert plan.kill_plan(cmd, tmp_path, 10)[2] == signal.SIGINT
    assert set(GRACEFUL.values()) == {signal.SIGTERM, signal.SIGINT}


@pytest.mark.slow
@pytest.mark.parametrize(
    "command",
    ["profile", "train-supernet", "search", "search-shared", "run", "spaceevo-quality", "evolve-space", "export"],
)
def test_killed_and_rerun_ends_like_an_uninterrupted_run(bench, tmp_path, command):
    campaign = _signal_plan(bench, GRACEFUL[command])(
        tmp_path, seed=19, kills=KILLS, max_per_round=KILLS, grace_s=300, timeout_s=1800
    )
    tally = campaign.campaign(command)
    row = tally.row()
    assert row["kills"] == KILLS
    assert row["by signal"] == {"SIGKILL": 1, GRACEFUL[command].name: 1}  # cut off once, asked to stop once
    assert tally.failures == [] and tally.tracebacks == 0 and tally.hangs == 0
    if tally.resumable:
        assert tally.redone == []
    assert tally.lost == [] and tally.corrupt == [] and tally.leftovers == []
    assert tally.differences == []
    assert tally.resumed_ok == tally.rounds
