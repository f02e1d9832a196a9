"""The searcher interface: ask / tell in Optuna's style, single- and multi-objective, with constraints.

A :class:`Searcher` proposes architectures of a :class:`~spaces.Space` with :meth:`Searcher.ask`
and learns from their measured values with :meth:`Searcher.tell`. Values are a mapping from
metric name to number (an evaluator's output); the searcher reads its :class:`Objective` s and
:class:`Constraint` s from it by name. :meth:`Searcher.best` and :meth:`Searcher.pareto_front`
only ever return *feasible* trials.

Convention shared by every searcher and the runner: a query is the first evaluation of a
distinct arch; telling an arch that was told before costs nothing and does not add a trial.
"""

from __future__ import annotations

import math
import re
from abc import ABC, abstractmethod
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any, ClassVar, Protocol

from hwnas.errors import ConfigError, HwnasError
from hwnas.seeding import make_rng
from spaces.arch import Arch

if TYPE_CHECKING:  # pragma: no cover
    from spaces import Space

__all__ = [
    "Constraint",
    "Objective",
    "SearchError",
    "SearchExhausted",
    "Searcher",
    "StudyLink",
    "Trial",
    "dominates",
    "non_dominated",
]


class SearchError(HwnasError):
    """A searcher was used wrongly or cannot continue."""


class SearchExhausted(SearchError):
    """Raised by :meth:`Searcher.ask` when the searcher has nothing more to propose."""


_DIRECTIONS = {"max": "maximize", "maximize": "maximize", "min": "minimize", "minimize": "minimize"}


@dataclass(frozen=True)
class Objective:
    """A metric to optimise, by name, in a direction (``"maximize"`` or ``"minimize"``)."""

    name: str
    direction: str = "maximize"

    def __post_init__(self) -> None:
        if not self.name:
            raise ConfigError("an objective needs a metric name")
        d = _DIRECTIONS.get(str(self.direction).lower())
        if d is None:
            raise ConfigError(
                f"objective {self.name!r}: direction must be maximize or minimize, got {self.direction!r}"
            )
        object.__setattr__(self, "direction", d)

    @property
    def sign(self) -> float:
        """+1 for maximise, -1 for minimise: ``sign * value`` is always to be maximised."""
        return 1.0 if self.direction == "maximize" else -1.0

    @classmethod
    def parse(cls, spec: Objective | str | tuple[str, str]) -> Objective:
        """``"acc"`` (maximise), ``"acc:max"``, ``"latency:min"``, ``("acc", "maximize")`` or an Objective."""
        if isinstance(spec, Objective):
            return spec
        if isinstance(spec, tuple):
            return cls(*spec)
        if not isinstance(spec, str):
            raise ConfigError(f"cannot read an objective from {spec!r}")
        name, sep, direction = spec.partition(":")
        return cls(name.strip(), direction.strip() if sep else "maximize")


_CONSTRAINT_RE = re.compile(r"^\s*([^<>=\s]+)\s*(<=|>=)\s*([-+0-9.eE]+)\s*$")


@dataclass(frozen=True)
class Constraint:
    """A bound on a metric: ``lower <= values[name] <= upper`` (either bound may be omitted)."""

    name: str
    upper: float | None = None
    lower: float | None = None

    def __post_init__(self) -> None:
        if self.upper is None and self.lower is None:
            raise ConfigError(f"constraint on {self.name!r} needs an upper or a lower bound")
        for bound in (self.upper, self.lower):
            if bound is not None and not math.isfinite(float(bound)):
                raise ConfigError(f"constraint on {self.name!r}: bound must be a finite number, got {bound!r}")

    def violation(self, values: Mapping[str, float]) -> float:
        """How far ``values`` is from satisfying the constraint (0 when it holds)."""
        if self.name not in values:
            raise ConfigError(f"constraint metric {self.name!r} is missing from the values {sorted(values)}")
        v = float(values[self.name])
        if math.isnan(v):
            return math.inf
        out = 0.0
        if self.upper is not None:
            out += max(0.0, v - float(self.upper))
        if self.lower is not None:
            out += max(0.0, float(self.lower) - v)
        return out

    def slack(self, value: float) -> float:
        """Signed distance to the bound, positive when satisfied (the tightest bound counts)."""
        out = math.inf
        if self.upper is not None:
            out = min(out, float(self.upper) - value)
        if self.lower is not None:
            out = min(out, value - float(self.lower))
        return out

    @classmethod
    def parse(cls, spec: Constraint | str) -> Constraint:
        """``"pixel3_latency_ms<=10"`` or ``"acc>=90"`` (or a Constraint)."""
        if isinstance(spec, Constraint):
            return spec
        m = _CONSTRAINT_RE.match(str(spec))
        if not m:
            raise ConfigError(f"cannot read a constraint from {spec!r} (write METRIC<=VALUE or METRIC>=VALUE)")
        name, op, value = m.group(1), m.group(2), float(m.group(3))
        return cls(name, upper=value) if op == "<=" else cls(name, lower=value)

    def __str__(self) -> str:
        parts = []
        if self.lower is not None:
            parts.append(f"{self.name}>={self.lower:g}")
        if self.upper is not None:
            parts.append(f"{self.name}<={self.upper:g}")
        return " and ".join(parts)


