"""Quantized-for-all supernet training.

Every step applies the sandwich rule: the largest subnet learns from the labels (label-smoothed
cross-entropy) and the smallest and ``num_random`` random subnets learn from the largest
subnet's predictions on the same batch (in-place distillation); gradients of all of them are
summed before one SGD step. The learning rate follows a linear warm-up and a cosine decay.
After ``epochs`` FP32 epochs, ``qat_epochs`` epochs (a fraction allowed: 0.25 is a quarter of
one) train the same way with every sampled subnet fake-quantized (LSQ / LSQ+ through :mod:`quant`), so that any subnet deploys in INT8
without retraining.

Runs are reproducible bit for bit: the subnets of step ``t`` are drawn from a generator seeded
by ``(seed, t)``, the data order of epoch ``e`` is a function of ``(seed, e)``, and checkpoints
(every epoch, every ``checkpoint_every`` steps, and on SIGINT / SIGTERM) hold everything else,
so ``resume`` continues exactly where the run stopped. Under ``torchrun`` each process takes its
share of every global batch, batch norms synchronise their statistics and gradients are
averaged: the result equals one process's up to floating-point summation order. (With
``sync_bn=False`` each process normalises with its own share's statistics, the usual DDP
trade-off: much less communication, results no longer those of one process.)
"""

from __future__ import annotations

import dataclasses
import json
import math
import os
import random
import signal
import sys
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Literal

import torch
import torch.nn.functional as F

from hwnas.errors import ConfigError
from hwnas.seeding import seed_everything
from quant.loop import LoopConfig, Schedule, TrainLoop, make_optimizer
from spaces import Arch, Space, create_space
from spaces.identity import space_from_identity, space_identity
from supernet.checkpoint import checkpoint_path, read_checkpoint, write_checkpoint
from supernet.data import (
    DataOrder,
    TensorData,
    calibration_batches,
    data_info,
    load_data,
    load_data_like,
    split_validation,
)
from supernet.distributed import DistInfo, all_reduce_gradients, init_distributed
from supernet.errors import CheckpointError, TrainingConfigError
from supernet.model import Supernet

__all__ = ["METRICS_NAME", "TrainConfig", "Trainer", "build_space", "config_space", "load_supernet"]

METRICS_NAME = "metrics.jsonl"


