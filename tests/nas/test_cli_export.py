"""`nas export`, run as the real command: files, model.json, verification, OpenVINO, TensorRT, bad input."""

from __future__ import annotations

import json

import numpy as np
import pytest

from tests.nas.export.helpers import make_lut, tiny_space, train_supernet, write_arch, write_fast_target


@pytest.fixture(scope="module")
def work(tmp_path_factory):
    root = tmp_path_factory.mktemp("export_cli")
    target = write_fast_target(root)
    arch_file, arch = write_arch(root)
    return {
        "root": root,
        "checkpoint": train_supernet(root / "run"),
        "target": target,
        "arch_file": arch_file,
        "arch": arch,
        "lut": make_lut(root / "lut.db", target),
    }


def _base(work, out, *extra):
    return [
        "export",
        "--checkpoint",
        str(work["checkpoint"]),
        "--arch",
        str(work["arch_file"]),
        "--out",
        str(out),
        "--target",
        str(work["target"]),
        "--test-limit",
        "300",
        "--calib-batches",
        "1",
        *extra,
    ]


def _one_line_error(res, *words):
    assert res.returncode == 2, (res.stdout, res.stderr)
    assert "Traceback" not in res.stderr and len(res.stderr.strip().splitlines()) == 1, res.stderr
    assert res.stderr.startswith("nas export: error: ")
    for w in words:
        assert w in res.stderr, res.stderr


def test_export_writes_verified_files_and_model_json(work, run_nas, tmp_path):
    from nas.export import check_files
    from spaces import space_hash

    out = tmp_path / "deploy"
    res = run_nas(*_base(work, out, "--lut", str(work["lut"]), "--max-latency", "100", "--json"))
    assert res.returncode == 0, res.stderr
    rec = json.loads(res.stdout)
    assert rec == json.loads((out / "model.json").read_text())
    assert rec["files"] == {"onnx-int8": "model.int8.onnx", "onnx-fp32": "model.fp32.onnx"}
    assert check_files(out) == []
    import hashlib

    assert rec["sha256"]["model.int8.onnx"] == hashlib.sha256((out / "model.int8.onnx").read_bytes()).hexdigest()
    arch = work["arch"]
    assert rec["arch"] == arch.to_dict() and rec["arch_id"] == arch.id
    assert rec["space"]["name"] == "mobilenet" and rec["space"]["hash"] == space_hash(tiny_space("mobilenet"))
    assert rec["input_shape"] == [1, 28, 28] and rec["num_classes"] == 10
    assert len(rec["class_names"]) == 10 and rec["class_names"][0] == "T-shirt/top"
    assert rec["normalization"]["mean"][0] == pytest.approx(0.286, abs=1e-3)
    assert rec["normalization"]["std"][0] == pytest.approx(0.353, abs=1e-3)
    assert rec["quantization"]["method"] == "qat" and rec["quantization"]["requantized"] is False
    acc = rec["accuracy"]
    assert {"fp32_test", "int8_test", "fakequant_test", "int8_vs_fakequant_agreement"} <= set(acc)
    assert acc["int8_vs_fakequant_agreement"] >= 99.5 and rec["checks"]["int8_vs_fakequant_agreement"] is True
    lat = rec["latency_ms"]
    assert lat["predicted"] > 0 and lat["measured"] > 0 and lat["measured_fp32"] > 0
    assert lat["ratio"] == pytest.approx(lat["measured"] / lat["predicted"])
    assert lat["budget"] == 100 and rec["checks"]["latency_within_budget"] is True
    # timing on a shared machine varies: the check must agree with the ratio, whatever it is
    assert rec["checks"]["latency_within_prediction"] == (abs(lat["ratio"] - 1) <= 0.10)
    assert rec["lut"]["fingerprint"] == rec["fingerprint"]["id"]  # the same fingerprint as cpu-ort-int8's LUT
    assert rec["target"] == "test-export-fast-int8" and rec["engine"]["name"] == "onnxruntime"
    assert rec["fingerprint"]["info"]["model_format"] == "int8_nhwc"
    assert {"cpu_model", "avx512_vnni", "amx_int8"} <= set(rec["host"])
    assert rec["source"]["kind"] == "supernet" and len(rec["source"]["checkpoint_sha256"]) == 64
    assert rec["created"].endswith("Z") and rec["integer_ops"]["all_convs_integer"] is True


