"""Every op of the catalog builds, runs with the catalog's shape rule, and exports to ONNX."""

from __future__ import annotations

import numpy as np
import pytest
import torch

from quant.export import export_fp32_bytes
from spaces import ACTIVATIONS, get_op, list_ops
from spaces._nodes import ResolvedBlock
from spaces.ops import build_op

CASES = [
    ("conv_bn_act", {"out": 16, "kernel": 3, "stride": 2}),
    ("dwsep", {"out": 24, "kernel": 5, "stride": 1, "se": 0.25}),
    ("mbconv", {"out": 16, "kernel": 3, "stride": 1, "expand": 6.0}),
    ("mbconv", {"out": 24, "kernel": 7, "stride": 2, "expand": 3.0, "se": 0.25}),
    ("mbconv", {"out": 16, "kernel": 3, "stride": 1, "expand": 1.0}),
    ("fused_mbconv", {"out": 16, "kernel": 3, "stride": 1, "expand": 4.0}),
    ("fused_mbconv", {"out": 32, "kernel": 5, "stride": 2, "expand": 2.0, "se": 0.25}),
    ("resnet_basic", {"out": 16, "kernel": 3, "stride": 1}),
    ("resnet_basic", {"out": 32, "kernel": 5, "stride": 2, "se": 0.25}),
    ("resnet_bottleneck", {"out": 32, "kernel": 3, "stride": 2, "expand": 0.25}),
    ("resnet_bottleneck", {"out": 16, "kernel": 3, "stride": 1, "expand": 0.5, "se": 0.25}),
    ("pool", {"kind": "avg", "kernel": 3, "stride": 2}),
    ("pool", {"kind": "max", "kernel": 3, "stride": 1}),
    ("skip", {}),
    ("zero", {}),
    ("classifier", {"num_classes": 10, "feature": 32, "hidden": 24, "act": "hardswish"}),
    ("conv_bn", {"out": 16, "kernel": 3, "stride": 1}),
    ("relu_conv_bn", {"kernel": 1}),
    ("relu_conv_bn", {"out": 32, "kernel": 3, "stride": 2}),
    ("sep_conv", {"kernel": 5}),
    ("sep_conv", {"out": 24, "kernel": 3, "stride": 2}),
    ("dil_conv", {"kernel": 3}),
    ("dil_conv", {"out": 8, "kernel": 5, "stride": 2}),
    ("bn_act", {}),
    ("nb201_reduction", {"out": 32}),
]


def test_every_op_is_covered():
    covered = {op for op, _ in CASES}
    assert covered == set(list_ops())


ACT_CASES = [
    (op, {**params, "act": act} if "act" in get_op(op).params else params)
    for op, params in CASES
    for act in (ACTIVATIONS if "act" in get_op(op).params else ("relu",))
]


@pytest.mark.parametrize(
    "op, params", ACT_CASES, ids=[f"{op}-{p.get('act', 'none')}-{i}" for i, (op, p) in enumerate(ACT_CASES)]
)
def test_op_shape_and_onnx_export(op, params):
    opdef = get_op(op)
    full = opdef.complete(params)
    cin, h = 16, 14
    cout = opdef.out_channels(full, cin)
    h2, w2 = opdef.output_hw(full, h, h)
    block = ResolvedBlock("x", op, tuple(sorted(full.items())), cin, h, h, cout, h2, w2)
    torch.manual_seed(0)
    module = build_op(op, cin, block.kwargs).eval()
    x = torch.randn(2, cin, h, h)
    with torch.no_grad():
        y = module(x)
    expected = (2, cout) if opdef.kind == "head" else (2, cout, h2, w2)
    assert tuple(y.shape) == expected
    import onnx
    import onnxruntime as ort

    data = export_fp32_bytes(module, (cin, h, h), dynamic_batch=True)
    model = onnx.load_from_string(data)
    assert model.opset_import[0].version >= 17
    onnx.checker.check_model(model)
    sess = ort.InferenceSession(data, providers=["CPUExecutionProvider"])
    out = sess.run(None, {"input": x.numpy()})[0]
    assert np.abs(out - y.numpy()).max() < 1e-4


def test_ops_use_timm_layers_and_conv_bn_act_structure():
    from spaces.ops import ConvBnAct, MBConv

    m = build_op("mbconv", 16, get_op("mbconv").complete({"out": 16, "se": 0.25, "act": "hardswish"}))
    assert isinstance(m, MBConv) and m.has_residual
    convs = [c for c in m.modules() if isinstance(c, ConvBnAct)]
    assert convs and all(isinstance(c.bn, torch.nn.BatchNorm2d) and c.conv.bias is None for c in convs)
    assert type(m.se).__module__.startswith("timm.layers")
    assert isinstance(convs[0].act, torch.nn.Hardswish)
