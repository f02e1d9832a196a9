"""``nas search``: run a searcher on a space with an evaluator, in memory or on a shared study."""
from __future__ import annotations

import argparse
import json
import sys
import time
from typing import Any

from hwnas.errors import ConfigError
from nas.cli._common import add_space_arguments, print_json, space_from_args

EVALUATORS = ("nb201", "proxy")


def parse_set(items: list[str] | None) -> dict[str, Any]:
    """``KEY=VALUE`` pairs; values are read as JSON when they parse (numbers, true, lists), else text."""
    out: dict[str, Any] = {}
    for item in items or []:
        key, sep, raw = item.partition("=")
        if not sep or not key.strip():
            raise ConfigError(f"--set expects KEY=VALUE, got {item!r}")
        try:
            value = json.loads(raw)
        except json.JSONDecodeError:
            value = raw
        out[key.strip().replace("-", "_")] = value
    return out


def register(sub: argparse._SubParsersAction) -> None:
    p = sub.add_parser("search", help="search a space with a searcher (ask/tell), optionally on a shared study",
                       description="Run a searcher on a space. With --storage/--study several workers (on several "
                                   "machines for PostgreSQL) share one Optuna study; rerunning resumes it.")
    add_space_arguments(p, required=False)
    p.add_argument("--searcher", default="random", metavar="NAME",
                   help="searcher name (random, evolution, mcts, smbo, bo, tpe, tpe-default, nsga2, hhnas, darts)")
    p.add_argument("--evaluator", choices=EVALUATORS, default=None,
                   help="nb201: the NAS-Bench-201 table (nb201 space); proxy: short training on Fashion-MNIST "
                        "(default: nb201 for the nb201 space, else proxy)")
    p.add_argument("--objective", action="append", metavar="METRIC[:max|min]",
                   help="objective metric, repeatable (default: cifar10_test_acc for nb201, proxy_acc for proxy)")
    p.add_argument("--constraint", action="append", metavar="METRIC<=VALUE", help="constraint, repeatable")
    p.add_argument("--budget", type=int, default=None, metavar="N",
                   help="distinct archs to evaluate (with --study: in the whole study; default 50 without a study)")
    p.add_argument("--n-trials", type=int, default=None, metavar="N", help="with --study: trials of this worker")
    p.add_argument("--seed", type=int, default=None, help="searcher seed (default: none, i.e. random)")
    p.add_argument("--set", action="append", metavar="KEY=VALUE", dest="options",
                   help="searcher option, repeatable (e.g. --set population_size=50)")
    p.add_argument("--storage", default=None, metavar="URL",
                   help="Optuna storage: sqlite:///f.db, postgresql://user@host/db, journal:f.log (default: memory)")
    p.add_argument("--study", default=None, metavar="NAME", help="study to create, join or resume (needs --storage)")
    p.add_argument("--table", default=None, metavar="CSV", help="NAS-Bench-201 table (default: $HWNAS_NB201_CSV or the "
                                                                "copy shipped in nas/data/nb201/)")
    p.add_argument("--train-size", type=int, default=2000, help="proxy evaluator: training examples (default 2000)")
    p.add_argument("--epochs", type=int, default=1, help="proxy evaluator: epochs (default 1)")
    p.add_argument("--delay", type=float, default=0.0, metavar="S", help=argparse.SUPPRESS)
    p.add_argument("--json", action="store_true", help="print one JSON object")
    p.add_argument("--quiet", action="store_true", help="no progress lines on stderr")
    p.set_defaults(func=_search)


def _make_evaluator(args: argparse.Namespace, space: Any, metrics: list[str]) -> Any:
    from nas.search.evaluators import ProxyTrainingEvaluator, TabularEvaluator

    kind = args.evaluator or ("nb201" if space.name == "nb201" else "proxy")
    if kind == "nb201":
        if space.name != "nb201":
            raise ConfigError(f"the nb201 evaluator needs the nb201 space, not {space.name!r}")
        ev = TabularEvaluator(args.table, space=space)
        ev.require(metrics)
        return ev
    ev = ProxyTrainingEvaluator(space, train_size=args.train_size, epochs=args.epochs, seed=args.seed or 0)
    ev.require(metrics)
    return ev


def _is_optuna(name: str) -> bool:
    from nas.search import get_searcher_class
    from nas.search.optuna_search import OptunaSearcher

    cls = get_searcher_class(name)
    return isinstance(cls, type) and issubclass(cls, OptunaSearcher)


