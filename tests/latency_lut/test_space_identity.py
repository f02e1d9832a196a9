"""A LUT records the spaces it was made for (canonical YAML and hash); the predictor refuses a
LUT of another space in one line naming both hashes and the blocks it lacks; older LUTs whose
space records have no hash still work."""

from __future__ import annotations

import json

import pytest
from lut_test_helpers import TINY_SPACE_YAML, synthetic_lut

from latency_lut.db import open_lut
from latency_lut.keys import block_key
from latency_lut.manifest import legacy_signature, match_space_record, space_from_record, space_record
from latency_lut.predictor import LatencyPredictor, LUTSpaceMismatchError
from spaces import space_hash
from spaces.identity import SpaceMismatchError
from spaces.yaml_io import space_from_yaml

CORRECTION = {"model": "affine", "coef": [2.0, 0.5], "loo_rel_err": 0.0}


def _space(**replace: str):
    text = TINY_SPACE_YAML
    for old, new in replace.items():
        text = text.replace(old, new)
    return space_from_yaml(text)


K7 = {"kernel: {choice: [3, 5]}": "kernel: {choice: [3, 7]}"}  # new blocks
NARROW = {"width: {choice: [8, 16]}": "width: {choice: [8]}"}  # a sub-space: every block in the LUT


def test_record_holds_canonical_yaml_and_hash():
    space = _space()
    rec = space_record(space)
    assert rec["hash"] == space_hash(space) and rec["signature"] == f"tiny-{rec['hash'][:10]}"
    back = space_from_record(json.loads(json.dumps(rec)))
    assert space_hash(back) == rec["hash"] and back.input_shape == (1, 16, 16)
    assert space_record(_space(**K7))["signature"] != rec["signature"]  # same name, another space


def test_lut_of_another_space_names_both_hashes_and_missing_blocks(tmp_path):
    space, other = _space(), _space(**K7)
    synthetic_lut(tmp_path / "lut.db", space)
    with pytest.raises(LUTSpaceMismatchError) as info:
        LatencyPredictor(tmp_path / "lut.db", other)
    msg = str(info.value)
    assert space_hash(space) in msg and space_hash(other) in msg and "\n" not in msg
    have = {block_key(b) for b in space.enumerate_blocks()}
    missing = sorted({block_key(b) for b in other.enumerate_blocks()} - have)
    assert f"lacks {len(missing)} of its" in msg and sum(k in msg for k in missing) == 3 and msg.endswith(", ...)")
    assert isinstance(info.value, SpaceMismatchError)  # also a ConfigError: the CLI prints one line, exit 2
    with pytest.raises(LUTSpaceMismatchError):  # missing blocks are refused even when other spaces are allowed
        LatencyPredictor(tmp_path / "lut.db", other, allow_other_space=True)


def test_sub_space_is_refused_unless_allowed_and_then_uncorrected(tmp_path):
    space, narrow = _space(), _space(**NARROW)
    synthetic_lut(tmp_path / "lut.db", space, correction=CORRECTION)
    with pytest.raises(LUTSpaceMismatchError) as info:
        LatencyPredictor(tmp_path / "lut.db", narrow)
    assert space_hash(narrow) in str(info.value) and "nas profile" in str(info.value)
    pred = LatencyPredictor(tmp_path / "lut.db", narrow, allow_other_space=True)
    assert not pred.same_space and pred.correction is None and pred.missing_keys() == []
    same = LatencyPredictor(tmp_path / "lut.db", space)
    arch = narrow.sample(0)  # an arch of the sub-space is an arch of the space
    assert same.correction is not None
    assert pred.predict(arch) == pytest.approx(
        LatencyPredictor(tmp_path / "lut.db", space, correction=False).predict(arch)
    )


def test_renamed_copy_of_the_space_is_accepted(tmp_path):
    synthetic_lut(tmp_path / "lut.db", _space(), correction=CORRECTION)
    renamed = _space(**{"name: tiny": "name: tiny_copy"})
    pred = LatencyPredictor(tmp_path / "lut.db", renamed)
    assert pred.same_space and pred.correction is not None and pred.record["signature"].startswith("tiny-")


def test_lut_of_several_spaces_serves_each(tmp_path):
    space, other = _space(), _space(**K7)
    synthetic_lut(tmp_path / "a.db", space)
    synthetic_lut(tmp_path / "b.db", other)
    with open_lut(tmp_path / "m.db", "w") as out:
        for p in ("a.db", "b.db"):
            with open_lut(tmp_path / p) as src:
                out.merge_from(src)
    for s in (space, other):
        assert LatencyPredictor(tmp_path / "m.db", s).same_space
    with pytest.raises(LUTSpaceMismatchError) as info:
        LatencyPredictor(tmp_path / "m.db", _space(**{"stride: {expr: 2 if index == 0 else 1}": "stride: 1"}))
    assert space_hash(space) in str(info.value) and space_hash(other) in str(info.value)


def _one_block_mobilenet(kernel: int):
    """A MobileNet space of one block per stage, with one choice of everything."""
    from spaces import create_space

    return create_space(
        "mobilenet",
        in_chans=1,
        num_classes=10,
        resolution=28,
        stages=2,
        depths=[1],
        kernels=[kernel],
        expands=[2.0],
        width_mults=[0.5],
        scale=0.25,
    )


def test_old_record_without_hash_matches_and_is_upgraded(tmp_path):
    """LUTs written before records held a hash: matched by rebuilding the registered space (or
    by name, arguments and input); a later profiling run upgrades the record in place."""
    space = _one_block_mobilenet(3)
    old = {k: v for k, v in space_record(space).items() if k not in ("hash", "yaml")}
    old["signature"] = legacy_signature(old)
    sig, _ = synthetic_lut(tmp_path / "lut.db", space, record=old, correction=CORRECTION)
    assert sig == old["signature"]
    yaml_copy = space_from_yaml(space.to_yaml().replace("name: mobilenet", "name: mine", 1))
    for s in (space, yaml_copy):
        pred = LatencyPredictor(tmp_path / "lut.db", s)
        assert pred.same_space and pred.record["signature"] == old["signature"] and pred.correction is not None
    other = _one_block_mobilenet(5)
    with pytest.raises(LUTSpaceMismatchError) as info:
        LatencyPredictor(tmp_path / "lut.db", other)
    assert space_hash(space) in str(info.value) and space_hash(other) in str(info.value)
    with open_lut(tmp_path / "lut.db", "a") as db:
        assert db.register_space(space_record(space)) == old["signature"]  # keeps its networks / correction
        (rec,) = db.spaces()
    assert rec["hash"] == space_hash(space) and rec["yaml"] and rec["signature"] == old["signature"]
    assert match_space_record([rec], space_record(yaml_copy)) == rec
