"""``nas evolve-space``: evolve the search space itself for INT8 on a target (SpaceEvo).

Scores candidate spaces of a hyper-space (per stage a block type and a width window) by the Q-T
score — the LUT's latency on the target and the block-wise distillation NSR losses of their
sub-stages — with aging evolution, and writes the best as a DSL space YAML file (loadable by
every command) with a report beside it. Resumable: the evolution state is saved every
``--checkpoint-every`` cycles; rerunning the same command continues it.
"""

from __future__ import annotations

import argparse
import json
import math
import sys
from pathlib import Path
from typing import Any

from hwnas.errors import ConfigError, first_line

#: the quality file's default name beside the LUT: ``lut.db`` -> ``lut.quality.db``
QUALITY_SUFFIX = ".quality.db"


def register(sub: argparse._SubParsersAction) -> None:
    from nas.spaceevo.evolution import PAPER_SCALE
    from nas.spaceevo.score import DEFAULT_A, DEFAULT_SAMPLES, DEFAULT_T, DEFAULT_TOP

    p = sub.add_parser(
        "evolve-space",
        help="evolve the search space itself for INT8 on a target (SpaceEvo, Q-T score)",
        description="Aging evolution over candidate spaces of a hyper-space (per searchable stage one block type "
        "and one contiguous width window), scored by SpaceEvo's Q-T score: sampled subnets' latency "
        "from the target's LUT and NSR loss from block-wise distillation, summed over the latency "
        "budgets. Writes the best candidate as a space YAML file, and beside it a report "
        "(<out>.report.md / .report.json / .evolution.png) and the resumable state "
        "(<out>.state.json).",
    )
    p.add_argument(
        "--hyperspace",
        default="spaceevo",
        metavar="SPACE",
        help="registered hyper-space (default spaceevo) or a space YAML file with marked stages",
    )
    p.add_argument(
        "--space-args",
        metavar="JSON",
        default=None,
        help='keyword arguments of a registered hyper-space, e.g. \'{"block_types": ["mbv2", "resnet"]}\'',
    )
    p.add_argument(
        "--data",
        required=True,
        metavar="D",
        help="the data set (fashion-mnist, digits, an ImageFolder root or an .npz file): its input "
        "channels and classes fix the hyper-space's",
    )
    p.add_argument("--resolution", type=int, default=None, help="input resolution in pixels (default: the data's)")
    p.add_argument("--lut", required=True, metavar="LUT.db", help="latency LUT holding every block of the hyper-space")
    p.add_argument(
        "--target",
        required=True,
        metavar="T",
        help="the LUT's target (name or YAML file; its fingerprint on this machine must be in the LUT)",
    )
    p.add_argument(
        "--budgets",
        required=True,
        metavar="MS[,MS...]",
        help="latency budgets in ms, comma-separated (the Q-T score sums over them), e.g. 0.1,0.2",
    )
    p.add_argument("--out", required=True, metavar="SPACE.yaml", help="where to write the evolved space")
    p.add_argument(
        "--quality",
        default=None,
        metavar="FILE",
        help=f"block-wise quality file (NSR losses of sub-stages; default: beside the LUT, <lut>{QUALITY_SUFFIX})",
    )
    p.add_argument(
        "--population",
        type=int,
        default=PAPER_SCALE["population"],
        help=f"population size (default {PAPER_SCALE['population']}, the paper's)",
    )
    p.add_argument(
        "--sample",
        type=int,
        default=PAPER_SCALE["sample"],
        help=f"tournament sample size (default {PAPER_SCALE['sample']}, the paper's)",
    )
    p.add_argument(
        "--cycles",
        type=int,
        default=PAPER_SCALE["cycles"],
        help=f"evolution cycles, each one parent and two children (default {PAPER_SCALE['cycles']}, the paper's)",
    )
    p.add_argument("--seed", type=int, default=0, help="seed of the evolution and of the subnet sampling (default 0)")
    p.add_argument(
        "--samples",
        type=int,
        default=DEFAULT_SAMPLES,
        help=f"subnets sampled per candidate space (default {DEFAULT_SAMPLES:,})",
    )
    p.add_argument("--t", type=float, default=DEFAULT_T, help=f"Q-T latency-loss threshold t (default {DEFAULT_T})")
    p.add_argument("--a", type=float, default=DEFAULT_A, help=f"Q-T latency-loss exponent a (default {DEFAULT_A})")
    p.add_argument(
        "--top",
        type=int,
        default=DEFAULT_TOP,
        help=f"feasible subnets whose mean NSR loss is L (default {DEFAULT_TOP})",
    )
    p.add_argument(
        "--state",
        default=None,
        metavar="FILE",
        help="evolution state file (default <out>.state.json); an existing one with the same settings is resumed",
    )
    p.add_argument(
        "--checkpoint-every", type=int, default=50, metavar="N", help="save the state every N cycles (default 50)"
    )
    p.add_argument("--no-progress", action="store_true", help="no progress bar")
    p.add_argument("--json", action="store_true", help="print the result as one JSON object")
    p.set_defaults(func=_evolve_space)


