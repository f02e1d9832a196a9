"""Functional fake quantization with LSQ / LSQ+ gradients.

Forward semantics are exactly ONNX ``QuantizeLinear`` followed by ``DequantizeLinear``::

    q = clamp(round_half_even(x / scale) + zero_point, qmin, qmax)
    y = (q - zero_point) * scale

Gradients follow LSQ (Esser et al., 2020) and LSQ+ (Bhalgat et al., 2020): a straight-through
estimator for ``round``; the step size receives ``round(x/s) - x/s`` inside the range and
``qmin - z`` / ``qmax - z`` where clipped; the zero point (LSQ+'s learnable offset, kept here
as an integer-rounded code so that the forward is exactly what the engine computes) receives
its gradient only where ``x`` is clipped. Both gradients are multiplied by the gradient scale
``g = 1 / sqrt(N * Qp)`` where ``N`` is the number of elements one scale covers and ``Qp`` the
largest positive code.

These functions accept sliced scales: a weight-sharing supernet passes ``scale[:cout]``.
"""

from __future__ import annotations

import math

import torch

__all__ = [
    "bn_fold_factors",
    "fake_quantize",
    "fake_quantize_op_chain",
    "grad_scale",
    "lsq_grad_factor",
    "qparams_from_range",
    "quantize_weight",
    "round_ste",
]

MIN_SCALE = 1e-8
"""Smallest step size used anywhere; a learned step size is clamped to it."""


def round_ste(x: torch.Tensor) -> torch.Tensor:
    """Round half to even in the forward pass, identity in the backward pass.

    The value is exactly ``round(x)`` (``(round(x) - x).detach() + x`` is not, by one rounding
    error, which moves values on a clamp boundary to the wrong side of it)."""
    return torch.round(x).detach() + (x - x.detach())


def grad_scale(x: torch.Tensor, factor: float) -> torch.Tensor:
    """Identity in the forward pass; multiplies the gradient by ``factor`` in the backward pass."""
    if factor == 1.0:
        return x
    scaled = x * factor
    return x.detach() + (scaled - scaled.detach())  # exactly x in value


def lsq_grad_factor(num_elements: int, qmax: int) -> float:
    """LSQ's gradient scale ``1 / sqrt(N * Qp)`` (``Qp`` = largest positive code, at least 1)."""
    return 1.0 / math.sqrt(max(1, num_elements) * max(1, qmax))


def _broadcast(t: torch.Tensor, x: torch.Tensor, axis: int | None) -> torch.Tensor:
    if axis is None or t.dim() == 0 or t.numel() == 1:
        return t.reshape(())
    shape = [1] * x.dim()
    shape[axis] = -1
    return t.reshape(shape)


def fake_quantize(
    x: torch.Tensor,
    scale: torch.Tensor,
    zero_point: torch.Tensor | float,
    qmin: int,
    qmax: int,
    *,
    axis: int | None = None,
    grad_factor: float | None = None,
) -> torch.Tensor:
    """Quantize-dequantize ``x`` with LSQ/LSQ+ gradients for ``scale`` and ``zero_point``.

    ``scale`` (and a tensor ``zero_point``) is a scalar for per-tensor quantization, or a vector
    along ``axis`` for per-channel quantization. ``zero_point`` may be a float parameter: it is
    rounded (straight-through) and clamped to ``[qmin, qmax]`` in the forward pass.
    ``grad_factor`` defaults to LSQ's ``1/sqrt(N·Qp)`` with ``N`` the elements per scale.
    """
    if grad_factor is None:
        n = x.numel() // max(1, scale.numel())
        grad_factor = lsq_grad_factor(n, qmax)
    zp = zero_point if isinstance(zero_point, torch.Tensor) else None
    z_const = 0.0 if zp is not None else float(round(zero_point))  # type: ignore[arg-type]
    return _LsqFakeQuantize.apply(x, scale, zp, z_const, qmin, qmax, axis, grad_factor)


