"""``nas export``: a trained subnet to deployable INT8 files, verified on the target."""

from __future__ import annotations

import argparse
import json
import sys
from typing import Any

from hwnas.errors import ConfigError, first_line

__all__ = ["register"]


def register(subparsers: Any) -> None:
    from nas.cli._types import finite_float, int_range
    from nas.export.formats import FORMATS

    p = subparsers.add_parser(
        "export",
        help="export a subnet (or a plain model) to INT8 ONNX / OpenVINO / TensorRT and verify it on the target",
        description="Extract ARCH from the supernet in --checkpoint (its weights and learned scales, batch norms "
        "recalibrated), or build it from --space with --weights, quantize it for --target (the trained scales when "
        "the checkpoint's scheme suits the target's engine, else PTQ with the target's scheme; --finetune-epochs "
        "adds a short QAT fine-tune) and write --out/model.int8.onnx, model.fp32.onnx, model.openvino/, model.plan "
        "and model.json. Verification: every exported file runs on the test set (accuracy, agreement with the "
        "fake-quantized model) and the target's engine measures the latency, compared with the LUT's prediction.",
    )
    src = p.add_mutually_exclusive_group(required=True)
    src.add_argument("--checkpoint", help="supernet training folder or checkpoint.safetensors")
    src.add_argument("--weights", help="a plain model's weights (safetensors state dict) for --space / --arch")
    p.add_argument("--arch", help="arch JSON file (or 'largest' / 'smallest' with --checkpoint)")
    p.add_argument("--out", required=True, help="output folder")
    p.add_argument(
        "--format",
        default=None,
        metavar="LIST",
        help=f"comma-separated formats: {', '.join(FORMATS)} [onnx-int8,onnx-fp32]; onnx-int8 is always written",
    )
    p.add_argument(
        "--target",
        default=None,
        help="target name or YAML file (`nas profile --list-targets`) [cpu-ort-int8; gpu-trt-int8 with "
        "--format tensorrt]",
    )
    p.add_argument("--lut", help="LUT measured for --target on this machine: the predicted latency")
    p.add_argument(
        "--finetune-epochs",
        type=finite_float(0, 100_000),
        default=0.0,
        help="QAT fine-tune of the extracted model before export, in epochs of the training data [0]",
    )
    p.add_argument(
        "--finetune-lr",
        type=finite_float(0, 100, lo_open=True),
        default=None,
        help="peak learning rate of the fine-tune (cosine decay) [0.005]",
    )
    p.add_argument(
        "--finetune-distill",
        type=finite_float(0, 1),
        default=None,
        help="weight of the loss that distills the model's FP32 version in the fine-tune; 0: labels only [0.5]",
    )
    p.add_argument(
        "--data",
        help="data set: fashion-mnist, digits, an ImageFolder root (train/ and val/ or test/) or an "
        ".npz file, read at the model's input size with its training normalisation and classes [the checkpoint's]",
    )
    p.add_argument("--test-limit", type=int_range(1), help="verify on the first N test images [all]")
    p.add_argument(
        "--calib-batches",
        type=int_range(1, 100_000),
        help="training batches for BN recalibration and PTQ [the checkpoint's, 8]",
    )
    p.add_argument("--scheme", help="quantization scheme (ort_cpu, ort_cpu_avx2, tensorrt) [the target's]")
    p.add_argument(
        "--max-latency",
        type=finite_float(0, lo_open=True),
        metavar="MS",
        help="latency budget: checked against the measurement",
    )
    p.add_argument("--timing-cache", metavar="PATH", help="TensorRT timing cache [OUT/tensorrt.timing.cache]")
    p.add_argument("--threads", type=int_range(1, 4096), default=1, help="torch / onnxruntime threads for accuracy [1]")
    p.add_argument("--strict", action="store_true", help="exit 1 when a verification check fails")
    p.add_argument("--json", action="store_true", help="print model.json's record as one JSON object")
    from nas.cli._common import add_space_arguments

    add_space_arguments(p, required=False)  # with --weights: the space of --arch (a checkpoint carries its own)
    p.set_defaults(func=_handler)


def _load_weights(path: str, space: Any, arch: Any) -> Any:
    from pathlib import Path

    import torch

    p = Path(path)
    if not p.is_file():
        raise ConfigError(f"--weights {p}: no such file")
    try:
        if p.suffix == ".safetensors":
            from safetensors.torch import load_file

            state = load_file(str(p))
        else:
            state = torch.load(str(p), map_location="cpu", weights_only=True)
    except Exception as exc:  # noqa: BLE001 - safetensors / torch raise several types for bad files
        first = first_line(exc)
        raise ConfigError(f"--weights {p}: not a readable weights file ({first})") from None
    if not isinstance(state, dict):
        raise ConfigError(f"--weights {p}: expected a state dict of tensors")
    model = space.build(arch)
    missing, unexpected = model.load_state_dict(state, strict=False)
    if missing or unexpected:
        what = f"lacks {missing[0]!r}" if missing else f"has {unexpected[0]!r}, which the model has not"
        raise ConfigError(f"--weights {p}: does not fit arch {arch.id} of space {space.name} ({what})")
    return model.eval()


