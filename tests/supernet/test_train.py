"""Training: sandwich steps, schedule, metrics, checkpoints and bit-exact resume (in process)."""

from __future__ import annotations

import json
import math

import pytest
import torch

from supernet.checkpoint import read_checkpoint
from supernet.train import TrainConfig, Trainer, load_supernet
from tests.helpers import tiny_config

pytestmark = pytest.mark.usefixtures("one_thread")


def _quiet(msg: str) -> None:
    pass


def test_step_archs_follow_the_sandwich_rule(tmp_path):
    tr = Trainer(tiny_config(), tmp_path, progress=False, log=_quiet)
    a0 = tr.step_archs(0)
    assert len(a0) == 4 and a0[0] == tr.net.largest() and a0[1] == tr.net.smallest()
    assert tr.step_archs(0) == a0 and tr.step_archs(1)[2:] != a0[2:]


def test_schedule_warms_up_then_decays_to_zero(tmp_path):
    tr = Trainer(tiny_config(epochs=2, qat_epochs=1), tmp_path, progress=False, log=_quiet)
    spe = tr.steps_per_epoch
    lrs = [tr.lr_at(e, s) for e in range(2) for s in range(spe)]
    warm = int(round(0.5 * spe))
    assert lrs[0] < lrs[warm - 1] == pytest.approx(0.05)
    assert all(a >= b for a, b in zip(lrs[warm - 1 :], lrs[warm:]))
    assert lrs[-1] < 0.05 * lrs[warm - 1]
    assert tr.lr_at(2, 0) == pytest.approx(0.01) and tr.lr_at(2, spe - 1) < tr.lr_at(2, 0)
    assert tr.stage(1) == "fp32" and tr.stage(2) == "qat"


def test_onecycle_schedule_is_torchs_one_cycle_then_qat_decays_from_qat_lr(tmp_path):
    tr = Trainer(tiny_config(epochs=2, qat_epochs=1, schedule="onecycle"), tmp_path, progress=False, log=_quiet)
    spe = tr.steps_per_epoch
    opt = torch.optim.SGD([torch.zeros(1, requires_grad=True)], lr=0.05)
    ref = torch.optim.lr_scheduler.OneCycleLR(opt, max_lr=0.05, total_steps=2 * spe)
    want = []
    for _ in range(2 * spe):
        want.append(opt.param_groups[0]["lr"])
        opt.step()
        ref.step()
    assert [tr.lr_at(e, s) for e in range(2) for s in range(spe)] == pytest.approx(want, rel=1e-12)
    assert tr.lr_at(2, 0) == pytest.approx(0.01) and tr.lr_at(2, spe - 1) < tr.lr_at(2, 0)


def test_training_writes_metrics_and_checkpoint(tmp_path):
    final = Trainer(tiny_config(), tmp_path, progress=False, log=_quiet).run()
    lines = [json.loads(x) for x in (tmp_path / "metrics.jsonl").read_text().splitlines()]
    assert [r["stage"] for r in lines] == ["fp32", "qat"]
    for r in lines:
        assert {"loss_largest", "loss_smallest", "loss_random", "images_per_s", "test_acc", "lr_end"} <= set(r)
        assert math.isfinite(r["loss_largest"]) and r["images_per_s"] > 0
    assert final == lines[-1]
    meta, tensors = read_checkpoint(tmp_path)
    assert meta["state"]["finished"] and meta["quant_scheme"]["name"] == "ort_cpu"
    assert any(k.startswith("optim/") for k in tensors)
    net, _ = load_supernet(tmp_path)
    assert net.quant_scheme is not None
    sub = net.subnet(net.smallest())
    from quant.prepare import is_prepared

    assert is_prepared(sub)


def test_resume_is_bit_exact(tmp_path):
    """Stop after a few steps (mid-epoch, then again across the FP32 -> QAT boundary), resume,
    and end with exactly the tensors of an uninterrupted run."""
    cfg = dict(epochs=1, qat_epochs=1, train_limit=160, batch_size=32, eval_every=0)
    ref_dir, cut_dir = tmp_path / "ref", tmp_path / "cut"
    Trainer(tiny_config(**cfg), ref_dir, progress=False, log=_quiet).run()
    Trainer(tiny_config(**cfg, max_steps=2), cut_dir, progress=False, log=_quiet).run()  # stops mid-epoch 1
    for stop in (7, None):  # then inside the QAT epoch, then to the end
        tr = Trainer(tiny_config(**cfg), cut_dir, resume=True, progress=False, log=_quiet)
        tr.config.max_steps = stop
        tr.run()
    _, ref = read_checkpoint(ref_dir)
    _, cut = read_checkpoint(cut_dir)
    assert set(ref) == set(cut)
    for k in ref:
        assert torch.equal(ref[k], cut[k]), k


def test_fractional_qat_stage_ends_part_way_through_its_epoch(tmp_path):
    """qat_epochs=0.4: the QAT stage runs 2 of the 5 steps of an epoch, its cosine reaching 0 there,
    and resumes bit-exactly inside that short epoch."""
    cfg = dict(epochs=1, qat_epochs=0.4, train_limit=160, batch_size=32, eval_every=0)
    tr = Trainer(tiny_config(**cfg), tmp_path / "ref", progress=False, log=_quiet)
    assert tr.steps_per_epoch == 5 and tr.epoch_steps(0) == 5 and tr.epoch_steps(1) == 2
    assert tr.lr_at(1, 0) == pytest.approx(0.01) and tr.lr_at(1, 1) == pytest.approx(0.005)
    final = tr.run()
    assert tr.global_step == 7 and final["stage"] == "qat" and final["lr_end"] == pytest.approx(0.005)
    meta, ref = read_checkpoint(tmp_path / "ref")
    assert meta["state"]["finished"] and meta["config"]["qat_epochs"] == 0.4
    cut = Trainer(tiny_config(**cfg, max_steps=6), tmp_path / "cut", progress=False, log=_quiet)
    cut.run()
    tr2 = Trainer(tiny_config(**cfg), tmp_path / "cut", resume=True, progress=False, log=_quiet)
    tr2.config.max_steps = None
    tr2.run()
    assert tr2.global_step == 7
    _, got = read_checkpoint(tmp_path / "cut")
    for k in ref:
        assert torch.equal(ref[k], got[k]), k


