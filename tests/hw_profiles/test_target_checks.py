"""Target parsing knows no engine; engines check targets where one is created (and on load)."""

from __future__ import annotations

import sys

import pytest

from hw_profiles import TargetConfigError, check_target, create_engine, load_target, target_from_dict
from hw_profiles.engines import list_engines
from hw_profiles.engines.registry import ENGINES, engine_names
from hw_profiles.targets import parse_target, read_target

TURBO = {"name": "x", "engine": "onnxruntime", "precision": "int8", "options": {"turbo": True}}


def test_one_engine_registry():
    assert list_engines() == sorted(engine_names()) == sorted(ENGINES)
    with pytest.raises(TargetConfigError, match="engine: 'mxnet' is not one of onnxruntime, openvino, tensorrt, torch"):
        parse_target({"name": "x", "engine": "mxnet", "precision": "int8"}, "t.yaml")


def test_parsing_is_pure_and_the_face_adds_the_engine_check(tmp_path):
    t = parse_target(TURBO, "t.yaml")  # the target's own keys are fine: no engine consulted
    assert t.options == {"turbo": True}
    with pytest.raises(TargetConfigError, match="t.yaml: options: unknown onnxruntime option 'turbo'"):
        check_target(t)
    with pytest.raises(TargetConfigError, match="t.yaml: options: unknown onnxruntime option 'turbo'"):
        target_from_dict(TURBO, "t.yaml")
    path = tmp_path / "t.yaml"
    path.write_text("name: x\nengine: tensorrt\nprecision: int8\ndevice: cpu\n")
    assert read_target(str(path)).device == "cpu"
    with pytest.raises(TargetConfigError, match="device 'cpu' is not supported"):
        load_target(str(path))


def test_an_engine_checks_its_target_when_created():
    good = load_target("cpu-ort-int8")
    with pytest.raises(TargetConfigError, match="builtin:cpu-ort-int8: options: unknown onnxruntime option 'turbo'"):
        create_engine(good.replace(options={"turbo": True}))  # .replace() skips parsing, not the check
    with pytest.raises(TargetConfigError, match="device 'tpu' is not supported by engine 'onnxruntime'"):
        create_engine(good.replace(device="tpu"))
    assert load_target(good.replace(device="tpu")).device == "tpu"  # a Target is returned as it is


def test_loading_a_target_imports_no_engine_module(tmp_path):
    import subprocess

    code = (
        "import sys; from hw_profiles.targets import read_target; read_target('cpu-ort-int8'); "
        "print(sorted(m for m in sys.modules if m.endswith('_engine') or m in ('onnxruntime', 'openvino')))"
    )
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True, cwd=tmp_path)
    assert out.stdout.strip() == "[]"
