"""Verification of an export: run the exported files with their engines and time them on the target.

* predictions of the INT8 ONNX model (onnxruntime), the OpenVINO IR (OpenVINO CPU) and the
  TensorRT plan on the test set, compared with the labels and with the fake-quantized torch
  model (top-1 agreement, the fraction of images on which both pick the same class);
* latency of the exported model measured by the target's engine with the target's harness
  settings (pinned threads, warm-up, rounds, median), the way the LUT's numbers were measured.
"""

from __future__ import annotations

import os
import tempfile
from pathlib import Path
from typing import Any

import numpy as np

__all__ = [
    "agreement",
    "measure_latency",
    "onnxruntime_logits",
    "openvino_logits",
    "tensorrt_logits",
    "top1",
]


def top1(logits: np.ndarray, labels: np.ndarray) -> float:
    """Top-1 accuracy in percent."""
    return float((np.asarray(logits).argmax(1) == np.asarray(labels)).mean() * 100.0)


def agreement(a: np.ndarray, b: np.ndarray) -> float:
    """Percentage of rows on which two sets of logits pick the same class."""
    return float((np.asarray(a).argmax(1) == np.asarray(b).argmax(1)).mean() * 100.0)


def onnxruntime_logits(
    path: str | os.PathLike[str], images: np.ndarray, *, threads: int = 1, batch_size: int = 500
) -> np.ndarray:
    """Outputs of an ONNX model run by onnxruntime's CPU provider (an error of onnxruntime's
    becomes a one-line :class:`~nas.export.errors.ExportVerificationError` naming the file)."""
    from onnxruntime.capi import onnxruntime_pybind11_state as ort_state

    from hwnas.errors import first_line
    from nas.export.errors import ExportVerificationError
    from quant.ort import ort_predict

    try:
        return ort_predict(os.fspath(path), images, batch_size=batch_size, threads=threads)
    except (
        ort_state.Fail,
        ort_state.RuntimeException,
        ort_state.InvalidArgument,
        ort_state.InvalidGraph,
        ort_state.NotImplemented,
    ) as e:
        raise ExportVerificationError(f"{path}: onnxruntime cannot run it: {first_line(e)}") from None


def openvino_logits(
    xml: str | os.PathLike[str], images: np.ndarray, *, threads: int = 1, batch_size: int = 500
) -> np.ndarray:
    """Outputs of an OpenVINO IR run by OpenVINO's CPU plugin (batch dimension set per call)."""
    import openvino as ov

    core = ov.Core()
    model = core.read_model(os.fspath(xml))
    x = np.ascontiguousarray(images, dtype=np.float32)
    shape = list(x.shape[1:])
    model.reshape({model.inputs[0].get_any_name(): ov.PartialShape([-1, *shape])})
    compiled = core.compile_model(
        model, "CPU", {"INFERENCE_NUM_THREADS": int(threads), "INFERENCE_PRECISION_HINT": "f32"}
    )
    request = compiled.create_infer_request()
    outs = []
    for i in range(0, len(x), batch_size):
        res = request.infer({0: x[i : i + batch_size]})
        outs.append(np.array(res[compiled.outputs[0]], copy=True))
    return np.concatenate(outs, axis=0)


def tensorrt_logits(plan: str | os.PathLike[str], images: np.ndarray, target: Any) -> np.ndarray:
    """Outputs of a serialized TensorRT engine (static batch: the last batch is padded)."""
    from hw_profiles import create_engine

    engine = create_engine(target)
    runner = engine.load(os.fspath(plan))
    try:
        b = int(runner.inputs[0].shape[0])
        x = np.ascontiguousarray(images, dtype=np.float32)
        outs = []
        for i in range(0, len(x), b):
            chunk = x[i : i + b]
            n = len(chunk)
            if n < b:
                chunk = np.concatenate([chunk, np.zeros((b - n, *chunk.shape[1:]), dtype=chunk.dtype)])
            outs.append(np.asarray(runner.infer(chunk), dtype=np.float32)[:n].copy())  # type: ignore[attr-defined]
        return np.concatenate(outs, axis=0)
    finally:
        runner.close()
        engine.close()


def measure_latency(path: str | os.PathLike[str], target: Any, remeasure: int = 3) -> dict[str, Any]:
    """Median latency (ms) and harness statistics of one exported file on ``target``.

    ONNX models are measured at the target's batch (a static-batch copy); a ``.plan`` as it
    was built. A measurement the harness flags busy (taken while the machine was disturbed) is
    repeated, up to ``remeasure`` more times, keeping the lowest estimate, as ``nas lut validate``
    does. Returns ``Stats.to_dict()`` plus ``measurements``, ``timer``, ``fingerprint`` (its id)
    and ``fingerprint_info``.
    """
    from hw_profiles import create_engine
    from nas.export.formats import static_batch_copy

    engine = create_engine(target)
    try:
        with tempfile.TemporaryDirectory(prefix="hwnas-export-") as tmp:
            p = Path(path)
            if p.suffix == ".onnx":
                p = static_batch_copy(p, Path(tmp) / p.name, target.batch)
            stats = engine.measure_file(p)
            n = 1
            while stats.busy and n <= remeasure:
                again = engine.measure_file(p)
                n += 1
                if again.median_ms < stats.median_ms or not again.busy:
                    stats = again
        fp = engine.fingerprint()
        return {
            **stats.to_dict(),
            "measurements": n,
            "timer": engine.timer(),
            "fingerprint": fp.id,
            "fingerprint_info": dict(fp.info),
        }
    finally:
        engine.close()
