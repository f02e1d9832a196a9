"""Shared pieces of the export tests: a tiny trained supernet, a fast INT8 target and a LUT for it."""

from __future__ import annotations

from pathlib import Path
from typing import Any

from tests.helpers import tiny_space

__all__ = [
    "ARCH_SEED",
    "FAST_TARGET_YAML",
    "make_lut",
    "tiny_space",
    "train_supernet",
    "write_arch",
    "write_fast_target",
]

#: the exported arch is ``tiny_space().sample(ARCH_SEED)``; the LUT profiles exactly its blocks
ARCH_SEED = 3

# The built-in cpu-ort-int8 target's fingerprint (measurement settings are not part of it), but
# few runs per model and no quiet gate, so that tests stay fast.
FAST_TARGET_YAML = """\
name: test-export-fast-int8
engine: onnxruntime
precision: int8
threads: 1
batch: 1
options: {providers: [CPUExecutionProvider], graph_optimization_level: all, execution_mode: sequential}
measure: {warmup_runs: 5, warmup_s: 0.0, min_runs: 20, min_time_s: 0.0, rounds: 3, max_rounds: 3, quiet_gate: false}
"""


def train_supernet(out: Path) -> Path:
    """A tiny quantized-for-all supernet checkpoint (``ort_cpu`` scheme), trained in this process
    (``nas train-supernet`` has its own tests; these test what is done with its checkpoints)."""
    from supernet.train import Trainer
    from tests.helpers import tiny_config

    Trainer(
        tiny_config(train_limit=256, test_limit=64, bn_calib_batches=1, eval_every=0),
        out,
        progress=False,
        log=lambda _msg: None,
    ).run()
    return out


def write_fast_target(folder: Path) -> Path:
    path = folder / "fast-int8.yaml"
    path.write_text(FAST_TARGET_YAML)
    return path


def write_arch(folder: Path, seed: int = ARCH_SEED) -> tuple[Path, Any]:
    arch = tiny_space("mobilenet").sample(seed)
    path = folder / f"arch{seed}.json"
    path.write_text(arch.to_json())
    return path, arch


def make_lut(path: Path, target: Path, seed: int = ARCH_SEED) -> Path:
    """A LUT of the blocks of ``tiny_space().sample(seed)`` measured on ``target``."""
    from latency_lut.profiler import profile_space

    profile_space(
        tiny_space("mobilenet"), str(target), path, archs=1, seed=seed, networks=0, progress=False, retry_passes=0
    )
    return path