# ------------------------------------------------------------------------------------ validation


def parse_budgets(text: str) -> list[float]:
    """``"0.1,0.2"`` -> ``[0.1, 0.2]``: positive, finite, distinct ms values (one-line errors)."""
    out: list[float] = []
    for item in str(text).split(","):
        item = item.strip()
        try:
            value = float(item)
        except ValueError:
            raise ConfigError(f"--budgets: {item!r} is not a number of ms (give e.g. 0.1,0.2)") from None
        if not math.isfinite(value) or value <= 0:
            raise ConfigError(f"--budgets: {item!r} must be a positive number of ms")
        if value in out:
            raise ConfigError(f"--budgets: {item} is given twice")
        out.append(value)
    return out


def _check_numbers(args: argparse.Namespace) -> None:
    for flag, value, low in (
        ("--population", args.population, 1),
        ("--sample", args.sample, 1),
        ("--cycles", args.cycles, 0),
        ("--samples", args.samples, 1),
        ("--top", args.top, 1),
        ("--checkpoint-every", args.checkpoint_every, 1),
    ):
        if value < low:
            raise ConfigError(f"{flag} must be >= {low}, got {value}")
    if args.sample > args.population:
        raise ConfigError(f"--sample {args.sample} exceeds --population {args.population}")
    if args.resolution is not None and args.resolution < 1:
        raise ConfigError(f"--resolution must be a positive integer, got {args.resolution}")
    if not (math.isfinite(args.t) and args.t > 0):
        raise ConfigError(f"--t must be a positive number, got {args.t}")
    if not (math.isfinite(args.a) and args.a >= 0):
        raise ConfigError(f"--a must be a non-negative number, got {args.a}")


def _check_out(out: str) -> Path:
    p = Path(out)
    if not out.endswith((".yaml", ".yml")):
        raise ConfigError(f"--out {out}: the evolved space is a YAML file (name it SPACE.yaml)")
    if p.is_dir():
        raise ConfigError(f"--out {out}: is a folder")
    parent = p.parent if str(p.parent) else Path(".")
    if parent.exists() and not parent.is_dir():
        raise ConfigError(f"--out {out}: {parent} is not a folder")
    return p


def default_quality_path(lut: str | Path) -> Path:
    """Where the block-wise quality file of a LUT lies by default (``lut.db`` -> ``lut.quality.db``)."""
    p = Path(lut)
    return p.with_name(p.name[: -len(p.suffix)] + QUALITY_SUFFIX if p.suffix else p.name + QUALITY_SUFFIX)


def _data_shape(args: argparse.Namespace) -> tuple[int, int, int]:
    """``(in_chans, num_classes, resolution)`` of ``--data`` (resolution: ``--resolution`` if given)."""
    from hwnas.datasets import load_data

    data = load_data(args.data, "train", limit=1, resolution=args.resolution)
    c, h, _ = data.input_shape
    return int(c), int(data.num_classes), int(args.resolution or h)


def _hyperspace(args: argparse.Namespace, shape: tuple[int, int, int]) -> Any:
    from nas.cli._common import is_space_file, parse_space_args
    from nas.spaceevo.candidate import HyperSpace
    from spaces import create_space

    in_chans, num_classes, resolution = shape
    kwargs = parse_space_args(args.space_args)
    if is_space_file(args.hyperspace):
        if kwargs:
            raise ConfigError(f"{args.hyperspace}: --space-args does not apply to a YAML hyper-space")
        space = create_space(args.hyperspace)
        if (space.in_chans, space.num_classes) != (in_chans, num_classes):
            raise ConfigError(
                f"{args.hyperspace}: the hyper-space takes {space.in_chans} channel(s) and "
                f"{space.num_classes} classes, the data {in_chans} and {num_classes}"
            )
        if args.resolution is not None and space.resolution != args.resolution:
            raise ConfigError(
                f"{args.hyperspace}: --resolution does not apply to a YAML hyper-space (it states {space.resolution})"
            )
    else:
        for key in ("in_chans", "num_classes", "resolution"):
            if key in kwargs:
                raise ConfigError(f"--space-args: {key} comes from the data (and --resolution), not --space-args")
        from nas.cli._common import check_space_choice

        check_space_choice(args.hyperspace, kwargs)
        try:
            space = create_space(
                args.hyperspace, in_chans=in_chans, num_classes=num_classes, resolution=resolution, **kwargs
            )
        except (TypeError, ValueError) as exc:
            if isinstance(exc, ConfigError):
                raise
            raise ConfigError(
                f"--space-args: space {args.hyperspace!r} rejects {json.dumps(kwargs)}: {first_line(exc)}"
            ) from None
    return HyperSpace(space)


