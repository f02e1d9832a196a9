from __future__ import annotations

import pytest
import torch
import torch.nn as nn

from quant import ORT_CPU, calibrate, prepare
from quant.fake_quant import QuantConv2d
from quant.fold import fold_bn, fold_bn_graph, fold_bn_into_conv

from .quant_models import ConvBnAct, TinyNet, randomize_bn


@pytest.mark.parametrize("bias", [False, True])
@pytest.mark.parametrize("groups", [1, 8])
def test_fold_bn_is_exact_in_float(bias: bool, groups: int) -> None:
    m = randomize_bn(nn.Sequential(ConvBnAct(8, 8, 3, groups=groups, bias=bias), ConvBnAct(8, 4, 1, act=None)))
    x = torch.randn(2, 8, 7, 7)
    folded = fold_bn(m)
    assert not any(isinstance(mod, nn.BatchNorm2d) for mod in folded.modules())
    assert torch.allclose(folded(x), m(x), atol=1e-5)
    assert any(isinstance(mod, nn.BatchNorm2d) for mod in m.modules())  # the original is untouched


def test_fold_bn_on_a_full_network() -> None:
    m = randomize_bn(TinyNet())
    x = torch.randn(3, 1, 8, 8)
    assert torch.allclose(fold_bn(m)(x), m(x), atol=1e-5)


def test_bn_whose_conv_has_other_users_is_left_alone() -> None:
    class TwoUsers(nn.Module):
        def __init__(self) -> None:
            super().__init__()
            self.conv = nn.Conv2d(2, 2, 1)
            self.bn = nn.BatchNorm2d(2)

        def forward(self, x: torch.Tensor) -> torch.Tensor:
            y = self.conv(x)
            return self.bn(y) + y

    m = randomize_bn(TwoUsers())
    folded = fold_bn(m)
    assert any(isinstance(mod, nn.BatchNorm2d) for mod in folded.modules())
    x = torch.randn(1, 2, 3, 3)
    assert torch.allclose(folded(x), m(x), atol=1e-6)


def test_quantized_fold_keeps_integer_codes_including_negative_and_zero_gamma() -> None:
    m = randomize_bn(nn.Sequential(ConvBnAct(3, 4, 3)))
    with torch.no_grad():
        m[0].bn.weight[1] = -0.8  # negative gamma flips the codes' sign
        m[0].bn.weight[2] = 0.0  # zero gamma kills the channel
    q = prepare(m, ORT_CPU)
    calibrate(q, torch.randn(16, 3, 6, 6))
    conv: QuantConv2d = q.get_submodule("0.conv")
    s0 = conv.weight_quant.effective_scale().detach().clone()
    codes0 = torch.clamp(torch.round(conv.weight.detach() / s0.view(-1, 1, 1, 1)), -127, 127)
    x = torch.randn(2, 3, 6, 6)
    with torch.no_grad():
        before = q(x)
    fold_bn_graph(q)
    s1 = conv.weight_quant.effective_scale().detach()
    codes1 = torch.round(conv.weight.detach() / s1.view(-1, 1, 1, 1))
    assert torch.equal(codes1[[0, 3]], codes0[[0, 3]])
    assert torch.equal(codes1[1], -codes0[1])
    assert torch.all(codes1[2] == 0) and float(s1[2]) > 0
    with torch.no_grad():
        after = q(x)
    assert torch.allclose(before, after, atol=1e-4)


def test_fold_bn_into_conv_gives_a_bias_to_a_conv_without_one() -> None:
    conv, bn = nn.Conv2d(2, 3, 1, bias=False), randomize_bn(nn.BatchNorm2d(3))
    x = torch.randn(1, 2, 4, 4)
    ref = bn(conv(x))
    fold_bn_into_conv(conv, bn)
    assert conv.bias is not None and torch.allclose(conv(x), ref, atol=1e-6)
