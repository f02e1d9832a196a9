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

from hw_profiles.engines import MODEL_FORMATS, Engine, Runner, create_engine, engine_class, list_engines
from hw_profiles.errors import (
    EngineUnavailableError,
    HwProfileError,
    MeasurementError,
    TargetConfigError,
    UnknownTargetError,
)
from hw_profiles.fingerprint import Fingerprint, fingerprint_id
from hw_profiles.harness import Stats, measure, resolve_timer
from hw_profiles.sysinfo import cpu_info
from hw_profiles.targets import MeasureConfig, Target, list_targets, load_target, target_from_dict

__all__ = [
    "MODEL_FORMATS",
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
