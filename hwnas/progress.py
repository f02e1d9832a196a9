"""The one progress display: a ``rich.progress`` bar that does nothing when it is off.

``ProgressBar(enabled, description, total)`` shows a line ``description ━━━━ done/total
[columns] [elapsed] remaining [note]``; ``columns`` are extra ``rich`` text columns that read the
task's fields (``"loss {task.fields[loss]:.4f}"``), whose first values are given as ``fields``.
rich is imported only when the bar is on, so this module costs nothing where progress is off.

On a terminal the line is redrawn in place; elsewhere (a log file, CI) rich prints the final
line when the bar closes, and ``log_every_s`` adds a line at most that often while it runs.
"""

from __future__ import annotations

import time
from collections.abc import Mapping, Sequence
from typing import Any

__all__ = ["ProgressBar"]


class ProgressBar:
    """One rich progress display with a main task (more rows with :meth:`add_task`).

    ``elapsed`` adds an elapsed-time column; ``labels`` names the time columns (``elapsed``,
    ``ETA``); ``note`` adds a last column with the task's ``note`` field (``update(note=...)``);
    ``transient`` removes the display when it closes; ``stderr`` draws on standard error instead
    of standard output. Every method is a no-op when the bar is off (``enabled`` false).
    """

    def __init__(
        self,
        enabled: bool,
        description: str = "",
        total: float | None = None,
        *,
        completed: int = 0,
        columns: Sequence[str] = (),
        fields: Mapping[str, Any] | None = None,
        elapsed: bool = False,
        labels: bool = False,
        note: bool = False,
        transient: bool = False,
        stderr: bool = False,
        log_every_s: float | None = None,
    ) -> None:
        self.progress: Any = None
        self.task: Any = None
        self._log_every_s = log_every_s
        self._logged = float("-inf")
        if not enabled:
            return
        from rich.console import Console
        from rich.progress import (
            BarColumn,
            MofNCompleteColumn,
            Progress,
            ProgressColumn,
            TextColumn,
            TimeElapsedColumn,
            TimeRemainingColumn,
        )

        cols: list[ProgressColumn] = [TextColumn("{task.description}"), BarColumn(), MofNCompleteColumn()]
        cols += [TextColumn(c, markup=False) for c in columns]
        if elapsed:
            cols += [TextColumn("elapsed")] if labels else []
            cols.append(TimeElapsedColumn())
        cols += [TextColumn("ETA")] if labels else []
        cols.append(TimeRemainingColumn())
        values = dict(fields or {})
        if note:
            cols.append(TextColumn("{task.fields[note]}", markup=False))
            values.setdefault("note", "")
        self.progress = Progress(*cols, console=Console(stderr=True) if stderr else None, transient=transient)
        self.progress.start()
        self.task = self.progress.add_task(description, total=total, completed=completed, **values)

    @property
    def enabled(self) -> bool:
        return self.progress is not None

    def add_task(self, description: str, total: float | None = None, **kwargs: Any) -> Any:
        """Another row (``completed``, ``visible`` and fields as rich takes them); its id, or
        ``None`` when the bar is off."""
        if self.progress is None:
            return None
        return self.progress.add_task(description, total=total, **kwargs)

    def update(self, task: Any = None, **kwargs: Any) -> None:
        """Update the main task (or ``task``): ``completed``, ``advance``, ``total``,
        ``description``, ``visible`` and fields, as ``rich.progress.Progress.update`` takes them."""
        if self.progress is None:
            return
        task_id = self.task if task is None else task
        self.progress.update(task_id, **kwargs)
        if self._log_every_s is not None and not self.progress.console.is_terminal:
            self._log(task_id)

    def advance(self, n: float = 1, task: Any = None, **kwargs: Any) -> None:
        """``n`` more done, with any other change :meth:`update` takes (a ``description``, fields)."""
        self.update(task, advance=n, **kwargs)

    def close(self) -> None:
        """Stop the display (once; closing again does nothing)."""
        if self.progress is not None:
            self.progress.stop()
            self.progress = None

    def _log(self, task_id: Any) -> None:
        """A line now and then where the display cannot be redrawn (the last one comes at close)."""
        task = next(t for t in self.progress.tasks if t.id == task_id)
        now = time.monotonic()
        if task.finished or now - self._logged < (self._log_every_s or 0.0):
            return
        self._logged = now
        self.progress.console.print(self.progress.make_tasks_table([task]))