def fake_quantize_op_chain(
    x: torch.Tensor,
    scale: torch.Tensor,
    zero_point: torch.Tensor | float,
    qmin: int,
    qmax: int,
    *,
    axis: int | None = None,
    grad_factor: float = 1.0,
) -> torch.Tensor:
    """:func:`fake_quantize` written as differentiable torch ops: the reference its fused node is
    tested and benchmarked against (same values and gradients, about twice the time)."""
    s = _broadcast(grad_scale(scale, grad_factor).clamp(min=MIN_SCALE), x, axis)
    if isinstance(zero_point, torch.Tensor):
        z: torch.Tensor | float = _broadcast(round_ste(grad_scale(zero_point, grad_factor)).clamp(qmin, qmax), x, axis)
    else:
        z = float(round(zero_point))
    q = torch.clamp(round_ste(x / s) + z, qmin, qmax)
    return (q - z) * s


class _LsqFakeQuantize(torch.autograd.Function):
    """:func:`fake_quantize` as one autograd node.

    Written out as a chain of differentiable torch ops (round with a straight-through estimator,
    clamp, gradient scaling), fake quantization costs about twenty passes over the activation
    per training step, the bulk of a QAT step on a CPU. Here the forward keeps two tensors
    for the backward pass, the in-range mask and each element's step-size gradient
    (``round(x/s) - x/s`` inside the range, ``q - z`` where clipped), and the backward is a
    masked copy and two reductions. The gradients are those of the op chain: LSQ / LSQ+ with the
    gradient scale ``g``; a code that lands on ``qmin`` or ``qmax`` counts as clipped
    (``torch.clamp``'s gradient is zero on the boundary); nothing flows to a step size below
    ``MIN_SCALE`` (it is clamped) or to a zero point that rounds outside ``[qmin, qmax]``. One
    deliberate difference: a zero point that rounds *onto* ``qmin`` or ``qmax`` keeps learning
    (the op chain's strict clamp gradient froze it there for good).
    """

    @staticmethod
    def forward(
        ctx,
        x: torch.Tensor,
        scale: torch.Tensor,
        zp: torch.Tensor | None,
        z_const: float,
        qmin: int,
        qmax: int,
        axis: int | None,
        g: float,
    ) -> torch.Tensor:
        s = _broadcast(scale.clamp(min=MIN_SCALE), x, axis).to(x.dtype)
        z: torch.Tensor | float
        if zp is not None:
            z_rounded = torch.round(zp)
            z = _broadcast(z_rounded.clamp(qmin, qmax), x, axis).to(x.dtype)
        else:
            z_rounded, z = None, z_const
        shifted = zp is not None or z_const != 0.0
        t = x / s
        u = torch.round(t)  # the code before clamping, minus z
        if shifted:
            u.add_(z)
        # strict, as torch.clamp's gradient: a code on the boundary counts as clipped
        inside = (u > qmin).logical_and_(u < qmax).to(x.dtype)
        qz = u.clamp_(qmin, qmax)
        if shifted:
            qz.sub_(z)  # q - z, exactly round(x/s) where inside (small integers)
        y = qz * s
        grad_s = torch.addcmul(qz, inside, t, value=-1.0)  # round(x/s) - x/s inside, q - z clipped
        ctx.save_for_backward(inside, grad_s, scale, z_rounded, s)
        ctx.axis, ctx.g, ctx.qmin, ctx.qmax = axis, g, qmin, qmax
        return y

    @staticmethod
    def backward(ctx, dy: torch.Tensor):
        inside, grad_s, scale, z_rounded, s = ctx.saved_tensors
        axis, g = ctx.axis, ctx.g
        dims = [d for d in range(dy.dim()) if axis is None or d != axis % dy.dim()]
        dx = dscale = dzp = None
        if ctx.needs_input_grad[0] or ctx.needs_input_grad[2]:
            dx = dy * inside
        if ctx.needs_input_grad[1]:
            ds = (dy * grad_s).sum(dims).reshape(scale.shape)
            dscale = ds.mul_(g).mul_(scale >= MIN_SCALE).to(scale.dtype)
        if ctx.needs_input_grad[2]:
            clipped = dy.sum(dims) - dx.sum(dims)  # type: ignore[union-attr]
            s_c = s.reshape(-1) if axis is not None and s.numel() > 1 else s.reshape(())
            dz = (-clipped * s_c).reshape(z_rounded.shape)
            in_range = (z_rounded >= ctx.qmin) & (z_rounded <= ctx.qmax)
            dzp = dz.mul_(g).mul_(in_range).to(z_rounded.dtype)
        return (dx if ctx.needs_input_grad[0] else None), dscale, dzp, None, None, None, None, None


