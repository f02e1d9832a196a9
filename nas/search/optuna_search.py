"""Optuna samplers driven by the DSL's define-by-run sampling (``space.suggest(trial)``).

* ``"tpe"``: :class:`optuna.samplers.TPESampler` with ``multivariate=True`` and ``group=True`` (the
  setting for conditional spaces: decisions that appear together are modelled jointly); with
  several objectives it is MO-TPE (alias ``"motpe"``);
* ``"nsga2"``: :class:`optuna.samplers.NSGAIISampler` (multi-objective);
* ``"tpe-default"``: out-of-the-box ``TPESampler(seed=...)`` (Optuna >= 5: multivariate for one
  objective, independent for several; the yardstick of ``anchors.py``).

Constraints are recorded on each trial before it is told (``Trial.set_constraint`` on Optuna >= 5,
the samplers' ``constraints_func`` before); values ``<= 0`` are feasible. The study lives in any Optuna storage (see
:mod:`nas.search.storage`); several processes may share it.
"""

from __future__ import annotations

import math
import warnings
from collections.abc import Mapping, Sequence
from typing import Any

from hwnas.errors import ConfigError, UnknownNameError
from nas.search._registry import register_searcher
from nas.search.base import Searcher, SearchError, Trial, Values
from spaces.arch import Arch

__all__ = ["OptunaSearcher", "constraint_values", "make_sampler", "record_constraints", "tell_study"]

CONSTRAINTS_ATTR = "hwnas:constraints"
VALUES_ATTR = "hwnas:values"
SAMPLERS = ("tpe", "tpe-default", "nsga2", "random")


def constraint_values(constraints: Sequence[Any], values: Mapping[str, float]) -> list[float]:
    """Optuna's convention: one number per constraint, ``<= 0`` when it holds."""
    out = []
    for c in constraints:
        v = float(values[c.name])
        parts = []
        if c.upper is not None:
            parts.append(v - float(c.upper))
        if c.lower is not None:
            parts.append(float(c.lower) - v)
        out.append(max(parts) if not math.isnan(v) else math.inf)
    return out


def _constraints_func(frozen: Any) -> Sequence[float]:
    return frozen.user_attrs.get(CONSTRAINTS_ATTR, [0.0])


def _native_constraints() -> bool:
    """Optuna >= 5 records constraints on the trial (``Trial.set_constraint``); older ones need
    the samplers' ``constraints_func``."""
    import optuna

    return hasattr(optuna.trial.Trial, "set_constraint")


def record_constraints(optuna_trial: Any, constraints: Sequence[Any], values: Mapping[str, float]) -> None:
    """Store the constraint values of a running Optuna trial before it is told."""
    cv = constraint_values(constraints, values)
    optuna_trial.set_user_attr(CONSTRAINTS_ATTR, cv)
    if _native_constraints():
        for c, v in zip(constraints, cv):
            optuna_trial.set_constraint(str(c), v if math.isfinite(v) else 1e30)


def tell_study(study: Any, optuna_trial: Any, trial: Trial, constraints: Sequence[Any] = ()) -> None:
    """Finish the running ``optuna_trial`` of ``study`` with the values of the told ``trial``: the values
    and constraint values are recorded on it, and it is told FAIL when an objective is NaN."""
    import optuna

    optuna_trial.set_user_attr(VALUES_ATTR, dict(trial.values))
    if constraints:
        record_constraints(optuna_trial, constraints, trial.values)
    if any(math.isnan(v) for v in trial.objectives):
        study.tell(optuna_trial, state=optuna.trial.TrialState.FAIL)
    else:
        study.tell(optuna_trial, list(trial.objectives))


