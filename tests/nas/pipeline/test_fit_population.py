"""Population-based searchers get a population that leaves a small query budget room to evolve."""

from __future__ import annotations

import pytest

from nas.pipeline.stages import fit_population


@pytest.mark.parametrize(
    ("searcher", "options", "budget", "expected"),
    [
        ("evolution", {}, 20, {"population_size": 6, "sample_size": 3}),
        ("hhnas", {}, 12, {"population_size": 4, "sample_size": 2}),
        ("evolution", {}, 300, {}),  # the default population (20) fits: nothing changed
        ("evolution", {"population_size": 20}, 20, {"population_size": 20}),  # the user's choice stands
        ("evolution", {"sample_size": 8}, 20, {"population_size": 8, "sample_size": 8}),  # a tournament fits in
        ("nsga2", {}, 60, {"population_size": 20}),
        ("random", {}, 20, {}),
        ("tpe", {"n_startup_trials": 5}, 20, {"n_startup_trials": 5}),
    ],
)
def test_fit_population(searcher, options, budget, expected):
    assert fit_population(searcher, options, budget) == expected


def test_fitted_options_build_a_searcher():
    from nas.search import create_searcher
    from spaces import create_space

    space = create_space(
        "resnet",
        base_widths=[16, 32],
        depths=[1],
        kernels=[3],
        width_mults=[0.5, 1.0],
        in_chans=1,
        num_classes=10,
        resolution=28,
    )
    for name in ("evolution", "hhnas", "nsga2"):
        s = create_searcher(name, space, seed=0, **fit_population(name, {}, 10))
        assert s is not None
