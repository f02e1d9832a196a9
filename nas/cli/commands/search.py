"""``nas search``: run a searcher on a space with an evaluator, in memory or on a shared study.

Evaluators: the NAS-Bench-201 table, short proxy training, or a quantized-for-all supernet
(``--supernet DIR``: validation accuracy of inherited subnets, no retraining), optionally joined
by a latency LUT (``--lut LUT.db --target T``: ``latency_ms``). ``--out DIR`` writes the best arch
(``best.json``) or the Pareto front (``pareto/NN_<archid>.json``) as arch files, and ``summary.json``.
"""

from __future__ import annotations

import argparse
import json
import sys
import time
from pathlib import Path
from typing import Any

from hwnas.errors import ConfigError
from nas.cli._common import add_space_arguments, print_json, space_from_args
from nas.cli._types import finite_float, int_range

EVALUATORS = ("nb201", "proxy", "supernet")
#: searchers that cannot search a supernet's space (DARTS trains its own one-shot model of the space's cells)
NOT_FOR_SUPERNET = ("darts",)


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
    p = sub.add_parser(
        "search",
        help="search a space with a searcher (ask/tell), optionally on a shared study",
        description="Run a searcher on a space. With --storage/--study several workers (on several "
        "machines for PostgreSQL) share one Optuna study; rerunning resumes it. With "
        "--supernet the accuracy is the validation accuracy of subnets inherited from a "
        "quantized-for-all supernet; with --lut/--target, latency_ms is the LUT's "
        "prediction, e.g. --objective accuracy --constraint latency_ms<=2 (best arch "
        "under a budget) or --objective accuracy --objective latency_ms:min (Pareto front).",
    )
    add_space_arguments(p, required=False)
    p.add_argument(
        "--searcher",
        default="random",
        metavar="NAME",
        help="searcher name (random, evolution, mcts, smbo, bo, tpe, tpe-default, nsga2, hhnas, darts)",
    )
    p.add_argument(
        "--evaluator",
        choices=EVALUATORS,
        default=None,
        help="nb201: the NAS-Bench-201 table (nb201 space); proxy: short training on Fashion-MNIST; "
        "supernet: subnets of --supernet (default: supernet with --supernet, nb201 for the nb201 "
        "space, else proxy)",
    )
    p.add_argument(
        "--objective",
        action="append",
        metavar="METRIC[:max|min]",
        help="objective metric, repeatable (default: cifar10_test_acc for nb201, proxy_acc for proxy, "
        "accuracy for supernet)",
    )
    p.add_argument("--constraint", action="append", metavar="METRIC<=VALUE", help="constraint, repeatable")
    p.add_argument(
        "--budget",
        type=int_range(1),
        default=None,
        metavar="N",
        help="distinct archs to evaluate (with --study: in the whole study; default 50 without a study)",
    )
    p.add_argument(
        "--n-trials", type=int_range(1), default=None, metavar="N", help="with --study: trials of this worker"
    )
    p.add_argument(
        "--seed", type=int_range(0, 2**63 - 1), default=None, help="searcher seed (default: none, i.e. random)"
    )
    p.add_argument(
        "--set",
        action="append",
        metavar="KEY=VALUE",
        dest="options",
        help="searcher option, repeatable (e.g. --set population_size=50)",
    )
    p.add_argument(
        "--storage",
        default=None,
        metavar="URL",
        help="Optuna storage: sqlite:///f.db, postgresql://user@host/db, journal:f.log (default: memory)",
    )
    p.add_argument("--study", default=None, metavar="NAME", help="study to create, join or resume (needs --storage)")
    p.add_argument(
        "--table",
        default=None,
        metavar="CSV",
        help="NAS-Bench-201 table (default: $HWNAS_NB201_CSV or the copy shipped in nas/data/nb201/)",
    )
    p.add_argument(
        "--train-size", type=int_range(1), default=2000, help="proxy evaluator: training examples (default 2000)"
    )
    p.add_argument("--epochs", type=int_range(1, 100_000), default=1, help="proxy evaluator: epochs (default 1)")
    hw = p.add_argument_group("supernet and latency table")
    hw.add_argument(
        "--supernet",
        default=None,
        metavar="DIR",
        help="quantized-for-all supernet (training folder or checkpoint.safetensors): metric accuracy, "
        "the validation accuracy (%%) of each subnet with the supernet's weights, batch norms "
        "recalibrated, on a split carved from the training data (never the test set); the space "
        "is the checkpoint's (--space, if given, must be the same space)",
    )
    hw.add_argument(
        "--precision",
        choices=("fakequant", "fp32", "int8"),
        default="fakequant",
        help="supernet accuracy numerics: fakequant (INT8 as deployed, in torch; default), fp32, or int8 "
        "(the exported QDQ ONNX model in onnxruntime: exact, slower)",
    )
    hw.add_argument(
        "--val-fraction",
        type=finite_float(0, 1, lo_open=True, hi_open=True),
        default=None,
        metavar="F",
        help="validation fraction of the training data (default: the one the supernet's training held out, else 0.1)",
    )
    hw.add_argument(
        "--val-limit",
        type=int_range(1),
        default=None,
        metavar="N",
        help="validate on a seeded subset of N images of the split (default: all of it)",
    )
    hw.add_argument(
        "--bn-batches",
        type=int_range(1, 100_000),
        default=None,
        metavar="N",
        help="training batches for BN recalibration (default: the checkpoint's)",
    )
    hw.add_argument(
        "--threads",
        type=int_range(1, 4096),
        default=None,
        metavar="N",
        help="torch threads for the supernet evaluation (default: every usable core)",
    )
    hw.add_argument(
        "--cache",
        default=None,
        metavar="FILE",
        help="JSON-lines cache of supernet evaluations, shared by runs and workers (keyed by the "
        "checkpoint's content and the evaluation settings)",
    )
    hw.add_argument(
        "--lut", default=None, metavar="LUT.db", help="latency LUT: adds metric latency_ms (needs --target)"
    )
    hw.add_argument(
        "--target",
        default=None,
        metavar="T",
        help="the LUT's target (name or YAML file; its fingerprint on this machine must be in the LUT)",
    )
    p.add_argument(
        "--out",
        default=None,
        metavar="DIR",
        help="write best.json (one objective) or pareto/NN_<archid>.json (several), and summary.json",
    )
    p.add_argument("--delay", type=finite_float(0), default=0.0, metavar="S", help=argparse.SUPPRESS)
    p.add_argument("--json", action="store_true", help="print one JSON object")
    p.add_argument("--quiet", action="store_true", help="no progress lines on stderr")
    p.set_defaults(func=_search)


