"""The SQLite LUT: schema, resumable inserts, corruption and fingerprint errors, merge, concurrency."""

from __future__ import annotations

import os
import sqlite3
import subprocess
import sys
import textwrap
from pathlib import Path

import pytest
from lut_test_helpers import TEST_FP as FP

from hw_profiles import Fingerprint, Stats
from latency_lut.db import SCHEMA_VERSION, open_lut
from latency_lut.errors import CorruptLUTError, FingerprintMismatchError, LUTError

FP32 = Fingerprint({**FP.info, "precision": "fp32"}, "cpu-test-fp32")


def _stats(ms: float) -> Stats:
    return Stats(median_ms=ms, mean_ms=ms, std_ms=0.0, min_ms=ms, count=10, spread=0.01, rounds=3, stable=True)


def _filled(path: Path, n: int = 50, fp: Fingerprint = FP, ms: float = 1.0) -> Path:
    with open_lut(path, "w") as db:
        db.register_fingerprint(fp)
        run = db.begin_run(fp.id, "test")
        for i in range(n):
            assert db.insert(fp.id, f"block{i:03d}_c8-8_h8w8_b1", "mbconv", "mbconv relu", _stats(ms + i), run)
        db.end_run(run, n)
    return path


def test_schema_and_rows(tmp_path):
    path = _filled(tmp_path / "lut.db", 5)
    with open_lut(path) as db:
        assert db.conn.execute("SELECT version FROM schema_version").fetchone()[0] == SCHEMA_VERSION
        assert db.conn.execute("PRAGMA journal_mode").fetchone()[0] == "wal"
        rows = db.rows(FP.id)
        assert len(rows) == 5 and {"median_ms", "mean_ms", "std_ms", "count", "timestamp"} <= set(rows[0])
        assert db.done_keys(FP.id) == {r["block_key"] for r in rows}
        assert db.runs()[0]["measured"] == 5
        with pytest.raises(LUTError, match="read-only"):
            db.register_fingerprint(FP32)
    assert not Path(str(path) + "-wal").exists() or Path(str(path) + "-wal").stat().st_size == 0


def test_rows_are_never_overwritten(tmp_path):
    path = _filled(tmp_path / "lut.db", 3)
    with open_lut(path, "a") as db:
        run = db.begin_run(FP.id, "again")
        assert not db.insert(FP.id, "block000_c8-8_h8w8_b1", "mbconv", "x", _stats(99.0), run)
        assert db.latencies(FP.id)["block000_c8-8_h8w8_b1"] == 1.0


def test_improve_keeps_the_lower_estimate(tmp_path):
    path = _filled(tmp_path / "lut.db", 2)
    with open_lut(path, "a") as db:
        run = db.begin_run(FP.id, "again")
        assert not db.improve(FP.id, "block000_c8-8_h8w8_b1", _stats(5.0), run)  # slower: kept as it was
        assert db.improve(FP.id, "block001_c8-8_h8w8_b1", _stats(0.5), run)
        assert db.latencies(FP.id) == {"block000_c8-8_h8w8_b1": 1.0, "block001_c8-8_h8w8_b1": 0.5}
        assert not db.improve(FP.id, "block_not_there_b1", _stats(0.1), run)  # never inserts
        db.insert_network(FP.id, "space-sig", "arch1", {"a": 1}, ["block000_c8-8_h8w8_b1"], _stats(3.0), run)
        assert not db.improve_network(FP.id, "space-sig", "arch1", _stats(4.0), run)
        assert db.improve_network(FP.id, "space-sig", "arch1", _stats(2.0), run)
        assert db.networks(FP.id, "space-sig")[0]["median_ms"] == 2.0


def _one_line_error(exc_info) -> str:
    msg = str(exc_info.value)
    assert "\n" not in msg
    return msg


