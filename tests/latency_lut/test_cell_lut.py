"""The LUT of graph (cell) spaces (issue 21): networks priced from their parts, i.e. the edges' and
nodes' op blocks and the merges (sums of k inputs, concatenations), with identities free and a
weightless op on one tensor priced once; a bounded set of parts; the additive prediction; the
real `nas profile` + `nas lut validate` on a tiny cell space."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from latency_lut.keys import KEY_RE, is_merge, merge_key, part_key
from latency_lut.parts import network_parts, sampled_parts, space_parts
from spaces import ResolvedMerge, create_space

ROOT = Path(__file__).resolve().parents[2]
RESIDUAL_EXAMPLE = ROOT / "docs" / "examples" / "residual_cell_space.yaml"

_EDGE_OPS = """\
                or:
                  none: {op: zero}
                  skip: {op: skip}
                  conv: {op: relu_conv_bn, kernel: 1}
                  pool: {op: pool, kind: avg, kernel: 3}"""

#: stem, one cell of two nodes (node a: one edge from the input; node b: edges from the input and
#: from a, summed), head: 4 × 4 × 4 = 64 archs
TINY_CELL_YAML = f"""\
name: tinycell
in_chans: 1
num_classes: 10
resolution: 8
body:
  sequential:
    stem: {{op: conv_bn_act, out: 4, kernel: 3}}
    cell:
      cell:
        a:
          edges:
            - input: 0
              op:
{_EDGE_OPS}
        b:
          edges:
            - input: 0
              op:
{_EDGE_OPS}
            - input: 1
              op:
{_EDGE_OPS}
    head: {{op: classifier, num_classes: {{ref: num_classes}}}}
