"""One model's training: a small, honest harness for tests, benchmarks, proxy training and QAT
(no ``spaces`` import).

:class:`ModelLoop` is :class:`quant.loop.TrainLoop` (the one training loop) for a single
``nn.Module`` on labelled batches: cross-entropy, optionally mixed with distillation from a
teacher, LSQ step sizes kept positive, batch norms frozen from a given step on. :func:`train` runs
it on in-memory arrays (see :mod:`hwnas.datasets`) in a seeded order (:class:`ArrayOrder`), so a
run is reproducible for a given seed and thread count; ``nas.baselines`` runs it on its own data
order. The same functions train the FP32 model and fine-tune a prepared (fake-quantized) model:
QAT is ordinary training once :func:`quant.prepare` and :func:`quant.calibrate` have run.
"""

from __future__ import annotations

import math
import time
from collections.abc import Callable, Iterable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field, replace
from typing import Any

import numpy as np
import torch
import torch.nn as nn
import torch.nn.functional as F

from quant.errors import QuantError
from quant.loop import Batch, BatchOrder, LoopConfig, Schedule, TrainLoop, make_optimizer
from quant.qat import freeze_bn_stats, qat_param_groups, step_size_parameters

__all__ = [
    "QAT_CONFIG",
    "ArrayOrder",
    "ModelLoop",
    "TrainConfig",
    "TrainResult",
    "accuracy",
    "channels_last_convs",
    "evaluate",
    "predict",
    "qat_finetune",
    "recalibrate_bn",
    "train",
]


@dataclass(frozen=True)
class TrainConfig(LoopConfig):
    """One model's training run: the loop's settings (:class:`quant.loop.LoopConfig`: epochs, batch
    size, SGD with Nesterov momentum or AdamW, cosine decay after ``warmup_steps``) and the loss,
    QAT and batch-norm settings of :class:`ModelLoop`."""

    label_smoothing: float = 0.0
    quant_lr: float | None = None
    freeze_bn_after: float | None = None
    """Fraction of the run after which batch norms stop updating (QAT only; ``None`` never)."""
    bn_recalibration_batches: int = 0
    """After training, re-estimate BN running statistics on this many training batches (0: don't)."""
    distill: float = 0.0
    """Weight of the distillation loss when a teacher is given (QAT: the FP32 model): the loss is
    ``(1 - distill) * CE(labels) + distill * KL(teacher || student)``."""
    distill_temperature: float = 1.0
    """Softmax temperature T of the distillation loss (scaled by T² so its gradients keep their size)."""
    channels_last: bool | None = None
    """Run convolutions on NHWC tensors (:func:`channels_last_convs`); ``None``: on CPU only."""


@dataclass
class TrainResult:
    """What a run did: steps, final mean loss of the last epoch, seconds, per-epoch losses."""

    steps: int
    final_loss: float
    seconds: float
    epoch_losses: list[float] = field(default_factory=list)


def _device(model: nn.Module) -> torch.device:
    return next((p.device for p in model.parameters()), torch.device("cpu"))


@contextmanager
def channels_last_convs(model: nn.Module, enabled: bool = True) -> Iterator[nn.Module]:
    """While the block runs, every ``nn.Conv2d`` of ``model`` gets its input in NHWC layout.

    ``model.to(memory_format=torch.channels_last)`` is not enough for 1-channel images: such a
    tensor (and a depthwise or 1x1 weight) is NCHW and NHWC at once, torch then keeps the whole
    network NCHW, and oneDNN reorders every tensor to its blocked layout and back and computes 5x5
    depthwise weight gradients through im2col. Converting at each convolution (a no-op once the
    tensor is NHWC) makes CPU training 1.5 to 2x faster here. Results differ from NCHW runs by
    float32 rounding (NHWC batch norm sums in float32).
    """
    if not enabled:
        yield model
        return

    def to_nhwc(module: nn.Module, args: tuple) -> tuple | None:  # noqa: ARG001
        x = args[0]
        if isinstance(x, torch.Tensor) and x.dim() == 4 and not x.is_contiguous(memory_format=torch.channels_last):
            return (x.contiguous(memory_format=torch.channels_last), *args[1:])
        return None

    handles = [m.register_forward_pre_hook(to_nhwc) for m in model.modules() if isinstance(m, nn.Conv2d)]
    try:
        yield model
    finally:
        for h in handles:
            h.remove()


