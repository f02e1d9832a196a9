"""Engines: onnxruntime measures models; OpenVINO and TensorRT where installed (else skipped
with the reason); fingerprints are stable and leave out volatile facts."""

from __future__ import annotations

import pytest

from hw_profiles import MeasurementError, cpu_info, create_engine, load_target, target_availability
from hw_profiles.probe import probe_model_bytes
from hw_profiles.sysinfo import ISA_FLAGS


@pytest.fixture(scope="module")
def probe_file(tmp_path_factory):
    path = tmp_path_factory.mktemp("probe") / "probe.onnx"
    path.write_bytes(probe_model_bytes())
    return path


def _fast(name, **measure):
    t = load_target(name)
    return t.replace(measure=t.measure.replace(rounds=2, min_time_s=0.005, warmup_s=0.0, quiet_gate=False, **measure))


def test_onnxruntime_measures(probe_file):
    engine = create_engine(_fast("cpu-ort-fp32"))
    try:
        stats = engine.measure_file(probe_file)
        assert stats.median_ms > 0 and stats.count >= 10 and stats.min_ms <= stats.median_ms
        with engine.load(probe_file) as runner:
            assert runner.runs_in_caller_thread and runner.inputs[0].shape == (1, 16, 28, 28)
    finally:
        engine.close()


def test_quiet_gate_is_used(probe_file):
    engine = create_engine(load_target("cpu-ort-fp32"))
    try:
        gate = engine.gate()
        assert gate is not None and gate.baseline > 0
        assert engine.gate() is gate
    finally:
        engine.close()


def test_bad_model_is_one_line(tmp_path):
    bad = tmp_path / "bad.onnx"
    bad.write_bytes(b"not onnx")
    engine = create_engine(_fast("cpu-ort-int8"))
    with pytest.raises(MeasurementError) as info:
        engine.measure_file(bad)
    assert "\n" not in str(info.value) and str(bad) in str(info.value)


def test_fingerprint():
    a = create_engine(load_target("cpu-ort-int8")).fingerprint()
    b = create_engine(load_target("cpu-ort-int8")).fingerprint()
    assert a.id == b.id and a.to_json() == b.to_json()
    renamed = create_engine(load_target("cpu-ort-int8").replace(name="my-copy")).fingerprint()
    assert renamed.id == a.id and renamed.target == "my-copy"
    for other in ("cpu-ort-fp32", "cpu-ort-int8-2t"):
        assert create_engine(load_target(other)).fingerprint().id != a.id
    info = a.info
    assert info["engine"] == "onnxruntime" and info["precision"] == "int8" and info["threads"] == 1
    assert info["engine_version"] and info["cpu"]["model"] and info["model_format"] == "int8_nhwc"
    text = a.to_json().lower()
    assert "mhz" not in text and "load" not in text
    assert set(cpu_info()["flags"]) <= set(ISA_FLAGS)


def test_two_threads_with_affinity(probe_file):
    import os

    if not hasattr(os, "sched_getaffinity") or len(os.sched_getaffinity(0)) < 2:
        pytest.skip("needs two CPUs")
    cpus = sorted(os.sched_getaffinity(0))[:2]
    engine = create_engine(_fast("cpu-ort-int8-2t").replace(affinity=tuple(cpus)))
    before = os.sched_getaffinity(0)
    assert engine.timer() == "wall"
    assert engine.measure_file(probe_file).median_ms > 0
    assert os.sched_getaffinity(0) == before


def test_openvino(probe_file):
    target = _fast("cpu-openvino-int8")
    reason = target_availability(target)
    if reason:
        pytest.skip(f"cpu-openvino-int8: {reason}")
    engine = create_engine(target)
    assert engine.measure_file(probe_file).median_ms > 0
    assert engine.fingerprint().info["engine"] == "openvino"


@pytest.mark.gpu
@pytest.mark.parametrize("name", ["gpu-trt-int8", "gpu-trt-fp16"])
def test_tensorrt(probe_file, name):
    target = _fast(name)
    reason = target_availability(target)
    if reason:
        pytest.skip(f"{name}: {reason}")
    engine = create_engine(target)
    try:
        stats = engine.measure_file(probe_file)
        assert stats.median_ms > 0
        assert engine.fingerprint().info["gpu"]["name"]
    finally:
        engine.close()
