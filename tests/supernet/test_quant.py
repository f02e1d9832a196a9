"""Quantized-for-all: the fake-quantized supernet equals the extracted quantized subnet, which
exports to QDQ ONNX with the learned scales."""

from __future__ import annotations

import random

import numpy as np
import pytest
import torch

from supernet.errors import SupernetError
from tests.helpers import tiny_net

pytestmark = pytest.mark.usefixtures("one_thread")


@pytest.fixture(scope="module")
def qnet():
    net = tiny_net("mobilenet")
    g = torch.Generator().manual_seed(0)
    calib = [torch.randn(16, 1, 28, 28, generator=g) for _ in range(2)]
    net.enable_quantization("ort_cpu", calib)
    return net


def test_fake_quant_supernet_equals_prepared_subnet(qnet):
    qnet.eval()
    x = torch.randn(4, 1, 28, 28, generator=torch.Generator().manual_seed(3))
    for arch in [qnet.largest(), qnet.smallest(), qnet.space.sample(random.Random(5))]:
        sub = qnet.subnet(arch)
        from quant.prepare import is_prepared

        assert is_prepared(sub)
        with torch.no_grad():
            assert torch.equal(qnet(x, arch), sub(x))


def test_quantizer_parameters_are_shared_and_trained(qnet):
    qnet.train()
    arch = qnet.space.sample(random.Random(7))
    qnet(torch.randn(8, 1, 28, 28), arch).logsumexp(1).mean().backward()
    scales = [k for k in qnet.keys() if k.endswith(".scale") and qnet.tensor(k).grad is not None]
    assert any("/aq[" in k for k in scales) and any(".weight_quant." in k for k in scales)
    new = qnet.pop_new_parameters()
    assert all(qnet.group_of(k) == "quant" for k, _ in new)
    qnet.zero_grad(set_to_none=True)


def test_extracted_subnet_exports_with_learned_scales(qnet, tmp_path):
    from quant.export import export_onnx
    from quant.fake_quant import ActFakeQuant
    from quant.ort import ort_predict

    qnet.eval()
    arch = qnet.largest()
    sub = qnet.subnet(arch)
    key = "@net/aq[@input].scale"
    first = next(m for m in sub.modules() if isinstance(m, ActFakeQuant))
    assert float(first.scale.detach()) == pytest.approx(float(qnet.tensor(key).detach()))
    path = export_onnx(sub, tmp_path / "s.onnx", (1, 1, 28, 28))
    x = torch.randn(16, 1, 28, 28, generator=torch.Generator().manual_seed(4))
    ort = ort_predict(str(path), x.numpy())
    with torch.no_grad():
        ref = sub(x).numpy()
    assert np.mean(ort.argmax(1) == ref.argmax(1)) >= 0.8
    assert np.abs(ort - ref).max() < 0.5


def test_float_supernet_refuses_quantized_extraction():
    net = tiny_net("mobilenet")
    with pytest.raises(SupernetError):
        net.subnet(net.largest(), quantized=True)


def test_supernet_equals_extracted_subnet_after_qat_steps(tmp_path):
    """Training moves batch-norm statistics and step sizes: the supernet must still compute what
    the extracted subnet computes, including the deployed-bias rounding of each block's first
    layer, whose input quantizer belongs to the previous block."""
    from supernet.data import EpochOrder
    from supernet.train import Trainer
    from tests.helpers import tiny_config

    tr = Trainer(tiny_config(), tmp_path, progress=False, log=lambda s: None)
    tr.net.enable_quantization("ort_cpu", tr.calib[:1])
    tr._adopt_new_parameters()
    order = EpochOrder(tr.train_data, 32, 0, 0)
    tr.net.train()
    for i in range(3):
        x, y = order.batch(i)
        tr._train_step(x, y, tr.step_archs(i), 0.05)
    tr.net.eval()
    x = torch.randn(8, 1, 28, 28, generator=torch.Generator().manual_seed(1))
    for arch in [tr.net.largest(), tr.net.smallest(), tr.net.space.sample(random.Random(2))]:
        with torch.no_grad():
            assert torch.equal(tr.net(x, arch), tr.net.subnet(arch)(x))


def test_evaluating_an_arch_no_training_step_reached_calibrates_its_quantizers():
    """nas run's search on a briefly trained hyper-space stopped with "this quantizer was never
    trained": evaluate_arch extracted the subnet without its calibration batches."""
    from supernet import UntrainedQuantizerError
    from supernet.data import TensorData
    from supernet.evaluate import evaluate_arch

    net = tiny_net("mobilenet")
    g = torch.Generator().manual_seed(0)
    calib = [torch.randn(16, 1, 28, 28, generator=g) for _ in range(2)]
    net.enable_quantization("ort_cpu", calib, archs=[net.smallest()])  # the largest's quantizers: never trained
    with pytest.raises(UntrainedQuantizerError):
        net.subnet(net.largest())
    test = TensorData(
        name="t",
        split="test",
        images=torch.randn(8, 1, 28, 28, generator=g),
        labels=torch.arange(8) % 10,
        num_classes=10,
    )
    res = evaluate_arch(net, net.largest(), test, calib, precision="fakequant")
    assert 0.0 <= res["accuracy"] <= 100.0 and res["quantization"] == "qat"
