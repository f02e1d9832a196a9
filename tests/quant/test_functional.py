from __future__ import annotations

import math

import pytest
import torch
from hypothesis import given, settings
from hypothesis import strategies as st

from quant.functional import (
    fake_quantize,
    fake_quantize_op_chain,
    grad_scale,
    lsq_grad_factor,
    qparams_from_range,
    quantize_weight,
    round_ste,
)


def test_forward_matches_torch_fake_quant_kernel() -> None:
    x = torch.randn(4, 8, 5, 5) * 3
    scale, zp = torch.tensor(0.037), torch.tensor(17.0)
    ours = fake_quantize(x, scale, zp, 0, 255)
    ref = torch.fake_quantize_per_tensor_affine(x, 0.037, 17, 0, 255)
    assert torch.allclose(ours, ref, atol=1e-6)


def test_per_channel_forward_matches_torch() -> None:
    w = torch.randn(6, 3, 3, 3)
    s = w.abs().amax((1, 2, 3)) / 127
    ours = quantize_weight(w, s)
    ref = torch.fake_quantize_per_channel_affine(w, s, torch.zeros(6, dtype=torch.int32), 0, -127, 127)
    assert torch.allclose(ours, ref, atol=1e-7)


def test_lsq_gradients_of_scale_and_input() -> None:
    s = torch.tensor(0.5, requires_grad=True)
    x = torch.tensor([0.3, 0.74, 100.0, -100.0], requires_grad=True)  # two inside, one above, one below
    y = fake_quantize(x, s, 0.0, -4, 3, grad_factor=1.0)
    y.sum().backward()
    inside = [round(0.3 / 0.5) - 0.3 / 0.5, round(0.74 / 0.5) - 0.74 / 0.5]
    assert s.grad is not None and math.isclose(float(s.grad), sum(inside) + 3 + (-4), rel_tol=1e-5)
    assert x.grad is not None and x.grad.tolist() == [1.0, 1.0, 0.0, 0.0]


def test_lsq_plus_zero_point_gets_gradient_only_where_clipped() -> None:
    s = torch.tensor(0.1)
    z = torch.tensor(10.2, requires_grad=True)
    x = torch.tensor([0.0, 0.5, 50.0])  # last one clipped at qmax
    fake_quantize(x, s, z, 0, 255, grad_factor=1.0).sum().backward()
    assert z.grad is not None and math.isclose(float(z.grad), -0.1, rel_tol=1e-5)


def test_gradient_scale_is_one_over_sqrt_n_qp() -> None:
    assert math.isclose(lsq_grad_factor(100, 127), 1 / math.sqrt(100 * 127))
    s = torch.tensor(1.0, requires_grad=True)
    grad_scale(s, 0.25).backward()
    assert float(s.grad) == 0.25
    x = torch.tensor([1.4], requires_grad=True)
    round_ste(x).backward()
    assert float(x.grad) == 1.0


def test_quantize_weight_accepts_sliced_scales_and_passes_gradients() -> None:
    full_scale = torch.full((8,), 0.01, requires_grad=True)
    w = torch.randn(8, 4, 3, 3, requires_grad=True)
    y = quantize_weight(w[:5, :2], full_scale[:5])
    assert y.shape == (5, 2, 3, 3)
    y.sum().backward()
    assert full_scale.grad is not None and torch.all(full_scale.grad[5:] == 0) and torch.any(full_scale.grad[:5] != 0)
    with pytest.raises(ValueError, match="channels"):
        quantize_weight(w, full_scale[:5])


def test_qparams_from_range_includes_zero_and_handles_degenerate_ranges() -> None:
    s, z = qparams_from_range(0.5, 2.0, 0, 255, symmetric=False)  # widened to [0, 2]
    assert math.isclose(float(s), 2.0 / 255, rel_tol=1e-6) and float(z) == 0
    s, z = qparams_from_range(-1.0, 3.0, 0, 255, symmetric=False)
    assert float(z) == round(255 / 4)
    s, z = qparams_from_range(-2.0, 1.0, -128, 127, symmetric=True)
    assert math.isclose(float(s), 2.0 / 127, rel_tol=1e-6) and float(z) == 0
    s, z = qparams_from_range(0.0, 0.0, 0, 255, symmetric=False)
    assert float(s) == 1.0 and float(z) == 0


