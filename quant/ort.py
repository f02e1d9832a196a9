"""onnxruntime helpers: sessions, batched prediction, latency, and integer-kernel graph checks."""

from __future__ import annotations

import os
import statistics
import tempfile
import time
from collections import Counter
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Literal, Protocol

import numpy as np
import onnx

from quant.errors import QuantError

__all__ = [
    "INTEGER_OPS",
    "IntegerOpReport",
    "LatencyStats",
    "compare_latency",
    "integer_op_report",
    "measure_latency",
    "ort_predict",
    "ort_session",
]

OptLevel = Literal["disable", "basic", "extended", "all"]

INTEGER_OPS = frozenset(
    {
        "QLinearConv",
        "ConvInteger",
        "QLinearMatMul",
        "MatMulInteger",
        "MatMulIntegerToFloat",
        "QGemm",
        "QLinearAdd",
        "QLinearMul",
        "QLinearGlobalAveragePool",
        "QLinearAveragePool",
        "QLinearSigmoid",
        "QLinearLeakyRelu",
        "QLinearConcat",
        "QLinearSoftmax",
        "QLinearReduceMean",
        "QLinearWhere",
        "DynamicQuantizeMatMul",
        "NhwcQLinearConv",
    }
)
"""ORT op types that compute on integers (kernels from MLAS's u8/s8 paths)."""

_INTEGER_CONVS = frozenset({"QLinearConv", "ConvInteger", "NhwcQLinearConv"})
_FLOAT_CONVS = frozenset({"Conv", "FusedConv", "NhwcFusedConv", "ConvTranspose"})
_FLOAT_GEMMS = frozenset({"Gemm", "MatMul", "FusedGemm", "FusedMatMul"})
_QDQ = frozenset({"QuantizeLinear", "DequantizeLinear"})
_LAYOUT = frozenset(
    {
        "Reshape",
        "Flatten",
        "Squeeze",
        "Unsqueeze",
        "Transpose",
        "Identity",
        "Shape",
        "Gather",
        "Concat",
        "ReorderInput",
        "ReorderOutput",
        "MaxPool",
        "Dropout",
        "Cast",
    }
)


def _level(level: OptLevel):  # noqa: ANN202 - ort enum
    import onnxruntime as ort

    return {
        "disable": ort.GraphOptimizationLevel.ORT_DISABLE_ALL,
        "basic": ort.GraphOptimizationLevel.ORT_ENABLE_BASIC,
        "extended": ort.GraphOptimizationLevel.ORT_ENABLE_EXTENDED,
        "all": ort.GraphOptimizationLevel.ORT_ENABLE_ALL,
    }[level]


def ort_session(
    path: str | os.PathLike[str],
    *,
    threads: int = 1,
    level: OptLevel = "all",
    optimized_path: str | os.PathLike[str] | None = None,
):  # noqa: ANN201 - onnxruntime.InferenceSession
    """A CPU ``InferenceSession`` with ``threads`` intra-op threads (sequential execution)."""
    import onnxruntime as ort

    if not Path(path).is_file():
        raise QuantError(f"{path}: no such ONNX file")
    so = ort.SessionOptions()
    so.intra_op_num_threads = threads
    so.inter_op_num_threads = 1
    so.execution_mode = ort.ExecutionMode.ORT_SEQUENTIAL
    so.graph_optimization_level = _level(level)
    so.log_severity_level = 3
    if optimized_path is not None:
        so.optimized_model_filepath = str(optimized_path)
    return ort.InferenceSession(str(path), so, providers=["CPUExecutionProvider"])


class OrtSession(Protocol):
    """What :func:`ort_predict` uses of an ``onnxruntime.InferenceSession``."""

    def get_inputs(self) -> Sequence[Any]: ...
    def run(self, output_names: Sequence[str] | None, input_feed: Mapping[str, np.ndarray]) -> list[Any]: ...


def ort_predict(
    model: str | os.PathLike[str] | OrtSession, x: np.ndarray, *, batch_size: int = 256, threads: int = 1
) -> np.ndarray:
    """Outputs of an ONNX model (a path or a session) for ``x``, computed in batches."""
    sess: OrtSession = ort_session(model, threads=threads) if isinstance(model, (str, os.PathLike)) else model
    name = sess.get_inputs()[0].name
    x = np.ascontiguousarray(x, dtype=np.float32)
    outs = [sess.run(None, {name: x[i : i + batch_size]})[0] for i in range(0, len(x), batch_size)]
    return np.concatenate(outs, axis=0)


