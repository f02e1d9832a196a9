"""A small, honest training harness for tests and benchmarks (no ``spaces`` import).

Data are in-memory arrays (see :mod:`hwnas.datasets`); batches are drawn with a seeded
permutation, so a run is reproducible for a given seed and thread count. The same functions train
the FP32 model and fine-tune a prepared (fake-quantized) model: QAT is ordinary training once
:func:`quant.prepare` and :func:`quant.calibrate` have run.
"""

from __future__ import annotations

import math
import time
from collections.abc import Callable, Iterable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field, replace
from typing import Any, Literal

import numpy as np
import torch
import torch.nn as nn
import torch.nn.functional as F

from quant.errors import QuantError
from quant.qat import freeze_bn_stats, qat_param_groups, step_keeping_scales_positive, step_size_parameters

__all__ = [
    "QAT_CONFIG",
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
class TrainConfig:
    """Hyper-parameters of one training run (SGD with Nesterov momentum or AdamW, cosine decay)."""

    epochs: float = 5.0
    batch_size: int = 128
    lr: float = 0.05
    optimizer: Literal["sgd", "adamw"] = "sgd"
    momentum: float = 0.9
    weight_decay: float = 5e-4
    label_smoothing: float = 0.0
    warmup_steps: int = 0
    seed: int = 0
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


def train(
    model: nn.Module,
    images: np.ndarray | torch.Tensor,
    labels: np.ndarray | torch.Tensor,
    config: TrainConfig = TrainConfig(),
    *,
    param_groups: list[dict] | None = None,
    teacher: nn.Module | None = None,
    log: Callable[[str], None] | None = None,
) -> TrainResult:
    """Train ``model`` in place on ``(images, labels)`` with cross-entropy; returns a summary.

    With a ``teacher`` (run in eval mode, no gradients) and ``config.distill > 0`` the loss mixes
    in the KL divergence from the teacher's softened predictions (knowledge distillation).

    ``epochs`` may be fractional (e.g. ``0.5`` for half an epoch). ``param_groups`` overrides the
    default single group (QAT passes separate groups for quantizer parameters).
    """
    x_all, y_all = _as_tensor(images).float(), _as_tensor(labels).long()
    n = len(y_all)
    if n == 0 or len(x_all) != n:
        raise QuantError(
            f"training data must be non-empty with one label per image (got {len(x_all)} images, {n} labels)"
        )
    device = _device(model)
    steps_per_epoch = math.ceil(n / config.batch_size)
    total = max(1, int(round(config.epochs * steps_per_epoch)))
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
    if config.optimizer == "sgd":
        opt: torch.optim.Optimizer = torch.optim.SGD(groups, lr=config.lr, momentum=config.momentum, nesterov=True)
    elif config.optimizer == "adamw":
        opt = torch.optim.AdamW(groups, lr=config.lr)
    else:
        raise QuantError(f"unknown optimizer {config.optimizer!r} (known: sgd, adamw)")
    if not 0.0 <= config.distill <= 1.0:
        raise QuantError(f"distill must lie in [0, 1], got {config.distill}")
    if config.distill > 0 and teacher is None:
        raise QuantError("distill > 0 needs a teacher model")
    if config.distill_temperature <= 0:
        raise QuantError(f"distill_temperature must be positive, got {config.distill_temperature}")
    if teacher is not None:
        teacher.eval()
    base_lrs = [g["lr"] for g in opt.param_groups]
    gen = torch.Generator().manual_seed(config.seed)
    freeze_at = None if config.freeze_bn_after is None else int(config.freeze_bn_after * total)
    model.train()
    nhwc = config.channels_last if config.channels_last is not None else device.type == "cpu"
    with channels_last_convs(model, nhwc), channels_last_convs(teacher if teacher is not None else nn.Identity(), nhwc):
        result = _train_loop(model, x_all, y_all, config, opt, base_lrs, gen, total, freeze_at, teacher, log)
    if config.bn_recalibration_batches > 0:
        idx = torch.randperm(n, generator=gen)[: config.bn_recalibration_batches * config.batch_size]
        recalibrate_bn(model, x_all[idx], batch_size=config.batch_size)
    model.eval()
    return result


def _train_loop(
    model: nn.Module,
    x_all: torch.Tensor,
    y_all: torch.Tensor,
    config: TrainConfig,
    opt: torch.optim.Optimizer,
    base_lrs: list[float],
    gen: torch.Generator,
    total: int,
    freeze_at: int | None,
    teacher: nn.Module | None,
    log: Callable[[str], None] | None,
) -> TrainResult:
    n = len(y_all)
    device = _device(model)
    scales = [p for p in step_size_parameters(model) if p.requires_grad]
    t0 = time.perf_counter()
    step, epoch_losses, running, count = 0, [], 0.0, 0
    while step < total:
        perm = torch.randperm(n, generator=gen)
        for i in range(0, n, config.batch_size):
            if step >= total:
                break
            if freeze_at is not None and step == freeze_at:
                freeze_bn_stats(model)
            warm = min(1.0, (step + 1) / config.warmup_steps) if config.warmup_steps else 1.0
            cos = 0.5 * (1.0 + math.cos(math.pi * step / total))
            for g, base in zip(opt.param_groups, base_lrs):
                g["lr"] = base * warm * cos
            idx = perm[i : i + config.batch_size]
            xb, yb = x_all[idx].to(device), y_all[idx].to(device)
            logits = model(xb)
            loss = F.cross_entropy(logits, yb, label_smoothing=config.label_smoothing)
            if teacher is not None and config.distill > 0:
                loss = (1.0 - config.distill) * loss + config.distill * _distill_loss(
                    logits, teacher, xb, config.distill_temperature
                )
            opt.zero_grad(set_to_none=True)
            loss.backward()
            step_keeping_scales_positive(opt, scales)
            running += float(loss.detach())
            count += 1
            step += 1
        epoch_losses.append(running / max(1, count))
        if log is not None:
            log(f"epoch {len(epoch_losses)}: loss {epoch_losses[-1]:.4f} ({step}/{total} steps)")
        running, count = 0.0, 0
    return TrainResult(
        steps=step, final_loss=epoch_losses[-1], seconds=time.perf_counter() - t0, epoch_losses=epoch_losses
    )


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
