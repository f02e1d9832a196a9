from __future__ import annotations

import copy

import numpy as np
import pytest
import torch

from quant import QuantError, calibrate, export_onnx, host_ort_scheme, ort_predict, prepare, qat_finetune
from quant.pipeline import run_pipeline
from quant.training import TrainConfig, accuracy, evaluate, predict, recalibrate_bn, train

from .quant_models import TinyNet


def test_fp32_training_learns_digits(trained_digits_net, digits) -> None:  # noqa: ANN001
    _, _, xte, yte = digits
    assert evaluate(trained_digits_net, xte, yte) >= 95.0


def test_training_is_reproducible(digits) -> None:  # noqa: ANN001
    xtr, ytr, _, _ = digits
    outs = []
    for _ in range(2):
        torch.manual_seed(1)
        m = TinyNet(width=8)
        r = train(m, xtr[:256], ytr[:256], TrainConfig(epochs=1, batch_size=64, seed=3))
        outs.append((r.final_loss, predict(m, xtr[:16])))
    assert outs[0][0] == outs[1][0] and np.array_equal(outs[0][1], outs[1][1])


def test_ptq_and_qat_keep_accuracy_and_onnx_matches(trained_digits_net, digits, tmp_path) -> None:  # noqa: ANN001
    xtr, ytr, xte, yte = digits
    fp32 = evaluate(trained_digits_net, xte, yte)
    ptq = calibrate(prepare(trained_digits_net, host_ort_scheme()), xtr[:512])
    ptq_acc = accuracy(ort_predict(export_onnx(ptq, tmp_path / "p.onnx", (1, 1, 8, 8)), xte), yte)
    assert ptq_acc >= fp32 - 2.0
    qat = copy.deepcopy(ptq)
    qat_finetune(qat, xtr, ytr, TrainConfig(epochs=1, lr=0.005, batch_size=64, weight_decay=0.0, freeze_bn_after=0.0))
    qat_acc = accuracy(ort_predict(export_onnx(qat, tmp_path / "q.onnx", (1, 1, 8, 8)), xte), yte)
    assert qat_acc >= fp32 - 1.0


def test_qat_distillation_follows_the_teacher_not_the_labels(trained_digits_net, digits) -> None:  # noqa: ANN001
    """With distill=1 the loss is the teacher's predictions only: wrong labels do no harm,
    while plain label training on the same wrong labels destroys the model."""
    xtr, ytr, xte, yte = digits
    wrong = (np.asarray(ytr) + 1) % 10
    ptq = calibrate(prepare(trained_digits_net, host_ort_scheme()), xtr[:512])
    cfg = TrainConfig(epochs=2, lr=0.02, batch_size=64, weight_decay=0.0, freeze_bn_after=0.0, distill=1.0)
    distilled, plain = copy.deepcopy(ptq), copy.deepcopy(ptq)
    qat_finetune(distilled, xtr, wrong, cfg, teacher=trained_digits_net)
    qat_finetune(plain, xtr, wrong, cfg)  # no teacher: labels only
    teacher_acc = evaluate(trained_digits_net, xte, yte)
    assert evaluate(distilled, xte, yte) >= teacher_acc - 2.0
    assert evaluate(plain, xte, yte) < 50.0
    assert not trained_digits_net.training  # the teacher is left in eval mode, untouched


def test_distillation_settings_are_checked(digits) -> None:  # noqa: ANN001
    xtr, ytr, _, _ = digits
    with pytest.raises(QuantError, match="needs a teacher"):
        train(TinyNet(), xtr[:64], ytr[:64], TrainConfig(epochs=1, distill=0.5))
    with pytest.raises(QuantError, match=r"distill must lie in \[0, 1\]"):
        train(TinyNet(), xtr[:64], ytr[:64], TrainConfig(epochs=1, distill=1.5), teacher=TinyNet())
    with pytest.raises(QuantError, match="temperature must be positive"):
        train(
            TinyNet(),
            xtr[:64],
            ytr[:64],
            TrainConfig(epochs=1, distill=0.5, distill_temperature=0.0),
            teacher=TinyNet(),
        )


def test_bn_recalibration_fixes_lagging_running_statistics(digits) -> None:  # noqa: ANN001
    xtr, ytr, xte, yte = digits
    torch.manual_seed(0)
    m = TinyNet()
    for bn in (mod for mod in m.modules() if isinstance(mod, torch.nn.BatchNorm2d)):
        bn.momentum = 0.001  # running statistics barely move during training
    train(m, xtr, ytr, TrainConfig(epochs=2, lr=0.05, batch_size=64))
    stale = evaluate(m, xte, yte)
    recalibrate_bn(m, xtr[:512])
    assert evaluate(m, xte, yte) > stale + 10
    assert all(bn.momentum == 0.001 for bn in m.modules() if isinstance(bn, torch.nn.BatchNorm2d))


def test_bad_training_inputs_raise_quant_errors() -> None:
    with pytest.raises(QuantError, match="unknown optimizer"):
        train(TinyNet(), np.zeros((4, 1, 8, 8), np.float32), np.zeros(4, np.int64), TrainConfig(optimizer="lion"))  # type: ignore[arg-type]
    with pytest.raises(QuantError, match="one label per image"):
        train(TinyNet(), np.zeros((4, 1, 8, 8), np.float32), np.zeros(3, np.int64))


