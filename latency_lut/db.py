"""The LUT file: SQLite in WAL mode, one row per (target fingerprint, block key).

Tables
    ``schema_version(version)``           one row: the schema version (1)
    ``meta(key, value)``                   ``format = hwnas-lut``, creation time
    ``fingerprints(fp_id, target, ...)``   the fingerprint JSON of every target measured
    ``latency(fp_id, block_key, ...)``     median / mean / std / min / count / spread / timestamp
    ``networks(fp_id, space, arch_id, …)`` whole networks measured for the learned correction
    ``corrections(fp_id, space, model)``   the correction fitted on those networks
    ``spaces(signature, record)``          the spaces profiled: name, arguments, input, canonical YAML
                                           and space hash (older LUTs: no YAML and hash)
    ``runs(run_id, ..., status)``          one row per profiling run (who measured what); ``status``:
                                           ``running``, ``finished``, ``interrupted`` (SIGTERM, Ctrl-C, or
                                           found dead by a later run on its host), ``failed``; NULL in
                                           LUTs written before the column (added on the first write)

SQLite errors never escape as tracebacks: a damaged file is a one-line :class:`CorruptLUTError`
(checked with ``PRAGMA integrity_check`` on opening, and on any read that meets damage later),
a folder that cannot be written a one-line :class:`LUTError`.

A process never opens the LUT file itself (``open()``) while it holds a connection to it: closing
any descriptor of a file drops every POSIX lock the process holds on it, SQLite's included, and a
writer in another process then takes itself for the last user of the LUT and deletes its ``-wal``
and ``-shm`` files under this process's connections (stale reads, "database disk image is
malformed", lost writes). The header check on opening is skipped when the process already holds
the file through another :class:`LatencyDB` (:data:`_HELD`).

Every write is its own ``BEGIN IMMEDIATE`` transaction, so concurrent writers (several
profilers, a merge) serialise on SQLite's lock and a killed writer loses at most the row
it was writing. Rows are inserted with ``INSERT OR IGNORE``: a block measured by one
writer is never overwritten by another. Writers checkpoint the WAL on close, so the
``.db`` file alone is complete and can be copied between machines.
"""

from __future__ import annotations

import json
import os
import socket
import sqlite3
import struct
import threading
import time
import uuid
from collections.abc import Mapping
from pathlib import Path
from typing import Any, Literal
from urllib.parse import quote

from hwnas.errors import one_line, os_reason
from latency_lut.errors import CorruptLUTError, FingerprintMismatchError, LUTError

__all__ = ["RUN_STATUSES", "SCHEMA_VERSION", "LatencyDB", "open_lut"]

SCHEMA_VERSION = 1
#: the states of a profiling run (``runs.status``)
RUN_STATUSES = ("running", "finished", "interrupted", "failed")
_MAGIC = b"SQLite format 3\x00"

_SCHEMA = """
CREATE TABLE IF NOT EXISTS schema_version (version INTEGER NOT NULL);
CREATE TABLE IF NOT EXISTS meta (key TEXT PRIMARY KEY, value TEXT NOT NULL);
CREATE TABLE IF NOT EXISTS fingerprints (
    fp_id TEXT PRIMARY KEY, target TEXT NOT NULL, engine TEXT NOT NULL, precision TEXT NOT NULL,
    info TEXT NOT NULL, created REAL NOT NULL);
CREATE TABLE IF NOT EXISTS latency (
    fp_id TEXT NOT NULL, block_key TEXT NOT NULL, op TEXT NOT NULL, family TEXT NOT NULL,
    median_ms REAL NOT NULL, mean_ms REAL NOT NULL, std_ms REAL NOT NULL, min_ms REAL NOT NULL,
    count INTEGER NOT NULL, spread REAL NOT NULL, stable INTEGER NOT NULL,
    run_id TEXT NOT NULL, timestamp REAL NOT NULL,
    PRIMARY KEY (fp_id, block_key));
CREATE TABLE IF NOT EXISTS networks (
    fp_id TEXT NOT NULL, space TEXT NOT NULL, arch_id TEXT NOT NULL, arch TEXT NOT NULL, keys TEXT NOT NULL,
    median_ms REAL NOT NULL, mean_ms REAL NOT NULL, std_ms REAL NOT NULL, min_ms REAL NOT NULL,
    count INTEGER NOT NULL, role TEXT NOT NULL, run_id TEXT NOT NULL, timestamp REAL NOT NULL,
    PRIMARY KEY (fp_id, space, arch_id));
CREATE TABLE IF NOT EXISTS corrections (
    fp_id TEXT NOT NULL, space TEXT NOT NULL, model TEXT NOT NULL, timestamp REAL NOT NULL,
    PRIMARY KEY (fp_id, space));
CREATE TABLE IF NOT EXISTS spaces (signature TEXT PRIMARY KEY, record TEXT NOT NULL);
CREATE TABLE IF NOT EXISTS runs (
    run_id TEXT PRIMARY KEY, fp_id TEXT NOT NULL, host TEXT NOT NULL, pid INTEGER NOT NULL,
    source TEXT NOT NULL, started REAL NOT NULL, finished REAL, measured INTEGER NOT NULL DEFAULT 0,
    status TEXT);
"""
_TABLES = ("schema_version", "meta", "fingerprints", "latency", "networks", "corrections", "spaces", "runs")

