"""A dependency-free progress bar with an ETA (device side: no rich, no tqdm needed).

On a terminal it redraws one line; otherwise (logs, CI) it prints a line at most every
``interval_s`` seconds and at the end.
"""

from __future__ import annotations

import sys
import time
from typing import TextIO

__all__ = ["Progress", "format_duration"]


def format_duration(seconds: float) -> str:
    seconds = max(0, int(round(seconds)))
    h, rem = divmod(seconds, 3600)
    m, s = divmod(rem, 60)
    return f"{h}:{m:02d}:{s:02d}" if h else f"{m}:{s:02d}"


class Progress:
    """``Progress(total, "blocks")``; call :meth:`update` after each item, :meth:`close` at the end.

    The ETA is computed from the items done in *this* run (skipped items do not count).
    """

    def __init__(
        self,
        total: int,
        label: str = "items",
        stream: TextIO | None = None,
        enabled: bool = True,
        interval_s: float = 10.0,
        width: int = 28,
    ) -> None:
        self.total = max(int(total), 0)
        self.label = label
        self.stream = stream or sys.stderr
        self.enabled = enabled
        self.tty = bool(getattr(self.stream, "isatty", lambda: False)())
        self.interval_s = 0.1 if self.tty else interval_s
        self.width = width
        self.done = 0
        self.start = time.monotonic()
        self._last = 0.0

    def eta_s(self) -> float | None:
        if self.done == 0:
            return None
        rate = (time.monotonic() - self.start) / self.done
        return rate * (self.total - self.done)

    def line(self, note: str = "") -> str:
        frac = self.done / self.total if self.total else 1.0
        filled = int(round(frac * self.width))
        eta = self.eta_s()
        elapsed = time.monotonic() - self.start
        text = (
            f"[{'#' * filled}{'.' * (self.width - filled)}] {self.done}/{self.total} {self.label} "
            f"{frac * 100:5.1f}%  elapsed {format_duration(elapsed)}  "
            f"ETA {format_duration(eta) if eta is not None else '?'}"
        )
        return f"{text}  {note}" if note else text

    def update(self, n: int = 1, note: str = "") -> None:
        self.done += n
        if not self.enabled:
            return
        now = time.monotonic()
        if now - self._last < self.interval_s and self.done < self.total:
            return
        self._last = now
        if self.tty:
            self.stream.write("\r\033[K" + self.line(note)[:200])
        else:
            self.stream.write(self.line(note) + "\n")
        self.stream.flush()

    def close(self) -> None:
        """End the bar's line (once; closing again does nothing)."""
        if getattr(self, "_closed", False):
            return
        self._closed = True
        if self.enabled and self.tty:
            self.stream.write("\n")
            self.stream.flush()
