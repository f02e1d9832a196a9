"""``nas demo``: ``nas run`` on the bundled demo config (Fashion-MNIST, INT8 on this CPU)."""

from __future__ import annotations

import argparse


def register(sub: argparse._SubParsersAction) -> None:
    from nas.pipeline.config import STAGES

    p = sub.add_parser(
        "demo",
        help="the whole pipeline on this CPU with offline data (`nas run` on the bundled demo config)",
        description="`nas run` on the bundled demo config (print it with --print-config; copy it to "
        "start your own experiment): a latency LUT of a small ResNet-like space on this "
        "CPU (INT8 and FP32, onnxruntime), a quantized-for-all supernet on Fashion-MNIST, "
        "one search per latency budget, INT8 export + verification of each chosen "
        "subnet, and a report. Rerun to resume.",
    )
    p.add_argument("--out", default="runs/demo", metavar="DIR", help="the run folder (default runs/demo)")
    p.add_argument(
        "--quick",
        action="store_true",
        help="the same pipeline at toy scale (a tiny space, 1,024 training images): a minute or two, "
        "accuracies meaningless",
    )
    p.add_argument(
        "--from", dest="from_stage", choices=STAGES, default=None, help="redo this stage and the stages after it"
    )
    p.add_argument("--print-config", action="store_true", help="print the bundled config and exit")
    p.add_argument("--no-progress", action="store_true", help="log lines only, no progress bars")
    p.set_defaults(func=_demo)


def _demo(args: argparse.Namespace) -> int:
    import sys
    import time

    from nas.cli.commands.run import print_final_table
    from nas.pipeline import demo_config_path
    from nas.pipeline.experiment import Experiment

    config = demo_config_path()
    if args.quick:
        config = config.with_name("demo_quick.yaml")
    if args.print_config:
        sys.stdout.write(config.read_text(encoding="utf-8"))
        return 0
    from hwnas.io import check_out_dir

    check_out_dir(args.out, "--out")  # one line: a file in the way, a folder that cannot be written
    start = time.perf_counter()
    exp = Experiment(config, args.out, progress=not args.no_progress)
    exp.log(f"nas demo: `nas run {config} --out {args.out}`")
    result = exp.run(from_stage=args.from_stage)
    print_final_table(result)
    print(f"report: {exp.root / result['report']['md']}  ({time.perf_counter() - start:.0f} s)")
    if not result.get("passed"):
        failed = [e["budget"] for e in result.get("exports", []) if not e.get("passed")]
        print(f"nas demo: verification failed for {', '.join(failed)} (see their model.json)", file=sys.stderr)
        return 1
    return 0