#: the LUT files (``(st_dev, st_ino)``) this process holds open through a LatencyDB, with how many
#: LatencyDBs hold each: such a file must not be opened and closed outside SQLite (see the module's
#: docstring). Guarded by :data:`_HELD_LOCK`, which is held from the header check until the new
#: connection is counted, so that no thread reads a header while another's connection is uncounted.
_HELD: dict[tuple[int, int], int] = {}
_HELD_LOCK = threading.Lock()


def _file_id(path: Path) -> tuple[int, int] | None:
    try:
        st = path.stat()
    except OSError:
        return None
    return (st.st_dev, st.st_ino)


def _release(file_id: tuple[int, int] | None) -> None:
    if file_id is None:
        return
    with _HELD_LOCK:
        left = _HELD.get(file_id, 0) - 1
        if left > 0:
            _HELD[file_id] = left
        else:
            _HELD.pop(file_id, None)


def _header_problem(path: Path) -> str | None:
    """Why the file is not a complete SQLite database, judged from its 100-byte header. Only for a
    file this process holds no SQLite connection to (reading it closes a descriptor of it)."""
    size = path.stat().st_size
    if size == 0:
        return "the file is empty"
    with open(path, "rb") as fh:
        head = fh.read(100)
    if not head.startswith(_MAGIC):
        return "not an SQLite database"
    if len(head) < 100:
        return f"truncated ({size} bytes, shorter than the SQLite header)"
    page_size = struct.unpack(">H", head[16:18])[0]
    page_size = 65536 if page_size == 1 else page_size
    change_counter, n_pages = struct.unpack(">II", head[24:32])
    valid_for = struct.unpack(">I", head[92:96])[0]
    if n_pages and valid_for == change_counter and size < n_pages * page_size:
        # a LUT in WAL mode is shorter than its header says while its -wal holds pages not copied
        # back yet (a checkpoint under way writes page 1 first; one held back by a reader stops part
        # way): SQLite reads the file with its WAL, and the integrity check judges it. A checkpoint
        # that ended since the header was read completed the file before it emptied the WAL
        if _size(Path(f"{path}-wal")) or path.stat().st_size >= n_pages * page_size:
            return None
        return f"truncated ({size} bytes, the header says {n_pages * page_size})"
    return None


def _size(path: Path) -> int:
    try:
        return path.stat().st_size
    except OSError:
        return 0


