"""Block keys: format, completeness, uniqueness over the built-in spaces."""

from __future__ import annotations

import pytest

from latency_lut.keys import KEY_RE, block_family, block_key, overhead_key, parse_key, quantize_key
from spaces import ResolvedBlock, create_space


def _block(op="mbconv", **params):
    base = {"act": "relu", "expand": 6.0, "kernel": 3, "out": 64, "se": 0.0, "stride": 1}
    base.update(params)
    return ResolvedBlock("stage1.b0", op, tuple(sorted(base.items())), 64, 28, 28, base["out"], 28, 28)


def test_design_example_key():
    assert block_key(_block()) == "mbconv_relu_k3_e6_se0_s1_c64-64_h28w28_b1"
    assert block_key(_block(), batch=4).endswith("_b4")


def test_every_latency_parameter_changes_the_key():
    base = block_key(_block())
    for change in ({"act": "hardswish"}, {"kernel": 5}, {"expand": 4.0}, {"se": 0.25}, {"stride": 2}, {"out": 32}):
        assert block_key(_block(**change)) != base, change
    other_input = ResolvedBlock("x", "mbconv", _block().params, 32, 14, 14, 64, 14, 14)
    assert block_key(other_input) != base


def test_dropout_is_ignored_and_unknown_parameters_are_kept():
    a = ResolvedBlock(
        "head",
        "classifier",
        (("act", "relu"), ("dropout", 0.0), ("feature", 0), ("hidden", 0), ("num_classes", 10)),
        64,
        4,
        4,
        10,
        1,
        1,
    )
    b = ResolvedBlock(
        "head",
        "classifier",
        (("act", "relu"), ("dropout", 0.2), ("feature", 0), ("hidden", 0), ("num_classes", 10)),
        64,
        4,
        4,
        10,
        1,
        1,
    )
    assert block_key(a) == block_key(b) == "classifier_relu_f0_hd0_c64-10_h4w4_b1"
    custom = {"op": "myop", "params": {"groups": 4, "act": "relu"}, "cin": 8, "h": 8, "w": 8, "cout": 8}
    assert block_key(custom) == "myop_relu_groups4_c8-8_h8w8_b1"


@pytest.mark.parametrize(
    "name,resolution,in_chans",
    [("mobilenet", 28, 1), ("spaceevo", 28, 1), ("mobilenet", 224, 3), ("resnet", 32, 3), ("hhnas", 32, 3)],
)
def test_keys_are_unique_per_distinct_block(name, resolution, in_chans):
    space = create_space(name, in_chans=in_chans, num_classes=10, resolution=resolution)
    blocks = space.enumerate_blocks()
    keys = [block_key(b) for b in blocks]
    assert len(set(keys)) == len({b.signature() for b in blocks}) == len(blocks)
    assert all(KEY_RE.match(k) for k in keys)


def test_nb201_cells_are_ordinary_lut_blocks():
    """nb201 is written in the DSL: its cells' ops are blocks with keys like any other."""
    space = create_space("nb201")
    keys = [block_key(b) for b in space.blocks(space.default())]
    assert keys and all(isinstance(k, str) and KEY_RE.match(k) for k in keys)


def test_pseudo_keys_and_parse():
    assert quantize_key(1, 28, 28) == "quantize_c1_h28w28_b1"
    assert overhead_key() == "overhead_b1"
    assert parse_key("mbconv_relu_k3_e6_se0_s1_c64-64_h28w28_b1") == {
        "head": "mbconv_relu_k3_e6_se0_s1",
        "cin": 64,
        "cout": 64,
        "h": 28,
        "w": 28,
        "batch": 1,
    }
    assert block_family("mbconv", {"act": "hardswish", "se": 0.25}) == "mbconv hardswish+se"
    assert block_family("pool", {}) == "pool"
