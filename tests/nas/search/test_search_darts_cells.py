"""DARTS on DSL cell spaces: the relaxation (mixed ops, pooled input choices, fixed decisions),
the derivation, tiny seeded searches on ``darts`` and a YAML cell space, and clean refusals."""

from __future__ import annotations

from pathlib import Path

import pytest

from hwnas.errors import ConfigError
from nas.search import create_searcher
from nas.search.darts import _supernet, run_darts
from nas.search.darts_relax import relax_space
from spaces import Block, Cell, CellNode, Choice, Edge, Or, Repeat, Sequential, Space, create_space, load_space

pytestmark = pytest.mark.usefixtures("one_thread")

ROOT = Path(__file__).resolve().parents[3]
RESIDUAL_YAML = ROOT / "docs" / "examples" / "residual_cell_space.yaml"
TINY = dict(train_size=64, batch_size=16, epochs=1, channels=2, cells=1, threads=1, seed=0)


@pytest.fixture(scope="module")
def darts_space():
    return create_space("darts", in_chans=1, resolution=28, channels=2, cells=1)


@pytest.fixture(scope="module")
def darts_relaxed(darts_space):
    return relax_space(darts_space)


def _ops() -> Or:
    return Or({"none": Block("zero"), "conv": Block("conv_bn_act", out=4, kernel=3), "skip": Block("skip")})


def _toy(cell: Cell, name: str = "toy") -> Space:
    body = Sequential(
        {
            "stem": Block("conv_bn", out=4, kernel=3),
            "cell": cell,
            "head": Block("classifier", num_classes=10),
        }
    )
    return Space(name, body, in_chans=1, num_classes=10, resolution=8)


def test_darts_space_relaxation(darts_space, darts_relaxed):
    r = darts_relaxed
    # n1: two edges from pre (one mixed op each); n2..n4: one mixed op per candidate input (DARTS)
    assert [u.name for u in r.units][:4] == [
        "stages.cell.n1.e0",
        "stages.cell.n1.e1",
        "stages.cell.n2[1]",
        "stages.cell.n2[2]",
    ]
    assert len(r.units) == 2 + 2 + 3 + 4 and r.fixed == {}
    assert all(len(u.candidates) == 8 for u in r.units)
    assert [c.kind for c in r.units[0].candidates].count("none") == 1
    assert [c.kind for c in r.units[0].candidates].count("skip") == 1
    # every relaxed decision of the space is decided by DARTS
    assert r.relaxed_paths == {d.path for d in darts_space.decisions()}
    assert len(r.mixed_sources()) == len(r.units)


def test_darts_derivation_picks_strongest_inputs(darts_space, darts_relaxed):
    r = darts_relaxed
    names = [u.name for u in r.units]
    ops = [c.label for c in r.units[0].candidates]
    weights = [[0.1] * 8 for _ in r.units]
    # node 4: inputs 2 and 4 are strongest (non-none); input 1 has a strong none only
    weights[names.index("stages.cell.n4[2]")][ops.index("sep_conv_3x3")] = 0.6
    weights[names.index("stages.cell.n4[4]")][ops.index("dil_conv_5x5")] = 0.5
    weights[names.index("stages.cell.n4[1]")][ops.index("none")] = 0.9
    arch = r.derive(weights, "darts")
    assert darts_space.validate(arch) == arch
    assert arch["stages.cell.n4.e0.input"] == 2 and arch["stages.cell.n4.e0.op"] == "sep_conv_3x3"
    assert arch["stages.cell.n4.e1.input"] == 4 and arch["stages.cell.n4.e1.op"] == "dil_conv_5x5"
    argmax = r.derive(weights, "argmax")
    assert argmax["stages.cell.n4.e0.input"] == 1 and argmax["stages.cell.n4.e0.op"] == "none"
    with pytest.raises(ConfigError, match="genotype rule"):
        r.derive(weights, "other")