class LatencyDB:
    """An open LUT file. Use :func:`open_lut` (or the class methods) to open one."""

    def __init__(
        self, path: str | os.PathLike[str], writable: bool = False, create: bool = False, timeout_s: float = 60.0
    ) -> None:
        self.path = Path(path)
        self.writable = writable
        exists = self.path.exists()
        if not exists and not create:
            raise LUTError(f"{self.path}: no such LUT file")
        if exists and self.path.is_dir():
            raise LUTError(f"{self.path}: is a folder, not a LUT file")
        fresh = not exists or (create and self.path.stat().st_size == 0)
        self._file_id: tuple[int, int] | None = None
        with _HELD_LOCK:
            # the header is checked when this process first opens the file, never while it holds it
            if exists and not fresh and _HELD.get(_file_id(self.path) or (-1, -1), 0) == 0:
                try:
                    problem = _header_problem(self.path)
                except OSError as exc:
                    raise LUTError(f"{self.path}: cannot read the LUT ({os_reason(exc)})") from None
                if problem:
                    raise CorruptLUTError(f"{self.path}: corrupt or truncated LUT ({problem})")
            if writable:
                from hwnas.io import OutputPathError, prepare_out_file

                try:
                    prepare_out_file(self.path, option="LUT")
                except OutputPathError as exc:
                    raise LUTError(str(exc)) from None
            try:
                if writable:
                    raw = sqlite3.connect(str(self.path), timeout=timeout_s, isolation_level=None)
                else:
                    uri = f"file:{quote(str(self.path.resolve()))}?mode=ro"
                    raw = sqlite3.connect(uri, uri=True, timeout=timeout_s, isolation_level=None)
            except sqlite3.Error as exc:
                raise LUTError(f"{self.path}: cannot open the LUT ({one_line(exc)})") from None
            self._file_id = _file_id(self.path)
            if self._file_id is not None:
                _HELD[self._file_id] = _HELD.get(self._file_id, 0) + 1
        self.conn = _Conn(raw, self.path)
        try:
            self.conn.execute(f"PRAGMA busy_timeout = {int(timeout_s * 1000)}")
            if not fresh and create and not self.conn.execute("SELECT 1 FROM sqlite_master LIMIT 1").fetchone():
                # an SQLite file without any table: another writer has just created the file and is
                # creating the schema (profilers started together on a new LUT): create it with it
                fresh = True
            if fresh:
                self._create()
            else:
                self._check()
            if writable:
                self.conn.execute("PRAGMA journal_mode = WAL")
                self.conn.execute("PRAGMA synchronous = NORMAL")
                if not fresh:
                    self._migrate()
        except BaseException:
            self._close_quietly()
            raise

    # -- opening ---------------------------------------------------------------------
    def _create(self) -> None:
        self.conn.execute("PRAGMA journal_mode = WAL")
        with self._write():
            for stmt in filter(None, (s.strip() for s in _SCHEMA.split(";"))):
                self.conn.execute(stmt)
            if not self.conn.execute("SELECT 1 FROM schema_version").fetchone():
                self.conn.execute("INSERT INTO schema_version (version) VALUES (?)", (SCHEMA_VERSION,))
                self.conn.execute("INSERT OR IGNORE INTO meta (key, value) VALUES ('format', 'hwnas-lut')")
                self.conn.execute(
                    "INSERT OR IGNORE INTO meta (key, value) VALUES ('created', ?)",
                    (time.strftime("%Y-%m-%dT%H:%M:%S%z"),),
                )

    def _check(self) -> None:
        # integrity_check, not quick_check: it also finds rows whose key no longer matches the
        # primary-key index (garbage written into a data page), which quick_check passes
        result = [str(r[0]) for r in self.conn.execute("PRAGMA integrity_check(3)").fetchall()]
        if result != ["ok"]:
            problems = [" ".join(r.replace("*** in database main ***", "").split()) for r in result]
            problems = [p for p in problems if p]
            raise CorruptLUTError(
                f"{self.path}: corrupt LUT (SQLite integrity check: {'; '.join(problems) or 'failed'})"
            )
        tables = {r[0] for r in self.conn.execute("SELECT name FROM sqlite_master WHERE type = 'table'")}
        missing = [t for t in _TABLES if t not in tables]
        if missing:
            raise CorruptLUTError(f"{self.path}: not a hwnas LUT (SQLite file without table {missing[0]!r})")
        row = self.conn.execute("SELECT version FROM schema_version").fetchone()
        if row is None:
            raise CorruptLUTError(f"{self.path}: not a hwnas LUT (no schema version)")
        if row[0] != SCHEMA_VERSION:
            raise LUTError(
                f"{self.path}: LUT schema version {row[0]} is not supported (this hwnas reads {SCHEMA_VERSION})"
            )
        fmt = self.conn.execute("SELECT value FROM meta WHERE key = 'format'").fetchone()
        if not fmt or fmt[0] != "hwnas-lut":
            raise CorruptLUTError(f"{self.path}: not a hwnas LUT (meta format is {fmt[0] if fmt else None!r})")

    def _migrate(self) -> None:
        """Bring an older LUT's schema up to date in place (new nullable columns only)."""
        cols = {r[1] for r in self.conn.execute("PRAGMA table_info(runs)")}
        if "status" in cols:
            return
        with self._write():
            cols = {r[1] for r in self.conn.execute("PRAGMA table_info(runs)")}  # another writer may have done it
            if "status" not in cols:
                self.conn.execute("ALTER TABLE runs ADD COLUMN status TEXT")

    def _write(self) -> _Tx:
        if not self.writable:
            raise LUTError(f"{self.path}: opened read-only")
        return _Tx(self.conn)

    def _close_quietly(self) -> None:
        try:
            self.conn.close()
        except Exception:  # pragma: no cover
            pass
        self.conn = None  # type: ignore[assignment]
        _release(self._file_id)
        self._file_id = None

    def close(self) -> None:
        if getattr(self, "conn", None) is None:
            return
        if self.writable:
            try:
                self.conn.execute("PRAGMA wal_checkpoint(TRUNCATE)")
            except (sqlite3.DatabaseError, LUTError):  # pragma: no cover - another writer holds the lock
                pass
        self.conn.close()
        self.conn = None  # type: ignore[assignment]
        _release(self._file_id)
        self._file_id = None

    def __enter__(self) -> LatencyDB:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    # -- fingerprints and spaces ----------------------------------------------------------
    def register_fingerprint(self, fp: Any) -> None:
        with self._write():
            self.conn.execute(
                "INSERT OR IGNORE INTO fingerprints (fp_id, target, engine, precision, info, created) "
                "VALUES (?, ?, ?, ?, ?, ?)",
                (fp.id, fp.target, fp.engine, fp.precision, fp.to_json(), time.time()),
            )

    def fingerprints(self) -> list[dict[str, Any]]:
        rows = self.conn.execute(
            "SELECT f.fp_id, f.target, f.engine, f.precision, f.info, f.created, "
            "(SELECT COUNT(*) FROM latency l WHERE l.fp_id = f.fp_id), "
            "(SELECT COUNT(*) FROM networks n WHERE n.fp_id = f.fp_id) "
            "FROM fingerprints f ORDER BY f.created"
        ).fetchall()
        return [
            {
                "fp_id": r[0],
                "target": r[1],
                "engine": r[2],
                "precision": r[3],
                "info": json.loads(r[4]),
                "created": r[5],
                "blocks": r[6],
                "networks": r[7],
            }
            for r in rows
        ]

    def fingerprint_info(self, fp_id: str) -> dict[str, Any] | None:
        row = self.conn.execute("SELECT info FROM fingerprints WHERE fp_id = ?", (fp_id,)).fetchone()
        return json.loads(row[0]) if row else None

    def require_fingerprint(self, fp: Any) -> None:
        """Raise FingerprintMismatchError (one line) unless the LUT has measurements for ``fp``."""
        if self.fingerprint_info(fp.id) is not None:
            return
        have = self.fingerprints()
        if not have:
            raise FingerprintMismatchError(f"{self.path}: the LUT holds no measurements yet")
        held = "; ".join(f"{h['target']} ({h['fp_id']}: {_short(h['info'])})" for h in have[:4])
        raise FingerprintMismatchError(
            f"{self.path}: no measurements for target {fp.target!r} on this machine (fingerprint {fp.id}: "
            f"{_short(fp.info)}); the LUT holds {held}"
        )

    def register_space(self, record: Mapping[str, Any]) -> str:
        """Record the space a profiling run measures; returns the signature its networks and
        correction are stored under. A space the LUT already recorded (same hash, or an older
        record of the same configuration) keeps its signature; an older record without a hash
        gains the canonical YAML and hash in place."""
        from latency_lut.manifest import match_space_record

        with self._write():
            existing = [json.loads(r[0]) for r in self.conn.execute("SELECT record FROM spaces")]
            match = match_space_record(existing, record)
            if match is None:
                self.conn.execute(
                    "INSERT OR IGNORE INTO spaces (signature, record) VALUES (?, ?)",
                    (record["signature"], json.dumps(dict(record), sort_keys=True)),
                )
                return str(record["signature"])
            if not match.get("hash") and record.get("hash"):
                upgraded = {**dict(record), "signature": match["signature"]}
                self.conn.execute(
                    "UPDATE spaces SET record = ? WHERE signature = ?",
                    (json.dumps(upgraded, sort_keys=True), match["signature"]),
                )
            return str(match["signature"])

    def spaces(self) -> list[dict[str, Any]]:
        return [json.loads(r[0]) for r in self.conn.execute("SELECT record FROM spaces ORDER BY signature")]

    # -- runs ------------------------------------------------------------------------
    def begin_run(self, fp_id: str, source: str) -> str:
        """Record a new profiling run (status ``running``); returns its id. Runs of this host
        left ``running`` by a process that no longer exists (SIGKILL, power loss) are marked
        ``interrupted`` first."""
        self.mark_dead_runs()
        run_id = uuid.uuid4().hex[:12]
        with self._write():
            self.conn.execute(
                "INSERT INTO runs (run_id, fp_id, host, pid, source, started, status) "
                "VALUES (?, ?, ?, ?, ?, ?, 'running')",
                (run_id, fp_id, socket.gethostname(), os.getpid(), source, time.time()),
            )
        return run_id

    def end_run(self, run_id: str, measured: int, status: str = "finished") -> None:
        """Close a run: ``finished``, ``interrupted`` (SIGTERM, Ctrl-C) or ``failed``."""
        if status not in RUN_STATUSES:
            raise LUTError(f"unknown run status {status!r} ({', '.join(RUN_STATUSES)})")
        with self._write():
            self.conn.execute(
                "UPDATE runs SET finished = ?, measured = ?, status = ? WHERE run_id = ?",
                (time.time(), measured, status, run_id),
            )

    def mark_dead_runs(self) -> int:
        """Mark ``interrupted`` the runs of this host still ``running`` whose process is gone;
        returns how many. (A run on another host, or whose pid was reused, stays as it is.)"""
        host = socket.gethostname()
        rows = self.conn.execute(
            "SELECT run_id, pid FROM runs WHERE status = 'running' AND host = ?", (host,)
        ).fetchall()
        dead = [run_id for run_id, pid in rows if pid != os.getpid() and not _pid_alive(int(pid))]
        if dead:
            with self._write():
                for run_id in dead:
                    self.conn.execute(
                        "UPDATE runs SET status = 'interrupted' WHERE run_id = ? AND status = 'running'", (run_id,)
                    )
        return len(dead)

    def set_run_calibration(self, run_id: str, record: dict[str, Any]) -> None:
        """Store a run's calibration record (the host's noise model, the measurement effort)."""
        with self._write():
            self.conn.execute(
                "INSERT OR REPLACE INTO meta (key, value) VALUES (?, ?)",
                (f"calibration:{run_id}", json.dumps(record, sort_keys=True, default=str)),
            )

    def runs(self) -> list[dict[str, Any]]:
        """Every profiling run, oldest first, with its ``calibration`` record (None for LUTs
        written before runs kept one)."""
        cols = ("run_id", "fp_id", "host", "pid", "source", "started", "finished", "measured")
        calib = {
            k.split(":", 1)[1]: v
            for k, v in self.conn.execute("SELECT key, value FROM meta WHERE key LIKE 'calibration:%'")
        }
        has_status = "status" in {r[1] for r in self.conn.execute("PRAGMA table_info(runs)")}
        select = ", ".join(cols + (("status",) if has_status else ()))
        out = []
        for r in self.conn.execute(f"SELECT {select} FROM runs ORDER BY started"):
            row = dict(zip(cols + ("status",), r))
            row.setdefault("status", None)
            try:
                row["calibration"] = json.loads(calib[row["run_id"]]) if row["run_id"] in calib else None
            except ValueError:
                row["calibration"] = None
            out.append(row)
        return out

    # -- block latencies -----------------------------------------------------------------
    def done_keys(self, fp_id: str) -> set[str]:
        return {r[0] for r in self.conn.execute("SELECT block_key FROM latency WHERE fp_id = ?", (fp_id,))}

    def has(self, fp_id: str, key: str) -> bool:
        return (
            self.conn.execute("SELECT 1 FROM latency WHERE fp_id = ? AND block_key = ?", (fp_id, key)).fetchone()
            is not None
        )

    def insert(self, fp_id: str, key: str, op: str, family: str, stats: Any, run_id: str) -> bool:
        """Store one block's statistics; False when the row already existed (kept as it was)."""
        with self._write():
            cur = self.conn.execute(
                "INSERT OR IGNORE INTO latency (fp_id, block_key, op, family, median_ms, mean_ms, std_ms, min_ms, "
                "count, spread, stable, run_id, timestamp) VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?)",
                (fp_id, key, op, family, *_stat_columns(stats, block=True), run_id, time.time()),
            )
            if cur.rowcount:
                self.conn.execute("UPDATE runs SET measured = measured + 1 WHERE run_id = ?", (run_id,))
            return cur.rowcount > 0

    def improve(self, fp_id: str, key: str, stats: Any, run_id: str) -> bool:
        """Replace a block's row with a re-measurement when that is faster (other processes only
        ever slow a model down, so the lower estimate is the better one); True when replaced."""
        with self._write():
            cur = self.conn.execute(
                "UPDATE latency SET median_ms = ?, mean_ms = ?, std_ms = ?, min_ms = ?, count = ?, spread = ?, "
                "stable = ?, run_id = ?, timestamp = ? WHERE fp_id = ? AND block_key = ? AND median_ms > ?",
                (*_stat_columns(stats, block=True), run_id, time.time(), fp_id, key, stats.median_ms),
            )
            return cur.rowcount > 0

    def latencies(self, fp_id: str, stat: str = "median_ms") -> dict[str, float]:
        if stat not in ("median_ms", "mean_ms", "min_ms"):
            raise LUTError(f"unknown statistic {stat!r} (median_ms, mean_ms, min_ms)")
        return {k: v for k, v in self.conn.execute(f"SELECT block_key, {stat} FROM latency WHERE fp_id = ?", (fp_id,))}

    def rows(self, fp_id: str | None = None) -> list[dict[str, Any]]:
        cols = (
            "fp_id",
            "block_key",
            "op",
            "family",
            "median_ms",
            "mean_ms",
            "std_ms",
            "min_ms",
            "count",
            "spread",
            "stable",
            "run_id",
            "timestamp",
        )
        sql = f"SELECT {', '.join(cols)} FROM latency"
        args: tuple[Any, ...] = ()
        if fp_id is not None:
            sql += " WHERE fp_id = ?"
            args = (fp_id,)
        return [dict(zip(cols, r)) for r in self.conn.execute(sql + " ORDER BY fp_id, block_key", args)]

    # -- whole networks and corrections --------------------------------------------------
    def insert_network(
        self,
        fp_id: str,
        space: str,
        arch_id: str,
        arch: Mapping[str, Any],
        keys: list[str],
        stats: Any,
        run_id: str,
        role: str = "calibration",
    ) -> bool:
        with self._write():
            cur = self.conn.execute(
                "INSERT OR IGNORE INTO networks (fp_id, space, arch_id, arch, keys, median_ms, mean_ms, std_ms, min_ms, "
                "count, role, run_id, timestamp) VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?)",
                (
                    fp_id,
                    space,
                    arch_id,
                    json.dumps(dict(arch), sort_keys=True),
                    json.dumps(keys),
                    *_stat_columns(stats, block=False),
                    role,
                    run_id,
                    time.time(),
                ),
            )
            return cur.rowcount > 0

    def improve_network(self, fp_id: str, space: str, arch_id: str, stats: Any, run_id: str) -> bool:
        """:meth:`improve` for a whole network's row."""
        with self._write():
            cur = self.conn.execute(
                "UPDATE networks SET median_ms = ?, mean_ms = ?, std_ms = ?, min_ms = ?, count = ?, run_id = ?, "
                "timestamp = ? WHERE fp_id = ? AND space = ? AND arch_id = ? AND median_ms > ?",
                (*_stat_columns(stats, block=False), run_id, time.time(), fp_id, space, arch_id, stats.median_ms),
            )
            return cur.rowcount > 0

    def networks(self, fp_id: str, space: str | None = None, role: str | None = "calibration") -> list[dict[str, Any]]:
        cols = (
            "fp_id",
            "space",
            "arch_id",
            "arch",
            "keys",
            "median_ms",
            "mean_ms",
            "std_ms",
            "min_ms",
            "count",
            "role",
            "run_id",
            "timestamp",
        )
        sql = f"SELECT {', '.join(cols)} FROM networks WHERE fp_id = ?"
        args: list[Any] = [fp_id]
        if space is not None:
            sql += " AND space = ?"
            args.append(space)
        if role is not None:
            sql += " AND role = ?"
            args.append(role)
        out = []
        for r in self.conn.execute(sql + " ORDER BY arch_id", args):
            d = dict(zip(cols, r))
            d["arch"] = json.loads(d["arch"])
            d["keys"] = json.loads(d["keys"])
            out.append(d)
        return out

    def set_correction(self, fp_id: str, space: str, model: Mapping[str, Any]) -> None:
        with self._write():
            self.conn.execute(
                "INSERT OR REPLACE INTO corrections (fp_id, space, model, timestamp) VALUES (?, ?, ?, ?)",
                (fp_id, space, json.dumps(dict(model), sort_keys=True), time.time()),
            )

    def correction(self, fp_id: str, space: str) -> dict[str, Any] | None:
        row = self.conn.execute(
            "SELECT model FROM corrections WHERE fp_id = ? AND space = ?", (fp_id, space)
        ).fetchone()
        return json.loads(row[0]) if row else None

    # -- merging ---------------------------------------------------------------------
    def merge_from(self, other: LatencyDB, on_conflict: str = "keep") -> dict[str, int]:
        """Copy every row of ``other`` into this LUT.

        ``on_conflict``: ``keep`` (a row already here wins), ``newer`` (the later
        measurement wins), ``replace`` (``other`` wins) or ``error``.
        """
        if on_conflict not in ("keep", "newer", "replace", "error"):
            raise LUTError(f"unknown conflict policy {on_conflict!r} (keep, newer, replace, error)")
        counts = {"fingerprints": 0, "blocks": 0, "conflicts": 0, "replaced": 0, "networks": 0}
        with self._write():
            for sig, rec in other.conn.execute("SELECT signature, record FROM spaces"):
                self.conn.execute("INSERT OR IGNORE INTO spaces (signature, record) VALUES (?, ?)", (sig, rec))
            for row in other.conn.execute("SELECT fp_id, target, engine, precision, info, created FROM fingerprints"):
                cur = self.conn.execute("INSERT OR IGNORE INTO fingerprints VALUES (?, ?, ?, ?, ?, ?)", row)
                counts["fingerprints"] += cur.rowcount
            rcols = "run_id, fp_id, host, pid, source, started, finished, measured"
            if "status" in {r[1] for r in other.conn.execute("PRAGMA table_info(runs)")}:
                rcols += ", status"
            for row in other.conn.execute(f"SELECT {rcols} FROM runs"):
                self.conn.execute(f"INSERT OR IGNORE INTO runs ({rcols}) VALUES ({', '.join('?' * len(row))})", row)
            for row in other.conn.execute("SELECT key, value FROM meta WHERE key LIKE 'calibration:%'"):
                self.conn.execute("INSERT OR IGNORE INTO meta (key, value) VALUES (?, ?)", row)
            cols = (
                "fp_id, block_key, op, family, median_ms, mean_ms, std_ms, min_ms, count, spread, stable, "
                "run_id, timestamp"
            )
            for row in other.conn.execute(f"SELECT {cols} FROM latency"):
                cur = self.conn.execute(f"INSERT OR IGNORE INTO latency ({cols}) VALUES ({', '.join('?' * 13)})", row)
                if cur.rowcount:
                    counts["blocks"] += 1
                    continue
                counts["conflicts"] += 1
                if on_conflict == "error":
                    raise LUTError(
                        f"{other.path}: block {row[1]!r} of fingerprint {row[0]} is already in {self.path} "
                        f"(use --on-conflict keep, newer or replace)"
                    )
                mine = self.conn.execute(
                    "SELECT timestamp FROM latency WHERE fp_id = ? AND block_key = ?", (row[0], row[1])
                ).fetchone()[0]
                if on_conflict == "replace" or (on_conflict == "newer" and row[-1] > mine):
                    self.conn.execute(f"INSERT OR REPLACE INTO latency ({cols}) VALUES ({', '.join('?' * 13)})", row)
                    counts["replaced"] += 1
            ncols = (
                "fp_id, space, arch_id, arch, keys, median_ms, mean_ms, std_ms, min_ms, count, role, run_id, timestamp"
            )
            for row in other.conn.execute(f"SELECT {ncols} FROM networks"):
                verb = "INSERT OR REPLACE" if on_conflict == "replace" else "INSERT OR IGNORE"
                cur = self.conn.execute(f"{verb} INTO networks ({ncols}) VALUES ({', '.join('?' * 13)})", row)
                counts["networks"] += cur.rowcount
            for row in other.conn.execute("SELECT fp_id, space, model, timestamp FROM corrections"):
                verb = "INSERT OR REPLACE" if on_conflict in ("replace", "newer") else "INSERT OR IGNORE"
                self.conn.execute(f"{verb} INTO corrections (fp_id, space, model, timestamp) VALUES (?, ?, ?, ?)", row)
        return counts


