"""DARTS: schedules, Max-W, genotype rules, and a tiny real search on Fashion-MNIST."""

from __future__ import annotations

import math

import pytest

from hwnas.errors import ConfigError
from nas.search import create_searcher
from nas.search.darts import DartsConfig, cosine_annealing, cosine_power_annealing, derive_genotype, run_darts
from spaces.builtin.nb201 import NB201_PATHS
from spaces.catalog import NB201_EDGES, NB201_OPS


def test_cosine_power_annealing_formula():
    assert cosine_power_annealing(0.0, 0.1, 0.001) == pytest.approx(0.1)
    assert cosine_power_annealing(1.0, 0.1, 0.001) == pytest.approx(0.001)
    xs = [cosine_power_annealing(i / 20, 0.1, 0.001) for i in range(21)]
    assert all(a >= b for a, b in zip(xs, xs[1:]))
    # the power schedule decays faster than plain cosine in the middle of the run
    assert cosine_power_annealing(0.5, 0.1, 0.001) < cosine_annealing(0.5, 0.1, 0.001)
    c = (1 + math.cos(math.pi * 0.3)) / 2
    s = (10 ** (c + 1) - 10) / (100 - 10)
    assert cosine_power_annealing(0.3, 1.0, 0.0, 10.0) == pytest.approx(s)


def _weights(best: dict[str, str], strength: dict[str, float] | None = None):
    out = []
    for e in NB201_EDGES:
        w = [0.1] * len(NB201_OPS)
        w[NB201_OPS.index(best[e])] = (strength or {}).get(e, 0.5)
        out.append(w)
    return out


def test_genotype_rules():
    best = {
        "e1_0": "nor_conv_3x3",
        "e2_0": "none",
        "e2_1": "skip_connect",
        "e3_0": "skip_connect",
        "e3_1": "nor_conv_1x1",
        "e3_2": "avg_pool_3x3",
    }
    w = _weights(best, {"e3_0": 0.9, "e3_1": 0.3, "e3_2": 0.6})
    argmax = derive_genotype(w, "argmax")
    assert argmax[NB201_PATHS["e2_0"]] == "none" and argmax[NB201_PATHS["e1_0"]] == "nor_conv_3x3"
    darts = derive_genotype(w, "darts")
    assert darts[NB201_PATHS["e2_0"]] != "none"  # argmax excluding none
    assert darts[NB201_PATHS["e3_1"]] == "none"  # the weakest of node 3's three inputs is dropped
    assert darts[NB201_PATHS["e3_0"]] == "skip_connect" and darts[NB201_PATHS["e3_2"]] == "avg_pool_3x3"
    with pytest.raises(ConfigError):
        derive_genotype(w, "other")


def test_max_w_weighting():
    """Max-W: out = sum_i (1 - max_j w_j + w_i) op_i(x); the strongest op gets weight 1."""
    import torch

    from nas.search.darts import _build_supernet

    net = _build_supernet(DartsConfig(channels=4, max_w=True), 1, 10)
    with torch.no_grad():
        net.alpha.copy_(torch.randn_like(net.alpha))
    w = net.op_weights()
    sm = torch.softmax(net.alpha, -1)
    assert torch.allclose(w, 1 - sm.max(-1, keepdim=True).values + sm)
    assert torch.allclose(w.max(-1).values, torch.ones(len(NB201_EDGES)))


@pytest.mark.parametrize("order, max_w, schedule", [(1, False, "cosine"), (2, True, "cosine_power")])
def test_tiny_darts_search(order, max_w, schedule, nb201_space, table):
    res = run_darts(
        train_size=128,
        batch_size=32,
        epochs=2,
        channels=4,
        order=order,
        max_w=max_w,
        schedule=schedule,
        threads=1,
        seed=0,
    )
    assert nb201_space.contains(res.arch) and nb201_space.contains(res.arch_argmax)
    assert len(res.history) == 2 and all(0 <= h["val_acc"] <= 100 for h in res.history)
    assert len(res.weights) == 6 and all(abs(sum(w) - 1) < 1e-5 for w in res.weights)
    assert 0 < table.evaluate(res.arch)["cifar10_test_acc"] <= 100
    d = res.to_dict()
    assert d["arch_str"].startswith("|") and d["config"]["order"] == order


def test_darts_searcher_interface(nb201_space):
    from nas.search import SearchExhausted

    s = create_searcher(
        "darts",
        nb201_space,
        objectives=["cifar10_test_acc"],
        seed=1,
        train_size=64,
        batch_size=32,
        epochs=1,
        channels=4,
        threads=1,
    )
    arch = s.ask()
    assert nb201_space.contains(arch)
    with pytest.raises(SearchExhausted):
        s.ask()


def test_darts_rejects_bad_input(nb201_space):
    from spaces import create_space

    with pytest.raises(ConfigError, match="space 'resnet' has no cell"):  # a chain space: nothing to relax
        create_searcher("darts", create_space("resnet"))
    with pytest.raises(ConfigError, match="unknown DARTS option"):
        create_searcher("darts", nb201_space, bogus=1)
    with pytest.raises(ConfigError, match="order"):
        create_searcher("darts", nb201_space, order=3)
    with pytest.raises(ConfigError, match="constraints"):
        create_searcher("darts", nb201_space, constraints=["x<=1"])
