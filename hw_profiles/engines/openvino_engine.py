"""OpenVINO: the CPU plugin (or any OpenVINO device) through ``openvino.Core``.

INT8 comes from the QDQ ONNX models: OpenVINO turns ``QuantizeLinear/DequantizeLinear``
pairs into FakeQuantize and its low-precision transformations pick integer kernels.
"""

from __future__ import annotations

import os
from typing import Any

from hw_profiles.engines.base import Engine, OptionSpec, Runner, TensorSpec, random_input
from hw_profiles.errors import MeasurementError
from hwnas.errors import first_line

__all__ = ["OpenVinoEngine"]


class OpenVinoEngine(Engine):
    name = "openvino"
    precisions = ("fp32", "int8", "fp16")
    devices = ("cpu", "gpu")
    install_hint = "pip install openvino, or pip install 'hwnas[openvino]'"
    options_spec = {
        "device": OptionSpec((str,), doc="OpenVINO device name: CPU, GPU, NPU, ..."),
        "performance_hint": OptionSpec((str,), ("LATENCY", "THROUGHPUT")),
        "num_streams": OptionSpec((int,)),
        "enable_cpu_pinning": OptionSpec((bool,)),
        "inference_precision": OptionSpec((str,), ("f32", "bf16", "f16")),
        "config": OptionSpec((dict,), doc="extra compile properties (name: value)"),
    }

    @classmethod
    def availability(cls, target: Any = None) -> str | None:
        try:
            import openvino as ov
        except ImportError:
            return "engine openvino is not installed"
        if target is not None:
            device = target.options.get("device", "GPU" if target.device == "gpu" else "CPU")
            try:
                devices = ov.Core().available_devices
            except Exception as exc:  # pragma: no cover - broken installation
                return f"openvino cannot list its devices: {exc}"
            if not any(d == device or d.startswith(device + ".") for d in devices):
                return f"openvino has no device {device} here (available: {', '.join(devices) or 'none'})"
        return None

    def __init__(self, target: Any) -> None:
        super().__init__(target)
        import openvino as ov

        self._ov = ov
        self._core = ov.Core()

    def version(self) -> str:
        return str(self._ov.get_version()).split("-")[0]

    def device_name(self) -> str:
        return str(self.target.options.get("device", "GPU" if self.target.device == "gpu" else "CPU"))

    def hardware(self) -> dict[str, Any]:
        hw = super().hardware()
        if self.device_name() != "CPU":
            try:
                hw["gpu"] = {"name": str(self._core.get_property(self.device_name(), "FULL_DEVICE_NAME"))}
            except Exception:  # pragma: no cover - device without the property
                hw["gpu"] = {"name": self.device_name()}
        return hw

    def fingerprint_options(self) -> dict[str, Any]:
        opts = super().fingerprint_options()
        opts.setdefault("device", self.device_name())
        opts.setdefault("performance_hint", "LATENCY")
        opts.setdefault("num_streams", 1)
        return opts

    def compile_config(self) -> dict[str, Any]:
        o = self.target.options
        cfg: dict[str, Any] = {
            "PERFORMANCE_HINT": o.get("performance_hint", "LATENCY"),
            "NUM_STREAMS": str(o.get("num_streams", 1)),
        }
        if self.device_name() == "CPU":
            cfg["INFERENCE_NUM_THREADS"] = self.target.threads
            if "enable_cpu_pinning" in o:
                cfg["ENABLE_CPU_PINNING"] = bool(o["enable_cpu_pinning"])
        precision = o.get("inference_precision")
        if precision is None:
            precision = {"fp16": "f16"}.get(self.target.precision, "f32")
        cfg["INFERENCE_PRECISION_HINT"] = precision
        cfg.update({str(k): v for k, v in (o.get("config") or {}).items()})
        return cfg

    def load(self, path: str | os.PathLike[str]) -> Runner:
        return _OvRunner(self, os.fspath(path))


class _OvRunner(Runner):
    def __init__(self, engine: OpenVinoEngine, path: str) -> None:
        ov = engine._ov
        try:
            model = engine._core.read_model(path)
            self.compiled = engine._core.compile_model(model, engine.device_name(), engine.compile_config())
            self.request = self.compiled.create_infer_request()
        except Exception as exc:
            first = first_line(exc)
            raise MeasurementError(f"{path}: openvino cannot compile the model: {first}") from None
        ins = []
        for i, port in enumerate(self.compiled.inputs):
            shape = tuple(int(d) for d in port.get_shape())
            dtype = port.get_element_type().to_dtype().name
            spec = TensorSpec(port.get_any_name(), shape, dtype)
            ins.append(spec)
            self.request.set_tensor(port, ov.Tensor(random_input(spec, seed=i)))
        self.inputs = tuple(ins)
        self.outputs = tuple(
            TensorSpec(p.get_any_name(), tuple(int(d) for d in p.get_shape()), p.get_element_type().to_dtype().name)
            for p in self.compiled.outputs
        )
        self._infer = self.request.infer
        try:
            self()
        except Exception as exc:
            first = first_line(exc)
            raise MeasurementError(f"{path}: openvino cannot run the model: {first}") from None

    def __call__(self) -> None:
        self._infer()

    def close(self) -> None:
        self.request = None
        self.compiled = None
