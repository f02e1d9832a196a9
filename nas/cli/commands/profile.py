"""``nas profile``: measure every block on a target into a latency LUT.

Two forms:

* ``nas profile DIR --target T --out lut.db`` on the device, for a folder written by
  ``nas lut export-blocks`` (needs numpy, onnx and the engine; never torch);
* ``nas profile --space S --target T --resolution R --out lut.db`` in one step on this
  machine (exports each block when its turn comes).

Resumable: a rerun skips every block the LUT already holds for the target's fingerprint.
"""

from __future__ import annotations

import argparse
import json
import sys

from hwnas.errors import ConfigError
from nas.cli._common import add_space_arguments
from nas.cli._types import int_range


def register(sub: argparse._SubParsersAction) -> None:
    p = sub.add_parser(
        "profile",
        help="measure block latencies on a target into a LUT (resumable)",
        description="Measure every block of an exported folder (DIR) or of a space (--space) on a target and "
        "store the statistics in a SQLite LUT. Interrupted runs continue where they stopped.",
    )
    p.add_argument("folder", nargs="?", metavar="DIR", help="folder written by `nas lut export-blocks`")
    p.add_argument("--list-targets", action="store_true", help="list the built-in targets and whether they run here")
    p.add_argument(
        "--target", metavar="T", help="built-in target name (see `nas profile --list-targets`) or a target YAML file"
    )
    p.add_argument("--out", metavar="LUT", help="the LUT file to create or complete (e.g. lut.db)")
    add_space_arguments(p, required=False, help="one-step mode: registered space name or space YAML file")
    p.add_argument(
        "--archs",
        type=int_range(1),
        default=None,
        metavar="N",
        help="only the blocks of N sampled archs (quick mode; default: every block of the space)",
    )
    p.add_argument(
        "--seed",
        type=int_range(0, 2**63 - 1),
        default=0,
        help="seed for --archs and the calibration networks (default 0)",
    )
    p.add_argument(
        "--networks",
        type=int_range(0, 100_000),
        default=10,
        metavar="K",
        help="one-step mode: whole networks measured to fit the correction (default 10, 0 for none)",
    )
    p.add_argument("--work", metavar="DIR", help="one-step mode: keep exported models in DIR (default: a temp dir)")
    p.add_argument(
        "--retry-passes",
        type=int_range(0, 1000),
        default=None,
        metavar="P",
        help="passes that measure again the models measured while the machine was busy, keeping the "
        "lower estimate (default 3; 0: none)",
    )
    p.add_argument("--no-progress", action="store_true", help="no progress bar")
    p.add_argument("--json", action="store_true", help="print the result as one JSON object")
    p.set_defaults(func=_profile)


def _list_targets(as_json: bool) -> int:
    from hw_profiles import list_targets, load_target, target_availability

    rows = []
    for name in list_targets():
        t = load_target(name)
        reason = target_availability(t)
        rows.append(
            {
                "name": name,
                "engine": t.engine,
                "precision": t.precision,
                "threads": t.threads,
                "batch": t.batch,
                "available": reason is None,
                "reason": reason,
                "description": t.description,
            }
        )
    if as_json:
        print(json.dumps({"targets": rows}))
    else:
        for r in rows:
            state = "available" if r["available"] else f"unavailable: {r['reason']}"
            print(f"{r['name']:<20} {r['engine']:<12} {r['precision']:<5} {r['threads']}t  {state}")
    return 0


def _profile(args: argparse.Namespace) -> int:
    from latency_lut.profiler import check_out_path

    if args.list_targets:
        return _list_targets(args.json)
    if not args.target or not args.out:
        raise ConfigError("--target and --out are required (or --list-targets)")
    if (args.folder is None) == (args.space is None):
        raise ConfigError("give either an exported folder DIR or --space (one-step mode), not both or neither")
    if args.archs is not None and args.archs < 1:
        raise ConfigError(f"--archs must be a positive integer, got {args.archs}")
    if args.networks < 0:
        raise ConfigError(f"--networks must be >= 0, got {args.networks}")
    if args.retry_passes is not None and args.retry_passes < 0:
        raise ConfigError(f"--retry-passes must be >= 0, got {args.retry_passes}")
    check_out_path(args.out)
    from latency_lut.profiler import DEFAULT_RETRY_PASSES

    retry = DEFAULT_RETRY_PASSES if args.retry_passes is None else args.retry_passes

    def log(msg: str) -> None:
        print(msg, file=sys.stderr)

    if args.folder is not None:
        if (
            args.archs is not None
            or args.resolution
            or args.in_chans
            or args.num_classes
            or args.space_args is not None
        ):
            raise ConfigError(
                "--archs, --space-args and the shape options belong to --space mode; the folder fixes its blocks"
            )
        from latency_lut.profiler import profile_folder

        result = profile_folder(
            args.folder, args.target, args.out, progress=not args.no_progress, log=log, retry_passes=retry
        )
    else:
        from latency_lut.profiler import profile_space
        from nas.cli._common import space_from_args

        space = space_from_args(args)
        result = profile_space(
            space,
            args.target,
            args.out,
            archs=args.archs,
            seed=args.seed,
            networks=args.networks,
            work_dir=args.work,
            progress=not args.no_progress,
            log=log,
            retry_passes=retry,
        )
    if args.json:
        print(json.dumps(result.to_dict(), default=str))
    else:
        print(
            f"{result.lut}: target {result.target} (fingerprint {result.fingerprint}): {result.measured} block(s) "
            f"measured, {result.skipped} already there, {result.networks} whole network(s), "
            f"{len(result.failed)} failed, {result.elapsed_s:.1f} s"
        )
        if result.remeasured:
            print(
                f"  {result.remeasured} repeated measurement(s) (models measured while the machine was busy, and "
                f"the whole networks' later ones): {result.improved} gave a lower estimate, {result.unstable} "
                f"model(s) still flagged busy"
            )
        if result.calibration:
            from latency_lut.report import format_calibration

            print(f"  calibration: {format_calibration(result.calibration)}")
        if result.total:
            per = result.elapsed_s / max(result.measured + result.networks, 1)
            print(f"  {per:.2f} s per measured model")
        c = result.correction
        if c:
            print(
                f"  correction: {c['model']} from {c['n_networks']} networks (leave-one-out error "
                f"{c['loo_rel_err'] * 100:.1f}%, raw block sum {c['raw_rel_err'] * 100:.1f}%)"
            )
        for f in result.failed[:5]:
            print(f"  failed: {f}")
    return 1 if result.failed else 0
