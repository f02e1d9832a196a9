"""Test helpers shared by the latency_lut, hw_profiles and CLI tests (a tiny space, a fast target)."""

from __future__ import annotations

from pathlib import Path

TINY_SPACE_YAML = """\
name: tiny
in_chans: 1
num_classes: 10
resolution: 16
body:
  sequential:
    stem: {op: conv_bn_act, out: 8, kernel: 3, stride: 1, act: relu}
    stage1:
      repeat:
        op: mbconv
        out: {ref: width}
        kernel: {choice: [3, 5]}
        expand: {choice: [2.0, 4.0]}
        stride: {expr: 2 if index == 0 else 1}
        act: relu
      depth: {choice: [1, 2]}
      params:
        width: {choice: [8, 16]}
    head: {op: classifier, num_classes: {ref: num_classes}, act: hardswish}
"""

# Same fingerprint as the built-in cpu-ort-int8 (measurement settings are not part of it),
# but a few runs per model so that tests stay fast.
FAST_TARGET_YAML = """\
name: test-fast-int8
engine: onnxruntime
precision: int8
threads: 1
batch: 1
options: {{providers: [CPUExecutionProvider], graph_optimization_level: all, execution_mode: sequential}}
measure: {{warmup_runs: 2, warmup_s: 0.0, min_runs: 3, min_time_s: {min_time}, rounds: 1, max_rounds: 1,
           quiet_gate: false}}
"""


def write_fast_target(folder: Path, precision: str = "int8", min_time: float = 0.0, name: str | None = None) -> Path:
    text = FAST_TARGET_YAML.format(min_time=min_time).replace("precision: int8", f"precision: {precision}")
    text = text.replace("test-fast-int8", name or f"test-fast-{precision}")
    path = folder / f"{name or 'fast-' + precision}.yaml"
    path.write_text(text)
    return path
