"""``nas spaceevo-quality``: block-wise quality (INT8 NSR) of a hyper-space's candidate stages."""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path
from typing import Any

from hwnas.errors import ConfigError, first_line

__all__ = ["register"]


def _csv(text: str | None, option: str, kind: type = str) -> list[Any] | None:
    if text is None:
        return None
    items = [t.strip() for t in text.split(",") if t.strip()]
    if not items:
        raise ConfigError(f"{option}: empty list")
    try:
        return [kind(t) for t in items]
    except ValueError:
        raise ConfigError(f"{option}: expected a comma-separated list of {kind.__name__}s, got {text!r}") from None


def register(subparsers: Any) -> None:
    p = subparsers.add_parser(
        "spaceevo-quality",
        help="block-wise distillation of every candidate stage of a hyper-space: INT8 NSR losses into a quality file",
        description="For every (searchable stage, block type, width window) of a hyper-space, train a weight-sharing "
        "super-block to reproduce a teacher's stage output from its stage input (1x1 adapters at the stage "
        "boundaries), first in FP32, then with LSQ+ fake quantization; measure the NSR loss of the smallest, the "
        "largest and --eval-samples random sub-stages on held-out training images (never the test set), and store "
        "them in a SQLite quality file (the Q-T score of `nas evolve-space` reads it). Resumable: rerun the same "
        "command after an interruption; finished candidate stages are never redone.",
    )
    p.add_argument(
        "--hyperspace",
        default="spaceevo",
        metavar="SPACE",
        help="the hyper-space: a registered name or a space YAML file [spaceevo]",
    )
    p.add_argument(
        "--space-args",
        metavar="JSON",
        help="hyper-space arguments, e.g. '{\"scale\": 0.25}' "
        "(input channels, resolution and classes are the teacher's)",
    )
    p.add_argument(
        "--teacher",
        required=True,
        metavar="CKPT|timm:NAME",
        help="a QFA supernet checkpoint (training folder or checkpoint.safetensors: its largest subnet, "
        "batch norms recalibrated, is the teacher; its data record and held-out split are used), or "
        "timm:NAME with --teacher-weights and --teacher-stages (a timm model trained on --data)",
    )
    p.add_argument(
        "--teacher-weights",
        metavar="FILE",
        help="timm teacher: its trained weights (safetensors, or a state dict torch.load reads with weights_only=True)",
    )
    p.add_argument(
        "--teacher-stages",
        metavar="JSON",
        help='timm teacher: the submodule that is each hyper-space stage, e.g. \'{"2": "layer1", "3": "layer2"}\'',
    )
    p.add_argument(
        "--data",
        help="training data (default: the supernet checkpoint's); fashion-mnist, digits, an "
        "ImageFolder tree or an .npz file",
    )
    p.add_argument(
        "--out",
        required=True,
        metavar="QUALITY.db",
        help="the quality file (created or resumed; put it beside the LUT); checkpoints go to QUALITY.db.work/",
    )
    p.add_argument("--stages", metavar="LIST", help="only these stages, e.g. 2,3")
    p.add_argument("--block-types", metavar="LIST", help="only these block types, e.g. mbv2,fused")
    p.add_argument("--windows", metavar="LIST", help="only these width windows (names w0,w1 or indices 0,1)")
    p.add_argument("--resolution", type=int, help="timm teacher: input resolution (a supernet teacher fixes its own)")
    p.add_argument("--epochs", type=float, help="FP32 distillation epochs [1]")
    p.add_argument("--qat-epochs", type=float, help="LSQ+ fake-quantized epochs after them [0.5]")
    p.add_argument("--batch-size", type=int, help="batch size [64]")
    p.add_argument("--lr", type=float, help="Adam learning rate of the FP32 phase [0.002]")
    p.add_argument("--qat-lr", type=float, help="Adam learning rate of the INT8 phase [0.0005]")
    p.add_argument("--num-random", type=int, help="random sub-stages per step besides largest and smallest [2]")
    p.add_argument(
        "--eval-samples",
        type=int,
        help="random sub-stages measured per candidate stage, besides the smallest and the largest [16]",
    )
    p.add_argument("--eval-images", type=int, help="held-out training images the NSR is measured on [1024]")
    p.add_argument("--train-limit", type=int, help="use the first N training images")
    p.add_argument(
        "--val-fraction", type=float, help="share of training images held out when the teacher held none out [0.1]"
    )
    p.add_argument("--scheme", help="quantization scheme: ort_cpu or tensorrt [ort_cpu]")
    p.add_argument("--seed", type=int, help="seed [0]")
    p.add_argument("--checkpoint-every", type=int, help="checkpoint every N steps of a candidate stage [50]")
    p.add_argument("--threads", type=int, help="torch threads (default: every usable core)")
    p.add_argument("--device", default="cpu", help="cpu or cuda: where the teacher and the super-blocks run [cpu]")
    p.add_argument("--progress", dest="progress", action="store_true", default=None, help="force the progress bar")
    p.add_argument("--no-progress", dest="progress", action="store_false", help="no progress bar")
    p.add_argument("--json", action="store_true", help="print the summary as one JSON object")
    p.set_defaults(func=_handler)


