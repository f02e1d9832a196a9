"""The progress bar of profiling and validation runs: :class:`hwnas.progress.ProgressBar` with
a percentage, elapsed time, ETA and the model at hand, on standard error.

On a terminal it redraws one line; otherwise (logs, CI) it prints a line at most every
``interval_s`` seconds and the last one when it closes.
"""

from __future__ import annotations

from hwnas.progress import ProgressBar

__all__ = ["progress_bar"]


def progress_bar(total: int, label: str = "items", enabled: bool = True, interval_s: float = 10.0) -> ProgressBar:
    """``progress_bar(n, "blocks")``; call ``advance(note=...)`` after each item, ``close()`` at the end."""
    return ProgressBar(
        enabled,
        label,
        max(int(total), 0),
        columns=("{task.percentage:5.1f}%",),
        elapsed=True,
        labels=True,
        note=True,
        stderr=True,
        log_every_s=interval_s,
    )