def _stat_columns(stats: Any, *, block: bool) -> tuple[Any, ...]:
    """The values of a row's statistics columns, in the tables' order: ``median_ms, mean_ms,
    std_ms, min_ms, count``, and for a block's row ``spread, stable`` too."""
    values = (stats.median_ms, stats.mean_ms, stats.std_ms, stats.min_ms, stats.count)
    return values + (stats.spread, int(stats.stable)) if block else values


class _Tx:
    """``BEGIN IMMEDIATE`` … ``COMMIT`` (``ROLLBACK`` on error), retrying a busy lock."""

    def __init__(self, conn: _Conn) -> None:
        self.conn = conn

    def __enter__(self) -> _Conn:
        for attempt in range(20):
            try:
                self.conn.execute("BEGIN IMMEDIATE")
                return self.conn
            except LUTBusyError:
                time.sleep(0.05 * (attempt + 1))
        raise LUTError("the LUT stayed locked by another writer for too long")

    def __exit__(self, exc_type: Any, *rest: object) -> None:
        if exc_type is None:
            self.conn.execute("COMMIT")
            return
        try:
            self.conn.execute("ROLLBACK")
        except (LUTError, sqlite3.Error):  # the statement already rolled back; keep the first error
            pass


class LUTBusyError(LUTError):
    """Another writer held the LUT's lock for longer than the busy timeout."""


