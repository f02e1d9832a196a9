"""The NAS-Bench-201 benchmark of the searchers, scored as ``anchors.py`` defines it.

Three modes, picked by the arguments:

* single objective (``latency=None``): mean ± std of the best ``metric`` after ``budget`` queries,
  RI over random search, and the median number of queries until the table's optimum is found;
* constrained (``latency`` and ``max_latency``): the best *feasible* value, the median queries
  until the constrained optimum, and how many runs' returned arch (``searcher.best()``) was
  infeasible (must be 0);
* multi-objective (``latency`` without ``max_latency``): the hypervolume of the queried points
  (maximise ``metric``, minimise ``latency``) as a fraction of the whole table's.

Every searcher sees the table only through :class:`~nas.search.evaluators.TabularEvaluator`'s
query of the archs it proposes; the whole-table views are used here for scoring only.
"""

from __future__ import annotations

import math
import time
from collections.abc import Callable, Mapping, Sequence
from typing import Any

import numpy as np

from hwnas.errors import ConfigError
from nas.search._registry import create_searcher, get_searcher_class
from nas.search.evaluators import TabularEvaluator
from nas.search.metrics import (
    best_after,
    hypervolume_2d,
    mean_std,
    median_or_none,
    queries_to_optimum,
    relative_improvement,
)
from nas.search.runner import run_search

__all__ = ["DEFAULT_SEARCHERS", "default_reference", "nb201_benchmark", "resolve_searchers"]

#: the searchers ``all`` runs in each mode (``darts`` is one-shot and has its own benchmark)
DEFAULT_SEARCHERS = {
    "single": ("random", "evolution", "mcts", "smbo", "tpe", "hhnas", "bo"),
    "constrained": ("random", "evolution", "mcts", "smbo", "tpe", "hhnas", "bo"),
    "multi": ("random", "evolution", "mcts", "smbo", "tpe-default", "tpe", "nsga2", "hhnas", "bo"),
}


def resolve_searchers(spec: str | Sequence[str], mode: str) -> list[str]:
    """``"all"``, a comma-separated string or a list of names; random comes first (RI needs it)."""
    names = (
        list(DEFAULT_SEARCHERS[mode])
        if spec == "all"
        else ([s.strip() for s in spec.split(",") if s.strip()] if isinstance(spec, str) else list(spec))
    )
    if not names:
        raise ConfigError("no searcher given")
    for n in names:
        get_searcher_class(n)  # raises UnknownNameError for a bad name
    out = ["random"] + [n for n in dict.fromkeys(names) if n != "random"]
    return out


def default_reference(metric: str, acc: np.ndarray, lat: np.ndarray) -> tuple[float, float]:
    """The issue's reference point: (90.0 % for CIFAR-10, else the metric's median; median latency)."""
    ref_acc = 90.0 if metric == "cifar10_test_acc" else float(np.median(acc))
    return ref_acc, float(np.median(lat))


def _takes(name: str, param: str) -> bool:
    import inspect

    try:
        return param in inspect.signature(get_searcher_class(name)).parameters
    except (TypeError, ValueError):
        return False


