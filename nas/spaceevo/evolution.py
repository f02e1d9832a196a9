"""Aging evolution over candidate spaces (SpaceEvo's search), resumable and deterministic.

As in the paper's code: the population starts with the *uniform* candidates (one block type in
every stage, each window position) and is filled with random candidates; each cycle samples
``sample`` members without replacement, takes the best by Q-T score as the parent and makes two
children, one with one stage's block type changed and one with one stage's width window changed;
a child not evaluated before joins the population and the oldest member leaves. Full scale
(the paper): population 500, sample 125, 5000 cycles (:data:`PAPER_SCALE`).

Every ``checkpoint_every`` cycles (and at the end) the whole state — population, history,
curve and the random generator — is written atomically to a JSON file; running again with the
same settings resumes from it (with more ``cycles`` it continues). Scores are pure functions
of the candidate and the scorer's settings, so a resumed run ends exactly where an
uninterrupted one does.
"""

from __future__ import annotations

import collections
import json
import os
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from hwnas.io import atomic_write_text, json_safe
from hwnas.progress import ProgressBar
from nas.spaceevo.candidate import Candidate, HyperSpace, SpaceEvoError
from nas.spaceevo.score import QTScore, QTScorer

__all__ = ["PAPER_SCALE", "STATE_FORMAT", "AgingEvolution", "EvolutionConfig", "EvolutionResult", "Individual"]

PAPER_SCALE = {"population": 500, "sample": 125, "cycles": 5000}
"""The paper's full-scale settings (its code's ``--population_size``, ``--parent_size``, ``--cycles``)."""
STATE_FORMAT = "hwnas-spaceevo-state"
_STATE_VERSION = 1


@dataclass(frozen=True)
class EvolutionConfig:
    """Aging-evolution settings (defaults: the paper's full scale)."""

    population: int = PAPER_SCALE["population"]
    sample: int = PAPER_SCALE["sample"]
    cycles: int = PAPER_SCALE["cycles"]
    seed: int = 0
    checkpoint_every: int = 50

    def __post_init__(self) -> None:
        if self.population < 1:
            raise SpaceEvoError(f"population must be >= 1, got {self.population}")
        if not 1 <= self.sample <= self.population:
            raise SpaceEvoError(f"sample must be between 1 and the population ({self.population}), got {self.sample}")
        if self.cycles < 0:
            raise SpaceEvoError(f"cycles must be >= 0, got {self.cycles}")
        if self.checkpoint_every < 1:
            raise SpaceEvoError(f"checkpoint_every must be >= 1, got {self.checkpoint_every}")


@dataclass(frozen=True)
class Individual:
    """An evaluated candidate and the cycle it was born in (0: the initial population)."""

    candidate: Candidate
    score: QTScore
    born: int

    def to_dict(self) -> dict[str, Any]:
        return {
            "id": self.candidate.id,
            "candidate": self.candidate.to_dict(),
            "score": self.score.to_dict(),
            "born": self.born,
        }


@dataclass
class EvolutionResult:
    """The outcome: the best individual ever evaluated, the history (in evaluation order), the
    final population, and the curve (per cycle: best and mean population score, best so far)."""

    best: Individual
    history: list[Individual]
    population: list[Individual]
    curve: list[dict[str, float]]
    config: EvolutionConfig
    settings: dict[str, Any]
    resumed_from: int = 0
    top: list[Individual] = field(default_factory=list)

    def ranking(self, n: int = 10) -> list[Individual]:
        """The ``n`` best distinct candidates of the history."""
        seen, out = set(), []
        for ind in sorted(self.history, key=lambda i: -i.score.score):
            if ind.candidate.id not in seen:
                seen.add(ind.candidate.id)
                out.append(ind)
            if len(out) == n:
                break
        return out


