"""Graph nodes of the DSL (cells, parallel branches, residuals, switches): every space service."""

from __future__ import annotations

import sys
from pathlib import Path

import numpy as np
import pytest
import torch

sys.path.insert(0, str(Path(__file__).resolve().parent))
from graph_spaces import GRAPH_SPACES, graph_space  # noqa: E402

from hwnas.errors import ConfigError, SpaceDefinitionError
from spaces import Block, Cell, CellNode, Choice, Edge, Residual, Sequential, Space, Switch, Wire, create_space
from spaces.yaml_io import space_from_yaml


@pytest.mark.parametrize("name", GRAPH_SPACES)
def test_services(name):
    s = graph_space(name)
    a = s.sample(3)
    assert s.validate(a) == a and s.contains(a)
    assert s.mutate(a, 1) != a and s.contains(s.mutate(a, 1))
    assert s.contains(s.crossover(a, s.sample(4), 2))
    assert len(s.encode(a)) == len(s.decisions())
    # sequential order (MCTS): answering next_decision one by one rebuilds the arch
    partial: dict = {}
    while (d := s.next_decision(partial)) is not None:
        partial[d.path] = a[d.path]
    assert s.validate(partial) == a
    # blocks for the LUT: every block of an arch is among the enumerated ones
    enumerated = {b.signature() for b in s.enumerate_blocks()}
    for seed in range(5):
        assert all(b.signature() in enumerated for b in s.blocks(s.sample(seed)))


