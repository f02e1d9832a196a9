"""Helpers shared by test modules of several folders (test modules import these, never each other):
tiny spaces and training configurations that keep supernet tests fast on a CPU, and running the
real ``nas`` command."""

from __future__ import annotations

import copy
import functools
import json
import os
import shutil
import subprocess
import sys
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]

TINY_MOBILENET = {
    "stages": 2,
    "depths": [1, 2],
    "kernels": [3, 5],
    "expands": [2.0, 3.0],
    "width_mults": [0.5, 1.0],
    "scale": 0.25,
}
TINY_SPACEEVO = {"block_types": ["mbv2", "resnet_se", "fused"], "kernels": [3, 5], "expands": [2.0, 4.0], "scale": 0.25}
TINY_RESNET = {"base_widths": [8, 16, 16, 32], "depths": [1, 2], "kernels": [3, 5]}

TINY_SPACES = {"mobilenet": TINY_MOBILENET, "spaceevo": TINY_SPACEEVO, "resnet": TINY_RESNET}

#: an onnxruntime FP32 target whose harness times a model once, briefly (no quiet gate): for tests
#: that need latencies, not good ones
FAST_ORT_FP32 = {
    "name": "test-fast-fp32",
    "engine": "onnxruntime",
    "precision": "fp32",
    "measure": {
        "warmup_runs": 2,
        "warmup_s": 0.0,
        "min_runs": 3,
        "min_time_s": 0.0,
        "rounds": 1,
        "max_rounds": 1,
        "quiet_gate": False,
    },
}


def tiny_space(name: str = "mobilenet", resolution: int = 28):
    from spaces import create_space

    return create_space(name, in_chans=1, num_classes=10, resolution=resolution, **TINY_SPACES[name])


@functools.cache
def _cached_net(name: str, kernel_transform: bool):
    from supernet.model import Supernet

    return Supernet(tiny_space(name), kernel_transform=kernel_transform, layout_samples=8)


def tiny_net(name: str = "mobilenet", kernel_transform: bool = True):
    """A fresh copy of a (cached) freshly initialised supernet over a tiny space."""
    return copy.deepcopy(_cached_net(name, kernel_transform))


def tiny_config(**overrides):
    from supernet.train import TrainConfig

    base = dict(
        space="mobilenet",
        space_kwargs=dict(TINY_MOBILENET),
        data="fashion-mnist",
        epochs=1,
        qat_epochs=1,
        batch_size=32,
        lr=0.05,
        qat_lr=0.01,
        warmup_epochs=0.5,
        train_limit=192,
        test_limit=128,
        bn_calib_batches=2,
        calib_batch_size=32,
        qat_calib_batches=1,
        checkpoint_every=0,
        threads=1,
        layout_samples=8,
        val_fraction=0.0,
    )  # step counts in these tests: every image trains
    base.update(overrides)
    return TrainConfig(**base)


def tiny_train_args(*args: str) -> list[str]:
    """``nas train-supernet`` arguments over the tiny MobileNet space, then ``args``."""
    return ["train-supernet", "--space", "mobilenet", "--space-args", json.dumps(TINY_MOBILENET), *args]


def nas_command() -> list[str]:
    """The ``nas`` command of this interpreter's environment (``python -m nas.cli`` without one)."""
    exe = Path(sys.executable).with_name("nas")
    if exe.exists():
        return [str(exe)]
    found = shutil.which("nas")
    return [found] if found else [sys.executable, "-m", "nas.cli"]


def subprocess_env() -> dict[str, str]:
    env = {**os.environ, "COLUMNS": "200", "OMP_NUM_THREADS": "1"}
    env["PYTHONPATH"] = os.pathsep.join([str(REPO), env.get("PYTHONPATH", "")]).rstrip(os.pathsep)
    return env


def run_cli(*args: str, timeout: float = 600) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [*nas_command(), *args], capture_output=True, text=True, timeout=timeout, env=subprocess_env(), cwd=str(REPO)
    )


def write_random_teacher(folder: Path, space_kwargs: dict, space: str = "spaceevo") -> Path:
    """An untrained supernet checkpoint of ``space`` (``space_kwargs``) on digits in ``folder``: a
    random block-wise distillation teacher, written once (kept when it exists); returns ``folder``."""
    from supernet.train import TrainConfig, Trainer

    if (folder / "checkpoint.safetensors").exists():
        return folder
    cfg = TrainConfig(
        space=space,
        space_kwargs=dict(space_kwargs),
        data="digits",
        epochs=1,
        batch_size=16,
        train_limit=160,
        test_limit=32,
        threads=1,
        layout_samples=4,
        val_fraction=0.25,
        bn_calib_batches=1,
        calib_batch_size=16,
    )
    Trainer(cfg, folder, progress=False, log=lambda s: None).save_checkpoint()
    return folder
