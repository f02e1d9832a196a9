"""Four ``nas profile`` processes writing one LUT at once (issue 19): every block of the space stored
once (0 lost, 0 duplicated rows), the file whole, every run finished, and a reader beside them that
holds the LUT open never refused (the checks are tests/helpers.py's, as benchmarks/bench_concurrency.py
runs them at a larger scale)."""

from __future__ import annotations

import json
import sqlite3
import subprocess
import sys
import time

import pytest

from latency_lut.db import open_lut
from tests.helpers import finished, lut_problems, start_lut_reader, start_nas

PROFILERS = 4


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


def test_the_lut_checks_find_lost_blocks_and_unfinished_runs(tmp_path, profiled, tiny_space):
    """lut_problems passes a LUT one profiler completed, and names what a LUT lacks or miscounts."""
    lut = tmp_path / "lut.db"
    src, dst = sqlite3.connect(profiled), sqlite3.connect(lut)
    src.backup(dst)
    src.close()
    dst.close()
    with open_lut(lut) as db:
        runs = db.runs()
    reported = [{"measured": sum(r["measured"] for r in runs)}]
    problems, counts = lut_problems(lut, tiny_space, {"test-fast-int8": len(runs)}, networks=3, outputs=reported)
    assert problems == [] and counts["lost"] == counts["duplicated"] == 0 and counts["rows"] > 0
    con = sqlite3.connect(lut)
    con.execute("DELETE FROM latency WHERE rowid = (SELECT MIN(rowid) FROM latency)")
    con.execute("UPDATE runs SET status = 'running'")
    con.commit()
    con.close()
    problems, counts = lut_problems(lut, tiny_space, {"test-fast-int8": len(runs)}, networks=3, outputs=reported)
    assert counts["lost"] == 1
    text = "\n".join(problems)
    assert "1 block(s) or network(s) lost" in text and "runs not finished: {'running'" in text
    assert "the runs measured" in text and "the profilers reported" in text


@pytest.mark.slow
def test_four_profilers_share_one_lut(tmp_path, tiny_space, tiny_space_file, fast_target):
    """Four ``nas profile`` processes started at once on one LUT, a reader holding the LUT open
    beside them, then two more that find every block stored: each block key and calibration network
    of the space stored exactly once (0 lost, 0 duplicated), the runs' counts adding up to the rows,
    every run finished, the file whole, no work folder left, and the reader never refused, never
    sent back to fewer rows, its held connection seeing the final LUT."""
    tmp = tmp_path / "tmp"
    tmp.mkdir()
    lut, stop, report = tmp_path / "lut.db", tmp_path / "stop", tmp_path / "reader.json"
    args = ["profile", "--space", str(tiny_space_file), "--target", str(fast_target), "--out", str(lut)]
    args += ["--networks", "2", "--retry-passes", "0", "--no-progress", "--json"]
    reader = start_lut_reader(lut, stop, report)
    outputs = []
    for n in (PROFILERS, 2):  # the second round measures nothing: the reader's connection outlives writers
        for rc, out, err in finished([start_nas(args, tmp) for _ in range(n)], timeout=900):
            assert rc == 0 and "Traceback" not in err, err
            outputs.append(json.loads(out))
    assert sum(o["measured"] for o in outputs[PROFILERS:]) == 0
    stop.touch()
    assert finished([reader], timeout=120)[0][0] == 0
    problems, counts = lut_problems(lut, tiny_space, {"test-fast-int8": PROFILERS + 2}, networks=2, outputs=outputs)
    assert problems == [] and counts["lost"] == counts["duplicated"] == 0
    read = json.loads(report.read_text())
    assert read["errors"] == {} and read["counts"]["went_back"] == 0 and read["counts"]["queries"] > 0
    assert read["final"] == {
        "held_rows": counts["rows"],
        "held_runs": PROFILERS + 2,
        "fresh_rows": counts["rows"],
        "fresh_runs": PROFILERS + 2,
    }
    assert list(tmp.iterdir()) == []  # no work folder left behind