class _Conn:
    """A ``sqlite3.Connection`` whose errors are one-line :class:`LUTError` s naming the file:
    damage found while reading (a malformed page, undecodable text) is a :class:`CorruptLUTError`,
    a lock held too long a :class:`LUTBusyError`, an I/O problem (disk full, read-only folder) a
    :class:`LUTError`. Programming errors (bad SQL, constraint violations) pass unchanged."""

    def __init__(self, conn: sqlite3.Connection, path: Path) -> None:
        self._conn = conn
        self._path = path

    def execute(self, sql: str, args: Any = ()) -> _Cursor:
        with _translated(self._path):
            return _Cursor(self._conn.execute(sql, args), self._path)

    def close(self) -> None:
        self._conn.close()


class _Cursor:
    def __init__(self, cur: sqlite3.Cursor, path: Path) -> None:
        self._cur = cur
        self._path = path

    @property
    def rowcount(self) -> int:
        return self._cur.rowcount

    def fetchone(self) -> Any:
        with _translated(self._path):
            return self._cur.fetchone()

    def fetchall(self) -> list[Any]:
        with _translated(self._path):
            return self._cur.fetchall()

    def __iter__(self) -> Any:
        while True:
            with _translated(self._path):
                row = self._cur.fetchone()
            if row is None:
                return
            yield row