def _evaluator_kind(args: argparse.Namespace, space_name: str | None) -> str:
    if args.evaluator is not None:
        return args.evaluator
    if args.supernet is not None:
        return "supernet"
    return "nb201" if space_name == "nb201" else "proxy"


def _check_arguments(args: argparse.Namespace) -> None:
    if args.storage is not None and args.study is None:
        raise ConfigError("--storage needs --study NAME")
    if args.study is not None and args.storage is None:
        raise ConfigError("--study needs --storage URL")
    for flag, v in (
        ("--budget", args.budget),
        ("--n-trials", args.n_trials),
        ("--val-limit", args.val_limit),
        ("--bn-batches", args.bn_batches),
        ("--threads", args.threads),
    ):
        if v is not None and v < 1:
            raise ConfigError(f"{flag} must be >= 1, got {v}")
    if (args.lut is None) != (args.target is None):
        raise ConfigError("--lut and --target go together (the LUT's prediction for that target)")
    kind = args.evaluator
    if kind == "supernet" and args.supernet is None:
        raise ConfigError("the supernet evaluator needs --supernet DIR")
    if args.supernet is not None and kind not in (None, "supernet"):
        raise ConfigError(f"--supernet is the supernet evaluator's checkpoint, not the {kind} evaluator's")
    if args.supernet is not None and args.searcher in NOT_FOR_SUPERNET:
        raise ConfigError(
            f"searcher {args.searcher!r} trains its own one-shot model of the space's cells; it cannot "
            f"search a supernet's space"
        )
    if args.supernet is None:
        given = [
            f
            for f, v in (
                ("--val-fraction", args.val_fraction),
                ("--val-limit", args.val_limit),
                ("--bn-batches", args.bn_batches),
                ("--cache", args.cache),
            )
            if v is not None
        ]
        if given or args.precision != "fakequant":
            raise ConfigError(f"{(given or ['--precision'])[0]} applies to the supernet evaluator (--supernet DIR)")
    if args.space is None and args.supernet is None and args.lut is None:
        raise ConfigError("--space is required (or --supernet DIR, whose space is searched)")
    # missing files fail before the heavy imports (torch, the checkpoint, the data)
    if args.lut is not None and not Path(args.lut).is_file():
        raise ConfigError(f"{args.lut}: no such LUT file")
    if args.supernet is not None:
        ckpt = Path(args.supernet)
        if ckpt.is_dir() and not (ckpt / "checkpoint.safetensors").exists():
            raise ConfigError(f"{ckpt / 'checkpoint.safetensors'}: no such checkpoint in {ckpt}")
        if not ckpt.exists():
            raise ConfigError(f"{ckpt}: no such checkpoint")


