"""The stages of ``nas run``; each takes the :class:`~nas.pipeline.experiment.Experiment`
and returns a JSON-able summary. Their finished units survive an interruption: LUT blocks (the
LUT is written block by block), training steps (checkpoints), evaluations (the JSON-lines cache),
searches and exports (a folder each, renamed into place when complete)."""

from __future__ import annotations

import json
import os
import shutil
import time
from collections.abc import Mapping
from pathlib import Path
from typing import Any

from hwnas.errors import ConfigError, HwnasError
from hwnas.io import atomic_write
from hwnas.progress import ProgressBar
from nas.pipeline.state import BASELINE_RECORD, baselines_dir, copy_file

__all__ = [
    "baselines_dir",
    "record_space",
    "run_baselines",
    "run_evolve",
    "run_export",
    "run_lut",
    "run_report",
    "run_search",
    "run_supernet",
]


def _read_json(path: Path) -> Any:
    try:
        return json.loads(path.read_text(encoding="utf-8"))
    except (OSError, ValueError):
        return None


def _dump(path: Path, obj: Any) -> None:
    from hwnas.io import atomic_write_text, json_safe

    path.parent.mkdir(parents=True, exist_ok=True)
    atomic_write_text(path, json.dumps(json_safe(obj), indent=2, sort_keys=True) + "\n")


# ------------------------------------------------------------------------------------------------
# 1. lut
# ------------------------------------------------------------------------------------------------


def _copy_lut(src: Path, dst: Path) -> None:
    """A consistent copy of the SQLite LUT ``src`` (its WAL included), written atomically."""
    import sqlite3

    from latency_lut import open_lut

    open_lut(src).close()  # one-line errors for a file that is not a LUT

    def backup(tmp: str) -> None:
        a, b = sqlite3.connect(f"file:{src}?mode=ro", uri=True), sqlite3.connect(tmp)
        try:
            a.backup(b)
        finally:
            a.close()
            b.close()

    atomic_write(dst, backup)


def _profile_summary(res: Any) -> dict[str, Any]:
    return {
        "fingerprint": res.fingerprint,
        "blocks": res.total,
        "measured": res.measured,
        "kept": res.skipped,
        "networks": res.networks,
        "seconds": round(res.elapsed_s, 1),
        "busy_after_retries": res.unstable,
        "correction": res.correction,
    }


def record_space(exp: Any, space: Any, networks: int) -> dict[str, Any]:
    """Make the run's LUT record ``space`` on the target and its FP32 twin when it holds every block
    of it under another space (the hyper-space of an evolved space, or a given LUT of a larger
    space): profile ``space`` into the run's copy, which measures only its ``networks``
    calibration networks (no block is measured again), so that
    :meth:`~nas.search.evaluators.LutLatencyEvaluator.from_lut` accepts it. A LUT lacking blocks of
    ``space`` is refused in one line naming them (an FP32 twin it lacks is left out of the report).
    Returns ``{target: profile summary}`` of what was profiled."""
    from latency_lut import profile_space
    from latency_lut.errors import LUTError
    from latency_lut.predictor import LatencyPredictor

    cfg = exp.config
    done: dict[str, Any] = {}
    for key in ("name", "fp32"):
        name = cfg["target"][key]
        if name is None:
            continue
        try:
            pred = LatencyPredictor.for_target(exp.lut_path, name, space, allow_other_space=True)
        except HwnasError:
            if key == "fp32":
                continue  # the run's latency_evaluator(fp32=True) says why, later
            raise
        try:
            if pred.same_space or pred.missing_keys():
                continue  # recorded already (or lacking blocks: from_lut names them)
        finally:
            pred.close()
        exp.log(
            f"[lut] {exp.lut_path.name} holds every block of {space.name} on {name} but not the space: recording it "
            f"({networks if key == 'name' else 0} calibration network(s) measured, no block)"
        )
        res = profile_space(
            space,
            name,
            exp.lut_path,
            seed=exp.seed,
            networks=networks if key == "name" else 0,
            progress=exp.progress,
            log=exp.log,
            retry_passes=cfg["lut"]["retry_passes"],
        )
        if res.failed:
            raise LUTError(f"{len(res.failed)} model(s) could not be measured on {name}, e.g. {res.failed[0]}")
        done[name] = _profile_summary(res)
    return done


