from __future__ import annotations

import operator

import pytest
import torch
import torch.fx as fx
import torch.nn as nn
import torch.nn.functional as F

from hwnas.errors import HwnasError
from quant import ORT_CPU, TENSORRT, ActFakeQuant, QuantConv2d, QuantLinear, UnsupportedModelError, prepare, scheme_of

from .quant_models import BasicBlock, ConvBnAct, InvertedResidual, TinyNet, randomize_bn


def _quantized_inputs(gm: fx.GraphModule, node: fx.Node) -> list[bool]:
    modules = dict(gm.named_modules())
    return [
        isinstance(modules.get(str(a.target)), ActFakeQuant) if a.op == "call_module" else False
        for a in node.args
        if isinstance(a, fx.Node)
    ]


def _quantizer_after(gm: fx.GraphModule, target: str) -> bool:
    node = next(n for n in gm.graph.nodes if n.op == "call_module" and n.target == target)
    modules = dict(gm.named_modules())
    return any(u.op == "call_module" and isinstance(modules[str(u.target)], ActFakeQuant) for u in node.users)


def test_layers_are_swapped_and_original_is_untouched() -> None:
    model = TinyNet()
    q = prepare(model)
    assert isinstance(q.stem.conv, QuantConv2d) and isinstance(q.fc, QuantLinear)
    assert type(model.stem.conv) is nn.Conv2d
    assert scheme_of(q) is ORT_CPU


def test_conv_bn_relu_chain_is_quantized_after_the_activation_only() -> None:
    q = prepare(nn.Sequential(ConvBnAct(1, 4), ConvBnAct(4, 4)))
    assert not _quantizer_after(q, "0.conv") and not _quantizer_after(q, "0.bn")
    assert _quantizer_after(q, "0.act")


def test_every_conv_input_and_both_residual_operands_are_quantized() -> None:
    q = prepare(TinyNet())
    modules = dict(q.named_modules())
    for n in q.graph.nodes:
        if n.op == "call_module" and isinstance(modules[str(n.target)], (QuantConv2d, QuantLinear)):
            assert _quantized_inputs(q, n)[0], n.target
        if n.op == "call_function" and n.target in (operator.add, operator.mul):
            assert all(_quantized_inputs(q, n)), n.name


def test_maxpool_and_flatten_reuse_their_input_quantizer() -> None:
    q = prepare(TinyNet())
    pool = next(n for n in q.graph.nodes if n.op == "call_module" and n.target == "pool")
    before = pool.args[0].target
    after = [u.target for u in pool.users]
    assert after == [before]


def test_se_mean_becomes_global_average_pool() -> None:
    q = prepare(InvertedResidual(8))
    assert not any(n.op == "call_method" and n.target == "mean" for n in q.graph.nodes)
    assert any(n.target is F.adaptive_avg_pool2d for n in q.graph.nodes)
    x = torch.randn(2, 8, 6, 6)
    m = randomize_bn(InvertedResidual(8))
    qm = prepare(m)
    from quant import set_fake_quant

    set_fake_quant(qm, False)
    assert torch.allclose(qm.eval()(x), m(x), atol=1e-5)


def test_non_fused_activations_get_a_pre_activation_quantizer_for_ort_only() -> None:
    model = nn.Sequential(ConvBnAct(1, 4, act=nn.Hardswish), ConvBnAct(4, 4))
    assert _quantizer_after(prepare(model, ORT_CPU), "0.bn")
    assert not _quantizer_after(prepare(model, TENSORRT), "0.bn")
    assert _quantizer_after(prepare(model, TENSORRT), "0.act")


def test_relu6_output_quantizer_is_capped() -> None:
    q = prepare(nn.Sequential(ConvBnAct(1, 4, act=nn.ReLU6), ConvBnAct(4, 4)))
    caps = [m.max_value for m in q.modules() if isinstance(m, ActFakeQuant)]
    assert 6.0 in caps


def test_identity_shortcut_residual_block() -> None:
    q = prepare(BasicBlock(8, 8))
    assert not any(isinstance(m, nn.Identity) for m in q.modules())
    add = next(n for n in q.graph.nodes if n.target is operator.add)
    assert all(_quantized_inputs(q, add))


def test_preparing_twice_is_an_error() -> None:
    with pytest.raises(UnsupportedModelError, match="already prepared"):
        prepare(prepare(TinyNet()))


class _DataDependent(nn.Module):
    def __init__(self) -> None:
        super().__init__()
        self.conv = nn.Conv2d(1, 2, 3)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        if x.sum() > 0:
            return self.conv(x)
        return x


def test_untraceable_model_gives_a_one_line_error() -> None:
    with pytest.raises(UnsupportedModelError, match="cannot trace _DataDependent") as info:
        prepare(_DataDependent())
    assert isinstance(info.value, HwnasError) and "\n" not in str(info.value)


class _Conv2dSubclass(nn.Conv2d):
    pass


def test_unsupported_conv_subclass() -> None:
    with pytest.raises(UnsupportedModelError, match="unsupported layer type _Conv2dSubclass"):
        prepare(nn.Sequential(_Conv2dSubclass(1, 2, 3)))


def test_unknown_scheme_name() -> None:
    with pytest.raises(HwnasError, match="unknown quantization scheme"):
        prepare(TinyNet(), "npu")


class _FunctionalConv(nn.Module):
    def __init__(self) -> None:
        super().__init__()
        self.weight = nn.Parameter(torch.randn(2, 1, 3, 3))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return F.conv2d(x, self.weight)


def test_functional_conv_would_stay_float_so_it_is_refused() -> None:
    with pytest.raises(UnsupportedModelError, match="functional conv2d"):
        prepare(_FunctionalConv())


class _SharedNode(nn.Module):
    """A graph cell's node: a conv → BN output read by a ReLU → conv edge and by a ``none`` edge (x · 0)."""

    def __init__(self) -> None:
        super().__init__()
        self.a = ConvBnAct(4, 4, act=None)
        self.relu = nn.ReLU()
        self.b = ConvBnAct(4, 4, act=None)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        node = self.a(x)
        return self.b(self.relu(node)) + node * 0.0


class _ZeroReader(nn.Module):
    """A node read only by ``none`` edges (x · 0): the float Mul reads the conv's quantized output."""

    def __init__(self) -> None:
        super().__init__()
        self.a = ConvBnAct(4, 4, act=None)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        node = self.a(x)
        return node * 0.0 + x


def test_a_tensor_a_fused_activation_shares_with_other_readers_is_quantized_where_it_is_made(tmp_path) -> None:  # noqa: ANN001
    q = prepare(_SharedNode())
    assert _quantizer_after(q, "a.bn")  # the ReLU cannot fold into a conv whose output has two readers
    single = prepare(nn.Sequential(ConvBnAct(4, 4), ConvBnAct(4, 4)))
    assert not _quantizer_after(single, "0.bn")  # its one reader: the ReLU folds, quantized after it
    assert _quantizer_after(prepare(_ZeroReader()), "a.bn")  # read by a float op only

    from quant import calibrate, export_onnx
    from quant.ort import integer_op_report

    m = randomize_bn(_SharedNode()).eval()
    qm = prepare(m)
    calibrate(qm, [torch.randn(8, 4, 8, 8) for _ in range(2)])
    path = tmp_path / "shared.onnx"
    export_onnx(qm, path, (1, 4, 8, 8))
    report = integer_op_report(path)
    assert report.float_convs == 0 and report.integer_convs == 2, report.summary()
