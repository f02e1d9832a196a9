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

__all__ = ["MANIFEST_NAME", "Manifest", "legacy_signature", "load_manifest", "match_space_record", "record_hash",
           "space_from_record", "space_record", "space_signature"]

MANIFEST_NAME = "manifest.json"


def space_signature(record: Mapping[str, Any]) -> str:
    """A short stable id of a space configuration: ``name-<hash prefix>`` for records with a
    :func:`spaces.space_hash`; for records written before that (and spaces without a declarative
    form), a hash of the name, factory arguments and input shape."""
    if record.get("hash"):
        return f"{record.get('name')}-{str(record['hash'])[:10]}"
    return legacy_signature(record)


def legacy_signature(record: Mapping[str, Any]) -> str:
    """The signature of LUTs written before space records held a hash (name, arguments, shape)."""
    core = {"name": record.get("name"), "kwargs": record.get("kwargs", {}),
            "input_shape": list(record.get("input_shape", [])), "num_classes": record.get("num_classes")}
    return f"{record.get('name')}-{hashlib.sha256(canonical_json(core).encode()).hexdigest()[:10]}"


def space_record(space: Any) -> dict[str, Any]:
    """What identifies a space configuration: its name, factory arguments and input, its
    canonical YAML (which rebuilds exactly that space) and its :func:`spaces.space_hash`."""
    from spaces.identity import space_identity

    ident = space_identity(space)
    kwargs = {k: (list(v) if isinstance(v, tuple) else v) for k, v in sorted(space.factory_kwargs.items())}
    rec = {"name": space.name, "kwargs": kwargs, "input_shape": list(space.input_shape),
           "num_classes": space.num_classes, "resolution": space.resolution}
    if ident["hash"] is not None:
        rec.update(hash=ident["hash"], yaml=ident["yaml"])
    rec["signature"] = space_signature(rec)
    return rec


def space_from_record(record: Mapping[str, Any], where: str = "<LUT>") -> Any:
    """The space of a LUT or manifest record: from its YAML, or (older records) from its name
    and factory arguments."""
    from spaces.identity import space_from_identity

    return space_from_identity(record, where)


def record_hash(record: Mapping[str, Any]) -> str | None:
    """The space hash of a record; for an older record without one, the hash of the space its
    name and arguments rebuild (``None`` when that fails)."""
    if record.get("hash"):
        return str(record["hash"])
    from hwnas.errors import HwnasError
    from spaces.identity import space_hash

    try:
        return space_hash(space_from_record(record))
    except HwnasError:
        return None


def match_space_record(records: list[Mapping[str, Any]], record: Mapping[str, Any]) -> dict[str, Any] | None:
    """The record among ``records`` (a LUT's) of the same space as ``record``: same hash; an
    older record without a hash matches by its signature (same name, arguments and input) or by
    the hash of the space it rebuilds. ``None`` when the LUT recorded no such space."""
    h = record.get("hash")
    if h:
        for r in records:
            if r.get("hash") == h:
                return dict(r)
    legacy = legacy_signature(record)
    for r in records:
        if r.get("hash"):
            continue
        rebuilt = record_hash(r) if h else None
        if rebuilt is not None:  # the registered factory still rebuilds it: compare spaces
            if rebuilt == h:
                return dict(r)
        elif r.get("signature") == legacy:  # cannot rebuild (e.g. a YAML space): same name, arguments, input
            return dict(r)
    return None


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