_FIELDS = (
    "epochs",
    "qat_epochs",
    "batch_size",
    "lr",
    "qat_lr",
    "num_random",
    "eval_samples",
    "eval_images",
    "train_limit",
    "val_fraction",
    "scheme",
    "seed",
    "checkpoint_every",
    "threads",
)


def _config(args: argparse.Namespace) -> Any:
    from nas.spaceevo.blockkd import BlockKDConfig

    given = {k: getattr(args, k) for k in _FIELDS if getattr(args, k) is not None}
    for k in ("batch_size", "eval_images", "train_limit", "threads"):
        if k in given and given[k] < 1:
            raise ConfigError(f"--{k.replace('_', '-')} must be a positive integer, got {given[k]}")
    return BlockKDConfig(**given)


def _hyperspace(args: argparse.Namespace, input_shape: tuple[int, int, int], num_classes: int) -> Any:
    from nas.cli._common import check_space_choice, parse_space_args
    from supernet.train import build_space

    kwargs = parse_space_args(args.space_args) if args.space_args is not None else None
    check_space_choice(args.hyperspace, kwargs)
    return build_space(args.hyperspace, kwargs or {}, input_shape, num_classes, data="the teacher's data")


def _supernet_teacher(args: argparse.Namespace, config: Any) -> tuple[Any, Any, Any, dict[str, Any]]:
    from nas.spaceevo.blockkd import load_supernet_teacher

    return load_supernet_teacher(args.teacher, config, data=args.data, device=args.device)


def _timm_teacher(args: argparse.Namespace, config: Any) -> tuple[Any, Any, Any, dict[str, Any]]:
    from nas.cli._common import parse_space_args
    from nas.spaceevo.blockkd import Teacher
    from supernet.data import data_info, load_data, split_validation

    name = args.teacher.split(":", 1)[1]
    if not name:
        raise ConfigError("--teacher timm:NAME needs a model name")
    if not args.teacher_weights or not args.teacher_stages:
        raise ConfigError("--teacher timm:NAME needs --teacher-weights and --teacher-stages")
    if not args.data:
        raise ConfigError("--teacher timm:NAME needs --data (the data it was trained on)")
    stages_raw = parse_space_args(args.teacher_stages, "--teacher-stages")
    try:
        stages = {int(k): str(v) for k, v in stages_raw.items()}
    except ValueError:
        raise ConfigError(f"--teacher-stages: keys are stage numbers, got {sorted(stages_raw)}") from None
    data = load_data(args.data, "train", config.train_limit, resolution=args.resolution)
    import timm

    try:
        model = timm.create_model(name, pretrained=False, in_chans=data.input_shape[0], num_classes=data.num_classes)
    except RuntimeError as exc:
        raise ConfigError(f"--teacher timm:{name}: {first_line(exc)}") from None
    state = _read_weights(args.teacher_weights)
    try:
        model.load_state_dict(state)
    except RuntimeError as exc:
        raise ConfigError(
            f"{args.teacher_weights}: not weights of timm {name} for this data ({first_line(exc)})"
        ) from None
    train, val = split_validation(data, config.val_fraction, config.seed)
    model.to(args.device)
    teacher = Teacher.from_module(
        model,
        data.input_shape,
        stages,
        {"kind": "timm", "model": name, "path": str(Path(args.teacher_weights).resolve()), "stages": stages_raw},
    )
    return teacher, train, val, data_info(data)


