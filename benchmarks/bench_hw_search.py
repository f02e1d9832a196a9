#!/usr/bin/env python3
"""Searchers compared honestly on a real space: supernet accuracy under a LUT latency budget.

    python benchmarks/bench_hw_search.py --checkpoint runs/mbv3 --lut lut.db --target cpu-ort-int8 \\
        --budget 100 --seeds 5 --max-latency 2.0 --searchers random,evolution,tpe,bo --out runs/hw_search.json

Every searcher gets the same budget (distinct archs evaluated), the same constraint
``latency_ms <= L`` (the LUT's prediction for the target) and the same evaluator: the validation
accuracy (%) of the subnet inherited from the quantized-for-all supernet, batch norms
recalibrated, INT8 fake-quantized by default (``--precision``), on a split carved from the
training data (never the test set). One evaluator, and so one cache, serves every searcher and
seed: an arch is measured once and has the same value in every run (``--cache FILE`` keeps the
measurements across invocations). Reported per searcher: the best feasible validation accuracy,
mean ± std over the seeds (population std, as ``nas bench``), RI over random search
(``100 * (mean - mean_random) / mean_random``), how many runs found a feasible arch, and the
share of feasible queries. ``--oracle`` evaluates every arch under the budget (small spaces only)
to give the true optimum. A budget no arch meets is refused (one line, naming the minimum).
"""

from __future__ import annotations

import argparse
import json
import math
import sys
import time
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parents[1]
if str(ROOT) not in sys.path:
    sys.path.insert(0, str(ROOT))

from hwnas.errors import HwnasError  # noqa: E402
from hwnas.io import atomic_write_text, json_safe  # noqa: E402
from hwnas.progress import ProgressBar  # noqa: E402

DEFAULT_SEARCHERS = "random,evolution,tpe,bo"
#: every registered searcher that searches an arbitrary space ask/tell (darts trains its own nb201 model)
APPLICABLE = ("random", "evolution", "mcts", "smbo", "bo", "tpe", "tpe-default", "nsga2", "hhnas")
ORACLE_LIMIT = 20_000


def parse_args(argv: list[str] | None = None) -> argparse.Namespace:
    p = argparse.ArgumentParser(
        description=__doc__.split("\n\n")[0], formatter_class=argparse.RawDescriptionHelpFormatter
    )
    p.add_argument("--checkpoint", required=True, help="supernet training folder or checkpoint.safetensors")
    p.add_argument("--lut", required=True, help="latency LUT holding the checkpoint's space")
    p.add_argument("--target", required=True, help="the LUT's target (its fingerprint here must be in the LUT)")
    p.add_argument("--budget", type=int, default=100, help="distinct archs per run [100]")
    p.add_argument("--seeds", type=int, default=5, help="seeds per searcher (0..N-1) [5]")
    p.add_argument(
        "--max-latency",
        type=float,
        default=None,
        metavar="MS",
        help="latency budget (ms) [the 25th percentile of 2000 random archs' predicted latency]",
    )
    p.add_argument(
        "--searchers",
        default=DEFAULT_SEARCHERS,
        help=f"comma-separated, or 'all' ({', '.join(APPLICABLE)}) [{DEFAULT_SEARCHERS}]",
    )
    p.add_argument("--precision", choices=("fakequant", "fp32", "int8"), default="fakequant")
    p.add_argument("--val-fraction", type=float, default=None)
    p.add_argument("--val-limit", type=int, default=None, help="validate on N images of the split [all]")
    p.add_argument("--bn-batches", type=int, default=None)
    p.add_argument("--threads", type=int, default=None, help="torch threads [every usable core]")
    p.add_argument("--cache", default=None, help="JSON-lines evaluation cache, reused across invocations")
    p.add_argument(
        "--oracle",
        action="store_true",
        help=f"also evaluate every arch under the budget (spaces of at most {ORACLE_LIMIT} archs)",
    )
    p.add_argument(
        "--options",
        default=None,
        metavar="JSON",
        help='per-searcher constructor options, e.g. \'{"evolution": {"population_size": 8}}\' '
        "(small budgets: a population as large as the budget makes evolution random search)",
    )
    p.add_argument("--out", default=None, help="write the results as JSON here")
    p.add_argument("--no-progress", action="store_true")
    return p.parse_args(argv)