def run_lut(exp: Any) -> dict[str, Any]:
    """Profile the space on the target (and its FP32 twin) into ``lut/lut.db``, or copy a given LUT.
    With ``evolve.enabled`` the space is the hyper-space (:attr:`Experiment.config_space`)."""
    from latency_lut.errors import LUTError

    cfg = exp.config
    db = exp.lut_path
    space = exp.config_space
    db.parent.mkdir(parents=True, exist_ok=True)
    summary: dict[str, Any] = {
        "lut": str(db.relative_to(exp.root)),
        "target": cfg["target"]["name"],
        "fp32_target": cfg["target"]["fp32"],
        "profiled": {},
    }
    given = cfg["lut"]["path"]
    if given is not None:
        src = Path(given).expanduser()
        if not db.exists():
            _copy_lut(src, db)
        summary["source"] = str(src.resolve())
        # a LUT of another space holding every block of this one: record this one in the copy
        summary["profiled"] = record_space(exp, space, cfg["lut"]["networks"])
        exp.latency_evaluator(space=space)  # the LUT must hold this space on this target, measured on this machine
        try:
            exp.latency_evaluator(fp32=True, space=space) if cfg["target"]["fp32"] else None
        except HwnasError as exc:
            summary["fp32_target"] = None
            exp.log(f"[lut] no FP32 speed-up table: {exc}")
        return summary
    from latency_lut import profile_space

    for key in ("name", "fp32"):
        name = cfg["target"][key]
        if name is None:
            continue
        exp.log(f"[lut] profiling every block of {space.name} on {name}")
        res = profile_space(
            space,
            name,
            db,
            seed=exp.seed,
            networks=cfg["lut"]["networks"] if key == "name" else 0,
            progress=exp.progress,
            log=exp.log,
            retry_passes=cfg["lut"]["retry_passes"],
        )
        if res.failed:
            raise LUTError(f"{len(res.failed)} block(s) could not be measured on {name}, e.g. {res.failed[0]}")
        summary["profiled"][name] = _profile_summary(res)
    return summary


# ------------------------------------------------------------------------------------------------
# 2. evolve (optional)
# ------------------------------------------------------------------------------------------------


QUALITY_NAME = "quality.db"
"""The block-wise quality file of the evolve stage (``evolve/quality.db``; kept by ``--from evolve``)."""


def _teacher(exp: Any, kd_config: Any) -> tuple[Any, Any, Any, dict[str, Any]]:
    """``load_supernet_teacher`` on ``evolve.teacher`` with the run's data, one-line errors naming the key."""
    from nas.spaceevo.blockkd import load_supernet_teacher

    path = exp.config["evolve"]["teacher"]
    try:
        return load_supernet_teacher(path, kd_config, data=exp.config["data"]["name"])
    except HwnasError as exc:
        raise ConfigError(f"evolve.teacher: {exc}") from None


