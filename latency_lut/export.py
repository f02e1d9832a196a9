"""Export blocks and whole networks to ONNX (FP32 and INT8 QDQ) for latency profiling.

This is the host side: it builds torch modules from the space (``spaces`` + torch). The
folder it writes is self-contained and is all a device needs (with numpy, onnx and its
engine) to run ``nas profile DIR --target T``:

``manifest.json``
    the space, batch, formats, quantization recipe, and per part (a block, or a merge of a
    graph space: see :mod:`latency_lut.parts`): key, op, parameters, shapes and files; the pseudo-blocks (input quantization, per-call overhead); and a few
    whole networks for the learned correction.
``blocks/<key>.<format>.onnx``
    ``fp32``: the FP32 block (float input and output); a merge has one input per tensor merged. ``int8``: the QDQ block whose input
    and output are the *uint8 tensors* the block reads and writes inside a whole INT8
    network (the head keeps its float output). ``int8_nhwc``: the same with NHWC uint8 I/O
    (see :mod:`latency_lut.formats`). ``int8_sym``: symmetric QDQ with float I/O
    (TensorRT). ``<key>.pt2``: the block's ``torch.export`` program (the ``torch`` engine).
``networks/<arch id>.<format>.onnx`` (``<arch id>.pt2``)
    whole networks, exported and quantized exactly like validation networks.
"""

from __future__ import annotations

import os
import time
from collections.abc import Callable, Iterable, Sequence
from pathlib import Path
from typing import Any

from hwnas.errors import first_line
from hwnas.io import atomic_write_text
from hwnas.opset import DEFAULT_OPSET
from latency_lut.errors import BlockExportError
from latency_lut.formats import ALL_FORMATS as _ALL_FORMATS
from latency_lut.formats import DEFAULT_FORMATS, UINT8_IO_FORMATS, model_filename
from latency_lut.formats import QUANT_RECIPE as _QUANT_RECIPE
from latency_lut.keys import block_key, is_merge, overhead_key, part_key, quantize_key
from latency_lut.manifest import MANIFEST_NAME, Manifest, space_record
from latency_lut.onnx_models import (
    channels_last_io,
    make_merge_model,
    make_overhead_model,
    make_quantize_model,
    nhwc_average_pool,
    strip_quant_io,
)
from latency_lut.parts import add_parts, network_parts, sampled_parts, space_parts

__all__ = [
    "DEFAULT_FORMATS",
    "block_models",
    "calibration_archs",
    "export_blocks",
    "merge_models",
    "network_keys",
    "network_models",
    "part_entry",
    "part_models",
    "profiled_parts",
    "space_blocks",
]


def _check_formats(formats: Iterable[str]) -> tuple[str, ...]:
    out = tuple(dict.fromkeys(formats))
    bad = [f for f in out if f not in _ALL_FORMATS]
    if "spec" in bad:  # the JSON spec files of earlier versions
        raise BlockExportError("model format 'spec' is now 'pt2' (torch.export programs, for the torch engine)")
    if bad:
        raise BlockExportError(f"unknown model format {bad[0]!r} (formats: {', '.join(_ALL_FORMATS)})")
    return out


def space_blocks(space: Any, archs: int | None = None, seed: int = 0) -> list[Any]:
    """Every distinct priced part of ``space`` (``archs=None``): its blocks and, in a graph space,
    its merges (:mod:`latency_lut.parts`); or those of ``archs`` sampled archs."""
    if archs is None:
        return space_parts(space)
    return sampled_parts(space, archs, seed)


def profiled_parts(space: Any, archs: int | None, seed: int, calib: Sequence[Any]) -> list[Any]:
    """What a profile of ``space`` measures: :func:`space_blocks`, then the parts of the
    calibration networks ``calib`` it lacks (the correction needs every part of its networks)."""
    parts = space_blocks(space, archs, seed)
    for arch in calib:
        add_parts(parts, network_parts(space, arch))
    return parts


def network_keys(space: Any, arch: Any, batch: int = 1) -> list[str]:
    """The LUT keys of the priced parts of ``arch`` (what a LUT sums for it), in order."""
    return [part_key(p, batch) for p in network_parts(space, arch)]


def rough_cost(part: Any) -> float:
    """A part's size before anything is measured: its output elements times (1 + the multiply-adds
    per output of a ``kernel`` × ``kernel`` convolution over its input channels). Only ranks networks."""
    params = dict(getattr(part, "params", ()) or ())
    k = params.get("kernel", 0)
    k = k if isinstance(k, int) else 0
    out = getattr(part, "cout", 0) * getattr(part, "h_out", 1) * getattr(part, "w_out", 1)
    return float(out * (1 + getattr(part, "cin", 0) * k * k))