@pytest.mark.parametrize("name", ["toy", "yaml"])
def test_exact_size_by_enumeration(name):
    s = graph_space(name)
    archs = list(s.enumerate())
    assert len(archs) == len(set(archs)) == s.size()
    assert all(s.contains(x) for x in archs[:: max(1, len(archs) // 50)])


@pytest.mark.parametrize("name", GRAPH_SPACES)
def test_yaml_round_trip(name):
    s = graph_space(name)
    text = s.to_yaml()
    s2 = space_from_yaml(text)
    assert s2.to_yaml() == text and s2.size() == s.size()
    for seed in range(5):
        a = s.sample(seed)
        assert s2.validate(a) == a
        assert [b.signature() for b in s2.blocks(a)] == [b.signature() for b in s.blocks(a)]


def test_optuna_suggest():
    optuna = pytest.importorskip("optuna")
    s = graph_space("toy")
    study = optuna.create_study(sampler=optuna.samplers.RandomSampler(seed=0))
    for _ in range(5):
        trial = study.ask()
        assert s.contains(s.suggest(trial))
        study.tell(trial, 0.0)


@pytest.mark.parametrize("name", GRAPH_SPACES)
def test_build_and_onnx_export(name):
    import onnxruntime as ort

    from quant.export import export_fp32_bytes

    s = graph_space(name)
    a = s.sample(5)
    net = s.build(a)
    assert net.steps is not None and any(isinstance(w, Wire) for w in s.program(a))
    x = torch.randn(2, *s.input_shape)
    with torch.no_grad():
        y = net(x)
    assert tuple(y.shape) == (2, s.num_classes)
    data = export_fp32_bytes(net, s.input_shape, dynamic_batch=True)
    out = ort.InferenceSession(data, providers=["CPUExecutionProvider"]).run(None, {"input": x.numpy()})[0]
    assert np.abs(out - y.numpy()).max() < 1e-4


def test_cell_wiring_computes_what_it_says():
    """out = concat(a, b) with a = conv(x), b = a + a (two identity edges) added to x by a residual."""
    cell = Cell(
        {"a": CellNode([Edge(0, Block("conv_bn_act", out=4, kernel=3))]), "b": CellNode([1, 1])},
        output=["a", "b"],
    )
    s = Space("t", Sequential({"res": Residual(cell)}), in_chans=8, resolution=6)
    net = s.build(s.default())
    x = torch.randn(1, 8, 6, 6)
    with torch.no_grad():
        a = net.blocks[0](x)
        assert torch.allclose(net(x), torch.cat([a, a + a], 1) + x)


def test_definition_errors_name_the_place():
    with pytest.raises(SpaceDefinitionError, match="not an earlier node"):
        Cell({"a": CellNode([Edge(Choice([0, 1]), None)])})
    with pytest.raises(SpaceDefinitionError, match="not a node"):
        Cell({"a": CellNode([0])}, output="z")
    with pytest.raises(SpaceDefinitionError, match="decisions of its own"):
        Switch("x", {"x": Block("conv_bn_act", out=4, kernel=Choice([3, 5]))})
    with pytest.raises(SpaceDefinitionError, match="a merge is one of"):
        CellNode([0, 0], merge="mul")
    bad = Cell({"a": CellNode([Edge(0, Block("conv_bn_act", out=4)), Edge(0, None)])})
    s = Space("t", Sequential({"c": bad}), in_chans=8, resolution=6)
    with pytest.raises(SpaceDefinitionError, match=r"c\.a: cannot add tensors of shapes 4x6x6, 8x6x6"):
        s.default()


def test_yaml_errors_name_the_yaml_path():
    text = """
name: t
body:
  cell:
    a: {edges: [{input: 0, opp: {op: skip}}]}
"""
    with pytest.raises(ConfigError, match=r"body.*edges\[0\].*unknown key 'opp'"):
        space_from_yaml(text)


def test_darts_space_shape():
    s = create_space("darts")
    assert s.size() == (8 * 8) * (2 * 8) ** 2 * (3 * 8) ** 2 * (4 * 8) ** 2
    paths = [d.path for d in s.decisions()]
    assert len(paths) == 14 and paths[:2] == ["stages.cell.n1.e0.op", "stages.cell.n1.e1.op"]
    ops = s.decision("stages.cell.n4.e1.op").options
    assert len(ops) == 8 and s.decision("stages.cell.n4.e1.input").options == (1, 2, 3, 4)


# -- properties (hypothesis) -----------------------------------------------------------------
from hypothesis import given, settings  # noqa: E402
from hypothesis import strategies as st  # noqa: E402

_names = st.sampled_from(GRAPH_SPACES)
_seeds = st.integers(min_value=0, max_value=2**32 - 1)
_FAST = settings(max_examples=40, deadline=None)


@_FAST
@given(_names, _seeds)
def test_property_sample_validates_and_round_trips(name, seed):
    s = graph_space(name)
    a = s.sample(seed)
    assert s.sample(seed) == a and s.validate(dict(a)) == a
    assert s.validate(type(a).from_json(a.to_json())) == a
    assert space_from_yaml(s.to_yaml()).validate(a) == a


@_FAST
@given(_names, _seeds, _seeds)
def test_property_encode_is_injective_and_decisions_active(name, s1, s2):
    s = graph_space(name)
    a, b = s.sample(s1), s.sample(s2)
    ea, eb = s.encode(a), s.encode(b)
    assert ea.shape == eb.shape == (len(s.decisions()),)
    assert (a == b) == bool((ea == eb).all())
    assert [d.path for d in s.active_decisions(a)] == sorted(a, key=[d.path for d in s.decisions()].index)


@_FAST
@given(_names, _seeds, _seeds)
def test_property_mutate_and_crossover_stay_in_the_space(name, seed, mseed):
    s = graph_space(name)
    a, b = s.sample(seed), s.sample(mseed)
    m = s.mutate(a, mseed)
    assert m != a and s.contains(m)
    c = s.crossover(a, b, seed)
    assert s.contains(c)
    assert all(c[p] in (a.get(p), b.get(p)) for p in c if p in a and p in b)


@_FAST
@given(_names, _seeds)
def test_property_invalid_values_are_refused(name, seed):
    s = graph_space(name)
    a = s.sample(seed)
    path = sorted(a)[seed % len(a)]
    with pytest.raises(Exception, match=path.replace(".", r"\.")):
        s.validate({**a, path: "no-such-option"})
