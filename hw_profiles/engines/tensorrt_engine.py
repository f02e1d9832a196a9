"""TensorRT through its Python API (``tensorrt``) and CUDA through ``cuda-python``.

A model is built with ``trt.Builder`` from the ONNX parser's network: FP16 sets
``BuilderFlag.FP16``; INT8 measures the *symmetric* QDQ models (TensorRT needs zero
points of 0 for weights and activations) with ``BuilderFlag.INT8`` (and FP16 for layers
left in float, unless ``allow_fp16_fallback: false``). Where the installed TensorRT has no
INT8 builder flag (strongly typed releases), the network is created strongly typed and
the QDQ nodes alone decide the precision. Timing runs ``execute_async_v3`` on a CUDA
stream and synchronises the stream inside the timed region (wall clock).
"""

from __future__ import annotations

import os
from typing import Any

from hw_profiles.engines.base import Engine, OptionSpec, Runner, TensorSpec, random_input
from hw_profiles.errors import MeasurementError

__all__ = ["TensorRtEngine"]


def _cudart() -> Any:
    try:
        from cuda.bindings import runtime as cudart  # cuda-python >= 12.6
    except ImportError:
        from cuda import cudart  # older cuda-python
    return cudart


def _check(result: Any, what: str) -> Any:
    """cuda-python calls return ``(err, *values)``; raise on an error, return the values."""
    err, *values = result if isinstance(result, tuple) else (result,)
    if int(err) != 0:
        raise MeasurementError(f"CUDA call {what} failed: {err}")
    return values[0] if len(values) == 1 else values


class TensorRtEngine(Engine):
    name = "tensorrt"
    precisions = ("fp32", "fp16", "int8")
    devices = ("gpu",)
    install_hint = "pip install tensorrt cuda-python, or pip install 'hwnas[tensorrt]'"
    options_spec = {
        "gpu": OptionSpec((int,), doc="CUDA device index"),
        "workspace_mb": OptionSpec((int,), latency_relevant=False),
        "allow_fp16_fallback": OptionSpec((bool,), doc="INT8: let non-quantized layers run in FP16"),
        "builder_optimization_level": OptionSpec((int,), (0, 1, 2, 3, 4, 5)),
    }

    @classmethod
    def availability(cls, target: Any = None) -> str | None:
        try:
            import tensorrt  # noqa: F401
        except ImportError:
            return "engine tensorrt is not installed"
        try:
            cudart = _cudart()
        except ImportError:
            return "cuda-python is not installed (TensorRT timing needs it)"
        err, count = cudart.cudaGetDeviceCount()
        if int(err) != 0 or count < 1:
            return "no CUDA GPU is visible"
        index = int(target.options.get("gpu", 0)) if target is not None else 0
        if index >= count:
            return f"CUDA GPU {index} does not exist ({count} visible)"
        return None

    def __init__(self, target: Any) -> None:
        super().__init__(target)
        import tensorrt as trt

        self._trt = trt
        self._cudart = _cudart()
        self.gpu = int(target.options.get("gpu", 0))
        _check(self._cudart.cudaSetDevice(self.gpu), "cudaSetDevice")
        self._logger = trt.Logger(trt.Logger.ERROR)
        self._runtime = trt.Runtime(self._logger)

    def version(self) -> str:
        return str(self._trt.__version__)

    def model_format(self) -> str:
        return "int8_sym" if self.target.precision == "int8" else "fp32"

    def hardware(self) -> dict[str, Any]:
        hw = super().hardware()
        prop = _check(self._cudart.cudaGetDeviceProperties(self.gpu), "cudaGetDeviceProperties")
        name = prop.name.decode("utf-8", "replace") if isinstance(prop.name, bytes) else str(prop.name)
        hw["gpu"] = {
            "name": name.strip("\x00 "),
            "compute_capability": f"{prop.major}.{prop.minor}",
            "memory_mb": int(prop.totalGlobalMem) // (1 << 20),
        }
        return hw

    def fingerprint_options(self) -> dict[str, Any]:
        opts = super().fingerprint_options()
        opts.setdefault("builder_optimization_level", 3)
        if self.target.precision == "int8":
            opts.setdefault("allow_fp16_fallback", True)
        return opts

    def build(self, path: str, timing_cache: str | os.PathLike[str] | None = None) -> Any:
        """Parse the ONNX file and build a serialized engine for the target's precision.

        ``timing_cache``: a TensorRT timing-cache file, read when it exists and written back
        with this build's layer timings (later builds of similar networks skip re-timing).
        """
        trt = self._trt
        builder = trt.Builder(self._logger)
        flags = 0
        int8_flag = getattr(trt.BuilderFlag, "INT8", None)
        if self.target.precision == "int8" and int8_flag is None:
            flags |= 1 << int(trt.NetworkDefinitionCreationFlag.STRONGLY_TYPED)
        elif hasattr(trt.NetworkDefinitionCreationFlag, "EXPLICIT_BATCH") and trt.__version__.startswith("8."):
            flags |= 1 << int(trt.NetworkDefinitionCreationFlag.EXPLICIT_BATCH)  # TensorRT 8 needs it
        network = builder.create_network(flags)
        parser = trt.OnnxParser(network, self._logger)
        if not parser.parse_from_file(path):
            errors = "; ".join(str(parser.get_error(i)) for i in range(parser.num_errors)) or "unknown error"
            raise MeasurementError(f"{path}: TensorRT's ONNX parser failed: {errors.splitlines()[0]}")
        config = builder.create_builder_config()
        config.set_memory_pool_limit(
            trt.MemoryPoolType.WORKSPACE, int(self.target.options.get("workspace_mb", 1024)) << 20
        )
        if hasattr(config, "builder_optimization_level"):
            config.builder_optimization_level = int(self.target.options.get("builder_optimization_level", 3))
        if self.target.precision == "fp16":
            fp16_flag = getattr(trt.BuilderFlag, "FP16", None)
            if fp16_flag is None:
                raise MeasurementError(
                    f"{path}: this TensorRT ({trt.__version__}) builds strongly typed networks "
                    f"only; precision fp16 needs FP16 ONNX models"
                )
            config.set_flag(fp16_flag)
        elif self.target.precision == "int8" and int8_flag is not None:
            config.set_flag(int8_flag)
            if self.target.options.get("allow_fp16_fallback", True):
                config.set_flag(trt.BuilderFlag.FP16)
        cache = None
        if timing_cache is not None:
            blob = b""
            if os.path.isfile(timing_cache):
                with open(timing_cache, "rb") as fh:
                    blob = fh.read()
            cache = config.create_timing_cache(blob)
            config.set_timing_cache(cache, ignore_mismatch=False)
        serialized = builder.build_serialized_network(network, config)
        if serialized is None:
            raise MeasurementError(f"{path}: TensorRT could not build an engine for precision {self.target.precision}")
        if cache is not None and timing_cache is not None:
            tmp = f"{os.fspath(timing_cache)}.tmp"
            with open(tmp, "wb") as fh:
                fh.write(memoryview(config.get_timing_cache().serialize()))
            os.replace(tmp, timing_cache)
        return serialized

    def load(self, path: str | os.PathLike[str]) -> Runner:
        """An ONNX model (built for the target) or a serialized engine (``.plan`` / ``.engine``)."""
        return _TrtRunner(self, os.fspath(path))


