"""The engine interface: load an ONNX model for a target and run it for timing."""

from __future__ import annotations

import contextlib
import os
from abc import ABC, abstractmethod
from collections.abc import Iterator, Mapping
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any, ClassVar

from hw_profiles.errors import EngineUnavailableError, TargetConfigError
from hw_profiles.fingerprint import Fingerprint
from hw_profiles.harness import QuietGate, Stats, measure, resolve_timer
from hw_profiles.sysinfo import cpu_info

if TYPE_CHECKING:  # pragma: no cover
    import numpy as np

    from hw_profiles.targets import Target

__all__ = ["Engine", "OptionSpec", "Runner", "TensorSpec", "pinned", "random_input"]

#: Which exported model file a (engine, precision) pair measures: ``fp32`` float models,
#: ``int8`` QDQ models with u8 activations and uint8 block inputs/outputs (onnxruntime /
#: OpenVINO CPU), ``int8_sym`` QDQ models with symmetric s8 activations and float I/O
#: (TensorRT needs zero points of 0 everywhere), ``int8_nhwc`` the ``int8`` blocks with NHWC
#: uint8 inputs/outputs (onnxruntime's CPU provider runs its INT8 kernels channels-last, so
#: that is the layout tensors have between the blocks of its networks).
MODEL_FORMATS: tuple[str, ...] = ("fp32", "int8", "int8_nhwc", "int8_sym")

#: who made the INT8 model files a fingerprint's measurements time; part of the fingerprint, so
#: that measurements of differently quantized graphs (earlier LUTs used onnxruntime's quantizer,
#: whose graph differs from the shipped one around hardswish and SE) never mix with these; the
#: revision changes with the quantizer placement (2: a cell node read by a ReLU edge and others is
#: quantized where it is made, so its conv runs as an integer kernel)
INT8_MODELS = "hwnas.quant QDQ export (the graph nas export ships), revision 2"


@dataclass(frozen=True)
class TensorSpec:
    name: str
    shape: tuple[int, ...]
    dtype: str  # numpy dtype name: float32, uint8, int8, float16, ...


@dataclass(frozen=True)
class OptionSpec:
    """An allowed engine option: its Python type(s) and, optionally, allowed values."""

    types: tuple[type, ...]
    allowed: tuple[Any, ...] | None = None
    latency_relevant: bool = True
    doc: str = ""


def random_input(spec: TensorSpec, seed: int = 0) -> np.ndarray:
    """Deterministic random data for an input tensor (values do not change latency much,
    but all-zero inputs can take short cuts in some kernels)."""
    import numpy as np

    rng = np.random.default_rng(seed)
    shape = tuple(int(d) if isinstance(d, int) and d > 0 else 1 for d in spec.shape)
    dt = np.dtype(spec.dtype)
    if dt.kind == "f":
        return rng.standard_normal(shape).astype(dt)
    info = np.iinfo(dt)
    return rng.integers(info.min, int(info.max) + 1, size=shape, dtype=dt)


class Runner(ABC):
    """One loaded model, ready to run on prepared inputs. Call it to run one inference."""

    #: True when one inference computes in the calling thread (so its CPU time is its latency).
    runs_in_caller_thread: bool = False
    inputs: tuple[TensorSpec, ...] = ()
    outputs: tuple[TensorSpec, ...] = ()

    @abstractmethod
    def __call__(self) -> None:
        """Run one inference on the prepared inputs."""

    def sync(self) -> None:
        """Wait for the inference to finish (asynchronous engines); a no-op by default."""

    def close(self) -> None:
        """Free the model's resources."""

    def __enter__(self) -> Runner:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()