def test_supernet_is_the_relaxed_space_network(darts_relaxed):
    import torch

    torch.manual_seed(0)
    net = _supernet(darts_relaxed, max_w=True)
    with torch.no_grad():
        net.alpha.copy_(torch.randn_like(net.alpha))
    w = net.op_weights()
    sm = torch.softmax(net.alpha, -1)
    assert torch.allclose(w, 1 - sm.max(-1, keepdim=True).values + sm)
    out = net(torch.randn(2, 1, 28, 28))
    assert out.shape == (2, 10)
    out.sum().backward()
    assert net.alpha.grad is not None and float(net.alpha.grad.abs().sum()) > 0


def test_tiny_darts_on_darts_space_is_deterministic(darts_space):
    import torch

    given = create_space("darts", in_chans=1, resolution=28)  # searched at 2 channels, 1 cell per stage
    tiny = {**TINY, "train_size": 32}  # one step of each kind: the darts supernet is the largest here
    a = run_darts(space=given, **tiny)
    b = run_darts(space=given, **tiny)
    assert a.weights == b.weights and a.arch == b.arch and a.arch_argmax == b.arch_argmax
    assert given.validate(a.arch) == a.arch and given.validate(a.arch_argmax) == a.arch_argmax
    assert len(a.units) == 11 and all(abs(sum(w) - 1) < 1e-5 for w in a.weights)
    net = darts_space.build(a.arch)
    assert net(torch.randn(2, 1, 28, 28)).shape == (2, 10)
    d = a.to_dict()
    assert d["space"] == "darts" and set(d["weights"]) == set(a.units) and "arch_str" not in d
    assert "skip_weight" in a.history[0]


def test_tiny_darts_on_yaml_cell_space():
    import torch

    space = load_space(RESIDUAL_YAML)
    a = run_darts(space=space, **TINY)
    b = run_darts(space=space, **TINY)
    assert a.weights == b.weights and a.arch == b.arch
    assert space.validate(a.arch) == a.arch
    # the stage depth is outside the cell: fixed to its default, and said so
    assert a.fixed == {"stage1.depth": 1} and a.arch["stage1.depth"] == 1
    assert a.units == ["stage1.b0.a.e0", "stage1.b0.b[0]", "stage1.b0.b[1]"]
    assert a.candidates[1] == ["conv", "op=dwsep,dwsep.kernel=3", "op=dwsep,dwsep.kernel=5"]
    assert space.build(a.arch)(torch.randn(2, 1, 28, 28)).shape == (2, 10)
    assert any(b.path.startswith("stage1.b0.b.e0") for b in space.blocks(a.arch))  # what the LUT sums


def test_fixed_values_choose_the_network_around_the_cells():
    space = load_space(RESIDUAL_YAML)
    r = relax_space(space, {"stage1.depth": 2})
    # two repetitions of a non-shared repeat: each cell has decisions (and mixed ops) of its own
    assert [u.name for u in r.units] == [
        "stage1.b0.a.e0",
        "stage1.b0.b[0]",
        "stage1.b0.b[1]",
        "stage1.b1.a.e0",
        "stage1.b1.b[0]",
        "stage1.b1.b[1]",
    ]
    arch = r.derive([[0.2, 0.8], [0.1, 0.2, 0.7], [0.5, 0.3, 0.2], [0.9, 0.1], [0.3, 0.3, 0.4], [0.1, 0.8, 0.1]])
    assert space.validate(arch) == arch
    assert arch["stage1.b0.a.e0.kernel"] == 5 and arch["stage1.b1.a.e0.kernel"] == 3
    # b reads the input whose mixed op has the strongest candidate (0.7 on input 0; 0.8 on input 1)
    assert arch["stage1.b0.b.e0.input"] == 0 and arch["stage1.b0.b.e0.dwsep.kernel"] == 5
    assert arch["stage1.b1.b.e0.input"] == 1 and arch["stage1.b1.b.e0.dwsep.kernel"] == 3
    with pytest.raises(ConfigError, match="stage1.dpth.*did you mean"):
        relax_space(space, {"stage1.dpth": 2})
    with pytest.raises(ConfigError, match="not allowed"):
        relax_space(space, {"stage1.depth": 3})


