"""The one engine registry: engine name -> where its class lives (module, class name).

A leaf module: target parsing reads the names from here without importing any engine
module, and :func:`hw_profiles.engines.engine_class` imports the class on first use.
"""

from __future__ import annotations

__all__ = ["ENGINES", "engine_names"]

ENGINES: dict[str, tuple[str, str]] = {
    "onnxruntime": ("hw_profiles.engines.onnxruntime_engine", "OnnxRuntimeEngine"),
    "openvino": ("hw_profiles.engines.openvino_engine", "OpenVinoEngine"),
    "tensorrt": ("hw_profiles.engines.tensorrt_engine", "TensorRtEngine"),
    "torch": ("hw_profiles.engines.torch_engine", "TorchEngine"),
}


def engine_names() -> tuple[str, ...]:
    """The registered engine names, in registry order."""
    return tuple(ENGINES)