@dataclass(frozen=True)
class Trial:
    """One told arch: its number (order of telling, from 0), all values and feasibility."""

    number: int
    arch: Arch
    values: Mapping[str, float]
    objectives: tuple[float, ...]
    violation: float = 0.0
    info: Mapping[str, Any] = field(default_factory=dict)

    @property
    def feasible(self) -> bool:
        return self.violation <= 0.0

    @property
    def value(self) -> float:
        """The first objective's value."""
        return self.objectives[0]


def dominates(a: Sequence[float], b: Sequence[float]) -> bool:
    """``a`` Pareto-dominates ``b`` (both already oriented so that larger is better)."""
    return all(x >= y for x, y in zip(a, b)) and any(x > y for x, y in zip(a, b))


def non_dominated(points: Sequence[Sequence[float]]) -> list[int]:
    """Indices of the non-dominated points (larger is better in every coordinate)."""
    out = []
    for i, p in enumerate(points):
        if not any(dominates(q, p) for j, q in enumerate(points) if j != i):
            out.append(i)
    return out


Values = float | int | Sequence[float] | Mapping[str, float]


class StudyLink(Protocol):
    """How a study worker (:class:`nas.search.study_worker.StudyWorker`) asks and tells the
    trials of a shared Optuna study through a searcher (see :meth:`Searcher.join_study`)."""

    #: the ``optuna.Study`` the worker records trials in
    study: Any
    #: its storage (heartbeats are recorded through it); ``None`` in memory
    storage: Any

    def ask(self) -> tuple[Arch, Any]:
        """The next arch and the study's RUNNING ``optuna.Trial`` that holds it."""
        ...

    def tell(self, arch: Arch, values: Mapping[str, float], trial: Any) -> None:
        """Tell the searcher ``arch``'s values and finish ``trial`` in the study with them."""
        ...

    def observe(self, arch: Arch, values: Mapping[str, float]) -> None:
        """Tell the searcher a finished trial of the study that it did not ask (another worker's)."""
        ...


