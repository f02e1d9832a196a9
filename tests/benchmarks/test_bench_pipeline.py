"""bench_pipeline.py: Pareto dominance, `nas export` folder checks, a real tiny run and its resume."""

from __future__ import annotations

import importlib.util
import json
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest

ROOT = Path(__file__).resolve().parents[2]
BENCH = ROOT / "benchmarks" / "bench_pipeline.py"


@pytest.fixture(scope="module")
def bench():
    spec = importlib.util.spec_from_file_location("bench_pipeline", BENCH)
    module = importlib.util.module_from_spec(spec)
    sys.modules[spec.name] = module  # its dataclasses look their module up
    spec.loader.exec_module(module)
    return module


def _row(bench, name, acc, ms, kind="baseline"):
    return bench.Row(name, kind, "", "", int8_acc=acc, int8_ms=ms)


# ----------------------------------------------------------------------------------------------
# dominance (pure)
# ----------------------------------------------------------------------------------------------
def test_dominance_needs_higher_accuracy_and_lower_latency(bench):
    assert bench.dominates(92.0, 0.1, 91.0, 0.2)
    assert not bench.dominates(92.0, 0.3, 91.0, 0.2)  # more accurate but slower
    assert not bench.dominates(90.0, 0.1, 91.0, 0.2)  # faster but less accurate
    assert not bench.dominates(91.0, 0.1, 91.0, 0.2)  # a tie in accuracy is not dominance
    assert not bench.dominates(92.0, 0.2, 91.0, 0.2)  # nor in latency
    assert not bench.dominates(None, 0.1, 91.0, 0.2)
    assert not bench.dominates(92.0, 0.1, 91.0, None)


def test_dominated_baselines_and_verdict(bench):
    base = [
        _row(bench, "plain_cnn", 92.3, 0.08),
        _row(bench, "resnet18", 91.7, 0.22),
        _row(bench, "mobilenetv3_large_100", 90.6, 0.23),
    ]
    good = _row(bench, "a", 92.0, 0.15, "exported")
    half = _row(bench, "b", 91.0, 0.15, "exported")
    assert bench.dominated_baselines(good, base) == ["resnet18", "mobilenetv3_large_100"]
    assert bench.dominated_baselines(half, base) == ["mobilenetv3_large_100"]
    v = bench.verdict([good, half], base)
    assert v["checked"] and v["met"] and v["winners"] == ["a"]
    v = bench.verdict([half], base)
    assert v["checked"] and v["met"] is False and v["winners"] == []
    v = bench.verdict([good], base[:1])
    assert not v["checked"] and v["met"] is None and "resnet18" in v["why"]
    assert not bench.verdict([], base)["checked"]
    assert bench.versus(good, base[0]) == "-0.30 pt acc, 1.88× latency"


# ----------------------------------------------------------------------------------------------
# exported folders
# ----------------------------------------------------------------------------------------------
@pytest.fixture(scope="module")
def exported(tmp_path_factory) -> Path:
    """A tiny `nas export`-like folder: FP32 and INT8 QDQ ONNX of a small CNN, and model.json."""
    import torch
    import torch.nn as nn

    import quant
    from quant.ort_baseline import ort_quantize_static

    out = tmp_path_factory.mktemp("exported") / "tiny"
    torch.manual_seed(0)
    model = nn.Sequential(
        nn.Conv2d(1, 8, 3, stride=2, padding=1), nn.ReLU(), nn.AdaptiveAvgPool2d(1), nn.Flatten(), nn.Linear(8, 10)
    ).eval()
    quant.export_fp32_onnx(model, out / "model.fp32.onnx", (1, 1, 28, 28))
    calib = np.random.default_rng(0).standard_normal((16, 1, 28, 28)).astype(np.float32)
    ort_quantize_static(out / "model.fp32.onnx", out / "model.int8.onnx", calib)
    meta = {"arch_id": "tiny0", "input_shape": [1, 28, 28], "accuracy": {"int8_test": 10.0, "fp32_test": 10.5}}
    (out / "model.json").write_text(json.dumps(meta))
    return out


def _copy(src: Path, dst: Path, meta: object | None = None, drop: str | None = None) -> Path:
    dst.mkdir(parents=True)
    for f in src.iterdir():
        if f.name != drop:
            (dst / f.name).write_bytes(f.read_bytes())
    if meta is not None:
        (dst / "model.json").write_text(meta if isinstance(meta, str) else json.dumps(meta))
    return dst


