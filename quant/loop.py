"""The one training loop: epochs of optimizer steps over a seeded batch order.

Every training in hwnas runs through :class:`TrainLoop`: the FP32 and QAT training of one model
(:func:`quant.training.train`, :func:`quant.training.qat_finetune`), the hand-picked baselines
(:func:`nas.baselines.train_baseline`) and the quantized-for-all supernet
(:class:`supernet.Trainer`). The loop owns what they share:

* the schedule of a run: ``num_epochs()`` epochs of ``epoch_steps(epoch)`` steps, each taking the
  next batch of a :class:`BatchOrder` (a function of the seed and the epoch, so a run resumes at
  any step);
* the learning rate of every step (:class:`Schedule`: linear warm-up then cosine decay, or torch's
  one-cycle), set on the optimizer (:func:`make_optimizer`: SGD with momentum and Nesterov, or
  AdamW) before the step;
* per-epoch sums of what the steps report, the epoch's record in ``history``, a step limit;
* one ``rich.progress`` display (:class:`hwnas.progress.ProgressBar`), or log lines;
* a resumable state: the counters, sums and history (:meth:`TrainLoop.state_dict`), the
  optimizer's tensors and torch's RNG (:meth:`TrainLoop.resume_tensors`).

A caller keeps only what differs, in the hooks: :meth:`TrainLoop.train_step` (the loss: plain
cross-entropy, distillation, the supernet's sandwich step), :meth:`TrainLoop.start_epoch` (the
supernet's switch to its QAT stage), :meth:`TrainLoop.epoch_record` and
:meth:`TrainLoop.epoch_done` (metrics, checkpoints, log lines). :class:`LoopConfig` holds the
settings the callers share; their own configurations extend it (:class:`quant.training.TrainConfig`)
or build one from their fields (``supernet.TrainConfig.loop_config``, ``nas.baselines.BaselineRecipe``).
"""

from __future__ import annotations

import math
import time
from collections.abc import Callable, Iterable, Iterator, Sequence
from dataclasses import dataclass
from typing import Any, ClassVar, Literal, Protocol

import torch

from hwnas.progress import ProgressBar
from quant.errors import QuantError
from quant.qat import step_keeping_scales_positive

__all__ = ["Batch", "BatchOrder", "LoopConfig", "Schedule", "TrainLoop", "make_optimizer"]

Batch = tuple[torch.Tensor, torch.Tensor]
"""Images and labels of one step."""


@dataclass(frozen=True)
class LoopConfig:
    """What every training loop shares: epochs (a fraction allowed) of ``batch_size`` batches, SGD
    with momentum (Nesterov) or AdamW at peak learning rate ``lr``, weight decay, the learning-rate
    schedule (``"cosine"``: ``warmup_steps`` of linear warm-up, then cosine decay to 0;
    ``"onecycle"``: torch's ``OneCycleLR`` with its defaults), gradient clipping and the seed."""

    epochs: float = 5.0
    batch_size: int = 128
    lr: float = 0.05
    optimizer: Literal["sgd", "adamw"] = "sgd"
    momentum: float = 0.9
    nesterov: bool = True
    weight_decay: float = 5e-4
    schedule: Literal["cosine", "onecycle"] = "cosine"
    warmup_steps: int = 0
    grad_clip: float | None = None
    """Clip the gradients' global norm to this before each step (``None``: don't)."""
    seed: int = 0


# torch.optim.lr_scheduler.OneCycleLR's defaults: 30 % of the steps rising from peak / 25, the rest
# annealing to peak / 25e4 (both cosine)
_ONECYCLE_PCT_START, _ONECYCLE_DIV, _ONECYCLE_FINAL_DIV = 0.3, 25.0, 1e4


