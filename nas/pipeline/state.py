"""A run folder's memory: what each stage was run with, and whether it finished.

Each stage keeps ``<run>/<stage>/stage.json``: ``{"stage", "inputs", "finished", "summary",
"seconds"}``. ``inputs`` is the part of the configuration the stage's results depend on; a
rerun compares it with the configuration now given and refuses a difference in one line that
names the first key that changed, since mixing results of two configurations would be silent
and wrong. ``--from STAGE`` (:meth:`RunFolder.reset`) removes a stage's outputs and those of
the stages after it, except the evolve stage's block-wise quality file (:data:`KEPT`): its
measurements are keyed by a fingerprint of the teacher, data, hyper-space and recipe, so a
redone evolution reuses those that still apply and measures the rest.
"""

from __future__ import annotations

import json
import os
import shutil
import time
from collections.abc import Iterator, Mapping
from pathlib import Path
from typing import Any

from hwnas.errors import ConfigError
from hwnas.io import atomic_write
from nas.pipeline.config import STAGES

__all__ = ["BASELINE_RECORD", "RunFolder", "StageChangedError", "baselines_dir", "copy_file", "first_difference"]

RECORD = "stage.json"

#: per stage, the files ``--from`` keeps (content-addressed results that a redo reuses when they apply)
KEPT: dict[str, tuple[str, ...]] = {
    "evolve": ("quality.db", "quality.db-wal", "quality.db-shm", "quality.db.work"),
}

BASELINE_RECORD = "baseline.json"
"""The file that finishes a baseline of the report (``report/baselines/<name>/``), written last."""


def baselines_dir(exp: Any) -> Path:
    """``report/baselines/``: one folder per ``report.baselines`` network."""
    return exp.root / "report" / "baselines"


def copy_file(src: Path, dst: Path) -> None:
    """Copy ``src`` to ``dst`` atomically (a temp name, then a rename)."""
    atomic_write(dst, lambda tmp: shutil.copyfile(src, tmp))


class StageChangedError(ConfigError):
    """A finished (or started) stage was run with another configuration than the one given now."""


def _flatten(obj: Any, prefix: str = "") -> Iterator[tuple[str, Any]]:
    if isinstance(obj, Mapping) and obj:
        for k in sorted(obj):
            yield from _flatten(obj[k], f"{prefix}.{k}" if prefix else str(k))
    else:
        yield prefix, obj


def first_difference(old: Any, new: Any) -> tuple[str, Any, Any] | None:
    """``(dotted key, old value, new value)`` of the first difference, or ``None``."""
    a, b = dict(_flatten(old)), dict(_flatten(new))
    for key in sorted(set(a) | set(b)):
        if json.dumps(a.get(key, "<absent>"), sort_keys=True, default=str) != json.dumps(
            b.get(key, "<absent>"), sort_keys=True, default=str
        ):
            return key, a.get(key, "<absent>"), b.get(key, "<absent>")
    return None


class RunFolder:
    """The folder of one ``nas run`` experiment."""

    def __init__(self, root: str | os.PathLike[str]) -> None:
        self.root = Path(root)
        if self.root.exists() and not self.root.is_dir():
            raise ConfigError(f"--out {self.root}: exists and is not a folder")

    def stage_dir(self, stage: str) -> Path:
        return self.root / stage

    def record(self, stage: str) -> dict[str, Any] | None:
        """The stage's record, or ``None`` when it never started (a torn record counts as none)."""
        path = self.stage_dir(stage) / RECORD
        try:
            rec = json.loads(path.read_text(encoding="utf-8"))
        except FileNotFoundError:
            return None
        except (OSError, ValueError):
            return None
        return rec if isinstance(rec, dict) and rec.get("stage") == stage else None

    def write_record(
        self,
        stage: str,
        inputs: Mapping[str, Any],
        *,
        finished: bool,
        summary: Mapping[str, Any] | None = None,
        seconds: float | None = None,
    ) -> None:
        from hwnas.io import atomic_write_text, json_safe

        rec = {
            "stage": stage,
            "inputs": dict(inputs),
            "finished": finished,
            "summary": dict(summary or {}),
            "seconds": None if seconds is None else round(seconds, 3),
            "updated": time.time(),
        }
        self.stage_dir(stage).mkdir(parents=True, exist_ok=True)
        atomic_write_text(self.stage_dir(stage) / RECORD, json.dumps(json_safe(rec), indent=2, sort_keys=True) + "\n")

    def check_inputs(self, stage: str, inputs: Mapping[str, Any]) -> dict[str, Any] | None:
        """The stage's record when it matches ``inputs`` (``None`` when it never started); a
        record of other inputs raises :class:`StageChangedError` naming the first changed key."""
        rec = self.record(stage)
        if rec is None:
            return None
        diff = first_difference(rec.get("inputs", {}), dict(inputs))
        if diff is None:
            return rec
        key, old, new = diff
        state = "finished" if rec.get("finished") else "started"
        raise StageChangedError(
            f"{self.root}: stage {stage} {state} with {key} = {json.dumps(old, default=str)}, the config now says "
            f"{json.dumps(new, default=str)}: rerun with --from {stage} to redo it and the stages after it, "
            f"or use another --out"
        )

    def reset(self, stage: str) -> list[str]:
        """Remove the outputs of ``stage`` and of every stage after it; returns the removed stages."""
        if stage not in STAGES:
            raise ConfigError(f"--from {stage!r}: unknown stage (stages: {', '.join(STAGES)})")
        removed = []
        for s in STAGES[STAGES.index(stage) :]:
            d = self.stage_dir(s)
            if not d.exists():
                continue
            keep = KEPT.get(s, ())
            if any((d / name).exists() for name in keep):
                (d / RECORD).unlink(missing_ok=True)  # first: the stage counts as never started
                for child in d.iterdir():
                    if child.name in keep:
                        continue
                    if child.is_dir() and not child.is_symlink():
                        shutil.rmtree(child)
                    else:
                        child.unlink()
            else:
                shutil.rmtree(d)
            removed.append(s)
        return removed
