"""Exported block folders and profiling them (folder and one-step modes), resumability."""

from __future__ import annotations

import json

import numpy as np
import onnx
import onnxruntime as ort
import pytest

from latency_lut.db import open_lut
from latency_lut.errors import ManifestError
from latency_lut.keys import block_key
from latency_lut.manifest import load_manifest


def test_manifest_and_files(exported, tiny_space):
    m = load_manifest(exported)
    assert m.formats == ["fp32", "int8", "int8_nhwc"] and m.batch == 1
    assert m.space["name"] == "tiny" and m.space["input_shape"] == [1, 16, 16]
    keys = {b["key"] for b in m.blocks}
    assert keys == {block_key(b) for b in tiny_space.enumerate_blocks()}
    assert {e["role"] for e in m.extras} == {"quantize", "overhead"}
    assert len(m.networks) == 3 and all(set(n["keys"]) <= keys for n in m.networks)
    assert m.data["quantization"]["tool"].startswith("hwnas.quant")
    for entry in m.blocks:
        q = onnx.load(m.path(entry, "int8"))
        in_type = q.graph.input[0].type.tensor_type.elem_type
        out_type = q.graph.output[0].type.tensor_type.elem_type
        assert in_type == onnx.TensorProto.UINT8
        assert out_type == (onnx.TensorProto.FLOAT if entry["op"] == "classifier" else onnx.TensorProto.UINT8)
        assert any(n.op_type == "DequantizeLinear" for n in q.graph.node)
        nhwc = onnx.load(m.path(entry, "int8_nhwc"))
        dims = [d.dim_value for d in nhwc.graph.input[0].type.tensor_type.shape.dim]
        assert dims == [1, entry["h"], entry["w"], entry["cin"]]  # channels last
        f = onnx.load(m.path(entry, "fp32"))
        assert f.graph.input[0].type.tensor_type.elem_type == onnx.TensorProto.FLOAT


def _chain(m, tiny_space, fmt):
    by_key = {b["key"]: b for b in m.blocks}
    quant = next(e for e in m.extras if e["role"] == "quantize")
    x = np.random.default_rng(0).standard_normal((1, 1, 16, 16)).astype(np.float32)
    sess = ort.InferenceSession(str(m.path(quant, fmt)), providers=["CPUExecutionProvider"])
    (x,) = sess.run(None, {sess.get_inputs()[0].name: x})
    for b in tiny_space.blocks(tiny_space.sample(1)):
        sess = ort.InferenceSession(str(m.path(by_key[block_key(b)], fmt)), providers=["CPUExecutionProvider"])
        (x,) = sess.run(None, {sess.get_inputs()[0].name: x})
    return x


def test_every_model_carries_the_lowest_ir_version_of_its_opset(exported):
    """A device's older onnxruntime refuses a newer IR version even for an opset it runs
    (seen: onnx 1.23 stamps IR 14, onnxruntime 1.30 reads at most 13): every model of a folder,
    the hand-built pseudo-blocks included, carries the lowest IR version its opsets allow."""
    files = sorted(exported.rglob("*.onnx"))
    assert any("quantize" in f.name for f in files) and any("overhead" in f.name for f in files)
    for f in files:
        model = onnx.load(str(f), load_external_data=False)
        opsets = [o for o in model.opset_import if o.domain in ("", "ai.onnx")]
        assert model.ir_version <= onnx.helper.find_min_ir_version_for(opsets), f.name


def test_int8_blocks_chain_like_the_network(exported, tiny_space):
    """The uint8 output of one block model feeds the next: the blocks compose a network, and
    the channels-last blocks compute exactly what the NCHW blocks compute."""
    m = load_manifest(exported)
    x = _chain(m, tiny_space, "int8")
    assert x.shape == (1, 10) and x.dtype == np.float32
    np.testing.assert_array_equal(_chain(m, tiny_space, "int8_nhwc"), x)


def test_int8_nhwc_blocks_run_without_layout_transposes(exported, tmp_path):
    """onnxruntime cancels the NHWC I/O transposes against its own channels-last conversion:
    the optimised block has no Transpose left, as inside a whole network."""
    m = load_manifest(exported)
    entry = next(b for b in m.blocks if b["op"] not in ("classifier",))

    def optimised_ops(fmt):
        so = ort.SessionOptions()
        so.optimized_model_filepath = str(tmp_path / f"{fmt}.opt.onnx")
        so.log_severity_level = 3
        ort.InferenceSession(str(m.path(entry, fmt)), so, providers=["CPUExecutionProvider"])
        return [n.op_type for n in onnx.load(so.optimized_model_filepath).graph.node]

    assert "QLinearConv" in optimised_ops("int8_nhwc")
    assert optimised_ops("int8").count("Transpose") == 2
    assert "Transpose" not in optimised_ops("int8_nhwc")