@dataclass(frozen=True)
class Schedule:
    """The learning rate of every step of a run of ``total_steps`` steps.

    ``"cosine"``: ``peak * (t + 1) / warmup_steps`` during the warm-up, then
    ``peak / 2 * (1 + cos(pi * (t - warmup) / (total - warmup)))``. ``"onecycle"``: the value torch's
    ``OneCycleLR(max_lr=peak, total_steps=total)`` gives step ``t``, bit for bit, computed from the
    step alone (nothing to save in a checkpoint).
    """

    total_steps: int
    warmup_steps: int = 0
    kind: Literal["cosine", "onecycle"] = "cosine"

    def __post_init__(self) -> None:
        if self.kind not in ("cosine", "onecycle"):
            raise QuantError(f"unknown learning-rate schedule {self.kind!r} (known: cosine, onecycle)")

    @classmethod
    def of(cls, config: LoopConfig, steps_per_epoch: int) -> Schedule:
        """The schedule of ``config.epochs`` epochs of ``steps_per_epoch`` steps (at least one step)."""
        return cls(max(1, int(round(config.epochs * steps_per_epoch))), config.warmup_steps, config.schedule)

    def lr(self, step: int, peak: float) -> float:
        """The learning rate of step ``step`` (counted from 0) for peak learning rate ``peak``."""
        if self.kind == "onecycle":
            return _onecycle(step, self.total_steps, peak)
        warm, total = self.warmup_steps, self.total_steps
        if step < warm:
            return peak * (step + 1) / warm
        return 0.5 * peak * (1.0 + math.cos(math.pi * (step - warm) / max(1, total - warm)))


def _onecycle(step: int, total: int, peak: float) -> float:
    """torch's ``OneCycleLR.get_lr`` (two phases, cosine annealing), the same float operations."""
    initial = peak / _ONECYCLE_DIV
    low = initial / _ONECYCLE_FINAL_DIV
    rise_end = float(_ONECYCLE_PCT_START * total) - 1
    if step <= rise_end:
        start, end, pct = initial, peak, (step - 0.0) / (rise_end - 0.0)
    else:
        start, end, pct = peak, low, (step - rise_end) / ((total - 1) - rise_end)
    return end + (start - end) / 2.0 * (math.cos(math.pi * pct) + 1)


def make_optimizer(params: Iterable[Any], config: LoopConfig) -> torch.optim.Optimizer:
    """``config``'s optimizer over ``params`` (tensors, or parameter groups that may set their own
    ``lr`` and ``weight_decay``): SGD with ``momentum`` (Nesterov when ``nesterov`` and the
    momentum is positive) or AdamW."""
    if config.optimizer == "sgd":
        return torch.optim.SGD(
            params,
            lr=config.lr,
            momentum=config.momentum,
            nesterov=config.nesterov and config.momentum > 0,
            weight_decay=config.weight_decay,
        )
    if config.optimizer == "adamw":
        return torch.optim.AdamW(params, lr=config.lr, weight_decay=config.weight_decay)
    raise QuantError(f"unknown optimizer {config.optimizer!r} (known: sgd, adamw)")


class BatchOrder(Protocol):
    """The batches of a run: ``steps_per_epoch`` of them an epoch, in an order fixed by the seed."""

    @property
    def steps_per_epoch(self) -> int: ...

    def batches(self, epoch: int, start: int = 0) -> Iterator[Batch]:
        """Batches ``start, start + 1, ...`` of ``epoch`` (the iterator may be left unfinished)."""
        ...


