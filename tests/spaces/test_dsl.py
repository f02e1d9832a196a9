"""The DSL's nodes and space operations on small hand-made spaces."""

from __future__ import annotations

import itertools
import json

import pytest

from hwnas.errors import HwnasError, InvalidArchError, SpaceDefinitionError
from spaces import (
    Arch,
    Block,
    Choice,
    Constraint,
    Derived,
    Optional,
    Or,
    Ref,
    Repeat,
    Sequential,
    Space,
)


def toy_space(constraints=None) -> Space:
    """Exercises every node kind: shared width, per-block kernels, Or, Optional, Derived."""
    stage = Repeat(
        Block(
            "mbconv",
            out=Ref("width"),
            kernel=Choice([3, 5]),
            expand=Choice([3.0, 6.0]),
            stride=Derived("2 if index == 0 else 1"),
        ),
        depth=Choice([1, 2]),
        params={"width": Choice([8, 16])},
    )
    tail = Or(
        {
            "res": Block("resnet_basic", out=16, kernel=Choice([3, 5])),
            "pool": Block("pool", kind=Choice(["avg", "max"])),
        },
        label="block",
    )
    body = Sequential(
        {
            "stem": Block("conv_bn_act", out=8, stride=1),
            "stage1": stage,
            "tail": tail,
            "extra": Optional(Block("conv_bn_act", out=Ref("num_classes"), kernel=1), label="on"),
            "head": Block("classifier", num_classes=Ref("num_classes")),
        }
    )
    return Space("toy", body, in_chans=1, num_classes=4, resolution=8, constraints=constraints)


def brute_force_count(space: Space) -> int:
    """Count archs by exploring next_decision from scratch (independent of size())."""
    count = 0
    stack = [{}]
    while stack:
        partial = stack.pop()
        d = space.next_decision(partial)
        if d is None:
            if space.contains(partial):
                count += 1
            continue
        for option in d.options:
            stack.append({**partial, d.path: option})
    return count


def test_paths_follow_the_tree():
    space = toy_space()
    paths = [d.path for d in space.decisions()]
    assert paths == [
        "stage1.width",
        "stage1.depth",
        "stage1.b0.kernel",
        "stage1.b0.expand",
        "stage1.b1.kernel",
        "stage1.b1.expand",
        "tail.block",
        "tail.res.kernel",
        "tail.pool.kind",
        "extra.on",
    ]


def test_size_is_exact_and_matches_enumeration():
    space = toy_space()
    # width 2 × (depth1: 4 + depth2: 16) × (res 2 + pool 2) × optional 2
    assert space.size() == 2 * (4 + 16) * 4 * 2
    archs = list(space.enumerate())
    assert len(archs) == space.size() == brute_force_count(space)
    assert len(set(archs)) == len(archs)


def test_only_active_decisions_are_in_an_arch():
    space = toy_space()
    for seed in range(30):
        arch = space.sample(seed)
        if arch["tail.block"] == "res":
            assert "tail.res.kernel" in arch and "tail.pool.kind" not in arch
        else:
            assert "tail.pool.kind" in arch and "tail.res.kernel" not in arch
        depth = arch["stage1.depth"]
        assert ("stage1.b1.kernel" in arch) == (depth == 2)


def test_shared_value_and_derived_stride_reach_the_blocks():
    space = toy_space()
    arch = space.validate(
        {
            "stage1.width": 16,
            "stage1.depth": 2,
            "stage1.b0.kernel": 3,
            "stage1.b0.expand": 3.0,
            "stage1.b1.kernel": 5,
            "stage1.b1.expand": 6.0,
            "tail.block": "pool",
            "tail.pool.kind": "max",
            "extra.on": True,
        }
    )
    blocks = space.blocks(arch)
    assert [b.op for b in blocks] == ["conv_bn_act", "mbconv", "mbconv", "pool", "conv_bn_act", "classifier"]
    b0, b1 = blocks[1], blocks[2]
    assert (b0.cin, b0.cout, b0.kwargs["stride"], b0.h, b0.h_out) == (8, 16, 2, 8, 4)
    assert (b1.cin, b1.cout, b1.kwargs["stride"], b1.kwargs["kernel"]) == (16, 16, 1, 5)
    assert blocks[4].cout == 4  # Ref to the root binding num_classes


def test_shared_repeat_shares_decisions():
    body = Sequential(
        {
            "s": Repeat(Block("conv_bn_act", out=8, kernel=Choice([1, 3])), depth=Choice([1, 2, 3]), shared=True),
            "head": Block("classifier", num_classes=2),
        }
    )
    space = Space("shared", body, in_chans=1, num_classes=2, resolution=4)
    assert [d.path for d in space.decisions()] == ["s.depth", "s.kernel"]
    assert space.size() == 3 * 2 == len(list(space.enumerate()))
    arch = space.validate({"s.depth": 3, "s.kernel": 3})
    assert [b.kwargs["kernel"] for b in space.blocks(arch)[:3]] == [3, 3, 3]