def test_whole_qat_epochs_stay_integers():
    assert tiny_config(qat_epochs=1.0).qat_epochs == 1 and isinstance(tiny_config(qat_epochs=1.0).qat_epochs, int)
    with pytest.raises(Exception, match="needs FP32 epochs"):
        tiny_config(epochs=0, qat_epochs=0.5)


def test_interrupt_message_counts_epochs_like_the_progress_lines(tmp_path):
    lines: list[str] = []
    tr = Trainer(
        tiny_config(epochs=1, qat_epochs=0, train_limit=160, batch_size=32, eval_every=0),
        tmp_path,
        progress=False,
        log=lines.append,
    )
    step = tr._train_step

    def stop_after_two(*args, **kwargs):
        out = step(*args, **kwargs)
        if tr.global_step == 1:  # the second step of epoch 1 is running
            tr._on_signal(2, None)
        return out

    tr._train_step = stop_after_two
    with pytest.raises(KeyboardInterrupt):
        tr.run()
    assert "interrupted in epoch 1 after step 2/5" in lines[-1]
    assert any(line.startswith("epoch 1 [fp32] step 2/5") for line in lines)
    assert Trainer(tiny_config(), tmp_path, resume=True, progress=False, log=_quiet).global_step == 2


def test_training_leaves_subnormal_floats_working(tmp_path):
    # flushing denormals is a process-wide CPU flag: a run must not leave it on for other code
    Trainer(
        tiny_config(epochs=1, qat_epochs=0, train_limit=64, batch_size=32, eval_every=0),
        tmp_path,
        progress=False,
        log=_quiet,
    ).run()
    assert float(torch.tensor([1e-38]) / 100) != 0.0


@pytest.mark.parametrize(
    "field, value, message",
    [
        ("lr", float("nan"), "lr must be finite"),
        ("lr", 0.0, "lr must be > 0"),
        ("qat_lr", float("inf"), "qat_lr must be finite"),
        ("kd_temperature", 0.0, "kd_temperature must be > 0"),
        ("warmup_epochs", -1.0, "warmup_epochs must be >= 0"),
        ("label_smoothing", 2.0, r"label_smoothing must be in \[0, 1\)"),
        ("weight_decay", -1e-4, "weight_decay must be >= 0"),
        ("batch_size", 0, "batch_size must be >= 1"),
        ("num_random", -1, "num_random must be >= 0"),
        ("val_fraction", 1.0, r"val_fraction must be in \[0, 1\)"),
        ("test_limit", 0, "test_limit must be >= 1"),
        ("train_limit", -5, "train_limit must be >= 1"),
        ("bn_calib_batches", -1, "bn_calib_batches must be >= 1"),
        ("epochs", 1.5, "epochs must be an integer"),
        ("seed", -1, "seed must be >= 0"),
        ("scheme", "bogus", "unknown quantization scheme 'bogus'"),
        ("schedule", "linear", "unknown learning-rate schedule 'linear'"),
        ("device", "gpu", "unknown device 'gpu'"),
        ("device", "cpu:1", "unknown device"),
    ],
)
def test_config_ranges_are_checked_up_front(field, value, message):
    """The Python API refuses what the CLI refuses, before any data is read or any epoch trained."""
    from supernet.errors import TrainingConfigError

    with pytest.raises(TrainingConfigError, match=message):
        TrainConfig(**{field: value})


def test_fractional_qat_epochs_and_good_values_are_kept():
    c = TrainConfig(
        epochs=2,
        qat_epochs=0.25,
        lr=0.5,
        label_smoothing=0.0,
        warmup_epochs=0,
        device="cuda:0",
        scheme="tensorrt",
        test_limit=None,
        threads=0,
    )
    assert c.qat_epochs == 0.25 and c.device == "cuda:0" and c.total_epochs == 3
    assert TrainConfig(qat_epochs=2.0).qat_epochs == 2 and isinstance(TrainConfig(qat_epochs=2.0).qat_epochs, int)


def test_bogus_scheme_fails_before_the_fp32_stage_and_old_runs_resume(tmp_path, monkeypatch):
    """A checkpoint written with an unknown scheme (possible before schemes were checked up front) is
    resumed with --scheme; a new run with one is refused before anything is written."""
    from nas.cli import main

    with pytest.raises(SystemExit) as err:
        main(["train-supernet", "--scheme", "bogus", "--qat-epochs", "1", "--out", str(tmp_path / "new")])
    assert err.value.code == 2 and not (tmp_path / "new").exists()
    from hwnas.errors import ConfigError
    from nas.cli.commands import train_supernet

    meta = {"config": {**TrainConfig().to_dict(), "scheme": "bogus"}, "quant_scheme": None}
    saved = dict(meta["config"])
    with pytest.raises(ConfigError, match="resume it with --scheme"):
        train_supernet._repair_scheme(type("A", (), {"out": str(tmp_path)})(), meta, saved, {})
    train_supernet._repair_scheme(type("A", (), {"out": str(tmp_path)})(), meta, saved, {"scheme": "ort_cpu"})
    assert TrainConfig.from_dict(saved).scheme == "ort_cpu"