class _translated:
    def __init__(self, path: Path) -> None:
        self.path = path

    def __enter__(self) -> None:
        return None

    def __exit__(self, exc_type: Any, exc: BaseException | None, tb: Any) -> Literal[False]:
        """Translate a sqlite3 error (raising another); never swallows one."""
        if exc is None or not isinstance(exc, sqlite3.Error):
            return False
        if isinstance(exc, (sqlite3.ProgrammingError, sqlite3.IntegrityError, sqlite3.InterfaceError)):
            return False
        msg = one_line(exc)
        low = msg.lower()
        if isinstance(exc, sqlite3.OperationalError) and ("locked" in low or "busy" in low):
            raise LUTBusyError(f"{self.path}: the LUT stayed locked by another writer ({msg})") from None
        if (
            "decode" in low
            or "malformed" in low
            or "not a database" in low
            or "corrupt" in low
            or not isinstance(exc, sqlite3.OperationalError)
        ):
            raise CorruptLUTError(f"{self.path}: corrupt LUT ({msg})") from None
        raise LUTError(f"{self.path}: cannot use the LUT ({msg})") from None


def _pid_alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except (PermissionError, OverflowError, ValueError):
        return True
    return True


def _short(info: Mapping[str, Any]) -> str:
    hw = (info.get("gpu") or {}).get("name") if info.get("gpu") else (info.get("cpu") or {}).get("model", "?")
    return f"{info.get('engine')} {info.get('engine_version')} {info.get('precision')} {info.get('threads')}t on {hw}"


def open_lut(path: str | os.PathLike[str], mode: str = "r") -> LatencyDB:
    """Open a LUT: ``r`` read-only (must exist), ``a`` read-write (must exist), ``w`` read-write
    (created when absent)."""
    if mode not in ("r", "a", "w"):
        raise LUTError(f"unknown LUT open mode {mode!r} (r, a, w)")
    return LatencyDB(path, writable=mode != "r", create=mode == "w")