def _one_run(
    name: str,
    seed: int,
    *,
    mode: str,
    metric: str,
    latency: str | None,
    max_latency: float | None,
    budget: int,
    horizon: int,
    optimum: float | None,
    ref: tuple[float, float] | None,
    table: str | None,
    options: Mapping[str, Any],
    tell_ref: bool = True,
    true_hv: float = math.nan,
) -> dict[str, Any]:
    from spaces import create_space

    evaluator = TabularEvaluator(table, metrics=[metric] + ([latency] if latency else []))
    space = create_space("nb201")
    objectives = [metric] + ([f"{latency}:min"] if mode == "multi" else [])
    constraints = [f"{latency}<={max_latency}"] if mode == "constrained" else []
    options = dict(options)
    if mode == "multi" and tell_ref and ref is not None and "ref_point" not in options and _takes(name, "ref_point"):
        options["ref_point"] = list(ref)  # the user states the region of interest (as BoTorch requires)
    searcher = create_searcher(name, space, objectives=objectives, constraints=constraints, seed=seed, **options)
    at_budget: dict[str, Any] = {}

    def feasible(t: Any) -> bool:
        if mode != "constrained":
            return True
        assert latency is not None and max_latency is not None  # the constrained mode has both
        return bool(t.values[latency] <= max_latency)

    def callback(trial: Any) -> None:
        if searcher.n_trials >= budget and "best" not in at_budget:
            at_budget["best"] = searcher.best()

    reached: list[bool] = [False]

    def stop(trial: Any) -> bool:
        if optimum is not None and feasible(trial) and trial.values[metric] >= optimum - 1e-9:
            reached[0] = True
        # scoring needs the first `budget` queries, then only the first hit of the optimum
        return len(result_trials) >= budget and (reached[0] or mode == "multi")

    result_trials: list[Any] = []

    def record(trial: Any) -> None:
        result_trials.append(trial)
        callback(trial)

    start = time.perf_counter()
    result = run_search(searcher, evaluator, horizon, callback=record, stop=stop)
    seconds = time.perf_counter() - start
    trials = result.trials
    best_at_budget = at_budget.get("best", searcher.best() if len(trials) <= budget else None)
    vals = [t.values[metric] for t in trials]
    out: dict[str, Any] = {
        "searcher": name,
        "seed": seed,
        "queries": len(trials),
        "seconds": seconds,
        "exhausted": result.stopped == "exhausted",
    }
    if mode == "multi":
        assert ref is not None and latency is not None
        pts = [(t.values[metric], t.values[latency]) for t in trials[:budget]]
        out["hypervolume"] = hypervolume_2d(pts, ref)
        out["hypervolume_fraction"] = out["hypervolume"] / true_hv if true_hv else math.nan
        return out
    fvals = [v if feasible(t) else math.nan for v, t in zip(vals, trials)]
    out["best"] = best_after(fvals, budget)
    out["queries_to_optimum"] = queries_to_optimum([v if not math.isnan(v) else -math.inf for v in fvals], optimum)  # type: ignore[arg-type]
    if mode == "constrained":
        out["infeasible_returned"] = bool(best_at_budget is not None and not feasible(best_at_budget))
        out["no_feasible_found"] = best_at_budget is None
    return out


