"""Targets: what to measure on (engine, precision, threads, batch, engine options).

A target is a small YAML file::

    name: cpu-ort-int8
    engine: onnxruntime          # onnxruntime | openvino | tensorrt | torch
    precision: int8              # fp32 | int8 | fp16
    device: cpu                  # cpu | gpu
    threads: 1
    batch: 1
    timer: auto                  # auto | wall | thread_cpu
    affinity: [0]                # optional: CPU ids the measuring process is pinned to
    options: {providers: [CPUExecutionProvider]}   # engine / execution-provider options
    measure: {rounds: 3, min_time_s: 0.1}          # optional harness settings

Built-in targets live in :mod:`hw_profiles.builtin` (one ``<name>.yaml`` each); any other
YAML file is loaded by path.

This module parses: it checks the target's own keys (the engine name against the one engine
registry, :mod:`hw_profiles.engines.registry`) and knows no engine. What an engine accepts
(precision, device, options) is checked by the engine, when one is created
(:func:`hw_profiles.create_engine`) and by :func:`hw_profiles.load_target`, which is
:func:`read_target` followed by that check.
"""

from __future__ import annotations

import dataclasses
import os
from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from hw_profiles.engines.registry import engine_names
from hw_profiles.errors import TargetConfigError, UnknownTargetError
from hw_profiles.harness import MeasureConfig
from hwnas.io import load_yaml_file

__all__ = [
    "PRECISIONS",
    "TIMERS",
    "MeasureConfig",
    "Target",
    "builtin_target_dir",
    "list_targets",
    "parse_target",
    "read_target",
]

PRECISIONS: tuple[str, ...] = ("fp32", "int8", "fp16")
TIMERS: tuple[str, ...] = ("auto", "wall", "thread_cpu")
DEVICES: tuple[str, ...] = ("cpu", "gpu")


@dataclass(frozen=True)
class Target:
    """A measurement target. ``source`` is where it was loaded from (``builtin`` or a path)."""

    name: str
    engine: str
    precision: str
    device: str = "cpu"
    threads: int = 1
    batch: int = 1
    timer: str = "auto"
    affinity: tuple[int, ...] | None = None
    options: Mapping[str, Any] = field(default_factory=dict)
    measure: MeasureConfig = field(default_factory=MeasureConfig)
    description: str = ""
    source: str = ""

    def replace(self, **changes: Any) -> Target:
        return dataclasses.replace(self, **changes)

    def to_dict(self) -> dict[str, Any]:
        """The YAML form of the target (``source`` left out)."""
        out: dict[str, Any] = {
            "name": self.name,
            "description": self.description,
            "engine": self.engine,
            "precision": self.precision,
            "device": self.device,
            "threads": self.threads,
            "batch": self.batch,
            "timer": self.timer,
            "options": _plain(self.options),
            "measure": self.measure.to_dict(),
        }
        if self.affinity is not None:
            out["affinity"] = list(self.affinity)
        return out


def _plain(value: Any) -> Any:
    if isinstance(value, Mapping):
        return {str(k): _plain(v) for k, v in value.items()}
    if isinstance(value, (list, tuple)):
        return [_plain(v) for v in value]
    return value


_KEYS = {
    "name",
    "description",
    "engine",
    "precision",
    "device",
    "threads",
    "batch",
    "timer",
    "affinity",
    "options",
    "measure",
}


