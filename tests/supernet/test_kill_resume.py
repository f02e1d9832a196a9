"""SIGKILL mid-epoch, ``--resume``: the run ends exactly where an uninterrupted run ends."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import time

import pytest
import torch

from supernet.checkpoint import read_checkpoint
from tests.helpers import REPO, nas_command, run_cli, subprocess_env, tiny_train_args

pytestmark = pytest.mark.usefixtures("one_thread")

ARGS = tiny_train_args(
    "--epochs",
    "2",
    "--batch-size",
    "32",
    "--train-limit",
    "320",
    "--test-limit",
    "200",
    "--bn-calib-batches",
    "2",
    "--checkpoint-every",
    "2",
    "--seed",
    "7",
    "--threads",
    "1",
    "--no-progress",
)


def _checkpoint_state(out):
    try:
        meta, _ = read_checkpoint(out)
    except Exception:  # noqa: BLE001 - not written yet
        return None
    return meta["state"]


@pytest.mark.slow
def test_sigkill_mid_epoch_then_resume_matches_uninterrupted(tmp_path):
    ref, cut = tmp_path / "ref", tmp_path / "cut"
    env = subprocess_env()
    reference = subprocess.Popen(
        [*nas_command(), *ARGS, "--out", str(ref)],
        cwd=str(REPO),
        env=env,
        stdout=subprocess.DEVNULL,
        stderr=subprocess.PIPE,
        text=True,
    )
    victim = subprocess.Popen(
        [*nas_command(), *ARGS, "--out", str(cut)],
        cwd=str(REPO),
        env=env,
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
    )
    deadline = time.time() + 900
    state = None
    while time.time() < deadline and victim.poll() is None:
        state = _checkpoint_state(cut)
        if state and state["step_in_epoch"] > 0:  # a mid-epoch checkpoint exists: kill the run mid-epoch
            os.kill(victim.pid, signal.SIGKILL)
            break
        time.sleep(0.05)
    victim.wait(timeout=60)
    assert victim.returncode == -signal.SIGKILL, "the run ended before it could be killed"
    assert state is not None and not state["finished"]
    res = run_cli(*ARGS[:1], "--out", str(cut), "--resume")
    assert res.returncode == 0, res.stderr
    _, err = reference.communicate(timeout=900)
    assert reference.returncode == 0, err

    ref_metrics = [json.loads(x) for x in (ref / "metrics.jsonl").read_text().splitlines()]
    cut_metrics = [json.loads(x) for x in (cut / "metrics.jsonl").read_text().splitlines()]
    assert [m["test_acc"] for m in cut_metrics] == [m["test_acc"] for m in ref_metrics]  # same final accuracy
    assert [m["loss_largest"] for m in cut_metrics] == [m["loss_largest"] for m in ref_metrics]
    _, a = read_checkpoint(ref)
    _, b = read_checkpoint(cut)
    assert set(a) == set(b)
    for k in a:
        assert torch.equal(a[k], b[k]), k  # bit for bit, RNG state included
