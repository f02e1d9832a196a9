"""The probe's quiet level on this host, remembered between processes (a small JSON cache).

A process that starts inside a long disturbed spell of a shared host (a neighbour slowing the
core down for tens of seconds) would calibrate its quiet gate on the disturbed speed and let
that spell's measurements through. The quiet level a recent process saw is the better prior:
:class:`hw_profiles.harness.QuietGate` starts from it, and a lasting change of speed still wins
after half of the gate's window. Entries expire after a day, so an old level never rules.

The file is ``$HWNAS_CACHE_DIR/quiet-levels.json`` (default ``~/.cache/hwnas``); set
``HWNAS_CACHE_DIR=off`` to disable it. A missing, unreadable or damaged file is ignored.
"""

from __future__ import annotations

import json
import os
import time
from pathlib import Path

from hwnas.io import atomic_write_text

__all__ = ["MAX_AGE_S", "cache_file", "load_quiet_level", "save_quiet_level"]

#: seconds after which a remembered level is ignored
MAX_AGE_S = 24 * 3600.0


def cache_file() -> Path | None:
    """The cache file, or None when caching is off."""
    root = os.environ.get("HWNAS_CACHE_DIR")
    if root is not None and root.strip().lower() in ("off", "0", "none", ""):
        return None
    base = Path(root) if root else Path(os.environ.get("XDG_CACHE_HOME") or Path.home() / ".cache") / "hwnas"
    return base / "quiet-levels.json"


def _read(path: Path) -> dict[str, dict[str, float]]:
    try:
        data = json.loads(path.read_text(encoding="utf-8"))
    except (OSError, ValueError):
        return {}
    return {k: v for k, v in data.items() if isinstance(v, dict)} if isinstance(data, dict) else {}


def load_quiet_level(key: str, now: float | None = None) -> float | None:
    """The remembered quiet level (ms) of probe ``key``, if one was saved within a day."""
    path = cache_file()
    if path is None:
        return None
    entry = _read(path).get(key)
    now = time.time() if now is None else now
    try:
        level, saved = float(entry["level_ms"]), float(entry["saved"])  # type: ignore[index]
    except (TypeError, KeyError, ValueError):
        return None
    return level if level > 0 and now - saved <= MAX_AGE_S else None


def save_quiet_level(key: str, level_ms: float, now: float | None = None) -> None:
    """Remember ``level_ms`` for ``key``: the lower of it and a level saved within the day."""
    path = cache_file()
    if path is None or not level_ms > 0:
        return
    now = time.time() if now is None else now
    known = load_quiet_level(key, now)
    data = _read(path)
    if known is not None and known <= level_ms:
        return
    data[key] = {"level_ms": float(level_ms), "saved": now}
    try:
        atomic_write_text(path, json.dumps(data, indent=1, sort_keys=True))
    except OSError:  # a read-only home: the cache is an optimisation only
        pass
