"""``nas train-supernet``: train a quantized-for-all weight-sharing supernet."""

from __future__ import annotations

import argparse
import json
import sys
from typing import Any

from hwnas.errors import ConfigError
from nas.cli._types import device, finite_float, int_range, quant_scheme

__all__ = ["register"]

# Settings that do not change what is computed step by step (or, for sync_bn, only when the
# number of processes changes): they may differ when a run is resumed.
_EXECUTION = ("threads", "max_steps", "sync_bn", "device", "channels_last")
_MEMORY_FORMATS = {"auto": None, "channels-last": True, "contiguous": False}

# CLI option -> TrainConfig field (options left unset keep the config default, or, with
# --resume, the checkpoint's value; an explicit value that differs from the checkpoint is an error)
_FIELDS = {
    "space": "space",
    "data": "data",
    "epochs": "epochs",
    "qat_epochs": "qat_epochs",
    "batch_size": "batch_size",
    "lr": "lr",
    "qat_lr": "qat_lr",
    "weight_decay": "weight_decay",
    "label_smoothing": "label_smoothing",
    "warmup_epochs": "warmup_epochs",
    "schedule": "schedule",
    "num_random": "num_random",
    "seed": "seed",
    "scheme": "scheme",
    "train_limit": "train_limit",
    "val_fraction": "val_fraction",
    "test_limit": "test_limit",
    "checkpoint_every": "checkpoint_every",
    "eval_every": "eval_every",
    "bn_calib_batches": "bn_calib_batches",
    "threads": "threads",
    "device": "device",
    "max_steps": "max_steps",
    "kd_temperature": "kd_temperature",
}


