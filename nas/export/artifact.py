"""The export folder and its ``model.json``: file names, hashes, host facts, reading and checking.

An export folder holds ``model.int8.onnx`` (always), ``model.fp32.onnx``, ``model.openvino/``
(``model.xml`` + ``model.bin``), ``model.plan`` (a serialized TensorRT engine) and ``model.json``,
written last: a folder without ``model.json`` is an unfinished export. ``model.json["files"]``
maps each format to its path relative to the folder; ``model.json["sha256"]`` maps each file's
relative path to its SHA-256.
"""

from __future__ import annotations

import datetime as _dt
import hashlib
import json
import os
import platform
import socket
import tempfile
from collections.abc import Mapping
from pathlib import Path
from typing import Any

from hwnas.io import atomic_write_text, json_safe, read_json_file
from nas.export.errors import ExportConfigError

__all__ = [
    "FILE_NAMES",
    "MODEL_JSON",
    "SCHEMA",
    "check_files",
    "check_out_dir",
    "host_info",
    "prepare_out_dir",
    "read_model_json",
    "sha256_file",
    "utc_now",
    "write_model_json",
]

SCHEMA = "hwnas-export/1"
MODEL_JSON = "model.json"
#: each format's file, relative to the export folder (a benchmark reads these names)
FILE_NAMES: dict[str, str] = {
    "onnx-int8": "model.int8.onnx",
    "onnx-fp32": "model.fp32.onnx",
    "openvino": "model.openvino/model.xml",
    "tensorrt": "model.plan",
}


def sha256_file(path: str | os.PathLike[str]) -> str:
    """Hex SHA-256 of a file's bytes."""
    h = hashlib.sha256()
    with open(path, "rb") as fh:
        for chunk in iter(lambda: fh.read(1 << 20), b""):
            h.update(chunk)
    return h.hexdigest()


def utc_now() -> str:
    """The current UTC time, ISO 8601 to the second (``2025-01-31T12:00:00Z``)."""
    return _dt.datetime.now(_dt.timezone.utc).replace(microsecond=0).isoformat().replace("+00:00", "Z")


def _version(module: str) -> str | None:
    from importlib import metadata

    try:
        return metadata.version(module)
    except metadata.PackageNotFoundError:
        return None


def host_info() -> dict[str, Any]:
    """This machine: CPU model and ISA flags (``avx512_vnni`` and ``amx_int8`` spelled out), OS,
    Python and the versions of the libraries an export depends on."""
    from hw_profiles.sysinfo import cpu_count, cpu_info

    cpu = cpu_info()
    flags = set(cpu["flags"])
    return {
        "hostname": socket.gethostname(),
        "cpu_model": cpu["model"],
        "cpu_arch": cpu["arch"],
        "cpu_count": cpu_count(),
        "cpu_flags": list(cpu["flags"]),
        "avx512_vnni": "avx512_vnni" in flags,
        "avx_vnni": "avx_vnni" in flags,
        "amx_int8": "amx_int8" in flags,
        "os": f"{platform.system()} {platform.release()}",
        "python": platform.python_version(),
        "versions": {
            name: _version(name)
            for name in ("hwnas", "torch", "onnx", "onnxruntime", "openvino", "tensorrt")
            if _version(name) is not None
        },
    }


def check_out_dir(out: str | os.PathLike[str]) -> Path:
    """Check, without creating anything, that the folder ``out`` can be created or written (the
    nearest existing ancestor is a writable folder); one-line :class:`ExportConfigError` otherwise."""
    p = Path(out)
    if p.exists() and not p.is_dir():
        raise ExportConfigError(f"--out {p}: exists and is not a folder")
    ancestor = p
    while not ancestor.exists() and ancestor != ancestor.parent:
        ancestor = ancestor.parent
    if not ancestor.is_dir():
        raise ExportConfigError(f"--out {p}: cannot write there ({ancestor} is not a folder)")
    if not os.access(ancestor, os.W_OK | os.X_OK):
        raise ExportConfigError(f"--out {p}: cannot write there ({ancestor} is not writable)")
    return p


def prepare_out_dir(out: str | os.PathLike[str]) -> Path:
    """Create ``out`` (and parents) and check that files can be written there; a stale
    ``model.json`` of an earlier export is removed, so that an export that fails half-way never
    leaves a folder that looks finished. One-line :class:`ExportConfigError` otherwise."""
    p = Path(out)
    if p.exists() and not p.is_dir():
        raise ExportConfigError(f"--out {p}: exists and is not a folder")
    try:
        p.mkdir(parents=True, exist_ok=True)
        fd, probe = tempfile.mkstemp(dir=p, prefix=".write-test-")
        os.close(fd)
        os.unlink(probe)
    except OSError as exc:
        raise ExportConfigError(f"--out {p}: cannot write there ({exc.strerror or type(exc).__name__})") from None
    stale = p / MODEL_JSON
    if stale.is_file():
        stale.unlink()
    return p


def write_model_json(out: str | os.PathLike[str], record: Mapping[str, Any]) -> Path:
    """Write ``record`` (non-finite floats as ``null``) to ``out/model.json`` atomically."""
    path = Path(out) / MODEL_JSON
    atomic_write_text(path, json.dumps(json_safe(dict(record)), indent=2, sort_keys=False, default=str) + "\n")
    return path


def read_model_json(out: str | os.PathLike[str]) -> dict[str, Any]:
    """The ``model.json`` of an export folder (or the file itself); one-line errors."""
    p = Path(out)
    path = p / MODEL_JSON if p.is_dir() else p
    data = read_json_file(path)
    if not isinstance(data, dict) or data.get("schema") != SCHEMA:
        raise ExportConfigError(f"{path}: not an hwnas export record (schema {SCHEMA})")
    return data


def check_files(out: str | os.PathLike[str]) -> list[str]:
    """Problems with the files of an export folder: missing files and SHA-256 mismatches
    (an empty list when every file ``model.json`` lists is present and intact)."""
    root = Path(out)
    record = read_model_json(root)
    problems = []
    for rel, digest in sorted((record.get("sha256") or {}).items()):
        f = root / rel
        if not f.is_file():
            problems.append(f"{rel}: missing")
        elif sha256_file(f) != digest:
            problems.append(f"{rel}: SHA-256 differs from model.json")
    for fmt, rel in sorted((record.get("files") or {}).items()):
        if rel not in (record.get("sha256") or {}):
            problems.append(f"{fmt}: {rel} has no SHA-256 in model.json")
    return problems