def parse_target(data: Any, where: str = "<target>") -> Target:
    """Validate a target mapping (as read from YAML); errors name ``where`` and the key.

    The target's own keys only; :func:`hw_profiles.target_from_dict` adds the engine's check."""
    if not isinstance(data, Mapping):
        raise TargetConfigError(
            f"{where}: a target is a mapping of keys (name, engine, precision, ...), got {type(data).__name__}"
        )
    unknown = sorted(set(map(str, data)) - _KEYS)
    if unknown:
        raise TargetConfigError(f"{where}: unknown key {unknown[0]!r} (keys: {', '.join(sorted(_KEYS))})")
    for key in ("name", "engine", "precision"):
        if key not in data:
            raise TargetConfigError(f"{where}: missing key {key!r}")

    def text(key: str, allowed: tuple[str, ...] | None = None, default: str | None = None) -> str:
        value = data.get(key, default)
        if not isinstance(value, str) or not value:
            raise TargetConfigError(f"{where}: {key}: expected a non-empty string, got {value!r}")
        if allowed is not None and value not in allowed:
            raise TargetConfigError(f"{where}: {key}: {value!r} is not one of {', '.join(allowed)}")
        return value

    def positive(key: str, default: int) -> int:
        value = data.get(key, default)
        if isinstance(value, bool) or not isinstance(value, int) or value < 1:
            raise TargetConfigError(f"{where}: {key}: expected a positive integer, got {value!r}")
        return value

    name = text("name")
    engine = text("engine", engine_names())
    precision = text("precision", PRECISIONS)
    device = text("device", DEVICES, "gpu" if engine == "tensorrt" else "cpu")
    timer = text("timer", TIMERS, "auto")
    description = data.get("description", "") or ""
    if not isinstance(description, str):
        raise TargetConfigError(f"{where}: description: expected a string, got {description!r}")
    affinity = data.get("affinity")
    if affinity is not None:
        if (
            not isinstance(affinity, (list, tuple))
            or not affinity
            or not all(isinstance(c, int) and not isinstance(c, bool) and c >= 0 for c in affinity)
        ):
            raise TargetConfigError(f"{where}: affinity: expected a non-empty list of CPU ids, got {affinity!r}")
        affinity = tuple(affinity)
    options = data.get("options") or {}
    if not isinstance(options, Mapping):
        raise TargetConfigError(f"{where}: options: expected a mapping, got {type(options).__name__}")
    measure_data = data.get("measure") or {}
    if not isinstance(measure_data, Mapping):
        raise TargetConfigError(f"{where}: measure: expected a mapping, got {type(measure_data).__name__}")
    fields = {f.name for f in dataclasses.fields(MeasureConfig)}
    bad = sorted(set(map(str, measure_data)) - fields)
    if bad:
        raise TargetConfigError(f"{where}: measure: unknown key {bad[0]!r} (keys: {', '.join(sorted(fields))})")
    try:
        measure = MeasureConfig(**dict(measure_data))
    except TargetConfigError as exc:
        raise TargetConfigError(f"{where}: {exc}") from None
    return Target(
        name=name,
        engine=engine,
        precision=precision,
        device=device,
        threads=positive("threads", 1),
        batch=positive("batch", 1),
        timer=timer,
        affinity=affinity,
        options=dict(options),
        measure=measure,
        description=description,
        source=where,
    )


def builtin_target_dir() -> Path:
    return Path(__file__).resolve().parent / "builtin"


def list_targets() -> list[str]:
    """Names of the built-in targets, sorted."""
    return sorted(p.stem for p in builtin_target_dir().glob("*.yaml"))


def read_target(name_or_path: str | os.PathLike[str] | Target) -> Target:
    """A built-in target by name, or a target YAML file by path, parsed (:func:`parse_target`).

    Unknown names raise :class:`UnknownTargetError` (one line, listing the built-ins).
    :func:`hw_profiles.load_target` adds the engine's check.
    """
    if isinstance(name_or_path, Target):
        return name_or_path
    text = os.fspath(name_or_path)
    path = Path(text)
    looks_like_file = text.endswith((".yaml", ".yml")) or os.sep in text or "/" in text
    if looks_like_file or (path.is_file() and not (builtin_target_dir() / f"{text}.yaml").is_file()):
        if not path.exists():
            raise UnknownTargetError(f"target file {text!r} does not exist")
        return parse_target(load_yaml_file(path, "target YAML"), str(path))
    builtin = builtin_target_dir() / f"{text}.yaml"
    if not builtin.is_file():
        raise UnknownTargetError(
            f"unknown target {text!r} (built-in targets: {', '.join(list_targets())}; or give a YAML file path)"
        )
    target = parse_target(load_yaml_file(builtin), f"builtin:{text}")
    if target.name != text:  # pragma: no cover - guarded by tests over the built-ins
        raise UnknownTargetError(f"built-in target file {builtin.name} names itself {target.name!r}")
    return target