def load_quality_source(path: Path, hyper: Any) -> Any:
    """The block-wise quality (a :class:`nas.spaceevo.score.StageQuality`) in ``path``, through
    ``nas.spaceevo.quality.load_quality`` (imported lazily)."""
    if not path.exists():
        raise ConfigError(
            f"{path}: no block-wise quality file; measure the sub-stages of hyper-space "
            f"{hyper.name!r} first by block-wise distillation from a teacher (`nas spaceevo-quality "
            f"--hyperspace {hyper.name} --teacher CKPT|timm:NAME --data D --out {path}`), or give "
            f"--quality FILE"
        )
    try:
        from nas.spaceevo.quality import load_quality
    except ImportError:
        raise ConfigError(
            f"{path}: this hwnas cannot read block-wise quality files (nas.spaceevo.quality is missing)"
        ) from None
    return load_quality(path)


# ------------------------------------------------------------------------------------ the command


def _evolve_space(args: argparse.Namespace) -> int:
    budgets = parse_budgets(args.budgets)
    _check_numbers(args)
    out = _check_out(args.out)
    if not Path(args.lut).is_file():
        raise ConfigError(f"--lut {args.lut}: no such LUT file")
    from hw_profiles import load_target

    target = load_target(args.target)
    quality_path = Path(args.quality) if args.quality else default_quality_path(args.lut)
    shape = _data_shape(args)
    hyper = _hyperspace(args, shape)

    from nas.spaceevo.evolution import AgingEvolution, EvolutionConfig
    from nas.spaceevo.latency import StageLatencyModel
    from nas.spaceevo.report import report_paths, write_report
    from nas.spaceevo.score import QTScorer

    quality = load_quality_source(quality_path, hyper)
    latency = StageLatencyModel.from_lut(args.lut, target, hyper)
    scorer = QTScorer(
        hyper, latency, quality, budgets, samples=args.samples, t=args.t, a=args.a, top=args.top, seed=args.seed
    )
    scorer.check_coverage()
    config = EvolutionConfig(
        population=args.population,
        sample=args.sample,
        cycles=args.cycles,
        seed=args.seed,
        checkpoint_every=args.checkpoint_every,
    )
    state = Path(args.state) if args.state else Path(f"{out.with_suffix('')}.state.json")
    from hwnas.io import remove_write_leftovers

    remove_write_leftovers(out, state, *report_paths(out).values())  # a killed run's temporaries
    quality_id = getattr(quality, "fingerprint", None)
    settings = {
        "lut": str(Path(args.lut).resolve()),
        "target": target.name,
        "fingerprint": latency.predictor.fp_id,
        "quality": str(quality_path.resolve()),
        **({"quality_fingerprint": quality_id} if quality_id else {}),
    }

    def log(msg: str) -> None:
        if not args.json:
            print(msg, file=sys.stderr)

    evo = AgingEvolution(
        hyper,
        scorer,
        config,
        state_path=state,
        settings=settings,
        progress=not args.no_progress and sys.stderr.isatty(),
        log=log,
    )
    result = evo.run()
    best = result.best
    best.candidate.write_yaml(out)
    paths = write_report(result, scorer, out, lut=str(args.lut), target=target.name, quality=str(quality_path))
    summary = {
        "out": str(out),
        "candidate": best.candidate.id,
        "score": best.score.score,
        "stages": best.candidate.to_dict()["stages"],
        "budgets_ms": budgets,
        "budget_scores": [b.score for b in best.score.budgets],
        "evaluated": len({i.candidate.id for i in result.history}),
        "cycles": config.cycles,
        "state": str(state),
        "report": {k: str(v) for k, v in paths.items()},
    }
    if args.json:
        print(json.dumps(summary, sort_keys=True))
        return 0
    print(
        f"{out}: evolved space {best.candidate.id} of {hyper.name} for {target.name} "
        f"(Q-T score {best.score.score:.4f} over budgets {', '.join(f'{b:g}' for b in budgets)} ms; "
        f"{summary['evaluated']} candidate spaces scored in {config.cycles} cycles)"
    )
    for s in summary["stages"]:
        print(f"  {s['stage']}: {s['block']:<10} widths {s['window']}  depths {s['depths']}")
    print(f"  report: {paths['md']} (+ {report_paths(out)['png'].name}, {report_paths(out)['json'].name})")
    return 0