def _searchers(text: str) -> list[str]:
    from nas.search import get_searcher_class

    names = list(APPLICABLE) if text.strip() == "all" else [s.strip() for s in text.split(",") if s.strip()]
    for n in names:
        if n == "darts":
            raise HwnasError("darts trains its own one-shot model on nb201 cells; it cannot search a supernet's space")
        get_searcher_class(n)  # one-line error for an unknown name
    if "random" not in names:
        names.insert(0, "random")  # RI needs it
    return names


def default_budget(latency: Any, space: Any, n: int = 2000, q: float = 0.25) -> float:
    """The ``q`` quantile of ``n`` random archs' predicted latency (seeded)."""
    archs = [space.sample(i) for i in range(n)]
    lat = sorted(latency.predict_many(archs))
    return float(lat[int(q * (len(lat) - 1))])


def _options(text: str | None, names: list[str]) -> dict[str, dict[str, Any]]:
    """``--options`` as {searcher: kwargs}, checked against the searchers run."""
    if not text:
        return {}
    try:
        opts = json.loads(text)
    except json.JSONDecodeError as e:
        raise HwnasError(f"--options: not JSON ({e.msg} at column {e.colno})") from None
    if not isinstance(opts, dict) or not all(isinstance(v, dict) for v in opts.values()):
        raise HwnasError('--options: expected {"searcher": {"option": value}}')
    unknown = sorted(set(opts) - set(names))
    if unknown:
        raise HwnasError(f"--options names {unknown[0]!r}, which is not among --searchers ({', '.join(names)})")
    return opts


def run(args: argparse.Namespace) -> dict[str, Any]:
    from nas.search import create_searcher
    from nas.search.base import Constraint
    from nas.search.evaluators import CompositeEvaluator, LutLatencyEvaluator, SupernetEvaluator, check_latency_budget
    from nas.search.metrics import mean_std, relative_improvement
    from nas.search.runner import run_search
    from spaces import space_hash

    if args.budget < 1 or args.seeds < 1:
        raise HwnasError("--budget and --seeds must be >= 1")
    names = _searchers(args.searchers)
    options = _options(args.options, names)
    supernet = SupernetEvaluator(
        args.checkpoint,
        precision=args.precision,
        val_fraction=args.val_fraction,
        val_limit=args.val_limit,
        bn_batches=args.bn_batches,
        threads=args.threads,
        cache_path=args.cache,
    )
    space = supernet.space
    latency = LutLatencyEvaluator.from_lut(args.lut, args.target, space)
    max_latency = args.max_latency if args.max_latency is not None else default_budget(latency, space)
    constraint = Constraint("latency_ms", upper=max_latency)
    fastest = check_latency_budget(
        latency, [constraint], candidates=[supernet.net.smallest()], where=f" on target {latency.target}"
    )
    evaluator = CompositeEvaluator(supernet, latency)
    total = len(names) * args.seeds * args.budget
    bar = ProgressBar(not args.no_progress, "queries", total, stderr=True)
    runs: list[dict[str, Any]] = []
    try:
        for name in names:
            for seed in range(args.seeds):
                before = supernet.evaluations
                start = time.perf_counter()
                searcher = create_searcher(
                    name, space, objectives=["accuracy"], constraints=[constraint], seed=seed, **options.get(name, {})
                )
                step = f"{name} seed {seed}"
                res = run_search(searcher, evaluator, args.budget, callback=lambda t: bar.advance(description=step))  # noqa: B023 (called in this iteration)
                best = res.best
                feasible = sum(1 for t in res.trials if t.feasible)
                runs.append(
                    {
                        "searcher": name,
                        "seed": seed,
                        "queries": len(res.trials),
                        "asks": res.asks,
                        "stopped": res.stopped,
                        "best_accuracy": float(best.values["accuracy"]) if best is not None else math.nan,
                        "best_latency_ms": float(best.values["latency_ms"]) if best is not None else math.nan,
                        "best_arch": best.arch.to_dict() if best is not None else None,
                        "feasible_queries": feasible,
                        "new_evaluations": supernet.evaluations - before,
                        "seconds": round(time.perf_counter() - start, 2),
                    }
                )
                # a run that stopped early (exhausted a small space) still counts whole
                bar.update(
                    completed=(names.index(name) * args.seeds + seed + 1) * args.budget,
                    description=f"{name} seed {seed}",
                )
    finally:
        bar.close()
    results = []
    rnd_mean = math.nan
    for name in names:
        mine = [r for r in runs if r["searcher"] == name]
        mean, std = mean_std([r["best_accuracy"] for r in mine])
        if name == "random":
            rnd_mean = mean
        results.append(
            {
                "searcher": name,
                "mean": mean,
                "std": std,
                "ri": relative_improvement(mean, rnd_mean),
                "feasible_runs": sum(1 for r in mine if not math.isnan(r["best_accuracy"])),
                "runs": len(mine),
                "feasible_query_share": sum(r["feasible_queries"] for r in mine)
                / max(1, sum(r["queries"] for r in mine)),
                "seconds": round(sum(r["seconds"] for r in mine), 1),
            }
        )
    oracle = _oracle(space, evaluator, latency, max_latency) if args.oracle else None
    return {
        "benchmark": "hw_search",
        "checkpoint": str(args.checkpoint),
        "lut": str(args.lut),
        "target": latency.target,
        "space": {"name": space.name, "hash": space_hash(space), "size": _size(space)},
        "objective": "accuracy:max",
        "constraint": str(constraint),
        "max_latency_ms": max_latency,
        "max_latency_source": "given" if args.max_latency is not None else "p25 of 2000 random archs",
        "fastest": fastest,
        "budget": args.budget,
        "seeds": args.seeds,
        "options": options,
        "evaluator": supernet.describe(),
        "results": results,
        "oracle": oracle,
        "runs": runs,
    }