def make_sampler(kind: str, seed: int | None, constrained: bool, **kwargs: Any) -> Any:
    """An Optuna sampler by name (``tpe``, ``tpe-default``, ``nsga2``, ``random``)."""
    import optuna

    cf = _constraints_func if constrained and not _native_constraints() else None
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", optuna.exceptions.ExperimentalWarning)
        if kind == "tpe":
            opts = {"multivariate": True, "group": True, **kwargs}
            return optuna.samplers.TPESampler(seed=seed, constraints_func=cf, **opts)
        if kind == "tpe-default":
            return optuna.samplers.TPESampler(seed=seed, constraints_func=cf, **kwargs)
        if kind == "nsga2":
            opts = {"population_size": 30, **kwargs}
            return optuna.samplers.NSGAIISampler(seed=seed, constraints_func=cf, **opts)
        if kind == "random":
            return optuna.samplers.RandomSampler(seed=seed)
    raise UnknownNameError(f"unknown Optuna sampler {kind!r}; known: {', '.join(SAMPLERS)}")


class OptunaSearcher(Searcher):
    """Ask / tell through an Optuna study whose sampler proposes the DSL's decisions.

    ``sampler`` is a name (see :func:`make_sampler`) or an Optuna sampler; ``storage`` is ``None``
    (in memory), a URL (``sqlite:///f.db``, ``postgresql://...``, ``journal:f.log``) or an
    Optuna storage; ``study_name`` joins an existing study (``load_if_exists``). Extra keyword
    arguments go to the sampler.
    """

    name = "optuna"

    def __init__(
        self,
        space: Any,
        objectives: Sequence[Any] | Any = ("accuracy",),
        constraints: Sequence[Any] = (),
        seed: int | None = None,
        *,
        sampler: Any = "tpe",
        storage: Any = None,
        study_name: str | None = None,
        load_if_exists: bool = True,
        **sampler_kwargs: Any,
    ) -> None:
        super().__init__(space, objectives, constraints, seed)
        import optuna

        from nas.search.storage import make_storage

        optuna.logging.set_verbosity(optuna.logging.WARNING)
        if isinstance(sampler, str):
            sampler = make_sampler(sampler, seed, bool(self.constraints), **sampler_kwargs)
        elif sampler_kwargs:
            raise ConfigError(f"sampler options {sorted(sampler_kwargs)} need a sampler name, not a sampler object")
        self.sampler = sampler
        self.storage = make_storage(storage)
        directions = [o.direction for o in self.objectives]
        try:
            self.study = optuna.create_study(
                storage=self.storage,
                sampler=sampler,
                study_name=study_name,
                directions=[optuna.study.StudyDirection[d.upper()] for d in directions],
                load_if_exists=load_if_exists,
            )
        except ValueError as exc:
            raise ConfigError(f"cannot open study {study_name!r}: {exc}") from None
        if [d.name.lower() for d in self.study.directions] != directions:
            raise ConfigError(
                f"study {self.study.study_name!r} optimises {[d.name.lower() for d in self.study.directions]}, "
                f"not {directions}"
            )
        self._pending: dict[Arch, list[Any]] = {}
        #: tell archs that were not asked to the study as new trials (off when the study already has them)
        self.forward_external = True

    def ask(self) -> Arch:
        return self.ask_trial()[0]

    def ask_trial(self) -> tuple[Arch, Any]:
        """The next arch and the Optuna trial that proposed it."""
        import optuna

        for _ in range(1000):
            trial = self.study.ask()
            try:
                arch = self.space.suggest(trial)
            except optuna.TrialPruned:  # the space's own constraints rejected the sample
                self.study.tell(trial, state=optuna.trial.TrialState.PRUNED)
                continue
            self._pending.setdefault(arch, []).append(trial)
            return arch, trial
        raise SearchError(
            f"space {self.space.name!r}: the sampler proposed 1000 archs violating the space's constraints"
        )

    def tell(self, arch: Mapping[str, Any], values: Values) -> Trial:
        return self._tell(arch, values, forward=self.forward_external)

    def _tell(self, arch: Mapping[str, Any], values: Values, *, forward: bool) -> Trial:
        arch = arch if isinstance(arch, Arch) else Arch(arch)
        was_told = self.is_told(arch)
        trial = super().tell(arch, values)
        queue = self._pending.get(arch)
        if queue:  # the Optuna trial that proposed it (a repeat is told the known values)
            tell_study(self.study, queue.pop(0), trial, self.constraints)
            if not queue:
                del self._pending[arch]
        elif forward and not was_told:
            self._add_to_study(trial)
        return trial

    def join_study(self, study_name: str) -> _OwnStudy:
        """A study worker asks and tells through this searcher's own study (it must be ``study_name``)."""
        if self.study.study_name != study_name:
            raise ConfigError("the Optuna searcher was opened on another study")
        return _OwnStudy(self)

    def _add_to_study(self, trial: Trial) -> None:
        import optuna

        if any(math.isnan(v) for v in trial.objectives):
            return
        attrs: dict[str, Any] = {VALUES_ATTR: dict(trial.values)}
        extra: dict[str, Any] = {}
        if self.constraints:
            cv = constraint_values(self.constraints, trial.values)
            attrs[CONSTRAINTS_ATTR] = cv
            if _native_constraints():
                extra["constraints"] = {str(c): (v if math.isfinite(v) else 1e30) for c, v in zip(self.constraints, cv)}
        dists: dict[str, optuna.distributions.BaseDistribution] = {
            d.path: optuna.distributions.CategoricalDistribution(list(d.options))
            for d in self.space.active_decisions(trial.arch)
        }
        self.study.add_trial(
            optuna.trial.create_trial(
                params=dict(trial.arch), distributions=dists, values=list(trial.objectives), user_attrs=attrs, **extra
            )
        )

    def fail(self, arch: Mapping[str, Any]) -> None:
        """Mark the pending Optuna trial of ``arch`` failed (an evaluation that did not finish)."""
        import optuna

        arch = arch if isinstance(arch, Arch) else Arch(arch)
        queue = self._pending.get(arch)
        if queue:
            self.study.tell(queue.pop(0), state=optuna.trial.TrialState.FAIL)
            if not queue:
                del self._pending[arch]

    def describe(self) -> dict[str, Any]:
        return {**super().describe(), "sampler": type(self.sampler).__name__, "study": self.study.study_name}


