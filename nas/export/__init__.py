"""Export and verify a trained model for a deployment target: ``nas export`` and ``nas.export(...)``.

    import nas
    res = nas.export("runs/mbv3", arch="arch.json", out="deploy", target="cpu-ort-int8", lut="lut.db")
    res = nas.export(model, arch, out="deploy", space=space, data="fashion-mnist")   # a plain module
    print(res.record["accuracy"], res.record["latency_ms"], res.passed)

The folder gets ``model.int8.onnx`` (QDQ, the trained or calibrated scales, the target's
scheme), ``model.fp32.onnx``, optionally ``model.openvino/`` and ``model.plan``, and
``model.json`` (see :mod:`nas.export.artifact`). ``nas.export`` is this package and is also
callable: ``nas.export(...)`` is :func:`nas.export.exporter.export`.
"""

from __future__ import annotations

import sys
import types
from typing import Any

from nas.export.artifact import FILE_NAMES, MODEL_JSON, SCHEMA, check_files, read_model_json
from nas.export.errors import ExportConfigError, ExportVerificationError, FormatUnavailableError
from nas.export.exporter import (
    AGREEMENT_THRESHOLD,
    ENGINE_ACCURACY_TOLERANCE,
    LATENCY_TOLERANCE,
    ExportResult,
    export,
)
from nas.export.formats import DEFAULT_FORMATS, FORMATS, format_unavailable, parse_formats, scheme_for_target

__all__ = [
    "AGREEMENT_THRESHOLD",
    "DEFAULT_FORMATS",
    "ENGINE_ACCURACY_TOLERANCE",
    "FILE_NAMES",
    "FORMATS",
    "LATENCY_TOLERANCE",
    "MODEL_JSON",
    "SCHEMA",
    "ExportConfigError",
    "ExportVerificationError",
    "ExportResult",
    "FormatUnavailableError",
    "check_files",
    "export",
    "format_unavailable",
    "parse_formats",
    "read_model_json",
    "scheme_for_target",
]


class _CallableModule(types.ModuleType):
    """``import nas.export`` binds this package to ``nas.export``, where the public API promises
    the function: calling the package calls :func:`export`."""

    def __call__(self, *args: Any, **kwargs: Any) -> ExportResult:
        return export(*args, **kwargs)


sys.modules[__name__].__class__ = _CallableModule