def _handler(args: argparse.Namespace) -> int:
    import torch

    from nas.cli._common import load_arch_file
    from nas.export import export

    torch.set_num_threads(max(1, args.threads))
    if args.test_limit is not None and args.test_limit < 1:
        raise ConfigError(f"--test-limit must be positive, got {args.test_limit}")
    if args.calib_batches is not None and args.calib_batches < 1:
        raise ConfigError(f"--calib-batches must be positive, got {args.calib_batches}")
    log = (lambda msg: None) if args.json else (lambda msg: print(f"nas export: {msg}", file=sys.stderr, flush=True))
    common = dict(
        out=args.out,
        formats=args.format,
        target=args.target,
        calibration=args.calib_batches,
        lut=args.lut,
        finetune_epochs=args.finetune_epochs,
        finetune_lr=args.finetune_lr,
        finetune_distill=args.finetune_distill,
        scheme=args.scheme,
        test_limit=args.test_limit,
        max_latency_ms=args.max_latency,
        timing_cache=args.timing_cache,
        threads=args.threads,
        log=log,
    )
    if args.checkpoint is not None:
        if args.arch is None:
            raise ConfigError("--arch is required (an arch JSON file, or largest / smallest)")
        given = [
            o
            for o in ("space", "space_args", "in_chans", "num_classes", "resolution")
            if getattr(args, o, None) is not None
        ]
        if given:
            raise ConfigError(
                f"--{given[0].replace('_', '-')} goes with --weights: a supernet checkpoint carries its own space"
            )
        arch: Any = args.arch if args.arch in ("largest", "smallest") else dict(load_arch_file(args.arch))
        res = export(args.checkpoint, arch, data=args.data, **common)
    else:
        from nas.cli._common import space_from_args

        if args.space is None or args.arch is None:
            raise ConfigError("--weights needs --space and --arch (the model is space.build(arch))")
        if args.data is None:
            raise ConfigError("--weights needs --data (the dataset for calibration and the test accuracy)")
        space = space_from_args(args)
        arch = space.validate(load_arch_file(args.arch))
        model = _load_weights(args.weights, space, arch)
        res = export(model, arch, space=space, data=args.data, **common)
    rec = res.record
    if args.json:
        print(json.dumps(rec, sort_keys=False, default=str))
    else:
        _print_summary(rec, res.out)
    return 1 if args.strict and not res.passed else 0


def _fmt(v: Any, spec: str = ".2f", unit: str = "") -> str:
    return "n/a" if v is None else f"{v:{spec}}{unit}"


def _print_summary(rec: dict[str, Any], out: Any) -> None:
    acc, lat, checks = rec["accuracy"], rec["latency_ms"], rec["checks"]
    name = rec["arch_id"] or rec["source"].get("module", "model")
    space = rec["space"]["name"] if rec["space"] else "-"
    print(
        f"{name} ({space}) -> {out} for {rec['target']} [{rec['quantization']['method']}, scheme "
        f"{rec['quantization']['scheme']['name']}]"
    )
    for fmt, rel in rec["files"].items():
        print(f"  {fmt:<10} {rel}  sha256 {rec['sha256'][rel][:16]}")
    line = (
        f"  accuracy ({rec['data']['test_images']} test images): fp32 {_fmt(acc['fp32_test'], unit='%')}, "
        f"fake-quant {_fmt(acc['fakequant_test'], unit='%')}, int8 {_fmt(acc['int8_test'], unit='%')}; "
        f"int8 vs fake-quant agreement {_fmt(acc['int8_vs_fakequant_agreement'], unit='%')}"
    )
    print(line)
    for engine in ("openvino", "tensorrt"):
        if f"{engine}_test" in acc:
            print(
                f"  {engine}: test {_fmt(acc[f'{engine}_test'], unit='%')}, agreement with fake-quant "
                f"{_fmt(acc[f'{engine}_vs_fakequant_agreement'], unit='%')}"
            )
    if rec.get("finetune"):
        ft = rec["finetune"]
        print(
            f"  QAT fine-tune {ft['epochs']:g} epochs (lr {ft['config']['lr']:g}): fake-quant test {ft['fakequant_test_before']:.2f}% -> "
            f"{ft['fakequant_test_after']:.2f}%"
        )
    ratio = f", ratio {lat['ratio']:.3f}" if lat["ratio"] is not None else ""
    print(
        f"  latency on {rec['target']}: measured {_fmt(lat['measured'], '.4f', ' ms')} (fp32 "
        f"{_fmt(lat['measured_fp32'], '.4f', ' ms')}), predicted {_fmt(lat['predicted'], '.4f', ' ms')}{ratio}"
        + (f", budget {lat['budget']:g} ms" if lat["budget"] is not None else "")
    )
    names = [k for k in checks if k not in ("passed", "agreement_threshold", "latency_tolerance")]
    failed = [k for k in names if checks[k] is False]
    ran = [k for k in names if checks[k] is not None]
    print(
        f"  checks: {len(ran) - len(failed)}/{len(ran)} passed"
        + (f", FAILED: {', '.join(failed)}" if failed else "")
        + (f" ({len(names) - len(ran)} not applicable)" if len(ran) < len(names) else "")
    )
