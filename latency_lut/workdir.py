"""Temporary work folders that never outlive their process, and SIGTERM as an interrupt.

A profiler exports each block to a work folder before measuring it. The folders live in one
known place, the system's temporary folder (``$TMPDIR``, else ``/tmp``), named
``hwnas-profile-*`` (``hwnas-validate-*`` for ``nas lut validate``; ``hwnas-tmp-*``, the
:func:`private_temp_root` of every ``nas`` command, holds all its other temporary files and
folders, those of libraries included). Each holds a lock file,
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
from contextlib import ExitStack, contextmanager
from pathlib import Path
from typing import Any

__all__ = [
    "LOCK_NAME",
    "WORK_PREFIXES",
    "private_temp_root",
    "record_sigint",
    "remove_stale_work_folders",
    "sigterm_as_interrupt",
    "system_tempdir",
    "work_folder",
]

LOCK_NAME = ".hwnas-lock"
#: a work folder without a lock file (older versions) is stale after this long without a change
LEGACY_IDLE_S = 3600.0
#: the prefixes of the work folders of hwnas commands (stale ones are removed when any command starts)
WORK_PREFIXES = ("hwnas-tmp-", "hwnas-profile-", "hwnas-validate-")
#: the system's temporary folder while :func:`private_temp_root` points ``tempfile`` elsewhere
_SYSTEM_TMP: str | None = None


def system_tempdir() -> Path:
    """The system's temporary folder (``$TMPDIR``, else ``/tmp``), also within :func:`private_temp_root`."""
    return Path(_SYSTEM_TMP if _SYSTEM_TMP is not None else tempfile.gettempdir())


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
    root = Path(base) if base is not None else system_tempdir()
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
    root = Path(base) if base is not None else system_tempdir()
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
def private_temp_root(prefix: str = "hwnas-tmp-") -> Iterator[Path]:
    """Within the block, every temporary file and folder of this process (:mod:`tempfile`'s, its
    libraries' included, and child processes' through ``$TMPDIR``) lives in a work folder of its own,
    ``prefix*`` in the system's temporary folder: removed when the block ends, and, when the process
    was killed (SIGKILL, so that no ``finally`` ran), by the next process that opens one. The
    :func:`work_folder` folders stay in the system's temporary folder itself. Nested blocks share the
    outer one's folder. The stale work folders of every hwnas prefix (:data:`WORK_PREFIXES`) go first."""
    global _SYSTEM_TMP
    if _SYSTEM_TMP is not None:
        yield Path(tempfile.gettempdir())
        return
    system = tempfile.gettempdir()
    for other in WORK_PREFIXES:
        if other != prefix:
            remove_stale_work_folders(other, system)
    old_tempdir, old_env = tempfile.tempdir, os.environ.get("TMPDIR")
    stack = ExitStack()
    try:
        folder = stack.enter_context(work_folder(prefix, system))
    except OSError:  # the temporary folder cannot take one: everything stays where it was
        yield Path(system)
        return
    with stack:
        _SYSTEM_TMP = system
        tempfile.tempdir = str(folder)
        os.environ["TMPDIR"] = str(folder)
        try:
            yield folder
        finally:
            _SYSTEM_TMP = None
            tempfile.tempdir = old_tempdir
            if old_env is None:
                os.environ.pop("TMPDIR", None)
            else:
                os.environ["TMPDIR"] = old_env


@contextmanager
def sigterm_as_interrupt(record: list[int] | None = None) -> Iterator[None]:
    """Within the block, the first SIGTERM raises :class:`KeyboardInterrupt` (so cleanup runs)
    and later ones are ignored until the block is left. Only in the main thread, and only where
    SIGTERM still has its default action (an application's own handler is left alone). ``record``
    gets the signal number appended when it fires (see :func:`record_sigint`)."""
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
        if record is not None:
            record.append(signum)
        raise KeyboardInterrupt("SIGTERM")

    signal.signal(signal.SIGTERM, on_term)
    try:
        yield
    finally:
        signal.signal(signal.SIGTERM, old)


@contextmanager
def record_sigint(record: list[int]) -> Iterator[None]:
    """Within the block, SIGINT still raises :class:`KeyboardInterrupt` and is also appended to
    ``record``: an interrupt that lands inside an import can be swallowed by Python's import machinery
    ("Exception ignored in ...") and surface as an ``ImportError`` later, which ``record`` tells apart
    from a missing package. Only in the main thread, where SIGINT has Python's default handler."""
    if threading.current_thread() is not threading.main_thread() or (
        signal.getsignal(signal.SIGINT) is not signal.default_int_handler
    ):
        yield
        return

    def on_int(signum: int, frame: Any) -> None:
        record.append(signum)
        signal.default_int_handler(signum, frame)

    signal.signal(signal.SIGINT, on_int)
    try:
        yield
    finally:
        signal.signal(signal.SIGINT, signal.default_int_handler)
