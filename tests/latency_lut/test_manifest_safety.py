"""Block-folder manifests: wrong or missing fields are one-line errors naming the manifest, the
entry and the field; no path read from a manifest may lead outside its folder (LUT poisoning)."""

from __future__ import annotations

import json
import os
import shutil
import sqlite3
from pathlib import Path

import pytest

from hwnas.errors import HwnasError
from latency_lut.errors import ManifestError
from latency_lut.manifest import load_manifest
from latency_lut.profiler import profile_folder


@pytest.fixture
def folder(tmp_path, exported) -> Path:
    """A private copy of the exported tiny folder, to damage."""
    dst = tmp_path / "blocks"
    shutil.copytree(exported, dst)
    return dst


def _edit(folder: Path, change) -> Path:
    path = folder / "manifest.json"
    data = json.loads(path.read_text())
    change(data)
    path.write_text(json.dumps(data))
    return path


def _error(folder: Path) -> str:
    with pytest.raises(ManifestError) as info:
        load_manifest(folder)
    msg = str(info.value)
    assert "\n" not in msg and str(folder / "manifest.json") in msg
    return msg


def _set(path: str, value):
    def change(data):
        *parents, last = path.split(".")
        obj = data
        for p in parents:
            obj = obj[int(p)] if isinstance(obj, list) else obj[p]
        index = int(last) if isinstance(obj, list) else last
        if value is _DELETE:
            del obj[index]
        else:
            obj[index] = value

    return change


class _Delete:
    """The field is removed (not set to a value)."""

    def __repr__(self) -> str:  # a stable test id: parallel workers must collect the same ids
        return "<deleted>"


_DELETE = _Delete()

FIELD_CASES = [
    ("blocks.0.key", 7, "blocks[0]", "'key' must be a block key string"),
    ("blocks.0.key", _DELETE, "blocks[0]", "missing field 'key'"),
    ("blocks.0.key", "Bad Key!", "blocks[0]", "is not a block key"),
    ("blocks.0.files", ["x"], "blocks[0]", "'files' must be an object"),
    ("blocks.0.files", _DELETE, "blocks[0]", "missing field 'files'"),
    ("blocks.0.params", [1, 2], "blocks[0]", "'params' must be an object"),
    ("blocks.0.op", 3, "blocks[0]", "'op' must be a string"),
    ("blocks.0.cin", "8", "blocks[0]", "'cin' must be an integer"),
    ("blocks.0.h", -1, "blocks[0]", "'h' must be >= 0"),
    ("blocks.0", "conv", "blocks[0]", "must be an object, got string"),
    ("extras.0.role", ["quantize"], "extras[0]", "'role' must be a string"),
    ("extras", {"a": 1}, "manifest", "'extras' must be an array"),
    ("networks.0.keys", "abc", "networks[0]", "'keys' must be an array of strings"),
    ("networks.0.keys", [1, 2], "networks[0]", "keys[0] must be a string"),
    ("networks.0.arch", [1], "networks[0]", "'arch' must be an object"),
    ("networks.0.arch_id", None, "networks[0]", "'arch_id' must be a string"),
    ("networks", None, "manifest", "'networks' must be an array"),
    ("blocks", {"k": 1}, "manifest", "'blocks' must be an array"),
    ("batch", "1", "manifest", "'batch' must be a positive integer"),
    ("batch", 0, "manifest", "'batch' must be a positive integer"),
    ("batch", True, "manifest", "'batch' must be a positive integer"),
    ("formats", "int8", "manifest", "'formats' must be an array of strings"),
    ("formats", ["int9"], "manifest", "unknown format 'int9'"),
    ("space", "tiny", "space", "must be an object"),
    ("space.signature", _DELETE, "space", "missing field 'signature'"),
    ("space.name", 5, "space", "'name' must be a string"),
    ("space.input_shape", ["1", 16, 16], "space", "'input_shape' must be an array of integers"),
]