def _resolve_space(args: argparse.Namespace, supernet_space: Any) -> Any:
    """The checkpoint's space (``--space`` must then be the same), the LUT's, or ``--space``."""
    if supernet_space is not None:
        from nas.cli._common import resolve_space_for

        return resolve_space_for(args, supernet_space, f"checkpoint {args.supernet}")
    if args.space is None:
        from nas.cli._common import space_for_lut

        return space_for_lut(args, args.lut)
    return space_from_args(args)


def _make_evaluator(args: argparse.Namespace, space: Any, kind: str, supernet: Any) -> Any:
    from nas.search.evaluators import ProxyTrainingEvaluator, TabularEvaluator

    if kind == "supernet":
        return supernet
    if kind == "nb201":
        if space.name != "nb201":
            raise ConfigError(f"the nb201 evaluator needs the nb201 space, not {space.name!r}")
        if tuple(space.input_shape) not in ((3, 32, 32), (3, 16, 16)):
            raise ConfigError(
                f"the NAS-Bench-201 table was measured on 3x32x32 (CIFAR) and 3x16x16 (ImageNet16-120) "
                f"inputs; this nb201 space takes {'x'.join(map(str, space.input_shape))}"
            )
        return TabularEvaluator(args.table, space=space)
    return ProxyTrainingEvaluator(space, train_size=args.train_size, epochs=args.epochs, seed=args.seed or 0)


def _is_optuna(name: str) -> bool:
    from nas.search import get_searcher_class
    from nas.search.optuna_search import OptunaSearcher

    cls = get_searcher_class(name)
    return isinstance(cls, type) and issubclass(cls, OptunaSearcher)


