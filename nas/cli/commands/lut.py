"""``nas lut export-blocks | merge | show | validate``: latency lookup tables."""

from __future__ import annotations

import argparse
import json
import sys
from typing import Any

from hwnas.errors import ConfigError
from nas.cli._common import add_space_arguments
from nas.cli._types import int_range


def register(sub: argparse._SubParsersAction) -> None:
    p = sub.add_parser("lut", help="latency lookup tables: export blocks, merge, show, validate")
    lsub = p.add_subparsers(dest="lut_command", metavar="ACTION")
    lsub.required = True

    e = lsub.add_parser(
        "export-blocks",
        help="write per-block ONNX models (FP32, INT8 QDQ) for on-device profiling",
        description="Write a self-contained folder of per-block ONNX models and a manifest: copy it "
        "to the device and run `nas profile DIR --target T --out lut.db` there.",
    )
    add_space_arguments(e, required=True)
    e.add_argument("--out", required=True, metavar="DIR", help="output folder")
    e.add_argument(
        "--formats",
        default="fp32,int8,int8_nhwc",
        help="comma-separated model formats: fp32, int8 (u8 activations, NCHW uint8 block I/O: "
        "OpenVINO, onnxruntime GPU), int8_nhwc (the same with NHWC block I/O: onnxruntime CPU), "
        "int8_sym (symmetric, TensorRT), pt2 (torch.export programs: torch engine) (default fp32,int8,int8_nhwc)",
    )
    e.add_argument("--batch", type=int_range(1, 4096), default=1, help="batch size (default 1)")
    e.add_argument("--archs", type=int_range(1), default=None, metavar="N", help="only the blocks of N sampled archs")
    e.add_argument(
        "--seed", type=int_range(0, 2**63 - 1), default=0, help="seed for --archs and the networks (default 0)"
    )
    e.add_argument(
        "--networks",
        type=int_range(0, 100_000),
        default=10,
        metavar="K",
        help="also export K whole networks for the learned correction (default 10)",
    )
    e.add_argument("--no-progress", action="store_true", help="no progress bar")
    e.set_defaults(func=_export)

    m = lsub.add_parser("merge", help="merge LUT files into one")
    m.add_argument("out", metavar="OUT", help="LUT to merge into (created when absent)")
    m.add_argument("inputs", nargs="+", metavar="IN", help="LUT files to merge")
    m.add_argument(
        "--on-conflict",
        choices=("keep", "newer", "replace", "error"),
        default="keep",
        help="a block both LUTs measured: keep OUT's row (default), the newer one, IN's, or fail",
    )
    m.set_defaults(func=_merge)

    s = lsub.add_parser("show", help="summary of a LUT and the INT8-vs-FP32 speed-up per op type")
    s.add_argument("lut", metavar="LUT")
    add_space_arguments(
        s, required=False, help="also check that the LUT was made for this space (registered name or YAML file)"
    )
    s.add_argument("--json", action="store_true", help="print one JSON object")
    s.set_defaults(func=_show)

    v = lsub.add_parser("validate", help="measure random whole networks and compare them with the LUT's prediction")
    v.add_argument("--lut", required=True, metavar="LUT")
    add_space_arguments(
        v,
        required=False,
        help="registered space name or space YAML file (default: the one space the LUT records; "
        "a bare name: the LUT's configuration of it)",
    )
    v.add_argument("--target", required=True, metavar="T", help="target (its fingerprint here must be in the LUT)")
    v.add_argument("--n", type=int_range(2, 1_000_000), default=100, help="number of random networks (default 100)")
    v.add_argument("--seed", type=int_range(0, 2**63 - 1), default=0, help="sampling seed (default 0)")
    v.add_argument(
        "--passes",
        type=int_range(1, 1000),
        default=None,
        help="measure each network in this many passes over all networks, keep the lowest (default 4: "
        "as often as `nas profile` measures its calibration networks)",
    )
    v.add_argument(
        "--remeasure",
        type=int_range(0, 1000),
        default=3,
        help="measure a network flagged unstable (machine busy) again, up to this many times (default 3)",
    )
    v.add_argument("--no-progress", action="store_true", help="no progress bar")
    v.add_argument("--json", action="store_true", help="print one JSON object")
    v.set_defaults(func=_validate)


def _export(args: argparse.Namespace) -> int:
    from hwnas.progress import ProgressBar
    from latency_lut.export import export_blocks
    from latency_lut.progress import progress_bar
    from nas.cli._common import space_from_args

    formats = [f.strip() for f in args.formats.split(",") if f.strip()]
    if not formats:
        raise ConfigError("--formats names no format")
    for name in ("batch", "archs"):
        value = getattr(args, name)
        if value is not None and value < 1:
            raise ConfigError(f"--{name} must be a positive integer, got {value}")
    if args.networks < 0:
        raise ConfigError(f"--networks must be >= 0, got {args.networks}")
    space = space_from_args(args)
    bar: ProgressBar | None = None

    def progress(done: int, total: int, note: str) -> None:
        nonlocal bar
        if bar is None:
            bar = progress_bar(total, "models", enabled=not args.no_progress)
        bar.advance(note=note)

    try:
        manifest = export_blocks(
            space,
            args.out,
            formats=formats,
            batch=args.batch,
            archs=args.archs,
            seed=args.seed,
            networks=args.networks,
            progress=progress,
        )
    finally:
        if bar is not None:
            bar.close()
    print(
        f"{args.out}: {len(manifest.blocks)} blocks, {len(manifest.extras)} pseudo-blocks, "
        f"{len(manifest.networks)} networks in formats {', '.join(manifest.formats)} "
        f"(space {manifest.space['name']}, hash {manifest.space.get('hash')}); on the device: "
        f"nas profile {args.out} --target T --out lut.db"
    )
    return 0


