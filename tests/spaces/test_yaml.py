"""The YAML form: round trips with the Python form, and malformed files get one-line errors."""

from __future__ import annotations

import textwrap

import pytest

from hwnas.errors import ConfigError, HwnasError, InvalidArchError
from spaces import create_space, list_spaces, load_space
from spaces.yaml_io import space_from_yaml

GOOD = textwrap.dedent("""\
    name: tiny
    in_chans: 1
    num_classes: 10
    resolution: 28
    constraints:
      - {expr: "stage1.width >= 8", message: wide enough}
    body:
      sequential:
        stem: {op: conv_bn_act, out: 8}
        stage1:
          repeat: {op: mbconv, out: {ref: width}, kernel: {choice: [3, 5]}, stride: {expr: "2 if index == 0 else 1"}}
          depth: {choice: [1, 2]}
          params: {width: {choice: [8, 16]}}
        tail:
          or:
            conv: {op: conv_bn_act, out: 16, kernel: {choice: [1, 3]}}
            pool: {op: pool, kind: max}
          label: block
        extra:
          optional: {op: conv_bn_act, out: 16, kernel: 1}
          label: use
        head: {op: classifier, num_classes: {ref: num_classes}}
    """)


@pytest.mark.parametrize("name", sorted(list_spaces()))
def test_builtin_spaces_round_trip_through_yaml(name):
    space = create_space(name) if name == "nb201" else create_space(name, in_chans=1, num_classes=10, resolution=28)
    again = space_from_yaml(space.to_yaml())
    assert again.to_dict() == space.to_dict()
    assert again.decisions() == space.decisions()
    assert again.size() == space.size()
    for seed in range(10):
        arch = space.sample(seed)
        assert again.sample(seed) == arch
        assert again.blocks(arch) == space.blocks(arch)
        assert again.describe(arch) == space.describe(arch)


def test_good_yaml_loads_and_round_trips(tmp_path):
    path = tmp_path / "tiny.yaml"
    path.write_text(GOOD)
    space = load_space(path)
    assert space.size() == 2 * (2 + 4) * (2 + 1) * 2
    assert space_from_yaml(space.to_yaml()).to_dict() == space.to_dict()
    assert create_space(str(path)).to_dict() == space.to_dict()
    model = space.build(space.sample(0))
    assert model is not None


def _replace(old: str, new: str) -> str:
    assert old in GOOD, old
    return GOOD.replace(old, new)


BAD_YAML = [
    ("unknown op", _replace("op: pool,", "op: poool,"), "body.sequential.tail.or.pool: unknown op 'poool'"),
    (
        "bad activation",
        _replace("{op: conv_bn_act, out: 8}", "{op: conv_bn_act, out: 8, act: gelu}"),
        "act: 'gelu' is not one of",
    ),
    ("missing op param", _replace("{op: conv_bn_act, out: 8}", "{op: conv_bn_act}"), "needs parameter 'out'"),
    (
        "unknown op param",
        _replace("{op: conv_bn_act, out: 8}", "{op: conv_bn_act, out: 8, colour: red}"),
        "no parameter 'colour'",
    ),
    ("wrong type", _replace("{op: conv_bn_act, out: 8}", "{op: conv_bn_act, out: wide}"), "expected int, got str"),
    ("even kernel", _replace("kernel: {choice: [1, 3]}", "kernel: {choice: [1, 4]}"), "not one of"),
    ("missing body", "name: x\n", "body: missing"),
    ("missing name", GOOD.replace("name: tiny\n", ""), "name: missing"),
    ("unknown top key", GOOD + "colour: blue\n", "colour: unknown key"),
    ("not a mapping", "- 1\n- 2\n", "a space file is a mapping"),
    ("invalid YAML", "name: [unclosed\n", "invalid YAML at line"),
    ("bad resolution", _replace("resolution: 28", "resolution: -3"), "resolution: must be a positive integer"),
    ("choice not a list", _replace("{choice: [1, 2]}", "{choice: 3}"), "options must be a list"),
    ("empty choice", _replace("{choice: [1, 2]}", "{choice: []}"), "at least one option"),
    ("duplicate options", _replace("{choice: [1, 2]}", "{choice: [1, 1]}"), "unique"),
    ("two kinds", _replace("{op: pool, kind: max}", "{op: pool, kind: max, ref: x}"), "several kind keys"),
    ("no kind", _replace("{op: pool, kind: max}", "{kind: max}"), "node needs one of the keys"),
    ("repeat without depth", _replace("      depth: {choice: [1, 2]}\n", ""), "repeat needs a depth"),
    ("negative depth", _replace("depth: {choice: [1, 2]}", "depth: -1"), "non-negative"),
    ("bad expression", _replace('"2 if index == 0 else 1"', '"2 if index =="'), "invalid expression"),
    ("forbidden call", _replace('"2 if index == 0 else 1"', '"open(1)"'), "unknown function 'open'"),
    ("unknown key in repeat", _replace("      params: {width:", "      param: {width:"), "unknown key 'param'"),
    ("list as node", _replace("kernel: {choice: [3, 5]}", "kernel: [3, 5]"), "a list is not a node"),
    ("null value", _replace("{op: conv_bn_act, out: 8}", "{op: conv_bn_act, out: null}"), "missing value"),
    ("bad label", _replace("label: block", "label: my.block"), "identifier"),
    (
        "empty or",
        _replace(
            """      or:
        conv: {op: conv_bn_act, out: 16, kernel: {choice: [1, 3]}}
        pool: {op: pool, kind: max}
""",
            "      or: {}\n",
        ),
        "non-empty mapping",
    ),
    ("bad constraint", _replace('{expr: "stage1.width >= 8", message: wide enough}', "{message: x}"), "constraints[0]"),
    (
        "shared not bool",
        _replace("      depth: {choice: [1, 2]}\n", "      depth: {choice: [1, 2]}\n      shared: maybe\n"),
        "shared: must be true or false",
    ),
    ("value body", GOOD.split("body:")[0] + "body: {choice: [1, 2]}\n", "body: must be a structure node"),
]


