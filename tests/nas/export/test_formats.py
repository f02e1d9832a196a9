"""nas.export's building blocks: formats, schemes, the output folder, static-batch copies (no training)."""

from __future__ import annotations

import numpy as np
import pytest
import torch
import torch.nn as nn

from hw_profiles import load_target
from nas.export import FORMATS, ExportConfigError, format_unavailable, parse_formats, scheme_for_target
from nas.export.artifact import MODEL_JSON, prepare_out_dir, sha256_file
from nas.export.exporter import _compatible
from nas.export.formats import check_formats_available, static_batch_copy
from quant.scheme import ORT_CPU, ORT_CPU_AVX2, TENSORRT, host_ort_scheme

pytestmark = pytest.mark.usefixtures("one_thread")


def test_parse_formats_orders_and_always_includes_int8():
    assert parse_formats(None) == ("onnx-int8", "onnx-fp32")
    assert parse_formats("openvino") == ("onnx-int8", "openvino")
    assert parse_formats(["tensorrt", "onnx-fp32", "onnx-int8"]) == ("onnx-int8", "onnx-fp32", "tensorrt")
    assert parse_formats(" onnx-fp32 , ") == ("onnx-int8", "onnx-fp32")
    assert set(parse_formats(",".join(FORMATS))) == set(FORMATS)


@pytest.mark.parametrize("spec, words", [("onnx-int4", "unknown format 'onnx-int4'"), (",", "no format given")])
def test_parse_formats_errors_are_one_line(spec, words):
    with pytest.raises(ExportConfigError, match=words) as info:
        parse_formats(spec)
    assert "\n" not in str(info.value)


def test_scheme_follows_the_target_engine():
    assert scheme_for_target(load_target("cpu-ort-int8")) == host_ort_scheme()
    assert scheme_for_target(load_target("gpu-trt-int8")) == TENSORRT
    assert scheme_for_target(load_target("cpu-openvino-int8")) == ORT_CPU


def test_compatible_schemes():
    assert _compatible(ORT_CPU, ORT_CPU) is None
    assert _compatible(ORT_CPU_AVX2, ORT_CPU) is None  # ±63 weights run exactly on a VNNI machine
    assert "±127 weights" in _compatible(ORT_CPU, ORT_CPU_AVX2)
    assert "symmetric int8" in _compatible(ORT_CPU, TENSORRT)
    assert "uint8 activations, the target needs symmetric int8" in _compatible(ORT_CPU, TENSORRT)


def test_tensorrt_format_needs_a_tensorrt_target_or_says_what_is_missing():
    cpu = load_target("cpu-ort-int8")
    reason = format_unavailable("tensorrt", load_target("gpu-trt-int8"))
    if reason is None:  # TensorRT and a GPU are here: the format is refused for a CPU target only
        with pytest.raises(ExportConfigError, match="needs a TensorRT target"):
            check_formats_available(["onnx-int8", "tensorrt"], cpu)
        return
    assert "tensorrt" in reason.lower() or "cuda" in reason.lower() or "gpu" in reason.lower()
    from nas.export import FormatUnavailableError

    with pytest.raises(FormatUnavailableError, match="--format tensorrt: ") as info:
        check_formats_available(["onnx-int8", "tensorrt"], cpu)
    assert "\n" not in str(info.value)


def test_prepare_out_dir(tmp_path):
    out = prepare_out_dir(tmp_path / "a" / "b")
    assert out.is_dir()
    (out / MODEL_JSON).write_text("{}")
    prepare_out_dir(out)
    assert not (out / MODEL_JSON).exists()  # a stale record never describes a half-written export
    (tmp_path / "file").write_text("x")
    with pytest.raises(ExportConfigError, match="exists and is not a folder"):
        prepare_out_dir(tmp_path / "file")
    with pytest.raises(ExportConfigError, match="cannot write there"):
        prepare_out_dir(tmp_path / "file" / "sub")


def test_static_batch_copy_fixes_the_batch(tmp_path):
    import onnx

    from quant.export import export_fp32_onnx
    from quant.ort import ort_predict

    model = nn.Sequential(nn.Conv2d(1, 4, 3), nn.ReLU(), nn.Flatten(), nn.Linear(4 * 6 * 6, 3)).eval()
    src = export_fp32_onnx(model, tmp_path / "m.onnx", (1, 1, 8, 8))
    dst = static_batch_copy(src, tmp_path / "s.onnx", 4)
    proto = onnx.load(str(dst))
    assert proto.graph.input[0].type.tensor_type.shape.dim[0].dim_value == 4
    assert proto.graph.output[0].type.tensor_type.shape.dim[0].dim_value == 4
    x = np.random.default_rng(0).standard_normal((4, 1, 8, 8)).astype(np.float32)
    np.testing.assert_allclose(
        ort_predict(dst, x, batch_size=4), model(torch.from_numpy(x)).detach().numpy(), rtol=1e-4, atol=1e-5
    )
    assert sha256_file(src) != sha256_file(dst)