def register(subparsers: Any) -> None:
    p = subparsers.add_parser(
        "train-supernet",
        help="train a quantized-for-all weight-sharing supernet (sandwich rule, in-place distillation, LSQ QAT)",
        description="Train a weight-sharing supernet over a search space: sandwich rule (largest, smallest and "
        "random subnets each step), in-place distillation from the largest, label smoothing, cosine schedule with "
        "warm-up; then --qat-epochs of quantized-for-all training (every sampled subnet fake-quantized with "
        "LSQ/LSQ+). Checkpoints (safetensors) every epoch and on interruption; --resume continues bit for bit. "
        "Runs under torchrun for data-parallel training.",
    )
    p.add_argument(
        "--space",
        help="space name (mobilenet, spaceevo, resnet), or a space YAML file (the data are read "
        "at its input size; its classes must be the data's) [mobilenet]",
    )
    p.add_argument(
        "--space-args",
        metavar="JSON",
        help="create_space keyword arguments, e.g. '{\"stages\": 4}' (not with a YAML file; num_classes is the data's)",
    )
    p.add_argument(
        "--data",
        help="data set: fashion-mnist, digits, a folder in ImageFolder layout (train/ and val/ "
        "or test/, one subfolder of images per class, grey or RGB, any size: resized to the space's "
        "resolution when --space-args gives one; streamed by DataLoader workers) or an .npz file "
        "(x_train, y_train, x_test, y_test); channels, classes and normalisation are inferred and stored "
        "in the checkpoint [fashion-mnist]",
    )
    p.add_argument("--epochs", type=int_range(0, 100_000), help="FP32 supernet epochs [10]")
    p.add_argument(
        "--qat-epochs",
        type=finite_float(0, 100_000),
        help="quantized-for-all epochs after the FP32 ones; 0.25 is a quarter of one [0]",
    )
    p.add_argument("--out", required=True, help="output folder (checkpoint, metrics.jsonl)")
    p.add_argument("--resume", action="store_true", help="continue the run saved in --out")
    p.add_argument("--batch-size", type=int_range(1, 1_000_000), help="global batch size [128]")
    p.add_argument("--lr", type=finite_float(0, lo_open=True), help="peak learning rate of the FP32 stage [0.1]")
    p.add_argument("--qat-lr", type=finite_float(0, lo_open=True), help="initial learning rate of the QAT stage [0.01]")
    p.add_argument("--weight-decay", type=finite_float(0), help="weight decay of conv / linear weights [5e-5]")
    p.add_argument(
        "--label-smoothing",
        type=finite_float(0, 1, hi_open=True),
        help="label smoothing of the largest subnet's loss [0.1]",
    )
    p.add_argument("--warmup-epochs", type=finite_float(0, 100_000), help="linear warm-up epochs [1]")
    p.add_argument(
        "--schedule",
        choices=("cosine", "onecycle"),
        help="learning-rate schedule of the FP32 stage: warm-up then cosine, or one-cycle to --lr "
        "(torch's OneCycleLR; --warmup-epochs unused) [cosine]",
    )
    p.add_argument(
        "--num-random", type=int_range(0, 64), help="random subnets per step besides largest and smallest [2]"
    )
    p.add_argument("--kd-temperature", type=finite_float(0, lo_open=True), help="distillation temperature [1]")
    p.add_argument("--no-distill", action="store_true", help="train every subnet on the labels instead")
    p.add_argument("--no-kernel-transform", action="store_true", help="plain centre crops for smaller kernels")
    p.add_argument("--no-flip", action="store_true", help="no random horizontal flips")
    p.add_argument(
        "--no-sync-bn",
        action="store_true",
        help="under torchrun, normalise with each process's own batch statistics (less communication; "
        "results then differ from one process's)",
    )
    p.add_argument(
        "--reorder-channels",
        action="store_true",
        help="sort hidden channels by importance after every FP32 epoch but the last (OFA)",
    )
    p.add_argument("--seed", type=int_range(0, 2**63 - 1), help="seed [0]")
    p.add_argument(
        "--scheme", type=quant_scheme, help="quantization scheme of the QAT stage: ort_cpu or tensorrt [ort_cpu]"
    )
    p.add_argument("--train-limit", type=int_range(1), help="use the first N training images")
    p.add_argument(
        "--val-fraction",
        type=finite_float(0, 1, hi_open=True),
        help="share of the training images held out of training, stratified: the validation set on "
        "which `nas search --supernet` ranks subnets [0.1]",
    )
    p.add_argument("--test-limit", type=int_range(1), help="evaluate on the first N test images")
    p.add_argument(
        "--checkpoint-every", type=int_range(0), help="also checkpoint every N steps (0: epoch ends only) [200]"
    )
    p.add_argument("--eval-every", type=int_range(0), help="evaluate largest / smallest every N epochs (0: never) [1]")
    p.add_argument(
        "--bn-calib-batches",
        type=int_range(1, 100_000),
        help="batches (of 256) for BN recalibration before evaluation [8]",
    )
    p.add_argument("--threads", type=int_range(1, 4096), help="torch intra-op threads")
    p.add_argument("--device", type=device, help="cpu, cuda or cuda:N (refused where this machine has no CUDA) [cpu]")
    p.add_argument(
        "--memory-format",
        choices=sorted(_MEMORY_FORMATS),
        help="activation layout: channels-last (NHWC), contiguous (NCHW), or auto: NHWC on CPU, "
        "where oneDNN's kernels want it, NCHW on CUDA [auto]",
    )
    p.add_argument("--max-steps", type=int_range(1), help=argparse.SUPPRESS)
    p.add_argument("--progress", dest="progress", action="store_true", default=None, help="force the progress bar")
    p.add_argument("--no-progress", dest="progress", action="store_false", help="log lines instead of a progress bar")
    p.add_argument("--json", action="store_true", help="print the final metrics as one JSON object")
    p.set_defaults(func=_handler)


