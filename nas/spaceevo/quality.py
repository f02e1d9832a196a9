"""The block-wise quality file: NSR losses of sub-stages, SQLite in WAL mode beside the LUT.

Block-wise distillation (:mod:`nas.spaceevo.blockkd`) measures, for every candidate stage
(searchable stage, block type, contiguous width window) of a hyper-space, the INT8 NSR loss of
sampled sub-stages against a teacher. This module stores and reads those measurements.

Tables
    ``schema_version(version)``   one row: the schema version (1)
    ``meta(key, value)``           ``format = hwnas-quality``, creation time
    ``runs(fingerprint, ...)``     one row per teacher / data / hyper-space / recipe fingerprint:
                                   the teacher, the data and the hyper-space it names (JSON)
    ``candidates(fingerprint, stage, block_type, window, ...)``
                                   one row per *finished* candidate stage (steps, seconds, ...)
    ``samples(fingerprint, stage, block_type, window, choices, nsr, role)``
                                   one row per measured sub-stage; ``window`` is the canonical JSON
                                   list of the window's widths, ``choices`` the canonical JSON of
                                   the sub-stage's decisions (``stageN.*`` paths of the hyper-space,
                                   exactly as its arch dicts hold them)

A candidate stage's samples and its ``candidates`` row are written in one transaction, so a
candidate is either finished with all its samples or absent (a run killed meanwhile redoes it).
Writers checkpoint the WAL on close, so the ``.db`` file alone is complete.
"""

from __future__ import annotations

import json
import math
import os
import sqlite3
import time
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from hwnas.errors import HwnasError
from hwnas.io import canonical_json

__all__ = [
    "FORMAT",
    "SCHEMA_VERSION",
    "CandidateRecord",
    "QualityError",
    "QualityFileError",
    "QualityMismatchError",
    "QualitySample",
    "QualityStore",
    "QualityTable",
    "load_quality",
    "window_key",
]

SCHEMA_VERSION = 1
FORMAT = "hwnas-quality"
_MAGIC = b"SQLite format 3\x00"

_SCHEMA = """
CREATE TABLE IF NOT EXISTS schema_version (version INTEGER NOT NULL);
CREATE TABLE IF NOT EXISTS meta (key TEXT PRIMARY KEY, value TEXT NOT NULL);
CREATE TABLE IF NOT EXISTS runs (fingerprint TEXT PRIMARY KEY, record TEXT NOT NULL, created REAL NOT NULL);
CREATE TABLE IF NOT EXISTS candidates (
    fingerprint TEXT NOT NULL, stage INTEGER NOT NULL, block_type TEXT NOT NULL, window TEXT NOT NULL,
    window_name TEXT NOT NULL, steps INTEGER NOT NULL, seconds REAL NOT NULL, train_loss REAL,
    n_samples INTEGER NOT NULL, finished REAL NOT NULL,
    PRIMARY KEY (fingerprint, stage, block_type, window));
CREATE TABLE IF NOT EXISTS samples (
    fingerprint TEXT NOT NULL, stage INTEGER NOT NULL, block_type TEXT NOT NULL, window TEXT NOT NULL,
    choices TEXT NOT NULL, nsr REAL NOT NULL, role TEXT NOT NULL,
    PRIMARY KEY (fingerprint, stage, block_type, window, choices));
"""
_TABLES = {"schema_version", "meta", "runs", "candidates", "samples"}


class QualityError(HwnasError):
    """A block-wise quality file cannot be used."""


class QualityFileError(QualityError):
    """The file is missing, not SQLite, or not a quality file of this schema."""


class QualityMismatchError(QualityError):
    """The file holds measurements of another teacher / data / hyper-space (fingerprint)."""


def window_key(window: Iterable[int]) -> str:
    """The canonical form of a width window: a JSON list of ints, ``"[16,20,24]"``."""
    try:
        return canonical_json([int(w) for w in window])
    except (TypeError, ValueError):
        raise QualityError(f"a width window is a sequence of channel counts, got {window!r}") from None


