"""Targets: built-ins, YAML files, one-line errors naming the file and key."""

from __future__ import annotations

import pytest

from hw_profiles import (
    EngineUnavailableError,
    TargetConfigError,
    UnknownTargetError,
    create_engine,
    list_targets,
    load_target,
    target_availability,
    target_from_dict,
)

REQUIRED = ("cpu-ort-int8", "cpu-ort-fp32", "cpu-ort-int8-2t", "cpu-openvino-int8", "gpu-trt-int8", "gpu-trt-fp16")


@pytest.mark.parametrize("name", REQUIRED)
def test_builtin_targets_load(name):
    t = load_target(name)
    assert t.name == name and t.batch == 1 and t.source == f"builtin:{name}"
    assert t.engine in ("onnxruntime", "openvino", "tensorrt")
    assert t.precision in ("int8", "fp32", "fp16")
    assert target_from_dict(t.to_dict(), "roundtrip") == t.replace(source="roundtrip")


def test_builtin_settings():
    assert load_target("cpu-ort-int8").threads == 1 and load_target("cpu-ort-fp32").precision == "fp32"
    assert load_target("cpu-ort-int8-2t").threads == 2
    assert load_target("gpu-trt-fp16").device == "gpu"
    assert set(REQUIRED) <= set(list_targets())


def test_unknown_target_is_one_line():
    with pytest.raises(UnknownTargetError) as info:
        load_target("cpu-nope")
    msg = str(info.value)
    assert "\n" not in msg and "cpu-nope" in msg and "cpu-ort-int8" in msg
    with pytest.raises(UnknownTargetError, match="does not exist"):
        load_target("missing/target.yaml")


@pytest.mark.parametrize(
    "text,match",
    [
        ("name: x\nengine: onnxruntime\nprecision: int8\ncolour: red\n", "unknown key 'colour'"),
        ("name: x\nengine: onnxruntime\n", "missing key 'precision'"),
        ("name: x\nengine: onnxruntime\nprecision: int4\n", "precision: 'int4' is not one of"),
        ("name: x\nengine: mxnet\nprecision: int8\n", "engine: 'mxnet' is not one of"),
        ("name: x\nengine: onnxruntime\nprecision: int8\nthreads: 0\n", "threads: expected a positive integer"),
        (
            "name: x\nengine: onnxruntime\nprecision: int8\noptions: {turbo: true}\n",
            "unknown onnxruntime option 'turbo'",
        ),
        ("name: x\nengine: tensorrt\nprecision: int8\ndevice: cpu\n", "device 'cpu' is not supported"),
        ("name: x\nengine: onnxruntime\nprecision: int8\nmeasure: {rounds: 0}\n", "rounds and min_runs"),
        ("name: x\nengine: onnxruntime\nprecision: int8\nmeasure: {laps: 3}\n", "unknown key 'laps'"),
        ("name: [x\n", "invalid YAML"),
    ],
)
def test_bad_target_files(tmp_path, text, match):
    path = tmp_path / "t.yaml"
    path.write_text(text)
    with pytest.raises((TargetConfigError, Exception)) as info:
        load_target(str(path))
    msg = str(info.value)
    assert "\n" not in msg and str(path) in msg
    assert match in msg


def test_custom_target_file(tmp_path):
    path = tmp_path / "mine.yaml"
    path.write_text(
        "name: mine\nengine: onnxruntime\nprecision: fp32\nthreads: 2\naffinity: [0]\nmeasure: {rounds: 5}\n"
    )
    t = load_target(str(path))
    assert (t.threads, t.affinity, t.measure.rounds, t.timer) == (2, (0,), 5, "auto")


def test_unavailable_engines_say_why():
    for name in ("gpu-trt-int8", "gpu-trt-fp16", "cpu-openvino-int8"):
        target = load_target(name)
        reason = target_availability(target)
        if reason is None:
            continue
        with pytest.raises(EngineUnavailableError) as info:
            create_engine(target)
        assert reason in str(info.value) and name in str(info.value) and "\n" not in str(info.value)