def _search(args: argparse.Namespace) -> int:
    from nas.search import create_searcher
    from nas.search.base import Constraint, Objective

    if args.space is None:
        raise ConfigError("--space is required")
    if args.storage is not None and args.study is None:
        raise ConfigError("--storage needs --study NAME")
    if args.study is not None and args.storage is None:
        raise ConfigError("--study needs --storage URL")
    for flag, v in (("--budget", args.budget), ("--n-trials", args.n_trials)):
        if v is not None and v < 1:
            raise ConfigError(f"{flag} must be >= 1, got {v}")
    space = space_from_args(args)
    kind = args.evaluator or ("nb201" if space.name == "nb201" else "proxy")
    objectives = [Objective.parse(o) for o in (args.objective or ["cifar10_test_acc" if kind == "nb201" else "proxy_acc"])]
    constraints = [Constraint.parse(c) for c in (args.constraint or [])]
    metrics = [o.name for o in objectives] + [c.name for c in constraints]
    evaluator = _make_evaluator(args, space, metrics)
    options = parse_set(args.options)
    if args.searcher == "darts" and kind == "nb201":
        options.setdefault("evaluate_space", space)
    kwargs: dict[str, Any] = dict(objectives=objectives, constraints=constraints, seed=args.seed, **options)
    if args.study is not None and _is_optuna(args.searcher):
        from nas.search.storage import make_storage

        kwargs.update(storage=make_storage(args.storage), study_name=args.study)
    try:
        searcher = create_searcher(args.searcher, space, **kwargs)
    except TypeError as exc:
        raise ConfigError(f"searcher {args.searcher!r}: {exc}") from None

    delay = args.delay

    def evaluate(arch: Any) -> dict[str, float]:
        if delay:
            time.sleep(delay)
        return evaluator.evaluate(arch)

    def progress(number: int, values: dict[str, float], cached: bool = False) -> None:
        if not args.quiet:
            shown = ", ".join(f"{m}={values[m]:.4g}" for m in metrics if m in values)
            print(f"trial {number}: {shown}{' (known)' if cached else ''}", file=sys.stderr, flush=True)

    start = time.perf_counter()
    if args.study is not None:
        from nas.search.storage import run_study_worker

        summary = run_study_worker(searcher, evaluate, storage=args.storage, study_name=args.study,
                                   n_trials=args.n_trials, budget=args.budget,
                                   on_trial=lambda t: progress(t["number"], t["values"], t["cached"]))
        out = {"searcher": args.searcher, "space": space.name, "objectives": [f"{o.name}:{o.direction[:3]}" for o in objectives],
               "constraints": [str(c) for c in constraints], **summary,
               "pareto_front": [{"arch": t.arch.to_dict(), "values": dict(t.values)} for t in searcher.pareto_front()]
               if len(objectives) > 1 else None,
               "seconds": round(time.perf_counter() - start, 3)}
    else:
        from nas.search.runner import run_search

        if args.n_trials is not None:
            raise ConfigError("--n-trials needs --study (use --budget)")
        budget = args.budget if args.budget is not None else 50
        res = run_search(searcher, evaluate, budget, callback=lambda t: progress(t.number, dict(t.values)))
        out = {"space": space.name, "objectives": [f"{o.name}:{o.direction[:3]}" for o in objectives],
               "constraints": [str(c) for c in constraints], "budget": budget, **res.to_dict(),
               "seconds": round(time.perf_counter() - start, 3)}
        if len(objectives) == 1:
            out.pop("pareto_front", None)
    if args.json:
        print_json(out)
        return 0
    _print_human(space, out)
    return 0


def _print_human(space: Any, out: dict[str, Any]) -> None:
    from rich.console import Console

    console = Console()
    best = out.get("best")
    head = f"[bold]{out.get('searcher')}[/bold] on {space.name}: "
    if "queries" in out:
        head += f"{out['queries']} queries, {out['asks']} asks"
    else:
        head += f"study {out['study']}: {len(out['trials'])} trials by this worker, {out['study_evaluated']} archs evaluated"
    console.print(head)
    if best is None:
        console.print("no feasible arch found")
        return
    from spaces import Arch

    names = [o.rsplit(":", 1)[0] for o in out.get("objectives", [])]
    names += [c.replace(">=", "<=").split("<=")[0] for c in out.get("constraints", [])]
    console.print(f"best: {space.describe(Arch(best['arch']))}", soft_wrap=True)
    console.print("      " + ", ".join(f"{k}={v:.4g}" for k, v in best["values"].items() if k in names), soft_wrap=True)
    front = out.get("pareto_front")
    if front:
        console.print(f"Pareto front: {len(front)} archs")
