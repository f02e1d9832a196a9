"""Latency lookup tables: block keys, block export, profiling, storage, prediction, validation.

Device-side modules (torch-free): :mod:`latency_lut.keys`, :mod:`latency_lut.manifest`,
:mod:`latency_lut.onnx_models`, :mod:`latency_lut.quantize`, :mod:`latency_lut.db`,
:mod:`latency_lut.profiler` (folder mode), :mod:`latency_lut.progress`,
:mod:`latency_lut.correction`, :mod:`latency_lut.predictor`. The host side
(:mod:`latency_lut.export`, :mod:`latency_lut.validation`) builds torch modules from spaces.

Names are re-exported lazily so that ``import latency_lut`` imports nothing heavy.
"""

from __future__ import annotations

from hwnas.lazy import lazy_exports
from latency_lut.errors import (
    BlockExportError,
    CorruptLUTError,
    FingerprintMismatchError,
    LUTError,
    ManifestError,
    MissingBlockError,
    UnsupportedSpaceError,
)
from latency_lut.keys import block_key, overhead_key, quantize_key

__all__ = [
    "BlockExportError",
    "CorruptLUTError",
    "FingerprintMismatchError",
    "LUTError",
    "LatencyDB",
    "LatencyPredictor",
    "ManifestError",
    "MissingBlockError",
    "UnsupportedSpaceError",
    "block_key",
    "export_blocks",
    "load_manifest",
    "open_lut",
    "overhead_key",
    "profile_folder",
    "profile_space",
    "quantize_key",
    "speedup_table",
    "summarize",
    "validate",
]

_LAZY = {
    "LatencyDB": "latency_lut.db",
    "open_lut": "latency_lut.db",
    "LatencyPredictor": "latency_lut.predictor",
    "export_blocks": "latency_lut.export",
    "load_manifest": "latency_lut.manifest",
    "profile_folder": "latency_lut.profiler",
    "profile_space": "latency_lut.profiler",
    "speedup_table": "latency_lut.report",
    "summarize": "latency_lut.report",
    "validate": "latency_lut.validation",
}

__getattr__, __dir__ = lazy_exports(__name__, _LAZY)