@pytest.mark.skipif(
    __import__("nas.export", fromlist=["format_unavailable"]).format_unavailable("openvino") is not None,
    reason="OpenVINO is not installed (pip install 'hwnas[openvino]')",
)
def test_openvino_ir_loads_and_agrees(work, run_nas, tmp_path):
    import openvino as ov

    from nas.export.verify import openvino_logits
    from supernet.data import load_data

    out = tmp_path / "ov"
    res = run_nas(*_base(work, out, "--format", "onnx-int8,openvino"))
    assert res.returncode == 0, res.stderr
    assert "openvino: test" in res.stdout and "checks:" in res.stdout and "accuracy (300 test images)" in res.stdout
    rec = json.loads((out / "model.json").read_text())
    assert rec["files"]["openvino"] == "model.openvino/model.xml" and "onnx-fp32" not in rec["files"]
    assert {"model.openvino/model.xml", "model.openvino/model.bin"} <= set(rec["sha256"])
    model = ov.Core().read_model(str(out / "model.openvino" / "model.xml"))
    assert len(model.inputs) == 1 and list(model.outputs[0].get_partial_shape())[1] == 10
    # the IR is OpenVINO's own reading of the INT8 ONNX file: OpenVINO running that file gives the
    # same outputs, up to a rare rounding tie of one integer op (save_model's transformations)
    x = load_data("fashion-mnist", "test", 200).images.numpy()
    ir = openvino_logits(out / "model.openvino" / "model.xml", x)
    direct = openvino_logits(out / "model.int8.onnx", x)
    close = np.isclose(ir, direct, rtol=1e-4, atol=1e-4).all(axis=1)
    assert close.mean() >= 0.95 and np.abs(ir - direct).max() < 0.1
    acc = rec["accuracy"]
    assert 0 <= acc["openvino_test"] <= 100 and 0 <= acc["openvino_vs_fakequant_agreement"] <= 100
    assert rec["checks"]["openvino_accuracy"] == (acc["openvino_test"] >= acc["fakequant_test"] - 1.0)


def test_tensorrt_plan_with_the_real_api(work, run_nas, tmp_path):
    from hw_profiles import load_target
    from nas.export import format_unavailable

    reason = format_unavailable("tensorrt", load_target("gpu-trt-int8"))
    if reason is not None:
        pytest.skip(f"--format tensorrt needs TensorRT and a CUDA GPU: {reason}")
    import tensorrt as trt

    out = tmp_path / "trt"
    res = run_nas(
        "export",
        "--checkpoint",
        str(work["checkpoint"]),
        "--arch",
        str(work["arch_file"]),
        "--out",
        str(out),
        "--format",
        "onnx-int8,tensorrt",
        "--test-limit",
        "300",
        "--calib-batches",
        "1",
        "--json",
    )
    assert res.returncode == 0, res.stderr
    rec = json.loads(res.stdout)
    assert rec["target"] == "gpu-trt-int8" and rec["quantization"]["scheme"]["name"] == "tensorrt"
    assert rec["quantization"]["requantized"] is True  # the checkpoint trained u8 activations
    plan = out / "model.plan"
    engine = trt.Runtime(trt.Logger(trt.Logger.ERROR)).deserialize_cuda_engine(plan.read_bytes())
    assert engine is not None and rec["files"]["tensorrt"] == "model.plan"
    assert (out / "tensorrt.timing.cache").stat().st_size > 0
    assert rec["latency_ms"]["measured_file"] == "model.plan" and rec["latency_ms"]["measured"] > 0
    assert rec["accuracy"]["tensorrt_test"] >= rec["accuracy"]["fakequant_test"] - 1.0


def test_tensorrt_without_tensorrt_or_gpu_is_a_one_line_error(work, run_nas, tmp_path):
    from hw_profiles import load_target
    from nas.export import format_unavailable

    reason = format_unavailable("tensorrt", load_target("gpu-trt-int8"))
    if reason is None:
        pytest.skip("TensorRT and a CUDA GPU are present: test_tensorrt_plan_with_the_real_api runs instead")
    out = tmp_path / "trt"
    res = run_nas(
        "export",
        "--checkpoint",
        str(work["checkpoint"]),
        "--arch",
        str(work["arch_file"]),
        "--out",
        str(out),
        "--format",
        "tensorrt",
    )
    _one_line_error(res, "--format tensorrt: ", reason)
    assert not out.exists()  # refused before any work


def test_missing_checkpoint(work, run_nas, tmp_path):
    res = run_nas(
        "export",
        "--checkpoint",
        str(tmp_path / "nothing"),
        "--arch",
        str(work["arch_file"]),
        "--out",
        str(tmp_path / "o"),
    )
    _one_line_error(res, "no such checkpoint")
    assert not (tmp_path / "o").exists()


BAD_CASES = [
    "unknown format",
    "arch not in the space",
    "LUT of another target",
    "missing LUT",
    "unwritable --out",
    "--out is a file",
    "fp32 target",
    "unknown target",
    "negative finetune",
    "unknown scheme",
    "bad data",
    "--space with --checkpoint",
    "weights that do not fit",
    "weights without --data",
]


