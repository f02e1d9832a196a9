"""Fake-quantization modules: activation and weight quantizers, and the quantized Conv2d / Linear.

An :class:`ActFakeQuant` quantizes one activation tensor per tensor; a :class:`WeightFakeQuant`
holds one step size per output channel of a weight. Both start uninitialized; calibration
(:func:`quant.calibrate`) or the first training batch (the global batch under data-parallel
training) gives them their range, after which their step sizes (and, for LSQ+, the zero point)
are learnable parameters.

With gradients enabled they use the explicit LSQ/LSQ+ formulation of :mod:`quant.functional`;
without (evaluation, export) they call torch's fused fake-quant kernels, which the ONNX exporter
turns into ``QuantizeLinear``/``DequantizeLinear`` pairs carrying exactly these step sizes.
"""

from __future__ import annotations

from typing import ClassVar

import torch
import torch.nn as nn
import torch.nn.functional as F

from quant.functional import (
    MIN_SCALE,
    bn_fold_factors,
    fake_quantize,
    lsq_grad_factor,
    qparams_from_range,
    quantize_weight,
)
from quant.observers import Observer, create_observer, weight_scales
from quant.scheme import QuantScheme

__all__ = ["ActFakeQuant", "QuantConv2d", "QuantLinear", "WeightFakeQuant"]


class _InitFlag(nn.Module):
    """An ``initialized`` buffer (saved in state dicts) mirrored by a Python bool, so that the
    forward pass never synchronises with an accelerator just to read it."""

    #: the quantizers are leaves of :func:`quant._graph.symbolic_trace` (see ``FX_LEAF_ATTR`` there)
    fx_leaf: ClassVar[bool] = True
    initialized: torch.Tensor  # a buffer

    def __init__(self) -> None:
        super().__init__()
        self.register_buffer("initialized", torch.tensor(False))
        self._ready = False

    @property
    def is_initialized(self) -> bool:
        """Whether the quantizer has a range (from calibration, QAT or a loaded state dict)."""
        return self._ready

    def _mark_initialized(self) -> None:
        self.initialized.fill_(True)
        self._ready = True

    def _load_from_state_dict(self, state_dict, prefix, *args, **kwargs):  # noqa: ANN001, ANN002, ANN003, ANN202
        super()._load_from_state_dict(state_dict, prefix, *args, **kwargs)
        self._ready = bool(self.initialized)


def _batch_range(x: torch.Tensor) -> tuple[float, float]:
    """``(min, max)`` of ``x``; inside a running ``torch.distributed`` job, of the whole global
    batch (every process holds its shard of it and calls this at the same point of the same
    forward pass, as data-parallel training does), so that a quantizer initialised from its first
    training batch takes the same range in every process and the same as one process would."""
    lo, hi = x.detach().min(), x.detach().max()
    dist = torch.distributed
    if dist.is_available() and dist.is_initialized() and dist.get_world_size() > 1:
        t = torch.stack([-lo, hi]).float()
        dist.all_reduce(t, op=dist.ReduceOp.MAX)
        lo, hi = -t[0], t[1]
    return float(lo), float(hi)