class Searcher(ABC):
    """Base class of every searcher.

    Subclasses implement :meth:`ask` and usually :meth:`_after_tell` (learning from a new
    trial). ``objectives`` name the metrics to optimise (``"acc"`` or ``"latency:min"``);
    ``constraints`` bound metrics (``"latency<=10"``); ``seed`` makes the searcher
    deterministic. Constraint values are only known after a query, like objectives.
    """

    #: registry name (set by :func:`~nas.search.register_searcher`)
    name: ClassVar[str] = "searcher"
    #: whether the searcher optimises several objectives natively
    multi_objective: ClassVar[bool] = True

    def __init__(
        self,
        space: Space,
        objectives: Sequence[Objective | str] | Objective | str = ("accuracy",),
        constraints: Sequence[Constraint | str] = (),
        seed: int | None = None,
    ) -> None:
        if isinstance(objectives, (str, Objective)):
            objectives = (objectives,)
        self.space = space
        self.objectives: tuple[Objective, ...] = tuple(Objective.parse(o) for o in objectives)
        if not self.objectives:
            raise ConfigError("a searcher needs at least one objective")
        names = [o.name for o in self.objectives]
        if len(set(names)) != len(names):
            raise ConfigError(f"objectives name a metric twice: {names}")
        if len(self.objectives) > 1 and not self.multi_objective:
            raise ConfigError(f"searcher {self.name!r} is single-objective; got {len(self.objectives)} objectives")
        self.constraints: tuple[Constraint, ...] = tuple(Constraint.parse(c) for c in constraints)
        self.seed = seed
        self.rng = make_rng(seed)
        self.history: list[Trial] = []
        self._told: dict[Arch, Trial] = {}

    # -- the interface ---------------------------------------------------------------
    @abstractmethod
    def ask(self) -> Arch:
        """Propose the next arch to evaluate (a valid arch of the space)."""

    def tell(self, arch: Mapping[str, Any], values: Values) -> Trial:
        """Report the measured ``values`` of ``arch``.

        ``values`` is a mapping of metric name to number (extra metrics are kept), a number
        (the single objective) or a sequence (the objectives, then the constraint metrics,
        in order). Telling an arch told before returns the earlier trial and changes nothing.
        """
        arch = arch if isinstance(arch, Arch) else Arch(arch)
        known = self._told.get(arch)
        if known is not None:
            self._after_repeat(known)
            return known
        arch = self.space.validate(arch)
        vals = self._normalise(values)
        objectives = tuple(float(vals[o.name]) for o in self.objectives)
        violation = sum(c.violation(vals) for c in self.constraints)
        if any(math.isnan(v) for v in objectives):
            violation = math.inf  # a failed evaluation is never a result
        trial = Trial(len(self.history), arch, vals, objectives, violation)
        self.history.append(trial)
        self._told[arch] = trial
        self._after_tell(trial)
        return trial

    def _after_tell(self, trial: Trial) -> None:
        """Learn from a newly told trial (default: nothing)."""

    def join_study(self, study_name: str) -> StudyLink | None:
        """Hook of :class:`~nas.search.study_worker.StudyWorker`: a searcher that keeps its own Optuna
        study returns the :class:`StudyLink` through which a worker asks and tells the trials of
        ``study_name``; ``None`` (the default) has the worker open the study and replay this
        searcher's proposals into it."""
        return None

    def _after_repeat(self, trial: Trial) -> None:
        """Called when an already-told arch is told again (default: nothing)."""

    # -- results ---------------------------------------------------------------------
    @property
    def n_trials(self) -> int:
        return len(self.history)

    def is_told(self, arch: Mapping[str, Any]) -> bool:
        return (arch if isinstance(arch, Arch) else Arch(arch)) in self._told

    def best(self) -> Trial | None:
        """The best feasible trial by the first objective (``None`` before any feasible one)."""
        feasible = [t for t in self.history if t.feasible]
        if not feasible:
            return None
        sign = self.objectives[0].sign
        return max(feasible, key=lambda t: (sign * t.objectives[0], -t.number))

    def pareto_front(self) -> list[Trial]:
        """The feasible trials no other feasible trial dominates, in telling order."""
        feasible = [t for t in self.history if t.feasible]
        pts = [self.oriented(t) for t in feasible]
        return [feasible[i] for i in non_dominated(pts)]

    # -- helpers for subclasses (selection: :mod:`nas.search.selection`) --------------------
    def oriented(self, trial: Trial) -> tuple[float, ...]:
        """The trial's objectives, each signed so that larger is better."""
        return tuple(o.sign * v for o, v in zip(self.objectives, trial.objectives))

    def sample_unseen(self, tries: int = 50) -> Arch:
        """A random arch not told yet (a told one after ``tries`` failed attempts)."""
        arch = self.space.sample(self.rng)
        for _ in range(tries):
            if arch not in self._told:
                break
            arch = self.space.sample(self.rng)
        return arch

    def _normalise(self, values: Values) -> dict[str, float]:
        names = [o.name for o in self.objectives] + [
            c.name for c in self.constraints if c.name not in {o.name for o in self.objectives}
        ]
        if isinstance(values, Mapping):
            out = {str(k): float(v) for k, v in values.items()}
        elif isinstance(values, (int, float)) and not isinstance(values, bool):
            if len(names) != 1:
                raise ConfigError(f"one number given but {len(names)} metrics are needed: {names}")
            out = {names[0]: float(values)}
        elif isinstance(values, Sequence) and not isinstance(values, str):
            if len(values) != len(names):
                raise ConfigError(f"{len(values)} values given for the metrics {names}")
            out = {n: float(v) for n, v in zip(names, values)}
        else:
            raise ConfigError(f"values must be a number, a sequence or a mapping, got {type(values).__name__}")
        missing = [n for n in names if n not in out]
        if missing:
            raise ConfigError(f"values lack the metric(s) {missing} (got {sorted(out)})")
        return out

    def describe(self) -> dict[str, Any]:
        """A JSON-ready description of the searcher's configuration."""
        return {
            "searcher": self.name,
            "objectives": [f"{o.name}:{o.direction[:3]}" for o in self.objectives],
            "constraints": [str(c) for c in self.constraints],
            "seed": self.seed,
        }

    def __repr__(self) -> str:
        return f"{type(self).__name__}(space={self.space.name!r}, trials={self.n_trials})"