@dataclass
class TrainConfig:
    """Everything that defines a supernet training run (saved in every checkpoint)."""

    space: str = "mobilenet"
    space_kwargs: dict[str, Any] = field(default_factory=dict)
    data: str = "fashion-mnist"
    epochs: int = 10
    # may be fractional: 0.25 ends the quantized-for-all stage a quarter of the way through its
    # epoch (from a well-trained FP32 supernet, a few hundred LSQ steps settle the scales)
    qat_epochs: float = 0
    batch_size: int = 128
    lr: float = 0.1
    qat_lr: float = 0.01
    momentum: float = 0.9
    nesterov: bool = True
    weight_decay: float = 5e-5
    label_smoothing: float = 0.1
    warmup_epochs: float = 1.0
    # learning-rate schedule of the FP32 stage: "cosine" (warmup_epochs of linear warm-up, then
    # cosine decay to 0) or "onecycle" (torch's OneCycleLR to peak lr; warmup_epochs unused);
    # the QAT stage always decays from qat_lr by a cosine
    schedule: Literal["cosine", "onecycle"] = "cosine"
    num_random: int = 2
    distill: bool = True
    kd_temperature: float = 1.0
    seed: int = 0
    scheme: str = "ort_cpu"
    kernel_transform: bool = True
    reorder_channels: bool = False
    flip: bool = True
    train_limit: int | None = None
    # Share of the training images (stratified, seeded) held out of training: the validation set
    # on which searchers rank subnets (nas search --supernet), so that they are ranked on images
    # the supernet never saw and the test set stays for the exported model alone.
    val_fraction: float = 0.1
    test_limit: int | None = None
    bn_calib_batches: int = 8
    calib_batch_size: int = 256
    qat_calib_batches: int = 4
    eval_every: int = 1
    checkpoint_every: int = 200
    grad_clip: float | None = None
    # NHWC activations: None picks them on CPU (oneDNN's depthwise / 1x1 kernels, 1.5x faster per
    # step here) and leaves CUDA runs NCHW. NHWC batch norm on CPU sums in float32: results differ
    # from NCHW runs by ~1e-5 relative per layer, well below SGD noise.
    channels_last: bool | None = None
    sync_bn: bool = True
    device: str = "cpu"
    threads: int | None = None
    layout_samples: int = 32
    max_steps: int | None = None

    def __post_init__(self) -> None:
        self._check_ranges()
        if self.epochs + math.ceil(self.qat_epochs) < 1:
            raise TrainingConfigError(f"epochs ({self.epochs}) + qat_epochs ({self.qat_epochs}) must be at least 1")
        if self.epochs == 0 and 0 < self.qat_epochs < 1:
            raise TrainingConfigError(f"qat_epochs ({self.qat_epochs}) below 1 needs FP32 epochs before it")
        if float(self.qat_epochs).is_integer():
            self.qat_epochs = int(self.qat_epochs)

    def _check_ranges(self) -> None:
        """Every number finite and in range, the scheme and the device known: a run that cannot work
        is refused before it loads data or trains (a NaN learning rate would train to loss NaN)."""

        def number(
            name: str,
            lo: float | None = None,
            hi: float | None = None,
            *,
            lo_open: bool = False,
            hi_open: bool = False,
            integer: bool = False,
            optional: bool = False,
        ) -> None:
            v = getattr(self, name)
            if v is None and optional:
                return
            kind = "an integer" if integer else "a number"
            if isinstance(v, bool) or not isinstance(v, (int, float)) or (integer and not float(v).is_integer()):
                raise TrainingConfigError(f"{name} must be {kind}{' or None' if optional else ''}, got {v!r}")
            x = float(v)
            if not math.isfinite(x):
                raise TrainingConfigError(f"{name} must be finite, got {v!r}")
            if (lo is not None and (x < lo or (lo_open and x == lo))) or (
                hi is not None and (x > hi or (hi_open and x == hi))
            ):
                if lo is not None and hi is not None:
                    want = f"in {'(' if lo_open else '['}{lo:g}, {hi:g}{')' if hi_open else ']'}"
                else:
                    want = f"{'>' if lo_open else '>='} {lo:g}"
                raise TrainingConfigError(f"{name} must be {want}, got {v!r}")
            if integer:
                setattr(self, name, int(v))

        number("epochs", 0, integer=True)
        number("qat_epochs", 0)
        number("batch_size", 1, integer=True)
        number("lr", 0, lo_open=True)
        number("qat_lr", 0, lo_open=True)
        number("momentum", 0, 1)
        number("weight_decay", 0)
        number("label_smoothing", 0, 1, hi_open=True)
        number("warmup_epochs", 0)
        number("num_random", 0, integer=True)
        number("kd_temperature", 0, lo_open=True)
        number("seed", 0, integer=True)
        number("train_limit", 1, integer=True, optional=True)
        number("val_fraction", 0, 1, hi_open=True)
        number("test_limit", 1, integer=True, optional=True)
        number("bn_calib_batches", 1, integer=True)
        number("calib_batch_size", 1, integer=True)
        number("qat_calib_batches", 1, integer=True)
        number("eval_every", 0, integer=True)
        number("checkpoint_every", 0, integer=True)
        number("grad_clip", 0, lo_open=True, optional=True)
        number("threads", 0, integer=True, optional=True)
        number("layout_samples", 1, integer=True)
        number("max_steps", 1, integer=True, optional=True)
        from quant.scheme import SCHEMES

        if self.schedule not in ("cosine", "onecycle"):
            raise TrainingConfigError(f"unknown learning-rate schedule {self.schedule!r} (known: cosine, onecycle)")
        if self.scheme not in SCHEMES:  # checked now, not when the QAT stage starts after the FP32 epochs
            raise TrainingConfigError(
                f"unknown quantization scheme {self.scheme!r} (known: {', '.join(sorted(SCHEMES))})"
            )
        dev = str(self.device)
        kind, _, index = dev.partition(":")
        if kind not in ("cpu", "cuda") or (index and (kind == "cpu" or not index.isdigit())):
            raise TrainingConfigError(f"unknown device {self.device!r} (cpu, cuda or cuda:N)")

    @property
    def total_epochs(self) -> int:
        """Epochs the run goes through, a fractional QAT stage's last one counted whole."""
        return self.epochs + math.ceil(self.qat_epochs)

    def loop_config(self, stage: str = "fp32", steps_per_epoch: int = 1) -> LoopConfig:
        """The one training loop's settings for ``stage``: ``epochs`` at peak ``lr`` after
        ``warmup_epochs`` of warm-up then cosine decay, or one-cycle (``schedule``) (``"fp32"``); or
        ``qat_epochs`` decaying from ``qat_lr`` by a cosine without warm-up (``"qat"``); SGD with
        ``momentum`` (Nesterov) and ``weight_decay``."""
        qat = stage == "qat"
        return LoopConfig(
            epochs=self.qat_epochs if qat else self.epochs,
            batch_size=self.batch_size,
            lr=self.qat_lr if qat else self.lr,
            momentum=self.momentum,
            nesterov=self.nesterov,
            weight_decay=self.weight_decay,
            schedule="cosine" if qat else self.schedule,
            warmup_steps=0 if qat else int(round(self.warmup_epochs * steps_per_epoch)),
            grad_clip=self.grad_clip,
            seed=self.seed,
        )

    def to_dict(self) -> dict[str, Any]:
        return dataclasses.asdict(self)

    @classmethod
    def from_dict(cls, d: dict[str, Any]) -> TrainConfig:
        names = {f.name for f in dataclasses.fields(cls)}
        unknown = sorted(set(d) - names)
        if unknown:
            raise CheckpointError(f"checkpoint configuration has unknown field {unknown[0]!r}")
        d = {"val_fraction": 0.0, **d}  # checkpoints from before val_fraction trained on every image
        return cls(**d)


