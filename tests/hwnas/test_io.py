"""The bottom layer: errors, seeding and I/O helpers."""
from __future__ import annotations

import random

import pytest

from hwnas import HwnasError, make_rng
from hwnas.errors import ConfigError, InvalidArchError, SpaceDefinitionError, UnknownNameError
from hwnas.io import atomic_write_text, canonical_json, load_yaml_file, read_json_file


def test_every_error_derives_from_the_root():
    for cls in (ConfigError, InvalidArchError, SpaceDefinitionError, UnknownNameError):
        assert issubclass(cls, HwnasError)
    assert str(UnknownNameError("unknown x")) == "unknown x"


def test_make_rng():
    assert make_rng(3).random() == random.Random(3).random()
    r = random.Random(1)
    assert make_rng(r) is r
    import numpy as np

    assert make_rng(np.random.default_rng(0)).random() == make_rng(np.random.default_rng(0)).random()
    with pytest.raises(TypeError):
        make_rng("seed")


def test_canonical_json_sorts_keys():
    assert canonical_json({"b": 1, "a": [1, 2]}) == '{"a":[1,2],"b":1}'


def test_file_errors_are_one_line(tmp_path):
    with pytest.raises(ConfigError, match="no such file"):
        read_json_file(tmp_path / "x.json")
    bad = tmp_path / "bad.json"
    bad.write_text("{oops")
    with pytest.raises(ConfigError, match=r"invalid JSON at line 1"):
        read_json_file(bad)
    bad_yaml = tmp_path / "bad.yaml"
    bad_yaml.write_text("a: [1\n")
    with pytest.raises(ConfigError, match="invalid YAML"):
        load_yaml_file(bad_yaml)


def test_atomic_write(tmp_path):
    p = tmp_path / "sub" / "f.txt"
    atomic_write_text(p, "hello")
    assert p.read_text() == "hello"
    assert [x.name for x in p.parent.iterdir()] == ["f.txt"]


def test_json_safe_turns_non_finite_floats_into_null():
    import json
    import math

    from hwnas.io import json_safe

    data = {"a": [1.0, math.nan, {"b": math.inf}], "c": -math.inf, "d": "x"}
    assert json_safe(data) == {"a": [1.0, None, {"b": None}], "c": None, "d": "x"}
    json.dumps(json_safe(data), allow_nan=False)