def calibration_archs(space: Any, n: int, seed: int = 0, pool: int = 20) -> list[Any]:
    """``n`` distinct archs for fitting the correction (a seed stream apart from validation's),
    spread over the space: from ``pool × n`` random archs, those at evenly spaced ranks of a rough
    cost (:func:`rough_cost`; the cheapest and the dearest included), so that the fit covers the
    small networks (an nb201 cell of skips and ``none`` edges) and the large ones it will predict."""
    import random

    from latency_lut.parts import network_parts

    rng = random.Random(f"hwnas-calibration-{seed}")
    out: dict[str, Any] = {}
    tries = 0
    want = max(n, 1) * max(pool, 1)
    while len(out) < want and tries < 3 * want:
        arch = space.sample(rng)
        out.setdefault(arch.id, arch)
        tries += 1
    if len(out) <= n:
        return list(out.values())
    ranked = sorted(out.values(), key=lambda a: (sum(rough_cost(p) for p in network_parts(space, a)), a.id))
    if n == 1:
        return [ranked[len(ranked) // 2]]
    return [ranked[round(i * (len(ranked) - 1) / (n - 1))] for i in range(n)]


def _fp32_bytes(module: Any, shape: Sequence[int], batch: int) -> bytes:
    from quant.export import export_fp32_bytes

    try:
        return export_fp32_bytes(module, shape, batch=batch)
    except Exception as exc:  # ExportError from the exporter, or anything torch raises
        raise BlockExportError(first_line(exc)) from None


def _program_bytes(module: Any, shape: Sequence[int], batch: int) -> bytes:
    """The ``torch.export`` program of ``module`` (put in eval mode) for inputs ``[batch, *shape]``,
    as :func:`torch.export.save` writes it: graph, weights and input shape in one file, which the
    ``torch`` engine runs without the space's code."""
    import io

    import torch

    buf = io.BytesIO()
    try:
        with torch.no_grad():
            program = torch.export.export(module.eval(), (torch.zeros(batch, *shape),))
        torch.export.save(program, buf)
    except Exception as exc:  # anything torch.export raises on a module it cannot trace
        raise BlockExportError(f"torch.export failed for {type(module).__name__}: {first_line(exc)}") from None
    return buf.getvalue()


def _serialize(model: Any) -> bytes:
    return model.SerializeToString()


def block_models(block: Any, formats: Sequence[str], batch: int = 1, seed: int = 0) -> dict[str, bytes]:
    """The model bytes of ``block`` in each of ``formats``: ONNX, or a torch.export program (``pt2``).

    INT8 formats are made by the exporter that ships models (:mod:`latency_lut.quantize`)."""
    from latency_lut.quantize import quantize_module
    from spaces._builder import build_block

    formats = _check_formats(formats)
    out: dict[str, bytes] = {}
    shape = (block.cin, block.h, block.w)
    quantized: dict[str, Any] = {}  # recipe -> model, shared by int8 and int8_nhwc
    for fmt in formats:
        if fmt == "fp32":
            out[fmt] = _fp32_bytes(build_block(block).eval(), shape, batch)
        elif fmt == "pt2":
            out[fmt] = _program_bytes(build_block(block), shape, batch)
        else:
            recipe = _QUANT_RECIPE[fmt]
            if recipe not in quantized:
                quantized[recipe] = quantize_module(
                    build_block(block), shape, recipe, batch=batch, seed=seed, quantize_output=block.op != "classifier"
                )
            q = quantized[recipe]
            if fmt in UINT8_IO_FORMATS:
                try:
                    q = strip_quant_io(q, strip_input=True, strip_output=block.op != "classifier")
                except ValueError as exc:
                    raise BlockExportError(f"block {block_key(block, batch)}: cannot make uint8 I/O: {exc}") from None
            if fmt == "int8_nhwc":
                q = nhwc_average_pool(channels_last_io(q))
            out[fmt] = _serialize(q)
    return out


def _merge_module(mode: str, channels: Sequence[int]) -> Any:
    """The torch module of a merge for its ``torch.export`` program: the torch engine runs
    programs of one input, so the merge reads its inputs as channel slices of one tensor (views,
    no copy at batch 1)."""
    import torch

    class Merge(torch.nn.Module):
        def forward(self, x: torch.Tensor) -> torch.Tensor:
            parts = torch.split(x, list(channels), dim=1)
            if mode == "concat":
                return torch.cat(parts, dim=1)
            out = parts[0]
            for p in parts[1:]:
                out = out + p
            return out

    return Merge()


def merge_models(merge: Any, formats: Sequence[str], batch: int = 1, seed: int = 0) -> dict[str, bytes]:
    """The model bytes of the merge part ``merge`` (a :class:`spaces.ResolvedMerge`) in each of
    ``formats``, made like a block's: the FP32 merge (:func:`~latency_lut.onnx_models.make_merge_model`),
    quantized with the blocks' recipe; the INT8 models read and write the uint8 tensors (NHWC for
    ``int8_nhwc``) that a whole INT8 network passes between its parts."""
    formats = _check_formats(formats)
    out: dict[str, bytes] = {}
    fp32 = make_merge_model(merge.mode, merge.inputs, batch)
    from latency_lut.quantize import quantize_merge_model

    quantized: dict[str, Any] = {}
    for fmt in formats:
        if fmt == "fp32":
            out[fmt] = _serialize(fp32)
        elif fmt == "pt2":
            module = _merge_module(merge.mode, merge.channels)
            out[fmt] = _program_bytes(module, (sum(merge.channels), merge.h, merge.w), batch)
        else:
            recipe = _QUANT_RECIPE[fmt]
            if recipe not in quantized:
                quantized[recipe] = quantize_merge_model(fp32, recipe)
            q = quantized[recipe]
            if fmt in UINT8_IO_FORMATS:
                try:
                    q = strip_quant_io(q)
                except ValueError as exc:
                    raise BlockExportError(f"merge {part_key(merge, batch)}: cannot make uint8 I/O: {exc}") from None
            if fmt == "int8_nhwc":
                q = channels_last_io(q)
            out[fmt] = _serialize(q)
    return out


def part_models(part: Any, formats: Sequence[str], batch: int = 1, seed: int = 0) -> dict[str, bytes]:
    """:func:`merge_models` of a merge, :func:`block_models` of a block."""
    if is_merge(part):
        return merge_models(part, formats, batch, seed)
    return block_models(part, formats, batch, seed)


def part_entry(part: Any, batch: int = 1) -> dict[str, Any]:
    """The manifest's record of a part (a merge or a block; without its files)."""
    if not is_merge(part):
        return block_entry(part, batch)
    return {
        "kind": "merge",
        "key": part_key(part, batch),
        "path": part.path,
        "op": part.mode,
        "params": {"n": len(part.inputs)},
        "inputs": [list(s) for s in part.inputs],
        "cin": sum(part.channels) if part.mode == "concat" else part.cout,
        "h": part.h,
        "w": part.w,
        "cout": part.cout,
        "h_out": part.h,
        "w_out": part.w,
        "batch": batch,
    }


def block_entry(block: Any, batch: int = 1) -> dict[str, Any]:
    """The manifest's record of ``block`` (without its files)."""
    return {
        "kind": "block",
        "key": block_key(block, batch),
        "path": block.path,
        "op": block.op,
        "params": dict(block.params),
        "cin": block.cin,
        "h": block.h,
        "w": block.w,
        "cout": block.cout,
        "h_out": block.h_out,
        "w_out": block.w_out,
        "batch": batch,
    }


def network_models(space: Any, arch: Any, formats: Sequence[str], batch: int = 1, seed: int = 0) -> dict[str, bytes]:
    """The model bytes of the whole network of ``arch`` in each format (float input and output)."""
    from latency_lut.quantize import quantize_module

    formats = _check_formats(formats)
    out: dict[str, bytes] = {}
    quantized: dict[str, Any] = {}
    for fmt in formats:
        if fmt == "fp32":
            out[fmt] = _fp32_bytes(space.build(arch), space.input_shape, batch)
        elif fmt == "pt2":
            out[fmt] = _program_bytes(space.build(arch), space.input_shape, batch)
        else:  # whole networks keep float I/O in every INT8 format
            recipe = _QUANT_RECIPE[fmt]
            if recipe not in quantized:
                quantized[recipe] = _serialize(
                    quantize_module(space.build(arch), space.input_shape, recipe, batch=batch, seed=seed)
                )
            out[fmt] = quantized[recipe]
    return out


def extra_models(space: Any, formats: Sequence[str], batch: int = 1) -> list[dict[str, Any]]:
    """The pseudo-blocks: input quantization (int8) and per-call overhead (every format)."""
    c, h, w = space.input_shape
    extras: list[dict[str, Any]] = []
    quantize = {
        fmt: _serialize(make_quantize_model((batch, c, h, w), channels_last=fmt == "int8_nhwc"))
        for fmt in formats
        if fmt in UINT8_IO_FORMATS
    }
    if quantize:
        extras.append({"key": quantize_key(c, h, w, batch), "role": "quantize", "op": "quantize", "models": quantize})
    models: dict[str, bytes] = {}
    for fmt in formats:
        if fmt == "pt2":  # the torch engine has no per-call overhead model
            continue
        models[fmt] = _serialize(make_overhead_model("uint8" if fmt in UINT8_IO_FORMATS else "float32"))
    extras.append({"key": overhead_key(batch), "role": "overhead", "op": "overhead", "models": models})
    return extras


def _write_bytes(path: Path, data: bytes) -> None:
    tmp = path.with_name(f".{path.name}.tmp")
    try:
        tmp.write_bytes(data)
        os.replace(tmp, path)
    except OSError as exc:  # disk full, folder removed or made read-only meanwhile
        raise BlockExportError(f"{path}: cannot write ({(exc.strerror or str(exc)).lower()})") from None


def export_blocks(
    space: Any,
    out_dir: str | os.PathLike[str],
    formats: Sequence[str] = DEFAULT_FORMATS,
    batch: int = 1,
    archs: int | None = None,
    seed: int = 0,
    networks: int = 0,
    progress: Callable[[int, int, str], None] | None = None,
) -> Manifest:
    """Write the self-contained block folder for ``space`` and return its manifest.

    ``archs``: only the blocks of that many sampled archs (a quick, test-friendly mode);
    ``networks``: also export that many whole networks (for the learned correction).
    Files already present from an interrupted export are kept, not exported again.
    """
    from hwnas.io import prepare_out_dir

    formats = _check_formats(formats)
    out = prepare_out_dir(out_dir, "--out")  # one line: a file in the way, a folder that cannot be written
    prepare_out_dir(out / "blocks", "--out")
    calib = calibration_archs(space, networks, seed) if networks else []
    blocks = profiled_parts(space, archs, seed, calib)
    entries: list[dict[str, Any]] = []
    total = len(blocks) + networks
    for i, block in enumerate(blocks):
        key = part_key(block, batch)
        files = {fmt: f"blocks/{model_filename(key, fmt)}" for fmt in formats}
        missing = [fmt for fmt, rel in files.items() if not (out / rel).is_file()]
        if missing:
            for fmt, data in part_models(block, missing, batch, seed=i).items():
                _write_bytes(out / files[fmt], data)
        entries.append({**part_entry(block, batch), "files": files})
        if progress:
            progress(i + 1, total, key)
    extras = []
    for extra in extra_models(space, formats, batch):
        files = {}
        for fmt, data in extra.pop("models").items():
            rel = f"blocks/{model_filename(extra['key'], fmt)}"
            _write_bytes(out / rel, data)
            files[fmt] = rel
        extras.append({**extra, "files": files})
    nets = []
    if networks:
        prepare_out_dir(out / "networks", "--out")
        for j, arch in enumerate(calib):
            files = {fmt: f"networks/{model_filename(arch.id, fmt)}" for fmt in formats}
            missing = [fmt for fmt, rel in files.items() if not (out / rel).is_file()]
            if missing:
                for fmt, data in network_models(space, arch, missing, batch, seed=j).items():
                    _write_bytes(out / files[fmt], data)
            nets.append(
                {
                    "arch_id": arch.id,
                    "arch": dict(arch),
                    "keys": network_keys(space, arch, batch),
                    "files": files,
                }
            )
            if progress:
                progress(len(blocks) + j + 1, total, f"network {arch.id}")
    import onnxruntime

    from latency_lut.quantize import QUANTIZATION_NOTE

    manifest = Manifest(
        {
            "format": "hwnas-blocks",
            "version": 1,
            "created": time.strftime("%Y-%m-%dT%H:%M:%S%z"),
            "space": space_record(space),
            "batch": batch,
            "formats": list(formats),
            "opset": DEFAULT_OPSET,
            "selection": {"archs": archs, "seed": seed} if archs is not None else "all blocks of the space",
            "quantization": {**QUANTIZATION_NOTE, "onnxruntime_version": onnxruntime.__version__},
            "io": {
                "int8": "block models read and write the uint8 tensors passed between blocks of a whole INT8 "
                "network; the head keeps its float output; the network input's QuantizeLinear is the "
                "'quantize' pseudo-block",
                "int8_nhwc": "as int8, with NHWC uint8 block inputs and outputs (onnxruntime CPU's layout "
                "between INT8 kernels); the 'quantize' pseudo-block also transposes to NHWC",
                "fp32": "float input and output",
                "int8_sym": "float input and output (QDQ inside)",
            },
            "blocks": entries,
            "extras": extras,
            "networks": nets,
        },
        out,
    )
    atomic_write_text(out / MANIFEST_NAME, manifest.to_json())
    return manifest
