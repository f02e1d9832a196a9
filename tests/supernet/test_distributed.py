"""`torchrun --nproc_per_node=2` (gloo) computes what one process computes at the same global batch."""

from __future__ import annotations

import subprocess
import sys

import pytest
import torch

from supernet.checkpoint import read_checkpoint
from tests.helpers import REPO, nas_command, subprocess_env, tiny_train_args

pytestmark = pytest.mark.usefixtures("one_thread")

ARGS = tiny_train_args(
    "--epochs",
    "1",
    "--batch-size",
    "32",
    "--train-limit",
    "192",
    "--eval-every",
    "0",
    "--checkpoint-every",
    "0",
    "--max-steps",
    "3",
    "--threads",
    "1",
    "--no-progress",
    "--memory-format",
    "contiguous",
    "--val-fraction",
    "0",
)  # the tolerance below was set on every one of these 192 images

# Three SGD steps of four subnets each; the only difference between the runs is the order of
# floating-point sums (gradients all-reduced over two shards, batch-norm statistics summed over
# processes), so weights, BN statistics and momentum buffers agree to float32 rounding. Both runs
# are NCHW: the one process's NHWC batch norm (oneDNN / ATen CPU) sums in float32 and would add
# ~1e-3 of its own to the momentum buffers after three steps.
TOLERANCE = 1e-5


@pytest.mark.slow
def test_torchrun_two_processes_match_one(tmp_path):
    procs = [
        subprocess.Popen(
            [*nas_command(), *ARGS, "--out", str(tmp_path / "single")],
            cwd=str(REPO),
            env=subprocess_env(),
            stdout=subprocess.PIPE,
            stderr=subprocess.PIPE,
            text=True,
        ),
        subprocess.Popen(
            [
                sys.executable,
                "-m",
                "torch.distributed.run",
                "--standalone",
                "--nproc_per_node=2",
                "-m",
                "nas.cli",
                *ARGS,
                "--out",
                str(tmp_path / "ddp"),
            ],
            cwd=str(REPO),
            env=subprocess_env(),
            stdout=subprocess.PIPE,
            stderr=subprocess.PIPE,
            text=True,
        ),
    ]
    for p in procs:
        _, err = p.communicate(timeout=900)
        assert p.returncode == 0, err
    meta_a, a = read_checkpoint(tmp_path / "single")
    meta_b, b = read_checkpoint(tmp_path / "ddp")
    assert meta_a["state"]["global_step"] == meta_b["state"]["global_step"] == 3
    assert set(a) == set(b)
    compared = 0
    for k in a:
        if k.startswith(("store/", "optim/")) and a[k].dtype.is_floating_point:
            assert torch.allclose(a[k], b[k], rtol=0, atol=TOLERANCE), (k, (a[k] - b[k]).abs().max())
            compared += 1
        elif k.startswith("store/"):
            assert torch.equal(a[k], b[k]), k  # batch counters
    assert compared > 100
    moved = a["store/stage1.b0/expand.conv.weight"] - b["store/stage1.b0/expand.conv.weight"]
    assert moved.abs().max() <= TOLERANCE
