"""Calibration observers: they watch float tensors and propose a quantization range.

* :class:`MinMaxObserver`: the smallest and largest value seen.
* :class:`PercentileObserver`: the ``p``-th percentile of the magnitude distribution on each side
  (outliers beyond it are clipped).
* :class:`MSEObserver`: the clipping range that minimises the expected squared quantization
  error (rounding plus clipping) of the values seen.

Percentile and MSE keep a seeded random sample of the observed values (200k by default), so memory
does not grow with the amount of calibration data and the statistics use exact values. Weights use :func:`weight_scales`, which
works per output channel directly on the tensor.
"""

from __future__ import annotations

import math
from abc import ABC, abstractmethod

import torch
import torch.nn as nn

from hwnas.errors import UnknownNameError
from quant.functional import MIN_SCALE, qparams_from_range

__all__ = [
    "MSEObserver",
    "MinMaxObserver",
    "Observer",
    "PercentileObserver",
    "SamplingObserver",
    "create_observer",
    "weight_scales",
]


class Observer(nn.Module, ABC):
    """Base class: call it on float tensors, then ask :meth:`compute_range`."""

    min_val: torch.Tensor  # buffers
    max_val: torch.Tensor

    def __init__(self) -> None:
        super().__init__()
        self.register_buffer("min_val", torch.tensor(float("inf")))
        self.register_buffer("max_val", torch.tensor(float("-inf")))

    @property
    def has_data(self) -> bool:
        """Whether at least one finite value was observed."""
        return bool(torch.isfinite(self.min_val)) and bool(torch.isfinite(self.max_val))

    def reset(self) -> None:
        """Forget everything seen so far."""
        self.min_val.fill_(float("inf"))
        self.max_val.fill_(float("-inf"))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        """Record ``x`` and return it unchanged."""
        with torch.no_grad():
            v = x.detach().float()
            if v.numel():
                self.min_val.copy_(torch.minimum(self.min_val, v.min()))
                self.max_val.copy_(torch.maximum(self.max_val, v.max()))
                self._observe(v)
        return x

    def _observe(self, x: torch.Tensor) -> None:  # noqa: B027 - optional hook
        """Subclass hook, called with every non-empty batch after min/max are updated."""

    @abstractmethod
    def compute_range(self, qmin: int, qmax: int, symmetric: bool) -> tuple[float, float]:
        """The ``(lo, hi)`` range to quantize (``lo <= 0 <= hi``)."""


class MinMaxObserver(Observer):
    """Range = the extreme values seen."""

    def compute_range(self, qmin: int, qmax: int, symmetric: bool) -> tuple[float, float]:
        return min(0.0, float(self.min_val)), max(0.0, float(self.max_val))


class SamplingObserver(Observer):
    """Keeps a seeded random sample (at most ``max_samples`` values) of everything it observed.

    Percentiles and quantization errors are then computed on exact values rather than on
    histogram bins, whose width (a fraction of the largest outlier) can exceed the very range
    being searched for. Each batch contributes in proportion to its size.
    """

    samples: torch.Tensor  # buffers: the kept values, their random keys, how many values were seen
    keys: torch.Tensor
    seen: torch.Tensor

    def __init__(self, max_samples: int = 200_000, seed: int = 0) -> None:
        super().__init__()
        self.max_samples = max_samples
        self._gen = torch.Generator().manual_seed(seed)
        self.register_buffer("samples", torch.zeros(0), persistent=False)
        self.register_buffer("keys", torch.zeros(0), persistent=False)
        self.register_buffer("seen", torch.tensor(0, dtype=torch.int64), persistent=False)

    def reset(self) -> None:
        super().reset()
        self.samples = torch.zeros(0, device=self.samples.device)
        self.keys = torch.zeros(0, device=self.keys.device)
        self.seen.zero_()

    def _observe(self, x: torch.Tensor) -> None:
        # bottom-k sampling: every value gets a uniform random key, the smallest keys are kept,
        # which is a uniform sample without replacement of everything seen so far
        flat = x.reshape(-1).float()
        keys = torch.rand(flat.numel(), generator=self._gen).to(flat.device)
        if self.samples.numel() >= self.max_samples:
            mask = keys < self.keys.max()
            flat, keys = flat[mask], keys[mask]
        values = torch.cat([self.samples, flat])
        all_keys = torch.cat([self.keys, keys])
        if values.numel() > self.max_samples:
            idx = torch.topk(all_keys, self.max_samples, largest=False).indices
            values, all_keys = values[idx], all_keys[idx]
        self.samples, self.keys = values, all_keys
        self.seen += x.numel()


