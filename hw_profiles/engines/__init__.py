"""Inference engines: one :class:`~hw_profiles.engines.base.Engine` subclass per library.

Engine modules import their library lazily, so listing engines or validating a target
imports none of onnxruntime, OpenVINO, TensorRT or torch.
"""

from __future__ import annotations

import importlib

from hw_profiles.engines.base import MODEL_FORMATS, Engine, OptionSpec, Runner, TensorSpec, random_input
from hw_profiles.errors import UnknownTargetError

__all__ = [
    "MODEL_FORMATS",
    "Engine",
    "OptionSpec",
    "Runner",
    "TensorSpec",
    "create_engine",
    "engine_class",
    "list_engines",
    "random_input",
]

_ENGINES: dict[str, tuple[str, str]] = {
    "onnxruntime": ("hw_profiles.engines.onnxruntime_engine", "OnnxRuntimeEngine"),
    "openvino": ("hw_profiles.engines.openvino_engine", "OpenVinoEngine"),
    "tensorrt": ("hw_profiles.engines.tensorrt_engine", "TensorRtEngine"),
    "torch": ("hw_profiles.engines.torch_engine", "TorchEngine"),
}


def list_engines() -> list[str]:
    return sorted(_ENGINES)


def engine_class(name: str) -> type[Engine]:
    try:
        module, cls = _ENGINES[name]
    except KeyError:
        raise UnknownTargetError(f"unknown engine {name!r} (engines: {', '.join(sorted(_ENGINES))})") from None
    return getattr(importlib.import_module(module), cls)


def create_engine(target: object) -> Engine:
    """The engine for ``target`` (a :class:`~hw_profiles.targets.Target`), ready to load models.

    Raises :class:`~hw_profiles.errors.EngineUnavailableError` (one line, with the reason)
    when the engine library or the hardware is missing.
    """
    return engine_class(target.engine)(target)  # type: ignore[attr-defined]
