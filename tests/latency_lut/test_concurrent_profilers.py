"""Four ``nas profile`` processes writing one LUT at once (issue 19): every block stored once (0 lost,
0 duplicated rows), the file whole, every run finished, and the LUT equal in keys to one profiler's."""

from __future__ import annotations

import os
import sqlite3
import subprocess
import sys
import time
from collections import Counter
from pathlib import Path

import pytest

from latency_lut.db import open_lut

PROFILERS = 4


def _nas() -> list[str]:
    exe = Path(sys.executable).with_name("nas")
    return [str(exe)] if exe.exists() else [sys.executable, "-m", "nas.cli"]


def _profile(space: Path, target: Path, lut: Path, tmp: Path) -> subprocess.Popen[str]:
    cmd = [*_nas(), "profile", "--space", str(space), "--target", str(target), "--out", str(lut)]
    cmd += ["--networks", "2", "--retry-passes", "0", "--no-progress"]
    env = {**os.environ, "TMPDIR": str(tmp), "OMP_NUM_THREADS": "1"}
    return subprocess.Popen(cmd, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, env=env)


def test_writers_creating_one_new_lut_together(tmp_path):
    """Eight processes open a LUT that does not exist yet at once: one creates the file, the others
    meet it before its tables exist, and must take part in creating them (not refuse a "not a hwnas
    LUT"), as profilers started together on a new LUT do."""
    lut = tmp_path / "new.db"
    script = (
        "import sys, time\n"
        "from latency_lut.db import open_lut\n"
        "time.sleep(max(0.0, float(sys.argv[2]) - time.time()))\n"
        "with open_lut(sys.argv[1], 'w') as db:\n"
        "    db.register_space({'signature': 'x', 'name': 'x'})\n"
    )
    start = str(time.time() + 3.0)
    procs = [
        subprocess.Popen([sys.executable, "-c", script, str(lut), start], stderr=subprocess.PIPE, text=True)
        for _ in range(8)
    ]
    for p in procs:
        _, err = p.communicate(timeout=300)
        assert p.returncode == 0, err
    with open_lut(lut) as db:
        assert len(db.spaces()) == 1


def test_a_lut_whose_schema_is_being_created_is_completed_by_a_writer(tmp_path):
    lut = tmp_path / "half.db"
    con = sqlite3.connect(lut)  # what a creating writer has done before its schema transaction commits
    con.execute("PRAGMA journal_mode = WAL")
    con.close()
    assert lut.stat().st_size > 0
    with pytest.raises(Exception, match="not a hwnas LUT"):
        open_lut(lut, "r").close()  # a reader still refuses it
    with open_lut(lut, "w") as db:
        assert db.runs() == []
    open_lut(lut, "r").close()


@pytest.mark.slow
def test_four_profilers_share_one_lut(tmp_path, tiny_space_file, fast_target):
    tmp = tmp_path / "tmp"
    tmp.mkdir()
    lut = tmp_path / "lut.db"
    procs = [_profile(tiny_space_file, fast_target, lut, tmp) for _ in range(PROFILERS)]
    for p in procs:
        _, err = p.communicate(timeout=1800)
        assert p.returncode == 0, err
        assert "Traceback" not in err
    con = sqlite3.connect(f"file:{lut}?mode=ro", uri=True)
    try:
        assert con.execute("PRAGMA integrity_check").fetchone()[0] == "ok"
        keys = [k for (k,) in con.execute("SELECT block_key FROM latency")]
        nets = [a for (a,) in con.execute("SELECT arch_id FROM networks")]
    finally:
        con.close()
    assert max(Counter(keys).values()) == 1 and max(Counter(nets).values()) == 1  # 0 duplicated rows
    with open_lut(lut) as db:
        runs = db.runs()
    assert [r["status"] for r in runs] == ["finished"] * PROFILERS
    assert sum(int(r["measured"] or 0) for r in runs) == len(keys)  # each stored block measured by one run

    alone = tmp_path / "alone.db"  # 0 lost: the same blocks as one profiler alone stores
    p = _profile(tiny_space_file, fast_target, alone, tmp)
    _, err = p.communicate(timeout=1800)
    assert p.returncode == 0, err
    with open_lut(alone) as db:
        assert set(keys) == {r["block_key"] for r in db.rows()}
    assert list(tmp.iterdir()) == []  # no work folder left behind