class AgingEvolution:
    """Aging evolution of candidate spaces of ``hyper`` scored by ``scorer``.

    ``state_path``: the JSON state file (resumed from when it exists with the same settings);
    ``settings``: extra identity recorded in and checked against the state (LUT, target,
    quality file, ...); ``progress``: a rich progress bar on stderr; ``log``: status lines.
    """

    def __init__(
        self,
        hyper: HyperSpace,
        scorer: QTScorer,
        config: EvolutionConfig | None = None,
        *,
        state_path: str | os.PathLike[str] | None = None,
        settings: Mapping[str, Any] | None = None,
        progress: bool = False,
        log: Callable[[str], None] | None = None,
    ) -> None:
        self.hyper = hyper
        self.scorer = scorer
        self.config = config or EvolutionConfig()
        self.state_path = Path(state_path) if state_path is not None else None
        self.settings = {
            "hyperspace": hyper.name,
            "hyperspace_hash": hyper.hash,
            **{f"score_{k}": v for k, v in scorer.settings().items()},
            "population": self.config.population,
            "sample": self.config.sample,
            "seed": self.config.seed,
            **dict(settings or {}),
        }
        self.settings = json.loads(json.dumps(self.settings, default=str))
        self.progress = progress
        self.log = log or (lambda _msg: None)

    # -- state ---------------------------------------------------------------------------------
    def _evaluate(self, cand: Candidate, born: int) -> Individual:
        return Individual(cand, self.scorer.score(cand), born)

    def _save(
        self,
        cycle: int,
        rng: Any,
        population: collections.deque,
        history: list[Individual],
        curve: list[dict[str, float]],
    ) -> None:
        if self.state_path is None:
            return
        version, internal, gauss = rng.getstate()
        index = {id(ind): i for i, ind in enumerate(history)}
        state = {
            "format": STATE_FORMAT,
            "version": _STATE_VERSION,
            "settings": self.settings,
            "cycle": cycle,
            "cycles": self.config.cycles,
            "rng": [version, list(internal), gauss],
            "population": [index[id(ind)] for ind in population],
            "history": [ind.to_dict() for ind in history],
            "curve": curve,
        }
        atomic_write_text(self.state_path, json.dumps(json_safe(state), separators=(",", ":")) + "\n")

    def _load(self) -> tuple[int, Any, collections.deque, list[Individual], list[dict[str, float]]] | None:
        import random

        from hwnas.io import read_json_file

        p = self.state_path
        if p is None or not p.exists():
            return None
        data = read_json_file(p)
        if not isinstance(data, dict) or data.get("format") != STATE_FORMAT:
            raise SpaceEvoError(f"{p}: not an evolve-space state file")
        if data.get("version") != _STATE_VERSION:
            raise SpaceEvoError(f"{p}: state version {data.get('version')}, this hwnas reads {_STATE_VERSION}")
        saved = data.get("settings", {})
        for key in sorted(set(saved) | set(self.settings)):
            if saved.get(key) != self.settings.get(key):
                raise SpaceEvoError(
                    f"{p}: the saved evolution has {key} = {saved.get(key)!r}, this run "
                    f"{self.settings.get(key)!r}; use the same settings to resume, or another "
                    f"state file (or delete it) to start afresh"
                )
        try:
            history = []
            for rec in data["history"]:
                cand = self.hyper.candidate_from_dict(rec["candidate"])
                score = QTScore.from_dict(rec["score"])
                self.scorer._scores.setdefault(cand.id, score)
                history.append(Individual(cand, score, int(rec["born"])))
            population = collections.deque(history[i] for i in data["population"])
            version, internal, gauss = data["rng"]
            rng = random.Random()
            rng.setstate((version, tuple(internal), gauss))
            cycle = int(data["cycle"])
            curve = [dict(c) for c in data["curve"]]
        except (KeyError, TypeError, ValueError, IndexError) as exc:
            raise SpaceEvoError(f"{p}: malformed evolve-space state ({type(exc).__name__}: {exc})") from None
        return cycle, rng, population, history, curve

    # -- the search ------------------------------------------------------------------------------
    @staticmethod
    def _point(cycle: int, population: collections.deque, best_ever: float) -> dict[str, float]:
        scores = [ind.score.score for ind in population]
        return {"cycle": cycle, "best": max(scores), "mean": sum(scores) / len(scores), "best_ever": best_ever}

    def run(self) -> EvolutionResult:
        """Run (or resume) the evolution to ``config.cycles`` cycles and return the result."""
        import random

        cfg = self.config
        loaded = self._load()
        if loaded is not None:
            cycle, rng, population, history, curve = loaded
            resumed = cycle
            self.log(f"resuming from {self.state_path} at cycle {cycle} ({len(history)} candidates evaluated)")
        else:
            rng = random.Random(cfg.seed)
            population, history, curve = collections.deque(), [], []
            cycle = resumed = 0
        seen = {ind.candidate.id for ind in history}
        bar = ProgressBar(
            self.progress,
            "evolve-space",
            cfg.population + cfg.cycles,
            completed=min(len(history), cfg.population) + min(cycle, cfg.cycles),
            elapsed=True,
            transient=True,
        )
        try:
            if loaded is None:
                seeds = self.hyper.uniform_candidates()[: cfg.population]
                while len(population) < cfg.population:
                    cand = seeds[len(population)] if len(population) < len(seeds) else self.hyper.random_candidate(rng)
                    ind = self._evaluate(cand, 0)
                    population.append(ind)
                    history.append(ind)
                    seen.add(cand.id)
                    bar.advance(description=f"population {len(population)}/{cfg.population}")
                best_ever = max(i.score.score for i in history)
                curve.append(self._point(0, population, best_ever))
                self._save(0, rng, population, history, curve)
            best_ever = max(i.score.score for i in history)
            probe = population[0].candidate
            can_block, can_window = probe.can_mutate_block(), probe.can_mutate_window()
            if not (can_block or can_window) and cfg.cycles > cycle:
                raise SpaceEvoError(f"space {self.hyper.name!r} has a single candidate: nothing to evolve")
            while cycle < cfg.cycles:
                cycle += 1
                sample = rng.sample(list(population), cfg.sample)
                parent = max(sample, key=lambda i: i.score.score)
                for mutate, ok in ((Candidate.mutate_block, can_block), (Candidate.mutate_window, can_window)):
                    if not ok:
                        continue
                    child = mutate(parent.candidate, rng)
                    if child.id in seen:
                        continue
                    ind = self._evaluate(child, cycle)
                    seen.add(child.id)
                    history.append(ind)
                    population.append(ind)
                    population.popleft()
                    best_ever = max(best_ever, ind.score.score)
                curve.append(self._point(cycle, population, best_ever))
                bar.advance(description=f"cycle {cycle}/{cfg.cycles} best {best_ever:.4g}")
                if cycle % cfg.checkpoint_every == 0 or cycle == cfg.cycles:
                    self._save(cycle, rng, population, history, curve)
            if loaded is not None and cycle == resumed:
                self._save(cycle, rng, population, history, curve)
        finally:
            bar.close()
        best = max(history, key=lambda i: i.score.score)  # the first of equal scores
        return EvolutionResult(best, history, list(population), curve, cfg, self.settings, resumed)