def test_next_decision_walks_in_order_and_depends_on_answers():
    space = toy_space()
    assert space.next_decision({}).path == "stage1.width"
    d = space.next_decision({"stage1.width": 8, "stage1.depth": 1})
    assert d.path == "stage1.b0.kernel"
    partial = {"stage1.width": 8, "stage1.depth": 1, "stage1.b0.kernel": 3, "stage1.b0.expand": 3.0}
    assert space.next_decision(partial).path == "tail.block"
    assert space.next_decision({**partial, "tail.block": "pool"}).path == "tail.pool.kind"
    full = {**partial, "tail.block": "pool", "tail.pool.kind": "avg", "extra.on": False}
    assert space.next_decision(full) is None
    assert space.next_decision({"stage1.width": 8}).kind == "depth"


def test_validate_names_path_and_allowed_values():
    space = toy_space()
    arch = dict(space.sample(0))
    bad = {**arch, "stage1.width": 12}
    with pytest.raises(InvalidArchError, match=r"stage1\.width: 12 is not allowed \(allowed: \[8, 16\]\)"):
        space.validate(bad)
    missing = dict(arch)
    del missing["stage1.depth"]
    with pytest.raises(InvalidArchError, match=r"stage1\.depth: missing"):
        space.validate(missing)
    with pytest.raises(InvalidArchError, match="not a decision"):
        space.validate({**arch, "stage9.width": 8})


def test_int_and_bool_are_not_confused():
    space = toy_space()
    arch = dict(space.sample(1))
    with pytest.raises(InvalidArchError, match="extra.on"):
        space.validate({**arch, "extra.on": 1})


def test_json_round_trip_and_id():
    space = toy_space()
    for seed in range(20):
        arch = space.sample(seed)
        again = Arch.from_json(arch.to_json())
        assert again == arch and again.id == arch.id
        assert space.validate(json.loads(arch.to_json())) == arch
        assert list(json.loads(arch.to_json())) == sorted(arch)


def test_constraints_reject_archs():
    c = Constraint("stage1.width == 16 or tail.block == 'pool'", "narrow stages need pooling tails")
    space = toy_space([c])
    archs = list(space.enumerate())
    assert archs and all(a["stage1.width"] == 16 or a["tail.block"] == "pool" for a in archs)
    assert space.size() == len(archs) < space.size(ignore_constraints=True)
    for seed in range(20):
        assert c.holds(space.sample(seed), space.root_names)
    bad = next(a for a in toy_space().enumerate() if a["stage1.width"] == 8 and a["tail.block"] == "res")
    with pytest.raises(InvalidArchError, match="narrow stages need pooling tails"):
        space.validate(bad)


def test_callable_constraint():
    space = toy_space([Constraint(lambda a: a["stage1.depth"] == 2, "deep")])
    assert all(space.sample(s)["stage1.depth"] == 2 for s in range(10))


def test_mutate_changes_something_and_stays_valid():
    space = toy_space()
    for seed in range(50):
        arch = space.sample(seed)
        child = space.mutate(arch, seed)
        assert child != arch and space.contains(child)


def test_crossover_takes_values_from_parents():
    space = toy_space()
    for seed in range(30):
        a, b = space.sample(seed), space.sample(seed + 100)
        c = space.crossover(a, b, seed)
        assert space.contains(c)
        for path, value in c.items():
            if path in a and path in b:
                assert value in (a[path], b[path])


def test_encode_fixed_length():
    space = toy_space()
    n = len(space.decisions())
    vecs = {space.encode(a).tobytes() for a in space.enumerate()}
    assert len(vecs) == space.size()  # injective
    assert all(len(space.encode(space.sample(s))) == n for s in range(5))
    one_hot = space.encode(space.sample(0), one_hot=True)
    assert one_hot.sum() == len(space.sample(0))


def test_optuna_define_by_run_uses_unique_paths():
    optuna = pytest.importorskip("optuna")
    optuna.logging.set_verbosity(optuna.logging.WARNING)
    space = toy_space()
    study = optuna.create_study(sampler=optuna.samplers.RandomSampler(seed=0))
    seen = []
    for _ in range(20):
        trial = study.ask()
        arch = space.suggest(trial)
        assert set(trial.params) == set(arch)
        seen.append(arch)
        study.tell(trial, 0.0)
    assert all(space.contains(a) for a in seen)


def test_enumerate_blocks_is_exact_superset():
    space = toy_space()
    enumerated = {b.signature() for b in space.enumerate_blocks()}
    seen = {b.signature() for a in space.enumerate() for b in space.blocks(a)}
    assert seen == enumerated