@dataclass(frozen=True)
class QualitySample:
    """One measured sub-stage."""

    fingerprint: str
    stage: int
    block_type: str
    window: tuple[int, ...]
    choices: dict[str, Any]
    nsr: float
    role: str  # "smallest", "largest" or "random"


@dataclass(frozen=True)
class CandidateRecord:
    """One finished candidate stage."""

    fingerprint: str
    stage: int
    block_type: str
    window: tuple[int, ...]
    window_name: str
    steps: int
    seconds: float
    train_loss: float | None
    n_samples: int


def _problem(path: Path) -> str | None:
    if path.stat().st_size == 0:
        return "the file is empty"
    with open(path, "rb") as fh:
        head = fh.read(100)
    if not head.startswith(_MAGIC):
        return "not an SQLite database"
    return None


class QualityStore:
    """An open block-wise quality file (created when missing and ``create`` is true).

    ``readonly`` opens it without write access (what :func:`load_quality` does)."""

    def __init__(
        self, path: str | os.PathLike[str], *, create: bool = True, readonly: bool = False, timeout_s: float = 60.0
    ) -> None:
        self.path = Path(path)
        exists = self.path.exists()
        if exists and self.path.is_dir():
            raise QualityFileError(f"{self.path}: is a folder, not a quality file")
        if not exists and (readonly or not create):
            raise QualityFileError(f"{self.path}: no such quality file")
        fresh = not exists or self.path.stat().st_size == 0
        if exists and not (fresh and create and not readonly):
            problem = _problem(self.path)
            if problem:
                raise QualityFileError(f"{self.path}: not a block-wise quality file ({problem})")
        self.readonly = readonly
        try:
            if readonly:
                uri = f"file:{self.path.resolve()}?mode=ro"
                self.conn = sqlite3.connect(uri, uri=True, timeout=timeout_s, isolation_level=None)
            else:
                self.path.parent.mkdir(parents=True, exist_ok=True)
                self.conn = sqlite3.connect(str(self.path), timeout=timeout_s, isolation_level=None)
            self.conn.execute(f"PRAGMA busy_timeout = {int(timeout_s * 1000)}")
            if fresh:
                self._create()
            else:
                self._check()
            if not readonly:
                self.conn.execute("PRAGMA journal_mode = WAL")
                self.conn.execute("PRAGMA synchronous = NORMAL")
        except sqlite3.DatabaseError as exc:
            self._close_quietly()
            raise QualityFileError(f"{self.path}: not a readable block-wise quality file ({exc})") from None

    # -- opening ------------------------------------------------------------------------------
    def _create(self) -> None:
        self.conn.execute("PRAGMA journal_mode = WAL")
        self.conn.execute("BEGIN IMMEDIATE")
        try:
            for stmt in filter(None, (s.strip() for s in _SCHEMA.split(";"))):
                self.conn.execute(stmt)
            if not self.conn.execute("SELECT 1 FROM schema_version").fetchone():
                self.conn.execute("INSERT INTO schema_version (version) VALUES (?)", (SCHEMA_VERSION,))
                self.conn.execute("INSERT OR IGNORE INTO meta (key, value) VALUES ('format', ?)", (FORMAT,))
                self.conn.execute(
                    "INSERT OR IGNORE INTO meta (key, value) VALUES ('created', ?)",
                    (time.strftime("%Y-%m-%dT%H:%M:%S%z"),),
                )
            self.conn.execute("COMMIT")
        except BaseException:
            self.conn.execute("ROLLBACK")
            raise

    def _check(self) -> None:
        tables = {r[0] for r in self.conn.execute("SELECT name FROM sqlite_master WHERE type = 'table'")}
        row = self.conn.execute("SELECT value FROM meta WHERE key = 'format'").fetchone() if "meta" in tables else None
        if row is None or row[0] != FORMAT:
            raise QualityFileError(f"{self.path}: not a block-wise quality file (an SQLite file of another kind)")
        missing = sorted(_TABLES - tables)
        if missing:
            raise QualityFileError(f"{self.path}: wrong schema (no table {missing[0]!r})")
        version = self.conn.execute("SELECT version FROM schema_version").fetchone()
        if version is None or int(version[0]) != SCHEMA_VERSION:
            raise QualityFileError(
                f"{self.path}: schema version {version[0] if version else None}, "
                f"this hwnas reads version {SCHEMA_VERSION}"
            )

    def _close_quietly(self) -> None:
        try:
            self.conn.close()
        except Exception:  # noqa: BLE001
            pass

    def close(self) -> None:
        """Close the file (writers checkpoint the WAL into the ``.db`` first)."""
        if not self.readonly:
            try:
                self.conn.execute("PRAGMA wal_checkpoint(TRUNCATE)")
            except sqlite3.DatabaseError:
                pass
        self.conn.close()

    def __enter__(self) -> QualityStore:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    # -- runs ---------------------------------------------------------------------------------
    def register_run(self, fingerprint: str, record: Mapping[str, Any]) -> None:
        """Record what ``fingerprint`` stands for (teacher, data, hyper-space, recipe); kept as
        first written."""
        self.conn.execute(
            "INSERT OR IGNORE INTO runs (fingerprint, record, created) VALUES (?, ?, ?)",
            (fingerprint, canonical_json(dict(record)), time.time()),
        )

    def fingerprints(self) -> list[str]:
        """Every fingerprint the file holds (oldest first)."""
        return [r[0] for r in self.conn.execute("SELECT fingerprint FROM runs ORDER BY created, fingerprint")]

    def run_record(self, fingerprint: str) -> dict[str, Any] | None:
        row = self.conn.execute("SELECT record FROM runs WHERE fingerprint = ?", (fingerprint,)).fetchone()
        return json.loads(row[0]) if row else None

    # -- writing ------------------------------------------------------------------------------
    def put(
        self,
        fingerprint: str,
        stage: int,
        block_type: str,
        window: Sequence[int],
        samples: Iterable[tuple[Mapping[str, Any], float, str]],
        *,
        window_name: str = "",
        steps: int = 0,
        seconds: float = 0.0,
        train_loss: float | None = None,
    ) -> int:
        """Store the measured sub-stages ``(choices, nsr, role)`` of one candidate stage and mark
        it finished, in one transaction. Returns the number of samples stored."""
        wkey = window_key(window)
        rows = []
        for choices, nsr, role in samples:
            value = float(nsr)
            if not math.isfinite(value):
                raise QualityError(f"stage {stage} {block_type} {wkey}: non-finite NSR {nsr!r}")
            rows.append((fingerprint, int(stage), block_type, wkey, canonical_json(dict(choices)), value, role))
        self.conn.execute("BEGIN IMMEDIATE")
        try:
            self.conn.executemany("INSERT OR REPLACE INTO samples VALUES (?, ?, ?, ?, ?, ?, ?)", rows)
            self.conn.execute(
                "INSERT OR REPLACE INTO candidates VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?)",
                (
                    fingerprint,
                    int(stage),
                    block_type,
                    wkey,
                    window_name,
                    int(steps),
                    float(seconds),
                    None if train_loss is None or not math.isfinite(train_loss) else float(train_loss),
                    len(rows),
                    time.time(),
                ),
            )
            self.conn.execute("COMMIT")
        except BaseException:
            self.conn.execute("ROLLBACK")
            raise
        return len(rows)

    # -- reading ------------------------------------------------------------------------------
    def is_done(self, fingerprint: str, stage: int, block_type: str, window: Sequence[int]) -> bool:
        """Whether that candidate stage is finished (its samples stored)."""
        return (
            self.conn.execute(
                "SELECT 1 FROM candidates WHERE fingerprint = ? AND stage = ? AND block_type = ? AND window = ?",
                (fingerprint, int(stage), block_type, window_key(window)),
            ).fetchone()
            is not None
        )

    def candidates(self, fingerprint: str | None = None) -> list[CandidateRecord]:
        """The finished candidate stages (of ``fingerprint``, or of every fingerprint)."""
        sql = (
            "SELECT fingerprint, stage, block_type, window, window_name, steps, seconds, train_loss, n_samples "
            "FROM candidates"
        )
        args: tuple[Any, ...] = ()
        if fingerprint is not None:
            sql += " WHERE fingerprint = ?"
            args = (fingerprint,)
        sql += " ORDER BY fingerprint, stage, block_type, window"
        return [
            CandidateRecord(
                r[0],
                int(r[1]),
                r[2],
                tuple(json.loads(r[3])),
                r[4],
                int(r[5]),
                float(r[6]),
                None if r[7] is None else float(r[7]),
                int(r[8]),
            )
            for r in self.conn.execute(sql, args)
        ]

    def query(
        self,
        stage: int | None = None,
        block_type: str | None = None,
        window: Sequence[int] | None = None,
        fingerprint: str | None = None,
    ) -> list[QualitySample]:
        """Stored samples, filtered by any of stage, block type, window and fingerprint."""
        where, args = [], []
        for col, value in (
            ("fingerprint", fingerprint),
            ("stage", stage),
            ("block_type", block_type),
            ("window", None if window is None else window_key(window)),
        ):
            if value is not None:
                where.append(f"{col} = ?")
                args.append(value)
        sql = "SELECT fingerprint, stage, block_type, window, choices, nsr, role FROM samples"
        if where:
            sql += " WHERE " + " AND ".join(where)
        sql += " ORDER BY fingerprint, stage, block_type, window, choices"
        return [
            QualitySample(r[0], int(r[1]), r[2], tuple(json.loads(r[3])), json.loads(r[4]), float(r[5]), r[6])
            for r in self.conn.execute(sql, tuple(args))
        ]