"""


@pytest.fixture(scope="module")
def tiny_cell_file(tmp_path_factory) -> Path:
    path = tmp_path_factory.mktemp("cellspace") / "tinycell.yaml"
    path.write_text(TINY_CELL_YAML)
    return path


@pytest.fixture(scope="module")
def tiny_cell(tiny_cell_file):
    return create_space(str(tiny_cell_file))


def _arch(a: str, b0: str, b1: str) -> dict[str, str]:
    return {"cell.a.e0.op": a, "cell.b.e0.op": b0, "cell.b.e1.op": b1}


# -- keys and parts -----------------------------------------------------------------------------
def test_merge_keys():
    assert merge_key("add", [(16, 32, 32)] * 3) == "add_n3_c16-16_h32w32_b1"
    assert merge_key("concat", [(8, 28, 28), (16, 28, 28)], batch=2) == "concat_n2_i8.16_c24-24_h28w28_b2"
    part = ResolvedMerge("cell.merge", "concat", ((8, 4, 4), (8, 4, 4)))
    assert is_merge(part) and part.cout == 16 and part_key(part) == "concat_n2_i8.8_c16-16_h4w4_b1"
    from latency_lut.errors import UnsupportedSpaceError

    with pytest.raises(UnsupportedSpaceError, match="a merge is one of"):
        merge_key("mul", [(8, 4, 4), (8, 4, 4)])
    with pytest.raises(UnsupportedSpaceError, match="different shapes"):
        merge_key("add", [(8, 4, 4), (16, 4, 4)])


def test_nb201_prices_a_bounded_set_of_parts():
    """nb201's 15,625 cells need 23 measured parts at 32 px: 14 edge-op blocks (no skip, an
    identity) at three resolutions, stem, two reductions, BN-ReLU, head, and 6 node sums."""
    space = create_space("nb201")
    parts = space_parts(space)
    keys = [part_key(p) for p in parts]
    assert len(keys) == len(set(keys)) == 23 and all(KEY_RE.match(k) for k in keys)
    assert sum(is_merge(p) for p in parts) == 6
    assert not any(k.startswith("skip") for k in keys)
    covered = set(keys)
    for i in range(30):  # every part of a network is a part of the space
        assert {part_key(p) for p in network_parts(space, space.sample(i))} <= covered


def test_skip_is_free_and_weightless_ops_on_one_tensor_are_priced_once():
    from spaces.builtin.nb201 import nb201_arch_from_str

    space = create_space("nb201")
    skips = network_parts(
        space,
        nb201_arch_from_str("+".join("|" + "|".join(f"skip_connect~{j}" for j in range(i)) + "|" for i in (1, 2, 3))),
    )
    ops = [p.op for p in skips if not is_merge(p)]
    # stem, the two reductions, BN-ReLU and the head: no edge op at all; 15 cells of 2 sums
    assert ops == ["conv_bn", "nb201_reduction", "nb201_reduction", "bn_act", "classifier"]
    assert sum(is_merge(p) for p in skips) == 30
    # three pools of node 0 (edges 0->1, 0->2, 0->3) are one pool per cell in the engine's graph
    arch = nb201_arch_from_str(
        "|avg_pool_3x3~0|+|avg_pool_3x3~0|nor_conv_1x1~1|+|avg_pool_3x3~0|nor_conv_1x1~1|nor_conv_1x1~2|"
    )
    pools = [p for p in network_parts(space, arch) if not is_merge(p) and p.op == "pool"]
    assert len(pools) == 15


def test_residual_example_and_darts_parts(tiny_cell):
    residual = create_space(str(RESIDUAL_EXAMPLE))
    keys = {part_key(p) for p in space_parts(residual)}
    assert {"concat_n2_i8.8_c16-16_h28w28_b1", "add_n2_c16-16_h28w28_b1"} <= keys
    for space in (residual, create_space("darts"), tiny_cell):
        parts = space_parts(space)
        assert len(parts) < 100  # bounded, whatever the number of archs
        assert {part_key(p) for p in sampled_parts(space, 20)} <= {part_key(p) for p in parts}


def test_tiny_cell_parts(tiny_cell):
    keys = sorted(part_key(p) for p in space_parts(tiny_cell))
    # stem, head, zero / conv / pool at 4x8x8, the sum of node b
    assert len(keys) == 6 and "add_n2_c4-4_h8w8_b1" in keys
    assert tiny_cell.size() == 64


# -- the additive prediction --------------------------------------------------------------------
def test_prediction_sums_a_cell_networks_parts(tmp_path, tiny_cell):
    from lut_test_helpers import synthetic_lut

    from latency_lut.keys import overhead_key, quantize_key
    from latency_lut.predictor import LatencyPredictor

    _, lat = synthetic_lut(tmp_path / "lut.db", tiny_cell)
    pred = LatencyPredictor(tmp_path / "lut.db", tiny_cell, correction=False)
    stem_head = [k for k in lat if k.startswith(("conv_bn_act", "classifier"))]
    extras = lat[quantize_key(1, 8, 8)] - lat[overhead_key()]  # one input quantization, one engine call less
    add = "add_n2_c4-4_h8w8_b1"
    ov = lat[overhead_key()]

    def expected(keys: list[str]) -> float:
        return sum(lat[k] for k in keys) + extras - (len(keys) - 1) * ov

    # identity edges only: the network is stem, head and node b's sum
    assert pred.predict(_arch("skip", "skip", "skip")) == pytest.approx(expected([*stem_head, add]))
    conv = "relu_conv_bn_k1_s1_c4-4_h8w8_b1"
    assert pred.predict(_arch("conv", "conv", "skip")) == pytest.approx(expected([*stem_head, conv, conv, add]))
    # a zero edge costs its op (x * 0 is in the exported graph), computed once per tensor
    zero = "zero_c4-4_h8w8_b1"
    assert pred.predict(_arch("none", "none", "skip")) == pytest.approx(expected([*stem_head, zero, add]))
    # a pool of node 0 twice (edges 0->a and 0->b): one pool
    pool = "pool_avg_k3_s1_c4-4_h8w8_b1"
    assert pred.predict(_arch("pool", "pool", "conv")) == pytest.approx(expected([*stem_head, pool, conv, add]))
    # every arch of the space is priced, deterministically
    archs = list(tiny_cell.enumerate())
    first = pred.predict(archs)
    assert len(first) == 64 and (first > 0).all() and (pred.predict(archs) == first).all()
    pred.close()


def test_a_lut_missing_a_merge_is_one_line(tmp_path, tiny_cell):
    from lut_test_helpers import synthetic_lut

    from latency_lut.errors import MissingBlockError
    from latency_lut.predictor import LatencyPredictor

    synthetic_lut(tmp_path / "lut.db", tiny_cell, skip=["add_n2_c4-4_h8w8_b1"])
    pred = LatencyPredictor(tmp_path / "lut.db", tiny_cell)
    with pytest.raises(MissingBlockError) as err:
        pred.predict(_arch("conv", "conv", "conv"))
    assert "\n" not in str(err.value) and "add_n2_c4-4_h8w8_b1" in str(err.value) and "cell.b.merge" in str(err.value)
    pred.close()


# -- merge models ---------------------------------------------------------------------------------
def test_merge_models_read_and_write_uint8_nhwc():
    import numpy as np
    import onnx
    import onnxruntime as ort

    from latency_lut.export import merge_models

    part = ResolvedMerge("n.merge", "concat", ((8, 4, 4), (16, 4, 4)))
    models = merge_models(part, ["int8_nhwc", "fp32"])
    m = onnx.load_from_string(models["int8_nhwc"])
    ins = [[d.dim_value for d in i.type.tensor_type.shape.dim] for i in m.graph.input]
    assert ins == [[1, 4, 4, 8], [1, 4, 4, 16]]
    assert all(i.type.tensor_type.elem_type == onnx.TensorProto.UINT8 for i in m.graph.input)
    so = ort.SessionOptions()
    so.log_severity_level = 3
    sess = ort.InferenceSession(models["int8_nhwc"], so, providers=["CPUExecutionProvider"])
    feed = {i.name: np.zeros(i.shape, dtype=np.uint8) for i in sess.get_inputs()}
    assert sess.run(None, feed)[0].shape == (1, 4, 4, 24)
    add = merge_models(ResolvedMerge("n.merge", "add", ((4, 4, 4),) * 3), ["fp32"])["fp32"]
    assert [n.op_type for n in onnx.load_from_string(add).graph.node] == ["Add", "Add"]


# -- the real commands ----------------------------------------------------------------------------
def test_profile_and_validate_a_cell_space(tmp_path, tiny_cell_file, fast_target, capsys):
    """`nas profile` measures the tiny cell space's parts (6) and 3 calibration networks;
    `nas lut validate` measures 3 networks against the prediction."""
    from latency_lut.db import open_lut
    from nas.cli import main

    lut = tmp_path / "lut.db"
    args = ["--space", str(tiny_cell_file), "--target", str(fast_target)]
    assert main(["profile", *args, "--out", str(lut), "--networks", "3", "--retry-passes", "0", "--no-progress"]) == 0
    with open_lut(lut, "r") as db:
        fp = db.fingerprints()[0]["fp_id"]
        keys = db.done_keys(fp)
    assert {part_key(p) for p in space_parts(create_space(str(tiny_cell_file)))} <= keys
    assert "add_n2_c4-4_h8w8_b1" in keys and not any(k.startswith("skip") for k in keys)
    capsys.readouterr()
    assert main(["lut", "validate", "--lut", str(lut), *args, "--n", "3", "--passes", "1", "--json"]) == 0
    out = json.loads(capsys.readouterr().out)
    assert len(out["networks"]) == 3
    assert all(n["predicted_ms"] > 0 and n["measured_ms"] > 0 for n in out["networks"])


def test_a_cell_space_too_large_to_list_is_one_line(tmp_path, capsys):
    """A cell whose nodes choose among many widths and are concatenated has more part variants
    than a walk lists (SpaceTooLargeError): `nas profile` says so in one line."""
    from nas.cli import main

    widths = list(range(1, 61))
    nodes = "\n".join(
        f"        n{i}:\n          edges:\n            - input: 0\n              op: {{op: conv_bn_act, out: {{choice: {widths}}}, kernel: 1}}"
        for i in range(1, 5)
    )
    space = tmp_path / "huge.yaml"
    space.write_text(
        "name: huge\nin_chans: 1\nresolution: 8\nbody:\n  sequential:\n    cell:\n      cell:\n"
        f"{nodes}\n      output: [n1, n2, n3, n4]\n    head: {{op: classifier, num_classes: 10}}\n"
    )
    rc = main(["profile", "--space", str(space), "--target", "cpu-ort-int8", "--out", str(tmp_path / "lut.db")])
    err = capsys.readouterr().err.strip()
    assert rc != 0 and "too many block variants" in err and len(err.splitlines()) == 1 and "Traceback" not in err
