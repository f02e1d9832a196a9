"""Test helpers shared by the latency_lut, hw_profiles and CLI tests: a tiny space, a fast
target, test fingerprints and LUTs filled with made-up measurements, a LUT's rows."""

from __future__ import annotations

import sqlite3
from collections.abc import Iterable
from pathlib import Path
from typing import Any

from hw_profiles import Fingerprint, Stats

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


#: a fingerprint of an INT8 onnxruntime target on a made-up CPU (for LUT storage tests)
TEST_FP = Fingerprint(
    {
        "engine": "onnxruntime",
        "engine_version": "1.0",
        "precision": "int8",
        "threads": 1,
        "cpu": {"model": "test cpu", "flags": []},
    },
    "cpu-test-int8",
)

#: the fingerprint of the synthetic LUTs of :func:`synthetic_lut` (for prediction tests)
SYNTHETIC_FP = Fingerprint(
    {
        "engine": "onnxruntime",
        "engine_version": "x",
        "precision": "int8",
        "threads": 1,
        "model_format": "int8",
        "cpu": {"model": "synthetic"},
    },
    "synthetic-int8",
)


def exact_stats(ms: float) -> Stats:
    """A measurement of exactly ``ms`` milliseconds (one sample, stable)."""
    return Stats(ms, ms, 0, ms, 1, 0, 1, True)


def synthetic_lut(
    path: Path,
    space: Any,
    skip: Iterable[str] = (),
    correction: dict[str, Any] | None = None,
    record: dict[str, Any] | None = None,
) -> tuple[str, dict[str, float]]:
    """A LUT of every priced part (block, merge) of ``space`` on :data:`SYNTHETIC_FP` with latency 0.01 × (the block's
    index + 1), the per-call overhead 0.005 and the input quantization 0.002, but the keys in
    ``skip``; ``record``: the space record to store (``space_record(space)`` by default),
    ``correction``: a correction to store with it. Returns ``(space signature, latency by key)``."""
    from latency_lut.db import open_lut
    from latency_lut.keys import overhead_key, part_key, quantize_key
    from latency_lut.manifest import space_record
    from latency_lut.parts import space_parts

    skip = set(skip)
    c, h, w = space.input_shape
    lat: dict[str, float] = {}
    with open_lut(path, "w") as db:
        db.register_fingerprint(SYNTHETIC_FP)
        sig = db.register_space(record or space_record(space))
        run = db.begin_run(SYNTHETIC_FP.id, "synthetic")
        for i, b in enumerate(space_parts(space)):  # blocks (and the merges of a graph space)
            k = part_key(b)
            lat[k] = 0.01 * (i + 1)
            if k not in skip:
                op = getattr(b, "op", None) or b.mode
                db.insert(SYNTHETIC_FP.id, k, op, op, exact_stats(lat[k]), run)
        for k, v in ((overhead_key(), 0.005), (quantize_key(c, h, w), 0.002)):
            db.insert(SYNTHETIC_FP.id, k, "pseudo", "pseudo", exact_stats(v), run)
            lat[k] = v
        if correction:
            db.set_correction(SYNTHETIC_FP.id, sig, correction)
    return sig, lat


def lut_rows(lut: Path) -> dict[str, tuple[str, float]]:
    """``block key → (run id, timestamp)`` of every measurement in ``lut`` (read-only)."""
    con = sqlite3.connect(f"file:{lut}?mode=ro", uri=True)
    try:
        return {k: (r, t) for k, r, t in con.execute("SELECT block_key, run_id, timestamp FROM latency")}
    finally:
        con.close()