def nb201_benchmark(
    searchers: str | Sequence[str] = "all",
    *,
    budget: int = 100,
    seeds: int = 20,
    metric: str = "cifar10_test_acc",
    latency: str | None = None,
    max_latency: float | None = None,
    ref: tuple[float, float] | None = None,
    horizon: int | None = None,
    seed_start: int = 0,
    table: str | None = None,
    searcher_options: Mapping[str, Mapping[str, Any]] | None = None,
    jobs: int = 1,
    tell_ref: bool = True,
    progress: Callable[[dict[str, Any]], None] | None = None,
) -> dict[str, Any]:
    """Run ``searchers`` on the NAS-Bench-201 table over ``seeds`` seeds; returns a JSON-ready dict.

    ``horizon`` (>= ``budget``) lets single-objective runs continue past the budget, until the
    optimum is found or ``horizon`` queries, for the queries-to-optimum statistic (the best value
    is always taken after ``budget`` queries). ``searcher_options`` maps a searcher name to extra
    keyword arguments. In the multi-objective mode, searchers that take a ``ref_point`` (``bo``) are
    told the reference point unless ``tell_ref`` is false; the others ignore it.
    """
    if budget < 1 or seeds < 1:
        raise ConfigError(f"budget and seeds must be >= 1, got {budget} and {seeds}")
    if max_latency is not None and latency is None:
        raise ConfigError("--max-latency needs --latency")
    mode = "single" if latency is None else ("constrained" if max_latency is not None else "multi")
    if horizon is not None:
        if mode == "multi":
            raise ConfigError(
                "--horizon applies to single-objective and constrained runs (queries to the optimum); "
                "a multi-objective run (--latency without --max-latency) stops at the budget"
            )
        if horizon < budget:
            raise ConfigError(
                f"--horizon {horizon} is below --budget {budget}: the horizon continues runs past the "
                f"budget, so it must be at least the budget"
            )
    if max_latency is not None and not math.isfinite(float(max_latency)):
        raise ConfigError(f"--max-latency must be a finite number, got {max_latency}")
    if ref is not None and (len(tuple(ref)) != 2 or not all(math.isfinite(float(x)) for x in ref)):
        raise ConfigError(f"the reference point must be two finite numbers ACC,LAT, got {tuple(ref)}")
    names = resolve_searchers(searchers, mode)
    evaluator = TabularEvaluator(table, metrics=[metric] + ([latency] if latency else []))
    acc = evaluator.column(metric)
    lat = evaluator.column(latency) if latency else None
    optimum: float | None = None
    true_hv = math.nan
    if mode == "single":
        optimum = float(np.nanmax(acc))
    elif mode == "constrained":
        assert lat is not None
        ok = lat <= max_latency
        if not ok.any():
            raise ConfigError(f"no arch of the table has {latency} <= {max_latency}")
        optimum = float(np.nanmax(acc[ok]))
    else:
        assert lat is not None
        ref = (float(ref[0]), float(ref[1])) if ref is not None else default_reference(metric, acc, lat)
        true_hv = hypervolume_2d(zip(acc.tolist(), lat.tolist()), ref)
        if not true_hv > 0:
            raise ConfigError(
                f"reference point {ref} ({metric}, {latency}) is dominated by no arch of the "
                f"table (hypervolume 0): choose a lower accuracy or a higher latency"
            )
    horizon = max(budget, horizon or budget) if mode != "multi" else budget
    options = dict(searcher_options or {})
    jobs_list = [(n, seed_start + s) for n in names for s in range(seeds)]
    kwargs: dict[str, Any] = dict(  # the keyword arguments of _one_run shared by every run
        mode=mode,
        metric=metric,
        latency=latency,
        max_latency=max_latency,
        budget=budget,
        horizon=horizon,
        optimum=optimum,
        ref=ref,
        table=table,
        tell_ref=tell_ref,
        true_hv=true_hv,
    )
    runs: list[dict[str, Any]] = []
    if jobs > 1:
        from concurrent.futures import ProcessPoolExecutor

        with ProcessPoolExecutor(jobs) as pool:
            futs = [pool.submit(_one_run, n, s, options=options.get(n, {}), **kwargs) for n, s in jobs_list]
            for f in futs:
                runs.append(f.result())
                if progress:
                    progress(runs[-1])
    else:
        for n, s in jobs_list:
            runs.append(_one_run(n, s, options=options.get(n, {}), **kwargs))
            if progress:
                progress(runs[-1])

    results = []
    key = "hypervolume" if mode == "multi" else "best"
    random_mean = math.nan
    for n in names:
        rs = [r for r in runs if r["searcher"] == n]
        xs = [r[key] / true_hv if mode == "multi" else r[key] for r in rs]
        mean, std = mean_std(xs)
        if n == "random":
            random_mean = mean
        entry: dict[str, Any] = {"searcher": n, "mean": mean, "std": std, "ri": relative_improvement(mean, random_mean)}
        if mode == "multi":
            entry["hypervolume_fraction"] = mean
        else:
            q = [r["queries_to_optimum"] for r in rs]
            entry["median_queries_to_optimum"] = median_or_none(q)
            entry["optimum_found"] = sum(1 for x in q if x is not None and x <= budget)
        if mode == "constrained":
            entry["infeasible_returned"] = sum(1 for r in rs if r["infeasible_returned"])
            entry["no_feasible_found"] = sum(1 for r in rs if r["no_feasible_found"])
        entry["per_seed"] = [round(x, 6) for x in xs]
        if mode != "multi":
            entry["per_seed_queries_to_optimum"] = [r["queries_to_optimum"] for r in rs]
        entry["seconds"] = round(sum(r["seconds"] for r in rs), 2)
        results.append(entry)
    out: dict[str, Any] = {"metric": metric, "latency": latency, "budget": budget, "seeds": seeds, "mode": mode}
    if max_latency is not None:
        out["max_latency"] = max_latency
    if mode == "multi":
        out["reference_point"] = list(ref)  # type: ignore[arg-type]
        out["reference_told_to_searchers"] = tell_ref
        out["true_hypervolume"] = true_hv
    else:
        out["optimum"] = optimum
        out["horizon"] = horizon
    out["seed_start"] = seed_start
    exhausted = sum(1 for r in runs if r.get("exhausted"))
    if exhausted:  # a budget (or horizon) beyond the space: those runs evaluated every arch and stopped
        out["exhausted_runs"] = exhausted
        out["space_size"] = len(acc)
    out["results"] = results
    return out