class ActFakeQuant(_InitFlag):
    """Per-tensor activation quantizer with an observer and LSQ / LSQ+ learnable parameters.

    Args:
        scheme: gives the code range (u8 asymmetric or s8 symmetric), observer and QAT method.
        nonnegative: the input is known to be ``>= 0`` (after ReLU, ReLU6, sigmoid...): the zero
            point is pinned to the lowest code, which lets engines drop a preceding ReLU.
        max_value: an upper bound of the input (6 after ReLU6): the step size is capped so that the
            quantized range stays inside it, which lets onnxruntime drop a preceding ``Clip``.
    """

    def __init__(self, scheme: QuantScheme, *, nonnegative: bool = False, max_value: float | None = None) -> None:
        super().__init__()
        self.qmin, self.qmax = scheme.activation_qrange
        self.symmetric = scheme.activation_symmetric
        self.nonnegative = nonnegative
        self.max_value = max_value
        if self.symmetric:
            self.pinned_zero_point: float | None = 0.0
        elif nonnegative:
            self.pinned_zero_point = float(self.qmin)
        else:
            self.pinned_zero_point = None
        self.learn_zero_point = scheme.qat_method == "lsq+" and self.pinned_zero_point is None
        self.scale = nn.Parameter(torch.tensor(1.0))
        self.zero_point = nn.Parameter(torch.tensor(self.pinned_zero_point or 0.0), requires_grad=self.learn_zero_point)
        self.observer: Observer = create_observer(scheme.activation_observer, percentile=scheme.percentile)
        self.observing = False
        self.fake_quant_enabled = True
        self.export_mode = False
        self._export_qparams: tuple[torch.Tensor, torch.Tensor] = (torch.ones(()), torch.zeros((), dtype=torch.int32))

    def set_export_mode(self, enabled: bool) -> None:
        """Freeze the current step size and zero point as constants for ONNX export (or undo)."""
        scale, zero = self.qparams()
        device = self.scale.device
        self._export_qparams = (
            torch.tensor(scale, dtype=torch.float32, device=device),
            torch.tensor(zero, dtype=torch.int32, device=device),
        )
        self.export_mode = enabled and self.fake_quant_enabled

    # -- parameters -------------------------------------------------------------------------------
    def effective_scale(self) -> torch.Tensor:
        """The step size used in the forward pass (clamped positive, capped by ``max_value``)."""
        s = self.scale.clamp(min=MIN_SCALE)
        if self.max_value is not None:
            zp = self.pinned_zero_point if self.pinned_zero_point is not None else float(self.qmin)
            s = s.clamp(max=self.max_value / float(self.qmax - zp))
        return s

    def effective_zero_point(self) -> torch.Tensor:
        """The integer zero point used in the forward pass (a float tensor holding an integer)."""
        if self.pinned_zero_point is not None:
            return torch.tensor(self.pinned_zero_point, device=self.scale.device)
        return torch.round(self.zero_point.detach()).clamp(self.qmin, self.qmax)

    def qparams(self) -> tuple[float, int]:
        """``(scale, zero_point)`` as Python numbers, exactly as exported."""
        return float(self.effective_scale().detach()), int(self.effective_zero_point())

    @torch.no_grad()
    def set_range(self, lo: float, hi: float) -> None:
        """Set the step size and zero point to cover ``[lo, hi]`` and mark the quantizer initialized."""
        if self.nonnegative:
            lo = 0.0
        if self.max_value is not None:
            hi = min(hi, self.max_value)
        scale, zero = qparams_from_range(lo, hi, self.qmin, self.qmax, symmetric=self.symmetric)
        self.scale.copy_(scale)
        self.zero_point.copy_(torch.tensor(self.pinned_zero_point) if self.pinned_zero_point is not None else zero)
        self._mark_initialized()

    def compute_qparams(self) -> bool:
        """Turn the observer's statistics into step size and zero point; False if it saw nothing."""
        if not self.observer.has_data:
            return False
        lo, hi = self.observer.compute_range(self.qmin, self.qmax, self.symmetric)
        self.set_range(lo, hi)
        return True

    # -- forward ----------------------------------------------------------------------------------
    def forward(self, x: torch.Tensor) -> torch.Tensor:
        if self.export_mode:  # constants only, no data-dependent branches (torch.export traces this)
            scale, zero = self._export_qparams
            return torch.fake_quantize_per_tensor_affine(x, scale, zero, self.qmin, self.qmax)
        if self.observing:
            self.observer(x)
            return x
        if not self.fake_quant_enabled:
            return x
        if not self._ready:
            if not self.training:
                return x  # never calibrated: float pass-through (export refuses such a model)
            with torch.no_grad():
                self.set_range(*_batch_range(x))
        if not (torch.is_grad_enabled() and (self.scale.requires_grad or x.requires_grad)):
            qscale, qzero = self.qparams()
            return torch.fake_quantize_per_tensor_affine(x, qscale, qzero, self.qmin, self.qmax)
        zp: torch.Tensor | float = self.zero_point if self.learn_zero_point else float(self.effective_zero_point())
        g = lsq_grad_factor(x[0].numel() if x.dim() > 1 else x.numel(), self.qmax)
        s: torch.Tensor = self.scale
        if self.max_value is not None:
            s = torch.minimum(s, self.effective_scale().detach())
        return fake_quantize(x, s, zp, self.qmin, self.qmax, grad_factor=g)

    def extra_repr(self) -> str:
        state = "initialized" if self._ready else "uninitialized"
        s, z = self.qparams()
        return f"q=[{self.qmin},{self.qmax}], scale={s:.6g}, zero_point={z}, {state}"


