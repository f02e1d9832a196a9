"""quant.loop: the one training loop's schedule, optimizer, step limit and resumable state."""

from __future__ import annotations

import math

import pytest
import torch
import torch.nn as nn
import torch.nn.functional as F

from quant import QuantError
from quant.loop import LoopConfig, Schedule, TrainLoop, make_optimizer


@pytest.mark.parametrize("total", [1, 7, 40, 333])
@pytest.mark.parametrize("peak", [0.1, 0.037])
def test_onecycle_is_torchs_onecyclelr_bit_for_bit(total, peak):
    opt = torch.optim.SGD([nn.Parameter(torch.zeros(1))], lr=peak, momentum=0.9)
    sched = torch.optim.lr_scheduler.OneCycleLR(opt, max_lr=peak, total_steps=total, cycle_momentum=False)
    ours = Schedule(total, kind="onecycle")
    for t in range(total):
        assert ours.lr(t, peak) == opt.param_groups[0]["lr"], t
        opt.step()
        sched.step()


def test_cosine_warms_up_linearly_then_decays_to_zero():
    s = Schedule(10, warmup_steps=4)
    lrs = [s.lr(t, 0.2) for t in range(10)]
    assert lrs[:4] == [0.2 * (t + 1) / 4 for t in range(4)]
    assert lrs[4] == 0.2 and all(a > b for a, b in zip(lrs[4:], lrs[5:])) and lrs[-1] > 0
    assert Schedule(10).lr(0, 0.3) == 0.3 and Schedule(10).lr(5, 0.3) == pytest.approx(0.15)
    assert Schedule.of(LoopConfig(epochs=1.5, warmup_steps=2), 4) == Schedule(6, 2, "cosine")
    with pytest.raises(QuantError, match="unknown learning-rate schedule"):
        Schedule(5, kind="step")  # type: ignore[arg-type]


def test_make_optimizer():
    p = [nn.Parameter(torch.zeros(2))]
    sgd = make_optimizer(p, LoopConfig(lr=0.3, momentum=0.8, weight_decay=1e-3))
    assert isinstance(sgd, torch.optim.SGD)
    assert sgd.defaults["nesterov"] and sgd.defaults["momentum"] == 0.8 and sgd.defaults["weight_decay"] == 1e-3
    assert not make_optimizer(p, LoopConfig(momentum=0.0)).defaults[
        "nesterov"
    ]  # torch refuses Nesterov without momentum
    assert isinstance(make_optimizer(p, LoopConfig(optimizer="adamw")), torch.optim.AdamW)
    with pytest.raises(QuantError, match="unknown optimizer 'lion'"):
        make_optimizer(p, LoopConfig(optimizer="lion"))  # type: ignore[arg-type]


class _Order:
    """Eight batches of four, reshuffled per epoch by (seed, epoch)."""

    steps_per_epoch = 8

    def __init__(self) -> None:
        g = torch.Generator().manual_seed(0)
        self.x, self.y = torch.randn(32, 3, generator=g), torch.randint(0, 2, (32,), generator=g)

    def batches(self, epoch, start=0):
        perm = torch.randperm(32, generator=torch.Generator().manual_seed(epoch))
        return ((self.x[perm[i : i + 4]], self.y[perm[i : i + 4]]) for i in range(4 * start, 32, 4))


class _Linear(TrainLoop):
    def __init__(self, config: LoopConfig, seed: int = 0, **kwargs) -> None:
        torch.manual_seed(seed)
        self.model = nn.Sequential(nn.Linear(3, 2), nn.Dropout(0.5))  # dropout: the RNG state matters
        order = _Order()
        super().__init__(
            make_optimizer(self.model.parameters(), config), order, Schedule.of(config, order.steps_per_epoch), **kwargs
        )
        self.limit: int | None = None

    def step_limit(self):
        return self.limit

    def train_step(self, batch, lr):
        self.set_lr(lr)
        self.optimizer.zero_grad(set_to_none=True)
        loss = F.cross_entropy(self.model(batch[0]), batch[1])
        loss.backward()
        self.apply_gradients(grad_clip=1.0)
        return {"loss": float(loss.detach()) * 4, "images": 4.0}

    def checkpoint(self):
        return self.state_dict(), {k: v.clone() for k, v in self.resume_tensors(self.model.named_parameters()).items()}


def test_a_loop_stopped_at_its_step_limit_resumes_bit_for_bit():
    config = LoopConfig(epochs=2.5, lr=0.1, warmup_steps=3)
    whole = _Linear(config)
    history = whole.fit()
    assert whole.global_step == 20 and whole.num_epochs() == 3 and [whole.epoch_steps(e) for e in range(3)] == [8, 8, 4]
    assert [r["epoch"] for r in history] == [1, 2, 3] and all(math.isfinite(r["loss"]) for r in history)

    cut = _Linear(config)
    cut.limit = 11  # stops in the middle of the second epoch
    cut.fit()
    assert (cut.epoch, cut.step_in_epoch, cut.global_step) == (1, 3, 11)
    state, tensors = cut.checkpoint()
    assert any(k.startswith("optim/") for k in tensors) and "rng/torch" in tensors
    resumed = _Linear(config, seed=1)  # other weights, another RNG state: all comes from the checkpoint
    resumed.model.load_state_dict(cut.model.state_dict())
    resumed.load_state_dict(state)
    resumed.restore_tensors(tensors, dict(resumed.model.named_parameters()).__getitem__)
    resumed.fit()
    assert resumed.history == [
        {**r, "train_time_s": b["train_time_s"]} for r, b in zip(history, resumed.history)
    ]  # the same losses; only the timings differ
    for a, b in zip(whole.model.parameters(), resumed.model.parameters()):
        assert torch.equal(a, b)


def test_the_progress_bar_and_step_lines_draw_without_changing_the_run():
    lines: list[str] = []

    class _Lines(_Linear):
        step_lines = True

    a = _Lines(LoopConfig(epochs=1), log=lines.append)
    a.fit()
    assert sum(line.startswith("epoch 1 step") for line in lines) == 8  # every tenth of 8 steps: each step
    b = _Linear(LoopConfig(epochs=1), progress=True)
    b.fit()
    assert a.history[0]["loss"] == b.history[0]["loss"]