def _as_tensor(a: np.ndarray | torch.Tensor) -> torch.Tensor:
    if isinstance(a, torch.Tensor):
        return a
    a = np.ascontiguousarray(a)
    return torch.from_numpy(a if a.flags.writeable else a.copy())


class ArrayOrder:
    """In-memory images and labels in batches of ``batch_size``, the last one partial: every epoch
    a permutation drawn from one generator seeded with ``seed``, epochs in turn (the order of
    :func:`train`; ``generator`` goes on to draw the BN recalibration images)."""

    def __init__(self, images: torch.Tensor, labels: torch.Tensor, batch_size: int, seed: int) -> None:
        self.images, self.labels, self.batch_size = images, labels, batch_size
        self.generator = torch.Generator().manual_seed(seed)
        self._next_epoch = 0

    @property
    def steps_per_epoch(self) -> int:
        """Batches an epoch, a last partial one included."""
        return math.ceil(len(self.labels) / self.batch_size)

    def batches(self, epoch: int, start: int = 0) -> Iterator[Batch]:
        """Batches ``start, start + 1, ...`` of ``epoch``, which must be the next epoch not drawn yet."""
        if epoch != self._next_epoch:
            raise QuantError(f"an ArrayOrder draws its epochs in turn: epoch {self._next_epoch} next, not {epoch}")
        self._next_epoch += 1
        perm = torch.randperm(len(self.labels), generator=self.generator)
        b = self.batch_size
        return (
            (self.images[idx], self.labels[idx]) for idx in (perm[i : i + b] for i in range(start * b, len(perm), b))
        )


class ModelLoop(TrainLoop):
    """The training loop of one model on ``order``'s labelled batches (in place).

    The loss is cross-entropy (``config.label_smoothing``); with a ``teacher`` (kept in eval mode,
    no gradients) and ``config.distill > 0`` it mixes in the KL divergence from the teacher's
    softened predictions. ``param_groups`` replaces the single default group (QAT passes separate
    groups for quantizer parameters); learned LSQ step sizes are kept positive; batch norms freeze
    after ``config.freeze_bn_after`` of the run; convolutions run NHWC as ``config.channels_last``
    says (default: on CPU). ``on_epoch`` gets each epoch's record (``{"epoch", "loss",
    "train_time_s"}``) before its log line (a checkpoint). :meth:`fit` leaves the model in
    evaluation mode.
    """

    def __init__(
        self,
        model: nn.Module,
        order: BatchOrder,
        config: TrainConfig,
        *,
        param_groups: list[dict] | None = None,
        teacher: nn.Module | None = None,
        progress: bool = False,
        log: Callable[[str], None] | None = None,
        on_epoch: Callable[[dict[str, Any]], None] | None = None,
    ) -> None:
        groups = (
            param_groups
            if param_groups is not None
            else [
                {
                    "params": [p for p in model.parameters() if p.requires_grad],
                    "lr": config.lr,
                    "weight_decay": config.weight_decay,
                }
            ]
        )
        optimizer = make_optimizer(groups, config)
        if not 0.0 <= config.distill <= 1.0:
            raise QuantError(f"distill must lie in [0, 1], got {config.distill}")
        if config.distill > 0 and teacher is None:
            raise QuantError("distill > 0 needs a teacher model")
        if config.distill_temperature <= 0:
            raise QuantError(f"distill_temperature must be positive, got {config.distill_temperature}")
        super().__init__(optimizer, order, Schedule.of(config, order.steps_per_epoch), progress=progress, log=log)
        self.model, self.teacher, self.config = model, teacher, config
        self.device = _device(model)
        self.scales = [p for p in step_size_parameters(model) if p.requires_grad]
        total = self.schedule.total_steps
        self.freeze_bn_at = None if config.freeze_bn_after is None else int(config.freeze_bn_after * total)
        self.on_epoch = on_epoch
        self.seconds_before = 0.0
        """Training seconds of earlier runs of a resumed training."""
        self._t0 = time.perf_counter()

    def seconds(self) -> float:
        """Seconds of training so far, earlier runs of a resumed training included."""
        return self.seconds_before + time.perf_counter() - self._t0

    def fit(self) -> list[dict[str, Any]]:
        """Train (model in train mode, the teacher in eval mode) to the end; the model is left in eval mode."""
        self._t0 = time.perf_counter()
        if self.teacher is not None:
            self.teacher.eval()
        self.model.train()
        c = self.config
        nhwc = c.channels_last if c.channels_last is not None else self.device.type == "cpu"
        teacher = self.teacher if self.teacher is not None else nn.Identity()
        with channels_last_convs(self.model, nhwc), channels_last_convs(teacher, nhwc):
            history = super().fit()
        self.model.eval()
        return history

    def train_step(self, batch: Batch, lr: float | list[float]) -> dict[str, float]:
        """Cross-entropy (and distillation) on ``batch``, one optimizer step; the loss summed over the images."""
        c = self.config
        if self.global_step == self.freeze_bn_at:
            freeze_bn_stats(self.model)
        self.set_lr(lr)
        x, y = batch[0].to(self.device), batch[1].to(self.device)
        logits = self.model(x)
        loss = F.cross_entropy(logits, y, label_smoothing=c.label_smoothing)
        if self.teacher is not None and c.distill > 0:
            loss = (1.0 - c.distill) * loss + c.distill * _distill_loss(logits, self.teacher, x, c.distill_temperature)
        self.optimizer.zero_grad(set_to_none=True)
        loss.backward()
        self.apply_gradients(self.scales, c.grad_clip)
        n = float(len(y))
        return {"loss": float(loss.detach()) * n, "images": n}

    def epoch_done(self, record: dict[str, Any]) -> None:
        """``on_epoch``, then the epoch's log line."""
        if self.on_epoch is not None:
            self.on_epoch(record)
        self._log(
            f"epoch {record['epoch']}/{self.num_epochs()}: loss {record['loss']:.4f} "
            f"({self.global_step}/{self.schedule.total_steps} steps, {self.seconds():.0f} s)"
        )

    def result(self) -> TrainResult:
        """What the run did."""
        losses = [float(r["loss"]) for r in self.history]
        return TrainResult(
            steps=self.global_step,
            final_loss=losses[-1] if losses else math.nan,
            seconds=self.seconds(),
            epoch_losses=losses,
        )