def _search(args: argparse.Namespace) -> int:
    from nas.search import create_searcher
    from nas.search.base import Constraint, Objective
    from nas.search.evaluators import CompositeEvaluator, LutLatencyEvaluator, SupernetEvaluator, check_latency_budget

    _check_arguments(args)
    objectives_given = [Objective.parse(o) for o in (args.objective or [])]
    constraints = [Constraint.parse(c) for c in (args.constraint or [])]
    supernet = None
    if args.supernet is not None:
        cache = Path(args.cache) if args.cache else None
        supernet = SupernetEvaluator(
            args.supernet,
            precision=args.precision,
            val_fraction=args.val_fraction,
            val_limit=args.val_limit,
            bn_batches=args.bn_batches,
            threads=args.threads,
            cache_path=cache,
        )
    space = _resolve_space(args, supernet.space if supernet is not None else None)
    kind = _evaluator_kind(args, space.name)
    objectives = objectives_given or [
        Objective.parse({"nb201": "cifar10_test_acc", "proxy": "proxy_acc", "supernet": "accuracy"}[kind])
    ]
    metrics = [o.name for o in objectives] + [c.name for c in constraints if c.name not in {o.name for o in objectives}]
    evaluator = _make_evaluator(args, space, kind, supernet)
    latency = None
    fastest = None
    if args.lut is not None:
        latency = LutLatencyEvaluator.from_lut(args.lut, args.target, space)
        evaluator = CompositeEvaluator(evaluator, latency)
    elif "latency_ms" in metrics and "latency_ms" not in evaluator.metrics:
        raise ConfigError("latency_ms is the LUT's prediction: give --lut LUT.db --target T")
    evaluator.require(metrics)
    if latency is not None:
        candidates = [supernet.net.smallest()] if supernet is not None else []
        fastest = check_latency_budget(
            latency, constraints, candidates=candidates, where=f" on target {latency.target}"
        )
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

    if supernet is not None and supernet.val_seen_in_training and not args.quiet:
        print(
            f"note: the supernet's training held no validation split out: the {len(supernet.val)} validation "
            f"images were among its training images (accuracies rank subnets, they are not held-out figures)",
            file=sys.stderr,
            flush=True,
        )
    start = time.perf_counter()
    obj_names = [f"{o.name}:{o.direction[:3]}" for o in objectives]
    if args.study is not None:
        from nas.search.study_worker import run_study_worker

        summary = run_study_worker(
            searcher,
            evaluate,
            storage=args.storage,
            study_name=args.study,
            n_trials=args.n_trials,
            budget=args.budget,
            on_trial=lambda t: progress(t["number"], t["values"], t["cached"]),
        )
        if summary.get("stopped") == "exhausted":
            print(
                f"note: space {space.name!r} has only {summary['study_evaluated']} archs: all were evaluated",
                file=sys.stderr,
                flush=True,
            )
        out = {
            "searcher": args.searcher,
            "space": space.name,
            "objectives": obj_names,
            "constraints": [str(c) for c in constraints],
            **summary,
            "pareto_front": [{"arch": t.arch.to_dict(), "values": dict(t.values)} for t in searcher.pareto_front()]
            if len(objectives) > 1
            else None,
            "seconds": round(time.perf_counter() - start, 3),
        }
    else:
        from nas.search.runner import run_search

        if args.n_trials is not None:
            raise ConfigError("--n-trials needs --study (use --budget)")
        budget = args.budget if args.budget is not None else 50
        res = run_search(searcher, evaluate, budget, callback=lambda t: progress(t.number, dict(t.values)))
        if res.stopped == "exhausted":
            print(
                f"note: space {space.name!r} has only {len(res.trials)} archs, fewer than --budget {budget}: "
                f"all were evaluated",
                file=sys.stderr,
                flush=True,
            )
        out = {
            "space": space.name,
            "objectives": obj_names,
            "constraints": [str(c) for c in constraints],
            "budget": budget,
            **res.to_dict(),
            "seconds": round(time.perf_counter() - start, 3),
        }
        if len(objectives) == 1:
            out.pop("pareto_front", None)
    if supernet is not None:
        out["supernet"] = supernet.describe()
    if latency is not None:
        out["lut"] = {"path": str(args.lut), "target": latency.target, "fastest": fastest}
    if args.out is not None:
        out["out"] = _write_outputs(Path(args.out), args, space, searcher, objectives, constraints, out)
    if args.json:
        print_json(out)
        return 0
    _print_human(space, out)
    return 0


def _write_outputs(
    folder: Path,
    args: argparse.Namespace,
    space: Any,
    searcher: Any,
    objectives: list[Any],
    constraints: list[Any],
    out: dict[str, Any],
) -> dict[str, Any]:
    """``best.json`` or ``pareto/NN_<archid>.json`` (arch files) and ``summary.json`` in ``folder``."""
    from nas.search.outputs import write_search_outputs

    summary = {
        "searcher": args.searcher,
        "seed": args.seed,
        "supernet": out.get("supernet"),
        "lut": out.get("lut"),
        "objectives": out["objectives"],
        "constraints": out["constraints"],
        "budget": args.budget if args.study is not None else out.get("budget"),
        "study": {"storage": args.storage, "name": args.study} if args.study is not None else None,
        "seconds": out.get("seconds"),
    }
    return write_search_outputs(folder, searcher, space, multi_objective=len(objectives) > 1, summary=summary)


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
    written = out.get("out")
    if best is None:
        console.print("no feasible arch found")
        if written:
            console.print(f"wrote {written['summary']}", soft_wrap=True)
        return
    from spaces import Arch

    names = [o.rsplit(":", 1)[0] for o in out.get("objectives", [])]
    names += [c.replace(">=", "<=").split("<=")[0] for c in out.get("constraints", [])]
    console.print(f"best: {space.describe(Arch(best['arch']))}", soft_wrap=True)
    console.print("      " + ", ".join(f"{k}={v:.4g}" for k, v in best["values"].items() if k in names), soft_wrap=True)
    front = out.get("pareto_front")
    if front:
        console.print(f"Pareto front: {len(front)} archs")
    if written:
        files = [written["best"]] if written.get("best") else []
        files += (
            [f"{len(written['pareto'])} archs in {Path(written['dir']) / 'pareto'}"] if written.get("pareto") else []
        )
        console.print(f"wrote {', '.join(files + [written['summary']])}", soft_wrap=True)