@settings(max_examples=60, deadline=None)
@given(
    lo=st.floats(-50, 0, allow_nan=False),
    width=st.floats(1e-3, 100, allow_nan=False),
    values=st.lists(st.floats(-200, 200, allow_nan=False, width=32), min_size=1, max_size=40),
    symmetric=st.booleans(),
)
def test_fake_quant_output_is_on_the_grid_and_idempotent(
    lo: float, width: float, values: list[float], symmetric: bool
) -> None:
    qmin, qmax = (-128, 127) if symmetric else (0, 255)
    s, z = qparams_from_range(lo, lo + width, qmin, qmax, symmetric=symmetric)
    x = torch.tensor(values)
    y = fake_quantize(x, s, z, qmin, qmax)
    codes = y / s + z
    assert torch.allclose(codes, codes.round(), atol=1e-3)
    assert float(codes.min()) >= qmin - 1e-3 and float(codes.max()) <= qmax + 1e-3
    assert torch.allclose(fake_quantize(y, s, z, qmin, qmax), y, atol=float(s) * 1e-3)


@pytest.mark.parametrize("case", ["u8-learned-zp", "u8-pinned", "s8-per-channel", "zp-outside", "tiny-scale"])
def test_fused_fake_quantize_has_the_gradients_of_the_op_chain(case: str) -> None:
    gen = torch.Generator().manual_seed(7)
    x = torch.randn(6, 5, 4, 3, generator=gen, dtype=torch.float64) * 3
    x[0, 0, 0, :] = torch.tensor([0.25, -0.75, 1e3])  # a rounding tie, another, a clipped value
    axis, qmin, qmax = None, 0, 255
    scale = torch.tensor(0.05, dtype=torch.float64)
    zp: torch.Tensor | float = torch.tensor(100.4, dtype=torch.float64)
    if case == "u8-pinned":
        zp = 0.0
    elif case == "s8-per-channel":
        axis, qmin, qmax, zp = 1, -127, 127, 0.0
        scale = torch.rand(5, generator=gen, dtype=torch.float64) * 0.02 + 0.005
    elif case == "zp-outside":
        zp = torch.tensor(300.0, dtype=torch.float64)
    elif case == "tiny-scale":
        scale = torch.tensor(1e-12, dtype=torch.float64)
    g = 0.3
    results = []
    for fn in (fake_quantize, None):
        xs = x.clone().requires_grad_()
        ss = scale.clone().requires_grad_()
        zs = zp.clone().requires_grad_() if isinstance(zp, torch.Tensor) else zp
        if fn is None:
            y = fake_quantize_op_chain(xs, ss, zs, qmin, qmax, axis=axis, grad_factor=g)
        else:
            y = fn(xs, ss, zs, qmin, qmax, axis=axis, grad_factor=g)
        dy = torch.randn(y.shape, generator=torch.Generator().manual_seed(1), dtype=torch.float64)
        y.backward(dy)
        results.append((y.detach(), xs.grad, ss.grad, zs.grad if isinstance(zs, torch.Tensor) else None))
    (y1, dx1, ds1, dz1), (y2, dx2, ds2, dz2) = results
    assert torch.allclose(y1, y2, rtol=0, atol=1e-12)
    assert torch.allclose(dx1, dx2, rtol=1e-12, atol=1e-12)
    assert torch.allclose(ds1, ds2, rtol=1e-9, atol=1e-12)
    if dz1 is not None:
        assert torch.allclose(dz1, dz2, rtol=1e-9, atol=1e-12)
    if case == "zp-outside":
        assert float(dz1) == 0.0
    if case == "tiny-scale":
        assert float(ds1) == 0.0


def test_fused_fake_quantize_keeps_memory_format_and_float32() -> None:
    x = torch.randn(2, 8, 5, 5).contiguous(memory_format=torch.channels_last).requires_grad_()
    s = torch.tensor(0.02, requires_grad=True)
    y = fake_quantize(x, s, torch.tensor(128.0, requires_grad=True), 0, 255)
    assert y.dtype == torch.float32 and y.is_contiguous(memory_format=torch.channels_last)
    y.sum().backward()
    assert x.grad is not None and x.grad.shape == x.shape and s.grad is not None


def test_a_zero_point_on_the_boundary_keeps_learning() -> None:
    x = torch.tensor([-1.0, 0.5, 3.0])  # the first is clipped at qmin
    zp = torch.tensor(0.2, requires_grad=True)  # rounds to 0 = qmin
    fake_quantize(x, torch.tensor(0.1), zp, 0, 255, grad_factor=1.0).sum().backward()
    assert zp.grad is not None and float(zp.grad) == pytest.approx(-0.1)