def build_space(
    name: str, kwargs: dict[str, Any], input_shape: tuple[int, int, int], num_classes: int, data: str = "the data"
) -> Space:
    """The space of a run: ``create_space(name, **kwargs)`` with the data's input and classes, or
    the space of a YAML file ``name``, whose input and classes must be the data's."""
    if name.endswith((".yaml", ".yml")):
        if kwargs:
            raise ConfigError(f"{name}: a YAML space takes no space arguments (got {', '.join(sorted(kwargs))})")
        space = create_space(name)
        if tuple(space.input_shape) != tuple(input_shape) or space.num_classes != num_classes:
            raise ConfigError(
                f"{name}: the space takes {'x'.join(map(str, space.input_shape))} inputs and "
                f"{space.num_classes} classes; {data} has {'x'.join(map(str, input_shape))} inputs "
                f"and {num_classes} classes"
            )
        return space
    kw = dict(kwargs)
    c, h, w = input_shape
    for key, value in (("in_chans", c), ("num_classes", num_classes), ("resolution", h)):
        if key in kw and kw[key] != value:
            raise ConfigError(f"space argument {key}={kw[key]} does not match the data ({value})")
        kw[key] = value
    return create_space(name, **kw)


def config_space(config: TrainConfig) -> Space:
    """The space a run of ``config`` trains: its input shape and classes are the data's (read as
    the training will read them), built without training anything."""
    data = _run_data(config, "train", None)
    return build_space(config.space, config.space_kwargs, data.input_shape, data.num_classes, data=config.data)


def load_supernet(path: str | os.PathLike[str], device: str = "cpu") -> tuple[Supernet, dict[str, Any]]:
    """The supernet of a checkpoint (file or training folder) and the checkpoint's metadata."""
    meta, tensors = read_checkpoint(path)
    try:
        config = TrainConfig.from_dict(meta["config"])
        space = space_from_identity(meta["space"], str(checkpoint_path(path)))
    except (KeyError, TypeError) as exc:
        raise CheckpointError(f"{checkpoint_path(path)}: incomplete checkpoint metadata ({exc})") from None
    net = _restore(space, config, meta, tensors, device)
    return net, meta


def _restore(
    space: Space, config: TrainConfig, meta: dict[str, Any], tensors: dict[str, torch.Tensor], device: str
) -> Supernet:
    net = Supernet(
        space, kernel_transform=config.kernel_transform, seed=config.seed, layout_samples=config.layout_samples
    ).to(device)
    if meta.get("quant_scheme") is not None:
        from quant.scheme import QuantScheme

        fields = dict(meta["quant_scheme"])
        fields["fused_activations"] = frozenset(fields.get("fused_activations", ()))
        net.enable_quantization(QuantScheme(**fields))
    order = meta.get("store_keys") or [k[len("store/") :] for k in tensors if k.startswith("store/")]
    try:
        net.load_storage({k: tensors[f"store/{k}"].to(device) for k in order}, meta.get("key_info", {}))
    except KeyError as exc:
        raise CheckpointError(f"checkpoint lacks tensor {exc.args[0]!r}") from None
    net.pop_new_parameters()
    return net


