"""onnxruntime helpers: sessions, batched prediction and integer-kernel graph checks.

Latency is measured by the one harness, :mod:`hw_profiles` (``hw_profiles.compare_files`` times
several model files side by side); this package does not time models.
"""

from __future__ import annotations

import os
import tempfile
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
    "integer_op_report",
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