class Engine(ABC):
    """An inference engine bound to one target.

    Subclasses import their library lazily (in :meth:`availability` and ``__init__``), so
    that loading targets and listing engines never imports onnxruntime, OpenVINO, TensorRT
    or torch.
    """

    name: ClassVar[str]
    precisions: ClassVar[tuple[str, ...]] = ("fp32", "int8")
    devices: ClassVar[tuple[str, ...]] = ("cpu",)
    options_spec: ClassVar[Mapping[str, OptionSpec]] = {}
    install_hint: ClassVar[str] = ""

    # -- class-level checks (no library import) ---------------------------------------------
    @classmethod
    def check_target(cls, target: Target, where: str) -> None:
        """Raise TargetConfigError when ``target`` asks for something this engine lacks."""
        if target.precision not in cls.precisions:
            raise TargetConfigError(
                f"{where}: precision {target.precision!r} is not supported by engine "
                f"{cls.name!r} (supported: {', '.join(cls.precisions)})"
            )
        if target.device not in cls.devices:
            raise TargetConfigError(
                f"{where}: device {target.device!r} is not supported by engine "
                f"{cls.name!r} (supported: {', '.join(cls.devices)})"
            )
        for key, value in target.options.items():
            spec = cls.options_spec.get(key)
            if spec is None:
                known = ", ".join(sorted(cls.options_spec)) or "none"
                raise TargetConfigError(f"{where}: options: unknown {cls.name} option {key!r} (options: {known})")
            if isinstance(value, bool) and bool not in spec.types:
                raise TargetConfigError(
                    f"{where}: options.{key}: expected {'/'.join(t.__name__ for t in spec.types)}, got {value!r}"
                )
            if not isinstance(value, spec.types):
                raise TargetConfigError(
                    f"{where}: options.{key}: expected {'/'.join(t.__name__ for t in spec.types)}, got {value!r}"
                )
            if spec.allowed is not None and value not in spec.allowed:
                raise TargetConfigError(
                    f"{where}: options.{key}: {value!r} is not one of {', '.join(map(str, spec.allowed))}"
                )

    @classmethod
    @abstractmethod
    def availability(cls, target: Target | None = None) -> str | None:
        """``None`` when the engine (and the hardware ``target`` needs) is usable here, else why not."""

    @classmethod
    def require(cls, target: Target) -> None:
        reason = cls.availability(target)
        if reason is not None:
            hint = f" ({cls.install_hint})" if cls.install_hint and "not installed" in reason else ""
            raise EngineUnavailableError(f"target {target.name!r}: {reason}{hint}", reason=reason)

    # -- instance ----------------------------------------------------------------------
    def __init__(self, target: Target) -> None:
        # targets are checked where an engine is made (target parsing knows no engine)
        self.check_target(target, target.source or f"target {target.name!r}")
        self.require(target)
        self.target = target

    @abstractmethod
    def version(self) -> str:
        """The engine library's version."""

    def hardware(self) -> dict[str, Any]:
        """Stable facts about the hardware the engine runs on (CPU by default)."""
        return {"cpu": cpu_info(), "gpu": None}

    def model_format(self) -> str:
        """Which exported model file this target measures (one of :data:`MODEL_FORMATS`)."""
        return "int8" if self.target.precision == "int8" else "fp32"

    def runs_in_caller_thread(self) -> bool:
        return False

    def timer(self) -> str:
        """The timer actually used for this target (``auto`` resolved)."""
        return resolve_timer(self.target.timer, self.runs_in_caller_thread())

    def fingerprint_options(self) -> dict[str, Any]:
        """The target options that change what is measured (defaults filled in)."""
        return {
            k: v
            for k, v in sorted(self.target.options.items())
            if self.options_spec.get(k, OptionSpec((object,))).latency_relevant
        }

    def fingerprint(self, model_format: str | None = None) -> Fingerprint:
        """What the measurements of this engine on this target are valid for."""
        info = {
            "engine": self.name,
            "engine_version": self.version(),
            "precision": self.target.precision,
            "device": self.target.device,
            "threads": self.target.threads,
            "timer": self.timer(),
            "model_format": model_format or self.model_format(),
            "options": self.fingerprint_options(),
            **self.hardware(),
        }
        if info["model_format"].startswith("int8"):
            info["int8_models"] = INT8_MODELS
        return Fingerprint(info, self.target.name)

    @abstractmethod
    def load(self, path: str | os.PathLike[str]) -> Runner:
        """Load the ONNX model at ``path`` with inputs prepared; raise MeasurementError on failure."""

    #: whether :meth:`gate` may load the probe model (engines that run ONNX files)
    supports_probe: ClassVar[bool] = True
    #: the quiet gate and the probe model it runs: made by :meth:`gate`, freed by :meth:`close`
    _gate: QuietGate | None = None
    _probe_runner: Runner | None = None

    def gate(self) -> QuietGate | None:
        """The quiet-machine gate of this engine (created once, on first use), or None."""
        cfg = self.target.measure
        if not cfg.quiet_gate or not self.supports_probe:
            return None
        if getattr(self, "_gate", None) is None:
            import tempfile

            from hw_profiles.probe import probe_model_bytes

            with tempfile.TemporaryDirectory(prefix="hwnas-probe-") as tmp:
                path = os.path.join(tmp, "probe.onnx")
                with open(path, "wb") as fh:
                    fh.write(probe_model_bytes(**self.probe_spec()))
                runner = self.load(path)
            sync = runner.sync if type(runner).sync is not Runner.sync else None

            def probe() -> None:
                runner()
                if sync is not None:
                    sync()

            from hw_profiles.noise_cache import load_quiet_level

            self._probe_runner = runner
            self._gate = QuietGate(
                probe,
                self.timer(),
                sigmas=cfg.gate_sigmas,
                tolerance=cfg.gate_tolerance,
                max_wait_s=cfg.gate_max_wait_s,
                known_quiet_ms=load_quiet_level(self.probe_key()),
            )
        return self._gate

    def probe_key(self) -> str:
        """What the probe's quiet level depends on: this machine, engine, threads, timer, probe."""
        spec = ",".join(f"{k}={v}" for k, v in sorted(self.probe_spec().items()))
        return f"{self.fingerprint('fp32').id}|{spec}"

    def probe_spec(self) -> dict[str, Any]:
        """The probe model's arguments: the arithmetic of the models this target measures
        (a QDQ convolution for INT8 targets, symmetric when the target's INT8 format is)."""
        if self.target.precision != "int8":
            return {"precision": "fp32"}
        return {"precision": "int8_sym" if self.model_format() == "int8_sym" else "int8", "channels": 32, "size": 14}

    def noise_report(self) -> dict[str, Any] | None:
        """The host's noise model and the quiet gate's activity so far (None without a gate)."""
        gate = getattr(self, "_gate", None)
        return gate.report() if gate is not None else None

    def measure(self, runner: Runner) -> Stats:
        """Time ``runner`` with the target's harness settings."""
        sync = runner.sync if type(runner).sync is not Runner.sync else None
        with pinned(self.target.affinity):
            return measure(runner, self.timer(), self.target.measure, sync=sync, gate=self.gate())

    def measure_file(self, path: str | os.PathLike[str]) -> Stats:
        """Load, time and free one model file."""
        with pinned(self.target.affinity):
            runner = self.load(path)
            try:
                return self.measure(runner)
            finally:
                runner.close()

    def close(self) -> None:
        """Free engine-wide resources (the probe model, builders, contexts); remember the probe's
        quiet level on this host when the gate watched it long enough (:mod:`hw_profiles.noise_cache`)."""
        gate = getattr(self, "_gate", None)
        if gate is not None and gate.real_buckets() >= 20:
            from hw_profiles.noise_cache import save_quiet_level

            save_quiet_level(self.probe_key(), gate.baseline)
        runner = getattr(self, "_probe_runner", None)
        if runner is not None:
            runner.close()
            self._probe_runner = None
        self._gate = None


@contextlib.contextmanager
def pinned(affinity: tuple[int, ...] | None) -> Iterator[None]:
    """Pin the calling thread to ``affinity[0]`` while inside (no-op without affinity or on
    platforms without ``sched_setaffinity``); the previous mask is restored on exit."""
    if not affinity or not hasattr(os, "sched_setaffinity"):
        yield
        return
    before = os.sched_getaffinity(0)
    try:
        os.sched_setaffinity(0, {affinity[0]})
    except OSError as exc:
        raise TargetConfigError(f"affinity: cannot pin to CPU {affinity[0]} ({exc.strerror})") from None
    try:
        yield
    finally:
        os.sched_setaffinity(0, before)
