"""The manifest of an exported block folder (``manifest.json``), torch-free."""
from __future__ import annotations

import hashlib
import json
import os
from collections.abc import Mapping
from pathlib import Path
from typing import Any

from hwnas.io import canonical_json, read_json_file
from latency_lut.errors import ManifestError

__all__ = ["MANIFEST_NAME", "Manifest", "load_manifest", "space_record", "space_signature"]

MANIFEST_NAME = "manifest.json"


def space_signature(record: Mapping[str, Any]) -> str:
    """A short stable id of a space configuration (name, factory arguments, input shape)."""
    core = {"name": record.get("name"), "kwargs": record.get("kwargs", {}),
            "input_shape": list(record.get("input_shape", [])), "num_classes": record.get("num_classes")}
    return f"{record.get('name')}-{hashlib.sha256(canonical_json(core).encode()).hexdigest()[:10]}"


def space_record(space: Any) -> dict[str, Any]:
    """What identifies a space configuration: enough to re-create it with ``create_space``."""
    kwargs = {k: (list(v) if isinstance(v, tuple) else v) for k, v in sorted(space.factory_kwargs.items())}
    rec = {"name": space.name, "kwargs": kwargs, "input_shape": list(space.input_shape),
           "num_classes": space.num_classes, "resolution": space.resolution}
    rec["signature"] = space_signature(rec)
    return rec


class Manifest:
    """A loaded manifest; ``root`` is the folder its relative file paths start from."""

    def __init__(self, data: Mapping[str, Any], root: str | os.PathLike[str]) -> None:
        self.data = dict(data)
        self.root = Path(root)

    # -- accessors ---------------------------------------------------------------------
    @property
    def space(self) -> dict[str, Any]:
        return dict(self.data["space"])

    @property
    def batch(self) -> int:
        return int(self.data.get("batch", 1))

    @property
    def formats(self) -> list[str]:
        return list(self.data.get("formats", []))

    @property
    def blocks(self) -> list[dict[str, Any]]:
        return list(self.data.get("blocks", []))

    @property
    def extras(self) -> list[dict[str, Any]]:
        return list(self.data.get("extras", []))

    @property
    def networks(self) -> list[dict[str, Any]]:
        return list(self.data.get("networks", []))

    def path(self, entry: Mapping[str, Any], fmt: str) -> Path | None:
        rel = entry.get("files", {}).get(fmt)
        return None if rel is None else self.root / rel

    def to_json(self) -> str:
        return json.dumps(self.data, indent=1, sort_keys=False) + "\n"


def load_manifest(folder: str | os.PathLike[str]) -> Manifest:
    """Read and check ``folder/manifest.json``; errors are one line naming the file."""
    root = Path(folder)
    path = root / MANIFEST_NAME
    if not root.is_dir():
        raise ManifestError(f"{root}: no such folder (export one with `nas lut export-blocks`)")
    if not path.is_file():
        raise ManifestError(f"{root}: no {MANIFEST_NAME} (not a folder written by `nas lut export-blocks`)")
    data = read_json_file(path)
    if not isinstance(data, dict) or data.get("format") != "hwnas-blocks":
        raise ManifestError(f"{path}: not a hwnas block manifest (format must be 'hwnas-blocks')")
    if data.get("version") != 1:
        raise ManifestError(f"{path}: unsupported manifest version {data.get('version')!r} (supported: 1)")
    for key in ("space", "blocks", "formats"):
        if key not in data:
            raise ManifestError(f"{path}: missing key {key!r}")
    for i, entry in enumerate(data["blocks"]):
        if not isinstance(entry, dict) or "key" not in entry or "files" not in entry:
            raise ManifestError(f"{path}: blocks[{i}] needs 'key' and 'files'")
    return Manifest(data, root)