def _fast_latency(paths):  # noqa: ANN001, ANN202
    """The variants' latencies by the one harness (hw_profiles), one short pass."""
    from hw_profiles import compare_files, create_engine, target_from_dict
    from tests.helpers import FAST_ORT_FP32

    target = target_from_dict(FAST_ORT_FP32)
    engine = create_engine(target)
    try:
        return [c.median_ms for c in compare_files(engine, paths, passes=1)]
    finally:
        engine.close()


def test_pipeline_measures_every_variant_on_its_onnx_artifact(digits, tmp_path) -> None:  # noqa: ANN001
    xtr, ytr, xte, yte = digits
    torch.manual_seed(0)
    res = run_pipeline(
        TinyNet(width=8),
        xtr,
        ytr,
        xte,
        yte,
        workdir=tmp_path,
        scheme=host_ort_scheme(),
        fp32_config=TrainConfig(epochs=4, lr=0.05, batch_size=64, bn_recalibration_batches=4),
        qat_config=TrainConfig(epochs=0.5, lr=0.005, batch_size=64, weight_decay=0.0, freeze_bn_after=0.0),
        calib_samples=256,
        latency=_fast_latency,
    )
    expected = ["fp32", "ptq", "ort_ptq"] + (["ort_ptq_rr"] if host_ort_scheme().weight_qmax < 127 else []) + ["qat"]
    assert list(res.variants) == expected
    for name in ("ptq", "qat"):
        v = res[name]
        assert v.onnx_path.is_file() and v.all_convs_integer and v.agreement is not None and v.agreement >= 99.0
    assert res["fp32"].ort_acc > 80.0 and res["fp32"].agreement == 100.0
    assert all(v.latency_ms and v.latency_ms > 0 for v in res.variants.values())
    table = res.table("digits")
    assert "ort_ptq" in table and "qat" in table


def test_channels_last_convs_feeds_every_conv_nhwc_and_removes_its_hooks() -> None:
    from quant.training import channels_last_convs

    torch.manual_seed(0)
    model = TinyNet(width=8).train()
    x = torch.randn(4, 1, 8, 8)  # one channel: as NCHW as it is NHWC
    convs = [m for m in model.modules() if isinstance(m, torch.nn.Conv2d)]

    def run() -> tuple[torch.Tensor, list[bool]]:
        seen: list[bool] = []
        probes = [
            m.register_forward_pre_hook(
                lambda m, a: seen.append(a[0].shape[1] == 1 or a[0].is_contiguous(memory_format=torch.channels_last))
            )
            for m in convs
        ]
        out = model(x)
        for p in probes:
            p.remove()
        return out, seen

    ref, seen = run()
    assert not all(seen)  # plain torch keeps this network NCHW
    with channels_last_convs(model):
        out, seen = run()  # probes registered after the context's hooks see what the convs see
    assert len(seen) == len(convs) and all(seen)
    assert torch.allclose(out, ref, rtol=1e-4, atol=1e-5)
    assert all(not m._forward_pre_hooks for m in model.modules())


def test_training_in_nchw_and_nhwc_agrees_to_rounding(digits) -> None:  # noqa: ANN001
    xtr, ytr, _, _ = digits
    preds = []
    for nhwc in (False, True):
        torch.manual_seed(1)
        m = TinyNet(width=8)
        r = train(m, xtr[:256], ytr[:256], TrainConfig(epochs=1, batch_size=64, seed=3, channels_last=nhwc))
        preds.append((r.final_loss, m(torch.as_tensor(xtr[:64]).float()).detach()))
    assert abs(preds[0][0] - preds[1][0]) < 1e-3
    assert torch.allclose(preds[0][1], preds[1][1], rtol=1e-3, atol=1e-3)


def test_an_optimizer_step_cannot_carry_a_step_size_through_zero() -> None:
    from quant.qat import step_keeping_scales_positive

    scale = torch.nn.Parameter(torch.tensor([0.02, 0.02, 0.5]))
    other = torch.nn.Parameter(torch.tensor([1.0]))
    opt = torch.optim.SGD([scale, other], lr=0.1)
    scale.grad = torch.tensor([1.0, 0.05, 0.1])  # the first would go to -0.08, the second to 0.015
    other.grad = torch.tensor([20.0])
    step_keeping_scales_positive(opt, [scale])
    assert scale.tolist() == pytest.approx([0.01, 0.015, 0.49])  # halved at most; normal steps untouched
    assert other.item() == pytest.approx(-1.0)  # other parameters are not projected


def test_qat_keeps_every_step_size_positive_at_a_reckless_learning_rate(trained_digits_net, digits) -> None:  # noqa: ANN001
    from quant.qat import step_size_parameters

    xtr, ytr, _, _ = digits
    qat = calibrate(prepare(copy.deepcopy(trained_digits_net), host_ort_scheme()), xtr[:256])
    qat_finetune(
        qat, xtr[:512], ytr[:512], TrainConfig(epochs=1, lr=0.5, batch_size=64, weight_decay=0.0, quant_lr=5.0)
    )
    assert all(bool((p > 0).all()) for p in step_size_parameters(qat))