def _merge(args: argparse.Namespace) -> int:
    from latency_lut.db import open_lut

    total: dict[str, int] = {}
    with open_lut(args.out, "w") as out:
        for path in args.inputs:
            with open_lut(path, "r") as src:
                counts = out.merge_from(src, args.on_conflict)
            for k, v in counts.items():
                total[k] = total.get(k, 0) + v
            print(
                f"{path}: {counts['blocks']} block rows added, {counts['conflicts']} already in {args.out} "
                f"({counts['replaced']} replaced), {counts['networks']} networks, "
                f"{counts['fingerprints']} new fingerprints"
            )
    return 0


def _show(args: argparse.Namespace) -> int:
    from latency_lut.db import open_lut
    from latency_lut.manifest import record_hash
    from latency_lut.report import format_speedup_table, format_summary, speedup_table, summarize

    with open_lut(args.lut, "r") as db:
        summary = summarize(db)
        tables = speedup_table(db)
        spaces = [
            {
                "name": r.get("name"),
                "hash": record_hash(r),
                "signature": r.get("signature"),
                "input_shape": r.get("input_shape"),
                "num_classes": r.get("num_classes"),
            }
            for r in db.spaces()
        ]
        checked = _check_show_space(args, db) if args.space is not None else None
    if args.json:
        out = {"lut": args.lut, "spaces": spaces, "fingerprints": summary, "speedup": tables}
        if checked is not None:
            out["space_check"] = checked
        print(json.dumps(out, default=str))
    else:
        for sp in spaces:
            shape = "x".join(map(str, sp["input_shape"] or []))
            print(f"space {sp['name']} (hash {sp['hash'] or 'unrecorded'}): input {shape}, {sp['num_classes']} classes")
        if checked is not None:
            print(
                f"made for --space {args.space} (hash {checked['hash']}): every block measured on "
                f"{', '.join(checked['targets'])}"
                if checked["complete"]
                else f"made for --space {args.space} (hash {checked['hash']}); blocks missing: "
                + "; ".join(f"{t}: {n}" for t, n in checked["missing"].items())
            )
        print(format_summary(summary, args.lut))
        print()
        print(format_speedup_table(tables))
    return 0


def _check_show_space(args: argparse.Namespace, db: Any) -> dict[str, Any]:
    """``nas lut show --space``: refuse a LUT made for another space; count missing blocks per target."""
    from latency_lut.manifest import space_record
    from latency_lut.predictor import LatencyPredictor
    from nas.cli._common import space_for_lut

    space = space_for_lut(args, db.path)
    missing: dict[str, int] = {}
    for fp in db.fingerprints():
        pred = LatencyPredictor(db, space, fingerprint=fp["fp_id"], correction=False)  # raises for another space
        missing[fp["target"]] = len(pred.missing_keys())
    return {
        "hash": space_record(space).get("hash"),
        "targets": list(missing),
        "missing": missing,
        "complete": not any(missing.values()),
    }


def _validate(args: argparse.Namespace) -> int:
    from latency_lut.validation import DEFAULT_PASSES, validate

    if args.n < 2:
        raise ConfigError(f"--n must be at least 2, got {args.n}")
    if args.passes is None:
        args.passes = DEFAULT_PASSES
    if args.passes < 1:
        raise ConfigError(f"--passes must be at least 1, got {args.passes}")
    from latency_lut.db import open_lut

    open_lut(args.lut, "r").close()  # a missing or corrupt LUT fails here, in one line
    from nas.cli._common import space_for_lut

    space = space_for_lut(args, args.lut)
    if args.remeasure < 0:
        raise ConfigError(f"--remeasure must be >= 0, got {args.remeasure}")
    result = validate(
        args.lut,
        space,
        args.target,
        n=args.n,
        seed=args.seed,
        passes=args.passes,
        remeasure=args.remeasure,
        progress=not args.no_progress,
        log=lambda m: print(m, file=sys.stderr),
    )
    if args.json:
        print(json.dumps(result, default=str))
        return 0
    r = result
    print(
        f"{r['target']} on {r['space']} {'x'.join(map(str, r['input_shape']))} ({r['n']} random networks, "
        f"LUT {r['lut']}, correction: {r['correction']}, {r['unstable']} measured on a busy machine)"
    )
    print(
        f"  within ±5%: {r['within_5pct'] * 100:.0f}%   within ±10%: {r['within_10pct'] * 100:.0f}%   "
        f"RMSE {r['rmse_ms']:.4f} ms   Kendall's tau {r['kendall_tau']:.3f}   "
        f"mean |error| {r['mape'] * 100:.1f}%   bias {r['bias'] * 100:+.1f}%"
    )
    raw = r["raw"]
    print(
        f"  raw block sum: within ±10% {raw['within_10pct'] * 100:.0f}%, RMSE {raw['rmse_ms']:.4f} ms, "
        f"tau {raw['kendall_tau']:.3f}, bias {raw['bias'] * 100:+.1f}%"
    )
    return 0
