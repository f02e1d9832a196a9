"""A profiler stopped by SIGTERM removes its work folder and marks its run ``interrupted``; the
work folder of a SIGKILLed one is removed by the next profiler; a rerun keeps every finished block."""

from __future__ import annotations

import os
import signal
import sqlite3
import subprocess
import sys
import time
from pathlib import Path

import pytest
from lut_test_helpers import lut_rows

from latency_lut.db import open_lut
from latency_lut.workdir import LOCK_NAME, remove_stale_work_folders, sigterm_as_interrupt, work_folder
from tests.helpers import nas_command


def _statuses(lut: Path) -> list[str | None]:
    with open_lut(lut) as db:
        return [r["status"] for r in db.runs()]


def test_work_folder_is_locked_and_removed(tmp_path):
    with work_folder("hwnas-profile-", tmp_path) as folder:
        assert folder.parent == tmp_path and (folder / LOCK_NAME).is_file()
        assert remove_stale_work_folders("hwnas-profile-", tmp_path) == []  # held by this process: kept
        assert folder.is_dir()
    assert not folder.exists()


def test_stale_folders_of_dead_processes_are_removed(tmp_path):
    code = (
        "import os, sys\nfrom latency_lut.workdir import work_folder\n"
        "cm = work_folder('hwnas-profile-', sys.argv[1]); p = cm.__enter__()\n"
        "(p / 'block.onnx').write_bytes(b'x')\n"
        "print(p, flush=True); os._exit(0)\n"
    )  # exits without cleanup, like a SIGKILL
    out = subprocess.run([sys.executable, "-c", code, str(tmp_path)], capture_output=True, text=True, check=True)
    dead = Path(out.stdout.strip())
    assert dead.is_dir()
    legacy_old, legacy_new = tmp_path / "hwnas-profile-old", tmp_path / "hwnas-profile-new"
    legacy_old.mkdir(), legacy_new.mkdir()
    os.utime(legacy_old, (time.time() - 7200, time.time() - 7200))
    other = tmp_path / "not-ours"
    other.mkdir()
    with work_folder("hwnas-profile-", tmp_path) as mine:
        assert not dead.exists() and not legacy_old.exists()
        assert legacy_new.is_dir() and other.is_dir() and mine.is_dir()


def test_sigterm_as_interrupt_restores_the_default():
    with sigterm_as_interrupt():
        assert signal.getsignal(signal.SIGTERM) is not signal.SIG_DFL
        with pytest.raises(KeyboardInterrupt):
            os.kill(os.getpid(), signal.SIGTERM)
            time.sleep(5)
    assert signal.getsignal(signal.SIGTERM) is signal.SIG_DFL


def _start_profile(lut: Path, space: Path, target: Path, tmpdir: Path) -> subprocess.Popen[str]:
    env = {**os.environ, "TMPDIR": str(tmpdir)}
    cmd = [
        *nas_command(),
        "profile",
        "--space",
        str(space),
        "--target",
        str(target),
        "--out",
        str(lut),
        "--networks",
        "0",
        "--retry-passes",
        "0",
        "--no-progress",
    ]
    return subprocess.Popen(cmd, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, env=env)


def _wait_rows(proc: subprocess.Popen[str], lut: Path, n: int) -> None:
    deadline = time.time() + 300
    while time.time() < deadline:
        time.sleep(0.05)
        if lut.exists():
            try:
                if len(lut_rows(lut)) >= n:
                    return
            except sqlite3.Error:
                pass
        assert proc.poll() is None, "the profiler finished before it could be stopped"
    pytest.fail("the profiler measured nothing in 300 s")


@pytest.fixture
def slow_target(tmp_path) -> Path:
    from lut_test_helpers import write_fast_target

    return write_fast_target(tmp_path, "int8", min_time=0.15, name="slow-int8")


def test_sigterm_cleans_up_and_marks_the_run(tmp_path, tiny_space_file, slow_target):
    tmpdir = tmp_path / "tmp"
    tmpdir.mkdir()
    lut = tmp_path / "lut.db"
    proc = _start_profile(lut, tiny_space_file, slow_target, tmpdir)
    _wait_rows(proc, lut, 2)
    assert list(tmpdir.glob("hwnas-profile-*")), "the work folder is in the known place"
    proc.send_signal(signal.SIGTERM)
    _, err = proc.communicate(timeout=60)
    assert proc.returncode == 130, err
    assert "Traceback" not in err and "interrupted; finished work is kept" in err
    assert list(tmpdir.glob("hwnas-profile-*")) == []  # removed on SIGTERM
    assert _statuses(lut) == ["interrupted"]
    before = lut_rows(lut)

    proc = _start_profile(lut, tiny_space_file, slow_target, tmpdir)  # resume
    out, err = proc.communicate(timeout=300)
    assert proc.returncode == 0, err
    after = lut_rows(lut)
    assert {k: after[k] for k in before} == before  # every finished block kept, none measured again
    assert len(after) > len(before)
    assert _statuses(lut) == ["interrupted", "finished"]
    assert list(tmpdir.glob("hwnas-profile-*")) == []


def test_sigkilled_profile_folder_is_removed_by_the_next(tmp_path, tiny_space_file, slow_target):
    tmpdir = tmp_path / "tmp"
    tmpdir.mkdir()
    lut = tmp_path / "lut.db"
    proc = _start_profile(lut, tiny_space_file, slow_target, tmpdir)
    _wait_rows(proc, lut, 2)
    proc.send_signal(signal.SIGKILL)
    proc.wait(timeout=30)
    left = list(tmpdir.glob("hwnas-profile-*"))
    assert len(left) == 1  # SIGKILL cannot be caught: the folder stays ...
    assert _statuses(lut) == ["running"]
    before = lut_rows(lut)

    proc = _start_profile(lut, tiny_space_file, slow_target, tmpdir)
    _wait_rows(proc, lut, len(before) + 1)
    assert not left[0].exists()  # ... until the next profiler starts
    with open_lut(lut) as db:
        assert db.runs()[0]["status"] == "interrupted"  # the dead run, found by the next one on this host
    proc.send_signal(signal.SIGTERM)
    proc.communicate(timeout=60)
    after = lut_rows(lut)
    assert {k: after[k] for k in before} == before
    assert list(tmpdir.glob("hwnas-profile-*")) == []


def test_older_luts_gain_the_status_column(tmp_path):
    lut = tmp_path / "old.db"
    with open_lut(lut, "w") as db:
        run = db.begin_run("fp", "test")
        db.end_run(run, 0)
    con = sqlite3.connect(lut)  # make it look like a LUT written before runs.status existed
    con.executescript(
        "CREATE TABLE runs2 AS SELECT run_id, fp_id, host, pid, source, started, finished, measured "
        "FROM runs; DROP TABLE runs; ALTER TABLE runs2 RENAME TO runs;"
    )
    con.close()
    with open_lut(lut) as db:  # read-only: no migration, status unknown
        assert [r["status"] for r in db.runs()] == [None]
    merged = tmp_path / "merged.db"
    with open_lut(merged, "w") as dst, open_lut(lut) as src:
        dst.merge_from(src)
        assert [r["status"] for r in dst.runs()] == [None]
    with open_lut(lut, "a") as db:
        run = db.begin_run("fp", "again")
        db.end_run(run, 0, "interrupted")
        assert [r["status"] for r in db.runs()] == [None, "interrupted"]
