"""``nas run``: the whole pipeline from a config, resumable, ending in a report."""

from __future__ import annotations

import argparse
import json
import sys
from typing import Any

from hwnas.errors import ConfigError


def register(sub: argparse._SubParsersAction) -> None:
    from nas.pipeline.config import STAGES

    p = sub.add_parser(
        "run",
        help="run an experiment from a config: LUT, supernet, search per budget, export, report",
        description="Run (or resume) an experiment: (1) the target's latency LUT, optionally (evolve.enabled) "
        "SpaceEvo evolving the search space itself out of a hyper-space, (2) the quantized-for-all "
        "supernet, (3) one search per latency budget, (4) export + verification of each chosen "
        "subnet, (5) the report (report.md, report.json, pareto.png). Everything lands in --out; "
        "rerunning the command skips finished stages and resumes an interrupted one. "
        "`nas run --print-config` prints a complete commented config to start from.",
    )
    p.add_argument(
        "config",
        nargs="?",
        default=None,
        metavar="CONFIG.yaml",
        help="the experiment's config (default: the one saved in --out, to continue that run)",
    )
    p.add_argument("--out", metavar="RUN_DIR", default=None, help="the run folder (created; reused to resume)")
    p.add_argument(
        "--from",
        dest="from_stage",
        choices=STAGES,
        default=None,
        help="redo this stage and the stages after it (their results are removed first)",
    )
    p.add_argument("--until", choices=STAGES, default=None, help="stop after this stage")
    p.add_argument("--print-config", action="store_true", help="print the default config (commented YAML) and exit")
    p.add_argument("--no-progress", action="store_true", help="log lines only, no progress bars")
    p.add_argument("--json", action="store_true", help="print the result as one JSON object")
    p.set_defaults(func=_run)


def print_final_table(result: dict[str, Any], console: Any = None) -> None:
    """The per-budget table of an experiment's exports (what the report's Results table holds)."""
    from rich.console import Console
    from rich.table import Table

    if console is None:
        console = Console()
        console = Console(width=max(console.width, 104))  # a pipe gets 80 columns: too narrow for the table
    rows = result.get("exports") or []
    if not rows:
        return
    table = Table(title="exported INT8 models (measured on this machine)")
    for col in (
        "budget",
        "arch",
        "INT8 ms pred.",
        "INT8 ms meas.",
        "INT8 test %",
        "FP32 test %",
        "INT8/FP32",
        "meets budget",
    ):
        table.add_column(col, justify="right" if "ms" in col or "%" in col or "speed" in col else "left")

    def num(v: Any, fmt: str) -> str:
        return "n/a" if v is None else format(v, fmt)

    for r in rows:
        table.add_row(
            f"{r['budget']} ≤ {r['budget_ms']:.4g} ms",
            str(r["arch_id"]),
            num(r["predicted_int8_ms"], ".4f"),
            num(r["measured_int8_ms"], ".4f"),
            num(r["int8_test_acc"], ".2f"),
            num(r["fp32_test_acc"], ".2f"),
            num(r["int8_speedup"], ".2f") + ("×" if r["int8_speedup"] else ""),
            "yes" if r["meets_budget"] else "[red]NO[/red]",
        )
    console.print(table)


def _run(args: argparse.Namespace) -> int:
    if args.print_config:
        from nas.pipeline.config import default_config_text

        sys.stdout.write(default_config_text())
        return 0
    if args.out is None:
        raise ConfigError("--out RUN_DIR is required (the run folder; rerun the same command to resume)")
    from hwnas.io import check_out_dir
    from nas.pipeline.experiment import Experiment

    check_out_dir(args.out, "--out")  # one line: a file in the way, a folder that cannot be written
    exp = Experiment(args.config, args.out, progress=not args.no_progress)
    result = exp.run(from_stage=args.from_stage, until=args.until)
    if args.json:
        print(json.dumps(result, default=str, sort_keys=True))
    else:
        print_final_table(result)
        if result.get("report"):
            print(f"report: {exp.root / result['report']['md']}")
    if result.get("exports") and not result.get("passed"):
        failed = [e["budget"] for e in result["exports"] if not e.get("passed")]
        print(f"nas run: verification failed for {', '.join(failed)} (see their model.json)", file=sys.stderr)
        return 1
    return 0
