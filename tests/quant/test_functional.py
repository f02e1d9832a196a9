from __future__ import annotations

import math

import pytest
import torch
from hypothesis import given, settings
from hypothesis import strategies as st

from quant.functional import fake_quantize, grad_scale, lsq_grad_factor, qparams_from_range, quantize_weight, round_ste


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
def test_fake_quant_output_is_on_the_grid_and_idempotent(lo: float, width: float, values: list[float], symmetric: bool) -> None:
    qmin, qmax = (-128, 127) if symmetric else (0, 255)
    s, z = qparams_from_range(lo, lo + width, qmin, qmax, symmetric=symmetric)
    x = torch.tensor(values)
    y = fake_quantize(x, s, z, qmin, qmax)
    codes = y / s + z
    assert torch.allclose(codes, codes.round(), atol=1e-3)
    assert float(codes.min()) >= qmin - 1e-3 and float(codes.max()) <= qmax + 1e-3
    assert torch.allclose(fake_quantize(y, s, z, qmin, qmax), y, atol=float(s) * 1e-3)
