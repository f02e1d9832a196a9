"""Hand-picked baselines for Fashion-MNIST: what a user would train instead of searching.

Three networks at ``1×28×28``, 10 classes, and the one training recipe they share:

* ``plain_cnn``: five 3×3 convs, all ReLU: conv 1→32, conv 32→32, maxpool 2, conv 32→64,
  conv 64→64, maxpool 2, conv 64→128, global average pool, linear 128→10; every conv without
  bias, followed by BatchNorm and ReLU.
* ``resnet18`` and ``mobilenetv3_large_100``: timm's models created with ``in_chans=1,
  num_classes=10`` and nothing else changed (no pretrained weights; works offline).

:class:`BaselineRecipe` (the defaults are the reference recipe): inputs normalised with mean
0.2860 / std 0.3530, random horizontal flips, batch 128, SGD (momentum 0.9, Nesterov, weight
decay 5e-4), one-cycle schedule to a peak learning rate of 0.1, 5 epochs.
"""
from __future__ import annotations

import math
import os
import time
from collections.abc import Callable
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any

import numpy as np
import torch
import torch.nn as nn
import torch.nn.functional as F

from hwnas.errors import ConfigError, HwnasError, UnknownNameError

__all__ = [
    "BASELINES",
    "BaselineError",
    "FMNIST_RECIPE_MEAN",
    "FMNIST_RECIPE_STD",
    "BaselineRecipe",
    "PlainCNN",
    "create_baseline",
    "normalize_fmnist",
    "train_baseline",
]

FMNIST_RECIPE_MEAN, FMNIST_RECIPE_STD = 0.2860, 0.3530
"""The reference recipe's input normalisation (pixels scaled to [0, 1] first)."""

class BaselineError(HwnasError):
    """A baseline cannot be trained (too little data, a diverging run)."""


BASELINES: tuple[str, ...] = ("plain_cnn", "resnet18", "mobilenetv3_large_100")
"""Names :func:`create_baseline` knows."""


def _conv_bn_relu(cin: int, cout: int) -> list[nn.Module]:
    return [nn.Conv2d(cin, cout, 3, padding=1, bias=False), nn.BatchNorm2d(cout), nn.ReLU(inplace=True)]


class PlainCNN(nn.Module):
    """The plain 5-conv ReLU CNN of the baseline recipe (about 0.14 M parameters)."""

    def __init__(self, in_chans: int = 1, num_classes: int = 10) -> None:
        super().__init__()
        self.features = nn.Sequential(
            *_conv_bn_relu(in_chans, 32), *_conv_bn_relu(32, 32), nn.MaxPool2d(2),
            *_conv_bn_relu(32, 64), *_conv_bn_relu(64, 64), nn.MaxPool2d(2),
            *_conv_bn_relu(64, 128),
        )
        self.pool = nn.AdaptiveAvgPool2d(1)
        self.fc = nn.Linear(128, num_classes)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.fc(torch.flatten(self.pool(self.features(x)), 1))


def create_baseline(name: str, *, in_chans: int = 1, num_classes: int = 10) -> nn.Module:
    """A freshly initialised baseline by name (see :data:`BASELINES`); seed torch first."""
    if name == "plain_cnn":
        return PlainCNN(in_chans, num_classes)
    if name in BASELINES:
        import timm

        return timm.create_model(name, pretrained=False, in_chans=in_chans, num_classes=num_classes)
    raise UnknownNameError(f"unknown baseline {name!r} (known: {', '.join(BASELINES)})")


def normalize_fmnist(images: np.ndarray, mean: float = FMNIST_RECIPE_MEAN, std: float = FMNIST_RECIPE_STD) -> np.ndarray:
    """``uint8 (N, 28, 28)`` Fashion-MNIST images as normalised ``float32 (N, 1, 28, 28)``."""
    x = np.asarray(images, dtype=np.float32) / 255.0
    return ((x - mean) / std).astype(np.float32)[:, None]


@dataclass(frozen=True)
class BaselineRecipe:
    """How every baseline is trained (the defaults are the reference recipe).

    The one-cycle schedule is torch's ``OneCycleLR`` with its defaults (30 % warm-up from
    ``peak_lr / 25``, cosine annealing to ``peak_lr / 25e4``) and a fixed momentum
    (``cycle_momentum=False``), so that SGD's momentum stays 0.9 as the recipe says. Each epoch
    draws a seeded permutation and a seeded flip mask; the last incomplete batch is dropped.
    """

    epochs: int = 5
    batch_size: int = 128
    peak_lr: float = 0.1
    momentum: float = 0.9
    nesterov: bool = True
    weight_decay: float = 5e-4
    flip: bool = True
    mean: float = FMNIST_RECIPE_MEAN
    std: float = FMNIST_RECIPE_STD
    seed: int = 0

    def __post_init__(self) -> None:
        if self.epochs < 1 or self.batch_size < 1:
            raise ConfigError(f"recipe: epochs and batch_size must be positive, got {self.epochs}, {self.batch_size}")
        if not self.peak_lr > 0:
            raise ConfigError(f"recipe: peak_lr must be positive, got {self.peak_lr}")

    def to_dict(self) -> dict[str, Any]:
        return {**asdict(self), "schedule": "onecycle(pct_start=0.3, div_factor=25, final_div_factor=1e4, cycle_momentum=False)"}