def run_evolve(exp: Any) -> dict[str, Any]:
    """SpaceEvo on the run's hyper-space (the ``space`` section): block-wise distillation of every
    candidate stage from ``evolve.teacher`` into ``evolve/quality.db`` (resumed candidate stage by
    candidate stage), aging evolution of candidate spaces by Q-T score under the evolve budgets
    (resumed from ``evolve/space.state.json``), the best candidate written to ``evolve/space.yaml``
    with its report (``evolve/space.report.md``, ``.report.json``, ``.evolution.png``), and its
    calibration networks measured into the run's LUT (:func:`record_space`)."""
    from nas.export.formats import scheme_for_target
    from nas.spaceevo.blockkd import BlockKD, BlockKDConfig, BlockKDError
    from nas.spaceevo.evolution import AgingEvolution, EvolutionConfig
    from nas.spaceevo.latency import StageLatencyModel
    from nas.spaceevo.quality import load_quality
    from nas.spaceevo.report import write_report
    from nas.spaceevo.score import QTScorer

    cfg, e = exp.config, exp.config["evolve"]
    folder = exp.evolve_dir
    folder.mkdir(parents=True, exist_ok=True)
    hyper = exp.hyperspace()
    quality_path = folder / QUALITY_NAME
    kd_config = BlockKDConfig(
        epochs=e["epochs"],
        qat_epochs=e["qat_epochs"],
        batch_size=e["batch_size"],
        num_random=e["num_random"],
        eval_samples=e["eval_samples"],
        eval_images=e["eval_images"],
        train_limit=e["train_limit"],
        scheme=scheme_for_target(exp.target).name,
        seed=exp.seed,
        threads=cfg["supernet"]["threads"],
    )
    budgets = exp.evolve_budgets()
    exp.log(
        f"[evolve] hyper-space {hyper.name} ({len(hyper.stages)} stages, {hyper.size():,} candidate spaces), "
        f"Q-T budgets {', '.join(f'{b:.4g}' for b in budgets)} ms"
    )
    teacher, train, held, record = _teacher(exp, kd_config)
    try:
        kd = BlockKD(
            hyper.space,
            teacher,
            train,
            held,
            quality_path,
            kd_config,
            data_record=record,
            progress=exp.progress,
            log=lambda m: exp.log(f"[evolve] {m}"),
        )
    except BlockKDError as exc:
        raise ConfigError(
            f"evolve.teacher: {cfg['evolve']['teacher']} cannot teach hyper-space {hyper.name!r}: {exc}"
        ) from None
    kd_summary = kd.run()
    quality = load_quality(quality_path, kd.fingerprint)
    latency = StageLatencyModel.from_lut(exp.lut_path, exp.target, hyper)
    try:
        scorer = QTScorer(hyper, latency, quality, budgets, samples=e["samples"], seed=exp.seed)
        scorer.check_coverage()
        settings = {
            "lut": str(exp.lut_path.relative_to(exp.root)),
            "target": exp.target.name,
            "fingerprint": latency.predictor.fp_id,
            "quality": str(quality_path.relative_to(exp.root)),
            "quality_fingerprint": kd.fingerprint,
        }
        space_yaml = exp.evolved_space_path
        evo = AgingEvolution(
            hyper,
            scorer,
            EvolutionConfig(population=e["population"], sample=e["sample"], cycles=e["cycles"], seed=exp.seed),
            state_path=space_yaml.with_suffix(".state.json"),
            settings=settings,
            progress=exp.progress,
            log=lambda m: exp.log(f"[evolve] {m}"),
        )
        result = evo.run()
        best = result.best
        best.candidate.write_yaml(space_yaml)
        paths = write_report(
            result,
            scorer,
            space_yaml,
            lut=str(exp.lut_path),
            target=exp.target.name,
            quality=str(quality_path),
        )
    finally:
        latency.close()
    exp._space = None  # the evolved space, read from the file just written
    space = exp.space
    recorded = record_space(exp, space, cfg["lut"]["networks"])
    exp.latency_evaluator()  # the LUT now records the evolved space: the later stages can predict it
    cand = best.candidate
    exp.log(
        f"[evolve] evolved space {cand.id} (Q-T score {best.score.score:.4g}, "
        f"{len({i.candidate.id for i in result.history})} candidate spaces scored): {cand.describe()}"
    )
    return {
        "space": str(space_yaml.relative_to(exp.root)),
        "space_name": space.name,
        "hyperspace": hyper.name,
        "candidate": cand.id,
        "describe": cand.describe(),
        "stages": cand.to_dict()["stages"],
        "score": best.score.score,
        "budgets_ms": budgets,
        "budget_scores": [b.score for b in best.score.budgets],
        "evaluated": len({i.candidate.id for i in result.history}),
        "cycles": e["cycles"],
        "quality": {
            "file": str(quality_path.relative_to(exp.root)),
            "fingerprint": kd.fingerprint,
            "candidate_stages": kd_summary["candidates"],
            "trained": kd_summary["trained"],
            "kept": kd_summary["skipped"],
        },
        "report": {k: str(v.relative_to(exp.root)) for k, v in paths.items()},
        "lut_recorded": recorded,
    }