@pytest.mark.parametrize("field,value,where,expected", FIELD_CASES, ids=[f"{c[0]}={c[1]!r}"[:40] for c in FIELD_CASES])
def test_wrong_or_missing_fields_are_one_line(folder, field, value, where, expected):
    _edit(folder, _set(field, value))
    msg = _error(folder)
    assert f": {where}" in msg and expected in msg, msg


def test_every_manifest_read_error_is_one_line(folder):
    path = folder / "manifest.json"
    path.write_bytes(b'{"format": "hwnas-blocks", "version": 1, "name": "\xff\xfe"}')
    assert "not UTF-8" in _error(folder)
    path.write_text("{oops")
    assert "invalid JSON at line 1" in _error(folder)
    path.write_text("[" * 100_000)
    assert "nested too deeply" in _error(folder)
    path.unlink()
    path.mkdir()
    assert "is a folder" in _error(folder)


@pytest.fixture
def outside_model(tmp_path, exported) -> Path:
    """A valid model file outside the block folder (what a poisoned manifest would point at)."""
    data = json.loads((exported / "manifest.json").read_text())
    src = exported / data["blocks"][0]["files"]["int8_nhwc"]
    dst = tmp_path / "outside" / "evil.onnx"
    dst.parent.mkdir()
    shutil.copy(src, dst)
    return dst


def _poison(folder: Path, rel: str) -> None:
    _edit(folder, lambda d: d["blocks"][1]["files"].__setitem__("int8_nhwc", rel))


@pytest.mark.parametrize("how", ["dotdot", "absolute", "symlink_file", "symlink_folder", "dotdot_inside_then_out"])
def test_lut_poisoning_is_impossible(folder, outside_model, fast_target, tmp_path, how):
    if how == "dotdot":
        rel = os.path.relpath(outside_model, folder)
    elif how == "absolute":
        rel = str(outside_model)
    elif how == "symlink_file":
        (folder / "blocks" / "link.onnx").symlink_to(outside_model)
        rel = "blocks/link.onnx"
    elif how == "symlink_folder":
        (folder / "blocks" / "sub").symlink_to(outside_model.parent, target_is_directory=True)
        rel = "blocks/sub/evil.onnx"
    else:
        rel = "blocks/../../outside/evil.onnx"
    _poison(folder, rel)
    msg = _error(folder)
    assert "blocks[1]" in msg and "files.int8_nhwc" in msg
    assert "leads outside the block folder" in msg or "absolute path" in msg
    lut = tmp_path / "poisoned.db"
    with pytest.raises(ManifestError):
        profile_folder(folder, str(fast_target), lut, progress=False, retry_passes=0)
    assert not lut.exists()  # refused before the LUT was opened: nothing stored under any key


def test_manifest_path_is_checked_again_when_used(folder, outside_model):
    """A file swapped for a symlink after loading is refused where the profiler asks for it."""
    manifest = load_manifest(folder)
    entry = manifest.blocks[1]
    target = folder / entry["files"]["int8_nhwc"]
    target.unlink()
    target.symlink_to(outside_model)
    with pytest.raises(ManifestError, match="leads outside the block folder"):
        manifest.path(entry, "int8_nhwc")


def test_symlinks_inside_the_folder_are_fine(folder, fast_target, tmp_path):
    data = json.loads((folder / "manifest.json").read_text())
    rel = data["blocks"][1]["files"]["int8_nhwc"]
    (folder / "alias.onnx").symlink_to(folder / rel)
    _poison(folder, "alias.onnx")
    manifest = load_manifest(folder)
    assert manifest.path(manifest.blocks[1], "int8_nhwc") == folder / "alias.onnx"


def test_a_good_folder_still_profiles(folder, fast_target, tmp_path):
    lut = tmp_path / "ok.db"
    result = profile_folder(folder, str(fast_target), lut, progress=False, retry_passes=0)
    assert result.failed == [] and result.measured == result.total - result.networks - result.skipped
    con = sqlite3.connect(f"file:{lut}?mode=ro", uri=True)
    try:
        assert [r[0] for r in con.execute("SELECT status FROM runs")] == ["finished"]
    finally:
        con.close()


def test_manifest_errors_are_hwnas_errors():
    assert issubclass(ManifestError, HwnasError)
