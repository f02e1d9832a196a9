"""onnxruntime: any execution provider; CPU by default.

INT8 models are QDQ ONNX; onnxruntime fuses ``DequantizeLinear → op → QuantizeLinear``
into integer kernels (QLinearConv, ...). Inputs are bound once and outputs are written
into pre-allocated buffers (I/O binding), so a timed run is one ``run_with_iobinding``.
"""

from __future__ import annotations

import os
from typing import Any

from hw_profiles.engines.base import Engine, OptionSpec, Runner, TensorSpec, random_input
from hw_profiles.errors import MeasurementError
from hwnas.errors import first_line

__all__ = ["OnnxRuntimeEngine"]

_OPT_LEVELS = {
    "disable": "ORT_DISABLE_ALL",
    "basic": "ORT_ENABLE_BASIC",
    "extended": "ORT_ENABLE_EXTENDED",
    "all": "ORT_ENABLE_ALL",
}
_ORT_TYPES = {
    "tensor(float)": "float32",
    "tensor(uint8)": "uint8",
    "tensor(int8)": "int8",
    "tensor(float16)": "float16",
    "tensor(int32)": "int32",
    "tensor(int64)": "int64",
}


class OnnxRuntimeEngine(Engine):
    name = "onnxruntime"
    precisions = ("fp32", "int8", "fp16")
    devices = ("cpu", "gpu")
    install_hint = "pip install onnxruntime"
    options_spec = {
        "providers": OptionSpec((list,), doc="execution providers in priority order"),
        "provider_options": OptionSpec((list,), doc="one mapping per provider"),
        "graph_optimization_level": OptionSpec((str,), tuple(_OPT_LEVELS)),
        "execution_mode": OptionSpec((str,), ("sequential", "parallel")),
        "allow_spinning": OptionSpec((bool,), doc="intra-op threads spin while waiting for work"),
        "inter_op_threads": OptionSpec((int,)),
        "session_config": OptionSpec((dict,), doc="extra session config entries (key: value)"),
    }

    @classmethod
    def availability(cls, target: Any = None) -> str | None:
        try:
            import onnxruntime as ort
        except ImportError:
            return "engine onnxruntime is not installed"
        if target is not None:
            wanted = target.options.get("providers") or ["CPUExecutionProvider"]
            have = set(ort.get_available_providers())
            missing = [p for p in wanted if p not in have]
            if missing:
                return f"onnxruntime has no {missing[0]} here (available: {', '.join(sorted(have))})"
        return None

    def __init__(self, target: Any) -> None:
        super().__init__(target)
        import onnxruntime as ort

        self._ort = ort

    def version(self) -> str:
        return str(self._ort.__version__)

    def providers(self) -> list[str]:
        return list(self.target.options.get("providers") or ["CPUExecutionProvider"])

    def runs_in_caller_thread(self) -> bool:
        return self.target.threads == 1 and self.providers() == ["CPUExecutionProvider"]

    def model_format(self) -> str:
        if self.target.precision == "int8":
            # the CPU provider's QLinear kernels are channels-last: blocks with NHWC I/O run as
            # inside a network, without the two layout transposes an NCHW block would add
            return "int8_nhwc" if self.providers()[0] == "CPUExecutionProvider" else "int8"
        return "fp32"

    def fingerprint_options(self) -> dict[str, Any]:
        opts = super().fingerprint_options()
        opts.setdefault("providers", self.providers())
        opts.setdefault("graph_optimization_level", "all")
        opts.setdefault("execution_mode", "sequential")
        if self.target.threads > 1:
            opts.setdefault("allow_spinning", True)
        return opts

    def hardware(self) -> dict[str, Any]:
        hw = super().hardware()
        if self.target.device == "gpu":
            from hw_profiles.sysinfo import gpu_info_nvidia_smi

            hw["gpu"] = gpu_info_nvidia_smi(0) or {"name": "unknown"}
        return hw

    def session_options(self) -> Any:
        ort = self._ort
        opts = self.target.options
        so = ort.SessionOptions()
        so.intra_op_num_threads = self.target.threads
        so.inter_op_num_threads = int(opts.get("inter_op_threads", 1))
        so.execution_mode = (
            ort.ExecutionMode.ORT_PARALLEL
            if opts.get("execution_mode") == "parallel"
            else ort.ExecutionMode.ORT_SEQUENTIAL
        )
        so.graph_optimization_level = getattr(
            ort.GraphOptimizationLevel, _OPT_LEVELS[opts.get("graph_optimization_level", "all")]
        )
        so.log_severity_level = 3
        if "allow_spinning" in opts:
            so.add_session_config_entry("session.intra_op.allow_spinning", "1" if opts["allow_spinning"] else "0")
        affinity = self.target.affinity
        if affinity and self.target.threads > 1:
            # one entry per extra intra-op thread; onnxruntime numbers processors from 1
            spec = ";".join(str(affinity[i % len(affinity)] + 1) for i in range(1, self.target.threads))
            so.add_session_config_entry("session.intra_op_thread_affinities", spec)
        for key, value in (opts.get("session_config") or {}).items():
            so.add_session_config_entry(str(key), str(value))
        return so

    def load(self, path: str | os.PathLike[str]) -> Runner:
        return _OrtRunner(self, os.fspath(path))


