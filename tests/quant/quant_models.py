"""Stand-in models for the quant tests (no dependency on ``spaces``): the test modules import
them from here; ``conftest.py`` holds the fixtures."""

from __future__ import annotations

import torch
import torch.nn as nn
import torch.nn.functional as F

__all__ = ["SE", "BasicBlock", "ConvBnAct", "InvertedResidual", "TinyNet", "randomize_bn"]


class ConvBnAct(nn.Module):
    """conv → BN → act, the structure of ``spaces.ops.ConvBnAct``."""

    def __init__(
        self,
        cin: int,
        cout: int,
        k: int = 3,
        stride: int = 1,
        groups: int = 1,
        act: type[nn.Module] | None = nn.ReLU,
        bias: bool = False,
    ) -> None:
        super().__init__()
        self.conv = nn.Conv2d(cin, cout, k, stride, k // 2, groups=groups, bias=bias)
        self.bn = nn.BatchNorm2d(cout)
        self.act = act(inplace=True) if act is not None else nn.Identity()

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.act(self.bn(self.conv(x)))


class SE(nn.Module):
    """Squeeze-excitation written like timm's SEModule (mean, 1×1 convs with bias, gate, multiply)."""

    def __init__(self, c: int, rd: int) -> None:
        super().__init__()
        self.fc1 = nn.Conv2d(c, rd, 1)
        self.act = nn.ReLU(inplace=True)
        self.fc2 = nn.Conv2d(rd, c, 1)
        self.gate = nn.Hardsigmoid()

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        s = x.mean((2, 3), keepdim=True)
        return x * self.gate(self.fc2(self.act(self.fc1(s))))


class InvertedResidual(nn.Module):
    def __init__(self, c: int, expand: int = 4, act: type[nn.Module] = nn.ReLU, se: bool = True) -> None:
        super().__init__()
        mid = c * expand
        self.expand = ConvBnAct(c, mid, 1, act=act)
        self.dw = ConvBnAct(mid, mid, 3, groups=mid, act=act)
        self.se = SE(mid, 8) if se else nn.Identity()
        self.project = ConvBnAct(mid, c, 1, act=None)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return x + self.project(self.se(self.dw(self.expand(x))))


class BasicBlock(nn.Module):
    def __init__(self, cin: int, cout: int, stride: int = 1) -> None:
        super().__init__()
        self.conv1 = ConvBnAct(cin, cout, 3, stride)
        self.conv2 = ConvBnAct(cout, cout, 3, act=None)
        self.shortcut = ConvBnAct(cin, cout, 1, stride, act=None) if (stride != 1 or cin != cout) else nn.Identity()
        self.act = nn.ReLU(inplace=True)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.act(self.conv2(self.conv1(x)) + self.shortcut(x))


class TinyNet(nn.Module):
    """Every structure the issue lists: conv-BN(-bias), depthwise, SE, residual adds, pools, linear head."""

    def __init__(self, num_classes: int = 10, act: type[nn.Module] = nn.ReLU, width: int = 16) -> None:
        super().__init__()
        self.stem = ConvBnAct(1, width, 3, act=act, bias=True)
        self.block1 = InvertedResidual(width, 2, act)
        self.pool = nn.MaxPool2d(2)
        self.block2 = BasicBlock(width, 2 * width)
        self.head_conv = ConvBnAct(2 * width, 4 * width, 1, act=act)
        self.fc = nn.Linear(4 * width, num_classes)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        x = self.block2(self.pool(self.block1(self.stem(x))))
        x = F.adaptive_avg_pool2d(self.head_conv(x), 1).flatten(1)
        return self.fc(x)


def randomize_bn(model: nn.Module, seed: int = 0) -> nn.Module:
    """Give every BN non-trivial running statistics and affine parameters (eval mode)."""
    g = torch.Generator().manual_seed(seed)
    for m in model.modules():
        if isinstance(m, nn.BatchNorm2d):
            n = m.num_features
            m.running_mean.copy_(torch.randn(n, generator=g) * 0.1)
            m.running_var.copy_(torch.rand(n, generator=g) + 0.5)
            m.weight.data.copy_(torch.rand(n, generator=g) + 0.5)
            m.bias.data.copy_(torch.randn(n, generator=g) * 0.1)
    return model.eval()