class WeightFakeQuant(_InitFlag):
    """Per-output-channel symmetric weight quantizer (codes ``±qmax``) with LSQ step sizes.

    ``forward(weight)`` accepts a weight with fewer output channels than the quantizer holds
    (a supernet's slice of its largest weight): the first ``weight.shape[0]`` step sizes are used.
    """

    def __init__(self, num_channels: int, scheme: QuantScheme) -> None:
        super().__init__()
        self.qmax = scheme.weight_qmax
        self.method = scheme.weight_observer
        self.scale = nn.Parameter(torch.ones(num_channels))
        self.fake_quant_enabled = True
        self.export_mode = False

    def set_export_mode(self, enabled: bool) -> None:
        """Export mode: the forward emits one per-channel Q/DQ pair (the exporter snaps the weight first)."""
        self.export_mode = enabled and self.fake_quant_enabled

    @torch.no_grad()
    def init_from(self, weight: torch.Tensor) -> None:
        """Set the step sizes from ``weight`` (min-max or MSE per channel, as the scheme says)."""
        s = weight_scales(weight, self.qmax, self.method)
        self.scale[: s.numel()].copy_(s)
        self._mark_initialized()

    @torch.no_grad()
    def select(self, channels: int | torch.Tensor) -> WeightFakeQuant:
        """A new quantizer holding the step sizes of some output channels (a copy, same state).

        ``channels`` is a count (the first ``channels``, as :meth:`forward` slices) or an index
        tensor; a supernet uses it when it extracts a standalone subnet for export.
        """
        idx = torch.arange(int(channels)) if isinstance(channels, int) else torch.as_tensor(channels).long()
        new = WeightFakeQuant.__new__(WeightFakeQuant)
        _InitFlag.__init__(new)
        new.qmax, new.method = self.qmax, self.method
        new.scale = nn.Parameter(
            self.scale.detach()[idx.to(self.scale.device)].clone(), requires_grad=self.scale.requires_grad
        )
        new.fake_quant_enabled, new.export_mode = self.fake_quant_enabled, False
        if self._ready:
            new._mark_initialized()
        return new

    def effective_scale(self, channels: int | None = None) -> torch.Tensor:
        """Step sizes of the first ``channels`` output channels, clamped positive."""
        s = self.scale if channels is None or channels == self.scale.numel() else self.scale[:channels]
        return s.clamp(min=MIN_SCALE)

    def forward(self, weight: torch.Tensor) -> torch.Tensor:
        c = weight.shape[0]
        if self.export_mode:
            # the exporter has set ``scale`` to the effective step sizes and snapped the weight
            zero = torch.zeros(c, dtype=torch.int32, device=weight.device)
            return torch.fake_quantize_per_channel_affine(weight, self.scale.detach(), zero, 0, -128, 127)
        if not self.fake_quant_enabled:
            return weight
        if not self._ready:
            self.init_from(weight)
        if not (torch.is_grad_enabled() and (self.scale.requires_grad or weight.requires_grad)):
            s = self.effective_scale(c).detach().float()
            zero = torch.zeros(c, dtype=torch.int32, device=weight.device)
            return torch.fake_quantize_per_channel_affine(weight, s, zero, 0, -self.qmax, self.qmax)
        s = self.scale if c == self.scale.numel() else self.scale[:c]
        return quantize_weight(weight, s, self.qmax, grad_factor=lsq_grad_factor(weight[0].numel(), self.qmax))

    def extra_repr(self) -> str:
        state = "initialized" if self._ready else "uninitialized"
        return f"channels={self.scale.numel()}, q=[-{self.qmax},{self.qmax}], {state}"


