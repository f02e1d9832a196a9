"""A damaged LUT, or one that cannot be written, is a one-line error that says which it is."""

from __future__ import annotations

import sqlite3
from pathlib import Path

import pytest
from lut_test_helpers import TEST_FP as FP

from hw_profiles import Stats
from latency_lut.db import open_lut
from latency_lut.errors import CorruptLUTError, LUTError


def _filled(path: Path, n: int = 400) -> Path:
    with open_lut(path, "w") as db:
        db.register_fingerprint(FP)
        run = db.begin_run(FP.id, "test")
        for i in range(n):
            s = 1.0 + i
            db.insert(
                FP.id,
                f"block{i:03d}_c8-8_h8w8_b1",
                "mbconv",
                "mbconv relu",
                Stats(median_ms=s, mean_ms=s, std_ms=0.0, min_ms=s, count=10, spread=0.01, rounds=3, stable=True),
                run,
            )
        db.end_run(run, n)
    return path


def _one_line(info) -> str:
    msg = str(info.value)
    assert "\n" not in msg
    return msg


@pytest.mark.parametrize("frac", [0.6, 0.7, 0.8, 0.9])
@pytest.mark.parametrize("mode", ["r", "a", "w"])
def test_garbage_in_the_middle_is_one_line(tmp_path, frac, mode):
    """Garbage written into the middle of a LUT: a broken B-tree page, or rows whose key no longer
    matches the primary-key index (which quick_check passes). Both found on opening, one line."""
    path = _filled(tmp_path / "lut.db")
    data = bytearray(path.read_bytes())
    off = int(len(data) * frac)
    data[off : off + 64] = b"\xde\xad\xbe\xef" * 16
    path.write_bytes(bytes(data))
    with pytest.raises(CorruptLUTError) as info:
        open_lut(path, mode).close()
    msg = _one_line(info)
    assert msg.startswith(f"{path}: corrupt LUT (SQLite integrity check: ") and "***" not in msg


def test_damage_met_while_reading_is_one_line(tmp_path):
    path = _filled(tmp_path / "lut.db", 3)
    con = sqlite3.connect(path)
    con.execute("UPDATE latency SET op = CAST(x'ff00fe' AS TEXT) WHERE block_key LIKE 'block001%'")
    con.commit()
    con.close()
    with open_lut(path) as db:
        with pytest.raises(CorruptLUTError) as info:
            db.rows(FP.id)
    assert "Could not decode to UTF-8" in _one_line(info) and str(path) in str(info.value)


@pytest.mark.parametrize("where", ["under_a_file", "proc", "sys"])
def test_unwritable_folder_is_not_called_corrupt(tmp_path, where):
    afile = tmp_path / "afile"
    afile.write_text("x")
    path = {
        "under_a_file": afile / "lut.db",
        "proc": Path("/proc/hwnas-test/lut.db"),
        "sys": Path("/sys/hwnas-test/lut.db"),
    }[where]
    with pytest.raises(LUTError) as info:
        open_lut(path, "w")
    msg = _one_line(info)
    assert not isinstance(info.value, CorruptLUTError) and "corrupt" not in msg
    assert str(path) in msg and ("not a folder" in msg or "not writable" in msg)


def test_good_lut_reopens_and_writes(tmp_path):
    path = _filled(tmp_path / "lut.db", 5)
    with open_lut(path, "a") as db:
        assert len(db.rows()) == 5 and [r["status"] for r in db.runs()] == ["finished"]
        assert db.mark_dead_runs() == 0