@dataclass(frozen=True)
class LatencyStats:
    """Latency of one model in milliseconds over ``repeat`` timed runs."""

    median_ms: float
    mean_ms: float
    min_ms: float
    p90_ms: float
    repeat: int

    @classmethod
    def from_samples(cls, samples_ms: Sequence[float]) -> LatencyStats:
        s = sorted(samples_ms)
        return cls(
            median_ms=statistics.median(s),
            mean_ms=statistics.fmean(s),
            min_ms=s[0],
            p90_ms=s[min(len(s) - 1, int(0.9 * len(s)))],
            repeat=len(s),
        )


def _input_feed(sess, input_shape: Sequence[int] | None, seed: int) -> dict[str, np.ndarray]:  # noqa: ANN001
    inp = sess.get_inputs()[0]
    if input_shape is None:
        input_shape = [d if isinstance(d, int) else 1 for d in inp.shape]
    rng = np.random.default_rng(seed)
    return {inp.name: rng.standard_normal(tuple(input_shape)).astype(np.float32)}


def compare_latency(
    paths: Sequence[str | os.PathLike[str]],
    input_shape: Sequence[int] | None = None,
    *,
    threads: int = 1,
    warmup: int = 10,
    repeat: int = 50,
    level: OptLevel = "all",
    seed: int = 0,
) -> list[LatencyStats]:
    """Latencies of several models measured in interleaved rounds (fair on a noisy machine).

    Each round runs every model once, so slow drifts of the machine hit all of them alike; the
    median over ``repeat`` rounds is robust to the occasional interruption.
    """
    sessions = [ort_session(p, threads=threads, level=level) for p in paths]
    feeds = [_input_feed(s, input_shape, seed) for s in sessions]
    for s, f in zip(sessions, feeds):
        for _ in range(warmup):
            s.run(None, f)
    samples: list[list[float]] = [[] for _ in sessions]
    for _ in range(repeat):
        for i, (s, f) in enumerate(zip(sessions, feeds)):
            t0 = time.perf_counter()
            s.run(None, f)
            samples[i].append((time.perf_counter() - t0) * 1e3)
    return [LatencyStats.from_samples(x) for x in samples]


def measure_latency(
    path: str | os.PathLike[str],
    input_shape: Sequence[int] | None = None,
    *,
    threads: int = 1,
    warmup: int = 10,
    repeat: int = 50,
    level: OptLevel = "all",
    seed: int = 0,
) -> LatencyStats:
    """Latency of one ONNX model on the CPU (``threads`` intra-op threads, batch from ``input_shape``)."""
    return compare_latency([path], input_shape, threads=threads, warmup=warmup, repeat=repeat, level=level, seed=seed)[
        0
    ]


@dataclass(frozen=True)
class IntegerOpReport:
    """Which kernels onnxruntime runs after graph optimisation."""

    op_counts: dict[str, int] = field(default_factory=dict)

    @property
    def integer_ops(self) -> int:
        """Number of integer compute nodes (``QLinearConv``, ``QLinearAdd``, ``QGemm``...)."""
        return sum(c for op, c in self.op_counts.items() if op in INTEGER_OPS)

    @property
    def integer_convs(self) -> int:
        return sum(self.op_counts.get(op, 0) for op in _INTEGER_CONVS)

    @property
    def float_convs(self) -> int:
        return sum(self.op_counts.get(op, 0) for op in _FLOAT_CONVS)

    @property
    def float_gemms(self) -> int:
        return sum(self.op_counts.get(op, 0) for op in _FLOAT_GEMMS)

    @property
    def float_ops(self) -> dict[str, int]:
        """Compute nodes that run in float (everything but integer ops, Q/DQ and layout ops)."""
        return {op: c for op, c in self.op_counts.items() if op not in INTEGER_OPS | _QDQ | _LAYOUT}

    @property
    def all_convs_integer(self) -> bool:
        """Every convolution runs as an integer kernel (and there is at least one)."""
        return self.integer_convs > 0 and self.float_convs == 0

    def summary(self) -> str:
        """One line: counts of integer, float and Q/DQ nodes."""
        q = sum(self.op_counts.get(op, 0) for op in _QDQ)
        floats = ", ".join(f"{op}×{c}" for op, c in sorted(self.float_ops.items())) or "none"
        return f"integer ops {self.integer_ops} (convs {self.integer_convs}), float convs {self.float_convs}, Q/DQ {q}, float ops: {floats}"


def integer_op_report(path: str | os.PathLike[str], *, level: OptLevel = "extended") -> IntegerOpReport:
    """Optimise ``path`` with onnxruntime (CPU) and count the node types it will execute.

    ``level="extended"`` applies the QDQ fusions (``QLinearConv`` etc.) without the
    machine-specific layout transforms of ``"all"``.
    """
    with tempfile.TemporaryDirectory() as tmp:
        out = Path(tmp) / "optimized.onnx"
        ort_session(path, threads=1, level=level, optimized_path=out)
        graph = onnx.load(str(out)).graph
    return IntegerOpReport(dict(Counter(n.op_type for n in graph.node)))