class _Interrupted(Exception):
    pass


class Trainer(TrainLoop):
    """One training run in ``out_dir`` (``resume=True`` continues the run saved there): the one
    training loop (:class:`quant.loop.TrainLoop`) with the sandwich step, the switch to the QAT
    stage, checkpoints, ``metrics.jsonl``, SIGINT / SIGTERM handling and DDP.

    ``train_data`` / ``test_data`` replace the datasets ``config.data`` names (e.g. synthetic data
    for a hardware check); a resumed run must be given the same ones. ``config_override``
    replaces the saved configuration on resume (for execution settings such as threads).
    """

    loss_key = "loss_largest"  # the loss shown, of the largest subnet
    step_lines = True  # a log line every tenth of an epoch where no progress bar is drawn

    def __init__(
        self,
        config: TrainConfig,
        out_dir: str | os.PathLike[str],
        *,
        resume: bool = False,
        progress: bool | None = None,
        log: Callable[[str], None] | None = None,
        train_data: TensorData | None = None,
        test_data: TensorData | None = None,
        config_override: TrainConfig | None = None,
    ) -> None:
        self.out_dir = Path(out_dir)
        self.dist: DistInfo = init_distributed(config.device)
        self._log = log or (lambda s: print(s, file=sys.stderr, flush=True))
        state: dict[str, Any] = {}
        tensors: dict[str, torch.Tensor] = {}
        if resume:
            meta, tensors = read_checkpoint(self.out_dir)
            config = config_override or TrainConfig.from_dict(meta["config"])
            state = meta["state"]
        self.config = config
        if config.batch_size % self.dist.world_size:
            raise TrainingConfigError(
                f"global batch {config.batch_size} is not divisible by {self.dist.world_size} processes"
            )
        if config.threads:
            torch.set_num_threads(config.threads)
        seed_everything(config.seed)
        self.device = torch.device(config.device)
        recorded = meta.get("data_info") if resume else None  # None: a new run, or a checkpoint from before it
        self.train_data = train_data if train_data is not None else _run_data(config, "train", recorded)
        if train_data is None and config.val_fraction > 0:  # the searchers' validation images stay unseen
            self.train_data = split_validation(self.train_data, config.val_fraction, config.seed)[0]
        self.test_data = (
            test_data if test_data is not None else _run_data(config, "test", recorded or data_info(self.train_data))
        )
        if resume:
            from hwnas.io import remove_write_leftovers

            if self.dist.is_main:  # a killed run's half-written checkpoint or metrics
                remove_write_leftovers(self.out_dir / "checkpoint.safetensors", self.out_dir / METRICS_NAME)
            self.space = space_from_identity(meta["space"], str(checkpoint_path(self.out_dir)))
            self.net = _restore(self.space, config, meta, tensors, config.device)
        else:
            self.space = build_space(
                config.space,
                config.space_kwargs,
                self.train_data.input_shape,
                self.train_data.num_classes,
                data=config.data if train_data is None else "the training data",
            )
            self.net = Supernet(
                self.space,
                kernel_transform=config.kernel_transform,
                seed=config.seed,
                layout_samples=config.layout_samples,
            ).to(self.device)
        self.net.channels_last = config.channels_last if config.channels_last is not None else self.device.type == "cpu"
        self.net.set_sync_bn(self.dist.distributed and config.sync_bn)
        order = DataOrder(
            self.train_data,
            config.batch_size,
            config.seed,
            flip=config.flip,
            rank=self.dist.rank,
            world=self.dist.world_size,
        )
        spe = order.steps_per_epoch
        self._schedules = {s: Schedule.of(config.loop_config(s, spe), spe) for s in ("fp32", "qat")}
        self.calib = [
            b.to(self.device)
            for b in calibration_batches(self.train_data, config.bn_calib_batches, config.calib_batch_size, config.seed)
        ]
        super().__init__(
            self._make_optimizer(),
            order,
            self._schedules["fp32"],
            progress=sys.stderr.isatty() if progress is None else progress,
            log=self._log,
            is_main=self.dist.is_main,
        )
        if resume:
            self.restore_tensors(tensors, self.net.tensor)
        self.load_state_dict(state)
        if resume:
            self._sync_metrics()
        self._stop = False
        self._stop_agreed = False
        self._structural = _has_structure(self.net)

    # ------------------------------------------------------------------------------------------
    # optimizer
    # ------------------------------------------------------------------------------------------
    def _make_optimizer(self) -> torch.optim.Optimizer:
        c = self.config
        groups = self.net.param_groups()
        self._group_index = {"decay": 0, "no_decay": 1, "quant": 2}
        params = [
            {"params": [p for _, p in sorted(groups["decay"], key=lambda kv: kv[0])], "weight_decay": c.weight_decay},
            {"params": [p for _, p in sorted(groups["no_decay"], key=lambda kv: kv[0])], "weight_decay": 0.0},
            {"params": [p for _, p in sorted(groups["quant"], key=lambda kv: kv[0])], "weight_decay": 0.0},
        ]
        return make_optimizer(params, c.loop_config())

    def _adopt_new_parameters(self) -> None:
        """Add parameters the supernet created since the last call (quantizer step sizes and zero
        points) to the optimizer. Under torchrun, a quantizer created during a step initialised
        itself from the range of the global batch (``quant`` all-reduces it), as one process
        would; rank 0's values are broadcast all the same, so that the processes cannot drift."""
        new = self.net.pop_new_parameters()
        for key, p in new:
            self.optimizer.param_groups[self._group_index[self.net.group_of(key)]]["params"].append(p)
        if new and self.dist.distributed:
            import torch.distributed as dist

            with torch.no_grad():
                for _, p in sorted(new, key=lambda kv: kv[0]):
                    dist.broadcast(p.data, src=0)

    def _ordered_params(self) -> list[torch.nn.Parameter]:
        return [self.net.tensor(k) for k in sorted(self.net.keys()) if self.net.is_param(k)]  # type: ignore[misc]

    # ------------------------------------------------------------------------------------------
    # schedule
    # ------------------------------------------------------------------------------------------
    def stage(self, epoch: int | None = None) -> str:
        e = self.epoch if epoch is None else epoch
        return "fp32" if e < self.config.epochs else "qat"

    def lr_at(self, epoch: int, step: int) -> float:
        """The learning rate of step ``step`` of ``epoch``: warm-up and cosine decay of the FP32
        stage (peak ``lr``), then cosine decay of the QAT stage (from ``qat_lr``)."""
        c = self.config
        stage = self.stage(epoch)
        t = (epoch - (c.epochs if stage == "qat" else 0)) * self.steps_per_epoch + step
        return self._schedules[stage].lr(t, c.qat_lr if stage == "qat" else c.lr)

    def num_epochs(self) -> int:
        """``epochs`` FP32 epochs, then the QAT stage's (a fractional last one counted whole)."""
        return self.config.total_epochs

    def epoch_steps(self, epoch: int, full: int | None = None) -> int:
        """Steps of ``epoch``: all of them, but a share of them in a fractional QAT stage's last one."""
        c = self.config
        full = self.steps_per_epoch if full is None else full
        frac = c.qat_epochs - math.floor(c.qat_epochs)
        if frac > 0 and epoch == c.total_epochs - 1:
            return max(1, min(full, int(round(frac * full))))
        return full

    def step_limit(self) -> int | None:
        """``config.max_steps`` (read at every step: a test or a resumed run may change it)."""
        return self.config.max_steps

    def epoch_tag(self, epoch: int) -> str:
        """The stage, `` [fp32]`` or `` [qat]``."""
        return f" [{self.stage(epoch)}]"

    # ------------------------------------------------------------------------------------------
    # one step
    # ------------------------------------------------------------------------------------------
    def step_archs(self, global_step: int) -> list[Arch]:
        """The subnets of step ``global_step``: largest, smallest, then ``num_random`` random ones
        (inside one randomly drawn structure in a hyper-space)."""
        rng = random.Random(f"sandwich:{self.config.seed}:{global_step}")
        struct = self.net.sample_structure(rng) if self._structural else None
        archs = [self.net.largest(struct), self.net.smallest(struct)]
        archs += [self.net.sample(rng, struct) for _ in range(self.config.num_random)]
        return archs

    def train_step(self, batch: tuple[torch.Tensor, torch.Tensor], lr: float | list[float]) -> dict[str, float]:
        """The sandwich step on this process's share of the global batch; its statistics summed
        over processes (and a stop request agreed on)."""
        x, y = batch[0].to(self.device), batch[1].to(self.device)
        archs = self.step_archs(self.global_step)
        stats = self._global_stats(self._train_step(x, y, archs, lr if isinstance(lr, float) else lr[0]), len(y))
        self._stop_agreed = stats.pop("stop") > 0
        return stats

    def _train_step(self, x: torch.Tensor, y: torch.Tensor, archs: list[Arch], lr: float) -> dict[str, float]:
        """The sandwich rule on one batch: the largest subnet on the labels, the others on its
        predictions (or the labels), gradients summed, one optimizer step at ``lr``."""
        c = self.config
        net = self.net
        self.set_lr(lr)
        self.optimizer.zero_grad(set_to_none=True)
        logits = net(x, archs[0])
        loss = F.cross_entropy(logits, y, label_smoothing=c.label_smoothing)
        loss.backward()
        stats = {"loss_largest": float(loss.detach()), "correct_largest": float((logits.argmax(1) == y).sum())}
        soft = F.softmax(logits.detach().float() / c.kd_temperature, dim=1) if c.distill else None
        others = []
        for a in archs[1:]:
            out = net(x, a)
            if soft is not None:
                t = c.kd_temperature
                l_sub = -(soft * F.log_softmax(out / t, dim=1)).sum(1).mean() * (t * t)
            else:
                l_sub = F.cross_entropy(out, y, label_smoothing=c.label_smoothing)
            l_sub.backward()
            others.append(float(l_sub.detach()))
        stats["loss_smallest"] = others[0] if others else 0.0
        stats["loss_random"] = sum(others[1:]) / max(1, len(others) - 1)
        self._adopt_new_parameters()
        params = self._ordered_params()
        all_reduce_gradients(params, self.dist)
        # LSQ steps must not carry a step size through 0 (the FP32 stage has none yet)
        scales = [] if self.net.quant_scheme is None else self._step_sizes()
        self.apply_gradients(scales, c.grad_clip, params)
        return stats

    def _step_sizes(self) -> list[torch.nn.Parameter]:
        return [p for key, p in self.net.param_groups()["quant"] if key.endswith(".scale")]

    def _global_stats(self, stats: dict[str, float], n: int) -> dict[str, float]:
        """Per-step statistics summed over processes (and the stop flag agreed on)."""
        vals = [
            stats["loss_largest"] * n,
            stats["loss_smallest"] * n,
            stats["loss_random"] * n,
            stats["correct_largest"],
            float(n),
            1.0 if self._stop else 0.0,
        ]
        if self.dist.distributed:
            import torch.distributed as dist

            t = torch.tensor(vals, dtype=torch.float64, device=self.device)  # nccl reduces device tensors only
            dist.all_reduce(t)
            vals = t.tolist()
        return {
            "loss_largest": vals[0],
            "loss_smallest": vals[1],
            "loss_random": vals[2],
            "correct_largest": vals[3],
            "images": vals[4],
            "stop": vals[5],
        }

    # ------------------------------------------------------------------------------------------
    # checkpoints and metrics
    # ------------------------------------------------------------------------------------------
    def _meta(self) -> dict[str, Any]:
        scheme = self.net.quant_scheme
        qs = None
        if scheme is not None:
            qs = dataclasses.asdict(scheme)
            qs["fused_activations"] = sorted(qs["fused_activations"])
        return {
            "config": self.config.to_dict(),
            "space": space_identity(self.space),  # name, kwargs, canonical YAML, hash
            "quant_scheme": qs,
            "data_info": data_info(self.train_data),  # spec, input shape, classes, normalisation
            "store_keys": self.net.keys(),
            "key_info": self.net.key_info(),
            "state": {
                **self.state_dict(),  # epoch, step_in_epoch, global_step, acc (the epoch's sums), history
                "stage": self.stage(),
                "finished": self.epoch >= self.config.total_epochs,
            },
        }

    def save_checkpoint(self) -> Path | None:
        """Write the checkpoint (rank 0 only); returns its path."""
        if not self.dist.is_main:
            return None
        tensors = {f"store/{k}": v for k, v in self.net.storage_state().items()}
        tensors.update(self.resume_tensors((k, self.net.tensor(k)) for k in self.net.keys() if self.net.is_param(k)))
        return write_checkpoint(self.out_dir / "checkpoint.safetensors", tensors, self._meta())

    def _sync_metrics(self) -> None:
        """Make ``metrics.jsonl`` hold one line per epoch of the checkpoint's history, no more, no less:
        a run killed after an epoch's checkpoint and before its line (or in the middle of writing the
        line, or, before this order, after the line and before the checkpoint, so that the epoch ran
        again) would otherwise lose, cut or repeat a line."""
        if not self.dist.is_main:
            return
        from hwnas.io import atomic_write_text

        path = self.out_dir / METRICS_NAME
        want = "".join(json.dumps(r, sort_keys=True) + "\n" for r in self.history)
        try:
            have: str | None = path.read_text(encoding="utf-8")
        except FileNotFoundError:
            have = ""
        except (OSError, UnicodeDecodeError):
            have = None
        if have != want:
            atomic_write_text(path, want)

    def _write_metrics(self, record: dict[str, Any]) -> None:
        if not self.dist.is_main:
            return
        self.out_dir.mkdir(parents=True, exist_ok=True)
        with open(self.out_dir / METRICS_NAME, "a", encoding="utf-8") as fh:
            fh.write(json.dumps(record, sort_keys=True) + "\n")

    def evaluate(self, archs: dict[str, Arch] | None = None) -> dict[str, float]:
        """Test accuracy (percent) of the largest and smallest subnets, batch norms recalibrated
        (fake-quantized in the QAT stage)."""
        from supernet.evaluate import evaluate_arch

        archs = archs or {"largest": self.net.largest(), "smallest": self.net.smallest()}
        precision = "fakequant" if self.net.quant_scheme is not None else "fp32"
        return {
            name: round(evaluate_arch(self.net, a, self.test_data, self.calib, precision=precision)["accuracy"], 3)
            for name, a in archs.items()
        }

    # ------------------------------------------------------------------------------------------
    # the loop
    # ------------------------------------------------------------------------------------------
    def _on_signal(self, signum: int, frame: Any) -> None:  # noqa: ARG002
        self._stop = True

    def run(self) -> dict[str, Any]:
        """Train to the end (or until interrupted: the checkpoint is then saved and
        ``KeyboardInterrupt`` raised). Returns the final metrics."""
        old = {}
        import threading

        if threading.current_thread() is threading.main_thread():
            for sig in (signal.SIGINT, signal.SIGTERM):
                old[sig] = signal.signal(sig, self._on_signal)
        # denormals flushed to zero while training (they slow CPU kernels down); a process-wide
        # CPU flag, so it is switched off again when the run ends: other code keeps IEEE floats
        torch.set_flush_denormal(True)
        try:
            self.out_dir.mkdir(parents=True, exist_ok=True)
            if self.dist.is_main and self.global_step == 0 and self.epoch == 0 and self.step_in_epoch == 0:
                self._log(
                    f"supernet: space {self.space.name}, {len(self.net.layout.paths)} block paths, "
                    f"{self.net.num_parameters():,} shared parameters; largest subnet "
                    f"{self.net.num_parameters(self.net.largest()):,}, smallest "
                    f"{self.net.num_parameters(self.net.smallest()):,}; {self.steps_per_epoch} steps/epoch, "
                    f"world size {self.dist.world_size}"
                )
            self.fit()
        except _Interrupted:
            self.save_checkpoint()
            if self.dist.is_main:
                self._log(
                    f"interrupted in epoch {self.epoch + 1} after step {self.step_in_epoch}/"
                    f"{self.steps_per_epoch}; checkpoint saved, continue with --resume"
                )
            raise KeyboardInterrupt from None
        finally:
            torch.set_flush_denormal(False)
            for sig, handler in old.items():
                signal.signal(sig, handler)
        return self.history[-1] if self.history else {}

    def start_epoch(self, epoch: int) -> None:
        """The QAT stage begins: every subnet is fake-quantized from now on, quantizers calibrated."""
        c = self.config
        if self.stage(epoch) == "qat" and self.net.quant_scheme is None:
            from quant.scheme import get_scheme

            t0 = time.time()
            calib = [
                b.to(self.device)
                for b in calibration_batches(self.train_data, c.qat_calib_batches, c.calib_batch_size, c.seed + 1)
            ]
            self.net.enable_quantization(get_scheme(c.scheme), calib)
            self._adopt_new_parameters()
            if self.dist.is_main:
                self._log(
                    f"quantized-for-all stage: {get_scheme(c.scheme).name} scheme, quantizers initialised "
                    f"in {time.time() - t0:.1f}s"
                )
        self.net.train()

    def end_step(self, stats: dict[str, float]) -> None:
        """Stop (and checkpoint) on SIGINT / SIGTERM; a mid-epoch checkpoint every ``checkpoint_every`` steps."""
        c = self.config
        if self._stop_agreed:
            raise _Interrupted
        every = c.checkpoint_every
        if every and self.step_in_epoch % every == 0 and self.step_in_epoch < self.epoch_steps(self.epoch):
            self.save_checkpoint()

    def stopped_at_limit(self) -> None:
        """A run stopped at ``max_steps`` saves its checkpoint."""
        self.save_checkpoint()

    def epoch_record(self, epoch: int) -> dict[str, Any]:
        """The epoch's line of ``metrics.jsonl``: losses, train accuracy, speed, test accuracy of the
        largest and smallest subnets (every ``eval_every`` epochs and the last)."""
        c = self.config
        stage = self.stage(epoch)
        n = max(1.0, self.totals.get("images", 0.0))
        record: dict[str, Any] = {
            "epoch": epoch + 1,
            "stage": stage,
            "lr_end": self.lr_at(epoch, self.epoch_steps(epoch) - 1),
            "loss_largest": self.totals.get("loss_largest", 0.0) / n,
            "loss_smallest": self.totals.get("loss_smallest", 0.0) / n,
            "loss_random": self.totals.get("loss_random", 0.0) / n,
            "train_acc_largest": 100.0 * self.totals.get("correct_largest", 0.0) / n,
            "images_per_s": n / max(1e-9, self.totals.get("time", 0.0)),
            "train_time_s": self.totals.get("time", 0.0),
        }
        last = epoch + 1 == c.total_epochs
        if self.dist.is_main and c.eval_every and ((epoch + 1) % c.eval_every == 0 or last):
            t0 = time.time()
            record["test_acc"] = self.evaluate()
            record["eval_time_s"] = time.time() - t0
        if c.reorder_channels and stage == "fp32" and epoch + 1 < c.epochs:
            record["reordered_groups"] = self.net.reorder_channels(self.optimizer)
        return record

    def epoch_done(self, record: dict[str, Any]) -> None:
        """The epoch's checkpoint, then its ``metrics.jsonl`` line and log line; processes wait for one another."""
        # the epoch is finished once its checkpoint is: its metrics line follows (a run killed in between
        # gets the line from the checkpoint's history on resume, see _sync_metrics)
        self.save_checkpoint()
        self._write_metrics(record)
        if self.dist.is_main:
            acc = record.get("test_acc", {})
            self._log(
                f"epoch {record['epoch']} [{record['stage']}] loss {record['loss_largest']:.4f} train acc "
                f"{record['train_acc_largest']:.2f}% {record['images_per_s']:.0f} img/s"
                + (f" | test largest {acc['largest']:.2f}% smallest {acc['smallest']:.2f}%" if acc else "")
            )
        if self.dist.distributed:
            import torch.distributed as dist

            dist.barrier()


def _run_data(config: TrainConfig, split: str, recorded: dict[str, Any] | None) -> TensorData:
    """``split`` of the run's data: as ``recorded`` (:func:`supernet.data.data_info`: the same
    input shape and normalisation), else ``config.data`` at the resolution and channels of the
    space file, or those the space arguments ask for (by default the images' own)."""
    limit = config.train_limit if split == "train" else config.test_limit
    if recorded is not None:
        return load_data_like(recorded, split, limit)
    if config.space.endswith((".yaml", ".yml")):  # a space file fixes the input: the data are read at its size
        c, h, _ = create_space(config.space).input_shape
        return load_data(config.data, split, limit, resolution=h, in_chans=c)
    kw = config.space_kwargs
    return load_data(config.data, split, limit, resolution=kw.get("resolution"), in_chans=kw.get("in_chans"))


def _has_structure(net: Supernet) -> bool:
    from supernet._archs import is_structural

    return any(is_structural(d) for d in net.space.decisions())
