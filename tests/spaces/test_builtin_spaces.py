"""Every built-in space: samples validate, build, run, export to ONNX and match torch."""

from __future__ import annotations

import csv
import gzip
import json
import sys
from pathlib import Path

import numpy as np
import pytest

from spaces import Arch, create_space, list_spaces
from spaces.builtin import nb201_arch_from_str, nb201_arch_str
from spaces.builtin.nb201 import NB201_PATHS
from spaces.catalog import NB201_EDGES

sys.path.insert(0, str(Path(__file__).resolve().parent))  # nb201_reference: the former hard-coded network

SMALL = {"in_chans": 1, "num_classes": 10, "resolution": 28}
NB201_CSV = Path(__file__).resolve().parents[2] / "nas" / "data" / "nb201" / "nb201_acc_latency.csv.gz"


def make(name: str, **extra):
    kwargs = {} if name == "nb201" else dict(SMALL)
    kwargs.update(extra)
    return create_space(name, **kwargs)


def test_registry_lists_the_builtins():
    assert {"nb201", "mobilenet", "spaceevo", "resnet", "hhnas"} <= set(list_spaces())


@pytest.mark.parametrize("name", sorted(list_spaces()))
def test_samples_validate_and_round_trip(name):
    space = make(name)
    for seed in range(50):
        arch = space.sample(seed)
        assert space.validate(arch) == arch
        again = Arch.from_json(arch.to_json())
        assert again == arch and again.to_json() == arch.to_json() and again.id == arch.id
        assert space.validate(json.loads(arch.to_json())) == arch


#: spaces whose wiring is a decision (each cell edge's op and input): their samples must cover every
#: decision value, not only every block
CELL_SPACES = {"darts", "nb201"}


def covering_seeds(space, name: str, n: int = 50) -> list[int]:
    """Among the first ``n`` sample seeds, a few whose archs together hold everything the ``n`` hold:
    every op with every parameter value and every input shape it gets (and, in a cell space, every
    decision value at every position). Greedy set cover; deterministic."""
    features: dict[int, set] = {}
    for seed in range(n):
        arch = space.sample(seed)
        blocks = space.blocks(arch)
        f = {(b.op, key, repr(value)) for b in blocks for key, value in b.params}
        f |= {(b.op, "input", b.cin, b.h, b.w) for b in blocks}
        if name in CELL_SPACES:
            f |= {("decision", path, repr(value)) for path, value in arch.items()}
        features[seed] = f
    everything = set().union(*features.values())
    chosen: list[int] = []
    covered: set = set()
    while covered != everything:
        best = max(features, key=lambda s: (len(features[s] - covered), -s))
        chosen.append(best)
        covered |= features[best]
    return sorted(chosen)


def _ops_and_kernels(space, seeds) -> set:
    return {(b.op, b.kwargs.get("kernel")) for s in seeds for b in space.blocks(space.sample(s))}


@pytest.mark.parametrize("name", ["mobilenet", "darts"])
def test_covering_seeds_hold_every_op_and_kernel_of_fifty_samples(name):
    space = make(name)
    seeds = covering_seeds(space, name)
    assert len(seeds) < 50 and _ops_and_kernels(space, seeds) == _ops_and_kernels(space, range(50))


@pytest.mark.slow
@pytest.mark.parametrize("name", sorted(list_spaces()))
def test_samples_covering_fifty_build_run_and_export(name, settle_bn):
    """The samples of :func:`covering_seeds` (every op, parameter value and input shape that fifty
    samples hold) build, run and export to ONNX that matches torch."""
    import onnxruntime as ort
    import torch

    from quant.export import export_fp32_bytes

    torch.manual_seed(0)
    space = make(name)
    opts = ort.SessionOptions()
    opts.intra_op_num_threads = 1
    for seed in covering_seeds(space, name):
        arch = space.sample(seed)
        model = settle_bn(space.build(arch), space.input_shape)
        x = torch.randn(2, *space.input_shape)
        with torch.no_grad():
            ref = model(x).numpy()
        assert ref.shape == (2, space.num_classes)
        sess = ort.InferenceSession(
            export_fp32_bytes(model, space.input_shape, dynamic_batch=True), opts, providers=["CPUExecutionProvider"]
        )
        out = sess.run(None, {"input": x.numpy()})[0]
        assert np.abs(out - ref).max() < 1e-4, (name, arch.id)


@pytest.mark.parametrize("name", sorted(list_spaces()))
def test_a_sample_builds_and_exports(name, settle_bn):
    """The quick version of the covering-samples check, for every space at its default size too."""
    import onnxruntime as ort
    import torch

    from quant.export import export_fp32_bytes

    for space in (make(name), create_space(name)):
        arch = space.sample(7)
        model = settle_bn(space.build(arch), space.input_shape)
        x = torch.randn(1, *space.input_shape)
        with torch.no_grad():
            ref = model(x).numpy()
        sess = ort.InferenceSession(export_fp32_bytes(model, space.input_shape), providers=["CPUExecutionProvider"])
        assert np.abs(sess.run(None, {"input": x.numpy()})[0] - ref).max() < 1e-4


