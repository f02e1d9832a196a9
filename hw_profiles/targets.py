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
YAML file is loaded by path. Loading a target never imports an engine library.
"""

from __future__ import annotations

import dataclasses
import os
from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from hw_profiles.errors import TargetConfigError, UnknownTargetError
from hwnas.io import load_yaml_file

__all__ = [
    "ENGINES",
    "PRECISIONS",
    "TIMERS",
    "MeasureConfig",
    "Target",
    "builtin_target_dir",
    "list_targets",
    "load_target",
    "target_from_dict",
]

ENGINES: tuple[str, ...] = ("onnxruntime", "openvino", "tensorrt", "torch")
PRECISIONS: tuple[str, ...] = ("fp32", "int8", "fp16")
TIMERS: tuple[str, ...] = ("auto", "wall", "thread_cpu")
DEVICES: tuple[str, ...] = ("cpu", "gpu")


@dataclass(frozen=True)
class MeasureConfig:
    """How one model is timed (see :func:`hw_profiles.harness.measure`).

    Warm-up runs ``warmup_runs`` times and at least ``warmup_s`` seconds. Then timed rounds,
    each of at least ``min_runs`` samples and ``min_time_s`` seconds (at most ``max_runs``),
    until the 95 % confidence interval of the median reaches ``target_ci`` (relative half-width)
    after at least ``rounds`` rounds, or ``max_rounds`` rounds / ``max_time_s`` seconds are
    spent: large blocks stop early, tiny ones get more samples. A sample is ``k`` back-to-back
    runs (the per-run figure divides by ``k``), ``k`` chosen so that one sample lasts at least
    ``min_sample_us`` microseconds and 100 timer ticks.

    ``quiet_gate``: before each round, time a small fixed probe model and compare it with the
    host's noise model (calibrated when the engine starts: the probe's median and robust
    spread); a reading more than ``gate_sigmas`` robust deviations (and ``gate_tolerance``
    relatively) above the probe's recent median means the machine is busy, and the gate waits
    (at most ``gate_max_wait_s`` per measured model in all). Rounds still taken while busy
    flag the model as busy, and the profiler measures it again in a later pass.
    """

    warmup_runs: int = 10
    warmup_s: float = 0.03
    min_runs: int = 5
    min_time_s: float = 0.01
    max_runs: int = 5000
    rounds: int = 3
    max_rounds: int = 15
    target_ci: float = 0.02
    max_time_s: float = 1.5
    min_sample_us: float = 20.0
    quiet_gate: bool = True
    gate_sigmas: float = 3.0
    gate_tolerance: float = 0.08
    gate_max_wait_s: float = 1.0

    def __post_init__(self) -> None:
        for name in ("warmup_runs", "min_runs", "max_runs", "rounds", "max_rounds"):
            value = getattr(self, name)
            if isinstance(value, bool) or not isinstance(value, int) or value < 0:
                raise TargetConfigError(f"measure.{name}: expected a non-negative integer, got {value!r}")
        if not isinstance(self.quiet_gate, bool):
            raise TargetConfigError(f"measure.quiet_gate: expected true or false, got {self.quiet_gate!r}")
        for name in (
            "warmup_s",
            "min_time_s",
            "target_ci",
            "max_time_s",
            "min_sample_us",
            "gate_sigmas",
            "gate_tolerance",
            "gate_max_wait_s",
        ):
            value = getattr(self, name)
            if isinstance(value, bool) or not isinstance(value, (int, float)) or value < 0:
                raise TargetConfigError(f"measure.{name}: expected a non-negative number, got {value!r}")
        if self.rounds < 1 or self.min_runs < 1:
            raise TargetConfigError("measure: rounds and min_runs must be at least 1")
        if self.max_rounds < self.rounds:
            raise TargetConfigError(f"measure.max_rounds ({self.max_rounds}) is below rounds ({self.rounds})")
        if self.max_runs < self.min_runs:
            raise TargetConfigError(f"measure.max_runs ({self.max_runs}) is below min_runs ({self.min_runs})")

    def replace(self, **changes: Any) -> MeasureConfig:
        return dataclasses.replace(self, **changes)

    def to_dict(self) -> dict[str, Any]:
        return dataclasses.asdict(self)


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


def target_from_dict(data: Any, where: str = "<target>") -> Target:
    """Validate a target mapping (as read from YAML); errors name ``where`` and the key."""
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
    engine = text("engine", ENGINES)
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
    target = Target(
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
    from hw_profiles.engines import engine_class

    engine_class(engine).check_target(target, where)
    return target


def builtin_target_dir() -> Path:
    return Path(__file__).resolve().parent / "builtin"


def list_targets() -> list[str]:
    """Names of the built-in targets, sorted."""
    return sorted(p.stem for p in builtin_target_dir().glob("*.yaml"))


def load_target(name_or_path: str | os.PathLike[str] | Target) -> Target:
    """A built-in target by name, or a target YAML file by path.

    Unknown names raise :class:`UnknownTargetError` (one line, listing the built-ins).
    """
    if isinstance(name_or_path, Target):
        return name_or_path
    text = os.fspath(name_or_path)
    path = Path(text)
    looks_like_file = text.endswith((".yaml", ".yml")) or os.sep in text or "/" in text
    if looks_like_file or (path.is_file() and not (builtin_target_dir() / f"{text}.yaml").is_file()):
        if not path.exists():
            raise UnknownTargetError(f"target file {text!r} does not exist")
        return target_from_dict(load_yaml_file(path, "target YAML"), str(path))
    builtin = builtin_target_dir() / f"{text}.yaml"
    if not builtin.is_file():
        raise UnknownTargetError(
            f"unknown target {text!r} (built-in targets: {', '.join(list_targets())}; or give a YAML file path)"
        )
    target = target_from_dict(load_yaml_file(builtin), f"builtin:{text}")
    if target.name != text:  # pragma: no cover - guarded by tests over the built-ins
        raise UnknownTargetError(f"built-in target file {builtin.name} names itself {target.name!r}")
    return target
