"""Block-wise distillation: the NSR loss, candidate stages, a tiny end-to-end run, resume, the CLI."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest
import torch

from nas.spaceevo.blockkd import (
    BlockKD,
    BlockKDConfig,
    BlockKDError,
    NSRMeter,
    Teacher,
    candidate_stages,
    nsr_loss,
    stage_space,
    work_dir_for,
)
from nas.spaceevo.quality import QualityStore, load_quality

pytestmark = pytest.mark.usefixtures("one_thread")

REPO = Path(__file__).resolve().parents[3]
TINY = {"block_types": ["mbv2", "fused"], "kernels": [3, 5], "expands": [2.0, 4.0], "scale": 0.25}
FAST = dict(
    epochs=1, qat_epochs=1, batch_size=16, eval_samples=2, eval_images=32, bn_batches=1, threads=1, checkpoint_every=2
)


def _hyperspace():
    from spaces import create_space

    return create_space("spaceevo", in_chans=1, num_classes=10, resolution=8, **TINY)


@pytest.fixture(scope="module")
def setup():
    """A tiny random teacher (largest subnet of a fresh supernet over the tiny hyper-space) and digits."""
    from supernet.data import load_data, split_validation
    from supernet.model import Supernet

    torch.set_num_threads(1)
    hs = _hyperspace()
    net = Supernet(hs, layout_samples=4, seed=3)
    teacher = Teacher.from_network(net.subnet(net.largest(), quantized=False), hs.input_shape, {"kind": "random"})
    train, val = split_validation(load_data("digits", "train", 120), 0.25, 0)
    return hs, teacher, train, val


# ----------------------------------------------------------------------------------------------
# the loss
# ----------------------------------------------------------------------------------------------
def test_nsr_hand_computed():
    # channel 0: t = 1, 3, 1, 3 (mean 2, var 1); s differs by 2 at one position: mse 4/4 = 1 -> NSR 1
    # channel 1: t = 0, 2, 4, 6 (mean 3, var 5); s = t + 1: mse 1 -> NSR 0.2;  mean over channels 0.6
    t = torch.tensor([[[[1.0, 3.0]], [[0.0, 2.0]]], [[[1.0, 3.0]], [[4.0, 6.0]]]])  # (N=2, C=2, H=1, W=2)
    s = t.clone()
    s[1, 0, 0, 1] = 1.0
    s[:, 1] += 1.0
    assert float(nsr_loss(s, t)) == pytest.approx(0.6)
    meter = NSRMeter()  # accumulated over two batches: the same value
    meter.update(s[:1], t[:1])
    meter.update(s[1:], t[1:])
    assert meter.value() == pytest.approx(0.6)
    assert float(nsr_loss(t, t)) == 0.0


def test_nsr_ignores_constant_teacher_channels_and_is_differentiable():
    t = torch.randn(4, 3, 2, 2)
    t[:, 2] = 5.0  # a constant channel carries no signal
    s = (t + 0.1 * torch.randn_like(t)).requires_grad_(True)
    loss = nsr_loss(s, t)
    assert torch.isfinite(loss)
    loss.backward()
    assert s.grad is not None
    ref = nsr_loss(s.detach()[:, :2], t[:, :2])
    assert float(loss.detach()) == pytest.approx(float(ref))
    with pytest.raises(BlockKDError):
        nsr_loss(s, t[:, :2])


# ----------------------------------------------------------------------------------------------
# candidate stages
# ----------------------------------------------------------------------------------------------
def test_candidate_stages_and_their_spaces():
    hs = _hyperspace()
    cands = candidate_stages(hs)
    assert {c.block_type for c in cands} == {"mbv2", "fused"}
    assert {c.stage for c in cands} == {1, 2, 3, 4, 5}
    picked = candidate_stages(hs, stages=[3], block_types=["fused"], windows=[1])
    assert [(c.stage, c.block_type, c.window_name) for c in picked] == [(3, "fused", "w1")]
    cand = picked[0]
    sp = stage_space(hs, cand, resolution=4)
    for seed in range(5):
        arch = sp.sample(seed)
        assert all(k.startswith("stage3.") for k in arch)
        assert arch["stage3.window"] == "w1" and arch["stage3.block"] == "fused"
        full = hs.complete(dict(arch), seed)  # a sub-stage's choices are the hyper-space's own decisions
        assert all(full[k] == v for k, v in arch.items())
        assert arch[f"stage3.{cand.window_name}.width"] in cand.window
    with pytest.raises(BlockKDError, match="no searchable stage 9"):
        candidate_stages(hs, stages=[9])
    with pytest.raises(BlockKDError, match="no block type 'mbv3'"):
        candidate_stages(hs, block_types=["mbv3"])


# ----------------------------------------------------------------------------------------------
# end to end, resume
# ----------------------------------------------------------------------------------------------
def _values(path):
    with QualityStore(path, readonly=True) as store:
        return sorted(
            (s.stage, s.block_type, s.window, json.dumps(s.choices, sort_keys=True), s.nsr, s.role)
            for s in store.query()
        )


def test_tiny_end_to_end_stores_samples(tmp_path, setup):
    hs, teacher, train, val = setup
    cands = candidate_stages(hs, stages=[2], block_types=["mbv2"], windows=["w0"])
    out = tmp_path / "quality.db"
    kd = BlockKD(hs, teacher, train, val, out, BlockKDConfig(**FAST), candidates=cands, progress=False)
    summary = kd.run()
    assert summary["trained"] == 1 and summary["skipped"] == 0
    table = load_quality(out)
    c = cands[0]
    got = table.samples(c.stage, c.block_type, c.window)
    assert len(got) == 4  # smallest, largest, 2 random
    for choices, nsr in got:
        assert nsr >= 0.0 and all(k.startswith("stage2.") for k in choices)
        assert hs.complete(choices, 0)  # valid hyper-space decisions
    widths = {ch["stage2.w0.width"] for ch, _ in got}
    assert min(c.window) in widths and max(c.window) in widths  # smallest and largest are measured
    assert table.record["recipe"]["qat_epochs"] == 1 and table.record["hyperspace"]["name"] == "spaceevo"
    assert not (work_dir_for(out) / kd.fingerprint / f"{c.name}.safetensors").exists()  # checkpoint cleaned up
    again = BlockKD(hs, teacher, train, val, out, BlockKDConfig(**FAST), candidates=cands, progress=False).run()
    assert again["trained"] == 0 and again["skipped"] == 1


def test_interrupted_run_resumes_to_the_same_values(tmp_path, setup):
    hs, teacher, train, val = setup
    cands = candidate_stages(hs, stages=[2], block_types=["mbv2", "fused"], windows=["w0"])
    cfg = BlockKDConfig(**FAST)
    ref = tmp_path / "ref.db"
    BlockKD(hs, teacher, train, val, ref, cfg, candidates=cands, progress=False).run()

    cut = tmp_path / "cut.db"
    seen: list[tuple[str, int]] = []

    def stop_in_second(cand, step, loss):
        seen.append((cand.block_type, step))
        if cand.block_type == cands[1].block_type and step == 3:  # after the step-2 checkpoint
            raise KeyboardInterrupt

    with pytest.raises(KeyboardInterrupt):
        BlockKD(hs, teacher, train, val, cut, cfg, candidates=cands, progress=False, on_step=stop_in_second).run()
    with QualityStore(cut, readonly=True) as store:
        assert len(store.candidates()) == 1  # the first candidate stage is finished and stored
    resumed: list[tuple[str, int]] = []
    summary = BlockKD(
        hs,
        teacher,
        train,
        val,
        cut,
        cfg,
        candidates=cands,
        progress=False,
        on_step=lambda c, s, _loss: resumed.append((c.block_type, s)),
    ).run()
    assert summary["skipped"] == 1 and summary["trained"] == 1
    assert all(bt == cands[1].block_type for bt, _ in resumed)  # the finished stage was not redone
    assert resumed[0][1] == 4  # continued after the checkpoint written at step 3
    assert _values(cut) == _values(ref)  # bit for bit the uninterrupted run's measurements


def test_teacher_with_other_strides_is_refused(setup):
    hs, _, train, val = setup

    class Net(torch.nn.Module):
        def __init__(self):
            super().__init__()
            self.a = torch.nn.Conv2d(1, 4, 3, padding=1)
            self.b = torch.nn.Conv2d(4, 8, 3, padding=1)  # stride 1 where stage 2 has stride 2

        def forward(self, x):
            return self.b(self.a(x))

    teacher = Teacher.from_module(Net(), (1, 8, 8), {2: "b"})
    assert teacher.shapes(2) == ((4, 8, 8), (8, 8, 8))
    cands = candidate_stages(hs, stages=[2], block_types=["mbv2"], windows=["w0"])
    with pytest.raises(BlockKDError, match="strides differ"):
        BlockKD(hs, teacher, train, val, "unused.db", BlockKDConfig(**FAST), candidates=cands, progress=False)
    with pytest.raises(BlockKDError, match="no stage 3"):
        teacher.shapes(3)


# ----------------------------------------------------------------------------------------------
# the CLI
# ----------------------------------------------------------------------------------------------
def _env():
    env = {**os.environ, "COLUMNS": "200", "OMP_NUM_THREADS": "1"}
    env["PYTHONPATH"] = os.pathsep.join([str(REPO), env.get("PYTHONPATH", "")]).rstrip(os.pathsep)
    return env


def _nas() -> list[str]:
    exe = Path(sys.executable).with_name("nas")
    return [str(exe)] if exe.exists() else [sys.executable, "-m", "nas.cli"]


def _run(*args, timeout=900):
    return subprocess.run([*_nas(), *args], capture_output=True, text=True, timeout=timeout, env=_env(), cwd=str(REPO))


@pytest.fixture(scope="module")
def teacher_ckpt(tmp_path_factory):
    """A supernet checkpoint of the tiny hyper-space on digits (untrained: a random teacher)."""
    from tests.helpers import write_random_teacher

    return write_random_teacher(tmp_path_factory.mktemp("teacher"), TINY)


CLI = [
    "spaceevo-quality",
    "--space-args",
    json.dumps(TINY),
    "--stages",
    "2",
    "--windows",
    "w0",
    "--epochs",
    "1",
    "--qat-epochs",
    "1",
    "--batch-size",
    "16",
    "--eval-samples",
    "2",
    "--eval-images",
    "32",
    "--threads",
    "1",
    "--no-progress",
    "--seed",
    "5",
    "--train-limit",
    "48",
]


@pytest.mark.slow
def test_cli_runs_and_resumes(tmp_path, teacher_ckpt):
    out = tmp_path / "quality.db"
    res = _run(*CLI, "--block-types", "mbv2", "--teacher", str(teacher_ckpt), "--out", str(out), "--json")
    assert res.returncode == 0, res.stderr
    summary = json.loads(res.stdout)
    assert summary["trained"] == 1
    table = load_quality(out)
    (cand,) = table.candidates()
    assert cand[:2] == (2, "mbv2") and len(table.samples(*cand)) == 4
    assert table.record["data"]["held_out"] == "teacher's validation share"
    res = _run(*CLI, "--block-types", "mbv2", "--teacher", str(teacher_ckpt), "--out", str(out), "--json")
    assert res.returncode == 0 and json.loads(res.stdout)["skipped"] == 1


@pytest.mark.parametrize(
    "extra, message",
    [
        (["--teacher", "/nonexistent/ckpt"], "no such checkpoint"),
        (["--stages", "9"], "no searchable stage 9"),
        (["--block-types", "mbv3"], "no block type 'mbv3'"),
        (["--epochs", "0", "--qat-epochs", "0"], "must be positive"),
        (["--batch-size", "0"], "positive integer"),
        (["--space-args", "{not json"], "not valid JSON"),
        (["--resolution", "32"], "the teacher takes 8x8"),
        (["--teacher", "timm:resnet18"], "needs --teacher-weights"),
    ],
)
def test_cli_bad_input_is_one_line_exit_2(tmp_path, teacher_ckpt, extra, message, capsys):
    from nas.cli import main

    code = main([*CLI, "--teacher", str(teacher_ckpt), "--out", str(tmp_path / "q.db"), *extra])
    err = capsys.readouterr().err
    assert code == 2, err
    lines = err.strip().splitlines()
    assert len(lines) == 1 and message in lines[0], err


def test_cli_bad_quality_file_is_one_line(tmp_path, teacher_ckpt, capsys):
    from nas.cli import main

    bad = tmp_path / "q.db"
    bad.write_text("not sqlite")
    code = main([*CLI, "--teacher", str(teacher_ckpt), "--out", str(bad)])
    err = capsys.readouterr().err
    assert code == 2
    lines = err.strip().splitlines()
    assert len(lines) == 1 and str(bad) in lines[0] and "not a block-wise quality file" in lines[0]
    assert bad.read_text() == "not sqlite"  # left untouched


@pytest.mark.slow
def test_cli_sigkill_then_rerun_matches_uninterrupted(tmp_path, teacher_ckpt):
    args = [*CLI, "--block-types", "mbv2,fused", "--teacher", str(teacher_ckpt), "--checkpoint-every", "2"]
    ref, cut = tmp_path / "ref.db", tmp_path / "cut.db"
    res = _run(*args, "--out", str(ref))
    assert res.returncode == 0, res.stderr
    victim = subprocess.Popen(
        [*_nas(), *args, "--out", str(cut)],
        cwd=str(REPO),
        env=_env(),
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
    )
    work = work_dir_for(cut)
    deadline = time.time() + 900
    killed_at = None
    while time.time() < deadline and victim.poll() is None:
        ckpts = list(work.glob("*/stage2-fused-*.safetensors")) if work.exists() else []
        if ckpts:  # the first candidate stage is stored and the second has checkpointed mid-training
            os.kill(victim.pid, signal.SIGKILL)
            killed_at = ckpts[0]
            break
        time.sleep(0.02)
    victim.wait(timeout=60)
    assert victim.returncode == -signal.SIGKILL and killed_at is not None, "the run ended before it could be killed"
    with QualityStore(cut, readonly=True) as store:
        assert [c.block_type for c in store.candidates()] == ["mbv2"]
    res = _run(*args, "--out", str(cut), "--json")
    assert res.returncode == 0, res.stderr
    summary = json.loads(res.stdout)
    assert summary["skipped"] == 1 and summary["trained"] == 1  # the finished candidate stage was not redone
    assert _values(cut) == _values(ref)


def test_teacher_checkpoint_without_a_chw_input_shape_is_refused(monkeypatch, tmp_path):
    import supernet.checkpoint
    from hwnas.errors import ConfigError
    from nas.cli.commands.spaceevo_quality import _checkpoint_input

    meta = {"data_info": {"input_shape": [8, 8], "num_classes": 10}}  # no channels
    monkeypatch.setattr(supernet.checkpoint, "read_checkpoint", lambda path: (meta, {}))
    with pytest.raises(ConfigError, match=r"records no data set \(input shape C,H,W"):
        _checkpoint_input(str(tmp_path))
    meta["data_info"]["input_shape"] = [1, 8, 8]
    assert _checkpoint_input(str(tmp_path)) == ((1, 8, 8), 10)


def test_sub_stage_with_a_quantizer_no_qat_step_reached_is_measured(tmp_path, setup):
    """Stage 4 (stride 1) gets the stage-3 width 32 as input; its window [28, 32, 36] trains only
    the largest and the smallest sub-stage (num_random 0), so the identity shortcut of width 32
    is never quantized in training: measuring it calibrates that quantizer instead of failing."""
    hs, teacher, train, val = setup
    cands = candidate_stages(hs, stages=[4], block_types=["mbv2"], windows=["w0"])
    assert cands[0].window == (28, 32, 36)
    cfg = BlockKDConfig(**{**FAST, "num_random": 0, "eval_samples": 8})
    BlockKD(hs, teacher, train, val, tmp_path / "q.db", cfg, candidates=cands, progress=False).run()
    got = load_quality(tmp_path / "q.db").samples(4, "mbv2", (28, 32, 36))
    assert 32 in {ch["stage4.w0.width"] for ch, _ in got}