@pytest.mark.parametrize("damage", ["garbage", "empty", "truncated_header", "truncated_half", "not_hwnas"])
def test_corrupt_or_truncated_lut_is_one_line_error(tmp_path, damage):
    path = tmp_path / "lut.db"
    if damage == "garbage":
        path.write_bytes(b"this is not a database at all" * 10)
    elif damage == "empty":
        path.write_bytes(b"")
    elif damage == "not_hwnas":
        sqlite3.connect(path).execute("CREATE TABLE t (x)").connection.commit()
    else:
        _filled(path, 400)
        data = path.read_bytes()
        path.write_bytes(data[:60] if damage == "truncated_header" else data[: len(data) // 2])
    with pytest.raises(CorruptLUTError) as info:
        open_lut(path).close()
    msg = _one_line_error(info)
    assert str(path) in msg


def test_missing_lut(tmp_path):
    with pytest.raises(LUTError, match="no such LUT"):
        open_lut(tmp_path / "nope.db")


def test_fingerprint_mismatch_is_one_line(tmp_path):
    path = _filled(tmp_path / "lut.db", 2)
    with open_lut(path) as db:
        db.require_fingerprint(FP)
        with pytest.raises(FingerprintMismatchError) as info:
            db.require_fingerprint(FP32)
    msg = _one_line_error(info)
    assert FP32.id in msg and "cpu-test-int8" in msg


def test_merge_policies(tmp_path):
    a = _filled(tmp_path / "a.db", 3, ms=1.0)
    b = _filled(tmp_path / "b.db", 5, ms=2.0)
    c = _filled(tmp_path / "c.db", 2, fp=FP32)
    with open_lut(a, "a") as db:
        with open_lut(b) as src:
            counts = db.merge_from(src, "keep")
        assert counts["blocks"] == 2 and counts["conflicts"] == 3 and counts["replaced"] == 0
        assert db.latencies(FP.id)["block000_c8-8_h8w8_b1"] == 1.0
        with open_lut(b) as src:
            assert db.merge_from(src, "newer")["replaced"] == 3
        assert db.latencies(FP.id)["block000_c8-8_h8w8_b1"] == 2.0
        with open_lut(c) as src:
            assert db.merge_from(src)["fingerprints"] == 1
        assert {f["fp_id"] for f in db.fingerprints()} == {FP.id, FP32.id}
        with open_lut(b) as src, pytest.raises(LUTError, match="already in"):
            db.merge_from(src, "error")


def test_concurrent_writers(tmp_path):
    """Three processes write overlapping keys at once: no error, every key once, no overwrite."""
    path = tmp_path / "lut.db"
    open_lut(path, "w").close()
    script = textwrap.dedent(f"""
        import sys
        from hw_profiles import Fingerprint, Stats
        from latency_lut.db import open_lut
        fp = Fingerprint({FP.info!r}, "cpu-test-int8")
        worker = int(sys.argv[1])
        with open_lut({str(path)!r}, "a") as db:
            db.register_fingerprint(fp)
            run = db.begin_run(fp.id, f"worker{{worker}}")
            for i in range(60):
                key = f"k{{(i + 20 * worker) % 100:03d}}"
                db.insert(fp.id, key, "op", "fam", Stats(worker, worker, 0, worker, 1, 0, 1, True), run)
    """)
    procs = [
        subprocess.Popen([sys.executable, "-c", script, str(w)], env={**os.environ}, stderr=subprocess.PIPE, text=True)
        for w in range(3)
    ]
    for p in procs:
        _, err = p.communicate(timeout=120)
        assert p.returncode == 0, err
    with open_lut(path) as db:
        lat = db.latencies(FP.id)
        assert len(lat) == 100
        assert sum(r["measured"] for r in db.runs()) == 100


def test_a_lut_shorter_than_its_header_while_its_wal_holds_the_rest_opens(tmp_path):
    """A reader opening a LUT while a writer checkpoints: the checkpoint has written page 1 (the
    header's new page count) but not yet the pages that grow the file. The -wal holds them: not
    "truncated" (a reader beside busy writers was refused so, issue 19); without a WAL it is."""
    path = _filled(tmp_path / "lut.db", 5)
    size = path.stat().st_size
    w = sqlite3.connect(path, isolation_level=None)
    w.execute("PRAGMA wal_autocheckpoint = 0")
    w.execute("BEGIN")
    for i in range(500):
        w.execute(
            "INSERT INTO latency VALUES (?, ?, 'op', 'fam', 1, 1, 0, 1, 1, 0, 1, 'r', 0)",
            (FP.id, f"k{i:04d}" + "x" * 80),
        )
    w.execute("COMMIT")
    wal = Path(f"{path}-wal").read_bytes()
    page = int.from_bytes(wal[8:12], "big")
    frames = [32 + i * (24 + page) for i in range((len(wal) - 32) // (24 + page))]
    page1 = [f for f in frames if int.from_bytes(wal[f : f + 4], "big") == 1][-1]
    with open(path, "r+b") as fh:  # what the checkpoint writes first
        fh.write(wal[page1 + 24 : page1 + 24 + page])
    assert path.stat().st_size == size < int.from_bytes(wal[page1 + 24 + 28 : page1 + 24 + 32], "big") * page
    with open_lut(path) as db:
        assert len(db.rows()) == 505
    w.close()  # checkpoints: the file complete
    assert path.stat().st_size > size
    path.write_bytes(path.read_bytes()[:size])  # the same file without its WAL is truncated
    with pytest.raises(CorruptLUTError, match="truncated"):
        open_lut(path)


def test_a_second_open_keeps_the_locks_of_a_held_connection(tmp_path):
    """A process holding a LUT opens it again (a predictor per target, a search beside a profile):
    the second open must not drop the POSIX locks of the first connection (reading the header with
    open()/close() did), or writers in other processes take themselves for the last users, delete
    the -wal and -shm under the held connection, and it reads a stale snapshot, then "database disk
    image is malformed" (issue 19)."""
    path = _filled(tmp_path / "lut.db", 50)
    script = textwrap.dedent(f"""
        import sys
        from hw_profiles import Fingerprint, Stats
        from latency_lut.db import open_lut
        fp = Fingerprint({FP.info!r}, "cpu-test-int8")
        lo = int(sys.argv[1])
        with open_lut({str(path)!r}, "a") as db:
            run = db.begin_run(fp.id, "writer")
            for i in range(lo, lo + 200):
                db.insert(fp.id, f"block{{i:05d}}_" + "x" * 60, "op", "fam", Stats(1, 1, 0, 1, 1, 0, 1, True), run)
    """)
    held = open_lut(path)
    try:
        assert len(held.rows()) == 50
        open_lut(path).close()  # the second open (and close) in this process
        for lo in (1000, 2000):  # each writer closes last as far as it can tell (the held reader is idle)
            subprocess.run([sys.executable, "-c", script, str(lo)], check=True, env={**os.environ}, timeout=120)
            assert Path(f"{path}-wal").exists() and Path(f"{path}-shm").exists()  # kept for the held reader
        assert len(held.rows()) == 450  # not a stale snapshot
        with open_lut(path) as again:
            assert len(again.rows()) == 450
    finally:
        held.close()
