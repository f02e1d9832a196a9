"""``nas run``: one experiment, from a target and a data set to verified INT8 models and a report.

Stages (:data:`~nas.pipeline.config.STAGES`), each in its own folder of the run folder:

1. ``lut``: the target's latency LUT of the space (profiled here, or a given LUT copied in),
   plus its FP32 twin for the report's speed-up table;
2. ``evolve`` (optional, ``evolve.enabled``): SpaceEvo: block-wise distillation of the
   hyper-space's candidate stages (``space``) from a teacher supernet into
   ``evolve/quality.db``, aging evolution of candidate spaces by Q-T score, the winner written
   to ``evolve/space.yaml`` (with its report) and its calibration networks measured into the
   run's LUT; every later stage uses that space;
3. ``supernet``: the quantized-for-all supernet (trained, or a given checkpoint copied in);
4. ``search``: one search per latency budget (supernet validation accuracy × LUT latency),
   and the random subnets of the report's cloud, all through one evaluation cache;
5. ``export``: each chosen subnet exported to INT8 (the trained scales) and FP32 and verified on
   the target (test accuracy, measured vs predicted latency, budget);
6. ``report``: ``report.md``, ``report.json``, ``pareto.png`` and ``convergence.png``.

Every stage records its inputs and completion (:mod:`nas.pipeline.state`); a rerun skips
finished stages and resumes an interrupted one from its finished units (LUT blocks, training
steps, cached evaluations, exports). Each stage can be run alone: ``Experiment(cfg,
out).stage("search")`` (the stages before it must have finished).
"""

from __future__ import annotations

import math
import os
import random
import sys
import time
from collections.abc import Callable, Mapping
from pathlib import Path
from typing import Any

from hwnas.errors import ConfigError
from nas.pipeline.config import STAGES, RunConfigError, config_hash, load_config, parse_budget
from nas.pipeline.state import RunFolder

__all__ = ["Experiment", "RunResult", "run"]

CONFIG_NAME = "config.yaml"
LOG_NAME = "run.log"
EVOLVED_SPACE = "space.yaml"
"""The evolved space's file in ``<run>/evolve/``."""

ADDED_LATER: dict[tuple[str, str], Any] = {
    ("supernet", "schedule"): "cosine",
    ("export", "finetune_lr"): None,
    ("export", "finetune_distill"): None,
}
"""Configuration keys added after runs were recorded, with the value that means what runs did
before the key existed: at that value a stage's inputs leave the key out, so older records match."""


def _recorded(section: str, values: Mapping[str, Any]) -> dict[str, Any]:
    """``values`` of config ``section`` as a stage record holds them (:data:`ADDED_LATER` left out
    at their old-behaviour value)."""
    return {k: v for k, v in values.items() if (section, k) not in ADDED_LATER or v != ADDED_LATER[(section, k)]}


class RunResult(dict[str, Any]):
    """What :func:`run` returns: ``{"out", "report", "exports", "stages", "passed"}``."""