def train_baseline(model: nn.Module, images: np.ndarray | torch.Tensor, labels: np.ndarray | torch.Tensor,
                   recipe: BaselineRecipe = BaselineRecipe(), *, channels_last: bool | None = None,
                   checkpoint: str | os.PathLike[str] | None = None,
                   log: Callable[[str], None] | None = None) -> dict[str, Any]:
    """Train ``model`` in place on normalised ``(N, C, H, W)`` images with ``recipe``.

    ``channels_last`` (default: on CPU) runs the convolutions on NHWC tensors
    (:func:`quant.training.channels_last_convs`), 1.5–2× faster on CPU. ``checkpoint``: a file
    written (atomically) after every epoch and resumed from when it exists; the batches of an
    epoch depend on ``(seed, epoch)`` only, so a resumed run trains what an uninterrupted one
    does. The caller keys the file by recipe and data. Returns ``{"steps", "seconds",
    "epoch_losses", "resumed_from_epoch"}``; the model is left in evaluation mode.
    """
    from quant.training import channels_last_convs
    from supernet.data import EpochOrder, TensorData

    x = torch.as_tensor(np.array(images, dtype=np.float32, copy=True))
    y = torch.as_tensor(np.array(labels, dtype=np.int64, copy=True))
    data = TensorData(name="train", split="train", images=x, labels=y, num_classes=int(y.max()) + 1 if len(y) else 0)
    if len(data) < recipe.batch_size:
        raise BaselineError(f"{len(data)} training images, fewer than one batch of {recipe.batch_size}")
    device = next((p.device for p in model.parameters()), torch.device("cpu"))
    steps_per_epoch = len(data) // recipe.batch_size
    total = recipe.epochs * steps_per_epoch
    opt = torch.optim.SGD(model.parameters(), lr=recipe.peak_lr, momentum=recipe.momentum,
                          nesterov=recipe.nesterov, weight_decay=recipe.weight_decay)
    sched = torch.optim.lr_scheduler.OneCycleLR(opt, max_lr=recipe.peak_lr, total_steps=total, cycle_momentum=False)
    nhwc = device.type == "cpu" if channels_last is None else channels_last
    losses: list[float] = []
    seconds = 0.0
    start = 0
    ckpt = Path(checkpoint) if checkpoint is not None else None
    if ckpt is not None and ckpt.is_file():
        state = torch.load(ckpt, map_location=device, weights_only=True)
        if state.get("epochs") != recipe.epochs or state.get("steps_per_epoch") != steps_per_epoch:
            raise BaselineError(f"{ckpt}: a checkpoint of another schedule ({state.get('epochs')} epochs "
                                f"of {state.get('steps_per_epoch')} steps); delete it to start again")
        model.load_state_dict(state["model"])
        opt.load_state_dict(state["optimizer"])
        sched.load_state_dict(state["scheduler"])
        start, losses, seconds = int(state["epoch"]), list(state["epoch_losses"]), float(state["seconds"])
        if log is not None:
            log(f"resumed after epoch {start}/{recipe.epochs} from {ckpt}")
    t0 = time.perf_counter() - seconds
    model.train()
    with channels_last_convs(model, nhwc):
        for epoch in range(start, recipe.epochs):
            order = EpochOrder(data, recipe.batch_size, recipe.seed, epoch, flip=recipe.flip)
            running = 0.0
            for step in range(steps_per_epoch):
                xb, yb = order.batch(step)
                loss = F.cross_entropy(model(xb.to(device)), yb.to(device))
                opt.zero_grad(set_to_none=True)
                loss.backward()
                opt.step()
                sched.step()
                running += float(loss.detach())
            losses.append(running / steps_per_epoch)
            if not math.isfinite(losses[-1]):
                raise BaselineError(f"training diverged in epoch {epoch + 1} (loss {losses[-1]})")
            if ckpt is not None and epoch + 1 < recipe.epochs:
                _save_checkpoint(ckpt, {
                    "model": model.state_dict(), "optimizer": opt.state_dict(), "scheduler": sched.state_dict(),
                    "epoch": epoch + 1, "epochs": recipe.epochs, "steps_per_epoch": steps_per_epoch,
                    "epoch_losses": losses, "seconds": time.perf_counter() - t0})
            if log is not None:
                log(f"epoch {epoch + 1}/{recipe.epochs}: loss {losses[-1]:.4f} ({time.perf_counter() - t0:.0f} s)")
    model.eval()
    return {"steps": total, "seconds": time.perf_counter() - t0, "epoch_losses": losses, "resumed_from_epoch": start}


def _save_checkpoint(path: Path, state: dict[str, Any]) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_name(f".{path.name}.tmp")
    torch.save(state, tmp)
    os.replace(tmp, path)
