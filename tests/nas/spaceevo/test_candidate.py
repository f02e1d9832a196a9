"""Candidate spaces of a hyper-space: validation, ids, mutation, and the DSL space they write."""

from __future__ import annotations

import pytest

from nas.spaceevo.candidate import HyperSpace, SpaceEvoError, stage_choices
from spaces import create_space, load_space, space_hash
from tests.nas.spaceevo.spaceevo_helpers import small_hyper


@pytest.fixture(scope="module")
def hyper() -> HyperSpace:
    return small_hyper()


def test_spaceevo_stages_are_found():
    h = HyperSpace.create("spaceevo", in_chans=1, num_classes=10, resolution=28)
    assert [s.name for s in h.stages] == [f"stage{i}" for i in range(1, 6)]
    assert [s.number for s in h.stages] == [1, 2, 3, 4, 5]
    s2 = h.stages[1]
    assert s2.block_types == ("mbv1", "mbv2", "mbv3", "resnet", "resnet_se", "fused")
    assert s2.windows == ((16, 20, 24), (20, 24, 28), (24, 28, 32))
    assert s2.window_names == ("w0", "w1", "w2")
    assert s2.depth_options("resnet") == (1, 2, 3)
    assert h.size() == 6**5 * 2 * 3**4


def test_a_space_without_marked_stages_is_refused():
    with pytest.raises(SpaceEvoError, match="no stage is marked"):
        HyperSpace(create_space("mobilenet", in_chans=1, num_classes=10, resolution=28))


def test_candidates_are_validated(hyper):
    with pytest.raises(SpaceEvoError, match="unknown block type 'fused'"):
        hyper.candidate(["fused"] + ["mbv2"] * 4, [s.windows[0] for s in hyper.stages])
    with pytest.raises(SpaceEvoError, match=r"stage2: width window \[16,24\] is not one"):
        hyper.candidate(["mbv2"] * 5, [hyper.stages[0].windows[0], (16, 24)] + [s.windows[0] for s in hyper.stages[2:]])
    with pytest.raises(SpaceEvoError, match="has 5 stages"):
        hyper.candidate(["mbv2"] * 4, [s.windows[0] for s in hyper.stages[:4]])


def test_ids_are_stable_and_follow_the_choices(hyper):
    a = hyper.random_candidate(3)
    b = hyper.candidate(a.blocks, a.windows)
    assert a == b and a.id == b.id and len(a.id) == 10
    c = a.with_stage(2, block="resnet" if a.blocks[2] != "resnet" else "mbv2")
    assert c != a and c.id != a.id
    assert hyper.candidate_from_dict(a.to_dict()) == a


def test_mutations_change_one_stage_and_are_seeded(hyper):
    a = hyper.random_candidate(0)
    for seed in range(20):
        b = a.mutate_block(seed)
        assert sum(x != y for x, y in zip(a.blocks, b.blocks)) == 1 and b.windows == a.windows
        w = a.mutate_window(seed)
        assert sum(x != y for x, y in zip(a.windows, w.windows)) == 1 and w.blocks == a.blocks
        both = a.mutate(seed)
        assert sum(x != y for x, y in zip(a.blocks, both.blocks)) == 1
        assert sum(x != y for x, y in zip(a.windows, both.windows)) == 1
    assert a.mutate(7) == a.mutate(7)


def test_uniform_candidates_seed_the_population(hyper):
    uni = hyper.uniform_candidates()
    assert len(uni) == 3 * 3  # block types x the most windows of a stage
    assert all(len(set(c.blocks)) == 1 for c in uni)
    assert uni[1].windows[0] == hyper.stages[0].windows[1] and uni[2].windows[0] == hyper.stages[0].windows[-1]


def test_to_space_is_a_sub_space_with_the_same_paths(hyper):
    cand = hyper.candidate(["mbv2", "resnet", "mbv3", "resnet", "mbv2"], [s.windows[-1] for s in hyper.stages])
    space = cand.to_space()
    assert space.size() < hyper.space.size()
    for seed in range(10):
        arch = space.sample(seed)
        assert hyper.space.contains(arch)
        assert arch["stage2.block"] == "resnet" and arch["stage2.window"] == "w2"
        assert arch["stage2.w2.width"] in (24, 28, 32)
    assert space.decision("stage2.block").options == ("resnet",)
    inside = space.sample(0)
    assert cand.contains(inside)


def test_written_yaml_loads_as_the_same_space(hyper, tmp_path):
    cand = hyper.random_candidate(5)
    path = tmp_path / "evolved.yaml"
    cand.write_yaml(path)
    loaded = load_space(path)
    assert space_hash(loaded) == space_hash(cand.to_space())
    assert loaded.sample(0) == cand.to_space().sample(0)
    assert cand.id in loaded.description


def test_written_yaml_is_usable_by_the_cli(hyper, tmp_path, run_nas):
    path = tmp_path / "evolved.yaml"
    hyper.random_candidate(2).write_yaml(path)
    r = run_nas("spaces", "show", str(path), "--sample", "1")
    assert r.returncode == 0, r.stderr
    assert "stage1" in r.stdout


def test_sub_stage_choices_are_normalised(hyper):
    win = hyper.stages[1].windows[1]
    full = stage_choices(
        hyper,
        1,
        "resnet",
        win,
        {
            "stage2.resnet.depth": 1,
            "stage2.w1.width": 24,
            "stage2.resnet.b0.kernel": 3,
            "stage2.resnet.b0.expand": 0.25,
        },
    )
    short = stage_choices(hyper, 1, "resnet", win, {"depth": 1, "width": 24, "b0.kernel": 3, "resnet.b0.expand": 0.25})
    assert full == short
    assert full["stage2.block"] == "resnet" and full["stage2.window"] == "w1"
    with pytest.raises(SpaceEvoError, match="'b0.stride' is not a decision"):
        stage_choices(hyper, 1, "resnet", win, {"b0.stride": 1})
