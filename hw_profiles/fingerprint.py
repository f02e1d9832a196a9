"""Target fingerprints: what a latency measurement is valid for.

A fingerprint names the engine and its version, the precision, the thread count, the timer,
the model format that was measured, the engine options that change kernels, and the
hardware (CPU model and instruction-set flags, or GPU name). Volatile facts (clock
frequency, load) are left out. Its id is a short hash of its canonical JSON; the target's
*name* is not part of it, so a renamed copy of a target keeps its fingerprint.
"""

from __future__ import annotations

import hashlib
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

from hwnas.io import canonical_json

__all__ = ["Fingerprint", "fingerprint_id"]


def fingerprint_id(info: Mapping[str, Any]) -> str:
    return hashlib.sha256(canonical_json(dict(info)).encode("utf-8")).hexdigest()[:16]


@dataclass(frozen=True)
class Fingerprint:
    """``info`` is the canonical mapping; ``id`` its short hash; ``target`` the target's name."""

    info: Mapping[str, Any]
    target: str = ""

    @property
    def id(self) -> str:
        return fingerprint_id(self.info)

    @property
    def precision(self) -> str:
        return str(self.info.get("precision", ""))

    @property
    def engine(self) -> str:
        return str(self.info.get("engine", ""))

    @property
    def model_format(self) -> str:
        return str(self.info.get("model_format", ""))

    def describe(self) -> str:
        """One line: engine version, precision, threads, hardware."""
        i = self.info
        hw = (i.get("gpu") or {}).get("name") if i.get("gpu") else (i.get("cpu") or {}).get("model", "?")
        return (
            f"{i.get('engine')} {i.get('engine_version')} {i.get('precision')} "
            f"{i.get('threads')}t timer={i.get('timer')} on {hw}"
        )

    def to_json(self) -> str:
        return canonical_json(dict(self.info))