def train(
    model: nn.Module,
    images: np.ndarray | torch.Tensor,
    labels: np.ndarray | torch.Tensor,
    config: TrainConfig = TrainConfig(),
    *,
    param_groups: list[dict] | None = None,
    teacher: nn.Module | None = None,
    progress: bool = False,
    log: Callable[[str], None] | None = None,
) -> TrainResult:
    """Train ``model`` in place on ``(images, labels)`` with :class:`ModelLoop`; returns a summary.

    ``epochs`` may be fractional (e.g. ``0.5`` for half an epoch); batches come in
    :class:`ArrayOrder`. With ``config.bn_recalibration_batches`` the batch norms' statistics are
    re-estimated afterwards (:func:`recalibrate_bn`). ``progress`` draws a bar per epoch, ``log``
    takes a line per epoch. The model is left in evaluation mode.
    """
    x_all, y_all = _as_tensor(images).float(), _as_tensor(labels).long()
    n = len(y_all)
    if n == 0 or len(x_all) != n:
        raise QuantError(
            f"training data must be non-empty with one label per image (got {len(x_all)} images, {n} labels)"
        )
    order = ArrayOrder(x_all, y_all, config.batch_size, config.seed)
    loop = ModelLoop(model, order, config, param_groups=param_groups, teacher=teacher, progress=progress, log=log)
    loop.fit()
    result = loop.result()
    if config.bn_recalibration_batches > 0:
        idx = torch.randperm(n, generator=order.generator)[: config.bn_recalibration_batches * config.batch_size]
        recalibrate_bn(model, x_all[idx], batch_size=config.batch_size)
    return result


def _distill_loss(logits: torch.Tensor, teacher: nn.Module, xb: torch.Tensor, temperature: float) -> torch.Tensor:
    """``T² · KL(softmax(teacher / T) || softmax(student / T))``, batch mean."""
    with torch.no_grad():
        soft = F.softmax(teacher(xb).float() / temperature, dim=1)
    log_p = F.log_softmax(logits.float() / temperature, dim=1)
    return F.kl_div(log_p, soft, reduction="batchmean") * temperature**2