def quantize_weight(
    weight: torch.Tensor,
    scale: torch.Tensor,
    qmax: int = 127,
    *,
    grad_factor: float | None = None,
) -> torch.Tensor:
    """Per-output-channel symmetric fake quantization of a (possibly sliced) weight.

    ``weight`` has its output channels on axis 0 (``Conv2d`` and ``Linear`` layouts) and
    ``scale`` one step size per output channel; a supernet passes the slices it uses, e.g.
    ``quantize_weight(w[:cout, :cin], scale[:cout])``. Codes lie in ``[-qmax, qmax]``.
    """
    if scale.numel() != weight.shape[0]:
        raise ValueError(f"scale has {scale.numel()} channels, weight has {weight.shape[0]}")
    if grad_factor is None:
        grad_factor = lsq_grad_factor(weight[0].numel(), qmax)
    return fake_quantize(weight, scale, 0.0, -qmax, qmax, axis=0, grad_factor=grad_factor)


def qparams_from_range(
    lo: torch.Tensor | float,
    hi: torch.Tensor | float,
    qmin: int,
    qmax: int,
    *,
    symmetric: bool,
) -> tuple[torch.Tensor, torch.Tensor]:
    """Step size and integer zero point covering ``[lo, hi]`` (widened to contain 0).

    A degenerate range (``lo == hi == 0``: a dead channel or tensor) gets step size 1, which
    represents the only value present, 0, exactly and keeps the int32 bias of consumers finite.
    """
    lo_t = torch.as_tensor(lo, dtype=torch.float32).clamp(max=0.0)
    hi_t = torch.as_tensor(hi, dtype=torch.float32).clamp(min=0.0)
    if symmetric:
        amax = torch.maximum(-lo_t, hi_t)
        # symmetric codes use [-qmax', qmax'] with qmax' = min(|qmin|, qmax) for exactness
        half = float(min(-qmin, qmax)) if qmin < 0 else float(qmax)
        scale = amax / half
        zero = torch.zeros_like(scale)
    else:
        scale = (hi_t - lo_t) / float(qmax - qmin)
        zero = torch.zeros_like(scale)  # placeholder, computed below
    degenerate = scale <= MIN_SCALE
    scale = torch.where(degenerate, torch.ones_like(scale), scale)
    if not symmetric:
        zero = torch.clamp(torch.round(qmin - lo_t / scale), qmin, qmax)
        zero = torch.where(degenerate, torch.full_like(zero, float(qmin if qmin >= 0 else 0)), zero)
    return scale, zero


@torch.no_grad()
def bn_fold_factors(bn: torch.nn.BatchNorm2d) -> tuple[torch.Tensor, torch.Tensor]:
    """``(f, shift)`` with ``BN(y) = y·f + shift`` per channel (BN in evaluation mode): the factors
    that batch-norm folding (:mod:`quant.fold`) and the deployed bias of a quantized conv use."""
    if bn.running_mean is None or bn.running_var is None:
        raise ValueError("batch norm without running statistics cannot be folded")
    f = torch.rsqrt(bn.running_var.float() + bn.eps)
    if bn.weight is not None:
        f = f * bn.weight.float()
    shift = -bn.running_mean.float() * f
    if bn.bias is not None:
        shift = shift + bn.bias.float()
    return f, shift