def test_profile_folder_is_complete_and_resumable(profiled, exported, fast_target):
    from latency_lut.profiler import profile_folder

    m = load_manifest(exported)
    with open_lut(profiled) as db:
        fp = db.fingerprints()[0]
        assert fp["blocks"] == len(m.blocks) + len(m.extras) and fp["networks"] == 3
        assert fp["info"]["model_format"] == "int8_nhwc" and fp["info"]["timer"] in ("thread_cpu", "wall")
        before = {r["block_key"]: (r["run_id"], r["timestamp"]) for r in db.rows()}
        assert db.correction(fp["fp_id"], m.space["signature"]) is not None
    again = profile_folder(exported, str(fast_target), profiled, progress=False)
    assert again.measured == 0 and again.networks == 0 and again.skipped == again.total
    with open_lut(profiled) as db:
        assert {r["block_key"]: (r["run_id"], r["timestamp"]) for r in db.rows()} == before


def test_profile_needs_the_target_format(exported, tmp_path):
    from latency_lut.profiler import profile_folder

    target = tmp_path / "sym.yaml"
    target.write_text("name: sym\nengine: onnxruntime\nprecision: int8\n")
    manifest = json.loads((exported / "manifest.json").read_text())
    folder = tmp_path / "copy"
    folder.mkdir()
    (folder / "manifest.json").write_text(json.dumps({**manifest, "batch": 4}))
    with pytest.raises(ManifestError, match="batch 4"):
        profile_folder(folder, str(target), tmp_path / "x.db", progress=False)
    with pytest.raises(ManifestError, match="no manifest.json"):
        profile_folder(tmp_path, str(target), tmp_path / "x.db", progress=False)


def test_one_step_profile_with_few_archs(tmp_path, tiny_space, fast_fp32_target):
    from latency_lut.profiler import profile_space

    result = profile_space(
        tiny_space, str(fast_fp32_target), tmp_path / "lut.db", archs=2, seed=3, networks=0, progress=False
    )
    wanted = {block_key(b) for i in range(2) for b in tiny_space.blocks(tiny_space.sample(3 + i))}
    with open_lut(tmp_path / "lut.db") as db:
        keys = db.done_keys(result.fingerprint)
    assert wanted <= keys and "overhead_b1" in keys and not any(k.startswith("quantize") for k in keys)
    assert result.measured == len(keys)


def test_nb201_cells_have_block_keys():
    """nb201 is a DSL cell space (issue 21): its cells' edge ops are ordinary LUT blocks, its node
    sums merge parts; the identity edge (skip) is free: 17 blocks and 6 merges in all."""
    from latency_lut.export import space_blocks
    from latency_lut.keys import part_key
    from spaces import create_space

    blocks = space_blocks(create_space("nb201"))
    keys = {part_key(b) for b in blocks}
    assert len(keys) == len(blocks) == 23
    assert any(k.startswith("relu_conv_bn_k3") for k in keys) and any(k.startswith("nb201_reduction") for k in keys)
    assert {"add_n2_c16-16_h32w32_b1", "add_n3_c64-64_h8w8_b1"} <= keys and not any(k.startswith("skip") for k in keys)


def test_torch_engine_profiles_pt2_files(tmp_path, tiny_space):
    """The torch engine (FP32 eager) measures the torch.export programs of an exported folder."""
    import torch

    from latency_lut.export import export_blocks
    from latency_lut.profiler import profile_folder

    export_blocks(tiny_space, tmp_path / "blocks", formats=("pt2",), archs=1, networks=1)
    manifest = load_manifest(tmp_path / "blocks")
    for entry in manifest.blocks[:2]:  # self-contained programs of the block's input shape
        assert entry["files"] == {"pt2": f"blocks/{entry['key']}.pt2"}
        program = torch.export.load(manifest.path(entry, "pt2"))
        x = torch.zeros(1, entry["cin"], entry["h"], entry["w"])
        assert tuple(program.module()(x).shape)[1] == entry["cout"]
    target = tmp_path / "torch.yaml"
    target.write_text(
        "name: cpu-torch-fp32\nengine: torch\nprecision: fp32\nthreads: 1\n"
        "measure: {warmup_runs: 1, warmup_s: 0, min_runs: 2, min_time_s: 0, rounds: 1}\n"
    )
    result = profile_folder(tmp_path / "blocks", str(target), tmp_path / "lut.db", progress=False)
    assert not result.failed and result.networks == 1
    with open_lut(tmp_path / "lut.db") as db:
        fp = db.fingerprints()[0]
        assert fp["info"]["engine"] == "torch" and fp["info"]["model_format"] == "pt2"
        assert fp["blocks"] == len(manifest.blocks)  # no pseudo-blocks for torch


def test_torch_engine_refuses_other_files_in_one_line(tmp_path):
    from hw_profiles import create_engine, load_target
    from hw_profiles.errors import MeasurementError

    target = tmp_path / "torch.yaml"
    target.write_text("name: cpu-torch-fp32\nengine: torch\nprecision: fp32\nthreads: 1\n")
    bad = tmp_path / "block.pt2"
    bad.write_text('{"kind": "block"}')  # e.g. a spec file of earlier versions
    engine = create_engine(load_target(str(target)))
    try:
        with pytest.raises(MeasurementError, match="not a torch.export program file") as info:
            engine.load(bad)
    finally:
        engine.close()
    assert "\n" not in str(info.value)


def test_spec_format_is_now_pt2(tmp_path, tiny_space):
    from latency_lut.errors import BlockExportError
    from latency_lut.export import export_blocks

    with pytest.raises(BlockExportError, match="'spec' is now 'pt2'"):
        export_blocks(tiny_space, tmp_path / "blocks", formats=("spec",), archs=1)
