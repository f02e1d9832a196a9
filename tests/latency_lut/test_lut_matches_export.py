"""Does the LUT time the graph that is shipped? The INT8 block models of a latency table
(:mod:`latency_lut.quantize`) and the network that ``nas export`` ships are both made by
:mod:`quant` (``prepare`` → ``calibrate`` → ``export_onnx``); both are optimised by onnxruntime as
the ``cpu-ort-int8`` target runs them, and their kernels compared, op for op.

Until issue 20 the LUT's blocks were quantized by onnxruntime's ``quantize_static``: they ran
``QLinearMul`` where the shipped network multiplies ``x * hardsigmoid(x)`` (hardswish, SE gates)
in float, and a float ``ReduceMean`` where it runs ``QLinearGlobalAveragePool`` (SE squeeze).
"""

from __future__ import annotations

from collections import Counter
from pathlib import Path

import onnx
import pytest
import torch

_BOUNDARY = {"QuantizeLinear", "DequantizeLinear"}  # block models read and write uint8: their I/O Q/DQ differ


def _kernels(path: Path, tmp: Path) -> Counter[str]:
    from quant.ort import ort_session

    out = tmp / f"{path.stem}.opt.onnx"
    ort_session(path, level="extended", optimized_path=out)
    return Counter(n.op_type for n in onnx.load(str(out)).graph.node if n.op_type not in _BOUNDARY)


@pytest.mark.slow
@pytest.mark.parametrize("space_name", ["mobilenet", "spaceevo"])
def test_lut_blocks_run_the_kernels_of_the_shipped_network(space_name, tmp_path):
    from latency_lut.export import block_models
    from quant import calibrate, export_onnx, prepare
    from spaces import create_space

    torch.manual_seed(0)
    space = create_space(space_name, in_chans=1, num_classes=10, resolution=28)
    arch = space.sample(0)
    net = space.build(arch).eval()
    for m in net.modules():  # random weights: keep biases inside int32 at the calibrated scales
        if isinstance(m, torch.nn.Conv2d) and m.bias is not None:
            m.bias.data.zero_()
    qnet = calibrate(prepare(net, "ort_cpu"), [torch.randn(16, *space.input_shape)])
    shipped = _kernels(export_onnx(qnet, tmp_path / "net.onnx", (1, *space.input_shape)), tmp_path)
    lut: Counter[str] = Counter()
    for i, block in enumerate(space.blocks(arch)):
        path = tmp_path / f"block{i}.onnx"
        path.write_bytes(block_models(block, ["int8"])["int8"])
        lut += _kernels(path, tmp_path)
    assert lut == shipped