# ------------------------------------------------------------------------------------------------
# 3. supernet
# ------------------------------------------------------------------------------------------------


def _last_metrics(folder: Path) -> dict[str, Any]:
    from supernet.train import METRICS_NAME

    try:
        lines = (folder / METRICS_NAME).read_text(encoding="utf-8").splitlines()
    except OSError:
        return {}
    for line in reversed(lines):
        try:
            rec = json.loads(line)
        except ValueError:
            continue
        if isinstance(rec, dict) and "epoch" in rec:
            return rec
    return {}


def run_supernet(exp: Any) -> dict[str, Any]:
    """Train the quantized-for-all supernet into ``supernet/`` (resuming), or copy a given one."""
    from spaces.identity import check_same_space
    from supernet.checkpoint import checkpoint_path
    from supernet.train import METRICS_NAME, Trainer, load_supernet

    out = exp.supernet_dir
    given = exp.config["supernet"]["checkpoint"]
    if given is not None:
        src = checkpoint_path(given)
        if not src.is_file():
            raise ConfigError(f"supernet.checkpoint: {src}: no such checkpoint")
        net, meta = load_supernet(src)  # one-line errors for a damaged file, before copying it
        check_same_space(exp.space, net.space, what=f"config space {exp.space.name!r}", given_as=f"checkpoint {src}")
        if not checkpoint_path(out).exists():
            if (src.parent / METRICS_NAME).is_file():
                copy_file(src.parent / METRICS_NAME, out / METRICS_NAME)
            copy_file(src, checkpoint_path(out))
        info = meta.get("data_info") or {}
        if info.get("data") and str(info.get("data")) != exp.config["data"]["name"]:
            exp.log(
                f"[supernet] note: the checkpoint was trained on {info.get('data')}, the config names "
                f"{exp.config['data']['name']}: the checkpoint's data set is used"
            )
        source = str(src.resolve())
    else:
        tc = exp.train_config()
        resume = checkpoint_path(out).exists()
        trainer = Trainer(
            tc, out, resume=resume, progress=exp.progress, log=exp.log, config_override=tc if resume else None
        )
        trainer.run()
        source = None
    last = _last_metrics(out)
    return {
        "checkpoint": str(checkpoint_path(out).relative_to(exp.root)),
        "source": source,
        "epochs": last.get("epoch"),
        "stage": last.get("stage"),
        "test_acc": last.get("test_acc"),
    }


# ------------------------------------------------------------------------------------------------
# 4. search
# ------------------------------------------------------------------------------------------------


#: population-based searchers: (population option, its default, the tournament option or None)
_POPULATIONS: dict[str, tuple[str, int, str | None]] = {
    "evolution": ("population_size", 20, "sample_size"),
    "hhnas": ("population_size", 20, "sample_size"),
    "nsga2": ("population_size", 50, None),
}