class _DeployedBias:
    """Mixin for quantized layers: emulate the int32 bias of the deployed integer kernel.

    Engines store a conv's (BN-folded) bias as int32 codes of step ``input_scale · weight_scale``;
    rounding it moves the output by up to half that step, enough to flip output codes. Once the
    layer knows its input quantizer (and the batch norm that follows it, if any), the forward
    pass adds exactly that rounding (straight-through: no gradient) so that the fake-quant model
    computes what the exported INT8 model computes. :func:`quant.prepare` binds these; a
    supernet binds its own layers with :meth:`bind`.
    """

    weight_quant: WeightFakeQuant
    bias: torch.Tensor | None  # as nn.Conv2d / nn.Linear declare it (a Parameter or None)

    def bind(self, input_quant: ActFakeQuant | None, bn: nn.modules.batchnorm._BatchNorm | None = None) -> None:
        """Declare the quantizer feeding this layer and the batch norm it feeds (or ``None``)."""
        # plain attributes, not submodules: the modules are registered where they live
        object.__setattr__(self, "_input_quant", input_quant)
        object.__setattr__(self, "_bn", bn)

    def _emulated_bias(self, w_q: torch.Tensor) -> torch.Tensor | None:
        aq: ActFakeQuant | None = self.__dict__.get("_input_quant")
        bn = self.__dict__.get("_bn")
        wq = self.weight_quant
        if (
            aq is None
            or not aq.is_initialized
            or aq.observing
            or not aq.fake_quant_enabled
            or wq.export_mode
            or not wq.fake_quant_enabled
            or not wq.is_initialized
        ):
            return self.bias
        if bn is not None and (bn.training or bn.running_var is None):
            return self.bias  # batch statistics: the deployed bias is not defined yet
        if self.bias is None and bn is None:
            return None
        c = w_q.shape[0]
        with torch.no_grad():
            step = aq.effective_scale().detach() * wq.effective_scale(c).detach()
            alive = w_q.detach().reshape(c, -1).abs().amax(dim=1) > 0  # dead channels export an exact bias
            b = self.bias.detach() if self.bias is not None else torch.zeros(c, device=w_q.device)
            if bn is not None:
                f, shift = bn_fold_factors(bn)
                folded = b * f + shift
                fstep = step * f.abs()
                ok = alive & (fstep > 0)
                target = torch.round(folded / torch.where(ok, fstep, torch.ones_like(fstep))) * fstep
                corr = torch.where(ok, (target - folded) / torch.where(ok, f, torch.ones_like(f)), torch.zeros_like(f))
            else:
                target = torch.round(b / step) * step
                corr = torch.where(alive, target - b, torch.zeros_like(b))
        return (self.bias + corr) if self.bias is not None else corr


class QuantConv2d(_DeployedBias, nn.Conv2d):
    """``nn.Conv2d`` whose weight passes through a :class:`WeightFakeQuant` (and whose bias is
    rounded like the deployed int32 bias once :meth:`bind` is called)."""

    weight_quant: WeightFakeQuant

    @classmethod
    def from_float(cls, conv: nn.Conv2d, scheme: QuantScheme) -> QuantConv2d:
        """Wrap ``conv`` (sharing its parameters) with a weight quantizer for ``scheme``."""
        new = cls.__new__(cls)
        nn.Module.__init__(new)
        new.__dict__.update(
            {k: v for k, v in conv.__dict__.items() if k not in ("_parameters", "_buffers", "_modules")}
        )
        new._parameters = dict(conv._parameters)
        new._buffers = dict(conv._buffers)
        new._modules = dict(conv._modules)
        new.weight_quant = WeightFakeQuant(conv.out_channels, scheme)
        new.bind(None)
        return new

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        w_q = self.weight_quant(self.weight)
        return self._conv_forward(x, w_q, self._emulated_bias(w_q))


# torch infers nn.Linear.bias as a Parameter (it may be None, as _DeployedBias and nn.Conv2d declare)
class QuantLinear(_DeployedBias, nn.Linear):  # type: ignore[misc]
    """``nn.Linear`` whose weight passes through a :class:`WeightFakeQuant` (bias as in :class:`QuantConv2d`)."""

    weight_quant: WeightFakeQuant

    @classmethod
    def from_float(cls, linear: nn.Linear, scheme: QuantScheme) -> QuantLinear:
        """Wrap ``linear`` (sharing its parameters) with a weight quantizer for ``scheme``."""
        new = cls.__new__(cls)
        nn.Module.__init__(new)
        new.__dict__.update(
            {k: v for k, v in linear.__dict__.items() if k not in ("_parameters", "_buffers", "_modules")}
        )
        new._parameters = dict(linear._parameters)
        new._buffers = dict(linear._buffers)
        new._modules = dict(linear._modules)
        new.weight_quant = WeightFakeQuant(linear.out_features, scheme)
        new.bind(None)
        return new

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        w_q = self.weight_quant(self.weight)
        return F.linear(x, w_q, self._emulated_bias(w_q))