class QualityTable:
    """The measurements of one fingerprint, in memory (what the Q-T score reads)."""

    def __init__(
        self, path: Path, fingerprint: str, record: Mapping[str, Any] | None, rows: Iterable[QualitySample]
    ) -> None:
        self.path = path
        self.fingerprint = fingerprint
        self.record = dict(record or {})
        self._by: dict[tuple[int, str, tuple[int, ...]], list[tuple[dict[str, Any], float]]] = {}
        for s in rows:
            self._by.setdefault((s.stage, s.block_type, s.window), []).append((s.choices, s.nsr))

    def samples(self, stage: int, block_type: str, window: tuple[int, ...]) -> list[tuple[dict[str, Any], float]]:
        """Every measured sub-stage of that candidate stage as ``(choices, NSR loss)``; ``[]`` if none."""
        key = (int(stage), str(block_type), tuple(int(w) for w in window))
        return [(dict(c), v) for c, v in self._by.get(key, [])]

    def candidates(self) -> list[tuple[int, str, tuple[int, ...]]]:
        """``(stage, block_type, window)`` of every candidate stage with samples."""
        return sorted(self._by)

    def __repr__(self) -> str:
        return f"QualityTable({str(self.path)!r}, fingerprint={self.fingerprint!r}, candidates={len(self._by)})"


def load_quality(path: str | os.PathLike[str], fingerprint: str | None = None) -> QualityTable:
    """The measurements of a quality file, for ``fingerprint`` (needed only when the file holds
    several teachers / data sets / hyper-spaces). One-line :class:`QualityError` subclasses for a
    missing, non-SQLite or wrong-schema file, or one without that fingerprint."""
    p = Path(path)
    with QualityStore(p, create=False, readonly=True) as store:
        fps = store.fingerprints()
        if fingerprint is None:
            if not fps:
                raise QualityMismatchError(f"{p}: holds no block-wise quality measurements")
            if len(fps) > 1:
                raise QualityMismatchError(
                    f"{p}: holds measurements of {len(fps)} teachers / data sets "
                    f"({', '.join(fps[:6])}); choose one fingerprint"
                )
            fingerprint = fps[0]
        elif fingerprint not in fps:
            held = ", ".join(fps[:6]) or "none"
            raise QualityMismatchError(
                f"{p}: measured for another teacher / data / hyper-space "
                f"(fingerprint {fingerprint} absent; the file holds {held})"
            )
        return QualityTable(p, fingerprint, store.run_record(fingerprint), store.query(fingerprint=fingerprint))
