"""Hardware profiles: measurement targets and the measurement harness of each engine.

Device-side code: this package imports only the standard library, PyYAML and numpy at
module level; engine libraries (onnxruntime, OpenVINO, TensorRT) are imported when an
engine is created, and torch only by the ``torch`` engine. It never imports torch
otherwise, so that profiling runs on an edge board without it.

>>> from hw_profiles import load_target, create_engine
>>> target = load_target("cpu-ort-int8")
>>> engine = create_engine(target)
>>> stats = engine.measure_file("block.int8.onnx")
"""

from __future__ import annotations

import os
from typing import Any

from hw_profiles.compare import Comparison, compare_files
from hw_profiles.engines import MODEL_FORMATS, Engine, Runner, check_target, create_engine, engine_class, list_engines
from hw_profiles.errors import (
    EngineUnavailableError,
    HwProfileError,
    MeasurementError,
    TargetConfigError,
    UnknownTargetError,
)
from hw_profiles.fingerprint import Fingerprint, fingerprint_id
from hw_profiles.harness import MeasureConfig, Stats, measure, resolve_timer
from hw_profiles.sysinfo import cpu_info
from hw_profiles.targets import Target, list_targets, parse_target, read_target

__all__ = [
    "MODEL_FORMATS",
    "Comparison",
    "Engine",
    "EngineUnavailableError",
    "Fingerprint",
    "HwProfileError",
    "MeasureConfig",
    "MeasurementError",
    "Runner",
    "Stats",
    "Target",
    "TargetConfigError",
    "UnknownTargetError",
    "check_target",
    "compare_files",
    "cpu_info",
    "create_engine",
    "engine_class",
    "fingerprint_id",
    "list_engines",
    "list_targets",
    "load_target",
    "measure",
    "resolve_timer",
    "target_from_dict",
    "target_availability",
    "target_fingerprint",
]


def load_target(name_or_path: str | os.PathLike[str] | Target) -> Target:
    """A built-in target by name, or a target YAML file by path, checked by its engine too, so
    that a bad file fails when it is loaded, not when the first model is measured.

    Unknown names raise :class:`UnknownTargetError`, malformed files :class:`TargetConfigError`
    (one line, naming the file and key). Imports no engine library. A :class:`Target` is
    returned as it is (an engine checks it when it is created).
    """
    if isinstance(name_or_path, Target):
        return name_or_path
    return check_target(read_target(name_or_path))


def target_from_dict(data: Any, where: str = "<target>") -> Target:
    """A target mapping (as read from YAML), parsed and checked by its engine; errors name
    ``where`` and the key."""
    return check_target(parse_target(data, where), where)


def target_availability(target: Target) -> str | None:
    """``None`` when ``target`` can be measured on this machine, else the reason why not."""
    return engine_class(target.engine).availability(target)


def target_fingerprint(target: Target | str) -> Fingerprint:
    """The fingerprint of ``target`` (a name, file or :class:`Target`) on this machine: the key
    under which a LUT stores its measurements here."""
    engine = create_engine(load_target(target))
    try:
        return engine.fingerprint()
    finally:
        engine.close()
