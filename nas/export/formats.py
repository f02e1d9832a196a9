"""Export formats: which exist, what each needs, and the converters (OpenVINO IR, TensorRT plan).

``onnx-int8``
    the QDQ ONNX model carrying the model's own scales (always written: the other INT8 formats
    and the verification are made from it).
``onnx-fp32``
    the float model (batch norms folded), the reference for accuracy and latency.
``openvino``
    ``openvino.convert_model`` of the INT8 QDQ model, saved by ``openvino.save_model`` as
    ``model.openvino/model.xml`` + ``.bin`` (float constants kept in FP32).
``tensorrt``
    a serialized TensorRT engine (``model.plan``) built with the real TensorRT Python API from
    the symmetric-INT8 QDQ model (explicit quantization), with a timing cache; it needs the
    ``tensorrt`` and ``cuda-python`` packages and a CUDA GPU, and a TensorRT target.
"""

from __future__ import annotations

import os
from collections.abc import Iterable
from pathlib import Path
from typing import Any

from hwnas.errors import first_line
from hwnas.io import atomic_write
from nas.export.errors import ExportConfigError, FormatUnavailableError

__all__ = [
    "DEFAULT_FORMATS",
    "FORMATS",
    "build_tensorrt_plan",
    "check_formats_available",
    "format_unavailable",
    "parse_formats",
    "scheme_for_target",
    "static_batch_copy",
    "to_openvino",
]

FORMATS: tuple[str, ...] = ("onnx-int8", "onnx-fp32", "openvino", "tensorrt")
DEFAULT_FORMATS: tuple[str, ...] = ("onnx-int8", "onnx-fp32")


def parse_formats(spec: str | Iterable[str] | None) -> tuple[str, ...]:
    """Formats from ``"onnx-int8,openvino"`` or a list, in :data:`FORMATS` order, ``onnx-int8``
    always included; one-line :class:`ExportConfigError` for an unknown one."""
    if spec is None:
        return DEFAULT_FORMATS
    items = [s.strip() for s in spec.split(",")] if isinstance(spec, str) else [str(s).strip() for s in spec]
    items = [s for s in items if s]
    if not items:
        raise ExportConfigError(f"--format: no format given (formats: {', '.join(FORMATS)})")
    for s in items:
        if s not in FORMATS:
            raise ExportConfigError(f"--format: unknown format {s!r} (formats: {', '.join(FORMATS)})")
    wanted = {"onnx-int8", *items}
    return tuple(f for f in FORMATS if f in wanted)


def format_unavailable(fmt: str, target: Any = None) -> str | None:
    """``None`` when ``fmt`` can be produced (and verified) on this machine, else why not."""
    if fmt == "openvino":
        try:
            import openvino  # noqa: F401
        except ImportError:
            return "OpenVINO is not installed (pip install openvino, or pip install 'hwnas[openvino]')"
        return None
    if fmt == "tensorrt":
        from hw_profiles.engines.tensorrt_engine import TensorRtEngine

        reason = TensorRtEngine.availability(target if target is not None and target.engine == "tensorrt" else None)
        if reason is not None and "not installed" in reason:
            reason = f"{reason} (pip install tensorrt cuda-python, or pip install 'hwnas[tensorrt]')"
        return reason
    return None


def check_formats_available(formats: Iterable[str], target: Any) -> None:
    """Raise :class:`FormatUnavailableError` for the first format this machine cannot produce,
    and :class:`ExportConfigError` for ``tensorrt`` without a TensorRT target."""
    for fmt in formats:
        reason = format_unavailable(fmt, target)
        if reason is not None:
            raise FormatUnavailableError(f"--format {fmt}: {reason}", reason=reason)
        if fmt == "tensorrt" and target.engine != "tensorrt":
            raise ExportConfigError(
                f"--format tensorrt needs a TensorRT target (e.g. --target gpu-trt-int8), "
                f"not {target.name!r} (engine {target.engine}): the plan is built from that "
                f"target's symmetric INT8 model"
            )


