"""``nas bench nb201``: every searcher on the NAS-Bench-201 table, over seeds, with RI."""

from __future__ import annotations

import argparse
import math
import sys
from typing import Any

from hwnas.errors import ConfigError
from hwnas.io import json_safe
from nas.cli._common import print_json
from nas.cli._types import finite_float, int_range


def register(sub: argparse._SubParsersAction) -> None:
    p = sub.add_parser("bench", help="benchmark searchers on a tabular benchmark")
    bsub = p.add_subparsers(dest="bench_command", metavar="BENCHMARK")
    bsub.required = True
    b = bsub.add_parser(
        "nb201",
        help="NAS-Bench-201 table: mean ± std over seeds, RI over random search",
        description="Runs searchers on the NAS-Bench-201 table (each distinct arch queried counts "
        "against the budget). Single objective without --latency; multi-objective "
        "(hypervolume fraction) with --latency; constrained with --max-latency.",
    )
    b.add_argument("--searcher", default="all", metavar="NAME[,NAME]|all", help="searchers (default: all)")
    b.add_argument("--budget", type=int_range(1), default=100, metavar="N", help="queries per run (default 100)")
    b.add_argument(
        "--seeds", type=int_range(1, 100_000), default=20, metavar="K", help="seeds per searcher (default 20)"
    )
    b.add_argument("--seed-start", type=int_range(0, 2**62), default=0, metavar="S", help="first seed (default 0)")
    b.add_argument(
        "--metric", default="cifar10_test_acc", metavar="COLUMN", help="accuracy column (default cifar10_test_acc)"
    )
    b.add_argument("--latency", default=None, metavar="COLUMN", help="latency column (e.g. pixel3_latency_ms)")
    b.add_argument(
        "--max-latency",
        type=finite_float(0, lo_open=True),
        default=None,
        metavar="L",
        help="latency budget (constrained search)",
    )
    b.add_argument(
        "--ref",
        default=None,
        metavar="ACC,LAT",
        help="hypervolume reference point (default: 90.0 for CIFAR-10 else median accuracy; median latency)",
    )
    b.add_argument(
        "--hide-ref",
        action="store_true",
        help="multi-objective: do not tell the searchers that take one (bo) the reference point",
    )
    b.add_argument(
        "--horizon",
        type=int_range(1),
        default=None,
        metavar="N",
        help="single objective: continue runs up to N queries to measure queries-to-optimum beyond the budget",
    )
    b.add_argument(
        "--set",
        action="append",
        metavar="SEARCHER.KEY=VALUE",
        dest="options",
        help="searcher option, repeatable (e.g. --set evolution.population_size=50)",
    )
    b.add_argument(
        "--table",
        default=None,
        metavar="CSV",
        help="the table (default: $HWNAS_NB201_CSV or the copy shipped in nas/data/nb201/)",
    )
    b.add_argument("--jobs", type=int_range(1, 1024), default=1, metavar="J", help="parallel processes (default 1)")
    b.add_argument("--json", action="store_true", help="print one JSON object")
    b.add_argument("--quiet", action="store_true", help="no progress lines on stderr")
    b.set_defaults(func=_nb201)


def _options(items: list[str] | None) -> dict[str, dict[str, Any]]:
    from nas.cli.commands.search import parse_set

    out: dict[str, dict[str, Any]] = {}
    for key, value in parse_set(items).items():
        name, sep, opt = key.partition(".")
        if not sep or not opt:
            raise ConfigError(f"--set expects SEARCHER.KEY=VALUE, got {key!r}")
        out.setdefault(name, {})[opt] = value
    return out


def _nb201(args: argparse.Namespace) -> int:
    from nas.search.bench import nb201_benchmark

    if args.jobs < 1:
        raise ConfigError(f"--jobs must be >= 1, got {args.jobs}")
    ref = None
    if args.ref is not None:
        try:
            a, b = (float(x) for x in args.ref.split(","))
        except ValueError:
            raise ConfigError(f"--ref expects ACC,LAT, got {args.ref!r}") from None
        if not (math.isfinite(a) and math.isfinite(b)):
            raise ConfigError(f"--ref expects two finite numbers ACC,LAT, got {args.ref!r}")
        ref = (a, b)

    def progress(run: dict[str, Any]) -> None:
        if args.quiet:
            return
        score = run.get("best", run.get("hypervolume_fraction"))
        extra = f" optimum at {run['queries_to_optimum']}" if run.get("queries_to_optimum") else ""
        print(
            f"{run['searcher']:>16s} seed {run['seed']:3d}: {score:.4f}{extra} ({run['seconds']:.1f}s)",
            file=sys.stderr,
            flush=True,
        )

    out = nb201_benchmark(
        args.searcher,
        budget=args.budget,
        seeds=args.seeds,
        metric=args.metric,
        latency=args.latency,
        max_latency=args.max_latency,
        ref=ref,
        horizon=args.horizon,
        seed_start=args.seed_start,
        table=args.table,
        searcher_options=_options(args.options),
        jobs=args.jobs,
        tell_ref=not args.hide_ref,
        progress=progress,
    )
    if out.get("exhausted_runs"):
        print(
            f"note: the space has {out['space_size']} archs, fewer than the budget or horizon: "
            f"{out['exhausted_runs']} run(s) stopped after evaluating all of them",
            file=sys.stderr,
            flush=True,
        )
    if args.json:
        print_json(json_safe(out))
        return 0
    print_table(out)
    return 0


def format_rows(out: dict[str, Any]) -> tuple[list[str], list[list[str]]]:
    """Header and rows of the result table (also used by benchmarks/bench_search.py)."""
    mode = out["mode"]
    header = ["searcher", "hypervolume fraction" if mode == "multi" else f"best {out['metric']}", "RI %"]
    if mode != "multi":
        header += ["median queries to optimum", "optimum found"]
    if mode == "constrained":
        header += ["infeasible returned"]
    rows = []
    for r in out["results"]:
        prec = 3 if mode == "multi" else 2
        row = [r["searcher"], f"{r['mean']:.{prec}f} ± {r['std']:.{prec}f}", f"{r['ri']:+.2f}"]
        if mode != "multi":
            med = r["median_queries_to_optimum"]
            row += [
                f"{med:g}" if med is not None else f"> {out.get('horizon', out['budget'])}",
                f"{r['optimum_found']}/{out['seeds']}",
            ]
        if mode == "constrained":
            row += [str(r["infeasible_returned"])]
        rows.append(row)
    return header, rows


def print_table(out: dict[str, Any]) -> None:
    from rich.console import Console
    from rich.table import Table

    mode = out["mode"]
    title = f"NAS-Bench-201 {out['metric']}, {out['budget']} queries, {out['seeds']} seeds ({mode}"
    if mode == "constrained":
        title += f", {out['latency']} <= {out['max_latency']:g}"
    elif mode == "multi":
        title += f" with {out['latency']}, reference {tuple(out['reference_point'])}"
    title += ")"
    header, rows = format_rows(out)
    table = Table(title=title)
    for h in header:
        table.add_column(h)
    for row in rows:
        table.add_row(*row)
    Console().print(table)