def _size(space: Any) -> int | None:
    try:
        return int(space.size())
    except HwnasError:
        return None


def _oracle(space: Any, evaluator: Any, latency: Any, max_latency: float) -> dict[str, Any]:
    """Every arch under the budget, evaluated: the true best feasible validation accuracy."""
    size = _size(space)
    if size is None or size > ORACLE_LIMIT:
        raise HwnasError(f"--oracle: space {space.name!r} has {size} archs, more than {ORACLE_LIMIT}")
    archs = list(space.enumerate(limit=ORACLE_LIMIT))
    lat = latency.predict_many(archs)
    feasible = [a for a, ms in zip(archs, lat) if ms <= max_latency]
    best, best_acc = None, -math.inf
    for a in feasible:
        acc = evaluator.evaluate(a)["accuracy"]
        if acc > best_acc:
            best, best_acc = a, acc
    return {
        "archs": len(archs),
        "feasible": len(feasible),
        "best_accuracy": best_acc if best is not None else None,
        "best_arch": best.to_dict() if best is not None else None,
    }


def format_table(out: dict[str, Any]) -> str:
    lines = [
        f"Best feasible validation accuracy (%), {out['space']['name']} supernet "
        f"({out['evaluator']['precision']}, {out['evaluator']['validation']['images']} validation images), "
        f"{out['constraint']} on {out['target']}, {out['budget']} queries, {out['seeds']} seeds",
        "",
        "| searcher | best acc mean ± std | RI vs random (%) | runs feasible | feasible queries | s |",
        "|---|---|---|---|---|---|",
    ]
    for r in out["results"]:
        ri = "—" if r["searcher"] == "random" or math.isnan(r["ri"]) else f"{round(r['ri'], 2) + 0.0:+.2f}"
        lines.append(
            f"| {r['searcher']} | {r['mean']:.2f} ± {r['std']:.2f} | {ri} | {r['feasible_runs']}/{r['runs']} "
            f"| {100 * r['feasible_query_share']:.0f} % | {r['seconds']:.0f} |"
        )
    if out.get("oracle"):
        o = out["oracle"]
        lines.append(
            f"\noptimum (every arch evaluated): {o['best_accuracy']:.2f} % over {o['feasible']} feasible "
            f"of {o['archs']} archs"
        )
    ev = out["evaluator"]
    lines.append(
        f"\n{ev['evaluations']} distinct archs evaluated ({ev['eval_seconds']:.0f} s), {ev['cache_hits']} "
        f"cache hits; fastest arch {out['fastest']['latency_ms']:.4g} ms "
        f"({'exact' if out['fastest']['exact'] else 'search'})"
    )
    return "\n".join(lines)


def main(argv: list[str] | None = None) -> int:
    args = parse_args(argv)
    try:
        out = run(args)
    except HwnasError as exc:
        print(f"bench_hw_search: error: {exc}", file=sys.stderr)
        return 2
    if args.out:
        Path(args.out).parent.mkdir(parents=True, exist_ok=True)
        atomic_write_text(args.out, json.dumps(json_safe(out), indent=1) + "\n")
    print(format_table(out))
    return 0


if __name__ == "__main__":
    sys.exit(main())
