"""Every registered searcher: works on every space, deterministic, honest budget, constraints."""

from __future__ import annotations

import math

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from nas.search import create_searcher, list_searchers, run_search

QUERY_SEARCHERS = [n for n in list_searchers() if n != "darts"]
# keep the model-based searchers cheap in tests
FAST = {"bo": {"pool_limit": 0, "n_random": 40, "n_mutants": 4, "top_k": 3}, "smbo": {"n_candidates": 20}}


def make(name, space, **kw):
    return create_searcher(name, space, **{**FAST.get(name, {}), **kw})


@pytest.mark.parametrize("name", QUERY_SEARCHERS)
def test_nb201_run_is_honest_and_deterministic(name, nb201_space, table):
    runs = []
    for _ in range(2):
        s = make(name, nb201_space, objectives=["cifar10_test_acc"], seed=3)
        res = run_search(s, table, 25)
        runs.append(res)
        archs = [t.arch for t in res.trials]
        assert len(archs) == 25 and len(set(archs)) == 25  # 25 distinct queries
        assert all(nb201_space.contains(a) for a in archs)
        assert res.asks >= 25
        best = max(res.trials, key=lambda t: t.values["cifar10_test_acc"])
        assert res.best.values["cifar10_test_acc"] == best.values["cifar10_test_acc"]
    assert [t.arch for t in runs[0].trials] == [t.arch for t in runs[1].trials]


@pytest.mark.parametrize("space_name", ["mobilenet", "resnet", "hhnas", "spaceevo"])
@pytest.mark.parametrize("name", QUERY_SEARCHERS)
def test_every_searcher_on_every_space(name, space_name, synthetic):
    from spaces import create_space

    space = create_space(space_name)
    s = make(name, space, objectives=["score"], seed=0)
    res = run_search(s, synthetic(space), 12)
    assert len(res.trials) == 12
    assert all(space.contains(t.arch) for t in res.trials)


@pytest.mark.parametrize("name", QUERY_SEARCHERS)
def test_multi_objective_front(name, nb201_space, table):
    s = make(name, nb201_space, objectives=["cifar10_test_acc", "pixel3_latency_ms:min"], seed=1)
    res = run_search(s, table, 30)
    front = res.front
    assert front, "a non-empty Pareto front"
    pts = [(t.values["cifar10_test_acc"], -t.values["pixel3_latency_ms"]) for t in res.trials]
    for f in front:  # nothing queried dominates a front member
        fa, fl = f.values["cifar10_test_acc"], -f.values["pixel3_latency_ms"]
        assert not any(a >= fa and lat >= fl and (a > fa or lat > fl) for a, lat in pts)


@pytest.mark.parametrize("name", QUERY_SEARCHERS)
def test_constrained_never_returns_infeasible(name, nb201_space, table):
    s = make(name, nb201_space, objectives=["cifar10_test_acc"], constraints=["pixel3_latency_ms<=6"], seed=2)

    def check(trial):
        b = s.best()
        assert b is None or b.values["pixel3_latency_ms"] <= 6
        assert all(t.values["pixel3_latency_ms"] <= 6 for t in s.pareto_front())

    res = run_search(s, table, 30, callback=check)
    assert res.best is None or res.best.values["pixel3_latency_ms"] <= 6


@settings(max_examples=12, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(
    name=st.sampled_from(["random", "evolution", "mcts", "hhnas", "tpe", "bo"]),
    bound=st.floats(min_value=1.0, max_value=30.0),
    seed=st.integers(0, 1000),
)
def test_property_constrained_best_is_feasible(name, bound, seed, nb201_space, table):
    s = make(
        name,
        nb201_space,
        objectives=["cifar10_test_acc", "pixel3_latency_ms:min"] if seed % 2 else ["cifar10_test_acc"],
        constraints=[f"pixel3_latency_ms<={bound}"],
        seed=seed,
    )
    for _ in range(12):
        arch = s.ask()
        s.tell(arch, table.evaluate(arch))
        b = s.best()
        assert b is None or b.values["pixel3_latency_ms"] <= bound
        assert all(t.values["pixel3_latency_ms"] <= bound for t in s.pareto_front())


def test_repeated_proposals_cost_nothing(nb201_space, table):
    """A searcher that keeps proposing told archs is told them again for free and stops at max_asks."""
    from nas.search.base import Searcher

    class Stubborn(Searcher):
        name = "stubborn"

        def ask(self):
            return self.space.default()

    s = Stubborn(nb201_space, objectives=["cifar10_test_acc"])
    res = run_search(s, table, 10, max_asks=30)
    assert len(res.trials) == 1 and res.asks == 30 and res.stopped == "max_asks"


def test_evolution_population_ages(nb201_space, table):
    s = make("evolution", nb201_space, objectives=["cifar10_test_acc"], seed=0, population_size=5, sample_size=2)
    run_search(s, table, 20)
    assert len(s.population) == 5
    assert [t.number for t in s.population] == list(range(15, 20))  # the oldest left


def test_mcts_tree_follows_decision_order(nb201_space, table):
    s = make("mcts", nb201_space, objectives=["cifar10_test_acc"], seed=0)
    run_search(s, table, 40)
    # root's children are values of the first decision in walk order; every visit was backed up
    first = nb201_space.next_decision({})
    assert {k[1] for k in s.root.children} <= set(first.options)
    assert s.root.visits == 40 and len(s.root.trials) == 40
    assert sum(ch.visits for ch in s.root.children.values()) == 40


def test_hhnas_learns_a_policy_over_levels(table, synthetic):
    from spaces import create_space

    space = create_space("hhnas")
    s = make("hhnas", space, objectives=["score"], seed=0, population_size=6, sample_size=2)
    run_search(s, synthetic(space), 40)
    policy = s.policy()
    assert policy, "mutations were rewarded"
    actions = {a for acts in policy.values() for a in acts}
    assert any(a.startswith("0:") for a in actions) or any(a.startswith("1:") for a in actions)
    assert all(-2.0 <= q <= 2.0 for acts in policy.values() for q in acts.values())


@pytest.mark.parametrize("name", ["nb201", "mobilenet", "hhnas", "darts"])
def test_one_hot_without_validation_is_the_spaces_encoding(name):
    """bo encodes the enumerated space (and the model its told archs) without re-validating each arch."""
    import numpy as np

    from nas.search.surrogate import one_hot, one_hot_slots
    from spaces import create_space

    space = create_space(name)
    slots = one_hot_slots(space)
    for seed in range(20):
        arch = space.sample(seed)
        assert np.array_equal(one_hot(space, arch, slots), space.encode(arch, one_hot=True).astype(np.float64))


@pytest.mark.slow
def test_bo_finds_the_optimum_quickly(nb201_space, table):
    """The model-based searcher reaches the table's optimum well within 100 queries (seed 0)."""
    opt = float(table.column("cifar10_test_acc").max())
    s = create_searcher("bo", nb201_space, objectives=["cifar10_test_acc"], seed=0)
    res = run_search(s, table, 100, stop=lambda t: t.values["cifar10_test_acc"] >= opt)
    assert math.isclose(res.best.values["cifar10_test_acc"], opt)
    assert len(res.trials) <= 80
