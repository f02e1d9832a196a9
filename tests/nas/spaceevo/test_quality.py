"""The block-wise quality file: put / query / candidates, load_quality, bad files."""

from __future__ import annotations

import sqlite3

import pytest

from hwnas.errors import HwnasError
from nas.spaceevo.quality import (
    QualityError,
    QualityFileError,
    QualityMismatchError,
    QualityStore,
    load_quality,
    window_key,
)

CHOICES_A = {
    "stage2.block": "mbv2",
    "stage2.mbv2.depth": 1,
    "stage2.mbv2.b0.kernel": 3,
    "stage2.w0.width": 8,
    "stage2.window": "w0",
    "stage2.mbv2.b0.expand": 2.0,
}
CHOICES_B = {**CHOICES_A, "stage2.w0.width": 12}


def _filled(path, fingerprint="fp1"):
    with QualityStore(path) as store:
        store.register_run(fingerprint, {"teacher": {"fingerprint": "t"}})
        n = store.put(
            fingerprint,
            2,
            "mbv2",
            (8, 12, 16),
            [(CHOICES_A, 0.5, "smallest"), (CHOICES_B, 0.25, "largest")],
            window_name="w0",
            steps=10,
            seconds=1.5,
            train_loss=0.4,
        )
        assert n == 2
    return path


def test_put_query_candidates_and_samples(tmp_path):
    path = _filled(tmp_path / "q.db")
    with QualityStore(path) as store:
        assert store.is_done("fp1", 2, "mbv2", [8, 12, 16])
        assert not store.is_done("fp1", 2, "mbv2", (12, 16, 20))
        assert not store.is_done("fp2", 2, "mbv2", (8, 12, 16))
        (cand,) = store.candidates()
        assert (cand.stage, cand.block_type, cand.window, cand.window_name, cand.n_samples) == (
            2,
            "mbv2",
            (8, 12, 16),
            "w0",
            2,
        )
        rows = store.query(stage=2, block_type="mbv2", window=(8, 12, 16))
        assert sorted(r.nsr for r in rows) == [0.25, 0.5]
        assert store.query(stage=3) == []
        assert store.fingerprints() == ["fp1"]
    table = load_quality(path)
    got = table.samples(2, "mbv2", (8, 12, 16))
    assert sorted((c["stage2.w0.width"], v) for c, v in got) == [(8, 0.5), (12, 0.25)]
    assert dict(got[0][0]) in (CHOICES_A, CHOICES_B)  # the choices dict comes back as stored
    assert table.samples(2, "mbv2", (12, 16, 20)) == []
    assert table.samples(5, "fused", (8,)) == []
    assert table.candidates() == [(2, "mbv2", (8, 12, 16))]


def test_choices_are_canonical_json(tmp_path):
    path = _filled(tmp_path / "q.db")
    conn = sqlite3.connect(str(path))
    stored = {r[0] for r in conn.execute("SELECT choices FROM samples")}
    conn.close()
    from hwnas.io import canonical_json

    assert canonical_json(CHOICES_A) in stored
    assert window_key((8, 12, 16)) == "[8,12,16]"


def test_wal_mode(tmp_path):
    path = _filled(tmp_path / "q.db")
    conn = sqlite3.connect(str(path))
    assert conn.execute("PRAGMA journal_mode").fetchone()[0] == "wal"
    conn.close()


@pytest.mark.parametrize("kind", ["missing", "text", "empty", "other_sqlite", "folder"])
def test_bad_files_are_one_line_errors(tmp_path, kind):
    path = tmp_path / "q.db"
    if kind == "text":
        path.write_text("hello, I am not a database\n")
    elif kind == "empty":
        path.write_bytes(b"")
    elif kind == "other_sqlite":
        conn = sqlite3.connect(str(path))
        conn.execute("CREATE TABLE t (x)")
        conn.commit()
        conn.close()
    elif kind == "folder":
        path.mkdir()
    with pytest.raises(QualityFileError) as err:
        load_quality(path)
    msg = str(err.value)
    assert "\n" not in msg and str(path) in msg
    assert isinstance(err.value, HwnasError)


def test_wrong_schema(tmp_path):
    path = _filled(tmp_path / "q.db")
    conn = sqlite3.connect(str(path))
    conn.execute("DROP TABLE samples")
    conn.commit()
    conn.close()
    with pytest.raises(QualityFileError, match="wrong schema"):
        load_quality(path)
    path2 = _filled(tmp_path / "q2.db")
    conn = sqlite3.connect(str(path2))
    conn.execute("UPDATE schema_version SET version = 99")
    conn.commit()
    conn.close()
    with pytest.raises(QualityFileError, match="schema version 99"):
        load_quality(path2)


def test_another_teacher(tmp_path):
    path = _filled(tmp_path / "q.db")
    with pytest.raises(QualityMismatchError, match="another teacher") as err:
        load_quality(path, fingerprint="other")
    assert str(path) in str(err.value) and "\n" not in str(err.value)
    _filled(path, "fp2")
    with pytest.raises(QualityMismatchError, match="2 teachers"):
        load_quality(path)
    assert load_quality(path, fingerprint="fp2").fingerprint == "fp2"


def test_empty_file_without_runs(tmp_path):
    path = tmp_path / "q.db"
    QualityStore(path).close()
    with pytest.raises(QualityMismatchError, match="no block-wise quality"):
        load_quality(path)


def test_non_finite_nsr_refused(tmp_path):
    with QualityStore(tmp_path / "q.db") as store:
        with pytest.raises(QualityError, match="non-finite"):
            store.put("fp", 1, "mbv2", (8,), [(CHOICES_A, float("nan"), "random")])
        assert store.candidates() == []  # nothing half-written
