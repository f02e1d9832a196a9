"""Issue 18's acceptance: does an evolved space hold better INT8 models on this target than a
hand-written one? One resumable experiment, driven through the ``nas`` CLI, with tables.

Steps (each resumes: rerun the same command after an interruption; ``--steps`` picks some):

``teacher``  QFA-train the ``mobilenet`` space (``nas train-supernet``, the scale's recipe): the
             hand-written space's supernet, whose largest subnet is the block-wise distillation
             teacher (below 64 px its stage resolutions are the hyper-space's);
``lut``      every block of the ``spaceevo`` hyper-space and of ``mobilenet`` (1×28×28, 10 classes)
             on the INT8 target, in one LUT (``nas profile``);
``budgets``  the two latency budgets in ms (``--budgets``, or 30 % and 60 % of the way from the
             ``mobilenet`` space's fastest to its largest subnet as the INT8 LUT predicts them), fixed
             in ``budgets.json`` so that every later step uses the same ones;
``quality``  ``nas spaceevo-quality``: block-wise distillation (FP32, then LSQ INT8) of every
             (stage, block type, width window) of the hyper-space from that teacher;
``evolve``   ``nas evolve-space`` on the INT8 target;
``evolved``  QFA-train the INT8-evolved space with the recipe of ``teacher``;
``run-mobilenet``, ``run-evolved``  ``nas run`` of each space on its trained supernet (search
             under the budgets, export, verification on the target, report);
``tables``   the exports of both runs (INT8 test accuracy, predicted and measured latency);
``baseline`` ``bench_pipeline.py``: the plain CNN trained with the supernets' data and epochs
             plus the exports' fine-tune epochs, timed in one run beside every export;
``lut-fp32`` both spaces' blocks on the FP32 twin target (``--fp32-target``);
``evolve-fp32`` ``nas evolve-space`` on the FP32 target (same quality, budgets), then the INT8
             evolution's report again (it resumes at once), now with the op families' INT8 speed-ups;
``targets``  target awareness: each evolved space's Q-T score on both targets, and its best
             predicted subnet under the tighter budget timed by both targets' LUTs;
``spearman-train``  the supernets of the score check that need no evolution (three random
             candidates of the hyper-space and the whole hyper-space), QFA-trained with the scale's
             ``spearman`` recipe;
``spearman`` the score check: those and the evolved space trained and searched; Spearman between
             Q-T score and best feasible validation accuracy.

Scale: ``--scale reduced`` (the default; what a two-core CPU finishes in about two hours) or
``--scale paper`` (the paper's evolution settings, longer training); the scale of every figure
is written into ``summary.json``.

    python benchmarks/bench_spaceevo.py --work runs/bench_spaceevo
    python benchmarks/bench_spaceevo.py --work runs/bench_spaceevo --steps tables
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parents[1]
if str(ROOT) not in sys.path:
    sys.path.insert(0, str(ROOT))

STEPS = (
    "teacher",
    "lut",
    "budgets",
    "quality",
    "evolve",
    "evolved",
    "run-mobilenet",
    "run-evolved",
    "tables",
    "baseline",
    "lut-fp32",
    "evolve-fp32",
    "targets",
    "spearman-train",
    "spearman",
)
SHAPE = {"in_chans": 1, "num_classes": 10, "resolution": 28}

# How every supernet here is optimised: the plain-CNN baseline's recipe (nas.baselines.BaselineRecipe:
# batch 128, SGD with Nesterov momentum, weight decay 5e-4, one-cycle to a peak of 0.1), so that the
# comparison with it differs in the network and the weight sharing, not in the optimiser.
RECIPE: dict[str, Any] = {"batch_size": 128, "lr": 0.1, "schedule": "onecycle", "weight_decay": 5e-4, "qat_lr": 0.01}

# Each chosen subnet's QAT fine-tune at export (`nas run`'s export.finetune_*): weight-shared
# weights trained for a few epochs lag the same network trained alone; the plain-CNN baseline is
# then trained for as many more epochs (step ``baseline``), so both have seen the same epochs.
FINETUNE: dict[str, Any] = {"finetune_epochs": 1, "finetune_lr": 0.02, "finetune_distill": 0.0}

SCALES: dict[str, dict[str, Any]] = {
    "reduced": {
        "supernet": {"epochs": 3, "qat_epochs": 0.25, "train_limit": 20000},
        "search": {"budget": 24, "val_limit": 2000},
        "quality": {
            "epochs": 1,
            "qat_epochs": 0.5,
            "train_limit": 3000,
            "num_random": 1,
            "eval_samples": 8,
            "eval_images": 512,
        },
        "evolution": {"population": 100, "sample": 25, "cycles": 1000, "samples": 100_000},
        "export": FINETUNE,
        "spearman": {
            "supernet": {"epochs": 3, "qat_epochs": 0.25, "train_limit": 10000},
            "search": {"budget": 12, "val_limit": 1000},
        },
    },
    "paper": {
        "supernet": {"epochs": 8, "qat_epochs": 0.5, "train_limit": None},
        "search": {"budget": 40, "val_limit": None},
        "quality": {"epochs": 3, "qat_epochs": 1, "train_limit": None, "num_random": 2, "eval_samples": 16},
        "evolution": {"population": 500, "sample": 125, "cycles": 5000, "samples": 100_000},
        "export": FINETUNE,
        "spearman": {
            "supernet": {"epochs": 4, "qat_epochs": 0.5, "train_limit": 20000},
            "search": {"budget": 24, "val_limit": 2000},
        },
    },
}


def nas(*args: str, log: Path, ok: tuple[int, ...] = (0,)) -> None:
    """Run ``nas ARGS`` (this checkout's), appending its output to ``log``; exit on an exit code
    not in ``ok``."""
    cmd = [sys.executable, "-m", "nas.cli", *args]
    print("$ nas " + " ".join(args), flush=True)
    with log.open("a") as fh:
        fh.write("$ nas " + " ".join(args) + "\n")
        fh.flush()
        code = subprocess.call(
            cmd,
            stdout=fh,
            stderr=subprocess.STDOUT,
            cwd=ROOT,
            env={**os.environ, "PYTHONPATH": str(ROOT), "PYTHONUNBUFFERED": "1"},
        )
    if code not in ok:
        sys.exit(f"`nas {args[0]}` failed (exit {code}); see {log}")


def step_lut(w: Path, a: argparse.Namespace, target: str) -> None:
    """Every block of both spaces on ``target`` (the INT8 comparison needs only the INT8 target:
    the FP32 twin is measured in its own later step)."""
    for space in ("spaceevo", "mobilenet"):
        nas(
            "profile", "--space", space, "--in-chans", "1", "--num-classes", "10", "--resolution", "28",
            "--target", target, "--out", str(w / "lut.db"), "--networks", str(a.networks), "--no-progress",
            log=w / "lut.log",
        )  # fmt: skip


def _evaluator(w: Path, target: str, space: Any) -> Any:
    from nas.search.evaluators import LutLatencyEvaluator

    return LutLatencyEvaluator.from_lut(w / "lut.db", target, space)


def step_budgets(w: Path, a: argparse.Namespace) -> dict[str, Any]:
    """``budgets_ms``: the budgets both spaces are searched under (the mobilenet space must have
    models under them); ``evolve_budgets_ms``: the budgets the space is evolved for (``--evolve-budgets``,
    default 0.15 and 0.3 ms: around the plain CNN's INT8 latency on the reference hosts, where the
    hyper-space's latency range binds); the evolved space is searched under both pairs."""
    path = w / "budgets.json"
    if path.exists():
        rec = json.loads(path.read_text())
        if "evolve_budgets_ms" not in rec:
            rec["evolve_budgets_ms"] = [float(v) for v in a.evolve_budgets.split(",")]
            path.write_text(json.dumps(rec, indent=2))
        return rec
    import spaces
    from supernet import largest_arch, smallest_arch

    mnv = spaces.create_space("mobilenet", **SHAPE)
    lat = _evaluator(w, a.target, mnv)
    fastest = float(lat.evaluate(smallest_arch(mnv))["latency_ms"])
    largest = float(lat.evaluate(largest_arch(mnv))["latency_ms"])
    if a.budgets:
        ms = [float(v) for v in a.budgets.split(",")]
        how = "given"
    else:
        ms = [round(fastest + f * (largest - fastest), 4) for f in (0.3, 0.6)]
        how = "30 % and 60 % of the mobilenet space's predicted INT8 range"
    rec = {
        "budgets_ms": ms,
        "how": how,
        "mobilenet_range_ms": [fastest, largest],
        "evolve_budgets_ms": [float(v) for v in a.evolve_budgets.split(",")],
        "target": a.target,
    }
    path.write_text(json.dumps(rec, indent=2))
    return rec


def run_config(w: Path, a: argparse.Namespace, name: str, space: str, budgets: list[float], **overrides: Any) -> Path:
    import yaml

    sc = {**SCALES[a.scale], **overrides}
    cfg = {
        "name": name,
        "seed": a.seed,
        "space": {"name": space},
        "data": {"name": "fashion-mnist", "train_limit": sc["supernet"]["train_limit"], "val_fraction": 0.1},
        "target": {"name": a.target, "fp32": a.fp32_target},
        "lut": {"path": str(w / "lut.db")},
        "supernet": {
            "checkpoint": str(w / f"{name}-supernet"),
            "epochs": sc["supernet"]["epochs"],
            "qat_epochs": sc["supernet"]["qat_epochs"],
            **RECIPE,
            "num_random": 1,
            "eval_every": 0,
            "threads": a.threads,
        },
        "search": {
            "searcher": "evolution",
            "budget": sc["search"]["budget"],
            "latency_budgets": budgets,
            "val_limit": sc["search"]["val_limit"],
        },
        "export": {"formats": ["onnx-int8", "onnx-fp32"], **sc["export"]},
        "report": {"random_subnets": 8},
    }
    path = w / f"{name}.yaml"
    path.write_text(yaml.safe_dump(cfg, sort_keys=False))
    return path


def step_train(w: Path, a: argparse.Namespace, name: str, space: str, recipe: dict[str, Any] | None = None) -> Path:
    """QFA-train ``space`` with the scale's recipe (the same for every space; ``recipe`` replaces
    its epochs / train_limit) into ``<name>-supernet``."""
    sc = recipe or SCALES[a.scale]["supernet"]
    out = w / f"{name}-supernet"
    args = ["train-supernet", "--space", space, "--data", "fashion-mnist", "--out", str(out)]
    if not Path(space).suffix:  # a registered space: the data's shape
        args += ["--space-args", json.dumps(SHAPE)]
    args += [
        "--epochs", str(sc["epochs"]), "--qat-epochs", str(sc["qat_epochs"]),
        "--batch-size", str(RECIPE["batch_size"]), "--lr", str(RECIPE["lr"]), "--schedule", RECIPE["schedule"],
        "--qat-lr", str(RECIPE["qat_lr"]), "--weight-decay", str(RECIPE["weight_decay"]),
        "--num-random", "1", "--val-fraction", "0.1", "--eval-every", "0", "--seed", str(a.seed), "--no-progress",
    ]  # fmt: skip
    if sc["train_limit"]:
        args += ["--train-limit", str(sc["train_limit"])]
    if a.threads:
        args += ["--threads", str(a.threads)]
    if (out / "checkpoint.safetensors").exists():
        args.append("--resume")
    nas(*args, log=w / f"{name}-supernet.log")
    return out


def profile_space(w: Path, a: argparse.Namespace, space: str, networks: int) -> None:
    """Record ``space`` (a YAML file) in the shared LUT on the INT8 target: its blocks are the
    hyper-space's (already measured, skipped); only its ``networks`` calibration networks are
    measured. (Its FP32 twin is left out: the runs' reports then have no FP32 columns.)"""
    nas(
        "profile", "--space", space, "--target", a.target, "--out", str(w / "lut.db"),
        "--networks", str(networks), "--no-progress", log=w / "lut.log",
    )  # fmt: skip


def step_run(
    w: Path,
    a: argparse.Namespace,
    name: str,
    space: str,
    until: str | None = None,
    budgets: list[float] | None = None,
    **overrides: Any,
) -> Path:
    """``nas run`` of ``space`` on the shared LUT and its trained supernet: search per budget
    (default: the comparison budgets), export, report."""
    budgets = budgets or step_budgets(w, a)["budgets_ms"]
    if Path(space).suffix:
        profile_space(w, a, space, a.networks if until is None else 0)
    cfg = run_config(w, a, name, space, budgets, **overrides)
    # exit 1 with a report: an export failed its verification on the target (a finding to tabulate)
    nas(
        "run",
        str(cfg),
        "--out",
        str(w / name),
        *(["--until", until] if until else []),
        log=w / f"{name}.log",
        ok=(0, 1),
    )
    if until is None and not (w / name / "report" / "report.json").exists():
        sys.exit(f"`nas run` of {name} ended without a report; see {w / f'{name}.log'}")
    return w / name


def teacher_path(w: Path) -> Path:
    return w / "mobilenet-supernet"


def step_quality(w: Path, a: argparse.Namespace) -> None:
    q = SCALES[a.scale]["quality"]
    args = [
        "spaceevo-quality",
        "--hyperspace",
        "spaceevo",
        "--teacher",
        str(teacher_path(w)),
        "--out",
        str(w / "quality.db"),
        "--epochs",
        str(q["epochs"]),
        "--qat-epochs",
        str(q["qat_epochs"]),
        "--num-random",
        str(q["num_random"]),
        "--eval-samples",
        str(q["eval_samples"]),
        "--eval-images",
        str(q.get("eval_images", 1024)),
        "--seed",
        str(a.seed),
        "--no-progress",
        "--json",
    ]
    if q["train_limit"]:
        args += ["--train-limit", str(q["train_limit"])]
    if a.threads:
        args += ["--threads", str(a.threads)]
    nas(*args, log=w / "quality.log")


def evolved_path(w: Path, target: str) -> Path:
    return w / f"evolved-{target}.yaml"


def step_evolve(w: Path, a: argparse.Namespace, target: str) -> None:
    budgets = step_budgets(w, a)["evolve_budgets_ms"]
    ev = SCALES[a.scale]["evolution"]
    nas(
        "evolve-space", "--hyperspace", "spaceevo", "--data", "fashion-mnist", "--lut", str(w / "lut.db"),
        "--target", target, "--budgets", ",".join(str(b) for b in budgets), "--quality", str(w / "quality.db"),
        "--out", str(evolved_path(w, target)), "--population", str(ev["population"]), "--sample", str(ev["sample"]),
        "--cycles", str(ev["cycles"]), "--samples", str(ev["samples"]), "--seed", str(a.seed), "--no-progress",
        "--json", log=w / "evolve.log",
    )  # fmt: skip


def _scorer(w: Path, a: argparse.Namespace, target: str) -> Any:
    from nas.spaceevo import HyperSpace, QTScorer, StageLatencyModel
    from nas.spaceevo.quality import load_quality

    hyper = HyperSpace.create("spaceevo", **SHAPE)
    lat = StageLatencyModel.from_lut(w / "lut.db", target, hyper)
    budgets = step_budgets(w, a)["evolve_budgets_ms"]
    return hyper, QTScorer(hyper, lat, load_quality(w / "quality.db"), budgets, seed=a.seed)


def step_targets(w: Path, a: argparse.Namespace) -> dict[str, Any]:
    """Each evolved space scored on both targets, and its best predicted subnet under the tighter
    budget (lowest block-wise loss among the sampled subnets its own target's LUT puts under the
    budget) timed by both targets' LUTs. Then the comparison at equal quality, per target and
    budget: both spaces' subnets timed on that target; the quality bar is the weaker of the two
    spaces' best losses under the budget; each space's fastest subnet reaching it."""
    import numpy as np

    targets = (a.target, a.fp32_target)
    budget = min(step_budgets(w, a)["evolve_budgets_ms"])
    result: dict[str, Any] = {"budget_ms": budget, "spaces": {}}
    cands = {}
    for t in targets:
        state = json.loads(Path(f"{evolved_path(w, t).with_suffix('')}.report.json").read_text())
        cands[t] = state["best"]["candidate"]
    scorers = {t: _scorer(w, a, t) for t in targets}
    for own in targets:
        hyper = scorers[own][0]
        cand = hyper.candidate_from_dict(cands[own])
        row: dict[str, Any] = {"candidate": cand.describe(), "qt_score": {}, "best_subnet_ms": {}}
        for t in targets:
            row["qt_score"][t] = scorers[t][1].score(cand).score
        lat_own, loss = scorers[own][1].sample(cand, rng=np.random.default_rng(a.seed))
        ok = np.flatnonzero(lat_own <= budget)
        if len(ok):
            i = int(ok[np.argmin(loss[ok])])
            for t in targets:
                lat_t, _ = scorers[t][1].sample(cand, rng=np.random.default_rng(a.seed))
                row["best_subnet_ms"][t] = float(lat_t[i])
        result["spaces"][own] = row
    result["equal_quality"] = []
    for b in step_budgets(w, a)["evolve_budgets_ms"]:
        for t in targets:
            data = {}
            for own in targets:
                cand = scorers[own][0].candidate_from_dict(cands[own])
                data[own] = scorers[t][1].sample(cand, rng=np.random.default_rng(a.seed))
            best = {own: float(loss[lat <= b].min()) for own, (lat, loss) in data.items() if (lat <= b).any()}
            if len(best) < len(targets):
                continue
            bar = max(best.values())
            fastest = {own: float(lat[loss <= bar].min()) for own, (lat, loss) in data.items()}
            result["equal_quality"].append(
                {"budget_ms": b, "timed_on": t, "best_loss": best, "loss_bar": bar, "fastest_ms": fastest}
            )
    (w / "targets.json").write_text(json.dumps(result, indent=2))
    print(f"\nTarget awareness (budget {budget} ms; rows: the space evolved for; columns: timed on)")
    print(
        f"{'space':<16}" + "".join(f"{'Q-T ' + t:>22}" for t in targets) + "".join(f"{'ms ' + t:>18}" for t in targets)
    )
    for own, row in result["spaces"].items():
        print(
            f"{own:<16}"
            + "".join(f"{row['qt_score'][t]:>22.4f}" for t in targets)
            + "".join(f"{row['best_subnet_ms'].get(t, float('nan')):>18.4f}" for t in targets)
        )
    print("\nAt equal quality (columns: the space evolved for; best loss under the budget, then the fastest")
    print("subnet reaching the weaker space's best loss, timed on the row's target)")
    print(f"{'budget':>7} {'timed on':<14}" + "".join(f"{'loss ' + t:>19}{'ms ' + t:>17}" for t in targets))
    for r in result["equal_quality"]:
        print(
            f"{r['budget_ms']:>7} {r['timed_on']:<14}"
            + "".join(f"{r['best_loss'][t]:>19.4f}{r['fastest_ms'][t]:>17.4f}" for t in targets)
        )
    return result


def spearman_spaces(
    w: Path, a: argparse.Namespace, evolved: bool = True
) -> dict[str, tuple[str, dict[str, Any] | None]]:
    """The spaces of the score check as ``name: (YAML file, candidate record or None)``: the
    INT8-evolved one (unless ``evolved`` is false), three random candidates of the hyper-space
    (seeded), the whole hyper-space."""
    import random

    from nas.spaceevo import HyperSpace

    hyper = HyperSpace.create("spaceevo", **SHAPE)
    out: dict[str, tuple[str, dict[str, Any] | None]] = {}
    if evolved:
        report = json.loads(Path(f"{evolved_path(w, a.target).with_suffix('')}.report.json").read_text())
        out["evolved"] = (str(evolved_path(w, a.target).resolve()), report["best"]["candidate"])
    rng = random.Random(a.seed + 1)
    (w / "spearman").mkdir(parents=True, exist_ok=True)
    for i in range(3):
        cand = hyper.random_candidate(rng)
        path = w / "spearman" / f"random{i}.yaml"
        if not path.exists():
            cand.write_yaml(path, name=f"random{i}")
        out[f"random{i}"] = (str(path.resolve()), cand.to_dict())
    path = w / "spearman" / "hyperspace.yaml"
    if not path.exists():
        path.write_text(_space_yaml(hyper.space))
    out["hyperspace"] = (str(path.resolve()), None)
    return out


def step_spearman_train(w: Path, a: argparse.Namespace) -> None:
    """The score check's supernets that need no evolution (the random candidates and the whole
    hyper-space): trainable beside ``quality`` on a core of their own."""
    for name, (path, _) in spearman_spaces(w, a, evolved=False).items():
        step_train(w, a, f"sp-{name}", path, recipe=SCALES[a.scale]["spearman"]["supernet"])


def _space_yaml(space: Any) -> str:
    from spaces.yaml_io import space_to_yaml

    return str(space_to_yaml(space))


def hyperspace_score(scorer: Any, hyper: Any, n_cands: int, per: int, seed: int) -> Any:
    """The Q-T score of the whole hyper-space: subnets sampled hierarchically (a uniformly random
    block type and window per stage, then a sub-stage), ``n_cands`` × ``per`` of them."""
    import random

    import numpy as np

    from nas.spaceevo import qt_score

    rng = random.Random(seed)
    lats, losses = [], []
    for _ in range(n_cands):
        cand = hyper.random_candidate(rng)
        lat, loss = scorer.sample(cand, n=per)
        lats.append(lat)
        losses.append(loss)
    return qt_score(
        np.concatenate(lats), np.concatenate(losses), scorer.budgets, t=scorer.t, a=scorer.a, top=scorer.top
    )


def step_baseline(w: Path, a: argparse.Namespace) -> None:
    """``benchmarks/bench_pipeline.py``: the plain 5-conv ReLU CNN trained on as many images for as
    many epochs as the supernets plus the exports' fine-tune, quantized by onnxruntime, timed in ONE
    run beside every export of both spaces (dominance: higher INT8 test accuracy and lower measured
    INT8 latency)."""
    sc = SCALES[a.scale]["supernet"]
    extra = SCALES[a.scale]["export"]["finetune_epochs"]
    exported = sorted(
        str(d) for name in ("mobilenet", "evolved") for d in (w / name / "export").glob("b*") if d.is_dir()
    )
    cmd = [sys.executable, str(ROOT / "benchmarks" / "bench_pipeline.py"), "--models", "plain_cnn"]
    cmd += ["--epochs", str(max(1, round(sc["epochs"] + extra)))]  # the exports' fine-tune epochs too
    if sc["train_limit"]:
        cmd += ["--train-limit", str(int(sc["train_limit"] * 0.9))]  # the supernets hold 10 % out
    cmd += ["--work", str(w / "bench_pipeline"), "--json", str(w / "bench_pipeline.json"), "--exported", *exported]
    print("$ " + " ".join(cmd), flush=True)
    code = subprocess.call(cmd, cwd=ROOT, env={**os.environ, "PYTHONPATH": str(ROOT)})
    if code != 0:
        sys.exit(f"bench_pipeline.py failed (exit {code})")


def fastest_ms(w: Path, a: argparse.Namespace, space_yaml: str) -> float:
    """The INT8 LUT's latency of the fastest arch of ``space_yaml`` (as ``nas run`` finds it).

    Read in a child process: twice this step's own process, holding LUT connections while
    ``nas profile`` children wrote the LUT, found it "malformed" on opening it again (a fresh
    process read it whole; not reproduced outside this step)."""
    profile_space(w, a, space_yaml, 0)
    code = (
        "import sys\n"
        "from nas.search.evaluators import LutLatencyEvaluator\n"
        "from spaces import load_space\n"
        "from supernet import smallest_arch\n"
        "space = load_space(sys.argv[1])\n"
        "lat = LutLatencyEvaluator.from_lut(sys.argv[2], sys.argv[3], space)\n"
        "print(float(lat.fastest(candidates=[smallest_arch(space)])[1]))\n"
    )
    out = subprocess.check_output(
        [sys.executable, "-c", code, space_yaml, str(w / "lut.db"), a.target],
        cwd=ROOT,
        env={**os.environ, "PYTHONPATH": str(ROOT)},
        text=True,
    )
    return float(out.strip().splitlines()[-1])


def step_spearman(w: Path, a: argparse.Namespace) -> dict[str, Any]:
    """Does the Q-T score rank spaces like their trained models do? Each space is briefly
    QFA-trained, searched under the budgets (best feasible validation accuracy, INT8 fake-quant),
    and its Q-T score (INT8 target) is compared by Spearman's rho (summed over the budgets: the
    mean best accuracy over budgets against the score)."""
    from scipy.stats import spearmanr

    brief = SCALES[a.scale]["spearman"]
    hyper, scorer = _scorer(w, a, a.target)
    rows = {}
    for name, (path, record) in spearman_spaces(w, a).items():
        key = f"sp-{name}"
        budgets = step_budgets(w, a)["evolve_budgets_ms"]
        fastest = fastest_ms(w, a, path)
        feasible = [b for b in budgets if b >= fastest]  # no subnet under a budget: no accuracy there
        step_train(w, a, key, path, recipe=brief["supernet"])
        accs: list[float | None] = [None] * len(budgets)
        if feasible:
            run = step_run(
                w, a, key, path, until="search", budgets=feasible, supernet=brief["supernet"], search=brief["search"]
            )
            summary = json.loads((run / "search" / "stage.json").read_text())["summary"]
            found = iter(s.get("accuracy") for s in summary["searches"])
            accs = [next(found) if b >= fastest else None for b in budgets]
        if record is None:
            score = hyperspace_score(scorer, hyper, 200, 500, a.seed).score
        else:
            score = scorer.score(hyper.candidate_from_dict(record)).score
        rows[name] = {
            "qt_score": score,
            "best_val_acc": accs,
            "mean_best_val_acc": sum(x or 0 for x in accs) / len(accs),
        }
    names = list(rows)
    rho = spearmanr([rows[n]["qt_score"] for n in names], [rows[n]["mean_best_val_acc"] for n in names]).statistic
    out = {"spaces": rows, "spearman": float(rho), "recipe": brief}
    (w / "spearman.json").write_text(json.dumps(out, indent=2))
    print(f"\nQ-T score vs best feasible validation accuracy (brief training {brief})")
    print(f"{'space':<12} {'Q-T score':>12} {'best val acc per budget':>28}")
    for n in names:
        accs = ", ".join("none" if x is None else f"{x:.2f}" for x in rows[n]["best_val_acc"])
        print(f"{n:<12} {rows[n]['qt_score']:>12.4f} {accs:>28}")
    print(f"Spearman rho = {rho:.3f} over {len(names)} spaces")
    return out


def _exports(run: Path) -> list[dict[str, Any]]:
    path = run / "report" / "report.json"
    if not path.exists():
        return []
    rep = json.loads(path.read_text())
    return list(rep.get("exports", []))


def step_tables(w: Path, a: argparse.Namespace) -> dict[str, Any]:
    out: dict[str, Any] = {"scale": a.scale, "recipe": SCALES[a.scale], "budgets": step_budgets(w, a)}
    for name in ("mobilenet", "evolved"):
        rows = _exports(w / name)
        out[name] = rows
        print(f"\n{name}: exported INT8 models (measured on {a.target})")
        print(
            f"{'budget ms':>10} {'arch':>14} {'INT8 test %':>12} {'FP32 test %':>12} {'pred ms':>9} {'meas ms':>9} {'meets':>6}"
        )
        for r in rows:
            print(
                f"{r['budget_ms']:>10.4f} {r['arch_id'][:12]:>14} {r['int8_test_acc']:>12.2f} "
                f"{r['fp32_test_acc']:>12.2f} {r['predicted_int8_ms']:>9.4f} {r['measured_int8_ms']:>9.4f} "
                f"{'yes' if r['meets_budget'] else 'NO':>6}"
            )
    (w / "summary.json").write_text(json.dumps(out, indent=2, default=str))
    return out


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--work", default="runs/bench_spaceevo", help="experiment folder (resumed)")
    p.add_argument("--steps", default=",".join(STEPS), help=f"comma-separated subset of {','.join(STEPS)}")
    p.add_argument("--scale", choices=sorted(SCALES), default="reduced")
    p.add_argument("--target", default="cpu-ort-int8")
    p.add_argument("--fp32-target", default="cpu-ort-fp32")
    p.add_argument("--budgets", default="", help="two INT8 budgets in ms (default: from the mobilenet range)")
    p.add_argument("--evolve-budgets", default="0.15,0.3", help="the two INT8 budgets in ms the space is evolved for")
    p.add_argument("--networks", type=int, default=10, help="calibration networks per profiled space")
    p.add_argument("--seed", type=int, default=0)
    p.add_argument(
        "--threads",
        type=int,
        default=None,
        help="torch threads of the trainings and the distillation (default: all cores)",
    )
    a = p.parse_args(argv)
    steps = [s.strip() for s in a.steps.split(",") if s.strip()]
    bad = sorted(set(steps) - set(STEPS))
    if bad:
        p.error(f"unknown step {bad[0]!r} (steps: {', '.join(STEPS)})")
    w = Path(a.work)
    w.mkdir(parents=True, exist_ok=True)
    for s in STEPS:
        if s not in steps:
            continue
        print(f"== {s}", flush=True)
        if s == "lut":
            step_lut(w, a, a.target)
        elif s == "lut-fp32":
            step_lut(w, a, a.fp32_target)
        elif s == "budgets":
            print(json.dumps(step_budgets(w, a)))
        elif s == "teacher":
            step_train(w, a, "mobilenet", "mobilenet")
        elif s == "quality":
            step_quality(w, a)
        elif s == "evolve":
            step_evolve(w, a, a.target)
        elif s == "evolve-fp32":
            step_evolve(w, a, a.fp32_target)
            step_evolve(w, a, a.target)  # resumes at once; its report now has the per-op INT8 speed-ups
        elif s == "evolved":
            step_train(w, a, "evolved", str(evolved_path(w, a.target).resolve()))
        elif s == "run-mobilenet":
            step_run(w, a, "mobilenet", "mobilenet")
        elif s == "run-evolved":
            b = step_budgets(w, a)
            step_run(
                w,
                a,
                "evolved",
                str(evolved_path(w, a.target).resolve()),
                budgets=b["evolve_budgets_ms"] + b["budgets_ms"],
            )
        elif s == "targets":
            step_targets(w, a)
        elif s == "tables":
            step_tables(w, a)
        elif s == "baseline":
            step_baseline(w, a)
        elif s == "spearman-train":
            step_spearman_train(w, a)
        elif s == "spearman":
            step_spearman(w, a)
    return 0


if __name__ == "__main__":
    sys.exit(main())