def test_default_takes_first_options():
    space = toy_space()
    d = space.default()
    assert d["stage1.width"] == 8 and d["stage1.depth"] == 1 and d["tail.block"] == "res" and d["extra.on"] is False


@pytest.mark.parametrize(
    "make, message",
    [
        (lambda: Choice([]), "at least one option"),
        (lambda: Choice([1, 1]), "unique"),
        (lambda: Choice([[1]]), "int, float, str or bool"),
        (lambda: Choice([1, 2], default=3), "default 3"),
        (lambda: Choice([1], label="a.b"), "identifier"),
        (lambda: Block("nope"), "unknown op 'nope'"),
        (lambda: Block("mbconv", kernel=3), "needs parameter 'out'"),
        (lambda: Block("mbconv", out=8, colour=1), "no parameter 'colour'"),
        (lambda: Block("mbconv", out=8, act="gelu"), "not one of"),
        (lambda: Block("mbconv", out=8, kernel=Choice([3, 4])), "kernel"),
        (lambda: Block("mbconv", out="wide"), "expected int"),
        (lambda: Repeat(Block("skip"), depth=-1), "non-negative"),
        (lambda: Repeat(Block("skip"), depth=Choice(["a"])), "non-negative ints"),
        (lambda: Repeat(Choice([1]), depth=1), "structure node"),
        (lambda: Sequential({}), "at least one child"),
        (lambda: Or({}), "non-empty"),
        (lambda: Or({"a": Block("skip"), "b": 3}), "mix"),
        (lambda: Derived("__import__('os')"), "unknown function"),
        (lambda: Derived("x[0]"), "not allowed"),
        (lambda: Derived("1 +"), "invalid expression"),
        (lambda: Optional(Block("skip"), default="yes"), "true or false"),
        (lambda: Space("s", Choice([1])), "structure node"),
        (lambda: Space("s", Block("skip"), resolution=0), "positive integer"),
    ],
)
def test_definition_errors_are_one_line(make, message):
    with pytest.raises(SpaceDefinitionError) as info:
        make()
    assert message in str(info.value)
    assert "\n" not in str(info.value)


def test_clashing_paths_are_rejected():
    body = Sequential({"a": Block("conv_bn_act", out=Choice([8, 16]), kernel=Choice([1, 3], label="out"))})
    with pytest.raises(SpaceDefinitionError, match="share the path 'a.out'"):
        Space("clash", body)


def test_unknown_ref_is_reported_with_scope():
    space = Space("r", Sequential({"a": Block("conv_bn_act", out=Ref("width"))}))
    with pytest.raises(SpaceDefinitionError, match=r"a: Ref\('width'\) names nothing in scope"):
        space.sample(0)


def test_unsatisfiable_constraint_is_an_error_not_a_hang():
    space = toy_space([Constraint("stage1.width == 3", "impossible")])
    with pytest.raises(HwnasError, match="no arch satisfying"):
        space.sample(0)


def test_enumerate_refuses_huge_spaces():
    from spaces import create_space

    with pytest.raises(HwnasError, match="enumeration limit"):
        next(create_space("mobilenet").enumerate(limit=1000))


def test_every_enumerated_arch_is_distinct_in_json():
    space = toy_space()
    jsons = [a.to_json() for a in space.enumerate()]
    assert len(set(jsons)) == len(jsons)
    ids = [a.id for a in space.enumerate()]
    assert len(set(ids)) == len(ids)


def test_product_of_small_spaces():
    # two independent stages multiply
    body = Sequential({f"s{i}": Block("conv_bn_act", out=Choice([4, 8]), kernel=Choice([1, 3, 5])) for i in range(3)})
    space = Space("p", body)
    assert space.size() == 6**3 == len(list(space.enumerate()))
    combos = set(itertools.product(*[[4, 8]] * 3))
    assert {tuple(a[f"s{i}.out"] for i in range(3)) for a in space.enumerate()} == combos


def test_spaces_import_is_torch_free():
    """Validating, enumerating and serialising spaces must not need torch (edge devices)."""
    import subprocess
    import sys

    code = (
        "import sys\n"
        "class Block:\n"
        "    def find_spec(self, name, path=None, target=None):\n"
        "        if name == 'torch' or name.startswith('torch.'):\n"
        "            raise ImportError('torch is blocked')\n"
        "sys.meta_path.insert(0, Block())\n"
        "from spaces import create_space, list_spaces\n"
        "for n in list_spaces():\n"
        "    s = create_space(n)\n"
        "    a = s.sample(0); s.validate(a); s.blocks(a); s.to_yaml(); s.describe(a)\n"
        "    s.enumerate_blocks()\n"
        "print('ok')\n"
    )
    res = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=300)
    assert res.returncode == 0 and res.stdout.strip() == "ok", res.stderr