def _explicit(args: argparse.Namespace) -> dict[str, Any]:
    out: dict[str, Any] = {}
    for opt, name in _FIELDS.items():
        v = getattr(args, opt)
        if v is not None:
            out[name] = v
    if args.space_args is not None:
        from nas.cli._common import parse_space_args

        out["space_kwargs"] = parse_space_args(args.space_args)
    if args.no_distill:
        out["distill"] = False
    if args.no_kernel_transform:
        out["kernel_transform"] = False
    if args.no_flip:
        out["flip"] = False
    if args.reorder_channels:
        out["reorder_channels"] = True
    if args.no_sync_bn:
        out["sync_bn"] = False
    if args.memory_format is not None:
        out["channels_last"] = _MEMORY_FORMATS[args.memory_format]
    return out


def _check_resume_space(args: argparse.Namespace, meta: dict[str, Any]) -> None:
    """``--resume`` with ``--space`` / ``--space-args``: they must describe the checkpoint's space
    (same hash; the shape defaults to the checkpoint's), else one line naming both hashes."""
    from nas.cli._common import resolve_space_for
    from spaces.identity import space_from_identity
    from supernet.checkpoint import checkpoint_path

    where = str(checkpoint_path(args.out))
    if not isinstance(meta.get("space"), dict):
        raise ConfigError(f"{where}: incomplete checkpoint metadata (no space)")
    reference = space_from_identity(meta["space"], where)
    name = args.space or meta.get("config", {}).get("space") or reference.name
    resolve_space_for(argparse.Namespace(space=name, space_args=args.space_args), reference, f"checkpoint {where}")


def _repair_scheme(
    args: argparse.Namespace, meta: dict[str, Any], saved: dict[str, Any], given: dict[str, Any]
) -> None:
    """A checkpoint written before schemes were checked up front may name an unknown one (the run then
    stopped when its QAT stage began): ``--resume --scheme S`` replaces it, so that the run continues."""
    from quant.scheme import SCHEMES
    from supernet.checkpoint import checkpoint_path

    if saved.get("scheme", "ort_cpu") in SCHEMES or meta.get("quant_scheme") is not None:
        return
    if "scheme" not in given:
        raise ConfigError(
            f"{checkpoint_path(args.out)}: the run names unknown quantization scheme {saved['scheme']!r}; "
            f"resume it with --scheme ({', '.join(sorted(SCHEMES))})"
        )
    saved["scheme"] = given["scheme"]


def _handler(args: argparse.Namespace) -> int:
    from supernet.checkpoint import checkpoint_path, read_checkpoint
    from supernet.train import TrainConfig, Trainer

    given = _explicit(args)
    if args.resume:
        meta, _ = read_checkpoint(args.out)
        saved = dict(meta.get("config", {}))
        _repair_scheme(args, meta, saved, given)
        if "space" in given or "space_kwargs" in given:  # compared as spaces (hashes), not as names
            _check_resume_space(args, meta)
            given.pop("space", None)
            given.pop("space_kwargs", None)
        for name, value in given.items():
            if name in _EXECUTION:
                continue
            if saved.get(name) != value and not (isinstance(value, (int, float)) and saved.get(name) == value):
                raise ConfigError(
                    f"--{name.replace('_', '-')} {value!r} differs from the checkpoint's {saved.get(name)!r}"
                )
        config = TrainConfig.from_dict({**saved, **{k: v for k, v in given.items() if k in _EXECUTION}})
        trainer = Trainer(config, args.out, resume=True, progress=args.progress, config_override=config)
    else:
        if checkpoint_path(args.out).exists():
            raise ConfigError(f"{args.out} already holds a checkpoint: pass --resume to continue it, or another --out")
        from nas.cli._common import check_space_choice

        check_space_choice(given.get("space", TrainConfig.space), given.get("space_kwargs"))
        trainer = Trainer(TrainConfig(**given), args.out, progress=args.progress)
    final = trainer.run()
    if trainer.dist.is_main:
        if args.json:
            print(
                json.dumps(
                    {"out": str(args.out), "epochs": trainer.epoch, "global_step": trainer.global_step, **final},
                    sort_keys=True,
                )
            )
        else:
            print(f"supernet saved to {checkpoint_path(args.out)}", file=sys.stdout)
    from supernet.distributed import shutdown

    shutdown()
    return 0
