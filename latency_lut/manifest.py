"""The manifest of an exported block folder (``manifest.json``), torch-free."""

from __future__ import annotations

import hashlib
import json
import os
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any

from hwnas.errors import ConfigError, one_line
from hwnas.io import canonical_json, read_json_file
from latency_lut.errors import ManifestError

__all__ = [
    "MANIFEST_NAME",
    "Manifest",
    "contained_path",
    "legacy_signature",
    "load_manifest",
    "match_space_record",
    "record_hash",
    "space_from_record",
    "space_record",
    "space_signature",
]

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
    core = {
        "name": record.get("name"),
        "kwargs": record.get("kwargs", {}),
        "input_shape": list(record.get("input_shape", [])),
        "num_classes": record.get("num_classes"),
    }
    return f"{record.get('name')}-{hashlib.sha256(canonical_json(core).encode()).hexdigest()[:10]}"


def space_record(space: Any) -> dict[str, Any]:
    """What identifies a space configuration: its name, factory arguments and input, its
    canonical YAML (which rebuilds exactly that space) and its :func:`spaces.space_hash`."""
    from spaces.identity import space_identity

    ident = space_identity(space)
    kwargs = {k: (list(v) if isinstance(v, tuple) else v) for k, v in sorted(space.factory_kwargs.items())}
    rec = {
        "name": space.name,
        "kwargs": kwargs,
        "input_shape": list(space.input_shape),
        "num_classes": space.num_classes,
        "resolution": space.resolution,
    }
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


def match_space_record(records: Sequence[Mapping[str, Any]], record: Mapping[str, Any]) -> dict[str, Any] | None:
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
    """A loaded manifest; ``root`` is the folder its relative file paths start from.

    Every file path of an entry must resolve inside ``root`` (:meth:`path` checks it again when
    a path is used): a manifest naming ``../x``, an absolute path, or a symlink leading out of
    the folder is refused, so that a block folder can never make the profiler measure (and store
    under a key of its choice) a file from elsewhere."""

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
        if rel is None:
            return None
        return contained_path(
            self.root, rel, f"{self.root / MANIFEST_NAME}: {entry.get('key', entry.get('arch_id'))}: files.{fmt}"
        )

    def to_json(self) -> str:
        return json.dumps(self.data, indent=1, sort_keys=False) + "\n"


def contained_path(root: str | os.PathLike[str], rel: Any, where: str) -> Path:
    """``root / rel`` after checking that ``rel`` is a relative path that stays inside ``root``
    once ``..`` and symlinks are resolved; :class:`ManifestError` naming ``where`` otherwise."""
    if not isinstance(rel, str) or not rel or "\x00" in rel:
        raise ManifestError(f"{where}: expected a relative file path, got {rel!r}")
    if os.path.isabs(rel) or rel.startswith("~"):
        raise ManifestError(f"{where}: {rel!r} is an absolute path; a block folder names its files relative to itself")
    base = Path(root)
    try:
        real_root = base.resolve()
        real = (base / rel).resolve()
    except (OSError, RuntimeError) as exc:  # a symlink loop
        raise ManifestError(f"{where}: {rel!r} cannot be resolved ({one_line(exc)})") from None
    if real != real_root and real_root not in real.parents:
        raise ManifestError(f"{where}: {rel!r} leads outside the block folder {base} (to {real}); refused")
    return base / rel


def _type_name(value: Any) -> str:
    return (
        "null"
        if value is None
        else {dict: "object", list: "array", str: "string", bool: "boolean", int: "integer", float: "number"}.get(
            type(value), type(value).__name__
        )
    )