class PercentileObserver(SamplingObserver):
    """Range = the ``percentile``-th percentile of the values on each side of zero (of ``|x|`` when symmetric)."""

    def __init__(self, percentile: float = 99.99, max_samples: int = 200_000) -> None:
        super().__init__(max_samples)
        self.percentile = percentile

    def compute_range(self, qmin: int, qmax: int, symmetric: bool) -> tuple[float, float]:
        if not self.has_data or self.samples.numel() == 0:
            return 0.0, 0.0
        q = self.percentile / 100.0
        x = self.samples.double()
        if symmetric:
            amax = float(torch.quantile(x.abs(), q))
            return -amax, amax
        lo = float(torch.quantile(x, 1.0 - q)) if float(self.min_val) < 0 else 0.0
        hi = float(torch.quantile(x, q)) if float(self.max_val) > 0 else 0.0
        return min(0.0, lo), max(0.0, hi)


class MSEObserver(SamplingObserver):
    """Range = the shrunk min/max range minimising the quantization MSE of the sampled values.

    Candidates scale the observed range by ``candidates`` log-spaced factors in ``[min_ratio, 1]``;
    each is scored by the mean squared error of rounding and clipping the sample.
    """

    def __init__(self, candidates: int = 80, min_ratio: float = 0.01, max_samples: int = 200_000) -> None:
        super().__init__(max_samples)
        self.candidates = candidates
        self.min_ratio = min_ratio

    def compute_range(self, qmin: int, qmax: int, symmetric: bool) -> tuple[float, float]:
        if not self.has_data or self.samples.numel() == 0:
            return 0.0, 0.0
        lo0 = min(0.0, float(self.min_val))
        hi0 = max(0.0, float(self.max_val))
        if symmetric:
            amax = max(-lo0, hi0)
            lo0, hi0 = -amax, amax
        if hi0 - lo0 <= 0:
            return 0.0, 0.0
        x = self.samples
        ratios = torch.logspace(math.log10(self.min_ratio), 0.0, self.candidates).tolist()
        best, best_err = (lo0, hi0), float("inf")
        for r in ratios:
            lo, hi = lo0 * r, hi0 * r
            scale, zero = qparams_from_range(lo, hi, qmin, qmax, symmetric=symmetric)
            s, z = float(scale), float(zero)
            q = torch.clamp(torch.round(x / s) + z, qmin, qmax)
            err = float(((q - z) * s - x).pow(2).mean())
            if err < best_err:
                best, best_err = (lo, hi), err
        return best


def create_observer(name: str, *, percentile: float = 99.99) -> Observer:
    """An activation observer by name: ``"minmax"``, ``"percentile"`` or ``"mse"``."""
    if name == "minmax":
        return MinMaxObserver()
    if name == "percentile":
        return PercentileObserver(percentile)
    if name == "mse":
        return MSEObserver()
    raise UnknownNameError(f"unknown observer {name!r} (known: minmax, mse, percentile)")


@torch.no_grad()
def weight_scales(weight: torch.Tensor, qmax: int = 127, method: str = "minmax", candidates: int = 50) -> torch.Tensor:
    """Per-output-channel symmetric step sizes for ``weight`` (output channels on axis 0).

    ``"minmax"``: ``max|w| / qmax``. ``"mse"``: the clipped ``max|w|`` (``candidates`` ratios in
    ``[0.5, 1]``) minimising each channel's squared quantization error. A channel of all zeros
    gets the mean step size of the other channels (1 if every channel is zero): its codes are 0
    whatever the step size, and a sensible one keeps the int32 bias exact.
    """
    w = weight.detach().float().reshape(weight.shape[0], -1)
    amax = w.abs().amax(dim=1)
    scale = amax / qmax
    if method == "mse":
        best_err = torch.full_like(amax, float("inf"))
        best = scale.clone()
        for r in torch.linspace(0.5, 1.0, candidates).tolist():
            s = (amax * r / qmax).clamp(min=MIN_SCALE)
            q = torch.clamp(torch.round(w / s[:, None]), -qmax, qmax) * s[:, None]
            err = ((q - w) ** 2).sum(dim=1)
            better = err < best_err
            best = torch.where(better, s, best)
            best_err = torch.where(better, err, best_err)
        scale = torch.where(amax > 0, best, scale)
    elif method != "minmax":
        raise UnknownNameError(f"unknown weight observer {method!r} (known: minmax, mse)")
    dead = scale <= MIN_SCALE
    if bool(dead.all()):
        return torch.ones_like(scale)
    if bool(dead.any()):
        scale = torch.where(dead, scale[~dead].mean(), scale)
    return scale