class _TrtRunner(Runner):
    def __init__(self, engine: TensorRtEngine, path: str) -> None:
        import numpy as np

        trt, cudart = engine._trt, engine._cudart
        self._cudart = cudart
        self._buffers: list[int] = []
        self._address: dict[str, int] = {}
        self.stream = None
        if path.endswith((".plan", ".engine")):
            with open(path, "rb") as fh:
                serialized = fh.read()
        else:
            serialized = engine.build(path)
        self.engine = engine._runtime.deserialize_cuda_engine(serialized)
        if self.engine is None:
            raise MeasurementError(f"{path}: TensorRT could not deserialize the engine it built")
        self.context = self.engine.create_execution_context()
        self.stream = _check(cudart.cudaStreamCreate(), "cudaStreamCreate")
        self._stream_handle = int(self.stream)  # TensorRT takes the raw cudaStream_t handle
        ins, outs = [], []
        for i in range(self.engine.num_io_tensors):
            name = self.engine.get_tensor_name(i)
            shape = tuple(int(d) for d in self.engine.get_tensor_shape(name))
            dtype = np.dtype(trt.nptype(self.engine.get_tensor_dtype(name)))
            spec = TensorSpec(name, shape, dtype.name)
            nbytes = max(int(np.prod(shape)) * dtype.itemsize, 1)
            ptr = int(_check(cudart.cudaMalloc(nbytes), "cudaMalloc"))
            self._buffers.append(ptr)
            self._address[name] = ptr
            self.context.set_tensor_address(name, ptr)
            if self.engine.get_tensor_mode(name) == trt.TensorIOMode.INPUT:
                host = np.ascontiguousarray(random_input(spec, seed=i))
                _check(
                    cudart.cudaMemcpy(ptr, host.ctypes.data, nbytes, cudart.cudaMemcpyKind.cudaMemcpyHostToDevice),
                    "cudaMemcpy",
                )
                ins.append(spec)
            else:
                outs.append(spec)
        self.inputs, self.outputs = tuple(ins), tuple(outs)
        self()
        self.sync()

    def __call__(self) -> None:
        if not self.context.execute_async_v3(self._stream_handle):
            raise MeasurementError("TensorRT execute_async_v3 failed")

    def sync(self) -> None:
        _check(self._cudart.cudaStreamSynchronize(self.stream), "cudaStreamSynchronize")

    def infer(self, x: Any) -> Any:
        """Run one inference on ``x`` (exactly the first input's shape) and return the first
        output as a numpy array (for accuracy checks; timing uses ``__call__``)."""
        import numpy as np

        cudart = self._cudart
        inp, out = self.inputs[0], self.outputs[0]
        x = np.ascontiguousarray(x, dtype=inp.dtype)
        if tuple(x.shape) != inp.shape:
            raise MeasurementError(f"TensorRT engine input {inp.name!r} has shape {inp.shape}, got {tuple(x.shape)}")
        _check(
            cudart.cudaMemcpy(
                self._address[inp.name], x.ctypes.data, x.nbytes, cudart.cudaMemcpyKind.cudaMemcpyHostToDevice
            ),
            "cudaMemcpy",
        )
        self()
        self.sync()
        y = np.empty(out.shape, dtype=out.dtype)
        _check(
            cudart.cudaMemcpy(
                y.ctypes.data, self._address[out.name], y.nbytes, cudart.cudaMemcpyKind.cudaMemcpyDeviceToHost
            ),
            "cudaMemcpy",
        )
        return y

    def close(self) -> None:
        for ptr in self._buffers:
            self._cudart.cudaFree(ptr)
        self._buffers.clear()
        if self.stream is not None:
            self._cudart.cudaStreamDestroy(self.stream)
            self.stream = None
        self.context = None
        self.engine = None