class TrainLoop:
    """Epochs of optimizer steps: the one training loop (see the module docstring).

    ``optimizer`` (its groups' learning rates at construction are the peaks the schedule scales),
    ``order`` the batches, ``schedule`` the learning rate of each step. :meth:`fit` trains from
    the current state (``epoch``, ``step_in_epoch``, ``global_step``, the epoch's running sums
    ``totals``, the per-epoch records ``history``) to the end, or to :meth:`step_limit`.
    ``progress`` draws a bar per epoch (on the main process only); ``log`` takes the lines.

    Subclasses implement :meth:`train_step` and may override the other hooks. Steps report
    statistics as sums over their images, with ``"images"`` the count; ``loss_key`` names the one
    shown as the loss, ``step_lines`` adds a log line every tenth of an epoch when no bar is drawn.
    """

    loss_key: ClassVar[str] = "loss"
    step_lines: ClassVar[bool] = False

    def __init__(
        self,
        optimizer: torch.optim.Optimizer,
        order: BatchOrder,
        schedule: Schedule,
        *,
        progress: bool = False,
        log: Callable[[str], None] | None = None,
        is_main: bool = True,
    ) -> None:
        self.optimizer = optimizer
        self.order = order
        self.schedule = schedule
        self.steps_per_epoch = order.steps_per_epoch
        self.peaks = [float(g["lr"]) for g in optimizer.param_groups]
        self.progress = progress
        self.is_main = is_main
        self._log: Callable[[str], None] = log or (lambda _msg: None)
        self.epoch = 0
        self.step_in_epoch = 0
        self.global_step = 0
        self.totals: dict[str, float] = {}
        self.history: list[dict[str, Any]] = []

    # ------------------------------------------------------------------------------------------
    # the plan of a run (override where a run is not ``schedule.total_steps`` steps of ``order``)
    # ------------------------------------------------------------------------------------------
    def num_epochs(self) -> int:
        """Epochs of the run, a last partial one counted whole."""
        return math.ceil(self.schedule.total_steps / self.steps_per_epoch)

    def epoch_steps(self, epoch: int) -> int:
        """Steps of ``epoch``: all of them but in a last partial epoch."""
        return min(self.steps_per_epoch, self.schedule.total_steps - epoch * self.steps_per_epoch)

    def lr_at(self, epoch: int, step: int) -> float | list[float]:
        """The learning rate of step ``step`` of ``epoch``: one for all groups, or one per group."""
        t = epoch * self.steps_per_epoch + step
        return [self.schedule.lr(t, peak) for peak in self.peaks]

    def step_limit(self) -> int | None:
        """Stop once ``global_step`` reaches this (``None``: run to the end)."""
        return None

    def epoch_tag(self, epoch: int) -> str:  # noqa: ARG002
        """Text after ``epoch N/M`` in the bar and log lines (the supernet's `` [fp32]``)."""
        return ""

    # ------------------------------------------------------------------------------------------
    # hooks
    # ------------------------------------------------------------------------------------------
    def start_epoch(self, epoch: int) -> None:
        """Before the first (or, resumed, the next) step of ``epoch``."""

    def train_step(self, batch: Batch, lr: float | list[float]) -> dict[str, float]:
        """One optimizer step on ``batch`` at learning rate ``lr`` (see :meth:`set_lr`,
        :meth:`apply_gradients`); returns statistics summed over its images, ``"images"`` among them."""
        raise NotImplementedError

    def end_step(self, stats: dict[str, float]) -> None:
        """After a step and its counters (a mid-epoch checkpoint, a stop request)."""

    def epoch_record(self, epoch: int) -> dict[str, Any]:
        """The record of ``epoch`` (appended to ``history``), from ``totals``; may raise (a diverged run)."""
        return {"epoch": epoch + 1, self.loss_key: self.mean_loss(), "train_time_s": self.totals.get("time", 0.0)}

    def epoch_done(self, record: dict[str, Any]) -> None:
        """After the epoch's record and counters (checkpoint, metrics, log line)."""

    def stopped_at_limit(self) -> None:
        """When :meth:`fit` stops at :meth:`step_limit` (a checkpoint)."""

    # ------------------------------------------------------------------------------------------
    # the loop
    # ------------------------------------------------------------------------------------------
    def fit(self) -> list[dict[str, Any]]:
        """Train from the current state to the end, or to :meth:`step_limit`; returns ``history``."""
        while self.epoch < self.num_epochs():
            self.run_epoch()
            if self._at_limit():
                self.stopped_at_limit()
                break
        return self.history

    def run_epoch(self) -> bool:
        """The rest of the current epoch; ``False`` when the step limit stopped it first."""
        epoch = self.epoch
        self.start_epoch(epoch)
        steps = self.epoch_steps(epoch)
        tag = self.epoch_tag(epoch)
        batches = self.order.batches(epoch, self.step_in_epoch)
        bar = ProgressBar(
            self.progress and self.is_main,
            f"epoch {epoch + 1}/{self.num_epochs()}{tag}",
            steps,
            completed=self.step_in_epoch,
            columns=("loss {task.fields[loss]:.4f}", "{task.fields[ips]:.0f} img/s", "lr {task.fields[lr]:.3g}"),
            fields={"loss": float("nan"), "ips": 0.0, "lr": 0.0},
        )
        try:
            while self.step_in_epoch < steps:
                if self._at_limit():
                    return False
                t0 = time.perf_counter()
                batch = next(batches)
                lr = self.lr_at(epoch, self.step_in_epoch)
                stats = self.train_step(batch, lr)
                dt = time.perf_counter() - t0
                for k, v in stats.items():
                    self.totals[k] = self.totals.get(k, 0.0) + v
                self.totals["time"] = self.totals.get("time", 0.0) + dt
                self.step_in_epoch += 1
                self.global_step += 1
                images = stats.get("images", 0.0)
                ips = images / dt if dt > 0 else 0.0
                lr0 = lr if isinstance(lr, float) else lr[0]
                bar.update(completed=self.step_in_epoch, loss=stats[self.loss_key] / max(1.0, images), ips=ips, lr=lr0)
                if (
                    self.step_lines
                    and not self.progress
                    and self.is_main
                    and self.step_in_epoch % max(1, steps // 10) == 0
                ):
                    self._log(
                        f"epoch {epoch + 1}{tag} step {self.step_in_epoch}/{steps} loss {self.mean_loss():.4f} "
                        f"{ips:.0f} img/s lr {lr0:.4g}"
                    )
                self.end_step(stats)
        finally:
            close = getattr(batches, "close", None)
            if close is not None:
                close()  # stops a data loader's workers reading ahead
            bar.close()
        record = self.epoch_record(epoch)
        self.history.append(record)
        self.epoch += 1
        self.step_in_epoch = 0
        self.totals = {}
        self.epoch_done(record)
        return True

    def _at_limit(self) -> bool:
        limit = self.step_limit()
        return limit is not None and self.global_step >= limit

    def mean_loss(self) -> float:
        """The mean per image of the loss so far in this epoch."""
        return self.totals.get(self.loss_key, 0.0) / max(1.0, self.totals.get("images", 0.0))

    # ------------------------------------------------------------------------------------------
    # helpers of train_step
    # ------------------------------------------------------------------------------------------
    def set_lr(self, lr: float | Sequence[float]) -> None:
        """Set the learning rate of every group (one value, or one per group)."""
        lrs = [lr] * len(self.optimizer.param_groups) if isinstance(lr, (int, float)) else list(lr)
        for g, value in zip(self.optimizer.param_groups, lrs):
            g["lr"] = value

    def apply_gradients(
        self,
        scales: Sequence[torch.Tensor] = (),
        grad_clip: float | None = None,
        params: Sequence[torch.Tensor] | None = None,
    ) -> None:
        """The optimizer step on the gradients there are: their global norm clipped to
        ``grad_clip`` first (over ``params``, by default the optimizer's), LSQ step sizes
        ``scales`` kept positive (:func:`quant.qat.step_keeping_scales_positive`)."""
        if grad_clip:
            if params is None:
                params = [p for g in self.optimizer.param_groups for p in g["params"]]
            torch.nn.utils.clip_grad_norm_([p for p in params if p.grad is not None], grad_clip)
        step_keeping_scales_positive(self.optimizer, scales)

    # ------------------------------------------------------------------------------------------
    # resumable state
    # ------------------------------------------------------------------------------------------
    def state_dict(self) -> dict[str, Any]:
        """Where the run stands, as JSON: counters, the epoch's running sums (``"acc"``) and history."""
        return {
            "epoch": self.epoch,
            "step_in_epoch": self.step_in_epoch,
            "global_step": self.global_step,
            "acc": self.totals,
            "history": self.history,
        }

    def load_state_dict(self, state: dict[str, Any]) -> None:
        """Continue from :meth:`state_dict`'s record (missing entries: the start of a run)."""
        self.epoch = int(state.get("epoch", 0))
        self.step_in_epoch = int(state.get("step_in_epoch", 0))
        self.global_step = int(state.get("global_step", 0))
        self.totals = dict(state.get("acc", {}))
        self.history = list(state.get("history", []))

    def resume_tensors(self, named_params: Iterable[tuple[str, torch.Tensor]]) -> dict[str, torch.Tensor]:
        """The optimizer's state of each named parameter (``optim/<name>/<field>``) and torch's RNG
        state (``rng/torch``): with :meth:`state_dict`, what a run resumes from bit for bit."""
        out: dict[str, torch.Tensor] = {}
        for name, p in named_params:
            for field_name, value in self.optimizer.state.get(p, {}).items():
                if isinstance(value, torch.Tensor):
                    out[f"optim/{name}/{field_name}"] = value
        out["rng/torch"] = torch.get_rng_state()
        return out

    def restore_tensors(self, tensors: dict[str, torch.Tensor], param: Callable[[str], torch.Tensor]) -> None:
        """Load :meth:`resume_tensors`' record (``param`` finds a parameter by name); other keys are ignored."""
        for name, t in tensors.items():
            if not name.startswith("optim/"):
                continue
            key, _, field_name = name[len("optim/") :].rpartition("/")
            p = param(key)
            self.optimizer.state[p][field_name] = t.to(p.device).clone()
        if "rng/torch" in tensors:
            torch.set_rng_state(tensors["rng/torch"])