class Experiment:
    """One ``nas run`` experiment: a validated configuration and its run folder.

    ``config``: a YAML file, a mapping, or ``None`` to continue the run saved in ``out``.
    ``progress``: rich progress bars on stderr; ``log``: where status lines go (besides
    ``run.log``; default stderr).
    """

    def __init__(
        self,
        config: str | os.PathLike[str] | Mapping[str, Any] | None,
        out: str | os.PathLike[str],
        *,
        progress: bool = True,
        log: Callable[[str], None] | None = None,
    ) -> None:
        self.folder = RunFolder(out)
        self.root = self.folder.root
        saved = self.root / CONFIG_NAME
        if config is None:
            if not saved.is_file():
                raise ConfigError(f"{self.root}: no run to continue here ({CONFIG_NAME} missing); give a config file")
            config = saved
        self.config, self.where = load_config(config)
        self.progress = progress
        self._say = log or (lambda msg: print(msg, file=sys.stderr, flush=True))
        self._space: Any = None
        self._config_space: Any = None
        self._target: Any = None
        self._ranges: dict[str, tuple[float, float, bool, str]] = {}

    # -- small services -----------------------------------------------------------------------
    def log(self, msg: str) -> None:
        """A status line, to the console and appended to ``run.log``."""
        self._say(msg)
        try:
            self.root.mkdir(parents=True, exist_ok=True)
            with open(self.root / LOG_NAME, "a", encoding="utf-8") as fh:
                fh.write(f"[{time.strftime('%Y-%m-%d %H:%M:%S')}] {msg}\n")
        except OSError:
            pass

    @property
    def seed(self) -> int:
        return int(self.config["seed"])

    @property
    def lut_path(self) -> Path:
        return self.root / "lut" / "lut.db"

    @property
    def supernet_dir(self) -> Path:
        return self.root / "supernet"

    @property
    def evolve_enabled(self) -> bool:
        """Whether the ``evolve`` stage runs (``evolve.enabled``)."""
        return bool(self.config["evolve"]["enabled"])

    @property
    def evolve_dir(self) -> Path:
        return self.root / "evolve"

    @property
    def evolved_space_path(self) -> Path:
        """``evolve/space.yaml``: the evolved space (written by the ``evolve`` stage)."""
        return self.evolve_dir / EVOLVED_SPACE

    def space_spec(self) -> tuple[str, dict[str, Any]]:
        """``(space name or YAML file, space arguments)`` of the space the supernet trains and the
        searches search: the configured space, or with ``evolve.enabled`` the evolved space's file."""
        if self.evolve_enabled:
            if not self.evolved_space_path.is_file():
                raise ConfigError(
                    f"{self.root}: no evolved space yet ({self.evolved_space_path} missing): run stage evolve first"
                )
            return str(self.evolved_space_path), {}
        return self.config["space"]["name"], dict(self.config["space"]["args"])

    def train_config(self) -> Any:
        """The :class:`supernet.train.TrainConfig` of this experiment's supernet."""
        from nas.export.formats import scheme_for_target
        from supernet.train import TrainConfig

        s, d = self.config["supernet"], self.config["data"]
        space_name, space_args = self.space_spec()
        return TrainConfig(
            space=space_name,
            space_kwargs=space_args,
            data=d["name"],
            epochs=s["epochs"],
            qat_epochs=s["qat_epochs"],
            batch_size=s["batch_size"],
            lr=s["lr"],
            qat_lr=s["qat_lr"],
            weight_decay=s["weight_decay"],
            warmup_epochs=s["warmup_epochs"],
            schedule=s["schedule"],
            num_random=s["num_random"],
            seed=self.seed,
            eval_every=s["eval_every"] or 1_000_000,  # 0: the last epoch's test only
            scheme=scheme_for_target(self.target).name,
            train_limit=d["train_limit"],
            val_fraction=d["val_fraction"],
            threads=s["threads"],
        )

    @property
    def target(self) -> Any:
        if self._target is None:
            from hw_profiles import load_target

            self._target = load_target(self.config["target"]["name"])
        return self._target

    @property
    def space(self) -> Any:
        """The space searched: the configured one at the data's input shape and classes, or with
        ``evolve.enabled`` the evolved one (``evolve/space.yaml``, once the stage has written it)."""
        if not self.evolve_enabled:
            return self.config_space
        if self._space is None:
            from supernet.train import config_space

            self._space = config_space(self.train_config())
        return self._space

    @property
    def config_space(self) -> Any:
        """The space of the ``space`` section at the data's input shape and classes: the space
        searched, or with ``evolve.enabled`` the hyper-space. The ``lut`` stage profiles it."""
        if self._config_space is None:
            from supernet.train import TrainConfig, config_space

            c = self.config
            self._config_space = config_space(
                TrainConfig(
                    space=c["space"]["name"],
                    space_kwargs=dict(c["space"]["args"]),
                    data=c["data"]["name"],
                    train_limit=c["data"]["train_limit"],
                )
            )
        return self._config_space

    def hyperspace(self) -> Any:
        """The configured space as a :class:`nas.spaceevo.HyperSpace` (one-line error if it has no marked stages)."""
        from nas.spaceevo.candidate import HyperSpace, SpaceEvoError

        try:
            return HyperSpace(self.config_space)
        except SpaceEvoError as exc:
            raise RunConfigError(
                f"{self.where}: space.name: evolve.enabled needs a hyper-space ({exc}); use spaceevo"
            ) from None

    def space_hash(self) -> str:
        from spaces import space_hash

        return space_hash(self.space)

    def _space_key(self) -> Any:
        """What identifies the searched space in stage inputs, known before the evolve stage ran:
        its hash, or with ``evolve.enabled`` the hash of the evolve stage's inputs (which fix it)."""
        if self.evolve_enabled:
            return {"evolved": config_hash(self.stage_inputs("evolve"))}
        return self.space_hash()

    # -- stage inputs ---------------------------------------------------------------------------
    def stage_inputs(self, stage: str) -> dict[str, Any]:
        """The part of the configuration ``stage``'s results depend on (compared on reruns)."""
        c = self.config
        if stage == "lut":
            from spaces import space_hash

            lut = dict(c["lut"])
            if lut["path"] is not None:
                lut = {"path": lut["path"]}  # a reused LUT: how it was measured is not this run's business
            return {"space": space_hash(self.config_space), "target": c["target"], "lut": lut, "seed": self.seed}
        if stage == "evolve":
            if not self.evolve_enabled:
                return {"enabled": False}
            from spaces import space_hash

            e = dict(c["evolve"])
            budgets = e.pop("budgets")
            return {
                "hyperspace": space_hash(self.config_space),
                "evolve": e,
                "budgets": budgets if budgets is not None else c["search"]["latency_budgets"],
                "data": {k: c["data"][k] for k in ("name", "train_limit")},
                "target": c["target"]["name"],
                "lut_networks": c["lut"]["networks"],
                "seed": self.seed,
            }
        if stage == "supernet":
            sn = _recorded("supernet", c["supernet"])
            sn.pop("eval_every", None)  # when the test set is looked at does not change the weights
            if sn["checkpoint"] is not None:
                sn = {"checkpoint": sn["checkpoint"]}
            return {
                "space": self._space_key(),
                "data": {k: c["data"][k] for k in ("name", "train_limit", "val_fraction")},
                "supernet": sn,
                "seed": self.seed,
                "target": c["target"]["name"],
            }
        if stage == "search":
            return {"search": c["search"], "random_subnets": c["report"]["random_subnets"], "seed": self.seed}
        if stage == "export":
            return {
                "export": _recorded("export", c["export"]),
                "test_limit": c["data"]["test_limit"],
                "target": c["target"]["name"],
            }
        if stage == "report":
            return {"name": c["name"], "baselines": c["report"]["baselines"]}
        raise ConfigError(f"unknown stage {stage!r} (stages: {', '.join(STAGES)})")

    def check_config(self) -> None:
        """Refuse (one line) a configuration that differs from what finished stages were run with."""
        for stage in STAGES:
            self.folder.check_inputs(stage, self.stage_inputs(stage))

    def active_stages(self) -> tuple[str, ...]:
        """The stages this configuration runs (``evolve`` only with ``evolve.enabled``)."""
        return tuple(s for s in STAGES if s != "evolve" or self.evolve_enabled)

    def check_evolve_inputs(self) -> None:
        """Before any work, the evolve stage's cheap checks: the space is a hyper-space and the
        teacher checkpoint's data (input shape, classes) are the run's."""
        if not self.evolve_enabled:
            return
        rec = self.folder.record("evolve")
        if rec is not None and rec.get("finished"):
            return
        hyper = self.hyperspace()
        from supernet.checkpoint import checkpoint_path, read_checkpoint

        teacher = self.config["evolve"]["teacher"]
        path = checkpoint_path(teacher)
        if not path.is_file():
            raise RunConfigError(f"{self.where}: evolve.teacher: {teacher}: no supernet checkpoint there")
        meta, _ = read_checkpoint(path)
        info: Any = meta.get("data_info")
        try:
            shape, classes = tuple(int(v) for v in info["input_shape"]), int(info["num_classes"])
        except (KeyError, TypeError, ValueError):
            raise RunConfigError(
                f"{self.where}: evolve.teacher: {path}: the checkpoint records no data set; it cannot teach"
            ) from None
        want = tuple(int(v) for v in hyper.space.input_shape)
        if shape != want or classes != hyper.space.num_classes:
            raise RunConfigError(
                f"{self.where}: evolve.teacher: {path} was trained on {'x'.join(map(str, shape))} inputs and "
                f"{classes} classes, the hyper-space {hyper.name!r} on this data takes {'x'.join(map(str, want))} "
                f"and {hyper.space.num_classes}: train the teacher on the run's data"
            )

    # -- running ------------------------------------------------------------------------------
    def run(self, from_stage: str | None = None, until: str | None = None) -> RunResult:
        """Run every stage (from ``from_stage``, redoing it and those after it; up to ``until``)."""
        from hwnas.io import atomic_write_text

        for name, opt in ((from_stage, "--from"), (until, "--until")):
            if name is not None and name not in STAGES:
                raise ConfigError(f"{opt} {name!r}: unknown stage (stages: {', '.join(STAGES)})")
        self.root.mkdir(parents=True, exist_ok=True)
        if from_stage is not None:
            removed = self.folder.reset(from_stage)
            if removed:
                self.log(f"--from {from_stage}: removed the results of {', '.join(removed)}")
        self.check_config()
        self.check_evolve_inputs()
        import yaml

        atomic_write_text(
            self.root / CONFIG_NAME,
            f"# nas run: the resolved configuration of this run ({self.where})\n"
            + yaml.safe_dump(self.config, sort_keys=False),
        )
        last = STAGES.index(until) if until is not None else len(STAGES) - 1
        summaries = {}
        for stage in STAGES[: last + 1]:
            if stage not in self.active_stages():
                continue
            summaries[stage] = self.stage(stage)
            if stage == "lut":  # a budget no arch meets is refused before any training
                self.resolve_budgets(self.config["search"]["latency_budgets"], "search.latency_budgets")
                if self.evolve_enabled:
                    self.evolve_budgets()
                else:
                    self.budgets()
            if stage == "evolve":
                self.budgets()
        result = RunResult(out=str(self.root), stages=summaries)
        if "export" in summaries:
            result["exports"] = summaries["export"].get("exports", [])
            result["passed"] = all(e.get("passed") for e in result["exports"])
        if "report" in summaries:
            result["report"] = summaries["report"].get("files", {})
        return result

    def stage(self, stage: str) -> dict[str, Any]:
        """Run one stage (skipped when finished with the same inputs); returns its summary."""
        from nas.pipeline import stages

        if stage not in STAGES:
            raise ConfigError(f"unknown stage {stage!r} (stages: {', '.join(STAGES)})")
        inputs = self.stage_inputs(stage)
        rec = self.folder.check_inputs(stage, inputs)
        if stage not in self.active_stages():
            return {"enabled": False}
        if rec is not None and rec.get("finished"):
            self.log(f"[{stage}] finished earlier: kept")
            return dict(rec.get("summary") or {})
        index = STAGES.index(stage)
        for before in STAGES[:index]:
            if before not in self.active_stages():
                continue
            prev = self.folder.record(before)
            if prev is None or not prev.get("finished"):
                raise ConfigError(f"{self.root}: stage {stage} needs stage {before} finished first")
        self.log(f"[{stage}] {'resuming' if rec is not None else 'starting'}")
        if rec is not None:  # a killed run may have left atomic-write temporaries (".NAME.XXXX.tmp") behind
            for tmp in self.folder.stage_dir(stage).rglob(".*.tmp"):
                tmp.unlink(missing_ok=True)
        self.folder.write_record(stage, inputs, finished=False)
        start = time.perf_counter()
        summary = getattr(stages, f"run_{stage}")(self)
        seconds = time.perf_counter() - start
        self.folder.write_record(stage, inputs, finished=True, summary=summary, seconds=seconds)
        self.log(f"[{stage}] done in {seconds:.1f} s")
        return summary

    # -- budgets ------------------------------------------------------------------------------
    def latency_evaluator(self, fp32: bool = False, space: Any = None) -> Any:
        """The LUT's latency of ``space`` (default: the searched space) on the target (or its FP32 twin)."""
        from nas.search.evaluators import LutLatencyEvaluator

        name = self.config["target"]["fp32" if fp32 else "name"]
        return LutLatencyEvaluator.from_lut(self.lut_path, name, self.space if space is None else space)

    def latency_range(self, space: Any) -> tuple[float, float, bool, str]:
        """``(fastest ms, largest subnet ms, exact, target)`` of ``space`` by the LUT (cached per space)."""
        from spaces import space_hash
        from supernet import largest_arch, smallest_arch

        key = space_hash(space)
        if key not in self._ranges:
            lat = self.latency_evaluator(space=space)
            _, fastest, exact = lat.fastest(candidates=[smallest_arch(space)])
            largest = float(lat.evaluate(largest_arch(space))["latency_ms"])
            self._ranges[key] = (float(fastest), largest, bool(exact), str(lat.target))
        fastest, largest, exact, target = self._ranges[key]
        return fastest, largest, exact, target

    def resolve_budgets(self, specs: list[Any], key: str) -> list[float]:
        """``specs`` (ms or ``"P%"``) in ms: ``"P%"`` of the way from the fastest arch to the largest
        subnet of the configured space (with ``evolve.enabled``: the hyper-space); a budget no arch of
        that space meets is refused in one line naming ``key``."""
        space = self.config_space
        fastest, largest, exact, target = self.latency_range(space)
        out = []
        for i, spec in enumerate(specs):
            ms = parse_budget(spec).resolve(fastest, largest)
            if ms < fastest - 1e-12:
                how = "over every arch of the space" if exact else "of the fastest arch found"
                raise RunConfigError(
                    f"{self.where}: {key} item {i} ({spec}): no arch of space {space.name!r} meets {ms:.4g} ms "
                    f"on {target}: the minimum {how} is {fastest:.4g} ms"
                )
            out.append(ms)
        return out

    def evolve_budgets(self) -> list[float]:
        """The Q-T score's latency budgets in ms (``evolve.budgets``, else the search budgets), distinct."""
        e = self.config["evolve"]
        key = "evolve.budgets" if e["budgets"] is not None else "search.latency_budgets"
        specs = e["budgets"] if e["budgets"] is not None else self.config["search"]["latency_budgets"]
        return list(dict.fromkeys(math.ceil(ms * 1e6) / 1e6 for ms in self.resolve_budgets(specs, key)))

    def budgets(self) -> list[dict[str, Any]]:
        """The latency budgets in ms on this target (``"P%"`` resolved against the LUT), each
        ``{"name": "b0", "spec", "budget_ms", "search_ms"}`` (``search_ms``: the budget less the
        ``search.latency_margin`` guard band, the constraint the searcher gets); a budget below the
        fastest arch is refused. With ``evolve.enabled``, ``"P%"`` is of the hyper-space's range
        (the budgets the evolution scored under) and the evolved space must meet each budget."""
        specs = self.config["search"]["latency_budgets"]
        resolved = self.resolve_budgets(specs, "search.latency_budgets")
        fastest = self.latency_range(self.config_space)[0]
        if self.evolve_enabled:
            fastest, _, exact, target = self.latency_range(self.space)
            for i, (spec, ms) in enumerate(zip(specs, resolved)):
                if ms < fastest - 1e-12:
                    how = "over every arch of the space" if exact else "of the fastest arch found"
                    raise RunConfigError(
                        f"{self.where}: search.latency_budgets item {i} ({spec}): no arch of the evolved space "
                        f"{self.space.name!r} meets {ms:.4g} ms on {target}: the minimum {how} is {fastest:.4g} ms "
                        f"(raise the budget, or list it in evolve.budgets and rerun with --from evolve)"
                    )
        out = []
        for i, (spec, ms) in enumerate(zip(specs, resolved)):
            margin = self.config["search"]["latency_margin"]
            search_ms = max(ms * (1.0 - margin), fastest)  # the guard band never rules out every arch
            # rounded up, so that rounding never puts the fastest arch over a budget it meets
            out.append(
                {
                    "name": f"b{i}",
                    "spec": spec,
                    "budget_ms": math.ceil(ms * 1e6) / 1e6,
                    "search_ms": math.ceil(search_ms * 1e6) / 1e6,
                }
            )
        return out

    def random_archs(self, n: int) -> list[Any]:
        """``n`` distinct seeded random archs of the space (the report's cloud)."""
        rng = random.Random(f"{self.seed}:cloud")
        seen: dict[str, Any] = {}
        for _ in range(50 * max(n, 1)):
            if len(seen) >= n:
                break
            a = self.space.sample(rng.randrange(2**31))
            seen.setdefault(a.id, a)
        return list(seen.values())


def run(
    config: str | os.PathLike[str] | Mapping[str, Any] | None,
    out: str | os.PathLike[str],
    *,
    from_stage: str | None = None,
    until: str | None = None,
    progress: bool = True,
    log: Callable[[str], None] | None = None,
) -> RunResult:
    """Run (or resume) the experiment of ``config`` in the folder ``out``; see :class:`Experiment`."""
    return Experiment(config, out, progress=progress, log=log).run(from_stage=from_stage, until=until)