def test_read_exported_ok(bench, exported, tmp_path):
    row = bench.read_exported(exported)
    assert row.name == "tiny0" and row.kind == "exported" and row.info["normalization"] is None
    assert row.info["model_json_accuracy"] == {"int8_test": 10.0, "fp32_test": 10.5, "test_images": None}
    assert row.int8_path.endswith("model.int8.onnx") and row.fp32_path.endswith("model.fp32.onnx")
    # as `nas export` writes it: no arch (a plain module), per-channel normalisation, the data set
    meta = {
        "arch_id": None,
        "input_shape": [1, 28, 28],
        "accuracy": {"int8_test": 91.5, "fp32_test": None},
        "normalization": {"mean": [0.28604], "std": [0.35302]},
        "data": {"name": "fashion_mnist", "test_images": 10000},
    }
    row = bench.read_exported(_copy(exported, tmp_path / "noarch", meta))
    assert row.name == "noarch" and row.info["normalization"] == (0.28604, 0.35302)
    assert row.info["model_json_accuracy"] == {"int8_test": 91.5, "fp32_test": None, "test_images": 10000}


@pytest.mark.parametrize(
    "meta, drop, message",
    [
        (None, "model.json", "no model.json"),
        (None, "model.int8.onnx", "no model.int8.onnx"),
        ("{not json", None, "invalid JSON"),
        ([1, 2], None, "expected a JSON object"),
        ({"input_shape": [1, 28, 28], "accuracy": {"int8_test": 90.0}}, None, "missing key 'arch_id'"),
        ({"arch_id": "x", "accuracy": {"int8_test": 90.0}}, None, "missing key 'input_shape'"),
        ({"arch_id": "x", "input_shape": [1, 28, 28]}, None, "missing key 'accuracy.int8_test'"),
        (
            {"arch_id": "x", "input_shape": [1, 28, 28], "accuracy": {"fp32_test": 90.0}},
            None,
            "missing key 'accuracy.int8_test'",
        ),
        ({"arch_id": "x", "input_shape": [1, 28, 28], "accuracy": {"int8_test": "high"}}, None, "expected a number"),
        ({"arch_id": "x", "input_shape": [3, 32, 32], "accuracy": {"int8_test": 90.0}}, None, "is not Fashion-MNIST's"),
        ({"arch_id": "x", "input_shape": "1x28x28", "accuracy": {"int8_test": 90.0}}, None, "expected [C, H, W]"),
        (
            {"arch_id": "x", "input_shape": [1, 28, 28], "accuracy": {"int8_test": 90.0}, "data": {"name": "digits"}},
            None,
            "trained on 'digits'",
        ),
        (
            {
                "arch_id": "x",
                "input_shape": [1, 28, 28],
                "accuracy": {"int8_test": 90.0},
                "normalization": {"mean": [0.3]},
            },
            None,
            "normalization.std",
        ),
    ],
)
def test_bad_exported_folder_is_a_one_line_error(bench, exported, tmp_path, meta, drop, message):
    bad = _copy(exported, tmp_path / "bad", meta, drop)
    with pytest.raises(bench.BenchError) as info:
        bench.read_exported(bad)
    text = str(info.value)
    assert message in text and "\n" not in text


def test_cli_reports_a_bad_folder_before_training(bench, tmp_path, capsys):
    code = bench.main(["--exported", str(tmp_path / "nope"), "--models", "plain_cnn", "--work", str(tmp_path / "w")])
    err = capsys.readouterr().err.strip()
    assert code == 2 and err.count("\n") == 0 and "no such folder" in err and err.startswith("error: ")
    assert not (tmp_path / "w").exists()  # nothing was trained
    assert bench.main(["--models", "vgg16"]) == 2
    assert "unknown baseline 'vgg16'" in capsys.readouterr().err


# ----------------------------------------------------------------------------------------------
# a real run, then a resumed one
# ----------------------------------------------------------------------------------------------
def _run(work: Path, out: Path, exported: Path) -> dict:
    cmd = [
        sys.executable,
        str(BENCH),
        "--train-limit",
        "256",
        "--test-limit",
        "128",
        "--epochs",
        "1",
        "--models",
        "plain_cnn",
        "--passes",
        "1",
        "--calib",
        "64",
        "--work",
        str(work),
        "--json",
        str(out),
        "--exported",
        str(exported),
    ]
    proc = subprocess.run(cmd, capture_output=True, text=True, cwd=ROOT, timeout=600)
    assert proc.returncode == 0, proc.stderr[-2000:]
    assert "plain_cnn" in proc.stdout and "tiny0" in proc.stdout and "avx512_vnni" in proc.stdout
    return json.loads(out.read_text())