def _bad_argv(case, work, tmp_path):
    """``(argv, expected words)``: the base command with the case's options (argparse keeps the
    last value of a repeated option), or a ``--weights`` command."""
    import torch
    from safetensors.torch import save_file

    other_space_arch = tmp_path / "resnet_arch.json"
    other_space_arch.write_text(tiny_space("resnet").sample(0).to_json())
    (tmp_path / "a_file").write_text("x")
    save_file({"nope": torch.zeros(1)}, str(tmp_path / "bad.safetensors"))
    (tmp_path / "space.yaml").write_text(tiny_space("mobilenet").to_yaml())
    weights = [
        "export",
        "--weights",
        str(tmp_path / "bad.safetensors"),
        "--space",
        str(tmp_path / "space.yaml"),
        "--arch",
        str(work["arch_file"]),
        "--out",
        str(tmp_path / "out"),
    ]
    cases = {
        "unknown format": (
            ["--format", "onnx-int8,coreml"],
            "unknown format 'coreml' (formats: onnx-int8, onnx-fp32, ",
        ),
        "arch not in the space": (["--arch", str(other_space_arch)], None),
        "LUT of another target": (["--lut", str(work["lut"]), "--target", "cpu-ort-int8-2t"], "no measurements for"),
        "missing LUT": (["--lut", str(tmp_path / "none.db")], "no such file"),
        "unwritable --out": (["--out", str(tmp_path / "a_file" / "sub")], "cannot write there"),
        "--out is a file": (["--out", str(tmp_path / "a_file")], "exists and is not a folder"),
        "fp32 target": (["--target", "cpu-ort-fp32"], "has precision fp32"),
        "unknown target": (["--target", "no-such-target"], "unknown target"),
        "negative finetune": (["--finetune-epochs", "-1"], "--finetune-epochs: must be in [0, 100000], got -1"),
        "unknown scheme": (["--scheme", "int4"], "unknown quantization scheme"),
        "bad data": (["--data", "mnist-of-nowhere"], "mnist-of-nowhere"),
        "--space with --checkpoint": (["--space", "resnet"], "a supernet checkpoint carries its own space"),
    }
    if case == "weights that do not fit":
        return [*weights, "--data", "fashion-mnist"], "does not fit arch"
    if case == "weights without --data":
        return weights, "--weights needs --data"
    args, words = cases[case]
    return _base(work, tmp_path / "out", *args), words


@pytest.mark.parametrize("case", BAD_CASES)
def test_bad_input_is_one_line_error(work, tmp_path, capsys, case):
    """In process (``nas.cli.main``), like the other commands' option checks; the real command's
    error path is covered by the tests above."""
    from nas.cli import main

    argv, words = _bad_argv(case, work, tmp_path)
    try:
        code = main(argv)
    except SystemExit as exc:  # refused by the option's type, while parsing
        code = exc.code
    assert code == 2
    err = capsys.readouterr().err
    assert err.startswith("nas export: error: ") and len(err.strip().splitlines()) == 1, err
    if words is not None:
        assert words in err, err
    assert not (tmp_path / "out").exists()  # refused before anything was written


def test_weights_of_a_plain_model(work, run_nas, tmp_path):
    """`--weights` exports an arch trained outside a supernet: `space.build(arch)` and its weights;
    `--strict` exits 1 when a check fails."""
    import torch
    from safetensors.torch import save_file

    space = tiny_space("mobilenet")
    arch = space.sample(5)
    torch.manual_seed(0)
    model = space.build(arch)
    save_file({k: v.contiguous() for k, v in model.state_dict().items()}, str(tmp_path / "w.safetensors"))
    (tmp_path / "space.yaml").write_text(space.to_yaml())
    (tmp_path / "arch.json").write_text(arch.to_json())
    out = tmp_path / "plain"
    res = run_nas(
        "export",
        "--weights",
        str(tmp_path / "w.safetensors"),
        "--space",
        str(tmp_path / "space.yaml"),
        "--arch",
        str(tmp_path / "arch.json"),
        "--data",
        "fashion-mnist",
        "--out",
        str(out),
        "--target",
        str(work["target"]),
        "--format",
        "onnx-int8",
        "--test-limit",
        "200",
        "--calib-batches",
        "1",
        "--max-latency",
        "1e-6",
        "--strict",
        "--json",
    )
    assert res.returncode == 1, res.stderr  # --strict: the (impossible) latency budget is missed
    rec = json.loads(res.stdout)
    assert rec["source"]["kind"] == "module" and rec["quantization"]["method"] == "ptq"
    assert rec["arch_id"] == arch.id and rec["accuracy"]["int8_vs_fakequant_agreement"] >= 99.5
    assert rec["checks"]["latency_within_budget"] is False and rec["checks"]["passed"] is False
