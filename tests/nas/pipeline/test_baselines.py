"""`report.baselines` of `nas run`: the report stage trains, quantizes, scores and times each
baseline on the run's data and targets, puts it in the report, and never redoes a finished one."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

# few timed runs and no quiet gate (the built-in targets' fingerprints, faster measurement)
_MEASURE = (
    "measure: {warmup_runs: 3, warmup_s: 0.0, min_runs: 10, min_time_s: 0.0, rounds: 2, max_rounds: 2, "
    "quiet_gate: false}"
)
_TARGET = """\
name: test-baselines-{precision}
engine: onnxruntime
precision: {precision}
threads: 1
batch: 1
options: {{providers: [CPUExecutionProvider], graph_optimization_level: all, execution_mode: sequential}}
{measure}
"""


def _config(tmp: Path) -> dict:
    targets = {}
    for precision in ("int8", "fp32"):
        path = tmp / f"{precision}.yaml"
        path.write_text(_TARGET.format(precision=precision, measure=_MEASURE))
        targets[precision] = str(path)
    return {
        "name": "baselines",
        "space": {
            "name": "resnet",
            "args": {"base_widths": [8, 16], "depths": [1], "kernels": [3], "width_mults": [0.5, 1.0]},
        },
        "data": {"name": "fashion-mnist", "train_limit": 256, "test_limit": 128},
        "target": {"name": targets["int8"], "fp32": targets["fp32"]},
        "supernet": {"epochs": 1, "qat_epochs": 0, "threads": 1},
        "report": {"random_subnets": 0, "baselines": ["plain_cnn"]},
    }


def _stamps(folder: Path) -> dict[str, int]:
    return {str(f.relative_to(folder)): f.stat().st_mtime_ns for f in folder.rglob("*") if f.is_file()}


def test_report_stage_trains_times_and_keeps_a_baseline(tmp_path, monkeypatch):
    import nas.baselines
    from nas.pipeline import Experiment
    from nas.pipeline.report import BASELINES_LABEL, pareto_figure
    from nas.pipeline.stages import run_report

    cfg = _config(tmp_path)
    out = tmp_path / "run"
    logs: list[str] = []
    summary = run_report(Experiment(cfg, out, progress=False, log=logs.append))
    assert summary["baselines"] == ["plain_cnn"]

    report = json.loads((out / "report" / "report.json").read_text())
    [b] = report["baselines"]
    assert b["name"] == "plain_cnn" and "recipe" not in b
    for key in ("int8_acc", "fp32_acc"):
        assert isinstance(b[key], float) and 0.0 <= b[key] <= 100.0, key  # percent, as the exports'
    for key in ("int8_ms", "fp32_ms"):
        assert isinstance(b[key], float) and b[key] > 0.0, key
    assert b["epochs"] == 1 and b["test_images"] == 128 and b["calibration_images"] == b["train_images"]
    assert 200 <= b["train_images"] < 256  # the supernet's training images: the validation share held out
    assert b["int8_target"] == "test-baselines-int8" and b["fp32_target"] == "test-baselines-fp32"
    folder = out / "report" / "baselines" / "plain_cnn"
    assert b["folder"] == "report/baselines/plain_cnn" and (out / b["int8_onnx"]).is_file()
    assert (out / b["fp32_onnx"]).is_file() and not (folder / "checkpoint.pt").exists()
    assert any("baseline plain_cnn: INT8" in m for m in logs)

    md = (out / "report" / "report.md").read_text()
    assert "## Baselines" in md and "| plain_cnn |" in md
    line = next(ln for ln in pareto_figure(report).axes[0].get_lines() if ln.get_label() == BASELINES_LABEL)
    assert list(line.get_xdata()) == [b["int8_ms"]] and list(line.get_ydata()) == [b["int8_acc"]]
    assert (out / "report" / "pareto.png").read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"

    # a rerun: the finished baseline is kept as it is (nothing trained, scored, timed or rewritten)
    stamps = _stamps(folder)

    def refuse(*args, **kwargs):
        raise AssertionError("a finished baseline was prepared again")

    monkeypatch.setattr(nas.baselines, "prepare_baseline", refuse)
    logs.clear()
    run_report(Experiment(cfg, out, progress=False, log=logs.append))
    assert "[report] baseline plain_cnn: finished earlier: kept" in logs
    assert _stamps(folder) == stamps
    assert json.loads((out / "report" / "report.json").read_text())["baselines"] == [b]
    monkeypatch.undo()

    # stopped after training and quantizing, before its record: only scoring and timing are redone
    (folder / "baseline.json").unlink()
    del stamps["baseline.json"]
    logs.clear()
    run_report(Experiment(cfg, out, progress=False, log=logs.append))
    assert any("trained, exported and quantized already" in m for m in logs)
    now = _stamps(folder)
    assert {k: v for k, v in now.items() if k != "baseline.json"} == stamps and "baseline.json" in now
    [again] = json.loads((out / "report" / "report.json").read_text())["baselines"]
    assert again["int8_acc"] == b["int8_acc"] and again["fp32_acc"] == b["fp32_acc"]


def test_no_baselines_configured_means_none_reported(tmp_path):
    from nas.pipeline import Experiment
    from nas.pipeline.collect import collect_report_data
    from nas.pipeline.stages import run_baselines

    cfg = _config(tmp_path)
    cfg["report"]["baselines"] = []
    exp = Experiment(cfg, tmp_path / "run", progress=False, log=lambda m: None)
    assert run_baselines(exp) == []
    assert not (tmp_path / "run" / "report" / "baselines").exists()
    assert collect_report_data(exp)["baselines"] == []


@pytest.mark.parametrize("stale", ["checkpoint", "train"])
def test_prepare_baseline_redoes_work_of_another_recipe(tmp_path, stale):
    """In a folder of its own (as `nas run` keeps them), a checkpoint or a trained model of
    another recipe is not resumed or reused, and what was made from it is dropped."""
    import numpy as np

    from nas.baselines import BaselineRecipe, prepare_baseline, train_recipe

    rng = np.random.default_rng(0)
    x, y = rng.standard_normal((128, 1, 28, 28)).astype(np.float32), rng.integers(0, 10, 128)
    old, new = BaselineRecipe(epochs=1), BaselineRecipe(epochs=1, peak_lr=0.05)
    folder = tmp_path / "plain_cnn"
    first = prepare_baseline(
        "plain_cnn", old, x, y, x[:4], folder, train_key=train_recipe("plain_cnn", old, 128), calib=8
    )
    assert first.stages_run == ["train", "export", "quantize"] and not first.cached
    if stale == "checkpoint":  # as if a run of the old recipe had been stopped mid-training
        import torch

        (folder / "train.json").unlink()
        torch.save({}, folder / "checkpoint.pt")
        (folder / "checkpoint.json").write_text(json.dumps({"recipe": train_recipe("plain_cnn", old, 128)}))
    logs: list[str] = []
    second = prepare_baseline(
        "plain_cnn",
        new,
        x,
        y,
        x[:4],
        folder,
        train_key=train_recipe("plain_cnn", new, 128),
        calib=8,
        test_x=x[:32],
        test_y=y[:32],
        log=logs.append,
    )
    assert second.stages_run == ["train", "export", "quantize"]
    assert second.int8_path == first.int8_path and second.int8_path.is_file()  # same calibration key: redone
    assert 0.0 <= second.int8_acc <= 100.0 and 0.0 <= second.fp32_acc <= 100.0
    assert not (folder / "checkpoint.pt").exists() and not (folder / "checkpoint.json").exists()
    assert (stale == "checkpoint") == any("belongs to another recipe" in m for m in logs)
