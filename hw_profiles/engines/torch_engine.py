"""torch eager mode (FP32 on CPU; FP32/FP16 on CUDA): a baseline engine.

torch cannot run ONNX files, so this engine measures *spec* files: the small JSON files
that ``nas lut export-blocks`` writes beside each block's ONNX models (op, parameters,
input shape; or a space and an arch for a whole network). The module is rebuilt from the
spec with freshly initialised weights, which does not change its latency. This engine is
the one device-side engine that needs torch (and :mod:`spaces`).
"""

from __future__ import annotations

import json
import os
from typing import Any

from hw_profiles.engines.base import Engine, OptionSpec, Runner, TensorSpec
from hw_profiles.errors import MeasurementError

__all__ = ["TorchEngine"]


class TorchEngine(Engine):
    name = "torch"
    supports_probe = False
    precisions = ("fp32", "fp16")
    devices = ("cpu", "gpu")
    install_hint = "pip install torch"
    options_spec = {
        "gpu": OptionSpec((int,), doc="CUDA device index"),
        "channels_last": OptionSpec((bool,)),
    }

    @classmethod
    def check_target(cls, target: Any, where: str) -> None:
        super().check_target(target, where)
        if target.precision == "fp16" and target.device != "gpu":
            from hw_profiles.errors import TargetConfigError

            raise TargetConfigError(f"{where}: engine torch runs fp16 on a GPU only (device: gpu)")

    @classmethod
    def availability(cls, target: Any = None) -> str | None:
        try:
            import torch
        except ImportError:
            return "engine torch is not installed"
        if target is not None and target.device == "gpu" and not torch.cuda.is_available():
            return "no CUDA GPU is visible to torch"
        return None

    def __init__(self, target: Any) -> None:
        super().__init__(target)
        import torch

        self._torch = torch

    def version(self) -> str:
        return str(self._torch.__version__).split("+")[0]

    def model_format(self) -> str:
        return "spec"

    def runs_in_caller_thread(self) -> bool:
        return self.target.device == "cpu" and self.target.threads == 1

    def hardware(self) -> dict[str, Any]:
        hw = super().hardware()
        if self.target.device == "gpu":
            hw["gpu"] = {"name": self._torch.cuda.get_device_name(int(self.target.options.get("gpu", 0)))}
        return hw

    def load(self, path: str | os.PathLike[str]) -> Runner:
        return _TorchRunner(self, os.fspath(path))


def _resolved(spec: dict[str, Any]) -> Any:
    from spaces import ResolvedBlock

    params = tuple(sorted((k, v) for k, v in spec["params"].items()))
    return ResolvedBlock(
        spec.get("path", "block"),
        spec["op"],
        params,
        spec["cin"],
        spec["h"],
        spec["w"],
        spec["cout"],
        spec["h_out"],
        spec["w_out"],
    )


def build_from_spec(spec: dict[str, Any]) -> tuple[Any, tuple[int, ...]]:
    """The torch module and input shape (with batch) a spec file describes: one block, or a
    whole network given by its resolved blocks."""
    from spaces._builder import build_block, build_network

    batch = int(spec.get("batch", 1))
    if spec.get("kind") == "network":
        shape = tuple(spec["input_shape"])
        return build_network([_resolved(b) for b in spec["blocks"]], shape), (batch, *shape)
    return build_block(_resolved(spec)).eval(), (batch, spec["cin"], spec["h"], spec["w"])


class _TorchRunner(Runner):
    def __init__(self, engine: TorchEngine, path: str) -> None:
        torch = engine._torch
        try:
            with open(path, encoding="utf-8") as fh:
                spec = json.load(fh)
            module, shape = build_from_spec(spec)
        except (OSError, ValueError, KeyError, TypeError) as exc:
            raise MeasurementError(f"{path}: not a block or network spec file ({exc})") from None
        torch.set_num_threads(engine.target.threads)
        device = torch.device(
            f"cuda:{int(engine.target.options.get('gpu', 0))}" if engine.target.device == "gpu" else "cpu"
        )
        dtype = torch.float16 if engine.target.precision == "fp16" else torch.float32
        self.module = module.to(device=device, dtype=dtype).eval()
        self.x = torch.randn(shape, device=device, dtype=dtype)
        if engine.target.options.get("channels_last"):
            self.module = self.module.to(memory_format=torch.channels_last)
            self.x = self.x.contiguous(memory_format=torch.channels_last)
        self.runs_in_caller_thread = engine.runs_in_caller_thread()
        self.inputs = (TensorSpec("x", tuple(shape), "float16" if dtype == torch.float16 else "float32"),)
        self._torch = torch
        self._cuda = device.type == "cuda"
        self._ctx = torch.inference_mode()
        self._ctx.__enter__()
        self()
        self.sync()

    def __call__(self) -> None:
        self.module(self.x)

    def sync(self) -> None:
        if self._cuda:
            self._torch.cuda.synchronize()

    def close(self) -> None:
        if getattr(self, "_ctx", None) is not None:
            self._ctx.__exit__(None, None, None)
            self._ctx = None
        self.module = None