def test_node_ops_and_unsummable_input_choices():
    cell = Cell(
        {
            "a": CellNode([Edge(0, _ops())], op=Or({"id": Block("skip"), "act": Block("bn_act")})),
            # a node that concatenates its edges: its input choice cannot be summed; it is fixed
            "b": CellNode([Edge(Choice([0, 1]), _ops()), Edge(1, Block("skip"))], merge="concat"),
        },
        output="b",
    )
    space = _toy(cell)
    r = relax_space(space)
    assert [u.name for u in r.units] == ["cell.a.e0", "cell.a.op", "cell.b.e0"]
    assert r.fixed == {"cell.b.e0.input": 0}
    arch = r.derive([[0.1, 0.2, 0.7], [0.3, 0.7], [0.8, 0.1, 0.1]], "darts")
    assert arch == space.validate(
        {"cell.a.e0.op": "skip", "cell.a.op": "act", "cell.b.e0.input": 0, "cell.b.e0.op": "conv"}
    )


def test_pool_of_fewer_inputs_than_edges_is_fixed():
    # three edges choosing among two inputs cannot take distinct ones: their inputs are fixed
    cell = Cell({"a": CellNode([Edge(0, _ops())]), "b": CellNode([Edge(Choice([0, 1]), _ops()) for _ in range(3)])})
    r = relax_space(_toy(cell))
    assert {"cell.b.e0.input", "cell.b.e1.input", "cell.b.e2.input"} <= set(r.fixed)
    assert [u.name for u in r.units] == ["cell.a.e0", "cell.b.e0", "cell.b.e1", "cell.b.e2"]


def test_mixed_options_must_have_one_shape():
    cell = Cell({"a": CellNode([Edge(0, Or({"narrow": Block("conv_bn", out=4), "wide": Block("conv_bn", out=8)}))])})
    with pytest.raises(ConfigError, match="DARTS sums the options.*cannot add tensors"):
        relax_space(_toy(cell))


@pytest.mark.parametrize(
    "space, message",
    [
        (lambda: create_space("mobilenet"), "space 'mobilenet' has no cell"),
        (lambda: create_space("resnet"), "space 'resnet' has no cell"),
        (
            lambda: _toy(Cell({"a": CellNode([Edge(0, Block("skip"))]), "b": CellNode([0, 1])})),
            "has cells but no choice inside them",
        ),
        (
            lambda: _toy(Repeat(Cell({"a": CellNode([Edge(0, _ops())])}), Choice([0, 1]))),
            "no cell in the arch of the fixed and default values",
        ),
    ],
)
def test_refusals_are_one_line(space, message):
    with pytest.raises(ConfigError, match=message) as info:
        create_searcher("darts", space())
    assert "\n" not in str(info.value)


def test_cli_darts_on_yaml_cell_space(run_nas):
    import json

    res = run_nas(
        "search",
        "--space",
        str(RESIDUAL_YAML),
        "--searcher",
        "darts",
        "--seed",
        "0",
        "--set",
        "train_size=64",
        "--set",
        "batch_size=16",
        "--set",
        "epochs=1",
        "--set",
        "threads=1",
        "--train-size",
        "32",
        "--epochs",
        "1",
        "--json",
        "--quiet",
    )
    assert res.returncode == 0, res.stderr
    out = json.loads(res.stdout)
    assert out["queries"] == 1 and out["stopped"] == "exhausted"
    assert load_space(RESIDUAL_YAML).contains(out["best"]["arch"])
    assert 0 <= out["best"]["values"]["proxy_acc"] <= 100


def test_cli_darts_refuses_a_chain_space_in_one_line(run_nas):
    res = run_nas("search", "--space", "mobilenet", "--searcher", "darts", "--json", "--quiet")
    assert res.returncode == 2
    assert res.stderr.strip().count("\n") == 0 and "has no cell" in res.stderr and "Traceback" not in res.stderr