def test_tiny_run_then_resume(tmp_path, exported):
    work = tmp_path / "work"
    first = _run(work, tmp_path / "a.json", exported)
    host = first["host"]
    assert host["cpu"] and isinstance(host["avx512_vnni"], bool) and isinstance(host["amx_int8"], bool)
    assert host["onnxruntime"] and host["latency_threads"] == 1 and host["targets"] == ["cpu-ort-fp32", "cpu-ort-int8"]
    assert first["settings"]["train_images"] == 256 and first["settings"]["test_images"] == 128
    assert first["recipe"]["batch_size"] == 128 and first["recipe"]["peak_lr"] == 0.1 and first["recipe"]["nesterov"]
    plain, tiny = first["models"]
    assert plain["name"] == "plain_cnn" and plain["kind"] == "baseline" and plain["cached"] is False
    assert tiny["name"] == "tiny0" and tiny["kind"] == "exported"
    for m in (plain, tiny):
        for key in ("fp32_acc", "int8_acc", "fp32_ms", "int8_ms", "speedup"):
            assert isinstance(m[key], float) and m[key] >= 0, key
        assert m["speedup"] == pytest.approx(m["fp32_ms"] / m["int8_ms"])
        assert len(m["latency"]["int8"]["pass_medians_ms"]) == 1
    assert plain["params"] > 100_000 and plain["torch_params"] > plain["params"]  # batch norms folded in ONNX
    assert tiny["model_json_accuracy"]["int8_test"] == 10.0
    want = [n for n in ("plain_cnn",) if tiny["int8_acc"] > plain["int8_acc"] and tiny["int8_ms"] < plain["int8_ms"]]
    assert tiny["dominates"] == want
    assert first["verdict"]["checked"] is False  # resnet18 and mobilenetv3 were not run

    assert plain["stages_run"] == ["train", "export", "quantize"] and plain["calibration_images"] == 64

    folder = Path(plain["work"])
    stamps = {str(f.relative_to(folder)): f.stat().st_mtime_ns for f in folder.rglob("*")}
    assert {"model.pt", "train.json", "model.fp32.onnx", "export.json"} <= set(stamps)
    assert any(k.endswith("/model.int8.onnx") for k in stamps) and any(k.endswith("/quant.json") for k in stamps)
    assert not (folder / "checkpoint.pt").exists()
    second = _run(work, tmp_path / "b.json", exported)
    again = second["models"][0]
    assert again["cached"] is True and again["stages_run"] == [] and again["work"] == plain["work"]
    now = {str(f.relative_to(folder)): f.stat().st_mtime_ns for f in folder.rglob("*")}
    assert now == stamps  # nothing retrained, re-exported, re-quantized or re-evaluated
    assert again["int8_acc"] == plain["int8_acc"] and again["train"] == plain["train"]


def test_new_calibration_reuses_the_trained_model(bench, tmp_path):
    from nas.baselines import BaselineRecipe

    rng = np.random.default_rng(0)
    x, y = rng.standard_normal((128, 1, 28, 28)).astype(np.float32), rng.integers(0, 10, 128)
    recipe = BaselineRecipe(epochs=1)
    logs: list[str] = []
    first = bench.prepare_baseline("plain_cnn", recipe, x, y, x[:8], tmp_path, 128, 32, "minmax", logs.append)
    assert first.info["stages_run"] == ["train", "export", "quantize"]
    train_json = Path(first.info["work"]) / "train.json"
    stamp = train_json.stat().st_mtime_ns
    other = bench.prepare_baseline("plain_cnn", recipe, x, y, x[:8], tmp_path, 128, 16, "percentile", logs.append)
    assert other.info["stages_run"] == ["quantize"] and other.info["cached"] is True
    assert other.fp32_path == first.fp32_path and other.int8_path != first.int8_path
    assert train_json.stat().st_mtime_ns == stamp
    again = bench.prepare_baseline(
        "plain_cnn", BaselineRecipe(epochs=2), x, y, x[:8], tmp_path, 128, 32, "minmax", logs.append
    )
    assert again.info["stages_run"] == ["train", "export", "quantize"] and again.info["work"] != first.info["work"]
