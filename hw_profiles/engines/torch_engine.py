"""torch eager mode (FP32 on CPU; FP32/FP16 on CUDA): a baseline engine.

torch cannot run ONNX files, so this engine measures *pt2* files: the ``torch.export``
programs (:func:`torch.export.save`) that ``nas lut export-blocks --formats pt2`` writes beside
each block's ONNX models, one per block or whole network. A program is self-contained (graph,
weights and input shape), so this engine needs torch only: no search-space code. Its module
(:meth:`torch.export.ExportedProgram.module`) runs the block's ATen ops eagerly.
"""

from __future__ import annotations

import os
from typing import TYPE_CHECKING, Any

from hw_profiles.engines.base import Engine, OptionSpec, Runner, TensorSpec
from hw_profiles.errors import MeasurementError, TargetConfigError
from hwnas.errors import first_line

if TYPE_CHECKING:  # pragma: no cover
    import torch

    from hw_profiles.targets import Target

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
    def check_target(cls, target: Target, where: str) -> None:
        super().check_target(target, where)
        if target.precision == "fp16" and target.device != "gpu":
            raise TargetConfigError(f"{where}: engine torch runs fp16 on a GPU only (device: gpu)")

    @classmethod
    def availability(cls, target: Target | None = None) -> str | None:
        try:
            import torch
        except ImportError:
            return "engine torch is not installed"
        if target is not None and target.device == "gpu" and not torch.cuda.is_available():
            return "no CUDA GPU is visible to torch"
        return None

    def __init__(self, target: Target) -> None:
        super().__init__(target)
        import torch

        self._torch = torch

    def version(self) -> str:
        return str(self._torch.__version__).split("+")[0]

    def model_format(self) -> str:
        return "pt2"

    def runs_in_caller_thread(self) -> bool:
        return self.target.device == "cpu" and self.target.threads == 1

    def hardware(self) -> dict[str, Any]:
        hw = super().hardware()
        if self.target.device == "gpu":
            hw["gpu"] = {"name": self._torch.cuda.get_device_name(int(self.target.options.get("gpu", 0)))}
        return hw

    def load(self, path: str | os.PathLike[str]) -> Runner:
        return _TorchRunner(self, os.fspath(path))


def load_program(path: str) -> tuple[torch.nn.Module, tuple[int, ...]]:
    """The runnable module and input shape (with batch) of the ``torch.export`` program saved
    at ``path``; :class:`MeasurementError` (one line) for a file that is not one, or a program
    that does not take exactly one tensor."""
    import torch

    try:
        program = torch.export.load(path)
        user_inputs = set(program.graph_signature.user_inputs)
        shapes = [
            tuple(int(d) for d in node.meta["val"].shape)
            for node in program.graph.nodes
            if node.op == "placeholder" and node.name in user_inputs
        ]
        try:  # the runner makes its input to the program's shape: no per-call shape guards to time
            module = program.module(check_guards=False)
        except TypeError:  # a torch whose ExportedProgram.module() takes no check_guards
            module = program.module()
    except Exception as exc:  # a zip that is no program, a truncated file, a newer format...
        raise MeasurementError(f"{path}: not a torch.export program file ({first_line(exc)})") from None
    if len(shapes) != 1:
        raise MeasurementError(f"{path}: the program takes {len(shapes)} tensors; a block or network takes one")
    return module, shapes[0]


class _TorchRunner(Runner):
    def __init__(self, engine: TorchEngine, path: str) -> None:
        torch = engine._torch
        module, shape = load_program(path)  # exported in eval mode (its module refuses .eval())
        torch.set_num_threads(engine.target.threads)
        device = torch.device(
            f"cuda:{int(engine.target.options.get('gpu', 0))}" if engine.target.device == "gpu" else "cpu"
        )
        dtype = torch.float16 if engine.target.precision == "fp16" else torch.float32
        self.module = module.to(device=device, dtype=dtype)
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
        self.module = self._torch.nn.Identity()  # drops the program and its weights
