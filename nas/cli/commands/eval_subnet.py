"""``nas eval-subnet``: test accuracy of one subnet of a trained supernet, FP32 or INT8."""

from __future__ import annotations

import argparse
import json
from pathlib import Path
from typing import Any

from hwnas.errors import ConfigError
from nas.cli._common import add_space_arguments
from nas.cli._types import int_range

__all__ = ["register"]


def register(subparsers: Any) -> None:
    p = subparsers.add_parser(
        "eval-subnet",
        help="extract a subnet from a trained supernet and measure its test accuracy (FP32 or INT8)",
        description="Extract ARCH from the supernet in --checkpoint (no retraining), recalibrate its batch norms on "
        "a few training batches and measure its test accuracy: in FP32 with torch, or with --int8 as the exported "
        "QDQ ONNX model (the supernet's learned scales) run by onnxruntime.",
    )
    p.add_argument("--checkpoint", required=True, help="training folder or checkpoint.safetensors")
    p.add_argument("--arch", required=True, help="arch JSON file, or 'largest' / 'smallest'")
    p.add_argument("--int8", action="store_true", help="INT8: export QDQ ONNX and run it with onnxruntime")
    p.add_argument("--json", action="store_true", help="print one JSON object")
    p.add_argument(
        "--data",
        help="data set: fashion-mnist, digits, an ImageFolder root (train/ and val/ or test/) or "
        "an .npz file, read at the supernet's input size with its training normalisation and classes "
        "(default: the data set it was trained on)",
    )
    p.add_argument(
        "--test-limit", type=int_range(1), help="evaluate on the first N test images (default: the whole test set)"
    )
    p.add_argument(
        "--bn-batches",
        type=int_range(1, 100_000),
        help="training batches of 256 for BN recalibration [checkpoint's, 8]",
    )
    p.add_argument("--onnx", metavar="PATH", help="also keep the exported INT8 ONNX model at PATH")
    p.add_argument("--threads", type=int_range(1, 4096), default=1, help="onnxruntime / torch threads [1]")
    add_space_arguments(
        p,
        required=False,
        help="the space the supernet must have been trained on (default: the checkpoint's own; "
        "another space is refused)",
    )
    p.set_defaults(func=_handler)


def _load_arch(spec: str) -> Any:
    from hwnas.io import read_json_file

    if spec in ("largest", "smallest"):
        return spec
    data = read_json_file(spec)
    if isinstance(data, dict) and "arch" in data and isinstance(data["arch"], dict):
        data = data["arch"]  # accept {"arch": {...}} records as well
    if not isinstance(data, dict):
        raise ConfigError(f"{spec}: an arch JSON file holds an object of decision values")
    return data


def _handler(args: argparse.Namespace) -> int:
    import torch

    from supernet.data import calibration_batches, load_data_like
    from supernet.evaluate import evaluate_arch
    from supernet.train import load_supernet

    torch.set_num_threads(max(1, args.threads))
    arch_spec = _load_arch(args.arch)
    net, meta = load_supernet(args.checkpoint)
    from nas.cli._common import resolve_space_for
    from supernet.checkpoint import checkpoint_path

    resolve_space_for(args, net.space, f"checkpoint {checkpoint_path(args.checkpoint)}")  # another space: refused
    config = meta["config"]
    if arch_spec == "largest":
        arch = net.largest()
    elif arch_spec == "smallest":
        arch = net.smallest()
    else:
        arch = net.validate(arch_spec)
    # the checkpoint's data record: its input shape and normalisation (older checkpoints: the spec alone)
    recorded = meta.get("data_info") or config.get("data", "fashion-mnist")
    data = args.data or (recorded["data"] if isinstance(recorded, dict) else recorded)
    train = load_data_like(recorded, "train", config.get("train_limit"), spec=args.data)
    test = load_data_like(recorded, "test", args.test_limit, spec=args.data)
    if train.input_shape != net.space.input_shape:
        raise ConfigError(f"{data}: input {train.input_shape} does not match the supernet's {net.space.input_shape}")
    n_bn = args.bn_batches if args.bn_batches is not None else int(config.get("bn_calib_batches", 8))
    calib = calibration_batches(train, n_bn, int(config.get("calib_batch_size", 256)), int(config.get("seed", 0)))
    precision = "int8" if args.int8 else "fp32"
    res = evaluate_arch(net, arch, test, calib, precision=precision, onnx_path=args.onnx, threads=args.threads)
    state = meta.get("state", {})
    res.update(
        {
            "space": net.space.name,
            "arch": arch.to_dict(),
            "describe": net.space.describe(arch),
            "checkpoint": str(Path(args.checkpoint)),
            "epochs_trained": state.get("epoch"),
            "accuracy": round(res["accuracy"], 3),
        }
    )
    if args.json:
        print(json.dumps(res, sort_keys=True))
    else:
        print(
            f"{res['arch_id']} ({net.space.name}): {precision} test accuracy {res['accuracy']:.2f}% "
            f"on {res['num_test']} images, {res['params']:,} parameters"
        )
    return 0