class _OrtRunner(Runner):
    def __init__(self, engine: OnnxRuntimeEngine, path: str) -> None:
        import numpy as np

        ort = engine._ort
        try:
            self.session = ort.InferenceSession(
                path,
                engine.session_options(),
                providers=engine.providers(),
                provider_options=engine.target.options.get("provider_options"),
            )
        except Exception as exc:  # onnxruntime raises its own exception types
            first = first_line(exc)
            raise MeasurementError(f"{path}: onnxruntime cannot load the model: {first}") from None
        self.runs_in_caller_thread = engine.runs_in_caller_thread()
        device = "cuda" if engine.target.device == "gpu" else "cpu"
        self.binding = self.session.io_binding()
        self._keep: list[Any] = []
        ins = []
        for i, meta in enumerate(self.session.get_inputs()):
            spec = TensorSpec(
                meta.name,
                tuple(d if isinstance(d, int) else 1 for d in meta.shape),
                _ORT_TYPES.get(meta.type, "float32"),
            )
            ins.append(spec)
            data = random_input(spec, seed=i)
            self._keep.append(data)
            if device == "cpu":
                self.binding.bind_cpu_input(meta.name, data)
            else:
                value = ort.OrtValue.ortvalue_from_numpy(data, device, 0)
                self._keep.append(value)
                self.binding.bind_ortvalue_input(meta.name, value)
        outs = []
        for meta in self.session.get_outputs():
            shape = tuple(d if isinstance(d, int) else 1 for d in meta.shape)
            spec = TensorSpec(meta.name, shape, _ORT_TYPES.get(meta.type, "float32"))
            outs.append(spec)
            if all(isinstance(d, int) for d in meta.shape):
                value = ort.OrtValue.ortvalue_from_numpy(np.zeros(shape, dtype=spec.dtype), device, 0)
                self._keep.append(value)
                self.binding.bind_ortvalue_output(meta.name, value)
            else:  # dynamic shape: let onnxruntime allocate
                self.binding.bind_output(meta.name, device)
        self.inputs, self.outputs = tuple(ins), tuple(outs)
        # no RunOptions: passing one costs tens of microseconds per run in onnxruntime's Python API
        self._run = self.session.run_with_iobinding
        try:
            self()
        except Exception as exc:
            first = first_line(exc)
            raise MeasurementError(f"{path}: onnxruntime cannot run the model: {first}") from None

    def __call__(self) -> None:
        self._run(self.binding)

    def close(self) -> None:
        self.binding = None
        self.session = None
        self._keep.clear()