@pytest.mark.parametrize("label, text, message", BAD_YAML, ids=[b[0] for b in BAD_YAML])
def test_malformed_yaml_gets_one_line_error(tmp_path, label, text, message):
    path = tmp_path / "bad.yaml"
    path.write_text(text)
    with pytest.raises(ConfigError) as info:
        load_space(path)
    msg = str(info.value)
    assert "\n" not in msg
    assert str(path) in msg
    assert message in msg, msg


def test_missing_yaml_file(tmp_path):
    with pytest.raises(ConfigError, match="no such file"):
        load_space(tmp_path / "nope.yaml")


def _good_arch(space):
    return dict(space.sample(0))


BAD_ARCHS = [
    ("wrong value", lambda a: {**a, "stage1.width": 12}, "stage1.width: 12 is not allowed (allowed: [8, 16])"),
    ("wrong type", lambda a: {**a, "stage1.width": "8"}, "stage1.width: '8' is not allowed"),
    ("bool for int", lambda a: {**a, "stage1.depth": True}, "stage1.depth: True is not allowed"),
    ("missing depth", lambda a: {k: v for k, v in a.items() if k != "stage1.depth"}, "stage1.depth: missing"),
    ("missing kernel", lambda a: {k: v for k, v in a.items() if k != "stage1.b0.kernel"}, "stage1.b0.kernel: missing"),
    ("unknown path", lambda a: {**a, "stage1.colour": 1}, "stage1.colour: not a decision"),
    ("typo path", lambda a: {**a, "stage1.widht": 8}, "did you mean 'stage1.width'"),
    (
        "inactive branch",
        lambda a: (
            {**a, "tail.conv.kernel": 1}
            if a["tail.block"] == "pool"
            else {**a, "tail.block": "pool", "tail.pool.kind": "max"}
        ),
        "",
    ),
    ("unknown branch", lambda a: {**a, "tail.block": "dense"}, "tail.block: 'dense' is not allowed"),
    ("optional as string", lambda a: {**a, "extra.use": "true"}, "extra.use: 'true' is not allowed"),
    ("optional as int", lambda a: {**a, "extra.use": 1}, "extra.use: 1 is not allowed"),
    ("kernel out of options", lambda a: {**a, "stage1.b0.kernel": 7}, "stage1.b0.kernel: 7 is not allowed"),
    ("deeper than allowed", lambda a: {**a, "stage1.depth": 3}, "stage1.depth: 3 is not allowed"),
    (
        "extra repetition",
        lambda a: (
            {**a, "stage1.depth": 1, "stage1.b1.kernel": 3} if "stage1.b1.kernel" not in a else {**a, "stage1.depth": 1}
        ),
        "stage1.b1.kernel: inactive",
    ),
    ("empty arch", lambda a: {}, "stage1.width: missing"),
    ("not a mapping", lambda a: [1, 2], "an arch is a mapping"),
    ("none value", lambda a: {**a, "stage1.width": None}, "stage1.width: None is not allowed"),
    ("float for int", lambda a: {**a, "stage1.width": 8.5}, "stage1.width: 8.5 is not allowed"),
    ("list value", lambda a: {**a, "stage1.width": [8]}, "stage1.width: [8] is not allowed"),
    ("constraint", None, "constraint violated: wide enough"),
    ("nested path typo", lambda a: {**a, "tail.pool.knd": "max"}, "not a decision"),
]


@pytest.mark.parametrize("label, corrupt, message", BAD_ARCHS, ids=[b[0] for b in BAD_ARCHS])
def test_invalid_archs_get_one_line_errors(tmp_path, label, corrupt, message):
    path = tmp_path / "tiny.yaml"
    path.write_text(GOOD if label != "constraint" else GOOD.replace("stage1.width >= 8", "stage1.width >= 16"))
    space = load_space(path)
    if corrupt is None:
        bad = dict(space_from_yaml(GOOD).default())  # width 8 violates the tightened constraint
    elif label == "inactive branch":
        bad = corrupt(dict(space.validate({**space.default(), "tail.block": "conv", "tail.conv.kernel": 1})))
    else:
        bad = corrupt(dict(space.default()))
    with pytest.raises(InvalidArchError) as info:
        space.validate(bad)
    msg = str(info.value)
    assert "\n" not in msg and message in msg, msg
    if isinstance(bad, dict):
        assert not space.contains(bad)


def test_at_least_twenty_kinds_of_each():
    assert len(BAD_YAML) >= 20 and len(BAD_ARCHS) >= 20


def test_callable_constraints_have_no_yaml_form():
    from spaces import Block, Constraint, Sequential, Space

    space = Space("c", Sequential({"a": Block("conv_bn_act", out=8)}), constraints=[Constraint(lambda a: True, "fn")])
    with pytest.raises(HwnasError, match="Python callable"):
        space.to_yaml()
