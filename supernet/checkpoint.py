"""Checkpoints: one safetensors file holding the shared tensors, the optimizer state, the RNG
state, and (as JSON metadata) the configuration and progress. Nothing is ever unpickled.

Writes are atomic (a temporary file in the same folder, then a rename), so a run killed while
saving leaves the previous checkpoint intact.
"""

from __future__ import annotations

import json
import os
from pathlib import Path
from typing import Any

import torch

from hwnas.errors import first_line
from hwnas.io import atomic_write
from supernet.errors import CheckpointError

__all__ = ["CHECKPOINT_NAME", "FORMAT", "checkpoint_path", "read_checkpoint", "write_checkpoint"]

CHECKPOINT_NAME = "checkpoint.safetensors"
FORMAT = "hwnas-supernet/1"
_META_KEY = "hwnas_supernet"


def checkpoint_path(path: str | os.PathLike[str]) -> Path:
    """The checkpoint file of a training folder (or ``path`` itself when it is a file)."""
    p = Path(path)
    return p / CHECKPOINT_NAME if p.is_dir() or p.suffix != ".safetensors" else p


def write_checkpoint(path: str | os.PathLike[str], tensors: dict[str, torch.Tensor], meta: dict[str, Any]) -> Path:
    """Write ``tensors`` and the JSON-able ``meta`` atomically to ``path``."""
    from safetensors.torch import save_file

    p = Path(path)
    p.parent.mkdir(parents=True, exist_ok=True)
    payload = {k: v.detach().to("cpu").contiguous().clone() for k, v in tensors.items()}
    meta = {**meta, "format": FORMAT}
    return atomic_write(p, lambda tmp: save_file(payload, tmp, metadata={_META_KEY: json.dumps(meta, sort_keys=True)}))


def read_checkpoint(path: str | os.PathLike[str]) -> tuple[dict[str, Any], dict[str, torch.Tensor]]:
    """``(meta, tensors)`` of a checkpoint file or training folder; one-line errors when it is
    missing, unreadable, corrupt or not a supernet checkpoint."""
    from safetensors import safe_open

    p = checkpoint_path(path)
    if not p.exists():
        where = f" in {Path(path)}" if Path(path).is_dir() else ""
        raise CheckpointError(f"{p}: no such checkpoint{where}")
    try:
        with safe_open(str(p), framework="pt") as fh:
            raw = (fh.metadata() or {}).get(_META_KEY)
            tensors = {k: fh.get_tensor(k) for k in fh.keys()}
    except CheckpointError:
        raise
    except Exception as exc:  # noqa: BLE001 - safetensors raises several types for bad files
        raise CheckpointError(f"{p}: not a readable safetensors checkpoint ({first_line(exc)})") from None
    if raw is None:
        raise CheckpointError(f"{p}: not a supernet checkpoint (no {_META_KEY} metadata)")
    try:
        meta = json.loads(raw)
    except json.JSONDecodeError as exc:
        raise CheckpointError(f"{p}: corrupt checkpoint metadata ({exc.msg})") from None
    if not isinstance(meta, dict) or meta.get("format") != FORMAT:
        raise CheckpointError(
            f"{p}: unsupported checkpoint format {meta.get('format') if isinstance(meta, dict) else None!r}"
        )
    return meta, tensors