def _read_weights(path: str) -> dict[str, Any]:
    import torch

    p = Path(path)
    if not p.is_file():
        raise ConfigError(f"{p}: no such weights file")
    state: object  # a state dict, or whatever else the file holds
    try:
        if p.suffix == ".safetensors":
            from safetensors.torch import load_file

            state = load_file(str(p))
        else:
            state = torch.load(str(p), map_location="cpu", weights_only=True)
    except Exception as exc:  # noqa: BLE001 - both readers raise several types for bad files
        first = first_line(exc)
        raise ConfigError(f"{p}: not a readable weights file ({first})") from None
    if isinstance(state, dict) and isinstance(state.get("state_dict"), dict):
        state = state["state_dict"]
    if not isinstance(state, dict):
        raise ConfigError(f"{p}: not a state dict")
    return state


def _checkpoint_input(path: str) -> tuple[tuple[int, int, int], int]:
    """``(input shape, classes)`` a supernet checkpoint records, read without building the supernet."""
    from supernet.checkpoint import checkpoint_path, read_checkpoint

    meta, _ = read_checkpoint(path)
    info: Any = meta.get("data_info")  # the checkpoint's JSON, checked here
    try:  # no record (None), or one missing keys or with another shape
        c, h, w = (int(v) for v in info["input_shape"])
        return (c, h, w), int(info["num_classes"])
    except (KeyError, TypeError, ValueError):
        raise ConfigError(
            f"{checkpoint_path(path)}: the checkpoint records no data set (input shape C,H,W and classes); "
            "it cannot serve as a teacher"
        ) from None


def _handler(args: argparse.Namespace) -> int:
    from nas.spaceevo.blockkd import BlockKD, candidate_stages
    from nas.spaceevo.quality import QualityStore

    config = _config(args)
    out = Path(args.out)
    if out.exists() and out.is_dir():
        raise ConfigError(f"{out}: is a folder; --out names the quality file (e.g. quality.db)")
    stages = _csv(args.stages, "--stages", int)
    block_types = _csv(args.block_types, "--block-types")
    windows = _csv(args.windows, "--windows")
    timm_teacher = args.teacher.startswith("timm:")
    if args.device not in ("cpu", "cuda") and not args.device.startswith("cuda:"):
        raise ConfigError(f"--device {args.device!r}: expected cpu or cuda")
    if args.device.startswith("cuda"):
        import torch

        if not torch.cuda.is_available():
            raise ConfigError(f"--device {args.device}: no CUDA device here")
    # cheap checks first: loading a teacher takes seconds
    if timm_teacher:
        teacher, train, val, record = _timm_teacher(args, config)
        c, h, w = teacher.input_shape
        shape, classes = (int(c), int(h), int(w)), int(train.num_classes)
    else:
        if args.teacher_weights or args.teacher_stages:
            raise ConfigError("--teacher-weights / --teacher-stages are for a timm:NAME teacher")
        shape, classes = _checkpoint_input(args.teacher)
        if args.resolution is not None and args.resolution != shape[1]:
            raise ConfigError(f"--resolution {args.resolution}: the teacher takes {shape[1]}x{shape[2]} inputs")
    space = _hyperspace(args, shape, classes)
    cands = candidate_stages(space, stages, block_types, windows)
    if not cands:
        raise ConfigError("no candidate stage matches --stages / --block-types / --windows")
    QualityStore(out).close()  # a file that is not a quality file is refused before any work
    if not timm_teacher:
        teacher, train, val, record = _supernet_teacher(args, config)
    log = lambda msg: print(msg, file=sys.stderr, flush=True)
    kd = BlockKD(
        space, teacher, train, val, out, config, candidates=cands, data_record=record, progress=args.progress, log=log
    )
    summary = kd.run()
    if args.json:
        print(json.dumps(summary, sort_keys=True))
    else:
        per = summary["seconds_per_candidate"]
        print(
            f"{summary['trained']} candidate stages measured, {summary['skipped']} already done "
            f"({per if per is not None else '-'} s each) -> {out} (fingerprint {summary['fingerprint']})"
        )
    return 0
