"""Largest / smallest subnets derived from the decisions, and the layout that covers every arch."""

from __future__ import annotations

import random

import pytest

from supernet._archs import arch_size, extreme_structure, is_structural, largest_arch, smallest_arch
from supernet._layout import meta_block
from tests.helpers import tiny_net, tiny_space

pytestmark = pytest.mark.usefixtures("one_thread")


def test_mobilenet_extremes_take_the_extreme_options():
    space = tiny_space("mobilenet")
    big, small = largest_arch(space), smallest_arch(space)
    for path, value in big.items():
        assert value == max(space.decision(path).options), path
    for path, value in small.items():
        assert value == min(space.decision(path).options), path
    assert big["stage2.depth"] == 2 and "stage2.b1.kernel" in big and "stage2.b1.kernel" not in small


@pytest.mark.parametrize("name", ["mobilenet", "spaceevo", "resnet"])
def test_extremes_bound_random_archs(name):
    space = tiny_space(name)
    cache: dict = {}
    big = largest_arch(space, extreme_structure(space, "largest", cache))
    small = smallest_arch(space, extreme_structure(space, "smallest", cache))
    sizes = [arch_size(space, space.sample(random.Random(i)), cache) for i in range(20)]
    assert arch_size(space, big, cache) >= max(sizes)
    assert arch_size(space, small, cache) <= min(sizes)


def test_structure_keeps_the_sub_space():
    space = tiny_space("spaceevo")
    struct = {d.path: d.options[-1] for d in space.decisions() if is_structural(d) and d.path.endswith(".block")}
    big = largest_arch(space, struct)
    assert all(big[p] == v for p, v in struct.items())
    assert all(
        p.startswith(tuple(f"stage{i}.{v}" for i, v in enumerate(struct.values(), 1)))
        or is_structural(space.decision(p))
        or ".w" in p
        for p in big
    )


@pytest.mark.parametrize("name", ["mobilenet", "spaceevo", "resnet"])
def test_layout_holds_every_random_arch(name):
    net = tiny_net(name)
    space, layout = net.space, net.layout
    rng = random.Random(123)
    for _ in range(30):
        for rb in space.blocks(space.sample(rng)):
            layout.check_block(rb, meta_block(rb))


def test_spaceevo_gives_each_block_type_its_own_paths():
    layout = tiny_net("spaceevo").layout
    stage2 = {p.split(".")[1] for p in layout.paths if p.startswith("stage2.")}
    assert {"mbv2", "resnet_se", "fused"} <= stage2
    assert {layout.ops[p] for p in layout.paths if p.startswith("stage2.fused.")} == {"fused_mbconv"}