#: spaces whose blocks form a graph (cells with chosen inputs and concat merges), not a chain
GRAPH_SPACES = {"darts"}


@pytest.mark.parametrize("name", sorted(list_spaces()))
def test_blocks_chain_shapes(name):
    space = make(name)
    for seed in range(10):
        blocks = space.blocks(space.sample(seed))
        assert blocks[0].cin == space.in_chans and blocks[0].h == space.resolution
        if name not in GRAPH_SPACES:
            for prev, nxt in zip(blocks, blocks[1:]):
                assert (prev.cout, prev.h_out, prev.w_out) == (nxt.cin, nxt.h, nxt.w)
        assert blocks[-1].cout == space.num_classes


@pytest.mark.parametrize("name", ["mobilenet", "spaceevo", "resnet", "hhnas"])
def test_enumerated_blocks_cover_sampled_blocks(name):
    space = make(name)
    enumerated = {b.signature() for b in space.enumerate_blocks()}
    for seed in range(30):
        for b in space.blocks(space.sample(seed)):
            assert b.signature() in enumerated


def test_nb201_size_is_exact():
    space = create_space("nb201")
    assert space.size() == 15_625
    archs = list(space.enumerate())
    assert len(archs) == 15_625 == len(set(archs))


def test_nb201_arch_str_round_trip_over_the_benchmark():
    """All 15,625 table archs are archs of the space (its enumeration) and round trip their arch_str."""
    if not NB201_CSV.exists():
        pytest.skip(f"NAS-Bench-201 table not found at {NB201_CSV}")
    space = create_space("nb201")
    with gzip.open(NB201_CSV, "rt") as fh:
        rows = list(csv.DictReader(fh))
    assert len(rows) == 15_625
    archs = {nb201_arch_from_str(row["arch_str"]): row["arch_str"] for row in rows}
    assert set(archs) == set(space.enumerate())
    assert all(nb201_arch_str(arch) == text for arch, text in archs.items())
    for arch in list(archs)[::500]:  # a full walk of the network for some
        assert space.contains(arch) and space.describe(arch) == archs[arch]


def test_nb201_network_matches_the_benchmark_layout():
    space = create_space("nb201")
    arch = nb201_arch_from_str(
        "|nor_conv_3x3~0|+|nor_conv_3x3~0|avg_pool_3x3~1|+|skip_connect~0|nor_conv_3x3~1|skip_connect~2|"
    )
    blocks = space.blocks(arch)
    assert [b.op for b in blocks].count("nb201_reduction") == 2
    assert sum(b.op == "relu_conv_bn" for b in blocks) == 15 * 3  # three conv edges per cell, 15 cells
    net = space.build(arch)
    assert net.blocks[-1].fc.in_features == 64
    assert space.describe(arch).startswith("|nor_conv_3x3~0|")


def test_nb201_dsl_network_equals_the_former_hard_coded_one(settle_bn):
    """50 sampled archs: the DSL network, loaded with the reference network's weights, computes
    exactly what the former hard-coded network computes (benchmark size: 16 channels, 5 cells)."""
    import torch
    from nb201_reference import NB201Network

    space = create_space("nb201")
    for seed in range(50):
        arch = space.sample(seed)
        torch.manual_seed(seed)
        ref = settle_bn(NB201Network(3, 10, [arch[NB201_PATHS[e]] for e in NB201_EDGES]), (3, 32, 32), batches=1)
        net = space.build(arch)
        ours, theirs = net.state_dict(), ref.state_dict()
        assert [v.shape for v in ours.values()] == [v.shape for v in theirs.values()]
        net.load_state_dict(dict(zip(ours, theirs.values())))
        x = torch.randn(2, 3, 32, 32)
        with torch.no_grad():
            assert torch.equal(net(x), ref(x)), space.describe(arch)


@pytest.mark.parametrize("name", ["mobilenet", "spaceevo", "resnet", "hhnas"])
def test_input_shape_arguments(name):
    big = create_space(name, in_chans=3, num_classes=1000, resolution=224)
    small = make(name)
    assert big.input_shape == (3, 224, 224) and small.input_shape == (1, 28, 28)
    assert big.blocks(big.sample(0))[-1].cout == 1000


def test_spaceevo_exposes_block_type_and_window_per_stage():
    space = make("spaceevo")
    paths = {d.path: d for d in space.decisions()}
    for i in range(1, 6):
        assert set(paths[f"stage{i}.block"].options) == {"mbv1", "mbv2", "mbv3", "resnet", "resnet_se", "fused"}
        assert paths[f"stage{i}.window"].kind == "or"
    arch = space.sample(3)
    kind = arch["stage3.block"]
    assert f"stage3.{kind}.depth" in arch
    window = arch["stage3.window"]
    assert arch[f"stage3.{window}.width"] in paths[f"stage3.{window}.width"].options


def test_hhnas_macro_template_opens_micro_decisions():
    space = make("hhnas")
    for seed in range(20):
        arch = space.sample(seed)
        template = arch["macro.template"]
        micro = [p for p in arch if p.startswith("macro.") and p != "macro.template"]
        assert micro and all(p.startswith(f"macro.{template}.") for p in micro)
