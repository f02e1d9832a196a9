"""``nas.export(...)``: a plain module (PTQ), a supernet checkpoint whose scheme differs from the
target's (re-quantized, said in model.json), the QAT fine-tune, and the record's invariants."""

from __future__ import annotations

import json
import re

import onnx
import pytest
from onnx import numpy_helper

from nas.export import AGREEMENT_THRESHOLD, check_files, read_model_json
from tests.nas.export.helpers import tiny_space

pytestmark = pytest.mark.usefixtures("one_thread")


def _small_data():
    from supernet.data import load_data

    return load_data("fashion-mnist", "train", 512), load_data("fashion-mnist", "test", 300)


def _common_record_checks(rec, out):
    assert rec["schema"] == "hwnas-export/1" and rec["created"].endswith("Z")
    assert rec["files"]["onnx-int8"] == "model.int8.onnx" and (out / "model.int8.onnx").is_file()
    assert check_files(out) == []
    assert read_model_json(out) == json.loads((out / "model.json").read_text())
    assert rec["input_shape"] == [1, 28, 28] and len(rec["normalization"]["mean"]) == 1
    assert rec["accuracy"]["int8_vs_fakequant_agreement"] >= AGREEMENT_THRESHOLD
    assert rec["checks"]["int8_vs_fakequant_agreement"] is True
    assert rec["latency_ms"]["measured"] > 0 and rec["fingerprint"]["id"] == rec["latency_stats"]["int8"]["fingerprint"]
    assert {"cpu_model", "avx512_vnni", "amx_int8", "cpu_flags"} <= set(rec["host"])


def test_plain_module_is_quantized_with_ptq(export_work, tmp_path):
    import nas

    space = tiny_space("mobilenet")
    arch = space.sample(1)
    model = space.build(arch)
    train, test = _small_data()
    out = tmp_path / "plain"
    res = nas.export(
        model,
        arch,
        out,
        space=space,
        data=(train, test),
        calibration=1,
        target=str(export_work["target"]),
        formats="onnx-int8,onnx-fp32",
        class_names=[f"c{i}" for i in range(10)],
    )
    rec = res.record
    _common_record_checks(rec, out)
    assert res.passed and res.files["onnx-fp32"] == out / "model.fp32.onnx"
    assert rec["source"] == {"kind": "module", "module": type(model).__name__}
    assert rec["arch_id"] == arch.id and rec["space"]["name"] == "mobilenet"
    from spaces import space_hash

    assert rec["space"]["hash"] == space_hash(space)
    assert rec["quantization"]["method"] == "ptq" and "a float module" in rec["quantization"]["reason"]
    assert rec["class_names"] == [f"c{i}" for i in range(10)]
    assert rec["data"] == {"name": "fashion_mnist", "test_images": 300, "train_images": 512, "calibration_images": 256}
    assert rec["latency_ms"]["measured_fp32"] > 0 and rec["latency_ms"]["predicted"] is None
    assert rec["integer_ops"]["all_convs_integer"] is True


def test_export_package_is_the_callable_api(export_work, tmp_path):
    import nas
    import nas.export  # binds the package to nas.export: still the callable API

    assert callable(nas.export) and "export" in nas.__all__
    with pytest.raises(nas.HwnasError, match="needs data"):
        nas.export(tiny_space("mobilenet").build(tiny_space("mobilenet").sample(0)), out=tmp_path / "x")
    with pytest.raises(nas.HwnasError, match="already prepared"):
        import quant

        nas.export(
            quant.prepare(tiny_space("mobilenet").build(tiny_space("mobilenet").sample(0))),
            out=tmp_path,
            data="fashion-mnist",
        )


def test_checkpoint_of_another_scheme_is_requantized(export_work, tmp_path):
    """The checkpoint trained u8 activations (ort_cpu); a symmetric-INT8 export re-quantizes it
    with PTQ and says so; the exported model then has zero points of 0 everywhere."""
    import nas

    out = tmp_path / "sym"
    res = nas.export(
        export_work["checkpoint"],
        export_work["arch_file"],
        out,
        scheme="tensorrt",
        test_limit=200,
        target=str(export_work["target"]),
        formats="onnx-int8",
        calibration=1,
    )
    q = res.record["quantization"]
    assert q["requantized"] is True and q["method"] == "ptq" and q["scheme"]["name"] == "tensorrt"
    assert "the checkpoint's scheme ort_cpu has uint8 activations, the target needs symmetric int8" in q["reason"]
    assert res.record["source"]["kind"] == "supernet" and res.record["source"]["checkpoint_scheme"] == "ort_cpu"
    assert res.record["accuracy"]["int8_vs_fakequant_agreement"] >= AGREEMENT_THRESHOLD
    proto = onnx.load(str(out / "model.int8.onnx"))
    inits = {t.name: numpy_helper.to_array(t) for t in proto.graph.initializer}
    zps = [inits[n.input[2]] for n in proto.graph.node if n.op_type == "QuantizeLinear" and len(n.input) > 2]
    assert zps and all(z.dtype.name == "int8" and not z.any() for z in zps)


def _finetuned(export_work, out, **settings):
    """The largest subnet exported (INT8 only, one calibration batch) with a fine-tune of ``settings``."""
    import nas

    return nas.export(
        export_work["checkpoint"],
        "largest",
        out,
        target=str(export_work["target"]),
        formats="onnx-int8",
        calibration=1,
        **settings,
    )


def test_finetune_reports_accuracy_before_and_after(export_work, tmp_path):
    res = _finetuned(export_work, tmp_path / "ft", finetune_epochs=0.5, test_limit=200)
    ft, acc = res.record["finetune"], res.record["accuracy"]
    assert res.record["quantization"]["method"] == "qat+finetune"
    assert ft["epochs"] == 0.5 and ft["steps"] >= 1 and ft["fakequant_test_after"] == acc["fakequant_test"]
    assert acc["fakequant_test_before_finetune"] == ft["fakequant_test_before"]
    assert acc["int8_vs_fakequant_agreement"] >= AGREEMENT_THRESHOLD
    assert ft["config"]["lr"] == 0.005 and ft["config"]["distill"] == 0.5  # QAT_CONFIG's


def test_finetune_takes_its_learning_rate_and_distillation(export_work, tmp_path):
    res = _finetuned(
        export_work, tmp_path / "ft", finetune_epochs=0.25, finetune_lr=0.02, finetune_distill=0.0, test_limit=100
    )
    ft = res.record["finetune"]
    assert ft["config"]["lr"] == 0.02 and ft["config"]["distill"] == 0.0 and ft["steps"] >= 1


@pytest.mark.parametrize(
    ("kwargs", "message"),
    [
        ({"finetune_lr": 0.0}, "--finetune-lr must be a positive number, got 0.0"),
        ({"finetune_lr": float("nan")}, "--finetune-lr must be a positive number"),
        ({"finetune_distill": 1.5}, "--finetune-distill must be in [0, 1], got 1.5"),
    ],
)
def test_bad_finetune_settings_are_refused_before_any_work(export_work, tmp_path, kwargs, message):
    import nas
    from nas.export.errors import ExportConfigError

    with pytest.raises(ExportConfigError, match=re.escape(message)):
        nas.export(export_work["checkpoint"], "largest", tmp_path / "x", finetune_epochs=1, **kwargs)
    assert not (tmp_path / "x").exists()
