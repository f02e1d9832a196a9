"""Quantization schemes: one object says how weights and activations are quantized for a target.

A :class:`QuantScheme` replaces scattered flags. Weights are always quantized per output
channel, symmetric, zero point 0 (``±weight_qmax``, 127 by default). Activations are quantized
per tensor, either asymmetric ``uint8`` (onnxruntime's CPU kernels prefer u8 activations with s8
weights) or symmetric ``int8`` (TensorRT needs zero point 0 everywhere).

``fused_activations`` names the activations that the target engine fuses into the producing
conv/add without needing a quantized tensor in between. For onnxruntime that is ReLU (removed
in front of a ``QuantizeLinear`` whose zero point is the lowest code) and ReLU6 (removed when
the quantized range lies inside ``[0, 6]``; the quantizer caps its scale to guarantee it). For
any other activation the pre-activation tensor is quantized as well, so that the producer still
runs as an integer kernel. TensorRT fuses every pointwise activation, so nothing extra is needed.
"""

from __future__ import annotations

import dataclasses
from dataclasses import dataclass
from typing import Literal

from hwnas.errors import ConfigError, UnknownNameError

__all__ = [
    "ORT_CPU",
    "ORT_CPU_AVX2",
    "SCHEMES",
    "TENSORRT",
    "QuantScheme",
    "cpu_flags",
    "get_scheme",
    "host_ort_scheme",
]

ActivationDType = Literal["uint8", "int8"]
ObserverName = Literal["minmax", "percentile", "mse"]
QatMethod = Literal["lsq", "lsq+"]

_ACTIVATION_NAMES = ("relu", "relu6", "hardswish", "hardsigmoid", "silu", "sigmoid", "gelu", "tanh", "leaky_relu")


@dataclass(frozen=True)
class QuantScheme:
    """How a model is quantized for one deployment target (immutable; use :meth:`replace`)."""

    name: str
    activation_dtype: ActivationDType = "uint8"
    activation_symmetric: bool = False
    weight_qmax: int = 127
    weight_observer: Literal["minmax", "mse"] = "minmax"
    activation_observer: ObserverName = "minmax"
    percentile: float = 99.99
    qat_method: QatMethod = "lsq+"
    fused_activations: frozenset[str] = frozenset({"relu", "relu6"})

    def __post_init__(self) -> None:
        if self.activation_dtype not in ("uint8", "int8"):
            raise ConfigError(
                f"scheme {self.name!r}: activation_dtype must be 'uint8' or 'int8', got {self.activation_dtype!r}"
            )
        if self.activation_symmetric and self.activation_dtype != "int8":
            raise ConfigError(f"scheme {self.name!r}: symmetric activations need activation_dtype 'int8'")
        if not 1 <= self.weight_qmax <= 127:
            raise ConfigError(f"scheme {self.name!r}: weight_qmax must be in 1..127, got {self.weight_qmax}")
        if self.weight_observer not in ("minmax", "mse"):
            raise ConfigError(f"scheme {self.name!r}: unknown weight_observer {self.weight_observer!r}")
        if self.activation_observer not in ("minmax", "percentile", "mse"):
            raise ConfigError(f"scheme {self.name!r}: unknown activation_observer {self.activation_observer!r}")
        if not 50.0 < self.percentile <= 100.0:
            raise ConfigError(f"scheme {self.name!r}: percentile must be in (50, 100], got {self.percentile}")
        if self.qat_method not in ("lsq", "lsq+"):
            raise ConfigError(f"scheme {self.name!r}: qat_method must be 'lsq' or 'lsq+', got {self.qat_method!r}")
        unknown = set(self.fused_activations) - set(_ACTIVATION_NAMES)
        if unknown:
            raise ConfigError(f"scheme {self.name!r}: unknown fused activations {sorted(unknown)}")
        object.__setattr__(self, "fused_activations", frozenset(self.fused_activations))

    @property
    def activation_qrange(self) -> tuple[int, int]:
        """``(qmin, qmax)`` of activation codes."""
        return (0, 255) if self.activation_dtype == "uint8" else (-128, 127)

    @property
    def weight_qrange(self) -> tuple[int, int]:
        """``(qmin, qmax)`` of weight codes (symmetric, zero point 0)."""
        return (-self.weight_qmax, self.weight_qmax)

    def replace(self, **changes: object) -> QuantScheme:
        """A copy with some fields changed (e.g. ``ORT_CPU.replace(activation_observer="mse")``)."""
        return dataclasses.replace(self, **changes)  # type: ignore[arg-type]


ORT_CPU = QuantScheme(name="ort_cpu", activation_dtype="uint8", activation_symmetric=False)
"""onnxruntime CPU: u8 asymmetric activations, s8 symmetric per-channel weights, ReLU/ReLU6 fused."""

TENSORRT = QuantScheme(
    name="tensorrt",
    activation_dtype="int8",
    activation_symmetric=True,
    qat_method="lsq",
    fused_activations=frozenset(_ACTIVATION_NAMES),
)
"""TensorRT: s8 symmetric activations and weights (zero point 0 everywhere), every activation fused."""

ORT_CPU_AVX2 = QuantScheme(name="ort_cpu_avx2", activation_dtype="uint8", activation_symmetric=False, weight_qmax=63)
"""onnxruntime CPU on x86 without VNNI: as :data:`ORT_CPU` with 7-bit weights (±63), exact in int16 pair sums."""

SCHEMES: dict[str, QuantScheme] = {s.name: s for s in (ORT_CPU, ORT_CPU_AVX2, TENSORRT)}


def cpu_flags() -> set[str]:
    """The CPU feature flags of this machine (from ``/proc/cpuinfo``; empty where unavailable)."""
    try:
        with open("/proc/cpuinfo", encoding="utf-8") as fh:
            for line in fh:
                if line.startswith("flags"):
                    return set(line.split(":", 1)[1].split())
    except OSError:
        pass
    return set()


def host_ort_scheme(flags: set[str] | None = None) -> QuantScheme:
    """The onnxruntime CPU preset for this machine (or for the given ``/proc/cpuinfo`` flags).

    x86 with AVX2 but no VNNI (``avx512_vnni`` / ``avx_vnni`` / AMX) gets :data:`ORT_CPU_AVX2`;
    VNNI machines, ARM and anything unknown get :data:`ORT_CPU`.
    """
    import platform

    if flags is None:
        if platform.machine().lower() not in ("x86_64", "amd64", "i686", "x86"):
            return ORT_CPU
        flags = cpu_flags()
    if flags & {"avx512_vnni", "avx_vnni", "amx_int8"}:
        return ORT_CPU
    if "avx2" in flags:
        return ORT_CPU_AVX2
    return ORT_CPU


def get_scheme(name: str | QuantScheme) -> QuantScheme:
    """Look a preset up by name (``"ort_cpu"``, ``"ort_cpu_avx2"``, ``"tensorrt"``); a scheme is returned unchanged."""
    if isinstance(name, QuantScheme):
        return name
    try:
        return SCHEMES[name]
    except KeyError:
        raise UnknownNameError(f"unknown quantization scheme {name!r} (known: {', '.join(sorted(SCHEMES))})") from None