class _OwnStudy:
    """The :class:`~nas.search.base.StudyLink` of an Optuna searcher: trials are the ones its sampler
    proposes in its own study; the study's trials from other workers are told to the searcher
    without adding them to the study again."""

    def __init__(self, searcher: OptunaSearcher) -> None:
        self.searcher = searcher
        self.study = searcher.study
        self.storage = searcher.storage

    def ask(self) -> tuple[Arch, Any]:
        return self.searcher.ask_trial()

    def tell(self, arch: Arch, values: Mapping[str, float], trial: Any) -> None:
        self.searcher.tell(arch, values)  # tells the pending trial ``trial`` that proposed ``arch``

    def observe(self, arch: Arch, values: Mapping[str, float]) -> None:
        if not self.searcher.is_told(arch):
            self.searcher._tell(arch, values, forward=False)


def _factory(kind: str, cls_name: str, multi: bool = True) -> type[OptunaSearcher]:
    def __init__(
        self: OptunaSearcher,
        space: Any,
        objectives: Sequence[Any] | Any = ("accuracy",),
        constraints: Sequence[Any] = (),
        seed: int | None = None,
        **kwargs: Any,
    ) -> None:
        kwargs.setdefault("sampler", kind)
        OptunaSearcher.__init__(self, space, objectives, constraints, seed, **kwargs)

    return type(
        cls_name,
        (OptunaSearcher,),
        {
            "__init__": __init__,
            "name": kind,
            "multi_objective": multi,
            "__doc__": f"Optuna searcher with the {kind!r} sampler.",
        },
    )


TPESearcher = register_searcher("tpe", aliases=("motpe", "optuna-tpe"))(_factory("tpe", "TPESearcher"))
DefaultTPESearcher = register_searcher("tpe-default")(_factory("tpe-default", "DefaultTPESearcher"))
NSGA2Searcher = register_searcher("nsga2", aliases=("optuna-nsga2",))(_factory("nsga2", "NSGA2Searcher"))