class _Checker:
    """Checks the fields of a manifest, raising one-line :class:`ManifestError` naming the
    manifest, the entry and the field."""

    def __init__(self, path: Path, root: Path) -> None:
        self.path = path
        self.root = root

    def fail(self, where: str, msg: str) -> ManifestError:
        return ManifestError(f"{self.path}: {where}: {msg}")

    def field(
        self,
        obj: Mapping[str, Any],
        name: str,
        where: str,
        kind: type | tuple[type, ...],
        what: str,
        required: bool = True,
    ) -> Any:
        if name not in obj:
            if required:
                raise self.fail(where, f"missing field {name!r}")
            return None
        value = obj[name]
        kinds = kind if isinstance(kind, tuple) else (kind,)
        if not isinstance(value, kinds) or (isinstance(value, bool) and bool not in kinds):
            raise self.fail(where, f"field {name!r} must be {what}, got {_type_name(value)} {value!r:.60}")
        return value

    def string_list(self, obj: Mapping[str, Any], name: str, where: str, required: bool = True) -> None:
        value = self.field(obj, name, where, list, "an array of strings", required)
        for i, item in enumerate(value or []):
            if not isinstance(item, str):
                raise self.fail(where, f"{name}[{i}] must be a string, got {_type_name(item)} {item!r:.60}")

    def files(self, entry: Mapping[str, Any], where: str) -> None:
        files = self.field(entry, "files", where, dict, "an object of format: file path")
        for fmt, rel in files.items():
            contained_path(self.root, rel, f"{self.path}: {where}: files.{fmt}")

    def key(self, entry: Mapping[str, Any], where: str) -> str:
        from latency_lut.keys import KEY_RE

        key = self.field(entry, "key", where, str, "a block key string")
        if not KEY_RE.match(key):
            raise self.fail(
                where, f"field 'key' {key!r:.60} is not a block key (lower-case letters, digits, '_', '.', '-')"
            )
        return key

    def block(self, entry: Any, where: str) -> None:
        if not isinstance(entry, dict):
            raise self.fail(where, f"must be an object, got {_type_name(entry)}")
        key = self.key(entry, where)
        where = f"{where} ({key})"
        self.field(entry, "op", where, str, "a string", required=False)
        self.field(entry, "role", where, str, "a string", required=False)
        self.field(entry, "params", where, dict, "an object", required=False)
        for name in ("cin", "cout", "h", "w", "h_out", "w_out", "batch"):
            value = self.field(entry, name, where, int, "an integer", required=False)
            if value is not None and value < 0:
                raise self.fail(where, f"field {name!r} must be >= 0, got {value}")
        self.files(entry, where)

    def network(self, entry: Any, where: str) -> None:
        if not isinstance(entry, dict):
            raise self.fail(where, f"must be an object, got {_type_name(entry)}")
        arch_id = self.field(entry, "arch_id", where, str, "a string")
        where = f"{where} ({arch_id})"
        self.field(entry, "arch", where, dict, "an object of decision values")
        self.string_list(entry, "keys", where)
        self.files(entry, where)

    def space(self, record: Any) -> None:
        if not isinstance(record, dict):
            raise self.fail("space", f"must be an object (the space record), got {_type_name(record)}")
        self.field(record, "name", "space", str, "a string")
        self.field(record, "signature", "space", str, "a string")
        self.field(record, "hash", "space", (str, type(None)), "a string", required=False)
        self.field(record, "yaml", "space", (str, type(None)), "a string", required=False)
        self.field(record, "kwargs", "space", dict, "an object", required=False)
        shape = self.field(record, "input_shape", "space", list, "an array of integers", required=False)
        if shape is not None and not all(isinstance(v, int) and not isinstance(v, bool) for v in shape):
            raise self.fail("space", f"field 'input_shape' must be an array of integers, got {shape!r:.60}")
        self.field(record, "num_classes", "space", (int, type(None)), "an integer", required=False)


def load_manifest(folder: str | os.PathLike[str]) -> Manifest:
    """Read and check ``folder/manifest.json``; errors are one line naming the file, the entry
    and the field. Every file path must stay inside the folder (see :class:`Manifest`)."""
    from latency_lut.formats import ALL_FORMATS

    root = Path(folder)
    path = root / MANIFEST_NAME
    if not root.is_dir():
        if root.exists():
            raise ManifestError(f"{root}: not a folder (give the folder written by `nas lut export-blocks`)")
        raise ManifestError(f"{root}: no such folder (export one with `nas lut export-blocks`)")
    if not path.exists():
        raise ManifestError(f"{root}: no {MANIFEST_NAME} (not a folder written by `nas lut export-blocks`)")
    try:
        data = read_json_file(path, "block manifest")
    except ConfigError as exc:
        raise ManifestError(str(exc)) from None
    if not isinstance(data, dict) or data.get("format") != "hwnas-blocks":
        raise ManifestError(f"{path}: not a hwnas block manifest (format must be 'hwnas-blocks')")
    if data.get("version") != 1 or isinstance(data.get("version"), bool):
        raise ManifestError(f"{path}: unsupported manifest version {data.get('version')!r} (supported: 1)")
    for key in ("space", "blocks", "formats"):
        if key not in data:
            raise ManifestError(f"{path}: missing key {key!r}")
    check = _Checker(path, root)
    check.space(data["space"])
    batch = check.field(data, "batch", "manifest", int, "a positive integer", required=False)
    if batch is not None and batch < 1:
        raise check.fail("manifest", f"field 'batch' must be a positive integer, got {batch}")
    check.string_list(data, "formats", "manifest")
    unknown = [f for f in data["formats"] if f not in ALL_FORMATS]
    if unknown:
        raise check.fail("manifest", f"unknown format {unknown[0]!r} in 'formats' (formats: {', '.join(ALL_FORMATS)})")
    for name, entry_check in (("blocks", check.block), ("extras", check.block), ("networks", check.network)):
        entries = check.field(data, name, "manifest", list, "an array", required=name == "blocks")
        for i, entry in enumerate(entries or []):
            entry_check(entry, f"{name}[{i}]")
    return Manifest(data, root)
