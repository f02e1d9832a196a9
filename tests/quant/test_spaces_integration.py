"""quant on the networks ``spaces`` builds (skipped when spaces is not importable)."""

from __future__ import annotations

import numpy as np
import pytest
import torch

import quant
from quant.training import predict

spaces = pytest.importorskip("spaces")


@pytest.mark.parametrize("name", ["mobilenet", "resnet", "spaceevo", "hhnas", "nb201"])
def test_builtin_space_networks_quantize_to_integer_kernels(name: str, tmp_path) -> None:  # noqa: ANN001
    try:
        space = spaces.create_space(name, in_chans=1, num_classes=10, resolution=28)
    except Exception as exc:  # noqa: BLE001 - a space may not offer 28 px
        pytest.skip(f"{name}: {exc}")
    model = space.build(space.sample(0)).eval()
    x = torch.randn(6, 1, 28, 28)
    scheme = quant.host_ort_scheme()
    q = quant.calibrate(quant.prepare(model, scheme), x)
    path = quant.export_onnx(q, tmp_path / f"{name}.onnx", (1, 1, 28, 28))
    rep = quant.integer_op_report(path)
    assert rep.integer_convs > 0 and rep.float_convs == 0, rep.summary()
    ours, theirs = predict(q, x[:4]), quant.ort_predict(path, x[:4].numpy())
    assert np.abs(ours - theirs).max() <= 0.05 * max(1.0, float(np.abs(ours).max()))