def scheme_for_target(target: Any) -> Any:
    """The quantization scheme an INT8 model for ``target`` needs: symmetric s8 everywhere for
    TensorRT (the engine or onnxruntime's TensorRT provider), else onnxruntime's CPU preset for
    this CPU (u8 activations, s8 weights; 7-bit weights on x86 without VNNI)."""
    from quant.scheme import ORT_CPU, TENSORRT, host_ort_scheme

    if target.engine == "tensorrt":
        return TENSORRT
    if target.engine == "onnxruntime":
        providers = list(target.options.get("providers") or ["CPUExecutionProvider"])
        if providers[0] == "TensorrtExecutionProvider":
            return TENSORRT
        return host_ort_scheme() if providers[0] == "CPUExecutionProvider" else ORT_CPU
    return ORT_CPU


def static_batch_copy(src: str | os.PathLike[str], dst: str | os.PathLike[str], batch: int) -> Path:
    """A copy of an ONNX model whose dynamic batch dimension is fixed to ``batch`` (engines that
    build for one shape, such as TensorRT, and latency measurement at the target's batch)."""
    import onnx

    model = onnx.load(os.fspath(src))
    graph = model.graph
    init = {t.name for t in graph.initializer}
    for value in [*[i for i in graph.input if i.name not in init], *graph.output]:
        dims = value.type.tensor_type.shape.dim
        if len(dims) and not dims[0].HasField("dim_value"):
            dims[0].Clear()
            dims[0].dim_value = int(batch)
    del graph.value_info[:]
    model = onnx.shape_inference.infer_shapes(model)
    dst = Path(dst)
    dst.parent.mkdir(parents=True, exist_ok=True)
    onnx.save(model, os.fspath(dst))
    return dst


def to_openvino(onnx_path: str | os.PathLike[str], out_dir: str | os.PathLike[str]) -> Path:
    """``openvino.convert_model`` + ``openvino.save_model`` (FP32 constants kept) into
    ``out_dir/model.xml`` (+ ``model.bin``); returns the ``.xml`` path."""
    reason = format_unavailable("openvino")
    if reason is not None:
        raise FormatUnavailableError(f"--format openvino: {reason}", reason=reason)
    import openvino as ov

    out = Path(out_dir)
    out.mkdir(parents=True, exist_ok=True)
    xml = out / "model.xml"
    try:
        model = ov.convert_model(os.fspath(onnx_path))
        ov.save_model(model, os.fspath(xml), compress_to_fp16=False)
    except Exception as exc:  # noqa: BLE001 - OpenVINO raises its own exception types
        first = first_line(exc)
        raise ExportConfigError(f"{onnx_path}: OpenVINO cannot convert the model: {first}") from None
    return xml


def build_tensorrt_plan(
    onnx_path: str | os.PathLike[str],
    plan_path: str | os.PathLike[str],
    target: Any,
    timing_cache: str | os.PathLike[str] | None = None,
) -> Path:
    """Build a TensorRT engine for ``target`` from a static-shape symmetric-INT8 QDQ ONNX model
    (explicit quantization: the Q/DQ nodes set every INT8 tensor's scale) and serialize it to
    ``plan_path``. ``timing_cache`` is read when present and updated."""
    from hw_profiles import create_engine

    reason = format_unavailable("tensorrt", target)
    if reason is not None:
        raise FormatUnavailableError(f"--format tensorrt: {reason}", reason=reason)
    engine = create_engine(target)
    try:
        serialized = engine.build(os.fspath(onnx_path), timing_cache=timing_cache)  # type: ignore[attr-defined]
    finally:
        engine.close()
    plan = Path(plan_path)

    def write(tmp: str) -> None:
        with open(tmp, "wb") as fh:
            fh.write(memoryview(serialized))

    return atomic_write(plan, write)