def fit_population(searcher: str, options: Mapping[str, Any], budget: int) -> dict[str, Any]:
    """``options`` with a population that fits ``budget`` queries, unless the user chose one: a
    population as large as the budget would leave evolution no query to evolve with (it would be
    random search). A third of the budget, 4 to the searcher's default; tournaments of half of it."""
    out = dict(options)
    spec = _POPULATIONS.get(searcher)
    if spec is None or spec[0] in out:
        return out
    key, default, tournament = spec
    population = max(4, min(default, budget // 3), int(out.get(tournament, 0)) if tournament else 0)
    if population >= default:
        return out
    out[key] = population
    if tournament is not None and tournament not in out:
        out[tournament] = max(2, min(5, population // 2))
    return out


def run_search(exp: Any) -> dict[str, Any]:
    """One search per latency budget into ``search/bN/`` (arch files + summary), and the random
    subnets of the report's cloud into ``search/random.json``; one evaluation cache for all."""
    from nas.search import create_searcher
    from nas.search.base import Constraint, Objective
    from nas.search.evaluators import CompositeEvaluator, SupernetEvaluator
    from nas.search.outputs import write_search_outputs
    from nas.search.runner import run_search as run_budget

    cfg, s = exp.config, exp.config["search"]
    folder = exp.root / "search"
    budgets = exp.budgets()
    acc = SupernetEvaluator(
        exp.supernet_dir,
        precision=s["precision"],
        val_limit=s["val_limit"],
        threads=exp.config["supernet"]["threads"],
        cache_path=folder / "evals.jsonl",
    )
    lat = exp.latency_evaluator()
    evaluator = CompositeEvaluator(acc, lat)
    searches = []
    for b in budgets:
        bdir = folder / b["name"]
        done = _read_json(bdir / "summary.json")
        if isinstance(done, dict) and done.get("budget_ms") == b["budget_ms"] and (bdir / "best.json").is_file():
            exp.log(f"[search] {b['name']} (≤ {b['budget_ms']:.4g} ms): finished earlier")
        else:
            options = fit_population(s["searcher"], s["options"], s["budget"])
            if options != s["options"]:
                fitted = ", ".join(f"{k} {v}" for k, v in options.items() if k not in s["options"])
                exp.log(
                    f"[search] {s['searcher']}: {fitted} (fitted to {s['budget']} queries; search.options sets them)"
                )
            try:
                searcher = create_searcher(
                    s["searcher"],
                    acc.space,
                    objectives=[Objective("accuracy")],
                    constraints=[Constraint("latency_ms", upper=b["search_ms"])],
                    seed=exp.seed,
                    **options,
                )
            except TypeError as exc:
                raise ConfigError(f"search.options: searcher {s['searcher']!r}: {exc}") from None
            start = time.perf_counter()
            bar = ProgressBar(
                exp.progress, f"search {b['name']} ≤ {b['budget_ms']:.4g} ms", s["budget"], transient=True
            )
            try:
                res = run_budget(searcher, evaluator, s["budget"], callback=lambda t: bar.advance())  # noqa: B023 (called in this iteration)
            finally:
                bar.close()
            if searcher.best() is None:  # nothing feasible sampled: the LUT's fastest arch always is
                from supernet import smallest_arch

                arch = lat.fastest(candidates=[smallest_arch(acc.space)])[0]
                searcher.tell(arch, evaluator.evaluate(arch))
                exp.log(
                    f"[search] {b['name']}: none of {len(res.trials)} queries met {b['budget_ms']:.4g} ms; "
                    f"the fastest arch of the space stands in (raise search.budget for a real search)"
                )
            best = searcher.best()
            if best is None:
                raise HwnasError(
                    f"search {b['name']}: no arch under {b['budget_ms']:.4g} ms in {len(res.trials)} "
                    f"queries: raise the budget or search.budget"
                )
            write_search_outputs(
                bdir,
                searcher,
                acc.space,
                multi_objective=False,
                summary={
                    "searcher": s["searcher"],
                    "options": options,
                    "seed": exp.seed,
                    "budget": s["budget"],
                    "budget_name": b["name"],
                    "budget_spec": b["spec"],
                    "budget_ms": b["budget_ms"],
                    "objectives": ["accuracy:max"],
                    "constraints": [f"latency_ms<={b['search_ms']:g}"],
                    "supernet": acc.describe(),
                    "lut": {"path": str(exp.lut_path), "target": lat.target},
                    "seconds": round(time.perf_counter() - start, 3),
                },
            )
            exp.log(
                f"[search] {b['name']} (≤ {b['budget_ms']:.4g} ms): best {best.arch.id}, validation accuracy "
                f"{best.values['accuracy']:.2f} %, predicted {best.values['latency_ms']:.4g} ms "
                f"({len(res.trials)} archs)"
            )
            done = _read_json(bdir / "summary.json")
        best_rec = done["best"]
        searches.append(
            {
                "budget": b["name"],
                "budget_ms": b["budget_ms"],
                "arch_id": best_rec["arch_id"],
                "accuracy": best_rec["values"]["accuracy"],
                "latency_ms": best_rec["values"]["latency_ms"],
                "queries": len(done["trials"]),
            }
        )
    n = cfg["report"]["random_subnets"]
    cloud_path = folder / "random.json"
    cloud = _read_json(cloud_path)
    if n and not (isinstance(cloud, list) and len(cloud) == len(exp.random_archs(n))):
        archs = exp.random_archs(n)
        bar = ProgressBar(exp.progress, "random subnets", len(archs), transient=True)
        rows = []
        try:
            for a in archs:
                v = evaluator.evaluate(a)
                rows.append(
                    {
                        "arch_id": a.id,
                        "arch": a.to_dict(),
                        "accuracy": v["accuracy"],
                        "latency_ms": v["latency_ms"],
                        "params": v["params"],
                    }
                )
                bar.advance()
        finally:
            bar.close()
        _dump(cloud_path, rows)
    return {"budgets": budgets, "searches": searches, "evaluations": acc.evaluations, "cache_hits": acc.hits}


# ------------------------------------------------------------------------------------------------
# 5. export
# ------------------------------------------------------------------------------------------------


def export_row(name: str, budget_ms: float, record: dict[str, Any], folder: str) -> dict[str, Any]:
    """The report's view of one export's ``model.json``."""
    acc, lat, checks = record.get("accuracy", {}), record.get("latency_ms", {}), record.get("checks", {})
    measured, predicted, fp32 = lat.get("measured"), lat.get("predicted"), lat.get("measured_fp32")
    return {
        "budget": name,
        "budget_ms": budget_ms,
        "arch_id": record.get("arch_id"),
        "describe": record.get("describe"),
        "params": record.get("params"),
        "predicted_int8_ms": predicted,
        "measured_int8_ms": measured,
        "measured_fp32_ms": fp32,
        "int8_speedup": (fp32 / measured) if fp32 and measured else None,
        "int8_test_acc": acc.get("int8_test"),
        "fp32_test_acc": acc.get("fp32_test"),
        "agreement": acc.get("int8_vs_fakequant_agreement"),
        "meets_budget": (measured <= budget_ms) if measured is not None else None,
        "within_10pct": checks.get("latency_within_prediction"),
        "folder": folder,
        "passed": bool(checks.get("passed")),
    }


def run_export(exp: Any) -> dict[str, Any]:
    """Export and verify each budget's best arch into ``export/bN/``."""
    from nas.export.exporter import export

    cfg = exp.config
    folder = exp.root / "export"
    folder.mkdir(parents=True, exist_ok=True)
    rows = []
    for b in exp.budgets():
        dest = folder / b["name"]
        record = _read_json(dest / "model.json")
        if not isinstance(record, dict):
            tmp = folder / f".{b['name']}.partial"
            shutil.rmtree(tmp, ignore_errors=True)
            shutil.rmtree(dest, ignore_errors=True)
            exp.log(f"[export] {b['name']}: exporting and verifying the best arch under {b['budget_ms']:.4g} ms")
            res = export(
                exp.supernet_dir,
                arch=str(exp.root / "search" / b["name"] / "best.json"),
                out=tmp,
                formats=cfg["export"]["formats"],
                target=cfg["target"]["name"],
                lut=exp.lut_path,
                finetune_epochs=cfg["export"]["finetune_epochs"],
                finetune_lr=cfg["export"]["finetune_lr"],
                finetune_distill=cfg["export"]["finetune_distill"],
                test_limit=cfg["data"]["test_limit"],
                max_latency_ms=b["budget_ms"],
                log=lambda m: exp.log(f"[export] {m}"),
            )
            os.replace(tmp, dest)
            record = res.record
        row = export_row(b["name"], b["budget_ms"], record, str(dest.relative_to(exp.root)))
        exp.log(
            f"[export] {b['name']}: INT8 test {row['int8_test_acc']:.2f} %, measured "
            f"{row['measured_int8_ms']:.4g} ms (predicted {row['predicted_int8_ms']:.4g}, budget "
            f"{b['budget_ms']:.4g}), {'passed' if row['passed'] else 'FAILED'} verification"
        )
        rows.append(row)
    return {"exports": rows}


# ------------------------------------------------------------------------------------------------
# 6. report
# ------------------------------------------------------------------------------------------------


BASELINE_CALIB = 512
"""Training images that calibrate a baseline's onnxruntime PTQ (as ``bench_pipeline.py``'s default)."""


def _baseline_data(exp: Any) -> tuple[Any, Any, dict[str, Any]]:
    """``(train, test, data key)``: the run's images as the supernet saw them: the data set
    recorded in the supernet checkpoint (its input shape and normalisation) or, without one,
    the config's at the space's input shape; the first ``data.train_limit`` training images less
    the validation images the searchers use (``data.val_fraction``, seeded as the supernet's
    split), and the first ``data.test_limit`` test images."""
    from hwnas.datasets import data_info, load_data, load_data_like, split_validation
    from supernet.checkpoint import checkpoint_path, read_checkpoint

    d = exp.config["data"]
    recorded = None
    if checkpoint_path(exp.supernet_dir).is_file():
        meta, _ = read_checkpoint(exp.supernet_dir)
        recorded = meta.get("data_info") if isinstance(meta.get("data_info"), dict) else None
    if recorded is not None:
        train = load_data_like(recorded, "train", d["train_limit"])
    else:  # read as the supernet's training reads the config's data set
        space_name, space_args = exp.space_spec()
        if space_name.endswith((".yaml", ".yml")):  # a space file fixes the input
            c, h, _ = exp.space.input_shape
            size: dict[str, Any] = {"resolution": h, "in_chans": c}
        else:
            size = {k: space_args.get(k) for k in ("resolution", "in_chans")}
        train = load_data(d["name"], "train", d["train_limit"], **size)
        recorded = data_info(train)
    test = load_data_like(recorded, "test", d["test_limit"])
    train = split_validation(train, d["val_fraction"], exp.seed)[0]
    key = {
        "info": recorded,
        "train_limit": d["train_limit"],
        "val_fraction": d["val_fraction"],
        "split_seed": exp.seed,
        "train_images": len(train),
    }
    return train, test, key


def _baseline_recipe(exp: Any) -> Any:
    """The reference recipe (:class:`nas.baselines.BaselineRecipe`) with the supernet's FP32 epochs
    (at least one) and the run's seed."""
    from nas.baselines import BaselineRecipe

    return BaselineRecipe(epochs=max(1, int(exp.config["supernet"]["epochs"])), seed=exp.seed)


def _fp32_target(exp: Any) -> Any:
    """The run's FP32 target (``target.fp32``), else the INT8 target at FP32 (as ``nas export`` times FP32)."""
    from hw_profiles import load_target

    name = exp.config["target"]["fp32"]
    return load_target(name) if name is not None else exp.target.replace(precision="fp32")


def run_baselines(exp: Any) -> list[dict[str, Any]]:
    """Train, quantize, evaluate and time each ``report.baselines`` network beside the exports.

    Each network (:mod:`nas.baselines`) is trained with the reference recipe for
    ``supernet.epochs`` epochs on the supernet's training images (:func:`_baseline_data`),
    exported to FP32 ONNX and quantized by onnxruntime (static PTQ: QDQ, per-channel s8 weights,
    u8 activations) on 512 of them; both files are scored on the run's test images and timed
    with the harness ``nas export`` verifies with (the target, and the FP32 target). Work goes to
    ``report/baselines/<name>/`` (:func:`nas.baselines.prepare_baseline`: an interrupted training
    resumes from its epoch checkpoint, finished steps are kept) and ends with ``baseline.json``,
    written last and atomically: a baseline with that record (of the same recipe) is not redone.
    Returns the records, in config order (each ``{name, int8_ms, fp32_ms, int8_acc, fp32_acc, ...}``:
    accuracies in percent, latencies in ms).
    """
    import torch

    from hw_profiles.sysinfo import cpu_count
    from nas.baselines import load_done, prepare_baseline, quant_recipe, train_recipe
    from nas.export.verify import measure_latency

    names = list(exp.config["report"]["baselines"])
    if not names:
        return []
    root = baselines_dir(exp)
    recipe = _baseline_recipe(exp)
    if recipe.epochs != exp.config["supernet"]["epochs"]:
        exp.log(
            f"[report] baselines: supernet.epochs is {exp.config['supernet']['epochs']}: training them for "
            f"{recipe.epochs} epoch(s)"
        )
    int8_target, fp32_target = exp.target, _fp32_target(exp)
    train, test, data_key = _baseline_data(exp)
    arrays: tuple[Any, ...] = ()
    records: list[dict[str, Any]] = []
    threads = exp.config["supernet"]["threads"] or cpu_count()
    before = torch.get_num_threads()
    bar = ProgressBar(exp.progress, "baselines", len(names), transient=True)
    try:
        for name in names:
            folder = root / name
            tkey = train_recipe(name, recipe, exp.config["data"]["train_limit"], data=data_key)
            key = {
                "train": tkey,
                "quant": quant_recipe(BASELINE_CALIB, "minmax", recipe.seed),
                "test_limit": exp.config["data"]["test_limit"],
                "test_images": len(test),
                "int8_target": int8_target.name,
                "fp32_target": fp32_target.name,
            }
            done = load_done(folder / BASELINE_RECORD, key)
            if done is not None:
                exp.log(f"[report] baseline {name}: finished earlier: kept")
                records.append({k: v for k, v in done.items() if k != "recipe"})
                bar.advance()
                continue
            bar.update(description=f"baseline {name}")
            exp.log(
                f"[report] baseline {name}: {recipe.epochs} epoch(s) on {len(train)} images, onnxruntime PTQ, "
                f"{len(test)} test images, timed on {int8_target.name} / {fp32_target.name}"
            )
            torch.set_num_threads(threads)
            if not arrays:
                arrays = (*train.arrays(), *test.arrays())
            train_x, train_y, test_x, test_y = arrays
            p = prepare_baseline(
                name,
                recipe,
                train_x,
                train_y,
                test_x[:64],
                folder,
                train_key=tkey,
                calib=BASELINE_CALIB,
                calib_method="minmax",
                num_classes=int(train.num_classes),
                test_x=test_x,
                test_y=test_y,
                threads=threads,
                log=lambda m: exp.log(f"[report] baseline {m}"),
            )
            int8 = measure_latency(p.int8_path, int8_target)
            fp32 = measure_latency(p.fp32_path, fp32_target)
            rec = {
                "name": name,
                "int8_ms": float(int8["median_ms"]),
                "fp32_ms": float(fp32["median_ms"]),
                "int8_acc": p.int8_acc,
                "fp32_acc": p.fp32_acc,
                "params": p.params,
                "epochs": recipe.epochs,
                "train_images": len(train),
                "test_images": len(test),
                "calibration_images": p.calibration_images,
                "train_seconds": p.train.get("seconds"),
                "int8_target": int8_target.name,
                "fp32_target": fp32_target.name,
                "folder": str(folder.relative_to(exp.root)),
                "int8_onnx": str(p.int8_path.relative_to(exp.root)),
                "fp32_onnx": str(p.fp32_path.relative_to(exp.root)),
            }
            _dump(folder / BASELINE_RECORD, {**rec, "recipe": key})
            exp.log(
                f"[report] baseline {name}: INT8 {rec['int8_acc']:.2f} % at {rec['int8_ms']:.4g} ms, "
                f"FP32 {rec['fp32_acc']:.2f} % at {rec['fp32_ms']:.4g} ms"
            )
            records.append(rec)
            bar.advance()
    finally:
        bar.close()
        torch.set_num_threads(before)
    return records


def run_report(exp: Any) -> dict[str, Any]:
    """Train and time the configured baselines (:func:`run_baselines`), then collect the run's
    results and write ``report/`` (markdown, JSON, plots)."""
    from nas.pipeline.collect import collect_report_data
    from nas.pipeline.report import write_report

    baselines = run_baselines(exp)
    data = collect_report_data(exp, baselines=baselines)
    files = write_report(data, exp.root / "report")
    return {
        "files": {k: str(Path(v).relative_to(exp.root)) for k, v in files.items()},
        "baselines": [b["name"] for b in baselines],
    }