@torch.no_grad()
def recalibrate_bn(
    model: nn.Module,
    data: np.ndarray | torch.Tensor | Iterable[Any],
    *,
    batch_size: int = 256,
    max_batches: int | None = None,
) -> nn.Module:
    """Re-estimate every batch norm's running statistics as the plain average over ``data``.

    ``data``: images (an array or tensor, fed ``batch_size`` at a time) or an iterable of batches
    (tensors, or ``(images, labels)`` pairs such as a data set's ``batches()``), at most
    ``max_batches`` of them. Running averages lag behind fast-moving weights (short schedules,
    large learning rates), and a subnet of a weight-sharing supernet inherits a blend over every
    subnet; the evaluation-mode model then sees wrong statistics. Everything else runs in
    evaluation mode without gradients; weights and quantizers are not touched (fake quantization
    stays active, so a QAT model is recalibrated as it computes). Returns ``model``, left in the
    mode it was in. The one implementation (``supernet.recalibrate_bn`` is this function).
    """
    bns = [m for m in model.modules() if isinstance(m, nn.modules.batchnorm._BatchNorm) and m.track_running_stats]
    if not bns:
        return model
    if isinstance(data, (np.ndarray, torch.Tensor)):
        x_all = _as_tensor(data).float()
        batches: Iterable[Any] = (x_all[i : i + batch_size] for i in range(0, len(x_all), batch_size))
    else:
        batches = data
    saved = [(m.momentum, m.training) for m in bns]
    device = _device(model)
    was_training = model.training
    model.eval()
    for m in bns:
        m.reset_running_stats()
        m.momentum = None  # cumulative moving average: the exact mean over the batches
        m.train()
    try:
        for i, batch in enumerate(batches):
            if max_batches is not None and i >= max_batches:
                break
            x = batch[0] if isinstance(batch, (tuple, list)) else batch
            model(x.to(device))
    finally:
        for m, (momentum, training) in zip(bns, saved):
            m.momentum = momentum
            m.train(training)
        model.train(was_training)
    return model


QAT_CONFIG = TrainConfig(epochs=1.0, lr=0.005, weight_decay=0.0, freeze_bn_after=0.0, distill=0.5)
"""Default QAT fine-tuning: one epoch, small learning rate, batch norms frozen from the start,
half the loss from distilling the FP32 model (used when ``qat_finetune`` is given a teacher)."""


def qat_finetune(
    model: nn.Module,
    images: np.ndarray | torch.Tensor,
    labels: np.ndarray | torch.Tensor,
    config: TrainConfig = QAT_CONFIG,
    *,
    teacher: nn.Module | None = None,
    log: Callable[[str], None] | None = None,
) -> TrainResult:
    """LSQ / LSQ+ quantization-aware fine-tuning of a prepared, calibrated model (in place).

    ``teacher``: the FP32 model the quantized one came from. With it, ``config.distill`` of the
    loss pulls the quantized model's predictions towards the FP32 model's, so that QAT recovers
    the FP32 function rather than drifting with the labels of a short fine-tuning run.

    Weights, step sizes and (LSQ+) zero points train jointly; quantizer parameters get no weight
    decay and ``config.quant_lr`` (default ``config.lr / 10``). With ``freeze_bn_after=0`` (the
    default config) batch norms use their running statistics throughout, so the network trained
    is exactly the one the exporter folds and ships.
    """
    quant_lr = config.quant_lr if config.quant_lr is not None else config.lr / 10
    groups = qat_param_groups(model, config.lr, config.weight_decay, quant_lr)
    return train(
        model,
        images,
        labels,
        config if teacher is not None else replace(config, distill=0.0),
        param_groups=groups,
        teacher=teacher,
        log=log,
    )


@torch.no_grad()
def predict(model: nn.Module, images: np.ndarray | torch.Tensor, *, batch_size: int = 512) -> np.ndarray:
    """Model outputs (logits) for ``images`` in evaluation mode, as a numpy array."""
    x_all = _as_tensor(images).float()
    device = _device(model)
    was_training = model.training
    model.eval()
    try:
        outs = [model(x_all[i : i + batch_size].to(device)).float().cpu() for i in range(0, len(x_all), batch_size)]
    finally:
        model.train(was_training)
    return torch.cat(outs).numpy()


def accuracy(logits: np.ndarray, labels: np.ndarray | torch.Tensor) -> float:
    """Top-1 accuracy in percent."""
    y = labels.numpy() if isinstance(labels, torch.Tensor) else np.asarray(labels)
    return float((np.asarray(logits).argmax(axis=1) == y).mean() * 100.0)


def evaluate(
    model: nn.Module, images: np.ndarray | torch.Tensor, labels: np.ndarray | torch.Tensor, *, batch_size: int = 512
) -> float:
    """Top-1 accuracy (percent) of ``model`` on ``(images, labels)``."""
    return accuracy(predict(model, images, batch_size=batch_size), labels)
