"""Temporary work folders that never outlive their process, and SIGTERM as an interrupt.

A profiler exports each block to a work folder before measuring it. The folders live in one
known place, the system's temporary folder (``$TMPDIR``, else ``/tmp``), named
``hwnas-profile-*`` (``hwnas-validate-*`` for ``nas lut validate``). Each holds a lock file,
``.hwnas-lock``, that its process keeps locked (``flock``) for as long as it runs: the kernel
drops the lock when the process ends, however it ends. Opening a new work folder first removes
every folder of that prefix whose lock is free, so the folder of a SIGKILLed profiler is
removed by the next one, and never the folder of one still running (on this machine; a
temporary folder shared between machines over NFS is not supported). Folders without a lock
file (written by older versions) are removed once nothing in them has changed for an hour.

:func:`sigterm_as_interrupt` turns SIGTERM into :class:`KeyboardInterrupt` for the duration of
a block of code, so that ``finally`` clauses run: the work folder is removed and the LUT's run
row is marked ``interrupted``.
"""

from __future__ import annotations

import os
import shutil
import signal
import tempfile
import threading
import time
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

__all__ = ["LOCK_NAME", "remove_stale_work_folders", "sigterm_as_interrupt", "work_folder"]

LOCK_NAME = ".hwnas-lock"
#: a work folder without a lock file (older versions) is stale after this long without a change
LEGACY_IDLE_S = 3600.0


def _flock(fd: int, blocking: bool) -> bool:
    try:
        import fcntl
    except ImportError:  # pragma: no cover - not Linux
        return True
    try:
        fcntl.flock(fd, fcntl.LOCK_EX | (0 if blocking else fcntl.LOCK_NB))
    except OSError:
        return False
    return True


def remove_stale_work_folders(prefix: str = "hwnas-profile-", base: str | os.PathLike[str] | None = None) -> list[Path]:
    """Remove the work folders ``base/prefix*`` whose process has ended; returns those removed."""
    root = Path(base) if base is not None else Path(tempfile.gettempdir())
    removed: list[Path] = []
    try:
        candidates = sorted(root.glob(f"{prefix}*"))
    except OSError:
        return removed
    for folder in candidates:
        try:
            if folder.is_symlink() or not folder.is_dir():
                continue
            lock = folder / LOCK_NAME
            if not lock.exists():
                if time.time() - folder.stat().st_mtime > LEGACY_IDLE_S:
                    shutil.rmtree(folder, ignore_errors=True)
                    removed.append(folder)
                continue
            fd = os.open(lock, os.O_RDWR)
        except OSError:  # another user's folder, or removed meanwhile
            continue
        try:
            if _flock(fd, blocking=False):  # nobody holds it: its process has ended
                shutil.rmtree(folder, ignore_errors=True)
                removed.append(folder)
        finally:
            os.close(fd)
    return removed


@contextmanager
def work_folder(prefix: str = "hwnas-profile-", base: str | os.PathLike[str] | None = None) -> Iterator[Path]:
    """A fresh work folder ``base/prefix*`` (default base: the system's temporary folder), locked
    for the life of this process and removed on exit; stale folders of the prefix go first."""
    root = Path(base) if base is not None else Path(tempfile.gettempdir())
    remove_stale_work_folders(prefix, root)
    path = Path(tempfile.mkdtemp(prefix=prefix, dir=root))
    # lock a file under a temporary name, then rename it into place: a cleaner never sees an
    # unlocked lock file of a live folder
    pending = path / f"{LOCK_NAME}.new"
    fd = os.open(pending, os.O_CREAT | os.O_EXCL | os.O_RDWR, 0o600)
    try:
        _flock(fd, blocking=True)
        os.replace(pending, path / LOCK_NAME)
        yield path
    finally:
        shutil.rmtree(path, ignore_errors=True)
        os.close(fd)


@contextmanager
def sigterm_as_interrupt() -> Iterator[None]:
    """Within the block, the first SIGTERM raises :class:`KeyboardInterrupt` (so cleanup runs)
    and later ones are ignored until the block is left. Only in the main thread, and only where
    SIGTERM still has its default action (an application's own handler is left alone)."""
    if threading.current_thread() is not threading.main_thread():
        yield
        return
    old = signal.getsignal(signal.SIGTERM)
    if old is not signal.SIG_DFL:
        yield
        return
    fired = False

    def on_term(signum: int, frame: object) -> None:
        nonlocal fired
        if fired:
            return
        fired = True
        raise KeyboardInterrupt("SIGTERM")

    signal.signal(signal.SIGTERM, on_term)
    try:
        yield
    finally:
        signal.signal(signal.SIGTERM, old)
